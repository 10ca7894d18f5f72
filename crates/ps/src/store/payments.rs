//! Purchases in the store (SQLite or PostgreSQL): per-table operations only. A use case loads, inserts and saves purchases
//! through its transaction handle (`impl Tx` below) and applies the rules of `domain` itself;
//! reads that change nothing, and the expiry sweep (one UPDATE), are `Store` methods.

use jiff::Timestamp;
use tolem_wire::{Amount, Locale};

use super::db::{Db, Row, args};
use super::{Store, StoreError, StoreResult};
use crate::domain::{
    CallerName, DeviceId, Kind, Owner, Payment, PaymentId, Policy, ServiceId, Status, TradePointId,
};

/// The columns [`from_row`] reads, with the receipt token as text written by `$token` (an SQL
/// expression of the dialect: see [`StoredToken`]). The notifyPayment answer is rebuilt from its
/// form in the same statement; with `form_apart`, the form's id comes last instead and
/// [`load_where`] reads the form in a statement of its own.
macro_rules! columns {
    ($token:literal) => {
        columns!(@list concat!(
            "COALESCE(notify_response, (SELECT f.prefix || CASE WHEN f.with_token = 1 THEN ",
            $token,
            " ELSE '' END || f.suffix FROM notify_forms f WHERE f.id = payments.notify_form))"
        ), $token, "")
    };
    ($token:literal, form_apart) => {
        columns!(@list "notify_response", $token, ", notify_form")
    };
    (@list $notify:expr, $token:literal, $tail:literal) => {
        concat!(
            "id, kind, status, trade_point_id, service_id, device_id, external_id, qr_token, \
            amount_tiyn, created_at_ms, expire_at_ms, mpp, customer_id, scanned_at_ms, \
            confirm_until_ms, parameters, checkout_response, mpp_payment_id, verdict, ",
            $notify,
            ", finished_at_ms, ",
            $token,
            ", checkout_at_ms",
            $tail
        )
    };
}
/// The `SELECT` of a purchase's columns where `$clause` holds, for each backend; SQLite's gives a
/// receipt token kept as bytes back as its text ([`StoredToken`]). Whole statements known when
/// the PS is built, so a load writes no SQL and the statement cache hashes a constant. With
/// `to_change`, PostgreSQL's locks the row until the transaction ends (`FOR UPDATE`) and reads
/// the answer's form apart: a statement that waited for the lock reads the row as the
/// transaction before it left it, but other tables as they were when the statement began, which
/// need not hold the form that transaction made. SQLite's one writer needs no lock.
macro_rules! select_where {
    ($clause:literal, to_change) => {
        Select {
            sqlite: select_where!($clause).sqlite,
            postgres: concat!(
                "SELECT ",
                columns!("payments.receipt_token", form_apart),
                " FROM payments WHERE ",
                $clause,
                " FOR UPDATE"
            ),
            form_apart_on_postgres: true,
        }
    };
    ($clause:literal) => {
        Select {
            sqlite: concat!(
                "SELECT ",
                columns!(
                    "CASE WHEN typeof(payments.receipt_token) = 'blob' \
                     THEN lower(hex(payments.receipt_token)) ELSE payments.receipt_token END"
                ),
                " FROM payments WHERE ",
                $clause
            ),
            postgres: concat!(
                "SELECT ",
                columns!("payments.receipt_token"),
                " FROM payments WHERE ",
                $clause
            ),
            form_apart_on_postgres: false,
        }
    };
}

/// One load's statement on each backend ([`select_where!`]).
struct Select {
    sqlite: &'static str,
    postgres: &'static str,
    /// Whether PostgreSQL's statement gives the answer's form id last, to be read apart.
    form_apart_on_postgres: bool,
}

/// A purchase's receipt token as the store keeps it. On SQLite a token of 32 lower-case hex
/// digits (every token `links::secret_token` makes) is kept as its 16 bytes, in the row and in
/// the unique index: 32 bytes less per purchase than the text. Any other token, the tokens of
/// purchases made before (text until their row goes), and every token on PostgreSQL are kept as
/// text. Reads give the text back either way ([`select_where!`]), and a lookup asks for both
/// forms ([`Store::payment_by_receipt`]).
enum StoredToken<'t> {
    Bytes([u8; 16]),
    Text(&'t str),
}

