//! The outbox's delivery machinery, one for every kind of delivery to another system: refunds to
//! their MPPs (`refund_dispatch.rs`) and register e-mails (`registers/delivery.rs`).
//!
//! A delivery is an outbox row written in the transaction of the business change it carries out
//! (STYLE: the use case owns the transaction). Its sender claims due rows under a lease in one
//! short transaction ([`claim`]), attempts each outside any transaction, and records the outcome
//! in a second short one ([`settle`], [`record`]): a final outcome closes the row and is applied
//! to what it delivered together, and only the first final outcome counts, so a late or
//! duplicate answer of a delivery that outlived its lease changes nothing; any other outcome makes
//! the row due again after an exponential backoff with jitter ([`backoff`]), for ever, flagged
//! for the operator once it waited past `alert_after`. A crashed sender's claims are taken again
//! when their lease runs out, or at once by the next run of the same node
//! ([`crate::store::Store::take_back_leases`]): delivery is at least once.
//!
//! What differs by kind is the [`Kind`]: what a claimed row delivers, what an outcome means, and
//! the words of its log; what to send, how to read the answer and how many at once stay with the
//! sender.

use std::fmt::Debug;

use jiff::{SignedDuration, Timestamp};

use crate::domain::OutboxId;
pub use crate::store::OutboxEntry;
pub use crate::store::OutboxKind;
use crate::store::{AttemptOutcome, LeaseHolder, Store, StoreResult, Tx};

/// A claimed delivery: its outbox row, and what it delivers.
#[derive(Clone, Debug)]
pub struct Claim<T> {
    pub entry: OutboxEntry,
    pub item: T,
}

