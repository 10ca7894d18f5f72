//! The PostgreSQL backend (DECISIONS 45): a pool of connections shared by every PS node's
//! transactions and reads. The per-table operations are the same as SQLite's (`db.rs` runs
//! their SQL on either); what differs is how a transaction runs. SQLite has one writer, so its
//! transactions never meet; here several nodes write at once, so every write transaction runs at
//! SERIALIZABLE isolation and is run again from the start when PostgreSQL reports that it could
//! not be serialized (or deadlocked, or met a concurrent insert of the same key). The use case's
//! closure is `Fn` for that reason; it sees only committed data and what it wrote itself, so a
//! second run decides afresh (e.g. finds the first caller's stored answer and repeats it).
//!
//! Most transactions run on a blocking thread with a connection that drives its own small
//! runtime (`db.rs`, [`PgConn`]). Scan and notifyPayment run on the async workers instead, with
//! connections whose tasks run on the node's runtime ([`Pool::staged_transaction`],
//! [`Staged`]), so that no thread sleeps through their round trips.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::error::SqlState;

use super::db::{
    Db, Lookup, Need, PgConn, STATEMENTS_MAX, Staged, dollar_placeholders, keep, pg_params,
};
use super::pg_tls::{DatabaseUrl, chain};
use super::{StoreError, StoreResult};

/// Runs of one transaction at most before the caller is told to retry (HTTP 503): each run that
/// fails lost to a transaction that committed, so they end quickly unless one row is very hot.
const RUNS_MAX: u32 = 30;
/// The pause before a transaction runs again grows from this, with jitter, so that transactions
/// that collided do not collide again in step.
const RERUN_PAUSE_MS_INITIAL: u64 = 1;
const RERUN_PAUSE_MS_MAX: u64 = 50;

/// Runs of a staged transaction's closure at most (each after a round trip of reads) before it
/// is handed to a blocking thread: scan and notifyPayment need two.
const STAGED_RUNS_MAX: usize = 4;

/// The connections of one node: those the blocking threads drive ([`PgConn`]) and those the
/// async workers drive ([`AsyncConn`], staged transactions). Both kinds share one count of
/// connections in use (`limits.database_connections`); each kind keeps its idle ones.
pub(super) struct Pool {
    url: DatabaseUrl,
    idle: Mutex<Vec<PgConn>>,
    idle_async: Mutex<Vec<AsyncConn>>,
    permits: Arc<Semaphore>,
    /// Staged transactions begun, and those of them handed to a blocking thread
    /// (`/admin/v1/metrics`): a fallback is correct but slow, so a count that grows with the
    /// traffic says that a use case no longer stays on the async workers.
    staged: AtomicU64,
    staged_fallbacks: AtomicU64,
    /// The same for reads on their own ([`Pool::staged_read`]).
    staged_reads: AtomicU64,
    staged_read_fallbacks: AtomicU64,
}

/// A connection driven by the node's async workers: its connection task runs on the node's
/// runtime, and a staged transaction ([`Pool::staged_transaction`]) awaits its answers there
/// instead of sleeping on a blocking thread for each.
struct AsyncConn {
    client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
    /// Ids found by [`Db::lookup_kept`] in committed work (as [`PgConn`] keeps them).
    kept: HashMap<Lookup, i64>,
}

