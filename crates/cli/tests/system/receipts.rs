//! Receipt pages behind `linkReceipt` (SPEC 4.3–4.4, DECISIONS 35): every field a receipt needs,
//! in Russian and in Kazakh, for a payment, a refund and a Custom payment; links that carry no
//! locale and open with either suffix; amounts and dates as a person reads them; nothing more
//! personal; only through the unguessable link. Also the payment-link page's sentence, and the
//! headers of the PS's `/refund` calls (DECISIONS 36).

use jiff::Timestamp;
use serde_json::{Value, json};
use tolem_ps::clock::Clock;

use crate::harness::*;
use crate::receiver::Receiver;

async fn page(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.expect("the PS answers");
    (resp.status().as_u16(), resp.text().await.expect("a body"))
}

/// A page anyone with its link may open runs no script, is not framed or cached, and sends its
/// address (the token is the secret) in no referrer.
async fn assert_public_page_headers(url: &str) {
    let resp = reqwest::get(url).await.expect("the PS answers");
    let headers = resp.headers();
    let csp = headers["content-security-policy"].to_str().expect("text");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(headers[name], value, "{url} {name}");
    }
}

fn assert_has(page: &str, parts: &[&str]) {
    for part in parts {
        assert!(page.contains(part), "{part:?} missing from {page}");
    }
}

fn assert_lacks(page: &str, parts: &[&str]) {
    for part in parts {
        assert!(!page.contains(part), "{part:?} should not be in {page}");
    }
}

/// The three ways an MPP may open a link the PS issued: as is (Russian), `&locale=ru` and
/// `&locale=kk` (DECISIONS 35); each with the language it shows.
async fn both_languages(link: &str) -> (String, String) {
    assert!(!link.contains("locale"), "a link carries no locale: {link}");
    let (status, ru) = page(link).await;
    assert_eq!(status, 200, "{link}");
    let (status, ru_suffix) = page(&format!("{link}&locale=ru")).await;
    assert_eq!(status, 200, "{link}&locale=ru");
    let (status, kk) = page(&format!("{link}&locale=kk")).await;
    assert_eq!(status, 200, "{link}&locale=kk");
    assert_eq!(ru, ru_suffix, "&locale=ru is the Russian receipt");
    // A suffix appended twice (a link from before rule 35, say) is not an error: the last wins.
    let (status, twice) = page(&format!("{link}&locale=ru&locale=kk")).await;
    assert_eq!((status, &twice), (200, &kk));
    (ru, kk)
}

/// A PS whose clock reads 2030-12-01 06:43 UTC, 11:43 in Almaty (the operator's time zone).
async fn ps_on_the_first_of_december() -> TestPs {
    let ps = TestPs::start().await;
    let target: Timestamp = "2030-12-01T06:43:00Z".parse().expect("a time");
    ps.clock.advance(target.duration_since(ps.clock.now()));
    assert_eq!(ps.clock.now(), target);
    ps
}

/// A scan through the raw MPP API with `X-Locale` set (or not); returns the paymentId or
/// refundId.
async fn scan_in(ps: &TestPs, qr: &str, customer: &str, locale: Option<&str>) -> String {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", "scan"),
    ];
    headers.extend(locale.map(|l| ("x-locale", l)));
    let body = json!({"qrCode": qr, "customerId": customer}).to_string();
    let (_, answer) = ps.mpp_raw("/api/v1/qr/scan", &headers, &body).await;
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(v["result"]["resultCode"], "SUCCESS", "{answer}");
    v["payment"]["paymentId"]
        .as_str()
        .or(v["refund"]["refundId"].as_str())
        .expect("an id")
        .to_owned()
}

/// notifyPayment SUCCESS; returns the receipt link.
async fn notify(ps: &TestPs, payment_id: &str, customer: &str, amount: Option<&str>) -> String {
    let body = notify_body(payment_id, customer, "SUCCESS", amount);
    let (_, answer) = ps
        .mpp_call("/api/v1/qr/notifyPayment", "demobank", "n", &body)
        .await;
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    answer["linkReceipt"]
        .as_str()
        .expect("a receipt link")
        .to_owned()
}

