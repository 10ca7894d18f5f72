//! The outbox in the store (SQLite or PostgreSQL): one table for every delivery to another system
//! (a refund to its MPP, a register e-mail), each row written in the transaction of the business
//! change it carries out, then claimed under a lease, closed by its first final outcome or made
//! due again. Per-table operations only: when to retry, when to flag and what an outcome means are
//! the callers' (the top-level `outbox` module); what each row delivers is its kind's table
//! (`refunds`, `register_deliveries`). Leases held by a dead run are taken back in `leases.rs`.
//!
//! Several nodes may claim from one PostgreSQL database at once: the claim locks the rows it takes
//! and skips those another node is taking (`FOR UPDATE SKIP LOCKED`), and every later change of a
//! row is one conditional statement (still open; still this claim's lease), so each is right under
//! READ COMMITTED as well as SERIALIZABLE.

use jiff::{SignedDuration, Timestamp};

use super::db::{Row, args};
use super::payments::{at, ms};
use super::{LeaseHolder, Store, StoreError, StoreResult, Tx};
use crate::domain::OutboxId;

/// What an outbox row delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxKind {
    /// A refund to its MPP's `/refund`; `ref_id` is the refund, `target` its MPP.
    Refund,
    /// A register e-mail; `ref_id` is its `register_deliveries` row.
    RegisterEmail,
}

impl OutboxKind {
    /// The kind as the `kind` column holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Refund => "refund",
            OutboxKind::RegisterEmail => "register_email",
        }
    }
}

/// An outbox row claimed for one attempt.
#[derive(Clone, Debug)]
pub struct OutboxEntry {
    pub id: OutboxId,
    /// The row of the kind's table this delivers (a refund id, a register delivery id).
    pub ref_id: i64,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub queued_at: Timestamp,
    /// Flagged for the operator before this claim (undelivered past the alert threshold).
    pub flagged: bool,
    /// When this claim took it: the attempt's start.
    pub claimed_at: Timestamp,
    /// The node that claimed it (`node_name`), named in the attempt's record.
    pub node: String,
    /// The lease this claim set, as stored: it tells this claim from a later one of the same row
    /// (after this one's lease ran out), whose lease a late retry of this one must not touch.
    lease_until_ms: i64,
}

/// An outbox row's delivery state, as the operator's views show it beside what it delivers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct OutboxState {
    pub attempts: u32,
    /// When the next attempt is due; none once the row is closed (or if there is no row).
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub flagged: bool,
    /// The node whose claim holds the row, and until when: set while an attempt is under way,
    /// and after a node died during one (until then no other node takes the row).
    pub lease: Option<Lease>,
}

/// A claim on an outbox row, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    pub node: String,
    pub until: Timestamp,
}

/// The columns [`state`] reads, for a view that joins the outbox as `o`.
pub(super) const STATE_COLUMNS: &str = "o.attempts, o.due_at_ms, o.last_error, o.flagged, o.done_at_ms, o.lease_node, o.lease_until_ms";

/// The outbox columns of a view's row as read, from `first` on ([`STATE_COLUMNS`]).
pub(super) type StateColumns = (
    (Option<i64>, Option<i64>, Option<String>, Option<i64>),
    (Option<i64>, Option<String>, Option<i64>),
);

/// Reads [`STATE_COLUMNS`] starting at `first` (all NULL where the view has no outbox row).
pub(super) fn state_columns(r: &Row<'_>, first: usize) -> StoreResult<StateColumns> {
    Ok((
        (
            r.get(first)?,
            r.get(first + 1)?,
            r.get(first + 2)?,
            r.get(first + 3)?,
        ),
        (r.get(first + 4)?, r.get(first + 5)?, r.get(first + 6)?),
    ))
}

/// The delivery state of columns read by [`state_columns`]. The lease is the last claim's, run
/// out or not (the reader compares it with its clock); none once the row is closed or released.
pub(super) fn state(
    ((attempts, due, last_error, flagged), (done, lease_node, lease_until)): StateColumns,
) -> StoreResult<OutboxState> {
    let lease = match (lease_node, at(lease_until.filter(|&ms| ms > 0))?) {
        (Some(node), Some(until)) if done.is_none() => Some(Lease { node, until }),
        _ => None,
    };
    Ok(OutboxState {
        attempts: attempts.and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
        next_attempt_at: if done.is_none() { at(due)? } else { None },
        last_error,
        flagged: flagged.unwrap_or(0) != 0,
        lease,
    })
}