impl AsyncConn {
    async fn connect(url: &DatabaseUrl) -> StoreResult<AsyncConn> {
        let refused = |e: tokio_postgres::Error| {
            StoreError::Connect(format!("cannot connect to the database: {}", chain(&e)))
        };
        let client = match &url.tls {
            Some(tls) => {
                let (client, connection) =
                    url.config.connect(tls.clone()).await.map_err(refused)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "a database connection ended");
                    }
                });
                client
            }
            None => {
                let (client, connection) = url
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(refused)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "a database connection ended");
                    }
                });
                client
            }
        };
        Ok(AsyncConn {
            client,
            statements: HashMap::new(),
            kept: HashMap::new(),
        })
    }

    /// The prepared statement of `sql` (one round trip the first time this connection sees it).
    async fn statement(&mut self, sql: &str) -> StoreResult<tokio_postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&dollar_placeholders(sql)).await?;
        if self.statements.len() >= STATEMENTS_MAX {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Sends `BEGIN` (when `begin`) and `reads` in one write; the rows of each read, in order.
    async fn read(
        &mut self,
        begin: bool,
        reads: &[Lookup],
    ) -> StoreResult<Vec<Vec<tokio_postgres::Row>>> {
        let mut statements = Vec::with_capacity(reads.len());
        for (sql, _) in reads {
            statements.push(self.statement(sql).await?);
        }
        let params: Vec<_> = reads.iter().map(|(_, cells)| pg_params(cells)).collect();
        let client = &self.client;
        let begun = async {
            if begin {
                client.batch_execute(BEGIN_READ_COMMITTED).await?;
            }
            Ok::<_, tokio_postgres::Error>(Vec::new())
        };
        let mut sent: Vec<Sent<'_>> = vec![Box::pin(begun)];
        for (statement, params) in statements.iter().zip(&params) {
            sent.push(Box::pin(client.query(statement, params)));
        }
        let mut answers = in_order(sent).await.into_iter();
        answers.next().transpose()?;
        answers.map(|rows| rows.map_err(StoreError::from)).collect()
    }

    /// Sends `BEGIN` (when `begin`), `writes` and `COMMIT` in one write. A write's error is
    /// returned first; PostgreSQL then ends the aborted transaction at the `COMMIT`, keeping
    /// nothing.
    async fn commit(&mut self, begin: bool, writes: &[Lookup]) -> StoreResult<()> {
        let mut statements = Vec::with_capacity(writes.len());
        for (sql, _) in writes {
            statements.push(self.statement(sql).await?);
        }
        let params: Vec<_> = writes.iter().map(|(_, cells)| pg_params(cells)).collect();
        let client = &self.client;
        let mut sent: Vec<Sent<'_>> = Vec::with_capacity(writes.len() + 2);
        if begin {
            sent.push(Box::pin(async {
                client
                    .batch_execute(BEGIN_READ_COMMITTED)
                    .await
                    .map(|()| Vec::new())
            }));
        }
        for (statement, params) in statements.iter().zip(&params) {
            sent.push(Box::pin(async move {
                client.execute(statement, params).await.map(|_| Vec::new())
            }));
        }
        sent.push(Box::pin(async {
            client.batch_execute("COMMIT").await.map(|()| Vec::new())
        }));
        for answer in in_order(sent).await {
            answer?;
        }
        Ok(())
    }
}

const BEGIN_READ_COMMITTED: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// One message on its way to the server and its answer.
type Sent<'a> = Pin<
    Box<dyn Future<Output = Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>> + Send + 'a>,
>;

/// Polls every future, in order, until all are done: each query sends its message when first
/// polled, so they leave in this order, in one write, and the server answers them in turn.
async fn in_order<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, out) in futures.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *out = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// What [`Pool::staged_counts`] counts (`/admin/v1/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StagedCounts {
    /// Staged transactions begun (scan, checkout, notifyPayment, a POS's `qr/create`).
    pub transactions: u64,
    /// Those of them that ran on a blocking thread after all.
    pub fallbacks: u64,
    /// Staged reads begun (a device's token, a purchase by id, token or receipt, a replay).
    pub reads: u64,
    /// Those of them that ran on a blocking thread after all.
    pub read_fallbacks: u64,
}

