//! E-mail delivery of registers through the outbox (SPEC 5.1–5.2, DECISIONS 25).
//!
//! 1. Queue: once the working day's `send_at` has passed, one transaction inserts a
//!    `register_deliveries` row per MPP (with a `register_email`), kind and period due, each with
//!    an `outbox` row. The UNIQUE key makes queueing idempotent, so the scheduler never queues
//!    the same register twice, by a restart, a catch-up after downtime or a second server; only
//!    the operator sends one again (`resend`), as its next sending.
//! 2. Send, through the outbox's machinery ([`crate::outbox`]): due outbox rows are claimed with
//!    a lease (one short transaction), the register is made and handed to the SMTP relay outside
//!    any transaction, and the outcome recorded in a second short transaction that marks the
//!    register sent and its outbox row done together ([`RegisterEmail`]). Failures retry with
//!    exponential backoff for ever, flagged for the operator after `alert_after_s`; each is the
//!    e-mail's last error (a TLS failure says `TLS: …` and why) and is counted by kind in the
//!    metrics.
//!
//! A crash after the relay accepted an e-mail but before the outcome was recorded sends it again
//! when the lease runs out (at least once), with the same Message-ID so that the receiver can
//! drop the copy.

use jiff::Timestamp;
use jiff::civil::Date;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::calendar::Calendar;
use super::mail::{Letter, Mailer};
use super::make::{self, Format};
use super::period::{Period, RegisterKind};
use super::{RegisterError, schedule};
use crate::log_sparse::Lasting;
use crate::outbox::{self, Claim, Ending, Kind, OutboxEntry, OutboxKind, Policy, Words};
use crate::outgoing::FailureKind;
use crate::state::AppState;
use crate::store::{RegisterDue, RegisterToSend, StoreResult, Tx};

/// How an attempt to e-mail a register ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterSent {
    Sent { to: String, message_id: String },
    Retry(String),
}

/// Register e-mails as the outbox delivers them: a sent one marks its register delivery sent.
pub(crate) struct RegisterEmail;

impl Kind for RegisterEmail {
    const KIND: OutboxKind = OutboxKind::RegisterEmail;
    const WORDS: Words = Words {
        one: "a register e-mail",
        not_yet: "register not sent yet; will retry",
        not_yet_warns: true,
        past_alert: "register unsent past the alert threshold; retrying",
    };
    type Item = RegisterToSend;
    type Outcome = RegisterSent;

    fn load(tx: &Tx<'_>, entry: &OutboxEntry) -> StoreResult<RegisterToSend> {
        tx.register_to_send(entry)
    }

