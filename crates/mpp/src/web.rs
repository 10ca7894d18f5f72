//! The customer's wallet in the browser, at `/wallet/`: one phone-sized page whose script speaks
//! the app API ([`crate::app_api`]) on the same origin — what `tolem wallet` does in a terminal.
//! The page, its script and its style are built into the binary; nothing is fetched from
//! elsewhere.
//!
//! Every text the page shows is in [`texts`], sent inside the page: the wallet's own wording
//! ([`crate::wallet::text`]) where the terminal already says it, and the page's own lines beside
//! it, so that both wallets speak alike and each language is complete (a test holds it).
//!
//! Merged into the app API's router; it calls nothing itself.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tolem_wire::mpp::Merchant;
use tolem_wire::{Amount, Locale};

use crate::flows::Notice;
use crate::wallet::account::OPERATOR_TIME_ZONE;
use crate::wallet::{WalletError, text};

/// Where the page is served.
pub const WALLET_PATH: &str = "/wallet/";

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");
/// The wallet's icon (a wallet), so that a browser's request for it is not a 404.
const FAVICON_SVG: &str = include_str!("web/favicon.svg");

/// Only this origin's script, style and API; pictures of QR codes may be `data:`/`blob:`, and the
/// camera's stream plays from a `blob:`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page, its script and its style, on their paths.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(WALLET_PATH) }))
        .route(
            "/wallet",
            get(|| async { Redirect::permanent(WALLET_PATH) }),
        )
        .route(
            WALLET_PATH,
            get(|| async { asset("text/html; charset=utf-8", &PAGE) }),
        )
        .route(
            "/wallet/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/wallet/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
}

/// The page with its configuration (texts, the operator's time zone) in a JSON data block, which
/// the script reads; a data block is not run, so the policy needs no inline script.
static PAGE: LazyLock<String> = LazyLock::new(|| INDEX_HTML.replace("__CONFIG__", &config_json()));

fn asset(content_type: &'static str, body: &str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // The page shows money and QR tokens: never from a cache.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(self)"),
        ),
    ];
    (headers, body.to_owned()).into_response()
}

/// `{"zone": …, "texts": {"ru": {…}, "kk": {…}}}`, safe inside `<script type=application/json>`.
fn config_json() -> String {
    let texts: BTreeMap<&str, BTreeMap<&str, String>> = [("ru", Locale::Ru), ("kk", Locale::Kk)]
        .into_iter()
        .map(|(code, locale)| (code, texts(locale)))
        .collect();
    let config = serde_json::json!({ "zone": OPERATOR_TIME_ZONE, "texts": texts });
    // `<` written as an escape cannot close the script element, whatever a text holds.
    config.to_string().replace('<', "\\u003c")
}

/// The page's own lines: (key, Russian, Kazakh).
const PAGE_TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Кошелёк", "Әмиян"),
    (
        "customer_label",
        "Номер клиента в банке",
        "Банктегі клиент нөмірі",
    ),
    (
        "sandbox_hint",
        "В песочнице: C1 или C2 (demobank), W1 (demowallet).",
        "Құмсалғышта: C1 немесе C2 (demobank), W1 (demowallet).",
    ),
    ("sign_in", "Войти", "Кіру"),
    ("sign_out", "Выйти", "Шығу"),
    ("balance_label", "Баланс:", "Баланс:"),
    ("refresh", "Обновить", "Жаңарту"),
    ("scan_title", "Оплата по QR-коду", "QR-код бойынша төлеу"),
    ("scan", "Продолжить", "Жалғастыру"),
    (
        "image_label",
        "Или фото QR-кода (PNG, JPEG, до 4 МБ)",
        "Немесе QR-кодтың суреті (PNG, JPEG, 4 МБ-қа дейін)",
    ),
    ("camera", "Сканировать камерой", "Камерамен сканерлеу"),
    ("camera_stop", "Закрыть камеру", "Камераны жабу"),
    (
        "camera_failed",
        "Камера недоступна: {why}",
        "Камера қолжетімсіз: {why}",
    ),
    (
        "image_too_large",
        "Файл больше 4 МБ.",
        "Файл 4 МБ-тан үлкен.",
    ),
    (
        "reading_image",
        "Читаем QR-код на фото…",
        "Суреттегі QR-код оқылуда…",
    ),
    ("working", "Подождите…", "Күте тұрыңыз…"),
    ("payment_title", "Платёж", "Төлем"),
    ("checkout", "Рассчитать сумму", "Соманы есептеу"),
    ("pay", "Оплатить", "Төлеу"),
    ("back", "Назад", "Артқа"),
    ("again", "Новый платёж", "Жаңа төлем"),
    ("choose", "— выберите —", "— таңдаңыз —"),
    (
        "checked_out",
        "Сумма рассчитана. Нажмите «Оплатить» или «Назад».",
        "Сома есептелді. «Төлеу» немесе «Артқа» басыңыз.",
    ),
    (
        "pending",
        "Платёж обрабатывается; результат появится в истории.",
        "Төлем өңделуде; нәтижесі тарихта шығады.",
    ),
    (
        "refund_qr",
        "QR-код возврата{id}: кассир сейчас выберет покупку. Деньги придут на счёт, появится уведомление.",
        "Қайтару QR-коды{id}: кассир енді сатып алуды таңдайды. Ақша шотқа түседі, хабарлама шығады.",
    ),
    (
        "empty_token",
        "Введите или вставьте QR-код.",
        "QR-кодты енгізіңіз немесе қойыңыз.",
    ),
    (
        "empty_customer",
        "Введите номер клиента.",
        "Клиент нөмірін енгізіңіз.",
    ),
    (
        "fill_field",
        "Заполните поле «{name}».",
        "«{name}» өрісін толтырыңыз.",
    ),
    (
        "unreachable",
        "Банк (МПП) не отвечает. Проверьте связь и попробуйте ещё раз.",
        "Банк (МПП) жауап бермейді. Байланысты тексеріп, қайталап көріңіз.",
    ),
];

