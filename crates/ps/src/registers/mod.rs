//! Registers (SPEC §5, DECISIONS 24–25): daily and monthly reconciliation reports per MPP, their
//! working-day calendar, delivery by e-mail through the outbox, and the MPP's cabinet download.
//! (Being built: see issue 5.)

use axum::Router;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;

/// Settings of registers and their delivery (`[registers]` in the configuration).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistersConfig {}

impl RegistersConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The routes of the registers (the MPP's cabinet).
pub fn router() -> Router<AppState> {
    Router::new()
}

/// The background work of registers (making and e-mailing them on working days).
pub async fn run(app: AppState, stop: CancellationToken) {
    let _ = app;
    stop.cancelled().await;
}
