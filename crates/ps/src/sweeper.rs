//! The expiry sweeper: turns open purchases past their deadline into `expired` (POS `Error`)
//! without anyone polling (DECISIONS 16, 27), and unscanned return QRs past theirs; forgets POS
//! replay records past their retention.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::AppState;

pub async fn run(app: AppState, stop: CancellationToken) {
    let interval = Duration::from_millis(app.config.payments.expiry_sweep_interval_ms);
    let batch_max = app.config.limits.expiry_batch_max;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = app
            .store
            .expire_return_qrs(app.clock.now(), batch_max)
            .await
        {
            tracing::warn!(error = %e, "return QR expiry failed; will retry");
        }
        loop {
            match app.store.expire_due(app.clock.now(), batch_max).await {
                Ok(n) if n == batch_max => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(expired = n, "expired purchases past their deadline");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expiry sweep failed; will retry");
                    break;
                }
            }
        }
    }
}
