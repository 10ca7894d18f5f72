//! The X-Request-ID of a call (SPEC 1.7, DECISIONS 9), checked once when it is made.

use std::fmt;

use tolem_wire::mpp::REQUEST_ID_LEN_MAX;
use tolem_wire::request_id::{RequestIdError, check_request_id};

use crate::error::SetupError;

/// An X-Request-ID the PS accepts: 1–64 characters, none a control character. One logical
/// request keeps one id across its retries, also after the MPP's own restart when the MPP stores it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Checks an id made by the MPP (for example one stored with its payment).
    pub fn new(id: &str) -> Result<RequestId, SetupError> {
        // The PS's own rule (`tolem_wire::request_id`), with reasons an integrator can act on.
        let reason = match check_request_id(id.as_bytes(), REQUEST_ID_LEN_MAX) {
            Ok(_) => None,
            Err(RequestIdError::Empty) => Some("it is empty".to_owned()),
            Err(RequestIdError::TooLong) => {
                Some(format!("it is longer than {REQUEST_ID_LEN_MAX} characters"))
            }
            Err(RequestIdError::ControlCharacter) => {
                Some("it contains a control character (a newline?)".to_owned())
            }
            // A &str is UTF-8: kept for the rule's other callers, which read raw bytes.
            Err(RequestIdError::NotUtf8) => Some("it is not UTF-8".to_owned()),
        };
        match reason {
            None => Ok(RequestId(id.to_owned())),
            Some(reason) => Err(SetupError::RequestId {
                id: id.escape_debug().to_string(),
                reason,
            }),
        }
    }

    /// A new random id (32 hex digits).
    pub fn random() -> RequestId {
        RequestId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
