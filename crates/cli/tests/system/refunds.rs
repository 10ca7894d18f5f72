//! Refunds end to end: the r2 flow with the customer, r3 without, Custom cancellation, the
//! refund limit under concurrency, and delivery to a misbehaving MPP.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::harness::*;
use crate::receiver::{Act, Receiver};

pub async fn refund_r3(ps: &TestPs, device: &str, payment: i64, amount: f64) -> Value {
    let body = json!({"DeviceToken": device, "QrPaymentId": payment, "Amount": amount, "OrganizationBin": "990340001234"});
    ps.pos("POST", "/r3/v01/payment/return", API_KEY, Some(&body))
        .await
        .1
}

pub async fn available(ps: &TestPs, device: &str, payment: i64) -> Value {
    let path = format!("/r2/v01/payment/details?QrPaymentId={payment}&DeviceToken={device}");
    ps.pos("GET", &path, API_KEY, None).await.1["Data"]["AvailableReturnAmount"].clone()
}

pub async fn refund_status(ps: &TestPs, refund_id: i64) -> Value {
    let path = format!("/admin/v1/refunds?after={}&limit=1", refund_id + 1);
    let (_, page) = ps.admin("GET", &path, &Value::Null).await;
    page["refunds"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["refund_id"] == refund_id)
        .cloned()
        .expect("the refund")
}

pub async fn wait_refund(ps: &TestPs, refund_id: i64, status: &str) -> Value {
    ps.wait_until(&format!("refund {refund_id} is {status}"), || async move {
        refund_status(ps, refund_id).await["status"] == status
    })
    .await;
    refund_status(ps, refund_id).await
}

