//! The endpoint's record in its SQLite file: a claim while a refund's credit runs, then its final
//! answer. Each step is one short transaction; none is held while the credit hook runs.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tolem_wire::Amount;

use super::RefundOrder;

/// `tolem_refunds` keeps the answer given for every refundId for ever (its columns are those of
/// earlier versions, so their files open unchanged); `tolem_refund_claims` holds the refunds whose
/// credit was started and has no outcome yet.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tolem_refunds (
    refund_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount_tiyn INTEGER NOT NULL,
    result_code TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tolem_refund_claims (
    refund_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount_tiyn INTEGER NOT NULL,
    link_receipt TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    claimed_at_ms INTEGER NOT NULL
);
";

/// How long a statement waits for another connection to the same file (the MPP's own ledger,
/// a reconciliation) before it fails and the PS is asked to retry.
const BUSY_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub(super) enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a stored amount is out of range: {0}")]
    Range(i64),
    #[error("the database task stopped: {0}")]
    Task(String),
}

/// What the record says about a refundId when its turn comes.
pub(super) enum Claimed {
    /// Answered before: this answer, byte for byte.
    Answered(String),
    /// Claimed now, or left claimed by an earlier attempt that ended without an outcome (a
    /// failure of the hook, a crash): credit `order` — the first request's details.
    Credit { order: RefundOrder, attempt: i64 },
}

#[derive(Clone)]
pub(super) struct Store {
    // Every use is a few statements in `spawn_blocking`, never across an await.
    conn: Arc<Mutex<Connection>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn tiyn(amount: Amount) -> Result<i64, StoreError> {
    // Amounts are at most AMOUNT_DIGITS_MAX (15) digits: far below i64::MAX.
    i64::try_from(amount.tiyn()).map_err(|_| StoreError::Range(i64::MAX))
}

impl Store {
    pub(super) fn open(path: &Path) -> Result<Store, rusqlite::Error> {
        crate::create_private_database(path);
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // An answer is given only after its record is on disk: a SUCCESS the PS saw survives a
        // power cut.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The stored answer of `order`'s refundId, or a claim on it (new, or left by an earlier
    /// attempt) in one short transaction.
    pub(super) async fn claim(&self, order: RefundOrder) -> Result<Claimed, StoreError> {
        self.run(move |conn| claim(conn, &order)).await
    }

    /// The answer of `refund_id`, or the claim an earlier attempt left on it (taken for one
    /// more attempt); `None` when it has neither. Never claims it anew.
    pub(super) async fn resume(&self, refund_id: String) -> Result<Option<Claimed>, StoreError> {
        self.run(move |conn| resume(conn, &refund_id)).await
    }

    /// Records the final answer and drops the claim, in one transaction; returns the answer
    /// stored for the refundId — `response`, unless another writer of the file was first.
    pub(super) async fn record(
        &self,
        order: RefundOrder,
        code: &'static str,
        response: String,
    ) -> Result<String, StoreError> {
        self.run(move |conn| record(conn, &order, code, &response))
            .await
    }
}

fn claim(conn: &mut Connection, order: &RefundOrder) -> Result<Claimed, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(answered) = answered_in(&tx, order.refund_id())? {
        // SPEC 4.4: every request with this refundId gets the first answer. One that differs
        // from the first is not applied either, but it means the PS reused an id (for example a
        // sandbox whose PS database was reset): worth an operator's look.
        if answered.payment_id != order.payment_id()
            || answered.customer_id != order.customer_id()
            || answered.amount_tiyn != tiyn(order.amount())?
        {
            tracing::warn!(refund_id = %order.refund_id(), "a refundId seen before arrived with other details; answered as before");
        }
        return Ok(Claimed::Answered(answered.response));
    }
    let claimed = match claimed_in(&tx, order.refund_id())? {
        Some((first, attempt)) => {
            // The hook is called again with what it was called with before, whatever this
            // repeat carries: an idempotency key always stands for the same request.
            if first != *order {
                tracing::warn!(refund_id = %order.refund_id(), "a refundId being credited arrived with other details; credited as first asked");
            }
            Claimed::Credit {
                order: first,
                attempt,
            }
        }
        None => {
            tx.execute(
                "INSERT INTO tolem_refund_claims (refund_id, payment_id, customer_id, amount_tiyn, link_receipt, attempts, claimed_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
                params![
                    order.refund_id(),
                    order.payment_id(),
                    order.customer_id(),
                    tiyn(order.amount())?,
                    order.link_receipt(),
                    now_ms()
                ],
            )?;
            Claimed::Credit {
                order: order.clone(),
                attempt: 1,
            }
        }
    };
    tx.commit()?;
    Ok(claimed)
}

/// What [`claim`] finds for a refundId, without claiming it anew: its answer, or the claim an
/// earlier attempt left (taken for one more attempt), or nothing.
fn resume(conn: &mut Connection, refund_id: &str) -> Result<Option<Claimed>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(answered) = answered_in(&tx, refund_id)? {
        return Ok(Some(Claimed::Answered(answered.response)));
    }
    let claimed = claimed_in(&tx, refund_id)?;
    tx.commit()?;
    Ok(claimed.map(|(order, attempt)| Claimed::Credit { order, attempt }))
}

/// A refundId's row in `tolem_refunds`.
struct Answered {
    response: String,
    payment_id: String,
    customer_id: String,
    amount_tiyn: i64,
}

fn answered_in(tx: &Connection, refund_id: &str) -> Result<Option<Answered>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT response, payment_id, customer_id, amount_tiyn FROM tolem_refunds WHERE refund_id = ?1",
            [refund_id],
            |r| {
                Ok(Answered {
                    response: r.get(0)?,
                    payment_id: r.get(1)?,
                    customer_id: r.get(2)?,
                    amount_tiyn: r.get(3)?,
                })
            },
        )
        .optional()?)
}

/// The claim an earlier attempt left on `refund_id`, counted as one more attempt: the order it
/// was first claimed with, and this attempt's number.
fn claimed_in(tx: &Connection, refund_id: &str) -> Result<Option<(RefundOrder, i64)>, StoreError> {
    let claimed: Option<(String, String, i64, String, i64)> = tx
        .query_row(
            "UPDATE tolem_refund_claims SET attempts = attempts + 1 WHERE refund_id = ?1 \
             RETURNING customer_id, payment_id, amount_tiyn, link_receipt, attempts",
            [refund_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((customer_id, payment_id, amount, link_receipt, attempt)) = claimed else {
        return Ok(None);
    };
    let stored = Amount::from_stored_tiyn(amount).ok_or(StoreError::Range(amount))?;
    let first = RefundOrder::recorded(
        customer_id,
        payment_id,
        refund_id.to_owned(),
        stored,
        link_receipt,
    );
    Ok(Some((first, attempt)))
}

fn record(
    conn: &mut Connection,
    order: &RefundOrder,
    code: &str,
    response: &str,
) -> Result<String, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT OR IGNORE INTO tolem_refunds (refund_id, payment_id, customer_id, amount_tiyn, result_code, response, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            order.refund_id(),
            order.payment_id(),
            order.customer_id(),
            tiyn(order.amount())?,
            code,
            response,
            now_ms()
        ],
    )?;
    tx.execute(
        "DELETE FROM tolem_refund_claims WHERE refund_id = ?1",
        [order.refund_id()],
    )?;
    let stored: String = tx.query_row(
        "SELECT response FROM tolem_refunds WHERE refund_id = ?1",
        [order.refund_id()],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(stored)
}
