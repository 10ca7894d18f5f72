//! The MPP's cabinet: `GET /cabinet/v1/registers/{daily|monthly}/{period}.{xlsx|csv}` with
//! `Authorization: Bearer <token>`. The token alone says which MPP is asking (from
//! `registers.cabinet_tokens`), so an MPP can only ever get its own registers. Registers are made
//! on demand, a few at a time (`cabinet_concurrency_max`), and streamed from a temporary file.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::RegisterError;
use super::make::{self, Format};
use super::period::{Period, RegisterKind};
use crate::state::AppState;

/// Why the cabinet refuses; the one place its errors become HTTP answers.
enum CabinetError {
    Unauthorized,
    NotFound(String),
    /// The register exists once its period is over; asking again later succeeds. The message,
    /// and when it can be made (`2026-11-28 00:05 Asia/Almaty`).
    NotYet(String, String),
    BadRequest(String),
    Busy,
    Internal(RegisterError),
}

impl From<RegisterError> for CabinetError {
    fn from(e: RegisterError) -> CabinetError {
        match e {
            RegisterError::BadPeriod(_) => CabinetError::BadRequest(e.to_string()),
            RegisterError::NotEnded { ref ready_from, .. } => {
                CabinetError::NotYet(e.to_string(), ready_from.clone())
            }
            // A token of an MPP the catalog no longer has: nothing to show.
            RegisterError::UnknownMpp(_) => CabinetError::Unauthorized,
            other => CabinetError::Internal(other),
        }
    }
}

impl IntoResponse for CabinetError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            CabinetError::Unauthorized => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({"error": "a valid cabinet token is required"})),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            CabinetError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            // Not 404: nothing is missing, the register is not due yet; asked again once the
            // period is over, the same URL answers with the file.
            CabinetError::NotYet(message, _) => (StatusCode::CONFLICT, message),
            CabinetError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            CabinetError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy making registers; retry".to_owned(),
            ),
            CabinetError::Internal(e) => {
                tracing::error!(error = %e, "cannot make a register for the cabinet");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, Json(serde_json::json!({"error": message}))).into_response()
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/cabinet/v1/registers/{kind}/{file}", get(download))
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The MPP whose cabinet token the request carries. Hashes are compared so that the comparison
/// takes the same time whatever prefix of a token an attacker guessed.
fn caller(app: &AppState, headers: &HeaderMap) -> Result<String, CabinetError> {
    let token = crate::connections::bearer_token(headers).ok_or(CabinetError::Unauthorized)?;
    mpp_of_token(app, token).ok_or(CabinetError::Unauthorized)
}

/// The MPP whose cabinet token `token` is: one of `registers.cabinet_tokens`, or one the admin
/// API issued (the catalog keeps its hash).
pub(crate) fn mpp_of_token(app: &AppState, token: &str) -> Option<String> {
    cabinet_token(app, token).map(|(mpp, _)| mpp)
}

/// [`mpp_of_token`], and for a token the admin API issued its SHA-256 in hex (the console's
/// sign-in keys the session to it, so that revoking the token ends the session).
pub(crate) fn cabinet_token(app: &AppState, token: &str) -> Option<(String, Option<String>)> {
    let presented = sha256(token.trim());
    let configured = app
        .config
        .registers
        .cabinet_tokens
        .iter()
        .find(|(_, known)| sha256(known) == presented)
        .map(|(mpp, _)| (mpp.clone(), None));
    configured.or_else(|| {
        let hash = hex::encode(presented);
        let mpp = app
            .catalog
            .get()
            .mpp_by_cabinet_token_hash(&hash)?
            .to_string();
        Some((mpp, Some(hash)))
    })
}

/// `2026-11-26.xlsx` → the period and the format.
fn parse_file(kind: &str, file: &str) -> Result<(Period, Format), CabinetError> {
    let not_found = || CabinetError::NotFound("no such register".to_owned());
    let kind = RegisterKind::parse(kind).ok_or_else(not_found)?;
    let (name, extension) = file.rsplit_once('.').ok_or_else(not_found)?;
    let format = Format::parse(extension).ok_or_else(not_found)?;
    Ok((Period::parse(kind, name)?, format))
}

async fn download(
    State(app): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Result<Response, CabinetError> {
    let mpp = caller(&app, &headers)?;
    // A path that is not UTF-8 names no register: the cabinet's own answer, not the router's.
    let Ok(Path((kind, file))) = path else {
        return Err(CabinetError::NotFound("no such register".to_owned()));
    };
    Ok(register_of(&app, &mpp, &kind, &file).await)
}

/// The register file `kind/file` of `mpp` (already authorised), or the cabinet's refusal: the
/// bearer route above and the admin API serve through this one function.
pub(crate) async fn register_of(app: &AppState, mpp: &str, kind: &str, file: &str) -> Response {
    match make_register(app, mpp, kind, file).await {
        Ok(response) => response,
        Err(refused) => refused.into_response(),
    }
}

/// Why the console's cabinet page could not give a register (`console::cabinet`), said there in
/// the session's language instead of this API's JSON.
pub(crate) enum PageRefusal {
    /// The period is not over yet; it can be made from then (`2026-11-28 00:05 Asia/Almaty`).
    NotYet(String),
    /// No such register (a kind or date that is not one).
    NoSuch,
    /// Registers are being made up to the limit; later.
    Busy,
    /// The session's MPP is no longer in the catalog.
    UnknownMpp,
    /// Anything else; logged here.
    Fault,
}

/// [`register_of`] for the console's pages: the same register, or why not.
pub(crate) async fn register_for_page(
    app: &AppState,
    mpp: &str,
    kind: &str,
    file: &str,
) -> Result<Response, PageRefusal> {
    make_register(app, mpp, kind, file)
        .await
        .map_err(|e| match e {
            CabinetError::NotYet(_, ready_from) => PageRefusal::NotYet(ready_from),
            CabinetError::NotFound(_) | CabinetError::BadRequest(_) => PageRefusal::NoSuch,
            CabinetError::Busy => PageRefusal::Busy,
            CabinetError::Unauthorized => PageRefusal::UnknownMpp,
            CabinetError::Internal(e) => {
                tracing::error!(error = %e, "cannot make a register for the cabinet's page");
                PageRefusal::Fault
            }
        })
}

async fn make_register(
    app: &AppState,
    mpp: &str,
    kind: &str,
    file: &str,
) -> Result<Response, CabinetError> {
    let (period, format) = parse_file(kind, file)?;
    let request = make::request(app, mpp, period, format)?;
    // The place is held by the making itself, which ends soon after a client that leaves.
    let places = app
        .register_makers
        .place(mpp, app.config.registers.cabinet_concurrency_max)
        .ok_or(CabinetError::Busy)?;
    let (temp, totals) = make::make_temp(app, request, places).await?;
    tracing::info!(mpp, %period, rows = totals.rows(), "register downloaded");
    // The open file keeps its data after the temporary name is removed (on drop of `temp`).
    let file = tokio::fs::File::open(temp.path())
        .await
        .map_err(RegisterError::from)?;
    drop(temp);
    let name = period.file_name(mpp, format.extension());
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            // The customers' ids and amounts: no cache on the way keeps them.
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}
