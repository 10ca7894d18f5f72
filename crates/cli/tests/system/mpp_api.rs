//! The MPP API v1: every token type paid end to end, every result code, idempotency.

use futures::future::join_all;
use serde_json::{Value, json};
use tolem_ps::domain::PaymentId;
use tolem_sdk::{Outcome, Scanned};
use tolem_wire::mpp::{
    CheckoutRequest, NotifyPayment, NotifyPaymentRequest, ParameterValue, ResultBody, ResultCode,
    ScanRequest,
};
use tolem_wire::{Amount, Locale};

use crate::harness::*;

const SCAN: &str = "/api/v1/qr/scan";
const CHECKOUT: &str = "/api/v1/qr/checkout";
const NOTIFY: &str = "/api/v1/qr/notifyPayment";

fn scan_req(qr: &str, customer: &str) -> ScanRequest {
    ScanRequest {
        qr_code: qr.to_owned(),
        customer_id: customer.to_owned(),
    }
}

fn notify_req(payment_id: &str, customer: &str, amount: Option<Amount>) -> NotifyPaymentRequest {
    NotifyPaymentRequest {
        result: ResultBody::success(),
        payment: NotifyPayment {
            payment_id: payment_id.to_owned(),
            mpp_payment_id: format!("M-{payment_id}"),
            payment_amount: amount,
            customer_id: None,
        },
        customer_id: Some(customer.to_owned()),
    }
}

#[tokio::test]
async fn dynamic_qr_is_paid_end_to_end() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1500).await;
    assert_eq!(ps.status(id).await["Data"]["Status"], "QrTokenCreated");
    let bank = ps.mpp("demobank");
    let scan = bank
        .in_locale(Locale::Ru)
        .scan(&scan_req(&qr, "C1"))
        .await
        .expect("scan succeeds");
    assert_eq!(scan.attempts, 1);
    let Outcome::Done(Scanned::Dynamic {
        payment,
        amount,
        merchant,
        ..
    }) = scan.outcome
    else {
        panic!("a Dynamic QR: {:?}", scan.outcome);
    };
    assert_eq!(Some(amount), Amount::from_tenge(1500));
    assert_eq!(payment.payment_amount, Amount::from_tenge(1500));
    assert_eq!(payment.payment_id, id.to_string());
    assert_eq!(merchant.expect("merchant").merchant_mcc, "5814");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Wait");
    let answer = bank
        .notify_payment(&notify_req(&payment.payment_id, "C1", None))
        .await
        .expect("answered");
    let answer = answer.outcome.done().expect("SUCCESS");
    assert_eq!(answer.result.code(), Some(ResultCode::Success));
    let receipt = answer.link_receipt.expect("a receipt link");
    let status = ps.status(id).await;
    assert_eq!(status["Data"]["Status"], "Processed");
    assert_eq!(status["Data"]["Amount"], json!(1500.0));
    assert_eq!(status["Data"]["TransactionId"], id.to_string());
    let page = reqwest::get(&receipt)
        .await
        .expect("receipt")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("1 500,00 ₸") && page.contains("Оплачено"),
        "{page}"
    );
}

#[tokio::test]
async fn static_qr_takes_the_amount_from_notify_payment() {
    let ps = TestPs::start().await;
    let wallet = ps.mpp("demowallet").in_locale(Locale::Kk);
    let scan = wallet.scan(&scan_req(STATIC_QR, "W7")).await.expect("scan");
    let Outcome::Done(Scanned::Static { payment, .. }) = scan.outcome else {
        panic!("a Static QR: {:?}", scan.outcome);
    };
    assert_eq!(payment.payment_amount, None);
    // Each scan of a static QR is a new purchase.
    let again = wallet.scan(&scan_req(STATIC_QR, "W7")).await.expect("scan");
    assert_ne!(again.request_id, scan.request_id);
    let again = again.outcome.done().expect("scanned");
    assert_ne!(again.payment_id(), Some(payment.payment_id.as_str()));
    // Without an amount, or with a fractional one, the PS refuses and nothing changes.
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demowallet",
            "n0",
            &notify_body(&payment.payment_id, "W7", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "PARAM_ILLEGAL");
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demowallet",
            "n1",
            &notify_body(&payment.payment_id, "W7", "SUCCESS", Some("250.50")),
        )
        .await;
    assert_eq!(result_code(&body), "PARAM_ILLEGAL");
    let answer = wallet
        .notify_payment(&notify_req(
            &payment.payment_id,
            "W7",
            Amount::from_tenge(250),
        ))
        .await
        .expect("answered");
    let answer = answer.outcome.done().expect("SUCCESS");
    assert_eq!(answer.result.code(), Some(ResultCode::Success));
    // The link carries no locale whatever the caller's (DECISIONS 35); the MPP appends its own.
    assert!(!answer.link_receipt.expect("link").contains("locale"));
    let id: i64 = payment.payment_id.parse().expect("numeric id");
    let status = ps.status(id).await;
    assert_eq!(status["Data"]["Status"], "Processed");
    assert_eq!(status["Data"]["Amount"], json!(250.0));
}

