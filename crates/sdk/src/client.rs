//! [`MppClient`]: the typed calls of the MPP API v1, built with [`MppClientBuilder`].
//!
//! Each call makes HTTP attempts with the headers of SPEC 1.7 and sorts what comes back into one
//! [`Outcome`]; only what repeating cannot cure is an [`SdkError`]. notifyPayment repeats its
//! attempts under the client's [`RetryPolicy`] with one X-Request-ID, logging every retry.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tolem_wire::Locale;
use tolem_wire::mpp::{
    self, CALLER_NAME_LEN_MAX, CheckoutRequest, CheckoutResponse, NotifyPaymentRequest,
    NotifyPaymentResponse, QrCodeType, ResultCode, ResultOnly, ScanRequest, ScanResponse,
};

use crate::error::{SdkError, SetupError, TransportError, UnreadableAnswer};
use crate::outcome::{Outcome, Reply, Scanned, Unanswered};
use crate::request_id::RequestId;
use crate::retry::RetryPolicy;

/// Default timeout of one HTTP attempt, connection included.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default timeout of opening a connection (TCP and TLS).
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Largest answer the client reads from the PS.
pub const ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// Sets up an [`MppClient`]: the PS's base URL and the MPP's caller name, then optional
/// timeouts, default locale, retry policy and TLS (a CA to trust beside the system's roots, a
/// client certificate). [`build`](MppClientBuilder::build) checks everything and names the first
/// mistake.
///
/// ```no_run
/// # fn setup() -> Result<(), tolem_sdk::SetupError> {
/// let ps = tolem_sdk::MppClient::builder("https://ps.example.kz", "mybank")
///     .request_timeout_ms(5_000)
///     .default_locale(tolem_wire::Locale::Kk)
///     .ca_pem(std::fs::read("ps-ca.pem").unwrap_or_default())
///     .build()?;
/// # let _ = ps; Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct MppClientBuilder {
    base_url: String,
    caller_name: String,
    request_timeout_ms: u64,
    connect_timeout_ms: u64,
    locale: Locale,
    retry: RetryPolicy,
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<Vec<u8>>,
}

impl MppClientBuilder {
    /// Timeout of one HTTP attempt, connection included (default 10 000 ms).
    pub fn request_timeout_ms(mut self, ms: u64) -> MppClientBuilder {
        self.request_timeout_ms = ms;
        self
    }

    /// Timeout of opening a connection (default 5 000 ms).
    pub fn connect_timeout_ms(mut self, ms: u64) -> MppClientBuilder {
        self.connect_timeout_ms = ms;
        self
    }

    /// The `X-Locale` of calls made without [`MppClient::in_locale`] (default `ru-RU`).
    pub fn default_locale(mut self, locale: Locale) -> MppClientBuilder {
        self.locale = locale;
        self
    }

    /// How notifyPayment is retried (default: [`RetryPolicy::default`], until answered).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> MppClientBuilder {
        self.retry = retry;
        self
    }

    /// One or more CA certificates (PEM) to trust beside the system's roots, e.g. the PS's
    /// private CA.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> MppClientBuilder {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The MPP's client certificate for mutual TLS: one PEM holding the certificate chain and
    /// its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn client_identity_pem(mut self, pem: impl Into<Vec<u8>>) -> MppClientBuilder {
        self.identity_pem = Some(pem.into());
        self
    }

    /// Checks the setup and makes the client. Nothing is sent yet: a base URL that does not lead
    /// to a PS is found by the first call, which fails at once with [`SetupError::NotFound`] or
    /// [`SetupError::NotThePs`].
    pub fn build(self) -> Result<MppClient, SetupError> {
        let base_url = parse_base_url(&self.base_url)?;
        check_caller_name(&self.caller_name)?;
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(SetupError::Setting {
                reason: "a timeout of 0 ms".to_owned(),
            });
        }
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_millis(self.request_timeout_ms))
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            // The PS closes a keep-alive connection idle for 60 s (DECISIONS 43); dropping ours
            // sooner keeps a call from going out on one the PS is closing at that moment.
            .pool_idle_timeout(Duration::from_secs(30))
            // A PS never redirects an MPP API call; a redirect means the URL is not the PS's.
            .redirect(reqwest::redirect::Policy::none())
            // Straight to the PS (through the tunnel), never through a proxy the environment
            // names (`http_proxy`, `HTTPS_PROXY`), whose answer would be taken for the PS's.
            .no_proxy();
        if let Some(pem) = &self.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| SetupError::Tls {
                    reason: format!("the CA PEM: {e}"),
                })?;
            if certs.is_empty() {
                return Err(SetupError::Tls {
                    reason: "the CA PEM holds no certificate".to_owned(),
                });
            }
            http = http.tls_certs_merge(certs);
        }
        if let Some(pem) = &self.identity_pem {
            let identity = reqwest::Identity::from_pem(pem).map_err(|e| SetupError::Tls {
                reason: format!("the client certificate PEM: {e}"),
            })?;
            http = http.identity(identity);
        }
        let http = http.build().map_err(|e| SetupError::Tls {
            reason: TransportError::from_http(&e).message().to_owned(),
        })?;
        Ok(MppClient {
            shared: Arc::new(Shared {
                http,
                base_url,
                caller_name: self.caller_name,
            }),
            locale: self.locale,
            retry: self.retry,
        })
    }
}

