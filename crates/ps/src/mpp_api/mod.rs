//! The MPP API v1 over HTTP (SPEC §1, §4.1–4.3): headers and body checked at the edge, the use
//! cases of [`crate::payments`] called, and the one place where their errors become the wire's
//! `result` (DECISIONS 7–10).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use tolem_wire::body::{self, Keys};
use tolem_wire::mpp::{self, CALLER_NAME_LEN_MAX, ResultBody, ResultCode, ResultOnly};

use tolem_wire::{Locale, Param, Problem};

use crate::connections::{Refusal, read_body};
use crate::payments::{self, Caller, MppError};
use crate::state::AppState;
use crate::store::ScanKey;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(mpp::SCAN_PATH, post(scan))
        .route(mpp::CHECKOUT_PATH, post(checkout))
        .route(mpp::NOTIFY_PAYMENT_PATH, post(notify_payment))
}

async fn scan(State(app): State<AppState>, call: MppCall) -> Response {
    let result = match call.parse() {
        Ok(req) => {
            let repeat = || {
                ScanKey::new(
                    call.caller.mpp.caller_name.as_str(),
                    &call.request_id,
                    &call.body,
                )
            };
            payments::scan(&app, &call.caller, req, repeat)
                .await
                .map(|r| json_body(&r))
        }
        Err(e) => Err(e),
    };
    respond(&call.caller, result)
}

async fn checkout(State(app): State<AppState>, call: MppCall) -> Response {
    let result = match call.parse() {
        Ok(req) => payments::checkout(&app, &call.caller, req).await,
        Err(e) => Err(e),
    };
    respond(&call.caller, result)
}

async fn notify_payment(State(app): State<AppState>, call: MppCall) -> Response {
    let result = match call.parse() {
        Ok(req) => payments::notify(&app, &call.caller, req).await,
        Err(e) => Err(e),
    };
    respond(&call.caller, result)
}

fn json_body<T: serde::Serialize>(value: &T) -> String {
    // Serializing our own wire types cannot fail: they hold only strings, numbers and maps
    // with string keys.
    serde_json::to_string(value).unwrap_or_default()
}

/// The one mapping from a use case's outcome to the wire.
fn respond(caller: &Caller, result: Result<String, MppError>) -> Response {
    match result {
        Ok(body) => {
            let code = result_code_of(&body);
            json_response(StatusCode::OK, body, code)
        }
        Err(MppError::Code { code, detail }) => {
            // UNKNOWN_EXCEPTION always means "retry", which DECISIONS 7 says with HTTP 503.
            let status = if code == ResultCode::UnknownException {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            let result = match detail {
                Some(detail) => ResultBody::with_detail(code, caller.locale, &detail),
                None => ResultBody::of(code, caller.locale),
            };
            result_response(status, result)
        }
        Err(MppError::Param(param)) => result_response(
            StatusCode::OK,
            ResultBody::for_param(ResultCode::ParamIllegal, caller.locale, &param),
        ),
        Err(MppError::Store(e)) if e.is_unavailable() => {
            crate::log_sparse::store_unavailable(&e);
            result_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ResultBody::of(ResultCode::UnknownException, caller.locale),
            )
        }
        Err(MppError::Store(e)) => crate::health::Fault::on(
            result_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                ResultBody::of(ResultCode::UnknownException, caller.locale),
            ),
            &e,
        ),
    }
}

/// An answer, with its `resultCode` beside it for the metrics ([`crate::state::Traffic`]).
fn json_response(status: StatusCode, body: String, code: Option<ResultCode>) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(code) = code {
        response.extensions_mut().insert(code);
    }
    response
}

/// The `resultCode` of an answer the PS made (a stored one included): read from the front, where
/// the PS's own serializer puts it, or else from the whole body.
fn result_code_of(body: &str) -> Option<ResultCode> {
    const FRONT: &str = r#"{"result":{"resultCode":""#;
    if let Some(rest) = body.strip_prefix(FRONT) {
        return rest.split('"').next().and_then(ResultCode::parse);
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        result: ResultBody,
    }
    serde_json::from_str::<Answer>(body)
        .ok()
        .and_then(|a| a.result.code())
}

