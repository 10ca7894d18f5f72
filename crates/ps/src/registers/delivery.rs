//! E-mail delivery of registers through the outbox (SPEC 5.1–5.2, DECISIONS 25).
//!
//! 1. Queue: once the working day's `send_at` has passed, one transaction inserts a
//!    `register_deliveries` row per MPP (with a `register_email`), kind and period due, each with
//!    an `outbox` row. The UNIQUE key makes queueing idempotent, so the same register is never
//!    queued twice, by a restart, a catch-up after downtime or a second server.
//! 2. Send: due outbox rows are claimed with a lease (one short transaction), the register is made
//!    and handed to the SMTP relay outside any transaction, and the outcome recorded in a second
//!    short transaction that marks the register sent and its outbox row done together. Failures
//!    retry with exponential backoff for ever, flagged for the operator after `alert_after_s`;
//!    each is the e-mail's last error (a TLS failure says `TLS: …` and why) and is counted by
//!    kind in the metrics.
//!
//! A crash after the relay accepted an e-mail but before the outcome was recorded sends it again
//! when the lease runs out (at least once), with the same Message-ID so that the receiver can
//! drop the copy.

use jiff::civil::Date;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::calendar::Calendar;
use super::mail::{Letter, Mailer};
use super::make::{self, Format};
use super::period::{Period, RegisterKind};
use super::{RegisterError, schedule};
use crate::domain::refund::backoff;
use crate::outgoing::FailureKind;
use crate::state::AppState;
use crate::store::{ClaimedRegister, RegisterDue, RegisterSent};

