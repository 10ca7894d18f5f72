//! The log's sync, beside the writer (`writer.rs`). The writer commits each batch without
//! waiting for the disk (`synchronous = NORMAL` on its connection: SQLite writes the batch's
//! pages to the log and leaves the sync to this thread) and hands the batch's callers here. This
//! thread syncs the log (`fdatasync`) once for every batch committed since its last sync, and
//! only then answers their callers. So the writer runs the next batch while the disk syncs the
//! last, and a slow sync no longer holds every write back (docs/benchmarks.md, "The log synced
//! beside the writer").
//!
//! Two rules keep every answer durable, as when the writer synced its own commits:
//! - **a write is answered only after a sync that began after its commit** (and after the
//!   writes committed before it, whose rows it may have read, are synced: batches are synced
//!   and answered in the order they committed);
//! - **a read returns only once every commit it may have seen is synced**: a commit is counted
//!   before it is made, so a read that ends sees at most the commits counted by then, and waits
//!   for them ([`LogSync::wait_for_seen`], in `Store::read` and a register's snapshot).
//!
//! A sync that fails leaves the log's state on disk unknown (Linux may drop the pages that did
//! not reach it), so a later sync that succeeds would prove nothing of the earlier commits: from
//! then on the store refuses every write and read ([`StoreError::LogNotSynced`], the readiness
//! check fails) until the PS is restarted and SQLite recovers the log from what is on disk.
//! SQLite itself still syncs the log where its own order needs it (before a checkpoint copies
//! it, and a restarted log's header), at `NORMAL` as at `FULL`.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use super::writer::{Job, Outcome};
use super::{StoreError, StoreResult};

/// How far the commits and their syncs have come, shared by the writer, the syncer and readers.
#[derive(Default)]
pub(super) struct LogSync {
    /// Batches whose `COMMIT` has begun: counted before it, so that a read which saw a commit
    /// counts it.
    committing: AtomicU64,
    /// Every batch up to this count is synced (or did not commit).
    synced: AtomicU64,
    /// A sync failed: no write or read is answered until a restart.
    failed: AtomicBool,
    /// Syncs of the log made so far (for the store's tests and the writer's tests).
    syncs: AtomicU64,
    lock: Mutex<()>,
    advanced: Condvar,
    /// Tests: the syncer waits while this is set, so that a test can see what waits for it.
    #[cfg(test)]
    pub(super) held: AtomicBool,
    /// Tests: the next sync fails, as one would on a failing disk.
    #[cfg(test)]
    pub(super) fail_next: AtomicBool,
}

/// A batch handed from the writer to the syncer.
pub(super) struct Committed {
    pub(super) jobs: Vec<Job>,
    /// The batch's number (from [`LogSync::begin_commit`]); none when it never reached `COMMIT`.
    pub(super) number: Option<u64>,
    /// Whether it committed.
    pub(super) committed: bool,
    /// Whether it changed anything: a batch that did not (the readiness check's empty write)
    /// needs no sync of its own, only those before it.
    pub(super) changed: bool,
}

impl LogSync {
    /// Counts a batch about to commit; returns its number.
    pub(super) fn begin_commit(&self) -> u64 {
        self.committing.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether a sync failed: the writer then refuses every write.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Syncs of the log made so far.
    #[cfg(test)]
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Called when a read has ended: blocks until every commit it may have seen is on disk, or
    /// `wait` has passed ([`StoreError::Overloaded`], retry), or a sync failed.
    pub(super) fn wait_for_seen(&self, wait: Duration) -> StoreResult<()> {
        let seen = self.committing.load(Ordering::SeqCst);
        if self.synced.load(Ordering::SeqCst) >= seen && !self.failed() {
            return Ok(());
        }
        let deadline = Instant::now() + wait;
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.failed() {
                return Err(StoreError::LogNotSynced);
            }
            if self.synced.load(Ordering::SeqCst) >= seen {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Overloaded);
            }
            guard = self
                .advanced
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Every batch up to `number` is synced (or failed: `failed` is set first); wakes readers.
    fn advance(&self, number: u64) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.synced.fetch_max(number, Ordering::SeqCst);
        self.advanced.notify_all();
    }
}

/// The log file held open for its syncs, and its path, to check that it is still the log.
pub(super) struct LogFile {
    file: File,
    path: PathBuf,
}

