//! Refunds in SQLite: the `refunds` rows (a return QR and the refund made with it are one row)
//! and their per-table operations, read by the edges and run by the refunds use case
//! (`refunds/`) in its transaction, which applies the rules; the outbox row that queues a
//! refund's delivery (`refund_delivery.rs` takes it from there). No flow and no API code here.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, named_params, params};
use tolem_wire::{Amount, Locale};

use super::payments::{at, load as load_payment, ms, scan_locale, tiyn_i64};
use super::{Store, StoreError, StoreResult};
use crate::domain::refund::PosAnswer;
use crate::domain::{
    CallerName, DeviceId, Owner, PaymentId, Refund, RefundId, RefundKind, RefundStatus,
    TradePointId,
};

pub(super) const COLUMNS: &str = "id, kind, status, trade_point_id, device_id, external_id, qr_token, expire_at_ms, mpp, \
    customer_id, identified_at_ms, payment_id, amount_tiyn, requested_at_ms, finished_at_ms, mpp_result, \
    created_at_ms, receipt_token, pos_answer, locale";

/// What a return QR row holds beyond any refund's: what the QR shows and until when.
#[derive(Clone, Debug)]
pub(crate) struct NewReturnQr {
    pub external_id: Option<String>,
    pub qr_token: String,
    pub expire_at: Timestamp,
}

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<RawRefund> {
    Ok(RawRefund {
        id: r.get(0)?,
        kind: r.get(1)?,
        status: r.get(2)?,
        trade_point_id: r.get(3)?,
        device_id: r.get(4)?,
        external_id: r.get(5)?,
        qr_token: r.get(6)?,
        expire_at_ms: r.get(7)?,
        mpp: r.get(8)?,
        customer_id: r.get(9)?,
        identified_at_ms: r.get(10)?,
        payment_id: r.get(11)?,
        amount_tiyn: r.get(12)?,
        requested_at_ms: r.get(13)?,
        finished_at_ms: r.get(14)?,
        mpp_result: r.get(15)?,
        created_at_ms: r.get(16)?,
        receipt_token: r.get(17)?,
        pos_answer: r.get(18)?,
        locale: r.get(19)?,
    })
}

pub(super) struct RawRefund {
    id: RefundId,
    kind: String,
    status: String,
    trade_point_id: TradePointId,
    device_id: Option<DeviceId>,
    external_id: Option<String>,
    qr_token: Option<String>,
    expire_at_ms: Option<i64>,
    mpp: Option<CallerName>,
    customer_id: Option<String>,
    identified_at_ms: Option<i64>,
    payment_id: Option<PaymentId>,
    amount_tiyn: Option<i64>,
    requested_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    mpp_result: Option<String>,
    created_at_ms: i64,
    receipt_token: String,
    pos_answer: Option<String>,
    locale: Option<String>,
}

impl RawRefund {
    pub(super) fn check(self) -> StoreResult<Refund> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("refund {}: {what}", self.id));
        let owner = match (self.mpp, self.customer_id) {
            (Some(mpp), Some(customer_id)) => Some(Owner { mpp, customer_id }),
            (None, None) => None,
            _ => return Err(corrupt("half an owner")),
        };
        let amount = match self.amount_tiyn {
            Some(t) => Some(Amount::from_tiyn(
                u64::try_from(t).map_err(|_| corrupt("negative amount"))?,
            )),
            None => None,
        };
        Ok(Refund {
            id: self.id,
            kind: RefundKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?,
            status: RefundStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            trade_point_id: self.trade_point_id,
            device_id: self.device_id,
            external_id: self.external_id,
            qr_token: self.qr_token,
            expire_at: at(self.expire_at_ms)?,
            owner,
            identified_at: at(self.identified_at_ms)?,
            payment_id: self.payment_id,
            amount,
            requested_at: at(self.requested_at_ms)?,
            finished_at: at(self.finished_at_ms)?,
            mpp_result: self.mpp_result,
            created_at: at(Some(self.created_at_ms))?.ok_or_else(|| corrupt("created_at"))?,
            receipt_token: self.receipt_token,
            pos_answer: match self.pos_answer {
                Some(text) => Some(PosAnswer::parse(&text).ok_or_else(|| corrupt("pos_answer"))?),
                None => None,
            },
            locale: locale_of(self.id, self.locale.as_deref()),
        })
    }
}