fn result_response(status: StatusCode, result: ResultBody) -> Response {
    let code = result.code();
    let mut response = json_response(status, json_body(&ResultOnly { result }), code);
    // 503 with UNKNOWN_EXCEPTION means "retry" (DECISIONS 7): a second on, as an MPP over its
    // rate limit (at least one request a second) may try again by then.
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// The answer to a path or method the MPP API does not have, in the caller's `X-Locale` (Russian
/// when it is missing or not one of the two).
pub(crate) fn unknown_method(headers: &HeaderMap) -> Response {
    let locale = header_text(headers, mpp::HEADER_LOCALE)
        .map_or(None, Locale::from_header)
        .unwrap_or(Locale::Ru);
    let detail = match locale {
        Locale::Ru => "неизвестный метод",
        Locale::Kk => "белгісіз әдіс",
    };
    result_response(
        StatusCode::NOT_FOUND,
        ResultBody::with_detail(ResultCode::ParamIllegal, locale, detail),
    )
}

/// An MPP API request whose headers passed the checks of SPEC 1.7 and DECISIONS 8–10.
pub(crate) struct MppCall {
    pub caller: Caller,
    /// Its X-Request-ID, valid (DECISIONS 9).
    pub request_id: String,
    pub body: Bytes,
}

impl MppCall {
    /// The body, read strictly (DECISIONS 44): one JSON object, no key twice at any depth, names
    /// exact; whatever is wrong is PARAM_ILLEGAL naming the parameter.
    fn parse<T: DeserializeOwned>(&self) -> Result<T, MppError> {
        body::read(&self.body, Keys::Exact).map_err(MppError::Param)
    }
}

/// A refused request: answered with `result` alone.
pub(crate) struct Refused {
    status: StatusCode,
    result: ResultBody,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        result_response(self.status, self.result)
    }
}

impl FromRequest<AppState> for MppCall {
    type Rejection = Refused;

