//! The operator's console: the day at a glance, refunds and their delivery (retry), a purchase
//! found and its timeline (cancel of a Custom payment), organizations (suspend, block, reopen),
//! register e-mails, and the participants, viewed and edited with the admin API's validation
//! (the MPPs' cabinet tokens: [`super::mpps`]).
//! Every change calls the admin API's use case, not its HTTP.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use tolem_wire::Amount;

use super::texts::T;
use super::{Ctx, e, require};
use crate::catalog::OrganizationStatus;
use crate::domain::refund::Refusal;
use crate::domain::{Kind, Payment, PaymentId, RefundId, RefundKind, RefundStatus, Status};
use crate::payments::{self, CancelOrder, Cancelled};
use crate::state::AppState;
use crate::store::{Attempt, AttemptOutcome, OutboxKind, RefundView, Replay};

/// Undelivered refunds shown on the console's first page; the admin API pages through the rest.
const UNDELIVERED_ROWS_MAX: usize = 100;
/// Recent refunds shown after the undelivered ones.
const RECENT_ROWS_MAX: usize = 30;
/// Register e-mails shown.
const REGISTER_MAIL_ROWS_MAX: usize = 30;
/// Purchases a search lists.
const FOUND_ROWS_MAX: usize = 50;
/// Refunds of one purchase shown in its timeline.
const PURCHASE_REFUNDS_MAX: usize = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/operator", get(overview))
        .route("/console/operator/search", get(search))
        .route("/console/operator/payments/{id}", get(purchase))
        // A form's address opened again (a reload of the page a refused form answered with)
        // leads back to the page the form was on, not to "no such page".
        .route(
            "/console/operator/payments/{id}/cancel",
            get(back_to_purchase).post(cancel),
        )
        .route(
            "/console/operator/refunds/{id}/retry",
            get(back_to_overview).post(retry),
        )
        .route(
            "/console/operator/organizations/{bin}/status",
            get(back_to_overview).post(status),
        )
        .route("/console/operator/participants", get(participants))
        .route(
            "/console/operator/edit/{kind}/{key}",
            get(edit_form).post(edit_save),
        )
}

async fn back_to_purchase(ctx: Ctx, Path(id): Path<String>) -> Response {
    match id.parse::<i64>() {
        Ok(id) => super::back_to(&ctx, &format!("/console/operator/payments/{id}")),
        Err(_) => super::back_to(&ctx, "/console/operator"),
    }
}

pub(super) async fn back_to_overview(ctx: Ctx) -> Response {
    super::back_to(&ctx, "/console/operator")
}

/// The outcome of a form, passed on through the redirect that follows it (`?done=`): one of a
/// few fixed words, so nothing the request says is shown.
fn done_message(ctx: &Ctx) -> String {
    let text = match ctx.query("done") {
        Some("retried") => Some(T::Retried),
        Some("status") => Some(T::StatusChanged),
        Some("cancelled") => Some(T::CancelPlaced),
        Some("saved") => Some(T::Saved),
        Some("register") => Some(T::RegisterAsked),
        Some("token-revoked") => Some(T::CabinetTokenRevoked),
        _ => None,
    };
    // An outcome the page opens with holds the focus, so that a screen reader says it: a live
    // region says only what changes after the page loaded.
    let (class, text, focus) = match text {
        Some(text) => ("message", ctx.t(text), " tabindex=\"-1\" autofocus"),
        None => ("muted", "", ""),
    };
    format!(
        "<p id=\"message\" class=\"{class}\" role=\"status\" aria-live=\"polite\"{focus}>{text}</p>"
    )
}

/// The MPPs of the catalog, by caller name.
fn mpp_names(app: &AppState) -> Vec<String> {
    let mut names: Vec<String> = app
        .catalog
        .get()
        .mpps
        .keys()
        .map(|name| name.as_str().to_owned())
        .collect();
    names.sort();
    names
}

pub(super) fn status_word(ctx: &Ctx, status: OrganizationStatus) -> &'static str {
    ctx.t(match status {
        OrganizationStatus::Active => T::Active,
        OrganizationStatus::Suspended => T::Suspended,
        OrganizationStatus::Blocked => T::Blocked,
    })
}

/// A refund's state in the page's language (the machine value stays in `data-status`).
fn refund_status_word(ctx: &Ctx, status: RefundStatus) -> &'static str {
    ctx.t(match status {
        RefundStatus::QrCreated => T::RefundQrCreated,
        RefundStatus::Identified => T::RefundIdentified,
        RefundStatus::Pending => T::RefundPending,
        RefundStatus::Completed => T::RefundCompleted,
        RefundStatus::Failed => T::RefundFailed,
        RefundStatus::Expired => T::RefundExpired,
    })
}

/// A purchase's state in the page's language (the machine value stays in `data-status`).
/// A purchase's kind in the page's language.
fn kind_word(ctx: &Ctx, kind: Kind) -> &'static str {
    ctx.t(match kind {
        Kind::Dynamic => T::KindDynamic,
        Kind::Link => T::KindLink,
        Kind::Static => T::KindStatic,
        Kind::Custom => T::KindCustom,
    })
}

/// A refund's kind in the page's language.
fn refund_kind_word(ctx: &Ctx, kind: RefundKind) -> &'static str {
    ctx.t(match kind {
        RefundKind::Qr => T::RefundKindQr,
        RefundKind::Direct => T::RefundKindDirect,
        RefundKind::Cancel => T::RefundKindCancel,
    })
}

fn payment_status_word(ctx: &Ctx, status: Status) -> &'static str {
    ctx.t(match status {
        Status::Created => T::PaymentCreated,
        Status::Scanned => T::PaymentScanned,
        Status::Confirmed => T::PaymentConfirmed,
        Status::Cancelled => T::PaymentCancelled,
        Status::Failed => T::PaymentFailed,
        Status::Expired => T::PaymentExpired,
    })
}

fn status_value(status: OrganizationStatus) -> &'static str {
    match status {
        OrganizationStatus::Active => "active",
        OrganizationStatus::Suspended => "suspended",
        OrganizationStatus::Blocked => "blocked",
    }
}

