//! The sandbox's emulated MPP (merchant API `test/payment/{scan,confirm,scanerror,confirmerror}`,
//! DECISIONS 30): each step moves a purchase through the same rules a real MPP's scan and
//! notifyPayment do, in one transaction, and obeys the operator as they do (DECISIONS 19).

use tolem_wire::Problem;
use tolem_wire::mpp::ResultCode;

use crate::domain::payment::{Notify, NotifyDecision, Verdict};
use crate::domain::{Owner, PaymentId, Status};
use crate::state::App;
use crate::store::StoreResult;

/// What the emulated MPP does to a purchase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The buyer scans the QR.
    Scan,
    /// The scan fails: the purchase fails before it was scanned.
    ScanError,
    /// The MPP confirms the payment (notifyPayment SUCCESS).
    Confirm,
    /// The MPP reports a failure (notifyPayment PROCESS_FAIL).
    ConfirmError,
}

impl Step {
    /// The step a path segment names.
    pub fn parse(text: &str) -> Option<Step> {
        match text {
            "scan" => Some(Step::Scan),
            "scanerror" => Some(Step::ScanError),
            "confirm" => Some(Step::Confirm),
            "confirmerror" => Some(Step::ConfirmError),
            _ => None,
        }
    }
}

/// What a step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Emulated {
    Done,
    /// No purchase has that id.
    NotFound,
    /// The purchase is not where the step can start; nothing changed.
    Refused(Problem),
}

/// Applies `step` to purchase `payment_id` as `buyer` would.
pub async fn emulate(
    app: &App,
    payment_id: PaymentId,
    step: Step,
    buyer: Owner,
) -> StoreResult<Emulated> {
    let check = app.merchant_check();
    let now = app.clock.now();
    let policy = app.policy;
    app.store
        .transaction(move |tx| {
            let Some(mut p) = tx.payment(payment_id)? else {
                return Ok(Emulated::NotFound);
            };
            let state = check.state(p.trade_point_id);
            let stepped = match step {
                Step::Scan => state
                    .check()
                    .and_then(|()| p.scan(&buyer, now, &policy))
                    .map(|_| ())
                    .map_err(|c| Problem::MppApiAnswers(c.as_str())),
                Step::ScanError if p.effective_status(now, &policy) == Status::Created => {
                    p.finish(Status::Failed, now);
                    Ok(())
                }
                Step::ScanError => Err(Problem::NotInStatus("QrTokenCreated")),
                Step::Confirm | Step::ConfirmError => {
                    let verdict = if step == Step::Confirm {
                        Verdict::Success
                    } else {
                        Verdict::Failed("PROCESS_FAIL".into())
                    };
                    let cmd = Notify {
                        owner: buyer.clone(),
                        verdict,
                        mpp_payment_id: format!("sandbox-{}", p.id),
                        amount: None,
                    };
                    // Refused as a real MPP's notifyPayment would be, and said so: the status it
                    // needs, or the MPP API's answer (a suspended merchant's, say).
                    let unscanned = p.effective_status(now, &policy) == Status::Created;
                    match p.notify(&cmd, state, now, &policy) {
                        NotifyDecision::Apply(_) => Ok(()),
                        // Never scanned: the step it needs first is the scan, not "no order".
                        NotifyDecision::Reject(ResultCode::OrderNotExist) if unscanned => {
                            Err(Problem::NotInStatus("Wait"))
                        }
                        NotifyDecision::Repeat(_)
                        | NotifyDecision::Reject(ResultCode::PaymentIncorrectStatus) => {
                            Err(Problem::NotInStatus("Wait"))
                        }
                        NotifyDecision::Reject(code) | NotifyDecision::Expired(code) => {
                            Err(Problem::MppApiAnswers(code.as_str()))
                        }
                        NotifyDecision::BadAmount(problem) => Err(problem),
                    }
                }
            };
            match stepped {
                Ok(()) => {
                    tx.save_payment(&p, &policy)?;
                    Ok(Emulated::Done)
                }
                Err(why) => Ok(Emulated::Refused(why)),
            }
        })
        .await
}