#[tokio::test]
async fn payment_and_refund_receipts_in_both_languages() {
    let ps = ps_on_the_first_of_december().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1500).await;
    // A Kazakh customer's MPP: the link it gets is still the plain one.
    let payment_id = scan_in(&ps, &qr, "CUST777", Some("kk-KZ")).await;
    let link = notify(&ps, &payment_id, "CUST777", None).await;
    let common = [
        "990340001234",
        "Demo Coffee (Абай, 10)",
        "пр. Абая, 10",
        "Алматы",
        "1 500,00 ₸",
        "01.12.2030 11:43",
        &id.to_string(),
        &format!("M-{id}"),
        "@media print",
    ];
    let (ru, kk) = both_languages(&link).await;
    assert_public_page_headers(&link).await;
    assert_has(&ru, &common);
    assert_has(
        &ru,
        &[
            "Чек об оплате",
            "Продавец",
            "БИН",
            "Торговая точка",
            "Дата и время",
            "Оплачено",
        ],
    );
    assert_has(&kk, &common);
    assert_has(
        &kk,
        &[
            "Төлем түбіртегі",
            "Сатушы",
            "БСН",
            "Сауда нүктесі",
            "Күні мен уақыты",
            "Төленді",
        ],
    );
    for receipt in [&ru, &kk] {
        assert_lacks(receipt, &["CUST777", "1500.00", "2030-12-01T", "+05:00"]);
    }
    // A refund's receipt, as the MPP is given it.
    let body = json!({"DeviceToken": device, "QrPaymentId": id, "Amount": 1234.5, "OrganizationBin": "990340001234"});
    let (_, refund) = ps
        .pos("POST", "/r3/v01/payment/return", API_KEY, Some(&body))
        .await;
    let refund_id = refund["Data"]["ReturnOperationId"].as_i64().expect("an id");
    ps.wait_until("the MPP is credited", || async {
        mpp.first_body(&refund_id.to_string()).is_some()
    })
    .await;
    let sent = mpp.first_body(&refund_id.to_string()).expect("sent");
    let refund_link = sent["linkReceipt"].as_str().expect("a link").to_owned();
    ps.wait_until("the refund is recorded", || {
        let refund_link = refund_link.clone();
        async move { page(&refund_link).await.1.contains("Возвращено") }
    })
    .await;
    let (ru, kk) = both_languages(&refund_link).await;
    let refund_common = ["1 234,50 ₸", &refund_id.to_string(), &id.to_string()];
    assert_has(&ru, &refund_common);
    assert_has(&ru, &["Чек возврата", "Покупка", "Возвращено", ".12.2030 "]);
    assert_has(&kk, &refund_common);
    assert_has(&kk, &["Қайтару түбіртегі", "Сатып алу", "Қайтарылды"]);
    for receipt in [&ru, &kk] {
        assert_lacks(receipt, &["1234.50", "CUST777", "+05:00"]);
    }
    // Only the unguessable link opens a receipt: not the operation's id, not a made-up token.
    for bad in [
        format!("id={id}"),
        format!("id={}", "0".repeat(32)),
        format!("id={}", "zz".repeat(16)),
        "locale=kk".to_owned(),
        String::new(),
    ] {
        let (status, text) = page(&format!("{}/receipt?{bad}", ps.url)).await;
        assert_eq!(status, 404, "{bad}");
        // A page in the language asked for, not a bare line of English.
        let (lang, said) = if bad.contains("locale=kk") {
            ("kk", "Түбіртек табылмады.")
        } else {
            ("ru", "Чек не найден.")
        };
        assert!(
            text.contains(&format!("<html lang=\"{lang}\"")) && text.contains(said),
            "{bad}: {text}"
        );
    }
    assert!(ru.contains("<html lang=\"ru\"") && kk.contains("<html lang=\"kk\""));
}

#[tokio::test]
async fn a_custom_receipt_shows_the_service_and_the_values_entered() {
    let ps = TestPs::start().await;
    let payment_id = scan_in(&ps, PARKING_QR, "C1", Some("kk-KZ")).await;
    let body = json!({"paymentId": payment_id, "serviceId": 2862,
        "parameters": [{"id": 3932, "value": "777ABC02"}, {"id": 3933, "value": "3h"}]});
    let (_, checkout) = ps
        .mpp_call("/api/v1/qr/checkout", "demobank", "c", &body)
        .await;
    assert_eq!(result_code(&checkout), "SUCCESS", "{checkout}");
    let link = notify(&ps, &payment_id, "C1", Some("800.00")).await;
    let (ru, kk) = both_languages(&link).await;
    assert_has(
        &ru,
        &[
            "Demo Parking",
            "Услуга",
            "Парковка",
            "Госномер",
            "777ABC02",
            "Время стоянки",
            "3 часа",
            "800,00 ₸",
            "Оплачено",
        ],
    );
    assert_has(
        &kk,
        &[
            "Қызмет",
            "Тұрақ",
            "Мемлекеттік нөмір",
            "777ABC02",
            "Тұру уақыты",
            "3 сағат",
            "800,00 ₸",
            "Төленді",
        ],
    );
    // The option is shown by its label, not by its key.
    assert_lacks(&ru, &[">3h<"]);
    // A Dynamic QR's receipt has no service row.
    let device = ps.device("POS-1").await;
    let (qr, _) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    let (ru, _) = both_languages(&notify(&ps, &payment_id, "C1", None).await).await;
    assert_lacks(&ru, &["Услуга"]);
}

