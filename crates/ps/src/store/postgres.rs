//! The PostgreSQL backend (DECISIONS 45): a pool of connections shared by every PS node's
//! transactions and reads. The per-table operations are the same as SQLite's (`db.rs` runs
//! their SQL on either); what differs is how a transaction runs. SQLite has one writer, so its
//! transactions never meet; here several nodes write at once, so every write transaction runs at
//! SERIALIZABLE isolation and is run again from the start when PostgreSQL reports that it could
//! not be serialized (or deadlocked, or met a concurrent insert of the same key). The use case's
//! closure is `Fn` for that reason; it sees only committed data and what it wrote itself, so a
//! second run decides afresh (e.g. finds the first caller's stored answer and repeats it).
//!
//! A connection drives its own small runtime (`db.rs`, [`PgConn`]), so every use of a connection
//! happens on a blocking thread, never on the async workers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_postgres::error::SqlState;

use super::db::{Db, PgConn};
use super::pg_tls::DatabaseUrl;
use super::{StoreError, StoreResult};

/// Runs of one transaction at most before the caller is told to retry (HTTP 503): each run that
/// fails lost to a transaction that committed, so they end quickly unless one row is very hot.
const RUNS_MAX: u32 = 30;
/// The pause before a transaction runs again grows from this, with jitter, so that transactions
/// that collided do not collide again in step.
const RERUN_PAUSE_MS_INITIAL: u64 = 1;
const RERUN_PAUSE_MS_MAX: u64 = 50;