#[tokio::test]
async fn custom_qr_checkout_freezes_the_amount_in_the_callers_language() {
    let ps = TestPs::start().await;
    let bank = ps.mpp("demobank");
    let scan = bank
        .in_locale(Locale::Kk)
        .scan(&scan_req(PARKING_QR, "C9"))
        .await
        .expect("scan");
    let Outcome::Done(Scanned::Custom {
        payment,
        service: data,
        ..
    }) = scan.outcome
    else {
        panic!("a Custom QR: {:?}", scan.outcome);
    };
    assert_eq!(data.service_name, "Тұрақ");
    assert_eq!(data.parameters[0].name, "Мемлекеттік нөмір");
    let options = data.parameters[1].options.clone().expect("options");
    assert_eq!(options[2].label, "Тәулік");
    let payment_id = payment.payment_id;
    let checkout = |plate: &str, option: &str| CheckoutRequest {
        payment_id: payment_id.clone(),
        service_id: 2862,
        parameters: vec![
            ParameterValue {
                id: 3932,
                value: Some(plate.to_owned()),
            },
            ParameterValue {
                id: 3933,
                value: Some(option.to_owned()),
            },
        ],
        customer_id: Some("C9".to_owned()),
    };
    // Another customer of the same MPP may not check it out (DECISIONS 11): UNKNOWN_CUSTOMER,
    // and nothing is frozen.
    let stranger = CheckoutRequest {
        customer_id: Some("C2".to_owned()),
        ..checkout("STRANGER", "day")
    };
    let refused = bank.checkout(&stranger).await.expect("answered");
    assert_eq!(
        refused.outcome.refused_code(),
        Some(ResultCode::UnknownCustomer)
    );
    // An option that is not in the list is refused and freezes nothing.
    let refused = bank
        .checkout(&checkout("777ABC02", "week"))
        .await
        .expect("answered");
    assert_eq!(
        refused.outcome.refused_code(),
        Some(ResultCode::ParamIllegal)
    );
    // Each problem with the form is named with the parameter, and freezes nothing either.
    let long = "Я".repeat(65);
    let cases = [
        (
            json!([{"id": 3932, "value": "A"}]),
            "parameters[id=3933] — обязателен",
        ),
        (
            json!([{"id": 3932, "value": "A"}, {"id": 3933, "value": " "}]),
            "parameters[id=3933] — обязателен",
        ),
        (
            json!([{"id": 3932, "value": "A"}, {"id": 3932, "value": "B"}, {"id": 3933, "value": "1h"}]),
            "parameters[id=3932] — повторяется",
        ),
        (
            json!([{"id": 3932, "value": long}, {"id": 3933, "value": "1h"}]),
            "parameters[id=3932] — длиннее 64 символов",
        ),
        (
            json!([{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}, {"id": 1, "value": "x"}]),
            "parameters[id=1] — недопустимое значение",
        ),
        (
            json!([{"id": 3932, "value": "777\tABC"}, {"id": 3933, "value": "1h"}]),
            "parameters[id=3932] — содержит управляющий символ",
        ),
        (
            json!([{"id": 3932, "value": "777ABC02\n"}, {"id": 3933, "value": "1h"}]),
            "parameters[id=3932] — содержит управляющий символ",
        ),
    ];
    for (parameters, problem) in cases {
        let body = json!({"paymentId": payment_id, "serviceId": 2862, "parameters": parameters});
        let (_, answer) = ps.mpp_call(CHECKOUT, "demobank", "bad", &body).await;
        let answer: Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(
            answer["result"]["resultMessage"],
            format!("Некорректный параметр: {problem}"),
            "{parameters}"
        );
    }
    let first = bank
        .checkout(&checkout("777ABC02", "3h"))
        .await
        .expect("checkout");
    let first = first.outcome.done().expect("SUCCESS");
    assert_eq!(first.payment_amount, Amount::from_tenge(800));
    // A repeat gets the first answer byte for byte, whatever it carries (a checkout without
    // `customerId`, as SPEC 4.2's table has it, is the scanning MPP's) ...
    let body = json!({"paymentId": payment_id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "X"}, {"id": 3933, "value": "day"}]});
    let (_, again) = ps.mpp_call(CHECKOUT, "demobank", "c2", &body).await;
    let (_, again2) = ps.mpp_call(CHECKOUT, "demobank", "c3", &body).await;
    assert_eq!(again, again2);
    // ... but not another customer's repeat, which is refused as before.
    let mut body = body;
    body["customerId"] = json!("C2");
    let (_, stranger) = ps.mpp_call(CHECKOUT, "demobank", "c4", &body).await;
    assert_eq!(result_code(&stranger), "UNKNOWN_CUSTOMER");
    assert_eq!(
        serde_json::from_str::<Value>(&again).expect("json")["paymentAmount"],
        "800.00"
    );
    // notifyPayment must carry the frozen amount.
    let (_, wrong) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n1",
            &notify_body(&payment_id, "C9", "SUCCESS", Some("2000")),
        )
        .await;
    assert_eq!(result_code(&wrong), "PARAM_ILLEGAL");
    let answer = bank
        .notify_payment(&notify_req(&payment_id, "C9", Amount::from_tenge(800)))
        .await
        .expect("answered");
    assert!(matches!(answer.outcome, Outcome::Done(_)), "{answer:?}");
}

#[tokio::test]
async fn fifty_concurrent_identical_notifications_confirm_once_with_identical_bodies() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 700).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    let body = notify_body(&payment_id, "C1", "SUCCESS", Some("700"));
    let calls = (0..50).map(|i| {
        let ps = &ps;
        let body = &body;
        async move {
            ps.mpp_call(NOTIFY, "demobank", &format!("same-{}", i % 3), body)
                .await
        }
    });
    let answers = join_all(calls).await;
    let first = &answers[0];
    assert_eq!(first.0, 200);
    assert_eq!(result_code(&first.1), "SUCCESS");
    assert!(
        answers.iter().all(|a| a == first),
        "every repeat gets the same bytes"
    );
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    let stored = ps
        .app
        .store
        .payment(PaymentId::new(id))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.notify_response.as_deref(), Some(first.1.as_str()));
}

#[tokio::test]
async fn a_repeat_that_changes_the_verdict_gets_the_first_answer() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    let (_, cancelled) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n1",
            &notify_body(&payment_id, "C1", "CANCELLED_BY_CLIENT", None),
        )
        .await;
    assert_eq!(result_code(&cancelled), "CANCELLED_BY_CLIENT");
    let (_, late_success) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n2",
            &notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(late_success, cancelled);
    let (_, other_amount) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n3",
            &notify_body(&payment_id, "C1", "SUCCESS", Some("999")),
        )
        .await;
    assert_eq!(other_amount, cancelled);
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
}