fn parse_base_url(url: &str) -> Result<String, SetupError> {
    // `localhost:8080` would parse with the scheme `localhost`: without `://` there is none.
    if !url.contains("://") {
        return Err(SetupError::BaseUrlScheme {
            url: url.to_owned(),
        });
    }
    let parsed = match reqwest::Url::parse(url.trim_end_matches('/')) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Err(SetupError::BaseUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SetupError::BaseUrlScheme {
            url: url.to_owned(),
        });
    }
    let reason = if parsed.host_str().is_none_or(str::is_empty) {
        Some("no host")
    } else if parsed.query().is_some() || parsed.fragment().is_some() {
        Some("a base URL has no query or fragment")
    } else if !parsed.username().is_empty() || parsed.password().is_some() {
        Some("credentials in a URL would be logged; use a client certificate")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SetupError::BaseUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        }),
        None => Ok(parsed.as_str().trim_end_matches('/').to_owned()),
    }
}

fn check_caller_name(name: &str) -> Result<(), SetupError> {
    let reason = if name.is_empty() {
        Some("it is empty".to_owned())
    } else if name.chars().count() > CALLER_NAME_LEN_MAX {
        Some(format!(
            "it is longer than {CALLER_NAME_LEN_MAX} characters"
        ))
    } else if !name.chars().all(|c| c.is_ascii_graphic()) {
        Some("only printable ASCII without spaces can travel in the header".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SetupError::CallerName {
            name: name.escape_debug().to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A client of one PS, calling as one MPP. Cheap to clone; clones share connections.
#[derive(Clone, Debug)]
pub struct MppClient {
    shared: Arc<Shared>,
    locale: Locale,
    retry: RetryPolicy,
}

#[derive(Debug)]
struct Shared {
    http: reqwest::Client,
    base_url: String,
    caller_name: String,
}

/// The methods of the MPP API, as named in logs and errors.
#[derive(Clone, Copy)]
enum Method {
    Scan,
    Checkout,
    NotifyPayment,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Scan => "scan",
            Method::Checkout => "checkout",
            Method::NotifyPayment => "notifyPayment",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Method::Scan => mpp::SCAN_PATH,
            Method::Checkout => mpp::CHECKOUT_PATH,
            Method::NotifyPayment => mpp::NOTIFY_PAYMENT_PATH,
        }
    }
}

impl MppClient {
    /// Starts setting up a client of the PS at `base_url` (`http://` or `https://`, with an
    /// optional path prefix) calling as `caller_name` (`X-Caller-Name`).
    pub fn builder(base_url: &str, caller_name: &str) -> MppClientBuilder {
        MppClientBuilder {
            base_url: base_url.to_owned(),
            caller_name: caller_name.to_owned(),
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            locale: Locale::Ru,
            retry: RetryPolicy::default(),
            ca_pem: None,
            identity_pem: None,
        }
    }

    /// A client with every default: `MppClient::builder(base_url, caller_name).build()`.
    pub fn new(base_url: &str, caller_name: &str) -> Result<MppClient, SetupError> {
        MppClient::builder(base_url, caller_name).build()
    }

    /// The same client (sharing its connections) calling in `locale`.
    pub fn in_locale(&self, locale: Locale) -> MppClient {
        MppClient {
            locale,
            ..self.clone()
        }
    }

    /// The same client (sharing its connections) retrying notifyPayment under `retry`.
    pub fn with_retry(&self, retry: RetryPolicy) -> MppClient {
        MppClient {
            retry,
            ..self.clone()
        }
    }

    /// The MPP's name as sent in `X-Caller-Name`.
    pub fn caller_name(&self) -> &str {
        &self.shared.caller_name
    }

    /// The PS's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The locale calls are made in.
    pub fn locale(&self) -> Locale {
        self.locale
    }

    /// scan (SPEC 4.1), one attempt with a new X-Request-ID. When the outcome is not known yet,
    /// repeat with [`scan_with_id`](MppClient::scan_with_id) and the reply's id.
    pub async fn scan(&self, req: &ScanRequest) -> Result<Reply<Scanned>, SdkError> {
        self.scan_with_id(req, &RequestId::random()).await
    }

    /// [`scan`](MppClient::scan) with the caller's X-Request-ID.
    pub async fn scan_with_id(
        &self,
        req: &ScanRequest,
        request_id: &RequestId,
    ) -> Result<Reply<Scanned>, SdkError> {
        let attempt = self
            .attempt::<_, Box<serde_json::value::RawValue>>(Method::Scan, request_id, req)
            .await?;
        let outcome = match attempt.outcome {
            Outcome::Done((status, answer)) => Outcome::Done(scanned(status, &answer)?),
            Outcome::Refused(result) => Outcome::Refused(result),
            Outcome::NotKnownYet(why) => Outcome::NotKnownYet(why),
        };
        Ok(reply(request_id, 1, outcome, attempt.retry_after))
    }

    /// checkout (SPEC 4.2), one attempt with a new X-Request-ID; repeats are safe (the PS
    /// answers them identically).
    pub async fn checkout(
        &self,
        req: &CheckoutRequest,
    ) -> Result<Reply<CheckoutResponse>, SdkError> {
        self.checkout_with_id(req, &RequestId::random()).await
    }

    /// [`checkout`](MppClient::checkout) with the caller's X-Request-ID.
    pub async fn checkout_with_id(
        &self,
        req: &CheckoutRequest,
        request_id: &RequestId,
    ) -> Result<Reply<CheckoutResponse>, SdkError> {
        let attempt = self.attempt(Method::Checkout, request_id, req).await?;
        Ok(reply(
            request_id,
            1,
            attempt.outcome.map(|(_, answer)| answer),
            attempt.retry_after,
        ))
    }

    /// notifyPayment (SPEC 4.3) with a new X-Request-ID, retried under the client's
    /// [`RetryPolicy`] until the PS answers `SUCCESS` or a final code. With the default policy
    /// the outcome is never [`Outcome::NotKnownYet`]; a bounded policy may end with it, and then
    /// the same request must be repeated later with [`Reply::request_id`] — keep the debit until
    /// then. Only the PS's word on the payment ends the retries: an answer without a PS result
    /// (a proxy's page, a 404, a 429) and a result that is no verdict (a code the regulation does
    /// not list, `UNKNOWN_SOURCE`) are [`Unanswered::NotFromThePs`] and
    /// [`Unanswered::NotAVerdict`], retried like no answer at all.
    ///
    /// A call awaited inside an app's request handler stops when the handler is dropped: store
    /// the notification with the debit and let a background task drive it instead.
    pub async fn notify_payment(
        &self,
        req: &NotifyPaymentRequest,
    ) -> Result<Reply<NotifyPaymentResponse>, SdkError> {
        self.notify_payment_with_id(req, &RequestId::random()).await
    }

    /// [`notify_payment`](MppClient::notify_payment) with the caller's X-Request-ID, for an MPP
    /// that keeps it with the payment so that retries after its own restart reuse it too.
    pub async fn notify_payment_with_id(
        &self,
        req: &NotifyPaymentRequest,
        request_id: &RequestId,
    ) -> Result<Reply<NotifyPaymentResponse>, SdkError> {
        let method = Method::NotifyPayment;
        let first = tokio::time::Instant::now();
        let mut attempt = 1;
        loop {
            let Attempted {
                outcome,
                retry_after,
            } = self.attempt(method, request_id, req).await?;
            let delay = self.retry.delay_after(attempt, retry_after);
            let why = match outcome {
                Outcome::NotKnownYet(why)
                    if self.retry.allows_after(attempt)
                        && self.retry.allows_at(first.elapsed() + delay) =>
                {
                    why
                }
                outcome => {
                    return Ok(reply(
                        request_id,
                        attempt,
                        outcome.map(|(_, answer)| answer),
                        retry_after,
                    ));
                }
            };
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            let request_id = request_id.as_str();
            let payment_id = req.payment.payment_id.as_str();
            // A PS that answers busy is working as designed; no answer at all, or one that is
            // not the PS's word, is worth a warning.
            match &why {
                Unanswered::Busy(_) | Unanswered::Status(_) => tracing::info!(
                    method = method.name(), request_id, payment_id, attempt, delay_ms, reason = %why,
                    "the PS did not give a final answer; retrying"
                ),
                _ => tracing::warn!(
                    method = method.name(), request_id, payment_id, attempt, delay_ms, reason = %why,
                    "no answer from the PS; retrying"
                ),
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP attempt, sorted: the answer on SUCCESS (with its HTTP status), the PS's final
    /// refusal, not known yet (with the `Retry-After` the answer asked for), or a final error.
    async fn attempt<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: Method,
        request_id: &RequestId,
        body: &Req,
    ) -> Result<Attempted<(u16, Resp)>, SdkError> {
        let mut retry_after = None;
        let outcome = self
            .sorted(method, request_id, body, &mut retry_after)
            .await?;
        // A wait is asked for only with an answer that is to be repeated, and waited out up to
        // the policy's longest delay.
        let retry_after = self
            .retry
            .honoured(retry_after)
            .filter(|_| outcome.is_not_known_yet());
        Ok(Attempted {
            outcome,
            retry_after,
        })
    }

    /// The attempt itself; `retry_after` is set when the answer carried a `Retry-After`.
    async fn sorted<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: Method,
        request_id: &RequestId,
        body: &Req,
        retry_after: &mut Option<Duration>,
    ) -> Result<Outcome<(u16, Resp)>, SdkError> {
        let url = format!("{}{}", self.shared.base_url, method.path());
        let sent = self
            .shared
            .http
            .post(&url)
            .header(mpp::HEADER_REQUEST_ID, request_id.as_str())
            .header(mpp::HEADER_CALLER_NAME, &self.shared.caller_name)
            .header(mpp::HEADER_LOCALE, self.locale.header_value())
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return transport(&e),
        };
        let status = response.status().as_u16();
        *retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let bytes = match read_capped(method, status, response).await {
            Ok(bytes) => bytes,
            Err(Read::Transport(e)) => return transport(&e),
            Err(Read::TooLarge(e)) => return Err(SdkError::Unreadable(e)),
        };
        // notifyPayment's answer decides whether the customer keeps a debit: anything that is not
        // the PS's word on the payment is "not known yet" and retried (SPEC 4.3), never a final
        // error or refusal. The other methods move no money, and their first call tells a wrong
        // base URL at once.
        let money = matches!(method, Method::NotifyPayment);
        if status == 404 {
            if money {
                return Ok(Outcome::NotKnownYet(Unanswered::NotFromThePs(status)));
            }
            return Err(SetupError::NotFound { url }.into());
        }
        // The PS answers the MPP API with 200, or refuses at its edge with 400, 408, 413, 414 or
        // 431; a refusal under any other status below 500 (a redirect, 401, 403, 429) is a
        // middlebox's, however much it looks like the PS's, and the PS may have confirmed the
        // payment already.
        if money && status < 500 && !PS_STATUSES.contains(&status) {
            return Ok(Outcome::NotKnownYet(Unanswered::NotFromThePs(status)));
        }
        let result = match serde_json::from_slice::<ResultOnly>(&bytes) {
            Ok(only) => only.result,
            Err(_) if status >= 500 => return Ok(Outcome::NotKnownYet(Unanswered::Status(status))),
            Err(_) if money => return Ok(Outcome::NotKnownYet(Unanswered::NotFromThePs(status))),
            Err(e) if (200..300).contains(&status) => {
                return Err(UnreadableAnswer::new(method.name(), status, &bytes, e).into());
            }
            Err(_) => return Err(SetupError::NotThePs { url, status }.into()),
        };
        // Whatever code a 5xx carries, the PS did not finish the request.
        if status >= 500 || result.code().is_some_and(ResultCode::is_retryable) {
            return Ok(Outcome::NotKnownYet(Unanswered::Busy(result)));
        }
        if result.code() != Some(ResultCode::Success) {
            if money && !is_word_on_payment(&result) {
                return Ok(Outcome::NotKnownYet(Unanswered::NotAVerdict(result)));
            }
            return Ok(Outcome::Refused(result));
        }
        match serde_json::from_slice::<Resp>(&bytes) {
            Ok(answer) => Ok(Outcome::Done((status, answer))),
            Err(e) => Err(UnreadableAnswer::new(method.name(), status, &bytes, e).into()),
        }
    }
}

/// The HTTP statuses below 500 the PS answers an MPP API call with: 200, and its edge's
/// refusals of a malformed, late or oversized request.
const PS_STATUSES: [u16; 6] = [200, 400, 408, 413, 414, 431];

/// True when a notifyPayment `result` other than SUCCESS is the PS's final word on the payment.
/// Not so: a code the regulation's table does not hold (a proxy's `SYSTEM_MAINTENANCE`, a newer
/// PS's), and `UNKNOWN_SOURCE`, which the PS answers when it does not know the caller right now
/// (an MPP deactivated for a while, a caller name mistyped after a restart) before it looks at
/// the payment — an earlier attempt may have confirmed it. The client and the
/// [`Driver`](crate::pending::Driver) both sort answers by this one rule.
fn is_word_on_payment(result: &mpp::ResultBody) -> bool {
    !matches!(result.code(), None | Some(ResultCode::UnknownSource))
}

/// One attempt's outcome and the wait its answer asked for.
struct Attempted<T> {
    outcome: Outcome<T>,
    retry_after: Option<Duration>,
}

/// A `Retry-After` value (RFC 9110 10.2.3) as a wait from `now`: delta-seconds or an HTTP date
/// (a date already past is no wait); anything else is ignored.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is a very long wait.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn reply<T>(
    request_id: &RequestId,
    attempts: u32,
    outcome: Outcome<T>,
    retry_after: Option<Duration>,
) -> Reply<T> {
    Reply {
        request_id: request_id.clone(),
        attempts,
        outcome,
        retry_after,
    }
}

fn transport<T>(e: &reqwest::Error) -> Result<Outcome<T>, SdkError> {
    let e = TransportError::from_http(e);
    if e.kind().is_retryable() {
        Ok(Outcome::NotKnownYet(Unanswered::Transport(e)))
    } else {
        Err(SdkError::Transport(e))
    }
}

const KNOWN_QR_TYPES: [&str; 4] = ["Dynamic", "Static", "Custom", "Refund"];

/// A SUCCESS answer to scan as one of the kinds of QR; an answer that lacks what its kind needs
/// is unreadable. Read from its text, so that its amount never passes through a float
/// (DECISIONS 3).
fn scanned(status: u16, answer: &serde_json::value::RawValue) -> Result<Scanned, SdkError> {
    let text = answer.get();
    let unreadable = |e: serde_json::Error| {
        SdkError::from(UnreadableAnswer::new("scan", status, text.as_bytes(), e))
    };
    let missing = |what: &str| -> SdkError {
        unreadable(<serde_json::Error as serde::de::Error>::custom(format!(
            "a SUCCESS without {what}"
        )))
    };
    // Only its kind, to tell one this SDK does not know from one it cannot read.
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "qrCodeType", default)]
        qr_code_type: Option<serde_json::Value>,
    }
    let kind = serde_json::from_str::<Kind>(text).map_err(unreadable)?;
    if let Some(kind) = kind
        .qr_code_type
        .as_ref()
        .and_then(serde_json::Value::as_str)
        && !KNOWN_QR_TYPES.contains(&kind)
    {
        return Ok(Scanned::Unsupported {
            qr_code_type: kind.to_owned(),
        });
    }
    let scan: ScanResponse = serde_json::from_str(text).map_err(unreadable)?;
    let merchant = scan.merchant;
    Ok(match scan.qr_code_type {
        None => return Err(missing("qrCodeType")),
        Some(QrCodeType::Refund) => Scanned::Refund {
            refund: scan.refund.ok_or_else(|| missing("refund"))?,
            merchant,
        },
        Some(kind) => {
            let payment = scan.payment.ok_or_else(|| missing("payment"))?;
            match kind {
                QrCodeType::Dynamic => Scanned::Dynamic {
                    amount: payment
                        .payment_amount
                        .ok_or_else(|| missing("payment.paymentAmount"))?,
                    payment,
                    merchant,
                },
                QrCodeType::Custom => Scanned::Custom {
                    service: scan.payment_data.ok_or_else(|| missing("paymentData"))?,
                    payment,
                    merchant,
                },
                _ => Scanned::Static { payment, merchant },
            }
        }
    })
}

enum Read {
    Transport(reqwest::Error),
    TooLarge(UnreadableAnswer),
}

async fn read_capped(
    method: Method,
    status: u16,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, Read> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Read::Transport)? {
        if body.len() + chunk.len() > ANSWER_BYTES_MAX {
            let e = <serde_json::Error as serde::de::Error>::custom(format!(
                "an answer larger than {ANSWER_BYTES_MAX} bytes"
            ));
            return Err(Read::TooLarge(UnreadableAnswer::new(
                method.name(),
                status,
                &body,
                e,
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_retry_after_is_read_as_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        // Wed, 21 Oct 2015 07:28:00 GMT is 1 445 412 480 s after the epoch.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for ignored in ["", "-1", "1.5", "soon", "1 s"] {
            assert_eq!(parse_retry_after(ignored, now), None, "{ignored:?}");
        }
    }
}