/// Attempts kept of one outbox row: the first ones and the latest ones. A row retried for days
/// (an MPP down) would otherwise pile up thousands; the first say how it began, the latest how
/// it goes, and the count in `outbox.attempts` says how many there were in all.
pub(super) const ATTEMPTS_KEPT_FIRST: u32 = 5;
pub(super) const ATTEMPTS_KEPT_LAST: u32 = 20;
/// An attempt's error text is cut to this many characters (an MPP's answer may be long).
const ATTEMPT_ERROR_CHARS_MAX: usize = 500;

/// How one delivery attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver took it: final.
    Delivered,
    /// The receiver refused it (its code in the error): final.
    Refused,
    /// No final answer (a timeout, a refused connection, a 5xx): retried.
    Failed,
}

impl AttemptOutcome {
    /// As the `outcome` column holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<AttemptOutcome> {
        match text {
            "delivered" => Some(AttemptOutcome::Delivered),
            "refused" => Some(AttemptOutcome::Refused),
            "failed" => Some(AttemptOutcome::Failed),
            _ => None,
        }
    }
}

/// One delivery attempt as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Its number among the row's attempts, from 1.
    pub number: u32,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    pub node: String,
}

/// The claim's statement, for rows of one kind (`?2`) and, with `filter`, of one target (`?7`).
/// `lock` is PostgreSQL's: the due rows are locked in the statement that leases them, and rows
/// another node is claiming at that moment are skipped rather than waited for (or taken twice).
/// SQLite has one writer, so its claims never overlap.
macro_rules! claim_sql {
    ($filter:literal, $lock:literal) => {
        concat!(
            "UPDATE outbox SET lease_until_ms = ?1, attempts = attempts + 1, lease_node = ?5, \
             lease_run = ?6 WHERE id IN (SELECT id FROM outbox WHERE done_at_ms IS NULL \
             AND kind = ?2",
            $filter,
            " AND due_at_ms <= ?3 AND lease_until_ms <= ?3 ORDER BY due_at_ms LIMIT ?4",
            $lock,
            ") RETURNING id, ref_id, attempts, created_at_ms, flagged"
        )
    };
}

