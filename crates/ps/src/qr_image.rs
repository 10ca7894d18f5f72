//! Pictures of the QR codes the PS issued: PNG for POS screens, SVG for printable stickers.
//! `GET /qr/image.png?token=…` and `GET /qr/image.svg?token=…`, of a payment's or a return QR's
//! token; a token the PS never issued is 404.

use std::io::Cursor;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qrcode::QrCode;
use serde::Deserialize;

use tolem_wire::Locale;

use crate::domain::Status;
use crate::state::{App, AppState};

/// Smallest side of a picture, in pixels.
const IMAGE_SIDE_PX_MIN: u32 = 320;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/qr/image.png", get(png))
        .route("/qr/image.svg", get(svg))
        .route(
            "/pay/{digits}",
            get(pay_page).layer(axum::middleware::map_response(
                crate::receipt::public_page_headers,
            )),
        )
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

async fn issued(app: &App, token: &str) -> Result<bool, Response> {
    if app.catalog.get().token(token).is_some() {
        return Ok(true);
    }
    match app.store.payment_by_token(token.to_owned()).await {
        Ok(Some(_)) => return Ok(true),
        Ok(None) => {}
        Err(e) => return Err(crate::receipt::fault(e)),
    }
    // A return QR (a refund with the customer) is shown on the POS screen too.
    match app.store.refund_by_token(token.to_owned()).await {
        Ok(found) => Ok(found.is_some()),
        Err(e) => Err(crate::receipt::fault(e)),
    }
}

/// A picture asked for without one `?token=` (none, twice, not UTF-8): said plainly, not in the
/// query parser's words.
fn no_token() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "one token is needed: ?token=<the QR's token>",
    )
        .into_response()
}

async fn code_of(app: &App, token: &str) -> Result<QrCode, Response> {
    if !issued(app, token).await? {
        return Err((StatusCode::NOT_FOUND, "no such QR code").into_response());
    }
    QrCode::new(token.as_bytes())
        .map_err(|_| (StatusCode::UNPROCESSABLE_ENTITY, "token too long").into_response())
}

async fn png(
    State(app): State<AppState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return no_token();
    };
    let code = match code_of(&app, &q.token).await {
        Ok(code) => code,
        Err(response) => return response,
    };
    let picture = code
        .render::<image::Luma<u8>>()
        .min_dimensions(IMAGE_SIDE_PX_MIN, IMAGE_SIDE_PX_MIN)
        .build();
    let mut bytes = Cursor::new(Vec::new());
    if picture
        .write_to(&mut bytes, image::ImageFormat::Png)
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "image/png")], bytes.into_inner()).into_response()
}

async fn svg(
    State(app): State<AppState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return no_token();
    };
    let code = match code_of(&app, &q.token).await {
        Ok(code) => code,
        Err(response) => return response,
    };
    let picture = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(IMAGE_SIDE_PX_MIN, IMAGE_SIDE_PX_MIN)
        .build();
    ([(header::CONTENT_TYPE, "image/svg+xml")], picture).into_response()
}

/// The page a payment link opens (`qr/create-link`): the purchase, a sentence saying where it
/// stands in Russian or Kazakh (`?locale=kk`, as on receipts), and while it can still be paid its
/// QR to scan with the buyer's banking app.
pub(crate) async fn pay_page(
    State(app): State<AppState>,
    digits: Result<axum::extract::Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let locale = crate::receipt::locale_of_query(query.as_deref());
    // A path that is not UTF-8 is no link the PS made: the page's own "not found".
    let digits = digits.map_or_else(|_| String::new(), |axum::extract::Path(d)| d);
    let link = crate::links::pay_link(&app.config.public_url, &digits);
    let payment = match app.store.payment_by_token(link.clone()).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return crate::receipt::not_found_page(
                locale,
                "Ссылка на оплату не найдена.",
                "Төлем сілтемесі табылмады.",
            );
        }
        Err(e) => return crate::receipt::fault(e),
    };
    let catalog = app.catalog.get();
    let merchant = catalog
        .trade_points
        .get(&payment.trade_point_id)
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let amount = payment
        .amount
        .map(|a| a.human(locale).to_string())
        .unwrap_or_default();
    let status = payment.effective_status(app.clock.now(), &app.policy);
    let open = matches!(status, Status::Created | Status::Scanned);
    let qr = if open {
        let token: String = link.bytes().map(|b| format!("%{b:02X}")).collect();
        let alt = match locale {
            Locale::Ru => "QR-код для оплаты",
            Locale::Kk => "Төлеуге арналған QR-код",
        };
        // At most the screen's width: a phone 320 px wide shows it whole, with no sideways
        // scrolling.
        format!(
            "<img alt=\"{alt}\" src=\"/qr/image.svg?token={token}\" width=\"320\" \
             style=\"max-width:100%;height:auto\">"
        )
    } else {
        String::new()
    };
    // While it can be paid the page looks again every few seconds (no script: the public
    // pages' policy allows none), so the buyer sees the payment land; once paid, its receipt.
    let refresh = if open {
        format!("<meta http-equiv=\"refresh\" content=\"{PAY_PAGE_REFRESH_S}\">")
    } else {
        String::new()
    };
    let receipt = if status == Status::Confirmed {
        let mut href = crate::links::receipt_link(&app.config.public_url, &payment.receipt_token);
        if locale == Locale::Kk {
            href.push_str("&locale=kk");
        }
        let text = match locale {
            Locale::Ru => "Чек",
            Locale::Kk => "Түбіртек",
        };
        format!(
            "<p><a id=\"receipt\" href=\"{}\">{text}</a></p>",
            crate::receipt::escape(&href)
        )
    } else {
        String::new()
    };
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         {refresh}<title>{title}</title></head><body style=\"font-family:sans-serif;text-align:center\">\
         <h1>{merchant}</h1><p style=\"font-size:2em\">{amount}</p><p>{sentence}</p>{qr}{receipt}</body></html>",
        lang = locale.code(),
        title = crate::receipt::escape(&match locale {
            Locale::Ru => format!("Оплата: {merchant}"),
            Locale::Kk => format!("Төлем: {merchant}"),
        }),
        merchant = crate::receipt::escape(&merchant),
        sentence = sentence(status, locale),
    );
    axum::response::Html(html).into_response()
}

/// How often the payment-link page looks again while its purchase can be paid.
const PAY_PAGE_REFRESH_S: u32 = 5;

/// Where a purchase stands, as a sentence for the buyer (never the POS's status code).
fn sentence(status: Status, locale: Locale) -> &'static str {
    match (status, locale) {
        (Status::Created, Locale::Ru) => "Отсканируйте QR-код в приложении банка, чтобы оплатить.",
        (Status::Created, Locale::Kk) => "Төлеу үшін QR-кодты банк қосымшасында сканерлеңіз.",
        (Status::Scanned, Locale::Ru) => "Подтвердите оплату в приложении банка.",
        (Status::Scanned, Locale::Kk) => "Төлемді банк қосымшасында растаңыз.",
        (Status::Confirmed, Locale::Ru) => "Оплачено. Спасибо за покупку!",
        (Status::Confirmed, Locale::Kk) => "Төленді. Сатып алғаныңызға рахмет!",
        (Status::Expired, Locale::Ru) => "Время на оплату истекло.",
        (Status::Expired, Locale::Kk) => "Төлеу уақыты өтіп кетті.",
        (Status::Cancelled | Status::Failed, Locale::Ru) => "Оплата не состоялась.",
        (Status::Cancelled | Status::Failed, Locale::Kk) => "Төлем өтпеді.",
    }
}
