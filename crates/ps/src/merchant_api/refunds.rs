//! Refunds ("returns") from the POS: `return/create`, `return/status`, `return/operations` (r2),
//! `payment/details` and `payment/return` (r2 with a return QR, r3 without).
//!
//! Thin handlers over the refunds use case ([`crate::refunds`]): they parse, check who calls,
//! call it and render. `payment/return` has the refund placed with its delivery queued, then
//! waits for the MPP's answer up to `refunds.pos_wait_ms` (DECISIONS 39) outside any
//! transaction; see [`crate::refunds::hear_mpp`].

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use tolem_wire::merchant::{
    Envelope, PaymentDetails, PaymentQuery, PaymentReturnRequest, QrReturnBehaviorOptions,
    ReturnCreateRequest, ReturnCreated, ReturnOperation, ReturnOperationId,
    ReturnOperationsRequest, ReturnStatusData, StatusCode, from_value_any_case,
};
use tolem_wire::{Param, Problem};

use super::{
    FirstLook, PosCall, PosError, PosResult, Scheme, check_organization, check_trade_point,
    checked_device, device_and_answer, device_of, envelope, first_look, path_text, raw_json,
};
use crate::domain::refund::{RefundOrder, Refusal, Told};
use crate::domain::{PaymentId, Refund, RefundId, RefundKind, Status};
use crate::links::qr_digits;
use crate::refunds::{self, ReturnQrOrder};
use crate::state::{App, AppState};

/// Most purchases `return/operations` lists (MERCHANT-API.md §4.9).
const OPERATIONS_MAX: i64 = 10;

pub(super) async fn create(State(app): State<AppState>, call: PosCall) -> PosResult {
    let req: ReturnCreateRequest = call.parse()?;
    call.check_bin(req.organizationbin.as_deref())?;
    super::payments::check_external_id(req.externalid.as_deref())?;
    let (device, point) = match first_look(&app, &call, &req.devicetoken).await? {
        FirstLook::Repeat(first) => return Ok(first),
        FirstLook::Device(device, point) => (device, point),
    };
    if !point.active {
        return Err(PosError::status(StatusCode::TradePointDisabled));
    }
    check_organization(&app, &point, true)?;
    let order = ReturnQrOrder {
        trade_point_id: point.id,
        device_id: device.id,
        external_id: req.externalid,
        qr_token: qr_digits(),
    };
    let replay = call.replay(device.id);
    let r = &app.config.refunds;
    let (wait_s, polling) = (r.return_qr_scan_wait_s, r.return_polling_interval_s);
    let zone = app.zone.clone();
    let body = refunds::create_return_qr(&app, order, replay, move |qr| {
        let created = ReturnCreated {
            qr_token: qr.qr_token.clone().unwrap_or_default(),
            expire_date: qr
                .expire_at
                .map(|t| tolem_wire::time::format_merchant(t, &zone))
                .unwrap_or_default(),
            qr_return_id: qr.id.get(),
            qr_return_behavior_options: QrReturnBehaviorOptions {
                qr_code_scan_event_polling_interval: polling,
                qr_code_scan_wait_timeout: wait_s,
            },
        };
        serde_json::to_string(&Envelope::ok(created)).unwrap_or_default()
    })
    .await?;
    Ok(raw_json(body))
}

/// A return QR of the caller's organization; anything else is "not found".
async fn own_return_qr(app: &App, call: &PosCall, id: RefundId) -> Result<Refund, PosError> {
    let not_found = || PosError::status(StatusCode::PurchaseNotFound);
    let qr = app
        .store
        .refund(id)
        .await?
        .filter(|r| r.kind == RefundKind::Qr)
        .ok_or_else(not_found)?;
    let catalog = app.catalog.get();
    match catalog.merchant(qr.trade_point_id) {
        Some((_, org)) if call.acts_for(&org.bin) => Ok(qr),
        _ => Err(not_found()),
    }
}

pub(super) async fn status(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    call: PosCall,
) -> PosResult {
    let id: RefundId = path_text(id)?
        .trim()
        .parse()
        .map_err(|_| PosError::status(StatusCode::PurchaseNotFound))?;
    let qr = own_return_qr(&app, &call, id).await?;
    let data = ReturnStatusData {
        status: qr.pos_status(app.clock.now()),
    };
    Ok(envelope(HttpStatus::OK, &Envelope::ok(data)))
}

