//! The one error type of registers.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Not a day (`2026-11-26`) or month (`2026-11`) a register can be made for.
    #[error("not a valid period: {0}")]
    BadPeriod(String),
    /// The period has not ended yet in the operator's time zone, or ended a moment ago: its
    /// register could still change. `ready_from` says when it can be made
    /// (`2026-11-28 00:05 Asia/Almaty`, a few minutes after the period's end).
    #[error(
        "the register of {period} cannot be made yet: {period} has not ended, or its last writes may still be committing; it can be made from {ready_from}"
    )]
    NotEnded { period: String, ready_from: String },
    #[error("no MPP {0}")]
    UnknownMpp(String),
    /// A sum or a commission does not fit (a corrupt database, in practice).
    #[error("an amount overflowed")]
    Overflow,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the register: {0}")]
    Write(String),
    #[error("cannot send the register: {0}")]
    Send(String),
    /// Nobody waits for the register any more (a download whose client left): its making stopped.
    #[error("the register was abandoned: nobody waits for it")]
    Abandoned,
    /// The SMTP conversation failed; its kind is counted in the metrics.
    #[error("cannot send the register: {0}")]
    Mail(crate::outgoing::Failure),
}

impl From<crate::domain::commission::Overflow> for RegisterError {
    fn from(_: crate::domain::commission::Overflow) -> RegisterError {
        RegisterError::Overflow
    }
}

impl From<rust_xlsxwriter::XlsxError> for RegisterError {
    fn from(e: rust_xlsxwriter::XlsxError) -> RegisterError {
        RegisterError::Write(e.to_string())
    }
}

impl From<std::io::Error> for RegisterError {
    fn from(e: std::io::Error) -> RegisterError {
        RegisterError::Write(e.to_string())
    }
}

impl From<csv::Error> for RegisterError {
    fn from(e: csv::Error) -> RegisterError {
        RegisterError::Write(e.to_string())
    }
}
