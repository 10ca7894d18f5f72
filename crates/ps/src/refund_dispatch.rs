//! The refund dispatcher: delivers every placed refund to its MPP's `/refund` (SPEC 4.4,
//! DECISIONS 21) from the outbox.
//!
//! The outbox's machinery ([`crate::outbox`]) claims, records, retries with backoff and flags;
//! this file says what is refund-specific: the MPPs to claim for, each on its own (at most
//! `in_flight_max` calls, `mpp_concurrency_max` per MPP, each with a timeout, claims that find no
//! free slot handed back), the call and how its answer reads, the refund finished by a final
//! answer ([`RefundDelivery`]), the metrics. Outcomes recorded together share one commit. A
//! refund still undelivered `alert_after_s` after it was placed is flagged for the operator, and
//! retries go on. After a crash, deliveries whose lease ran out are claimed again, so none is
//! lost; the next run of the same node takes back its earlier runs' leases at start
//! (`store/leases.rs`), so it does not wait them out. The MPP's `/refund` applies each refundId
//! once however often it is called.
//!
//! Calls speak TLS to `https://` MPPs with the system's roots and the operator's CA
//! ([`crate::outgoing`]); a failed attempt's kind and cause (`TLS: invalid peer certificate:
//! UnknownIssuer`, `connect: …`, `timeout: …`, `HTTP 503`) are its `last_error` and counted in
//! the metrics, and it is retried like any other.
//!
//! A final answer is also told, in process, to the POS requests waiting for it ([`Outcomes`],
//! DECISIONS 39), once it is recorded.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tolem_wire::mpp::{HEADER_CALLER_NAME, HEADER_LOCALE, HEADER_REQUEST_ID, RefundRequest};
use tracing::Instrument;

use crate::catalog::SANDBOX_MPP;
use crate::domain::Refund;
use crate::domain::refund::Delivery;
use crate::links::receipt_link;
use crate::outbox::{self, Claim, Ending, Kind, OutboxEntry, OutboxKind, Policy, Words};
use crate::outgoing::{Failure, FailureKind};
use crate::state::AppState;
use crate::store::{StoreResult, Tx};

/// A refund claimed for one delivery attempt.
pub type Claimed = Claim<Refund>;

/// Refunds as the outbox delivers them: a final answer finishes the refund.
pub struct RefundDelivery;

impl Kind for RefundDelivery {
    const KIND: OutboxKind = OutboxKind::Refund;
    const WORDS: Words = Words {
        one: "a refund",
        not_yet: "refund not delivered yet; will retry",
        not_yet_warns: false,
        past_alert: "refund undelivered past the alert threshold; retrying",
    };
    type Item = Refund;
    type Outcome = Delivery;

    fn load(tx: &Tx<'_>, entry: &OutboxEntry) -> StoreResult<Refund> {
        tx.refund_to_deliver(entry)
    }

    fn ending(outcome: &Delivery) -> Ending<'_> {
        match outcome {
            Delivery::Completed => Ending::Final(None),
            // The refusal's code is kept as the delivery's last word.
            Delivery::Failed(code) => Ending::Final(Some(code)),
            Delivery::Retry(error) => Ending::Retry(error),
        }
    }

    fn finish(
        tx: &Tx<'_>,
        claim: &Claimed,
        outcome: &Delivery,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let Some(mut refund) = tx.refund(claim.item.id)? else {
            return Ok(false);
        };
        if !refund.finish(outcome, now) {
            return Ok(false);
        }
        tx.save_refund(&refund)?;
        Ok(true)
    }
}

