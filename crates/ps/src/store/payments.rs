//! Purchases in SQLite: per-table operations only. A use case loads, inserts and saves purchases
//! through its transaction handle (`impl Tx` below) and applies the rules of `domain` itself;
//! reads that change nothing, and the expiry sweep (one UPDATE), are `Store` methods.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, named_params};
use tolem_wire::{Amount, Locale};

use super::{Store, StoreError, StoreResult};
use crate::domain::{
    CallerName, DeviceId, Kind, Owner, Payment, PaymentId, Policy, ServiceId, Status, TradePointId,
};

const COLUMNS: &str = "id, kind, status, trade_point_id, service_id, device_id, external_id, qr_token, \
    amount_tiyn, created_at_ms, expire_at_ms, mpp, customer_id, scanned_at_ms, confirm_until_ms, \
    parameters, checkout_response, mpp_payment_id, verdict, notify_response, finished_at_ms, receipt_token";

/// A purchase to create; the store assigns its id.
#[derive(Clone, Debug)]
pub(crate) struct NewPayment {
    pub kind: Kind,
    pub trade_point_id: TradePointId,
    pub service_id: Option<ServiceId>,
    pub device_id: Option<DeviceId>,
    pub external_id: Option<String>,
    pub qr_token: Option<String>,
    pub amount: Option<Amount>,
    pub expire_at: Option<Timestamp>,
    pub receipt_token: String,
}

pub(super) fn ms(at: Timestamp) -> i64 {
    at.as_millisecond()
}

pub(super) fn at(ms: Option<i64>) -> StoreResult<Option<Timestamp>> {
    ms.map(|ms| Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<RawPayment> {
    Ok(RawPayment {
        id: row.get(0)?,
        kind: row.get(1)?,
        status: row.get(2)?,
        trade_point_id: row.get(3)?,
        service_id: row.get(4)?,
        device_id: row.get(5)?,
        external_id: row.get(6)?,
        qr_token: row.get(7)?,
        amount_tiyn: row.get(8)?,
        created_at_ms: row.get(9)?,
        expire_at_ms: row.get(10)?,
        mpp: row.get(11)?,
        customer_id: row.get(12)?,
        scanned_at_ms: row.get(13)?,
        confirm_until_ms: row.get(14)?,
        parameters: row.get(15)?,
        checkout_response: row.get(16)?,
        mpp_payment_id: row.get(17)?,
        verdict: row.get(18)?,
        notify_response: row.get(19)?,
        finished_at_ms: row.get(20)?,
        receipt_token: row.get(21)?,
    })
}

/// A row as SQLite holds it, before its values are checked.
struct RawPayment {
    id: PaymentId,
    kind: String,
    status: String,
    trade_point_id: TradePointId,
    service_id: Option<ServiceId>,
    device_id: Option<DeviceId>,
    external_id: Option<String>,
    qr_token: Option<String>,
    amount_tiyn: Option<i64>,
    created_at_ms: i64,
    expire_at_ms: Option<i64>,
    mpp: Option<CallerName>,
    customer_id: Option<String>,
    scanned_at_ms: Option<i64>,
    confirm_until_ms: Option<i64>,
    parameters: Option<String>,
    checkout_response: Option<String>,
    mpp_payment_id: Option<String>,
    verdict: Option<String>,
    notify_response: Option<String>,
    finished_at_ms: Option<i64>,
    receipt_token: String,
}

impl RawPayment {
    fn check(self) -> StoreResult<Payment> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("payment {}: {what}", self.id));
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
        Ok(Payment {
            id: self.id,
            kind: Kind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            trade_point_id: self.trade_point_id,
            service_id: self.service_id,
            device_id: self.device_id,
            external_id: self.external_id,
            qr_token: self.qr_token,
            amount,
            created_at: at(Some(self.created_at_ms))?.ok_or_else(|| corrupt("created_at"))?,
            expire_at: at(self.expire_at_ms)?,
            owner,
            scanned_at: at(self.scanned_at_ms)?,
            confirm_until: at(self.confirm_until_ms)?,
            parameters: self.parameters,
            checkout_response: self.checkout_response,
            mpp_payment_id: self.mpp_payment_id,
            verdict: self.verdict,
            notify_response: self.notify_response,
            finished_at: at(self.finished_at_ms)?,
            receipt_token: self.receipt_token,
        })
    }
}

pub(super) fn load(conn: &Connection, id: PaymentId) -> StoreResult<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE id = ?1");
    let raw = conn
        .prepare_cached(&sql)?
        .query_row([id], from_row)
        .optional()?;
    raw.map(RawPayment::check).transpose()
}

fn load_by_token(conn: &Connection, token: &str) -> StoreResult<Option<Payment>> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE qr_token = ?1");
    let raw = conn
        .prepare_cached(&sql)?
        .query_row([token], from_row)
        .optional()?;
    raw.map(RawPayment::check).transpose()
}

pub(super) fn insert(conn: &Connection, new: &NewPayment, now: Timestamp) -> StoreResult<Payment> {
    conn.prepare_cached(
        "INSERT INTO payments (id, kind, status, trade_point_id, service_id, device_id, external_id, qr_token, \
         amount_tiyn, created_at_ms, expire_at_ms, deadline_ms, receipt_token) \
         VALUES (:id, :kind, 'created', :tp, :service, :device, :external, :token, :amount, :now, :expire, :expire, :receipt)",
    )?
    .execute(named_params! {
        ":id": super::ids::next_operation_id(conn)?,
        ":kind": new.kind.as_str(),
        ":tp": new.trade_point_id,
        ":service": new.service_id,
        ":device": new.device_id,
        ":external": new.external_id,
        ":token": new.qr_token,
        ":amount": new.amount.map(tiyn_i64).transpose()?,
        ":now": ms(now),
        ":expire": new.expire_at.map(ms),
        ":receipt": new.receipt_token,
    })?;
    let id = PaymentId::new(conn.last_insert_rowid());
    load(conn, id)?.ok_or_else(|| StoreError::Corrupt(format!("payment {id} vanished")))
}

