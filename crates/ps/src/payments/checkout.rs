//! checkout (SPEC 4.2, DECISIONS 14): compute a Custom payment's amount and freeze it. The first
//! answer that took effect is stored and sent again, byte for byte, for every repeat. The amount
//! is computed outside any transaction (it may ask the service provider); the freeze is one
//! transaction that decides again on the purchase as it is then.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tolem_wire::mpp::{
    CUSTOMER_ID_LEN_MAX, CheckoutRequest, CheckoutResponse, PARAMETER_VALUE_LEN_MAX,
    ParameterValue, ResultBody, ResultCode,
};
use tolem_wire::{Amount, Param, Problem};

use super::{Caller, MppError, check_len, merchant_of, parse_payment_id};
use crate::catalog::{AmountRule, Service};
use crate::domain::ServiceId;
use crate::domain::payment::CheckoutCaller;
use crate::state::App;

/// The checkout answer as stored (a JSON body).
pub async fn checkout(
    app: &App,
    caller: &Caller,
    req: CheckoutRequest,
) -> Result<String, MppError> {
    let id = parse_payment_id(&req.payment_id, "paymentId")?;
    if let Some(customer_id) = &req.customer_id {
        check_len(customer_id, CUSTOMER_ID_LEN_MAX, "customerId")?;
    }
    let who = CheckoutCaller {
        mpp: caller.mpp.caller_name.clone(),
        customer_id: req.customer_id.clone(),
    };
    let now = app.clock.now();
    let Some(payment) = app.store.payment(id).await? else {
        return Err(ResultCode::OrderNotExist.into());
    };
    if let Some(stored) = payment.stored_checkout(&who) {
        return Ok(stored.to_owned());
    }
    payment
        .check_checkout(&who, now, &app.policy)
        .map_err(|code| MppError::refusing_checkout(code, caller.locale))?;
    let catalog = app.catalog.get();
    let service = payment
        .service_id
        .and_then(|s| catalog.services.get(&s))
        .cloned();
    let Some(service) = service else {
        return Err(ResultCode::ProcessFail.into());
    };
    if req.service_id != service.id.get() {
        return Err(MppError::param("serviceId"));
    }
    app.merchant_check().state(payment.trade_point_id).check()?;
    let values = checked_parameters(&service, &req.parameters)?;
    let amount = compute_amount(app, &service, &req.payment_id, &values).await?;
    let parameters = serde_json::to_string(&values).map_err(|_| MppError::param("parameters"))?;
    let merchant = merchant_of(&catalog, payment.trade_point_id);
    let zone = app.zone.clone();
    let policy = app.policy;
    // Decided again in the transaction: a concurrent checkout may have frozen it meanwhile. It
    // decides on this purchase alone and loads it locked, as scan and notifyPayment do.
    let frozen = app
        .store
        .staged_locking_transaction(move |tx| {
            let Some(mut payment) = tx.payment_to_change(id)? else {
                return Ok(Err(ResultCode::OrderNotExist));
            };
            if let Some(stored) = payment.stored_checkout(&who) {
                return Ok(Ok(stored.to_owned()));
            }
            if let Err(code) = payment.check_checkout(&who, now, &policy) {
                return Ok(Err(code));
            }
            payment.freeze_checkout(amount, parameters.clone(), String::new(), now, &policy);
            let response = CheckoutResponse {
                result: ResultBody::success(),
                payment_amount: payment.amount,
                can_confirm_until: payment
                    .confirm_until
                    .map(|at| tolem_wire::time::format_mpp(at, &zone)),
                merchant: merchant.clone(),
            };
            let response = serde_json::to_string(&response).unwrap_or_default();
            payment.checkout_response = Some(response.clone());
            tx.save_payment(&payment, &policy)?;
            Ok(Ok(response))
        })
        .await?;
    frozen.map_err(MppError::code)
}

/// A parameter as checkout accepted it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Filled {
    pub id: i64,
    pub value: String,
}

