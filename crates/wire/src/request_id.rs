//! The one X-Request-ID rule of every surface (DECISIONS 9, 29): 1 to the surface's own length
//! limit of characters (UTF-8), none of them a control character (U+0000–U+001F,
//! U+007F–U+009F). The PS echoes only an id that keeps this rule, logs only such an id, and keys
//! replays only by one; the MPP API refuses any other as `PARAM_ILLEGAL`.
//!
//! The two limits differ for a reason: the MPP API's is the regulation's (SPEC 1.7), the merchant
//! API's is the PS's own choice, long enough for every id real POS clients send (a dashed UUID is
//! 36 characters, a decimal UnixNano timestamp 19; MERCHANT-API.md §2) and short enough that an id
//! never costs more than a line of a log.

use crate::Problem;

/// Longest X-Request-ID of the MPP API (SPEC 1.7: "at most 64 characters").
pub const MPP_REQUEST_ID_LEN_MAX: usize = 64;
/// Longest X-Request-ID of the merchant and admin APIs; a longer one is treated as absent.
pub const MERCHANT_REQUEST_ID_LEN_MAX: usize = 128;

/// Why a header value is not an X-Request-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestIdError {
    Empty,
    /// More characters than the surface's limit.
    TooLong,
    /// A control character (a tab, U+0080–U+009F; HTTP refuses the others in a header), which
    /// has no place in the log line the id is written into.
    ControlCharacter,
    /// Bytes that are not UTF-8: no characters to count or log.
    NotUtf8,
}

impl RequestIdError {
    /// What is wrong, as the MPP API says it (DECISIONS 10).
    pub fn problem(self, len_max: usize) -> Problem {
        match self {
            RequestIdError::Empty | RequestIdError::TooLong => Problem::Length(1, len_max),
            RequestIdError::ControlCharacter => Problem::ControlCharacter,
            // A name reads the same in both languages, as `ru-RU | kk-KZ` does.
            RequestIdError::NotUtf8 => Problem::Expected("UTF-8"),
        }
    }
}

/// The id in `value` (a header's raw bytes) if it keeps the rule with this length limit.
pub fn check_request_id(value: &[u8], len_max: usize) -> Result<&str, RequestIdError> {
    if value.is_empty() {
        return Err(RequestIdError::Empty);
    }
    // Every character takes a byte at least: a value of no more bytes than the limit is short
    // enough, and a longer one is counted only when it is at most four bytes a character.
    if value.len() > 4 * len_max {
        return Err(RequestIdError::TooLong);
    }
    let id = std::str::from_utf8(value).map_err(|_| RequestIdError::NotUtf8)?;
    if id.chars().any(char::is_control) {
        return Err(RequestIdError::ControlCharacter);
    }
    if value.len() > len_max && id.chars().count() > len_max {
        return Err(RequestIdError::TooLong);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_real_clients_send_are_kept() {
        for id in [
            "1",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "1732702302123456789",
            "refund-42",
            "a~!@#$%^&*()_+={}[]|\\:;\"'<>,.?/",
            "two words",
            "кириллица",
        ] {
            assert_eq!(check_request_id(id.as_bytes(), 64), Ok(id));
        }
        let longest = "x".repeat(MPP_REQUEST_ID_LEN_MAX);
        assert!(check_request_id(longest.as_bytes(), MPP_REQUEST_ID_LEN_MAX).is_ok());
        // Characters are counted, not bytes: 64 letters of two bytes each.
        let longest = "ж".repeat(MPP_REQUEST_ID_LEN_MAX);
        assert!(check_request_id(longest.as_bytes(), MPP_REQUEST_ID_LEN_MAX).is_ok());
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let too_long = "x".repeat(MPP_REQUEST_ID_LEN_MAX + 1);
        let too_long_letters = "ж".repeat(MPP_REQUEST_ID_LEN_MAX + 1);
        let far_too_long = "x".repeat(100_000);
        let cases: [(&[u8], RequestIdError); 8] = [
            (b"", RequestIdError::Empty),
            (too_long.as_bytes(), RequestIdError::TooLong),
            (too_long_letters.as_bytes(), RequestIdError::TooLong),
            (far_too_long.as_bytes(), RequestIdError::TooLong),
            (b"tab\there", RequestIdError::ControlCharacter),
            (b"line\nbreak", RequestIdError::ControlCharacter),
            ("c1\u{85}".as_bytes(), RequestIdError::ControlCharacter),
            (b"\xff\xfe", RequestIdError::NotUtf8),
        ];
        for (value, why) in cases {
            assert_eq!(
                check_request_id(value, MPP_REQUEST_ID_LEN_MAX),
                Err(why),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_rule() {
        let problem = RequestIdError::NotUtf8.problem(MPP_REQUEST_ID_LEN_MAX);
        assert_eq!(problem, Problem::Expected("UTF-8"));
        let problem = RequestIdError::ControlCharacter.problem(MPP_REQUEST_ID_LEN_MAX);
        assert_eq!(problem, Problem::ControlCharacter);
        let problem = RequestIdError::TooLong.problem(MPP_REQUEST_ID_LEN_MAX);
        assert_eq!(problem, Problem::Length(1, 64));
    }

    #[test]
    fn the_merchant_limit_is_its_own() {
        let id = "x".repeat(MERCHANT_REQUEST_ID_LEN_MAX);
        assert!(check_request_id(id.as_bytes(), MPP_REQUEST_ID_LEN_MAX).is_err());
        assert!(check_request_id(id.as_bytes(), MERCHANT_REQUEST_ID_LEN_MAX).is_ok());
        let longer = "x".repeat(MERCHANT_REQUEST_ID_LEN_MAX + 1);
        assert_eq!(
            check_request_id(longer.as_bytes(), MERCHANT_REQUEST_ID_LEN_MAX),
            Err(RequestIdError::TooLong)
        );
    }
}
