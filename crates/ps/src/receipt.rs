//! The receipt page behind `linkReceipt` (SPEC 4.3, 4.4): `GET /receipt?id=…[&locale=kk]`, for a
//! payment or a refund. Reachable only through the unguessable id; shows what a receipt needs and
//! no more (no customer id).
//!
//! The links the PS hands out carry no locale (DECISIONS 35): the MPP appends `&locale=kk` for
//! Kazakh, as SPEC 4.3 tells it to, or `&locale=ru`. So the query is read by hand, tolerantly: a
//! repeated `locale` (a link from before rule 35 with a suffix appended) is not an error, the last
//! one that names a language wins, and anything else is Russian.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tolem_wire::Locale;
use tolem_wire::time::format_human;

use crate::catalog::Catalog;
use crate::domain::{Kind, Payment, RefundStatus, Status};
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/receipt", get(page))
        .layer(axum::middleware::map_response(public_page_headers))
}

/// The pages anyone with the link may open (a receipt, a payment link's page): they run no
/// script and load nothing but the PS's own QR pictures, are never framed or cached, and never
/// send their address, whose token is the secret, in a referrer. They share an origin with the
/// console where one listener serves both.
const PUBLIC_PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
                               base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) async fn public_page_headers(mut response: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, PUBLIC_PAGE_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Longest query string read; a receipt link is far shorter.
const QUERY_BYTES_MAX: usize = 1024;

/// What a receipt link asks for: the receipt's token and the language.
struct ReceiptQuery {
    id: String,
    locale: Locale,
}

impl ReceiptQuery {
    /// `None` when the query names no well-formed receipt token (32 hex digits).
    fn parse(query: Option<&str>) -> Option<ReceiptQuery> {
        let query = query.filter(|q| q.len() <= QUERY_BYTES_MAX)?;
        let id = form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "id")
            .map(|(_, value)| value.into_owned())
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))?;
        Some(ReceiptQuery {
            id,
            locale: locale_of_query(Some(query)),
        })
    }
}

/// The language a page's query asks for with `locale=ru|kk`: the last such parameter that names
/// a language; Russian without one. Never an error, so any suffix an MPP appends still opens the
/// page (DECISIONS 35).
pub(crate) fn locale_of_query(query: Option<&str>) -> Locale {
    let query = query
        .filter(|q| q.len() <= QUERY_BYTES_MAX)
        .unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "locale")
        .filter_map(|(_, value)| Locale::from_code(&value))
        .last()
        .unwrap_or(Locale::Ru)
}

struct Labels {
    title: &'static str,
    merchant: &'static str,
    bin: &'static str,
    trade_point: &'static str,
    amount: &'static str,
    date: &'static str,
    ps_id: &'static str,
    mpp_id: &'static str,
    status: &'static str,
    paid: &'static str,
    not_paid: &'static str,
    refund_title: &'static str,
    purchase: &'static str,
    refunded: &'static str,
    refund_pending: &'static str,
    refund_failed: &'static str,
    service: &'static str,
}

const RU: Labels = Labels {
    title: "Чек об оплате",
    merchant: "Продавец",
    bin: "БИН",
    trade_point: "Торговая точка",
    amount: "Сумма",
    date: "Дата и время",
    ps_id: "Номер операции ПС",
    mpp_id: "Номер операции участника",
    status: "Статус",
    paid: "Оплачено",
    not_paid: "Не оплачено",
    refund_title: "Чек возврата",
    purchase: "Покупка",
    refunded: "Возвращено",
    refund_pending: "Возврат в обработке",
    refund_failed: "Возврат не выполнен",
    service: "Услуга",
};

const KK: Labels = Labels {
    title: "Төлем түбіртегі",
    merchant: "Сатушы",
    bin: "БСН",
    trade_point: "Сауда нүктесі",
    amount: "Сома",
    date: "Күні мен уақыты",
    ps_id: "ТЖ операциясының нөмірі",
    mpp_id: "Қатысушы операциясының нөмірі",
    status: "Мәртебесі",
    paid: "Төленді",
    not_paid: "Төленбеді",
    refund_title: "Қайтару түбіртегі",
    purchase: "Сатып алу",
    refunded: "Қайтарылды",
    refund_pending: "Қайтару өңделуде",
    refund_failed: "Қайтару орындалмады",
    service: "Қызмет",
};