/// Every parameter of the service exactly once: pre-filled ones unchanged, the others filled,
/// options picked from their list (SPEC 4.2).
fn checked_parameters(service: &Service, sent: &[ParameterValue]) -> Result<Vec<Filled>, MppError> {
    let refused =
        |id: i64, problem| MppError::Param(Param::new(format!("parameters[id={id}]"), problem));
    let mut seen = HashSet::new();
    for p in sent {
        if !seen.insert(p.id) {
            return Err(refused(p.id, Problem::Duplicate));
        }
        if !service.parameters.iter().any(|s| s.id == p.id) {
            // Not a parameter of this service's form.
            return Err(refused(p.id, Problem::Invalid));
        }
    }
    let mut filled = Vec::with_capacity(service.parameters.len());
    for parameter in &service.parameters {
        let value = sent
            .iter()
            .find(|p| p.id == parameter.id)
            .and_then(|p| p.value.clone());
        let value = value.unwrap_or_default();
        if value.trim().is_empty() {
            return Err(refused(parameter.id, Problem::Missing));
        }
        if value.chars().count() > PARAMETER_VALUE_LEN_MAX {
            return Err(refused(
                parameter.id,
                Problem::TooLong(PARAMETER_VALUE_LEN_MAX),
            ));
        }
        let prefilled = parameter.value.as_deref().filter(|v| !v.is_empty());
        if prefilled.is_some_and(|v| v != value) {
            return Err(refused(parameter.id, Problem::Invalid));
        }
        // What the buyer typed is shown on the receipt and sent to the service: a tab or a line
        // break is no plate number. A value the PS filled in is taken as it is.
        if prefilled.is_none() && value.chars().any(char::is_control) {
            return Err(refused(parameter.id, Problem::ControlCharacter));
        }
        if !parameter.options.is_empty() && !parameter.options.iter().any(|o| o.key == value) {
            return Err(refused(parameter.id, Problem::Invalid));
        }
        filled.push(Filled {
            id: parameter.id,
            value,
        });
    }
    Ok(filled)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallbackRequest<'a> {
    service_id: ServiceId,
    payment_id: &'a str,
    parameters: &'a [Filled],
}

#[derive(Deserialize)]
struct CallbackAnswer {
    /// Read from its exact text (DECISIONS 3): `1.5e3` or `999.999` is no amount.
    #[serde(default, deserialize_with = "tolem_wire::amount::strict_json_opt")]
    amount: Option<Amount>,
    #[serde(default)]
    error: Option<String>,
}

async fn compute_amount(
    app: &App,
    service: &Service,
    payment_id: &str,
    values: &[Filled],
) -> Result<Amount, MppError> {
    let amount = match &service.amount {
        AmountRule::Fixed { amount } => *amount,
        AmountRule::PerOption {
            parameter_id,
            tariffs,
        } => {
            let key = values
                .iter()
                .find(|v| v.id == *parameter_id)
                .map(|v| v.value.as_str());
            // Every option has a tariff (checked when the catalog was loaded).
            *key.and_then(|k| tariffs.get(k))
                .ok_or_else(|| MppError::param("parameters"))?
        }
        AmountRule::Callback { url, timeout_ms } => {
            // A place among the service's calls in flight, or retry later: nothing is frozen.
            let slots = app
                .amount_callbacks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(service.id)
                .or_insert_with(|| {
                    std::sync::Arc::new(tokio::sync::Semaphore::new(
                        app.config.payments.amount_callbacks_max,
                    ))
                })
                .clone();
            let Ok(_slot) = slots.try_acquire_owned() else {
                if let Some(left_out) = sparse(app, url) {
                    tracing::warn!(service_id = %service.id, url = logged(url), left_out, "amount callbacks at their limit; told to retry");
                }
                return Err(MppError::Code {
                    code: ResultCode::UnknownException,
                    detail: Some("service provider".to_owned()),
                });
            };
            let timeout = app.config.payments.amount_callback_timeout(*timeout_ms);
            let body = CallbackRequest {
                service_id: service.id,
                payment_id,
                parameters: values,
            };
            callback_amount(app, url, timeout, &body).await?
        }
    };
    // An amount with tiyn is the PS's to set (DECISIONS 4): the MPP echoes it. Nothing is owed
    // for nothing, so a zero from the service's system is its refusal.
    if amount.is_zero() {
        return Err(ResultCode::ProcessFail.into());
    }
    Ok(amount)
}

