//! The wallet: a customer of the reference MPP, as a library behind `tolem wallet`. It is what a
//! bank's phone app does, without the phone: read a QR token (typed, or from a PNG/JPEG picture
//! of the code), show the merchant and the amount in Russian or Kazakh, ask what the QR type
//! needs, then pay or go Back; and show the balance, history and notifications.
//!
//! - [`client`]: the typed client of the MPP's app API ([`crate::app_api`]), with timeouts and a
//!   cap on answer size.
//! - [`qr`]: QR codes read from pictures.
//! - [`dialogue`]: the pay dialogue behind the [`Prompt`] trait (the terminal, or a script).
//! - [`account`]: balance, history and notifications as lines to print.
//! - [`text`]: every string shown, in both languages, and the one money format.
//!
//! Called by the `tolem` binary and the system tests; it calls the MPP only over HTTP.

pub mod account;
pub mod client;
pub mod dialogue;
mod error;
pub mod qr;
pub mod text;

pub use client::AppClient;
pub use dialogue::{Decision, PayAnswers, PayOutcome, Prompt, Wallet};
pub use error::WalletError;
