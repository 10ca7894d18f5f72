//! Receipt pages behind `linkReceipt` (SPEC 4.3–4.4): every field a receipt needs, in Russian and
//! in Kazakh, for a payment and a refund; nothing more personal; only through the unguessable link.

use serde_json::{Value, json};

use crate::harness::*;
use crate::receiver::Receiver;

async fn page(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.expect("the PS answers");
    (resp.status().as_u16(), resp.text().await.expect("a body"))
}

fn assert_has(page: &str, parts: &[&str]) {
    for part in parts {
        assert!(page.contains(part), "{part:?} missing from {page}");
    }
}

#[tokio::test]
async fn payment_and_refund_receipts_in_both_languages() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1500).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "CUST777").await;
    let body = notify_body(&payment_id, "CUST777", "SUCCESS", None);
    let (_, answer) = ps
        .mpp_call("/api/v1/qr/notifyPayment", "demobank", "n", &body)
        .await;
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    let link = answer["linkReceipt"].as_str().expect("a receipt link");
    let common = [
        "990340001234",
        "Demo Coffee (Абай, 10)",
        "пр. Абая, 10",
        "Алматы",
        "1500.00",
        &id.to_string(),
        &format!("M-{id}"),
        "+05:00",
        "@media print",
    ];
    let (status, ru) = page(link).await;
    assert_eq!(status, 200);
    assert_has(&ru, &common);
    assert_has(
        &ru,
        &[
            "Чек об оплате",
            "Продавец",
            "БИН",
            "Торговая точка",
            "Оплачено",
        ],
    );
    let (_, kk) = page(&format!("{link}&locale=kk")).await;
    assert_has(&kk, &common);
    assert_has(
        &kk,
        &[
            "Төлем түбіртегі",
            "Сатушы",
            "БСН",
            "Сауда нүктесі",
            "Төленді",
        ],
    );
    for receipt in [&ru, &kk] {
        assert!(!receipt.contains("CUST777"), "no customer id on a receipt");
    }
    // A refund's receipt, as the MPP is given it.
    let body = json!({"DeviceToken": device, "QrPaymentId": id, "Amount": 400, "OrganizationBin": "990340001234"});
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
    let (_, ru) = page(&refund_link).await;
    assert_has(
        &ru,
        &[
            "Чек возврата",
            "400.00",
            &refund_id.to_string(),
            &id.to_string(),
            "Возвращено",
        ],
    );
    let (_, kk) = page(&format!("{refund_link}&locale=kk")).await;
    assert_has(
        &kk,
        &["Қайтару түбіртегі", "400.00", "Қайтарылды", "Сатып алу"],
    );
    // Only the unguessable link opens a receipt: not the operation's id, not a made-up token.
    for bad in [id.to_string(), "0".repeat(32), "zz".repeat(16)] {
        let (status, _) = page(&format!("{}/receipt?id={bad}", ps.url)).await;
        assert_eq!(status, 404, "{bad}");
    }
}
