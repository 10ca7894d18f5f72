//! A restart does not wait out its own leases: a delivery the killed run left in flight is made
//! again as soon as the next run of the same node starts, not when its lease runs out; other
//! nodes' leases are left alone (they may be alive: `store/leases.rs` tests that).

use std::time::Duration;

use serde_json::Value;

use crate::durability::{Child, paid_and_refunded};
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
    let refund_id = paid_and_refunded(&url).await;
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

#[tokio::test]
async fn a_proxy_named_in_the_environment_is_not_used_for_refunds() {
    // A host-wide `http_proxy` would carry refunds out of the tunnel, and its answer would be
    // taken for the MPP's: the PS calls the MPP itself.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("an address"));
    let proxied = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = proxied.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = proxy.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mpp = Receiver::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    let toml = SANDBOX_TOML.replace("http://127.0.0.1:8091/refund", &mpp.url)
        + "\n[refunds]\npoll_interval_ms = 20\npos_wait_ms = 0\n";
    std::fs::write(&config, toml).expect("config written");
    let db = fresh_database(dir.path());
    let env = [
        ("http_proxy", proxy_url.as_str()),
        ("HTTP_PROXY", proxy_url.as_str()),
        ("https_proxy", proxy_url.as_str()),
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("NO_PROXY", ""),
    ];
    let server = Child::start_with(&config, &db, Some("127.0.0.1:0"), &env);
    let refund_id = paid_and_refunded(&server.url).await;
    wait_for("the MPP itself is paid back", || {
        mpp.credited().contains_key(&refund_id)
    })
    .await;
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 0);
}
