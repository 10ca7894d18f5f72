//! An organization's page in the operator's console: its API keys (a new one issued and shown
//! once) and its client certificates (registered by PEM or fingerprint, revoked), each change by
//! the very code of the admin API (`POST …/api-keys`, `POST …/certificates`,
//! `DELETE …/certificates/{fingerprint}`), so that the validation is one.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::texts::T;
use super::{Ctx, e, require};
use crate::admin_api::{self, Registered};
use crate::catalog::{Fingerprint, Organization};
use crate::state::AppState;
use crate::store::Replay;

/// The longest one-time value a form may carry (the page makes 24 hex digits).
const NONCE_CHARS_MAX: usize = 64;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/operator/organizations/{bin}", get(page))
        .route(
            "/console/operator/organizations/{bin}/api-keys",
            get(back_to_page).post(issue),
        )
        .route(
            "/console/operator/organizations/{bin}/certificates",
            get(back_to_page).post(register),
        )
        .route(
            "/console/operator/organizations/{bin}/certificates/{fingerprint}/revoke",
            get(back_to_page).post(revoke),
        )
}

/// A GET of one of the page's form addresses (its language switch, after a form): the page.
async fn back_to_page(
    ctx: Ctx,
    Path(params): Path<std::collections::HashMap<String, String>>,
) -> Response {
    match params.get("bin") {
        Some(bin) => super::back_to(&ctx, &href(bin)),
        None => super::back_to(&ctx, "/console/operator"),
    }
}

/// The organization's page address.
pub(super) fn href(bin: &str) -> String {
    format!(
        "/console/operator/organizations/{}",
        super::operator::path_segment(bin)
    )
}

/// A certificate as the catalog holds it, in its one written form (lowercase hex), for
/// `data-fingerprint` and the revoke address.
fn normal(text: &str) -> String {
    Fingerprint::parse(text)
        .map(|f| f.to_string())
        .unwrap_or_else(|_| text.to_owned())
}

