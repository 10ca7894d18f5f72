//! The console in the browser, on the admin surface (`/console/…`): the operator's console
//! (`operator.rs`) and each MPP's cabinet (`cabinet.rs`), signed in with the admin token or an
//! MPP's cabinet token turned into a signed session cookie (`session.rs`). Server-rendered HTML,
//! no JavaScript: links and forms; every POST carries the session's CSRF token and is refused
//! from another origin. Every text from the store or the catalog is escaped (`e`).
//! Documented in `docs/console.md`.

mod cabinet;
mod mpps;
mod operator;
mod organization;
mod registers;
mod session;
mod texts;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http_body_util::{BodyExt, Limited};
use jiff::Timestamp;
use tolem_wire::{AmountTotal, Locale};

use crate::connections::OverTls;
use crate::state::AppState;
use session::{Role, Session, Through};
use texts::T;

/// The cookie that remembers the language chosen.
const LOCALE_COOKIE: &str = "tolem_console_locale";
/// The stylesheet, built into the binary.
const CSS: &str = include_str!("console.css");
/// What every console answer may load: its own stylesheet, nothing else; no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, each behind [`guard`].
pub(crate) fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/console.css", get(css))
        .route("/console/sign-in", get(back_home).post(sign_in))
        .route("/console/sign-out", get(back_home).post(sign_out))
        .merge(operator::routes())
        .merge(mpps::routes())
        .merge(organization::routes())
        .merge(cabinet::routes())
        .merge(registers::routes())
        .route("/console/{*rest}", get(not_found).post(not_found))
        .route_layer(middleware::from_fn_with_state(app, guard))
}

/// Marks a request of a listener that serves the cabinet surface alone.
#[derive(Clone, Copy, Debug)]
struct CabinetOnly;

/// The console of a listener of the cabinet surface alone: the MPPs' sign-in and their cabinet
/// pages, no operator page, and the admin token taken for no one.
pub(crate) fn cabinet_router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/console.css", get(css))
        .route("/console/sign-in", get(back_home).post(sign_in))
        .route("/console/sign-out", get(back_home).post(sign_out))
        .merge(cabinet::routes())
        .route("/console/{*rest}", get(not_found).post(not_found))
        .route_layer(middleware::from_fn_with_state(app, guard))
        .layer(axum::Extension(CabinetOnly))
}

/// Whether there is anything to sign in to: the console does not exist without a token, like
/// the admin API.
fn configured(app: &AppState) -> bool {
    !app.config.admin_token.is_empty() || !app.config.registers.cabinet_tokens.is_empty()
}