impl StoredToken<'_> {
    fn of<'t>(db: Db<'_>, token: &'t str) -> StoredToken<'t> {
        let mut bytes = [0u8; 16];
        let lower_hex = token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !db.is_postgres() && lower_hex && hex::decode_to_slice(token, &mut bytes).is_ok() {
            StoredToken::Bytes(bytes)
        } else {
            StoredToken::Text(token)
        }
    }
}

impl super::db::Arg for StoredToken<'_> {
    fn cell(&self) -> super::db::Cell<'_> {
        match self {
            StoredToken::Bytes(bytes) => super::db::Cell::Blob(bytes),
            StoredToken::Text(text) => super::db::Cell::Text(text),
        }
    }
}

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

fn from_row(row: &Row<'_>) -> StoreResult<RawPayment> {
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
        checkout_at_ms: row.get(22)?,
    })
}

/// A row as the store holds it, before its values are checked.
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
    checkout_at_ms: Option<i64>,
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
            Some(t) => {
                Some(Amount::from_stored_tiyn(t).ok_or_else(|| corrupt("amount out of range"))?)
            }
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
            checkout_at: at(self.checkout_at_ms)?,
            mpp_payment_id: self.mpp_payment_id,
            verdict: self.verdict,
            notify_response: self.notify_response,
            finished_at: at(self.finished_at_ms)?,
            receipt_token: self.receipt_token,
        })
    }
}

/// The purchase `select` picks, with `values` for its placeholders.
fn load_where(
    db: Db<'_>,
    select: Select,
    values: &[&dyn super::db::Arg],
) -> StoreResult<Option<Payment>> {
    let postgres = db.is_postgres();
    if !(postgres && select.form_apart_on_postgres) {
        let sql = if postgres {
            select.postgres
        } else {
            select.sqlite
        };
        let raw = db.query_row(sql, values, from_row)?;
        return raw.map(RawPayment::check).transpose();
    }
    let Some((mut raw, form)) = db.query_row(select.postgres, values, |row| {
        Ok((from_row(row)?, row.get::<Option<i64>>(23)?))
    })?
    else {
        return Ok(None);
    };
    if let (None, Some(form)) = (&raw.notify_response, form) {
        raw.notify_response = db.query_row(
            "SELECT prefix || CASE WHEN with_token = 1 THEN ?2 ELSE '' END || suffix \
             FROM notify_forms WHERE id = ?1",
            args![form, raw.receipt_token],
            |r| r.get::<String>(0),
        )?;
    }
    raw.check().map(Some)
}

pub(super) fn load(db: Db<'_>, id: PaymentId) -> StoreResult<Option<Payment>> {
    load_where(db, select_where!("id = ?1"), args![id])
}

/// The purchase whose receipt token is `token`, however the store keeps it ([`StoredToken`]).
fn load_by_receipt(db: Db<'_>, token: &str) -> StoreResult<Option<Payment>> {
    match StoredToken::of(db, token) {
        // Kept as bytes now, as text before: one index, two probes.
        bytes @ StoredToken::Bytes(_) => load_where(
            db,
            select_where!("receipt_token IN (?1, ?2)"),
            args![bytes, token],
        ),
        StoredToken::Text(_) => load_where(db, select_where!("receipt_token = ?1"), args![token]),
    }
}

fn load_by_token(db: Db<'_>, token: &str) -> StoreResult<Option<Payment>> {
    load_where(db, select_where!("qr_token = ?1"), args![token])
}

