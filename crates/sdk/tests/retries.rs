//! One outcome model: notifyPayment is retried with one X-Request-ID until the PS answers, every
//! retry logged; HTTP 200 UNKNOWN_EXCEPTION and 503 are both "not known yet"; refusals carry the
//! code; an unreadable SUCCESS is its own error with the parse error kept; a new kind of QR does
//! not break the client.

mod common;
use common::request;
#[path = "common/log.rs"]
mod log;
use log::Log;

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tolem_sdk::{
    MppClient, Outcome, RequestId, RetryPolicy, Scanned, SdkError, TransportErrorKind, Unanswered,
};
use tolem_wire::mpp::{ResultCode, ScanRequest};

/// A stand-in PS: notifyPayment answers `answers` in turn (then SUCCESS), scan answers `scan`;
/// every X-Request-ID seen is recorded.
async fn stand_in(
    answers: Vec<(StatusCode, Value)>,
    scan: Value,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let answers = Arc::new(answers);
    let app = axum::Router::new()
        .route(
            "/api/v1/qr/notifyPayment",
            post(move |headers: HeaderMap| {
                let (log, answers) = (log.clone(), answers.clone());
                async move {
                    // As bytes: an id may hold letters beyond ASCII (DECISIONS 9).
                    let id = headers
                        .get("x-request-id")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default();
                    let calls = {
                        let mut log = log.lock().expect("lock");
                        log.push(id);
                        log.len()
                    };
                    match answers.get(calls - 1) {
                        Some((status, body)) => (*status, axum::Json(body.clone())),
                        None => (
                            StatusCode::OK,
                            axum::Json(json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}, "linkReceipt": "http://r"})),
                        ),
                    }
                }
            }),
        )
        .route(
            "/api/v1/qr/scan",
            post(move || {
                let scan = scan.clone();
                async move { axum::Json(scan) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn busy_503() -> (StatusCode, Value) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"result": {"resultCode": "UNKNOWN_EXCEPTION", "resultMessage": "busy"}}),
    )
}

fn busy_200() -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({"result": {"resultCode": "UNKNOWN_EXCEPTION", "resultMessage": "busy"}}),
    )
}

fn invalid_token() -> Value {
    json!({"result": {"resultCode": "INVALID_TOKEN", "resultMessage": "no"}})
}

fn scan_request() -> ScanRequest {
    ScanRequest {
        qr_code: "x".into(),
        customer_id: "C1".into(),
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy::default().with_delays_ms(10, 40)
}

#[tokio::test]
async fn notify_payment_retries_with_one_request_id_until_answered_logging_each_retry() {
    let log = Log::get();
    let (url, seen) = stand_in(vec![busy_503(), busy_200()], invalid_token()).await;
    let ps = MppClient::builder(&url, "demobank")
        .retry_policy(fast())
        .build()
        .expect("client");
    let reply = ps.notify_payment(&request()).await.expect("answered");
    let answer = reply.outcome.done().expect("SUCCESS");
    assert_eq!(answer.link_receipt.as_deref(), Some("http://r"));
    assert_eq!(reply.attempts, 3);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|id| id == reply.request_id.as_str()),
        "{seen:?} vs {}",
        reply.request_id
    );
    let retries = log.lines(&["retrying", reply.request_id.as_str()]);
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries
            .iter()
            .all(|l| l.contains(" INFO ") && l.contains("UNKNOWN_EXCEPTION")),
        "{retries:?}"
    );
}

#[tokio::test]
async fn the_callers_request_id_is_sent_and_given_back() {
    let (url, seen) = stand_in(vec![], invalid_token()).await;
    let ps = MppClient::new(&url, "demobank").expect("client");
    let id = RequestId::new("pay-M1-0001").expect("a good id");
    let reply = ps
        .notify_payment_with_id(&request(), &id)
        .await
        .expect("answered");
    assert_eq!(reply.request_id, id);
    assert_eq!(seen.lock().expect("lock").as_slice(), ["pay-M1-0001"]);
}

#[tokio::test]
async fn a_request_id_with_a_space_and_letters_beyond_ascii_is_sent_as_it_is() {
    let (url, seen) = stand_in(vec![], invalid_token()).await;
    let ps = MppClient::new(&url, "demobank").expect("client");
    let id = RequestId::new("платёж M1-0001").expect("a good id (DECISIONS 9)");
    let reply = ps
        .notify_payment_with_id(&request(), &id)
        .await
        .expect("answered");
    assert_eq!(reply.attempts, 1);
    assert_eq!(seen.lock().expect("lock").as_slice(), ["платёж M1-0001"]);
}

