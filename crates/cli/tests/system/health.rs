//! `GET /health/live` and `GET /health/ready`: a load balancer's checks, without credentials,
//! readiness following the database.

use serde_json::Value;

use crate::backend::{Backend, backend, cut_off_database};
use crate::harness::{TestPs, eventually};

async fn health(ps: &TestPs, which: &str) -> (u16, Value) {
    let response = ps
        .http
        .get(format!("{}/health/{which}", ps.url))
        .send()
        .await
        .expect("the PS answers");
    let status = response.status().as_u16();
    let no_store = response
        .headers()
        .get("cache-control")
        .is_some_and(|v| v == "no-store");
    assert!(no_store, "a balancer or proxy keeps no copy");
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn health_checks_need_no_credentials_and_readiness_follows_the_database() {
    let ps = TestPs::start().await;
    assert_eq!(
        health(&ps, "live").await,
        (200, serde_json::json!({"status": "live"}))
    );
    assert_eq!(
        health(&ps, "ready").await,
        (200, serde_json::json!({"status": "ready"}))
    );
    if backend() != Backend::Postgres {
        eprintln!("the database taken away is shown on PostgreSQL only");
        return;
    }
    cut_off_database(&ps.db_path(), true);
    eventually("readiness says the database is gone", || async {
        let (status, body) = health(&ps, "ready").await;
        status == 503
            && body["status"] == "not ready"
            && body["reason"]
                .as_str()
                .is_some_and(|r| r.contains("database"))
    })
    .await;
    // The process still serves: a supervisor does not restart it for the database's outage.
    assert_eq!(health(&ps, "live").await.0, 200);
    cut_off_database(&ps.db_path(), false);
    eventually("readiness comes back with the database", || async {
        health(&ps, "ready").await.0 == 200
    })
    .await;
}
