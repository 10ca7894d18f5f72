//! The Tolem payment system (PS) server.
//!
//! Map of the crate (see `docs/ARCHITECTURE.md`):
//! - [`app`]: the router and the listeners, [`serve`]; [`state`]: the shared [`App`].
//! - `connections`: the connection layer under the router: deadlines, the cap per listener,
//!   refusals below the application in the surface's envelope (DECISIONS 43).
//! - `mpp_api`, [`merchant_api`], `admin_api`, `qr_image`, `receipt`: the HTTP edges; `console`:
//!   the operator's console and the MPP's cabinet in the browser.
//! - [`payments`]: the purchases' use cases (MPP API, POS creation, sandbox, operator's cancel).
//! - [`domain`]: the rules (purchases, refunds, commissions), free of HTTP and SQL.
//! - [`store`]: the database (SQLite with its group-commit writer, or PostgreSQL): per-table
//!   operations, no rules.
//! - [`outbox`]: the delivery machinery of the outbox (claim, record, backoff, alert), shared by
//!   [`refund_dispatch`] (delivers refunds to the MPPs) and register e-mails.
//! - [`refunds`]: the refunds use case, the one place a refund is placed.
//! - `outgoing`: TLS of the outgoing calls (refunds, callbacks, SMTP) and why one failed.
//! - [`registers`]: daily and monthly registers per MPP, their calendar and e-mail delivery.
//! - `request_id`: the X-Request-ID rule of each API.
//! - `links`: the tokens and public links the PS hands out.
//! - [`catalog`]: operator data, `catalog_watch`: its changes made through another node;
//!   `config`: configuration; [`clock`]: time; `sweeper`: expiry and retention.
//! - `health`: the health checks; `icon`: the pages' icon; `log_sparse`: log lines a caller or
//!   a lasting fault could cause at any rate, said at most once a second or minute.
//! - [`ipsec`]: the strongSwan configuration of the IPSec link to each MPP (`tolem ipsec`).

// Only what another crate (the binary, the kit's test sandbox, the tests) uses is public: the
// modules none of them name are private, and inside them nothing claims `pub` (CI denies
// warnings, so this lint holds).
#![warn(unreachable_pub)]

mod admin_api;
pub mod app;
pub mod catalog;
mod catalog_watch;
pub mod clock;
mod config;
mod connections;
mod console;
pub mod domain;
mod health;
mod icon;
pub mod ipsec;
mod links;
mod log_sparse;
pub mod merchant_api;
mod mpp_api;
pub mod outbox;
mod outgoing;
pub mod payments;
mod qr_image;
mod receipt;
pub mod refund_dispatch;
pub mod refunds;
pub mod registers;
mod request_id;
pub mod state;
pub mod store;
mod sweeper;

pub use app::{Listener, check_files, serve, serve_listeners};
pub use config::{
    Config, SANDBOX_TOML, SurfaceName, database_for_display, database_url_hint,
    is_key_value_connection_string, is_postgres_url, secrets_in_file,
};
pub use state::{App, AppState};