#[tokio::test]
async fn refund_with_the_customer_end_to_end() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let older = ps.paid(&device, 300, "C1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    ps.paid(&device, 50, "C2").await; // another customer's: never listed
    // An ExternalId over 128 characters is refused, as on qr/create, and makes no return QR.
    let long = json!({"DeviceToken": device, "ExternalId": "r".repeat(129)});
    let (_, refused) = ps
        .pos("POST", "/r2/v01/return/create", API_KEY, Some(&long))
        .await;
    assert_eq!(refused["StatusCode"], -99000400, "{refused}");
    assert!(
        refused["Message"]
            .as_str()
            .is_some_and(|m| m.contains("ExternalId")),
        "{refused}"
    );
    // The POS shows a return QR; the customer's MPP scans it.
    let (_, created) = ps
        .pos(
            "POST",
            "/r2/v01/return/create",
            API_KEY,
            Some(&json!({"DeviceToken": device, "ExternalId": "ret-1"})),
        )
        .await;
    assert_eq!(created["StatusCode"], 0, "{created}");
    let qr_return_id = created["Data"]["QrReturnId"].as_i64().expect("id");
    assert_eq!(
        created["Data"]["QrReturnBehaviorOptions"],
        json!({"QrCodeScanEventPollingInterval": 5, "QrCodeScanWaitTimeout": 180})
    );
    let status_path = format!("/r2/v01/return/status/{qr_return_id}");
    assert_eq!(
        ps.pos("GET", &status_path, API_KEY, None).await.1["Data"]["Status"],
        "QrTokenCreated"
    );
    // No list before the customer scanned: the cashier hears why, not "purchase not found".
    let not_yet = |ops: &Value| {
        ops["StatusCode"] == -99000400
            && ops["Message"]
                .as_str()
                .is_some_and(|m| m.contains("QrReturnId") && m.contains("не отсканирован"))
    };
    let list = json!({"DeviceToken": device, "QrReturnId": qr_return_id});
    let (_, ops) = ps
        .pos("POST", "/r2/v01/return/operations", API_KEY, Some(&list))
        .await;
    assert!(not_yet(&ops), "{ops}");
    let token = created["Data"]["QrToken"].as_str().expect("token");
    let (_, scan) = ps
        .mpp_call(
            "/api/v1/qr/scan",
            "demobank",
            "s",
            &json!({"qrCode": token, "customerId": "C1"}),
        )
        .await;
    let scan: Value = serde_json::from_str(&scan).expect("json");
    assert_eq!(scan["qrCodeType"], "Refund");
    assert_eq!(scan["refund"]["refundId"], qr_return_id.to_string());
    assert_eq!(
        ps.pos("GET", &status_path, API_KEY, None).await.1["Data"]["Status"],
        "CustomerIdentityObtained"
    );
    // The POS lists that customer's purchases here, newest first.
    let body = json!({"DeviceToken": device, "QrReturnId": qr_return_id});
    let (_, ops) = ps
        .pos("POST", "/r2/v01/return/operations", API_KEY, Some(&body))
        .await;
    let ids: Vec<i64> = ops["Data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|o| o["QrPaymentId"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![purchase, older]);
    assert_eq!(ops["Data"][0]["Amount"], json!(1000.0));
    assert_eq!(available(&ps, &device, purchase).await, json!(1000.0));
    // A partial refund of 400.
    let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "QrReturnId": qr_return_id, "Amount": 400});
    let (_, refunded) = ps
        .pos("POST", "/r2/v01/payment/return", API_KEY, Some(&body))
        .await;
    assert_eq!(
        refunded["Data"]["ReturnOperationId"], qr_return_id,
        "{refunded}"
    );
    assert_eq!(
        available(&ps, &device, purchase).await,
        json!(600.0),
        "in flight counts"
    );
    let view = wait_refund(&ps, qr_return_id, "completed").await;
    assert_eq!(view["attempts"], 1);
    let sent = mpp
        .first_body(&qr_return_id.to_string())
        .expect("the MPP was credited");
    assert_eq!(sent["customerId"], "C1");
    assert_eq!(sent["paymentId"], purchase.to_string());
    assert_eq!(sent["refundAmount"], "400.00");
    let receipt = sent["linkReceipt"].as_str().expect("a receipt link");
    let page = reqwest::get(format!("{receipt}&locale=kk"))
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Қайтару түбіртегі") && page.contains("400,00 ₸"),
        "{page}"
    );
    // The purchase stays Processed; details show what is left.
    assert_eq!(ps.status(purchase).await["Data"]["Status"], "Processed");
    assert_eq!(available(&ps, &device, purchase).await, json!(600.0));
    // The return QR is used: it cannot refund again.
    let (_, again) = ps.pos("POST", "/r2/v01/payment/return", API_KEY, Some(&json!({"DeviceToken": device, "QrPaymentId": purchase, "QrReturnId": qr_return_id, "Amount": 1}))).await;
    assert_eq!(again["StatusCode"], -99000400);
    // Whatever the amount: the QR, not the amount, is what stands in the way.
    let (_, again) = ps.pos("POST", "/r2/v01/payment/return", API_KEY, Some(&json!({"DeviceToken": device, "QrPaymentId": purchase, "QrReturnId": qr_return_id, "Amount": 100000}))).await;
    assert_eq!(again["StatusCode"], -99000400, "{again}");
    // Nor does it list the customer's purchases any more.
    let (_, ops) = ps
        .pos("POST", "/r2/v01/return/operations", API_KEY, Some(&list))
        .await;
    assert!(not_yet(&ops), "{ops}");
}

/// A trade point that stopped taking QR payments still gives money back with the customer:
/// `return/create` makes its return QR, the customer's MPP scans it, and the refund is made.
#[tokio::test]
async fn a_trade_point_without_qr_payments_still_refunds_with_the_customer() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 500, "C1").await;
    ps.change_trade_point(1001, |point| point["accepts_qr"] = json!(false))
        .await;
    // It takes no new purchase (990000026: the trade point does not accept QR)…
    let create = json!({"DeviceToken": device, "Amount": 100});
    let (_, refused) = ps
        .pos("POST", "/r1/v01/qr/create", API_KEY, Some(&create))
        .await;
    assert_eq!(refused["StatusCode"], 990000026, "{refused}");
    // …but its return QR scans, and the refund is made.
    let (qr_return_id, token) = ps.return_qr(&device).await;
    scan_id_refund(&ps, &token, "C1").await;
    let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "QrReturnId": qr_return_id, "Amount": 200});
    let (_, refunded) = ps
        .pos("POST", "/r2/v01/payment/return", API_KEY, Some(&body))
        .await;
    assert_eq!(refunded["StatusCode"], 0, "{refunded}");
    assert_eq!(available(&ps, &device, purchase).await, json!(300.0));
}

