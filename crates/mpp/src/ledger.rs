//! Customers' money as a double-entry ledger: every movement is one transaction of two entries
//! (a debit of one account and a credit of another, same amount), and balances are sums of
//! entries — never stored, so they cannot drift.
//!
//! Accounts: `customer:<id>` (what the MPP owes its customer), `ps:clearing` (paid to merchants
//! through the PS, not yet settled), `bank:funding` (where opening deposits come from).

use rusqlite::{Connection, OptionalExtension, params};
use tolem_wire::Amount;

pub const CLEARING: &str = "ps:clearing";
pub const FUNDING: &str = "bank:funding";

/// An amount read back from a row: the one reading of stored money in the reference MPP. A
/// count of tiyn below zero or past what an amount may be only a damaged row holds; it is an
/// error, never a zero that would pay back or reconcile nothing.
pub fn stored_amount(tiyn: i64) -> rusqlite::Result<Amount> {
    Amount::from_stored_tiyn(tiyn).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, tiyn))
}

pub fn customer_account(customer_id: &str) -> String {
    format!("customer:{customer_id}")
}

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_txns (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    txn_id INTEGER NOT NULL REFERENCES ledger_txns (id),
    account TEXT NOT NULL,
    debit_tiyn INTEGER NOT NULL CHECK (debit_tiyn >= 0),
    credit_tiyn INTEGER NOT NULL CHECK (credit_tiyn >= 0)
);
CREATE INDEX IF NOT EXISTS entries_by_account ON entries (account);
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    merchant TEXT NOT NULL,
    amount_tiyn INTEGER,
    service_id INTEGER,
    status TEXT NOT NULL,
    mpp_payment_id TEXT NOT NULL UNIQUE,
    ps_code TEXT,
    receipt TEXT,
    created_at_ms INTEGER NOT NULL,
    paid_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS refunds_applied (
    refund_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount_tiyn INTEGER NOT NULL,
    txn_id INTEGER REFERENCES ledger_txns (id),
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_applied_by_payment ON refunds_applied (payment_id);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    notice TEXT
);
";

/// Brings a database made by an earlier version up to [`SCHEMA`].
pub fn upgrade(conn: &Connection) -> Result<(), LedgerError> {
    let has_paid_at: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('payments') WHERE name = 'paid_at_ms'")?
        .exists([])?;
    if !has_paid_at {
        conn.execute_batch("ALTER TABLE payments ADD COLUMN paid_at_ms INTEGER")?;
    }
    let has_notice: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('notifications') WHERE name = 'notice'")?
        .exists([])?;
    if !has_notice {
        conn.execute_batch("ALTER TABLE notifications ADD COLUMN notice TEXT")?;
    }
    // Refunds credited before `refunds_applied` existed are known from the kit's table only
    // (where the kit once ran the credit in its own transaction); the limit of a later partial
    // refund counts them too. Their ledger transaction is not linked: its reference names it.
    let has_kit_table: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tolem_refunds'")?
        .exists([])?;
    if has_kit_table {
        conn.execute_batch(
            "INSERT OR IGNORE INTO refunds_applied (refund_id, payment_id, customer_id, amount_tiyn, txn_id, created_at_ms) \
             SELECT refund_id, payment_id, customer_id, amount_tiyn, NULL, created_at_ms FROM tolem_refunds WHERE result_code = 'SUCCESS'",
        )?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("not enough money")]
    InsufficientFunds,
    #[error("amount out of range")]
    Range,
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn tiyn(amount: Amount) -> Result<i64, LedgerError> {
    i64::try_from(amount.tiyn()).map_err(|_| LedgerError::Range)
}

/// Moves `amount` from one account to another as one balanced transaction.
pub fn transfer(
    conn: &Connection,
    kind: &str,
    reference: &str,
    from: &str,
    to: &str,
    amount: Amount,
) -> Result<i64, LedgerError> {
    let tiyn = tiyn(amount)?;
    conn.execute(
        "INSERT INTO ledger_txns (kind, reference, created_at_ms) VALUES (?1, ?2, ?3)",
        params![kind, reference, now_ms()],
    )?;
    let txn = conn.last_insert_rowid();
    let mut entry = conn.prepare_cached(
        "INSERT INTO entries (txn_id, account, debit_tiyn, credit_tiyn) VALUES (?1, ?2, ?3, ?4)",
    )?;
    entry.execute(params![txn, from, tiyn, 0])?;
    entry.execute(params![txn, to, 0, tiyn])?;
    Ok(txn)
}

/// Credits minus debits of an account, in tiyn.
pub fn balance(conn: &Connection, account: &str) -> Result<i64, LedgerError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(credit_tiyn), 0) - COALESCE(SUM(debit_tiyn), 0) FROM entries WHERE account = ?1",
        [account],
        |r| r.get(0),
    )?)
}

/// Debits a customer to the clearing account, refusing to go below zero.
pub fn debit_customer(
    conn: &Connection,
    customer_id: &str,
    reference: &str,
    amount: Amount,
) -> Result<i64, LedgerError> {
    let account = customer_account(customer_id);
    if balance(conn, &account)? < tiyn(amount)? {
        return Err(LedgerError::InsufficientFunds);
    }
    transfer(conn, "payment", reference, &account, CLEARING, amount)
}

/// Marks a refund as credited by ledger transaction `txn`, in the transaction that credits it: a
/// repeat of its refundId finds the mark and credits nothing.
pub fn mark_refund(
    conn: &Connection,
    refund_id: &str,
    payment_id: &str,
    customer_id: &str,
    amount_tiyn: i64,
    txn: i64,
) -> Result<(), LedgerError> {
    conn.execute(
        "INSERT INTO refunds_applied (refund_id, payment_id, customer_id, amount_tiyn, txn_id, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![refund_id, payment_id, customer_id, amount_tiyn, txn, now_ms()],
    )?;
    Ok(())
}

/// True when every transaction's debits equal its credits.
pub fn is_balanced(conn: &Connection) -> Result<bool, LedgerError> {
    let unbalanced: Option<i64> = conn
        .query_row(
            "SELECT txn_id FROM entries GROUP BY txn_id HAVING SUM(debit_tiyn) != SUM(credit_tiyn) LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(unbalanced.is_none())
}

/// Creates a customer with an opening deposit, once.
pub fn seed_customer(
    conn: &Connection,
    id: &str,
    name: &str,
    deposit: Amount,
) -> Result<(), LedgerError> {
    let added = conn.execute(
        "INSERT OR IGNORE INTO customers (id, name) VALUES (?1, ?2)",
        params![id, name],
    )?;
    if added > 0 && !deposit.is_zero() {
        transfer(conn, "deposit", id, FUNDING, &customer_account(id), deposit)?;
    }
    Ok(())
}

/// Pushes a notification: `notice` (JSON) is what the app words in its customer's language;
/// `text` is the same in both languages, for readers of the table itself.
pub fn notify(
    conn: &Connection,
    customer_id: &str,
    text: &str,
    notice: &str,
) -> Result<(), LedgerError> {
    conn.execute(
        "INSERT INTO notifications (customer_id, text, created_at_ms, notice) VALUES (?1, ?2, ?3, ?4)",
        params![customer_id, text, now_ms(), notice],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_money_out_of_range_is_an_error_never_zero() {
        assert_eq!(stored_amount(150_000).ok(), Amount::from_tenge(1_500));
        assert!(stored_amount(-1).is_err());
        let past = i64::try_from(tolem_wire::amount::AMOUNT_TIYN_MAX).expect("fits") + 1;
        assert!(stored_amount(past).is_err());
    }
}