/// The refunds table (`#refunds`): undelivered first, then recent; a retry button on each one
/// still to deliver. The cabinet shows the same table without buttons.
pub(super) fn refunds_table(ctx: &Ctx, app: &AppState, rows: &[RefundView], retry: bool) -> String {
    if rows.is_empty() {
        return format!(
            "<p id=\"refunds\" class=\"muted\">{}</p>",
            ctx.t(T::NoRefunds)
        );
    }
    let mut html = format!(
        "<div class=\"table\"><table id=\"refunds\"><thead><tr><th>{}</th><th>{}</th>\
         <th class=\"num\">{}</th><th>{}</th><th>{}</th><th class=\"num\">{}</th><th>{}</th>{}</tr>\
         </thead><tbody>",
        ctx.t(T::Id),
        ctx.t(T::Payment),
        ctx.t(T::Amount),
        ctx.t(T::Mpp),
        ctx.t(T::Status),
        ctx.t(T::Attempts),
        ctx.t(T::LastError),
        if retry {
            ctx.actions_header()
        } else {
            String::new()
        },
    );
    for view in rows {
        let r = &view.refund;
        let status = r.effective_status(ctx.now);
        let undelivered = status == RefundStatus::Pending;
        let payment = match (r.payment_id, retry) {
            (Some(id), true) => format!("<a href=\"/console/operator/payments/{id}\">{id}</a>"),
            (Some(id), false) => id.to_string(),
            (None, _) => String::new(),
        };
        let mut state = e(refund_status_word(ctx, status));
        if view.flagged {
            state.push_str(&format!(" <strong>({})</strong>", ctx.t(T::Flagged)));
        }
        if let Some(result) = &r.mpp_result {
            state.push_str(&format!(" <span class=\"muted\">{}</span>", e(result)));
        }
        // A node holds its delivery now (its claim's lease runs): an error shown is the last
        // attempt's, not this one's, and a retry would ask for what is happening.
        let in_flight = undelivered && under_way(view, ctx.now);
        if let Some(next) = view.next_attempt_at.filter(|_| undelivered) {
            let when = if in_flight || next <= ctx.now {
                let word = match (in_flight, view.last_error.is_some()) {
                    (true, true) => T::AttemptNowAfterError,
                    (true, false) => T::AttemptNow,
                    (false, _) => T::AttemptDue,
                };
                format!("<span class=\"attempt-now\">{}</span>", ctx.t(word))
            } else {
                format!("{} {}", ctx.t(T::NextAttempt), ctx.time(app, next))
            };
            state.push_str(&format!("<br><span class=\"muted\">{when}</span>"));
        }
        let button = if retry && undelivered && !in_flight {
            format!(
                "<td><form class=\"inline\" method=\"post\" action=\"/console/operator/refunds/{id}/retry\">{csrf}\
                 <button class=\"retry\" type=\"submit\" aria-label=\"{label} № {id}\">{label}</button></form></td>",
                id = r.id,
                csrf = ctx.csrf_field(),
                label = ctx.t(T::Retry)
            )
        } else if retry {
            "<td></td>".to_owned()
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<tr data-refund-id=\"{id}\" data-status=\"{status_code}\"><td>{id}</td><td>{payment}</td>\
             <td class=\"num\">{amount}</td><td>{mpp}</td><td class=\"status\" data-status=\"{status_code}\">{state}</td>\
             <td class=\"num attempts\">{attempts}</td><td class=\"last-error\">{error}</td>{button}</tr>",
            id = r.id,
            status_code = status.as_str(),
            amount = r.amount.map(|a| ctx.money(a)).unwrap_or_default(),
            mpp = r.owner.as_ref().map(|o| e(o.mpp.as_str())).unwrap_or_default(),
            attempts = view.attempts,
            error = view.last_error.as_deref().map(e).unwrap_or_default(),
        ));
    }
    html.push_str("</tbody></table></div>");
    html
}

async fn overview(State(app): State<AppState>, ctx: Ctx) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    match overview_body(&app, &ctx).await {
        Ok(body) => ctx.page(StatusCode::OK, ctx.t(T::OperatorTitle), &body),
        Err(fault) => ctx.fault(fault),
    }
}

async fn overview_body(app: &AppState, ctx: &Ctx) -> Result<String, crate::store::StoreError> {
    // Today in the operator's time zone, from local midnight to the next.
    let today = ctx.now.to_zoned_datetime(app.zone.clone()).date();
    let span = crate::registers::Period::Day(today)
        .bounds(&app.zone)
        .unwrap_or((ctx.now, ctx.now));
    let totals = app.store.totals(mpp_names(app), span, ctx.now).await?;
    let mut refunds = app
        .store
        .refund_views(Some(RefundStatus::Pending), None, UNDELIVERED_ROWS_MAX)
        .await?;
    let recent = app.store.refund_views(None, None, RECENT_ROWS_MAX).await?;
    for view in recent {
        // A return QR no customer used names no purchase and moves no money: not a refund to
        // show here (a purchase's page and the admin API still list it).
        if view.refund.payment_id.is_none() {
            continue;
        }
        if !refunds.iter().any(|r| r.refund.id == view.refund.id) {
            refunds.push(view);
        }
    }
    let mails = app
        .store
        .register_deliveries(None, REGISTER_MAIL_ROWS_MAX)
        .await?;

    let mut body = done_message(ctx);
    body.push_str(&format!(
        "<section aria-labelledby=\"today-h\"><h2 id=\"today-h\">{today_word} · {date}</h2>\
         <div id=\"today\" class=\"cards\" data-payments=\"{payments}\" data-paid-tiyn=\"{paid}\" \
         data-refunds=\"{refunds_n}\" data-refunded-tiyn=\"{refunded}\">\
         <div class=\"card\"><div>{payments_word}</div><div class=\"big payments\">{payments}</div><div class=\"paid\">{paid_h}</div></div>\
         <div class=\"card\"><div>{refunds_word}</div><div class=\"big refunds\">{refunds_n}</div><div class=\"refunded\">{refunded_h}</div></div>\
         </div></section>",
        today_word = ctx.t(T::Today),
        date = today.strftime("%d.%m.%Y"),
        payments = totals.payments,
        paid = totals.paid.tiyn(),
        paid_h = ctx.money(totals.paid),
        refunds_n = totals.refunds,
        refunded = totals.refunded.tiyn(),
        refunded_h = ctx.money(totals.refunded),
        payments_word = ctx.t(T::TodayPayments),
        refunds_word = ctx.t(T::TodayRefunds),
    ));
    body.push_str(&search_form(ctx, "", true));
    body.push_str(&format!(
        "<section aria-labelledby=\"refunds-h\"><h2 id=\"refunds-h\">{}</h2><p class=\"muted\">{}</p>{}</section>",
        ctx.t(T::Refunds),
        ctx.t(T::RefundsIntro),
        refunds_table(ctx, app, &refunds, true)
    ));
    body.push_str(&organizations(ctx, app));
    body.push_str(&register_mails(ctx, app, &mails));
    body.push_str(&format!(
        "<p><a id=\"participants\" href=\"/console/operator/participants\">{}</a></p>",
        ctx.t(T::Participants)
    ));
    Ok(body)
}