async fn page(State(app): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let asked = locale_of_query(query.as_deref());
    let not_found = || not_found_page(asked, "Чек не найден.", "Түбіртек табылмады.");
    let Some(q) = ReceiptQuery::parse(query.as_deref()) else {
        return not_found();
    };
    let l = match q.locale {
        Locale::Ru => &RU,
        Locale::Kk => &KK,
    };
    let found = match app.store.payment_by_receipt(q.id.clone()).await {
        Ok(Some(p)) => Some(Ok(p)),
        Ok(None) => match app.store.refund_by_receipt(q.id.clone()).await {
            Ok(refund) => refund.map(Err),
            Err(e) => return fault(e),
        },
        Err(e) => return fault(e),
    };
    let Some(found) = found else {
        return not_found();
    };
    let catalog = app.catalog.get();
    let trade_point_id = match &found {
        Ok(p) => p.trade_point_id,
        Err(r) => r.trade_point_id,
    };
    let Some((point, org)) = catalog.merchant(trade_point_id) else {
        return not_found();
    };
    let mut rows: Vec<(&str, String)> = vec![
        (l.merchant, org.name.clone()),
        (l.bin, org.bin.clone()),
        (
            l.trade_point,
            format!("{}, {}, {}", point.name, point.address, point.city),
        ),
    ];
    let money = |amount: Option<tolem_wire::Amount>| {
        amount
            .map(|a| a.human(q.locale).to_string())
            .unwrap_or_default()
    };
    let page = match &found {
        Ok(payment) => {
            let when = payment.finished_at.unwrap_or(payment.created_at);
            let custom = custom_rows(&catalog, payment, q.locale, l);
            rows.extend(
                custom
                    .iter()
                    .map(|(label, value)| (label.as_str(), value.clone())),
            );
            rows.extend([
                (l.amount, money(payment.amount)),
                (l.date, format_human(when, &app.zone)),
                (l.ps_id, payment.id.to_string()),
                (l.mpp_id, payment.mpp_payment_id.clone().unwrap_or_default()),
                (
                    l.status,
                    if payment.status == Status::Confirmed {
                        l.paid
                    } else {
                        l.not_paid
                    }
                    .to_owned(),
                ),
            ]);
            html(q.locale, l.title, &rows)
        }
        Err(refund) => {
            let when = refund
                .finished_at
                .or(refund.requested_at)
                .unwrap_or(refund.created_at);
            let status = match refund.status {
                RefundStatus::Completed => l.refunded,
                RefundStatus::Failed => l.refund_failed,
                _ => l.refund_pending,
            };
            rows.extend([
                (l.amount, money(refund.amount)),
                (l.date, format_human(when, &app.zone)),
                (l.ps_id, refund.id.to_string()),
                (
                    l.purchase,
                    refund.payment_id.map(|p| p.to_string()).unwrap_or_default(),
                ),
                (l.status, status.to_owned()),
            ]);
            html(q.locale, l.refund_title, &rows)
        }
    };
    Html(page).into_response()
}

/// A Custom payment's service and the values the buyer entered (DECISIONS 35), named in the
/// receipt's language; an option shows its label. A service since removed from the catalog still
/// shows the values, under their parameter ids.
fn custom_rows(
    catalog: &Catalog,
    payment: &Payment,
    locale: Locale,
    l: &Labels,
) -> Vec<(String, String)> {
    #[derive(Deserialize)]
    struct Filled {
        id: i64,
        value: String,
    }
    if payment.kind != Kind::Custom {
        return Vec::new();
    }
    let service = payment.service_id.and_then(|id| catalog.services.get(&id));
    let mut rows = Vec::new();
    if let Some(service) = service {
        rows.push((l.service.to_owned(), service.name.get(locale).to_owned()));
    }
    // The values are stored as checkout accepted them; a purchase never checked out has none.
    let filled: Vec<Filled> = payment
        .parameters
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    for f in filled {
        let spec = service.and_then(|s| s.parameters.iter().find(|p| p.id == f.id));
        let name = spec.map_or_else(|| f.id.to_string(), |p| p.name.get(locale).to_owned());
        let value = spec
            .and_then(|p| p.options.iter().find(|o| o.key == f.value))
            .map_or(f.value, |o| o.label.get(locale).to_owned());
        rows.push((name, value));
    }
    rows
}

/// The page's head and style, in `locale`'s language: also for [`not_found_page`].
fn head(locale: Locale, title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}}\
         th,td{{padding:.3em .6em;border-bottom:1px solid #ddd}}th{{text-align:left;font-weight:normal}}@media print{{body{{margin:0;padding:0}}}}</style></head>",
        lang = locale.code(),
        t = escape(title)
    )
}

