//! Purchases made by the POS: `qr/create`, `qr/create-link` (checked here, made by
//! [`payments::create`]), `payment/status` (v01 and v02).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use tolem_wire::merchant::{
    Envelope, PaymentStatus, PaymentStatusData, QrCreateRequest, StatusCode,
};

use tolem_wire::{Param, Problem};

use super::{
    FirstLook, PosCall, PosError, PosResult, check_organization, check_trade_point, envelope,
    first_look, path_text, raw_json,
};
use crate::domain::{Kind, PaymentId, Status};
use crate::payments::{self, PosOrder};
use crate::state::{App, AppState};

const EXTERNAL_ID_LEN_MAX: usize = 128;

/// The POS's own reference of a QR (a purchase's or a return's), kept and shown back: at most
/// [`EXTERNAL_ID_LEN_MAX`] characters, none a control character (a line break or an escape is
/// no reference, and would reach the operator's screens and logs).
pub(super) fn check_external_id(external_id: Option<&str>) -> Result<(), PosError> {
    let Some(external_id) = external_id else {
        return Ok(());
    };
    if external_id.chars().count() > EXTERNAL_ID_LEN_MAX {
        return Err(PosError::param(
            "ExternalId",
            Problem::TooLong(EXTERNAL_ID_LEN_MAX),
        ));
    }
    if external_id.chars().any(char::is_control) {
        return Err(PosError::param("ExternalId", Problem::ControlCharacter));
    }
    Ok(())
}

pub(super) async fn create_qr(State(app): State<AppState>, call: PosCall) -> PosResult {
    create(&app, &call, Kind::Dynamic).await
}

pub(super) async fn create_link(State(app): State<AppState>, call: PosCall) -> PosResult {
    create(&app, &call, Kind::Link).await
}

async fn create(app: &AppState, call: &PosCall, kind: Kind) -> PosResult {
    let req: QrCreateRequest = call.parse()?;
    call.check_bin(req.organizationbin.as_deref())?;
    if req.amount.is_zero() {
        return Err(PosError::Param(
            StatusCode::InvalidAmount,
            Param::new("Amount", Problem::NotPositive),
        ));
    }
    check_external_id(req.externalid.as_deref())?;
    let (device, point) = match first_look(app, call, &req.devicetoken).await? {
        FirstLook::Repeat(first) => return Ok(first),
        FirstLook::Device(device, point) => (device, point),
    };
    check_trade_point(&point)?;
    check_organization(app, &point, false)?;
    if app.config.payments.payment_methods.is_empty() {
        return Err(PosError::status(StatusCode::NoPaymentMethods));
    }
    let order = PosOrder {
        kind,
        trade_point_id: point.id,
        device_id: device.id,
        external_id: req.externalid,
        amount: req.amount,
        replay: call.replay(device.id),
    };
    Ok(raw_json(payments::create(app, order).await?))
}

pub(super) async fn status_v01(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    call: PosCall,
) -> PosResult {
    let id = path_text(id)?;
    let data = status(&app, &call, &id).await?;
    let v01 = PaymentStatusData {
        status: data.status,
        transaction_id: None,
        amount: None,
        store_name: None,
        address: None,
        city: None,
        product_type: None,
    };
    Ok(envelope(HttpStatus::OK, &Envelope::ok(v01)))
}

pub(super) async fn status_v02(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    call: PosCall,
) -> PosResult {
    let id = path_text(id)?;
    let data = status(&app, &call, &id).await?;
    Ok(envelope(HttpStatus::OK, &Envelope::ok(data)))
}

/// A purchase of the caller's organization; another organization's is "not found" (DECISIONS 28).
async fn status(app: &App, call: &PosCall, id: &str) -> Result<PaymentStatusData, PosError> {
    let not_found = || PosError::status(StatusCode::PurchaseNotFound);
    let id: PaymentId = id.trim().parse().map_err(|_| not_found())?;
    let payment = app.store.payment(id).await?.ok_or_else(not_found)?;
    let catalog = app.catalog.get();
    let (point, org) = catalog
        .merchant(payment.trade_point_id)
        .ok_or_else(not_found)?;
    if !call.acts_for(&org.bin) {
        return Err(not_found());
    }
    let status = payment.effective_status(app.clock.now(), &app.policy);
    let processed = status == Status::Confirmed;
    let pos_status: PaymentStatus = status.pos_status();
    Ok(PaymentStatusData {
        status: pos_status,
        transaction_id: processed.then(|| payment.id.to_string()),
        amount: payment.amount,
        store_name: Some(point.name.clone()),
        address: Some(point.address.clone()),
        city: Some(point.city.clone()),
        product_type: None,
    })
}