#[tokio::test]
async fn other_verdicts_are_recorded_as_failures() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    for (verdict, answer) in [
        ("RISK_REJECT", "RISK_REJECT"),
        ("PROCESS_FAIL", "PROCESS_FAIL"),
        ("NO_MONEY", "PROCESS_FAIL"),
    ] {
        let (qr, id) = ps.dynamic_qr(&device, 100).await;
        let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
        let (_, body) = ps
            .mpp_call(
                NOTIFY,
                "demobank",
                "n",
                &notify_body(&payment_id, "C1", verdict, None),
            )
            .await;
        assert_eq!(result_code(&body), answer);
        assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    }
}

#[tokio::test]
async fn a_payment_belongs_to_the_mpp_and_customer_that_scanned_it() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    // Scans by anyone else fail; the owner's repeat returns the same payment.
    let (_, other) = ps
        .mpp_call(
            SCAN,
            "demowallet",
            "s",
            &json!({"qrCode": qr, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&other), "PROCESS_FAIL");
    let (_, other) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s",
            &json!({"qrCode": qr, "customerId": "C2"}),
        )
        .await;
    assert_eq!(result_code(&other), "PROCESS_FAIL");
    assert_eq!(scan_id(&ps, "demobank", &qr, "C1").await, payment_id);
    // The id only as the PS wrote it: another spelling of the same number is no payment.
    for spelling in [format!("0{payment_id}"), format!("+{payment_id}")] {
        let (_, body) = ps
            .mpp_call(
                NOTIFY,
                "demobank",
                "n",
                &notify_body(&spelling, "C1", "SUCCESS", None),
            )
            .await;
        assert_eq!(result_code(&body), "ORDER_NOT_EXIST", "{spelling}");
    }
    // notifyPayment from another MPP: not found; from another customer: UNKNOWN_CUSTOMER.
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demowallet",
            "n",
            &notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "ORDER_NOT_EXIST");
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C2", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "UNKNOWN_CUSTOMER");
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body("424242", "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "ORDER_NOT_EXIST");
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body("not-a-number", "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "ORDER_NOT_EXIST");
    // The rejected calls changed nothing: the owner can still pay.
    assert_eq!(ps.status(id).await["Data"]["Status"], "Wait");
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "SUCCESS");
    // Checkout of another MPP's payment is not found either.
    let custom_id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
    let (_, body) = ps
        .mpp_call(
            CHECKOUT,
            "demowallet",
            "c",
            &json!({"paymentId": custom_id, "serviceId": 2862}),
        )
        .await;
    assert_eq!(result_code(&body), "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn deadlines_expire_codes_and_purchases() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    // Past ExpireDate (180 s) a Dynamic QR can no longer be scanned.
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    ps.advance(181);
    let (_, body) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s",
            &json!({"qrCode": qr, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&body), "EXPIRED_CODE");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    // Within the grace after canConfirmUntil (60 s + 5 s) notifyPayment still confirms.
    let (qr, _) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    ps.advance(64);
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "SUCCESS");
    // Past the grace it is refused and the purchase is expired.
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    ps.advance(66);
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&body), "PAYMENT_INCORRECT_STATUS");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    let (_, body) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s",
            &json!({"qrCode": qr, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&body), "EXPIRED_CODE");
    // A Custom payment past its window: checkout answers EXPIRED_CODE.
    let custom_id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
    ps.advance(70);
    let body = json!({"paymentId": custom_id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}]});
    let (_, answer) = ps.mpp_call(CHECKOUT, "demobank", "c", &body).await;
    assert_eq!(result_code(&answer), "EXPIRED_CODE");
    assert_eq!(
        result_message(&answer),
        "Срок действия QR-кода истёк: время на подтверждение истекло"
    );
}

/// EXPIRED_CODE says "the QR's time is up"; a Dynamic QR whose purchase was paid, cancelled or
/// refused already says which, in the caller's language, to that purchase's MPP only.
#[tokio::test]
async fn a_final_purchase_s_qr_scanned_again_says_why_it_cannot_be_paid() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let scans = std::sync::atomic::AtomicU32::new(0);
    let scan_again = |qr: String, caller: &'static str, locale: &'static str| {
        let (ps, n) = (
            &ps,
            scans.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        async move {
            let body = json!({"qrCode": qr, "customerId": "C1"}).to_string();
            let id = format!("again-{n}");
            let headers = [
                ("content-type", "application/json"),
                ("x-caller-name", caller),
                ("x-request-id", id.as_str()),
                ("x-locale", locale),
            ];
            let (_, answer) = ps.mpp_raw(SCAN, &headers, &body).await;
            assert_eq!(result_code(&answer), "EXPIRED_CODE", "{answer}");
            result_message(&answer)
        }
    };
    let mut finals = Vec::new();
    for verdict in ["SUCCESS", "CANCELLED_BY_CLIENT", "RISK_REJECT"] {
        let (qr, _) = ps.dynamic_qr(&device, 100).await;
        let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
        let (_, body) = ps
            .mpp_call(
                NOTIFY,
                "demobank",
                "n",
                &notify_body(&payment_id, "C1", verdict, None),
            )
            .await;
        // A payment is answered with SUCCESS, a cancellation or a refusal with its own code.
        assert_eq!(result_code(&body), verdict, "{body}");
        finals.push(qr);
    }
    let expired = "Срок действия QR-кода истёк";
    for (qr, locale, why) in [
        (&finals[0], "ru-RU", ": покупка уже оплачена"),
        (&finals[1], "ru-RU", ": покупка отменена"),
        (&finals[2], "ru-RU", ": оплата покупки отклонена"),
    ] {
        let said = scan_again(qr.clone(), "demobank", locale).await;
        assert_eq!(said, format!("{expired}{why}"));
    }
    assert_eq!(
        scan_again(finals[0].clone(), "demobank", "kk-KZ").await,
        "QR-кодтың мерзімі өтті: сатып алу төленіп қойған"
    );
    // Another MPP learns nothing of the purchase (DECISIONS 11): the message alone.
    for qr in &finals {
        assert_eq!(scan_again(qr.clone(), "demowallet", "ru-RU").await, expired);
    }
    // One past its ExpireDate, never scanned: the message alone is the reason.
    let (qr, _) = ps.dynamic_qr(&device, 100).await;
    ps.advance(181);
    assert_eq!(scan_again(qr, "demobank", "ru-RU").await, expired);
}