/// A receipt or payment link that is not there (a mistyped or old link), said in the language
/// asked for: HTTP 404 with a page, not a bare line of English.
pub(crate) fn not_found_page(locale: Locale, ru: &str, kk: &str) -> Response {
    let text = match locale {
        Locale::Ru => ru,
        Locale::Kk => kk,
    };
    let check = match locale {
        Locale::Ru => "Проверьте ссылку.",
        Locale::Kk => "Сілтемені тексеріңіз.",
    };
    let page = format!(
        "{}<body><h1>{}</h1><p>{check}</p></body></html>",
        head(locale, text),
        escape(text)
    );
    (StatusCode::NOT_FOUND, Html(page)).into_response()
}

/// The page: a title and a table of labelled values, printable, in `locale`'s language.
fn html(locale: Locale, title: &str, rows: &[(&str, String)]) -> String {
    let mut html = format!(
        "{}<body><h1>{t}</h1><table>",
        head(locale, title),
        t = escape(title)
    );
    for (label, value) in rows {
        html.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(label),
            escape(value)
        ));
    }
    html.push_str("</table></body></html>");
    html
}

/// A store failure on a page: 503 (retry) when the store is busy or out of reach, else 500.
pub(crate) fn fault(e: crate::store::StoreError) -> Response {
    if e.is_unavailable() {
        crate::log_sparse::store_unavailable(&e);
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    // Said in the request's one line (`app.rs`).
    crate::health::Fault::on(StatusCode::INTERNAL_SERVER_ERROR.into_response(), &e)
}

/// Text for a form's value (a `<textarea>`, an `<input value="…">`): `& < > "` escaped and
/// nothing else, so that what the form sends back is the text it was given.
pub(crate) fn escape_value(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Text shown on a page (element content, or an attribute a person reads): as
/// [`escape_value`], and the characters that reorder text unseen
/// ([`crate::domain::text::reorders`]) shown as their code. Never for a
/// form's value, which would send the code back.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // The invisible marks, embeddings, overrides and isolates that reorder what follows
            // them: shown as their code, so that a name or code from outside cannot make the
            // page read otherwise than the text it holds (`FAIL` shown as `LIAF`, the rest of a
            // sentence turned around).
            c if crate::domain::text::reorders(c) => {
                out.push_str(&format!("[U+{:04X}]", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn text_for_html_is_escaped_and_cannot_reorder_the_page() {
        assert_eq!(
            escape("<b a=\"1\">Кафе & Co</b>"),
            "&lt;b a=&quot;1&quot;&gt;Кафе &amp; Co&lt;/b&gt;"
        );
        assert_eq!(
            escape("C\u{202e}LIAF\u{2066}x\u{2069}\u{200f}"),
            "C[U+202E]LIAF[U+2066]x[U+2069][U+200F]"
        );
        // Joiners and spaces of other kinds are text, as is every letter.
        assert_eq!(escape("a\u{200d}b\u{a0}c Ә"), "a\u{200d}b\u{a0}c Ә");
        // A form's value comes back as it was given.
        assert_eq!(
            escape_value("{\"name\": \"C\u{200f}<1>\"}"),
            "{&quot;name&quot;: &quot;C\u{200f}&lt;1&gt;&quot;}"
        );
    }

    #[test]
    fn either_suffix_opens_every_link() {
        let locale = |query: &str| ReceiptQuery::parse(Some(query)).map(|q| (q.id, q.locale));
        let id = TOKEN.to_owned();
        assert_eq!(
            locale(&format!("id={TOKEN}")),
            Some((id.clone(), Locale::Ru))
        );
        assert_eq!(
            locale(&format!("id={TOKEN}&locale=kk")),
            Some((id.clone(), Locale::Kk))
        );
        assert_eq!(
            locale(&format!("id={TOKEN}&locale=ru")),
            Some((id.clone(), Locale::Ru))
        );
        // A link issued with a suffix, and the MPP's own suffix after it: the last one wins.
        assert_eq!(
            locale(&format!("id={TOKEN}&locale=kk&locale=ru")),
            Some((id.clone(), Locale::Ru))
        );
        assert_eq!(
            locale(&format!("id={TOKEN}&locale=kk&locale=kk")),
            Some((id.clone(), Locale::Kk))
        );
        assert_eq!(
            locale(&format!("id={TOKEN}&locale=en&utm=x")),
            Some((id.clone(), Locale::Ru))
        );
        for bad in ["", "locale=kk", "id=123", "id=zz", &format!("id={TOKEN}x")] {
            assert!(ReceiptQuery::parse(Some(bad)).is_none(), "{bad}");
        }
        assert!(ReceiptQuery::parse(None).is_none());
        let long = format!("id={TOKEN}&pad={}", "x".repeat(QUERY_BYTES_MAX));
        assert!(ReceiptQuery::parse(Some(&long)).is_none());
    }
}