/// Inserts a new purchase and returns it as a load would, without reading it back: the row
/// is made of `new`, `now` and the id alone, so the statement goes out with the transaction's
/// next one on PostgreSQL (a staged transaction sends it with the `COMMIT`), and an error it
/// meets is that statement's (a unique key taken: the transaction runs again).
pub(super) fn insert(db: Db<'_>, new: &NewPayment, now: Timestamp) -> StoreResult<Payment> {
    let id = PaymentId::new(super::ids::next_operation_id(db)?);
    let amount_tiyn = new.amount.map(tiyn_i64).transpose()?;
    db.execute_pipelined(
        "INSERT INTO payments (id, kind, status, trade_point_id, service_id, device_id, external_id, qr_token, \
         amount_tiyn, created_at_ms, expire_at_ms, deadline_ms, receipt_token) \
         VALUES (?1, ?2, 'created', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
        args![
            id,
            new.kind.as_str(),
            new.trade_point_id,
            new.service_id,
            new.device_id,
            new.external_id,
            new.qr_token,
            amount_tiyn,
            ms(now),
            new.expire_at.map(ms),
            StoredToken::of(db, &new.receipt_token),
        ],
    )?;
    // The row as `from_row` reads it back, checked the same way.
    RawPayment {
        id,
        kind: new.kind.as_str().to_owned(),
        status: Status::Created.as_str().to_owned(),
        trade_point_id: new.trade_point_id,
        service_id: new.service_id,
        device_id: new.device_id,
        external_id: new.external_id.clone(),
        qr_token: new.qr_token.clone(),
        amount_tiyn,
        created_at_ms: ms(now),
        expire_at_ms: new.expire_at.map(ms),
        mpp: None,
        customer_id: None,
        scanned_at_ms: None,
        confirm_until_ms: None,
        parameters: None,
        checkout_response: None,
        mpp_payment_id: None,
        verdict: None,
        notify_response: None,
        finished_at_ms: None,
        receipt_token: new.receipt_token.clone(),
        checkout_at_ms: None,
    }
    .check()
}

pub(super) fn tiyn_i64(amount: Amount) -> StoreResult<i64> {
    i64::try_from(amount.tiyn()).map_err(|_| StoreError::Corrupt("amount out of range".to_owned()))
}

/// Writes back every field the domain rules may change, in one UPDATE: with the language of the
/// scan that bound the purchase to its customer when `scan_locale` is given (DECISIONS 36; kept
/// beside the purchase's columns, not in [`Payment`], since only refunds read it), and for a
/// confirmed purchase its commission rates, fixed once (DECISIONS 37): the UPDATE writes them only
/// where none are fixed yet, whatever the backend.
fn save(db: Db<'_>, p: &Payment, policy: &Policy, scan_locale: Option<Locale>) -> StoreResult<()> {
    let (mpp, customer) = match &p.owner {
        Some(o) => (Some(o.mpp.as_str()), Some(o.customer_id.as_str())),
        None => (None, None),
    };
    let rates = match mpp {
        Some(mpp) if p.status == Status::Confirmed => super::registers::commission_rates(db, mpp)?,
        _ => None,
    };
    let (payment_rate, service_rate) = rates.unzip();
    let notify_form = match &p.notify_response {
        Some(body) => Some(notify_form(db, body, &p.receipt_token)?),
        None => None,
    };
    // The answer's form is set only with an answer. A purchase loaded without one has neither
    // column set (`columns!`), and an UPDATE that sets the foreign key `notify_form` makes SQLite
    // check it and copy every page the statement changes into a statement journal
    // (docs/benchmarks.md). Without it, `?12` (NULL then) still appears, typed, for PostgreSQL.
    macro_rules! save {
        ($form:literal, $where:literal) => {
            concat!(
                "UPDATE payments SET status = ?1, amount_tiyn = ?2, mpp = ?3, customer_id = ?4, \
                 scanned_at_ms = ?5, confirm_until_ms = ?6, deadline_ms = ?7, parameters = ?8, \
                 checkout_response = ?9, mpp_payment_id = ?10, verdict = ?11, ",
                $form,
                "finished_at_ms = ?13, scan_locale = COALESCE(?15, scan_locale), \
                 checkout_at_ms = COALESCE(checkout_at_ms, ?20), \
                 commission_bps = CASE WHEN commission_bps IS NULL THEN ?16 ELSE commission_bps END, \
                 commission_min_tiyn = CASE WHEN commission_bps IS NULL THEN ?17 \
                     ELSE commission_min_tiyn END, \
                 service_commission_bps = CASE WHEN commission_bps IS NULL THEN ?18 \
                     ELSE service_commission_bps END, \
                 service_commission_min_tiyn = CASE WHEN commission_bps IS NULL THEN ?19 \
                     ELSE service_commission_min_tiyn END \
                 WHERE id = ?14",
                $where
            )
        };
    }
    let sql = match notify_form {
        Some(_) => save!("notify_response = NULL, notify_form = ?12, ", ""),
        None => save!("", " AND CAST(?12 AS BIGINT) IS NULL"),
    };
    // Nothing reads the row count (the purchase is this transaction's, by its id), so on
    // PostgreSQL the UPDATE travels with the COMMIT that usually follows it.
    db.execute_pipelined(
        sql,
        args![
            p.status.as_str(),
            p.amount.map(tiyn_i64).transpose()?,
            mpp,
            customer,
            p.scanned_at.map(ms),
            p.confirm_until.map(ms),
            p.deadline(policy).map(ms),
            p.parameters,
            p.checkout_response,
            p.mpp_payment_id,
            p.verdict,
            notify_form,
            p.finished_at.map(ms),
            p.id,
            scan_locale.map(|l| l.code()),
            payment_rate.map(|r| i64::from(r.bps)),
            payment_rate.and_then(|r| r.min).map(tiyn_i64).transpose()?,
            service_rate.map(|r| i64::from(r.bps)),
            service_rate.and_then(|r| r.min).map(tiyn_i64).transpose()?,
            p.checkout_at.map(ms),
        ],
    )
}

