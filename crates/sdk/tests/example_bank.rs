//! The example bank's `/refund` (`examples/bank.rs`, this very file included below) makes the
//! two checks `docs/mpp-kit.md` calls the hook's own: the payment is this customer's, paid here,
//! and its refunds never add up to more than was paid — refusing with `PROCESS_FAIL`. No PS is
//! needed: the PS's refund is posted as the PS posts it. (`crates/cli/tests/example_bank.rs`
//! runs the whole example against the sandbox PS.)

#[allow(dead_code)] // the example's `main`: the test calls `run`
#[path = "../examples/bank.rs"]
mod bank;

use std::time::Duration;

use serde_json::{Value, json};

async fn post(url: &str, body: &Value) -> String {
    let answer = reqwest::Client::new().post(url).json(body).send().await;
    let text = answer.expect("the example answers").text().await;
    let v: Value = serde_json::from_str(&text.expect("body")).expect("json");
    v["result"]["resultCode"].as_str().expect("code").to_owned()
}

fn refund(id: &str, customer: &str, payment: &str, tenge: &str) -> Value {
    json!({"customerId": customer, "paymentId": payment, "refundAmount": tenge, "refundId": id,
           "linkReceipt": "http://ps/receipt?id=x"})
}

#[tokio::test]
async fn the_example_credits_only_this_customers_payment_and_never_beyond_it() {
    let dir = tempfile::tempdir().expect("dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/refund", listener.local_addr().expect("addr"));
    let bank_dir = dir.path().to_owned();
    // No PS at this address: only the bank's /refund is used.
    let server =
        tokio::spawn(async move { bank::run("http://127.0.0.1:9", listener, &bank_dir).await });
    // C1 paid 500 tenge for the PS's payment 1001 (as `/pay` and the driver leave it).
    let file = dir.path().join("bank.db");
    for _ in 0..200 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ledger = rusqlite::Connection::open(&file).expect("ledger");
    ledger
        .busy_timeout(Duration::from_secs(5))
        .expect("timeout");
    let insert = "INSERT INTO debits VALUES ('notify-B-1001', '1001', 'C1', 50000, 'kept')";
    for attempt in 0.. {
        match ledger.execute(insert, []) {
            Ok(_) => break,
            // The example may not have made its tables yet.
            Err(_) if attempt < 200 => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("the debit: {e}"),
        }
    }
    let balance = || -> i64 {
        ledger
            .query_row("SELECT tiyn FROM balances WHERE customer = 'C1'", [], |r| {
                r.get(0)
            })
            .expect("balance")
    };
    assert_eq!(balance(), 5_000_000 - 50_000);

    assert_eq!(
        post(&url, &refund("R1", "C2", "1001", "100")).await,
        "PROCESS_FAIL",
        "another customer"
    );
    assert_eq!(
        post(&url, &refund("R2", "C1", "9999", "100")).await,
        "PROCESS_FAIL",
        "not paid here"
    );
    assert_eq!(
        post(&url, &refund("R3", "C1", "1001", "600")).await,
        "PROCESS_FAIL",
        "more than paid"
    );
    assert_eq!(
        post(&url, &refund("R4", "C1", "1001", "300")).await,
        "SUCCESS"
    );
    assert_eq!(
        post(&url, &refund("R5", "C1", "1001", "300")).await,
        "PROCESS_FAIL",
        "300 + 300 > 500"
    );
    assert_eq!(
        post(&url, &refund("R6", "C1", "1001", "200")).await,
        "SUCCESS",
        "all that is left"
    );
    assert_eq!(
        post(&url, &refund("R4", "C1", "1001", "300")).await,
        "SUCCESS",
        "answered as before"
    );
    assert_eq!(balance(), 5_000_000);
    let credits: i64 = ledger
        .query_row("SELECT count(*) FROM credits", [], |r| r.get(0))
        .expect("credits");
    assert_eq!(credits, 2);
    assert!(!server.is_finished(), "the example stopped: {server:?}");
    server.abort();
}
