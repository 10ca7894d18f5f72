//! The harness proved on a page the PS has always served: the receipt behind `linkReceipt`,
//! after a real payment through the sandbox (the café's till on the merchant API, C1 paying
//! through demobank's app API), in Russian and in Kazakh.

use crate::harness::*;

#[tokio::test]
async fn the_receipt_of_a_payment_shows_in_chromium_in_russian_and_kazakh() {
    let sandbox = Sandbox::start();
    let device = sandbox.device("BROWSER-RECEIPT").await;
    let (qr, _) = sandbox.dynamic_qr(&device, 1500).await;
    let paid = sandbox.pay("C1", &qr).await;
    let link = paid["receipt"].as_str().expect("a receipt link").to_owned();
    assert!(link.starts_with(&sandbox.ps), "{link}");

    let driver = Driver::start().await;
    let page = driver.browser(PHONE).await;
    page.goto(&link).await;
    assert_eq!(page.wait_text("h1").await, "Чек об оплате");
    let table = page.text("table").await;
    assert!(table.contains("1 500,00 ₸"), "{table}");
    assert!(table.contains("Оплачено"), "{table}");
    assert!(table.contains("Demo Coffee"), "{table}");
    shot(&page, "receipt").await;

    page.goto(&format!("{link}&locale=kk")).await;
    assert_eq!(page.wait_text("h1").await, "Төлем түбіртегі");
    let table = page.text("table").await;
    assert!(
        table.contains("Төленді") && table.contains("1 500,00 ₸"),
        "{table}"
    );
    shot(&page, "receipt-kk").await;
    page.close().await;
}
