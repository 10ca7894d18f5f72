//! notifyPayment is retried with one X-Request-ID until the PS answers; errors say whether to retry.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;
use tolem_sdk::{MppClient, RetryPolicy, SdkError};
use tolem_wire::Locale;
use tolem_wire::mpp::{NotifyPayment, NotifyPaymentRequest, ResultBody, ResultCode, ScanRequest};

/// A PS that answers HTTP 503 twice, then SUCCESS; it records the X-Request-ID of every call.
async fn flaky_ps() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new()
        .route(
            "/api/v1/qr/notifyPayment",
            post(move |headers: HeaderMap| {
                let log = log.clone();
                async move {
                    let id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let calls = {
                        let mut log = log.lock().expect("lock");
                        log.push(id);
                        log.len()
                    };
                    if calls <= 2 {
                        let busy = json!({"result": {"resultCode": "UNKNOWN_EXCEPTION", "resultMessage": "busy"}});
                        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(busy));
                    }
                    let ok = json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}, "linkReceipt": "http://r"});
                    (StatusCode::OK, axum::Json(ok))
                }
            }),
        )
        .route(
            "/api/v1/qr/scan",
            post(|| async { axum::Json(json!({"result": {"resultCode": "INVALID_TOKEN", "resultMessage": "no"}})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn request() -> NotifyPaymentRequest {
    NotifyPaymentRequest {
        result: ResultBody::success(),
        payment: NotifyPayment {
            payment_id: "1".into(),
            mpp_payment_id: "M1".into(),
            payment_amount: None,
            customer_id: None,
        },
        customer_id: Some("C1".into()),
    }
}

#[tokio::test]
async fn notify_payment_retries_with_one_request_id_until_answered() {
    let (url, seen) = flaky_ps().await;
    let ps = MppClient::new(&url, "demobank").expect("client");
    let retry = RetryPolicy {
        delay_ms_initial: 10,
        delay_ms_max: 40,
        attempts_max: None,
    };
    let answer = ps
        .notify_payment(&request(), Locale::Ru, &retry)
        .await
        .expect("answered");
    assert_eq!(answer.result.code(), Some(ResultCode::Success));
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    assert!(
        !seen[0].is_empty() && seen.iter().all(|id| id == &seen[0]),
        "{seen:?}"
    );
}

#[tokio::test]
async fn errors_tell_final_from_retryable() {
    let (url, _) = flaky_ps().await;
    let ps = MppClient::new(&url, "demobank").expect("client");
    // Bounded: after one attempt the 503 comes back as a retryable error.
    let once = RetryPolicy {
        attempts_max: Some(1),
        ..RetryPolicy::default()
    };
    let busy = ps
        .notify_payment(&request(), Locale::Ru, &once)
        .await
        .expect_err("busy");
    assert!(matches!(busy, SdkError::Busy(_)) && busy.is_retryable());
    let refused = ps
        .scan(
            &ScanRequest {
                qr_code: "x".into(),
                customer_id: "C1".into(),
            },
            Locale::Ru,
        )
        .await
        .expect_err("refused");
    assert!(matches!(refused, SdkError::Refused(_)) && !refused.is_retryable());
    assert_eq!(refused.result_code(), Some(ResultCode::InvalidToken));
    let nobody = MppClient::new("http://127.0.0.1:9", "demobank").expect("client");
    let down = nobody
        .notify_payment(&request(), Locale::Ru, &once)
        .await
        .expect_err("no answer");
    assert!(matches!(down, SdkError::Transport(_)) && down.is_retryable());
}
