//! Refusals made below the use cases, in the surface's own words (DECISIONS 43): a request
//! target or headers over the limits (414, 431), a body too large (413), too slow (408) or cut
//! off (400), and hyper's parser's own (431, 400; [`super::parser_refusal`]). [`Refusal`] is the
//! one table of their HTTP statuses and codes; [`answer`] and [`envelope`] pick the envelope from
//! the request's path, and the MPP and merchant edges use the same table for the body errors
//! they meet while reading. [`Scheme`] tells the merchant API's paths.

use axum::http::{HeaderMap, StatusCode as HttpStatus, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};
use tolem_wire::merchant::{Envelope, StatusCode};
use tolem_wire::mpp::{self, ResultBody, ResultCode, ResultOnly};
use tolem_wire::{Locale, Param, Problem};

use super::body::BodyError;

/// The three integration schemes of the merchant API (MERCHANT-API.md §1.1), told by the path's
/// first segment: what makes a path the merchant API's, for its refusals here and its caller's
/// identity there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    R1,
    R2,
    R3,
}

impl Scheme {
    pub(crate) fn of_path(path: &str) -> Option<Scheme> {
        match path.get(..4) {
            Some("/r1/") => Some(Scheme::R1),
            Some("/r2/") => Some(Scheme::R2),
            Some("/r3/") => Some(Scheme::R3),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The request target (path and query) is longer than `bytes_max` bytes.
    UriTooLong {
        bytes_max: usize,
    },
    /// The header names and values add up to more than `bytes_max` bytes.
    HeadersTooLarge {
        bytes_max: usize,
    },
    /// hyper's parser: more headers than `headers_max`, or a request line and headers over
    /// `bytes_max` bytes together.
    HeadTooLarge {
        headers_max: usize,
        bytes_max: usize,
    },
    /// hyper's parser: a request line or header that is not HTTP/1.1.
    HeadMalformed,
    BodyTooLarge,
    BodyLate,
    BodyIncomplete,
}

impl From<BodyError> for Refusal {
    fn from(error: BodyError) -> Refusal {
        match error {
            BodyError::TooLarge => Refusal::BodyTooLarge,
            BodyError::Late => Refusal::BodyLate,
            BodyError::Incomplete => Refusal::BodyIncomplete,
        }
    }
}

impl Refusal {
    pub(crate) fn http_status(self) -> HttpStatus {
        match self {
            Refusal::UriTooLong { .. } => HttpStatus::URI_TOO_LONG,
            Refusal::HeadersTooLarge { .. } | Refusal::HeadTooLarge { .. } => {
                HttpStatus::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Refusal::HeadMalformed => HttpStatus::BAD_REQUEST,
            Refusal::BodyTooLarge => HttpStatus::PAYLOAD_TOO_LARGE,
            Refusal::BodyLate => HttpStatus::REQUEST_TIMEOUT,
            Refusal::BodyIncomplete => HttpStatus::BAD_REQUEST,
        }
    }

    /// What is wrong, named as the request's parameters are.
    pub(crate) fn param(self) -> Param {
        match self {
            Refusal::UriTooLong { bytes_max } => Param::new("URI", Problem::BytesMax(bytes_max)),
            Refusal::HeadersTooLarge { bytes_max } => {
                Param::new("headers", Problem::BytesMax(bytes_max))
            }
            Refusal::HeadTooLarge {
                headers_max,
                bytes_max,
            } => Param::new(
                "headers",
                Problem::HeadTooLarge {
                    headers_max,
                    bytes_max,
                },
            ),
            Refusal::HeadMalformed => Param::body(Problem::MalformedHead),
            Refusal::BodyTooLarge => Param::body(Problem::TooLarge),
            Refusal::BodyLate => Param::body(Problem::Late),
            Refusal::BodyIncomplete => Param::body(Problem::Incomplete),
        }
    }

    /// The MPP API's code: a body that came too slowly changed nothing and may be sent again, so
    /// it is `UNKNOWN_EXCEPTION` ("retry", DECISIONS 7); anything else would be refused again and
    /// is `PARAM_ILLEGAL`.
    pub(crate) fn mpp_result(self, locale: Locale) -> ResultBody {
        let code = match self {
            Refusal::BodyLate => ResultCode::UnknownException,
            _ => ResultCode::ParamIllegal,
        };
        ResultBody::for_param(code, locale, &self.param())
    }

    /// The merchant API's code, on the same rule: `-999` (retry) for a late body, else
    /// `-99000400`.
    pub(crate) fn merchant_code(self) -> StatusCode {
        match self {
            Refusal::BodyLate => StatusCode::Unavailable,
            _ => StatusCode::InvalidRequest,
        }
    }

    /// The English words of the admin API and the pages, which have no envelope of their own.
    fn plain(self) -> String {
        match self {
            Refusal::UriTooLong { bytes_max } => format!("URI longer than {bytes_max} bytes"),
            Refusal::HeadersTooLarge { bytes_max } => {
                format!("headers longer than {bytes_max} bytes")
            }
            Refusal::HeadTooLarge {
                headers_max,
                bytes_max,
            } => format!(
                "more than {headers_max} headers, or request line and headers longer than \
                 {bytes_max} bytes"
            ),
            Refusal::HeadMalformed => "request line or headers not HTTP/1.1".to_owned(),
            Refusal::BodyTooLarge => "body too large".to_owned(),
            Refusal::BodyLate => "body not received in time".to_owned(),
            Refusal::BodyIncomplete => "body incomplete".to_owned(),
        }
    }
}

/// The refusal in the envelope of the surface the path belongs to: `{"result": …}` under
/// `/api/` (in the language of `X-Locale`), `{"StatusCode", "Message"}` on the merchant API (in
/// the language of `Accept-Language`), `{"error": …}` elsewhere.
pub(crate) fn answer(parts: &Parts, refusal: Refusal) -> Response {
    let (status, content_type, body) = envelope(parts.uri.path(), Some(&parts.headers), refusal);
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The status, content type and body of [`answer`], for a request of `path`; without its
/// `headers`, in the surface's default language.
pub(crate) fn envelope(
    path: &str,
    headers: Option<&HeaderMap>,
    refusal: Refusal,
) -> (HttpStatus, &'static str, String) {
    let header = |name: &str| headers.and_then(|headers| header_text(headers, name));
    let status = refusal.http_status();
    if path.starts_with("/api/") {
        let locale = Locale::from_header(header(mpp::HEADER_LOCALE)).unwrap_or(Locale::Ru);
        let result = refusal.mpp_result(locale);
        (status, "application/json", json(&ResultOnly { result }))
    } else if Scheme::of_path(path).is_some() {
        let locale = Locale::from_accept_language(header(header::ACCEPT_LANGUAGE.as_str()));
        let detail = refusal.param().text(locale);
        let envelope = Envelope::error(refusal.merchant_code(), locale, Some(&detail));
        (status, "application/json; charset=utf-8", json(&envelope))
    } else {
        let body = serde_json::json!({ "error": refusal.plain() });
        (status, "application/json", body.to_string())
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // The wire's envelopes hold only strings and numbers: serializing them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request target's length in bytes, as the client sent it.
pub(crate) fn uri_bytes(uri: &Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

/// The headers' size in bytes as they came on the wire: each `name: value` and its line end.
pub(crate) fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
        .sum()
}

/// A request over the connection layer's size limits, if it is.
pub(crate) fn oversize(
    parts: &Parts,
    uri_bytes_max: usize,
    header_bytes_max: usize,
) -> Option<Refusal> {
    if uri_bytes(&parts.uri) > uri_bytes_max {
        return Some(Refusal::UriTooLong {
            bytes_max: uri_bytes_max,
        });
    }
    if header_bytes(&parts.headers) > header_bytes_max {
        return Some(Refusal::HeadersTooLarge {
            bytes_max: header_bytes_max,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use serde_json::Value;

    use super::*;

    fn parts(path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).expect("a request").into_parts().0
    }

    async fn body_of(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("a body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn each_surface_hears_a_refusal_in_its_own_envelope() {
        let late = Refusal::BodyLate;
        let got = answer(&parts("/api/v1/qr/scan", &[("x-locale", "kk-KZ")]), late);
        assert_eq!(got.status(), HttpStatus::REQUEST_TIMEOUT);
        let body = body_of(got).await;
        assert_eq!(body["result"]["resultCode"], "UNKNOWN_EXCEPTION");
        let message = body["result"]["resultMessage"].as_str().unwrap_or_default();
        assert!(
            message.ends_with("сұрау денесі уақытында алынбады"),
            "{body}"
        );

        let long = Refusal::UriTooLong { bytes_max: 8192 };
        let got = answer(&parts("/r2/v01/qr/create", &[]), long);
        assert_eq!(got.status(), HttpStatus::URI_TOO_LONG);
        let body = body_of(got).await;
        assert_eq!(body["StatusCode"], -99000400);
        assert_eq!(
            body["Message"],
            "Некорректный запрос: URI — длиннее 8192 байт"
        );

        let got = answer(&parts("/r1/v01/qr/create", &[]), late);
        assert_eq!(body_of(got).await["StatusCode"], -999);

        let got = answer(&parts("/admin/v1/catalog", &[]), Refusal::BodyTooLarge);
        assert_eq!(got.status(), HttpStatus::PAYLOAD_TOO_LARGE);
        assert_eq!(body_of(got).await["error"], "body too large");
    }

    #[test]
    fn sizes_are_counted_as_on_the_wire() {
        let p = parts("/api/v1/qr/scan?a=1", &[("x-a", "bc")]);
        assert_eq!(uri_bytes(&p.uri), "/api/v1/qr/scan?a=1".len());
        assert_eq!(header_bytes(&p.headers), "x-a: bc\r\n".len());
        assert_eq!(oversize(&p, 19, 9), None);
        assert_eq!(
            oversize(&p, 18, 9),
            Some(Refusal::UriTooLong { bytes_max: 18 })
        );
        assert_eq!(
            oversize(&p, 19, 8),
            Some(Refusal::HeadersTooLarge { bytes_max: 8 })
        );
    }
}
