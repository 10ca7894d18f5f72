//! A bank back-end in about 150 lines of Rust (and its ledger's SQL), on the kit's durable
//! pattern (`docs/mpp-kit.md`):
//! - `POST /pay` (a scan request: `qrCode`, `customerId`) scans a Dynamic QR, then debits the
//!   customer and records the notifyPayment the PS is owed in ONE transaction; the kit's
//!   `pending::Driver` tells the PS whatever happens to the request, then keeps or reverses.
//! - `POST /refund` is the kit's endpoint; its async credit hook credits this bank's own ledger,
//!   once per refundId, only for a payment this customer paid here and never beyond its amount
//!   (else `PROCESS_FAIL`), both checked in the credit's own statement.
//!
//! SQLite waits for the disk on every commit, so each use of the ledger runs in Tokio's blocking
//! pool (`Books::run`), never on the runtime's threads.
//!
//! Run the sandbox (`tolem sandbox`), then `cargo run -p tolem-sdk --example bank` and
//! `curl -d '{"customerId":"C1","qrCode":"<a Dynamic QR>"}' -H 'content-type: application/json' localhost:8093/pay`.
//! `crates/cli/tests/example_bank.rs` runs this very file against the sandbox PS.

use std::{path::Path, sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, routing::post};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::Mutex};
use tolem_sdk::pending::{self, Driver, Notification, Outcome, PendingStore, Settle, SettleError};
use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint, RefundOrder, Refusal};
use tolem_sdk::{MppClient, Outcome as Call, Scanned};
use tolem_wire::{Locale, mpp::*};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The bank's ledger. Balances follow the rows: a debit takes, its reversal gives back, a
/// refund's credit gives; each row moves money once. `payment` was added to `debits` and
/// `credits` after the first version of this example: a `bank.db` made by that version has no
/// such column, so start from a new file (an example keeps no migrations).
const LEDGER: &str = "
CREATE TABLE IF NOT EXISTS balances (customer TEXT PRIMARY KEY, tiyn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS debits (id TEXT PRIMARY KEY, payment TEXT, customer TEXT, tiyn INTEGER, status TEXT);
CREATE TABLE IF NOT EXISTS credits (refund_id TEXT PRIMARY KEY, payment TEXT, customer TEXT, tiyn INTEGER);
CREATE TRIGGER IF NOT EXISTS debit BEFORE INSERT ON debits BEGIN
  SELECT RAISE(ABORT, 'not enough money') WHERE NOT EXISTS
    (SELECT 1 FROM balances WHERE customer = NEW.customer AND tiyn >= NEW.tiyn);
  UPDATE balances SET tiyn = tiyn - NEW.tiyn WHERE customer = NEW.customer; END;
CREATE TRIGGER IF NOT EXISTS reverse AFTER UPDATE OF status ON debits
  WHEN OLD.status = 'debited' AND NEW.status = 'reversed' BEGIN
  UPDATE balances SET tiyn = tiyn + NEW.tiyn WHERE customer = NEW.customer; END;
CREATE TRIGGER IF NOT EXISTS credit AFTER INSERT ON credits BEGIN
  UPDATE balances SET tiyn = tiyn + NEW.tiyn WHERE customer = NEW.customer; END;
INSERT OR IGNORE INTO balances VALUES ('C1', 5000000);";

/// The ledger's connection, shared with the kit's pending notifications.
#[derive(Clone)]
struct Books(Arc<Mutex<Connection>>);

impl Books {
    /// Runs `f` on the ledger in Tokio's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let mut conn = self.0.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut conn)).await?
    }
}

/// Keeps or reverses a debit once: the driver may call again after a crash (with the same
/// outcome), and only a debit still 'debited' changes.
impl Settle for Books {
    async fn settle(&self, n: &Notification, outcome: &Outcome) -> Result<(), SettleError> {
        let (id, keep) = (n.id.clone(), matches!(outcome, Outcome::Keep { .. }));
        let sql = "UPDATE debits SET status = iif(?2, 'kept', 'reversed') WHERE id = ?1 AND status = 'debited'";
        let settled = self
            .run(move |c| Ok(c.execute(sql, params![id, keep])?))
            .await;
        settled.map(drop).map_err(SettleError::new)
    }
}

