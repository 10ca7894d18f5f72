//! Disk cannot be grown for free (DECISIONS 43): purchases never paid and return QRs never used
//! are deleted after `payments.unpaid_retention_days`, in bounded batches; confirmed payments,
//! refunds, registers and receipts stay; what a POS or an MPP hears about a deleted purchase is
//! its surface's usual "not found".

use serde_json::{Value, json};

use crate::harness::*;
use crate::receiver::Receiver;
use crate::registers::{BANK_TOKEN, Scene, cabinet, refunded};

const NOTIFY: &str = "/api/v1/qr/notifyPayment";

/// How many purchases (or return QRs) are in one of `statuses`.
fn count(db: &PsBooks, table: &str, statuses: &str) -> i64 {
    db.count(
        &format!("SELECT COUNT(*) FROM {table} WHERE status IN ({statuses})"),
        &[],
    )
}

const UNPAID: &str = "'cancelled', 'failed', 'expired'";
const OPEN: &str = "'created', 'scanned'";

#[tokio::test]
async fn unpaid_purchases_go_after_the_retention_and_paid_ones_refunds_and_registers_stay() {
    // Batches of 3, so that the sweeper must go on past a full batch.
    let scene = Scene::start("2026-11-26T23:00:00", |c| c.limits.retention_batch_max = 3).await;
    let ps = &scene.ps;
    let db = scene.db();
    let bank = Receiver::start().await;
    ps.set_refund_url("demobank", &bank.url).await;
    let device = ps.device("POS-1").await;

    // What stays: two paid purchases, a refund of one made with a return QR, one without.
    let paid = ps.paid(&device, 1000, "C1").await;
    let other = ps.paid(&device, 500, "C2").await;
    let (used_qr, used_token) = ps.return_qr(&device).await;
    scan_id_refund(ps, &used_token, "C1").await;
    let body =
        json!({"DeviceToken": device, "QrPaymentId": paid, "QrReturnId": used_qr, "Amount": 300});
    let (_, placed) = ps
        .pos("POST", "/r2/v01/payment/return", API_KEY, Some(&body))
        .await;
    assert_eq!(placed["StatusCode"], 0, "{placed}");
    ps.wait_until("the refund with the return QR is completed", || {
        let status = db.one_text("SELECT status FROM refunds WHERE id = ?1", &[&used_qr]);
        async move { status == "completed" }
    })
    .await;
    let direct = refunded(&scene, &device, other, 100, "completed").await;

    // What goes: Static scans nobody paid, a Dynamic QR nobody scanned, one cancelled and one
    // failed by the MPP, a return QR nobody scanned and one scanned but never used.
    for _ in 0..5 {
        scan_id(ps, "demobank", STATIC_QR, "C1").await;
    }
    let (unscanned_qr, unscanned) = ps.dynamic_qr(&device, 70).await;
    let (qr, cancelled) = ps.dynamic_qr(&device, 80).await;
    let cancelled_id = scan_id(ps, "demobank", &qr, "C3").await;
    let cancel = notify_body(&cancelled_id, "C3", "CANCELLED_BY_CLIENT", None);
    let (_, first) = ps.mpp_call(NOTIFY, "demobank", "c", &cancel).await;
    assert_eq!(result_code(&first), "CANCELLED_BY_CLIENT");
    let (qr, failed) = ps.dynamic_qr(&device, 90).await;
    let failed_id = scan_id(ps, "demobank", &qr, "C3").await;
    let fail = notify_body(&failed_id, "C3", "PROCESS_FAIL", None);
    ps.mpp_call(NOTIFY, "demobank", "f", &fail).await;
    let (lost_return, _) = ps.return_qr(&device).await;
    let (unused_return, unused_token) = ps.return_qr(&device).await;
    scan_id_refund(ps, &unused_token, "C1").await;
    // A POS replay record, forgotten after its own retention (a day).
    let (_, replayed) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("replay-1"),
            Some(&json!({"DeviceToken": device, "Amount": 60})),
        )
        .await;
    let replayed = replayed["Data"]["QrPaymentId"].as_i64().expect("id");

    let refunds_before = db.count(
        "SELECT COUNT(*) FROM refunds WHERE payment_id IS NOT NULL",
        &[],
    );
    assert_eq!(refunds_before, 2);
    let paid_receipt = receipt_of(&db, "payments", paid);

    // An hour and ten minutes on (the next day, past the minutes a register of the 26th waits
    // for its last writes), every open purchase and return QR has expired; nothing is deleted yet.
    ps.advance(3_600 + 600);
    ps.wait_until("every open purchase has expired", || {
        let open = count(&db, "payments", OPEN) + count(&db, "refunds", "'qr_created'");
        async move { open == 0 }
    })
    .await;
    assert_eq!(count(&db, "payments", UNPAID), 9);
    // The 26th is over: its register can be made.
    let (status, register) = cabinet(ps, "daily/2026-11-26.csv", Some(BANK_TOKEN)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&register));
    let lines = String::from_utf8_lossy(&register).lines().count();
    assert!(lines >= 4, "two payments and two refunds: {lines} lines");

    // A day short of the retention: still there, and a repeat still hears the first answer.
    ps.advance(29 * 86_400);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count(&db, "payments", UNPAID), 9);
    let (_, again) = ps.mpp_call(NOTIFY, "demobank", "c", &cancel).await;
    assert_eq!(again, first);

    // Past it (31 days after they ended), the sweeper deletes them batch after batch.
    ps.advance(2 * 86_400);
    ps.wait_until("every unpaid purchase is deleted", || {
        let left = count(&db, "payments", UNPAID);
        async move { left == 0 }
    })
    .await;
    ps.wait_until("every unused return QR is deleted", || {
        let left = db.count("SELECT COUNT(*) FROM refunds WHERE payment_id IS NULL", &[]);
        async move { left == 0 }
    })
    .await;
    ps.wait_until("the POS replay records are forgotten", || {
        let left = db.count("SELECT COUNT(*) FROM pos_requests", &[]);
        async move { left == 0 }
    })
    .await;

    // What stays: the paid purchases, their refunds, the register (byte for byte), the receipts.
    assert_eq!(count(&db, "payments", "'confirmed'"), 2);
    for id in [paid, other] {
        assert_eq!(ps.status(id).await["Data"]["Status"], "Processed", "{id}");
    }
    let refunds_after = db.count(
        "SELECT COUNT(*) FROM refunds WHERE payment_id IS NOT NULL AND status = 'completed'",
        &[],
    );
    assert_eq!(refunds_after, refunds_before);
    assert_eq!(
        bank.credited().get(&direct.to_string()).map(String::as_str),
        Some("100.00")
    );
    let (_, register_after) = cabinet(ps, "daily/2026-11-26.csv", Some(BANK_TOKEN)).await;
    assert_eq!(register_after, register, "the register is made the same");
    let receipt = ps
        .http
        .get(format!("{}/receipt?id={paid_receipt}", ps.url))
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(receipt.status(), 200, "a paid purchase's receipt stays");
    // What a POS or an MPP hears of a deleted one: its surface's "not found".
    for id in [unscanned, cancelled, failed, replayed] {
        assert_eq!(ps.status(id).await["StatusCode"], -1601, "purchase {id}");
    }
    for id in [lost_return, unused_return] {
        let (_, answer) = ps
            .pos("GET", &format!("/r2/v01/return/status/{id}"), API_KEY, None)
            .await;
        assert_eq!(answer["StatusCode"], -1601, "return QR {id}: {answer}");
    }
    let (_, again) = ps.mpp_call(NOTIFY, "demobank", "c", &cancel).await;
    assert_eq!(result_code(&again), "ORDER_NOT_EXIST");
    let (_, rescan) = ps
        .mpp_call(
            "/api/v1/qr/scan",
            "demobank",
            "s",
            &json!({"qrCode": unscanned_qr, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&rescan), "INVALID_TOKEN");
}