/// Runs around every console route: 404 when nothing is configured; the security headers on
/// every answer (pages show money and tokens: never cached).
async fn guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = if configured(&app) {
        next.run(req).await
    } else {
        (StatusCode::NOT_FOUND, "not found").into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not `no-referrer`: under it a browser sends `Origin: null` with the pages' own form
        // posts, and the Origin check would refuse every one. `same-origin` keeps the address
        // off every other site and lets the posts name their origin.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// HTML-escapes a text from the store, the catalog or the request.
fn e(text: &str) -> String {
    crate::receipt::escape(text)
}

/// Text for a form's value, which the form sends back as it is (`receipt::escape_value`).
fn ev(text: &str) -> String {
    crate::receipt::escape_value(text)
}

/// What every console page knows of its request: the language, the session if one is valid,
/// whether the connection is TLS, and how to name the page's own origin and path.
struct Ctx {
    /// Served on a listener of the cabinet surface alone: no operator signs in here.
    cabinet_only: bool,
    locale: Locale,
    /// `Some` when the request chose the language (`?locale=`): remembered in a cookie.
    locale_chosen: bool,
    session: Option<Session>,
    secure: bool,
    host: Option<String>,
    origin: Option<String>,
    path: String,
    query: Vec<(String, String)>,
    now: Timestamp,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Ctx, Self::Rejection> {
        let text = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let cookies = text(header::COOKIE).unwrap_or_default();
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let asked = query
            .iter()
            .find(|(k, _)| k == "locale")
            .and_then(|(_, v)| Locale::from_code(v));
        let remembered = session::cookie(&cookies, LOCALE_COOKIE).and_then(Locale::from_code);
        let now = app.clock.now();
        let cabinet_only = parts.extensions.get::<CabinetOnly>().is_some();
        // An operator's session (a cookie of the admin listener on the same host) is nobody's
        // on a listener of the cabinet alone.
        let session = session::cookie(&cookies, session::COOKIE)
            .and_then(|value| Session::verify_in(&app.config, &app.catalog.get(), value, now))
            .filter(|s| !(cabinet_only && matches!(s.role, Role::Operator)));
        Ok(Ctx {
            cabinet_only,
            locale: asked.or(remembered).unwrap_or_default(),
            locale_chosen: asked.is_some(),
            session,
            secure: parts.extensions.get::<OverTls>().is_some(),
            host: text(header::HOST),
            origin: text(header::ORIGIN),
            path: parts.uri.path().to_owned(),
            query: query.into_iter().filter(|(k, _)| k != "locale").collect(),
            now,
        })
    }
}

impl Ctx {
    fn t(&self, text: T) -> &'static str {
        text.get(self.locale)
    }

    /// The header of a table's column of buttons: named for a screen reader, not shown.
    fn actions_header(&self) -> String {
        format!(
            "<th><span class=\"visually-hidden\">{}</span></th>",
            self.t(T::Actions)
        )
    }

    /// A query parameter of the request.
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The page's own address with another language.
    fn with_locale(&self, locale: Locale) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            query.append_pair(k, v);
        }
        query.append_pair("locale", locale.code());
        format!("{}?{}", self.path, query.finish())
    }

    /// An amount as the PS shows it to people (`2 000,00 ₸`).
    fn money(&self, amount: impl Into<AmountTotal>) -> String {
        amount.into().human(self.locale).to_string()
    }

    /// Whether a POST may change anything: a session, the page's own origin (when the browser
    /// says one) and the session's CSRF token in the form. The refusal is a page saying why.
    fn check_post(&self, form: &Form) -> Result<&Session, Box<Response>> {
        let refuse = || {
            Box::new(self.notice(
                StatusCode::FORBIDDEN,
                T::Refused,
                self.t(T::CsrfRefused),
                "/console",
            ))
        };
        let session = self.session.as_ref().ok_or_else(refuse)?;
        if let Some(origin) = &self.origin {
            let scheme = if self.secure { "https" } else { "http" };
            let own = self.host.as_ref().map(|host| format!("{scheme}://{host}"));
            if own.as_deref() != Some(origin.as_str()) {
                return Err(refuse());
            }
        }
        if !session.csrf_ok(form.get("csrf").unwrap_or_default()) {
            return Err(refuse());
        }
        Ok(session)
    }

    /// The hidden CSRF field of a form in this session.
    fn csrf_field(&self) -> String {
        match &self.session {
            Some(session) => format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
                session.csrf()
            ),
            None => String::new(),
        }
    }

    /// A whole page: the language switch, the sign-out form when signed in, `body` in `<main>`.
    fn page(&self, status: StatusCode, title: &str, body: &str) -> Response {
        let lang = self.locale.code();
        let switch: String = [(Locale::Ru, "Русский"), (Locale::Kk, "Қазақша")]
            .iter()
            .map(|(locale, name)| {
                let current = if *locale == self.locale {
                    " aria-current=\"true\""
                } else {
                    ""
                };
                format!(
                    "<a id=\"locale-{code}\" lang=\"{code}\" href=\"{href}\"{current}>{name}</a>",
                    code = locale.code(),
                    href = e(&self.with_locale(*locale)),
                )
            })
            .collect();
        let who = match &self.session {
            Some(session) => {
                let role = match &session.role {
                    Role::Operator => self.t(T::Operator).to_owned(),
                    Role::Mpp(name) => format!("{} {}", self.t(T::Mpp), e(name)),
                };
                format!(
                    "<form class=\"inline\" method=\"post\" action=\"/console/sign-out\">\
                     <span class=\"muted\">{} {role}</span> {}\
                     <button id=\"sign-out\" class=\"secondary\" type=\"submit\">{}</button></form>",
                    self.t(T::SignedInAs),
                    self.csrf_field(),
                    self.t(T::SignOut)
                )
            }
            None => String::new(),
        };
        let html = format!(
            "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} — Tolem</title><link rel=\"stylesheet\" href=\"/console/console.css\">\
             </head><body><header><a class=\"brand\" href=\"/console\">Tolem</a>{who}\
             <nav class=\"locale\" aria-label=\"{language}\">{switch}</nav></header>\
             <main><h1>{title}</h1>{body}</main></body></html>\n",
            title = e(title),
            language = self.t(T::Language),
        );
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response();
        if self.locale_chosen {
            let cookie = format!(
                "{LOCALE_COOKIE}={lang}; Path=/console; Max-Age=31536000; SameSite=Strict{}",
                if self.secure { "; Secure" } else { "" }
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// A page with one message (the outcome of a form, a refusal) and a link back.
    fn notice(&self, status: StatusCode, title: T, message: &str, back: &str) -> Response {
        let class = if status.is_success() {
            "message"
        } else {
            "error"
        };
        let body = format!(
            "<p id=\"message\" class=\"{class}\" role=\"status\" aria-live=\"polite\" tabindex=\"-1\" autofocus \
             data-status=\"{}\">{}</p><p><a id=\"back\" href=\"{}\">{}</a></p>",
            status.as_u16(),
            e(message),
            e(back),
            self.t(T::Back)
        );
        self.page(status, self.t(title), &body)
    }

    /// A page that asks before a change that stops someone's work (suspending, blocking,
    /// revoking): `question` (already escaped), and a form that posts `fields` to `action` again
    /// with `confirm=yes`, beside a link back that changes nothing. Without JavaScript, which the
    /// console does not use.
    fn confirm(
        &self,
        question: &str,
        action: &str,
        fields: &[(&str, &str)],
        button: T,
        back: &str,
    ) -> Response {
        let hidden: String = fields
            .iter()
            .map(|(name, value)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    ev(name),
                    ev(value)
                )
            })
            .collect();
        let body = format!(
            // The question holds the focus, not the button: the Enter that asked, pressed
            // twice or held, must not answer it.
            "<p id=\"question\" tabindex=\"-1\" autofocus>{question}</p><form method=\"post\" action=\"{action}\" class=\"row\">{csrf}{hidden}\
             <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
             <button id=\"confirm\" type=\"submit\" aria-describedby=\"question\">{button}</button> \
             <a id=\"back\" href=\"{back}\">{back_word}</a></form>",
            action = e(action),
            csrf = self.csrf_field(),
            button = self.t(button),
            back = e(back),
            back_word = self.t(T::Back),
        );
        self.page(StatusCode::OK, self.t(T::ConfirmTitle), &body)
    }

    /// The answer to a store fault: busy (retry) or internal, said in a page.
    fn fault(&self, e: crate::store::StoreError) -> Response {
        if e.is_unavailable() {
            return self.notice(
                StatusCode::SERVICE_UNAVAILABLE,
                T::Refused,
                self.t(T::Busy),
                &self.path,
            );
        }
        // Said in the request's one line (`app.rs`).
        crate::health::Fault::on(
            self.notice(
                StatusCode::INTERNAL_SERVER_ERROR,
                T::Refused,
                self.t(T::Fault),
                "/console",
            ),
            &e,
        )
    }

    /// A time in the operator's zone, as people write it in Russian and Kazakh
    /// (`07.12.2026 14:57:49`; the machine form goes in `<time datetime>` where the page has it).
    fn time(&self, app: &AppState, at: Timestamp) -> String {
        at.to_zoned_datetime(app.zone.clone())
            .strftime("%d.%m.%Y %H:%M:%S")
            .to_string()
    }
}

