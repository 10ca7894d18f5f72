//! The MPP's `/refund` endpoint (SPEC 4.4) as an axum router an MPP mounts: it validates the PS's
//! request, applies the credit **exactly once per refundId** — in the same SQLite transaction as
//! the record that remembers it — and answers every repeat with the same `result`.
//!
//! The credit itself is the MPP's: implement [`Credit`]. It runs inside the transaction, so the
//! customer's balance and the dedup record commit together or not at all.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint};
//! use tolem_wire::mpp::RefundRequest;
//!
//! struct Ledger;
//!
//! impl Credit for Ledger {
//!     fn credit(&self, tx: &rusqlite::Transaction<'_>, refund: &RefundRequest) -> Result<Credited, CreditError> {
//!         tx.execute(
//!             "UPDATE balances SET tiyn = tiyn + ?1 WHERE customer = ?2",
//!             rusqlite::params![refund.refund_amount.tiyn() as i64, refund.customer_id],
//!         )?;
//!         Ok(Credited::Yes)
//!     }
//! }
//!
//! # async fn mount() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = RefundEndpoint::open("mpp.db".as_ref(), Arc::new(Ledger))?;
//! let app = axum::Router::new().merge(endpoint.router()); // serves POST /refund
//! # let _ = app; Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Mutex;
use tolem_wire::Locale;
use tolem_wire::mpp::{
    CUSTOMER_ID_LEN_MAX, PAYMENT_ID_LEN_MAX, REFUND_ID_LEN_MAX, RefundRequest, ResultBody,
    ResultCode, ResultOnly,
};

/// How long a repeat waits for the first request of its refundId before it is told
/// REFUND_IN_PROCESS (and the PS retries later).
pub const IN_PROCESS_WAIT_MS: u64 = 5_000;

/// Whether the MPP gave the money back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credited {
    /// The money is back on the customer's account: the answer is SUCCESS.
    Yes,
    /// It never will be (unknown customer, closed account): the answer is this code
    /// (`PROCESS_FAIL`, `PARAM_ILLEGAL` or `PAYMENTS_SUSPENDED` make the PS stop retrying).
    Refused(ResultCode),
}

/// A failure of the MPP's own systems: nothing is recorded and the PS retries.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Other(String),
}

/// The MPP's credit of a refund, run inside the transaction that records it.
pub trait Credit: Send + Sync + 'static {
    fn credit(
        &self,
        tx: &rusqlite::Transaction<'_>,
        refund: &RefundRequest,
    ) -> Result<Credited, CreditError>;
}

/// The `/refund` endpoint with its own table of applied refunds in the MPP's SQLite database.
#[derive(Clone)]
pub struct RefundEndpoint {
    conn: Arc<Mutex<Connection>>,
    credit: Arc<dyn Credit>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tolem_refunds (
    refund_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount_tiyn INTEGER NOT NULL,
    result_code TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
)";

impl RefundEndpoint {
    /// Opens (creating) the database file and the endpoint's table.
    pub fn open(path: &Path, credit: Arc<dyn Credit>) -> Result<RefundEndpoint, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        RefundEndpoint::with_connection(conn, credit)
    }

    /// Uses a connection the MPP already has (its ledger's), so credits share its transactions.
    pub fn with_connection(
        conn: Connection,
        credit: Arc<dyn Credit>,
    ) -> Result<RefundEndpoint, rusqlite::Error> {
        conn.execute_batch(SCHEMA)?;
        Ok(RefundEndpoint {
            conn: Arc::new(Mutex::new(conn)),
            credit,
        })
    }

    /// `POST /refund`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/refund", post(handle))
            .with_state(self.clone())
    }

    /// The connection, for the MPP's own use between refunds.
    pub fn connection(&self) -> Arc<Mutex<Connection>> {
        self.conn.clone()
    }
}