#[tokio::test]
async fn http_200_unknown_exception_and_503_are_both_not_known_yet() {
    let (url, _) = stand_in(vec![busy_200(), busy_503()], invalid_token()).await;
    let once = MppClient::builder(&url, "demobank")
        .retry_policy(RetryPolicy::default().with_attempts_max(Some(1)))
        .build()
        .expect("client");
    for _ in 0..2 {
        let reply = once.notify_payment(&request()).await.expect("an outcome");
        assert_eq!(reply.attempts, 1);
        match reply.outcome {
            Outcome::NotKnownYet(Unanswered::Busy(result)) => {
                assert_eq!(result.code(), Some(ResultCode::UnknownException));
            }
            other => panic!("not known yet expected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn notify_payment_retries_what_is_not_the_ps_word_on_the_payment() {
    let ok = StatusCode::OK;
    let answers = vec![
        (
            ok,
            json!({"result": {"resultCode": "SYSTEM_MAINTENANCE", "resultMessage": "later"}}),
        ),
        (
            ok,
            json!({"result": {"resultCode": "UNKNOWN_SOURCE", "resultMessage": "who?"}}),
        ),
        (StatusCode::TOO_MANY_REQUESTS, json!("slow down")),
        (ok, json!("<html>maintenance</html>")),
        (StatusCode::NOT_FOUND, json!({})),
    ];
    let (url, seen) = stand_in(answers, invalid_token()).await;
    let ps = MppClient::builder(&url, "demobank")
        .retry_policy(fast())
        .build()
        .expect("client");
    let reply = ps.notify_payment(&request()).await.expect("answered");
    assert!(
        matches!(reply.outcome, Outcome::Done(_)),
        "{:?}",
        reply.outcome
    );
    assert_eq!(reply.attempts, 6);
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.iter().all(|id| id == &seen[0]), "one X-Request-ID");
    // Each of them, alone, is not known yet: the PS may have confirmed the payment.
    for (answer, why) in [
        (
            (
                ok,
                json!({"result": {"resultCode": "SYSTEM_MAINTENANCE", "resultMessage": "later"}}),
            ),
            "NotAVerdict",
        ),
        (
            (
                ok,
                json!({"result": {"resultCode": "UNKNOWN_SOURCE", "resultMessage": "who?"}}),
            ),
            "NotAVerdict",
        ),
        (
            (StatusCode::TOO_MANY_REQUESTS, json!("slow down")),
            "NotFromThePs(429)",
        ),
        ((ok, json!("<html>")), "NotFromThePs(200)"),
        ((StatusCode::NOT_FOUND, json!({})), "NotFromThePs(404)"),
        // A refusal in the PS's words under a status the PS never answers with: a middlebox's.
        (
            (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"result": {"resultCode": "PROCESS_FAIL", "resultMessage": "m"}}),
            ),
            "NotFromThePs(429)",
        ),
        (
            (
                StatusCode::FORBIDDEN,
                json!({"result": {"resultCode": "PROCESS_FAIL", "resultMessage": "m"}}),
            ),
            "NotFromThePs(403)",
        ),
        (
            (
                StatusCode::MOVED_PERMANENTLY,
                json!({"result": {"resultCode": "PROCESS_FAIL", "resultMessage": "m"}}),
            ),
            "NotFromThePs(301)",
        ),
    ] {
        let (url, _) = stand_in(vec![answer], invalid_token()).await;
        let once = MppClient::builder(&url, "demobank")
            .retry_policy(RetryPolicy::default().with_attempts_max(Some(1)))
            .build()
            .expect("client");
        let outcome = once
            .notify_payment(&request())
            .await
            .expect("an outcome")
            .outcome;
        assert!(outcome.is_not_known_yet(), "{why}: {outcome:?}");
        assert!(format!("{outcome:?}").contains(why), "{why}: {outcome:?}");
    }
    // A code of the regulation is the PS's word: final.
    let refused = (
        ok,
        json!({"result": {"resultCode": "PAYMENT_INCORRECT_STATUS", "resultMessage": "late"}}),
    );
    let (url, _) = stand_in(vec![refused], invalid_token()).await;
    let once = MppClient::builder(&url, "demobank")
        .build()
        .expect("client");
    let reply = once.notify_payment(&request()).await.expect("an outcome");
    assert_eq!(
        reply.outcome.refused_code(),
        Some(ResultCode::PaymentIncorrectStatus)
    );
}

