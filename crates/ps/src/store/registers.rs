//! Registers in the store (SQLite or PostgreSQL): the operations of a register read page by page,
//! and the queue of register e-mails (one `register_deliveries` row per MPP, kind and period, which
//! the UNIQUE key keeps from ever being queued twice, whichever nodes queue it at once, plus its
//! `outbox` row): what a claimed row sends and its marking as sent. Claiming, closing and retrying
//! the outbox rows is `outbox.rs`'s, for every kind; when and why is the sender's
//! (`registers/delivery.rs`).

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags};
use tolem_wire::Amount;

use super::db::{Db, PgConn, Row, args};
use super::outbox::{OutboxEntry, OutboxKind, STATE_COLUMNS, state, state_columns};
use super::payments::{at, ms};
use super::{Store, StoreError, StoreResult, Tx};
use crate::catalog::Mpp;
use crate::domain::PaymentId;
use crate::domain::commission::{Rate, RefundCommission};

/// What a register row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpKind {
    Payment,
    Refund,
}

/// A refund's payment, for the refund's commission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundOf {
    pub payment_id: PaymentId,
    pub payment_amount: Amount,
    /// What the payment's completed refunds returned before this one.
    pub refunded_before: Amount,
    /// Whether it gives commission back, as fixed when the refund was made (DECISIONS 37);
    /// `None` for a refund made before that was kept: `registers.refund_commission` decides.
    pub mode: Option<RefundCommission>,
}

/// The commissions fixed with a payment when it was confirmed (DECISIONS 37, 38).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedRates {
    /// For the payment service: the daily register.
    pub payment: Rate,
    /// For the «Сервис» service: the monthly register.
    pub service: Rate,
}

/// A confirmed payment or a completed refund, as a register shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterOp {
    pub kind: OpKind,
    /// The PS operation id (payment id or refund id).
    pub id: i64,
    pub customer_id: String,
    /// The MPP operation id: `mppPaymentId`, or for a refund its `refundId`.
    pub mpp_operation_id: String,
    pub finished_at: Timestamp,
    pub amount: Amount,
    pub refund_of: Option<RefundOf>,
    /// The rates fixed with the payment (for a refund, with its payment); `None` only for a
    /// payment confirmed without them (a row written by another tool).
    pub rates: Option<FixedRates>,
}

impl RegisterOp {
    /// Where the row goes in a register: by time, payments before refunds, then by id.
    pub(crate) fn order_key(&self) -> (Timestamp, OpKind, i64) {
        (self.finished_at, self.kind, self.id)
    }
}

/// A read-only connection of its own for making one register, holding one read transaction so
/// that all pages see the same snapshot. It keeps the request path's read pool free while a large
/// register takes seconds. Blocking: use it on a blocking thread. Its queries are the store's
/// portable SQL; the connection is a SQLite file's (a PostgreSQL store would hand one of its
/// connections in a REPEATABLE READ, READ ONLY transaction instead).
pub(crate) struct RegisterReader {
    conn: ReaderConn,
}

/// The reader's own connection, outside the store's pools: a register may take a while to read,
/// and must not hold a connection the payments need.
enum ReaderConn {
    Sqlite(Connection),
    Postgres(Box<PgConn>),
}

/// Where the previous page ended: (finished_at_ms, id) of its last row.
pub(crate) type PageCursor = (i64, i64);

fn tiyn(value: i64, what: &str) -> StoreResult<Amount> {
    u64::try_from(value)
        .map(Amount::from_tiyn)
        .map_err(|_| StoreError::Corrupt(format!("negative amount in {what}")))
}

fn finished(ms: i64) -> StoreResult<Timestamp> {
    at(Some(ms))?.ok_or_else(|| StoreError::Corrupt("no finish time".to_owned()))
}

/// The stored rate columns: (bps, min, service bps, service min).
type RateColumns = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);

/// Reads the four rate columns starting at `first`.
fn rate_columns(r: &Row<'_>, first: usize) -> StoreResult<RateColumns> {
    Ok((
        r.get(first)?,
        r.get(first + 1)?,
        r.get(first + 2)?,
        r.get(first + 3)?,
    ))
}

