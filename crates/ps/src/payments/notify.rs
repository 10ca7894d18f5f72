//! notifyPayment (SPEC 4.3, DECISIONS 14–18): the MPP's verdict on a purchase. The first answer
//! that took effect is stored with the purchase and sent again, byte for byte, for every repeat.
//! One transaction loads the purchase, lets the rules decide, and stores the answer it renders.

use tolem_wire::mpp::{
    CUSTOMER_ID_LEN_MAX, MPP_PAYMENT_ID_LEN_MAX, NotifyPaymentRequest, NotifyPaymentResponse,
    RESULT_CODE_LEN_MAX, RESULT_MESSAGE_LEN_MAX, ResultBody, ResultCode,
};

use tolem_wire::{Param, Problem};

use super::{Caller, MppError, check_len, parse_payment_id};
use crate::domain::Owner;
use crate::domain::payment::{Notify, NotifyDecision, Verdict};
use crate::links::receipt_link;
use crate::state::App;

/// The answer body to send.
pub async fn notify(
    app: &App,
    caller: &Caller,
    req: NotifyPaymentRequest,
) -> Result<String, MppError> {
    check_len(
        &req.result.result_code,
        RESULT_CODE_LEN_MAX,
        "result.resultCode",
    )?;
    if req.result.result_message.chars().count() > RESULT_MESSAGE_LEN_MAX {
        return Err(MppError::Param(Param::new(
            "result.resultMessage",
            Problem::TooLong(RESULT_MESSAGE_LEN_MAX),
        )));
    }
    check_len(
        &req.payment.mpp_payment_id,
        MPP_PAYMENT_ID_LEN_MAX,
        "payment.mppPaymentId",
    )?;
    // DECISIONS 6 takes the customer at the top or in `payment`; named in both, the two must
    // agree, or the PS would record one of two customers at random.
    if let (Some(top), Some(inner)) = (&req.customer_id, &req.payment.customer_id)
        && top != inner
    {
        return Err(MppError::Param(Param::new(
            "payment.customerId",
            Problem::DiffersFrom("customerId"),
        )));
    }
    let customer_id = req
        .customer_id
        .or(req.payment.customer_id)
        .ok_or_else(|| MppError::Param(Param::new("customerId", Problem::Missing)))?;
    check_len(&customer_id, CUSTOMER_ID_LEN_MAX, "customerId")?;
    let id = parse_payment_id(&req.payment.payment_id, "payment.paymentId")?;
    let cmd = Notify {
        owner: Owner {
            mpp: caller.mpp.caller_name.clone(),
            customer_id,
        },
        verdict: Verdict::from_code(&req.result.result_code),
        mpp_payment_id: req.payment.mpp_payment_id,
        amount: req.payment.payment_amount,
    };
    let check = app.merchant_check();
    let public_url = app.config.public_url.clone();
    let locale = caller.locale;
    let now = app.clock.now();
    let policy = app.policy;
    let decided = app
        .store
        // The decision reads and changes this purchase alone, which the load locks.
        .staged_locking_transaction(move |tx| {
            // A notify that confirms the purchase fixes the commission of the caller, who must
            // be the purchase's MPP: that read goes out with the purchase's load.
            tx.prefetch_commission_rates(&cmd.owner.mpp)?;
            let Some(mut payment) = tx.payment_to_change(id)? else {
                return Ok(Err(MppError::code(ResultCode::OrderNotExist)));
            };
            let state = check.state(payment.trade_point_id);
            match payment.notify(&cmd, state, now, &policy) {
                NotifyDecision::Repeat(body) => Ok(Ok((body, payment.unlike_the_first(&cmd)))),
                NotifyDecision::Reject(code) => Ok(Err(MppError::code(code))),
                NotifyDecision::BadAmount(problem) => Ok(Err(MppError::Param(Param::new(
                    "payment.paymentAmount",
                    problem,
                )))),
                NotifyDecision::Expired(code) => {
                    tx.save_payment(&payment, &policy)?;
                    Ok(Err(MppError::code(code)))
                }
                NotifyDecision::Apply(code) => {
                    let body = answer(code, locale, &public_url, &payment.receipt_token);
                    payment.notify_response = Some(body.clone());
                    tx.save_payment(&payment, &policy)?;
                    Ok(Ok((body, Vec::new())))
                }
            }
        })
        .await??;
    let (body, unlike) = decided;
    if !unlike.is_empty() {
        repeat_unlike_the_first(&caller.mpp.caller_name, id, &unlike);
    }
    Ok(body)
}

/// Says a repeat of notifyPayment that differs from the one that took effect, at most once a
/// second for all MPPs together: the MPP may have debited its customer twice, and its answer
/// (the first, DECISIONS 18) does not tell it.
fn repeat_unlike_the_first(
    mpp: &crate::domain::CallerName,
    payment_id: crate::domain::PaymentId,
    unlike: &[&str],
) {
    static LOG: crate::log_sparse::SharedSparse = crate::log_sparse::SharedSparse::new();
    if let Some(left_out) = LOG.due() {
        tracing::warn!(
            %mpp,
            payment_id = payment_id.get(),
            differs = %unlike.join(", "),
            left_out,
            "a repeat of notifyPayment differs from the one that took effect; it got the first \
             answer and changed nothing: the MPP may have debited its customer twice"
        );
    }
}

/// The answer to a notifyPayment that took effect with `code`: a success carries the receipt
/// link. Stored with the purchase and sent again, byte for byte, for every repeat.
pub(crate) fn answer(
    code: ResultCode,
    locale: tolem_wire::Locale,
    public_url: &str,
    receipt_token: &str,
) -> String {
    let response = NotifyPaymentResponse {
        result: ResultBody::of(code, locale),
        link_receipt: (code == ResultCode::Success)
            .then(|| receipt_link(public_url, receipt_token)),
    };
    serde_json::to_string(&response).unwrap_or_default()
}