/// The search form; under its own heading on the overview, under the page's on the results.
fn search_form(ctx: &Ctx, value: &str, heading: bool) -> String {
    let title = if heading {
        format!("<h2 id=\"search-h\">{}</h2>", ctx.t(T::Search))
    } else {
        String::new()
    };
    format!(
        "<section aria-label=\"{label_all}\">{title}\
         <form method=\"get\" action=\"/console/operator/search\" role=\"search\" class=\"row\">\
         <div><label for=\"search\">{label}</label>\
         <input id=\"search\" name=\"q\" value=\"{value}\" required maxlength=\"200\"></div>\
         <button id=\"search-go\" type=\"submit\">{find}</button></form></section>",
        label_all = ctx.t(T::Search),
        label = ctx.t(T::SearchLabel),
        value = super::ev(value),
        find = ctx.t(T::Find),
    )
}

fn organizations(ctx: &Ctx, app: &AppState) -> String {
    let catalog = app.catalog.get();
    let mut orgs: Vec<_> = catalog.organizations.values().collect();
    orgs.sort_by(|a, b| a.bin.cmp(&b.bin));
    let mut html = format!(
        "<section aria-labelledby=\"organizations-h\"><h2 id=\"organizations-h\">{}</h2>\
         <div class=\"table\"><table id=\"organizations\"><thead><tr><th>{}</th><th>{}</th><th>{}</th>{}</tr></thead><tbody>",
        ctx.t(T::Organizations),
        ctx.t(T::Bin),
        ctx.t(T::Name),
        ctx.t(T::Status),
        ctx.actions_header(),
    );
    for org in orgs {
        let buttons: String = [
            (OrganizationStatus::Active, T::Reopen),
            (OrganizationStatus::Suspended, T::Suspend),
            (OrganizationStatus::Blocked, T::Block),
        ]
        .iter()
        .filter(|(status, _)| *status != org.status)
        .map(|(status, label)| {
            // Said with the organization's name: a screen reader reaching it by Tab hears whose.
            format!(
                "<button name=\"status\" value=\"{}\" type=\"submit\" class=\"secondary\" \
                 aria-label=\"{} {}\">{}</button> ",
                status_value(*status),
                ctx.t(*label),
                e(&org.name),
                ctx.t(*label)
            )
        })
        .collect();
        html.push_str(&format!(
            "<tr data-bin=\"{bin}\" data-status=\"{value}\"><td><a class=\"organization\" href=\"{page}\">{bin}</a></td><td>{name}</td><td class=\"status\">{word}</td>\
             <td><form class=\"inline\" method=\"post\" action=\"/console/operator/organizations/{bin_path}/status\">{csrf}{buttons}</form></td></tr>",
            bin = e(&org.bin),
            bin_path = e(&path_segment(&org.bin)),
            page = e(&super::organization::href(&org.bin)),
            value = status_value(org.status),
            name = e(&org.name),
            word = status_word(ctx, org.status),
            csrf = ctx.csrf_field(),
        ));
    }
    html.push_str("</tbody></table></div></section>");
    html
}

fn register_mails(
    ctx: &Ctx,
    app: &AppState,
    mails: &[crate::store::RegisterDeliveryView],
) -> String {
    let mut html = format!(
        "<section aria-labelledby=\"mails-h\"><h2 id=\"mails-h\">{}</h2><div class=\"table\">\
         <table id=\"register-mails\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th class=\"num\">{}</th><th>{}</th>{}</tr></thead><tbody>",
        ctx.t(T::RegisterMails),
        ctx.t(T::Mpp),
        ctx.t(T::Kind),
        ctx.t(T::Period),
        ctx.t(T::SentAt),
        ctx.t(T::Attempts),
        ctx.t(T::LastError),
        ctx.actions_header(),
    );
    for mail in mails {
        let sent = match (mail.sent_at, &mail.sent_to) {
            (Some(at), to) => format!(
                "{} {}",
                ctx.time(app, at),
                to.as_deref().map(e).unwrap_or_default()
            ),
            (None, _) if mail.flagged => ctx.t(T::Flagged).to_owned(),
            (None, _) => ctx.t(T::Queued).to_owned(),
        };
        let (mpp, kind, period) = (&mail.due.mpp, &mail.due.kind, &mail.due.period);
        let kind_word = match kind.as_str() {
            "daily" => ctx.t(T::DailyOne).to_owned(),
            "monthly" => ctx.t(T::MonthlyOne).to_owned(),
            other => e(other),
        };
        html.push_str(&format!(
            "<tr data-mail-id=\"{}\"><td>{}</td><td>{}</td><td><a class=\"register-file\" href=\"{}\">{}</a></td><td class=\"status\">{}</td><td class=\"num attempts\">{}</td><td class=\"last-error\">{}</td>\
             <td><form class=\"inline\" method=\"post\" action=\"{}\">{}<input type=\"hidden\" name=\"sending\" value=\"{}\"><button class=\"send-again\" type=\"submit\" aria-label=\"{} {} {}\">{}</button></form></td></tr>",
            mail.id,
            e(mpp),
            kind_word,
            e(&super::registers::file_link(mpp, kind, period)),
            e(period),
            sent,
            mail.attempts,
            mail.last_error.as_deref().map(e).unwrap_or_default(),
            e(&super::registers::send_action(mpp, kind, period)),
            ctx.csrf_field(),
            mail.sendings,
            ctx.t(T::SendAgain),
            e(mpp),
            e(period),
            ctx.t(T::SendAgain),
        ));
    }
    if mails.is_empty() {
        html.push_str(&format!(
            "<tr><td colspan=\"7\" class=\"muted\">{}</td></tr>",
            ctx.t(T::NoMails)
        ));
    }
    html.push_str("</tbody></table></div></section>");
    html
}

/// A catalog key made safe for a path segment (BINs and caller names are plain already).
pub(super) fn path_segment(key: &str) -> String {
    form_urlencoded::byte_serialize(key.as_bytes()).collect()
}

