//! A bank back-end in about 100 lines, on the kit's durable pattern: `POST /pay` scans a QR,
//! debits the customer and records the notifyPayment the PS is owed in ONE transaction; the kit's
//! driver tells the PS (whatever happens to the request) and keeps or reverses the debit.
//! `POST /refund` is the kit's endpoint. Run the sandbox (`tolem sandbox`), then
//! `cargo run -p tolem-sdk --example bank` and
//! `curl -d '{"customer":"C1","qr":"<a Dynamic QR>"}' -H 'content-type: application/json' localhost:8093/pay`.

use std::sync::Arc;
use std::time::Duration;

use axum::{Json, Router, extract::State, routing::post};
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tolem_sdk::pending::{
    self, Driver, DriverConfig, Notification, Outcome, PendingStore, Settle, SettleError,
};
use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint, RefundOrder, Refusal};
use tolem_sdk::{MppClient, Outcome as Call, Scanned};
use tolem_wire::Locale;
use tolem_wire::mpp::{NotifyPayment, NotifyPaymentRequest, ResultBody, ScanRequest};

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS balances (customer TEXT PRIMARY KEY, tiyn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS credits (refund_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS debits (id TEXT PRIMARY KEY, customer TEXT NOT NULL, tiyn INTEGER NOT NULL, status TEXT NOT NULL);
INSERT OR IGNORE INTO balances VALUES ('C1', 5000000);";

/// Keeps or gives back a debit, once: only a debit still 'debited' changes.
#[derive(Clone)]
struct Ledger(Arc<Mutex<Connection>>);

impl Settle for Ledger {
    async fn settle(&self, n: &Notification, outcome: &Outcome) -> Result<(), SettleError> {
        let conn = self.0.lock().await;
        let tx = conn.unchecked_transaction().map_err(SettleError::new)?;
        let keep = matches!(outcome, Outcome::Keep { .. });
        let status = if keep { "kept" } else { "reversed" };
        let changed = tx
            .execute(
                "UPDATE debits SET status = ?2 WHERE id = ?1 AND status = 'debited'",
                params![n.id, status],
            )
            .map_err(SettleError::new)?;
        if changed == 1 && !keep {
            tx.execute("UPDATE balances SET tiyn = tiyn + (SELECT tiyn FROM debits WHERE id = ?1) WHERE customer = (SELECT customer FROM debits WHERE id = ?1)", [&n.id]).map_err(SettleError::new)?;
        }
        tx.commit().map_err(SettleError::new)
    }
}

/// Refunds credit the customer once per refundId: the mark in `credits` and the credit commit
/// together, so a repeat the kit makes after a crash moves nothing.
struct Refunds(Arc<Mutex<Connection>>);

impl Credit for Refunds {
    async fn credit(&self, r: &RefundOrder) -> Result<Credited, CreditError> {
        let tiyn = i64::try_from(r.amount().tiyn()).map_err(CreditError::new)?;
        let conn = self.0.lock().await;
        let tx = conn.unchecked_transaction().map_err(CreditError::new)?;
        let first = tx
            .execute("INSERT OR IGNORE INTO credits VALUES (?1)", [r.refund_id()])
            .map_err(CreditError::new)?;
        let credited = first == 0
            || tx
                .execute(
                    "UPDATE balances SET tiyn = tiyn + ?1 WHERE customer = ?2",
                    params![tiyn, r.customer_id()],
                )
                .map_err(CreditError::new)?
                == 1;
        if !credited {
            return Ok(Credited::Refused(Refusal::ProcessFail));
        }
        tx.commit().map_err(CreditError::new)?;
        Ok(Credited::Yes)
    }
}

#[derive(Clone)]
struct Bank {
    db: Arc<Mutex<Connection>>,
    ps: MppClient,
    driver: Driver<Ledger>,
}

async fn pay(State(bank): State<Bank>, Json(body): Json<Value>) -> Json<Value> {
    let (customer, qr) = (
        body["customer"].as_str().unwrap_or_default(),
        body["qr"].as_str().unwrap_or_default(),
    );
    let request = ScanRequest {
        qr_code: qr.into(),
        customer_id: customer.into(),
    };
    // This bank pays Dynamic QRs only: the amount is the merchant's.
    let (payment, amount) = match bank.ps.scan(&request).await.map(|reply| reply.outcome) {
        Ok(Call::Done(Scanned::Dynamic {
            payment, amount, ..
        })) => (payment, amount),
        Ok(other) => return Json(json!({"error": format!("not paid here: {other:?}")})),
        Err(e) => return Json(json!({"error": e.to_string()})),
    };
    let request = NotifyPaymentRequest {
        result: ResultBody::success(),
        payment: NotifyPayment {
            payment_id: payment.payment_id.clone(),
            mpp_payment_id: format!("B-{}", payment.payment_id),
            payment_amount: Some(amount),
            customer_id: None,
        },
        customer_id: Some(customer.into()),
    };
    let n = Notification::new(request, Locale::Ru);
    let tiyn = i64::try_from(amount.tiyn()).unwrap_or(i64::MAX);
    {
        // The debit and the notification commit together, or neither does.
        let mut conn = bank.db.lock().await;
        let recorded = (|| -> Result<(), Box<dyn std::error::Error>> {
            let tx = conn.transaction()?;
            let debited = tx.execute(
                "UPDATE balances SET tiyn = tiyn - ?1 WHERE customer = ?2 AND tiyn >= ?1",
                params![tiyn, customer],
            )?;
            if debited != 1 {
                return Err("not enough money".into());
            }
            tx.execute(
                "INSERT INTO debits VALUES (?1, ?2, ?3, 'debited')",
                params![n.id, customer, tiyn],
            )?;
            pending::record(&tx, &n)?;
            Ok(tx.commit()?)
        })();
        if let Err(e) = recorded {
            return Json(json!({"error": e.to_string()}));
        }
    }
    // The driver goes on in its own task if this request is dropped; wait a while for it.
    match bank.driver.finish(&n.id, Duration::from_secs(20)).await {
        Ok(Some(Outcome::Keep { link_receipt })) => {
            Json(json!({"status": "paid", "receipt": link_receipt}))
        }
        Ok(Some(outcome)) => Json(json!({"status": "reversed", "code": outcome.result_code()})),
        Ok(None) => Json(json!({"status": "pending"})),
        Err(e) => Json(json!({"status": "pending", "error": e.to_string()})),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conn = Connection::open("bank.db")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(LEDGER)?;
    let db = Arc::new(Mutex::new(conn));
    // The kit's record of refunds goes in the same file, on a connection of its own.
    let refunds = RefundEndpoint::open("bank.db".as_ref(), Refunds(db.clone()))?;
    let ps = MppClient::new("http://127.0.0.1:8080", "demobank")?;
    let driver = Driver::new(
        PendingStore::with_connection(db.clone()),
        ps.clone(),
        Ledger(db.clone()),
        DriverConfig::default(),
    );
    // Finishes what an earlier run left, and everything a dropped request leaves.
    tokio::spawn(driver.clone().run());
    let app = Router::new()
        .route("/pay", post(pay))
        .with_state(Bank { db, ps, driver })
        .merge(refunds.router());
    axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8093").await?, app).await?;
    Ok(())
}
