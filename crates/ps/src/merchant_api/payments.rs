//! Purchases made by the POS: `qr/create`, `qr/create-link`, `payment/status` (v01 and v02).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use jiff::SignedDuration;
use tolem_wire::merchant::{
    Envelope, LinkCreated, PaymentBehaviorOptions, PaymentStatus, PaymentStatusData,
    QrCreateRequest, QrCreated, QrPaymentBehaviorOptions, StatusCode,
};

use tolem_wire::{Param, Problem};

use super::{
    PosCall, PosError, PosResult, check_trade_point, device_of, early_replay, envelope, path_text,
    raw_json,
};
use crate::domain::{Kind, Status};
use crate::links::{QR_TOKEN_DIGITS, pay_link, random_digits, secret_token};
use crate::state::{App, AppState};
use crate::store::{NewPayment, PosReplay};

const EXTERNAL_ID_LEN_MAX: usize = 128;

pub async fn create_qr(State(app): State<AppState>, call: PosCall) -> PosResult {
    create(&app, &call, Kind::Dynamic).await
}

pub async fn create_link(State(app): State<AppState>, call: PosCall) -> PosResult {
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
    if req
        .externalid
        .as_ref()
        .is_some_and(|e| e.chars().count() > EXTERNAL_ID_LEN_MAX)
    {
        return Err(PosError::param(
            "ExternalId",
            Problem::TooLong(EXTERNAL_ID_LEN_MAX),
        ));
    }
    if let Some(first) = early_replay(app, call, &req.devicetoken).await? {
        return Ok(first);
    }
    let (device, point) = device_of(app, call, &req.devicetoken).await?;
    check_trade_point(&point)?;
    let methods = app.config.payments.payment_methods.clone();
    if methods.is_empty() {
        return Err(PosError::status(StatusCode::NoPaymentMethods));
    }
    let now = app.clock.now();
    let p = &app.config.payments;
    let wait_s = if kind == Kind::Link {
        p.link_activation_wait_s
    } else {
        p.qr_scan_wait_s
    };
    let expire_at = now
        .checked_add(SignedDuration::from_secs(i64::from(wait_s)))
        .ok();
    let digits = random_digits(QR_TOKEN_DIGITS);
    let token = match kind {
        Kind::Link => pay_link(&app.config.public_url, &digits),
        _ => digits,
    };
    let new = NewPayment {
        kind,
        trade_point_id: point.id,
        service_id: None,
        device_id: Some(device.id),
        external_id: req.externalid,
        qr_token: Some(token),
        amount: Some(req.amount),
        expire_at,
        receipt_token: secret_token(),
    };
    let replay = call.request_id.clone().map(|request_id| PosReplay {
        device_id: device.id,
        request_id,
        body_sha256: call.body_sha256(),
    });
    let options = (
        p.status_polling_interval_s,
        wait_s,
        app.config.payment_confirmation_timeout_s(),
    );
    let zone = app.zone.clone();
    let body = app
        .store
        .pos_create_payment(replay, new, now, move |payment| {
            let expire = payment
                .expire_at
                .map(|t| tolem_wire::time::format_merchant(t, &zone))
                .unwrap_or_default();
            let token = payment.qr_token.clone().unwrap_or_default();
            let json = if kind == Kind::Link {
                serde_json::to_string(&Envelope::ok(LinkCreated {
                    payment_link: token,
                    expire_date: expire,
                    payment_id: payment.id,
                    payment_methods: methods,
                    payment_behavior_options: PaymentBehaviorOptions {
                        status_polling_interval: options.0,
                        link_activation_wait_timeout: options.1,
                        payment_confirmation_timeout: options.2,
                    },
                }))
            } else {
                serde_json::to_string(&Envelope::ok(QrCreated {
                    qr_token: token,
                    expire_date: expire,
                    qr_payment_id: payment.id,
                    payment_methods: methods,
                    qr_payment_behavior_options: QrPaymentBehaviorOptions {
                        status_polling_interval: options.0,
                        qr_code_scan_wait_timeout: options.1,
                        payment_confirmation_timeout: options.2,
                    },
                }))
            };
            json.unwrap_or_default()
        })
        .await?;
    Ok(raw_json(body))
}

pub async fn status_v01(
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

pub async fn status_v02(
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
    let id: i64 = id.trim().parse().map_err(|_| not_found())?;
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