fn fixed_rates(columns: RateColumns) -> StoreResult<Option<FixedRates>> {
    let bps = |value: i64| {
        u32::try_from(value).map_err(|_| StoreError::Corrupt("a commission rate".to_owned()))
    };
    let min = |value: Option<i64>| value.map(|v| tiyn(v, "a commission minimum")).transpose();
    match columns {
        (Some(payment_bps), payment_min, Some(service_bps), service_min) => Ok(Some(FixedRates {
            payment: Rate {
                bps: bps(payment_bps)?,
                min: min(payment_min)?,
            },
            service: Rate {
                bps: bps(service_bps)?,
                min: min(service_min)?,
            },
        })),
        _ => Ok(None),
    }
}

type PaymentRow = (i64, String, String, i64, i64, RateColumns);

fn payment_row(r: &Row<'_>) -> StoreResult<PaymentRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        rate_columns(r, 5)?,
    ))
}

type RefundRow = (
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    RateColumns,
    Option<String>,
);

fn refund_row(r: &Row<'_>) -> StoreResult<RefundRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        rate_columns(r, 7)?,
        r.get(11)?,
    ))
}

/// An MPP's catalog entry, which holds its commission rates.
const MPP_DOC: &str = "SELECT doc FROM catalog WHERE kind = 'mpp' AND key = ?1";

/// Asks ahead for what [`commission_rates`] of `mpp` will read ([`Db::prefetch`]).
pub(super) fn prefetch_commission_rates(db: Db<'_>, mpp: &str) -> StoreResult<()> {
    db.prefetch(MPP_DOC, args![mpp])
}

/// The commission rates (payment, service) an MPP has in the operator data at this moment, if it
/// is in the catalog. A confirmed payment's rates are fixed from this once (DECISIONS 37), read in
/// the confirming transaction, so what a register shows never depends on when it is made: the
/// payment's save writes them only where none are fixed yet ([`super::payments`]' `save`, in the
/// same UPDATE as the confirmation, so it holds on any backend).
pub(super) fn commission_rates(db: Db<'_>, mpp: &str) -> StoreResult<Option<(Rate, Rate)>> {
    let doc = db.query_row(MPP_DOC, args![mpp], |r| r.get::<String>(0))?;
    let Some(doc) = doc else {
        return Ok(None);
    };
    let mpp: Mpp = serde_json::from_str(&doc)
        .map_err(|e| StoreError::Corrupt(format!("catalog mpp {mpp}: {e}")))?;
    Ok(Some((mpp.payment_rate(), mpp.service_rate())))
}

/// Where a page starts: the lower time bound for the index seek (the cursor's time, so that a page
/// never rescans the rows of earlier pages) and the (time, id) the page's rows come after.
fn start(from: Timestamp, cursor: Option<PageCursor>) -> (i64, i64, i64) {
    match cursor {
        Some((after_ms, after_id)) => (after_ms.max(ms(from)), after_ms, after_id),
        None => (ms(from), ms(from) - 1, i64::MAX),
    }
}