#[tokio::test]
async fn each_deletion_is_one_bounded_batch() {
    let ps = TestPs::start().await;
    for _ in 0..8 {
        scan_id(&ps, "demobank", STATIC_QR, "C1").await;
    }
    ps.advance(3_600);
    let db = ps.books();
    ps.wait_until("the scans have expired", || {
        let open = count(&db, "payments", OPEN);
        async move { open == 0 }
    })
    .await;
    // Called directly with a cutoff past them (the sweeper's own is 30 days back and takes none).
    let cutoff = ps.app.clock.now() + jiff::SignedDuration::from_hours(24);
    let mut batches = Vec::new();
    loop {
        let n = ps
            .app
            .store
            .forget_unpaid(cutoff, 3)
            .await
            .expect("a batch");
        batches.push(n);
        if n < 3 {
            break;
        }
    }
    assert_eq!(batches, vec![3, 3, 2]);
    assert_eq!(count(&db, "payments", UNPAID), 0);
}

/// Scans a return QR by `customer` of demobank.
async fn scan_id_refund(ps: &TestPs, token: &str, customer: &str) {
    let (_, scan) = ps
        .mpp_call(
            "/api/v1/qr/scan",
            "demobank",
            "s",
            &json!({"qrCode": token, "customerId": customer}),
        )
        .await;
    let scan: Value = serde_json::from_str(&scan).expect("json");
    assert_eq!(scan["qrCodeType"], "Refund", "{scan}");
}

fn receipt_of(db: &PsBooks, table: &str, id: i64) -> String {
    db.one_text(
        &format!("SELECT receipt_token FROM {table} WHERE id = ?1"),
        &[&id],
    )
}
