//! Reads for the operator console and the MPP's cabinet pages (`console/`), on either backend:
//! the day's totals, a purchase found by what the operator types, the refunds of one MPP and the
//! refunds of one purchase with their delivery state. Each goes through an index: totals and an
//! MPP's operations by `(mpp, finished_at_ms)` (the registers' indexes), one MPP at a time.

use jiff::Timestamp;
use tolem_wire::Amount;

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
    pub paid: Amount,
    pub refunds: u64,
    pub refunded: Amount,
}

/// `(count, sum of amount_tiyn)` of the rows `sql` picks for one MPP in `[from, to)`.
fn count_and_sum(db: Db<'_>, sql: &str, mpp: &str, from: i64, to: i64) -> StoreResult<(u64, u64)> {
    let row = db.query_row(sql, args![mpp, from, to], |r| {
        Ok((r.get::<i64>(0)?, r.get::<i64>(1)?))
    })?;
    let (count, sum) = row.unwrap_or((0, 0));
    let corrupt = || StoreError::Corrupt("a negative count or sum".to_owned());
    Ok((
        u64::try_from(count).map_err(|_| corrupt())?,
        u64::try_from(sum).map_err(|_| corrupt())?,
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
            // PostgreSQL's SUM of a BIGINT is a NUMERIC: cast back.
            for mpp in &mpps {
                let (count, tiyn) = count_and_sum(
                    db,
                    "SELECT COUNT(*), CAST(COALESCE(SUM(amount_tiyn), 0) AS BIGINT) FROM payments \
                     WHERE mpp = ?1 AND finished_at_ms >= ?2 AND finished_at_ms < ?3 \
                     AND status = 'confirmed'",
                    mpp,
                    from,
                    to,
                )?;
                totals.payments += count;
                totals.paid = Amount::checked_from_tiyn(tiyn)
                    .and_then(|sum| totals.paid.checked_add(sum))
                    .ok_or_else(too_large)?;
                let (count, tiyn) = count_and_sum(
                    db,
                    "SELECT COUNT(*), CAST(COALESCE(SUM(amount_tiyn), 0) AS BIGINT) FROM refunds \
                     WHERE mpp = ?1 AND finished_at_ms >= ?2 AND finished_at_ms < ?3 \
                     AND status = 'completed'",
                    mpp,
                    from,
                    to,
                )?;
                totals.refunds += count;
                totals.refunded = Amount::checked_from_tiyn(tiyn)
                    .and_then(|sum| totals.refunded.checked_add(sum))
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
            if mpps.contains(&text) {
                ids.extend(db.query_map(
                    "SELECT id FROM payments WHERE mpp = ?1 ORDER BY finished_at_ms DESC LIMIT ?2",
                    args![text, limit_sql],
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
