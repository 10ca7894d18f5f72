//! Refunds in the store (SQLite or PostgreSQL): the `refunds` rows (a return QR and the refund made with it are one row)
//! and their per-table operations, read by the edges and run by the refunds use case
//! (`refunds/`) in its transaction, which applies the rules; the outbox row that queues a
//! refund's delivery (`refund_delivery.rs` takes it from there). No flow and no API code here.

use jiff::Timestamp;
use tolem_wire::{Amount, Locale};

use super::db::{Arg, Db, Row, args};
use super::payments::{at, load as load_payment, ms, scan_locale, tiyn_i64};
use super::{Store, StoreError, StoreResult};
use crate::domain::commission::RefundCommission;
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

pub(super) fn from_row(r: &Row<'_>) -> StoreResult<RawRefund> {
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
            Some(t) => {
                Some(Amount::from_stored_tiyn(t).ok_or_else(|| corrupt("amount out of range"))?)
            }
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

/// The refund `clause` picks (a condition on this file's columns with one placeholder, `?1`).
fn load_where(db: Db<'_>, clause: &str, value: &dyn Arg) -> StoreResult<Option<Refund>> {
    let sql = format!("SELECT {COLUMNS} FROM refunds WHERE {clause}");
    let raw = db.query_row(&sql, &[value], from_row)?;
    raw.map(RawRefund::check).transpose()
}

pub(super) fn load(db: Db<'_>, id: RefundId) -> StoreResult<Option<Refund>> {
    load_where(db, "id = ?1", &id)
}

fn save(db: Db<'_>, r: &Refund) -> StoreResult<()> {
    let (mpp, customer) = match &r.owner {
        Some(o) => (Some(o.mpp.as_str()), Some(o.customer_id.as_str())),
        None => (None, None),
    };
    db.execute(
        "UPDATE refunds SET status = ?1, mpp = ?2, customer_id = ?3, identified_at_ms = ?4, \
         payment_id = ?5, amount_tiyn = ?6, requested_at_ms = ?7, finished_at_ms = ?8, \
         mpp_result = ?9, pos_answer = ?10, locale = ?11 WHERE id = ?12",
        args![
            r.status.as_str(),
            mpp,
            customer,
            r.identified_at.map(ms),
            r.payment_id,
            r.amount.map(tiyn_i64).transpose()?,
            r.requested_at.map(ms),
            r.finished_at.map(ms),
            r.mpp_result,
            r.pos_answer.map(PosAnswer::as_str),
            r.locale.map(Locale::code),
            r.id,
        ],
    )?;
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
    /// `registers.refund_commission` when the row is made: the refund's commission is fixed with
    /// it (DECISIONS 37).
    pub commission_mode: RefundCommission,
}

fn insert(db: Db<'_>, row: &NewRefund, now: Timestamp) -> StoreResult<Refund> {
    let qr = row.qr.as_ref();
    // One id space with payments (DECISIONS 40).
    let id = RefundId::new(super::ids::next_operation_id(db)?);
    db.execute(
        "INSERT INTO refunds (kind, status, trade_point_id, device_id, external_id, qr_token, expire_at_ms, \
         created_at_ms, receipt_token, id, commission_mode) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        args![
            row.kind.as_str(),
            row.status.as_str(),
            row.trade_point_id,
            row.device_id,
            qr.and_then(|q| q.external_id.as_deref()),
            qr.map(|q| q.qr_token.as_str()),
            qr.map(|q| ms(q.expire_at)),
            ms(now),
            row.receipt_token,
            id,
            row.commission_mode.as_str(),
        ],
    )?;
    load(db, id)?.ok_or_else(|| StoreError::Corrupt(format!("refund {id} vanished")))
}

/// The amounts of a purchase's refunds that hold part of it.
fn held_amounts(db: Db<'_>, payment_id: PaymentId) -> StoreResult<Vec<Amount>> {
    db.query_map(
        "SELECT amount_tiyn FROM refunds WHERE payment_id = ?1 AND status IN ('pending', 'completed')",
        args![payment_id],
        |r| {
            Amount::from_stored_tiyn(r.get::<i64>(0)?)
                .ok_or_else(|| StoreError::Corrupt("a refund's amount out of range".to_owned()))
        },
    )
}