/// Makes and e-mails the due registers until `stop`; idle when e-mail is off.
pub async fn run(app: AppState, stop: CancellationToken) {
    let config = &app.config.registers;
    if !config.email_enabled() {
        stop.cancelled().await;
        return;
    }
    let mailer = match Mailer::new(config, &app.outgoing) {
        Ok(mailer) => mailer,
        Err(e) => {
            tracing::error!(error = %e, "registers are not e-mailed");
            stop.cancelled().await;
            return;
        }
    };
    let calendar = Calendar::new(&config.extra_holidays, &config.extra_working_days);
    let poll = config.poll_interval();
    let mut queued_upto = None;
    loop {
        match queue(&app, &calendar, queued_upto).await {
            Ok(upto) => queued_upto = upto,
            Err(e) => tracing::warn!(error = %e, "cannot queue registers; will retry"),
        }
        if let Err(e) = send_due(&app, &calendar, &mailer, &stop).await {
            tracing::warn!(error = %e, "cannot claim register e-mails; will retry");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Queues what is due up to the current delivery day, unless that day was queued already;
/// returns the day now queued.
async fn queue(
    app: &AppState,
    calendar: &Calendar,
    queued_upto: Option<Date>,
) -> Result<Option<Date>, RegisterError> {
    let config = &app.config.registers;
    let now = app.clock.now();
    let local = now.to_zoned_datetime(app.zone.clone()).datetime();
    let Some(upto) = schedule::delivery_day(calendar, local, config.send_at) else {
        return Ok(queued_upto);
    };
    if queued_upto == Some(upto) {
        return Ok(queued_upto);
    }
    let last_run = app
        .store
        .register_last_run()
        .await?
        .and_then(|day| day.parse::<Date>().ok());
    // Registers go out on working days only: after downtime over a weekend or a holiday, what was
    // missed waits for the next working day's send time and goes out with that day's registers
    // (the memo keeps this from being asked again until then). With no last run, e-mail was just
    // switched on and nothing is sent for days before it, so the run can be recorded at once.
    if last_run.is_some() && !schedule::sending_open(calendar, local, config.send_at) {
        return Ok(Some(upto));
    }
    let catalog = app.catalog.get();
    let mut mpps: Vec<&str> = catalog
        .mpps
        .values()
        .filter(|m| m.register_email.is_some())
        .map(|m| m.caller_name.as_str())
        .collect();
    mpps.sort_unstable();
    let mut due = Vec::new();
    for day in schedule::days_to_queue(calendar, last_run, upto, config.catch_up_working_days) {
        for period in calendar.due_on(day) {
            due.extend(mpps.iter().map(|mpp| RegisterDue {
                mpp: (*mpp).to_owned(),
                kind: period.kind().as_str().to_owned(),
                period: period.to_string(),
            }));
        }
    }
    let queued = app
        .store
        .queue_registers(due, upto.to_string(), now)
        .await?;
    if queued > 0 {
        tracing::info!(queued, delivery_day = %upto, "registers queued for e-mail");
    }
    Ok(Some(upto))
}

/// Claims the e-mails that are due and sends them one by one, on working days from `send_at`
/// only (a retry due on a day off waits for the next working day). On `stop`, the claims not yet
/// tried are handed back at once instead of waiting for their lease to run out.
async fn send_due(
    app: &AppState,
    calendar: &Calendar,
    mailer: &Mailer,
    stop: &CancellationToken,
) -> Result<(), RegisterError> {
    let config = &app.config.registers;
    let now = app.clock.now();
    let local = now.to_zoned_datetime(app.zone.clone()).datetime();
    if !schedule::sending_open(calendar, local, config.send_at) {
        return Ok(());
    }
    if !matches!(app.store.next_register_due().await?, Some(due) if due <= now) {
        return Ok(());
    }
    let lease = config.lease();
    let claimed = app
        .store
        .claim_register_emails(now, config.claim_batch_max, lease, app.lease_holder.clone())
        .await?;
    for claim in claimed {
        if stop.is_cancelled() {
            let now = app.clock.now();
            let back = RegisterSent::Retry("the PS stopped before trying".to_owned());
            app.store
                .record_register_email(claim, back, now, now, false)
                .await?;
            continue;
        }
        deliver(app, mailer, claim).await;
    }
    Ok(())
}

async fn deliver(app: &AppState, mailer: &Mailer, claim: ClaimedRegister) {
    let due = &claim.due;
    let span = tracing::info_span!("register", mpp = %due.mpp, kind = %due.kind, period = %due.period, attempt = claim.attempts);
    deliver_in_span(app, mailer, claim).instrument(span).await;
}

async fn deliver_in_span(app: &AppState, mailer: &Mailer, claim: ClaimedRegister) {
    let outcome = match attempt(app, mailer, &claim.due).await {
        Ok((to, message_id)) => {
            tracing::info!("register e-mailed");
            RegisterSent::Sent { to, message_id }
        }
        Err(e) => {
            // A TLS failure reads `cannot send the register: TLS: invalid peer certificate: …`.
            let kind = match &e {
                RegisterError::Mail(failure) => failure.kind,
                _ => FailureKind::Other,
            };
            app.metrics.register_email_failures.add(kind);
            RegisterSent::Retry(e.to_string().chars().take(300).collect())
        }
    };
    let config = &app.config.registers;
    let now = app.clock.now();
    let delay = backoff(
        claim.attempts,
        config.retry_delay_initial(),
        config.retry_delay_max(),
    );
    let retry_at = now.checked_add(delay).unwrap_or(now);
    let waited = now.duration_since(claim.queued_at);
    let flag = matches!(outcome, RegisterSent::Retry(_)) && waited > config.alert_after();
    if let RegisterSent::Retry(error) = &outcome {
        if flag {
            tracing::error!(
                error,
                waited_s = waited.as_secs(),
                "register unsent past the alert threshold; retrying"
            );
        } else {
            tracing::warn!(
                error,
                retry_in_ms = delay.as_millis(),
                "register not sent yet; will retry"
            );
        }
    }
    if let Err(e) = app
        .store
        .record_register_email(claim, outcome, now, retry_at, flag)
        .await
    {
        // The lease runs out and the e-mail is tried again (with the same Message-ID).
        tracing::warn!(error = %e, "cannot record a register e-mail's outcome");
    }
}

/// Makes the register and e-mails it; returns the address and the Message-ID.
async fn attempt(
    app: &AppState,
    mailer: &Mailer,
    due: &RegisterDue,
) -> Result<(String, String), RegisterError> {
    let kind =
        RegisterKind::parse(&due.kind).ok_or_else(|| RegisterError::BadPeriod(due.kind.clone()))?;
    let period = Period::parse(kind, &due.period)?;
    let request = make::request(app, &due.mpp, period, Format::Xlsx)?;
    let to = app
        .catalog
        .get()
        .mpps
        .get(&due.mpp)
        .and_then(|m| m.register_email.clone())
        .ok_or_else(|| RegisterError::Send(format!("MPP {} has no register_email", due.mpp)))?;
    let (mpp, mpp_name) = (request.mpp.clone(), request.mpp_name.clone());
    let (file, totals) = make::make_temp(app, request).await?;
    let size = tokio::fs::metadata(file.path()).await?.len();
    let attachment = if size <= app.config.registers.email_attachment_bytes_max {
        let bytes = tokio::fs::read(file.path()).await?;
        let format = Format::Xlsx;
        Some((
            period.file_name(&mpp, format.extension()),
            format.content_type(),
            bytes,
        ))
    } else {
        None
    };
    let letter = Letter {
        to: to.clone(),
        cabinet_url: format!(
            "{}/cabinet/v1/registers/{}/{period}.xlsx",
            app.config.public_url.trim_end_matches('/'),
            kind.as_str()
        ),
        mpp,
        mpp_name,
        period,
        totals,
        attachment,
    };
    let message_id = mailer.send(letter).await?;
    Ok((to, message_id))
}