/// A stored language code; one that is not known is logged and read as none (ru-RU): a refund
/// must never be held back by the language it is announced in.
fn locale_of(refund_id: RefundId, code: Option<&str>) -> Option<Locale> {
    let code = code?;
    let locale = Locale::from_code(code);
    if locale.is_none() {
        tracing::warn!(
            refund_id = refund_id.get(),
            code,
            "a refund with an unknown language; ru-RU is used"
        );
    }
    locale
}

fn load_where(
    conn: &Connection,
    clause: &str,
    value: &dyn rusqlite::ToSql,
) -> StoreResult<Option<Refund>> {
    let sql = format!("SELECT {COLUMNS} FROM refunds WHERE {clause}");
    let raw = conn
        .prepare_cached(&sql)?
        .query_row([value], from_row)
        .optional()?;
    raw.map(RawRefund::check).transpose()
}

pub(super) fn load(conn: &Connection, id: RefundId) -> StoreResult<Option<Refund>> {
    load_where(conn, "id = ?1", &id)
}

fn save(conn: &Connection, r: &Refund) -> StoreResult<()> {
    let (mpp, customer) = match &r.owner {
        Some(o) => (Some(o.mpp.as_str()), Some(o.customer_id.as_str())),
        None => (None, None),
    };
    conn.prepare_cached(
        "UPDATE refunds SET status = :status, mpp = :mpp, customer_id = :customer, identified_at_ms = :identified, \
         payment_id = :payment, amount_tiyn = :amount, requested_at_ms = :requested, finished_at_ms = :finished, \
         mpp_result = :result, pos_answer = :answer, locale = :locale WHERE id = :id",
    )?
    .execute(named_params! {
        ":status": r.status.as_str(),
        ":mpp": mpp,
        ":customer": customer,
        ":identified": r.identified_at.map(ms),
        ":payment": r.payment_id,
        ":amount": r.amount.map(tiyn_i64).transpose()?,
        ":requested": r.requested_at.map(ms),
        ":finished": r.finished_at.map(ms),
        ":result": r.mpp_result,
        ":answer": r.pos_answer.map(PosAnswer::as_str),
        ":locale": r.locale.map(Locale::code),
        ":id": r.id,
    })?;
    Ok(())
}

/// A refund row to insert: a return QR (with `qr`) or a refund placed without one.
#[derive(Clone, Debug)]
pub(crate) struct NewRefund {
    pub kind: RefundKind,
    pub status: RefundStatus,
    pub trade_point_id: TradePointId,
    pub device_id: Option<DeviceId>,
    pub qr: Option<NewReturnQr>,
    pub receipt_token: String,
}

fn insert(conn: &Connection, row: &NewRefund, now: Timestamp) -> StoreResult<Refund> {
    let qr = row.qr.as_ref();
    conn.prepare_cached(
        "INSERT INTO refunds (kind, status, trade_point_id, device_id, external_id, qr_token, expire_at_ms, \
         created_at_ms, receipt_token, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        row.kind.as_str(),
        row.status.as_str(),
        row.trade_point_id,
        row.device_id,
        qr.and_then(|q| q.external_id.clone()),
        qr.map(|q| q.qr_token.clone()),
        qr.map(|q| ms(q.expire_at)),
        ms(now),
        row.receipt_token,
        // One id space with payments (DECISIONS 40).
        super::ids::next_operation_id(conn)?,
    ])?;
    let id = RefundId::new(conn.last_insert_rowid());
    load(conn, id)?.ok_or_else(|| StoreError::Corrupt(format!("refund {id} vanished")))
}

/// The amounts of a purchase's refunds that hold part of it.
fn held_amounts(conn: &Connection, payment_id: PaymentId) -> StoreResult<Vec<Amount>> {
    let mut stmt = conn.prepare_cached(
        "SELECT amount_tiyn FROM refunds WHERE payment_id = ?1 AND status IN ('pending', 'completed')",
    )?;
    let rows = stmt.query_map([payment_id], |r| r.get::<_, i64>(0))?;
    let mut amounts = Vec::new();
    for row in rows {
        let tiyn =
            u64::try_from(row?).map_err(|_| StoreError::Corrupt("negative refund".to_owned()))?;
        amounts.push(Amount::from_tiyn(tiyn));
    }
    Ok(amounts)
}

