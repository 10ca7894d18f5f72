//! The MPP kit. [`MppClient`] is a client of a Tolem PS: typed calls of the MPP API v1 with the headers of SPEC 1.7,
//! one `X-Request-ID` per logical request (reused on its retries), timeouts, and notifyPayment
//! retried with capped exponential backoff and jitter until the PS answers (SPEC 4.3).
//! [`refund`] is the MPP's `/refund` endpoint, applying each refund exactly once.
//!
//! ```no_run
//! use tolem_sdk::{MppClient, RetryPolicy};
//! use tolem_wire::Locale;
//! use tolem_wire::mpp::{NotifyPayment, NotifyPaymentRequest, ResultBody, ScanRequest};
//!
//! # async fn pay() -> Result<(), tolem_sdk::SdkError> {
//! let ps = MppClient::new("http://127.0.0.1:8080", "demobank")?;
//! let scan = ps
//!     .scan(&ScanRequest { qr_code: "TOLEM-STATIC-CAFE-1001".into(), customer_id: "C1".into() }, Locale::Ru)
//!     .await?;
//! let payment_id = scan.payment.expect("a payment on SUCCESS").payment_id;
//! // ... debit the buyer, then tell the PS; this retries until the PS answers.
//! let answer = ps
//!     .notify_payment(
//!         &NotifyPaymentRequest {
//!             result: ResultBody::success(),
//!             payment: NotifyPayment {
//!                 payment_id,
//!                 mpp_payment_id: "M-1".into(),
//!                 payment_amount: tolem_wire::Amount::from_tenge(500),
//!                 customer_id: None,
//!             },
//!             customer_id: Some("C1".into()),
//!         },
//!         Locale::Ru,
//!         &RetryPolicy::default(),
//!     )
//!     .await?;
//! println!("receipt: {:?}", answer.link_receipt);
//! # Ok(()) }
//! ```

pub mod pending;
pub mod refund;

/// The SQLite driver the [`refund`] endpoint works with, so an MPP uses the same version.
pub use rusqlite;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tolem_wire::Locale;
use tolem_wire::mpp::{
    self, CheckoutRequest, CheckoutResponse, NotifyPaymentRequest, NotifyPaymentResponse,
    ResultBody, ResultCode, ResultOnly, ScanRequest, ScanResponse,
};

/// Why a call did not succeed — and whether repeating it (with the same X-Request-ID) can help.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// No answer (connection refused, timeout, broken response): retry.
    #[error("no answer from the PS: {0}")]
    Transport(String),
    /// The PS answered that it cannot take the request now (`UNKNOWN_EXCEPTION`, HTTP 5xx): retry.
    #[error("the PS is busy: {}: {}", .0.result_code, .0.result_message)]
    Busy(ResultBody),
    /// The PS answered with a final code other than SUCCESS: do not retry.
    #[error("the PS answered {}: {}", .0.result_code, .0.result_message)]
    Refused(ResultBody),
    /// The client was built with a bad base URL or similar.
    #[error("client setup: {0}")]
    Setup(String),
}

impl SdkError {
    /// True when repeating the same request (same X-Request-ID) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SdkError::Transport(_) | SdkError::Busy(_))
    }

    /// The PS's result code, when it answered.
    pub fn result_code(&self) -> Option<ResultCode> {
        match self {
            SdkError::Busy(result) | SdkError::Refused(result) => result.code(),
            _ => None,
        }
    }

    /// A PS answer that is not SUCCESS, sorted by whether it is worth repeating.
    fn answered(result: ResultBody) -> SdkError {
        if result.code().is_some_and(ResultCode::is_retryable) {
            SdkError::Busy(result)
        } else {
            SdkError::Refused(result)
        }
    }
}

/// How notifyPayment is retried: delays grow from `delay_ms_initial` by doubling up to
/// `delay_ms_max`, each with up to 50 % random jitter; `attempts_max` bounds the attempts
/// (`None`: until answered, as SPEC 4.3 asks).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub delay_ms_initial: u64,
    pub delay_ms_max: u64,
    pub attempts_max: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            delay_ms_initial: 200,
            delay_ms_max: 10_000,
            attempts_max: None,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .delay_ms_initial
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.delay_ms_max);
        let jitter = rand::random_range(0..=capped / 2);
        Duration::from_millis(capped / 2 + jitter)
    }
}

/// A client of one PS, calling as one MPP.
#[derive(Clone, Debug)]
pub struct MppClient {
    http: reqwest::Client,
    base_url: String,
    caller_name: String,
}

/// Timeout of one HTTP attempt.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

