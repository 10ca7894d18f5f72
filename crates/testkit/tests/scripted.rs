//! The PS's answers a bank's tests script: a suspended or blocked merchant, an unknown QR, an
//! expired purchase, a PS that is down, a refund the bank first fails to take, a refund too big.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;
use common::{client, confirm, quick_retries, scan};
use tolem_testkit::{DynamicQr, RefundState, SandboxPs, UNKNOWN_QR};
use tolem_wire::Amount;
use tolem_wire::merchant::{PaymentStatus, StatusCode};

fn tenge(n: u64) -> Amount {
    Amount::from_tenge(n).expect("a small amount")
}

#[tokio::test]
async fn a_suspended_or_blocked_merchant_and_an_unknown_qr_are_refused() {
    let ps = SandboxPs::start().await.expect("the sandbox PS");
    let ps_client = client(ps.url());
    let qr = ps.dynamic_qr(tenge(100)).await.expect("a QR");

    ps.suspend_merchant().await.expect("suspended");
    assert_eq!(
        scan(&ps_client, &qr.token, "C1").await.err().as_deref(),
        Some("PAYMENTS_SUSPENDED")
    );
    ps.block_merchant().await.expect("blocked");
    assert_eq!(
        scan(&ps_client, &qr.token, "C1").await.err().as_deref(),
        Some("INVALID_MERCHANT")
    );
    ps.reopen_merchant().await.expect("reopened");
    let scanned = scan(&ps_client, &qr.token, "C1").await.expect("a scan");
    assert!(scanned.payment.is_some());

    assert_eq!(
        scan(&ps_client, UNKNOWN_QR, "C1").await.err().as_deref(),
        Some("INVALID_TOKEN")
    );
}

#[tokio::test]
async fn expired_purchases_are_refused() {
    let ps = SandboxPs::start().await.expect("the sandbox PS");
    let ps_client = client(ps.url());
    let unscanned = ps.dynamic_qr(tenge(100)).await.expect("a QR");
    let scanned = ps.dynamic_qr(tenge(200)).await.expect("a QR");
    scan(&ps_client, &scanned.token, "C1")
        .await
        .expect("a scan");

    ps.expire_open_payments();
    assert_eq!(
        scan(&ps_client, &unscanned.token, "C1")
            .await
            .err()
            .as_deref(),
        Some("EXPIRED_CODE")
    );
    let code = confirm(
        &ps_client,
        &scanned.payment_id.to_string(),
        None,
        "C1",
        &quick_retries(),
    )
    .await;
    assert_eq!(code, "PAYMENT_INCORRECT_STATUS");
    let status = ps.payment_status(scanned.payment_id).await.expect("status");
    assert_eq!(status.status, PaymentStatus::Error);
}

#[tokio::test]
async fn notify_payment_reaches_a_ps_that_was_down() {
    let mut ps = SandboxPs::start().await.expect("the sandbox PS");
    let ps_client = client(ps.url());
    let qr = ps.dynamic_qr(tenge(300)).await.expect("a QR");
    scan(&ps_client, &qr.token, "C1").await.expect("a scan");
    let payment_id = qr.payment_id.to_string();

    ps.stop().await;
    let once = quick_retries().with_attempts_max(Some(1));
    let code = confirm(&ps_client, &payment_id, None, "C1", &once).await;
    assert!(code.starts_with("no code"), "the PS is down: {code}");
    // A notifyPayment retried until answered, started while the PS is down.
    let retrying = {
        let ps_client = ps_client.clone();
        let payment_id = payment_id.clone();
        tokio::spawn(
            async move { confirm(&ps_client, &payment_id, None, "C1", &quick_retries()).await },
        )
    };
    ps.start_again().await.expect("the PS is back");
    assert_eq!(retrying.await.expect("the task"), "SUCCESS");
    let status = ps.payment_status(qr.payment_id).await.expect("status");
    assert_eq!(status.status, PaymentStatus::Processed);
}

/// A `/refund` that fails with HTTP 500 on its first call and credits on the next.
async fn flaky_refund_desk() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let router = Router::new().route(
        "/refund",
        post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    let body = r#"{"result":{"resultCode":"UNKNOWN_EXCEPTION","resultMessage":"ledger down"}}"#;
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, body)
                } else {
                    let body = r#"{"result":{"resultCode":"SUCCESS","resultMessage":"ok"}}"#;
                    (axum::http::StatusCode::OK, body)
                }
            }
        }),
    );
    (serve_refund_desk(router).await, calls)
}

#[tokio::test]
async fn a_refund_the_bank_failed_to_take_is_retried_until_answered() {
    let (url, calls) = flaky_refund_desk().await;
    let (ps, qr) = paid_with_refunds_to(&url, 400).await;

    let refund_id = ps.refund(qr.payment_id, tenge(400)).await.expect("placed");
    let delivery = ps.wait_refund_settled(refund_id).await.expect("answered");
    assert_eq!(delivery.status, RefundState::Completed);
    assert_eq!(delivery.attempts, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Nothing is left to refund: the POS is told so, and the error names the code.
    let too_much = ps
        .refund(qr.payment_id, tenge(1))
        .await
        .expect_err("refused");
    assert_eq!(
        too_much.status_code(),
        Some(StatusCode::ReturnAmountExceeded),
        "{too_much}"
    );
}

#[tokio::test]
async fn a_bad_configuration_fails_at_start_naming_the_key() {
    let error = SandboxPs::builder()
        .configure(|config| config.refunds.lease_ms = 1)
        .start()
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("refunds.lease_ms"), "{error}");
    let error = SandboxPs::builder()
        .refund_url("nobank", "http://127.0.0.1:1/refund")
        .start()
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("nobank"), "{error}");
}

#[tokio::test]
async fn a_refund_the_bank_refuses_settles_as_failed() {
    let router = Router::new().route(
        "/refund",
        post(|| async {
            r#"{"result":{"resultCode":"PROCESS_FAIL","resultMessage":"account closed"}}"#
        }),
    );
    let url = serve_refund_desk(router).await;
    let (ps, qr) = paid_with_refunds_to(&url, 150).await;

    let refund_id = ps.refund(qr.payment_id, tenge(150)).await.expect("placed");
    let delivery = ps.wait_refund_settled(refund_id).await.expect("answered");
    assert_eq!(delivery.status, RefundState::Failed);
    assert_eq!(delivery.mpp_result.as_deref(), Some("PROCESS_FAIL"));
    assert_eq!(delivery.attempts, 1);
}

/// The bank's `/refund` served by `router` on port 0: its URL.
async fn serve_refund_desk(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/refund", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A sandbox PS delivering refunds to `refund_url`, and a Dynamic QR of `amount` tenge C1 paid.
async fn paid_with_refunds_to(refund_url: &str, amount: u64) -> (SandboxPs, DynamicQr) {
    let ps = SandboxPs::builder()
        .refund_url(tolem_testkit::DEMO_BANK, refund_url)
        .start()
        .await
        .expect("the sandbox PS");
    let ps_client = client(ps.url());
    let qr = ps.dynamic_qr(tenge(amount)).await.expect("a QR");
    scan(&ps_client, &qr.token, "C1").await.expect("a scan");
    let code = confirm(
        &ps_client,
        &qr.payment_id.to_string(),
        None,
        "C1",
        &quick_retries(),
    )
    .await;
    assert_eq!(code, "SUCCESS");
    (ps, qr)
}