/// A form's fields, read within the admin API's body limit.
struct Form(HashMap<String, String>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether the operator confirmed the change ([`Ctx::confirm`]).
    fn confirmed(&self) -> bool {
        self.get("confirm") == Some("yes")
    }

    /// Reads an `application/x-www-form-urlencoded` body of at most
    /// `limits.admin_body_bytes_max` bytes; anything else is an empty form (which no CSRF check
    /// passes), but a body that missed its deadline is a 408, send it again (DECISIONS 43).
    pub(super) async fn read(app: &AppState, body: Body) -> Result<Form, Box<Response>> {
        let limit = app.config.limits.admin_body_bytes_max;
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(Form(
                form_urlencoded::parse(&collected.to_bytes())
                    .into_owned()
                    .collect(),
            )),
            Err(e) if crate::connections::body::is_late(&*e) => Err(Box::new(
                (
                    StatusCode::REQUEST_TIMEOUT,
                    "Форма не пришла вовремя: отправьте её снова · \
                     Пішін уақытында келмеді: қайта жіберіңіз",
                )
                    .into_response(),
            )),
            Err(_) => Ok(Form(HashMap::new())),
        }
    }
}

/// The form of an operator's POST, or the answer that refuses it.
async fn operator_form(ctx: &Ctx, app: &AppState, req: Request) -> Result<Form, Box<Response>> {
    let form = Form::read(app, req.into_body()).await?;
    let session = ctx.check_post(&form)?;
    if !matches!(session.role, Role::Operator) {
        return Err(Box::new(Redirect::to("/console").into_response()));
    }
    Ok(form)
}