async fn search(State(app): State<AppState>, ctx: Ctx) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    let text = ctx.query("q").unwrap_or_default().trim().to_owned();
    if text.is_empty() || text.len() > 200 {
        return Redirect::to("/console/operator").into_response();
    }
    let found = match app
        .store
        .search_payments(text.clone(), mpp_names(&app), FOUND_ROWS_MAX)
        .await
    {
        Ok(found) => found,
        Err(fault) => return ctx.fault(fault),
    };
    if let [one] = found.as_slice() {
        return purchase_page(&app, &ctx, one.clone()).await;
    }
    let mut body = search_form(&ctx, &text, false);
    if found.is_empty() {
        // A Static or Custom QR's token names no one purchase: said, with where to look.
        let catalog = app.catalog.get();
        let said = match catalog.token(&text) {
            Some(crate::catalog::CatalogToken::Static { trade_point_id }) => {
                let point = catalog
                    .trade_points
                    .get(&trade_point_id)
                    .map(|t| format!("{trade_point_id} «{}»", t.name))
                    .unwrap_or_else(|| trade_point_id.to_string());
                ctx.t(T::StaticTokenFound).replace("{point}", &point)
            }
            Some(crate::catalog::CatalogToken::Custom { service_id }) => {
                let service = catalog
                    .services
                    .get(&service_id)
                    .map(|s| format!("{service_id} «{}»", s.name.get(ctx.locale)))
                    .unwrap_or_else(|| service_id.to_string());
                ctx.t(T::ServiceTokenFound).replace("{service}", &service)
            }
            None => ctx.t(T::NothingFound).to_owned(),
        };
        body.push_str(&format!(
            "<p id=\"results\" class=\"muted\" role=\"status\" aria-live=\"polite\">{}</p>",
            e(&said)
        ));
    } else {
        body.push_str(&format!(
            "<p role=\"status\" aria-live=\"polite\">{}: {}</p><div class=\"table\"><table id=\"results\"><thead><tr>\
             <th>{}</th><th>{}</th><th class=\"num\">{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            ctx.t(T::Found),
            found.len(),
            ctx.t(T::Id),
            ctx.t(T::Kind),
            ctx.t(T::Amount),
            ctx.t(T::Status),
            ctx.t(T::Mpp),
            ctx.t(T::Customer),
        ));
        for p in &found {
            body.push_str(&format!(
                "<tr data-payment-id=\"{id}\"><td><a href=\"/console/operator/payments/{id}\">{id}</a></td><td>{}</td>\
                 <td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                kind_word(&ctx, p.kind),
                p.amount.map(|a| ctx.money(a)).unwrap_or_default(),
                payment_status_word(&ctx, p.effective_status(ctx.now, &app.policy)),
                p.owner.as_ref().map(|o| e(o.mpp.as_str())).unwrap_or_default(),
                p.owner.as_ref().map(|o| e(&o.customer_id)).unwrap_or_default(),
                id = p.id,
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    ctx.page(StatusCode::OK, ctx.t(T::Search), &body)
}

async fn purchase(State(app): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    let not_found = || {
        ctx.notice(
            StatusCode::NOT_FOUND,
            T::Payment,
            ctx.t(T::NoSuchThing),
            "/console/operator",
        )
    };
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    match app.store.payment(PaymentId::new(id)).await {
        Ok(Some(p)) => purchase_page(&app, &ctx, p).await,
        Ok(None) => not_found(),
        Err(fault) => ctx.fault(fault),
    }
}

/// One event of the timeline: `li[data-event]`, its time when the store keeps one.
fn event(ctx: &Ctx, app: &AppState, kind: &str, at: Option<jiff::Timestamp>, text: &str) -> String {
    let time = at
        .map(|t| format!("<time datetime=\"{t}\">{}</time> — ", ctx.time(app, t)))
        .unwrap_or_default();
    format!("<li data-event=\"{kind}\">{time}{text}</li>")
}

/// A refund's delivery in the timeline: one `li[data-event=delivery]` per attempt kept (its
/// start, end, node and outcome), a note for the attempts not kept (one in flight, those made
/// before attempts were kept, those past the kept window), and the next attempt when one is due.
fn deliveries(ctx: &Ctx, app: &AppState, view: &RefundView, kept: &[Attempt]) -> String {
    let r = &view.refund;
    let mut html = String::new();
    for a in kept {
        let (word, outcome) = match a.outcome {
            AttemptOutcome::Delivered => (T::OutcomeDelivered, "delivered"),
            AttemptOutcome::Refused => (T::OutcomeRefused, "refused"),
            AttemptOutcome::Failed => (T::OutcomeFailed, "failed"),
        };
        let error = a
            .error
            .as_deref()
            .map(|why| format!(": <span class=\"error-text\">{}</span>", e(why)))
            .unwrap_or_default();
        html.push_str(&format!(
            "<li data-event=\"delivery\" data-refund-id=\"{id}\" data-attempt=\"{n}\" \
             data-outcome=\"{outcome}\"><time datetime=\"{start}\">{start_h}</time> → \
             <time datetime=\"{end}\">{end_h}</time> — {delivery} {id}, {attempt} {n} \
             ({node_word} <span class=\"node\">{node}</span>): \
             <strong class=\"outcome\">{word}</strong>{error}</li>",
            id = r.id,
            n = a.number,
            start = a.started_at,
            start_h = ctx.time(app, a.started_at),
            end = a.ended_at,
            end_h = ctx.time(app, a.ended_at),
            delivery = ctx.t(T::EvDelivery),
            attempt = ctx.t(T::Attempt),
            node_word = ctx.t(T::Node),
            node = e(&a.node),
            word = ctx.t(word),
        ));
    }
    let kept_n = u32::try_from(kept.len()).unwrap_or(u32::MAX);
    let mut not_kept = view.attempts.saturating_sub(kept_n);
    // An attempt under way is counted before it is kept: said as what it is.
    let in_flight = view.refund.effective_status(ctx.now) == RefundStatus::Pending
        && under_way(view, ctx.now)
        && not_kept > 0;
    if in_flight {
        not_kept -= 1;
        html.push_str(&format!(
            "<li data-event=\"delivery-now\" data-refund-id=\"{}\" class=\"muted\">{} {}: {}</li>",
            r.id,
            ctx.t(T::EvDelivery),
            r.id,
            ctx.t(T::AttemptNow)
        ));
    }
    if not_kept > 0 {
        html.push_str(&format!(
            "<li data-event=\"delivery-not-kept\" data-refund-id=\"{}\" class=\"muted\">{}: {not_kept}</li>",
            r.id,
            ctx.t(T::AttemptsNotKept)
        ));
    }
    if let Some(next) = view.next_attempt_at.filter(|_| !in_flight) {
        html.push_str(&format!(
            "<li data-event=\"delivery-next\" data-refund-id=\"{}\" class=\"muted\">{} {}</li>",
            r.id,
            ctx.t(T::NextAttempt),
            ctx.time(app, next)
        ));
    }
    html
}

/// Whether a node is delivering the refund now: its claim's lease has not run out.
fn under_way(view: &RefundView, now: jiff::Timestamp) -> bool {
    view.lease.as_ref().is_some_and(|lease| lease.until > now)
}

/// What the cancel form of a purchase page shows again after a refusal: the amount as typed and
/// why it was refused (escaped).
struct CancelAgain {
    typed: String,
    why: String,
}

async fn purchase_page(app: &AppState, ctx: &Ctx, p: Payment) -> Response {
    purchase_page_with(app, ctx, p, None).await
}

async fn purchase_page_with(
    app: &AppState,
    ctx: &Ctx,
    p: Payment,
    again: Option<CancelAgain>,
) -> Response {
    let refunds = match app
        .store
        .refund_views_of_payment(p.id, PURCHASE_REFUNDS_MAX)
        .await
    {
        Ok(refunds) => refunds,
        Err(fault) => return ctx.fault(fault),
    };
    let ids = refunds.iter().map(|v| v.refund.id.get()).collect();
    let attempts = match app.store.outbox_attempts(OutboxKind::Refund, ids).await {
        Ok(attempts) => attempts,
        Err(fault) => return ctx.fault(fault),
    };
    let catalog = app.catalog.get();
    let point = catalog.trade_points.get(&p.trade_point_id);
    let status = p.effective_status(ctx.now, &app.policy);
    let row = |label: T, value: String| format!("<dt>{}</dt><dd>{value}</dd>", ctx.t(label));
    let mut details = String::new();
    details.push_str(&row(T::Id, p.id.to_string()));
    details.push_str(&row(
        T::Kind,
        format!(
            "<span data-kind=\"{}\">{}</span>",
            p.kind.as_str(),
            kind_word(ctx, p.kind)
        ),
    ));
    details.push_str(&row(
        T::Status,
        format!(
            "<span class=\"status\" data-status=\"{}\">{}</span>",
            status.as_str(),
            payment_status_word(ctx, status)
        ),
    ));
    details.push_str(&row(
        T::Amount,
        p.amount.map(|a| ctx.money(a)).unwrap_or_default(),
    ));
    // What went back, so that a purchase refunded whole does not read as merely paid: every
    // refund of it, not only those the page lists.
    let (back, on_the_way) = if refunds.is_empty() {
        (Amount::ZERO, Amount::ZERO)
    } else {
        match app.store.refunded_of(p.id).await {
            Ok(sums) => sums,
            Err(fault) => return ctx.fault(fault),
        }
    };
    if !back.is_zero() || !on_the_way.is_zero() {
        let way = format!("{} {}", ctx.money(on_the_way), ctx.t(T::RefundsOnTheirWay));
        let text = match (back.is_zero(), on_the_way.is_zero()) {
            (false, true) => ctx.money(back),
            (true, false) => way,
            _ => format!("{} ({way})", ctx.money(back)),
        };
        details.push_str(&row(
            T::Refunded,
            format!("<span id=\"refunded\">{text}</span>"),
        ));
    }
    details.push_str(&row(
        T::TradePoint,
        format!(
            "{} {}",
            p.trade_point_id,
            point.map(|t| e(&t.name)).unwrap_or_default()
        ),
    ));
    if let Some(point) = point {
        let org = catalog
            .organizations
            .get(&point.organization_bin)
            .map(|o| e(&o.name))
            .unwrap_or_default();
        details.push_str(&row(
            T::Organization,
            format!("{} {org}", e(&point.organization_bin)),
        ));
    }
    if let Some(owner) = &p.owner {
        details.push_str(&row(T::Mpp, e(owner.mpp.as_str())));
        details.push_str(&row(T::Customer, e(&owner.customer_id)));
    }
    if let Some(token) = &p.qr_token {
        details.push_str(&row(T::Token, format!("<code>{}</code>", e(token))));
    }

    let mut timeline = String::new();
    timeline.push_str(&event(
        ctx,
        app,
        "created",
        Some(p.created_at),
        ctx.t(T::EvCreated),
    ));
    if let Some(owner) = &p.owner {
        timeline.push_str(&event(
            ctx,
            app,
            "scan",
            p.scanned_at,
            &format!(
                "{}: {} / {}",
                ctx.t(T::EvScan),
                e(owner.mpp.as_str()),
                e(&owner.customer_id)
            ),
        ));
    }
    if p.checkout_response.is_some() {
        // Purchases checked out before the time was kept have none: shown without one.
        let until = p
            .confirm_until
            .map(|t| ctx.time(app, t))
            .unwrap_or_default();
        timeline.push_str(&event(
            ctx,
            app,
            "checkout",
            p.checkout_at,
            &format!("{} {until}", ctx.t(T::EvCheckout)),
        ));
    }
    if let Some(verdict) = &p.verdict {
        let mut text = format!("{}: {}", ctx.t(T::EvNotify), e(verdict));
        if let Some(id) = &p.mpp_payment_id {
            text.push_str(&format!(" ({})", e(id)));
        }
        timeline.push_str(&event(ctx, app, "notify", p.finished_at, &text));
    } else if let Some(at) = p.finished_at {
        timeline.push_str(&event(
            ctx,
            app,
            "ended",
            Some(at),
            &format!(
                "{}: {}",
                ctx.t(T::EvEnded),
                payment_status_word(ctx, status)
            ),
        ));
    }
    // Oldest first, like the rest of the timeline.
    for view in refunds.iter().rev() {
        let r = &view.refund;
        let at = r.requested_at.or(Some(r.created_at));
        let result = r
            .mpp_result
            .as_deref()
            .map(|code| format!("; {}: {}", ctx.t(T::MppResult), e(code)))
            .unwrap_or_default();
        timeline.push_str(&event(
            ctx,
            app,
            "refund",
            at,
            &format!(
                "{} {} ({}): {} — <span data-status=\"{st}\">{word}</span>{result}",
                ctx.t(T::EvRefund),
                r.id,
                refund_kind_word(ctx, r.kind),
                r.amount.map(|a| ctx.money(a)).unwrap_or_default(),
                st = r.effective_status(ctx.now).as_str(),
                word = refund_status_word(ctx, r.effective_status(ctx.now)),
            ),
        ));
        timeline.push_str(&deliveries(
            ctx,
            app,
            view,
            attempts
                .get(&r.id.get())
                .map(Vec::as_slice)
                .unwrap_or_default(),
        ));
    }

    // After a cancellation the redirect says so here, first: the form below stays for another.
    let mut body = format!(
        "{}<dl id=\"purchase\" data-payment-id=\"{}\" data-status=\"{}\">{details}</dl>\
         <h2>{}</h2><ol id=\"timeline\" class=\"timeline\">{timeline}</ol>",
        done_message(ctx),
        p.id,
        status.as_str(),
        ctx.t(T::Timeline)
    );
    if !refunds.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2>{}",
            ctx.t(T::Refunds),
            refunds_table(ctx, app, &refunds, true)
        ));
    }
    if p.kind == Kind::Custom {
        let nonce = hex::encode(rand::random::<[u8; 12]>());
        // Refused, the form shows why beside the amount as it was typed.
        let (typed, why) = again.map_or((String::new(), String::new()), |a| {
            (
                a.typed,
                format!(
                    "<p id=\"cancel-error\" class=\"error\" role=\"alert\">{}</p>",
                    a.why
                ),
            )
        });
        body.push_str(&format!(
            "<section aria-labelledby=\"cancel-h\"><h2 id=\"cancel-h\">{title}</h2><p class=\"muted\">{intro}</p>{why}\
             <form method=\"post\" action=\"/console/operator/payments/{id}/cancel\" class=\"row\">{csrf}\
             <input type=\"hidden\" name=\"nonce\" value=\"{nonce}\">\
             <div><label for=\"cancel-amount\">{amount}</label><input id=\"cancel-amount\" name=\"amount\" inputmode=\"decimal\" size=\"14\" value=\"{typed}\"{focus}></div>\
             <button id=\"cancel\" type=\"submit\">{cancel}</button></form></section>",
            title = ctx.t(T::CancelTitle),
            intro = ctx.t(T::CancelIntro),
            id = p.id,
            csrf = ctx.csrf_field(),
            amount = ctx.t(T::CancelAmount),
            cancel = ctx.t(T::Cancel),
            typed = super::ev(&typed),
            focus = if why.is_empty() { "" } else { " autofocus aria-describedby=\"cancel-error\"" },
        ));
    }
    body.push_str(&format!(
        "<p><a href=\"/console/operator\">{}</a></p>",
        ctx.t(T::Back)
    ));
    ctx.page(
        StatusCode::OK,
        &format!("{} {}", ctx.t(T::Payment), p.id),
        &body,
    )
}

