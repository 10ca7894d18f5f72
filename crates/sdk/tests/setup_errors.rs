//! A setup mistake fails at once, final, naming the mistake — even under a retry policy that
//! retries until answered: a URL without scheme, one that is not a URL, a base URL that answers
//! 404 or is not a PS (found by scan; notifyPayment retries it, since the payment's fate is not
//! known), `https://` to a server without TLS, a bad X-Request-ID or caller name.

mod common;
use common::request;

use axum::http::StatusCode;
use axum::routing::post;
use tolem_sdk::{
    MppClient, Outcome, RequestId, RetryPolicy, SdkError, SetupError, TransportErrorKind,
    Unanswered,
};
use tolem_wire::mpp::ScanRequest;

fn scan_request() -> ScanRequest {
    ScanRequest {
        qr_code: "x".into(),
        customer_id: "C1".into(),
    }
}

/// A client that makes two quick attempts of notifyPayment.
fn twice(url: &str) -> MppClient {
    MppClient::builder(url, "demobank")
        .retry_policy(
            RetryPolicy::default()
                .with_attempts_max(Some(2))
                .with_delays_ms(1, 1),
        )
        .build()
        .expect("a client")
}

/// notifyPayment to `url`: not known yet after its two attempts, the answer not the PS's.
async fn notify_not_from_the_ps(url: &str, status: u16) {
    let reply = twice(url)
        .notify_payment(&request())
        .await
        .expect("an outcome");
    assert_eq!(reply.attempts, 2, "retried");
    assert_eq!(
        reply.outcome,
        Outcome::NotKnownYet(Unanswered::NotFromThePs(status))
    );
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("{addr}")
}

/// A client that would retry a retryable failure forever: a final error is the only way out.
fn forever(url: &str) -> MppClient {
    MppClient::builder(url, "demobank")
        .retry_policy(RetryPolicy::default())
        .build()
        .expect("a client")
}

#[test]
fn a_url_without_scheme_or_not_a_url_is_refused_by_the_builder() {
    for url in ["127.0.0.1:8080", "localhost:8080", "ps.example.kz"] {
        let e = MppClient::new(url, "demobank").expect_err(url);
        assert!(
            matches!(e, SetupError::BaseUrlScheme { .. }),
            "{url}: {e:?}"
        );
        assert!(e.to_string().contains("http://"), "{e}");
    }
    for url in ["ftp://ps.example.kz", "htp://ps.example.kz"] {
        let e = MppClient::new(url, "demobank").expect_err(url);
        assert!(
            matches!(e, SetupError::BaseUrlScheme { .. }),
            "{url}: {e:?}"
        );
    }
    for url in [
        "http://",
        "http://ps ex.kz",
        "http://ps.kz/?a=1",
        "http://u:p@ps.kz",
    ] {
        let e = MppClient::new(url, "demobank").expect_err(url);
        assert!(matches!(e, SetupError::BaseUrl { .. }), "{url}: {e:?}");
    }
    assert_eq!(
        MppClient::new("https://ps.example.kz/tolem/", "demobank")
            .expect("a good URL")
            .base_url(),
        "https://ps.example.kz/tolem"
    );
}

#[test]
fn bad_caller_names_request_ids_and_pems_are_refused() {
    for name in ["", "a-very-long-bank-name", "demo bank", "demo\nbank"] {
        let e = MppClient::new("http://127.0.0.1:1", name).expect_err(name);
        assert!(matches!(e, SetupError::CallerName { .. }), "{e:?}");
    }
    let newline = RequestId::new("abc\ndef").expect_err("a newline");
    assert!(
        matches!(&newline, SetupError::RequestId { id, .. } if id == "abc\\ndef"),
        "{newline:?}"
    );
    assert!(
        newline.to_string().contains("control character"),
        "{newline}"
    );
    assert!(RequestId::new("").is_err());
    assert!(RequestId::new(&"a".repeat(65)).is_err());
    assert!(RequestId::new(&"a".repeat(64)).is_ok());
    let pem = MppClient::builder("https://127.0.0.1:1", "demobank")
        .ca_pem("not a certificate")
        .build()
        .expect_err("no certificate");
    assert!(matches!(pem, SetupError::Tls { .. }), "{pem:?}");
}

