//! The sandbox emulators `test/payment/{scan,confirm,scanerror,confirmerror}` (DECISIONS 30):
//! they move a purchase through the same state machine a real MPP would, and exist only when the
//! PS runs in sandbox mode.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use axum::response::IntoResponse;
use tolem_wire::merchant::{EmulatorRequest, Envelope, ReturnEmulatorRequest, StatusCode};

use super::{PosCall, PosError, PosResult, envelope, path_text, unknown_method};
use crate::domain::payment::{Notify, NotifyDecision, Verdict};
use crate::domain::{MerchantState, Owner, Status};
use crate::state::AppState;

/// The buyer the emulators act as.
pub const SANDBOX_MPP: &str = "sandbox";
const SANDBOX_CUSTOMER: &str = "sandbox";

pub async fn payment_step(
    State(app): State<AppState>,
    step: Result<Path<String>, PathRejection>,
    call: PosCall,
) -> PosResult {
    if !app.config.sandbox {
        return Ok(unknown_method().into_response());
    }
    let step = path_text(step)?;
    let req: EmulatorRequest = call.parse()?;
    let payment = app.store.payment(req.qrpaymentid).await?;
    let catalog = app.catalog.get();
    let owned = payment
        .as_ref()
        .and_then(|p| catalog.merchant(p.trade_point_id))
        .is_some_and(|(_, org)| call.acts_for(&org.bin));
    if !owned {
        return Err(PosError::status(StatusCode::PaymentNotFound));
    }
    let now = app.clock.now();
    let policy = app.policy;
    // The emulators obey the operator like a real MPP's calls do (DECISIONS 19, 30).
    let state = payment.as_ref().map_or(MerchantState::Blocked, |p| {
        app.merchant_check().state(p.trade_point_id)
    });
    let owner = Owner {
        mpp: SANDBOX_MPP.to_owned(),
        customer_id: SANDBOX_CUSTOMER.to_owned(),
    };
    let step_fn = move |p: &mut crate::domain::Payment| -> Result<(), String> {
        match step.as_str() {
            "scan" => state
                .check()
                .and_then(|()| p.scan(&owner, now, &policy))
                .map(|_| ())
                .map_err(|c| c.as_str().to_owned()),
            "scanerror" if p.effective_status(now, &policy) == Status::Created => {
                p.finish(Status::Failed, now);
                Ok(())
            }
            "confirm" | "confirmerror" => {
                let verdict = if step == "confirm" {
                    Verdict::Success
                } else {
                    Verdict::Failed("PROCESS_FAIL".into())
                };
                let cmd = Notify {
                    owner,
                    verdict,
                    mpp_payment_id: format!("sandbox-{}", p.id),
                    amount: None,
                };
                match p.notify(&cmd, state, now, &policy) {
                    NotifyDecision::Apply(_) => Ok(()),
                    _ => Err("the purchase is not waiting for confirmation".to_owned()),
                }
            }
            "scanerror" => Err("the purchase is not waiting for a scan".to_owned()),
            _ => Err(format!("unknown step {step}")),
        }
    };
    match app.store.emulate(req.qrpaymentid, step_fn, policy).await? {
        Some(Ok(_)) => Ok(envelope(HttpStatus::OK, &Envelope::ok_empty())),
        Some(Err(why)) => Err(PosError::invalid(why)),
        None => Err(PosError::status(StatusCode::PaymentNotFound)),
    }
}

/// `test/return/scan` (DECISIONS 30): the sandbox customer scans a return QR, which moves it to
/// `CustomerIdentityObtained` as a real MPP's scan would. Purchases paid through the emulators
/// belong to that customer.
pub async fn return_scan(State(app): State<AppState>, call: PosCall) -> PosResult {
    if !app.config.sandbox {
        return Ok(unknown_method().into_response());
    }
    let req: ReturnEmulatorRequest = call.parse()?;
    let qr = app.store.refund(req.qrreturnid).await?;
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
        mpp: SANDBOX_MPP.to_owned(),
        customer_id: SANDBOX_CUSTOMER.to_owned(),
    };
    match crate::refunds::scan_return_qr(&app, token, owner, None).await? {
        Some(Ok(_)) => Ok(envelope(HttpStatus::OK, &Envelope::ok_empty())),
        Some(Err(code)) => Err(PosError::invalid(code.as_str())),
        None => Err(PosError::status(StatusCode::PurchaseNotFound)),
    }
}
