//! Storage: one [`Store`] for everything the PS keeps, on SQLite (a file in WAL mode,
//! `synchronous = FULL`, so a commit survives power loss) or on PostgreSQL (`postgres.rs`), behind
//! the same operations. The store holds no rules and names no wire code: a use
//! case opens [`Store::transaction`] and works through the per-table operations of [`Tx`]
//! (`impl Tx` in each table's file), or reads through the `Store`'s read methods.
//!
//! On SQLite, writes go through a single writer thread that commits whatever is queued in one
//! transaction (group commit, `writer.rs`); a sync thread beside it syncs the log and answers
//! every caller only after the commit is on disk (`log_sync.rs`). Reads use a small pool of
//! read-only connections, and each returns only once what it saw is on disk. Called by the use cases
//! (`payments`, `refunds`, registers), the outbox's senders (`outbox.rs` here holds the outbox's
//! per-table operations for every kind), the edges' reads, and start-up.

mod catalog;
mod console;
pub(crate) mod db;
mod devices;
mod file_lock;
mod ids;
mod leases;
mod log_sync;
mod migrations;
mod migrations_pg;
mod outbox;
mod payments;
mod pg_tls;
mod postgres;
mod readiness;
mod refund_delivery;
mod refunds;
mod registers;
mod retention;
mod writer;

pub(crate) use readiness::Readiness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc};

pub(crate) use catalog::CatalogDoc;
pub use catalog::read_catalog_file;
pub use devices::Device;
pub(crate) use devices::DeviceRegistration;
pub use devices::{PosRequestKey, Replay};
pub use file_lock::{DatabaseLock, DatabaseLockError, lock_database};
pub use ids::{RESTORE_GAP, other_sessions, skip_operation_ids};
pub use leases::{LeaseHolder, NodeNameHold};
pub use outbox::OutboxEntry;
pub use outbox::OutboxKind;
pub use outbox::{Attempt, AttemptOutcome};
pub(crate) use payments::NewPayment;
pub use payments::ScanKey;
pub use postgres::StagedCounts;
pub(crate) use refund_delivery::RefundView;
pub(crate) use refunds::{NewRefund, NewReturnQr};
pub use registers::OpKind;
pub use registers::RegisterDeliveryView;
pub use registers::RegisterDue;
pub use registers::RegisterOp;
pub use registers::RegisterSending;
pub use registers::RegisterToSend;
pub(crate) use registers::{PageCursor, RegisterReader};
use writer::Job;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database: {}", postgres_text(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// PostgreSQL: the connection broke as a transaction or read ended, after the server refused
    /// it; the request may be sent again (every write the PS retries is idempotent).
    #[error("database: the connection was lost ({0})")]
    ConnectionLost(Box<StoreError>),
    #[error("the write queue is full or the write did not commit in time")]
    Overloaded,
    #[error("the writer has stopped")]
    WriterGone,
    #[error("the commit failed; nothing was written")]
    CommitFailed,
    /// SQLite: a sync of the log to disk failed; what it held may not be on disk, so the store
    /// answers no write or read until the PS is restarted (`log_sync.rs`).
    #[error("the database's log could not be synced to disk; restart the PS")]
    LogNotSynced,
    /// SQLite: the last writes with data in them did not commit (a full disk, say), and a write
    /// of the readiness check did not either (`Store::ping`).
    #[error("the database takes no writes: {0}")]
    TakesNoWrites(Box<StoreError>),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// PostgreSQL: the URL, the server or its certificate; the message names the cause.
    #[error("{0}")]
    Connect(String),
    /// What a command will not do to this database, and why (`tolem restored` on a file whose
    /// schema predates the one sequence of ids).
    #[error("{0}")]
    Refused(String),
    /// The database was migrated by a newer build: this one would not know its tables.
    #[error(
        "the database has schema version {found}, newer than this build's {known}: run the newer \
         build, or restore the backup taken before the upgrade (docs/deployment.md)"
    )]
    NewerSchema { found: i64, known: usize },
    /// A reader that must not migrate met a database an older build left.
    #[error(
        "the database has schema version {found}, older than this build's {known}: start this \
         build's `tolem serve` on it once (it migrates at start), or use the older build"
    )]
    OlderSchema { found: i64, known: usize },
    /// PostgreSQL: another live node serves under this `node_name` (`Store::hold_node_name`).
    #[error(
        "another node serving on this database holds the node name {0:?}: give each node its own \
         `node_name` (docs/deployment.md)"
    )]
    NodeNameTaken(String),
    /// Never leaves the store: a PostgreSQL transaction run ahead of the database stopped for
    /// what it needs (`db::Staged`); the store goes on with it.
    #[error("a staged transaction stopped for the database")]
    Staged,
}