/// A value no real amount in a text is, to turn a wording of [`text`] into a template.
const AMOUNT_SENTINEL: Amount = Amount::from_tiyn(987_654_321);
/// Likewise for a receipt link.
const LINK_SENTINEL: &str = "\u{1}receipt\u{1}";

/// `render(amount)` with the amount written as `{amount}`, for the page to fill.
fn with_amount(render: impl Fn(Amount) -> String) -> String {
    render(AMOUNT_SENTINEL).replace(&text::money(AMOUNT_SENTINEL), "{amount}")
}

/// `{receipt}` where the wording has the customer's receipt link (the page adds `&locale=kk` the
/// way [`text::receipt_link`] does).
fn with_receipt(locale: Locale, wording: String) -> String {
    wording.replace(&text::receipt_link(locale, LINK_SENTINEL), "{receipt}")
}

/// Every text of the page in `locale`, by key; placeholders are `{name}`.
pub fn texts(locale: Locale) -> BTreeMap<&'static str, String> {
    let colonless = |s: String| s.trim().trim_end_matches(':').to_owned();
    let merchant = Merchant {
        merchant_id: String::new(),
        merchant_name: "{name}".to_owned(),
        merchant_mcc: "{mcc}".to_owned(),
        author_type: None,
    };
    let mut texts: BTreeMap<&'static str, String> = BTreeMap::from([
        ("ask_qr", colonless(text::ask_qr(locale))),
        ("ask_amount", colonless(text::ask_amount(locale))),
        ("bad_amount", text::bad_amount(locale)),
        ("merchant", text::merchant(locale, &merchant)),
        ("service", text::service(locale, "{name}")),
        ("due", with_amount(|a| text::amount_due(locale, a))),
        ("until", text::confirm_until(locale, "{time}")),
        ("paid", with_amount(|a| text::paid(locale, Some(a)))),
        (
            "receipt",
            with_receipt(locale, text::receipt(locale, LINK_SENTINEL)),
        ),
        ("cancelled", text::cancelled(locale)),
        ("insufficient", text::insufficient(locale)),
        ("unknown_customer", text::unknown_customer(locale, "{id}")),
        ("ps_refused", text::ps_refused(locale, "{why}")),
        ("rejected", text::rejected(locale, "{code}")),
        ("other_status", text::other_status(locale, "{status}")),
        ("history_title", colonless(text::history_title(locale))),
        (
            "notifications_title",
            colonless(text::notifications_title(locale)),
        ),
        ("nothing_yet", text::nothing_yet(locale).trim().to_owned()),
        (
            "notice_paid",
            with_amount(|amount| {
                let paid = Notice::Paid {
                    merchant: "{merchant}".to_owned(),
                    amount,
                };
                text::notice(locale, &paid)
            }),
        ),
        (
            "notice_rejected",
            with_amount(|amount| {
                let rejected = Notice::Rejected {
                    code: "{code}".to_owned(),
                    amount,
                };
                text::notice(locale, &rejected)
            }),
        ),
        (
            "notice_refunded",
            with_receipt(
                locale,
                with_amount(|amount| {
                    let refunded = Notice::Refunded {
                        amount,
                        receipt: LINK_SENTINEL.to_owned(),
                    };
                    text::notice(locale, &refunded)
                }),
            ),
        ),
        (
            "mpp_error",
            text::error(
                &WalletError::Mpp {
                    status: 999,
                    message: "{message}".to_owned(),
                },
                locale,
            )
            .replace("999", "{status}"),
        ),
    ]);
    for kind in ["deposit", "payment", "reversal", "refund"] {
        let key = match kind {
            "deposit" => "kind_deposit",
            "payment" => "kind_payment",
            "reversal" => "kind_reversal",
            _ => "kind_refund",
        };
        texts.insert(key, text::movement_kind(locale, kind));
    }
    // The ledger's references, as templates the page fills (`app.js`, `reference`).
    for (key, sample) in [
        ("ref_payment", "payment {id}"),
        ("ref_reversal", "payment {id} ({code})"),
        ("ref_refund", "refund {refund} of payment {id}"),
    ] {
        texts.insert(key, text::movement_reference(locale, sample));
    }
    for (key, ru, kk) in PAGE_TEXTS {
        let wording = match locale {
            Locale::Ru => ru,
            Locale::Kk => kk,
        };
        texts.insert(key, (*wording).to_owned());
    }
    texts
}

#[cfg(test)]
mod tests;
