//! The MPP's `/refund` endpoint (SPEC 4.4): it validates the PS's request, has the MPP's credit
//! hook give the money back **exactly once per refundId**, and answers every repeat with the same
//! `result`, byte for byte.
//!
//! The credit is the MPP's: implement [`Credit`]. Its `credit` is async, so it may call a
//! core-banking system or PostgreSQL; it gets the refundId as its idempotency key. The endpoint
//! keeps its own record in a SQLite file (the tables are in `docs/mpp-kit.md`): claim the
//! refundId (one short transaction) → call the hook (no transaction open) → record the answer
//! (a second short transaction). Different refundIds run concurrently; requests of one refundId
//! take turns, a repeat waiting for the first up to [`IN_PROCESS_WAIT_MS`] and then answered
//! `REFUND_IN_PROCESS` (DECISIONS 21: the PS retries it).
//!
//! **The guarantee.** Once an answer is recorded the hook is never called again for that
//! refundId. The hook is called more than once for one refundId only when an attempt ended
//! without a recorded answer — the hook failed ([`CreditError`]), timed out (its future is then
//! dropped at whatever await point it reached: a hook must be safe to stop at any await),
//! panicked, or the process stopped between claim and record — and then with the same
//! [`RefundOrder`] as the first time. One endpoint serves a file at a time (see
//! [`RefundEndpoint::open`]). [`RefundEndpoint::answer`] needs a Tokio runtime. So the money moves exactly once **if the hook is idempotent per refundId**: it
//! writes a mark keyed by the refundId in the same transaction as the money (ledger in a SQL
//! database, the kit's file or another) or passes it as the idempotency key of a core-banking
//! system that keeps its keys at least as long as the PS retries (for ever, in practice).
//!
//! The hook must also make the checks the PS cannot make for the MPP: the payment is this
//! customer's, and its refunds never add up to more than was paid — **in the same transaction
//! as the credit**, because two refunds of one payment may run at the same time.
//!
//! ```no_run
//! use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint, RefundOrder};
//!
//! struct CoreBanking;
//!
//! impl Credit for CoreBanking {
//!     async fn credit(&self, refund: &RefundOrder) -> Result<Credited, CreditError> {
//!         // e.g. POST /transfers with `Idempotency-Key: refund.refund_id()`, moving
//!         // `refund.amount()` to `refund.customer_id()`'s account.
//!         Ok(Credited::Yes)
//!     }
//! }
//!
//! # async fn mount() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = RefundEndpoint::open("refunds.db".as_ref(), CoreBanking)?;
//! let app = axum::Router::new().merge(endpoint.router()); // serves POST /refund
//! # let _ = app; Ok(()) }
//! ```

mod locks;
mod order;
mod store;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tolem_wire::Locale;
use tolem_wire::mpp::{ResultBody, ResultCode, ResultOnly};

use locks::KeyedLocks;
pub use order::{InvalidRefund, RefundOrder};
use store::{Claimed, Store};

/// How long a repeat waits for the request of its refundId already running before it is told
/// `REFUND_IN_PROCESS` (and the PS retries later). Below the PS's 10 s call timeout.
pub const IN_PROCESS_WAIT_MS: u64 = 5_000;

/// How long the endpoint lets the credit hook run before it gives up on the attempt: the hook's
/// future is then dropped (cancelled) at whatever await point it reached, the claim stays, the PS
/// is answered `UNKNOWN_EXCEPTION` and retries, and the hook is called again. So a hook must be
/// safe to stop at any await point, as well as idempotent by refundId.
pub const CREDIT_TIMEOUT_MS: u64 = 30_000;

/// The largest body `router()` reads (DECISIONS 43: an MPP API body is at most 64 KiB; a refund
/// of the PS is a few hundred bytes). A larger one is answered 413 `PARAM_ILLEGAL` in the
/// `result` envelope.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// The hook's verdict on a refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credited {
    /// The money is back on the customer's account (now, or by an earlier call with this
    /// refundId): the answer is `SUCCESS`.
    Yes,
    /// It never will be (unknown customer, closed account, not this customer's payment, more than
    /// was paid): the answer is final and the PS makes the amount refundable again.
    Refused(Refusal),
}

