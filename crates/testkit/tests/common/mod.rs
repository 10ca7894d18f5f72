//! A small bank for the testkit's own tests: the SDK's client for paying, the SDK's `/refund`
//! endpoint over a ledger table for refunds. Every SDK call of these tests is here, so a change
//! of the client's signatures is adapted in one place.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use rusqlite::params;
use tempfile::TempDir;
use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint, RefundOrder};
use tolem_sdk::{MppClient, Outcome, RetryPolicy, Scanned};
use tolem_wire::mpp::{
    CheckoutRequest, NotifyPayment, NotifyPaymentRequest, ParameterValue, QrCodeType, ResultBody,
    ScanPayment, ScanRefund, ScanRequest,
};
use tolem_wire::{Amount, Locale};

/// Retries quick enough for a test; still until answered.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy::default()
        .with_delays_ms(20, 200)
        .with_attempts_max(None)
}

/// The bank as the PS's client.
pub fn client(ps_url: &str) -> MppClient {
    MppClient::new(ps_url, tolem_testkit::DEMO_BANK).expect("a client")
}

/// What a scan showed, in the fields these tests look at.
pub struct ScanView {
    pub qr_code_type: Option<QrCodeType>,
    pub payment: Option<ScanPayment>,
    pub refund: Option<ScanRefund>,
}

/// The code of a refusal, or why the outcome is not known.
fn refused<T>(outcome: Outcome<T>) -> Result<T, String> {
    match outcome {
        Outcome::Done(answer) => Ok(answer),
        Outcome::Refused(result) => Err(result.result_code),
        Outcome::NotKnownYet(why) => Err(format!("not known yet: {why}")),
        _ => Err("an outcome these tests do not know".to_owned()),
    }
}

/// A scan: what the PS showed, or the code it refused with.
pub async fn scan(client: &MppClient, qr: &str, customer: &str) -> Result<ScanView, String> {
    let request = ScanRequest {
        qr_code: qr.to_owned(),
        customer_id: customer.to_owned(),
    };
    let reply = client.scan(&request).await.map_err(|e| e.to_string())?;
    let scanned = refused(reply.outcome)?;
    let (kind, payment, refund) = match scanned {
        Scanned::Dynamic { payment, .. } => (QrCodeType::Dynamic, Some(payment), None),
        Scanned::Static { payment, .. } => (QrCodeType::Static, Some(payment), None),
        Scanned::Custom { payment, .. } => (QrCodeType::Custom, Some(payment), None),
        Scanned::Refund { refund, .. } => (QrCodeType::Refund, None, Some(refund)),
        other => return Err(format!("an unexpected QR: {other:?}")),
    };
    Ok(ScanView {
        qr_code_type: Some(kind),
        payment,
        refund,
    })
}

/// Checkout of the parking for `duration` (`1h`, `3h`, `day`): the amount the PS set.
pub async fn checkout_parking(client: &MppClient, payment_id: &str, duration: &str) -> Amount {
    let request = CheckoutRequest {
        payment_id: payment_id.to_owned(),
        service_id: tolem_testkit::PARKING_SERVICE,
        parameters: vec![
            ParameterValue {
                id: tolem_testkit::PARKING_PLATE_PARAMETER,
                value: Some("777ABC02".to_owned()),
            },
            ParameterValue {
                id: tolem_testkit::PARKING_DURATION_PARAMETER,
                value: Some(duration.to_owned()),
            },
        ],
        customer_id: None,
    };
    let reply = client.checkout(&request).await.expect("checkout");
    let answer = refused(reply.outcome).expect("checked out");
    answer.payment_amount.expect("an amount")
}

/// notifyPayment SUCCESS under `retry`: the PS's resultCode, or why there is none.
pub async fn confirm(
    client: &MppClient,
    payment_id: &str,
    amount: Option<Amount>,
    customer: &str,
    retry: &RetryPolicy,
) -> String {
    let request = NotifyPaymentRequest {
        result: ResultBody::success(),
        payment: NotifyPayment {
            payment_id: payment_id.to_owned(),
            mpp_payment_id: format!("M-{payment_id}"),
            payment_amount: amount,
            customer_id: None,
        },
        customer_id: Some(customer.to_owned()),
    };
    let reply = client
        .in_locale(Locale::Ru)
        .with_retry(retry.clone())
        .notify_payment(&request)
        .await;
    match reply.map(|r| r.outcome) {
        Ok(Outcome::Done(answer)) => answer.result.result_code,
        Ok(Outcome::NotKnownYet(why)) => format!("no code: {why}"),
        Ok(other) => refused(other).err().unwrap_or_default(),
        Err(e) => format!("no code: {e}"),
    }
}

/// Credits a table `credits` in the bank's own database, a file apart from the kit's record:
/// idempotent per refundId, as the kit's guarantee asks of a ledger outside its file.
struct Ledger {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl Credit for Ledger {
    async fn credit(&self, refund: &RefundOrder) -> Result<Credited, CreditError> {
        let tiyn = i64::try_from(refund.amount().tiyn()).map_err(CreditError::new)?;
        let conn = self
            .conn
            .lock()
            .map_err(|e| CreditError::new(e.to_string()))?;
        conn.execute(
            "INSERT OR IGNORE INTO credits (refund_id, customer, tiyn) VALUES (?1, ?2, ?3)",
            params![refund.refund_id(), refund.customer_id(), tiyn],
        )
        .map_err(CreditError::new)?;
        Ok(Credited::Yes)
    }
}

/// The bank's `/refund`, served on port 0.
pub struct RefundDesk {
    pub url: String,
    ledger: Arc<Mutex<rusqlite::Connection>>,
    _dir: TempDir,
}

impl RefundDesk {
    pub async fn start() -> RefundDesk {
        let dir = tempfile::tempdir().expect("a temp dir");
        let conn = rusqlite::Connection::open(dir.path().join("bank.db")).expect("the bank's db");
        conn.execute_batch(
            "CREATE TABLE credits (refund_id TEXT PRIMARY KEY, customer TEXT NOT NULL, tiyn INTEGER NOT NULL)",
        )
        .expect("a table");
        let ledger = Arc::new(Mutex::new(conn));
        let endpoint = RefundEndpoint::open(
            &dir.path().join("kit.db"),
            Ledger {
                conn: ledger.clone(),
            },
        )
        .expect("endpoint");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/refund", listener.local_addr().expect("addr"));
        let router = endpoint.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        RefundDesk {
            url,
            ledger,
            _dir: dir,
        }
    }

    /// Every credit made: (refundId, customer, tiyn).
    pub async fn credits(&self) -> Vec<(String, String, i64)> {
        let conn = self.ledger.lock().expect("the ledger");
        let mut stmt = conn
            .prepare("SELECT refund_id, customer, tiyn FROM credits ORDER BY rowid")
            .expect("a query");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("credits")
    }
}