/// How a staged transaction ended.
enum Staging<T> {
    /// Committed, or refused by its closure and rolled back.
    Done(StoreResult<T>),
    /// It needs what only a blocking thread's connection does; nothing of it was kept.
    Blocking,
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
            idle_async: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(connections.max(1))),
            staged: AtomicU64::new(0),
            staged_fallbacks: AtomicU64::new(0),
            staged_reads: AtomicU64::new(0),
            staged_read_fallbacks: AtomicU64::new(0),
        })
    }

    /// Takes the session advisory lock `(class, key)` on a connection of its own, without
    /// waiting: the connection, which holds it until it closes, or `None` when another session
    /// holds it.
    pub(super) async fn try_advisory_lock(
        &self,
        class: i32,
        key: i32,
    ) -> StoreResult<Option<tokio_postgres::Client>> {
        let conn = AsyncConn::connect(&self.url).await?;
        let row = conn
            .client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&class, &key])
            .await
            .map_err(|e| StoreError::Connect(format!("cannot take a lock: {}", chain(&e))))?;
        let taken: bool = row.get(0);
        Ok(taken.then_some(conn.client))
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

    /// A transaction at READ COMMITTED that locks what it changes itself, run on the async
    /// workers ([`Staged`]): its closure runs ahead of the database, every read it asks for goes
    /// out in one write (with the `BEGIN`), and its writes go out with the `COMMIT`. No thread
    /// sleeps through a round trip, so a scan or a notifyPayment costs the node two awaits
    /// instead of two hand-offs to and from a blocking thread. A closure that needs more (a row
    /// count, a read after a write) is rolled back and run on a blocking thread as
    /// [`Self::transaction`] runs it. Like that one, it runs again after a deadlock or a
    /// concurrent insert of the same key.
    pub(super) async fn staged_transaction<T, F>(
        self: &Arc<Self>,
        wait: Duration,
        f: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(Db<'_>) -> StoreResult<T> + Send + Sync + 'static,
    {
        self.staged.fetch_add(1, Ordering::Relaxed);
        let staged = async {
            // Dropped (closed, so whatever it began is rolled back) if this future is dropped
            // before the transaction ends, or the transaction's end was not confirmed.
            let (_permit, mut conn) = self.take_async().await?;
            let mut pause_ms = RERUN_PAUSE_MS_INITIAL;
            let mut run = 1;
            let outcome = loop {
                match staged_runs(&mut conn, &f).await {
                    Ok(Staging::Done(Err(e))) if run < RUNS_MAX && must_run_again(&e) => {
                        tokio::time::sleep(Duration::from_micros(jitter_us(pause_ms))).await;
                        pause_ms = (pause_ms * 2).min(RERUN_PAUSE_MS_MAX);
                        run += 1;
                    }
                    Ok(Staging::Done(Err(e))) if must_run_again(&e) => {
                        tracing::warn!(runs = run, error = %e, "a transaction kept colliding");
                        break Ok(Staging::Done(Err(StoreError::Overloaded)));
                    }
                    other => break other,
                }
            };
            if outcome.is_ok() {
                self.keep_async(conn);
            }
            outcome
        };
        // Past the deadline the caller is told to retry; a `COMMIT` already sent may still
        // commit, which is safe because every write the PS retries is idempotent.
        let staging = match tokio::time::timeout(wait, staged).await {
            Ok(staging) => staging?,
            Err(_) => return Err(StoreError::Overloaded),
        };
        match staging {
            Staging::Done(result) => result,
            Staging::Blocking => {
                self.staged_fallbacks.fetch_add(1, Ordering::Relaxed);
                self.transaction(wait, Isolation::ReadCommitted, f).await
            }
        }
    }

    /// A connection the async workers drive, with the permit that counts it: an idle one, or a
    /// new one.
    async fn take_async(&self) -> StoreResult<(OwnedSemaphorePermit, AsyncConn)> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let idle = self
            .idle_async
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let conn = match idle {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => AsyncConn::connect(&self.url).await?,
        };
        Ok((permit, conn))
    }

    /// Keeps a connection with nothing open on it for the next staged transaction or read,
    /// unless it broke.
    fn keep_async(&self, conn: AsyncConn) {
        if !conn.client.is_closed() {
            self.idle_async
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
    }

    /// Staged transactions and reads begun since the pool opened, and how many of each ran on a
    /// blocking thread after all.
    pub(super) fn staged_counts(&self) -> StagedCounts {
        StagedCounts {
            transactions: self.staged.load(Ordering::Relaxed),
            fallbacks: self.staged_fallbacks.load(Ordering::Relaxed),
            reads: self.staged_reads.load(Ordering::Relaxed),
            read_fallbacks: self.staged_read_fallbacks.load(Ordering::Relaxed),
        }
    }

    /// A read on its own, as [`Self::read`], run on the async workers ([`Staged`]): the reads
    /// the closure asks for go out in one write, with no transaction around them (each
    /// statement sees what was committed when it began, as on a blocking thread), and the
    /// closure runs again with their rows. A POS's device token and a purchase's status, read
    /// on every POS call and every status poll, cost the node an await instead of a hand-off
    /// to a blocking thread and its sleep through the round trip. A closure that asks for more
    /// than reads (it should not) runs on a blocking thread as [`Self::read`] runs it.
    pub(super) async fn staged_read<T, F>(self: &Arc<Self>, wait: Duration, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(Db<'_>) -> StoreResult<T> + Send + Sync + 'static,
    {
        self.staged_reads.fetch_add(1, Ordering::Relaxed);
        let staged = async {
            let (_permit, mut conn) = self.take_async().await?;
            let outcome = staged_reads(&mut conn, &f).await;
            // No transaction is open on it whatever happened.
            self.keep_async(conn);
            outcome
        };
        let staging = match tokio::time::timeout(wait, staged).await {
            Ok(staging) => staging?,
            Err(_) => return Err(StoreError::Overloaded),
        };
        match staging {
            Staging::Done(result) => result,
            Staging::Blocking => {
                self.staged_read_fallbacks.fetch_add(1, Ordering::Relaxed);
                self.read(wait, f).await
            }
        }
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

/// One run of a staged transaction: the closure runs against the rows read so far until it
/// asks for nothing more, then its writes are committed. `Err` only when the connection can no
/// longer be trusted (the end of its transaction was not confirmed): the caller drops it.
async fn staged_runs<T, F>(conn: &mut AsyncConn, f: &F) -> StoreResult<Staging<T>>
where
    F: Fn(Db<'_>) -> StoreResult<T>,
{
    let mut read = Vec::new();
    let mut begun = false;
    let mut runs = 0;
    let ended = loop {
        runs += 1;
        let (value, outcome, rows, kept) = {
            let staged = Staged::new(read, std::mem::take(&mut conn.kept));
            // A panic is a failed run, as on a blocking thread: the transaction is rolled back.
            let value =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(Db::Staged(&staged))))
                    .unwrap_or_else(|_| Err(StoreError::Corrupt("a query panicked".to_owned())));
            let (outcome, rows, kept) = staged.finish();
            (value, outcome, rows, kept)
        };
        read = rows;
        conn.kept = kept;
        match outcome.need {
            Some(Need::Reads) if runs < STAGED_RUNS_MAX && !outcome.wanted.is_empty() => {
                match conn.read(!begun, &outcome.wanted).await {
                    Ok(answers) => {
                        begun = true;
                        read.extend(outcome.wanted.into_iter().zip(answers));
                    }
                    // The BEGIN went out with the reads: what the transaction began ends below.
                    Err(e) => {
                        begun = true;
                        break Staging::Done(Err(e));
                    }
                }
            }
            Some(_) => break Staging::Blocking,
            None => match value {
                Err(e) => break Staging::Done(Err(e)),
                Ok(value) if !begun && outcome.writes.is_empty() => {
                    return Ok(Staging::Done(Ok(value)));
                }
                Ok(value) => {
                    // A COMMIT that fails (or follows a write that failed) has ended the
                    // transaction keeping nothing; so does dropping a connection that broke.
                    // A statement that could not be prepared left the COMMIT unsent, so a
                    // ROLLBACK follows any error (outside a transaction it is only a warning).
                    return match conn.commit(!begun, &outcome.writes).await {
                        Ok(()) => {
                            keep(&mut conn.kept, outcome.found);
                            Ok(Staging::Done(Ok(value)))
                        }
                        Err(e) if conn.client.is_closed() => {
                            Err(StoreError::ConnectionLost(Box::new(e)))
                        }
                        Err(e) => {
                            conn.client.batch_execute("ROLLBACK").await?;
                            Ok(Staging::Done(Err(e)))
                        }
                    };
                }
            },
        }
    };
    if begun {
        conn.client.batch_execute("ROLLBACK").await?;
    }
    Ok(ended)
}

/// A staged read: the closure runs against the rows read so far until it asks for nothing
/// more. `Err` only when the connection failed on its way (the caller drops a closed one).
async fn staged_reads<T, F>(conn: &mut AsyncConn, f: &F) -> StoreResult<Staging<T>>
where
    F: Fn(Db<'_>) -> StoreResult<T>,
{
    let mut read = Vec::new();
    let mut runs = 0;
    loop {
        runs += 1;
        let (value, outcome, rows, kept) = {
            let staged = Staged::new(read, std::mem::take(&mut conn.kept));
            let value =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(Db::Staged(&staged))))
                    .unwrap_or_else(|_| Err(StoreError::Corrupt("a query panicked".to_owned())));
            let (outcome, rows, kept) = staged.finish();
            (value, outcome, rows, kept)
        };
        read = rows;
        conn.kept = kept;
        if !outcome.writes.is_empty() {
            return Ok(Staging::Blocking);
        }
        match outcome.need {
            Some(Need::Reads) if runs < STAGED_RUNS_MAX && !outcome.wanted.is_empty() => {
                match conn.read(false, &outcome.wanted).await {
                    Ok(answers) => read.extend(outcome.wanted.into_iter().zip(answers)),
                    Err(e) if conn.client.is_closed() => {
                        return Err(StoreError::ConnectionLost(Box::new(e)));
                    }
                    // A statement refused: nothing is open, the connection serves on.
                    Err(e) => return Ok(Staging::Done(Err(e))),
                }
            }
            Some(_) => return Ok(Staging::Blocking),
            None => {
                // What it found was committed before it was read.
                if value.is_ok() {
                    keep(&mut conn.kept, outcome.found);
                }
                return Ok(Staging::Done(value));
            }
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::super::db::args;
    use super::super::migrations_pg::tests::{TestDatabase, admin_url};
    use super::super::{StoreError, StoreResult};
    use super::{Db, Pool};

    /// A pool on a fresh database with a table `t (n, v)` holding the row (1, 10), and a
    /// runtime of several workers to run staged transactions on.
    fn staged_pool(database: &TestDatabase) -> (Arc<Pool>, tokio::runtime::Runtime) {
        let pool = Pool::open(&database.url(), 2, |db| {
            db.execute_batch(
                "CREATE TABLE t (n BIGINT PRIMARY KEY, v BIGINT NOT NULL); \
                 INSERT INTO t (n, v) VALUES (1, 10)",
            )
        })
        .expect("a pool");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        (Arc::new(pool), runtime)
    }

    fn value(db: Db<'_>, n: i64) -> StoreResult<Option<i64>> {
        db.query_row("SELECT v FROM t WHERE n = ?1 FOR UPDATE", args![n], |r| {
            r.get::<i64>(0)
        })
    }

    fn committed(pool: &Pool) -> Vec<(i64, i64)> {
        let conn = pool.take().expect("a connection");
        let rows = Db::Pg(&conn)
            .query_map("SELECT n, v FROM t ORDER BY n", args![], |r| {
                Ok((r.get::<i64>(0)?, r.get::<i64>(1)?))
            })
            .expect("rows");
        pool.give_back(conn);
        rows
    }

    const WAIT: Duration = Duration::from_secs(10);

    /// The staged connection went back to the pool's idle ones, for reuse.
    fn assert_kept(pool: &Pool) {
        assert_eq!(
            pool.idle_async.lock().expect("idle").len(),
            1,
            "kept for reuse"
        );
    }

    #[test]
    fn a_staged_transaction_reads_ahead_then_sends_its_writes_with_the_commit() {
        let Some(url) = admin_url("a_staged_transaction_reads_ahead") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_reads");
        let (pool, runtime) = staged_pool(&database);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let seen = runtime
            .block_on(pool.staged_transaction(WAIT, move |db| {
                counted.fetch_add(1, Ordering::Relaxed);
                let v = value(db, 1)?.ok_or_else(|| StoreError::Corrupt("no row".into()))?;
                db.execute_pipelined("UPDATE t SET v = ?1 WHERE n = 1", args![v + 1])?;
                db.execute_pipelined("INSERT INTO t (n, v) VALUES (2, ?1)", args![v])?;
                Ok(v)
            }))
            .expect("committed");
        assert_eq!(seen, 10);
        // Once stopped for its read, once to the end: no blocking thread was needed.
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        assert_eq!(committed(&pool), vec![(1, 11), (2, 10)]);
        assert_kept(&pool);
        drop(runtime);
    }

    #[test]
    fn a_staged_transaction_that_needs_a_row_count_runs_once_on_a_blocking_thread() {
        let Some(url) = admin_url("a_staged_transaction_that_needs_a_row_count") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_blocking");
        let (pool, runtime) = staged_pool(&database);
        let changed = runtime
            .block_on(pool.staged_transaction(WAIT, |db| {
                let v = value(db, 1)?.unwrap_or_default();
                db.execute("UPDATE t SET v = ?1 WHERE n = 1", args![v + 5])
            }))
            .expect("committed");
        assert_eq!(changed, 1);
        // The staged attempt was rolled back, so the row changed once.
        assert_eq!(committed(&pool), vec![(1, 15)]);
        drop(runtime);
    }

    #[test]
    fn a_run_stopped_for_its_reads_keeps_nothing_even_if_its_closure_ignores_the_stop() {
        let Some(url) = admin_url("a_run_stopped_for_its_reads_keeps_nothing") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_ignored");
        let (pool, runtime) = staged_pool(&database);
        let result = runtime.block_on(pool.staged_transaction(WAIT, |db| {
            // A careless closure: the error of a read not made yet is dropped.
            let v = value(db, 1).ok().flatten().unwrap_or(0);
            db.execute_pipelined("INSERT INTO t (n, v) VALUES (?1, ?1)", args![v + 100])
                .ok();
            Ok(v)
        }));
        assert_eq!(result.expect("committed"), 10);
        // Only the run that had its read wrote: no row 100 from the stopped one.
        assert_eq!(committed(&pool), vec![(1, 10), (110, 110)]);
        drop(runtime);
    }

    #[test]
    fn a_staged_closure_that_panics_is_an_error_and_keeps_nothing() {
        let Some(url) = admin_url("a_staged_closure_that_panics") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_panic");
        let (pool, runtime) = staged_pool(&database);
        let failed = runtime.block_on(pool.staged_transaction(WAIT, |db| {
            let v = value(db, 1)?.unwrap_or_default();
            db.execute_pipelined("UPDATE t SET v = 0 WHERE n = 1", args![])?;
            if v == 10 {
                panic!("a bug in a use case");
            }
            Ok(v)
        }));
        assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
        assert_eq!(committed(&pool), vec![(1, 10)]);
        assert_kept(&pool);
        drop(runtime);
    }

    #[test]
    fn a_staged_transaction_refused_by_its_closure_is_rolled_back_and_its_connection_kept() {
        let Some(url) = admin_url("a_staged_transaction_refused_by_its_closure") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_refused");
        let (pool, runtime) = staged_pool(&database);
        let refused = runtime.block_on(pool.staged_transaction(WAIT, |db| {
            value(db, 1)?;
            db.execute_pipelined("UPDATE t SET v = 0 WHERE n = 1", args![])?;
            Err::<(), _>(StoreError::Corrupt("refused".into()))
        }));
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "{refused:?}"
        );
        assert_eq!(committed(&pool), vec![(1, 10)]);
        assert_kept(&pool);
        // The kept connection has no transaction left open: the next one commits.
        runtime
            .block_on(pool.staged_transaction(WAIT, |db| {
                value(db, 1)?;
                db.execute_pipelined("UPDATE t SET v = 12 WHERE n = 1", args![])
            }))
            .expect("committed");
        assert_eq!(committed(&pool), vec![(1, 12)]);
        drop(runtime);
    }

    #[test]
    fn a_staged_read_asks_round_by_round_with_no_transaction_and_keeps_its_connection() {
        let Some(url) = admin_url("a_staged_read_asks_round_by_round") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_read");
        let (pool, runtime) = staged_pool(&database);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        // The second read depends on the first: two round trips, three runs of the closure.
        let found = runtime
            .block_on(pool.staged_read(WAIT, move |db| {
                counted.fetch_add(1, Ordering::Relaxed);
                let v = db
                    .query_row("SELECT v FROM t WHERE n = 1", args![], |r| r.get::<i64>(0))?
                    .unwrap_or_default();
                db.query_row("SELECT ?1::BIGINT + 1", args![v], |r| r.get::<i64>(0))
            }))
            .expect("read");
        assert_eq!(found, Some(11));
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        let counts = pool.staged_counts();
        assert_eq!((counts.reads, counts.read_fallbacks), (1, 0));
        assert_eq!(counts.transactions, 0);
        assert_kept(&pool);
        // And kept with no transaction open on it.
        let conn = pool.take().expect("a connection");
        let open = Db::Pg(&conn)
            .query_row(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'",
                args![],
                |r| r.get::<i64>(0),
            )
            .expect("counted");
        pool.give_back(conn);
        assert_eq!(open, Some(0));
        drop(runtime);
    }

    #[test]
    fn a_staged_read_the_server_refuses_is_an_error_and_its_connection_serves_on() {
        let Some(url) = admin_url("a_staged_read_the_server_refuses") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_read_refused");
        let (pool, runtime) = staged_pool(&database);
        let refused = runtime.block_on(pool.staged_read(WAIT, |db| {
            db.query_row("SELECT v FROM no_such_table", args![], |r| r.get::<i64>(0))
        }));
        assert!(
            matches!(refused, Err(StoreError::Postgres(_))),
            "{refused:?}"
        );
        assert_eq!(pool.staged_counts().read_fallbacks, 0);
        assert_kept(&pool);
        let v = runtime
            .block_on(pool.staged_read(WAIT, |db| {
                db.query_row("SELECT v FROM t WHERE n = 1", args![], |r| r.get::<i64>(0))
            }))
            .expect("read");
        assert_eq!(v, Some(10));
        drop(runtime);
    }

    #[test]
    fn a_staged_read_that_asks_for_more_than_reads_runs_on_a_blocking_thread() {
        let Some(url) = admin_url("a_staged_read_that_asks_for_more") else {
            return;
        };
        let database = TestDatabase::create(&url, "staged_read_blocking");
        let (pool, runtime) = staged_pool(&database);
        // A row count is the server's answer to this very statement.
        let changed = runtime
            .block_on(pool.staged_read(WAIT, |db| {
                db.execute("UPDATE t SET v = v WHERE n = 1", args![])
            }))
            .expect("run");
        assert_eq!(changed, 1);
        let counts = pool.staged_counts();
        assert_eq!((counts.reads, counts.read_fallbacks), (1, 1));
        drop(runtime);
    }

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
