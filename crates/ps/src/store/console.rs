//! Reads for the operator console and the MPP's cabinet pages (`console/`), on either backend:
//! the day's totals, a purchase found by what the operator types, the refunds of one MPP and the
//! refunds of one purchase with their delivery state. Each goes through an index: totals and an
//! MPP's operations by `(mpp, finished_at_ms)` (the registers' indexes), one MPP at a time.

use jiff::Timestamp;
use tolem_wire::AmountTotal;

use super::db::{Db, args};
use super::outbox::{OutboxKind, STATE_COLUMNS, state, state_columns};
use super::payments::{load, ms};
use super::refund_delivery::RefundView;
use super::refunds::{COLUMNS, from_row};
use super::{Store, StoreError, StoreResult};
use crate::domain::{Payment, PaymentId};

/// Confirmed payments and completed refunds finished within a span of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub payments: u64,
    pub paid: AmountTotal,
    pub refunds: u64,
    pub refunded: AmountTotal,
}

/// What one amount column's sum is read in: its millions of tiyn and the rest, each summed
/// apart, so that neither passes a 64-bit integer (SQLite's SUM fails there, PostgreSQL's cast
/// back too) before there are billions of rows, whatever the amounts; the total is exact.
const SUM_SPLIT: u32 = 1_000_000;

/// `(count, sum of amount_tiyn)` of the `table`'s rows in `status` for one MPP in `[from, to)`.
fn count_and_sum(
    db: Db<'_>,
    table: &str,
    status: &str,
    mpp: &str,
    (from, to): (i64, i64),
) -> StoreResult<(u64, AmountTotal)> {
    // PostgreSQL's SUM of a BIGINT is a NUMERIC: cast back.
    let sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount_tiyn / {SUM_SPLIT}), 0) AS BIGINT), \
         CAST(COALESCE(SUM(amount_tiyn % {SUM_SPLIT}), 0) AS BIGINT) FROM {table} \
         WHERE mpp = ?1 AND finished_at_ms >= ?2 AND finished_at_ms < ?3 AND status = '{status}'"
    );
    let row = db.query_row(&sql, args![mpp, from, to], |r| {
        Ok((r.get::<i64>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?))
    })?;
    let (count, high, low) = row.unwrap_or((0, 0, 0));
    let corrupt = || StoreError::Corrupt("a negative count or sum".to_owned());
    let part = |n: i64| u128::try_from(n).map_err(|_| corrupt());
    let tiyn = part(high)? * u128::from(SUM_SPLIT) + part(low)?;
    Ok((
        u64::try_from(count).map_err(|_| corrupt())?,
        AmountTotal::from_tiyn(tiyn),
    ))
}

/// The columns of a refund with its delivery state (the admin API's refund view), joined as
/// `r` and `o`, and where the outbox's columns start.
fn view_columns() -> (String, usize) {
    let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("r.{c}")).collect();
    let first_state = cols.len();
    (format!("{}, {STATE_COLUMNS}", cols.join(", ")), first_state)
}

fn views(
    db: Db<'_>,
    clause: &str,
    value: &dyn super::db::Arg,
    limit: i64,
) -> StoreResult<Vec<RefundView>> {
    let (cols, first_state) = view_columns();
    let sql = format!(
        "SELECT {cols} FROM refunds r LEFT JOIN outbox o ON o.kind = ?2 AND o.ref_id = r.id \
         WHERE {clause} ORDER BY r.id DESC LIMIT ?3"
    );
    let kind = OutboxKind::Refund.as_str();
    db.query_map(&sql, &[value, &kind, &limit], |r| {
        let raw = from_row(r)?;
        let delivery = state(state_columns(r, first_state)?)?;
        Ok(RefundView {
            refund: raw.check()?,
            attempts: delivery.attempts,
            next_attempt_at: delivery.next_attempt_at,
            last_error: delivery.last_error,
            flagged: delivery.flagged,
            lease: delivery.lease,
        })
    })
}

