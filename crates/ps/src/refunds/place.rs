//! Placing a refund (DECISIONS 20–23, 27): the one transaction that checks an order against
//! the purchase, the refunds that already hold part of it and the return QR it names, makes or
//! fills the refund and queues its delivery; then the dispatcher is woken.

use tolem_wire::Amount;

use crate::domain::refund::{RefundOrder, Refusal, available, check_order};
use crate::domain::{PaymentId, Refund, RefundId, RefundStatus};
use crate::links::secret_token;
use crate::state::App;
use crate::store::{NewRefund, Replay, StoreResult};

/// Places a refund: checked against what is left of the purchase and queued for delivery in one
/// transaction, so concurrent requests can never refund more than was paid. `answer` renders what
/// the caller is told, stored with the refund for repeats of the same request (`replay`); a
/// repeat gets the stored answer and places nothing. A refusal leaves no trace. The dispatcher
/// is woken once the refund is committed, so it is delivered at once, not at its next look.
pub async fn place(
    app: &App,
    order: RefundOrder,
    replay: Option<Replay>,
    answer: fn(&Refund) -> String,
) -> StoreResult<Result<String, Refusal>> {
    let now = app.clock.now();
    let commission_mode = app.config.registers.refund_commission;
    let receipt_token = secret_token();
    let refunds_max = app.config.refunds.per_purchase_max;
    let placed = app
        .store
        .transaction(move |tx| {
            if let Some(first) = tx.replayed(&replay)? {
                return Ok(Ok((first, None)));
            }
            let Some(payment) = tx.payment(order.payment_id)? else {
                return Ok(Err(Refusal::PaymentNotFound));
            };
            let held = tx.held_amounts(payment.id)?;
            let refunds_so_far = held.len();
            let left = payment
                .amount
                .map_or(Amount::ZERO, |total| available(total, held.iter().copied()));
            let return_qr = order.return_qr.map(|id| tx.refund(id)).transpose()?;
            // Checked before anything is written: a refusal must leave no trace.
            let checked = check_order(
                &order,
                &payment,
                held,
                return_qr.as_ref().map(Option::as_ref),
                now,
            );
            let owner = match checked {
                Ok(owner) => owner,
                Err(refusal) => return Ok(Err(refusal)),
            };
            // After the order's own checks, so that what is wrong with an order is said first.
            // The bound keeps a purchase's refunds few: each is read by every later one, here.
            // An order for all that is left still goes through, so no purchase keeps money that
            // can never be refunded (after it nothing is left, unless the MPP refuses it).
            if refunds_so_far >= refunds_max && order.amount != left {
                return Ok(Err(Refusal::TooManyRefunds));
            }
            let mut refund = match return_qr.flatten() {
                Some(qr) => qr,
                None => tx.insert_refund(
                    &NewRefund {
                        kind: order.kind,
                        status: RefundStatus::Pending,
                        trade_point_id: payment.trade_point_id,
                        device_id: order.device_id,
                        qr: None,
                        receipt_token: receipt_token.clone(),
                        commission_mode,
                    },
                    now,
                )?,
            };
            let payment_locale = tx.payment_scan_locale(payment.id)?;
            refund.request(
                payment.id,
                owner,
                order.amount,
                order.pos_waits,
                payment_locale,
                now,
            );
            tx.save_refund(&refund)?;
            tx.queue_refund_delivery(&refund, now)?;
            let body = answer(&refund);
            tx.remember(&replay, &body, now)?;
            Ok(Ok((body, Some(refund))))
        })
        .await?;
    Ok(placed.map(|(body, placed)| {
        if let Some(refund) = placed {
            // The line that ties the POS's request (its span names the X-Request-ID) to the
            // refund the dispatcher delivers (its span names the refund_id).
            tracing::info!(
                refund_id = refund.id.get(),
                payment_id = refund.payment_id.map(|p| p.get()),
                mpp = refund.owner.as_ref().map(|o| o.mpp.as_str()),
                amount = %refund.amount.map_or_else(String::new, |a| a.to_string()),
                "refund placed"
            );
            app.refund_wake.notify_one();
        }
        body
    }))
}

/// What is left to refund of a purchase of `total`: its amount less what its pending and
/// completed refunds hold.
pub async fn refundable(app: &App, payment_id: PaymentId, total: Amount) -> StoreResult<Amount> {
    Ok(available(total, app.store.held_amounts(payment_id).await?))
}

/// The operator asks for an undelivered refund to be tried again now; the dispatcher is woken.
/// False when there is no undelivered refund with that id.
pub(crate) async fn retry_now(app: &App, refund_id: RefundId) -> StoreResult<bool> {
    let due = app
        .store
        .retry_refund_now(refund_id, app.clock.now())
        .await?;
    if due {
        app.refund_wake.notify_one();
    }
    Ok(due)
}