#[tokio::test]
async fn refund_requests_are_checked() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 100, "C1").await;
    let (_, unpaid) = ps.dynamic_qr(&device, 100).await;
    let parking_device = ps.device_at(API_KEY, "POS-P", 1002).await;
    let code = |v: Value| v["StatusCode"].as_i64().expect("a code");
    let over = refund_r3(&ps, &device, purchase, 100.01).await;
    assert_eq!(code(over.clone()), -99000005);
    // It says what is left, as payment/details names it.
    assert_eq!(
        over["Message"],
        "Сумма возврата больше, чем осталось вернуть по покупке: AvailableReturnAmount 100.00"
    );
    let zero = refund_r3(&ps, &device, purchase, 0.0).await;
    assert_eq!(code(zero.clone()), 990000028);
    assert_eq!(
        zero["Message"],
        "Неверная сумма операции: Amount — должна быть больше нуля"
    );
    // A purchase id that is not a number is named, in words.
    let path = format!("/r2/v01/payment/details?QrPaymentId=abc&DeviceToken={device}");
    let (_, details) = ps.pos("GET", &path, API_KEY, None).await;
    assert_eq!(
        details["Message"],
        "Некорректный запрос: QrPaymentId — неверный тип значения"
    );
    assert_eq!(code(refund_r3(&ps, &device, unpaid, 10.0).await), -99000011);
    assert_eq!(
        code(refund_r3(&ps, &device, 999_999, 10.0).await),
        -99000001
    );
    assert_eq!(
        code(refund_r3(&ps, &parking_device, purchase, 10.0).await),
        -99000003
    );
    let other_device = ps.device_at(OTHER_API_KEY, "POS-O", 2001).await;
    let body = json!({"DeviceToken": other_device, "QrPaymentId": purchase, "Amount": 1, "OrganizationBin": "990340005678"});
    assert_eq!(
        code(
            ps.pos("POST", "/r3/v01/payment/return", OTHER_API_KEY, Some(&body))
                .await
                .1
        ),
        -99000001
    );
    // r2 needs a scanned return QR of the same customer; r1 has no refunds at all.
    let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": 1});
    let (_, missing) = ps
        .pos("POST", "/r2/v01/payment/return", API_KEY, Some(&body))
        .await;
    assert_eq!(code(missing.clone()), -99000400);
    assert_eq!(
        missing["Message"], "Некорректный запрос: QrReturnId — обязателен",
        "the message names the parameter"
    );
    assert_eq!(
        code(
            ps.pos("POST", "/r1/v01/payment/return", API_KEY, Some(&body))
                .await
                .1
        ),
        -99000404
    );
    let (qr_id, token) = ps.return_qr(&device).await;
    let with_qr =
        json!({"DeviceToken": device, "QrPaymentId": purchase, "QrReturnId": qr_id, "Amount": 1});
    let (_, unscanned) = ps
        .pos("POST", "/r2/v01/payment/return", API_KEY, Some(&with_qr))
        .await;
    assert_eq!(code(unscanned.clone()), -99000400, "not scanned yet");
    assert!(
        unscanned["Message"]
            .as_str()
            .is_some_and(|m| m.contains("QrReturnId — QR возврата не отсканирован")),
        "{unscanned}"
    );
    scan_id_refund(&ps, &token, "C2").await;
    assert_eq!(
        code(
            ps.pos("POST", "/r2/v01/payment/return", API_KEY, Some(&with_qr))
                .await
                .1
        ),
        -99000001,
        "C2 did not buy it"
    );
    // Nothing of that changed what is left.
    assert_eq!(available(&ps, &device, purchase).await, json!(100.0));
}

