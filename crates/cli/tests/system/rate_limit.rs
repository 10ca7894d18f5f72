//! The per-MPP request rate (`limits.mpp_requests_per_s`, DECISIONS 43), over real HTTP: an MPP
//! past its rate hears `UNKNOWN_EXCEPTION` with HTTP 503 and `Retry-After`, nothing of its
//! request is stored, another MPP is served meanwhile, and the MPP is served again a second on.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::harness::*;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A scan of the café's Static QR: (HTTP status, Retry-After, resultCode).
async fn scan(ps: &TestPs, caller: &str, customer: &str) -> (u16, Option<String>, String) {
    let (status, retry_after, body) = scan_in(ps, caller, customer, "ru-RU").await;
    let code = body["result"]["resultCode"]
        .as_str()
        .unwrap_or_else(|| panic!("a result in {body}"))
        .to_owned();
    (status, retry_after, code)
}

/// A scan in `locale`: (HTTP status, `Retry-After`, the answer).
async fn scan_in(
    ps: &TestPs,
    caller: &str,
    customer: &str,
    locale: &str,
) -> (u16, Option<String>, Value) {
    let resp = ps
        .http
        .post(format!("{}/api/v1/qr/scan", ps.url))
        .header("content-type", "application/json")
        .header("x-caller-name", caller)
        .header("x-locale", locale)
        // A new scan each time, not a retry of one (DECISIONS 9).
        .header(
            "x-request-id",
            format!("rate-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        )
        .body(json!({"qrCode": STATIC_QR, "customerId": customer}).to_string())
        .send()
        .await
        .expect("the PS answers");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.expect("JSON");
    (status, retry_after, body)
}

fn purchases(ps: &TestPs) -> i64 {
    ps.books().count("SELECT COUNT(*) FROM payments", &[])
}

#[tokio::test]
async fn an_mpp_over_its_rate_is_told_to_retry_and_nothing_of_it_is_stored() {
    let ps = TestPs::start_configured(|c| {
        c.limits.mpp_requests_per_s = 1;
        c.limits.mpp_requests_burst = 3;
    })
    .await;
    // One request a second after a burst of three: well before 200 requests one is refused.
    let mut served = 0i64;
    let mut refused = None;
    for _ in 0..200 {
        let (status, retry_after, body) = scan_in(&ps, "demobank", "C1", "kk-KZ").await;
        let code = body["result"]["resultCode"].as_str().unwrap_or_default();
        if status == 200 {
            assert_eq!(code, "SUCCESS");
            served += 1;
        } else {
            // The message says why, in the caller's language.
            assert_eq!(
                body["result"]["resultMessage"],
                "Ішкі қате, сұрауды қайталаңыз: қатысушының секундтағы сұраулар шегі асып кетті",
                "{body}"
            );
            refused = Some((status, retry_after, code.to_owned()));
            break;
        }
    }
    assert!(served >= 3, "the burst is served: {served}");
    assert_eq!(
        refused,
        Some((503, Some("1".to_owned()), "UNKNOWN_EXCEPTION".to_owned())),
        "past its rate, demobank is told to retry"
    );
    assert_eq!(purchases(&ps), served, "a refused scan stores no purchase");
    // Another MPP has its own allowance.
    assert_eq!(
        scan(&ps, "demowallet", "W1").await,
        (200, None, "SUCCESS".to_owned()),
        "demowallet is not held back by demobank"
    );
    // A second on, demobank is served again.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(scan(&ps, "demobank", "C1").await.0, 200);
    assert_eq!(purchases(&ps), served + 2);
    // The operator sees who was held back, and that the refusal was the rate, not the store.
    let (_, metrics) = ps.admin("GET", "/admin/v1/metrics", &Value::Null).await;
    let metrics = metrics.as_str().expect("Prometheus text");
    assert!(
        metrics.contains("tolem_mpp_requests_over_rate_total{mpp=\"demobank\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tolem_mpp_requests_over_rate_total{mpp=\"demowallet\"} 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "tolem_mpp_requests_total{{method=\"scan\",result=\"SUCCESS\"}} {}\n",
            served + 2
        )),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("tolem_mpp_requests_total{method=\"scan\",result=\"UNKNOWN_EXCEPTION\"} 1\n"),
        "{metrics}"
    );
}
