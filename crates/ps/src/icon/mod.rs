//! The PS's icon, `/favicon.ico` on every listener: browsers ask for it on every page (the
//! console, the cashier, receipts, payment links), and a 404 in the surface's JSON envelope
//! would fill their consoles with errors. An SVG (a QR code's corner marks), which Chromium and
//! Firefox take under that name when its type says so (a browser that does not shows no icon, as
//! before); the pages' policies allow images from their own origin.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const FAVICON_SVG: &str = include_str!("favicon.svg");

/// `GET /favicon.ico`.
pub(crate) async fn favicon() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        FAVICON_SVG,
    )
        .into_response()
}
