//! A bank's tests as `docs/mpp-kit.md` ("Testing your bank") shows them: the sandbox PS in
//! process, QRs made from code, the bank paying them through the SDK and the PS refunding them to
//! the bank's own `/refund`.

mod common;

use common::{RefundDesk, client, confirm, quick_retries, scan};
use tolem_testkit::{PARKING_QR, RefundState, STATIC_QR, SandboxPs};
use tolem_wire::Amount;
use tolem_wire::merchant::PaymentStatus;
use tolem_wire::mpp::QrCodeType;

fn tenge(n: u64) -> Amount {
    Amount::from_tenge(n).expect("a small amount")
}

#[tokio::test]
async fn a_dynamic_qr_is_paid_then_refunded_once() {
    let bank = RefundDesk::start().await;
    let ps = SandboxPs::builder()
        .refund_url(tolem_testkit::DEMO_BANK, &bank.url)
        .start()
        .await
        .expect("the sandbox PS");
    let ps_client = client(ps.url());

    let qr = ps.dynamic_qr(tenge(500)).await.expect("a QR");
    let scanned = scan(&ps_client, &qr.token, "C1").await.expect("a scan");
    assert_eq!(scanned.qr_code_type, Some(QrCodeType::Dynamic));
    let payment = scanned.payment.expect("a payment");
    assert_eq!(payment.payment_id, qr.payment_id.to_string());
    assert_eq!(payment.payment_amount, Some(tenge(500)));
    assert_eq!(
        ps.payment_status(qr.payment_id)
            .await
            .expect("status")
            .status,
        PaymentStatus::Wait
    );
    let code = confirm(
        &ps_client,
        &payment.payment_id,
        None,
        "C1",
        &quick_retries(),
    )
    .await;
    assert_eq!(code, "SUCCESS");
    let status = ps.payment_status(qr.payment_id).await.expect("status");
    assert_eq!(status.status, PaymentStatus::Processed);
    assert_eq!(status.amount, Some(tenge(500)));

    let refund_id = ps.refund(qr.payment_id, tenge(200)).await.expect("placed");
    let delivery = ps.wait_refund_settled(refund_id).await.expect("answered");
    assert_eq!(delivery.status, RefundState::Completed);
    assert_eq!(delivery.mpp_result.as_deref(), Some("SUCCESS"));
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.amount, Some(tenge(200)));
    assert_eq!(
        bank.credits().await,
        vec![(refund_id.to_string(), "C1".to_owned(), 20_000)]
    );
    assert_eq!(
        ps.refundable(qr.payment_id).await.expect("details"),
        tenge(300)
    );
}

#[tokio::test]
async fn the_static_cafe_and_the_custom_parking_are_paid() {
    let ps = SandboxPs::start().await.expect("the sandbox PS");
    let ps_client = client(ps.url());

    // The café's sticker: the customer enters the amount, the bank sends it with notifyPayment.
    let scanned = scan(&ps_client, STATIC_QR, "C1").await.expect("a scan");
    assert_eq!(scanned.qr_code_type, Some(QrCodeType::Static));
    let payment = scanned.payment.expect("a payment");
    let code = confirm(
        &ps_client,
        &payment.payment_id,
        Some(tenge(1250)),
        "C1",
        &quick_retries(),
    )
    .await;
    assert_eq!(code, "SUCCESS");
    let id: i64 = payment.payment_id.parse().expect("a numeric id");
    let status = ps.payment_status(id).await.expect("status");
    assert_eq!(
        (status.status, status.amount),
        (PaymentStatus::Processed, Some(tenge(1250)))
    );

    // The parking: the customer picks 3 hours, the PS prices it at checkout.
    let scanned = scan(&ps_client, PARKING_QR, "C2").await.expect("a scan");
    assert_eq!(scanned.qr_code_type, Some(QrCodeType::Custom));
    let payment_id = scanned.payment.expect("a payment").payment_id;
    let amount = common::checkout_parking(&ps_client, &payment_id, "3h").await;
    assert_eq!(amount, tenge(800));
    let code = confirm(
        &ps_client,
        &payment_id,
        Some(amount),
        "C2",
        &quick_retries(),
    )
    .await;
    assert_eq!(code, "SUCCESS");
}

#[tokio::test]
async fn a_return_qr_refunds_the_customer_who_scanned_it() {
    let bank = RefundDesk::start().await;
    let ps = SandboxPs::start().await.expect("the sandbox PS");
    // The bank's server started after the PS (it needed the PS's URL): point refunds at it now.
    ps.set_refund_url(tolem_testkit::DEMO_BANK, &bank.url)
        .await
        .expect("the refund URL");
    let ps_client = client(ps.url());
    let qr = ps.dynamic_qr(tenge(900)).await.expect("a QR");
    scan(&ps_client, &qr.token, "C2").await.expect("a scan");
    let code = confirm(
        &ps_client,
        &qr.payment_id.to_string(),
        None,
        "C2",
        &quick_retries(),
    )
    .await;
    assert_eq!(code, "SUCCESS");

    let return_qr = ps.return_qr().await.expect("a return QR");
    let scanned = scan(&ps_client, &return_qr.token, "C2")
        .await
        .expect("a scan");
    assert_eq!(scanned.qr_code_type, Some(QrCodeType::Refund));
    assert_eq!(
        scanned.refund.expect("a refund").refund_id,
        return_qr.id.to_string()
    );
    let refund_id = ps
        .refund_with_qr(&return_qr, qr.payment_id, tenge(900))
        .await
        .expect("placed");
    assert_eq!(refund_id, return_qr.id);
    let delivery = ps.wait_refund_settled(refund_id).await.expect("answered");
    assert_eq!(delivery.status, RefundState::Completed);
    assert_eq!(
        bank.credits().await,
        vec![(refund_id.to_string(), "C2".to_owned(), 90_000)]
    );
}
