//! An MPP's cabinet tokens on the operator's participants page: each hash shortened with its
//! revoke button, and a button that issues one more, shown once. Both call the admin API's use
//! cases ([`crate::admin_api::issue_cabinet_token`], [`crate::admin_api::revoke_cabinet_token`]).

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::operator::{PARTICIPANTS, participants_page, path_segment};
use super::texts::T;
use super::{Ctx, e};
use crate::state::AppState;
use crate::store::Replay;

/// The longest one-time value a form may carry (the pages make 24 hex digits).
const NONCE_CHARS_MAX: usize = 64;
/// Hex digits of a cabinet token's hash shown in the participants' table (the whole is in
/// `data-hash`): enough to tell one token from another.
const HASH_SHOWN_CHARS: usize = 12;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console/operator/mpps/{mpp}/cabinet-tokens",
            get(back_to_participants).post(issue_cabinet_token),
        )
        .route(
            "/console/operator/mpps/{mpp}/cabinet-tokens/{hash}/revoke",
            get(back_to_participants).post(revoke_cabinet_token),
        )
}

async fn back_to_participants(ctx: Ctx) -> Response {
    super::back_to(&ctx, PARTICIPANTS)
}

/// A cabinet token's hash as the page shows it: its first digits.
fn short_hash(hash: &str) -> String {
    match hash.get(..HASH_SHOWN_CHARS) {
        Some(head) if head.len() < hash.len() => format!("{head}…"),
        _ => hash.to_owned(),
    }
}

/// An MPP's cabinet tokens (`td.cabinet-tokens`): how many, each hash shortened with its
/// revoke button, and the form that issues one more. The form's one-time value, new each time
/// the page is shown, makes a second submit of it a repeat that issues nothing.
pub(super) fn cabinet_tokens_cell(ctx: &Ctx, mpp: &crate::catalog::Mpp) -> String {
    let action = format!(
        "/console/operator/mpps/{}/cabinet-tokens",
        path_segment(mpp.caller_name.as_str())
    );
    let hashes: String = mpp
        .cabinet_token_hashes
        .iter()
        .map(|hash| {
            format!(
                "<li data-hash=\"{h}\"><code>{short}</code> \
                 <form class=\"inline\" method=\"post\" action=\"{action}/{h_path}/revoke\">{csrf}\
                 <button class=\"revoke secondary\" type=\"submit\" aria-label=\"{revoke} {short}\">{revoke}</button>\
                 </form></li>",
                h = e(hash),
                h_path = e(&path_segment(hash)),
                short = e(&short_hash(hash)),
                action = e(&action),
                csrf = ctx.csrf_field(),
                revoke = ctx.t(T::Revoke),
            )
        })
        .collect();
    let nonce = hex::encode(rand::random::<[u8; 12]>());
    format!(
        "<td class=\"cabinet-tokens\" data-count=\"{count}\"><span class=\"token-count\">{count}</span>\
         <ul class=\"tokens\">{hashes}</ul>\
         <form class=\"inline\" method=\"post\" action=\"{action}\">{csrf}\
         <input type=\"hidden\" name=\"nonce\" value=\"{nonce}\">\
         <button class=\"issue-token\" type=\"submit\" aria-label=\"{issue} {mpp}\">{issue}</button></form></td>",
        count = mpp.cabinet_token_hashes.len(),
        action = e(&action),
        csrf = ctx.csrf_field(),
        issue = ctx.t(T::IssueCabinetToken),
        mpp = e(mpp.caller_name.as_str()),
    )
}

/// The MPP `caller_name` with its name, escaped for a page («name» when the catalog has it).
fn mpp_named(app: &AppState, caller_name: &str) -> String {
    let catalog = app.catalog.get();
    let named = catalog
        .mpps
        .iter()
        .find(|(name, _)| name.as_str() == caller_name);
    match named {
        Some((_, mpp)) => format!("{} «{}»", e(caller_name), e(&mpp.name)),
        None => e(caller_name),
    }
}

/// A refusal of the admin use case, shown above the participants as they stand.
async fn participants_refused(
    ctx: &Ctx,
    app: &AppState,
    refusal: &crate::admin_api::AdminError,
) -> Response {
    let (status, why) = refusal.parts();
    let top = format!(
        "<p id=\"error\" class=\"error\" role=\"alert\" tabindex=\"-1\" autofocus>{}</p>",
        e(&super::admin_refused(ctx, why))
    );
    refusal.logged(participants_page(ctx, app, status, &top).await)
}

/// Issues the MPP a cabinet token by the admin API's code and shows it once
/// (`#new-cabinet-token`), as an organization's page shows a new API key: the answer is never
/// cached and the token is not kept, so a second submit of the same form (a reload, a double
/// click) issues nothing and says so.
async fn issue_cabinet_token(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(mpp): Path<String>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(away) => return *away,
    };
    let replay = form
        .get("nonce")
        .filter(|n| !n.is_empty() && n.len() <= NONCE_CHARS_MAX)
        .map(|nonce| {
            Replay::operator(
                format!("console-cabinet-token-{mpp}-{nonce}"),
                hex::encode(Sha256::digest(mpp.as_bytes())),
            )
        });
    let issued = match crate::admin_api::issue_cabinet_token(&app, &mpp, replay).await {
        Ok(issued) => issued,
        Err(refusal) => return participants_refused(&ctx, &app, &refusal).await,
    };
    let (status, top) = match issued {
        Some((token, hash)) => {
            tracing::info!(mpp, hash, "cabinet token issued from the console");
            (
                StatusCode::CREATED,
                format!(
                    "<div class=\"card\" role=\"status\" aria-live=\"polite\"><p>{}</p>\
                     <p><code id=\"new-cabinet-token\" data-mpp=\"{}\" data-hash=\"{}\">{}</code></p></div>",
                    ctx.t(T::NewCabinetTokenIntro)
                        .replace("{mpp}", &mpp_named(&app, &mpp)),
                    e(&mpp),
                    e(&hash),
                    e(&token)
                ),
            )
        }
        None => (
            StatusCode::OK,
            format!(
                "<p id=\"error\" class=\"error\" role=\"alert\" tabindex=\"-1\" autofocus>{}</p>",
                ctx.t(T::CabinetTokenIssuedAlready)
            ),
        ),
    };
    participants_page(&ctx, &app, status, &top).await
}