#[tokio::test]
async fn expiry_needs_no_polling() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, scanned) = ps.dynamic_qr(&device, 100).await;
    scan_id(&ps, "demobank", &qr, "C1").await;
    let (_, unscanned) = ps.dynamic_qr(&device, 100).await;
    ps.advance(200);
    // The sweeper runs every 50 ms in tests; nobody asks for the status meanwhile.
    let expired = |id: i64| {
        let store = ps.app.store.clone();
        async move {
            let purchase = store.payment(PaymentId::new(id)).await.expect("read");
            purchase.expect("exists").status == tolem_ps::domain::Status::Expired
        }
    };
    eventually("the sweeper expired both purchases", || async {
        expired(scanned).await && expired(unscanned).await
    })
    .await;
    assert_eq!(ps.status(scanned).await["Data"]["Status"], "Error");
}

#[tokio::test]
async fn headers_are_checked_at_the_edge() {
    let ps = TestPs::start().await;
    let body = json!({"qrCode": STATIC_QR, "customerId": "C1"}).to_string();
    let base = [
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", "r1"),
    ];
    let (status, answer) = ps.mpp_raw(SCAN, &base, &body).await;
    assert_eq!((status, result_code(&answer)), (200, "SUCCESS".to_owned()));
    let long_id = "x".repeat(65);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("content-type", "application/json"), ("x-request-id", "r1")],
            "UNKNOWN_SOURCE",
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("x-caller-name", "nobody"),
                ("x-request-id", "r1"),
            ],
            "UNKNOWN_SOURCE",
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("x-caller-name", "demobank"),
            ],
            "PARAM_ILLEGAL",
        ),
        (
            vec![
                ("content-type", "text/plain"),
                ("x-caller-name", "demobank"),
                ("x-request-id", "r1"),
            ],
            "PARAM_ILLEGAL",
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("x-caller-name", "demobank"),
                ("x-request-id", &long_id),
            ],
            "PARAM_ILLEGAL",
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("x-caller-name", "demobank"),
                ("x-request-id", "r1"),
                ("x-locale", "en-US"),
            ],
            "PARAM_ILLEGAL",
        ),
    ];
    for (headers, code) in cases {
        let (status, answer) = ps.mpp_raw(SCAN, &headers, &body).await;
        assert_eq!(
            (status, result_code(&answer)),
            (200, code.to_owned()),
            "{headers:?}"
        );
        if code == "UNKNOWN_SOURCE" {
            // The message names the header, and says what the PS read there.
            let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
            let why = match headers.iter().find(|(name, _)| *name == "x-caller-name") {
                None => "заголовок не передан".to_owned(),
                Some((_, caller)) => format!("«{caller}» нет среди действующих участников"),
            };
            assert_eq!(
                answer["result"]["resultMessage"],
                format!("Неизвестный участник (X-Caller-Name): {why}")
            );
        }
    }
    // A header that is not visible ASCII is no value the rules take, refused as the header's own
    // rule says, in the caller's language.
    for (headers, message) in [
        (
            vec![
                ("content-type", "application/json"),
                ("x-caller-name", "банк"),
                ("x-request-id", "r1"),
                ("x-locale", "kk-KZ"),
            ],
            "Белгісіз қатысушы (X-Caller-Name): ASCII емес",
        ),
        (
            vec![
                ("content-type", "application/json; charset=утф"),
                ("x-caller-name", "demobank"),
                ("x-request-id", "r1"),
                ("x-locale", "kk-KZ"),
            ],
            "Параметр дұрыс емес: Content-Type — күтілетін мән: application/json",
        ),
    ] {
        let (status, answer) = ps.mpp_raw(SCAN, &headers, &body).await;
        let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(
            (status, answer["result"]["resultMessage"].as_str()),
            (200, Some(message)),
            "{headers:?}"
        );
    }
    // The request id is echoed back.
    let resp = ps
        .http
        .post(format!("{}{SCAN}", ps.url))
        .header("content-type", "application/json")
        .header("x-caller-name", "demobank")
        .header("x-request-id", "echo-me")
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.headers()["x-request-id"], "echo-me");
}

