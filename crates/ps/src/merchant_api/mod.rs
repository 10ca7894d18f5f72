use axum::Router;
use axum::response::Response;
use crate::app::AppState;
pub fn router() -> Router<AppState> { Router::new() }
pub fn is_merchant_path(path: &str) -> bool { path.starts_with("/r1/") || path.starts_with("/r2/") || path.starts_with("/r3/") }
pub fn unknown_method() -> Response { todo!() }