impl LogFile {
    /// Opens the log of the database at `database` (its `-wal` file, which the writer's
    /// connection keeps while it is open).
    pub(super) fn open(database: &std::path::Path) -> StoreResult<LogFile> {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        let path = PathBuf::from(path);
        let file = File::open(&path).map_err(|e| {
            StoreError::Corrupt(format!("cannot open the log {}: {e}", path.display()))
        })?;
        Ok(LogFile { file, path })
    }

    /// `fdatasync` of the log, after checking that the file held is still the one at its path
    /// (a sync of a file no longer the log would prove nothing).
    fn sync(&self) -> std::io::Result<()> {
        let held = self.file.metadata()?;
        let there = std::fs::metadata(&self.path)?;
        if (held.dev(), held.ino()) != (there.dev(), there.ino()) {
            return Err(std::io::Error::other(
                "the log file was replaced under the running PS",
            ));
        }
        self.file.sync_data()
    }
}

/// The syncer thread, as the writer holds it.
pub(super) struct Syncer {
    handed: mpsc::Sender<Committed>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    /// Starts the syncer thread.
    pub(super) fn start(
        log: LogFile,
        state: Arc<LogSync>,
        writes_failing: Arc<AtomicBool>,
    ) -> StoreResult<Syncer> {
        let (handed, batches) = mpsc::channel::<Committed>();
        let thread = std::thread::Builder::new()
            .name("tolem-log-sync".to_owned())
            .spawn(move || run(&log, &batches, &state, &writes_failing))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the log's sync thread: {e}")))?;
        Ok(Syncer { handed, thread })
    }

    /// Hands a batch on; false if the syncer is gone (it stops only when the writer does).
    pub(super) fn hand(&self, batch: Committed) -> bool {
        self.handed.send(batch).is_ok()
    }

    /// Waits until everything handed is synced and answered. The writer calls it as it stops,
    /// before its connection closes: the last connection's close checkpoints the log and
    /// deletes it, and a sync after that would find no log and fail.
    pub(super) fn finish(self) {
        drop(self.handed);
        let _ = self.thread.join();
    }
}

fn run(
    log: &LogFile,
    batches: &mpsc::Receiver<Committed>,
    state: &LogSync,
    writes_failing: &AtomicBool,
) {
    let mut group = Vec::new();
    while let Ok(first) = batches.recv() {
        group.push(first);
        while let Ok(more) = batches.try_recv() {
            group.push(more);
        }
        #[cfg(test)]
        while state.held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let synced = if state.failed() {
            false
        } else if group.iter().any(|b| b.changed) {
            match sync(log, state) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        "the database's log could not be synced to disk: the PS takes no more \
                         writes or reads until it is restarted"
                    );
                    state.failed.store(true, Ordering::SeqCst);
                    writes_failing.store(true, Ordering::Relaxed);
                    false
                }
            }
        } else {
            true
        };
        let mut last = None;
        for batch in group.drain(..) {
            last = batch.number.or(last);
            let outcome = match (synced, batch.committed) {
                (true, true) => Outcome::Written,
                (true, false) => Outcome::NotWritten,
                (false, _) => Outcome::NotSynced,
            };
            for job in batch.jobs {
                job.answer(outcome);
            }
        }
        if let Some(last) = last {
            state.advance(last);
        } else if !synced {
            state.advance(0);
        }
    }
}