/// How long after its `finished_at_ms` an operation may still be committed: a write waits
/// seconds for its commit at most, and another node's clock may be a little apart. The totals of
/// a span that ended longer ago than this no longer change (a confirmed payment and a completed
/// refund stay so; retention deletes neither) and are not read again.
const SETTLE_MS: i64 = 15 * 60_000;

/// The totals of `[from, upto)` over `mpps`, `upto` at least [`SETTLE_MS`] in the past when
/// they were read.
#[derive(Clone, Debug)]
pub(super) struct Settled {
    from: i64,
    upto: i64,
    mpps: Vec<String>,
    totals: Totals,
    /// The clock's time of the view that kept them, and that moment on a monotonic clock: a
    /// clock stepped back since (one set ahead, then put right) drops them, for `upto` may be
    /// ahead of the time commits are now stamped with.
    seen_at: i64,
    seen_mono: std::time::Instant,
}

/// How far the clock may fall behind a monotonic one before the kept totals are dropped.
const STEP_BACK_MS: i64 = 60_000;

impl Totals {
    fn plus(self, other: Totals) -> StoreResult<Totals> {
        let too_large = || StoreError::Corrupt("totals out of range".to_owned());
        Ok(Totals {
            payments: self.payments + other.payments,
            paid: self.paid.checked_sum(other.paid).ok_or_else(too_large)?,
            refunds: self.refunds + other.refunds,
            refunded: self
                .refunded
                .checked_sum(other.refunded)
                .ok_or_else(too_large)?,
        })
    }
}

/// Totals of `[from, to)` over `mpps`, each read by its index.
fn totals_between(db: Db<'_>, mpps: &[String], (from, to): (i64, i64)) -> StoreResult<Totals> {
    let mut totals = Totals::default();
    if from >= to {
        return Ok(totals);
    }
    for mpp in mpps {
        let (payments, paid) = count_and_sum(db, "payments", "confirmed", mpp, (from, to))?;
        let (refunds, refunded) = count_and_sum(db, "refunds", "completed", mpp, (from, to))?;
        totals = totals.plus(Totals {
            payments,
            paid,
            refunds,
            refunded,
        })?;
    }
    Ok(totals)
}

impl Store {
    /// Totals of `[from, to)` over the MPPs named (the catalog's), each read by its index, at
    /// `now`. What is older than [`SETTLE_MS`] is kept from the last call of the same span and
    /// MPPs, and only what finished since is read: a view costs the operations of the last
    /// minutes, not of the whole day.
    pub(crate) async fn totals(
        &self,
        mpps: Vec<String>,
        (from, to): (Timestamp, Timestamp),
        now: Timestamp,
    ) -> StoreResult<Totals> {
        let (from, to) = (ms(from), ms(to));
        let settled_to = (ms(now) - SETTLE_MS).clamp(from, to);
        let kept = self
            .inner
            .settled_totals
            .lock()
            .ok()
            .and_then(|kept| kept.clone())
            .filter(|kept| {
                let wall = ms(now).saturating_sub(kept.seen_at);
                let mono = i64::try_from(kept.seen_mono.elapsed().as_millis()).unwrap_or(i64::MAX);
                kept.from == from
                    && kept.mpps == mpps
                    && kept.upto <= settled_to
                    && wall >= mono.saturating_sub(STEP_BACK_MS)
            });
        let (start, base) = kept.map_or((from, Totals::default()), |k| (k.upto, k.totals));
        let (settled, recent) = self
            .read_db({
                let mpps = mpps.clone();
                move |db| {
                    let settled = base.plus(totals_between(db, &mpps, (start, settled_to))?)?;
                    Ok((settled, totals_between(db, &mpps, (settled_to, to))?))
                }
            })
            .await?;
        if let Ok(mut kept) = self.inner.settled_totals.lock() {
            *kept = Some(Settled {
                from,
                upto: settled_to,
                mpps,
                totals: settled,
                seen_at: ms(now),
                seen_mono: std::time::Instant::now(),
            });
        }
        settled.plus(recent)
    }