impl StoreError {
    /// Whether the request may simply be sent again later (HTTP 503, DECISIONS 7): the store is
    /// overloaded, or its database is out of reach for now (PostgreSQL down, restarting, a
    /// connection lost). Anything else is an internal fault (HTTP 500).
    pub(crate) fn is_unavailable(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            StoreError::Overloaded | StoreError::Connect(_) | StoreError::ConnectionLost(_) => true,
            StoreError::Postgres(e) => {
                let lost = e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
                let stopping = e.code().is_some_and(|code| {
                    [
                        SqlState::ADMIN_SHUTDOWN,
                        SqlState::CRASH_SHUTDOWN,
                        SqlState::CANNOT_CONNECT_NOW,
                    ]
                    .contains(code)
                });
                lost || stopping
            }
            _ => false,
        }
    }
}

/// A PostgreSQL error as a log line can use: tokio-postgres says only `db error` for what the
/// server refused, and keeps the SQLSTATE and the server's words in its source. The server's
/// DETAIL is left out: it quotes row values (a key that already exists, a failing row), which
/// may be a token or a customer's id; the constraint, table and column name the place instead.
fn postgres_text(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    for (what, name) in [
        ("table", db.table()),
        ("column", db.column()),
        ("constraint", db.constraint()),
    ] {
        if let Some(name) = name {
            text.push_str(&format!(" ({what} {name})"));
        }
    }
    text
}

pub(crate) type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug)]
pub struct StoreLimits {
    pub write_queue_max: usize,
    pub write_batch_max: usize,
    pub read_connections: usize,
    /// PostgreSQL: connections this node keeps to the database, shared by writes and reads.
    pub database_connections: usize,
    /// How long a caller waits for its write to commit before it is told to retry.
    pub write_wait_ms: u64,
}

impl StoreLimits {
    /// The store's part of the configuration's `limits`.
    pub fn of(limits: &crate::config::LimitsConfig) -> StoreLimits {
        StoreLimits {
            write_queue_max: limits.write_queue_max,
            write_batch_max: limits.write_batch_max,
            read_connections: limits.read_connections,
            database_connections: limits.database_connections,
            write_wait_ms: limits.request_timeout_ms,
        }
    }