impl MppClient {
    pub fn new(base_url: &str, caller_name: &str) -> Result<MppClient, SdkError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .build()
            .map_err(|e| SdkError::Setup(e.to_string()))?;
        Ok(MppClient::with_http(http, base_url, caller_name))
    }

    pub fn with_http(http: reqwest::Client, base_url: &str, caller_name: &str) -> MppClient {
        MppClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            caller_name: caller_name.to_owned(),
        }
    }

    pub fn caller_name(&self) -> &str {
        &self.caller_name
    }

    /// scan (SPEC 4.1). One attempt; on a retryable error call again.
    pub async fn scan(&self, req: &ScanRequest, locale: Locale) -> Result<ScanResponse, SdkError> {
        let body: ScanResponse = self
            .post(mpp::SCAN_PATH, &new_request_id(), req, locale)
            .await?;
        success(body.result.clone()).map(|()| body)
    }

    /// checkout (SPEC 4.2). One attempt; repeats are safe (the PS answers them identically).
    pub async fn checkout(
        &self,
        req: &CheckoutRequest,
        locale: Locale,
    ) -> Result<CheckoutResponse, SdkError> {
        let body: CheckoutResponse = self
            .post(mpp::CHECKOUT_PATH, &new_request_id(), req, locale)
            .await?;
        success(body.result.clone()).map(|()| body)
    }

    /// notifyPayment (SPEC 4.3), retried under `retry` with one X-Request-ID until the PS
    /// answers with a final result. `Ok` carries the PS's answer whatever its code: SUCCESS
    /// confirms the payment; CANCELLED_BY_CLIENT, RISK_REJECT or PROCESS_FAIL record the verdict;
    /// other codes are the PS's refusals.
    pub async fn notify_payment(
        &self,
        req: &NotifyPaymentRequest,
        locale: Locale,
        retry: &RetryPolicy,
    ) -> Result<NotifyPaymentResponse, SdkError> {
        self.notify_payment_with_id(req, locale, retry, &new_request_id())
            .await
    }

    /// [`MppClient::notify_payment`] with the caller's X-Request-ID (1–64 characters), for an MPP
    /// that keeps it with the payment so that retries after its own restart reuse it too.
    pub async fn notify_payment_with_id(
        &self,
        req: &NotifyPaymentRequest,
        locale: Locale,
        retry: &RetryPolicy,
        request_id: &str,
    ) -> Result<NotifyPaymentResponse, SdkError> {
        let mut attempt = 1;
        loop {
            let outcome: Result<NotifyPaymentResponse, SdkError> = self
                .post(mpp::NOTIFY_PAYMENT_PATH, request_id, req, locale)
                .await;
            let retryable = match &outcome {
                Ok(answer) => answer.result.code().is_some_and(ResultCode::is_retryable),
                Err(e) => e.is_retryable(),
            };
            if !retryable || retry.attempts_max.is_some_and(|max| attempt >= max) {
                return outcome;
            }
            tracing::debug!(attempt, request_id, "notifyPayment not answered; retrying");
            tokio::time::sleep(retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request_id: &str,
        body: &Req,
        locale: Locale,
    ) -> Result<Resp, SdkError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(mpp::HEADER_REQUEST_ID, request_id)
            .header(mpp::HEADER_CALLER_NAME, &self.caller_name)
            .header(mpp::HEADER_LOCALE, locale.header_value())
            .json(body)
            .send()
            .await
            .map_err(|e| SdkError::Transport(e.to_string()))?;
        let status = response.status();
        let bytes = read_capped(response).await?;
        if status.is_server_error() {
            let result = serde_json::from_slice::<ResultOnly>(&bytes).map(|r| r.result);
            return Err(match result {
                Ok(result) => SdkError::answered(result),
                Err(_) => SdkError::Transport(format!("HTTP {status}")),
            });
        }
        match serde_json::from_slice::<Resp>(&bytes) {
            Ok(body) => Ok(body),
            // An error answer carries `result` alone.
            Err(_) => match serde_json::from_slice::<ResultOnly>(&bytes) {
                Ok(only) => Err(SdkError::answered(only.result)),
                Err(e) => Err(SdkError::Transport(format!(
                    "unreadable answer (HTTP {status}): {e}"
                ))),
            },
        }
    }
}

fn success(result: ResultBody) -> Result<(), SdkError> {
    match result.code() {
        Some(ResultCode::Success) => Ok(()),
        _ => Err(SdkError::answered(result)),
    }
}

/// Largest answer the client reads from the PS.
pub const ANSWER_BYTES_MAX: usize = 1024 * 1024;

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, SdkError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| SdkError::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > ANSWER_BYTES_MAX {
            return Err(SdkError::Transport(format!(
                "an answer larger than {ANSWER_BYTES_MAX} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
