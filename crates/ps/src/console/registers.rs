//! The operator's registers in the browser: any MPP's register downloaded from the overview's
//! table of register e-mails, and an e-mail sent again (`registers::resend`, as the admin API).

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::texts::T;
use super::{Ctx, require};
use crate::registers::resend;
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
            get(super::operator::back_to_overview).post(send),
        )
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
    ctx: Ctx,
    Path((mpp, kind, file)): Path<(String, String, String)>,
) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    let gone = (StatusCode::NOT_FOUND, T::NoSuchThing);
    super::cabinet::register_page(&ctx, &app, &mpp, &kind, &file, gone, "/console/operator").await
}

/// The row's form names the sending it showed, so that the form sent twice (a double click, a
/// reload) sends one e-mail.
async fn send(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((mpp, kind, period)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(away) => return *away,
    };
    let seen = form.get("sending").and_then(|n| n.parse::<u32>().ok());
    match resend::ask(&app, &mpp, &kind, &period, seen).await {
        Ok(_) => Redirect::to("/console/operator?done=register").into_response(),
        Err(resend::Refusal::Store(fault)) => ctx.fault(fault),
        // The form sent twice (a double click, a reload): said in the page's words.
        Err(refusal @ resend::Refusal::AskedSince { sending }) => ctx.notice(
            refusal.status(),
            T::SendAgain,
            &ctx.t(T::SentAlready)
                .replace("{sending}", &sending.to_string()),
            "/console/operator",
        ),
        Err(refusal) => ctx.notice(
            refusal.status(),
            T::SendAgain,
            &super::admin_refused(&ctx, &refusal.to_string()),
            "/console/operator",
        ),
    }
}