pub async fn run(app: AppState, stop: CancellationToken) {
    let cfg = app.config.refunds.clone();
    let in_flight = Arc::new(Semaphore::new(cfg.in_flight_max));
    let per_mpp: Arc<Mutex<HashMap<String, Arc<Semaphore>>>> = Arc::default();
    // TLS with the system's roots and the operator's CA (`outgoing.rs`), as every outgoing call.
    let http = match app.outgoing.http_client(
        reqwest::Client::builder()
            .timeout(cfg.request_timeout())
            .pool_max_idle_per_host(cfg.mpp_concurrency_max)
            .redirect(reqwest::redirect::Policy::none()),
    ) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the refund HTTP client; refunds are not delivered");
            return;
        }
    };
    // A claim outlives the call's timeout, so a live delivery is not claimed twice; a crashed
    // dispatcher's claims run out and are taken again.
    let policy = Policy::of(
        cfg.retry_delay_initial(),
        cfg.retry_delay_max(),
        cfg.alert_after(),
        cfg.lease(),
    );
    // While the database is away every claim fails: said once a minute, and its end once.
    let mut claiming = crate::log_sparse::Lasting::default();
    // The deliveries under way, so that a stop lets them end and record what the MPP said.
    let mut deliveries = tokio::task::JoinSet::new();
    while !stop.is_cancelled() {
        while deliveries.try_join_next().is_some() {}
        let mut claimed_all = false;
        // Each MPP is claimed for up to its own free slots, so a slow MPP never holds the calls
        // of the others, and nothing is claimed that cannot be called at once.
        for mpp in targets(&app) {
            let mpp_gate = gate(&per_mpp, &mpp, cfg.mpp_concurrency_max);
            let free = mpp_gate
                .available_permits()
                .min(in_flight.available_permits())
                .min(cfg.claim_batch_max);
            if free == 0 {
                continue;
            }
            let (now, holder) = (app.clock.now(), app.lease_holder.clone());
            let claimed = outbox::claim::<RefundDelivery>(
                &app.store,
                Some(mpp),
                now,
                free,
                policy.lease,
                holder,
            )
            .await;
            claiming.note("claiming refund deliveries", &claimed);
            let Ok(claimed) = claimed else {
                continue;
            };
            claimed_all |= claimed.len() == free;
            let mut unstarted = Vec::new();
            for claim in claimed {
                let (Ok(turn), Ok(permit)) = (
                    mpp_gate.clone().try_acquire_owned(),
                    in_flight.clone().try_acquire_owned(),
                ) else {
                    unstarted.push(claim.entry.id);
                    continue;
                };
                let span = tracing::info_span!(
                    "refund",
                    refund_id = claim.item.id.get(),
                    payment_id = claim.item.payment_id.map(|p| p.get()),
                    mpp = claim.item.owner.as_ref().map(|o| o.mpp.as_str()),
                    attempt = claim.entry.attempts
                );
                deliveries.spawn(
                    deliver(app.clone(), http.clone(), policy, claim, turn, permit)
                        .instrument(span),
                );
            }
            if !unstarted.is_empty() {
                let later = app
                    .clock
                    .now()
                    .checked_add(BUSY_RETRY)
                    .unwrap_or(app.clock.now());
                if let Err(e) = outbox::release(&app.store, unstarted, later).await {
                    tracing::warn!(error = %e, "cannot hand claims back; their leases will run out");
                }
            }
        }
        if claimed_all {
            // More may be due: go on without waiting.
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = app.refund_wake.notified() => {}
            () = tokio::time::sleep(cfg.poll_interval()) => {}
        }
    }
    finish_deliveries(deliveries, cfg.request_timeout() + RECORD_GRACE).await;
}

/// How long a stopping dispatcher gives a delivery past its call's timeout to record the answer.
const RECORD_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A stop lets the calls under way end (each within its timeout) and record what the MPP said:
/// left behind, each would stay leased to this run until its lease ran out and then be sent to
/// the MPP again. Past `bound` (a store that does not answer) the rest are left to their leases.
async fn finish_deliveries(mut deliveries: tokio::task::JoinSet<()>, bound: std::time::Duration) {
    if deliveries.is_empty() {
        return;
    }
    let under_way = deliveries.len();
    tracing::info!(
        under_way,
        "stopping: the refund deliveries under way end first"
    );
    let ended = tokio::time::timeout(bound, async {
        while deliveries.join_next().await.is_some() {}
    })
    .await;
    if ended.is_err() {
        let left = deliveries.len();
        tracing::warn!(
            left,
            "stopping: refund deliveries still under way are left to their leases"
        );
    }
}

/// The MPPs refunds can go to: the catalog's, and in sandbox mode the emulators' buyer.
fn targets(app: &AppState) -> Vec<String> {
    let mut mpps: Vec<String> = app
        .catalog
        .get()
        .mpps
        .keys()
        .map(ToString::to_string)
        .collect();
    if app.config.sandbox {
        mpps.push(SANDBOX_MPP.to_owned());
    }
    mpps
}

fn gate(per_mpp: &Mutex<HashMap<String, Arc<Semaphore>>>, mpp: &str, max: usize) -> Arc<Semaphore> {
    let mut gates = per_mpp.lock().unwrap_or_else(|p| p.into_inner());
    gates
        .entry(mpp.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(max)))
        .clone()
}

async fn deliver(
    app: AppState,
    http: reqwest::Client,
    policy: Policy,
    claim: Claimed,
    turn: OwnedSemaphorePermit,
    permit: OwnedSemaphorePermit,
) {
    app.metrics.refund_attempts.fetch_add(1, Relaxed);
    let outcome = match attempt(&app, &http, &claim).await {
        Ok(outcome) => outcome,
        Err(failure) => {
            app.metrics.refund_attempt_failures.add(failure.kind);
            Delivery::Retry(failure.text)
        }
    };
    drop(turn);
    let refund_id = claim.item.id;
    let is_final = !matches!(outcome, Delivery::Retry(_));
    let count = |outcome: &Delivery, flag: bool| count(&app, outcome, flag);
    let now = app.clock.now();
    match outbox::settle::<RefundDelivery>(&app.store, policy, claim, outcome, now, count).await {
        // Told only once it is on disk, so that what the waiting POS hears is what a repeat of
        // its request reads back.
        Ok(()) if is_final => app.refund_outcomes.recorded(refund_id),
        Ok(()) => {}
        // The lease runs out and the delivery is tried again; the MPP applies it once.
        Err(e) => {
            tracing::warn!(error = %e, refund_id = refund_id.get(), "cannot record a delivery outcome")
        }
    }
    // A call slot is free again: let the dispatcher claim more without waiting for its poll.
    drop(permit);
    app.refund_wake.notify_one();
}