    /// A small store for unit tests: 16 writes queued and batched, one reader, 10 s to
    /// commit. A test that needs another bound changes that field alone (`..for_tests()`).
    #[cfg(test)]
    pub(crate) fn for_tests() -> StoreLimits {
        StoreLimits {
            write_queue_max: 16,
            write_batch_max: 16,
            read_connections: 1,
            database_connections: 2,
            write_wait_ms: 10_000,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    write_wait: std::time::Duration,
    backend: Backend,
    /// The console's Today totals up to a moment no commit can still reach (`console.rs`).
    settled_totals: std::sync::Mutex<Option<console::Settled>>,
}

/// The store's backend.
///
/// Where a method awaits a PostgreSQL future, it boxes it: an `async fn`'s future is as large as
/// its largest branch, and PostgreSQL's staged transaction made every SQLite scan's and
/// notifyPayment's future 6 KB (1.5 KB boxed), copied whole each time a layer moves it (under the
/// MPP mix, `memmove` fell from 4.4 % to 3.1 % of the PS's CPU; docs/benchmarks.md).
enum Backend {
    Sqlite(Sqlite),
    Postgres(Arc<postgres::Pool>),
}

/// SQLite: one writer thread, a few read-only connections, a checkpointer.
struct Sqlite {
    writer: mpsc::Sender<Job>,
    /// Set by the writer when a batch with data in it did not commit, cleared when one does:
    /// the readiness check then writes for real (`Store::ping`).
    writes_failing: Arc<AtomicBool>,
    readers: Mutex<Vec<Connection>>,
    /// How far the writer's commits are synced: each read waits for what it may have seen.
    log_sync: Arc<log_sync::LogSync>,
    checkpoint_stop: Arc<AtomicBool>,
    reader_permits: Arc<Semaphore>,
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        self.checkpoint_stop.store(true, Ordering::Relaxed);
    }
}

impl Store {
    /// Opens the database: a PostgreSQL URL (`postgres://…`) or a SQLite file (created if
    /// needed), runs its migrations and, for SQLite, starts the writer.
    pub fn open(path: &Path, limits: &StoreLimits) -> StoreResult<Store> {
        let backend = if crate::config::is_postgres_url(path) {
            Backend::Postgres(Arc::new(open_postgres(path, limits)?))
        } else {
            Backend::Sqlite(open_sqlite(path, limits)?)
        };
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                write_wait: std::time::Duration::from_millis(limits.write_wait_ms),
                backend,
                settled_totals: std::sync::Mutex::new(None),
            }),
        })
    }

    /// SQLite: waits until every commit a read that has just ended may have seen is on disk
    /// (`log_sync.rs`); at once on PostgreSQL. Blocking.
    fn wait_for_seen(&self) -> StoreResult<()> {
        match &self.inner.backend {
            Backend::Sqlite(lite) => lite.log_sync.wait_for_seen(self.inner.write_wait),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// SQLite: the state of the log's syncs, for tests that hold or fail them.
    #[cfg(test)]
    fn log_sync(&self) -> Arc<log_sync::LogSync> {
        match &self.inner.backend {
            Backend::Sqlite(lite) => lite.log_sync.clone(),
            Backend::Postgres(_) => unreachable!("tests of the log's sync run on SQLite"),
        }
    }

    /// Whether this store is PostgreSQL (several nodes may share it).
    pub fn is_postgres(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
    }

    /// A new PostgreSQL connection of its own, outside the pool (blocking: call it on a blocking
    /// thread); none on SQLite.
    fn postgres_connection(&self) -> StoreResult<Option<db::PgConn>> {
        match &self.inner.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(pool) => pool.connect().map(Some),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in the writer's transaction. It returns once the transaction is committed; if
    /// `f` fails, its own changes are rolled back and the other writes of the batch still commit.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let Backend::Sqlite(lite) = &self.inner.backend else {
            return Err(StoreError::Corrupt(
                "a SQLite write on a PostgreSQL store".to_owned(),
            ));
        };
        let (job, answer) = writer::job(f);
        lite.writer.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::WriterGone,
        })?;
        // Past the deadline the caller is told to retry; the write itself may still commit,
        // which is safe because every write the PS retries is idempotent.
        match tokio::time::timeout(self.inner.write_wait, answer).await {
            Ok(answer) => answer.map_err(|_| StoreError::WriterGone)?,
            Err(_) => Err(StoreError::Overloaded),
        }
    }

    /// Runs a use case's transaction: `f` reads and changes rows through the [`Tx`] handle's
    /// per-table operations, applying the rules itself; the store knows no flow. It returns once
    /// the transaction is committed (group commit: `f` runs inside the writer's batch). If `f`
    /// returns an error, its changes are rolled back and the rest of the batch still commits; a
    /// refusal the caller must answer with belongs inside `T`, not in the error, when what was
    /// changed before it must stand. `f` may run more than once (on PostgreSQL a serialization
    /// failure rolls it back and runs it again; on SQLite a write of its batch that failed makes
    /// the batch run again, each write in its own savepoint: `writer`), so it is `Fn`: it takes
    /// what it needs by reference and clones what it hands over.
    pub async fn transaction<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Tx<'_>) -> StoreResult<T> + Send + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite(_) => self.write(move |conn| f(&Tx::of(db::Db::Lite(conn)))).await,
            Backend::Postgres(pool) => {
                let isolation = postgres::Isolation::Serializable;
                Box::pin(
                    pool.transaction(self.inner.write_wait, isolation, move |db| f(&Tx::of(db))),
                )
                .await
            }
        }
    }

    /// A transaction whose statements lock the rows they change themselves: an outbox claim
    /// (`FOR UPDATE SKIP LOCKED`), or a use case that decides on one purchase alone and loads it
    /// locked (`Tx::payment_to_change`: scan and notifyPayment, which run as
    /// [`Store::staged_locking_transaction`]). As [`Store::transaction`], but on
    /// PostgreSQL at READ COMMITTED, so that transactions of different rows at once do not make
    /// each other run again: at SERIALIZABLE, PostgreSQL's predicate locks cover a whole index
    /// page, and purchases made close together share their pages (docs/benchmarks.md).
    pub async fn locking_transaction<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Tx<'_>) -> StoreResult<T> + Send + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite(_) => self.transaction(f).await,
            Backend::Postgres(pool) => {
                let isolation = postgres::Isolation::ReadCommitted;
                Box::pin(
                    pool.transaction(self.inner.write_wait, isolation, move |db| f(&Tx::of(db))),
                )
                .await
            }
        }
    }

    /// [`Store::locking_transaction`] for a use case of a few reads and writes whose row counts
    /// it does not need (scan, notifyPayment): on PostgreSQL it runs on the async workers, its
    /// reads asked for ahead and its writes sent with the `COMMIT` (`postgres::Pool::staged_transaction`),
    /// and on a blocking thread only if it turns out to need more. On SQLite it is the same as
    /// [`Store::transaction`].
    pub async fn staged_locking_transaction<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Tx<'_>) -> StoreResult<T> + Send + Sync + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite(_) => self.transaction(f).await,
            Backend::Postgres(pool) => {
                Box::pin(pool.staged_transaction(self.inner.write_wait, move |db| f(&Tx::of(db))))
                    .await
            }
        }
    }

    /// Staged transactions and reads begun since the store opened, and how many of each ran on
    /// a blocking thread after all (`/admin/v1/metrics`); all 0 on SQLite, where none is staged.
    pub fn staged_counts(&self) -> StagedCounts {
        match &self.inner.backend {
            Backend::Sqlite(_) => StagedCounts::default(),
            Backend::Postgres(pool) => pool.staged_counts(),
        }
    }

    /// Whether the store can take work now (`GET /health/ready`): on SQLite a write that changes
    /// nothing passes through the writer (alive, not full), and after writes with data in them
    /// failed to commit (a full disk) a write of a page of the file, so that a node whose every
    /// write fails is not ready, and is again once one commits; on PostgreSQL a connection of
    /// the pool answers `SELECT 1`.
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) if sqlite.writes_failing.load(Ordering::Relaxed) => {
                // The header's user_version written as it is: a page of the file, through the
                // log, as any write. The flag is cleared inside the write, on the writer's
                // thread: if its batch then fails to commit, the writer sets it again, and a
                // batch failing after this one does too; cleared here after the answer, a
                // failure landing between the two would be lost.
                let failing = sqlite.writes_failing.clone();
                self.write(move |c| {
                    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                    c.pragma_update(None, "user_version", version)?;
                    failing.store(false, Ordering::Relaxed);
                    Ok(())
                })
                .await
                .map_err(|e| match e {
                    // A full queue is busy, not refusing: as for the empty write.
                    StoreError::Overloaded => e,
                    e => StoreError::TakesNoWrites(Box::new(e)),
                })
            }
            Backend::Sqlite(_) => self.write(|_| Ok(())).await,
            Backend::Postgres(_) => {
                self.read_db(|db| db.query_row("SELECT 1", &[], |_| Ok(())).map(|_| ()))
                    .await
            }
        }
    }

    /// [`Store::read_db`] for a read on every POS call or status poll (a device's token, a
    /// purchase): on PostgreSQL it runs on the async workers (`postgres::Pool::staged_read`), on
    /// a blocking thread only if it asks for more than reads. The same as `read_db` on SQLite.
    async fn staged_read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(db::Db<'_>) -> StoreResult<T> + Send + Sync + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite(_) => self.read(move |conn| f(db::Db::Lite(conn))).await,
            Backend::Postgres(pool) => Box::pin(pool.staged_read(self.inner.write_wait, f)).await,
        }
    }

    /// Runs `f` on a connection that only reads (autocommit), on a blocking thread.
    async fn read_db<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(db::Db<'_>) -> StoreResult<T> + Send + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite(_) => self.read(move |conn| f(db::Db::Lite(conn))).await,
            Backend::Postgres(pool) => Box::pin(pool.read(self.inner.write_wait, f)).await,
        }
    }

    /// Runs `f` on a read-only connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let Backend::Sqlite(lite) = &self.inner.backend else {
            return Err(StoreError::Corrupt(
                "a SQLite read on a PostgreSQL store".to_owned(),
            ));
        };
        // The permit moves into the blocking task, so a connection is only taken while a permit
        // is held, even when the caller stops waiting.
        let permit = lite
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let permit = permit;
            let Backend::Sqlite(lite) = &store.inner.backend else {
                return Err(StoreError::WriterGone);
            };
            let conn = lite.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            // As many permits as connections, and each permit holder takes at most one.
            let Some(conn) = conn else {
                return Err(StoreError::Corrupt("the read pool is empty".to_owned()));
            };
            let result = f(&conn);
            lite.readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            drop(permit);
            // What the read saw (an absence too) may be a commit whose sync is under way.
            lite.log_sync.wait_for_seen(store.inner.write_wait)?;
            result
        })
        .await
        .map_err(|_| StoreError::Corrupt("a read panicked".to_owned()))?
    }
}

