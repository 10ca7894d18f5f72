//! The refunds use case: where a refund is placed. Every path that gives money back — the POS's
//! `payment/return` (r2 with a return QR, r3 without) and the operator's cancellation of a Custom
//! payment — calls [`place`], which checks the order against the purchase and what is left of it
//! and queues the refund's delivery in one transaction, then wakes the dispatcher. Return QRs are
//! made and scanned here too ([`create_return_qr`], [`scan_return_qr`]), and the POS's wait for
//! the MPP's answer is ended here ([`hear_mpp`], DECISIONS 39).
//!
//! Each function opens its own transaction through [`crate::store::Store::transaction`], applies
//! the rules of [`crate::domain::refund`] to what the per-table operations load, and saves the
//! result; the store knows no refund flow. The edges (`merchant_api`, `admin_api`, the MPP API's
//! scan in `payments`) parse, call these, and render: an answer stored for a request's repeats
//! is rendered inside the transaction by the `answer` function the edge passes.

mod place;
mod pos_wait;
mod return_qr;

pub(crate) use place::retry_now;
pub use place::{place, refundable};
pub(crate) use pos_wait::hear_mpp;
pub(crate) use return_qr::{ReturnQrOrder, create_return_qr, scan_return_qr};
