//! The POS's wait for the MPP's answer to the refund it placed (DECISIONS 39): `payment/return`
//! is answered once the MPP has answered finally or `refunds.pos_wait_ms` has passed. The wait
//! holds no transaction; what the POS is told is fixed once, in the writer, by whichever comes
//! first of the MPP's final answer and the end of the wait, so every repeat hears the same.

use crate::domain::RefundId;
use crate::domain::refund::Told;
use crate::log_sparse::SharedSparse;
use crate::state::App;
use crate::store::StoreResult;

/// How often a waiting POS's refund is read again for an answer another node recorded.
const OTHER_NODES_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What the POS that placed refund `refund_id` is told, once the MPP has answered or the wait is
/// over. The dispatcher wakes the wait in process when it records a final outcome; a last read
/// at its end finds one recorded elsewhere. If nothing was decided by then, the end of the wait
/// decides: the refund is pending, which is "accepted" (DECISIONS 21). `Err` when that decision
/// could not be stored (the database away): the POS is told to retry rather than "accepted",
/// which the MPP's refusal could still overturn for its repeat.
pub(crate) async fn hear_mpp(app: &App, refund_id: RefundId) -> StoreResult<Told> {
    let now = tokio::time::Instant::now();
    // Validation keeps the bound within a minute; past any instant, the wait is none at all.
    let deadline = now
        .checked_add(app.config.refunds.pos_wait())
        .unwrap_or(now);
    // Registered before the first read, so an answer recorded after that read wakes it.
    let mut waiter = app.refund_outcomes.wait_for(refund_id);
    let mut told = decided(app, refund_id).await;
    if told.is_none() {
        // With several nodes (PostgreSQL), another node may deliver the refund and record the
        // MPP's answer, which cannot wake this wait: it is also looked for every little while.
        let other_nodes = async {
            if !app.store.is_postgres() {
                return std::future::pending().await;
            }
            loop {
                tokio::time::sleep(OTHER_NODES_POLL).await;
                if decided(app, refund_id).await.is_some() {
                    return;
                }
            }
        };
        tokio::select! {
            () = waiter.until(deadline) => {}
            () = other_nodes => {}
        }
        // Also finds an answer recorded by another process, which cannot wake this one.
        told = decided(app, refund_id).await;
    }
    drop(waiter);
    if told.is_none() {
        told = end_pos_wait(app, refund_id).await?;
    }
    Ok(told.unwrap_or(Told::Accepted))
}

/// What the POS is told, once decided. A failed read is "not decided yet": the wait goes on, and
/// the writer decides at its end. Said at most once a second for all waits together: while the
/// database is away every wait reads ten times a second.
async fn decided(app: &App, refund_id: RefundId) -> Option<Told> {
    static UNREAD: SharedSparse = SharedSparse::new();
    match app.store.refund(refund_id).await {
        Ok(refund) => refund.and_then(|r| r.told_pos()),
        Err(e) => {
            if let Some(left_out) = UNREAD.due() {
                tracing::warn!(error = %e, refund_id = refund_id.get(), left_out, "cannot read a refund the POS waits for");
            }
            None
        }
    }
}

/// Ends the POS's wait in the writer, so that it is ordered against the MPP's final answer:
/// whichever comes first fixes what the POS is told. `Ok(None)` when there is no such refund.
async fn end_pos_wait(app: &App, refund_id: RefundId) -> crate::store::StoreResult<Option<Told>> {
    app.store
        .transaction(move |tx| {
            let Some(mut refund) = tx.refund(refund_id)? else {
                return Ok(None);
            };
            let (_, decided) = refund.end_pos_wait();
            if decided {
                tx.save_refund(&refund)?;
            }
            Ok(refund.told_pos())
        })
        .await
}
