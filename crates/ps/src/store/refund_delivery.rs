//! Refund deliveries in the store (SQLite or PostgreSQL): what the outbox's refund rows deliver (the refund claimed, the
//! refund saved with its final outcome) and the refunds with their delivery state for the
//! operator. Claiming, closing and retrying the rows themselves is `outbox.rs`'s, for every kind;
//! when and why is the dispatcher's (`refund_dispatch.rs`).

use jiff::Timestamp;

use super::db::args;
use super::outbox::{OutboxEntry, OutboxKind, STATE_COLUMNS, state, state_columns};
use super::refunds::{COLUMNS, from_row, load};
use super::{Store, StoreError, StoreResult, Tx};
use crate::domain::{Refund, RefundId, RefundStatus};

/// A refund with its delivery state, as the operator sees it.
#[derive(Clone, Debug)]
pub(crate) struct RefundView {
    pub refund: Refund,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub flagged: bool,
    /// The last claim of its delivery (`outbox.rs`), run out or not.
    pub lease: Option<super::outbox::Lease>,
}

impl Tx<'_> {
    /// The refund a claimed outbox row delivers.
    pub(crate) fn refund_to_deliver(&self, entry: &OutboxEntry) -> StoreResult<Refund> {
        load(self.db, RefundId::new(entry.ref_id))?
            .ok_or_else(|| StoreError::Corrupt(format!("outbox {}: no refund", entry.id)))
    }
}

impl Store {
    /// Refunds with their delivery state, newest first; `status` filters, and `after` (a refund
    /// id, the last of the previous page) starts the page past it, so paging is stable while new
    /// refunds arrive.
    pub(crate) async fn refund_views(
        &self,
        status: Option<RefundStatus>,
        after: Option<RefundId>,
        limit: usize,
    ) -> StoreResult<Vec<RefundView>> {
        self.read_db(move |db| {
            let cols = COLUMNS
                .split(", ")
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>();
            // The outbox's columns follow the refund's, wherever those end.
            let o = cols.len();
            let cols = cols.join(", ");
            let sql = format!(
                "SELECT {cols}, {STATE_COLUMNS} FROM refunds r \
                 LEFT JOIN outbox o ON o.kind = ?4 AND o.ref_id = r.id \
                 WHERE (CAST(?1 AS TEXT) IS NULL OR r.status = ?1) \
                 AND (CAST(?3 AS BIGINT) IS NULL OR r.id < ?3) \
                 ORDER BY r.id DESC LIMIT ?2"
            );
            let limit = i64::try_from(limit).unwrap_or(100);
            let kind = OutboxKind::Refund.as_str();
            db.query_map(
                &sql,
                args![status.map(|s| s.as_str()), limit, after, kind],
                |r| {
                    let raw = from_row(r)?;
                    let delivery = state(state_columns(r, o)?)?;
                    Ok(RefundView {
                        refund: raw.check()?,
                        attempts: delivery.attempts,
                        next_attempt_at: delivery.next_attempt_at,
                        last_error: delivery.last_error,
                        flagged: delivery.flagged,
                        lease: delivery.lease,
                    })
                },
            )
        })
        .await
    }

    /// Makes a pending refund's delivery due now; false if it has nothing left to deliver.
    pub(crate) async fn retry_refund_now(
        &self,
        refund_id: RefundId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.transaction(move |tx| tx.make_due(OutboxKind::Refund, refund_id.get(), now))
            .await
    }

    /// Undelivered refunds, and how many of them are flagged.
    pub(crate) async fn undelivered_counts(&self) -> StoreResult<(u64, u64)> {
        self.outbox_counts(OutboxKind::Refund).await
    }
}