pub async fn scan_id_refund(ps: &TestPs, token: &str, customer: &str) {
    let (_, scan) = ps
        .mpp_call(
            "/api/v1/qr/scan",
            "demobank",
            "s",
            &json!({"qrCode": token, "customerId": customer}),
        )
        .await;
    assert_eq!(result_code(&scan), "SUCCESS");
}

#[tokio::test]
async fn twenty_concurrent_partial_refunds_never_exceed_the_purchase() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    let answers = join_all((0..20).map(|_| refund_r3(&ps, &device, purchase, 150.0))).await;
    let accepted = answers.iter().filter(|a| a["StatusCode"] == 0).count();
    let refused = answers
        .iter()
        .filter(|a| a["StatusCode"] == -99000005)
        .count();
    assert_eq!((accepted, refused), (6, 14), "6 × 150 ≤ 1000 < 7 × 150");
    assert_eq!(available(&ps, &device, purchase).await, json!(100.0));
    ps.wait_until("all six are credited", || async {
        mpp.credited().len() == 6
    })
    .await;
    // Several partial refunds of one purchase, up to all of it.
    assert_eq!(
        refund_r3(&ps, &device, purchase, 100.0).await["StatusCode"],
        0
    );
    assert_eq!(
        refund_r3(&ps, &device, purchase, 0.01).await["StatusCode"],
        -99000005
    );
}

#[tokio::test]
async fn a_purchase_takes_a_bounded_number_of_refunds_even_concurrently() {
    let ps = TestPs::start_configured(|c| c.refunds.per_purchase_max = 3).await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    // Tiny refunds, many at once: a key holder could otherwise give one purchase thousands of
    // refunds, each a call to the MPP, each read again by every later one.
    let answers = join_all((0..10).map(|_| refund_r3(&ps, &device, purchase, 0.01))).await;
    let accepted = answers.iter().filter(|a| a["StatusCode"] == 0).count();
    let refused = answers
        .iter()
        .filter(|a| a["StatusCode"] == -99000020 && a["Message"] == "Частичный возврат невозможен")
        .count();
    assert_eq!((accepted, refused), (3, 7), "{answers:?}");
    let placed = ps.books().count(
        "SELECT COUNT(*) FROM refunds WHERE payment_id = ?1",
        &[&purchase],
    );
    assert_eq!(placed, 3, "a refused refund leaves no trace");
    // What is wrong with an order is said first: more than is left is still -99000005.
    assert_eq!(
        refund_r3(&ps, &device, purchase, 1000.0).await["StatusCode"],
        -99000005
    );
    // All that is left still goes back, so no purchase keeps money it can never refund.
    assert_eq!(
        refund_r3(&ps, &device, purchase, 999.97).await["StatusCode"],
        0
    );
    assert_eq!(
        refund_r3(&ps, &device, purchase, 0.01).await["StatusCode"],
        -99000005
    );
    ps.wait_until("the four are credited", || async {
        mpp.credited().len() == 4
    })
    .await;
}