/// Revokes an MPP's cabinet token by the admin API's code, after asking once more: it ends the
/// cabinet sessions the token opened.
async fn revoke_cabinet_token(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((mpp, hash)): Path<(String, String)>,
    req: Request,
) -> Response {
    let form = match super::operator_form(&ctx, &app, req).await {
        Ok(form) => form,
        Err(away) => return *away,
    };
    if !form.confirmed() {
        let question = ctx
            .t(T::ConfirmRevokeCabinetToken)
            .replace("{hash}", &e(&short_hash(&hash)))
            .replace("{mpp}", &mpp_named(&app, &mpp));
        return ctx.confirm(
            &question,
            &format!(
                "/console/operator/mpps/{}/cabinet-tokens/{}/revoke",
                path_segment(&mpp),
                path_segment(&hash)
            ),
            &[],
            T::Revoke,
            PARTICIPANTS,
        );
    }
    match crate::admin_api::revoke_cabinet_token(&app, &mpp, &hash).await {
        Ok(_) => {
            tracing::info!(mpp, hash, "cabinet token revoked from the console");
            Redirect::to(&format!("{PARTICIPANTS}?done=token-revoked")).into_response()
        }
        Err(refusal) => participants_refused(&ctx, &app, &refusal).await,
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::{Role, Session};
    use super::*;
    use tolem_wire::Locale;

    const HASH_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const HASH_B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    /// An operator's page context, signed in.
    fn ctx() -> Ctx {
        let config = crate::config::Config {
            admin_token: "admin-token-0123456789".to_owned(),
            ..crate::config::Config::default()
        };
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("a time");
        Ctx {
            cabinet_only: false,
            locale: Locale::Ru,
            locale_chosen: false,
            session: Session::start(&config, Role::Operator, now),
            secure: false,
            host: None,
            origin: None,
            path: PARTICIPANTS.to_owned(),
            query: Vec::new(),
            now,
        }
    }

    fn mpp(hashes: &[&str]) -> crate::catalog::Mpp {
        serde_json::from_value(serde_json::json!({
            "caller_name": "demobank",
            "name": "Demo Bank",
            "refund_url": "http://127.0.0.1:9/refund",
            "cabinet_token_hashes": hashes,
        }))
        .expect("an MPP")
    }

    #[test]
    fn a_hash_is_shown_by_its_first_digits() {
        assert_eq!(short_hash(HASH_A), "9f86d081884c…");
        assert_eq!(short_hash("9f86d0"), "9f86d0");
    }

    #[test]
    fn each_cabinet_token_has_its_revoke_form_and_the_cell_one_to_issue() {
        let ctx = ctx();
        let cell = cabinet_tokens_cell(&ctx, &mpp(&[HASH_A, HASH_B]));
        assert!(cell.contains("data-count=\"2\""), "{cell}");
        for hash in [HASH_A, HASH_B] {
            assert!(
                cell.contains(&format!("<li data-hash=\"{hash}\">")),
                "{cell}"
            );
            assert!(cell.contains(&format!("<code>{}</code>", short_hash(hash))));
            let revoke =
                format!("action=\"/console/operator/mpps/demobank/cabinet-tokens/{hash}/revoke\"");
            assert!(cell.contains(&revoke), "{cell}");
        }
        assert!(cell.contains("action=\"/console/operator/mpps/demobank/cabinet-tokens\""));
        // Every form carries the session's CSRF token: the two revokes and the issue.
        assert_eq!(cell.matches(&ctx.csrf_field()).count(), 3, "{cell}");
        assert!(!ctx.csrf_field().is_empty());
        // A new one-time value each time the page is shown.
        let nonce = |cell: &str| {
            let marker = "name=\"nonce\" value=\"";
            let start = cell.find(marker).expect("a nonce") + marker.len();
            cell[start..].split('"').next().map(str::to_owned)
        };
        let again = cabinet_tokens_cell(&ctx, &mpp(&[HASH_A, HASH_B]));
        assert_ne!(nonce(&cell), nonce(&again));
    }

    #[test]
    fn an_mpp_without_cabinet_tokens_can_be_issued_one() {
        let cell = cabinet_tokens_cell(&ctx(), &mpp(&[]));
        assert!(cell.contains("data-count=\"0\""), "{cell}");
        assert!(!cell.contains("<li"), "{cell}");
        assert!(cell.contains("class=\"issue-token\""), "{cell}");
        assert!(
            cell.contains("aria-label=\"Выпустить токен кабинета demobank\""),
            "{cell}"
        );
    }
}
