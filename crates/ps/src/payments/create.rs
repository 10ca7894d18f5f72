//! A POS's purchase (merchant API `qr/create`, `qr/create-link`): a Dynamic QR or a payment link
//! waiting for its scan. One transaction creates the purchase and stores the answer for repeats
//! of the same request (DECISIONS 29), or finds the answer a repeat already stored.

use jiff::SignedDuration;
use tolem_wire::Amount;
use tolem_wire::merchant::{
    Envelope, LinkCreated, PaymentBehaviorOptions, QrCreated, QrPaymentBehaviorOptions,
};

use crate::domain::{DeviceId, Kind, Payment, TradePointId};
use crate::links::{pay_link, qr_digits, secret_token};
use crate::state::App;
use crate::store::{NewPayment, Replay, StoreResult};

/// A purchase a POS asks for, checked by the edge: its device is active on an open trade point.
#[derive(Clone, Debug)]
pub struct PosOrder {
    /// [`Kind::Dynamic`] or [`Kind::Link`].
    pub kind: Kind,
    pub trade_point_id: TradePointId,
    pub device_id: DeviceId,
    pub external_id: Option<String>,
    pub amount: Amount,
    /// The request's key for repeats; `None` without an X-Request-ID.
    pub replay: Option<Replay>,
}

/// What the POS is told (the merchant API's envelope, JSON): the new purchase, or the answer
/// stored for the same request made before.
pub async fn create(app: &App, order: PosOrder) -> StoreResult<String> {
    let now = app.clock.now();
    let p = &app.config.payments;
    let wait_s = if order.kind == Kind::Link {
        p.link_activation_wait_s
    } else {
        p.qr_scan_wait_s
    };
    let expire_at = now
        .checked_add(SignedDuration::from_secs(i64::from(wait_s)))
        .ok();
    let digits = qr_digits();
    let token = match order.kind {
        Kind::Link => pay_link(&app.config.public_url, &digits),
        _ => digits,
    };
    let new = NewPayment {
        kind: order.kind,
        trade_point_id: order.trade_point_id,
        service_id: None,
        device_id: Some(order.device_id),
        external_id: order.external_id,
        qr_token: Some(token),
        amount: Some(order.amount),
        expire_at,
        receipt_token: secret_token(),
    };
    let answer = Answer {
        kind: order.kind,
        methods: p.payment_methods.clone(),
        polling_s: p.status_polling_interval_s,
        wait_s,
        confirmation_s: app.config.payment_confirmation_timeout_s(),
        zone: app.zone.clone(),
    };
    let replay = order.replay;
    app.store
        // Nothing it reads is changed by it, and what it writes is new: the purchase under a
        // fresh id and token, and the answer under the request's key, whose unique key makes a
        // concurrent repeat run again and find this answer. So READ COMMITTED and the staged
        // path on PostgreSQL: two round trips on the async workers.
        .staged_locking_transaction(move |tx| {
            if let Some(first) = tx.replayed(&replay)? {
                return Ok(first);
            }
            let payment = tx.insert_payment(&new, now)?;
            let body = answer.render(&payment);
            tx.remember(&replay, &body, now)?;
            Ok(body)
        })
        .await
}

/// What the answer to a new purchase is made of besides the purchase itself.
struct Answer {
    kind: Kind,
    methods: Vec<String>,
    polling_s: u32,
    wait_s: u32,
    confirmation_s: u32,
    zone: jiff::tz::TimeZone,
}

impl Answer {
    fn render(&self, payment: &Payment) -> String {
        let expire = payment
            .expire_at
            .map(|t| tolem_wire::time::format_merchant(t, &self.zone))
            .unwrap_or_default();
        let token = payment.qr_token.clone().unwrap_or_default();
        let json = if self.kind == Kind::Link {
            serde_json::to_string(&Envelope::ok(LinkCreated {
                payment_link: token,
                expire_date: expire,
                payment_id: payment.id.get(),
                payment_methods: self.methods.clone(),
                payment_behavior_options: PaymentBehaviorOptions {
                    status_polling_interval: self.polling_s,
                    link_activation_wait_timeout: self.wait_s,
                    payment_confirmation_timeout: self.confirmation_s,
                },
            }))
        } else {
            serde_json::to_string(&Envelope::ok(QrCreated {
                qr_token: token,
                expire_date: expire,
                qr_payment_id: payment.id.get(),
                payment_methods: self.methods.clone(),
                qr_payment_behavior_options: QrPaymentBehaviorOptions {
                    status_polling_interval: self.polling_s,
                    qr_code_scan_wait_timeout: self.wait_s,
                    payment_confirmation_timeout: self.confirmation_s,
                },
            }))
        };
        json.unwrap_or_default()
    }
}
