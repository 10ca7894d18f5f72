//! What every answer must be, by surface: the surface's envelope and a status in its documented
//! set (docs/mpp-api.md, docs/merchant-api.md, docs/admin-api.md, DECISIONS 7, 26, 33). HTTP 500
//! is never expected: nothing in this run fails below the PS, so a 500 is a bug (and the
//! `internal error` body is the CatchPanicLayer's answer to a panic).

use axum::http::HeaderMap;
use serde_json::Value;
use tolem_wire::merchant::StatusCode;
use tolem_wire::mpp::ResultCode;

use crate::mutate::Input;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    Mpp,
    Merchant,
    Admin,
    Cabinet,
    /// Receipts, QR pictures, payment-link pages and the cashier screen: for browsers and
    /// wallets, not JSON.
    Page,
    /// The root, `/`: a GET leads to the listener's screen (`app::router_for`).
    Home,
    Other,
}

/// Which surface the router gives a path to (`app::router` and its fallback).
pub fn surface(target: &str) -> Surface {
    // The router sees the path with trailing slashes trimmed (`app::service`, what `serve` runs).
    let path = target
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    // The API is told by the first segment, the bare prefix included (`/api`, `/r1`, `/admin`).
    // Leading slashes are trimmed as the router's fallback does (`//r1/x` is the merchant API's).
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    if first == "api" {
        Surface::Mpp
    } else if ["r1", "r2", "r3"].contains(&first) {
        Surface::Merchant
    } else if first == "admin" {
        Surface::Admin
    } else if path.starts_with("/cabinet/") {
        Surface::Cabinet
    } else if path == "/receipt"
        || path.starts_with("/qr/")
        || path.starts_with("/pay/")
        || path == "/pos"
        || path.starts_with("/pos/")
    {
        Surface::Page
    } else if path.trim_start_matches('/').is_empty() {
        Surface::Home
    } else {
        Surface::Other
    }
}

pub enum Verdict {
    Ok,
    Bug(String),
}

