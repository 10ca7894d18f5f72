//! The wallet in the browser (`/wallet/`, `tolem_mpp::web`) as the sandbox's demobank serves it:
//! the page and its assets over real HTTP, the café's Static QR read from the PS's picture of it
//! by the MPP's `/app/v1/qr/decode`, and the token it gives paid through the app API the page's
//! script calls. The flows in a real browser are the browser tests'.

use serde_json::{Value, json};

use crate::reference_mpp::ps_and_mpp;

const CAFE_STATIC_QR: &str = "TOLEM-STATIC-CAFE-1001";

#[tokio::test]
async fn demobank_serves_the_wallet_and_reads_the_cafes_qr_picture() {
    let (ps, bank) = ps_and_mpp().await;
    let http = reqwest::Client::new();

    for (path, content_type) in [
        ("/wallet/", "text/html"),
        ("/wallet/app.js", "text/javascript"),
        ("/wallet/style.css", "text/css"),
    ] {
        let response = http
            .get(format!("{}{path}", bank.url))
            .send()
            .await
            .expect("the MPP answers");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert!(header("content-security-policy").contains("script-src 'self'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cache-control"), "no-store");
    }

    let picture = http
        .get(format!("{}/qr/image.png", ps.url))
        .query(&[("token", CAFE_STATIC_QR)])
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(picture.status().as_u16(), 200);
    let picture = picture.bytes().await.expect("a picture");
    let decoded = http
        .post(format!("{}/app/v1/qr/decode", bank.url))
        .header("content-type", "image/png")
        .body(picture)
        .send()
        .await
        .expect("the MPP answers");
    assert_eq!(decoded.status().as_u16(), 200);
    let decoded: Value = decoded.json().await.expect("JSON");
    assert_eq!(decoded, json!({ "qrCode": CAFE_STATIC_QR }));

    // What the page does next with it: scan, then pay 500 ₸ as the customer typed it.
    let scan: Value = http
        .post(format!("{}/app/v1/scan", bank.url))
        .json(&json!({ "customer_id": "C1", "qr_code": decoded["qrCode"], "locale": "kk" }))
        .send()
        .await
        .expect("the MPP answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(scan["kind"], "Static", "{scan}");
    let paid: Value = http
        .post(format!("{}/app/v1/confirm", bank.url))
        .json(&json!({
            "customer_id": "C1", "payment_id": scan["payment_id"], "amount": "500", "locale": "kk"
        }))
        .send()
        .await
        .expect("the MPP answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(paid["status"], "paid", "{paid}");
    assert!(
        paid["receipt"]
            .as_str()
            .is_some_and(|r| r.starts_with(&ps.url)),
        "{paid}"
    );
    assert_eq!(bank.balance("C1").await, 5_000_000 - 50_000);

    // A file that is not a picture is refused in the wallet's style, and in its language.
    let refused = http
        .post(format!("{}/app/v1/qr/decode?locale=kk", bank.url))
        .body("not a picture")
        .send()
        .await
        .expect("the MPP answers");
    assert_eq!(refused.status().as_u16(), 400);
    let refused: Value = refused.json().await.expect("JSON");
    assert_eq!(refused["code"], "image_unreadable", "{refused}");
}
