//! The wire types of Tolem's two public APIs, shared by the PS server, the MPP SDK and the tests:
//! one source of truth for every request, response, amount, date and result code.
//!
//! - [`mpp`]: the MPP API v1 (`/api/v1/qr/scan`, `checkout`, `notifyPayment`, and the MPP's `/refund`).
//! - [`merchant`]: the POS-facing merchant API (`/rN/v01/...`), wire-compatible with the API
//!   merchants already use.
//! - [`amount`], [`time`], [`locale`]: the value types both APIs share.
//! - [`body`], [`problem`]: request bodies read strictly, and what is wrong with one, in words
//!   (DECISIONS 44).
//! - [`request_id`]: the one X-Request-ID rule of every surface.

pub mod amount;
pub mod body;
pub mod locale;
pub mod merchant;
pub mod mpp;
pub mod problem;
pub mod request_id;
pub mod time;

pub use amount::{Amount, AmountTotal, HumanAmount};
pub use locale::{Locale, Localized};
pub use problem::{Param, Problem};