/// With a tunnel (`[mpps.ipsec]`), an MPP's requests come from its inner addresses: another
/// MPP's request under its name (through that MPP's own tunnel) is refused as UNKNOWN_SOURCE.
#[tokio::test]
async fn an_mpp_with_a_tunnel_speaks_only_from_its_inner_addresses() {
    let ps = TestPs::start().await;
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let mut bank = catalog["mpps"]
        .as_array()
        .expect("mpps")
        .iter()
        .find(|m| m["caller_name"] == "demobank")
        .expect("demobank")
        .clone();
    let body = json!({"qrCode": STATIC_QR, "customerId": "C1"});
    let set = |inner: &str, refund_url: &str| {
        let mut mpp = bank.clone();
        mpp["ipsec"] = json!({"gateway": "198.51.100.1", "inner": [inner]});
        mpp["refund_url"] = json!(refund_url);
        mpp
    };
    // Its tunnel carries 203.0.113.7; this request comes from 127.0.0.1.
    let mpp = set("203.0.113.7", "http://203.0.113.7/refund");
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/demobank", &mpp).await;
    assert_eq!(status, 200, "{answer}");
    let (_, answer) = ps.mpp_call(SCAN, "demobank", "s1", &body).await;
    assert_eq!(result_code(&answer), "UNKNOWN_SOURCE");
    // The answer says why: the name is known, the address is not its tunnel's.
    let said: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        said["result"]["resultMessage"],
        "Неизвестный участник (X-Caller-Name): адрес вне туннеля этого участника"
    );
    // Another MPP's tunnel may not carry an address of this one's.
    let mut wallet = catalog["mpps"]
        .as_array()
        .expect("mpps")
        .iter()
        .find(|m| m["caller_name"] == "demowallet")
        .expect("demowallet")
        .clone();
    wallet["ipsec"] = json!({"gateway": "198.51.100.2", "inner": ["203.0.113.0/24"]});
    wallet["refund_url"] = json!("http://203.0.113.9/refund");
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/demowallet", &wallet).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("overlaps"), "{answer}");
    // From its inner address, it is itself again.
    bank = set("127.0.0.1", "http://127.0.0.1:9/refund");
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/demobank", &bank).await;
    assert_eq!(status, 200, "{answer}");
    let (_, answer) = ps.mpp_call(SCAN, "demobank", "s2", &body).await;
    assert_eq!(result_code(&answer), "SUCCESS");
    // An MPP without a tunnel cannot be spoken as through another MPP's tunnel.
    let (_, answer) = ps.mpp_call(SCAN, "demowallet", "s3", &body).await;
    assert_eq!(result_code(&answer), "UNKNOWN_SOURCE");
    let said: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        said["result"]["resultMessage"],
        "Неизвестный участник (X-Caller-Name): адрес из туннеля другого участника"
    );

    // A PUT replaces the whole item: one that leaves `ipsec` out (a change of commission,
    // say) would unbind the MPP without a word, so it is refused and changes nothing ...
    let mut partial = bank.clone();
    partial.as_object_mut().expect("an object").remove("ipsec");
    partial["commission_bps"] = json!(120);
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/demobank", &partial).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("ipsec: the MPP demobank is bound"),
        "{answer}"
    );
    let (_, stored) = ps
        .admin("GET", "/admin/v1/mpps/demobank", &Value::Null)
        .await;
    assert_eq!(stored["commission_bps"], bank["commission_bps"], "{stored}");
    assert_eq!(
        stored["ipsec"]["inner"],
        json!(["127.0.0.1/32"]),
        "{stored}"
    );
    // ... and `"ipsec": null` takes the binding away when that is what is meant.
    partial["ipsec"] = Value::Null;
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/demobank", &partial).await;
    assert_eq!(status, 200, "{answer}");
    let (_, answer) = ps.mpp_call(SCAN, "demowallet", "s4", &body).await;
    assert_eq!(result_code(&answer), "SUCCESS");
}

#[tokio::test]
async fn bad_bodies_get_param_illegal_and_change_nothing() {
    let ps = TestPs::start().await;
    let long = "9".repeat(129);
    let cases = [
        (SCAN, "{not json".to_owned()),
        (SCAN, "[]".to_owned()),
        (SCAN, json!({"qrCode": 5, "customerId": "C1"}).to_string()),
        (SCAN, json!({"qrCode": STATIC_QR}).to_string()),
        (
            SCAN,
            json!({"qrCode": STATIC_QR, "customerId": "1234567890123"}).to_string(),
        ),
        (
            SCAN,
            json!({"qrCode": long, "customerId": "C1"}).to_string(),
        ),
        (SCAN, json!({"qrCode": "", "customerId": "C1"}).to_string()),
        (
            CHECKOUT,
            json!({"paymentId": "1", "serviceId": "x"}).to_string(),
        ),
        (
            CHECKOUT,
            json!({"paymentId": "1".repeat(65), "serviceId": 2862, "parameters": []}).to_string(),
        ),
        (
            CHECKOUT,
            json!({"paymentId": "1", "serviceId": 2862, "parameters": [], "customerId": "C123456789012"})
                .to_string(),
        ),
        (NOTIFY, json!({"payment": {"paymentId": "1"}}).to_string()),
        (
            NOTIFY,
            notify_body("1", "C1", "SUCCESS", Some("1e2")).to_string(),
        ),
        (
            NOTIFY,
            notify_body("1", "C1", "SUCCESS", Some("-5")).to_string(),
        ),
        (NOTIFY, notify_body("1", "", "SUCCESS", None).to_string()),
        (
            NOTIFY,
            notify_body(&"1".repeat(65), "C1", "SUCCESS", None).to_string(),
        ),
        (
            NOTIFY,
            notify_body("1", "C1", &"S".repeat(65), None).to_string(),
        ),
    ];
    let headers = [
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", "r1"),
    ];
    for (path, body) in cases {
        let (status, answer) = ps.mpp_raw(path, &headers, &body).await;
        assert_eq!(
            (status, result_code(&answer)),
            (200, "PARAM_ILLEGAL".to_owned()),
            "{path} {body}"
        );
    }
    // Too large: refused before it is read in full.
    let huge = format!("{{\"qrCode\":\"{}\"}}", "x".repeat(200_000));
    let (status, answer) = ps.mpp_raw(SCAN, &headers, &huge).await;
    assert_eq!(
        (status, result_code(&answer)),
        (413, "PARAM_ILLEGAL".to_owned())
    );
    // Unknown method and wrong HTTP method still answer with `result`.
    let (status, answer) = ps.mpp_raw("/api/v1/qr/refundAll", &headers, "{}").await;
    assert_eq!(
        (status, result_code(&answer)),
        (404, "PARAM_ILLEGAL".to_owned())
    );
    // ... in the caller's language.
    let mut kk = headers.to_vec();
    kk.push(("x-locale", "kk-KZ"));
    let (_, answer) = ps.mpp_raw("/api/v1/qr/refundAll", &kk, "{}").await;
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        answer["result"]["resultMessage"],
        "Параметр дұрыс емес: белгісіз әдіс"
    );
    let resp = ps
        .http
        .get(format!("{}{SCAN}", ps.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        result_code(&resp.text().await.expect("body")),
        "PARAM_ILLEGAL"
    );
    // Unknown token.
    let (_, answer) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "r",
            &json!({"qrCode": "12345", "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&answer), "INVALID_TOKEN");
}

#[tokio::test]
async fn error_messages_follow_the_locale() {
    let ps = TestPs::start().await;
    let headers = [
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", "r1"),
        ("x-locale", "kk-KZ"),
    ];
    let (_, answer) = ps
        .mpp_raw(
            SCAN,
            &headers,
            &json!({"qrCode": "nope", "customerId": "C1"}).to_string(),
        )
        .await;
    let v: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(
        v["result"]["resultMessage"],
        ResultCode::InvalidToken.message(Locale::Kk)
    );
}

#[tokio::test]
async fn suspended_and_blocked_merchants() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let paid = ps.paid(&device, 100, "C1").await;
    let (qr, _) = ps.dynamic_qr(&device, 100).await;
    let waiting = scan_id(&ps, "demobank", STATIC_QR, "C1").await;
    ps.set_organization_status("990340001234", "suspended")
        .await;
    let (_, body) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s",
            &json!({"qrCode": qr, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&body), "PAYMENTS_SUSPENDED");
    let (_, body) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s",
            &json!({"qrCode": PARKING_QR, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&body), "PAYMENTS_SUSPENDED");
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&waiting, "C1", "SUCCESS", Some("10")),
        )
        .await;
    assert_eq!(result_code(&body), "PAYMENTS_SUSPENDED");
    // The merchant's POS takes no new purchase its customers' banks would refuse (990000018, the
    // trade point disabled), but may still give money back.
    let create = json!({"DeviceToken": device, "Amount": 100});
    let (_, created) = ps
        .pos("POST", "/r1/v01/qr/create", API_KEY, Some(&create))
        .await;
    assert_eq!(created["StatusCode"], 990000018, "{created}");
    // The message says why: the till is fine, the operator stopped the merchant.
    assert_eq!(
        created["Message"],
        "Торговая точка отключена: организация приостановлена оператором платёжной системы"
    );
    let refund = crate::refunds::refund_r3(&ps, &device, paid, 10.0).await;
    assert_eq!(refund["StatusCode"], 0, "{refund}");
    ps.set_organization_status("990340001234", "blocked").await;
    // Blocked: no money back either, as its return QRs answer INVALID_MERCHANT.
    let refund = crate::refunds::refund_r3(&ps, &device, paid, 10.0).await;
    assert_eq!(refund["StatusCode"], 990000018, "{refund}");
    assert!(
        refund["Message"]
            .as_str()
            .is_some_and(|m| m.ends_with("организация заблокирована оператором платёжной системы")),
        "{refund}"
    );
    let (_, body) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s",
            &json!({"qrCode": STATIC_QR, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&body), "INVALID_MERCHANT");
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&waiting, "C1", "SUCCESS", Some("10")),
        )
        .await;
    assert_eq!(result_code(&body), "INVALID_MERCHANT");
    // Lifted: the waiting purchase can still be paid (the refusals changed nothing).
    ps.set_organization_status("990340001234", "active").await;
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&waiting, "C1", "SUCCESS", Some("10")),
        )
        .await;
    assert_eq!(result_code(&body), "SUCCESS");
    let (_, created) = ps
        .pos("POST", "/r1/v01/qr/create", API_KEY, Some(&create))
        .await;
    assert_eq!(created["StatusCode"], 0, "{created}");
}