    async fn from_request(req: Request, app: &AppState) -> Result<MppCall, Refused> {
        let headers = req.headers().clone();
        let illegal = |locale: Locale, name: &str, problem: Problem| Refused {
            status: StatusCode::OK,
            result: ResultBody::for_param(
                ResultCode::ParamIllegal,
                locale,
                &Param::new(name, problem),
            ),
        };
        // A header that is not visible ASCII is no value the rules take: a locale that is not
        // one of the two, a caller the PS does not know, a content type that is not JSON.
        // Each is read once: a header sent twice (a proxy's and the caller's, say) is refused,
        // never read as either: a caller named twice is no caller the PS knows.
        let locale = match header_text(&headers, mpp::HEADER_LOCALE) {
            Err(HeaderFault::Repeated) => {
                return Err(illegal(Locale::Ru, "X-Locale", Problem::Duplicate));
            }
            found => found.map_or(None, Locale::from_header).ok_or_else(|| {
                illegal(Locale::Ru, "X-Locale", Problem::Expected("ru-RU | kk-KZ"))
            })?,
        };
        let caller_header = header_text(&headers, mpp::HEADER_CALLER_NAME);
        let caller_name = caller_header
            .as_ref()
            .ok()
            .copied()
            .flatten()
            .unwrap_or_default();
        let catalog = app.catalog.get();
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let unknown = |detail: Option<&str>| Refused {
            status: StatusCode::OK,
            // The message names the header already: "Неизвестный участник (X-Caller-Name)".
            result: match detail {
                Some(detail) => ResultBody::with_detail(ResultCode::UnknownSource, locale, detail),
                None => ResultBody::of(ResultCode::UnknownSource, locale),
            },
        };
        let mpp = (caller_name.chars().count() <= CALLER_NAME_LEN_MAX)
            .then(|| catalog.active_mpp(caller_name).cloned())
            .flatten()
            .ok_or_else(|| unknown(Some(&unknown_caller(caller_header, locale))))?;
        // An MPP with a tunnel speaks only from its own inner addresses: another MPP's request
        // under its name is a caller the PS does not know. Said in the answer too, so that the
        // MPP's engineers look at their addresses, not at the name.
        if !catalog.mpp_source_allowed(&mpp.caller_name, peer) {
            tracing::warn!(caller = %mpp.caller_name, ?peer, "an MPP's name from outside its tunnel's inner addresses; refused as UNKNOWN_SOURCE");
            let tunnel = catalog.has_tunnel(&mpp.caller_name);
            return Err(unknown(Some(match (tunnel, locale) {
                (true, Locale::Ru) => "адрес вне туннеля этого участника",
                (true, Locale::Kk) => "мекенжай осы қатысушының туннелінен тыс",
                // An MPP without a tunnel, named from another MPP's.
                (false, Locale::Ru) => "адрес из туннеля другого участника",
                (false, Locale::Kk) => "мекенжай басқа қатысушының туннелінен",
            })));
        }
        // Counted before anything else is read or done: a request over the limit costs nothing.
        if !app.mpp_requests.admit(mpp.caller_name.as_str()) {
            let detail = match locale {
                Locale::Ru => "превышен лимит запросов участника в секунду",
                Locale::Kk => "қатысушының секундтағы сұраулар шегі асып кетті",
            };
            return Err(Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                result: ResultBody::with_detail(ResultCode::UnknownException, locale, detail),
            });
        }
        let request_id = match crate::request_id::of_mpp(&headers) {
            Ok(id) => id.to_owned(),
            Err(problem) => return Err(illegal(locale, "X-Request-ID", problem)),
        };
        let content_type = header_text(&headers, header::CONTENT_TYPE.as_str());
        if let Err(HeaderFault::Repeated) = content_type {
            return Err(illegal(locale, "Content-Type", Problem::Duplicate));
        }
        let json = content_type
            .ok()
            .flatten()
            .is_some_and(tolem_wire::body::is_json_media_type);
        if !json {
            return Err(illegal(
                locale,
                "Content-Type",
                Problem::Expected("application/json"),
            ));
        }
        let limit = app.config.limits.body_bytes_max;
        let body = read_body(req, limit).await.map_err(|e| {
            let refusal = Refusal::from(e);
            Refused {
                status: refusal.http_status(),
                result: refusal.mpp_result(locale),
            }
        })?;
        Ok(MppCall {
            caller: Caller { mpp, locale },
            request_id,
            body,
        })
    }
}

/// Why a header has no value the MPP API reads.
/// Why `X-Caller-Name` names no MPP, for the answer: the name the PS read is said back (at most
/// a little past the longest a name may be), so that an MPP's engineers see a typo or a proxy's
/// rewrite at once. The header is visible ASCII, or it is not said.
fn unknown_caller(header: Result<Option<&str>, HeaderFault>, locale: Locale) -> String {
    let ru = locale == Locale::Ru;
    match header {
        Err(HeaderFault::Repeated) => if ru {
            "заголовок передан дважды"
        } else {
            "тақырып екі рет жіберілді"
        }
        .to_owned(),
        Err(HeaderFault::NotText) => if ru { "не ASCII" } else { "ASCII емес" }.to_owned(),
        Ok(None) | Ok(Some("")) => if ru {
            "заголовок не передан"
        } else {
            "тақырып жіберілмеді"
        }
        .to_owned(),
        Ok(Some(name)) => {
            let mut said: String = name.chars().take(CALLER_NAME_LEN_MAX + 4).collect();
            if said.len() < name.len() {
                said.push('…');
            }
            match ru {
                true => format!("«{said}» нет среди действующих участников"),
                false => format!("«{said}» әрекеттегі қатысушылар арасында жоқ"),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum HeaderFault {
    /// Sent more than once.
    Repeated,
    /// Not visible ASCII.
    NotText,
}

/// A header sent at most once, as text.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, HeaderFault> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(HeaderFault::Repeated);
    }
    first
        .map(|value| value.to_str().map_err(|_| HeaderFault::NotText))
        .transpose()
}