/// Counts an attempt's outcome in the metrics, and logs a final one (`flag`: a retry past the
/// alert threshold).
/// `newly_flagged`: this attempt is the one that flagged the refund (counted once per refund).
fn count(app: &AppState, outcome: &Delivery, newly_flagged: bool) {
    match outcome {
        Delivery::Completed => {
            app.metrics.refunds_completed.fetch_add(1, Relaxed);
            tracing::info!("refund delivered");
        }
        Delivery::Failed(code) => {
            app.metrics.refunds_failed.fetch_add(1, Relaxed);
            tracing::warn!(
                code,
                "the MPP refused the refund; its amount is refundable again"
            );
        }
        Delivery::Retry(_) => {
            app.metrics.refund_retries.fetch_add(1, Relaxed);
            if newly_flagged {
                app.metrics.refunds_flagged.fetch_add(1, Relaxed);
            }
        }
    }
}

/// One call to the MPP's `/refund`: its final answer, or an answer to retry, or why there was
/// none; a failure of any kind is retried, so nothing is lost, and its text is the delivery's
/// `last_error` (`TLS: invalid peer certificate: UnknownIssuer`).
async fn attempt(
    app: &AppState,
    http: &reqwest::Client,
    claim: &Claimed,
) -> Result<Delivery, Failure> {
    let refund = &claim.item;
    let (Some(owner), Some(payment_id), Some(amount)) =
        (&refund.owner, refund.payment_id, refund.amount)
    else {
        return Err(Failure::new(FailureKind::Other, "the refund is incomplete"));
    };
    let catalog = app.catalog.get();
    let Some(mpp) = catalog.mpps.get(&owner.mpp) else {
        // Purchases paid through the sandbox emulators have no real MPP to refund.
        if app.config.sandbox && owner.mpp == SANDBOX_MPP {
            return Ok(Delivery::Completed);
        }
        return Err(Failure::new(
            FailureKind::Other,
            format!("MPP {} is not configured", owner.mpp),
        ));
    };
    let body = RefundRequest {
        customer_id: owner.customer_id.clone(),
        payment_id: payment_id.to_string(),
        refund_amount: amount,
        refund_id: refund.id.to_string(),
        // No locale in the link (DECISIONS 35): the MPP appends its customer's.
        link_receipt: receipt_link(&app.config.public_url, &refund.receipt_token),
    };
    let response = http
        .post(&mpp.refund_url)
        // The regulation's headers on every PS→MPP request (DECISIONS 36). The same id on every
        // retry of this refund: one logical request.
        .header(HEADER_REQUEST_ID, format!("refund-{}", refund.id))
        .header(HEADER_CALLER_NAME, &app.config.caller_name)
        .header(HEADER_LOCALE, refund.mpp_locale().header_value())
        .json(&body)
        .send()
        .await
        .map_err(|e| Failure::of_http(&e))?;
    let status = response.status().as_u16();
    let code = crate::outgoing::read_capped(response, ANSWER_BYTES_MAX)
        .await
        .map(|bytes| {
            serde_json::from_slice::<RefundAnswer>(&bytes)
                .ok()
                .map(|r| r.result.result_code)
        })?;
    match Delivery::classify(status, code.as_deref()) {
        Delivery::Retry(why) if !(200..300).contains(&status) => {
            Err(Failure::new(FailureKind::Http, why))
        }
        Delivery::Retry(why) => Err(Failure::new(FailureKind::Answer, why)),
        outcome => Ok(outcome),
    }
}

/// Largest answer read from an MPP's `/refund`.
const ANSWER_BYTES_MAX: usize = 16 * 1024;

/// How long a claim that could not be started waits before it is due again.
const BUSY_RETRY: SignedDuration = SignedDuration::from_millis(50);

/// What the PS reads of an MPP's `/refund` answer: its `result.resultCode`, which decides the
/// refund (DECISIONS 7, 21). The regulation's `resultMessage` is words for people, read by no
/// rule: an MPP that leaves it out has still said what happened, and refusing its answer for
/// that would send a refund it has applied again until someone looks.
#[derive(serde::Deserialize)]
struct RefundAnswer {
    result: AnsweredCode,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnsweredCode {
    result_code: String,
}