pub fn check(input: &Input, status: u16, headers: &HeaderMap, body: &[u8]) -> Verdict {
    if status == 500 {
        return Verdict::Bug(format!("HTTP 500: {}", String::from_utf8_lossy(body)));
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let path = input.target.split('?').next().unwrap_or_default();
    let surface = surface(&input.target);
    let verdict = match surface {
        // HEAD is answered without a body, as HTTP says.
        _ if input.method == "HEAD" && body.is_empty() => Verdict::Ok,
        // The operator's metrics are Prometheus text.
        Surface::Admin if status == 200 && path.trim_end_matches('/') == "/admin/v1/metrics" => {
            Verdict::Ok
        }
        Surface::Mpp => mpp(status, json.as_ref()),
        Surface::Merchant => merchant(status, json.as_ref()),
        Surface::Admin => plain_json(
            status,
            json.as_ref(),
            &[200, 201, 400, 401, 404, 405, 409, 413],
            body,
        ),
        Surface::Cabinet => {
            let file = status == 200 && json.is_none();
            if file {
                Verdict::Ok
            } else {
                plain_json(
                    status,
                    json.as_ref(),
                    &[200, 400, 401, 404, 405, 409, 503],
                    body,
                )
            }
        }
        Surface::Page => match status {
            200 | 400 | 404 | 422 => Verdict::Ok,
            _ => Verdict::Bug(format!("a page answered HTTP {status}")),
        },
        // A GET of the root is sent to the console (every surface is served here); any other
        // method is an unknown path's answer.
        Surface::Home if status == 303 => {
            match headers.get("location").and_then(|l| l.to_str().ok()) {
                Some("/console/") => Verdict::Ok,
                other => Verdict::Bug(format!("the root led to {other:?}")),
            }
        }
        Surface::Home | Surface::Other => {
            match (status, json.as_ref().and_then(|j| j["error"].as_str())) {
                (404, Some(_)) => Verdict::Ok,
                _ => Verdict::Bug(format!("an unknown path answered HTTP {status}")),
            }
        }
    };
    if !matches!(verdict, Verdict::Ok) {
        return verdict;
    }
    // An echoed X-Request-ID is the one that came, and only a valid one (1–128 characters of
    // UTF-8, no control character; DECISIONS 9) should come back.
    // The first X-Request-ID is the one a request carries (as `HeaderMap::get` reads it).
    let request_id = input
        .headers
        .iter()
        .find(|(n, _)| n == "x-request-id")
        .map(|(_, v)| v.as_slice());
    if let Some(echo) = headers.get("x-request-id") {
        if Some(echo.as_bytes()) != request_id {
            return Verdict::Bug("X-Request-ID echoed changed".to_owned());
        }
        let valid = std::str::from_utf8(echo.as_bytes()).is_ok_and(|id| {
            (1..=128).contains(&id.chars().count()) && !id.chars().any(char::is_control)
        });
        if !valid {
            return Verdict::Bug("an invalid X-Request-ID echoed".to_owned());
        }
    }
    Verdict::Ok
}

/// `{"result": {"resultCode", "resultMessage"}}` with a code of the table; HTTP 200 for every
/// business answer, 404 for an unknown method, 413 for a body over the limit, 503 with
/// UNKNOWN_EXCEPTION for "retry" (DECISIONS 7).
fn mpp(status: u16, json: Option<&Value>) -> Verdict {
    let Some(result) = json.map(|j| &j["result"]) else {
        return Verdict::Bug(format!("MPP API answer without JSON (HTTP {status})"));
    };
    let code = result["resultCode"].as_str().and_then(ResultCode::parse);
    let Some(code) = code else {
        return Verdict::Bug(format!(
            "MPP API answer without a known resultCode (HTTP {status})"
        ));
    };
    let Some(message) = result["resultMessage"].as_str() else {
        return Verdict::Bug("MPP API answer without resultMessage".to_owned());
    };
    // The PS holds itself to the lengths it asks of the MPPs (SPEC 4.3), though the message may
    // echo what the caller sent (a key's path, a value).
    if message.chars().count() > tolem_wire::mpp::RESULT_MESSAGE_LEN_MAX {
        return Verdict::Bug(format!(
            "MPP API resultMessage of {} characters",
            message.chars().count()
        ));
    }
    let allowed = match status {
        200 => true,
        404 | 413 => code == ResultCode::ParamIllegal,
        503 => code == ResultCode::UnknownException,
        _ => false,
    };
    match allowed {
        true => Verdict::Ok,
        false => Verdict::Bug(format!(
            "MPP API answered HTTP {status} with {}",
            code.as_str()
        )),
    }
}

/// `{StatusCode, Message, Data}` with a code of the table; HTTP 200 for business answers, 404
/// for an unknown method, 503 with -999 (DECISIONS 26, 33).
fn merchant(status: u16, json: Option<&Value>) -> Verdict {
    let Some(json) = json else {
        return Verdict::Bug(format!("merchant API answer without JSON (HTTP {status})"));
    };
    let code = json["StatusCode"].as_i64().and_then(StatusCode::from_code);
    let Some(code) = code else {
        return Verdict::Bug(format!(
            "merchant API answer without a known StatusCode: {json}"
        ));
    };
    if !json["Message"].is_string() {
        return Verdict::Bug("merchant API answer without Message".to_owned());
    }
    let allowed = match status {
        200 => true,
        404 => code == StatusCode::UnknownMethod,
        413 => code == StatusCode::InvalidRequest,
        503 => code == StatusCode::Unavailable,
        _ => false,
    };
    match allowed {
        true => Verdict::Ok,
        false => Verdict::Bug(format!(
            "merchant API answered HTTP {status} with {}",
            code.code()
        )),
    }
}

/// Operator surfaces: JSON, `{"error": …}` on failure, a status of the documented set.
fn plain_json(status: u16, json: Option<&Value>, statuses: &[u16], body: &[u8]) -> Verdict {
    let Some(json) = json else {
        return Verdict::Bug(format!(
            "HTTP {status} without JSON: {}",
            String::from_utf8_lossy(body)
        ));
    };
    if !statuses.contains(&status) {
        return Verdict::Bug(format!(
            "HTTP {status} is not in the documented set: {json}"
        ));
    }
    if status >= 400 && !json["error"].is_string() {
        return Verdict::Bug(format!("HTTP {status} without an error text: {json}"));
    }
    Verdict::Ok
}