/// Credits a customer of this bank once per refundId (the kit may call again after a crash):
/// only for a payment this customer paid here (not reversed), and only while the refunds of
/// that payment stay within it — checked by the one statement that credits, so two refunds of
/// one payment at once cannot both pass. A core-banking call would take the refundId as its
/// idempotency key.
impl Credit for Books {
    async fn credit(&self, r: &RefundOrder) -> Result<Credited, CreditError> {
        let tiyn = i64::try_from(r.amount().tiyn()).map_err(CreditError::new)?;
        let (id, payment, customer) = (
            r.refund_id().to_owned(),
            r.payment_id().to_owned(),
            r.customer_id().to_owned(),
        );
        let credited = self.run(move |c| {
            let sql = "INSERT OR IGNORE INTO credits SELECT ?1, ?2, ?3, ?4 WHERE ?4 + \
                (SELECT coalesce(sum(tiyn), 0) FROM credits WHERE payment = ?2) <= \
                (SELECT sum(tiyn) FROM debits WHERE payment = ?2 AND customer = ?3 AND status != 'reversed')";
            c.execute(sql, params![id, payment, customer, tiyn])?;
            let sql = "SELECT count(*) = 1 FROM credits WHERE refund_id = ?1";
            Ok(c.query_row(sql, [&id], |row| row.get::<_, bool>(0))?)
        });
        match credited.await {
            Ok(true) => Ok(Credited::Yes),
            // Not this customer's payment here, or more than was paid.
            Ok(false) => Ok(Credited::Refused(Refusal::ProcessFail)),
            Err(e) => Err(CreditError::new(e)),
        }
    }
}

#[derive(Clone)]
struct Bank(Books, MppClient, Driver<Books>);

async fn pay(State(bank): State<Bank>, Json(scan): Json<ScanRequest>) -> Json<Value> {
    let Bank(books, ps, driver) = bank;
    let reply = ps.scan(&scan).await.map(|reply| reply.outcome);
    // This bank pays Dynamic QRs only: the amount is the merchant's.
    let Ok(Call::Done(Scanned::Dynamic {
        payment, amount, ..
    })) = reply
    else {
        return Json(json!({"error": format!("not paid here: {reply:?}")}));
    };
    let mpp_payment_id = format!("B-{}", payment.payment_id);
    let customer = scan.customer_id.clone();
    let request =
        NotifyPaymentRequest::success(payment.payment_id, mpp_payment_id, Some(amount), customer);
    let n = Notification::new(request, Locale::Ru);
    // The debit and the notification the PS is owed commit together, or neither does.
    let (recorded, payment_id) = (n.clone(), n.request.payment.payment_id.clone());
    let debited = books.run(move |conn| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let tiyn = i64::try_from(amount.tiyn())?;
        let row = params![recorded.id, payment_id, scan.customer_id, tiyn];
        tx.execute("INSERT INTO debits VALUES (?1, ?2, ?3, ?4, 'debited')", row)?;
        pending::record(&tx, &recorded)?;
        Ok(tx.commit()?)
    });
    if let Err(e) = debited.await {
        return Json(json!({"error": e.to_string()}));
    }
    // The driver goes on in its own task if this request is dropped; wait a while for it.
    Json(match driver.finish(&n.id, Duration::from_secs(20)).await {
        Ok(Some(Outcome::Keep { link_receipt })) => {
            json!({"status": "paid", "receipt": link_receipt})
        }
        Ok(Some(outcome)) => json!({"status": "reversed", "code": outcome.result_code()}),
        Ok(None) | Err(_) => json!({"status": "pending"}), // settled in the background
    })
}

/// Serves the bank (MPP `demobank` of the PS at `ps_url`) on `listener` until dropped; the
/// ledger and the kit's records are in `dir/bank.db`.
pub async fn run(ps_url: &str, listener: TcpListener, dir: &Path) -> Result<(), Error> {
    let file = dir.join("bank.db");
    let conn = Connection::open(&file)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(LEDGER)?;
    let books = Books(Arc::new(Mutex::new(conn)));
    // The kit's record of refunds goes in the same file, on a connection of its own.
    let refunds = RefundEndpoint::open(&file, books.clone())?;
    let ps = MppClient::new(ps_url, "demobank")?;
    let store = PendingStore::with_connection(books.0.clone());
    let driver = Driver::new(store, ps.clone(), books.clone(), Default::default());
    let app = Router::new().route("/pay", post(pay));
    let app = app.with_state(Bank(books, ps, driver.clone()));
    let app = app.merge(refunds.router());
    // The driver finishes what an earlier run left, and everything a dropped request leaves.
    // Served with a connection cap and deadlines (`tolem_sdk::listen`), not plain axum::serve.
    let forever = std::future::pending::<()>();
    tokio::select! {
        () = driver.run() => Ok(()),
        served = tolem_sdk::listen::serve(listener, app, forever) => Ok(served?),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Not a `TOLEM_…` name: `tolem serve` refuses variables of that prefix it does not know.
    let ps_url = std::env::var("BANK_PS_URL").unwrap_or("http://127.0.0.1:8080".into());
    let listener = TcpListener::bind("127.0.0.1:8093").await?;
    println!(
        "bank: http://127.0.0.1:8093 (POST /pay, POST /refund) as demobank, against the PS at \
         {ps_url}; its ledger is bank.db in this folder. The PS sends demobank's refunds here once \
         its refund_url is http://127.0.0.1:8093/refund (docs/sandbox.md, refund_url)."
    );
    run(&ps_url, listener, Path::new(".")).await
}