#[tokio::test]
async fn custom_service_errors() {
    let ps = TestPs::start().await;
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let mut service = catalog["services"][0].clone();
    // A service whose provider cannot be reached: UNKNOWN_EXCEPTION, retryable, nothing stored.
    service["amount"] =
        json!({"kind": "callback", "url": "http://127.0.0.1:9/amount", "timeout_ms": 500});
    let (status, _) = ps.admin("PUT", "/admin/v1/services/2862", &service).await;
    assert_eq!(status, 200);
    let payment_id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
    let body = json!({"paymentId": payment_id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}]});
    let (status, answer) = ps.mpp_call(CHECKOUT, "demobank", "c", &body).await;
    assert_eq!(
        (status, result_code(&answer)),
        (503, "UNKNOWN_EXCEPTION".to_owned())
    );
    // Checkout of a non-Custom payment is a business failure; a wrong serviceId is a bad parameter.
    let static_id = scan_id(&ps, "demobank", STATIC_QR, "C1").await;
    let (_, answer) = ps
        .mpp_call(
            CHECKOUT,
            "demobank",
            "c",
            &json!({"paymentId": static_id, "serviceId": 2862}),
        )
        .await;
    assert_eq!(result_code(&answer), "PROCESS_FAIL");
    let (_, answer) = ps
        .mpp_call(
            CHECKOUT,
            "demobank",
            "c",
            &json!({"paymentId": payment_id, "serviceId": 1}),
        )
        .await;
    assert_eq!(result_code(&answer), "PARAM_ILLEGAL");
    // notifyPayment before checkout: the payment's status does not allow it.
    let (_, answer) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "SUCCESS", Some("300")),
        )
        .await;
    assert_eq!(result_code(&answer), "PAYMENT_INCORRECT_STATUS");
    // A disabled service: CUSTOM_QR_ERROR at scan.
    service["active"] = json!(false);
    ps.admin("PUT", "/admin/v1/services/2862", &service).await;
    let (_, answer) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s",
            &json!({"qrCode": PARKING_QR, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&answer), "CUSTOM_QR_ERROR");
}

#[tokio::test]
async fn a_custom_payment_can_be_cancelled_before_checkout() {
    let ps = TestPs::start().await;
    let payment_id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
    let (_, body) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "CANCELLED_BY_CLIENT", None),
        )
        .await;
    assert_eq!(result_code(&body), "CANCELLED_BY_CLIENT");
    let body = json!({"paymentId": payment_id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}]});
    let (_, answer) = ps.mpp_call(CHECKOUT, "demobank", "c", &body).await;
    assert_eq!(result_code(&answer), "PROCESS_FAIL");
}

#[tokio::test]
async fn a_dynamic_amount_with_tiyn_can_be_echoed_and_repeats_get_the_first_answer() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (_, created) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some(&json!({"DeviceToken": device, "Amount": 150.5})),
        )
        .await;
    let qr = created["Data"]["QrToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    let (_, first) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "SUCCESS", Some("150.50")),
        )
        .await;
    assert_eq!(result_code(&first), "SUCCESS");
    for amount in ["999.50", "150", "1e2"] {
        let (_, again) = ps
            .mpp_call(
                NOTIFY,
                "demobank",
                "n",
                &notify_body(&payment_id, "C1", "SUCCESS", Some(amount)),
            )
            .await;
        if amount == "1e2" {
            // Not an amount at all: refused at the edge, like any malformed request.
            assert_eq!(result_code(&again), "PARAM_ILLEGAL");
        } else {
            assert_eq!(again, first, "{amount}");
        }
    }
}

