//! A register's e-mail asked for by the operator (the admin API and the console): one an MPP
//! says never arrived, one sent before its address was corrected, one a catch-up after long
//! downtime left out. It goes out as any register e-mail does, on a working day from `send_at`.

use axum::http::StatusCode;

use super::make::{self, Format};
use super::{Period, RegisterError, RegisterKind};
use crate::state::AppState;
use crate::store::{RegisterDue, RegisterSending, StoreError};

/// What asking did: `queued` (as its `sending`-th e-mail) or `waiting` (it was, and is due now).
pub(crate) struct Asked {
    pub state: &'static str,
    pub sending: u32,
}

/// Why a register's e-mail cannot be asked for; nothing changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("registers are not e-mailed here: registers.smtp_host is not set")]
    EmailOff,
    #[error("no MPP {0:?} in the catalog")]
    UnknownMpp(String),
    #[error("MPP {0:?} has no register_email")]
    NoAddress(String),
    #[error("no register kind {0:?}: daily or monthly")]
    NoKind(String),
    #[error("{0}")]
    BadPeriod(String),
    #[error("{0}")]
    NotEnded(String),
    /// The caller saw an earlier sending than the register has now: it was asked again since
    /// (a form sent twice, a retried request), so this one would send a copy.
    #[error("sending {sending} of this register was asked since; ask again naming it")]
    AskedSince { sending: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Refusal {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Refusal::UnknownMpp(_) | Refusal::NoKind(_) => StatusCode::NOT_FOUND,
            Refusal::BadPeriod(_) => StatusCode::BAD_REQUEST,
            Refusal::EmailOff
            | Refusal::NoAddress(_)
            | Refusal::NotEnded(_)
            | Refusal::AskedSince { .. } => StatusCode::CONFLICT,
            Refusal::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Asks for the e-mail of `mpp`'s `kind` register of `period`: queued if it never was, due at
/// once if it waits to be sent, queued again as its next sending if it was sent. `seen`, when
/// given, is the sending the caller saw: if the register was asked again since, nothing is done
/// (a form sent twice sends one e-mail).
pub(crate) async fn ask(
    app: &AppState,
    mpp: &str,
    kind: &str,
    period: &str,
    seen: Option<u32>,
) -> Result<Asked, Refusal> {
    if !app.config.registers.email_enabled() {
        return Err(Refusal::EmailOff);
    }
    let catalog = app.catalog.get();
    let found = catalog
        .mpps
        .get(mpp)
        .ok_or_else(|| Refusal::UnknownMpp(mpp.to_owned()))?;
    if found.register_email.is_none() {
        return Err(Refusal::NoAddress(mpp.to_owned()));
    }
    let kind = RegisterKind::parse(kind).ok_or_else(|| Refusal::NoKind(kind.to_owned()))?;
    let period = Period::parse(kind, period).map_err(|e| Refusal::BadPeriod(e.to_string()))?;
    match make::request(app, mpp, period, Format::Xlsx) {
        Ok(_) => {}
        Err(e @ RegisterError::NotEnded { .. }) => return Err(Refusal::NotEnded(e.to_string())),
        Err(RegisterError::UnknownMpp(_)) => return Err(Refusal::UnknownMpp(mpp.to_owned())),
        Err(e) => return Err(Refusal::BadPeriod(e.to_string())),
    }
    let due = RegisterDue {
        mpp: found.caller_name.to_string(),
        kind: kind.as_str().to_owned(),
        period: period.to_string(),
    };
    let asked = match app.store.send_register(due, app.clock.now(), seen).await? {
        RegisterSending::Queued { sending } => Asked {
            state: "queued",
            sending,
        },
        RegisterSending::AlreadyWaiting { sending } => Asked {
            state: "waiting",
            sending,
        },
        RegisterSending::AskedSince { sending } => return Err(Refusal::AskedSince { sending }),
    };
    tracing::info!(
        mpp,
        kind = kind.as_str(),
        %period,
        sending = asked.sending,
        state = asked.state,
        "register e-mail asked by the operator"
    );
    Ok(asked)
}