#[tokio::test]
async fn a_base_url_that_answers_404_is_final_for_scan_and_retried_by_notify_payment() {
    // An axum router without routes answers 404 to everything, like a wrong path prefix would.
    let addr = serve(axum::Router::new()).await;
    let url = format!("http://{addr}/wrong-prefix");
    let e = forever(&url)
        .scan(&scan_request())
        .await
        .expect_err("final");
    match e.setup() {
        Some(SetupError::NotFound { url }) => {
            assert!(url.ends_with("/wrong-prefix/api/v1/qr/scan"), "{url}");
        }
        _ => panic!("NotFound expected: {e:?}"),
    }
    // A 404 may be a proxy's while the PS confirmed the payment: not a reason to reverse.
    notify_not_from_the_ps(&url, 404).await;
}

#[tokio::test]
async fn a_base_url_that_is_not_a_ps_is_final_for_scan_and_retried_by_notify_payment() {
    let login = axum::Router::new()
        .route(
            "/api/v1/qr/scan",
            post(|| async { (StatusCode::UNAUTHORIZED, "<html>log in</html>") }),
        )
        .route(
            "/api/v1/qr/notifyPayment",
            post(|| async { (StatusCode::UNAUTHORIZED, "<html>log in</html>") }),
        );
    let url = format!("http://{}", serve(login).await);
    let e = forever(&url)
        .scan(&scan_request())
        .await
        .expect_err("final");
    assert!(
        matches!(e.setup(), Some(SetupError::NotThePs { status: 401, .. })),
        "{e:?}"
    );
    notify_not_from_the_ps(&url, 401).await;
    let page = axum::Router::new()
        .route("/api/v1/qr/scan", post(|| async { "<html>hello</html>" }))
        .route(
            "/api/v1/qr/notifyPayment",
            post(|| async { "<html>hello</html>" }),
        );
    let url = format!("http://{}", serve(page).await);
    let e = forever(&url)
        .scan(&scan_request())
        .await
        .expect_err("final");
    assert!(matches!(e, SdkError::Unreadable(_)), "{e:?}");
    notify_not_from_the_ps(&url, 200).await;
}

#[tokio::test]
async fn https_to_a_server_without_tls_is_final() {
    let addr = serve(axum::Router::new()).await;
    let e = forever(&format!("https://{addr}"))
        .notify_payment(&request())
        .await
        .expect_err("final");
    match &e {
        SdkError::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::Tls, "{t}"),
        other => panic!("a TLS failure expected: {other:?}"),
    }
}

#[tokio::test]
async fn a_scan_amount_a_float_would_round_is_unreadable_never_read() {
    // A SUCCESS whose amount is written as no amount may be (DECISIONS 3): read through a float,
    // `1e3` was 1 000 ₸ and `1.0000000000000001` was 1 ₸.
    for amount in ["1e3", "1.0000000000000001", "\"100.00\""] {
        let body = format!(
            r#"{{"result":{{"resultCode":"SUCCESS","resultMessage":"ok"}},"qrCodeType":"Dynamic",
                "merchant":{{"merchantId":"1001","merchantName":"Cafe","merchantMCC":"5814"}},
                "payment":{{"paymentId":"7","paymentAmount":{amount},
                "canConfirmUntil":"2026-11-27T18:31:42+05:00"}}}}"#
        );
        let app = axum::Router::new().route(
            "/api/v1/qr/scan",
            post(move || async move { ([("content-type", "application/json")], body) }),
        );
        let url = format!("http://{}", serve(app).await);
        let scanned = forever(&url).scan(&scan_request()).await;
        if amount == "\"100.00\"" {
            let reply = scanned.expect("an amount as the PS writes it");
            assert!(
                matches!(reply.outcome, tolem_sdk::Outcome::Done(tolem_sdk::Scanned::Dynamic { amount, .. }) if amount == tolem_wire::Amount::from_tiyn(10_000)),
                "{reply:?}"
            );
        } else {
            let e = scanned.expect_err("unreadable");
            assert!(matches!(e, SdkError::Unreadable(_)), "{amount}: {e:?}");
        }
    }
}