/// The page: details, the key form, the certificates with their revoke buttons and the
/// registration form; `top` (a new key, a refusal) above them.
fn render(ctx: &Ctx, org: &Organization, status: StatusCode, top: &str) -> Response {
    let done = match ctx.query("done") {
        Some("registered") => Some(T::CertificateRegistered),
        Some("known") => Some(T::CertificateKnown),
        Some("revoked") => Some(T::CertificateRevoked),
        _ => None,
    };
    let mut body = match done {
        Some(text) => format!(
            "<p id=\"message\" class=\"message\" role=\"status\" aria-live=\"polite\" tabindex=\"-1\" autofocus>{}</p>",
            ctx.t(text)
        ),
        None => {
            "<p id=\"message\" class=\"muted\" role=\"status\" aria-live=\"polite\"></p>".to_owned()
        }
    };
    body.push_str(top);
    let action = href(&org.bin);
    body.push_str(&format!(
        "<dl id=\"organization\" data-bin=\"{bin}\"><dt>{bin_word}</dt><dd>{bin}</dd>\
         <dt>{name_word}</dt><dd>{name}</dd><dt>{status_word}</dt><dd class=\"status\">{status}</dd>\
         <dt>{keys_word}</dt><dd id=\"key-count\" data-count=\"{keys}\">{keys}</dd></dl>",
        bin = e(&org.bin),
        bin_word = ctx.t(T::Bin),
        name_word = ctx.t(T::Name),
        name = e(&org.name),
        status_word = ctx.t(T::Status),
        status = super::operator::status_word(ctx, org.status),
        keys_word = ctx.t(T::KeysIssued),
        keys = org.api_key_hashes.len() + org.api_keys.len(),
    ));
    // A new value each time the page is shown: a second submit of the same form is a repeat.
    let nonce = hex::encode(rand::random::<[u8; 12]>());
    body.push_str(&format!(
        "<section aria-labelledby=\"keys-h\"><h2 id=\"keys-h\">{title}</h2><p class=\"muted\">{intro}</p>\
         <form method=\"post\" action=\"{action}/api-keys\" class=\"row\">{csrf}\
         <input type=\"hidden\" name=\"nonce\" value=\"{nonce}\">\
         <div><label for=\"key-kind\">{kind}</label><select id=\"key-kind\" name=\"kind\">\
         <option value=\"test\">{test}</option><option value=\"prod\">{prod}</option></select></div>\
         <button id=\"issue-key\" type=\"submit\">{issue}</button></form></section>",
        title = ctx.t(T::ApiKeys),
        intro = ctx.t(T::KeysIntro),
        action = e(&action),
        csrf = ctx.csrf_field(),
        kind = ctx.t(T::KeyKind),
        test = ctx.t(T::KeyTest),
        prod = ctx.t(T::KeyProd),
        issue = ctx.t(T::IssueKey),
    ));
    body.push_str(&format!(
        "<section aria-labelledby=\"certificates-h\"><h2 id=\"certificates-h\">{}</h2>",
        ctx.t(T::Certificates)
    ));
    if org.client_certificates.is_empty() {
        body.push_str(&format!(
            "<p id=\"certificates\" class=\"muted\">{}</p>",
            ctx.t(T::NoCertificates)
        ));
    } else {
        body.push_str(&format!(
            "<div class=\"table\"><table id=\"certificates\"><thead><tr><th>{}</th>{}</tr></thead><tbody>",
            ctx.t(T::Fingerprint),
            ctx.actions_header()
        ));
        for text in &org.client_certificates {
            let fingerprint = normal(text);
            body.push_str(&format!(
                "<tr data-fingerprint=\"{f}\"><td><code>{f}</code></td><td>\
                 <form class=\"inline\" method=\"post\" action=\"{action}/certificates/{f}/revoke\">{csrf}\
                 <button class=\"revoke secondary\" type=\"submit\" aria-label=\"{revoke} {f}\">{revoke}</button>\
                 </form></td></tr>",
                f = e(&fingerprint),
                action = e(&action),
                csrf = ctx.csrf_field(),
                revoke = ctx.t(T::Revoke),
            ));
        }
        body.push_str("</tbody></table></div>");
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{action}/certificates\">{csrf}\
         <label for=\"certificate-pem\">{label}</label>\
         <textarea id=\"certificate-pem\" name=\"certificate\" rows=\"8\" spellcheck=\"false\" required></textarea>\
         <p><button id=\"register-certificate\" type=\"submit\">{register}</button></p></form></section>\
         <p><a href=\"/console/operator\">{back}</a></p>",
        action = e(&action),
        csrf = ctx.csrf_field(),
        label = ctx.t(T::CertificatePem),
        register = ctx.t(T::RegisterCertificate),
        back = ctx.t(T::Back),
    ));
    ctx.page(
        status,
        &format!("{} {}", ctx.t(T::Organization), org.bin),
        &body,
    )
}

/// `bin` and the organization's name, escaped for a page («name» when the catalog has it).
pub(super) fn named(app: &AppState, bin: &str) -> String {
    match app.catalog.get().organizations.get(bin) {
        Some(org) => format!("{} «{}»", e(bin), e(&org.name)),
        None => e(bin),
    }
}

/// The organization as the catalog has it now, or the page saying there is none.
fn organization(ctx: &Ctx, app: &AppState, bin: &str) -> Result<Organization, Box<Response>> {
    match app.catalog.get().organizations.get(bin) {
        Some(org) => Ok(Organization::clone(org)),
        None => Err(Box::new(ctx.notice(
            StatusCode::NOT_FOUND,
            T::Organization,
            ctx.t(T::NoSuchThing),
            "/console/operator",
        ))),
    }
}

async fn page(State(app): State<AppState>, ctx: Ctx, Path(bin): Path<String>) -> Response {
    if let Err(away) = require(&ctx, true) {
        return *away;
    }
    match organization(&ctx, &app, &bin) {
        Ok(org) => render(&ctx, &org, StatusCode::OK, ""),
        Err(missing) => *missing,
    }
}

