//! Pictures of the QR codes the PS issued: PNG for POS screens, SVG for printable stickers.
//! `GET /qr/image.png?token=…` and `GET /qr/image.svg?token=…`; a token the PS never issued is 404.

use std::io::Cursor;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use qrcode::QrCode;
use serde::Deserialize;

use crate::app::{App, AppState};

/// Smallest side of a picture, in pixels.
const IMAGE_SIDE_PX_MIN: u32 = 320;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/qr/image.png", get(png))
        .route("/qr/image.svg", get(svg))
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
        Ok(found) => Ok(found.is_some()),
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a QR token");
            Err(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

async fn code_of(app: &App, token: &str) -> Result<QrCode, Response> {
    if !issued(app, token).await? {
        return Err((StatusCode::NOT_FOUND, "no such QR code").into_response());
    }
    QrCode::new(token.as_bytes())
        .map_err(|_| (StatusCode::UNPROCESSABLE_ENTITY, "token too long").into_response())
}

async fn png(State(app): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
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

async fn svg(State(app): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
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
