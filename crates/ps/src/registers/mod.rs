//! Registers (SPEC §5, DECISIONS 24–25, 37–38, 40): the daily and monthly reconciliation
//! reports of each MPP, their working-day calendar, their e-mail delivery through the outbox, and
//! the MPP's cabinet download. See `docs/registers.md`.
//!
//! - [`make`]: one register from the database to a file ([`sheet`] says what is in it,
//!   [`xlsx_file`] and [`csv_file`] write it, the commission rules of `domain::commission` price
//!   each row);
//! - [`period`], [`calendar`], [`schedule`]: which days and months, and when they are due;
//! - [`delivery`] (started by `serve`) and [`mail`]: e-mail;
//! - [`cabinet`]: the MPP's download endpoint.
//!
//! Called by the router, `serve` and the `tolem registers` command.

pub mod cabinet;
pub mod calendar;
pub mod csv_file;
pub mod delivery;
mod error;
pub mod mail;
pub mod make;
pub mod period;
pub mod resend;
pub mod schedule;
pub mod sheet;
pub mod xlsx_file;

use axum::Router;
use tokio_util::sync::CancellationToken;

/// `[registers]` is read with the rest of the configuration; its old path stays for callers.
pub use crate::config::registers as config;
pub use crate::config::registers::RefundCommission;
pub use error::RegisterError;
pub use make::Format;
pub use period::{Period, RegisterKind};

use crate::state::AppState;

/// The routes of the registers (the MPP's cabinet).
pub fn router() -> Router<AppState> {
    cabinet::router()
}

/// The background work of registers: making and e-mailing them on working days.
pub async fn run(app: AppState, stop: CancellationToken) {
    let dir = make::Settings::from_config(&app.config.registers).temp_dir;
    // A making cut short by a crash leaves its file, which no process holds locked any more.
    let _ = tokio::task::spawn_blocking(move || {
        make::remove_leftovers(&dir, std::time::Duration::from_secs(3600))
    })
    .await;
    delivery::run(app, stop).await;
}