/// A write transaction as a use case sees it: per-table operations (`impl Tx` in each table's
/// file: purchases, refunds, the outbox, ...), no rules. Given out by [`Store::transaction`].
pub struct Tx<'c> {
    db: db::Db<'c>,
}

/// Opens the SQLite file, runs its migrations and starts the writer and the checkpointer.
fn open_sqlite(path: &Path, limits: &StoreLimits) -> StoreResult<Sqlite> {
    create_private(path);
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    migrations::run(&mut conn)?;
    // Passive checkpoints run on their own thread; the writer restarts the log when asked
    // (`checkpoint`, `writer::run`), never in the middle of a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // A log the checkpoints made longer than this is cut back to it when it restarts.
    conn.pragma_update(None, "journal_size_limit", WAL_BYTES_KEPT)?;
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB.saturating_neg())?;
    // Savepoints and statements' journals keep a copy of each page they change; in memory, not
    // in a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let restart_wanted = Arc::new(AtomicBool::new(false));
    let writes_failing = Arc::new(AtomicBool::new(false));
    let failing = writes_failing.clone();
    let checkpoint_stop = start_checkpointer(path, restart_wanted.clone())?;
    // The writer commits without waiting for the disk; its syncer syncs the log and answers
    // (`log_sync.rs`). The migrations above ran at FULL.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let log_sync = Arc::new(log_sync::LogSync::default());
    let syncer = log_sync::Syncer::start(
        log_sync::LogFile::open(path)?,
        log_sync.clone(),
        writes_failing.clone(),
    )?;
    let (tx, rx) = mpsc::channel(limits.write_queue_max);
    let batch_max = limits.write_batch_max;
    let state = log_sync.clone();
    std::thread::Builder::new()
        .name("tolem-writer".to_owned())
        .spawn(move || {
            let log = (&*state, syncer);
            writer::run(conn, rx, batch_max, &restart_wanted, &failing, log);
        })
        .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
    let mut readers = Vec::with_capacity(limits.read_connections);
    for _ in 0..limits.read_connections {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        readers.push(conn);
    }
    Ok(Sqlite {
        writer: tx,
        writes_failing,
        readers: Mutex::new(readers),
        log_sync,
        checkpoint_stop,
        reader_permits: Arc::new(Semaphore::new(limits.read_connections)),
    })
}

