//! The cashier screen (issue 14): a POS in the browser at `/pos/`, on the merchant surface. A
//! static page whose JavaScript speaks the merchant API as any POS does (same origin, the
//! organization's `Api-Key`), built into the binary: no build step, nothing from outside.
//!
//! Besides the page and its two assets there is one call of its own, `GET /pos/organization`:
//! the BIN and name of the key's organization. The merchant API never tells a POS its own BIN (a
//! POS is configured with it), but r3's refund without the customer must name it in
//! `OrganizationBin`, and a cashier signing in by key should not have to type it.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode as HttpStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tolem_wire::Locale;
use tolem_wire::merchant::{Envelope, StatusCode};

use super::envelope;
use crate::state::AppState;

const PAGE_TEMPLATE: &str = include_str!("cashier/index.html");
const SCRIPT: &str = include_str!("cashier/cashier.js");
const STYLE: &str = include_str!("cashier/cashier.css");
/// The page's texts in Russian and Kazakh, one table (`{"ru": {key: text}, "kk": {…}}`), inlined
/// into the page so that the script has them before its first paint.
const TEXTS: &str = include_str!("cashier/texts.json");
/// Where the page template takes the texts.
const TEXTS_SLOT: &str = "{{TEXTS}}";

/// The page with its texts in place; built once.
static PAGE: LazyLock<String> = LazyLock::new(|| PAGE_TEMPLATE.replace(TEXTS_SLOT, TEXTS));

/// Where the sign-in hint points a sandbox's user to its test key: only the sandbox has one.
const SANDBOX_HINTS: [&str; 2] = [
    " Ключ песочницы — в docs/sandbox.md.",
    " Құмсалғыштың кілті — docs/sandbox.md ішінде.",
];

/// The page of a PS that is not a sandbox: the same, without the sandbox's hint.
static PAGE_OUTSIDE_SANDBOX: LazyLock<String> = LazyLock::new(|| {
    let texts = SANDBOX_HINTS
        .iter()
        .fold(TEXTS.to_owned(), |texts, hint| texts.replace(hint, ""));
    PAGE_TEMPLATE.replace(TEXTS_SLOT, &texts)
});

/// Only this origin's scripts, styles, pictures (the QR is `/qr/image.png`) and calls; no frames,
/// no forms posted elsewhere. `data:`/`blob:` pictures are allowed for a QR drawn in the page.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; \
                   style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/pos", get(page))
        .route("/pos/cashier.js", get(script))
        .route("/pos/cashier.css", get(style))
        .route("/pos/organization", get(organization))
}

/// An asset with the headers every screen sends: it shows money and tokens, so nothing is
/// cached; nothing is sniffed; no address leaks in a referrer.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (HttpStatus::OK, body).into_response();
    secure(response.headers_mut(), content_type);
    response
}

fn secure(headers: &mut HeaderMap, content_type: &'static str) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

async fn page(app: axum::extract::State<AppState>) -> Response {
    let page = if app.config.sandbox {
        PAGE.as_str()
    } else {
        PAGE_OUTSIDE_SANDBOX.as_str()
    };
    asset("text/html; charset=utf-8", page)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OrganizationOfKey {
    organization_bin: String,
    organization_name: String,
}

/// The key's organization in the merchant API's envelope: `-10000` for a missing or unknown key,
/// in the language of `Accept-Language`, as the merchant API answers.
async fn organization(app: axum::extract::State<AppState>, headers: HeaderMap) -> Response {
    let locale = Locale::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let catalog = app.catalog.get();
    // Two keys that differ name no one organization, as on the merchant API.
    let found = super::identity::sent_once(&headers, "api-key")
        .ok()
        .flatten()
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .and_then(|k| catalog.organization_by_api_key(k));
    let mut response = match found {
        Some(org) => envelope(
            HttpStatus::OK,
            &Envelope::ok(OrganizationOfKey {
                organization_bin: org.bin.clone(),
                organization_name: org.name.clone(),
            }),
        ),
        None => envelope(
            HttpStatus::OK,
            &Envelope::error(StatusCode::AuthenticationFailed, locale, Some("Api-Key")),
        ),
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Table = BTreeMap<String, BTreeMap<String, String>>;

    #[test]
    fn only_a_sandbox_points_to_its_test_key() {
        for hint in SANDBOX_HINTS {
            assert!(PAGE.contains(hint), "{hint}");
            assert!(!PAGE_OUTSIDE_SANDBOX.contains(hint), "{hint}");
        }
        assert!(PAGE_OUTSIDE_SANDBOX.contains("Ключ выдаёт оператор платёжной системы."));
    }

    fn texts() -> Table {
        serde_json::from_str(TEXTS).expect("texts.json is a table of languages")
    }

    #[test]
    fn both_languages_say_every_text() {
        let table = texts();
        let languages: Vec<&str> = table.keys().map(String::as_str).collect();
        assert_eq!(languages, ["kk", "ru"]);
        let (ru, kk) = (&table["ru"], &table["kk"]);
        let only_ru: Vec<_> = ru.keys().filter(|k| !kk.contains_key(*k)).collect();
        let only_kk: Vec<_> = kk.keys().filter(|k| !ru.contains_key(*k)).collect();
        assert!(only_ru.is_empty(), "missing in kk: {only_ru:?}");
        assert!(only_kk.is_empty(), "missing in ru: {only_kk:?}");
        for (locale, texts) in &table {
            for (key, text) in texts {
                assert!(!text.trim().is_empty(), "{locale}.{key} is empty");
            }
        }
    }

    /// Every key the page and the script name is in the table, so no text shows as its key.
    #[test]
    fn every_text_the_page_names_is_in_the_table() {
        let table = texts();
        let ru = &table["ru"];
        let mut named = Vec::new();
        for marker in ["data-t=\"", "data-t-label=\"", "data-t-placeholder=\""] {
            for piece in PAGE_TEMPLATE.split(marker).skip(1) {
                named.push(piece.split('"').next().unwrap_or_default().to_owned());
            }
        }
        // The script's texts are `tr("key")`; `tr` preceded by a letter is another function.
        for (at, _) in SCRIPT.match_indices("tr(\"") {
            let before = SCRIPT[..at].chars().next_back().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' {
                continue;
            }
            let rest = &SCRIPT[at + "tr(\"".len()..];
            named.push(rest.split('"').next().unwrap_or_default().to_owned());
        }
        assert!(named.len() > 20, "the page names its texts: {named:?}");
        let missing: Vec<_> = named.iter().filter(|k| !ru.contains_key(*k)).collect();
        assert!(missing.is_empty(), "not in texts.json: {missing:?}");
    }

    /// The texts are inlined into a `<script type="application/json">`: a `</` in them would end
    /// that element early.
    #[test]
    fn the_texts_fit_in_the_page() {
        assert!(!TEXTS.contains("</"));
        assert_eq!(PAGE_TEMPLATE.matches(TEXTS_SLOT).count(), 1);
        assert!(PAGE.contains("\"kk\""));
    }
}
