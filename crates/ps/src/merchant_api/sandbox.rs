//! The sandbox emulators `test/payment/{scan,confirm,scanerror,confirmerror}` (DECISIONS 30):
//! they move a purchase through the same state machine a real MPP would, and exist only when the
//! PS runs in sandbox mode. The steps themselves are [`payments::emulate`]'s.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as HttpStatus};
use axum::response::IntoResponse;
use tolem_wire::Problem;
use tolem_wire::merchant::{EmulatorRequest, Envelope, ReturnEmulatorRequest, StatusCode};

use super::{PosCall, PosError, PosResult, envelope, path_text, unknown_method};
use crate::domain::{CallerName, Owner, PaymentId, RefundId};
use crate::payments::{self, Emulated, Step};
use crate::state::AppState;

pub(crate) use crate::catalog::SANDBOX_MPP;
const SANDBOX_CUSTOMER: &str = "sandbox";

pub(super) async fn payment_step(
    State(app): State<AppState>,
    step: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    call: PosCall,
) -> PosResult {
    if !app.config.sandbox {
        return Ok(unknown_method(&headers).into_response());
    }
    let step = path_text(step)?;
    let req: EmulatorRequest = call.parse()?;
    call.check_named_bin(req.organizationbin.as_deref())?;
    let id = PaymentId::new(req.qrpaymentid);
    let payment = app.store.payment(id).await?;
    let catalog = app.catalog.get();
    let owned = payment
        .as_ref()
        .and_then(|p| catalog.merchant(p.trade_point_id))
        .is_some_and(|(_, org)| call.acts_for(&org.bin));
    if !owned {
        return Err(PosError::status(StatusCode::PaymentNotFound));
    }
    let step = Step::parse(&step).ok_or_else(|| {
        PosError::param(
            "step",
            Problem::Expected("scan | confirm | scanerror | confirmerror"),
        )
    })?;
    let buyer = Owner {
        mpp: CallerName::from(SANDBOX_MPP),
        customer_id: SANDBOX_CUSTOMER.to_owned(),
    };
    match payments::emulate(&app, id, step, buyer).await? {
        Emulated::Done => Ok(envelope(HttpStatus::OK, &Envelope::ok_empty())),
        Emulated::Refused(why) => Err(PosError::param("QrPaymentId", why)),
        Emulated::NotFound => Err(PosError::status(StatusCode::PaymentNotFound)),
    }
}

/// `test/return/scan` (DECISIONS 30): the sandbox customer scans a return QR, which moves it to
/// `CustomerIdentityObtained` as a real MPP's scan would. Purchases paid through the emulators
/// belong to that customer.
pub(super) async fn return_scan(
    State(app): State<AppState>,
    headers: HeaderMap,
    call: PosCall,
) -> PosResult {
    if !app.config.sandbox {
        return Ok(unknown_method(&headers).into_response());
    }
    let req: ReturnEmulatorRequest = call.parse()?;
    call.check_named_bin(req.organizationbin.as_deref())?;
    let qr = app.store.refund(RefundId::new(req.qrreturnid)).await?;
    let catalog = app.catalog.get();
    let token = qr
        .filter(|q| {
            catalog
                .merchant(q.trade_point_id)
                .is_some_and(|(_, org)| call.acts_for(&org.bin))
        })
        .and_then(|q| q.qr_token)
        .ok_or(PosError::status(StatusCode::PurchaseNotFound))?;
    let owner = Owner {
        mpp: CallerName::from(SANDBOX_MPP),
        customer_id: SANDBOX_CUSTOMER.to_owned(),
    };
    match crate::refunds::scan_return_qr(&app, token, owner, None).await? {
        Some(Ok(_)) => Ok(envelope(HttpStatus::OK, &Envelope::ok_empty())),
        Some(Err(code)) => Err(PosError::param(
            "QrReturnId",
            Problem::MppApiAnswers(code.as_str()),
        )),
        None => Err(PosError::status(StatusCode::PurchaseNotFound)),
    }
}
