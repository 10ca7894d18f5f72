//! Test helpers for a bank's (an MPP's) own tests against a real Tolem PS.
//!
//! [`SandboxPs`] runs the PS in the test's own process, on a free port (port 0), with a fresh
//! SQLite file in a temporary directory, the demo catalog of `examples/sandbox.toml` (the café,
//! the parking, the MPPs `demobank` and `demowallet`) and a clock that moves only when told.
//! Around it, what a bank's tests need from the other side:
//!
//! - QRs from code, made through the merchant API as a real POS makes them:
//!   [`SandboxPs::dynamic_qr`], [`SandboxPs::return_qr`], and the fixed [`STATIC_QR`] and
//!   [`PARKING_QR`] of the demo catalog.
//! - Refunds placed as a POS places them ([`SandboxPs::refund`],
//!   [`SandboxPs::refund_with_qr`]), delivered to the bank's `/refund`
//!   ([`SandboxPs::set_refund_url`]), and waited for ([`SandboxPs::wait_refund_settled`]).
//! - Scripted answers: a suspended or blocked merchant ([`SandboxPs::suspend_merchant`],
//!   [`SandboxPs::block_merchant`]), a QR the PS never issued ([`UNKNOWN_QR`]), an expired purchase
//!   ([`SandboxPs::expire_open_payments`]), a PS that is down ([`SandboxPs::stop`],
//!   [`SandboxPs::start_again`]).
//!
//! ```no_run
//! use tolem_testkit::{SandboxPs, TestkitError};
//! use tolem_wire::Amount;
//!
//! # async fn a_test() -> Result<(), TestkitError> {
//! let ps = SandboxPs::start().await?;
//! // Start the bank under test with `ps.url()` as its PS, then send its refunds home:
//! ps.set_refund_url("demobank", "http://127.0.0.1:9000/refund").await?;
//! let qr = ps.dynamic_qr(Amount::from_tenge(500).expect("a small amount")).await?;
//! // ... the bank scans `qr.token` and pays it; then the POS refunds 200 of it:
//! let refund_id = ps.refund(qr.payment_id, Amount::from_tenge(200).expect("a small amount")).await?;
//! let delivery = ps.wait_refund_settled(refund_id).await?;
//! assert_eq!(delivery.mpp_result.as_deref(), Some("SUCCESS"));
//! # Ok(()) }
//! ```
//!
//! Everything here is for tests: the demo credentials are public (`docs/sandbox.md`).

#![deny(missing_docs)]

mod error;
mod operator;
mod pos;
mod sandbox;

pub use error::TestkitError;
pub use operator::{RefundDelivery, RefundState};
pub use pos::{DynamicQr, ReturnQr};
pub use sandbox::{SandboxBuilder, SandboxPs};

/// The demo bank's `X-Caller-Name`: the MPP a bank's tests usually act as.
pub const DEMO_BANK: &str = "demobank";
/// The second demo MPP's `X-Caller-Name` (for "another MPP's purchase" cases).
pub const DEMO_WALLET: &str = "demowallet";
/// The demo café's static QR sticker (trade point 1001): a `Static` scan, any amount.
pub const STATIC_QR: &str = "TOLEM-STATIC-CAFE-1001";
/// The demo parking's Custom QR (service 2862): a `Custom` scan, then checkout with
/// [`PARKING_PLATE_PARAMETER`] and [`PARKING_DURATION_PARAMETER`].
pub const PARKING_QR: &str = "https://pay.tolem.example/pay/parking";
/// The parking's service id, for checkout.
pub const PARKING_SERVICE: i64 = 2862;
/// The parking's plate-number parameter (free text).
pub const PARKING_PLATE_PARAMETER: i64 = 3932;
/// The parking's duration parameter: `1h` costs 300 ₸, `3h` 800 ₸, `day` 2000 ₸.
pub const PARKING_DURATION_PARAMETER: i64 = 3933;
/// A QR the PS never issued: its scan is answered `INVALID_TOKEN`.
pub const UNKNOWN_QR: &str = "TOLEM-TESTKIT-NO-SUCH-QR";
/// The BIN of the demo café's organization (trade points 1001 and 1002).
pub const CAFE_BIN: &str = "990340001234";