#[tokio::test]
async fn concurrent_checkouts_with_different_parameters_get_one_answer() {
    let ps = TestPs::start().await;
    let payment_id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
    let options = ["1h", "3h", "day"];
    let calls = (0..30).map(|i| {
        let ps = &ps;
        let body = json!({"paymentId": payment_id, "serviceId": 2862,
            "parameters": [{"id": 3932, "value": format!("P{i}")}, {"id": 3933, "value": options[i % 3]}]});
        async move { ps.mpp_call(CHECKOUT, "demobank", &format!("c{i}"), &body).await }
    });
    let answers = join_all(calls).await;
    assert_eq!(result_code(&answers[0].1), "SUCCESS");
    assert!(answers.iter().all(|a| a == &answers[0]));
    let ps = ps.restart().await;
    let body = json!({"paymentId": payment_id, "serviceId": 2862, "parameters": []});
    let (_, after) = ps.mpp_call(CHECKOUT, "demobank", "c", &body).await;
    assert_eq!(after, answers[0].1);
}

#[tokio::test]
async fn checkout_of_a_suspended_merchant() {
    let ps = TestPs::start().await;
    let payment_id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
    ps.set_organization_status("990340001234", "suspended")
        .await;
    let body = json!({"paymentId": payment_id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}]});
    let (_, answer) = ps.mpp_call(CHECKOUT, "demobank", "c", &body).await;
    assert_eq!(result_code(&answer), "PAYMENTS_SUSPENDED");
    // Suspended means no verdict at all takes effect, not even a cancellation.
    let (_, answer) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "CANCELLED_BY_CLIENT", None),
        )
        .await;
    assert_eq!(result_code(&answer), "PAYMENTS_SUSPENDED");
}

/// A Static or Custom scan makes a purchase each time; a retry of one (its X-Request-ID and body
/// again, after a lost answer) gets the purchase the first made, also when the retries race
/// and after a restart (SPEC 1.4, DECISIONS 9).
#[tokio::test]
async fn a_retried_static_or_custom_scan_gets_the_purchase_the_first_made() {
    let ps = TestPs::start().await;
    let scan = |request_id: &'static str, qr: &'static str, customer: &'static str| {
        let ps = &ps;
        async move {
            let body = json!({"qrCode": qr, "customerId": customer});
            let (_, answer) = ps.mpp_call(SCAN, "demobank", request_id, &body).await;
            let v: Value = serde_json::from_str(&answer).expect("JSON");
            assert_eq!(v["result"]["resultCode"], "SUCCESS", "{answer}");
            v["payment"]["paymentId"]
                .as_str()
                .expect("paymentId")
                .to_owned()
        }
    };
    let purchases = || {
        ps.books().count(
            "SELECT COUNT(*) FROM payments WHERE kind IN ('static', 'custom')",
            &[],
        )
    };
    // Ten retries at once: one purchase.
    let ids = join_all((0..10).map(|_| scan("cafe-1", STATIC_QR, "C1"))).await;
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    assert_eq!(purchases(), 1);
    // Another request id, or the same id with another body, is another scan.
    let other = scan("cafe-2", STATIC_QR, "C1").await;
    let another_customer = scan("cafe-1", STATIC_QR, "C2").await;
    assert_ne!(other, ids[0]);
    assert_ne!(another_customer, ids[0]);
    assert_ne!(another_customer, other);
    // The same for a Custom QR, and across a restart.
    let parking = scan("park-1", PARKING_QR, "C1").await;
    assert_eq!(purchases(), 4);
    let ps = ps.restart().await;
    let body = json!({"qrCode": PARKING_QR, "customerId": "C1"});
    let (_, answer) = ps.mpp_call(SCAN, "demobank", "park-1", &body).await;
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(v["payment"]["paymentId"], parking.as_str(), "{answer}");
    // Another MPP's scan under the same request id is its own.
    let (_, answer) = ps.mpp_call(SCAN, "demowallet", "park-1", &body).await;
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_ne!(v["payment"]["paymentId"], parking.as_str(), "{answer}");
    // Once the first purchase is paid, its request id names no scan in progress: an MPP that
    // reuses its ids gets a new purchase, never the paid one back (whose notifyPayment would
    // answer the stored SUCCESS to a second debit).
    let cafe = json!({"qrCode": STATIC_QR, "customerId": "C1"});
    let (_, answer) = ps.mpp_call(SCAN, "demobank", "cafe-1", &cafe).await;
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        v["payment"]["paymentId"],
        ids[0].as_str(),
        "still open: {answer}"
    );
    let paid = notify_body(&ids[0], "C1", "SUCCESS", Some("100"));
    let (_, answer) = ps.mpp_call(NOTIFY, "demobank", "n-cafe-1", &paid).await;
    assert_eq!(result_code(&answer), "SUCCESS", "{answer}");
    let (_, answer) = ps.mpp_call(SCAN, "demobank", "cafe-1", &cafe).await;
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    let after = v["payment"]["paymentId"]
        .as_str()
        .expect("paymentId")
        .to_owned();
    assert_ne!(
        after, ids[0],
        "a paid purchase is not scanned again: {answer}"
    );
    // And that new purchase is what a retry of this scan gets now.
    let (_, answer) = ps.mpp_call(SCAN, "demobank", "cafe-1", &cafe).await;
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(v["payment"]["paymentId"], after.as_str(), "{answer}");
    assert_eq!(
        ps.books().count(
            "SELECT COUNT(*) FROM payments WHERE kind IN ('static', 'custom')",
            &[]
        ),
        6
    );
}