/// A cancellation of more than is left: how much is.
fn too_much(ctx: &Ctx, left: Amount) -> String {
    format!(
        "{} {}",
        ctx.t(T::CancelTooMuch),
        ctx.t(T::CancelLeft).replace("{left}", &ctx.money(left))
    )
}

async fn cancel(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(away) => return *away,
    };
    let back = format!("/console/operator/payments/{}", e(&id));
    let Ok(id) = id.parse::<i64>() else {
        return ctx.notice(
            StatusCode::NOT_FOUND,
            T::Cancel,
            ctx.t(T::NoSuchThing),
            "/console/operator",
        );
    };
    let typed = form
        .get("amount")
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    // A refusal shows the purchase again, its form keeping what was typed, with why.
    let again = |why: String| {
        let (app, ctx, typed, back) = (&app, &ctx, typed.clone(), back.clone());
        async move {
            match app.store.payment(PaymentId::new(id)).await {
                Ok(Some(p)) => {
                    let mut page =
                        purchase_page_with(app, ctx, p, Some(CancelAgain { typed, why })).await;
                    if page.status() == StatusCode::OK {
                        *page.status_mut() = StatusCode::BAD_REQUEST;
                    }
                    page
                }
                Ok(None) => ctx.notice(
                    StatusCode::NOT_FOUND,
                    T::Cancel,
                    ctx.t(T::NoSuchThing),
                    "/console/operator",
                ),
                Err(_) => ctx.notice(StatusCode::BAD_REQUEST, T::Cancel, &why, &back),
            }
        }
    };
    let amount = match Some(typed.as_str()).filter(|t| !t.is_empty()) {
        None => None,
        // 0,00 is no cancellation: refused before the question, which would offer to give back
        // nothing.
        Some(text) => match Amount::parse_typed(text).ok().filter(|a| !a.is_zero()) {
            Some(amount) => Some(amount),
            None => return again(e(ctx.t(T::BadAmount))).await,
        },
    };
    // Money goes back to a customer: asked once more, saying how much.
    if !form.confirmed() {
        // "All that is left" is said as an amount too, as it stands now; an amount over it is
        // refused before the question, which would offer to give it back.
        let left = match app.store.payment(PaymentId::new(id)).await {
            Ok(Some(Payment {
                amount: Some(total),
                ..
            })) => crate::refunds::refundable(&app, PaymentId::new(id), total)
                .await
                .ok(),
            _ => None,
        };
        let question = match (amount, left) {
            (Some(amount), Some(left)) if amount > left => {
                return again(too_much(&ctx, left)).await;
            }
            (Some(amount), Some(left)) if amount == left => ctx
                .t(T::ConfirmCancelLeft)
                .replace("{amount}", &ctx.money(left)),
            (Some(amount), _) => ctx
                .t(T::ConfirmCancelPart)
                .replace("{amount}", &ctx.money(amount)),
            (None, Some(left)) => ctx
                .t(T::ConfirmCancelLeft)
                .replace("{amount}", &ctx.money(left)),
            (None, None) => ctx.t(T::ConfirmCancelAll).to_owned(),
        }
        .replace("{id}", &id.to_string());
        let nonce = form.get("nonce").unwrap_or_default().to_owned();
        return ctx.confirm(
            &e(&question),
            &format!("/console/operator/payments/{id}/cancel"),
            &[("amount", typed.as_str()), ("nonce", nonce.as_str())],
            T::Cancel,
            &back,
        );
    }
    // The form's nonce makes a second submit of the same form a repeat, answered by the first.
    let replay = form
        .get("nonce")
        .filter(|n| !n.is_empty() && n.len() <= 64)
        .map(|nonce| {
            let what = amount.map(|a| a.to_string()).unwrap_or_default();
            Replay::operator(
                format!("console-cancel-{id}-{nonce}"),
                hex::encode(Sha256::digest(what.as_bytes())),
            )
        });
    let order = CancelOrder {
        payment_id: PaymentId::new(id),
        amount,
        replay,
    };
    match payments::cancel(&app, order).await {
        Ok(Cancelled::Placed(_)) => {
            tracing::info!(payment_id = id, "cancelled from the console");
            Redirect::to(&format!("/console/operator/payments/{id}?done=cancelled")).into_response()
        }
        Ok(Cancelled::NoSuchPayment) => ctx.notice(
            StatusCode::NOT_FOUND,
            T::Cancel,
            ctx.t(T::NoSuchThing),
            "/console/operator",
        ),
        Ok(Cancelled::NothingLeft) => again(e(ctx.t(T::CancelNothingLeft))).await,
        Ok(Cancelled::ZeroAmount) => again(e(ctx.t(T::BadAmount))).await,
        Ok(Cancelled::Refused(refusal)) => {
            let why = match refusal {
                Refusal::AmountExceeded { left } => too_much(&ctx, left),
                Refusal::TooManyRefunds => ctx.t(T::CancelTooMany).to_owned(),
                Refusal::PaymentNotFound => ctx.t(T::NoSuchThing).to_owned(),
                Refusal::NotRefundable
                | Refusal::TradePointMismatch
                | Refusal::ReturnQrNotUsable => ctx.t(T::CancelNotRefundable).to_owned(),
            };
            again(e(&why)).await
        }
        Err(fault) => ctx.fault(fault),
    }
}