impl Tx<'_> {
    /// Queues a delivery of `kind` for row `ref_id`, due at once (`target`: the receiver it goes
    /// to, claimed on its own; empty for kinds claimed all together).
    pub(crate) fn enqueue(
        &self,
        kind: OutboxKind,
        ref_id: i64,
        target: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.db.execute(
            "INSERT INTO outbox (kind, ref_id, target, created_at_ms, due_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?4)",
            args![kind.as_str(), ref_id, target, ms(now)],
        )?;
        Ok(())
    }

    /// Takes up to `limit` due deliveries of `kind` (of `target` only, if given) and leases them
    /// to `holder` until `now + lease`, so that no one else takes them meanwhile and a crashed
    /// holder's are taken again after the lease (or at once by the next run of the same node,
    /// [`Store::take_back_leases`]). Each claim counts as an attempt.
    pub fn claim(
        &self,
        kind: OutboxKind,
        target: Option<&str>,
        now: Timestamp,
        limit: usize,
        lease: SignedDuration,
        holder: &LeaseHolder,
    ) -> StoreResult<Vec<OutboxEntry>> {
        let until = now.checked_add(lease).map(ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let row = |r: &Row<'_>| -> StoreResult<(OutboxId, i64, i64, i64, Option<i64>)> {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        };
        let pg = self.db.is_postgres();
        let (kind, now_ms) = (kind.as_str(), ms(now));
        let (node, run) = (&holder.node, &holder.run);
        // Two statements rather than `?7 IS NULL OR target = ?7`, so that each is planned on its
        // own index: by kind, target and due time, or by kind and due time.
        let rows = match target {
            Some(target) => {
                let sql = if pg {
                    claim_sql!(" AND target = ?7", " FOR UPDATE SKIP LOCKED")
                } else {
                    claim_sql!(" AND target = ?7", "")
                };
                self.db.query_map(
                    sql,
                    args![until, kind, now_ms, limit, node, run, target],
                    row,
                )?
            }
            None => {
                let sql = if pg {
                    claim_sql!("", " FOR UPDATE SKIP LOCKED")
                } else {
                    claim_sql!("", "")
                };
                self.db
                    .query_map(sql, args![until, kind, now_ms, limit, node, run], row)?
            }
        };
        let mut claimed = Vec::new();
        for (id, ref_id, attempts, created, flagged) in rows {
            claimed.push(OutboxEntry {
                id,
                ref_id,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                queued_at: at(Some(created))?.unwrap_or(now),
                flagged: flagged.unwrap_or(0) != 0,
                claimed_at: now,
                node: node.clone(),
                lease_until_ms: until,
            });
        }
        Ok(claimed)
    }

    /// Closes a delivery with its final outcome (`error`: why it failed, if it did). Only the
    /// first final outcome counts: false if the row was closed already (a late or duplicate
    /// answer of a delivery that outlived its lease), which must then change nothing. One
    /// conditional statement, so of two nodes closing the same row at once only one sees true.
    pub fn close(
        &self,
        outbox_id: OutboxId,
        now: Timestamp,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let closed = self.db.execute(
            "UPDATE outbox SET done_at_ms = ?1, last_error = ?2, lease_until_ms = 0 \
             WHERE id = ?3 AND done_at_ms IS NULL",
            args![ms(now), error, outbox_id],
        )?;
        Ok(closed == 1)
    }

    /// Makes the open delivery `entry` claimed due again at `retry_at` after an attempt without a
    /// final outcome; `flag` marks it for the operator (a flag stays once set). Only while the row
    /// still holds this claim's lease: an attempt that outlived its lease, whose row was claimed
    /// again meanwhile (by any node), leaves that later claim's lease alone.
    pub fn retry(
        &self,
        entry: &OutboxEntry,
        retry_at: Timestamp,
        error: &str,
        flag: bool,
    ) -> StoreResult<()> {
        self.db.execute(
            "UPDATE outbox SET due_at_ms = ?1, lease_until_ms = 0, last_error = ?2, \
             flagged = CASE WHEN ?3 <> 0 THEN 1 ELSE flagged END \
             WHERE id = ?4 AND done_at_ms IS NULL AND lease_until_ms = ?5",
            args![ms(retry_at), error, flag, entry.id, entry.lease_until_ms],
        )?;
        Ok(())
    }

    /// Keeps the record of the attempt `entry` made, ended at `now` with `outcome` (`error`: why,
    /// cut to [`ATTEMPT_ERROR_CHARS_MAX`] characters), in the transaction that records its
    /// outcome; then forgets the one that fell out of the kept window (the attempts after the
    /// first [`ATTEMPTS_KEPT_FIRST`] and before the last [`ATTEMPTS_KEPT_LAST`]). A second record
    /// of the same attempt (there is none: one claim, one outcome) would change nothing.
    pub fn record_attempt(
        &self,
        entry: &OutboxEntry,
        now: Timestamp,
        outcome: AttemptOutcome,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let error: Option<String> =
            error.map(|e| e.chars().take(ATTEMPT_ERROR_CHARS_MAX).collect());
        let number = i64::from(entry.attempts);
        self.db.execute(
            "INSERT INTO outbox_attempts (outbox_id, attempt, started_at_ms, ended_at_ms, \
             outcome, error, node) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (outbox_id, attempt) DO NOTHING",
            args![
                entry.id,
                number,
                ms(entry.claimed_at),
                ms(now),
                outcome.as_str(),
                error,
                entry.node
            ],
        )?;
        let last_dropped = number - i64::from(ATTEMPTS_KEPT_LAST);
        if last_dropped > i64::from(ATTEMPTS_KEPT_FIRST) {
            self.db.execute(
                "DELETE FROM outbox_attempts WHERE outbox_id = ?1 AND attempt > ?2 \
                 AND attempt <= ?3",
                args![entry.id, i64::from(ATTEMPTS_KEPT_FIRST), last_dropped],
            )?;
        }
        Ok(())
    }

    /// Hands claims back untried: not an attempt, due at `due`.
    pub fn release(&self, outbox_ids: &[OutboxId], due: Timestamp) -> StoreResult<()> {
        for id in outbox_ids {
            self.db.execute(
                "UPDATE outbox SET lease_until_ms = 0, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, due_at_ms = ?1 \
                 WHERE id = ?2 AND done_at_ms IS NULL",
                args![ms(due), id],
            )?;
        }
        Ok(())
    }

    /// Makes the open delivery of `kind` for `ref_id` due at `now`; false if it has none.
    pub(crate) fn make_due(
        &self,
        kind: OutboxKind,
        ref_id: i64,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // A delivery in flight keeps its lease: the retry comes after it, not beside it.
        let n = self.db.execute(
            "UPDATE outbox SET due_at_ms = ?1 WHERE kind = ?2 AND ref_id = ?3 AND done_at_ms IS NULL",
            args![ms(now), kind.as_str(), ref_id],
        )?;
        Ok(n > 0)
    }
}