fn sync(log: &LogFile, state: &LogSync) -> std::io::Result<()> {
    #[cfg(test)]
    if state.fail_next.swap(false, Ordering::SeqCst) {
        return Err(std::io::Error::other("a sync failed for the test"));
    }
    log.sync()?;
    state.syncs.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::super::{Store, StoreError, StoreLimits};

    async fn store_with_table(dir: &tempfile::TempDir) -> Arc<Store> {
        let store = Arc::new(
            Store::open(&dir.path().join("s.db"), &StoreLimits::for_tests()).expect("opens"),
        );
        store
            .write(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .expect("table");
        store
    }

    fn count(store: &Arc<Store>) -> tokio::task::JoinHandle<Result<i64, StoreError>> {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
                .await
        })
    }

    /// Holds the syncer and writes row 1; returns once the writer has committed it (another
    /// connection sees it), with the write's task, which waits for the held sync.
    async fn a_write_waiting_for_its_sync(
        dir: &tempfile::TempDir,
        store: &Arc<Store>,
    ) -> tokio::task::JoinHandle<Result<usize, StoreError>> {
        store.log_sync().held.store(true, Ordering::SeqCst);
        let write = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(|c| Ok(c.execute("INSERT INTO t VALUES (1)", [])?))
                    .await
            })
        };
        let other =
            rusqlite::Connection::open(dir.path().join("s.db")).expect("another connection");
        let mut seen = 0;
        for _ in 0..500 {
            seen = other
                .query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                .expect("read");
            if seen == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen, 1, "the writer committed");
        write
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_answered_and_read_only_once_its_commit_is_synced() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store_with_table(&dir).await;
        let syncs = store.log_sync().syncs();
        // The commit is made: another connection sees the row ...
        let write = a_write_waiting_for_its_sync(&dir, &store).await;
        // ... but while its sync is held, its caller has no answer, and the store's reads,
        // which may see it, do not return.
        let read = count(&store);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!write.is_finished(), "a write answered before its sync");
        assert!(!read.is_finished(), "a read returned what was not synced");
        assert_eq!(store.log_sync().syncs(), syncs);
        store.log_sync().held.store(false, Ordering::SeqCst);
        assert_eq!(write.await.expect("joined").expect("written"), 1);
        assert_eq!(read.await.expect("joined").expect("read"), 1);
        assert!(store.log_sync().syncs() > syncs);
        // With nothing unsynced, a read returns at once, and a register's snapshot opens.
        assert_eq!(count(&store).await.expect("joined").expect("read"), 1);
        store.register_reader().expect("a snapshot");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_stops_writes_and_reads_until_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store_with_table(&dir).await;
        store
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (1)", [])?))
            .await
            .expect("written");
        store.log_sync().fail_next.store(true, Ordering::SeqCst);
        let failed = store
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (2)", [])?))
            .await;
        assert!(
            matches!(failed, Err(StoreError::LogNotSynced)),
            "{failed:?}"
        );
        // Every later write and read is refused, the register's snapshot too, and the node is
        // not ready.
        let later = store
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (3)", [])?))
            .await;
        assert!(matches!(later, Err(StoreError::LogNotSynced)), "{later:?}");
        let read = count(&store).await.expect("joined");
        assert!(matches!(read, Err(StoreError::LogNotSynced)), "{read:?}");
        assert!(store.register_reader().is_err());
        let ready = store.ping().await;
        assert!(
            matches!(ready, Err(StoreError::TakesNoWrites(_))),
            "{ready:?}"
        );
        // A restart recovers the log from the disk and takes writes again; the write refused
        // after the failure never ran.
        drop(store);
        let store = Arc::new(
            Store::open(&dir.path().join("s.db"), &StoreLimits::for_tests()).expect("reopens"),
        );
        store
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (4)", [])?))
            .await
            .expect("written after the restart");
        let threes = store
            .read(|c| {
                Ok(c.query_row("SELECT COUNT(*) FROM t WHERE x = 3", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .await
            .expect("read");
        assert_eq!(threes, 0);
        store.ping().await.expect("ready");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_closes_syncs_its_last_batch_before_the_log_goes() {
        // The last connection's close checkpoints the log and deletes it; a batch handed to the
        // syncer just before must be synced first, not found without its log (a false alarm).
        let dir = tempfile::tempdir().expect("dir");
        let store = store_with_table(&dir).await;
        let state = store.log_sync();
        let write = a_write_waiting_for_its_sync(&dir, &store).await;
        // Its caller goes away and the store closes while the batch waits for its sync.
        write.abort();
        let _ = write.await;
        drop(store);
        tokio::time::sleep(Duration::from_millis(200)).await;
        state.held.store(false, Ordering::SeqCst);
        let log = dir.path().join("s.db-wal");
        for _ in 0..500 {
            if !log.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!log.exists(), "the store closed and took its log");
        for _ in 0..500 {
            if state.syncs() > 0 || state.failed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!state.failed(), "the last batch's sync found no log");
        assert!(state.syncs() > 0, "the last batch was never synced");
    }

    #[test]
    fn a_log_file_replaced_under_the_syncer_is_not_synced_as_the_log() {
        let dir = tempfile::tempdir().expect("dir");
        let database = dir.path().join("r.db");
        let log = dir.path().join("r.db-wal");
        std::fs::write(&log, b"frames").expect("a log");
        let held = super::LogFile::open(&database).expect("opens");
        held.sync().expect("the log itself syncs");
        // Another file put in its place: a sync of the one held would prove nothing of it.
        let other = dir.path().join("other");
        std::fs::write(&other, b"frames").expect("another file");
        std::fs::rename(&other, &log).expect("replaced");
        let refused = held.sync().expect_err("not the log any more");
        assert!(refused.to_string().contains("replaced"), "{refused}");
        // And a log that is gone is not synced either.
        std::fs::remove_file(&log).expect("removed");
        assert!(held.sync().is_err());
    }
}
