//! The operator's registers in the browser: any MPP's register downloaded from the overview's
//! table of register e-mails, and an e-mail sent again, by the admin API's own code
//! (`admin_api::registers`).

use axum::Extension;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::texts::T;
use super::{Ctx, require};
use crate::registers::cabinet::{Makers, PageRefusal, register_for_page};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console/operator/registers/{mpp}/{kind}/{file}",
            get(download),
        )
        // The form's address opened again leads back to the overview, not to "no such page".
        .route(
            "/console/operator/registers/{mpp}/{kind}/{period}/send",
            get(back_to_overview).post(send),
        )
}

async fn back_to_overview() -> Response {
    Redirect::to("/console/operator").into_response()
}

/// The link a row of the register e-mails' table gives to its register.
pub(super) fn file_link(mpp: &str, kind: &str, period: &str) -> String {
    format!(
        "/console/operator/registers/{}/{}/{}.xlsx",
        super::operator::path_segment(mpp),
        super::operator::path_segment(kind),
        super::operator::path_segment(period),
    )
}

/// The form's action that sends a row's register again.
pub(super) fn send_action(mpp: &str, kind: &str, period: &str) -> String {
    format!(
        "/console/operator/registers/{}/{}/{}/send",
        super::operator::path_segment(mpp),
        super::operator::path_segment(kind),
        super::operator::path_segment(period),
    )
}

async fn download(
    State(app): State<AppState>,
    Extension(makers): Extension<Makers>,
    ctx: Ctx,
    Path((mpp, kind, file)): Path<(String, String, String)>,
) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    let (status, text) = match register_for_page(&app, &makers, &mpp, &kind, &file).await {
        Ok(register) => return register,
        Err(PageRefusal::NotYet) => (StatusCode::CONFLICT, T::RegisterNotYet),
        Err(PageRefusal::NoSuch | PageRefusal::UnknownMpp) => {
            (StatusCode::NOT_FOUND, T::NoSuchThing)
        }
        Err(PageRefusal::Busy) => (StatusCode::SERVICE_UNAVAILABLE, T::Busy),
        Err(PageRefusal::Fault) => (StatusCode::INTERNAL_SERVER_ERROR, T::Fault),
    };
    ctx.notice(status, T::Registers, ctx.t(text), "/console/operator")
}

async fn send(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((mpp, kind, period)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    if let Err(away) = super::operator_form(&ctx, &app, req).await {
        return *away;
    }
    match crate::admin_api::send_register(&app, &mpp, &kind, &period).await {
        Ok(_) => Redirect::to("/console/operator?done=register").into_response(),
        Err(refusal) => {
            let (status, why) = refusal.parts();
            ctx.notice(status, T::SendAgain, why, "/console/operator")
        }
    }
}