    /// Purchases the operator's `text` names, newest first, at most `limit`: by id (a number),
    /// by QR token, by customer id (at each of `mpps`, so that the customer index serves) or all
    /// of one MPP's when `text` is its caller name.
    pub(crate) async fn search_payments(
        &self,
        text: String,
        mpps: Vec<String>,
        limit: usize,
    ) -> StoreResult<Vec<Payment>> {
        self.read_db(move |db| {
            let limit_sql = i64::try_from(limit).unwrap_or(50);
            let mut ids: Vec<PaymentId> = Vec::new();
            if let Ok(id) = text.parse::<i64>() {
                ids.push(PaymentId::new(id));
            }
            let id_of = |r: &super::db::Row<'_>| r.get::<PaymentId>(0);
            ids.extend(db.query_map(
                "SELECT id FROM payments WHERE qr_token = ?1",
                args![text],
                id_of,
            )?);
            for mpp in &mpps {
                ids.extend(db.query_map(
                    "SELECT id FROM payments WHERE mpp = ?1 AND customer_id = ?2 \
                     ORDER BY id DESC LIMIT ?3",
                    args![mpp, text, limit_sql],
                    id_of,
                )?);
            }
            // An MPP's caller name as the operator types it: `DemoBank` finds `demobank`
            // (the name itself first, should two differ only in case).
            let mpp = mpps
                .iter()
                .find(|mpp| **mpp == text)
                .or_else(|| mpps.iter().find(|mpp| mpp.eq_ignore_ascii_case(&text)));
            if let Some(mpp) = mpp {
                ids.extend(db.query_map(
                    "SELECT id FROM payments WHERE mpp = ?1 ORDER BY finished_at_ms DESC LIMIT ?2",
                    args![mpp, limit_sql],
                    id_of,
                )?);
            }
            ids.sort_by_key(|id| std::cmp::Reverse(id.get()));
            ids.dedup();
            let mut found = Vec::new();
            for id in ids.into_iter().take(limit) {
                if let Some(p) = load(db, id)? {
                    found.push(p);
                }
            }
            Ok(found)
        })
        .await
    }

    /// One MPP's refunds (return QRs it identified included) with their delivery, newest first.
    pub(crate) async fn refund_views_of_mpp(
        &self,
        mpp: String,
        limit: usize,
    ) -> StoreResult<Vec<RefundView>> {
        let limit = i64::try_from(limit).unwrap_or(100);
        self.read_db(move |db| views(db, "r.mpp = ?1", &mpp, limit))
            .await
    }