pub(super) async fn operations(State(app): State<AppState>, call: PosCall) -> PosResult {
    let req: ReturnOperationsRequest = call.parse()?;
    let (_, point) = device_of(&app, &call, &req.devicetoken).await?;
    let max = req.maxresult.unwrap_or(OPERATIONS_MAX);
    if !(1..=OPERATIONS_MAX).contains(&max) {
        return Err(PosError::param("MaxResult", Problem::Expected("1–10")));
    }
    let qr = own_return_qr(&app, &call, RefundId::new(req.qrreturnid)).await?;
    if qr.trade_point_id != point.id {
        return Err(PosError::status(StatusCode::PurchaseNotFound));
    }
    // Not scanned yet, used, or past its window: no refund can follow, so no list either, and
    // the cashier hears why, as `payment/return` would say it.
    let usable = qr.usable_for_return(app.clock.now(), app.config.refunds.return_qr_use_window());
    let (Some(owner), true) = (qr.owner.clone(), usable) else {
        return Err(PosError::param("QrReturnId", Problem::ReturnQrNotUsable));
    };
    let limit = usize::try_from(max).unwrap_or(10);
    let purchases = app.store.customer_purchases(owner, point.id, limit).await?;
    let list: Vec<ReturnOperation> = purchases
        .into_iter()
        .filter_map(|p| {
            Some(ReturnOperation {
                qr_payment_id: p.id.get(),
                amount: p.amount?,
                transaction_date: app.format_merchant_date(p.finished_at.unwrap_or(p.created_at)),
            })
        })
        .collect();
    Ok(envelope(HttpStatus::OK, &Envelope::ok(list)))
}

pub(super) async fn details(State(app): State<AppState>, call: PosCall) -> PosResult {
    let pairs = form_urlencoded::parse(call.query.as_deref().unwrap_or_default().as_bytes());
    // A parameter given twice, in any case, is refused as a body's repeated key is (DECISIONS
    // 44): neither value is chosen silently.
    let mut map = serde_json::Map::new();
    for (key, value) in pairs {
        let lower = key.to_lowercase();
        if map.contains_key(&lower) {
            return Err(PosError::param(
                &tolem_wire::merchant::documented_name(&lower),
                Problem::Duplicate,
            ));
        }
        map.insert(lower, serde_json::Value::String(value.into_owned()));
    }
    let query: PaymentQuery = from_value_any_case(serde_json::Value::Object(map))
        // DeviceToken takes any text: what fails to read is the id.
        .map_err(|_| PosError::param("QrPaymentId", Problem::WrongType))?;
    let Some(id) = query.qrpaymentid.map(PaymentId::new) else {
        return Err(PosError::param("QrPaymentId", Problem::Missing));
    };
    let Some(token) = query.devicetoken else {
        return Err(PosError::param("DeviceToken", Problem::Missing));
    };
    // The purchase must be of the device's organization: the one the call acts for, or with a
    // certificate of several organizations the one among them the device names.
    let (device, _) = device_of(&app, &call, &token).await?;
    let not_found = || PosError::status(StatusCode::PurchaseNotFound);
    let payment = app.store.payment(id).await?.ok_or_else(not_found)?;
    let catalog = app.catalog.get();
    if catalog
        .merchant(payment.trade_point_id)
        .is_none_or(|(_, org)| org.bin != device.organization_bin)
    {
        return Err(not_found());
    }
    let total = payment.amount.unwrap_or_default();
    let confirmed = payment.status == Status::Confirmed;
    let available = if confirmed {
        refunds::refundable(&app, payment.id, total).await?
    } else {
        Default::default()
    };
    let data = PaymentDetails {
        qr_payment_id: payment.id.get(),
        total_amount: total,
        available_return_amount: available,
        transaction_date: app
            .format_merchant_date(payment.finished_at.unwrap_or(payment.created_at)),
    };
    Ok(envelope(HttpStatus::OK, &Envelope::ok(data)))
}

