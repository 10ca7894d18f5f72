//! Refund deliveries in SQLite: what the outbox's refund rows deliver (the refund claimed, the
//! refund saved with its final outcome) and the refunds with their delivery state for the
//! operator. Claiming, closing and retrying the rows themselves is `outbox.rs`'s, for every kind;
//! when and why is the dispatcher's (`refund_dispatch.rs`).

use jiff::Timestamp;
use rusqlite::params;

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
}

impl Tx<'_> {
    /// The refund a claimed outbox row delivers.
    pub(crate) fn refund_to_deliver(&self, entry: &OutboxEntry) -> StoreResult<Refund> {
        load(self.conn, RefundId::new(entry.ref_id))?
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
        self.read(move |conn| {
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
                 WHERE (?1 IS NULL OR r.status = ?1) AND (?3 IS NULL OR r.id < ?3) \
                 ORDER BY r.id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let limit = i64::try_from(limit).unwrap_or(100);
            let kind = OutboxKind::Refund.as_str();
            let rows = stmt.query_map(
                params![status.map(|s| s.as_str()), limit, after, kind],
                |r| {
                    let delivery = state_columns(&super::db::Row::Lite(r), o).map_err(|e| {
                        let null = rusqlite::types::Type::Null;
                        rusqlite::Error::FromSqlConversionFailure(o, null, Box::new(e))
                    })?;
                    Ok((from_row(r)?, delivery))
                },
            )?;
            let mut views = Vec::new();
            for row in rows {
                let (raw, delivery) = row?;
                let delivery = state(delivery)?;
                views.push(RefundView {
                    refund: raw.check()?,
                    attempts: delivery.attempts,
                    next_attempt_at: delivery.next_attempt_at,
                    last_error: delivery.last_error,
                    flagged: delivery.flagged,
                });
            }
            Ok(views)
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
