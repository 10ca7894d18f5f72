//! The cashier screen (`/pos/`, issue 14) against a real `tolem serve` with two plain listeners:
//! the page and its assets come with their content types and the screens' headers (CSP of 'self'
//! only, no-store, nosniff, no referrer) on the merchant surface's listener, and the other
//! listener answers `/pos/` as an unknown path of its own. The page's one call of its own,
//! `/pos/organization`, names the key's BIN; a return QR has a picture as a payment QR does. The
//! flows in a browser are the browser tests'.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::harness::{API_KEY, OTHER_API_KEY};
use crate::listeners::{Served, answer};

const LISTENERS: &str = r#"
[[listeners]]
address = "127.0.0.1:0"
surfaces = ["merchant"]

[[listeners]]
address = "127.0.0.1:0"
surfaces = ["mpp", "admin"]
"#;

/// (status, headers, body) of a GET.
async fn get(url: String, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new().get(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("a body").to_vec();
    (status, headers, body)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_cashier_screen_is_served_on_the_merchant_surface_only() {
    let ps = Served::start(tempfile::tempdir().expect("dir"), LISTENERS, &[]);
    let merchant = ps.url("merchant").to_owned();
    let other = ps.url("mpp, admin").to_owned();

    for (path, content_type, holds) in [
        ("/pos/", "text/html; charset=utf-8", "id=\"api-key\""),
        ("/pos", "text/html; charset=utf-8", "/pos/cashier.js"),
        (
            "/pos/cashier.js",
            "text/javascript; charset=utf-8",
            "/r1/v01/qr/create",
        ),
        ("/pos/cashier.css", "text/css; charset=utf-8", "#0b6e4f"),
    ] {
        let (status, headers, body) = get(format!("{merchant}{path}"), &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        let csp = header(&headers, "content-security-policy");
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("img-src 'self' data: blob:"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header(&headers, "cache-control"), "no-store", "{path}");
        assert_eq!(
            header(&headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer", "{path}");
        let text = String::from_utf8(body).expect("text");
        assert!(text.contains(holds), "{path} holds {holds}");
    }
    // The page carries both languages' texts, and no address outside the PS.
    let (_, _, page) = get(format!("{merchant}/pos/"), &[]).await;
    let page = String::from_utf8(page).expect("text");
    assert!(
        page.contains("\"kk\"") && page.contains("Кассаны тіркеу"),
        "{page}"
    );
    assert!(!page.contains("http://") && !page.contains("https://"));

    // The other listener: an unknown path of its own, not the page.
    let unknown = get(format!("{other}/api/v1/nope"), &[]).await;
    for path in ["/pos/", "/pos/cashier.js", "/pos/organization"] {
        let got = get(format!("{other}{path}"), &[("api-key", API_KEY)]).await;
        assert_eq!((got.0, &got.2), (unknown.0, &unknown.2), "{path} elsewhere");
        assert!(got.1.get("content-security-policy").is_none(), "{path}");
    }

    // The key's organization, which r3's refund without the customer names.
    let organization = |key: &'static str, language: &'static str| {
        let url = format!("{merchant}/pos/organization");
        async move {
            let (status, headers, body) =
                get(url, &[("api-key", key), ("accept-language", language)]).await;
            assert_eq!(status, 200);
            assert_eq!(header(&headers, "cache-control"), "no-store");
            serde_json::from_slice::<Value>(&body).expect("JSON")
        }
    };
    let ours = organization(API_KEY, "ru").await;
    assert_eq!(ours["StatusCode"], 0, "{ours}");
    assert_eq!(ours["Data"]["OrganizationBin"], "990340001234", "{ours}");
    let theirs = organization(OTHER_API_KEY, "ru").await;
    assert_eq!(
        theirs["Data"]["OrganizationBin"], "990340005678",
        "{theirs}"
    );
    // Two keys name no one organization.
    let (_, _, twice) = get(
        format!("{merchant}/pos/organization"),
        &[("api-key", API_KEY), ("api-key", OTHER_API_KEY)],
    )
    .await;
    let twice: Value = serde_json::from_slice(&twice).expect("JSON");
    assert_eq!(twice["StatusCode"], -10000, "{twice}");
    let wrong = organization("test_nobody", "kk").await;
    assert_eq!(wrong["StatusCode"], -10000, "{wrong}");
    assert!(
        wrong["Message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Аутентификация қатесі")),
        "{wrong}"
    );

    // A return QR is drawn as a payment QR is: the page shows it to the customer.
    let http = reqwest::Client::new();
    let key = [("api-key", API_KEY)];
    let (_, body) = answer(
        &http,
        "POST",
        format!("{merchant}/r1/v01/device/register"),
        &key,
        Some(json!({"DeviceId": "WEB-1", "TradePointId": 1001})),
    )
    .await;
    let device: Value = serde_json::from_str(&body).expect("JSON");
    let token = device["Data"]["DeviceToken"].as_str().expect("a token");
    let (_, body) = answer(
        &http,
        "POST",
        format!("{merchant}/r2/v01/return/create"),
        &key,
        Some(json!({"DeviceToken": token})),
    )
    .await;
    let created: Value = serde_json::from_str(&body).expect("JSON");
    let qr = created["Data"]["QrToken"].as_str().expect("a return QR");
    let (status, headers, png) = get(format!("{merchant}/qr/image.png?token={qr}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(png.starts_with(b"\x89PNG"));
    let (status, _, _) = get(format!("{merchant}/qr/image.png?token=1{qr}"), &[]).await;
    assert_eq!(status, 404, "a token nobody issued");
}
