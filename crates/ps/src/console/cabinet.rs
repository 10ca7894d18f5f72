//! The MPP's cabinet in the browser: its daily and monthly registers, downloaded through the
//! very code of `/cabinet/v1/registers/…` (authorised by the session instead of a bearer token),
//! and its refunds with their state. The session names the MPP; nothing here takes an MPP from
//! the request, so an MPP sees only its own.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::texts::T;
use super::{Ctx, Role, e, require};
use crate::registers::Period;
use crate::registers::cabinet::{PageRefusal, register_for_page};
use crate::state::AppState;

/// Daily registers listed: the last two weeks of ended days.
const DAYS_LISTED: i32 = 14;
/// Monthly registers listed: the last six ended months.
const MONTHS_LISTED: i32 = 6;
/// The MPP's refunds listed, newest first.
const REFUND_ROWS_MAX: usize = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/cabinet", get(cabinet))
        .route("/console/cabinet/registers/{kind}/{file}", get(download))
}

/// The ended periods listed, newest first: days before today, months before this month, in the
/// operator's time zone (a register is final once its period is over).
fn periods(today: jiff::civil::Date) -> Vec<Period> {
    let mut listed = Vec::new();
    let mut day = today;
    for _ in 0..DAYS_LISTED {
        let Ok(before) = day.yesterday() else { break };
        day = before;
        listed.push(Period::Day(day));
    }
    let mut month = today.first_of_month();
    for _ in 0..MONTHS_LISTED {
        let Ok(before) = month.yesterday() else { break };
        month = before.first_of_month();
        listed.push(Period::Month(month));
    }
    listed
}

fn mpp_of(ctx: &Ctx) -> Result<String, Box<Response>> {
    let session = require(ctx, false)?;
    match &session.role {
        Role::Mpp(name) => Ok(name.clone()),
        Role::Operator => Err(Box::new(Redirect::to("/console").into_response())),
    }
}

async fn cabinet(State(app): State<AppState>, ctx: Ctx) -> Response {
    let mpp = match mpp_of(&ctx) {
        Ok(mpp) => mpp,
        Err(away) => return *away,
    };
    let refunds = match app
        .store
        .refund_views_of_mpp(mpp.clone(), REFUND_ROWS_MAX)
        .await
    {
        Ok(refunds) => refunds,
        Err(fault) => return ctx.fault(fault),
    };
    let today = ctx.now.to_zoned_datetime(app.zone.clone()).date();
    let mut days = String::new();
    let mut months = String::new();
    for period in periods(today) {
        let kind = period.kind().as_str();
        // Named as people write dates (`26.11.2026`, `11.2026`); the CSV link says which.
        let human = period.human();
        let item = format!(
            "<li><a class=\"register\" data-kind=\"{kind}\" data-period=\"{period}\" \
             href=\"/console/cabinet/registers/{kind}/{period}.xlsx\" download>{human} (xlsx)</a> · \
             <a class=\"register-csv\" data-kind=\"{kind}\" data-period=\"{period}\" \
             href=\"/console/cabinet/registers/{kind}/{period}.csv\" download \
             aria-label=\"CSV {human}\">CSV</a></li>"
        );
        match period {
            Period::Day(_) => days.push_str(&item),
            Period::Month(_) => months.push_str(&item),
        }
    }
    let name = app
        .catalog
        .get()
        .mpps
        .iter()
        .find(|(caller, _)| caller.as_str() == mpp)
        .map(|(_, m)| m.name.clone())
        .unwrap_or_else(|| mpp.clone());
    let body = format!(
        "<p class=\"muted\">{mpp_word}: <strong>{name}</strong> ({mpp})</p>\
         <section id=\"registers\" aria-labelledby=\"registers-h\"><h2 id=\"registers-h\">{registers}</h2>\
         <p class=\"muted\">{intro}</p><h3>{daily}</h3><ul class=\"daily\">{days}</ul>\
         <h3>{monthly}</h3><ul class=\"monthly\">{months}</ul></section>\
         <section aria-labelledby=\"refunds-h\"><h2 id=\"refunds-h\">{your_refunds}</h2>{table}</section>",
        mpp_word = ctx.t(T::Mpp),
        name = e(&name),
        mpp = e(&mpp),
        registers = ctx.t(T::Registers),
        intro = ctx.t(T::RegistersIntro),
        daily = ctx.t(T::Daily),
        monthly = ctx.t(T::Monthly),
        your_refunds = ctx.t(T::YourRefunds),
        table = super::operator::refunds_table(&ctx, &app, &refunds, false),
    );
    ctx.page(StatusCode::OK, ctx.t(T::CabinetTitle), &body)
}

/// A register of the session's MPP, made by the cabinet's code.
async fn download(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((kind, file)): Path<(String, String)>,
) -> Response {
    let mpp = match mpp_of(&ctx) {
        Ok(mpp) => mpp,
        Err(away) => return *away,
    };
    let gone = (StatusCode::FORBIDDEN, T::CabinetGone);
    register_page(&ctx, &app, &mpp, &kind, &file, gone, "/console/cabinet").await
}

/// A register for a person in the browser: the file, or a page in their language saying why
/// not (the cabinet's API answers in JSON), with the way `back`; `gone` is what an MPP the
/// catalog no longer has is said as.
pub(super) async fn register_page(
    ctx: &Ctx,
    app: &AppState,
    mpp: &str,
    kind: &str,
    file: &str,
    gone: (StatusCode, T),
    back: &str,
) -> Response {
    let (status, text) = match register_for_page(app, mpp, kind, file).await {
        Ok(register) => return register,
        Err(PageRefusal::NotYet(ready_from)) => {
            let text = ctx.t(T::RegisterNotYet).replace("{from}", &ready_from);
            return ctx.notice(StatusCode::CONFLICT, T::Registers, &text, back);
        }
        Err(PageRefusal::NoSuch) => (StatusCode::NOT_FOUND, T::NoSuchThing),
        Err(PageRefusal::Busy) => (StatusCode::SERVICE_UNAVAILABLE, T::Busy),
        Err(PageRefusal::UnknownMpp) => gone,
        Err(PageRefusal::Fault) => (StatusCode::INTERNAL_SERVER_ERROR, T::Fault),
    };
    ctx.notice(status, T::Registers, ctx.t(text), back)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn ended_days_and_months_are_listed_newest_first() {
        let listed = periods(date(2026, 3, 2));
        assert_eq!(listed.first(), Some(&Period::Day(date(2026, 3, 1))));
        assert_eq!(listed.get(13), Some(&Period::Day(date(2026, 2, 16))));
        assert_eq!(listed.get(14), Some(&Period::Month(date(2026, 2, 1))));
        assert_eq!(listed.last(), Some(&Period::Month(date(2025, 9, 1))));
        assert_eq!(listed.len(), 20);
    }
}
