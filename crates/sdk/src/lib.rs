//! The MPP kit for banks and wallets (MPPs) connecting to a Tolem PS.
//!
//! [`MppClient`] is a client of the PS's MPP API v1: typed calls with the headers of SPEC 1.7,
//! one `X-Request-ID` per logical request (reused on its retries and given back in every
//! [`Reply`]), timeouts, TLS with the system's roots plus an optional CA and client certificate,
//! and notifyPayment retried with capped exponential backoff and jitter until the PS answers
//! (SPEC 4.3), every retry logged with its reason.
//!
//! Every call ends in one [`Outcome`]: [`Done`](Outcome::Done) (SUCCESS),
//! [`Refused`](Outcome::Refused) (a final code) or [`NotKnownYet`](Outcome::NotKnownYet) (repeat
//! with the same X-Request-ID). For notifyPayment only the PS's word on the payment is final: an
//! answer that is not the PS's (a proxy's page, a 404, a 429), a code the regulation does not
//! list and `UNKNOWN_SOURCE` are not known yet, retried, and never a reason to reverse a debit. An [`SdkError`] is only what repeating cannot cure: a setup mistake
//! ([`SetupError`], found at once and never retried), an answer that cannot be read, a TLS failure.
//!
//! [`pending`] is how a bank pays: the debit and the notification the PS is owed recorded in one
//! transaction, and a [`pending::Driver`] that tells the PS until it answers and keeps or reverses
//! the debit, whatever happens to the app's request (docs/mpp-kit.md shows it first). [`refund`]
//! is the MPP's `/refund` endpoint, applying each refund exactly once. The example below awaits
//! notifyPayment directly, as a script or a test may; a bank's request handler should not.
//!
//! ```no_run
//! use tolem_sdk::{MppClient, Outcome, Scanned};
//! use tolem_wire::mpp::{NotifyPaymentRequest, ScanRequest};
//!
//! # async fn pay() -> Result<(), tolem_sdk::SdkError> {
//! let ps = MppClient::builder("http://127.0.0.1:8080", "demobank").build()?;
//! let scan = ps
//!     .scan(&ScanRequest { qr_code: "TOLEM-STATIC-CAFE-1001".into(), customer_id: "C1".into() })
//!     .await?;
//! let Outcome::Done(Scanned::Static { payment, .. }) = scan.outcome else {
//!     return Ok(()); // refused, not known yet, or another kind of QR
//! };
//! // ... debit the buyer, then tell the PS; this retries until the PS answers.
//! let amount = tolem_wire::Amount::from_tenge(500);
//! let request =
//!     NotifyPaymentRequest::success(payment.payment_id, "M-1".into(), amount, "C1".into());
//! let answer = ps.notify_payment(&request).await?;
//! match answer.outcome {
//!     Outcome::Done(paid) => println!("receipt: {:?}", paid.link_receipt),
//!     // The PS's word that the payment is not confirmed: only now reverse the debit.
//!     Outcome::Refused(result) => println!("not paid ({}): reverse the debit", result.result_code),
//!     // Not known yet (a bounded retry policy ran out): the PS may have confirmed. Keep the
//!     // debit and repeat later with `answer.request_id`.
//!     _ => println!("not known yet: keep the debit, repeat with {}", answer.request_id),
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod client;
mod error;
mod files;
mod outcome;
mod request_id;
mod retry;

#[cfg(feature = "axum")]
pub mod listen;
pub mod pending;
pub mod refund;

pub use client::{
    ANSWER_BYTES_MAX, CONNECT_TIMEOUT_MS_DEFAULT, MppClient, MppClientBuilder,
    REQUEST_TIMEOUT_MS_DEFAULT,
};
pub use error::{SdkError, SetupError, TransportError, TransportErrorKind, UnreadableAnswer};
pub use files::create_private_database;
pub use outcome::{Outcome, Reply, Scanned, Unanswered};
pub use request_id::RequestId;
pub use retry::RetryPolicy;
