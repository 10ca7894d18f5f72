//! Health checks for load balancers and supervisors, on every listener and without credentials:
//! `GET /health/live` says the process serves; `GET /health/ready` says it can also reach its
//! database, so a balancer takes out a node that would only answer 503. Neither tells a caller
//! more than up or down.
//!
//! A readiness check costs one database round trip at most once a second whoever asks
//! ([`crate::store::Readiness`]): callers in the same second share the last answer, so the endpoint cannot be
//! used to load the database.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Response {
    answer(StatusCode::OK, serde_json::json!({"status": "live"}))
}

async fn ready(State(app): State<AppState>) -> Response {
    match app.readiness.check(&app.store).await {
        Ok(()) => answer(StatusCode::OK, serde_json::json!({"status": "ready"})),
        Err(why) => {
            let mut response = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "not ready", "reason": why.as_str()}),
            );
            // Said by the check itself (at once, then once a minute), not once per probe.
            response.extensions_mut().insert(Expected);
            response
        }
    }
}

/// Marks a 5xx answer that is the endpoint's meaning, not a fault: the request's log line stays
/// at debug level (`app.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Expected;

/// The cause of a 500, for the request's one log line (`app.rs`): the surface that met the fault
/// puts it on its answer rather than logging a line of its own.
#[derive(Clone)]
pub(crate) struct Fault(pub(crate) String);

impl Fault {
    /// `response` carrying `cause` for its log line.
    pub(crate) fn on(
        mut response: axum::response::Response,
        cause: &dyn std::fmt::Display,
    ) -> axum::response::Response {
        response.extensions_mut().insert(Fault(cause.to_string()));
        response
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}