impl RegisterReader {
    fn db(&self) -> Db<'_> {
        match &self.conn {
            ReaderConn::Sqlite(conn) => Db::Lite(conn),
            ReaderConn::Postgres(conn) => Db::Pg(conn),
        }
    }

    /// Up to `limit` confirmed payments of `mpp` finished in `[from, to)` after `cursor`, in order.
    pub(crate) fn payments(
        &self,
        mpp: &str,
        (from, to): (Timestamp, Timestamp),
        cursor: Option<PageCursor>,
        limit: usize,
    ) -> StoreResult<Vec<RegisterOp>> {
        let (lower, after_ms, after_id) = start(from, cursor);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.db().query_map(
            "SELECT id, COALESCE(customer_id, ''), COALESCE(mpp_payment_id, ''), finished_at_ms, \
             amount_tiyn, commission_bps, commission_min_tiyn, service_commission_bps, \
             service_commission_min_tiyn FROM payments WHERE mpp = ?1 AND status = 'confirmed' \
             AND finished_at_ms >= ?2 AND finished_at_ms < ?3 AND (finished_at_ms, id) > (?4, ?5) \
             ORDER BY finished_at_ms, id LIMIT ?6",
            args![mpp, lower, ms(to), after_ms, after_id, limit],
            payment_row,
        )?;
        let mut ops = Vec::new();
        for (id, customer_id, mpp_operation_id, finished_ms, amount, rates) in rows {
            ops.push(RegisterOp {
                kind: OpKind::Payment,
                id,
                customer_id,
                mpp_operation_id,
                finished_at: finished(finished_ms)?,
                amount: tiyn(amount, "a payment")?,
                refund_of: None,
                rates: fixed_rates(rates)?,
            });
        }
        Ok(ops)
    }

    /// Up to `limit` completed refunds of `mpp` finished in `[from, to)` after `cursor`, in order,
    /// each with its payment and what the payment's earlier completed refunds returned.
    pub(crate) fn refunds(
        &self,
        mpp: &str,
        (from, to): (Timestamp, Timestamp),
        cursor: Option<PageCursor>,
        limit: usize,
    ) -> StoreResult<Vec<RegisterOp>> {
        let (lower, after_ms, after_id) = start(from, cursor);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // PostgreSQL's SUM of a BIGINT is a NUMERIC: cast back.
        let rows = self.db().query_map(
            "SELECT r.id, COALESCE(r.customer_id, ''), r.finished_at_ms, r.amount_tiyn, \
             r.payment_id, p.amount_tiyn, \
             (SELECT CAST(COALESCE(SUM(b.amount_tiyn), 0) AS BIGINT) FROM refunds b \
              WHERE b.payment_id = r.payment_id AND b.status = 'completed' \
              AND (b.finished_at_ms, b.id) < (r.finished_at_ms, r.id)), \
             p.commission_bps, p.commission_min_tiyn, p.service_commission_bps, \
             p.service_commission_min_tiyn, r.commission_mode \
             FROM refunds r JOIN payments p ON p.id = r.payment_id \
             WHERE r.mpp = ?1 AND r.status = 'completed' AND r.finished_at_ms >= ?2 \
             AND r.finished_at_ms < ?3 AND (r.finished_at_ms, r.id) > (?4, ?5) \
             ORDER BY r.finished_at_ms, r.id LIMIT ?6",
            args![mpp, lower, ms(to), after_ms, after_id, limit],
            refund_row,
        )?;
        let mut ops = Vec::new();
        for (
            id,
            customer_id,
            finished_ms,
            amount,
            payment_id,
            payment_amount,
            before,
            rates,
            mode,
        ) in rows
        {
            let mode = mode
                .map(|m| {
                    RefundCommission::parse(&m).ok_or_else(|| {
                        StoreError::Corrupt(format!("a refund's commission mode {m:?}"))
                    })
                })
                .transpose()?;
            ops.push(RegisterOp {
                kind: OpKind::Refund,
                id,
                customer_id,
                // The refundId the MPP was given is the refund's PS id (DECISIONS 24, 27).
                mpp_operation_id: id.to_string(),
                finished_at: finished(finished_ms)?,
                amount: tiyn(amount, "a refund")?,
                refund_of: Some(RefundOf {
                    payment_id: PaymentId::new(payment_id),
                    payment_amount: tiyn(payment_amount, "a refunded payment")?,
                    refunded_before: tiyn(before, "earlier refunds")?,
                    mode,
                }),
                rates: fixed_rates(rates)?,
            });
        }
        Ok(ops)
    }
}

/// A register e-mail to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterDue {
    pub mpp: String,
    pub kind: String,
    pub period: String,
}

/// A register e-mail as the outbox sends it: which register, and which sending of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterToSend {
    pub due: RegisterDue,
    /// 1 for the scheduled e-mail; each sending the operator asks for again adds one, so that a
    /// resent register carries a Message-ID of its own (a receiver drops a copy of one it has).
    pub sending: u32,
}

/// What asking for a register's e-mail ([`Store::send_register`]) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterSending {
    /// Queued, as its `sending`-th e-mail: it was never queued (1), or was sent before.
    Queued { sending: u32 },
    /// It was waiting to be sent (queued, or failing and retried): made due at once instead.
    AlreadyWaiting { sending: u32 },
    /// The caller saw an earlier sending than this one, asked since: nothing was done.
    AskedSince { sending: u32 },
}

/// A register delivery as the operator (and the tests) see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterDeliveryView {
    /// The row's id: the cursor of the admin API's list.
    pub id: i64,
    pub due: RegisterDue,
    /// How many sendings were asked: 1, and one more for each the operator asked again.
    pub sendings: u32,
    /// When the latest sending went out (none while it waits).
    pub sent_at: Option<Timestamp>,
    pub sent_to: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub flagged: bool,
}

