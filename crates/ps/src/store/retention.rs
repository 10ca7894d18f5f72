//! What the PS forgets, and when (DECISIONS 43): purchases never paid and return QRs never used,
//! past `payments.unpaid_retention_days`; POS replay records past `limits.pos_replay_retention_s`
//! (DECISIONS 29). Each call deletes one bounded batch in one short write, so the sweeper's
//! deletions take turns with the payments in the writer's queue.
//!
//! Kept for ever: confirmed purchases, refunds placed (whatever became of them), their outbox rows
//! and the attempts of each (bounded per row instead: `store/outbox.rs`), and everything a
//! register, a receipt or a refund reads. A purchase some refund names is never deleted.

use super::db::args;
use super::payments::ms;
use super::{Store, StoreResult};
use jiff::Timestamp;

impl Store {
    /// Deletes up to `limit` purchases that ended unpaid (`cancelled`, `failed`, `expired`) before
    /// `ended_before`, oldest first; returns how many.
    pub async fn forget_unpaid(&self, ended_before: Timestamp, limit: usize) -> StoreResult<usize> {
        self.transaction(move |tx| {
            // The status condition is the partial index's own, word for word, so that it is used.
            tx.db.execute(
                "DELETE FROM payments WHERE id IN (SELECT id FROM payments \
                 WHERE (status = 'cancelled' OR status = 'failed' OR status = 'expired') \
                 AND finished_at_ms < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM refunds WHERE refunds.payment_id = payments.id) \
                 ORDER BY finished_at_ms LIMIT ?2)",
                args![ms(ended_before), limit_i64(limit)],
            )
        })
        .await
    }

    /// Deletes up to `limit` return QRs that no refund used: expired unscanned before
    /// `ended_before`, or scanned and left unused until their use window (`use_window_ms`) closed
    /// before it. Returns how many.
    pub(crate) async fn forget_unused_return_qrs(
        &self,
        ended_before: Timestamp,
        use_window_ms: i64,
        limit: usize,
    ) -> StoreResult<usize> {
        // Unordered: the status index yields the oldest first anyway, and sorting would read
        // every return QR that ended within the retention first.
        self.transaction(move |tx| {
            let before = ms(ended_before);
            let scanned_before = before.saturating_sub(use_window_ms);
            tx.db.execute(
                "DELETE FROM refunds WHERE id IN (SELECT id FROM refunds \
                 WHERE kind = 'qr' AND payment_id IS NULL AND requested_at_ms IS NULL \
                 AND ((status = 'expired' AND finished_at_ms < ?1) \
                   OR (status = 'identified' AND identified_at_ms < ?2)) \
                 LIMIT ?3)",
                args![before, scanned_before, limit_i64(limit)],
            )
        })
        .await
    }
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