/// The per-table operations on refunds that the refunds use case (`refunds/`) runs in its
/// transaction; the rules are `crate::domain::refund`'s.
impl super::Tx<'_> {
    /// Gives every refund made before its commission mode was kept (SQLite migration 17,
    /// PostgreSQL 4) `mode`, the setting in force at the first start after: from then on, a
    /// change of `registers.refund_commission` changes none of their registers (DECISIONS 37).
    /// Returns how many; none after the first time (the partial index finds them unread).
    pub fn fix_refund_commission_modes(&self, mode: RefundCommission) -> StoreResult<usize> {
        self.db.execute(
            "UPDATE refunds SET commission_mode = ?1 WHERE commission_mode IS NULL",
            args![mode.as_str()],
        )
    }

    /// The refund (or return QR) `id`, if there is one.
    pub fn refund(&self, id: RefundId) -> StoreResult<Option<Refund>> {
        load(self.db, id)
    }

    /// The return QR with the scanned `token`, if there is one.
    pub(crate) fn refund_by_token(&self, token: &str) -> StoreResult<Option<Refund>> {
        load_where(self.db, "qr_token = ?1", &token)
    }

    /// Inserts a refund row under the next operation id, and reads it back.
    pub(crate) fn insert_refund(&self, new: &NewRefund, now: Timestamp) -> StoreResult<Refund> {
        insert(self.db, new, now)
    }

    /// Writes back every field the domain rules may change.
    pub(crate) fn save_refund(&self, refund: &Refund) -> StoreResult<()> {
        save(self.db, refund)
    }

    /// The amounts of a purchase's refunds that hold part of it (pending and completed).
    pub(crate) fn held_amounts(&self, payment_id: PaymentId) -> StoreResult<Vec<Amount>> {
        held_amounts(self.db, payment_id)
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
        scan_locale(self.db, payment_id)
    }
}

impl Store {
    pub async fn refund(&self, id: RefundId) -> StoreResult<Option<Refund>> {
        self.read_db(move |db| load(db, id)).await
    }

    pub(crate) async fn refund_by_token(&self, token: String) -> StoreResult<Option<Refund>> {
        self.read_db(move |db| load_where(db, "qr_token = ?1", &token))
            .await
    }

    pub(crate) async fn refund_by_receipt(
        &self,
        receipt_token: String,
    ) -> StoreResult<Option<Refund>> {
        self.read_db(move |db| load_where(db, "receipt_token = ?1", &receipt_token))
            .await
    }

    /// The amounts of a purchase's refunds that hold part of it (pending and completed).
    pub(crate) async fn held_amounts(&self, payment_id: PaymentId) -> StoreResult<Vec<Amount>> {
        self.read_db(move |db| held_amounts(db, payment_id)).await
    }

    /// What of a purchase went back to the customer (refunds completed) and what is on its way
    /// (refunds pending), every refund of it counted.
    pub(crate) async fn refunded_of(&self, payment_id: PaymentId) -> StoreResult<(Amount, Amount)> {
        self.read_db(move |db| {
            let rows = db.query_map(
                "SELECT status, amount_tiyn FROM refunds WHERE payment_id = ?1 \
                 AND status IN ('pending', 'completed')",
                args![payment_id],
                |r| {
                    let amount = Amount::from_stored_tiyn(r.get::<i64>(1)?).ok_or_else(|| {
                        StoreError::Corrupt("a refund's amount out of range".to_owned())
                    })?;
                    Ok((r.get::<String>(0)? == "completed", amount))
                },
            )?;
            // Refunds of one purchase never add up to more than it (DECISIONS 20).
            let sum = |completed: bool| {
                rows.iter()
                    .filter(|(done, _)| *done == completed)
                    .try_fold(Amount::ZERO, |sum, (_, amount)| sum.checked_add(*amount))
                    .ok_or_else(|| StoreError::Corrupt("refunds past any amount".to_owned()))
            };
            Ok((sum(true)?, sum(false)?))
        })
        .await
    }

    /// The refunds of a purchase, oldest first.
    pub async fn refunds_of(&self, payment_id: PaymentId) -> StoreResult<Vec<Refund>> {
        self.read_db(move |db| {
            let sql = format!("SELECT {COLUMNS} FROM refunds WHERE payment_id = ?1 ORDER BY id");
            db.query_map(&sql, args![payment_id], |r| from_row(r)?.check())
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
        self.read_db(move |db| {
            let limit = i64::try_from(limit).unwrap_or(10);
            let ids = db.query_map(
                "SELECT id FROM payments WHERE mpp = ?1 AND customer_id = ?2 AND trade_point_id = ?3 \
                 AND status = 'confirmed' ORDER BY finished_at_ms DESC, id DESC LIMIT ?4",
                args![owner.mpp, owner.customer_id, trade_point_id, limit],
                |r| r.get::<PaymentId>(0),
            )?;
            let mut purchases = Vec::new();
            for id in ids {
                if let Some(p) = load_payment(db, id)? {
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
        self.transaction(move |tx| {
            tx.db.execute(
                "UPDATE refunds SET status = 'expired', finished_at_ms = ?1 WHERE id IN (SELECT id FROM refunds \
                 WHERE status = 'qr_created' AND expire_at_ms < ?1 ORDER BY id LIMIT ?2)",
                args![ms(now), i64::try_from(limit).unwrap_or(i64::MAX)],
            )
        })
        .await
    }
}