/// The form of a notifyPayment answer (`notify_forms`, SQLite migration 16): `body` is the form's
/// prefix, the purchase's receipt token when the body holds it, and the form's suffix, so that
/// the answer read back is `body` byte for byte (DECISIONS 18) while a purchase keeps only the
/// form's id. Answers of one verdict, language and public URL share a form; one statement
/// inserts it the first time, of several writers at once only one. A form is never changed or
/// deleted, so a PostgreSQL connection remembers the ids it found ([`Db::lookup_kept`]).
fn notify_form(db: Db<'_>, body: &str, receipt_token: &str) -> StoreResult<i64> {
    const FORM_ID: &str =
        "SELECT id FROM notify_forms WHERE prefix = ?1 AND with_token = ?2 AND suffix = ?3";
    let (prefix, with_token, suffix) = match body.split_once(receipt_token) {
        Some((prefix, suffix)) if !receipt_token.is_empty() => (prefix, 1i64, suffix),
        _ => (body, 0i64, ""),
    };
    let known = db.lookup_kept(FORM_ID, args![prefix, with_token, suffix])?;
    if let Some(id) = known {
        return Ok(id);
    }
    db.execute(
        "INSERT INTO notify_forms (prefix, with_token, suffix) VALUES (?1, ?2, ?3) \
         ON CONFLICT (prefix, with_token, suffix) DO NOTHING",
        args![prefix, with_token, suffix],
    )?;
    db.query_row(FORM_ID, args![prefix, with_token, suffix], |r| {
        r.get::<i64>(0)
    })?
    .ok_or_else(|| StoreError::Corrupt("a notifyPayment answer's form vanished".to_owned()))
}

