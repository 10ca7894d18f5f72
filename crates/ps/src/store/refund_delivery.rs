//! Refund deliveries in SQLite: the outbox rows of refunds claimed under a lease, their attempts
//! recorded, released, made due again, and the refunds with their delivery state for the operator.

use jiff::{SignedDuration, Timestamp};
use rusqlite::params;

use super::payments::{at, ms};
use super::refunds::{COLUMNS, OUTBOX_REFUND, from_row, load, save};
use super::{LeaseHolder, Store, StoreError, StoreResult};
use crate::domain::refund::Delivery;
use crate::domain::{Refund, RefundStatus};

/// A refund claimed for one delivery attempt.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub outbox_id: i64,
    pub refund: Refund,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub queued_at: Timestamp,
}

/// A refund with its delivery state, as the operator sees it.
#[derive(Clone, Debug)]
pub struct RefundView {
    pub refund: Refund,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub flagged: bool,
}

impl Store {
    /// Takes up to `limit` due deliveries and leases them to `holder` until `now + lease`, so
    /// that no other dispatcher takes them meanwhile and a crashed one's are taken again after
    /// the lease (or at once by the next run of the same node, [`Store::take_back_leases`]).
    pub async fn claim_deliveries(
        &self,
        mpp: String,
        now: Timestamp,
        limit: usize,
        lease: SignedDuration,
        holder: LeaseHolder,
    ) -> StoreResult<Vec<Claimed>> {
        self.write(move |conn| {
            let until = now.checked_add(lease).map(ms).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(
                "UPDATE outbox SET lease_until_ms = ?1, attempts = attempts + 1, lease_node = ?6, lease_run = ?7 \
                 WHERE id IN \
                 (SELECT id FROM outbox WHERE done_at_ms IS NULL AND kind = ?2 AND target = ?5 AND due_at_ms <= ?3 \
                 AND lease_until_ms <= ?3 ORDER BY due_at_ms LIMIT ?4) RETURNING id, ref_id, attempts, created_at_ms",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![until, OUTBOX_REFUND, ms(now), limit, mpp, holder.node, holder.run], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
            })?;
            let mut claimed = Vec::new();
            for row in rows {
                let (outbox_id, refund_id, attempts, created) = row?;
                let refund = load(conn, refund_id)?.ok_or_else(|| StoreError::Corrupt(format!("outbox {outbox_id}: no refund")))?;
                claimed.push(Claimed {
                    outbox_id,
                    refund,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    queued_at: at(Some(created))?.unwrap_or(now),
                });
            }
            Ok(claimed)
        })
        .await
    }

    /// Records how a delivery attempt ended. A retry is due at `retry_at`; `flag` marks a refund
    /// the operator should look at (retries go on).
    pub async fn record_delivery(
        &self,
        claimed: Claimed,
        outcome: Delivery,
        now: Timestamp,
        retry_at: Timestamp,
        flag: bool,
    ) -> StoreResult<()> {
        self.write(move |conn| {
            let Some(mut refund) = load(conn, claimed.refund.id)? else { return Ok(()) };
            match &outcome {
                Delivery::Completed | Delivery::Failed(_) => {
                    let refused = match &outcome {
                        Delivery::Failed(code) => Some(code.clone()),
                        _ => None,
                    };
                    // Only the first final outcome counts: a late or duplicate answer (a delivery
                    // that outlived its lease) must not undo it.
                    let closed = conn
                        .prepare_cached(
                            "UPDATE outbox SET done_at_ms = ?1, last_error = ?2, lease_until_ms = 0 \
                             WHERE id = ?3 AND done_at_ms IS NULL",
                        )?
                        .execute(params![ms(now), refused, claimed.outbox_id])?;
                    if closed == 1 && refund.finish(&outcome, now) {
                        save(conn, &refund)?;
                    } else {
                        tracing::warn!(refund_id = refund.id, ?outcome, "an answer for a refund already settled; ignored");
                    }
                }
                Delivery::Retry(error) => {
                    conn.prepare_cached(
                        "UPDATE outbox SET due_at_ms = ?1, lease_until_ms = 0, last_error = ?2, flagged = MAX(flagged, ?3) \
                         WHERE id = ?4 AND done_at_ms IS NULL",
                    )?
                    .execute(params![ms(retry_at), error, i64::from(flag), claimed.outbox_id])?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Refunds with their delivery state, newest first; `status` filters, and `after` (a refund
    /// id, the last of the previous page) starts the page past it, so paging is stable while new
    /// refunds arrive.
    pub async fn refund_views(
        &self,
        status: Option<RefundStatus>,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RefundView>> {
        self.read(move |conn| {
            let cols = COLUMNS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>();
            // The outbox's columns follow the refund's, wherever those end.
            let o = cols.len();
            let cols = cols.join(", ");
            let sql = format!(
                "SELECT {cols}, o.attempts, o.due_at_ms, o.last_error, o.flagged, o.done_at_ms FROM refunds r \
                 LEFT JOIN outbox o ON o.kind = 'refund' AND o.ref_id = r.id \
                 WHERE (?1 IS NULL OR r.status = ?1) AND (?3 IS NULL OR r.id < ?3) \
                 ORDER BY r.id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let limit = i64::try_from(limit).unwrap_or(100);
            let rows = stmt.query_map(params![status.map(|s| s.as_str()), limit, after], |r| {
                Ok((
                    from_row(r)?,
                    r.get::<_, Option<i64>>(o)?,
                    r.get::<_, Option<i64>>(o + 1)?,
                    r.get::<_, Option<String>>(o + 2)?,
                    r.get::<_, Option<i64>>(o + 3)?,
                    r.get::<_, Option<i64>>(o + 4)?,
                ))
            })?;
            let mut views = Vec::new();
            for row in rows {
                let (raw, attempts, due, last_error, flagged, done) = row?;
                views.push(RefundView {
                    refund: raw.check()?,
                    attempts: attempts.and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
                    next_attempt_at: if done.is_none() { at(due)? } else { None },
                    last_error,
                    flagged: flagged.unwrap_or(0) != 0,
                });
            }
            Ok(views)
        })
        .await
    }

    /// Hands claims back untried (their MPP was at its limit): not an attempt, due at `due`.
    pub async fn release_deliveries(
        &self,
        outbox_ids: Vec<i64>,
        due: Timestamp,
    ) -> StoreResult<()> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE outbox SET lease_until_ms = 0, attempts = MAX(attempts - 1, 0), due_at_ms = ?1 \
                 WHERE id = ?2 AND done_at_ms IS NULL",
            )?;
            for id in outbox_ids {
                stmt.execute(params![ms(due), id])?;
            }
            Ok(())
        })
        .await
    }

    /// Makes a pending refund's delivery due now; false if it has nothing left to deliver.
    pub async fn retry_refund_now(&self, refund_id: i64, now: Timestamp) -> StoreResult<bool> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    // A delivery in flight keeps its lease: the retry comes after it, not beside it.
                    "UPDATE outbox SET due_at_ms = ?1 WHERE kind = 'refund' AND ref_id = ?2 AND done_at_ms IS NULL",
                )?
                .execute(params![ms(now), refund_id])?;
            Ok(n > 0)
        })
        .await
    }

    /// Undelivered refunds, and how many of them are flagged.
    pub async fn undelivered_counts(&self) -> StoreResult<(u64, u64)> {
        self.read(|conn| {
            let (all, flagged): (i64, i64) = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(flagged), 0) FROM outbox WHERE kind = 'refund' AND done_at_ms IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((u64::try_from(all).unwrap_or(0), u64::try_from(flagged).unwrap_or(0)))
        })
        .await
    }
}
