//! The admin API's edge (DECISIONS 43): the bearer token is checked before anything else of a
//! request is looked at, the body is then read within `limits.admin_body_bytes_max`, and every
//! refusal — token, size, path, query, unknown path, wrong method — is `{"error": "…"}`.
//!
//! Order matters: a caller without the token costs the PS its headers only. Nothing of the body
//! is read, so no number of token-less uploads can grow the PS's memory (issue 9's probe: 300
//! token-less 2 MiB bodies took it from 261 to 750 MB), and nothing of the path is parsed, so a
//! stranger learns nothing from how a malformed path is refused.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::{AdminError, authorize};
use crate::state::AppState;

/// Runs before every admin route: the token, then the body within its limit. Handlers read the
/// body with [`AdminBody`], already in memory and known to be small.
pub(super) async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if let Err(refused) = authorize(&app, req.headers()) {
        return refused.into_response();
    }
    let limit = app.config.limits.admin_body_bytes_max;
    let (parts, body) = req.into_parts();
    if declared_length(&parts.headers).is_some_and(|len| len > limit) {
        return too_large(limit).into_response();
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(limit).into_response();
        }
        // Its deadline passed (DECISIONS 43): a client may send it again.
        Err(e) if crate::connections::body::is_late(&*e) => {
            return AdminError(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive within limits.body_timeout_ms: send it again".into(),
            )
            .into_response();
        }
        Err(e) => {
            tracing::info!(error = %e, "admin request body not read");
            return AdminError(StatusCode::BAD_REQUEST, "the body could not be read".into())
                .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The Content-Length the client declared; one that is not a number is left to the HTTP layer,
/// which refuses it before the request gets here.
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()
        // A length beyond the address space is certainly beyond the limit.
        .map(|len| usize::try_from(len).unwrap_or(usize::MAX))
}

fn too_large(limit: usize) -> AdminError {
    AdminError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {limit} bytes (limits.admin_body_bytes_max)"),
    )
}

/// The answer to an admin path that does not exist, or a method it does not take. The token is
/// checked first here too, so that a stranger cannot map the API by its 404s.
pub(crate) async fn unknown(app: &AppState, headers: &HeaderMap, path_exists: bool) -> Response {
    if let Err(refused) = authorize(app, headers) {
        return refused.into_response();
    }
    let refusal = if path_exists {
        AdminError(
            StatusCode::METHOD_NOT_ALLOWED,
            "this path does not take that method".into(),
        )
    } else {
        AdminError(StatusCode::NOT_FOUND, "no such admin path".into())
    };
    refusal.into_response()
}

/// The body [`guard`] read: reading it again cannot fail or exceed the limit.
pub(super) struct AdminBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for AdminBody {
    type Rejection = AdminError;

    async fn from_request(req: Request, _state: &S) -> Result<AdminBody, AdminError> {
        // The body is a buffer by now; the limit was enforced by `guard`.
        let bytes = req
            .into_body()
            .collect()
            .await
            .map_err(|_| AdminError(StatusCode::BAD_REQUEST, "the body could not be read".into()))?
            .to_bytes();
        Ok(AdminBody(bytes))
    }
}

/// Path parameters, refused as `{"error"}` naming what did not parse.
pub(super) struct AdminPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AdminPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(AdminPath(value)),
            Err(rejection) => Err(AdminError(rejection.status(), rejection.body_text())),
        }
    }
}

/// The query string, refused as `{"error"}` naming what did not parse.
pub(super) struct AdminQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AdminQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(AdminQuery(value)),
            Err(rejection) => Err(AdminError(rejection.status(), rejection.body_text())),
        }
    }
}
