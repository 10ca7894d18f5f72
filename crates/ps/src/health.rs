//! Health checks for load balancers and supervisors, on every listener and without credentials:
//! `GET /health/live` says the process serves; `GET /health/ready` says it can also reach its
//! database, so a balancer takes out a node that would only answer 503. Neither tells a caller
//! more than up or down.
//!
//! A readiness check costs one database round trip at most once a second whoever asks
//! ([`Readiness`]): callers in the same second share the last answer, so the endpoint cannot be
//! used to load the database.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;

use crate::state::AppState;
use crate::store::{Store, StoreError};

/// How long one readiness answer is given again.
const FRESH: Duration = Duration::from_secs(1);
/// How long a readiness check waits for the database before it says "not ready".
const CHECK_WAIT: Duration = Duration::from_secs(2);

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
            // Said once a second by the check itself, not once per probe by the request's log.
            response.extensions_mut().insert(Expected);
            response
        }
    }
}

/// Marks a 5xx answer that is the endpoint's meaning, not a fault: the request's log line stays
/// at debug level (`app.rs`).
#[derive(Clone, Copy)]
pub(crate) struct Expected;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// Why a node is not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// The database refused or failed the check (down, unreachable, the writer gone).
    Database,
    /// The database did not answer within [`CHECK_WAIT`].
    DatabaseLate,
}

impl NotReady {
    fn as_str(self) -> &'static str {
        match self {
            NotReady::Database => "the database does not answer",
            NotReady::DatabaseLate => "the database did not answer in time",
        }
    }
}

/// The last readiness answer and when it was found. Checks run one at a time: a caller that
/// comes while one runs waits for it and takes its answer.
#[derive(Default)]
pub(crate) struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), NotReady>)>>,
    /// A database away fails every check: said once a minute, and its end once.
    lasting: std::sync::Mutex<crate::log_sparse::Lasting>,
}

impl Readiness {
    pub(crate) async fn check(&self, store: &Store) -> Result<(), NotReady> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < FRESH
        {
            return answer;
        }
        let pinged = match tokio::time::timeout(CHECK_WAIT, store.ping()).await {
            // Full (every connection or the writer's queue taken) is busy, not down: taking a
            // busy node out of the balancer would only move its load to the others.
            Ok(Ok(()) | Err(StoreError::Overloaded)) => Ok(()),
            Ok(Err(e)) => Err((NotReady::Database, e.to_string())),
            Err(_) => Err((
                NotReady::DatabaseLate,
                format!("no answer in {} ms", CHECK_WAIT.as_millis()),
            )),
        };
        self.lasting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .note(
                "readiness: the database check",
                &pinged.as_ref().map_err(|(_, why)| why),
            );
        let answer = pinged.map_err(|(not_ready, _)| not_ready);
        *last = Some((Instant::now(), answer));
        answer
    }
}