pub(super) async fn refund(State(app): State<AppState>, call: PosCall) -> PosResult {
    let req: PaymentReturnRequest = call.parse()?;
    call.check_bin(req.organizationbin.as_deref())?;
    if call.scheme == Scheme::R2 && req.qrreturnid.is_none() {
        // r2 is the refund with the customer: the return QR the customer scanned says who.
        return Err(PosError::param("QrReturnId", Problem::Missing));
    }
    let (device, first) = device_and_answer(&app, &call, &req.devicetoken).await?;
    if let Some(first) = first {
        // A repeat is told what the first request was told, or will be (DECISIONS 29, 39).
        return hear_mpp(&app, first).await;
    }
    if req.amount.is_zero() {
        return Err(PosError::Param(
            StatusCode::InvalidAmount,
            Param::new("Amount", Problem::NotPositive),
        ));
    }
    let (device, point) = checked_device(&app, &call, device)?;
    check_trade_point(&point).or_else(|e| match e {
        // A trade point that stopped taking QR payments still gives money back.
        PosError::Status(StatusCode::TradePointNoQr, _) => Ok(()),
        other => Err(other),
    })?;
    check_organization(&app, &point, true)?;
    // Another organization's purchase is "not found", never "at another trade point".
    let payment_id = PaymentId::new(req.qrpaymentid);
    let payment = app.store.payment(payment_id).await?;
    let catalog = app.catalog.get();
    let own = payment
        .and_then(|p| catalog.merchant(p.trade_point_id))
        .is_some_and(|(_, org)| call.acts_for(&org.bin));
    if !own {
        return Err(refusal(Refusal::PaymentNotFound));
    }
    let order = RefundOrder {
        kind: if req.qrreturnid.is_some() {
            RefundKind::Qr
        } else {
            RefundKind::Direct
        },
        payment_id,
        trade_point_id: Some(point.id),
        device_id: Some(device.id),
        return_qr: req.qrreturnid.map(RefundId::new),
        amount: req.amount,
        use_window: app.config.refunds.return_qr_use_window(),
        pos_waits: app.config.refunds.pos_wait_ms > 0,
    };
    let pos_waits = order.pos_waits;
    let replay = call.replay(device.id);
    let placed = refunds::place(&app, order, replay, |refund| {
        let data = ReturnOperationId {
            return_operation_id: refund.id.get(),
        };
        serde_json::to_string(&Envelope::ok(data)).unwrap_or_default()
    })
    .await?
    .map_err(refusal)?;
    if !pos_waits {
        return Ok(raw_json(placed));
    }
    // `placed` may also be a concurrent twin's answer, found in the same transaction.
    hear_mpp(&app, placed).await
}

/// The answer to `payment/return` once the MPP has answered or the wait is over (DECISIONS 39).
/// `placed` is the success answer stored with the refund: it stands unless the MPP refused the
/// refund finally while the POS waited, and then the POS hears `-99000006` naming the MPP's
/// answer, the amount being refundable again.
async fn hear_mpp(app: &App, placed: String) -> PosResult {
    let Some(refund_id) = placed_refund(&placed) else {
        return Ok(raw_json(placed));
    };
    match refunds::hear_mpp(app, refund_id).await? {
        Told::Refused { mpp_result } => Err(PosError::MppRefused(mpp_result)),
        Told::Accepted => Ok(raw_json(placed)),
    }
}

/// The refund a stored `payment/return` success answer names (`refund` above made it).
fn placed_refund(answer: &str) -> Option<RefundId> {
    let envelope: serde_json::Value = serde_json::from_str(answer).ok()?;
    if envelope["StatusCode"] != 0 {
        return None;
    }
    envelope["Data"]["ReturnOperationId"]
        .as_i64()
        .map(RefundId::new)
}

/// The merchant API's codes for a refused refund (MERCHANT-API.md §4.11).
pub(super) fn refusal(refusal: Refusal) -> PosError {
    match refusal {
        Refusal::PaymentNotFound => PosError::status(StatusCode::PaymentNotFound),
        Refusal::TradePointMismatch => PosError::status(StatusCode::TradePointMismatch),
        Refusal::NotRefundable => PosError::status(StatusCode::ReturnWrongStatus),
        // What is left, named as `payment/details` names it, so that the POS can offer it.
        Refusal::AmountExceeded { left } => PosError::Status(
            StatusCode::ReturnAmountExceeded,
            Some(format!("AvailableReturnAmount {left}")),
        ),
        // No further part of the purchase can be returned: it has as many refunds as one may.
        Refusal::TooManyRefunds => PosError::status(StatusCode::PartialReturnImpossible),
        Refusal::ReturnQrNotUsable => PosError::param("QrReturnId", Problem::ReturnQrNotUsable),
    }
}

impl App {
    pub(crate) fn format_merchant_date(&self, at: jiff::Timestamp) -> String {
        tolem_wire::time::format_merchant(at, &self.zone)
    }
}
