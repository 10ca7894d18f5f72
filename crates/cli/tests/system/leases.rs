//! A restart does not wait out its own leases: a delivery the killed run left in flight is made
//! again as soon as the next run of the same node starts, not when its lease runs out; other
//! nodes' leases are left alone (they may be alive: `store/leases.rs` tests that).

use std::time::Duration;

use serde_json::{Value, json};

use crate::durability::Child;
use crate::harness::*;
use crate::receiver::{Act, Receiver};

#[tokio::test]
async fn a_refund_in_flight_at_sigkill_is_delivered_at_once_after_the_restart() {
    let mpp = Receiver::start().await;
    // The first delivery never gets an answer: it is in flight when the PS is killed.
    mpp.script([Act::Hang(Duration::from_secs(3_600))]);
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    // An hour's lease and a call timeout nearly as long: only the restart can make the delivery
    // again within this test's bound.
    // `node_name` is a top-level key: it comes before the file's first table.
    let toml = format!(
        "node_name = \"node-a\"\n{}\n[refunds]\nlease_ms = 3600000\nrequest_timeout_ms = 3000000\npoll_interval_ms = 20\npos_wait_ms = 0\n",
        SANDBOX_TOML.replace("http://127.0.0.1:8091/refund", &mpp.url)
    );
    std::fs::write(&config, toml).expect("config written");
    let db = fresh_database(dir.path());
    let server = Child::start(&config, &db);
    let http = reqwest::Client::new();
    let url = server.url.clone();
    let call = |path: &str, mpp_call: bool, body: Value| {
        let mut req = http.post(format!("{url}{path}")).json(&body);
        req = if mpp_call {
            req.header("x-caller-name", "demobank")
                .header("x-request-id", "r")
        } else {
            req.header("api-key", API_KEY)
        };
        async move {
            req.send()
                .await
                .expect("answer")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let device = call(
        "/r1/v01/device/register",
        false,
        json!({"DeviceId": "K", "TradePointId": 1001}),
    )
    .await;
    let token = device["Data"]["DeviceToken"].as_str().expect("token");
    let qr = call(
        "/r1/v01/qr/create",
        false,
        json!({"DeviceToken": token, "Amount": 100}),
    )
    .await;
    let scan = call(
        "/api/v1/qr/scan",
        true,
        json!({"qrCode": qr["Data"]["QrToken"], "customerId": "C1"}),
    )
    .await;
    let payment_id = scan["payment"]["paymentId"].as_str().expect("id");
    let paid = call(
        "/api/v1/qr/notifyPayment",
        true,
        notify_body(payment_id, "C1", "SUCCESS", None),
    )
    .await;
    assert_eq!(paid["result"]["resultCode"], "SUCCESS");
    let body = json!({"DeviceToken": token, "QrPaymentId": payment_id, "Amount": 50, "OrganizationBin": "990340001234"});
    let placed = call("/r3/v01/payment/return", false, body).await;
    let refund_id = placed["Data"]["ReturnOperationId"]
        .as_i64()
        .unwrap_or_else(|| panic!("a refund: {placed}"))
        .to_string();
    wait_for("the first delivery reaches the MPP", || {
        mpp.calls().len() == 1
    })
    .await;
    // The operator sees which node holds the delivery, and until when.
    let refund = |url: String| {
        let http = http.clone();
        let refund_id = refund_id.clone();
        async move {
            let page: Value = http
                .get(format!("{url}/admin/v1/refunds?limit=10"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("an answer")
                .json()
                .await
                .expect("json");
            page["refunds"]
                .as_array()
                .expect("refunds")
                .iter()
                .find(|r| {
                    r["refund_id"]
                        .as_i64()
                        .is_some_and(|id| id.to_string() == refund_id)
                })
                .cloned()
                .expect("the refund")
        }
    };
    let held = refund(url.clone()).await;
    assert_eq!(held["status"], "pending", "{held}");
    assert_eq!(held["leased_by"], "node-a", "{held}");
    assert!(held["lease_until"].is_string(), "{held}");
    server.kill();

    let server = Child::start(&config, &db);
    wait_for(
        "the delivery left in flight is made again (its lease has an hour to run)",
        || mpp.credited().contains_key(&refund_id),
    )
    .await;
    assert_eq!(
        mpp.credited().get(&refund_id).map(String::as_str),
        Some("50.00")
    );
    assert_eq!(mpp.credited().len(), 1, "credited once");
    // Credited at the MPP just before the PS records the answer: wait for the record.
    let mut done = refund(server.url.clone()).await;
    for _ in 0..600 {
        if done["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        done = refund(server.url.clone()).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        done["leased_by"].is_null(),
        "a closed delivery holds no lease: {done}"
    );
    assert_eq!(
        mpp.calls().len(),
        2,
        "the hung call and the one after the restart"
    );
    server.kill();
}

/// Waits up to 30 s (an hour is the lease this beats), checking every 50 ms.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}