/// A final refusal of a refund: the codes that make the PS stop retrying (DECISIONS 21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// `PROCESS_FAIL`: the MPP cannot give this money back.
    ProcessFail,
    /// `PARAM_ILLEGAL`: the request names something that does not exist at the MPP.
    ParamIllegal,
    /// `PAYMENTS_SUSPENDED`: the customer's account takes no money.
    PaymentsSuspended,
}

impl Refusal {
    /// Its result code.
    pub fn code(self) -> ResultCode {
        match self {
            Refusal::ProcessFail => ResultCode::ProcessFail,
            Refusal::ParamIllegal => ResultCode::ParamIllegal,
            Refusal::PaymentsSuspended => ResultCode::PaymentsSuspended,
        }
    }
}

/// A failure of the MPP's own systems (a database down, a core-banking timeout): no answer is
/// recorded, the PS is answered HTTP 500 `UNKNOWN_EXCEPTION` and retries, and the hook is called
/// again with the same refundId.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CreditError(Box<dyn std::error::Error + Send + Sync>);

impl CreditError {
    /// Wraps any error, or a message (`CreditError::new("core banking answered 503")`).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CreditError {
        CreditError(error.into())
    }
}

/// The MPP's credit of a refund. Implement it with `async fn credit(&self, refund:
/// &RefundOrder) -> Result<Credited, CreditError>`; the future must be `Send`, as it runs on the
/// server's runtime.
///
/// It is a plain trait with a `Send` future rather than an `#[async_trait]` one: an MPP writes an
/// ordinary `async fn`, needs no macro crate, and the endpoint boxes the future itself (once per
/// refund, nothing next to a network call).
pub trait Credit: Send + Sync + 'static {
    /// Gives `refund.amount()` back to `refund.customer_id()`, idempotently per
    /// `refund.refund_id()` (see the module's guarantee), or refuses it.
    fn credit(
        &self,
        refund: &RefundOrder,
    ) -> impl Future<Output = Result<Credited, CreditError>> + Send;
}

type CreditFuture<'a> = Pin<Box<dyn Future<Output = Result<Credited, CreditError>> + Send + 'a>>;

/// [`Credit`] made object-safe, so that the endpoint is one type whatever the MPP's hook is.
trait DynCredit: Send + Sync + 'static {
    fn credit_boxed<'a>(&'a self, refund: &'a RefundOrder) -> CreditFuture<'a>;
}

impl<C: Credit> DynCredit for C {
    fn credit_boxed<'a>(&'a self, refund: &'a RefundOrder) -> CreditFuture<'a> {
        Box::pin(self.credit(refund))
    }
}

/// The endpoint's file cannot be opened or set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the refund record {path}: {reason}")]
pub struct OpenError {
    path: String,
    reason: String,
}

/// The `/refund` endpoint with its record in a SQLite file. Cloning it is cheap and shares the
/// record, the hook and the locks.
#[derive(Clone)]
pub struct RefundEndpoint {
    inner: Arc<Inner>,
    limits: Limits,
}

struct Inner {
    store: Store,
    credit: Box<dyn DynCredit>,
    locks: Arc<KeyedLocks>,
}

#[derive(Clone, Copy)]
struct Limits {
    in_process_wait: Duration,
    credit_timeout: Duration,
}

/// The endpoint's answer to one request: an HTTP status and a JSON body (`{"result": …}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundAnswer {
    status: u16,
    body: String,
}

impl RefundAnswer {
    /// 200, or 500 when the MPP's systems failed (the PS retries).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The JSON body, `Content-Type: application/json`.
    pub fn body(&self) -> &str {
        &self.body
    }
}