/// Makes the SQLite file, when there is none yet, readable by its owner and group only (0640,
/// as the deployment guide restores a backup): the books are no one else's to read, whatever the
/// process's umask. SQLite gives its log (`-wal`) and index (`-shm`) the database's permissions.
/// A file that is there already keeps the permissions its operator gave it; a file that cannot be
/// made is left to SQLite's open, whose error the start explains.
fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    let _ = options.open(path);
}

/// Connects to PostgreSQL and runs its migrations, on a thread of its own: the `postgres`
/// client may not block an async worker, and `open` is called from async start-up code.
/// Where the database's schema stands against this build's, read without changing it
/// (`tolem serve --check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// No database yet (or no Tolem table in it): a start makes the schema.
    New { known: usize },
    /// Migrated as far as this build knows.
    UpToDate { version: usize },
    /// A start of this build migrates it from `found` to `known`.
    Behind { found: usize, known: usize },
    /// A newer build migrated it: this build refuses it.
    Newer { found: i64, known: usize },
}

/// [`SchemaState`] of the database at `path` (a SQLite file or a PostgreSQL URL). Blocking, on a
/// thread of its own (the PostgreSQL client runs its own runtime).
pub fn schema_state(path: &Path) -> StoreResult<SchemaState> {
    let path = path.to_owned();
    let (found, known) = std::thread::scope(|s| {
        s.spawn(|| {
            if crate::config::is_postgres_url(&path) {
                let url = pg_tls::parse(&path.to_string_lossy())?;
                let conn = db::PgConn::connect(&url)?;
                migrations_pg::versions(db::Db::Pg(&conn))
            } else {
                migrations::versions(&path)
            }
        })
        .join()
        .map_err(|_| StoreError::Corrupt("reading the schema version panicked".to_owned()))?
    })?;
    Ok(match found.map(usize::try_from) {
        None | Some(Ok(0)) => SchemaState::New { known },
        Some(Ok(found)) if found == known => SchemaState::UpToDate { version: known },
        Some(Ok(found)) if found < known => SchemaState::Behind { found, known },
        _ => SchemaState::Newer {
            found: found.unwrap_or_default(),
            known,
        },
    })
}

