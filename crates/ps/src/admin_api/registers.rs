//! The operator's registers: any MPP's register downloaded as its cabinet gives it, and a
//! register's e-mail sent (again) on request: one the MPP says it lost, one sent to an address
//! since corrected, or one a catch-up after long downtime left out (`docs/registers.md`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::json;

use super::edge::AdminPath;
use super::{AdminError, AdminResult, bad, internal};
use crate::registers::cabinet::{Makers, register_of};
use crate::registers::{Format, Period, RegisterError, RegisterKind, make};
use crate::state::AppState;
use crate::store::{RegisterDue, RegisterSending};

fn no_mpp(mpp: &str) -> AdminError {
    AdminError(
        StatusCode::NOT_FOUND,
        format!("no MPP {mpp:?} in the catalog"),
    )
}

/// `GET /admin/v1/registers/{mpp}/{kind}/{period}.{xlsx|csv}`: the register file, made on demand
/// as the cabinet makes it (the same bytes, the same limits and refusals).
pub(super) async fn file(
    State(app): State<AppState>,
    Extension(makers): Extension<Makers>,
    AdminPath((mpp, kind, file)): AdminPath<(String, String, String)>,
) -> AdminResult {
    if !app.catalog.get().mpps.contains_key(mpp.as_str()) {
        return Err(no_mpp(&mpp));
    }
    Ok(register_of(&app, &makers, &mpp, &kind, &file).await)
}

/// What asking for a register's e-mail did: `queued` or `waiting`, and which sending it is.
pub(crate) struct Asked {
    pub state: &'static str,
    pub sending: u32,
}

/// `POST /admin/v1/registers/{mpp}/{kind}/{period}/send`: the register's e-mail, queued if it
/// never was, due at once if it waits, or sent again (with a Message-ID of its own) if it was
/// sent; it goes out as any register e-mail does, on a working day from `send_at`.
pub(super) async fn send(
    State(app): State<AppState>,
    AdminPath((mpp, kind, period)): AdminPath<(String, String, String)>,
) -> AdminResult {
    let asked = send_register(&app, &mpp, &kind, &period).await?;
    Ok(Json(json!({
        "mpp": mpp,
        "kind": kind,
        "period": period,
        "sending": asked.sending,
        "state": asked.state,
    }))
    .into_response())
}

/// The use case behind [`send`], which the operator's console asks too.
pub(crate) async fn send_register(
    app: &AppState,
    mpp: &str,
    kind: &str,
    period: &str,
) -> Result<Asked, AdminError> {
    if !app.config.registers.email_enabled() {
        return Err(AdminError(
            StatusCode::CONFLICT,
            "registers are not e-mailed here: registers.smtp_host is not set".to_owned(),
        ));
    }
    let catalog = app.catalog.get();
    let found = catalog.mpps.get(mpp).ok_or_else(|| no_mpp(mpp))?;
    if found.register_email.is_none() {
        return Err(AdminError(
            StatusCode::CONFLICT,
            format!("MPP {mpp:?} has no register_email"),
        ));
    }
    let kind = RegisterKind::parse(kind).ok_or_else(|| {
        AdminError(
            StatusCode::NOT_FOUND,
            format!("no register kind {kind:?}: daily or monthly"),
        )
    })?;
    let period = Period::parse(kind, period).map_err(|e| bad(e.to_string()))?;
    match make::request(app, mpp, period, Format::Xlsx) {
        Ok(_) => {}
        Err(e @ RegisterError::NotEnded { .. }) => {
            return Err(AdminError(StatusCode::CONFLICT, e.to_string()));
        }
        Err(RegisterError::UnknownMpp(_)) => return Err(no_mpp(mpp)),
        Err(e) => return Err(bad(e.to_string())),
    }
    let due = RegisterDue {
        mpp: found.caller_name.to_string(),
        kind: kind.as_str().to_owned(),
        period: period.to_string(),
    };
    let sending = app
        .store
        .send_register(due, app.clock.now())
        .await
        .map_err(internal)?;
    let asked = match sending {
        RegisterSending::Queued { sending } => Asked {
            state: "queued",
            sending,
        },
        RegisterSending::AlreadyWaiting { sending } => Asked {
            state: "waiting",
            sending,
        },
    };
    tracing::info!(
        mpp,
        kind = kind.as_str(),
        %period,
        sending = asked.sending,
        state = asked.state,
        "register e-mail asked by the operator"
    );
    Ok(asked)
}