/// The per-table operations on refunds that the refunds use case (`refunds/`) runs in its
/// transaction; the rules are `crate::domain::refund`'s.
impl super::Tx<'_> {
    /// The refund (or return QR) `id`, if there is one.
    pub fn refund(&self, id: RefundId) -> StoreResult<Option<Refund>> {
        load(self.conn, id)
    }

    /// The return QR with the scanned `token`, if there is one.
    pub(crate) fn refund_by_token(&self, token: &str) -> StoreResult<Option<Refund>> {
        load_where(self.conn, "qr_token = ?1", &token)
    }

    /// Inserts a refund row under the next operation id, and reads it back.
    pub(crate) fn insert_refund(&self, new: &NewRefund, now: Timestamp) -> StoreResult<Refund> {
        insert(self.conn, new, now)
    }

    /// Writes back every field the domain rules may change.
    pub(crate) fn save_refund(&self, refund: &Refund) -> StoreResult<()> {
        save(self.conn, refund)
    }

    /// The amounts of a purchase's refunds that hold part of it (pending and completed).
    pub(crate) fn held_amounts(&self, payment_id: PaymentId) -> StoreResult<Vec<Amount>> {
        held_amounts(self.conn, payment_id)
    }

    /// Queues the refund's delivery to its MPP in this transaction (the outbox).
    pub(crate) fn queue_refund_delivery(&self, refund: &Refund, now: Timestamp) -> StoreResult<()> {
        let target = refund
            .owner
            .as_ref()
            .map(|o| o.mpp.as_str())
            .unwrap_or_default();
        self.enqueue(super::OutboxKind::Refund, refund.id.get(), target, now)
    }

    /// The language of the purchase's binding scan, which a refund of it speaks to the MPP in
    /// unless a return QR's scan says otherwise (DECISIONS 36).
    pub(crate) fn payment_scan_locale(&self, payment_id: PaymentId) -> StoreResult<Option<Locale>> {
        scan_locale(self.conn, payment_id)
    }
}

impl Store {
    pub async fn refund(&self, id: RefundId) -> StoreResult<Option<Refund>> {
        self.read(move |conn| load(conn, id)).await
    }

    pub(crate) async fn refund_by_token(&self, token: String) -> StoreResult<Option<Refund>> {
        self.read(move |conn| load_where(conn, "qr_token = ?1", &token))
            .await
    }

    pub(crate) async fn refund_by_receipt(
        &self,
        receipt_token: String,
    ) -> StoreResult<Option<Refund>> {
        self.read(move |conn| load_where(conn, "receipt_token = ?1", &receipt_token))
            .await
    }

    /// The amounts of a purchase's refunds that hold part of it (pending and completed).
    pub(crate) async fn held_amounts(&self, payment_id: PaymentId) -> StoreResult<Vec<Amount>> {
        self.read(move |conn| held_amounts(conn, payment_id)).await
    }

    /// The refunds of a purchase, oldest first.
    pub async fn refunds_of(&self, payment_id: PaymentId) -> StoreResult<Vec<Refund>> {
        self.read(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM refunds WHERE payment_id = ?1 ORDER BY id");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map([payment_id], from_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(RawRefund::check))
                .collect()
        })
        .await
    }

    /// A customer's confirmed purchases at a trade point, newest first (DECISIONS 22).
    pub(crate) async fn customer_purchases(
        &self,
        owner: Owner,
        trade_point_id: TradePointId,
        limit: usize,
    ) -> StoreResult<Vec<crate::domain::Payment>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM payments WHERE mpp = ?1 AND customer_id = ?2 AND trade_point_id = ?3 \
                 AND status = 'confirmed' ORDER BY finished_at_ms DESC, id DESC LIMIT ?4",
            )?;
            let limit = i64::try_from(limit).unwrap_or(10);
            let ids = stmt.query_map(params![owner.mpp, owner.customer_id, trade_point_id, limit], |r| r.get::<_, PaymentId>(0))?;
            let mut purchases = Vec::new();
            for id in ids {
                if let Some(p) = load_payment(conn, id?)? {
                    purchases.push(p);
                }
            }
            Ok(purchases)
        })
        .await
    }

    /// Expires return QRs nobody scanned in time.
    pub(crate) async fn expire_return_qrs(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<usize> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE refunds SET status = 'expired', finished_at_ms = ?1 WHERE id IN (SELECT id FROM refunds \
                     WHERE status = 'qr_created' AND expire_at_ms < ?1 ORDER BY id LIMIT ?2)",
                )?
                .execute(params![ms(now), i64::try_from(limit).unwrap_or(i64::MAX)])?;
            Ok(n)
        })
        .await
    }
}