async fn retry(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    if let Err(away) = super::operator_form(&ctx, &app, req).await {
        return *away;
    }
    let not_found = || {
        ctx.notice(
            StatusCode::NOT_FOUND,
            T::Retry,
            ctx.t(T::NoSuchThing),
            "/console/operator",
        )
    };
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    match crate::refunds::retry_now(&app, RefundId::new(id)).await {
        Ok(true) => {
            tracing::info!(refund_id = id, "refund retried from the console");
            Redirect::to("/console/operator?done=retried").into_response()
        }
        // No longer waiting (delivered or refused meanwhile, from a page left open): said with
        // its state, not as a refund that is not there.
        Ok(false) => match app.store.refund(RefundId::new(id)).await {
            Ok(Some(refund)) => ctx.notice(
                StatusCode::CONFLICT,
                T::Retry,
                &ctx.t(T::RetryNotWaiting)
                    .replace("{id}", &id.to_string())
                    .replace("{status}", refund_status_word(&ctx, refund.status)),
                "/console/operator",
            ),
            Ok(None) => not_found(),
            Err(fault) => ctx.fault(fault),
        },
        Err(fault) => ctx.fault(fault),
    }
}

/// Shows an admin use case's refusal in a page.
fn admin_refusal(
    ctx: &Ctx,
    title: T,
    refusal: &crate::admin_api::AdminError,
    back: &str,
) -> Response {
    let (status, why) = refusal.parts();
    refusal.logged(ctx.notice(status, title, &super::admin_refused(ctx, why), back))
}