pub(super) fn tiyn_i64(amount: Amount) -> StoreResult<i64> {
    i64::try_from(amount.tiyn()).map_err(|_| StoreError::Corrupt("amount out of range".to_owned()))
}

/// Writes back every field the domain rules may change.
pub(super) fn save(conn: &Connection, p: &Payment, policy: &Policy) -> StoreResult<()> {
    let (mpp, customer) = match &p.owner {
        Some(o) => (Some(o.mpp.as_str()), Some(o.customer_id.as_str())),
        None => (None, None),
    };
    conn.prepare_cached(
        "UPDATE payments SET status = :status, amount_tiyn = :amount, mpp = :mpp, customer_id = :customer, \
         scanned_at_ms = :scanned, confirm_until_ms = :until, deadline_ms = :deadline, parameters = :params, \
         checkout_response = :checkout, mpp_payment_id = :mpp_payment, verdict = :verdict, \
         notify_response = :notify, finished_at_ms = :finished WHERE id = :id",
    )?
    .execute(named_params! {
        ":status": p.status.as_str(),
        ":amount": p.amount.map(tiyn_i64).transpose()?,
        ":mpp": mpp,
        ":customer": customer,
        ":scanned": p.scanned_at.map(ms),
        ":until": p.confirm_until.map(ms),
        ":deadline": p.deadline(policy).map(ms),
        ":params": p.parameters,
        ":checkout": p.checkout_response,
        ":mpp_payment": p.mpp_payment_id,
        ":verdict": p.verdict,
        ":notify": p.notify_response,
        ":finished": p.finished_at.map(ms),
        ":id": p.id,
    })?;
    if p.status == Status::Confirmed {
        super::registers::fix_commission(super::db::Db::Lite(conn), p.id)?;
    }
    Ok(())
}

/// Records the language of the scan that bound the purchase to its customer (DECISIONS 36), which
/// a refund of it speaks to the MPP in unless a return QR's scan says otherwise. Kept beside the
/// purchase's columns, not in [`Payment`], since only refunds read it.
fn record_scan_locale(conn: &Connection, id: PaymentId, locale: Locale) -> StoreResult<()> {
    conn.prepare_cached("UPDATE payments SET scan_locale = ?1 WHERE id = ?2")?
        .execute(rusqlite::params![locale.code(), id])?;
    Ok(())
}

/// The language of a purchase's binding scan; `None` when none was recorded (or it is not one we
/// know, which is logged: a refund is never held back by its language).
pub(super) fn scan_locale(conn: &Connection, id: PaymentId) -> StoreResult<Option<Locale>> {
    let code: Option<String> = conn
        .prepare_cached("SELECT scan_locale FROM payments WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(code) = code else {
        return Ok(None);
    };
    let locale = Locale::from_code(&code);
    if locale.is_none() {
        tracing::warn!(
            payment_id = id.get(),
            code,
            "a purchase with an unknown scan language"
        );
    }
    Ok(locale)
}

impl super::Tx<'_> {
    /// The purchase `id`, if there is one.
    pub fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        load(self.conn, id)
    }

    /// The purchase of a Dynamic QR or link token, if there is one.
    pub(crate) fn payment_by_token(&self, token: &str) -> StoreResult<Option<Payment>> {
        load_by_token(self.conn, token)
    }

    /// Creates a purchase (`created`, with an id from the operations' counter) and returns it.
    pub(crate) fn insert_payment(&self, new: &NewPayment, now: Timestamp) -> StoreResult<Payment> {
        insert(self.conn, new, now)
    }

    /// Records the language of the scan that bound the purchase to its customer (DECISIONS 36).
    pub(crate) fn record_scan_locale(&self, id: PaymentId, locale: Locale) -> StoreResult<()> {
        record_scan_locale(self.conn, id, locale)
    }

    /// Writes back every field the domain rules may change.
    pub(crate) fn save_payment(&self, payment: &Payment, policy: &Policy) -> StoreResult<()> {
        save(self.conn, payment, policy)
    }
}

impl Store {
    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        self.read(move |conn| load(conn, id)).await
    }

    pub(crate) async fn payment_by_receipt(
        &self,
        receipt_token: String,
    ) -> StoreResult<Option<Payment>> {
        self.read(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM payments WHERE receipt_token = ?1");
            let raw = conn
                .prepare_cached(&sql)?
                .query_row([receipt_token], from_row)
                .optional()?;
            raw.map(RawPayment::check).transpose()
        })
        .await
    }

    pub(crate) async fn payment_by_token(&self, token: String) -> StoreResult<Option<Payment>> {
        self.read(move |conn| load_by_token(conn, &token)).await
    }

    /// Expires open purchases past their deadline (at most `limit`); returns how many.
    pub(crate) async fn expire_due(&self, now: Timestamp, limit: usize) -> StoreResult<usize> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE payments SET status = 'expired', finished_at_ms = ?1, deadline_ms = NULL \
                     WHERE id IN (SELECT id FROM payments WHERE status IN ('created', 'scanned') \
                     AND deadline_ms < ?1 ORDER BY deadline_ms LIMIT ?2)",
                )?
                .execute(rusqlite::params![ms(now), i64::try_from(limit).unwrap_or(i64::MAX)])?;
            Ok(n)
        })
        .await
    }
}