#[tokio::test]
async fn refusals_carry_the_code_and_no_answer_is_not_known_yet() {
    let (url, _) = stand_in(vec![], invalid_token()).await;
    let ps = MppClient::new(&url, "demobank").expect("client");
    let refused = ps.scan(&scan_request()).await.expect("an outcome");
    assert_eq!(
        refused.outcome.refused_code(),
        Some(ResultCode::InvalidToken)
    );
    // Port 9 (discard) has no listener here: the connection is refused, which is retryable.
    let nobody = MppClient::builder("http://127.0.0.1:9", "demobank")
        .retry_policy(
            RetryPolicy::default()
                .with_attempts_max(Some(2))
                .with_delays_ms(1, 1),
        )
        .build()
        .expect("client");
    let down = nobody.notify_payment(&request()).await.expect("an outcome");
    assert_eq!(down.attempts, 2);
    match down.outcome {
        Outcome::NotKnownYet(Unanswered::Transport(e)) => {
            assert_eq!(e.kind(), TransportErrorKind::Refused, "{e}");
        }
        other => panic!("no answer expected: {other:?}"),
    }
}

#[tokio::test]
async fn an_unreadable_success_is_its_own_error_keeping_the_parse_error() {
    let garbled = (
        StatusCode::OK,
        json!({"result": {"resultCode": "SUCCESS", "resultMessage": "ok"}, "linkReceipt": 5}),
    );
    let (url, seen) = stand_in(vec![garbled], invalid_token()).await;
    let ps = MppClient::builder(&url, "demobank")
        .retry_policy(fast())
        .build()
        .expect("client");
    let error = ps.notify_payment(&request()).await.expect_err("unreadable");
    let SdkError::Unreadable(unreadable) = &error else {
        panic!("unreadable expected: {error:?}");
    };
    assert_eq!(unreadable.method(), "notifyPayment");
    assert_eq!(unreadable.status(), 200);
    let parse = std::error::Error::source(unreadable)
        .and_then(|e| e.downcast_ref::<serde_json::Error>())
        .expect("the parse error kept");
    assert!(parse.to_string().contains("invalid type"), "{parse}");
    // Final: not repeated.
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_scan_answer_is_one_enum_and_a_new_kind_of_qr_does_not_break_it() {
    let refund = json!({"result": {"resultCode": "SUCCESS", "resultMessage": "ok"}, "qrCodeType": "Refund", "refund": {"refundId": "77"}});
    let (url, _) = stand_in(vec![], refund).await;
    let reply = MppClient::new(&url, "demobank")
        .expect("client")
        .scan(&scan_request())
        .await
        .expect("scanned");
    match reply.outcome {
        Outcome::Done(Scanned::Refund { refund, .. }) => assert_eq!(refund.refund_id, "77"),
        other => panic!("a Refund QR expected: {other:?}"),
    }
    let future = json!({"result": {"resultCode": "SUCCESS", "resultMessage": "ok"}, "qrCodeType": "Subscription", "payment": {"paymentId": "9"}});
    let (url, _) = stand_in(vec![], future).await;
    let reply = MppClient::new(&url, "demobank")
        .expect("client")
        .scan(&scan_request())
        .await
        .expect("scanned");
    match reply.outcome {
        Outcome::Done(Scanned::Unsupported { qr_code_type, .. }) => {
            assert_eq!(qr_code_type, "Subscription");
        }
        other => panic!("an unsupported QR expected: {other:?}"),
    }
    // A Dynamic QR without its amount breaks the regulation: unreadable, not a guess.
    let broken = json!({"result": {"resultCode": "SUCCESS", "resultMessage": "ok"}, "qrCodeType": "Dynamic", "payment": {"paymentId": "9", "canConfirmUntil": "x"}});
    let (url, _) = stand_in(vec![], broken).await;
    let error = MppClient::new(&url, "demobank")
        .expect("client")
        .scan(&scan_request())
        .await
        .expect_err("unreadable");
    assert!(matches!(error, SdkError::Unreadable(_)), "{error:?}");
}

/// A PS at its limit: the first `busy` calls of notifyPayment, and every scan, hear HTTP 503
/// with `Retry-After: 1`, as the PS answers an MPP over its rate; then notifyPayment is SUCCESS.
/// When each notifyPayment call arrived is recorded.
async fn at_its_limit(busy: usize) -> (String, Arc<Mutex<Vec<std::time::Instant>>>) {
    let arrivals: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
    let log = arrivals.clone();
    let over = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            axum::Json(
                json!({"result": {"resultCode": "UNKNOWN_EXCEPTION", "resultMessage": "over the rate"}}),
            ),
        )
    };
    let app = axum::Router::new()
        .route(
            "/api/v1/qr/notifyPayment",
            post(move || {
                let log = log.clone();
                async move {
                    let calls = {
                        let mut log = log.lock().expect("lock");
                        log.push(std::time::Instant::now());
                        log.len()
                    };
                    if calls <= busy {
                        return over();
                    }
                    let done =
                        json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}});
                    (StatusCode::OK, [("retry-after", "0")], axum::Json(done))
                }
            }),
        )
        .route("/api/v1/qr/scan", post(move || async move { over() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

#[tokio::test]
async fn notify_payment_waits_at_least_the_retry_after_the_ps_asks_for() {
    let (url, arrivals) = at_its_limit(1).await;
    // The policy's own first delay is 5–10 ms: the second attempt comes a second later only
    // because the PS asked for it.
    let ps = MppClient::builder(&url, "demobank")
        .retry_policy(patient())
        .build()
        .expect("client");
    let reply = ps.notify_payment(&request()).await.expect("answered");
    assert!(
        matches!(reply.outcome, Outcome::Done(_)),
        "{:?}",
        reply.outcome
    );
    assert_eq!(reply.attempts, 2);
    assert_eq!(reply.retry_after, None, "a final answer asks for no wait");
    let arrivals = arrivals.lock().expect("lock").clone();
    let waited = arrivals[1] - arrivals[0];
    assert!(waited >= std::time::Duration::from_secs(1), "{waited:?}");
}

#[tokio::test]
async fn a_bound_on_time_ends_the_retries_not_known_yet_with_the_wait_asked_for() {
    let (url, arrivals) = at_its_limit(usize::MAX).await;
    // Half a second allows no second attempt when the PS asks for a second's wait.
    let ps = MppClient::builder(&url, "demobank")
        .retry_policy(patient().with_elapsed_ms_max(Some(500)))
        .build()
        .expect("client");
    let reply = within(ps.notify_payment(&request()))
        .await
        .expect("an outcome");
    assert!(
        matches!(reply.outcome, Outcome::NotKnownYet(Unanswered::Busy(_))),
        "{:?}",
        reply.outcome
    );
    assert_eq!(reply.attempts, 1);
    assert_eq!(reply.retry_after, Some(std::time::Duration::from_secs(1)));
    assert_eq!(arrivals.lock().expect("lock").len(), 1);

    // A bound of time alone, the PS answering busy without a wait: attempts until it passes.
    let (url, _) = stand_in(vec![busy_200(); 1000], invalid_token()).await;
    let ps = MppClient::builder(&url, "demobank")
        .retry_policy(fast().with_elapsed_ms_max(Some(1_000)))
        .build()
        .expect("client");
    // Without the bound this call would go on for a thousand attempts.
    let reply = within(ps.notify_payment(&request()))
        .await
        .expect("an outcome");
    assert!(reply.outcome.is_not_known_yet(), "{:?}", reply.outcome);
    assert!(reply.attempts > 1, "{}", reply.attempts);
    assert_eq!(reply.retry_after, None);

    // One attempt of scan gives the caller the wait asked for.
    let (url, _) = at_its_limit(0).await;
    let scan_busy = MppClient::new(&url, "demobank")
        .expect("client")
        .scan(&scan_request())
        .await
        .expect("an outcome");
    assert!(scan_busy.outcome.is_not_known_yet());
    assert_eq!(
        scan_busy.retry_after,
        Some(std::time::Duration::from_secs(1))
    );
    // Up to the policy's longest delay: a client that waits at most 40 ms is told 40 ms.
    let hurried = MppClient::builder(&url, "demobank")
        .retry_policy(fast())
        .build()
        .expect("client")
        .scan(&scan_request())
        .await
        .expect("an outcome");
    assert_eq!(
        hurried.retry_after,
        Some(std::time::Duration::from_millis(40))
    );
}

/// Delays of 10 ms growing to 5 s: a Retry-After of a second is waited out in full.
fn patient() -> RetryPolicy {
    RetryPolicy::default().with_delays_ms(10, 5_000)
}

/// A deadline for a call that would run for ever if the behaviour broke: a failure with a
/// reason instead of a hung test, not a measurement.
async fn within<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), call)
        .await
        .expect("the call ended")
}