    fn ending(outcome: &RegisterSent) -> Ending<'_> {
        match outcome {
            RegisterSent::Sent { .. } => Ending::Final(None),
            RegisterSent::Retry(error) => Ending::Retry(error),
        }
    }

    fn finish(
        tx: &Tx<'_>,
        claim: &Claim<RegisterToSend>,
        outcome: &RegisterSent,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let RegisterSent::Sent { to, message_id } = outcome else {
            return Ok(false);
        };
        tx.mark_register_sent(claim.entry.ref_id, now, to, message_id)?;
        Ok(true)
    }

    /// A sending the operator asked for after this claim's began reopened the row: this claim's
    /// late outcome (it outlived its lease) is the earlier sending's, not the new one's.
    fn still_current(tx: &Tx<'_>, claim: &Claim<RegisterToSend>) -> StoreResult<bool> {
        Ok(tx.register_sendings(claim.entry.ref_id)? == Some(claim.item.sending))
    }
}

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
    // What the calendar lacks is said at the start, and again on the day a new lack applies.
    let mut said = std::collections::BTreeSet::new();
    let mut looked_on = None;
    let policy = Policy::of(
        config.retry_delay_initial(),
        config.retry_delay_max(),
        config.alert_after(),
        config.lease(),
    );
    let poll = config.poll_interval();
    let mut queued_upto = None;
    // While the database is away every pass fails: said once a minute, and its end once.
    let (mut queueing, mut claiming) = Default::default();
    loop {
        let today = app.clock.now().to_zoned_datetime(app.zone.clone()).date();
        if looked_on != Some(today) {
            looked_on = Some(today);
            for warning in calendar.new_warnings(today, &mut said) {
                tracing::warn!("{warning}");
            }
        }
        let queued = queue(&app, &calendar, queued_upto).await;
        if let Ok(upto) = queued {
            queued_upto = upto;
        }
        Lasting::note(&mut queueing, "queueing registers", &queued);
        // While e-mails are due (a catch-up, a resend), the next is claimed at once rather than
        // after a poll interval.
        let sent = send_due(&app, &calendar, &mailer, policy, &stop).await;
        Lasting::note(&mut claiming, "claiming register e-mails", &sent);
        if let Ok(true) = sent
            && !stop.is_cancelled()
        {
            continue;
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
    // A last run after today's delivery day: the wall clock was ahead when it ran, or is behind
    // now. Taken as it is, nothing would be queued until the clock passed that day again, and
    // nobody would know; the run is set back to yesterday, so that today is queued and later
    // catch-ups count from it, and it is said.
    let last_run = match last_run {
        Some(last) if last > upto => {
            let yesterday = upto.yesterday().ok();
            if let Some(day) = yesterday {
                app.store
                    .set_register_last_run_back(day.to_string())
                    .await?;
            }
            tracing::error!(
                last_run = %last,
                delivery_day = %upto,
                "the last register run is recorded on a later day than today: the wall clock was \
                 ahead then, or is behind now. Registers of days not over then may have been \
                 e-mailed early (GET /admin/v1/registers says when each was sent; send one again \
                 with POST /admin/v1/registers/{{mpp}}/{{kind}}/{{period}}/send once its period is \
                 over). Today's registers are queued as usual"
            );
            yesterday
        }
        other => other,
    };
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
    let (days, left_out) =
        schedule::days_to_queue(calendar, last_run, upto, config.catch_up_working_days);
    if let (Some(first), Some(last)) = (left_out.first(), left_out.last()) {
        let periods: Vec<String> = left_out
            .iter()
            .flat_map(|day| calendar.due_on(*day))
            .map(|period| format!("{} {period}", period.kind().as_str()))
            .collect();
        tracing::warn!(
            missed_delivery_days = left_out.len(),
            first = %first,
            last = %last,
            registers = %periods.join(", "),
            "registers due on more missed working days than registers.catch_up_working_days are \
             not e-mailed; send them with POST /admin/v1/registers/{{mpp}}/{{kind}}/{{period}}/send"
        );
    }
    for day in days {
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
/// only (a retry due on a day off waits for the next working day); true if it claimed any. On
/// `stop`, the claims not yet tried are handed back at once instead of waiting for their lease to
/// run out.
async fn send_due(
    app: &AppState,
    calendar: &Calendar,
    mailer: &Mailer,
    policy: Policy,
    stop: &CancellationToken,
) -> Result<bool, RegisterError> {
    let config = &app.config.registers;
    let now = app.clock.now();
    let local = now.to_zoned_datetime(app.zone.clone()).datetime();
    if !schedule::sending_open(calendar, local, config.send_at) {
        return Ok(false);
    }
    let next_due = app.store.outbox_next_due(OutboxKind::RegisterEmail).await?;
    if !matches!(next_due, Some(due) if due <= now) {
        return Ok(false);
    }
    let (lease, holder) = (policy.lease, app.lease_holder.clone());
    let claimed = outbox::claim::<RegisterEmail>(
        &app.store,
        None,
        now,
        config.claim_batch_max,
        lease,
        holder,
    )
    .await?;
    let any = !claimed.is_empty();
    for claim in claimed {
        if stop.is_cancelled() {
            let now = app.clock.now();
            let back = RegisterSent::Retry("the PS stopped before trying".to_owned());
            outbox::record::<RegisterEmail>(&app.store, claim, back, now, now, false).await?;
            continue;
        }
        deliver(app, mailer, policy, claim).await;
    }
    Ok(any)
}

async fn deliver(app: &AppState, mailer: &Mailer, policy: Policy, claim: Claim<RegisterToSend>) {
    let (due, sending) = (&claim.item.due, claim.item.sending);
    let span = tracing::info_span!("register", mpp = %due.mpp, kind = %due.kind, period = %due.period, sending, attempt = claim.entry.attempts);
    deliver_in_span(app, mailer, policy, claim)
        .instrument(span)
        .await;
}

async fn deliver_in_span(
    app: &AppState,
    mailer: &Mailer,
    policy: Policy,
    claim: Claim<RegisterToSend>,
) {
    let outcome = match attempt(app, mailer, &claim.item).await {
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
            // A `send_at` within minutes of midnight meets yesterday's register before it may
            // be made (`make::REGISTER_SETTLE_MIN`): tried again, but no failure.
            if !matches!(e, RegisterError::NotEnded { .. }) {
                app.metrics.register_email_failures.add(kind);
            }
            RegisterSent::Retry(e.to_string().chars().take(300).collect())
        }
    };
    let now = app.clock.now();
    let settled =
        outbox::settle::<RegisterEmail>(&app.store, policy, claim, outcome, now, |_, _| {});
    if let Err(e) = settled.await {
        // The lease runs out and the e-mail is tried again (with the same Message-ID).
        tracing::warn!(error = %e, "cannot record a register e-mail's outcome");
    }
}

/// Makes the register and e-mails it; returns the address and the Message-ID.
async fn attempt(
    app: &AppState,
    mailer: &Mailer,
    item: &RegisterToSend,
) -> Result<(String, String), RegisterError> {
    let due = &item.due;
    let kind =
        RegisterKind::parse(&due.kind).ok_or_else(|| RegisterError::BadPeriod(due.kind.clone()))?;
    let period = Period::parse(kind, &due.period)?;
    let request = make::request(app, &due.mpp, period, Format::Xlsx)?;
    let to = app
        .catalog
        .get()
        .mpps
        .get(due.mpp.as_str())
        .and_then(|m| m.register_email.clone())
        .ok_or_else(|| RegisterError::Send(format!("MPP {} has no register_email", due.mpp)))?;
    let (mpp, mpp_name) = (request.mpp.clone(), request.mpp_name.clone());
    let (file, totals) = make::make_temp(app, request, Vec::new()).await?;
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
    // A link only where the MPP can follow it: the PS publishes its cabinet to MPPs, and this
    // one has a token for it.
    let registers = &app.config.registers;
    // The console's page of the register, which a person opens from the e-mail (signing in
    // with the cabinet token); a program uses the cabinet's API path beside it.
    let cabinet_link = (!registers.cabinet_url.is_empty()
        && registers.cabinet_tokens.contains_key(&mpp))
    .then(|| {
        format!(
            "{}/console/cabinet/registers/{}/{period}.xlsx",
            registers.cabinet_url.trim_end_matches('/'),
            kind.as_str()
        )
    });
    let letter = Letter {
        to: to.clone(),
        cabinet_link,
        sending: item.sending,
        mpp,
        mpp_name,
        period,
        totals,
        attachment,
    };
    let message_id = mailer.send(letter).await?;
    Ok((to, message_id))
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::store::{LeaseHolder, RegisterSending, Store, StoreLimits};

    /// A register sent again while a claim of its first sending was still out (it outlived its
    /// lease, and another node sent it meanwhile): that claim's late answer is the first
    /// sending's and leaves the second waiting; the second's own answer closes it.
    #[tokio::test]
    async fn a_late_answer_of_an_earlier_sending_leaves_the_one_asked_again_waiting() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let limits = StoreLimits::for_tests();
        let store = Store::open(&dir.path().join("ps.db"), &limits).expect("opens");
        let now = Timestamp::from_second(1_800_000_000).expect("in range");
        let lease = SignedDuration::from_secs(60);
        let later = now + SignedDuration::from_secs(61);
        let due = RegisterDue {
            mpp: "demobank".to_owned(),
            kind: "daily".to_owned(),
            period: "2027-01-14".to_owned(),
        };
        store
            .queue_registers(vec![due.clone()], "2027-01-15".to_owned(), now)
            .await
            .expect("queued");
        let claim = |at: Timestamp, node: &str| {
            outbox::claim::<RegisterEmail>(&store, None, at, 1, lease, LeaseHolder::new_run(node))
        };
        let sent = |n: &str| RegisterSent::Sent {
            to: "registers@demobank.example".to_owned(),
            message_id: n.to_owned(),
        };
        let mut stale = claim(now, "node-a").await.expect("claimed");
        let mut first = claim(later, "node-b").await.expect("claimed again");
        assert_eq!(
            (stale.len(), first.len()),
            (1, 1),
            "the first lease ran out"
        );
        let first = first.pop().expect("a claim");
        outbox::record::<RegisterEmail>(&store, first, sent("m1"), later, later, false)
            .await
            .expect("recorded");
        assert_eq!(
            store
                .send_register(due.clone(), later, None)
                .await
                .expect("asked"),
            RegisterSending::Queued { sending: 2 }
        );
        let stale = stale.pop().expect("a claim");
        assert_eq!(stale.item.sending, 1);
        outbox::record::<RegisterEmail>(&store, stale, sent("m1"), later, later, false)
            .await
            .expect("a late answer is no error");
        let view = |store: &Store| {
            let store = store.clone();
            async move {
                store
                    .register_deliveries(None, 10)
                    .await
                    .expect("read")
                    .pop()
                    .expect("the delivery")
            }
        };
        let waiting = view(&store).await;
        assert_eq!((waiting.sendings, waiting.sent_at), (2, None));
        let mut second = claim(later, "node-c").await.expect("claimed");
        let second = second.pop().expect("the second sending is due");
        assert_eq!(second.item.sending, 2);
        outbox::record::<RegisterEmail>(&store, second, sent("m2"), later, later, false)
            .await
            .expect("recorded");
        assert!(view(&store).await.sent_at.is_some());
        // Asked again while it waits, it is made due, not counted twice.
        assert_eq!(
            store
                .send_register(due.clone(), later, None)
                .await
                .expect("asked"),
            RegisterSending::Queued { sending: 3 }
        );
        assert_eq!(
            store
                .send_register(due.clone(), later, Some(3))
                .await
                .expect("asked"),
            RegisterSending::AlreadyWaiting { sending: 3 }
        );
        // Naming a sending it saw before the last was asked, a caller changes nothing.
        assert_eq!(
            store
                .send_register(due, later, Some(2))
                .await
                .expect("asked"),
            RegisterSending::AskedSince { sending: 3 }
        );
    }
}