/// The language of a purchase's binding scan; `None` when none was recorded (or it is not one we
/// know, which is logged: a refund is never held back by its language).
pub(super) fn scan_locale(db: Db<'_>, id: PaymentId) -> StoreResult<Option<Locale>> {
    let code: Option<String> = db
        .query_row(
            "SELECT scan_locale FROM payments WHERE id = ?1",
            args![id],
            |r| r.get(0),
        )?
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

/// What tells a repeat of a Static or Custom scan from a new one (SPEC 1.4, DECISIONS 9): the
/// MPP, its X-Request-ID and the SHA-256 of the body. Every such scan makes a purchase, so the
/// request id is all that says a retry after a lost answer is the same scan; the same id with
/// another body is another request (as on the merchant API, DECISIONS 29). Kept a day
/// (`limits.pos_replay_retention_s`), as the POS's replay records.
#[derive(Clone, Debug)]
pub struct ScanKey {
    mpp: String,
    request_id: String,
    body_sha256: String,
}

impl ScanKey {
    pub fn new(mpp: &str, request_id: &str, body: &[u8]) -> ScanKey {
        use sha2::Digest;
        ScanKey {
            mpp: mpp.to_owned(),
            request_id: request_id.to_owned(),
            body_sha256: hex::encode(sha2::Sha256::digest(body)),
        }
    }
}

impl super::Tx<'_> {
    /// The purchase an earlier run of this scan made, if it did.
    pub(crate) fn scanned_before(&self, key: &ScanKey) -> StoreResult<Option<PaymentId>> {
        self.db.query_row(
            "SELECT payment_id FROM mpp_scans WHERE mpp = ?1 AND request_id = ?2 AND body_sha256 = ?3",
            args![key.mpp, key.request_id, key.body_sha256],
            |r| r.get::<PaymentId>(0),
        )
    }

    /// Forgets the record of this scan (its purchase ended or is gone: the same request id is
    /// a new scan now). Sent with the next statement; a concurrent repeat doing the same waits
    /// for this one and then finds nothing to forget, and its record then meets this one's key.
    pub(crate) fn forget_scan(&self, key: &ScanKey) -> StoreResult<()> {
        self.db.execute_pipelined(
            "DELETE FROM mpp_scans WHERE mpp = ?1 AND request_id = ?2 AND body_sha256 = ?3",
            args![key.mpp, key.request_id, key.body_sha256],
        )
    }

    /// Asks ahead for the id the next [`Self::insert_payment`] takes (`ids.rs`).
    pub(crate) fn want_payment_id(&self) -> StoreResult<()> {
        super::ids::want_next_operation_id(self.db)
    }

    /// Records the purchase this scan made, for its repeats. A concurrent repeat that stored it
    /// first fails this transaction's commit, and the transaction runs again and finds it.
    pub(crate) fn remember_scan(
        &self,
        key: &ScanKey,
        payment_id: PaymentId,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.db.execute_pipelined(
            "INSERT INTO mpp_scans (mpp, request_id, body_sha256, payment_id, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            args![
                key.mpp,
                key.request_id,
                key.body_sha256,
                payment_id,
                now.as_millisecond()
            ],
        )
    }

    /// The purchase `id`, if there is one.
    pub fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        load(self.db, id)
    }

    /// [`Self::payment`] for a use case that decides on this purchase alone and changes it: on
    /// PostgreSQL its row stays locked until the transaction ends, so the use case may run at
    /// READ COMMITTED ([`super::Store::locking_transaction`]): a concurrent change of the same
    /// purchase waits for it, and then reads what it committed.
    pub(crate) fn payment_to_change(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        load_where(self.db, select_where!("id = ?1", to_change), args![id])
    }

    /// The purchase of a Dynamic QR or link token, if there is one, locked as
    /// [`Self::payment_to_change`] locks it.
    pub(crate) fn payment_by_token_to_change(&self, token: &str) -> StoreResult<Option<Payment>> {
        load_where(
            self.db,
            select_where!("qr_token = ?1", to_change),
            args![token],
        )
    }

    /// Creates a purchase (`created`, with an id from the operations' counter) and returns it.
    pub(crate) fn insert_payment(&self, new: &NewPayment, now: Timestamp) -> StoreResult<Payment> {
        insert(self.db, new, now)
    }

    /// Writes back every field the domain rules may change; a purchase saved as confirmed has
    /// its commission fixed from its MPP's catalog entry (registers read it).
    pub(crate) fn save_payment(&self, payment: &Payment, policy: &Policy) -> StoreResult<()> {
        save(self.db, payment, policy, None)
    }

    /// Asks ahead for the commission rates that confirming a purchase of `mpp` will fix
    /// ([`Self::save_payment`]): on PostgreSQL the read travels with the transaction's next
    /// statement, the purchase's load, instead of a round trip of its own.
    pub(crate) fn prefetch_commission_rates(&self, mpp: &CallerName) -> StoreResult<()> {
        super::registers::prefetch_commission_rates(self.db, mpp.as_str())
    }

    /// [`Self::save_payment`] for the scan that bound the purchase to its customer, with that
    /// scan's language (DECISIONS 36), which a refund of it speaks to the MPP in unless a return
    /// QR's scan says otherwise.
    pub(crate) fn save_scanned_payment(
        &self,
        payment: &Payment,
        policy: &Policy,
        locale: Locale,
    ) -> StoreResult<()> {
        save(self.db, payment, policy, Some(locale))
    }
}

