//! The `/refund` endpoint over real HTTP: exactly once per refundId, identical answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::join_all;
use serde_json::{Value, json};
use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint};
use tolem_wire::mpp::{RefundRequest, ResultCode};

/// Credits a balance table; refuses customer "GONE".
struct Balances {
    calls: AtomicUsize,
}

impl Credit for Balances {
    fn credit(
        &self,
        tx: &rusqlite::Transaction<'_>,
        refund: &RefundRequest,
    ) -> Result<Credited, CreditError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if refund.customer_id == "GONE" {
            return Ok(Credited::Refused(ResultCode::ProcessFail));
        }
        let tiyn = i64::try_from(refund.refund_amount.tiyn())
            .map_err(|e| CreditError::Other(e.to_string()))?;
        tx.execute(
            "INSERT INTO balances (customer, tiyn) VALUES (?1, ?2) ON CONFLICT (customer) DO UPDATE SET tiyn = tiyn + ?2",
            rusqlite::params![refund.customer_id, tiyn],
        )?;
        Ok(Credited::Yes)
    }
}

async fn start() -> (String, Arc<Balances>, RefundEndpoint, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let conn = rusqlite::Connection::open(dir.path().join("mpp.db")).expect("db");
    conn.execute_batch("CREATE TABLE balances (customer TEXT PRIMARY KEY, tiyn INTEGER NOT NULL)")
        .expect("table");
    let credit = Arc::new(Balances {
        calls: AtomicUsize::new(0),
    });
    let endpoint = RefundEndpoint::with_connection(conn, credit.clone()).expect("endpoint");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/refund", listener.local_addr().expect("addr"));
    let router = endpoint.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, credit, endpoint, dir)
}

fn refund(id: &str, customer: &str, amount: &str) -> Value {
    json!({"customerId": customer, "paymentId": "1001", "refundAmount": amount, "refundId": id,
           "linkReceipt": "http://ps/receipt?id=x"})
}

async fn post(url: &str, body: &Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("answer");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn balance(endpoint: &RefundEndpoint, customer: &str) -> i64 {
    let conn = endpoint.connection();
    let conn = conn.lock().await;
    conn.query_row(
        "SELECT COALESCE(SUM(tiyn), 0) FROM balances WHERE customer = ?1",
        [customer],
        |r| r.get(0),
    )
    .expect("balance")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_duplicates_credit_once_with_identical_answers() {
    let (url, credit, endpoint, _dir) = start().await;
    let body = refund("R1", "C1", "150.00");
    let answers = join_all((0..50).map(|_| post(&url, &body))).await;
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "identical answers"
    );
    assert_eq!(answers[0].0, 200);
    assert!(answers[0].1.contains("\"SUCCESS\""), "{}", answers[0].1);
    assert_eq!(credit.calls.load(Ordering::SeqCst), 1);
    assert_eq!(balance(&endpoint, "C1").await, 15_000);
    // A repeat with another amount still gets the first answer and credits nothing.
    let (_, again) = post(&url, &refund("R1", "C1", "999")).await;
    assert_eq!(again, answers[0].1);
    assert_eq!(balance(&endpoint, "C1").await, 15_000);
}

#[tokio::test]
async fn refusals_are_remembered_and_bad_requests_are_not() {
    let (url, credit, _endpoint, _dir) = start().await;
    let (_, refused) = post(&url, &refund("R2", "GONE", "10")).await;
    assert!(refused.contains("PROCESS_FAIL"), "{refused}");
    assert_eq!(post(&url, &refund("R2", "GONE", "10")).await.1, refused);
    assert_eq!(credit.calls.load(Ordering::SeqCst), 1);
    for bad in [
        refund("R3", "C1", "0"),
        refund("R3", "1234567890123", "1"),
        refund("", "C1", "1"),
        json!({"refundId": "R3"}),
    ] {
        let (status, body) = post(&url, &bad).await;
        assert_eq!(status, 200);
        assert!(body.contains("PARAM_ILLEGAL"), "{body}");
    }
    let (_, ok) = post(&url, &refund("R3", "C1", "1")).await;
    assert!(
        ok.contains("SUCCESS"),
        "a corrected request still applies: {ok}"
    );
}