impl RefundEndpoint {
    /// Opens (creating) the SQLite file of the endpoint's record and its tables. It may be the
    /// file of the MPP's own ledger (the tables are prefixed `tolem_`) or a file of its own.
    ///
    /// **One endpoint serves a file at a time.** The turns of one refundId are kept in this
    /// endpoint's memory (clones share them); a second endpoint on the same file — another
    /// process in a rolling deploy, or a second `open` — does not see them, and both may call
    /// the hook for one refundId at the same time. The record stays exact (one answer per
    /// refundId), but the money moves once only if the hook is idempotent by refundId also
    /// under concurrent calls (a unique key in the credit's own transaction does it; a
    /// check-then-credit does not). Stop the old process before the new one serves the file.
    pub fn open(path: &Path, credit: impl Credit) -> Result<RefundEndpoint, OpenError> {
        let store = Store::open(path).map_err(|e| OpenError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(RefundEndpoint {
            inner: Arc::new(Inner {
                store,
                credit: Box::new(credit),
                locks: Arc::default(),
            }),
            limits: Limits {
                in_process_wait: Duration::from_millis(IN_PROCESS_WAIT_MS),
                credit_timeout: Duration::from_millis(CREDIT_TIMEOUT_MS),
            },
        })
    }

    /// Sets how long a repeat waits for its refundId's running request (default
    /// [`IN_PROCESS_WAIT_MS`]).
    pub fn in_process_wait_ms(mut self, ms: u64) -> RefundEndpoint {
        self.limits.in_process_wait = Duration::from_millis(ms);
        self
    }

    /// Sets how long the hook may run for one attempt (default [`CREDIT_TIMEOUT_MS`]).
    pub fn credit_timeout_ms(mut self, ms: u64) -> RefundEndpoint {
        self.limits.credit_timeout = Duration::from_millis(ms);
        self
    }

    /// Answers one `POST /refund` from its body: the framework-neutral core, for an MPP that
    /// serves HTTP with something other than axum. Check first that the request's
    /// `Content-Type` is `application/json`, as [`router`](RefundEndpoint::router) does (HTTP
    /// 415 otherwise): a browser sends a `text/plain` POST to any address without asking, so a
    /// web page could otherwise order refunds. Run it to the end (it is cancel-safe: the
    /// credit runs in a task of its own and finishes even if this future is dropped).
    ///
    /// It needs a Tokio runtime with its timer (what `#[tokio::main]` makes): the credit runs in
    /// a Tokio task and the record in Tokio's blocking pool. Called outside one, it answers 500
    /// `UNKNOWN_EXCEPTION` and logs the cause at ERROR, rather than panic.
    pub async fn answer(&self, body: &[u8]) -> RefundAnswer {
        self.answer_in(body, Locale::Ru).await
    }

    /// [`answer`](RefundEndpoint::answer) with the messages in `locale`: the PS's `X-Locale`
    /// of the call (`Locale::from_header`). A repeat of a recorded refundId gets the recorded
    /// answer, in the language of its first.
    pub async fn answer_in(&self, body: &[u8], locale: Locale) -> RefundAnswer {
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!("RefundEndpoint::answer needs a Tokio runtime; answering 500");
            return failed(locale);
        }
        let request = match RefundOrder::from_json(body) {
            Ok(order) => Request::Valid(order),
            Err(invalid) => match refund_id_of(body) {
                Some(refund_id) => Request::Invalid { refund_id, invalid },
                None => {
                    return ok(result_json(
                        ResultCode::ParamIllegal,
                        Some(invalid.field()),
                        locale,
                    ));
                }
            },
        };
        // A task of its own: a PS that hangs up must not cut a credit between the hook's
        // return and the record of its outcome.
        let inner = self.inner.clone();
        let limits = self.limits;
        let refund_id = request.refund_id().to_owned();
        match tokio::spawn(async move { inner.apply(request, limits, locale).await }).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(refund_id, error = %e, "the credit hook panicked; the PS will retry");
                failed(locale)
            }
        }
    }

    /// The axum integration: a router serving `POST /refund`, to merge into the MPP's own (the
    /// crate's `axum` feature, on by default). Every answer is in the `result` envelope: another
    /// method is 405, a body that is not `application/json` 415 (unread), and a body over
    /// [`BODY_BYTES_MAX`] 413, all `PARAM_ILLEGAL`.
    #[cfg(feature = "axum")]
    pub fn router(&self) -> axum::Router {
        use axum::body::Body;
        use axum::extract::State;
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse;

        fn respond(status: StatusCode, body: String) -> axum::response::Response {
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        async fn handle(
            State(endpoint): State<RefundEndpoint>,
            headers: axum::http::HeaderMap,
            body: Body,
        ) -> axum::response::Response {
            let locale = locale_of(&headers);
            // The PS sends JSON as JSON. A body of another type is not read: a web page in a
            // browser on the MPP's network may send a form or `text/plain` anywhere without
            // asking first (no CORS preflight), and must not make the MPP pay a refund. HTTP
            // 415, not 200: the PS retries it rather than take PARAM_ILLEGAL as final.
            if !is_json(&headers) {
                let answer = result_json(ResultCode::ParamIllegal, Some("Content-Type"), locale);
                return respond(StatusCode::UNSUPPORTED_MEDIA_TYPE, answer);
            }
            // Read here, under the kit's own limit, so that a refusal keeps the envelope (axum's
            // `Bytes` extractor answers text/plain).
            let read = axum::body::to_bytes(body, BODY_BYTES_MAX).await;
            let is_too_large = |e: &axum::Error| {
                std::error::Error::source(e)
                    .is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
            };
            let body = match read {
                Ok(body) => body,
                Err(e) if is_too_large(&e) => {
                    let answer = result_json(ResultCode::ParamIllegal, Some("body"), locale);
                    return respond(StatusCode::PAYLOAD_TOO_LARGE, answer);
                }
                // The body was cut short (the caller's connection): nothing is decided, and a
                // retry is welcome.
                Err(_) => {
                    let answer = result_json(ResultCode::UnknownException, None, locale);
                    return respond(StatusCode::INTERNAL_SERVER_ERROR, answer);
                }
            };
            let answer = endpoint.answer_in(&body, locale).await;
            let status =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            respond(status, answer.body)
        }
        async fn other_method(headers: axum::http::HeaderMap) -> axum::response::Response {
            let answer = result_json(
                ResultCode::ParamIllegal,
                Some("method"),
                locale_of(&headers),
            );
            let mut response = respond(StatusCode::METHOD_NOT_ALLOWED, answer);
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            response
        }
        /// Whether the call says its body is JSON: one `Content-Type`, `application/json`
        /// (parameters such as `charset` allowed).
        fn is_json(headers: &axum::http::HeaderMap) -> bool {
            let mut values = headers.get_all(header::CONTENT_TYPE).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => value
                    .to_str()
                    .is_ok_and(tolem_wire::body::is_json_media_type),
                _ => false,
            }
        }
        /// The call's `X-Locale` (sent once, one of the two), else Russian.
        fn locale_of(headers: &axum::http::HeaderMap) -> Locale {
            let mut values = headers.get_all(tolem_wire::mpp::HEADER_LOCALE).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => Locale::from_header(value.to_str().ok()).unwrap_or_default(),
                _ => Locale::Ru,
            }
        }
        axum::Router::new()
            .route(
                "/refund",
                axum::routing::post(handle).fallback(other_method),
            )
            .with_state(self.clone())
    }
}