    /// A purchase's refunds with their delivery, newest first.
    pub(crate) async fn refund_views_of_payment(
        &self,
        payment_id: PaymentId,
        limit: usize,
    ) -> StoreResult<Vec<RefundView>> {
        let limit = i64::try_from(limit).unwrap_or(100);
        self.read_db(move |db| views(db, "r.payment_id = ?1", &payment_id, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use tolem_wire::amount::AMOUNT_TIYN_MAX;

    use super::*;
    use crate::store::StoreLimits;

    #[tokio::test]
    async fn a_day_s_sum_past_64_bits_of_tiyn_is_read_exactly() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let limits = StoreLimits::for_tests();
        let store = Store::open(&dir.path().join("ps.db"), &limits).expect("opens");
        // 10 000 amounts of the largest kind: their sum passes a signed 64-bit integer, where
        // SQL's own SUM of them fails.
        const ROWS: u32 = 10_000;
        store
            .write(move |c| {
                Ok(c.execute_batch(&format!(
                    "CREATE TABLE sums (mpp TEXT, finished_at_ms INTEGER, status TEXT, amount_tiyn INTEGER);
                     INSERT INTO sums WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
                     SELECT 'bank', 5, 'confirmed', {AMOUNT_TIYN_MAX} FROM n;"
                ))?)
            })
            .await
            .expect("rows");
        let plain = store
            .read_db(|db| {
                db.query_row("SELECT SUM(amount_tiyn) FROM sums", args![], |r| {
                    r.get::<i64>(0)
                })
            })
            .await;
        assert!(plain.is_err(), "SQL's SUM overflows: {plain:?}");
        let (count, total) = store
            .read_db(|db| count_and_sum(db, "sums", "confirmed", "bank", (0, 10)))
            .await
            .expect("the sum");
        assert_eq!(count, u64::from(ROWS));
        assert_eq!(total.tiyn(), u128::from(ROWS) * u128::from(AMOUNT_TIYN_MAX));
    }

    #[tokio::test]
    async fn today_s_totals_read_again_only_what_may_still_be_committed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store =
            Store::open(&dir.path().join("ps.db"), &StoreLimits::for_tests()).expect("opens");
        let minute = 60_000;
        let day = (
            Timestamp::from_millisecond(0).expect("a time"),
            Timestamp::from_millisecond(1440 * minute).expect("a time"),
        );
        let at = |minutes: i64| Timestamp::from_millisecond(minutes * minute).expect("a time");
        let pay = |id: i64, minutes: i64, tiyn: i64| {
            store.write(move |c| {
                Ok(c.execute(
                    "INSERT INTO payments (id, kind, status, trade_point_id, created_at_ms, receipt_token, \
                     mpp, customer_id, amount_tiyn, finished_at_ms) \
                     VALUES (?1, 'dynamic', 'confirmed', 1, 0, ?1, 'bank', 'c', ?2, ?3)",
                    rusqlite::params![id, tiyn, minutes * minute],
                )?)
            })
        };
        let bank = || vec!["bank".to_owned()];
        pay(1, 100, 10_000).await.expect("a payment");
        pay(2, 590, 20_000).await.expect("a payment");
        let totals = store.totals(bank(), day, at(600)).await.expect("totals");
        assert_eq!((totals.payments, totals.paid.tiyn()), (2, 30_000));
        // Within the last SETTLE_MS a commit may still come, and is read at each view.
        pay(3, 599, 1).await.expect("a payment");
        let totals = store.totals(bank(), day, at(601)).await.expect("totals");
        assert_eq!((totals.payments, totals.paid.tiyn()), (3, 30_001));
        // Older than that, what was read is kept: a row that somehow came later is not read
        // again (this one, put straight in the table, shows it is the kept sum that is used).
        pay(4, 200, 4_000).await.expect("a row out of time");
        let totals = store.totals(bank(), day, at(700)).await.expect("totals");
        assert_eq!((totals.payments, totals.paid.tiyn()), (3, 30_001));
        // A clock that was set ahead and then put right: time passes on the monotonic clock
        // while the clock's time stays at the last view's. Within a minute it is taken as the
        // clocks' drift and what was kept stays; past that, what was kept may reach past the
        // time commits are stamped with now, so the day is read whole again.
        let age_kept = |by: std::time::Duration| {
            if let Ok(mut kept) = store.inner.settled_totals.lock()
                && let Some(kept) = kept.as_mut()
            {
                kept.seen_mono = kept.seen_mono.checked_sub(by).expect("a monotonic clock");
            }
        };
        age_kept(std::time::Duration::from_secs(30));
        let totals = store.totals(bank(), day, at(700)).await.expect("totals");
        assert_eq!((totals.payments, totals.paid.tiyn()), (3, 30_001));
        age_kept(std::time::Duration::from_secs(120));
        let totals = store.totals(bank(), day, at(700)).await.expect("totals");
        assert_eq!((totals.payments, totals.paid.tiyn()), (4, 34_001));
        // Another set of MPPs, or another day, is read whole.
        let both = vec!["bank".to_owned(), "wallet".to_owned()];
        let totals = store.totals(both, day, at(700)).await.expect("totals");
        assert_eq!((totals.payments, totals.paid.tiyn()), (4, 34_001));
        let next_day = (
            day.1,
            Timestamp::from_millisecond(2880 * minute).expect("a time"),
        );
        let totals = store
            .totals(bank(), next_day, at(1500))
            .await
            .expect("totals");
        assert_eq!(totals, Totals::default());
    }
}