fn answer(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn result_json(code: ResultCode, detail: Option<&str>) -> String {
    let result = match detail {
        Some(detail) => ResultBody::with_detail(code, Locale::Ru, detail),
        None => ResultBody::of(code, Locale::Ru),
    };
    serde_json::to_string(&ResultOnly { result }).unwrap_or_default()
}

/// Checks the request as SPEC 4.4 describes it.
fn parse(body: &[u8]) -> Result<RefundRequest, String> {
    let req: RefundRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let within = |text: &str, max: usize| !text.is_empty() && text.chars().count() <= max;
    if !within(&req.customer_id, CUSTOMER_ID_LEN_MAX) {
        return Err("customerId".to_owned());
    }
    if !within(&req.payment_id, PAYMENT_ID_LEN_MAX) {
        return Err("paymentId".to_owned());
    }
    if !within(&req.refund_id, REFUND_ID_LEN_MAX) {
        return Err("refundId".to_owned());
    }
    if req.refund_amount.is_zero() {
        return Err("refundAmount".to_owned());
    }
    if req.link_receipt.is_empty() {
        return Err("linkReceipt".to_owned());
    }
    Ok(req)
}

async fn handle(State(endpoint): State<RefundEndpoint>, body: Bytes) -> Response {
    let req = match parse(&body) {
        Ok(req) => req,
        // Nothing recorded: the PS treats PARAM_ILLEGAL as final.
        Err(field) => {
            return answer(
                StatusCode::OK,
                result_json(ResultCode::ParamIllegal, Some(&field)),
            );
        }
    };
    // One refund at a time; a repeat of one still running waits for it, then reads its answer.
    let wait = Duration::from_millis(IN_PROCESS_WAIT_MS);
    let Ok(conn) = tokio::time::timeout(wait, endpoint.conn.clone().lock_owned()).await else {
        return answer(
            StatusCode::OK,
            result_json(ResultCode::RefundInProcess, None),
        );
    };
    let credit = endpoint.credit.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let mut conn = conn;
        apply(&mut conn, credit.as_ref(), &req)
    })
    .await;
    match applied {
        Ok(Ok(body)) => answer(StatusCode::OK, body),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "refund not applied; the PS will retry");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                result_json(ResultCode::UnknownException, None),
            )
        }
        Err(_) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            result_json(ResultCode::UnknownException, None),
        ),
    }
}

/// Returns the stored answer for a known refundId; otherwise credits and records, atomically.
fn apply(
    conn: &mut Connection,
    credit: &dyn Credit,
    req: &RefundRequest,
) -> Result<String, CreditError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let amount = i64::try_from(req.refund_amount.tiyn())
        .map_err(|_| CreditError::Other("amount out of range".into()))?;
    let stored: Option<(String, String, String, i64)> = tx
        .query_row(
            "SELECT response, payment_id, customer_id, amount_tiyn FROM tolem_refunds WHERE refund_id = ?1",
            [&req.refund_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    if let Some((response, payment_id, customer_id, stored_amount)) = stored {
        // SPEC 4.4: every request with this refundId gets the first answer. One that differs
        // from the first is not applied either, but it means the PS reused an id (for example a
        // sandbox whose PS database was reset): worth an operator's look.
        if payment_id != req.payment_id || customer_id != req.customer_id || stored_amount != amount
        {
            tracing::warn!(refund_id = %req.refund_id, "a refundId seen before arrived with other details; answered as before");
        }
        return Ok(response);
    }
    let code = match credit.credit(&tx, req)? {
        Credited::Yes => ResultCode::Success,
        // Only final codes can be stored for ever; anything else would make the PS retry
        // against an answer that never changes.
        Credited::Refused(
            code @ (ResultCode::ProcessFail
            | ResultCode::ParamIllegal
            | ResultCode::PaymentsSuspended),
        ) => code,
        Credited::Refused(_) => ResultCode::ProcessFail,
    };
    let body = result_json(code, None);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let amount = i64::try_from(req.refund_amount.tiyn())
        .map_err(|_| CreditError::Other("amount out of range".into()))?;
    tx.execute(
        "INSERT INTO tolem_refunds (refund_id, payment_id, customer_id, amount_tiyn, result_code, response, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![req.refund_id, req.payment_id, req.customer_id, amount, code.as_str(), body, now_ms],
    )?;
    tx.commit()?;
    Ok(body)
}