#[tokio::test]
async fn the_payment_link_page_says_where_the_purchase_stands() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (_, link) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create-link",
            API_KEY,
            Some(&json!({"DeviceToken": device, "Amount": 2500})),
        )
        .await;
    let url = link["Data"]["PaymentLink"]
        .as_str()
        .expect("a link")
        .to_owned();
    let codes = ["QrTokenCreated", "Wait", "Processed", "Error"];
    assert_public_page_headers(&url).await;
    let (status, ru) = page(&url).await;
    assert_eq!(status, 200);
    assert_has(
        &ru,
        &[
            "2 500,00 ₸",
            "Отсканируйте QR-код в приложении банка",
            "/qr/image.svg?token=",
            "lang=\"ru\"",
        ],
    );
    assert_lacks(&ru, &codes);
    let (_, kk) = page(&format!("{url}?locale=kk")).await;
    assert_has(
        &kk,
        &[
            "2 500,00 ₸",
            "QR-кодты банк қосымшасында сканерлеңіз",
            "lang=\"kk\"",
        ],
    );
    let payment_id = scan_id(&ps, "demobank", &url, "C1").await;
    assert_has(&page(&url).await.1, &["Подтвердите оплату"]);
    assert_has(
        &page(&format!("{url}?locale=kk")).await.1,
        &["Төлемді банк қосымшасында растаңыз"],
    );
    notify(&ps, &payment_id, "C1", None).await;
    let (_, ru) = page(&url).await;
    assert_has(&ru, &["Оплачено"]);
    // Paid: nothing left to scan.
    assert_lacks(&ru, &codes);
    assert_lacks(&ru, &["/qr/image.svg"]);
    assert_has(
        &page(&format!("{url}?locale=ru&locale=kk")).await.1,
        &["Төленді"],
    );
}

/// Places a refund of 1 tenge of `purchase`, with a return QR scanned in `qr_locale` (r2) or
/// without one (r3); returns the refund's id.
async fn refund_of(ps: &TestPs, device: &str, purchase: i64, qr_locale: Option<&str>) -> i64 {
    let mut body = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": 1});
    let path = match qr_locale {
        Some(locale) => {
            let (_, created) = ps
                .pos(
                    "POST",
                    "/r2/v01/return/create",
                    API_KEY,
                    Some(&json!({"DeviceToken": device})),
                )
                .await;
            let token = created["Data"]["QrToken"].as_str().expect("a token");
            scan_in(ps, token, "C1", Some(locale)).await;
            body["QrReturnId"] = created["Data"]["QrReturnId"].clone();
            "/r2/v01/payment/return"
        }
        None => {
            body["OrganizationBin"] = json!("990340001234");
            "/r3/v01/payment/return"
        }
    };
    let (_, placed) = ps.pos("POST", path, API_KEY, Some(&body)).await;
    placed["Data"]["ReturnOperationId"]
        .as_i64()
        .unwrap_or_else(|| panic!("a refund: {placed}"))
}

#[tokio::test]
async fn refunds_carry_the_regulations_headers_in_the_identifying_scans_language() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    // Purchases scanned in Kazakh, in Russian, and without X-Locale (Russian by default).
    let mut purchases = Vec::new();
    for locale in [Some("kk-KZ"), Some("ru-RU"), None] {
        let (qr, id) = ps.dynamic_qr(&device, 100).await;
        let payment_id = scan_in(&ps, &qr, "C1", locale).await;
        notify(&ps, &payment_id, "C1", None).await;
        purchases.push(id);
    }
    let (kk_paid, ru_paid, plain_paid) = (purchases[0], purchases[1], purchases[2]);
    // A purchase paid before the PS recorded scan languages (migration 9): nothing to go by.
    let (qr, old_paid) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_in(&ps, &qr, "C1", Some("kk-KZ")).await;
    notify(&ps, &payment_id, "C1", None).await;
    PsBooks::open_for_writing(&ps.db_path()).execute(
        "UPDATE payments SET scan_locale = NULL WHERE id = ?1",
        &[&old_paid],
    );
    let expected = [
        // Without a return QR: the purchase's scan.
        (refund_of(&ps, &device, kk_paid, None).await, "kk-KZ"),
        (refund_of(&ps, &device, ru_paid, None).await, "ru-RU"),
        (refund_of(&ps, &device, plain_paid, None).await, "ru-RU"),
        (refund_of(&ps, &device, old_paid, None).await, "ru-RU"),
        // With one: the return QR's scan, whatever the purchase's.
        (
            refund_of(&ps, &device, ru_paid, Some("kk-KZ")).await,
            "kk-KZ",
        ),
        (
            refund_of(&ps, &device, kk_paid, Some("ru-RU")).await,
            "ru-RU",
        ),
    ];
    ps.wait_until("every refund is delivered", || async {
        mpp.credited().len() == expected.len()
    })
    .await;
    let calls = mpp.calls();
    let headers = mpp.headers();
    for (refund_id, locale) in expected {
        let at = calls
            .iter()
            .position(|c| c["refundId"].as_str() == Some(refund_id.to_string().as_str()))
            .expect("called");
        let h = &headers[at];
        let header = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-locale"), locale, "refund {refund_id}");
        assert_eq!(header("x-caller-name"), "tolem", "the PS's name");
        assert_eq!(header("x-request-id"), format!("refund-{refund_id}"));
        assert_eq!(header("content-type"), "application/json");
        // The link carries no locale; the MPP appends its customer's (DECISIONS 35).
        let link = calls[at]["linkReceipt"].as_str().expect("a link");
        let (ru, kk) = both_languages(link).await;
        assert_has(&ru, &["Чек возврата", "1,00 ₸"]);
        assert_has(&kk, &["Қайтару түбіртегі", "1,00 ₸"]);
    }
}