/// One kind of delivery, as the outbox sees it.
pub trait Kind: 'static {
    /// Its rows' kind.
    const KIND: OutboxKind;
    /// The words of its log lines.
    const WORDS: Words;
    /// What a claimed row delivers (a refund, a register e-mail).
    type Item: Send + 'static;
    /// How an attempt ended.
    type Outcome: Debug + Send + 'static;
    /// Loads what a claimed row delivers, in the claiming transaction.
    fn load(tx: &Tx<'_>, entry: &OutboxEntry) -> StoreResult<Self::Item>;
    /// What an outcome means for its row.
    fn ending(outcome: &Self::Outcome) -> Ending<'_>;
    /// Applies the first final outcome to what was delivered, in the transaction that closed the
    /// row; false if it had nothing left to apply it to.
    fn finish(
        tx: &Tx<'_>,
        claim: &Claim<Self::Item>,
        outcome: &Self::Outcome,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Whether a claim's final outcome still belongs to its row: false for a claim of a round
    /// the row has ended since and been opened for again (a register sent again), whose late
    /// outcome must not close the new round. True for kinds whose rows never reopen.
    fn still_current(_tx: &Tx<'_>, _claim: &Claim<Self::Item>) -> StoreResult<bool> {
        Ok(true)
    }
}

/// What an attempt's outcome means for its outbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending<'a> {
    /// Final: the row is closed, with `last_error` if given (a refusal's code).
    Final(Option<&'a str>),
    /// No final outcome (why, for `last_error`): the row is due again.
    Retry(&'a str),
}

/// The log lines of a kind of delivery (tests and `docs/registers.md` read some of them).
#[derive(Clone, Copy, Debug)]
pub struct Words {
    /// One delivery of the kind, in a sentence: "a refund".
    pub one: &'static str,
    /// An attempt without a final outcome, to retry.
    pub not_yet: &'static str,
    /// Whether `not_yet` is a warning (rare deliveries) rather than information (many).
    pub not_yet_warns: bool,
    /// An attempt without a final outcome past the alert threshold: an error.
    pub past_alert: &'static str,
}

/// How a kind of delivery retries and when it alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The first retry's delay; each next one doubles, up to `retry_delay_max`.
    pub retry_delay_initial: SignedDuration,
    pub retry_delay_max: SignedDuration,
    /// How long after it was queued an undelivered row is flagged for the operator.
    pub alert_after: SignedDuration,
    /// How long a claim keeps others off: longer than an attempt may take.
    pub lease: SignedDuration,
}

impl Policy {
    /// From the configuration's durations (`config/durations.rs`).
    pub fn of(
        retry_delay_initial: SignedDuration,
        retry_delay_max: SignedDuration,
        alert_after: SignedDuration,
        lease: SignedDuration,
    ) -> Policy {
        Policy {
            retry_delay_initial,
            retry_delay_max,
            alert_after,
            lease,
        }
    }

    /// What follows an attempt of `entry` ending at `now`, if it is to be retried.
    pub fn next(&self, entry: &OutboxEntry, now: Timestamp) -> Next {
        let delay = backoff(
            entry.attempts,
            self.retry_delay_initial,
            self.retry_delay_max,
        );
        let waited = now.duration_since(entry.queued_at);
        Next {
            retry_at: now.checked_add(delay).unwrap_or(now),
            delay,
            waited,
            past_alert: waited > self.alert_after,
        }
    }
}

/// When a delivery without a final outcome is tried again, and whether it is flagged.
#[derive(Clone, Copy, Debug)]
pub struct Next {
    pub retry_at: Timestamp,
    pub delay: SignedDuration,
    /// Since the delivery was queued.
    pub waited: SignedDuration,
    /// Undelivered past the alert threshold: flagged for the operator (retries go on).
    pub past_alert: bool,
}

/// The delay before the next attempt after `attempts` failed ones: doubling from `initial` up to
/// `max`, then a random part of up to half of it taken off (jitter), so retries of many
/// deliveries spread out.
pub fn backoff(attempts: u32, initial: SignedDuration, max: SignedDuration) -> SignedDuration {
    let doubled = initial
        .checked_mul(1 << attempts.saturating_sub(1).min(30))
        .unwrap_or(max);
    let capped = doubled.min(max);
    let capped_ms = u64::try_from(capped.as_millis()).unwrap_or(0);
    let jitter_ms = rand::random_range(0..=capped_ms / 2);
    SignedDuration::from_millis(i64::try_from(capped_ms - jitter_ms).unwrap_or(0))
}

/// Takes up to `limit` due deliveries of `K` (of `target` only, if given) under a lease to
/// `holder`, each with what it delivers, in one transaction.
pub async fn claim<K: Kind>(
    store: &Store,
    target: Option<String>,
    now: Timestamp,
    limit: usize,
    lease: SignedDuration,
    holder: LeaseHolder,
) -> StoreResult<Vec<Claim<K::Item>>> {
    // The claim statement locks and skips rows itself (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
    store
        .locking_transaction(move |tx| {
            let entries = tx.claim(K::KIND, target.as_deref(), now, limit, lease, &holder)?;
            let mut claimed = Vec::with_capacity(entries.len());
            for entry in entries {
                let item = K::load(tx, &entry)?;
                claimed.push(Claim { entry, item });
            }
            Ok(claimed)
        })
        .await
}

/// Hands claims back untried (no slot to try them in): not an attempt, due at `due`.
pub async fn release(store: &Store, outbox_ids: Vec<OutboxId>, due: Timestamp) -> StoreResult<()> {
    store
        .transaction(move |tx| tx.release(&outbox_ids, due))
        .await
}

/// Records how an attempt ended, and keeps the attempt itself (its start, end, node and outcome:
/// [`Tx::record_attempt`]): a final outcome closes the row and is applied by
/// [`Kind::finish`] in the same transaction (the first one only); otherwise the row is due again
/// at `retry_at`, and `flag` marks it for the operator, unless it was claimed again meanwhile
/// (this attempt outlived its lease): the later claim then settles it.
pub async fn record<K: Kind>(
    store: &Store,
    claim: Claim<K::Item>,
    outcome: K::Outcome,
    now: Timestamp,
    retry_at: Timestamp,
    flag: bool,
) -> StoreResult<()> {
    store
        .transaction(move |tx| {
            let id = claim.entry.id;
            // Every attempt is kept (the operator's timeline), whatever it changes below: a late
            // answer was an attempt too.
            let (kept, error) = match K::ending(&outcome) {
                Ending::Retry(error) => (AttemptOutcome::Failed, Some(error)),
                Ending::Final(None) => (AttemptOutcome::Delivered, None),
                Ending::Final(Some(code)) => (AttemptOutcome::Refused, Some(code)),
            };
            tx.record_attempt(&claim.entry, now, kept, error)?;
            let error = match K::ending(&outcome) {
                Ending::Retry(error) => return tx.retry(&claim.entry, retry_at, error, flag),
                Ending::Final(error) => error,
            };
            if !K::still_current(tx, &claim)? {
                tracing::warn!(
                    ref_id = claim.entry.ref_id,
                    ?outcome,
                    "an answer for {} of an earlier round; ignored",
                    K::WORDS.one
                );
                return Ok(());
            }
            // Only the first final outcome counts: a late or duplicate answer (a delivery that
            // outlived its lease) must not undo it.
            if !(tx.close(id, now, error)? && K::finish(tx, &claim, &outcome, now)?) {
                tracing::warn!(
                    ref_id = claim.entry.ref_id,
                    ?outcome,
                    "an answer for {} already settled; ignored",
                    K::WORDS.one
                );
            }
            Ok(())
        })
        .await
}

/// Settles an attempt that ended at `now` with `outcome`: when it is retried and whether it is
/// flagged ([`Policy::next`]), `count` told whether this attempt is the one that flags it (the
/// sender's metrics and log lines of its outcomes: a delivery is flagged once), the log line of
/// a retry, then the outcome [`record`]ed.
pub async fn settle<K: Kind>(
    store: &Store,
    policy: Policy,
    claim: Claim<K::Item>,
    outcome: K::Outcome,
    now: Timestamp,
    count: impl FnOnce(&K::Outcome, bool),
) -> StoreResult<()> {
    let next = policy.next(&claim.entry, now);
    let retry = match K::ending(&outcome) {
        Ending::Retry(error) => Some(error.to_owned()),
        Ending::Final(_) => None,
    };
    let flag = retry.is_some() && next.past_alert;
    let newly_flagged = flag && !claim.entry.flagged;
    count(&outcome, newly_flagged);
    if let Some(error) = retry {
        let words = K::WORDS;
        // The error once, when the delivery passes the threshold; its later retries warn.
        if newly_flagged {
            tracing::error!(
                error,
                waited_s = next.waited.as_secs(),
                "{}",
                words.past_alert
            );
        } else if flag {
            tracing::warn!(
                error,
                waited_s = next.waited.as_secs(),
                "{}",
                words.past_alert
            );
        } else if words.not_yet_warns {
            tracing::warn!(
                error,
                retry_in_ms = next.delay.as_millis(),
                "{}",
                words.not_yet
            );
        } else {
            tracing::info!(
                error,
                retry_in_ms = next.delay.as_millis(),
                "{}",
                words.not_yet
            );
        }
    }
    record::<K>(store, claim, outcome, now, next.retry_at, flag).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let s = SignedDuration::from_secs;
        for attempts in 1..40 {
            let d = backoff(attempts, s(1), s(300));
            let full = s(1)
                .checked_mul(1 << (attempts - 1).min(30))
                .unwrap_or(s(300))
                .min(s(300));
            assert!(d <= full && d >= full / 2, "{attempts}: {d:?}");
        }
    }
}