async fn status(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(bin): Path<String>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(away) => return *away,
    };
    let status = match form.get("status") {
        Some("active") => OrganizationStatus::Active,
        Some("suspended") => OrganizationStatus::Suspended,
        Some("blocked") => OrganizationStatus::Blocked,
        _ => {
            return ctx.notice(
                StatusCode::BAD_REQUEST,
                T::Status,
                ctx.t(T::NoSuchThing),
                "/console/operator",
            );
        }
    };
    // Suspending or blocking stops a merchant's payments: asked once more.
    let question = match status {
        OrganizationStatus::Suspended => Some((T::ConfirmSuspend, T::Suspend)),
        OrganizationStatus::Blocked => Some((T::ConfirmBlock, T::Block)),
        OrganizationStatus::Active => None,
    };
    if let Some((question, button)) = question
        && !form.confirmed()
    {
        let org = super::organization::named(&app, &bin);
        return ctx.confirm(
            &ctx.t(question).replace("{org}", &org),
            &format!(
                "/console/operator/organizations/{}/status",
                path_segment(&bin)
            ),
            &[("status", status_value(status))],
            button,
            "/console/operator",
        );
    }
    match crate::admin_api::change_status(&app, &bin, status).await {
        Ok(_) => {
            tracing::info!(
                bin,
                status = status_value(status),
                "organization status changed from the console"
            );
            Redirect::to("/console/operator?done=status").into_response()
        }
        Err(refusal) => admin_refusal(&ctx, T::Status, &refusal, "/console/operator"),
    }
}

/// The catalog's four kinds as the admin API's paths name them, with their titles.
const KINDS: [(&str, T); 4] = [
    ("mpps", T::Mpps),
    ("organizations", T::Organizations),
    ("trade-points", T::TradePoints),
    ("services", T::Services),
];

/// The participants' page.
pub(super) const PARTICIPANTS: &str = "/console/operator/participants";

async fn participants(State(app): State<AppState>, ctx: Ctx) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    participants_page(&ctx, &app, StatusCode::OK, "").await
}

