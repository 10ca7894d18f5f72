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

impl Store {
    /// Totals of `[from, to)` over the MPPs named (the catalog's), each read by its index.
    pub(crate) async fn totals(
        &self,
        mpps: Vec<String>,
        (from, to): (Timestamp, Timestamp),
    ) -> StoreResult<Totals> {
        self.read_db(move |db| {
            let (from, to) = (ms(from), ms(to));
            let mut totals = Totals::default();
            let too_large = || StoreError::Corrupt("totals out of range".to_owned());
            for mpp in &mpps {
                let (count, paid) = count_and_sum(db, "payments", "confirmed", mpp, (from, to))?;
                totals.payments += count;
                totals.paid = totals.paid.checked_sum(paid).ok_or_else(too_large)?;
                let (count, refunded) = count_and_sum(db, "refunds", "completed", mpp, (from, to))?;
                totals.refunds += count;
                totals.refunded = totals
                    .refunded
                    .checked_sum(refunded)
                    .ok_or_else(too_large)?;
            }
            Ok(totals)
        })
        .await
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
}