impl Store {
    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        self.staged_read(move |db| load(db, id)).await
    }

    pub(crate) async fn payment_by_receipt(
        &self,
        receipt_token: String,
    ) -> StoreResult<Option<Payment>> {
        self.staged_read(move |db| load_by_receipt(db, &receipt_token))
            .await
    }

    pub(crate) async fn payment_by_token(&self, token: String) -> StoreResult<Option<Payment>> {
        self.staged_read(move |db| load_by_token(db, &token)).await
    }

    /// Expires open purchases past their deadline (at most `limit`); returns how many.
    pub(crate) async fn expire_due(&self, now: Timestamp, limit: usize) -> StoreResult<usize> {
        self.transaction(move |tx| {
            tx.db.execute(
                "UPDATE payments SET status = 'expired', finished_at_ms = ?1, deadline_ms = NULL \
                 WHERE id IN (SELECT id FROM payments WHERE status IN ('created', 'scanned') \
                 AND deadline_ms < ?1 ORDER BY deadline_ms LIMIT ?2)",
                args![ms(now), i64::try_from(limit).unwrap_or(i64::MAX)],
            )
        })
        .await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use jiff::SignedDuration;
    use rusqlite::{Connection, params};

    use super::*;

    fn purchase(db: Db<'_>, receipt_token: &str) -> Payment {
        let new = NewPayment {
            kind: Kind::Static,
            trade_point_id: TradePointId::new(1),
            service_id: None,
            device_id: None,
            external_id: None,
            qr_token: None,
            amount: None,
            expire_at: None,
            receipt_token: receipt_token.to_owned(),
        };
        insert(
            db,
            &new,
            Timestamp::from_millisecond(1_000).expect("a time"),
        )
        .expect("inserted")
    }

    /// `insert` builds the purchase it returns instead of reading it back: it must be the very
    /// purchase a load finds, to the millisecond, whichever way the store keeps its fields.
    fn an_inserted_purchase_is_what_a_load_finds(store: &Store) {
        let new = NewPayment {
            kind: Kind::Dynamic,
            trade_point_id: TradePointId::new(1001),
            service_id: None,
            device_id: Some(DeviceId::new(7)),
            external_id: Some("ORDER-1".to_owned()),
            qr_token: Some("123456789012".to_owned()),
            amount: Some(Amount::from_tiyn(12_345)),
            // Past the millisecond: the store keeps milliseconds.
            expire_at: Some(Timestamp::from_nanosecond(1_800_000_000_123_456_789).expect("a time")),
            receipt_token: crate::links::secret_token(),
        };
        let now = Timestamp::from_nanosecond(1_799_999_000_987_654_321).expect("a time");
        block_on(async {
            let inserted = {
                let new = new.clone();
                store
                    .staged_locking_transaction(move |tx| tx.insert_payment(&new, now))
                    .await
                    .expect("inserted")
            };
            let loaded = store
                .payment_by_token("123456789012".to_owned())
                .await
                .expect("read")
                .expect("found");
            assert_eq!(inserted, loaded);
            assert_eq!(inserted.created_at.subsec_nanosecond(), 987_000_000);
        });
    }

    /// A small store for the tests of one operation on both backends.
    fn limits() -> super::super::StoreLimits {
        super::super::StoreLimits {
            write_queue_max: 10,
            write_batch_max: 10,
            write_wait_ms: 20_000,
            ..super::super::StoreLimits::for_tests()
        }
    }

    /// Runs `f` to its end on a runtime of two workers, for the store tests that open their
    /// store outside one.
    pub(in crate::store) fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    /// Runs `test` on a small store in a fresh SQLite file.
    pub(in crate::store) fn on_sqlite(test: impl FnOnce(&Store)) {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("t.db"), &limits()).expect("opens");
        test(&store);
    }

    /// Runs `test` (named `name`) on a small store in a fresh PostgreSQL database `database`,
    /// if a server is at hand (`migrations_pg::tests::admin_url`).
    pub(in crate::store) fn on_postgres(name: &str, database: &str, test: impl FnOnce(&Store)) {
        use super::super::migrations_pg::tests::{TestDatabase, admin_url};
        let Some(admin) = admin_url(name) else {
            return;
        };
        let database = TestDatabase::create(&admin, database);
        let store = Store::open(std::path::Path::new(&database.url()), &limits()).expect("opens");
        test(&store);
    }

    #[test]
    fn an_inserted_purchase_is_what_a_load_finds_on_sqlite() {
        on_sqlite(an_inserted_purchase_is_what_a_load_finds);
    }

    #[test]
    fn an_inserted_purchase_is_what_a_load_finds_on_postgres() {
        on_postgres(
            "an_inserted_purchase_is_what_a_load_finds_on_postgres",
            "inserted",
            an_inserted_purchase_is_what_a_load_finds,
        );
    }

    #[test]
    fn a_notify_answer_is_kept_as_its_form_and_read_back_byte_for_byte() {
        let mut conn = Connection::open_in_memory().expect("a database");
        super::super::migrations::run_to(&mut conn, 15).expect("the first fifteen migrations");
        // An answer stored whole, as builds before migration 16 kept it.
        conn.execute(
            "INSERT INTO payments (id, kind, status, trade_point_id, created_at_ms, \
             receipt_token, notify_response) \
             VALUES (7, 'static', 'cancelled', 1, 1000, 'r0', 'old answer r0')",
            params![],
        )
        .expect("an answer kept whole");
        super::super::migrations::run(&mut conn).expect("the rest");
        let db = Db::Lite(&conn);
        let policy = Policy {
            confirm_window: SignedDuration::from_secs(60),
            confirm_grace: SignedDuration::from_secs(5),
        };
        let reload = |id| load(db, id).expect("a read").expect("the purchase");
        let old = reload(PaymentId::new(7));
        assert_eq!(old.notify_response.as_deref(), Some("old answer r0"));

        let with_link = |token: &str| {
            format!(
                r#"{{"result":{{"resultCode":"SUCCESS"}},"linkReceipt":"https://ps/receipt?id={token}"}}"#
            )
        };
        let mut tokens = Vec::new();
        for token in ["a1b2", "c3d4"] {
            let mut p = purchase(db, token);
            p.notify_response = Some(with_link(token));
            save(db, &p, &policy, None).expect("saved");
            assert_eq!(reload(p.id).notify_response, Some(with_link(token)));
            tokens.push(p.id);
        }
        // An answer without the token (a cancel), and one where the token is empty.
        let mut cancelled = purchase(db, "e5f6");
        cancelled.notify_response = Some(r#"{"result":{"resultCode":"SUCCESS"}}"#.to_owned());
        save(db, &cancelled, &policy, None).expect("saved");
        assert_eq!(
            reload(cancelled.id).notify_response,
            cancelled.notify_response
        );
        let mut empty = purchase(db, "");
        empty.notify_response = Some("x".to_owned());
        save(db, &empty, &policy, None).expect("saved");
        assert_eq!(reload(empty.id).notify_response.as_deref(), Some("x"));
        // A save of the old purchase keeps its answer, now as a form.
        save(db, &reload(old.id), &policy, None).expect("saved");
        assert_eq!(
            reload(old.id).notify_response.as_deref(),
            Some("old answer r0")
        );

        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect("a count") };
        assert_eq!(
            count("SELECT COUNT(*) FROM payments WHERE notify_response IS NOT NULL"),
            0,
            "no answer is kept whole any more"
        );
        // The two answers with a link share one form: old, link, cancel, "x".
        assert_eq!(count("SELECT COUNT(*) FROM notify_forms"), 4);
    }

    #[test]
    fn a_receipt_token_of_32_hex_digits_is_kept_as_16_bytes_and_read_back_as_it_was() {
        let mut conn = Connection::open_in_memory().expect("a database");
        super::super::migrations::run(&mut conn).expect("migrations");
        // A purchase from before: its token is kept as text.
        let before = "0000000000000000000000000000000b";
        conn.execute(
            "INSERT INTO payments (id, kind, status, trade_point_id, created_at_ms, receipt_token) \
             VALUES (11, 'static', 'created', 1, 1000, ?1)",
            params![before],
        )
        .expect("an older purchase");
        let db = Db::Lite(&conn);
        let policy = Policy {
            confirm_window: SignedDuration::from_secs(60),
            confirm_grace: SignedDuration::from_secs(5),
        };
        let stored = |id: PaymentId| -> (String, i64) {
            conn.query_row(
                "SELECT typeof(receipt_token), length(receipt_token) FROM payments WHERE id = ?1",
                params![id.get()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("the row")
        };
        let token = crate::links::secret_token();
        let mut p = purchase(db, &token);
        let answer = format!(r#"{{"linkReceipt":"https://ps/receipt?id={token}"}}"#);
        p.notify_response = Some(answer.clone());
        save(db, &p, &policy, None).expect("saved");
        assert_eq!(stored(p.id), ("blob".to_owned(), 16));
        let found = load_by_receipt(db, &token)
            .expect("a read")
            .expect("found by its token");
        assert_eq!(found.id, p.id);
        assert_eq!(found.receipt_token, token);
        assert_eq!(
            found.notify_response,
            Some(answer),
            "the answer holds the text"
        );

        let old = load_by_receipt(db, before)
            .expect("a read")
            .expect("the older purchase is found by its token too");
        assert_eq!(old.id, PaymentId::new(11));
        assert_eq!(old.receipt_token, before);
        assert_eq!(stored(old.id), ("text".to_owned(), 32));

        // Upper-case hex is not what the PS makes: kept as it is, found as it is.
        let upper = "0123456789ABCDEF0123456789ABCDEF";
        let q = purchase(db, upper);
        assert_eq!(stored(q.id), ("text".to_owned(), 32));
        let found = load_by_receipt(db, upper).expect("a read").expect("found");
        assert_eq!((found.id, found.receipt_token.as_str()), (q.id, upper));
        assert!(
            load_by_receipt(db, &upper.to_lowercase())
                .expect("a read")
                .is_none(),
            "a token is found only as it was given"
        );
        // Not a token the PS made: nothing.
        assert!(load_by_receipt(db, "nothing").expect("a read").is_none());
    }

    /// On PostgreSQL at READ COMMITTED a load that waited for the purchase's row lock reads the
    /// row as its holder left it, but a join in the same statement would read the other table
    /// as it was when the statement began: the notifyPayment answer of a form the holder made
    /// would come back empty, and a repeat would get a different body. The form is read in a
    /// statement of its own (`form_apart`); here the second load waits for the lock for sure
    /// (seen in `pg_stat_activity`) before the first commits.
    #[test]
    fn on_postgres_a_load_that_waited_for_the_lock_reads_the_form_its_holder_made() {
        use super::super::migrations_pg::tests::{TestDatabase, admin_url};
        use std::time::Duration;

        let test = "on_postgres_a_load_that_waited_for_the_lock_reads_the_form_its_holder_made";
        let Some(admin) = admin_url(test) else {
            return;
        };
        let database = TestDatabase::create(&admin, "lockwait");
        let limits = super::super::StoreLimits {
            database_connections: 4,
            ..limits()
        };
        let store = Store::open(std::path::Path::new(&database.url()), &limits).expect("opens");
        let watcher = database.pg();
        let policy = Policy {
            confirm_window: SignedDuration::from_secs(60),
            confirm_grace: SignedDuration::from_secs(5),
        };
        // An answer of a form no purchase has yet.
        let answer = r#"{"linkReceipt":"https://ps/receipt?id=a1b2","form":"new"}"#.to_owned();
        let seen = block_on(async {
            let id = store
                .transaction(|tx| Ok(purchase(tx.db, "a1b2").id))
                .await
                .expect("a purchase");
            // The holder locks the purchase, writes the answer (and its new form), and waits.
            let (locked, mut is_locked) = tokio::sync::mpsc::unbounded_channel::<()>();
            let (release, released) = std::sync::mpsc::channel::<()>();
            let holder = {
                let (store, answer) = (store.clone(), answer.clone());
                tokio::spawn(async move {
                    store
                        .locking_transaction(move |tx| {
                            let mut p = tx.payment_to_change(id)?.expect("the purchase");
                            p.notify_response = Some(answer.clone());
                            tx.save_payment(&p, &policy)?;
                            let _ = locked.send(());
                            let _ = released.recv_timeout(Duration::from_secs(15));
                            Ok(())
                        })
                        .await
                })
            };
            is_locked.recv().await.expect("the holder has the lock");
            // The waiter asks for the same lock ...
            let waiter = {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .locking_transaction(move |tx| {
                            Ok(tx
                                .payment_to_change(id)?
                                .expect("the purchase")
                                .notify_response)
                        })
                        .await
                })
            };
            // ... and is seen waiting for it before the holder commits.
            let waiting = tokio::task::spawn_blocking(move || {
                let mut waiting = 0;
                for _ in 0..1_000 {
                    waiting = Db::Pg(&watcher)
                        .query_row(
                            "SELECT COUNT(*) FROM pg_stat_activity \
                             WHERE wait_event_type = 'Lock' AND datname = current_database()",
                            args![],
                            |r| r.get::<i64>(0),
                        )
                        .expect("pg_stat_activity")
                        .unwrap_or(0);
                    if waiting > 0 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                waiting
            })
            .await
            .expect("watched");
            assert_eq!(waiting, 1, "the second load waits for the lock");
            release.send(()).expect("the holder waits");
            holder.await.expect("joined").expect("the holder commits");
            waiter.await.expect("joined").expect("the waiter commits")
        });
        drop(store);
        assert_eq!(
            seen,
            Some(answer),
            "the answer its holder left, byte for byte"
        );
    }
}