/// The participants as stored, `top` (a new cabinet token, a refusal) above them.
pub(super) async fn participants_page(
    ctx: &Ctx,
    app: &AppState,
    status: StatusCode,
    top: &str,
) -> Response {
    let file = match app.store.load_catalog().await {
        Ok((_, file)) => file,
        Err(fault) => return ctx.fault(fault),
    };
    let edit = |kind: &str, key: &str| {
        format!(
            "<a class=\"edit\" href=\"/console/operator/edit/{kind}/{}\">{}</a>",
            e(&path_segment(key)),
            ctx.t(T::Edit)
        )
    };
    let table = |id: &str, title: T, intro: &str, head: &[T], rows: Vec<String>| {
        let head: String = head
            .iter()
            .map(|h| format!("<th>{}</th>", ctx.t(*h)))
            .collect();
        format!(
            "<section><h2>{}</h2>{intro}<div class=\"table\"><table id=\"{id}\"><thead><tr>{head}{}</tr></thead><tbody>{}</tbody></table></div></section>",
            ctx.t(title),
            ctx.actions_header(),
            rows.concat()
        )
    };
    let mut body = done_message(ctx);
    body.push_str(top);
    body.push_str(&table(
        "mpps",
        T::Mpps,
        &format!("<p class=\"muted\">{}</p>", ctx.t(T::CabinetTokensIntro)),
        &[T::Mpp, T::Name, T::RegisterMails, T::CabinetTokens],
        file.mpps
            .iter()
            .map(|m| {
                format!(
                    "<tr data-key=\"{k}\"><td>{k}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>",
                    e(&m.name),
                    m.register_email.as_deref().map(e).unwrap_or_default(),
                    super::mpps::cabinet_tokens_cell(ctx, m),
                    edit("mpps", m.caller_name.as_str()),
                    k = e(m.caller_name.as_str()),
                )
            })
            .collect(),
    ));
    body.push_str(&table(
        "participant-organizations",
        T::Organizations,
        "",
        &[T::Bin, T::Name, T::Status, T::ApiKeys, T::Certificates],
        file.organizations
            .iter()
            .map(|o| {
                let certificates: Vec<String> =
                    o.client_certificates.iter().map(|c| format!("<code>{}</code>", e(c))).collect();
                format!(
                    "<tr data-key=\"{k}\"><td>{k}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{} \
                     <a class=\"keys\" href=\"{}\">{}</a></td></tr>",
                    e(&o.name),
                    status_word(ctx, o.status),
                    o.api_key_hashes.len() + o.api_keys.len(),
                    certificates.join("<br>"),
                    edit("organizations", &o.bin),
                    e(&super::organization::href(&o.bin)),
                    ctx.t(T::KeysAndCertificates),
                    k = e(&o.bin),
                )
            })
            .collect(),
    ));
    body.push_str(&table(
        "trade-points",
        T::TradePoints,
        "",
        &[T::Id, T::Name, T::Bin, T::Status],
        file.trade_points
            .iter()
            .map(|t| {
                format!(
                    "<tr data-key=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e(&t.name),
                    e(&t.organization_bin),
                    if t.active { ctx.t(T::Active) } else { ctx.t(T::Suspended) },
                    edit("trade-points", &t.id.to_string()),
                    id = t.id,
                )
            })
            .collect(),
    ));
    body.push_str(&table(
        "services",
        T::Services,
        "",
        &[T::Id, T::Name, T::TradePoint, T::Status],
        file.services
            .iter()
            .map(|s| {
                format!(
                    "<tr data-key=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e(s.name.get(ctx.locale)),
                    s.trade_point_id,
                    if s.active { ctx.t(T::Active) } else { ctx.t(T::Suspended) },
                    edit("services", &s.id.to_string()),
                    id = s.id,
                )
            })
            .collect(),
    ));
    body.push_str(&format!(
        "<p><a href=\"/console/operator\">{}</a></p>",
        ctx.t(T::Back)
    ));
    ctx.page(status, ctx.t(T::Participants), &body)
}

/// The item of `kind` with `key` as JSON, as GET /admin/v1/catalog shows it.
/// The item `key` of `kind` as the editor shows it, and its entity tag (the admin API's `ETag`),
/// which the form sends back so that a save built on an item changed since is refused.
fn item_json(
    file: &crate::catalog::CatalogFile,
    kind: &str,
    key: &str,
) -> Option<(String, String)> {
    use crate::admin_api::{InCatalog, entity_tag};
    fn shown<I: InCatalog>(
        file: &crate::catalog::CatalogFile,
        key: &str,
    ) -> Option<(String, String)> {
        let item = I::items(file).iter().find(|i| i.key() == key)?;
        Some((serde_json::to_string_pretty(item).ok()?, entity_tag(item)))
    }
    match kind {
        "mpps" => shown::<crate::catalog::Mpp>(file, key),
        "organizations" => shown::<crate::catalog::Organization>(file, key),
        "trade-points" => shown::<crate::catalog::TradePoint>(file, key),
        "services" => shown::<crate::catalog::Service>(file, key),
        _ => None,
    }
}

fn edit_page(
    ctx: &Ctx,
    status: StatusCode,
    (kind, key): (&str, &str),
    (json, tag): (&str, &str),
    error: Option<&str>,
) -> Response {
    let title = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| ctx.t(*t))
        .unwrap_or_default();
    let error = error
        .map(|why| {
            format!(
                "<p id=\"error\" class=\"error\" role=\"alert\" tabindex=\"-1\" autofocus>{}</p>",
                e(why)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<p class=\"muted\">{intro}</p>{error}<form method=\"post\" action=\"/console/operator/edit/{kind}/{key_path}\">{csrf}\
         <input type=\"hidden\" name=\"etag\" value=\"{tag}\">\
         <label for=\"item-json\">JSON</label><textarea id=\"item-json\" name=\"json\" spellcheck=\"false\">{json}</textarea>\
         <p><button id=\"save\" type=\"submit\">{save}</button></p></form>\
         <p><a href=\"/console/operator/participants\">{back}</a></p>",
        intro = ctx.t(T::EditIntro),
        kind = e(kind),
        key_path = e(&path_segment(key)),
        csrf = ctx.csrf_field(),
        json = super::ev(json),
        tag = super::ev(tag),
        save = ctx.t(T::Save),
        back = ctx.t(T::Back),
    );
    ctx.page(status, &format!("{title}: {key}"), &body)
}

async fn edit_form(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((kind, key)): Path<(String, String)>,
) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    let file = match app.store.load_catalog().await {
        Ok((_, file)) => file,
        Err(fault) => return ctx.fault(fault),
    };
    match item_json(&file, &kind, &key) {
        Some((json, tag)) => edit_page(&ctx, StatusCode::OK, (&kind, &key), (&json, &tag), None),
        None => ctx.notice(
            StatusCode::NOT_FOUND,
            T::Edit,
            ctx.t(T::NoSuchThing),
            "/console/operator/participants",
        ),
    }
}

async fn edit_save(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((kind, key)): Path<(String, String)>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(away) => return *away,
    };
    let json = form.get("json").unwrap_or_default();
    // The tag of the item as the form showed it: empty for a new item, which nothing guards.
    let tag = form.get("etag").unwrap_or_default();
    let precondition =
        (!tag.is_empty()).then(|| crate::admin_api::Precondition::OneOf(vec![tag.to_owned()]));
    match crate::admin_api::put_catalog_item(&app, &kind, &key, json.as_bytes(), precondition).await
    {
        None => ctx.notice(
            StatusCode::NOT_FOUND,
            T::Edit,
            ctx.t(T::NoSuchThing),
            "/console/operator/participants",
        ),
        Some(Ok(_)) => {
            tracing::info!(kind, key, "operator data changed from the console");
            Redirect::to("/console/operator/participants?done=saved").into_response()
        }
        Some(Err(refusal)) => {
            let (status, why) = refusal.parts();
            // The form keeps the tag it was opened with, so that only opening the item again
            // (and seeing what changed) lets it be saved.
            let why = match status {
                StatusCode::PRECONDITION_FAILED => ctx.t(T::ChangedSinceOpened).to_owned(),
                _ => super::admin_refused(&ctx, why),
            };
            refusal.logged(edit_page(
                &ctx,
                status,
                (&kind, &key),
                (json, tag),
                Some(&why),
            ))
        }
    }
}