impl Store {
    /// Open deliveries of `kind`, and how many of them are flagged.
    pub(crate) async fn outbox_counts(&self, kind: OutboxKind) -> StoreResult<(u64, u64)> {
        self.read_db(move |db| {
            // PostgreSQL's SUM of a BIGINT is a NUMERIC: cast back.
            let counts = db.query_row(
                "SELECT COUNT(*), CAST(COALESCE(SUM(flagged), 0) AS BIGINT) FROM outbox \
                 WHERE kind = ?1 AND done_at_ms IS NULL",
                args![kind.as_str()],
                |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
            )?;
            let (all, flagged) = counts.unwrap_or((0, 0));
            Ok((
                u64::try_from(all).unwrap_or(0),
                u64::try_from(flagged).unwrap_or(0),
            ))
        })
        .await
    }

    /// The attempts kept of the deliveries of `kind` for each of `ref_ids`, oldest first, by
    /// `ref_id` (one read per row, each by the outbox's `(kind, ref_id)` key and the attempts'
    /// own).
    pub(crate) async fn outbox_attempts(
        &self,
        kind: OutboxKind,
        ref_ids: Vec<i64>,
    ) -> StoreResult<std::collections::HashMap<i64, Vec<Attempt>>> {
        self.read_db(move |db| {
            let mut found = std::collections::HashMap::new();
            for ref_id in ref_ids {
                let rows = db.query_map(
                    "SELECT a.attempt, a.started_at_ms, a.ended_at_ms, a.outcome, a.error, a.node \
                     FROM outbox o JOIN outbox_attempts a ON a.outbox_id = o.id \
                     WHERE o.kind = ?1 AND o.ref_id = ?2 ORDER BY a.attempt",
                    args![kind.as_str(), ref_id],
                    |r| {
                        Ok((
                            r.get::<i64>(0)?,
                            r.get::<i64>(1)?,
                            r.get::<i64>(2)?,
                            r.get::<String>(3)?,
                            r.get::<Option<String>>(4)?,
                            r.get::<String>(5)?,
                        ))
                    },
                )?;
                let mut attempts = Vec::with_capacity(rows.len());
                for (number, started, ended, outcome, error, node) in rows {
                    let corrupt =
                        || StoreError::Corrupt(format!("outbox attempt {ref_id}/{number}"));
                    attempts.push(Attempt {
                        number: u32::try_from(number).map_err(|_| corrupt())?,
                        started_at: at(Some(started))?.ok_or_else(corrupt)?,
                        ended_at: at(Some(ended))?.ok_or_else(corrupt)?,
                        outcome: AttemptOutcome::parse(&outcome).ok_or_else(corrupt)?,
                        error,
                        node,
                    });
                }
                if !attempts.is_empty() {
                    found.insert(ref_id, attempts);
                }
            }
            Ok(found)
        })
        .await
    }

