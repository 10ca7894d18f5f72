//! The one error type of the testkit.

use tolem_wire::merchant::StatusCode;

/// Why a testkit call failed. A test usually `?`s it or `expect`s it; the message says which call
/// and what the PS answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The sandbox PS could not start (a port, the database file, the configuration).
    #[error("the sandbox PS did not start: {0}")]
    Start(String),
    /// The PS did not answer the call (it is stopped, or the connection broke).
    #[error("{call}: no answer from the PS: {reason}")]
    NoAnswer {
        /// The call, as `METHOD path`.
        call: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The merchant API refused the call with a non-zero `StatusCode`.
    #[error("{call}: the PS refused it with StatusCode {status_code}: {message}")]
    Refused {
        /// The call, as `METHOD path`.
        call: String,
        /// The envelope's `StatusCode`.
        status_code: i64,
        /// The envelope's `Message`.
        message: String,
    },
    /// The PS answered something the testkit cannot read (a bug in the PS or in the testkit).
    #[error("{call}: unexpected answer (HTTP {http_status}): {body}")]
    Unexpected {
        /// The call, as `METHOD path`.
        call: String,
        /// The HTTP status of the answer.
        http_status: u16,
        /// The answer's body, as received.
        body: String,
    },
    /// What a wait was for did not happen within its bound.
    #[error("gave up waiting until {0}")]
    GaveUp(String),
}

impl TestkitError {
    /// The merchant API's code when the PS refused the call, e.g.
    /// `StatusCode::ReturnAmountExceeded` for a refund above what is left of a purchase.
    pub fn status_code(&self) -> Option<StatusCode> {
        match self {
            TestkitError::Refused { status_code, .. } => StatusCode::from_code(*status_code),
            _ => None,
        }
    }
}