/// A callback address as the log shows it: without its query, where a provider's key may be.
fn logged(url: &str) -> &str {
    url.split_once('?').map_or(url, |(address, _)| address)
}

/// Whether a failure of the callback at `url` is logged now, and how many of its lines were left
/// out since the last (`callback_failure_log`).
fn sparse(app: &App, url: &str) -> Option<u64> {
    app.metrics.callback_failure_log.due(url)
}

/// Asks the service provider's system. Its refusal is final (PROCESS_FAIL); a timeout or server
/// fault is not, so the MPP may retry (UNKNOWN_EXCEPTION) and nothing is stored.
async fn callback_amount(
    app: &App,
    url: &str,
    timeout: Duration,
    body: &CallbackRequest<'_>,
) -> Result<Amount, MppError> {
    let retry = || MppError::Code {
        code: ResultCode::UnknownException,
        detail: Some("service provider".to_owned()),
    };
    let response = app
        .http
        .post(url)
        .timeout(timeout)
        .json(body)
        .send()
        .await
        .map_err(|e| {
            // Said by kind (`TLS: invalid peer certificate: UnknownIssuer`, `connect: …`), so a
            // provider's certificate the PS does not trust is plain in the log.
            let failure = crate::outgoing::Failure::of_http(&e);
            app.metrics.amount_callback_failures.add(failure.kind);
            if let Some(left_out) = sparse(app, url) {
                tracing::warn!(error = %failure, kind = failure.kind.as_str(), url = logged(url), left_out, "amount callback failed");
            }
            retry()
        })?;
    let status = response.status();
    if !status.is_success() {
        // Counted whatever it means: a 404 at every checkout is an address that is wrong.
        app.metrics
            .amount_callback_failures
            .add(crate::outgoing::FailureKind::Http);
        let error = format!("HTTP {}", status.as_u16());
        if let Some(left_out) = sparse(app, url) {
            tracing::warn!(
                error,
                kind = "http",
                url = logged(url),
                left_out,
                "amount callback failed"
            );
        }
        // A server's fault, a redirect (the PS follows none: the answer comes from the URL
        // configured) or a gateway's "later" is not the provider's word: the MPP may retry.
        // Any other status is a refusal of this checkout.
        let not_its_word = status.is_server_error()
            || status.is_redirection()
            || matches!(status.as_u16(), 408 | 429);
        if not_its_word {
            return Err(retry());
        }
        return Err(ResultCode::ProcessFail.into());
    }
    let body = crate::outgoing::read_capped(response, CALLBACK_BODY_BYTES_MAX)
        .await
        .map_err(|failure| {
            app.metrics.amount_callback_failures.add(failure.kind);
            if let Some(left_out) = sparse(app, url) {
                tracing::warn!(error = %failure, kind = failure.kind.as_str(), url = logged(url), left_out, "amount callback failed");
            }
            retry()
        })?;
    let answer: CallbackAnswer = serde_json::from_slice(&body).map_err(|e| {
        app.metrics
            .amount_callback_failures
            .add(crate::outgoing::FailureKind::Answer);
        if let Some(left_out) = sparse(app, url) {
            tracing::warn!(error = %e, url = logged(url), left_out, "amount callback answer refused");
        }
        MppError::code(ResultCode::ProcessFail)
    })?;
    match (answer.amount, answer.error) {
        (Some(amount), None) => Ok(amount),
        _ => Err(ResultCode::ProcessFail.into()),
    }
}

/// Largest answer a service provider may send.
const CALLBACK_BODY_BYTES_MAX: usize = 16 * 1024;
