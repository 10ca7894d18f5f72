//! The page and its assets as served, the picture-reading endpoint of the app API, and both
//! languages complete — on the MPP's real router, without a network.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::*;
use crate::app_api::{QR_DECODE_PATH, QR_IMAGE_BYTES_MAX};
use crate::config::MppConfig;
use crate::flows::Mpp;

/// The reference MPP's router on a database of its own (the PS is never called here).
fn app() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = MppConfig {
        database: dir.path().join("mpp.db"),
        ..MppConfig::default()
    };
    let mpp = Mpp::open(&config, tolem_sdk::RetryPolicy::default()).expect("the MPP opens");
    (crate::app_api::router(mpp), dir)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.expect("a body");
    (parts.status, parts.headers, bytes.to_vec())
}

async fn get(app: &Router, path: &str) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    send(
        app,
        Request::get(path).body(Body::empty()).expect("a request"),
    )
    .await
}

async fn decode(app: &Router, query: &str, bytes: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let request = Request::post(format!("{QR_DECODE_PATH}{query}"))
        .header(header::CONTENT_TYPE, "image/png")
        .body(Body::from(bytes))
        .expect("a request");
    let (status, headers, body) = send(app, request).await;
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "{status}"
    );
    (status, serde_json::from_slice(&body).expect("a JSON body"))
}

fn png_of_code(text: &str) -> Vec<u8> {
    let code = qrcode::QrCode::new(text.as_bytes()).expect("a code");
    let picture = code
        .render::<image::Luma<u8>>()
        .min_dimensions(320, 320)
        .build();
    let mut bytes = std::io::Cursor::new(Vec::new());
    picture
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("a PNG");
    bytes.into_inner()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types_and_headers() {
    let (app, _dir) = app();
    for (path, content_type) in [
        ("/wallet/", "text/html; charset=utf-8"),
        ("/wallet/app.js", "text/javascript; charset=utf-8"),
        ("/wallet/style.css", "text/css; charset=utf-8"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let header = |name: header::HeaderName| {
            headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header(header::CONTENT_TYPE), content_type, "{path}");
        assert_eq!(header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(header::REFERRER_POLICY), "no-referrer");
        assert_eq!(header(header::CACHE_CONTROL), "no-store");
        let policy = header(header::CONTENT_SECURITY_POLICY);
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(!body.is_empty(), "{path}");
    }
    let (status, headers, _) = get(&app, "/wallet").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        headers.get(header::LOCATION).map(|v| v.as_bytes()),
        Some(&b"/wallet/"[..])
    );
}

#[tokio::test]
async fn the_page_carries_its_texts_and_the_ids_the_browser_tests_drive() {
    let (app, _dir) = app();
    let (_, _, body) = get(&app, "/wallet/").await;
    let page = String::from_utf8(body).expect("UTF-8");
    assert!(!page.contains("__CONFIG__"));
    // Nothing from elsewhere: every script and style is this origin's.
    assert!(!page.contains("http://") && !page.contains("https://"));
    let start = page.find(r#"id="config">"#).expect("the config block") + 12;
    let end = start + page[start..].find("</script>").expect("its end");
    let config: serde_json::Value = serde_json::from_str(&page[start..end]).expect("JSON");
    assert_eq!(config["zone"], "Asia/Almaty");
    assert_eq!(config["texts"]["kk"]["pay"], "Төлеу");
    assert_eq!(config["texts"]["ru"]["due"], "К оплате: {amount}");
    for id in [
        "locale-ru",
        "locale-kk",
        "customer",
        "sign-in",
        "sign-out",
        "balance",
        "token",
        "scan",
        "image",
        "camera",
        "merchant",
        "due",
        "pay-amount",
        "service-form",
        "pay",
        "back",
        "result",
        "receipt",
        "history",
        "notifications",
        "refresh",
    ] {
        assert!(page.contains(&format!(r#"id="{id}""#)), "#{id}");
    }
}

#[test]
fn both_languages_are_complete() {
    let (ru, kk) = (texts(Locale::Ru), texts(Locale::Kk));
    assert_eq!(ru.keys().collect::<Vec<_>>(), kk.keys().collect::<Vec<_>>());
    for (key, text) in ru.iter().chain(kk.iter()) {
        assert!(!text.trim().is_empty(), "{key}");
        // A sentinel left in means the wording changed under the template.
        assert!(
            !text.contains("987") && !text.contains('\u{1}'),
            "{key}: {text}"
        );
    }
    // Every placeholder of one language is in the other, so the script fills both alike.
    let placeholders = |text: &str| {
        let mut names: Vec<String> = text
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        names.sort();
        names
    };
    for (key, text) in &ru {
        assert_eq!(placeholders(text), placeholders(&kk[key]), "{key}");
    }
    // The script's own lookups of the wallet's wordings.
    for key in [
        "paid",
        "rejected",
        "cancelled",
        "notice_refunded",
        "receipt",
        "mpp_error",
    ] {
        assert!(ru.contains_key(key), "{key}");
    }
    assert_eq!(
        kk["notice_refunded"],
        "Қайтару {amount}, түбіртек: {receipt}"
    );
    assert_eq!(ru["receipt"], "Чек: {receipt}");
    assert_eq!(ru["merchant"], "Продавец: {name} (MCC {mcc})");
    assert_eq!(kk["until"], "Растау мерзімі: {time}");
}

#[test]
fn every_key_the_script_uses_is_in_the_table() {
    let ru = texts(Locale::Ru);
    let script = APP_JS;
    let html_keys: Vec<&str> = INDEX_HTML
        .split("data-t=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    for key in html_keys {
        assert!(ru.contains_key(key), "index.html data-t={key}");
    }
    // The keys the script names directly (say/show/t), by their calls.
    for call in [
        "say('",
        "show($('due'), '",
        " t('",
        "(t('",
        "show(element, '",
        "show(li, '",
    ] {
        for rest in script.split(call).skip(1) {
            let key = rest.split('\'').next().unwrap_or_default();
            assert!(ru.contains_key(key), "app.js {call}{key}'");
        }
    }
}

#[tokio::test]
async fn a_picture_of_a_code_is_read() {
    let (app, _dir) = app();
    let (status, body) = decode(&app, "", png_of_code("TOLEM-STATIC-CAFE-1001")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        serde_json::json!({ "qrCode": "TOLEM-STATIC-CAFE-1001" })
    );
}

#[tokio::test]
async fn what_is_not_a_readable_code_is_refused_in_the_customers_language() {
    let (app, _dir) = app();
    let (status, body) = decode(&app, "?locale=kk", b"not a picture".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "image_unreadable");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Суретті оқу мүмкін болмады")),
        "{body}"
    );
    let (status, body) = decode(&app, "", Vec::new()).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &"image_unreadable".into())
    );

    let blank = image::GrayImage::from_pixel(200, 200, image::Luma([255]));
    let mut png = std::io::Cursor::new(Vec::new());
    blank
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("a PNG");
    let (status, body) = decode(&app, "?locale=ru", png.into_inner()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "no_qr_code");
    assert_eq!(body["error"], "На изображении не найден QR-код.");

    let mut large = png_of_code("TOLEM-STATIC-CAFE-1001");
    large.resize(QR_IMAGE_BYTES_MAX + 1, 0);
    let (status, body) = decode(&app, "", large).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "too_large");
}