/// `/console`: the sign-in form, or straight to the session's own page.
async fn home(ctx: Ctx) -> Response {
    match ctx.session.as_ref().map(|s| &s.role) {
        Some(Role::Operator) => Redirect::to("/console/operator").into_response(),
        Some(Role::Mpp(_)) => Redirect::to("/console/cabinet").into_response(),
        None => {
            let next = ctx
                .query
                .iter()
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.as_str())
                .filter(|next| safe_next(next));
            sign_in_page(&ctx, StatusCode::OK, false, next)
        }
    }
}

/// Whether `next` is a page of the console to go to after signing in: a path of ours, never
/// another site (`//host`, `/\host`) or anything but a path.
fn safe_next(next: &str) -> bool {
    next.starts_with("/console/")
        && !next.contains("//")
        && !next
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
        && next
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '?' | '#' | '"' | '<' | '>' | '\\' | '%'))
}

/// Where a new session goes: the page it was sent away from (a register's link in an e-mail, say)
/// when that page is its role's, else its role's home.
fn after_sign_in(role: &Role, next: Option<&str>) -> String {
    let home = match role {
        Role::Operator => "/console/operator",
        Role::Mpp(_) => "/console/cabinet",
    };
    match next.filter(|next| safe_next(next)) {
        Some(next) if next == home || next.starts_with(&format!("{home}/")) => next.to_owned(),
        _ => home.to_owned(),
    }
}

