//! Operator data changed through another node (DECISIONS 45): with several nodes on one
//! PostgreSQL database, an admin change made through one node is stored with a new catalog
//! version; every node checks that version every `limits.catalog_check_interval_ms` and rebuilds
//! its snapshot when it moved, so a change is live everywhere within that interval. The node
//! that made the change rebuilds at once (`admin_api`). On SQLite, with one node, the check finds
//! nothing new and costs one small read.

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Checks the catalog version until `stop`.
pub(crate) async fn run(app: AppState, stop: CancellationToken) {
    let interval = app.config.limits.catalog_check_interval();
    // While the database is away every check fails: said once a minute, and its end once.
    let mut lasting = crate::log_sparse::Lasting::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let checked = match app.store.catalog_version().await {
            Ok(version) if version != app.catalog_version() => {
                let reloaded = app.reload_catalog().await;
                if reloaded.is_ok() {
                    tracing::info!(version, "operator data changed elsewhere; reloaded");
                }
                reloaded.map_err(|e| e.to_string())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        lasting.note("checking the operator data's version", &checked);
    }
}