fn open_postgres(url: &Path, limits: &StoreLimits) -> StoreResult<postgres::Pool> {
    let url = url.to_string_lossy().into_owned();
    let connections = limits.database_connections;
    std::thread::Builder::new()
        .name("tolem-pg-open".to_owned())
        .spawn(move || postgres::Pool::open(&url, connections, migrations_pg::run_postgres))
        .map_err(|e| StoreError::Corrupt(format!("cannot start a thread: {e}")))?
        .join()
        .map_err(|_| StoreError::Corrupt("opening the database panicked".to_owned()))?
}

impl<'c> Tx<'c> {
    fn of(db: db::Db<'c>) -> Tx<'c> {
        Tx { db }
    }
}

/// Page cache of the writer's connection: small, because SQLite walks all of it at a commit
/// after a B-tree balance that moved pages while the file is under 1 GiB (`balance_nonroot`
/// parks a page at the lock-byte page's number, 262,145, and the commit then truncates the
/// cache to the file's size by visiting every page it holds). With 64 MiB that walk was a
/// sixth of the writer's time on a fresh store; the pages it would keep are in the operating
/// system's cache anyway (docs/benchmarks.md, "Where the time goes").
const WRITER_CACHE_KIB: i64 = 2 * 1024;
/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_INTERVAL_MS: u64 = 250;

/// A thread that checkpoints the write-ahead log beside the writer (PASSIVE: it never blocks the
/// writer or readers). It stops when the process ends.
fn start_checkpointer(
    path: &Path,
    restart_wanted: Arc<AtomicBool>,
) -> StoreResult<Arc<AtomicBool>> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("tolem-checkpoint".to_owned())
        .spawn(move || {
            // A full disk fails every checkpoint, four a second: said once a minute.
            let mut lasting = crate::log_sparse::Lasting::default();
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(CHECKPOINT_INTERVAL_MS));
                lasting.note("the log's checkpoint", &checkpoint(&conn, &restart_wanted));
            }
        })
        .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(stop)
}