impl Tx<'_> {
    /// Queues the e-mail of `due` with its outbox row, unless it was ever queued; false then. One
    /// statement decides: of several nodes queuing the same e-mail at once, only one inserts it.
    fn queue_register(&self, due: &RegisterDue, now: Timestamp) -> StoreResult<bool> {
        let inserted = self.db.query_row(
            "INSERT INTO register_deliveries (mpp, kind, period, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (mpp, kind, period) DO NOTHING RETURNING id",
            args![due.mpp, due.kind, due.period, ms(now)],
            |r| r.get::<i64>(0),
        )?;
        let Some(id) = inserted else {
            return Ok(false);
        };
        self.enqueue(OutboxKind::RegisterEmail, id, "", now)?;
        Ok(true)
    }

    /// The register e-mail a claimed outbox row delivers.
    pub(crate) fn register_to_send(&self, entry: &OutboxEntry) -> StoreResult<RegisterToSend> {
        self.db
            .query_row(
                "SELECT mpp, kind, period, sendings FROM register_deliveries WHERE id = ?1",
                args![entry.ref_id],
                |r| {
                    Ok(RegisterToSend {
                        due: RegisterDue {
                            mpp: r.get(0)?,
                            kind: r.get(1)?,
                            period: r.get(2)?,
                        },
                        sending: u32::try_from(r.get::<i64>(3)?).unwrap_or(u32::MAX),
                    })
                },
            )?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("outbox {}: no register delivery", entry.id))
            })
    }

    /// How many sendings of the register delivery `delivery_id` were asked (`None`: no such
    /// delivery).
    pub(crate) fn register_sendings(&self, delivery_id: i64) -> StoreResult<Option<u32>> {
        Ok(self
            .db
            .query_row(
                "SELECT sendings FROM register_deliveries WHERE id = ?1",
                args![delivery_id],
                |r| r.get::<i64>(0),
            )?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Marks the register delivery `delivery_id` sent: when, to whom, under which Message-ID. The
    /// caller closed its outbox row first (only the first final outcome of the current sending
    /// gets here); the row is marked once all the same, so what it says is that sending's.
    pub(crate) fn mark_register_sent(
        &self,
        delivery_id: i64,
        now: Timestamp,
        to: &str,
        message_id: &str,
    ) -> StoreResult<()> {
        self.db.execute(
            "UPDATE register_deliveries SET sent_at_ms = ?1, sent_to = ?2, message_id = ?3 \
             WHERE id = ?4 AND sent_at_ms IS NULL",
            args![ms(now), to, message_id, delivery_id],
        )?;
        Ok(())
    }
}

impl Store {
    /// A reader of register operations (blocking; see [`RegisterReader`]).
    pub(crate) fn register_reader(&self) -> StoreResult<RegisterReader> {
        if let Some(conn) = self.postgres_connection()? {
            // One snapshot for the whole register, as SQLite's read transaction gives.
            conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
            return Ok(RegisterReader {
                conn: ReaderConn::Postgres(Box::new(conn)),
            });
        }
        let conn = Connection::open_with_flags(
            self.path(),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("BEGIN DEFERRED")?;
        // The snapshot is taken at its first read; the register goes on only once every commit
        // in it is on disk (`log_sync.rs`).
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        self.wait_for_seen()?;
        Ok(RegisterReader {
            conn: ReaderConn::Sqlite(conn),
        })
    }

    /// The last working day whose registers the scheduler queued (`YYYY-MM-DD`).
    pub async fn register_last_run(&self) -> StoreResult<Option<String>> {
        self.read_db(|db| {
            db.query_row(
                "SELECT last_run_date FROM register_schedule WHERE id = 1",
                args![],
                |r| r.get::<String>(0),
            )
        })
        .await
    }

    /// Sets the last run back to `day` (`YYYY-MM-DD`) when a later one is recorded: a run made
    /// while the wall clock was ahead, found once it is right again.
    pub(crate) async fn set_register_last_run_back(&self, day: String) -> StoreResult<()> {
        self.transaction(move |tx| {
            tx.db.execute(
                "UPDATE register_schedule SET last_run_date = ?1 WHERE id = 1 AND last_run_date > ?1",
                args![day],
            )?;
            Ok(())
        })
        .await
    }

    /// Queues the e-mails of `due` that were never queued (each with its outbox row) and records
    /// `run_date` as the last run, all in one transaction; returns how many were new.
    pub(crate) async fn queue_registers(
        &self,
        due: Vec<RegisterDue>,
        run_date: String,
        now: Timestamp,
    ) -> StoreResult<usize> {
        self.transaction(move |tx| {
            let mut queued = 0;
            for item in &due {
                if tx.queue_register(item, now)? {
                    queued += 1;
                }
            }
            // The later date stays (scalar MAX is SQLite's alone; `YYYY-MM-DD` sorts as text
            // the same way under any collation, since every such date has the same length).
            tx.db.execute(
                "INSERT INTO register_schedule (id, last_run_date, updated_at_ms) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET last_run_date = CASE \
                 WHEN excluded.last_run_date > register_schedule.last_run_date \
                 THEN excluded.last_run_date ELSE register_schedule.last_run_date END, \
                 updated_at_ms = excluded.updated_at_ms",
                args![run_date, ms(now)],
            )?;
            Ok(queued)
        })
        .await
    }

    /// Asks for the e-mail of `due` (the operator's resend, or a register the catch-up bound left
    /// out), in one transaction: queued if it never was; made due at once if it waits to be
    /// sent; queued again as its next sending if it was sent. `seen`, when given, is the sending
    /// the caller saw: one asked since is left alone. Of several asking at once, one reopens a
    /// sent e-mail and the others find it waiting (or, naming the sending they saw, asked since).
    pub(crate) async fn send_register(
        &self,
        due: RegisterDue,
        now: Timestamp,
        seen: Option<u32>,
    ) -> StoreResult<RegisterSending> {
        self.transaction(move |tx| {
            if tx.queue_register(&due, now)? {
                return Ok(RegisterSending::Queued { sending: 1 });
            }
            let kind = OutboxKind::RegisterEmail.as_str();
            // The row, with its earlier sending as it stands before the row forgets it.
            let (id, sendings, at, to, message) = tx
                .db
                .query_row(
                    "SELECT id, sendings, sent_at_ms, sent_to, message_id FROM register_deliveries \
                     WHERE mpp = ?1 AND kind = ?2 AND period = ?3",
                    args![due.mpp, due.kind, due.period],
                    |r| {
                        Ok((
                            r.get::<i64>(0)?,
                            r.get::<i64>(1)?,
                            r.get::<Option<i64>>(2)?,
                            r.get::<Option<String>>(3)?,
                            r.get::<Option<String>>(4)?,
                        ))
                    },
                )?
                .ok_or_else(|| StoreError::Corrupt("a register delivery vanished".to_owned()))?;
            let sending = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
            if seen.is_some_and(|seen| seen != sending(sendings)) {
                return Ok(RegisterSending::AskedSince {
                    sending: sending(sendings),
                });
            }
            // Sent: its outbox row opens again as a new e-mail (its earlier attempts stay on
            // record under the same row), and the delivery forgets the earlier sending, which
            // stays in the log.
            let reopened = tx.db.execute(
                "UPDATE outbox SET done_at_ms = NULL, due_at_ms = ?1, created_at_ms = ?1, \
                 lease_until_ms = 0, flagged = 0, last_error = NULL \
                 WHERE kind = ?2 AND ref_id = ?3 AND done_at_ms IS NOT NULL",
                args![ms(now), kind, id],
            )?;
            if reopened == 1 {
                tx.db.execute(
                    "UPDATE register_deliveries SET sendings = sendings + 1, sent_at_ms = NULL, \
                     sent_to = NULL, message_id = NULL WHERE id = ?1",
                    args![id],
                )?;
                tracing::info!(
                    delivery_id = id,
                    sending = sendings,
                    sent_at_ms = at,
                    sent_to = to.as_deref(),
                    message_id = message.as_deref(),
                    "a register e-mail asked again; its earlier sending"
                );
                return Ok(RegisterSending::Queued {
                    sending: sending(sendings + 1),
                });
            }
            tx.make_due(OutboxKind::RegisterEmail, id, now)?;
            Ok(RegisterSending::AlreadyWaiting {
                sending: sending(sendings),
            })
        })
        .await
    }

    /// Register deliveries, newest first; `after` (a delivery id, the last of the previous page)
    /// starts the page past it.
    pub async fn register_deliveries(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<RegisterDeliveryView>> {
        self.read_db(move |db| {
            // PostgreSQL cannot tell the type of a parameter only tested for NULL: cast it.
            let sql = format!(
                "SELECT d.mpp, d.kind, d.period, d.sent_at_ms, d.sent_to, d.id, d.sendings, {STATE_COLUMNS} \
                 FROM register_deliveries d LEFT JOIN outbox o ON o.kind = ?1 AND o.ref_id = d.id \
                 WHERE (CAST(?3 AS BIGINT) IS NULL OR d.id < ?3) ORDER BY d.id DESC LIMIT ?2"
            );
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let kind = OutboxKind::RegisterEmail.as_str();
            let rows = db.query_map(&sql, args![kind, limit, after], |r| {
                Ok((
                    RegisterDue {
                        mpp: r.get(0)?,
                        kind: r.get(1)?,
                        period: r.get(2)?,
                    },
                    r.get::<Option<i64>>(3)?,
                    r.get::<Option<String>>(4)?,
                    r.get::<i64>(5)?,
                    r.get::<i64>(6)?,
                    state_columns(r, 7)?,
                ))
            })?;
            let mut views = Vec::new();
            for (due, sent_at, sent_to, id, sendings, delivery) in rows {
                let delivery = state(delivery)?;
                views.push(RegisterDeliveryView {
                    id,
                    due,
                    sendings: u32::try_from(sendings).unwrap_or(u32::MAX),
                    sent_at: at(sent_at)?,
                    sent_to,
                    attempts: delivery.attempts,
                    last_error: delivery.last_error,
                    flagged: delivery.flagged,
                });
            }
            Ok(views)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;

    /// What saving a confirmed payment does to its rates (`Tx::save_payment`).
    fn fix_rates(conn: &Connection, id: i64) {
        let db = Db::Lite(conn);
        let payment = super::super::payments::load(db, PaymentId::new(id))
            .expect("read")
            .expect("the payment");
        let policy = crate::domain::Policy {
            confirm_window: jiff::SignedDuration::from_secs(60),
            confirm_grace: jiff::SignedDuration::from_secs(5),
        };
        Tx { db }.save_payment(&payment, &policy).expect("saved");
    }

    fn rates(conn: &Connection, id: i64) -> RateColumns {
        Db::Lite(conn)
            .query_row(
                "SELECT commission_bps, commission_min_tiyn, service_commission_bps, service_commission_min_tiyn \
                 FROM payments WHERE id = ?1",
                args![id],
                |r| rate_columns(r, 0),
            )
            .expect("read")
            .expect("the payment")
    }

    #[test]
    fn payments_confirmed_before_the_migration_keep_the_rates_of_that_moment() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        migrations::run_to(&mut conn, 7).expect("migrations 1-7");
        conn.execute_batch(
            r#"INSERT INTO catalog (kind, key, doc, updated_at_ms) VALUES ('mpp', 'wallet',
                 '{"caller_name":"wallet","name":"W","refund_url":"http://w","commission_bps":80,"commission_min":"1.50"}', 0);
               INSERT INTO catalog (kind, key, doc, updated_at_ms) VALUES ('mpp', 'bank',
                 '{"caller_name":"bank","name":"B","refund_url":"http://b","commission_bps":100}', 0);
               INSERT INTO payments (id, kind, status, trade_point_id, created_at_ms, receipt_token, mpp, customer_id)
                 VALUES (1, 'dynamic', 'confirmed', 1, 0, 'a', 'wallet', 'c'),
                        (2, 'dynamic', 'confirmed', 1, 0, 'b', 'bank', 'c'),
                        (3, 'dynamic', 'scanned', 1, 0, 'c', 'bank', 'c');"#,
        )
        .expect("an older database");
        migrations::run(&mut conn).expect("the rest");
        assert_eq!(rates(&conn, 1), (Some(80), Some(150), Some(80), Some(150)));
        assert_eq!(rates(&conn, 2), (Some(100), None, Some(100), None));
        assert_eq!(
            rates(&conn, 3),
            (None, None, None, None),
            "not confirmed yet"
        );
        // Confirmed later: fixed then, from the catalog as it is then; and only once.
        conn.execute("UPDATE payments SET status = 'confirmed' WHERE id = 3", [])
            .expect("confirmed");
        fix_rates(&conn, 3);
        assert_eq!(rates(&conn, 3), (Some(100), None, Some(100), None));
        conn.execute(
            "UPDATE catalog SET doc = json_set(doc, '$.commission_bps', 300, '$.service_commission_bps', 40) \
             WHERE key = 'bank'",
            [],
        )
        .expect("a new rate");
        fix_rates(&conn, 3);
        assert_eq!(rates(&conn, 3), (Some(100), None, Some(100), None));
        let fixed = fixed_rates(rates(&conn, 1)).expect("valid").expect("fixed");
        assert_eq!(
            fixed.payment,
            Rate {
                bps: 80,
                min: Some(Amount::from_tiyn(150))
            }
        );
    }
}