/// The connections of one node.
pub(super) struct Pool {
    url: DatabaseUrl,
    idle: Mutex<Vec<PgConn>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    /// Connects once (to fail at start on a wrong URL or an unreachable server) and runs `first`
    /// on that connection (the migrations). Blocking: call it off the async workers.
    pub(super) fn open(
        url: &str,
        connections: usize,
        first: impl FnOnce(Db<'_>) -> StoreResult<()>,
    ) -> StoreResult<Pool> {
        let url = super::pg_tls::parse(url)?;
        let conn = PgConn::connect(&url)?;
        first(Db::Pg(&conn))?;
        Ok(Pool {
            url,
            idle: Mutex::new(vec![conn]),
            permits: Arc::new(Semaphore::new(connections.max(1))),
        })
    }

    /// A new connection, not counted in the pool's (a register's long read). Blocking.
    pub(super) fn connect(&self) -> StoreResult<PgConn> {
        PgConn::connect(&self.url)
    }

    /// An idle connection, or a new one. Blocking.
    fn take(&self) -> StoreResult<PgConn> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) if !conn.is_closed() => Ok(conn),
            // A connection the server closed (a restart, a failover) is replaced.
            _ => PgConn::connect(&self.url),
        }
    }

    fn give_back(&self, conn: PgConn) {
        if conn.has_pending_write() {
            // A write neither committed nor rolled back: the connection is closed, which
            // rolls back whatever it had begun, rather than let a later transaction carry it.
            tracing::error!("a database connection came back with a write not sent; closed");
            return;
        }
        if !conn.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
    }

    /// Runs `f` on a pooled connection on a blocking thread, waiting at most `wait` for it.
    async fn with_conn<T, F>(self: &Arc<Self>, wait: Duration, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&PgConn) -> StoreResult<T> + Send + 'static,
    {
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Overloaded)?
            .map_err(|_| StoreError::WriterGone)?;
        let pool = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.take()?;
            let result = f(&conn);
            pool.give_back(conn);
            result
        });
        // Past the deadline the caller is told to retry; the work itself may still commit,
        // which is safe because every write the PS retries is idempotent.
        match tokio::time::timeout(wait, work).await {
            Ok(joined) => joined.map_err(|_| StoreError::Corrupt("a query panicked".to_owned()))?,
            Err(_) => Err(StoreError::Overloaded),
        }
    }

    /// A write transaction: `f` runs at `isolation` and is run again after a serialization
    /// failure; the result is returned once committed.
    pub(super) async fn transaction<T, F>(
        self: &Arc<Self>,
        wait: Duration,
        isolation: Isolation,
        f: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(Db<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.with_conn(wait, move |conn| {
            let mut pause_ms = RERUN_PAUSE_MS_INITIAL;
            let mut run = 1;
            loop {
                match run_once(conn, isolation, &f) {
                    Err(e) if run < RUNS_MAX && must_run_again(&e) => {
                        std::thread::sleep(Duration::from_micros(jitter_us(pause_ms)));
                        pause_ms = (pause_ms * 2).min(RERUN_PAUSE_MS_MAX);
                        run += 1;
                    }
                    Err(e) if must_run_again(&e) => {
                        tracing::warn!(runs = run, error = %e, "a transaction kept colliding");
                        return Err(StoreError::Overloaded);
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    /// A read on its own (autocommit: each statement sees what was committed when it began).
    pub(super) async fn read<T, F>(self: &Arc<Self>, wait: Duration, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Db<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.with_conn(wait, move |conn| {
            let result = f(Db::Pg(conn));
            conn.end_autocommit()?;
            result
        })
        .await
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // A client owns a small runtime, which must not be dropped on an async worker.
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("tolem-pg-close".to_owned())
                .spawn(move || drop(idle));
        }
    }
}

/// How a transaction is kept apart from the others.
#[derive(Clone, Copy, Debug)]
pub(super) enum Isolation {
    /// The default: as if the transactions ran one at a time, like SQLite's single writer.
    Serializable,
    /// For a transaction whose statements lock what they change themselves (an outbox claim
    /// with `FOR UPDATE SKIP LOCKED`): correct as it is, and SERIALIZABLE would only make
    /// concurrent claims of different rows fail and run again.
    ReadCommitted,
}

fn run_once<T>(
    conn: &PgConn,
    isolation: Isolation,
    f: &impl Fn(Db<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.begin(match isolation {
        Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
    });
    match f(Db::Pg(conn)) {
        // A COMMIT that fails has already rolled the transaction back.
        Ok(value) => conn.commit().map(|()| value),
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

/// Whether a transaction that failed this way may simply be run again: it lost a race with a
/// transaction that committed, and nothing of it was kept.
fn must_run_again(e: &StoreError) -> bool {
    let StoreError::Postgres(e) = e else {
        return false;
    };
    e.code().is_some_and(|code| {
        [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            // Two transactions inserting the same key: the loser runs again and finds the row.
            SqlState::UNIQUE_VIOLATION,
        ]
        .contains(code)
    })
}

/// Between half and all of `pause_ms`, in microseconds.
fn jitter_us(pause_ms: u64) -> u64 {
    let us = pause_ms.saturating_mul(1_000);
    us / 2 + rand::random_range(0..=us / 2)
}

#[cfg(test)]
mod tests {
    use super::super::db::args;
    use super::super::migrations_pg::tests::{TestDatabase, admin_url};
    use super::{Db, Pool};

    #[test]
    fn a_connection_given_back_with_a_write_unsent_is_closed_and_the_write_never_lands() {
        let Some(url) = admin_url("a_connection_given_back_with_a_write_unsent") else {
            return;
        };
        let database = TestDatabase::create(&url, "give_back");
        let pool = Pool::open(&database.url(), 1, |db| {
            db.execute("CREATE TABLE t (n BIGINT PRIMARY KEY)", args![])
                .map(drop)
        })
        .expect("a pool");
        let count = |db: Db<'_>| -> i64 {
            db.query_row("SELECT COUNT(*) FROM t", args![], |r| r.get(0))
                .expect("a count")
                .expect("a row")
        };

        let conn = pool.take().expect("a connection");
        conn.begin("BEGIN ISOLATION LEVEL READ COMMITTED");
        Db::Pg(&conn)
            .execute("INSERT INTO t (n) VALUES (1)", args![])
            .expect("inserted");
        Db::Pg(&conn)
            .execute_pipelined("INSERT INTO t (n) VALUES (2)", args![])
            .expect("kept");
        pool.give_back(conn);
        assert!(
            pool.idle.lock().expect("the idle list").is_empty(),
            "not kept for reuse"
        );

        let conn = pool.take().expect("a new connection");
        assert_eq!(count(Db::Pg(&conn)), 0, "nothing of its transaction landed");
        pool.give_back(conn);
        assert_eq!(pool.idle.lock().expect("the idle list").len(), 1);
    }
}