/// Log size past which the checkpointer asks the writer to restart the log between two batches.
#[cfg(not(test))]
const WAL_FRAMES_MAX: i64 = 16_384;
/// Small in unit tests, so that a test can write past it many times in a moment.
#[cfg(test)]
const WAL_FRAMES_MAX: i64 = 256;

/// The log file's size kept between restarts: `WAL_FRAMES_MAX` frames of a 4 KiB page and
/// room to spare (each frame is the page and a 24-byte header).
const WAL_BYTES_KEPT: i64 = 2 * WAL_FRAMES_MAX * (4_096 + 24);

/// Copies the log back into the database without blocking anyone (PASSIVE). Under sustained
/// writes a passive checkpoint may never catch up, and the log would grow without bound; past
/// `WAL_FRAMES_MAX` frames it asks the writer for a RESTART checkpoint between two batches
/// ([`writer::run`]): the writer is the one connection that never has to wait for the write
/// lock, which a checkpoint on this thread could wait for in vain while batches follow each
/// other. The restart makes the next commit write the log from its start again; the file
/// keeps its size (up to `journal_size_limit`), so commits overwrite blocks the file already
/// has, and syncing one needs no change of the file's size on disk.
fn checkpoint(conn: &Connection, restart_wanted: &AtomicBool) -> rusqlite::Result<()> {
    let (log_frames, _) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?;
    if log_frames > WAL_FRAMES_MAX {
        restart_wanted.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// How long a connection waits for a lock another holds before its statement fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn configure(conn: &Connection) -> StoreResult<()> {
    // WAL lets readers run beside the writer; FULL syncs the log at every commit, so an
    // acknowledged payment survives a crash or power loss. (The writer's own connection leaves
    // that sync to its syncer, which answers only after it: `log_sync.rs`.)
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "journal_mode is {mode}, not wal"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_out_of_reach_is_retry_later_and_a_fault_is_not() {
        // Nothing listens on port 9: the connection is refused, as when PostgreSQL is down.
        let refused =
            tokio_postgres::connect("host=127.0.0.1 port=9 user=tolem", tokio_postgres::NoTls)
                .await
                .err()
                .expect("refused");
        assert!(StoreError::Postgres(refused).is_unavailable());
        assert!(StoreError::Overloaded.is_unavailable());
        assert!(StoreError::Connect("cannot connect".into()).is_unavailable());
        // A commit the server refused (two nodes inserting one key, say) on a connection that
        // then broke: retry, never a fault.
        let lost = StoreError::ConnectionLost(Box::new(StoreError::CommitFailed));
        assert!(lost.is_unavailable());
        assert!(!StoreError::Corrupt("a bad row".into()).is_unavailable());
        assert!(!StoreError::CommitFailed.is_unavailable());
    }

    #[cfg(unix)]
    #[test]
    fn a_new_sqlite_file_and_its_log_are_not_for_everyone_to_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a folder");
        let limits = StoreLimits::for_tests();
        let mode = |name: &str| {
            let meta = std::fs::metadata(dir.path().join(name)).expect(name);
            meta.permissions().mode() & 0o777
        };
        let path = dir.path().join("new.db");
        let store = Store::open(&path, &limits).expect("opens");
        assert_eq!(mode("new.db") & 0o007, 0, "others read nothing");
        assert_eq!(mode("new.db-wal") & 0o007, 0, "nor the log");
        assert_eq!(mode("new.db-shm") & 0o007, 0, "nor its index");
        drop(store);
        // A file the operator made keeps the permissions they gave it.
        let theirs = dir.path().join("theirs.db");
        std::fs::write(&theirs, b"").expect("made");
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o604)).expect("set");
        let _store = Store::open(&theirs, &limits).expect("opens");
        assert_eq!(mode("theirs.db"), 0o604);
    }
}
