//! The sweeper: turns open purchases past their deadline into `expired` (POS `Error`) without
//! anyone polling (DECISIONS 16, 27), and unscanned return QRs past theirs; forgets, in small
//! batches, purchases never paid and return QRs never used past `payments.unpaid_retention_days`
//! (DECISIONS 43) and POS replay records past `limits.pos_replay_retention_s` (DECISIONS 29).

use std::future::Future;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::log_sparse::Lasting;
use crate::state::AppState;
use crate::store::StoreResult;

/// How often (by the PS's clock) retention looks for rows past their time: what it deletes is
/// days old, so once a minute is soon enough and costs the writer nothing the rest of the time.
const RETENTION_INTERVAL: SignedDuration = SignedDuration::from_secs(60);

pub(crate) async fn run(app: AppState, stop: CancellationToken) {
    let interval = app.config.payments.expiry_sweep_interval();
    let batch_max = app.config.limits.expiry_batch_max;
    let mut retention_done: Option<Timestamp> = None;
    // While the database is away every pass fails: said once a minute, and its end once.
    let (mut return_qrs, mut purchases, mut retention) = Default::default();
    let mut clock_watch = crate::clock::StepWatch::new(app.clock.now());
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Some(step) = clock_watch.step(app.clock.now()) {
            tracing::error!(
                step_s = step.as_secs(),
                "the wall clock stepped (or the machine was paused): payments, refunds and \
                 registers are dated by it, so operations may fall in another day's register \
                 (docs/registers.md); keep the clock synchronised"
            );
        }
        let expired = app
            .store
            .expire_return_qrs(app.clock.now(), batch_max)
            .await;
        Lasting::note(&mut return_qrs, "return QR expiry", &expired);
        let expired = batches(&stop, batch_max, || {
            app.store.expire_due(app.clock.now(), batch_max)
        })
        .await;
        if let Ok(n @ 1..) = expired {
            tracing::info!(expired = n, "expired purchases past their deadline");
        }
        Lasting::note(&mut purchases, "the expiry sweep", &expired);
        let now = app.clock.now();
        let due = retention_done
            .and_then(|done| done.checked_add(RETENTION_INTERVAL).ok())
            .is_none_or(|next| now >= next);
        if due {
            // A pass that failed is tried again at the next interval, not at the next sweep.
            retention_done = Some(now);
            let forgotten = forget(&app, &stop, now).await;
            Lasting::note(&mut retention, "retention", &forgotten);
        }
    }
}

/// Runs `batch` until it does less than a full batch (nothing more is due) or the PS stops;
/// returns how much was done in all. Each batch is its own write, queued behind whatever the
/// payments queued meanwhile.
async fn batches<F, Fut>(
    stop: &CancellationToken,
    batch_max: usize,
    mut batch: F,
) -> StoreResult<usize>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<usize>>,
{
    let mut total = 0usize;
    loop {
        let n = batch().await?;
        total = total.saturating_add(n);
        if n < batch_max || stop.is_cancelled() {
            return Ok(total);
        }
    }
}

/// One retention pass as of `now`; the first error if a part of it failed (it is tried again at
/// the next interval).
async fn forget(app: &AppState, stop: &CancellationToken, now: Timestamp) -> StoreResult<()> {
    let batch_max = app.config.limits.retention_batch_max;
    let days = i64::from(app.config.payments.unpaid_retention_days);
    // A retention so long that it reaches before the calendar's start keeps everything.
    let Ok(ended_before) = now.checked_sub(SignedDuration::from_hours(days.saturating_mul(24)))
    else {
        return Ok(());
    };
    let use_window_ms = i64::from(app.config.refunds.return_qr_use_window_s).saturating_mul(1_000);
    let replays_before = now
        .checked_sub(app.config.limits.pos_replay_retention())
        .unwrap_or(Timestamp::MIN);
    let purchases = batches(stop, batch_max, || {
        app.store.forget_unpaid(ended_before, batch_max)
    })
    .await;
    let return_qrs = batches(stop, batch_max, || {
        app.store
            .forget_unused_return_qrs(ended_before, use_window_ms, batch_max)
    })
    .await;
    let replays = batches(stop, batch_max, || {
        app.store.forget_pos_requests(replays_before, batch_max)
    })
    .await;
    for (what, result) in [
        ("unpaid purchases", &purchases),
        ("unused return QRs", &return_qrs),
        ("replay records", &replays),
    ] {
        if let Ok(deleted @ 1..) = result {
            tracing::info!(deleted, what, "forgot rows past their retention");
        }
    }
    purchases.and(return_qrs).and(replays).map(|_| ())
}
