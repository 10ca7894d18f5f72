//! One outcome model for every call: done, refused with the PS's code, or not known yet.

use std::fmt;

use tolem_wire::Amount;
use tolem_wire::mpp::{Merchant, PaymentData, ResultBody, ResultCode, ScanPayment, ScanRefund};

use crate::error::TransportError;
use crate::request_id::RequestId;

/// What one call of the MPP API came to, with the X-Request-ID it was sent with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reply<T> {
    /// The X-Request-ID of the call (the same on each of its attempts): quote it to the PS's
    /// operators, and reuse it to repeat a call whose outcome is not known yet.
    pub request_id: RequestId,
    /// How many HTTP attempts the call took (more than one only for notifyPayment's retries).
    pub attempts: u32,
    /// What the call came to.
    pub outcome: Outcome<T>,
    /// With [`Outcome::NotKnownYet`], the wait the last answer asked for (its `Retry-After`; a
    /// PS sends one second with a 503), up to the client's [`RetryPolicy`](crate::RetryPolicy)'s
    /// longest delay: do not repeat the call sooner. notifyPayment's own retries and the
    /// [`Driver`](crate::pending::Driver) already wait at least so long.
    pub retry_after: Option<std::time::Duration>,
}

/// The three ways a call of the MPP API can end (SPEC 1.9): the same for scan, checkout and
/// notifyPayment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome<T> {
    /// The PS answered `SUCCESS`, with this answer.
    Done(T),
    /// The PS answered a final code other than `SUCCESS`: repeating the same request gets the
    /// same answer. For a notifyPayment that told the PS a verdict (`CANCELLED_BY_CLIENT`,
    /// `RISK_REJECT`, `PROCESS_FAIL`), the PS's code is the verdict it recorded. For
    /// notifyPayment it is always a code of the regulation other than `UNKNOWN_SOURCE`: the PS's
    /// word that the payment is not confirmed, so a debit may be reversed.
    Refused(ResultBody),
    /// No final answer: the PS may or may not have acted. Repeat the same request with the same
    /// X-Request-ID ([`Reply::request_id`]) until it is done or refused; for notifyPayment, keep
    /// the debit meanwhile.
    NotKnownYet(Unanswered),
}

impl<T> Outcome<T> {
    /// The answer, when the PS answered `SUCCESS`.
    pub fn done(self) -> Option<T> {
        match self {
            Outcome::Done(answer) => Some(answer),
            _ => None,
        }
    }

    /// The PS's code when it refused (None when the code is not in the table of codes).
    pub fn refused_code(&self) -> Option<ResultCode> {
        match self {
            Outcome::Refused(result) => result.code(),
            _ => None,
        }
    }

    /// True when repeating the request (same X-Request-ID) is what to do.
    pub fn is_not_known_yet(&self) -> bool {
        matches!(self, Outcome::NotKnownYet(_))
    }

    /// The same outcome with the answer changed by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Done(answer) => Outcome::Done(f(answer)),
            Outcome::Refused(result) => Outcome::Refused(result),
            Outcome::NotKnownYet(why) => Outcome::NotKnownYet(why),
        }
    }
}

/// Why a call's outcome is not known yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unanswered {
    /// The PS answered a retryable code (`UNKNOWN_EXCEPTION`, usually with HTTP 503): it could not
    /// take the request now.
    Busy(ResultBody),
    /// An HTTP 5xx without a readable `result` (a proxy in front of the PS, a crash).
    Status(u16),
    /// The answer did not arrive (timeout, no connection, a broken connection).
    Transport(TransportError),
    /// notifyPayment only: an answer with this HTTP status and no PS `result` (a proxy's error
    /// or maintenance page, a 404 or 429 of something in front of the PS, a login page). Not the
    /// PS's word, so the payment's fate is not known; a base URL that never leads to the PS
    /// shows as this, logged at WARN on every retry.
    NotFromThePs(u16),
    /// notifyPayment only: a `result` that is not the PS's word on the payment — a code the
    /// regulation does not list (a proxy's `SYSTEM_MAINTENANCE`, a newer PS's) or
    /// `UNKNOWN_SOURCE` (the PS does not know the caller right now, and answers so before it
    /// looks at the payment, which an earlier attempt may have confirmed).
    NotAVerdict(ResultBody),
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unanswered::Busy(result) => {
                write!(
                    f,
                    "the PS answered {}: {}",
                    result.result_code, result.result_message
                )
            }
            Unanswered::Status(status) => write!(f, "HTTP {status} without a PS result"),
            Unanswered::Transport(e) => write!(f, "no answer: {e}"),
            Unanswered::NotFromThePs(status) => {
                write!(f, "HTTP {status} without a PS result: not the PS's answer")
            }
            Unanswered::NotAVerdict(result) => write!(
                f,
                "not the PS's word on the payment: {}: {}",
                result.result_code, result.result_message
            ),
        }
    }
}

/// A scanned QR code (SPEC 4.1), one variant per kind of QR.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Scanned {
    /// A QR with the amount set by the merchant: confirm it with notifyPayment.
    #[non_exhaustive]
    Dynamic {
        /// The payment to confirm.
        payment: ScanPayment,
        /// The amount the merchant set.
        amount: Amount,
        /// Who is paid, as the PS knows them.
        merchant: Option<Merchant>,
    },
    /// A merchant's QR without amount: the customer enters it (whole tenge), and notifyPayment
    /// carries it.
    #[non_exhaustive]
    Static {
        /// The payment to confirm.
        payment: ScanPayment,
        /// Who is paid.
        merchant: Option<Merchant>,
    },
    /// A service's QR: fill the form `service` and call checkout for the amount.
    #[non_exhaustive]
    Custom {
        /// The payment to complete and confirm.
        payment: ScanPayment,
        /// The service and its form.
        service: PaymentData,
        /// Who is paid.
        merchant: Option<Merchant>,
    },
    /// A return QR: the customer identifies themself for a refund; the PS then calls the MPP's
    /// `/refund`.
    #[non_exhaustive]
    Refund {
        /// The refund the QR is for.
        refund: ScanRefund,
        /// The merchant refunding.
        merchant: Option<Merchant>,
    },
    /// A kind of QR this version of the kit does not know (the PS is newer): tell the customer
    /// it cannot be paid here yet.
    #[non_exhaustive]
    Unsupported {
        /// The `qrCodeType` the PS sent.
        qr_code_type: String,
    },
}

impl Scanned {
    /// The PS's payment id, for the QRs that start a payment.
    pub fn payment_id(&self) -> Option<&str> {
        match self {
            Scanned::Dynamic { payment, .. }
            | Scanned::Static { payment, .. }
            | Scanned::Custom { payment, .. } => Some(&payment.payment_id),
            _ => None,
        }
    }

    /// The merchant, when the PS named one.
    pub fn merchant(&self) -> Option<&Merchant> {
        match self {
            Scanned::Dynamic { merchant, .. }
            | Scanned::Static { merchant, .. }
            | Scanned::Custom { merchant, .. }
            | Scanned::Refund { merchant, .. } => merchant.as_ref(),
            Scanned::Unsupported { .. } => None,
        }
    }
}