#[tokio::test]
async fn refused_notifications_leave_a_waiting_purchase_as_it_was() {
    // Every field of notifyPayment is checked before anything changes (SPEC 4.3): each refusal
    // leaves the purchase waiting, and the right notification, with each field at its longest,
    // confirms it afterwards.
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1500).await;
    let customer = "C12345678901"; // 12 characters, the longest (SPEC 4.1)
    let mpp_payment_id = "M".repeat(64);
    let payment_id = scan_id(&ps, "demobank", &qr, customer).await;
    let good = || {
        let mut body = notify_body(&payment_id, customer, "SUCCESS", Some("1500.00"));
        body["payment"]["mppPaymentId"] = json!(mpp_payment_id);
        body["result"]["resultMessage"] = json!("м".repeat(256));
        body
    };
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = good();
        change(&mut body);
        body
    };
    let cases = [
        with(&|b| b["payment"]["mppPaymentId"] = json!("M".repeat(65))),
        with(&|b| b["result"]["resultMessage"] = json!("м".repeat(257))),
        with(&|b| b["result"]["resultCode"] = json!("S".repeat(65))),
        with(&|b| b["customerId"] = json!("C123456789012")),
        with(&|b| {
            b.as_object_mut().map(|o| o.remove("customerId"));
            b["payment"]["customerId"] = json!("C123456789012");
        }),
        with(&|b| b["payment"]["customerId"] = json!("C2")),
        with(&|b| b["payment"]["paymentAmount"] = json!("1400.00")),
        with(&|b| b["payment"]["paymentAmount"] = json!("1.5e3")),
        with(&|b| b["payment"]["paymentAmount"] = json!("-1500.00")),
        with(&|b| b["payment"]["paymentId"] = json!("1".repeat(65))),
    ];
    for (i, body) in cases.iter().enumerate() {
        let (_, answer) = ps
            .mpp_call(NOTIFY, "demobank", &format!("bad-{i}"), body)
            .await;
        assert_eq!(result_code(&answer), "PARAM_ILLEGAL", "{body}");
        assert_eq!(ps.status(id).await["Data"]["Status"], "Wait", "{body}");
    }
    let (_, answer) = ps.mpp_call(NOTIFY, "demobank", "good", &good()).await;
    assert_eq!(result_code(&answer), "SUCCESS");
    let (status, view) = ps
        .admin("GET", &format!("/admin/v1/payments/{id}"), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["mpp_payment_id"], json!(mpp_payment_id));
    assert_eq!(view["amount"], "1500.00");
    // Once final, a repeat gets the stored answer byte for byte, whatever it carries (DECISIONS
    // 18); the wrong amount changes nothing either.
    let wrong = with(&|b| b["payment"]["paymentAmount"] = json!("1400.00"));
    let (_, again) = ps.mpp_call(NOTIFY, "demobank", "again", &wrong).await;
    assert_eq!(again, answer);
    let (_, view) = ps
        .admin("GET", &format!("/admin/v1/payments/{id}"), &json!({}))
        .await;
    assert_eq!(view["amount"], "1500.00");
}

#[tokio::test]
async fn notify_payment_on_a_purchase_nobody_scanned_is_order_not_exist() {
    // Payment ids are sequential and the POS knows them: an MPP that guesses one the PS made
    // but no MPP scanned yet finds nothing to confirm, and the QR stays payable.
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 700).await;
    let (_, answer) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "guess",
            &notify_body(&id.to_string(), "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&answer), "ORDER_NOT_EXIST");
    assert_eq!(ps.status(id).await["Data"]["Status"], "QrTokenCreated");
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    assert_eq!(payment_id, id.to_string());
    let (_, answer) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "paid",
            &notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&answer), "SUCCESS");
}

#[tokio::test]
async fn can_confirm_until_is_a_minute_from_scan_and_checkout_starts_it_again() {
    // SPEC 4.1 and DECISIONS 5, 16: canConfirmUntil is 60 s after the scan, in the operator's
    // zone with its offset; a Custom checkout gives a new minute from its own time.
    use tolem_ps::clock::Clock;
    let ps = TestPs::start().await;
    let zone = tolem_wire::time::zone("Asia/Almaty").expect("the zone");
    let minute_from_now = || {
        tolem_wire::time::format_mpp(ps.clock.now() + jiff::SignedDuration::from_secs(60), &zone)
    };
    let device = ps.device("POS-1").await;
    let (qr, _) = ps.dynamic_qr(&device, 100).await;
    let want = minute_from_now();
    let (_, scan) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s1",
            &json!({"qrCode": qr, "customerId": "C1"}),
        )
        .await;
    let scan: Value = serde_json::from_str(&scan).expect("JSON");
    assert_eq!(scan["payment"]["canConfirmUntil"], json!(want));
    assert!(want.ends_with("+05:00"), "{want}");

    let (_, scan) = ps
        .mpp_call(
            SCAN,
            "demobank",
            "s2",
            &json!({"qrCode": PARKING_QR, "customerId": "C1"}),
        )
        .await;
    let scan: Value = serde_json::from_str(&scan).expect("JSON");
    let payment_id = scan["payment"]["paymentId"]
        .as_str()
        .expect("a paymentId")
        .to_owned();
    ps.advance(50);
    let want = minute_from_now();
    let body = json!({"paymentId": payment_id, "serviceId": 2862, "customerId": "C1",
        "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}]});
    let (_, checkout) = ps.mpp_call(CHECKOUT, "demobank", "c", &body).await;
    let checkout: Value = serde_json::from_str(&checkout).expect("JSON");
    assert_eq!(checkout["result"]["resultCode"], "SUCCESS", "{checkout}");
    assert_eq!(checkout["canConfirmUntil"], json!(want));
    // 100 s after the scan, past its first minute and grace, inside the checkout's.
    ps.advance(50);
    let (_, answer) = ps
        .mpp_call(
            NOTIFY,
            "demobank",
            "n",
            &notify_body(
                &payment_id,
                "C1",
                "SUCCESS",
                checkout["paymentAmount"].as_str(),
            ),
        )
        .await;
    assert_eq!(result_code(&answer), "SUCCESS");
}