    /// When the earliest open delivery of `kind` may be claimed, if any (a read, so an idle
    /// sender never writes).
    pub(crate) async fn outbox_next_due(&self, kind: OutboxKind) -> StoreResult<Option<Timestamp>> {
        self.read_db(move |db| {
            // The later of the due time and the lease, per row (scalar MAX is SQLite's alone).
            let due = db.query_row(
                "SELECT MIN(CASE WHEN due_at_ms > lease_until_ms THEN due_at_ms \
                 ELSE lease_until_ms END) FROM outbox WHERE kind = ?1 AND done_at_ms IS NULL",
                args![kind.as_str()],
                |r| r.get::<Option<i64>>(0),
            )?;
            at(due.flatten())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLimits;

    /// 30 attempts of one refund's delivery, 29 failed and the last delivered: the first 5 and
    /// the last 20 are kept, each with its times, node, outcome and error (cut to its bound);
    /// another row's attempts are apart.
    async fn attempts_are_kept_first_and_last(store: &Store) {
        let start = Timestamp::from_second(1_800_000_000).expect("in range");
        let lease = SignedDuration::from_secs(60);
        let holder = LeaseHolder::new_run("node-a");
        store
            .transaction(move |tx| {
                tx.enqueue(OutboxKind::Refund, 7, "wallet", start)?;
                tx.enqueue(OutboxKind::Refund, 8, "bank", start)
            })
            .await
            .expect("queued");
        let long = "x".repeat(ATTEMPT_ERROR_CHARS_MAX + 100);
        for i in 1..=30_i64 {
            let at = start + SignedDuration::from_secs(61 * i);
            let holder = holder.clone();
            let claimed = store
                .transaction(move |tx| {
                    tx.claim(OutboxKind::Refund, Some("wallet"), at, 1, lease, &holder)
                })
                .await
                .expect("claimed");
            let entry = claimed.into_iter().next().expect("one due");
            assert_eq!(
                (entry.ref_id, entry.attempts),
                (7, u32::try_from(i).expect("small"))
            );
            let long = long.clone();
            store
                .transaction(move |tx| {
                    let end = at + SignedDuration::from_secs(1);
                    if i < 30 {
                        let error = if i == 1 { long.as_str() } else { "timeout" };
                        tx.record_attempt(&entry, end, AttemptOutcome::Failed, Some(error))?;
                        tx.retry(&entry, end, error, false)
                    } else {
                        tx.record_attempt(&entry, end, AttemptOutcome::Delivered, None)?;
                        tx.close(entry.id, end, None).map(|_| ())
                    }
                })
                .await
                .expect("recorded");
        }
        let kept = store
            .outbox_attempts(OutboxKind::Refund, vec![7, 8, 9])
            .await
            .expect("read");
        assert_eq!(kept.len(), 1, "none of 8 (never tried) or 9 (no row)");
        let attempts = &kept[&7];
        let numbers: Vec<u32> = attempts.iter().map(|a| a.number).collect();
        let expected: Vec<u32> = (1..=5).chain(11..=30).collect();
        assert_eq!(numbers, expected);
        let first = &attempts[0];
        assert_eq!(first.started_at, start + SignedDuration::from_secs(61));
        assert_eq!(first.ended_at, start + SignedDuration::from_secs(62));
        assert_eq!(
            (first.outcome, first.node.as_str()),
            (AttemptOutcome::Failed, "node-a")
        );
        assert_eq!(
            first.error.as_deref().map(|e| e.chars().count()),
            Some(ATTEMPT_ERROR_CHARS_MAX)
        );
        let last = attempts.last().expect("the last");
        assert_eq!(
            (last.outcome, last.error.as_deref()),
            (AttemptOutcome::Delivered, None)
        );
    }

    #[tokio::test]
    async fn attempts_are_kept_first_and_last_on_sqlite() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store =
            Store::open(&dir.path().join("ps.db"), &StoreLimits::for_tests()).expect("opens");
        attempts_are_kept_first_and_last(&store).await;
    }

    #[test]
    fn attempts_are_kept_first_and_last_on_postgres() {
        use super::super::payments::tests::{block_on, on_postgres};
        on_postgres(
            "attempts_are_kept_first_and_last_on_postgres",
            "attempts",
            |store| block_on(attempts_are_kept_first_and_last(store)),
        );
    }

    #[tokio::test]
    async fn a_retry_after_its_lease_ran_out_leaves_a_later_claim_alone() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let limits = StoreLimits::for_tests();
        let store = Store::open(&dir.path().join("ps.db"), &limits).expect("opens");
        let now = Timestamp::from_second(1_800_000_000).expect("in range");
        let lease = SignedDuration::from_secs(60);
        let later = now + SignedDuration::from_secs(61);
        let claim = |at: Timestamp, node: &str| {
            let holder = LeaseHolder::new_run(node);
            store.transaction(move |tx| tx.claim(OutboxKind::Refund, None, at, 10, lease, &holder))
        };
        store
            .transaction(move |tx| tx.enqueue(OutboxKind::Refund, 7, "wallet", now))
            .await
            .expect("queued");
        let first = claim(now, "node-a").await.expect("claimed");
        assert_eq!(first.len(), 1);
        let second = claim(later, "node-b").await.expect("claimed again");
        assert_eq!(second.len(), 1, "the first lease ran out");
        assert_eq!(second[0].attempts, 2);

        let stale = first[0].clone();
        store
            .transaction(move |tx| tx.retry(&stale, later, "timeout", true))
            .await
            .expect("a late retry is no error");
        assert!(
            claim(later, "node-c").await.expect("read").is_empty(),
            "the later claim keeps its lease"
        );
        assert_eq!(
            store
                .outbox_counts(OutboxKind::Refund)
                .await
                .expect("counts"),
            (1, 0),
            "and the late retry flagged nothing"
        );

        let current = second[0].clone();
        store
            .transaction(move |tx| tx.retry(&current, later, "timeout", true))
            .await
            .expect("retried");
        assert_eq!(
            store
                .outbox_counts(OutboxKind::Refund)
                .await
                .expect("counts"),
            (1, 1)
        );
        let third = claim(later, "node-c").await.expect("claimed");
        assert_eq!(third.len(), 1, "due again at once, its lease ended");
        assert_eq!(third[0].attempts, 3);
    }
}