#[tokio::test]
async fn delivery_survives_a_misbehaving_mpp() {
    // A call times out after a second (the hang below); every other answer comes well within it.
    let ps = TestPs::start_configured(|c| c.refunds.request_timeout_ms = 1_000).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    // Connection refused (nothing listens there), then the MPP comes up.
    let closed = "http://127.0.0.1:9/refund";
    ps.set_refund_url("demobank", closed).await;
    let refused_id = refund_r3(&ps, &device, purchase, 10.0).await["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("id");
    ps.wait_until("a refused attempt is recorded", || async {
        refund_status(&ps, refused_id).await["attempts"].as_u64() >= Some(2)
    })
    .await;
    let view = refund_status(&ps, refused_id).await;
    assert_eq!(view["status"], "pending");
    assert!(
        view["last_error"].as_str().is_some() && view["next_attempt_at"].as_str().is_some(),
        "{view}"
    );
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    wait_refund(&ps, refused_id, "completed").await;
    // HTTP 500, then a timeout, then REFUND_IN_PROCESS three times, then SUCCESS.
    mpp.script([
        Act::Fail500,
        Act::Hang(Duration::from_secs(3)),
        Act::Answer("REFUND_IN_PROCESS"),
        Act::Answer("REFUND_IN_PROCESS"),
        Act::Answer("REFUND_IN_PROCESS"),
    ]);
    let id = refund_r3(&ps, &device, purchase, 20.0).await["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("id");
    let view = wait_refund(&ps, id, "completed").await;
    assert!(view["attempts"].as_u64() >= Some(6), "{view}");
    assert_eq!(
        mpp.credited().get(&id.to_string()).map(String::as_str),
        Some("20.00")
    );
    // PROCESS_FAIL, PARAM_ILLEGAL and PAYMENTS_SUSPENDED are final: the refund fails and its
    // amount is refundable again.
    let before = available(&ps, &device, purchase).await;
    for code in ["PROCESS_FAIL", "PARAM_ILLEGAL", "PAYMENTS_SUSPENDED"] {
        mpp.script([Act::Answer(code)]);
        let id = refund_r3(&ps, &device, purchase, 500.0).await["Data"]["ReturnOperationId"]
            .as_i64()
            .expect("id");
        let view = wait_refund(&ps, id, "failed").await;
        assert_eq!(
            (view["mpp_result"].as_str(), view["attempts"].as_u64()),
            (Some(code), Some(1))
        );
        assert_eq!(
            available(&ps, &device, purchase).await,
            before,
            "{code} freed the amount"
        );
        assert!(!mpp.credited().contains_key(&id.to_string()));
    }
    // Every call of one refund carried the same refundId; the MPP credited each refund once.
    let calls = mpp.calls();
    assert!(calls.len() >= 8);
    assert_eq!(mpp.credited().len(), 2);
}

/// An MPP's answer cannot keep its attempt from being recorded: an unknown code with U+0000
/// (which PostgreSQL refuses in text) and a right-to-left override is kept escaped, so the
/// refund backs off and is shown as it is, then delivered.
#[tokio::test]
async fn an_unknown_code_with_control_characters_is_recorded_escaped() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    mpp.script([Act::Answer("BAD\u{0}CODE\u{202e}LIAF")]);
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 100, "C1").await;
    let id = refund_r3(&ps, &device, purchase, 40.0).await["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("id");
    // The PS's clock stays still, so no retry falls due (the next would be credited) and the
    // first attempt's error stays to be read.
    eventually("the first attempt's outcome is recorded", || async {
        !refund_status(&ps, id).await["last_error"].is_null()
    })
    .await;
    let view = refund_status(&ps, id).await;
    assert_eq!(
        (&view["status"], &view["last_error"]),
        (
            &json!("pending"),
            &json!("HTTP 200, BAD\\u{0}CODE\\u{202e}LIAF")
        ),
        "{view}"
    );
    assert!(view["next_attempt_at"].as_str().is_some(), "{view}");
    ps.advance(600);
    wait_refund(&ps, id, "completed").await;
    assert_eq!(
        mpp.credited().get(&id.to_string()).map(String::as_str),
        Some("40.00")
    );
}

#[tokio::test]
async fn an_undelivered_refund_is_flagged_and_retried_on_demand() {
    let ps = TestPs::start().await;
    ps.set_refund_url("demobank", "http://127.0.0.1:9/refund")
        .await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 100, "C1").await;
    let id = refund_r3(&ps, &device, purchase, 100.0).await["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("id");
    // Past the alert threshold (120 s in tests) it is flagged, and still pending.
    ps.advance(121);
    ps.wait_until("the refund is flagged", || async {
        refund_status(&ps, id).await["flagged"] == true
    })
    .await;
    assert_eq!(refund_status(&ps, id).await["status"], "pending");
    // Two more failed attempts past the threshold: still one refund flagged, counted once.
    let attempts = |refund: Value| refund["attempts"].as_i64().unwrap_or(0);
    for _ in 0..2 {
        let before = attempts(refund_status(&ps, id).await);
        ps.advance(600);
        ps.wait_until("another attempt", || async {
            attempts(refund_status(&ps, id).await) > before
        })
        .await;
    }
    let metrics = || async {
        ps.http
            .get(format!("{}/admin/v1/metrics", ps.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("text")
    };
    // An attempt is counted once its outcome is recorded, a moment after it is claimed: the
    // lease is let go then.
    ps.wait_until("the last attempt is recorded", || async {
        refund_status(&ps, id).await["leased_by"].is_null()
    })
    .await;
    let metrics = metrics().await;
    for line in [
        "tolem_refunds_undelivered_flagged 1",
        "tolem_refunds_flagged_total 1",
        // Which build and node the counters are of.
        concat!(
            "tolem_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\",node=\"ps\"} 1"
        ),
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    // The MPP is back; the operator does not wait for the backoff.
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let (status, _) = ps
        .admin(
            "POST",
            &format!("/admin/v1/refunds/{id}/retry"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    eventually("delivered without moving the clock", || async {
        !mpp.credited().is_empty()
    })
    .await;
    assert_eq!(mpp.credited().len(), 1);
    // The MPP credits before the PS records its answer: once the PS has, nothing is left.
    eventually("the refund is completed", || async {
        refund_status(&ps, id).await["status"] == "completed"
    })
    .await;
    let (status, _) = ps
        .admin(
            "POST",
            &format!("/admin/v1/refunds/{id}/retry"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 404, "nothing left to deliver");
}

#[tokio::test]
async fn a_custom_payment_is_refunded_when_the_provider_cancels_it() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let payment_id = scan_id(&ps, "demobank", PARKING_QR, "C5").await;
    let body = json!({"paymentId": payment_id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "3h"}]});
    ps.mpp_call("/api/v1/qr/checkout", "demobank", "c", &body)
        .await;
    let (_, paid) = ps
        .mpp_call(
            "/api/v1/qr/notifyPayment",
            "demobank",
            "n",
            &notify_body(&payment_id, "C5", "SUCCESS", Some("800")),
        )
        .await;
    assert_eq!(result_code(&paid), "SUCCESS");
    // An amount a float would round (DECISIONS 3) is refused as written, and places nothing.
    for (n, raw) in [
        r#"{"amount": 1e2}"#,
        r#"{"amount": 100.000}"#,
        r#"{"amount": 0.019999999999999999999}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let answer = ps
            .http
            .post(format!("{}/admin/v1/payments/{payment_id}/cancel", ps.url))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-request-id", format!("bad-amount-{n}"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 400, "{raw}");
        let text = answer.text().await.expect("text");
        assert!(
            text.contains("no exponent, at most two decimals"),
            "{raw}: {text}"
        );
    }
    let cancel = |request_id: &'static str| {
        ps.http
            .post(format!("{}/admin/v1/payments/{payment_id}/cancel", ps.url))
            .bearer_auth(ADMIN_TOKEN)
            .header("x-request-id", request_id)
            .json(&json!({}))
            .send()
    };
    let first = cancel("cancel-1").await.expect("answer");
    assert_eq!(first.status(), 201);
    let cancelled: Value = first.json().await.expect("json");
    // The operator's retry of the same request places nothing new.
    let again: Value = cancel("cancel-1")
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(again, cancelled);
    let refund_id = cancelled["refund_id"].as_str().expect("id").to_owned();
    ps.wait_until("the cancellation is credited", || async {
        mpp.credited().contains_key(&refund_id)
    })
    .await;
    assert_eq!(mpp.credited()[&refund_id], "800.00");
    assert_eq!(
        mpp.first_body(&refund_id).expect("body")["customerId"],
        "C5"
    );
    // An amount of 0.00 is no cancellation.
    let (status, answer) = ps
        .admin(
            "POST",
            &format!("/admin/v1/payments/{payment_id}/cancel"),
            &json!({"amount": "0"}),
        )
        .await;
    assert_eq!(
        (status, &answer["error"]),
        (
            400,
            &json!("amount: more than 0.00 (leave it out for all that is left)")
        )
    );
    // Nothing is left, and only Custom payments are cancelled this way.
    let (status, _) = ps
        .admin(
            "POST",
            &format!("/admin/v1/payments/{payment_id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 400);
    let device = ps.device("POS-1").await;
    let dynamic = ps.paid(&device, 10, "C5").await;
    let (status, _) = ps
        .admin(
            "POST",
            &format!("/admin/v1/payments/{dynamic}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn sandbox_refunds_need_no_mpp() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (_, id) = ps.dynamic_qr(&device, 100).await;
    for step in ["scan", "confirm"] {
        let (_, a) = ps
            .pos(
                "POST",
                &format!("/r1/v01/test/payment/{step}"),
                API_KEY,
                Some(&json!({"qrPaymentId": id})),
            )
            .await;
        assert_eq!(a["StatusCode"], 0);
    }
    let (qr_id, _) = ps.return_qr(&device).await;
    let (_, scanned) = ps
        .pos(
            "POST",
            "/r2/v01/test/return/scan",
            API_KEY,
            Some(&json!({"qrReturnId": qr_id})),
        )
        .await;
    assert_eq!(scanned["StatusCode"], 0);
    let (_, ops) = ps
        .pos(
            "POST",
            "/r2/v01/return/operations",
            API_KEY,
            Some(&json!({"DeviceToken": device, "QrReturnId": qr_id})),
        )
        .await;
    assert_eq!(ops["Data"][0]["QrPaymentId"], id);
    let body =
        json!({"DeviceToken": device, "QrPaymentId": id, "QrReturnId": qr_id, "Amount": 100});
    assert_eq!(
        ps.pos("POST", "/r2/v01/payment/return", API_KEY, Some(&body))
            .await
            .1["StatusCode"],
        0
    );
    wait_refund(&ps, qr_id, "completed").await;
}

#[tokio::test]
async fn a_slow_mpp_does_not_hold_up_another_mpps_refunds() {
    let ps = TestPs::start_configured(|c| {
        c.refunds.mpp_concurrency_max = 2;
        c.refunds.in_flight_max = 4;
        c.refunds.request_timeout_ms = 120_000;
    })
    .await;
    // Demobank's calls hang for as long as the test runs.
    let slow = Receiver::start().await;
    slow.script((0..6).map(|_| Act::Hang(Duration::from_secs(60))));
    let fast = Receiver::start().await;
    ps.set_refund_url("demobank", &slow.url).await;
    ps.set_refund_url("demowallet", &fast.url).await;
    let device = ps.device("POS-1").await;
    for _ in 0..6 {
        let purchase = ps.paid(&device, 100, "C1").await;
        assert_eq!(
            refund_r3(&ps, &device, purchase, 100.0).await["StatusCode"],
            0
        );
    }
    // A demowallet customer's purchase and refund, placed after demobank's six.
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_id(&ps, "demowallet", &qr, "W1").await;
    let (_, paid) = ps
        .mpp_call(
            "/api/v1/qr/notifyPayment",
            "demowallet",
            "n",
            &notify_body(&payment_id, "W1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&paid), "SUCCESS");
    let wallet_refund = refund_r3(&ps, &device, id, 100.0).await["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("id");
    eventually("delivered while demobank's calls hang", || async {
        fast.credited().contains_key(&wallet_refund.to_string())
    })
    .await;
    assert!(
        slow.calls().len() <= 2,
        "demobank never has more than its 2 calls in flight: {}",
        slow.calls().len()
    );
}

/// The lines logged while it is set, as JSON objects (this thread's; the test's runtime runs the
/// PS's tasks on it).
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the lines").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_refund_is_followed_in_the_log_from_the_pos_request_to_its_delivery() {
    // The POS's request names its X-Request-ID; the line that placed the refund names it with
    // the refund, payment and MPP; the delivery's lines name the same refund, payment and MPP.
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .finish();
    let _logged = tracing::subscriber::set_default(subscriber);
    let ps = TestPs::start().await;
    let bank = Receiver::start().await;
    ps.set_refund_url("demobank", &bank.url).await;
    let device = ps.device("POS-1").await;
    let payment = ps.paid(&device, 500, "C1").await;
    let body = json!({"DeviceToken": device, "QrPaymentId": payment, "Amount": 200, "OrganizationBin": "990340001234"});
    let (_, answer) = ps
        .pos_with(
            "POST",
            "/r3/v01/payment/return",
            API_KEY,
            Some("till-7-return-1"),
            Some(&body),
        )
        .await;
    let refund = answer["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("a refund");
    wait_refund(&ps, refund, "completed").await;
    let text = String::from_utf8(lines.0.lock().expect("the lines").clone()).expect("UTF-8");
    let logged: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let named = |message: &str| {
        logged
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no `{message}` line in\n{text}"))
            .clone()
    };
    let placed = named("refund placed");
    assert_eq!(placed["fields"]["refund_id"], refund);
    assert_eq!(placed["fields"]["payment_id"], payment);
    assert_eq!(placed["fields"]["mpp"], "demobank");
    assert_eq!(placed["span"]["request_id"], "till-7-return-1", "{placed}");
    let delivered = named("refund delivered");
    assert_eq!(delivered["span"]["refund_id"], refund, "{delivered}");
    assert_eq!(delivered["span"]["payment_id"], payment, "{delivered}");
    assert_eq!(delivered["span"]["mpp"], "demobank", "{delivered}");
}

#[tokio::test]
async fn concurrent_repeats_of_one_refund_make_one_refund_and_one_delivery() {
    // A POS whose client gives up during the wait for the MPP (DECISIONS 39) and sends the same
    // payment/return again, and again, before the first is answered: one refund, one call to
    // the MPP's /refund, the same answer for every copy.
    let ps = TestPs::start_configured(|c| c.refunds.pos_wait_ms = 2_000).await;
    let bank = Receiver::start().await;
    ps.set_refund_url("demobank", &bank.url).await;
    let device = ps.device("POS-1").await;
    let payment = ps.paid(&device, 900, "C1").await;
    let body = json!({"DeviceToken": device, "QrPaymentId": payment, "Amount": 300, "OrganizationBin": "990340001234"});
    let first = ps
        .pos_copies("/r3/v01/payment/return", "till-1-return-3", &body, 10)
        .await;
    let refund = first["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("a refund");
    wait_refund(&ps, refund, "completed").await;
    assert_eq!(
        ps.books().count(
            "SELECT COUNT(*) FROM refunds WHERE payment_id = ?1",
            &[&payment]
        ),
        1,
        "one refund"
    );
    assert_eq!(bank.calls().len(), 1, "one call to the MPP's /refund");
    assert_eq!(available(&ps, &device, payment).await, json!(600.0));
}

#[tokio::test]
async fn a_stop_lets_a_delivery_under_way_end_and_record_the_answer() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    // The MPP answers SUCCESS a while after the call: the PS is told to stop meanwhile.
    mpp.script([Act::Hang(Duration::from_millis(1500))]);
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    let placed = refund_r3(&ps, &device, purchase, 400.0).await;
    let refund = placed["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("a refund placed");
    eventually("the delivery is under way", || async {
        mpp.calls().len() == 1
    })
    .await;
    // A graceful stop waits for the MPP's answer and keeps it: the next run finds the refund
    // completed, and the MPP is not called again.
    let ps = ps.restart().await;
    assert_eq!(refund_status(&ps, refund).await["status"], "completed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mpp.calls().len(), 1, "delivered once");
    assert_eq!(mpp.credited().len(), 1);
}
