//! The operator's registers: any MPP's register downloaded as its cabinet gives it, and a
//! register's e-mail sent (again) on request (`registers::resend`, `docs/registers.md`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::edge::{AdminBody, AdminPath};
use super::{AdminError, AdminResult, body};
use crate::registers::cabinet::register_of;
use crate::registers::resend::{self, Refusal};
use crate::state::AppState;

/// `GET /admin/v1/registers/{mpp}/{kind}/{period}.{xlsx|csv}`: the register file, made on demand
/// as the cabinet makes it (the same bytes, the same limits and refusals).
pub(super) async fn file(
    State(app): State<AppState>,
    AdminPath((mpp, kind, file)): AdminPath<(String, String, String)>,
) -> AdminResult {
    if !app.catalog.get().mpps.contains_key(mpp.as_str()) {
        return Err(refused(Refusal::UnknownMpp(mpp)));
    }
    Ok(register_of(&app, &mpp, &kind, &file).await)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    /// The sending the caller saw; if the register was asked again since, nothing is done.
    sending: Option<u32>,
}

/// `POST /admin/v1/registers/{mpp}/{kind}/{period}/send` (optional body `{"sending": N}`).
pub(super) async fn send(
    State(app): State<AppState>,
    AdminPath((mpp, kind, period)): AdminPath<(String, String, String)>,
    AdminBody(raw): AdminBody,
) -> AdminResult {
    let req: SendRequest = if raw.is_empty() {
        SendRequest::default()
    } else {
        body::<Option<SendRequest>>(&raw)?.unwrap_or_default()
    };
    let asked = resend::ask(&app, &mpp, &kind, &period, req.sending)
        .await
        .map_err(refused)?;
    Ok(Json(json!({
        "mpp": mpp,
        "kind": kind,
        "period": period,
        "sending": asked.sending,
        "state": asked.state,
    }))
    .into_response())
}

fn refused(refusal: Refusal) -> AdminError {
    let status = refusal.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return AdminError(status, "the PS is busy; retry".to_owned());
    }
    AdminError(status, refusal.to_string())
}