/// A refusal of the admin use case, shown above the page as it stands (nothing changed).
fn refused(ctx: &Ctx, app: &AppState, bin: &str, refusal: &admin_api::AdminError) -> Response {
    let (status, why) = refusal.parts();
    let top = format!(
        "<p id=\"error\" class=\"error\" role=\"alert\" tabindex=\"-1\" autofocus>{}</p>",
        e(&super::admin_refused(ctx, why))
    );
    match organization(ctx, app, bin) {
        Ok(org) => refusal.logged(render(ctx, &org, status, &top)),
        Err(missing) => *missing,
    }
}

/// Issues a key and shows it once (`#new-key`); the page is never cached. The form's one-time
/// value makes a second submit of it a repeat that issues nothing (the key is not kept, so it
/// cannot be shown again).
async fn issue(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(bin): Path<String>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let kind = form.get("kind").unwrap_or_default();
    let replay = form
        .get("nonce")
        .filter(|n| !n.is_empty() && n.len() <= NONCE_CHARS_MAX)
        .map(|nonce| {
            Replay::operator(
                format!("console-api-key-{bin}-{nonce}"),
                hex::encode(Sha256::digest(kind.as_bytes())),
            )
        });
    let issued = match admin_api::issue_api_key(&app, &bin, kind, replay).await {
        Ok(issued) => issued,
        Err(refusal) => return refused(&ctx, &app, &bin, &refusal),
    };
    let (status, top) = match issued {
        Some(key) => {
            tracing::info!(bin, kind, "API key issued from the console");
            (
                StatusCode::CREATED,
                format!(
                    "<div class=\"card\" role=\"status\" aria-live=\"polite\"><p>{}</p>\
                     <p><code id=\"new-key\" data-kind=\"{}\">{}</code></p></div>",
                    ctx.t(T::NewKeyIntro),
                    e(kind),
                    e(&key)
                ),
            )
        }
        None => (
            StatusCode::OK,
            format!(
                "<p id=\"error\" class=\"error\" role=\"alert\" tabindex=\"-1\" autofocus>{}</p>",
                ctx.t(T::KeyIssuedAlready)
            ),
        ),
    };
    match organization(&ctx, &app, &bin) {
        Ok(org) => render(&ctx, &org, status, &top),
        Err(missing) => *missing,
    }
}

/// Registers a certificate from the textarea: a PEM when it holds one, else a fingerprint.
async fn register(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(bin): Path<String>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let text = form
        .get("certificate")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let (pem, fingerprint) = if text.contains("-----BEGIN") {
        (Some(text), None)
    } else {
        (None, Some(text))
    };
    match admin_api::register_certificate(&app, &bin, pem, fingerprint).await {
        Ok(done) => {
            let word = match done {
                Registered::New(f) => {
                    tracing::info!(
                        bin,
                        fingerprint = f,
                        "certificate registered from the console"
                    );
                    "registered"
                }
                Registered::Known(_) => "known",
            };
            Redirect::to(&format!("{}?done={word}", href(&bin))).into_response()
        }
        Err(refusal) => refused(&ctx, &app, &bin, &refusal),
    }
}

async fn revoke(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((bin, fingerprint)): Path<(String, String)>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    // Revoking cuts the organization's r2 and r3 at once: asked once more.
    if !form.confirmed() {
        let question = ctx
            .t(T::ConfirmRevoke)
            .replace("{cert}", &e(&fingerprint))
            .replace("{org}", &named(&app, &bin));
        return ctx.confirm(
            &question,
            &format!(
                "{}/certificates/{}/revoke",
                href(&bin),
                super::operator::path_segment(&fingerprint)
            ),
            &[],
            T::Revoke,
            &href(&bin),
        );
    }
    match admin_api::revoke_certificate(&app, &bin, &fingerprint).await {
        Ok(_) => {
            tracing::info!(bin, fingerprint, "certificate revoked from the console");
            Redirect::to(&format!("{}?done=revoked", href(&bin))).into_response()
        }
        Err(refusal) => refused(&ctx, &app, &bin, &refusal),
    }
}
