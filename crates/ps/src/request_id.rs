//! The X-Request-ID of each API, read one way by every edge (DECISIONS 9, 29): the MPP API's is
//! required and keeps the regulation's limit (SPEC 1.7), a broken one refused; the merchant and
//! admin APIs' is optional and keeps the PS's own limit, a broken one treated as absent. The rule
//! itself (1 to the limit of characters, none a control character) is `tolem_wire::request_id`; which limit an API keeps is
//! written here once, for the edges, the echo on every answer and the request's log line.
//!
//! Plain functions of the request's headers, called by the edges and the router's middleware.

use axum::http::HeaderMap;
use tolem_wire::Problem;
use tolem_wire::mpp::HEADER_REQUEST_ID;
use tolem_wire::request_id::{
    MERCHANT_REQUEST_ID_LEN_MAX, MPP_REQUEST_ID_LEN_MAX, check_request_id,
};

/// The MPP API's X-Request-ID, or what is wrong with it (missing, sent twice, too long or not
/// the rule's characters) as the MPP API says it in its `PARAM_ILLEGAL`.
pub(crate) fn of_mpp(headers: &HeaderMap) -> Result<&str, Problem> {
    if repeated(headers) {
        return Err(Problem::Duplicate);
    }
    let Some(value) = headers.get(HEADER_REQUEST_ID) else {
        return Err(Problem::Missing);
    };
    check_request_id(value.as_bytes(), MPP_REQUEST_ID_LEN_MAX)
        .map_err(|why| why.problem(MPP_REQUEST_ID_LEN_MAX))
}

/// The merchant API's X-Request-ID, and the admin API's and any other path's: `None` when absent
/// or when it breaks the rule, which these APIs treat alike. Sent twice (a proxy that adds its
/// own), the first is the POS's and is kept, so that its repeats still find their answer.
pub(crate) fn of_merchant(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(HEADER_REQUEST_ID)?;
    check_request_id(value.as_bytes(), MERCHANT_REQUEST_ID_LEN_MAX).ok()
}

/// Whether the request carries X-Request-ID more than once: a proxy's and the caller's, say, of
/// which the PS would otherwise pick one.
fn repeated(headers: &HeaderMap) -> bool {
    headers.get_all(HEADER_REQUEST_ID).iter().nth(1).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(id: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(id) = id {
            headers.insert(
                HEADER_REQUEST_ID,
                HeaderValue::from_str(id).expect("a header"),
            );
        }
        headers
    }

    #[test]
    fn each_api_keeps_its_own_limit() {
        let long = "x".repeat(MPP_REQUEST_ID_LEN_MAX + 1);
        assert_eq!(of_mpp(&headers(Some("r-1"))), Ok("r-1"));
        assert_eq!(of_mpp(&headers(Some(&long))), Err(Problem::Length(1, 64)));
        assert_eq!(of_mpp(&headers(None)), Err(Problem::Missing));
        assert_eq!(of_mpp(&headers(Some(""))), Err(Problem::Length(1, 64)));
        assert_eq!(of_merchant(&headers(Some(&long))), Some(long.as_str()));
        let longer = "x".repeat(MERCHANT_REQUEST_ID_LEN_MAX + 1);
        assert_eq!(of_merchant(&headers(Some(&longer))), None);
        assert_eq!(of_merchant(&headers(Some("tab\there"))), None);
        assert_eq!(of_merchant(&headers(Some("two words"))), Some("two words"));
        assert_eq!(of_merchant(&headers(None)), None);
        let mut twice = headers(Some("r-1"));
        twice.append(HEADER_REQUEST_ID, HeaderValue::from_static("r-2"));
        assert_eq!(of_mpp(&twice), Err(Problem::Duplicate));
        assert_eq!(of_merchant(&twice), Some("r-1"));
    }
}
