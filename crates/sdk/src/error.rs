//! The errors of the client: what cannot be fixed by repeating a call (a setup mistake, an answer
//! that cannot be read, a TLS failure), and the typed transport failures that can.

use std::fmt;

/// A mistake in how the client was set up or called. Final and immediate: repeating the call with
/// the same setup fails the same way, so the client never retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The base URL does not start with `http://` or `https://`.
    #[error("the PS's base URL {url:?} must start with http:// or https://")]
    BaseUrlScheme {
        /// The URL as given.
        url: String,
    },
    /// The base URL cannot be read as a URL, or has a part a base URL cannot have.
    #[error("the PS's base URL {url:?} is not a usable URL: {reason}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller name (`X-Caller-Name`) is empty, too long or not printable ASCII.
    #[error("the caller name {name:?} is not usable: {reason}")]
    CallerName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An X-Request-ID that the PS would refuse or that cannot travel in a header.
    #[error("the X-Request-ID {id:?} is not usable: {reason}")]
    RequestId {
        /// The id as given (control characters shown escaped).
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA certificate or the client certificate given for TLS cannot be used.
    #[error("TLS setup: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// A timeout of zero, or another setting the client cannot work with.
    #[error("client setup: {reason}")]
    Setting {
        /// What is wrong.
        reason: String,
    },
    /// The base URL answers HTTP 404 on an MPP API path: it does not lead to a PS's MPP API
    /// (a wrong host, port or path prefix). scan and checkout only: notifyPayment takes any
    /// answer that is not the PS's as [`Unanswered::NotFromThePs`](crate::Unanswered) and retries.
    #[error("{url} answered HTTP 404: the base URL does not lead to the PS's MPP API")]
    NotFound {
        /// The URL that was called.
        url: String,
    },
    /// The base URL answers something that is not a PS (an HTTP status the MPP API never uses,
    /// without a `result` body): a redirect, a login page, another service. scan and checkout
    /// only, as for [`SetupError::NotFound`].
    #[error("{url} answered HTTP {status} without a PS result: the base URL does not lead to a PS")]
    NotThePs {
        /// The URL that was called.
        url: String,
        /// The HTTP status it answered.
        status: u16,
    },
}

/// The kinds of transport failure: the PS's answer did not arrive whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No answer within the client's timeout. Retryable: the PS may or may not have acted.
    Timeout,
    /// No connection (refused, unreachable, the name not resolved). Retryable.
    Refused,
    /// The TLS handshake failed (an untrusted or wrong certificate, a client certificate refused,
    /// or TLS spoken to a server that does not speak it). Final: it needs a fix of the setup.
    Tls,
    /// The connection broke or the answer was not valid HTTP. Retryable.
    Protocol,
}

impl TransportErrorKind {
    /// True when repeating the call (same X-Request-ID) may get an answer.
    pub fn is_retryable(self) -> bool {
        !matches!(self, TransportErrorKind::Tls)
    }
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Refused => "no connection",
            TransportErrorKind::Tls => "TLS",
            TransportErrorKind::Protocol => "broken answer",
        })
    }
}

/// A transport failure: its kind and, in words, every cause the HTTP stack gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
}

impl TransportError {
    /// What kind of failure it was.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The failure in words, with its causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Sorts a failure of the HTTP client. Wrapped here so that the HTTP client's own error type
    /// stays out of the public API.
    pub(crate) fn from_http(error: &reqwest::Error) -> TransportError {
        let mut message = error.to_string();
        let mut tls = false;
        let mut refused = false;
        let mut cause = std::error::Error::source(error);
        while let Some(e) = cause {
            message.push_str(": ");
            message.push_str(&e.to_string());
            tls |= is_tls(e);
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
            }
            cause = e.source();
        }
        let kind = if tls {
            TransportErrorKind::Tls
        } else if error.is_timeout() {
            TransportErrorKind::Timeout
        } else if refused || error.is_connect() {
            TransportErrorKind::Refused
        } else {
            TransportErrorKind::Protocol
        };
        TransportError { kind, message }
    }
}

/// True when `e` is a rustls failure, also wrapped: rustls reports handshake failures to hyper as
/// `io::Error(InvalidData, rustls::Error)`, and the connector boxes that.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.get_ref().is_some_and(|inner| is_tls(inner));
    }
    false
}

/// An answer from the PS that cannot be read as the method's answer (not JSON, a field missing or
/// of the wrong type). Final: repeating the call gets the same answer. The parse error is kept as
/// the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("the PS's answer to {method} (HTTP {status}) cannot be read: {source}")]
pub struct UnreadableAnswer {
    method: &'static str,
    status: u16,
    body: String,
    #[source]
    source: serde_json::Error,
}

/// How much of an unreadable answer is kept for the log.
const UNREADABLE_BODY_CHARS_MAX: usize = 512;

impl UnreadableAnswer {
    pub(crate) fn new(
        method: &'static str,
        status: u16,
        body: &[u8],
        source: serde_json::Error,
    ) -> UnreadableAnswer {
        let body = String::from_utf8_lossy(body)
            .chars()
            .take(UNREADABLE_BODY_CHARS_MAX)
            .collect();
        UnreadableAnswer {
            method,
            status,
            body,
            source,
        }
    }

    /// The method called (`scan`, `checkout`, `notifyPayment`).
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The start of the answer's body, for the log.
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// Why a call ended without an outcome. Every variant is final: the client does not retry it,
/// and repeating the call unchanged will not help. (What repeating can help with is an
/// [`Outcome::NotKnownYet`](crate::Outcome::NotKnownYet), not an error.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A mistake in the client's setup or in the call's arguments.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The PS answered something that cannot be read.
    #[error(transparent)]
    Unreadable(#[from] UnreadableAnswer),
    /// A transport failure that repeating cannot cure (TLS).
    #[error("the PS cannot be reached: {0}")]
    Transport(TransportError),
}

impl SdkError {
    /// The setup mistake, if that is what it is.
    pub fn setup(&self) -> Option<&SetupError> {
        match self {
            SdkError::Setup(e) => Some(e),
            _ => None,
        }
    }
}