fn sign_in_page(ctx: &Ctx, status: StatusCode, wrong: bool, next: Option<&str>) -> Response {
    let error = if wrong {
        format!(
            "<p id=\"error\" class=\"error\" role=\"alert\">{}</p>",
            ctx.t(T::WrongToken)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<p>{intro}</p>{error}<form method=\"post\" action=\"/console/sign-in\">\
         <label for=\"token\">{token}</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
         required size=\"40\"{invalid}>{next} <button id=\"sign-in\" type=\"submit\">{sign_in}</button></form>",
        // A wrong token: the field says so and holds the focus, to be typed again.
        invalid = if wrong {
            " aria-invalid=\"true\" aria-describedby=\"error\" autofocus"
        } else {
            ""
        },
        next = next
            .map(|next| format!(
                "<input type=\"hidden\" name=\"next\" value=\"{}\">",
                e(next)
            ))
            .unwrap_or_default(),
        intro = ctx.t(T::SignInIntro),
        token = ctx.t(T::Token),
        sign_in = ctx.t(T::SignIn),
    );
    ctx.page(status, ctx.t(T::Title), &body)
}

/// The token becomes a session: the admin token the operator's, an MPP's cabinet token that
/// MPP's. A wrong token: the form again with `#error`, 401, nothing set.
async fn sign_in(State(app): State<AppState>, ctx: Ctx, req: Request) -> Response {
    // The Origin check alone: there is no session to bind a CSRF token to yet, and a forged
    // sign-in from another site needs the token anyway.
    if let Some(origin) = &ctx.origin {
        let scheme = if ctx.secure { "https" } else { "http" };
        if ctx
            .host
            .as_ref()
            .map(|h| format!("{scheme}://{h}"))
            .as_deref()
            != Some(origin)
        {
            return ctx.notice(
                StatusCode::FORBIDDEN,
                T::Refused,
                ctx.t(T::CsrfRefused),
                "/console",
            );
        }
    }
    let form = match Form::read(&app, req.into_body()).await {
        Ok(form) => form,
        Err(late) => return *late,
    };
    let token = form.get("token").unwrap_or_default().trim();
    let role = if !ctx.cabinet_only && crate::admin_api::is_admin_token(&app, token) {
        Some((Role::Operator, Through::Configured))
    } else {
        crate::registers::cabinet::cabinet_token(&app, token).map(|(mpp, issued)| {
            let through = issued.map_or(Through::Configured, Through::Issued);
            (Role::Mpp(mpp), through)
        })
    };
    let catalog = app.catalog.get();
    let session = role.and_then(|(role, through)| {
        Session::start_through(&app.config, &catalog, role, through, ctx.now)
    });
    let Some(session) = session else {
        app.metrics
            .console_sign_ins_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let due = app.metrics.console_refusal_log.due();
        if let Some(left_out) = due {
            tracing::info!(left_out, "console sign-in refused");
        }
        let next = form.get("next").filter(|next| safe_next(next));
        return sign_in_page(&ctx, StatusCode::UNAUTHORIZED, true, next);
    };
    let to = after_sign_in(&session.role, form.get("next"));
    tracing::info!(role = ?session.role, "console sign-in");
    let mut response = Redirect::to(&to).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&session, ctx.secure)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Signing out forgets the cookie (sessions are kept nowhere else: a copy of it stays valid
/// until it expires, which is why the lifetime is bounded).
async fn sign_out(State(app): State<AppState>, ctx: Ctx, req: Request) -> Response {
    let form = match Form::read(&app, req.into_body()).await {
        Ok(form) => form,
        Err(late) => return *late,
    };
    if let Err(refused) = ctx.check_post(&form) {
        return *refused;
    }
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(ctx.secure)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// An admin use case's refusal, said in the session's language around the admin API's own
/// words (English, as the API answers), which name the field and the rule.
fn admin_refused(ctx: &Ctx, why: &str) -> String {
    ctx.t(T::AdminRefused).replace("{why}", why)
}

/// Where a GET of a form's address goes: the page the form is on, in the language the link asked
/// for. A page that answers a form (a refusal, a key shown once) links its language switch to
/// the form's own address.
fn back_to(ctx: &Ctx, page: &str) -> Response {
    if ctx.locale_chosen {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("locale", ctx.locale.code());
        return Redirect::to(&format!("{page}?{}", query.finish())).into_response();
    }
    Redirect::to(page).into_response()
}

/// A GET of the sign-in or sign-out form's address: the console's first page.
async fn back_home(ctx: Ctx) -> Response {
    back_to(&ctx, "/console")
}

async fn not_found(ctx: Ctx) -> Response {
    ctx.notice(
        StatusCode::NOT_FOUND,
        T::NotFoundTitle,
        ctx.t(T::NotFoundPage),
        "/console",
    )
}

/// The session of `role`'s pages, or the way to the sign-in, which comes back to this page.
fn require(ctx: &Ctx, operator: bool) -> Result<&Session, Box<Response>> {
    match &ctx.session {
        Some(s) if matches!(s.role, Role::Operator) == operator => Ok(s),
        None if safe_next(&ctx.path) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("next", &ctx.path);
            let to = format!("/console?{}", query.finish());
            Err(Box::new(Redirect::to(&to).into_response()))
        }
        _ => Err(Box::new(Redirect::to("/console").into_response())),
    }
}