/// A request of the PS as the endpoint takes it.
enum Request {
    /// A valid refund: claimed, credited and recorded.
    Valid(RefundOrder),
    /// A request that is not valid but names a refundId. It takes that refundId's turn like any
    /// other request of it, and is answered as the refundId stands (SPEC 4.4: one answer for
    /// every request of one refundId): its recorded answer; if an earlier attempt left a claim,
    /// that claim is credited again with the first request's order, as a valid repeat would be;
    /// `PARAM_ILLEGAL` only when the refundId has neither. The PS takes PARAM_ILLEGAL as final
    /// and makes the amount refundable again, so it must never answer a refund whose credit
    /// began.
    Invalid {
        refund_id: String,
        invalid: InvalidRefund,
    },
}

impl Request {
    fn refund_id(&self) -> &str {
        match self {
            Request::Valid(order) => order.refund_id(),
            Request::Invalid { refund_id, .. } => refund_id,
        }
    }
}

/// The refundId of a body that is not a valid refund, if it names one at all (a JSON object
/// whose `refundId` is a non-empty string).
fn refund_id_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("refundId")?.as_str().map(str::to_owned))
        .filter(|id| !id.is_empty())
}

impl Inner {
    /// Claim → credit → record, in the refundId's turn.
    async fn apply(&self, request: Request, limits: Limits, locale: Locale) -> RefundAnswer {
        let refund_id = request.refund_id().to_owned();
        let Some(_turn) = self.locks.lock(&refund_id, limits.in_process_wait).await else {
            return ok(result_json(ResultCode::RefundInProcess, None, locale));
        };
        let claimed = match request {
            Request::Valid(order) => self.store.claim(order).await,
            Request::Invalid { refund_id, invalid } => match self.store.resume(refund_id).await {
                Ok(Some(claimed)) => Ok(claimed),
                Ok(None) => {
                    return ok(result_json(
                        ResultCode::ParamIllegal,
                        Some(invalid.field()),
                        locale,
                    ));
                }
                Err(e) => Err(e),
            },
        };
        let (order, attempt) = match claimed {
            Ok(Claimed::Answered(body)) => return ok(body),
            Ok(Claimed::Credit { order, attempt }) => (order, attempt),
            Err(e) => {
                tracing::error!(refund_id, error = %e, "cannot claim a refund; the PS will retry");
                return failed(locale);
            }
        };
        if attempt > 1 {
            tracing::info!(
                refund_id,
                attempt,
                "crediting a refund again: an earlier attempt ended without an outcome"
            );
        }
        let verdict =
            tokio::time::timeout(limits.credit_timeout, self.credit.credit_boxed(&order)).await;
        let code = match verdict {
            Ok(Ok(Credited::Yes)) => ResultCode::Success,
            Ok(Ok(Credited::Refused(refusal))) => refusal.code(),
            Ok(Err(e)) => {
                tracing::error!(refund_id, error = %e, "the credit hook failed; the PS will retry");
                return failed(locale);
            }
            Err(_) => {
                tracing::error!(
                    refund_id,
                    timeout_ms = limits.credit_timeout.as_millis(),
                    "the credit hook did not finish in time; the PS will retry"
                );
                return failed(locale);
            }
        };
        let body = result_json(code, None, locale);
        match self.store.record(order, code.as_str(), body).await {
            Ok(stored) => ok(stored),
            Err(e) => {
                // The money may have moved: the claim stays, and the PS's retry calls the
                // (idempotent) hook again, then records.
                tracing::error!(refund_id, error = %e, "credited but not recorded; the PS will retry");
                failed(locale)
            }
        }
    }
}

fn ok(body: String) -> RefundAnswer {
    RefundAnswer { status: 200, body }
}

fn failed(locale: Locale) -> RefundAnswer {
    RefundAnswer {
        status: 500,
        body: result_json(ResultCode::UnknownException, None, locale),
    }
}

/// The answer's `result` in `locale`: the PS's `X-Locale` of the call (DECISIONS 36), Russian
/// without one.
fn result_json(code: ResultCode, detail: Option<&str>, locale: Locale) -> String {
    let result = match detail {
        Some(detail) => ResultBody::with_detail(code, locale, detail),
        None => ResultBody::of(code, locale),
    };
    // Serializing a struct of two strings cannot fail.
    serde_json::to_string(&ResultOnly { result }).unwrap_or_default()
}
