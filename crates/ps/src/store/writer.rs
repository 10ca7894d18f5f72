//! The group-commit writer: one thread, one connection. It takes the first queued write, then
//! whatever else is queued (up to `batch_max`), runs each in its own savepoint inside one
//! transaction, commits once, and only then answers every caller.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{StoreError, StoreResult};

/// Runs a write inside the batch's transaction; returns how to answer its caller after commit.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;
type Completion = Box<dyn FnOnce(bool) + Send>;

pub(super) fn job<T, F>(f: F) -> (Job, oneshot::Receiver<StoreResult<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |conn: &Connection| {
        let result = in_savepoint(conn, f);
        Box::new(move |committed: bool| {
            let answer = if committed {
                result
            } else {
                Err(StoreError::CommitFailed)
            };
            // The caller may have gone away (timeout); the write stands either way.
            let _ = tx.send(answer);
        })
    });
    (job, rx)
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(result) => result,
        Err(_) => Err(StoreError::Corrupt("a write panicked".to_owned())),
    };
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end)?;
    result
}

pub(super) fn run(conn: Connection, mut queue: mpsc::Receiver<Job>, batch_max: usize) {
    let mut batch = Vec::with_capacity(batch_max);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin a write transaction");
            // Dropping the jobs drops their answer channels: each caller sees an error.
            batch.clear();
            continue;
        }
        let completions: Vec<Completion> = batch.drain(..).map(|job| job(&conn)).collect();
        let committed = match conn.execute_batch("COMMIT") {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, writes = completions.len(), "commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                false
            }
        };
        for complete in completions {
            complete(committed);
        }
    }
}
