//! The reference MPP: the back-end of a bank or wallet whose customers pay Tolem QR codes. It is
//! built on the MPP kit (`tolem-sdk`) and shows how an MPP meets its duties under the regulation:
//! debit before notifyPayment and reverse the debit when the PS rejects it, retry notifyPayment
//! until answered (also after a restart), apply each refund exactly once.
//!
//! - [`ledger`]: customers' money as a double-entry ledger in SQLite (balances are derived).
//! - [`flows`]: scan, checkout, confirm (pay) and back, as the customer's app asks for them.
//! - [`app_api`]: the HTTP API the app (`tolem wallet`) calls; it also mounts `/refund`.
//! - [`reconcile`]: the PS's register against the MPP's books, every difference listed.
//! - [`config`]: settings and demo customers.
//! - [`wallet`]: the customer's app on the command line (`tolem wallet`), a client of [`app_api`].
//! - [`web`]: the customer's app in the browser (`/wallet/`), a page whose script calls [`app_api`].

pub mod app_api;
pub mod config;
pub mod flows;
pub mod ledger;
/// The SDK's guarded listeners, which this MPP serves on (`tolem_sdk::listen`).
pub use tolem_sdk::listen;
pub mod reconcile;
pub mod wallet;
pub mod web;

pub use app_api::serve;
pub use config::MppConfig;
pub use flows::Mpp;
