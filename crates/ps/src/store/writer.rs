//! The group-commit writer: one thread, one connection. It takes the first queued write, then
//! whatever else is queued (up to `batch_max`), runs them all inside one transaction, commits
//! once, and hands the batch to the log's syncer (`log_sync.rs`), which answers every caller once
//! the commit is on disk; meanwhile the writer goes on with the next batch.
//!
//! Each write runs bare first, with no savepoint of its own: a savepoint per write costs its
//! two statements (about 4 % of the writer's time under the MPP mix, 2 % of the PS's CPU:
//! docs/benchmarks.md). Writes that fail are rare (the use cases put a
//! refusal inside their answer, not in the error), and one that fails part-way cannot be undone
//! alone: the whole batch is then rolled back and run again, each write in its own savepoint,
//! so that only the failed write's changes are lost. A write may therefore run twice, as on
//! PostgreSQL, where a serialization failure runs it again: a job is `Fn`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::log_sync::{Committed, LogSync, Syncer};
use super::{StoreError, StoreResult};

/// A queued write: run inside the batch's transaction (perhaps twice), then answered after the
/// commit.
pub(super) type Job = Box<dyn Write>;

pub(super) trait Write: Send {
    /// Runs the write inside the batch's transaction; `alone`: in a savepoint of its own, so
    /// that an error rolls back its changes and nothing else. Returns whether it succeeded.
    fn run(&mut self, conn: &Connection, alone: bool) -> bool;
    /// Answers the caller: with the last run's result once the batch's commit is on disk, or
    /// with why it may not count on it.
    fn answer(self: Box<Self>, outcome: Outcome);
}

/// What became of a batch, as its callers are told.
#[derive(Clone, Copy, Debug)]
pub(super) enum Outcome {
    /// Committed and synced: each write's own result.
    Written,
    /// Not committed: nothing of it was written.
    NotWritten,
    /// A sync of the log failed (`log_sync.rs`): whether it is on disk is unknown.
    NotSynced,
}

struct Pending<T, F> {
    write: F,
    result: Option<StoreResult<T>>,
    caller: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: Fn(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection, alone: bool) -> bool {
        let result = if alone {
            in_savepoint(conn, &self.write)
        } else {
            caught(|| (self.write)(conn))
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, outcome: Outcome) {
        let answer = match (outcome, self.result) {
            (Outcome::Written, Some(result)) => result,
            (Outcome::NotSynced, _) => Err(StoreError::LogNotSynced),
            _ => Err(StoreError::CommitFailed),
        };
        // The caller may have gone away (timeout); the write stands either way.
        let _ = self.caller.send(answer);
    }
}

pub(super) fn job<T, F>(f: F) -> (Job, oneshot::Receiver<StoreResult<T>>)
where
    T: Send + 'static,
    F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
{
    let (caller, rx) = oneshot::channel();
    let job = Pending {
        write: f,
        result: None,
        caller,
    };
    (Box::new(job), rx)
}

/// A panicking write is an error of that write, not of the writer.
fn caught<T>(f: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(StoreError::Corrupt("a write panicked".to_owned())),
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl Fn(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let result = caught(|| f(conn));
    match &result {
        Ok(_) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
        }
        // The job's own error is what its caller needs to see; if even the rollback fails, the
        // writer notices that the transaction is gone (see `run_alone`).
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
        }
    }
    result
}

pub(super) fn run(
    conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    batch_max: usize,
    restart_wanted: &AtomicBool,
    writes_failing: &AtomicBool,
    (log_sync, syncer): (&LogSync, Syncer),
) {
    let mut batch = Vec::with_capacity(batch_max);
    // A lasting fault (a full disk) fails every batch: said at once, then once a minute, and
    // its end once.
    let mut lasting = crate::log_sparse::Lasting::default();
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if log_sync.failed() {
            // A sync failed: nothing more is written until a restart (`log_sync.rs`).
            for job in batch.drain(..) {
                job.answer(Outcome::NotSynced);
            }
            continue;
        }
        let changes = conn.total_changes();
        let mut number = None;
        let outcome = commit_batch(&conn, &mut batch, || {
            number = Some(log_sync.begin_commit());
        });
        lasting.note("writing to the database", &outcome);
        // Whether writes with data in them commit, for the readiness check (`Store::ping`): an
        // empty batch (that check's own) says nothing of it.
        let changed = conn.total_changes() != changes;
        match &outcome {
            Err(_) => writes_failing.store(true, Ordering::Relaxed),
            Ok(()) if changed => writes_failing.store(false, Ordering::Relaxed),
            Ok(()) => {}
        }
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(batch_max));
        let handed = syncer.hand(Committed {
            jobs,
            number,
            committed: outcome.is_ok(),
            changed,
        });
        if !handed {
            // The syncer is gone (it never stops first): its callers see their answer dropped.
            break;
        }
        if restart_wanted.swap(false, Ordering::Relaxed) {
            restart_log(&conn);
        }
    }
    syncer.finish();
}

/// Runs the batch in one transaction and commits it; `Err` says why it did not commit. The
/// jobs that were not run, or whose last run failed, are answered with their error or as not
/// written.
/// `committing` is called just before the `COMMIT` (`LogSync::begin_commit`).
fn commit_batch(
    conn: &Connection,
    batch: &mut Vec<Job>,
    committing: impl FnOnce(),
) -> Result<(), String> {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Dropping the jobs drops their answer channels: each caller sees an error.
        batch.clear();
        return Err(format!("cannot begin a write transaction: {e}"));
    }
    let all_ran = batch
        .iter_mut()
        .all(|job| job.run(conn, false) && !conn.is_autocommit());
    if !all_ran {
        // One write failed, perhaps half done: everything again, each write alone.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            batch.clear();
            return Err(format!("cannot begin a write transaction: {e}"));
        }
        run_alone(conn, batch)?;
    }
    committing();
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("the commit of {} writes failed: {e}", batch.len())
    })
}

/// Runs each job of the batch in its own savepoint; `Err` if the transaction was lost on the
/// way (the batch must not commit).
fn run_alone(conn: &Connection, batch: &mut Vec<Job>) -> Result<(), String> {
    for (i, job) in batch.iter_mut().enumerate() {
        job.run(conn, true);
        // Some errors (disk full, I/O) make SQLite roll back the whole transaction. Later jobs
        // would then run outside it and commit on their own, so the batch stops here and
        // every job of it is reported as not written.
        if conn.is_autocommit() {
            // Not run: dropping them tells their callers to retry.
            batch.truncate(i + 1);
            return Err(
                "SQLite rolled back the write transaction; the batch is abandoned".to_owned(),
            );
        }
    }
    Ok(())
}

/// How long a restart of the log may wait for readers before it is left for later.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// The checkpointer found the log past its bound: a complete checkpoint, after which the next
/// commit writes the log from its start. Between batches, so no write waits for the write lock
/// but the ones queued meanwhile; the passive checkpoints have copied most pages already.
fn restart_log(conn: &Connection) {
    // A reader may hold the log's end for long (a register of a million rows): then give up
    // soon and let the checkpointer ask again, rather than hold every write back.
    let _ = conn.busy_timeout(RESTART_WAIT);
    let outcome = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    });
    let _ = conn.busy_timeout(super::BUSY_TIMEOUT);
    match outcome {
        Ok((0, log_frames)) => tracing::debug!(log_frames, "the log restarts"),
        // Busy: a reader still uses the log's end; the checkpointer asks again.
        Ok((_, log_frames)) => tracing::debug!(log_frames, "the log could not restart yet"),
        Err(e) => tracing::warn!(error = %e, "full checkpoint failed; will retry"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rusqlite::Connection;

    use super::super::{Store, StoreError, StoreLimits, StoreResult};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_and_a_slow_commit_say_retry() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = StoreLimits {
            write_queue_max: 1,
            write_batch_max: 1,
            write_wait_ms: 100,
            ..StoreLimits::for_tests()
        };
        let store = Arc::new(Store::open(&dir.path().join("q.db"), &limits).expect("opens"));
        store
            .write(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .expect("table");
        // The writer is busy for 400 ms with the first write ...
        let slow = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(|c| {
                        std::thread::sleep(std::time::Duration::from_millis(400));
                        Ok(c.execute("INSERT INTO t VALUES (1)", [])?)
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // ... the second fills the queue, the third finds it full at once.
        let queued = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(|c| Ok(c.execute("INSERT INTO t VALUES (2)", [])?))
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let full = store
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (3)", [])?))
            .await;
        assert!(matches!(full, Err(StoreError::Overloaded)), "{full:?}");
        // The slow write outlived its caller's 100 ms: the caller is told to retry ...
        assert!(matches!(
            slow.await.expect("joined"),
            Err(StoreError::Overloaded)
        ));
        let _ = queued.await.expect("joined");
        // ... but it commits, as the docs say: retries must be idempotent.
        let mut rows = 0;
        for _ in 0..500 {
            rows = store
                .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t WHERE x = 1", [], |r| r.get(0))?))
                .await
                .expect("read");
            if rows > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(rows, 1);
    }

    /// What the log file did over some rounds of writes.
    #[derive(Default)]
    struct LogSizes {
        /// The largest size seen after a round.
        largest: u64,
        /// The size after the last round.
        last: u64,
        /// How many times the file was shorter after a round than after the one before: each is
        /// a restart of the log that cut it back to `journal_size_limit`.
        cuts: usize,
    }

    /// Writes `rounds` rounds of 32 concurrent writes of 8 rows of 3,000 bytes each (about 770
    /// KB a round, some 190 log frames), and tells what the log file's size did meanwhile.
    async fn write_rounds(store: &Arc<Store>, log: &std::path::Path, rounds: usize) -> LogSizes {
        let mut sizes = LogSizes {
            last: std::fs::metadata(log).map_or(0, |m| m.len()),
            ..LogSizes::default()
        };
        for _ in 0..rounds {
            let mut writes = Vec::new();
            for _ in 0..32 {
                let store = store.clone();
                writes.push(tokio::spawn(async move {
                    store
                        .write(|c| {
                            for _ in 0..8 {
                                c.execute("INSERT INTO t VALUES (1, randomblob(3000))", [])?;
                            }
                            Ok(())
                        })
                        .await
                }));
            }
            for write in writes {
                // Within its deadline, every time: a restart of the log never holds writes back
                // for long, whoever reads.
                write.await.expect("joined").expect("written in time");
            }
            let size = std::fs::metadata(log).map_or(0, |m| m.len());
            if size < sizes.last {
                sizes.cuts += 1;
            }
            sizes.largest = sizes.largest.max(size);
            sizes.last = size;
        }
        sizes
    }

    // Timing decides how far the log runs ahead between two restarts (the checkpointer looks
    // every 250 ms, and on a busy machine later), so this test counts restarts rather than
    // bytes: a log that is never restarted grows by every byte written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_stays_bounded_under_sustained_writes_even_past_a_long_reader() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("log.db");
        let log = dir.path().join("log.db-wal");
        let limits = StoreLimits {
            write_wait_ms: 2_000,
            ..limits()
        };
        let store = Arc::new(Store::open(&path, &limits).expect("opens"));
        store
            .write(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER, pad BLOB)")?))
            .await
            .expect("table");
        // 300 rounds: about 230 MB through the log, over 200 times the frames past which the
        // writer restarts it. Each restart cuts the file back, so it never holds all of it.
        let sustained = write_rounds(&store, &log, 300).await;
        let written = 300 * 32 * 8 * 3_000;
        assert!(
            sustained.cuts >= 2 && sustained.largest < written / 2,
            "the log was cut back {} times and grew to {} bytes of the {written} written",
            sustained.cuts,
            sustained.largest
        );

        // A reader that holds its snapshot (a register of a million rows) keeps the log from
        // restarting; the writer gives up on the restart after a moment each time it is asked,
        // so writes go on within their deadline (`write_rounds` checks each) ...
        let reader = rusqlite::Connection::open(&path).expect("a reader");
        reader.execute_batch("BEGIN").expect("begin");
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("a snapshot");
        let held = write_rounds(&store, &log, 40).await;
        // (One restart may still land first if the reader took its snapshot from the database
        // file alone; from then on it holds the log.)
        assert!(
            held.cuts <= 1,
            "the log restarted under a reader's snapshot"
        );
        // ... and once it has gone, the log restarts and is cut back again.
        reader.execute_batch("COMMIT").expect("end the snapshot");
        drop(reader);
        let kept = u64::try_from(super::super::WAL_BYTES_KEPT).expect("positive");
        let mut after = LogSizes::default();
        // One round at a time: the round in which the log restarts ends with the file cut back.
        for _ in 0..500 {
            after = write_rounds(&store, &log, 1).await;
            if after.cuts > 0 && after.last <= 2 * kept {
                break;
            }
        }
        eprintln!(
            "log: largest {} bytes under sustained writes ({} cuts), {} under the reader, {} after it left",
            sustained.largest, sustained.cuts, held.largest, after.last
        );
        assert!(
            after.cuts > 0 && after.last <= 2 * kept,
            "the log stayed at {} bytes after the reader left",
            after.last
        );
    }

    /// A store in a fresh file with one table `t (x INTEGER)`; the folder goes with the guard.
    async fn store_with_table() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(Store::open(&dir.path().join("w.db"), &limits()).expect("opens"));
        store
            .write(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .expect("table");
        (dir, store)
    }

    fn limits() -> StoreLimits {
        StoreLimits {
            write_queue_max: 100,
            write_batch_max: 100,
            write_wait_ms: 5_000,
            ..StoreLimits::for_tests()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_all_succeed_run_once_and_a_failure_runs_its_batch_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (_dir, store) = store_with_table().await;
        let runs = Arc::new(AtomicUsize::new(0));
        let concurrent = |fail: Option<i64>| {
            (0..20i64)
                .map(|x| {
                    let (store, runs) = (store.clone(), runs.clone());
                    tokio::spawn(async move {
                        store
                            .write(move |c| {
                                runs.fetch_add(1, Ordering::Relaxed);
                                c.execute("INSERT INTO t VALUES (?1)", [x])?;
                                match fail {
                                    Some(f) if f == x => {
                                        Err(StoreError::Corrupt("refused".to_owned()))
                                    }
                                    _ => Ok(()),
                                }
                            })
                            .await
                    })
                })
                .collect::<Vec<_>>()
        };
        for task in concurrent(None) {
            task.await.expect("joined").expect("written");
        }
        assert_eq!(runs.swap(0, Ordering::Relaxed), 20, "each write ran once");
        let mut refused = 0;
        for task in concurrent(Some(7)) {
            refused += usize::from(task.await.expect("joined").is_err());
        }
        assert_eq!(refused, 1);
        // The failed write's batch ran again: more runs than writes, but every write that
        // succeeded is there once, and the failed one not at all.
        assert!(runs.load(Ordering::Relaxed) > 20);
        let count = |x: i64| {
            let store = store.clone();
            async move {
                store
                    .read(move |c| {
                        Ok(
                            c.query_row("SELECT COUNT(*) FROM t WHERE x = ?1", [x], |r| {
                                r.get::<_, i64>(0)
                            })?,
                        )
                    })
                    .await
                    .expect("read")
            }
        };
        assert_eq!(count(7).await, 1, "only the first round's 7");
        for x in (0..20).filter(|x| *x != 7) {
            assert_eq!(count(x).await, 2, "{x}: once per round");
        }
    }

    #[tokio::test]
    async fn the_writer_commits_in_wal_and_every_answered_write_was_synced() {
        // A crash test kills the process, not the machine, so only this shows that the log is
        // synced before each answer: the writer's connection leaves the sync to its syncer
        // (synchronous = NORMAL, 1), which syncs once per group of batches before it answers.
        let (_dir, store) = store_with_table().await;
        let (synchronous, journal, foreign_keys) = store
            .write(|c| {
                let int = |name: &str| c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0));
                let journal: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                Ok((int("synchronous")?, journal, int("foreign_keys")?))
            })
            .await
            .expect("read on the writer's connection");
        assert_eq!(
            (synchronous, journal.as_str(), foreign_keys),
            (1i64, "wal", 1i64)
        );
        for x in 0..5 {
            let before = store.log_sync().syncs();
            store
                .write(move |c| Ok(c.execute("INSERT INTO t VALUES (?1)", [x])?))
                .await
                .expect("written");
            assert!(
                store.log_sync().syncs() > before,
                "write {x} answered unsynced"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_reports_no_write_that_was_not_kept_and_keeps_none_it_refused() {
        // SQLITE_FULL may roll back the whole transaction under the batch (`run_alone`): then
        // no job of it may be told it was written, and none told otherwise may be on disk.
        let (_dir, store) = store_with_table().await;
        let pages: i64 = store
            .write(|c| Ok(c.query_row("PRAGMA page_count", [], |r| r.get(0))?))
            .await
            .expect("pages");
        let cap = move |max: i64| {
            move |c: &Connection| -> StoreResult<i64> {
                Ok(c.query_row(&format!("PRAGMA max_page_count = {max}"), [], |r| r.get(0))?)
            }
        };
        store.write(cap(pages + 3)).await.expect("capped");
        let tasks: Vec<_> = (0..40i64)
            .map(|x| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .write(move |c| {
                            c.execute("INSERT INTO t VALUES (?1)", [x])?;
                            c.execute("INSERT INTO t VALUES (zeroblob(3000))", [])?;
                            Ok(x)
                        })
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("joined"));
        }
        store.write(cap(1 << 30)).await.expect("uncapped");
        let kept: Vec<i64> = store
            .read(|c| {
                let mut stmt =
                    c.prepare("SELECT x FROM t WHERE typeof(x) = 'integer' ORDER BY x")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .expect("read");
        let told: Vec<i64> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok().copied())
            .collect();
        assert!(told.len() < 40, "the cap was never reached");
        assert_eq!(
            kept, told,
            "each write on disk if and only if it was told so"
        );
        store
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (1000)", [])?))
            .await
            .expect("the writer goes on after the disk has room again");
    }

    #[tokio::test]
    async fn after_writes_that_do_not_commit_the_readiness_check_writes_for_real() {
        // A commit refused (here a deferred foreign key; on a full disk, the log's growth) marks
        // the store: its readiness check then writes a page, and fails while writes fail. The
        // check waits past the lock's own wait (5 s), so that it sees the writer fail rather
        // than give up first ("busy": ready).
        let dir = tempfile::tempdir().expect("dir");
        let patient = StoreLimits {
            write_wait_ms: 15_000,
            ..limits()
        };
        let store = Arc::new(Store::open(&dir.path().join("w.db"), &patient).expect("opens"));
        store
            .write(|c| {
                Ok(c.execute_batch(
                    "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                     CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
                )?)
            })
            .await
            .expect("tables");
        store.ping().await.expect("ready");
        let refused = store
            .write(|c| Ok(c.execute("INSERT INTO child VALUES (42)", [])?))
            .await;
        assert!(
            matches!(refused, Err(StoreError::CommitFailed)),
            "{refused:?}"
        );
        // While no write can go through (another process holds the write lock here), the check
        // fails, saying so.
        let other = Connection::open(dir.path().join("w.db")).expect("another connection");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("the write lock");
        let ping = store.ping().await;
        assert!(
            matches!(ping, Err(StoreError::TakesNoWrites(_))),
            "{ping:?}"
        );
        // Writes go through again: ready, and the next checks are the empty write again.
        other.execute_batch("COMMIT").expect("released");
        store.ping().await.expect("ready again");
        store.ping().await.expect("still ready");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_write_does_not_take_its_batch_down() {
        let (_dir, store) = store_with_table().await;
        let mut tasks = Vec::new();
        for x in 0..30i64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .write(move |c| {
                        c.execute("INSERT INTO t VALUES (?1)", [x])?;
                        match x % 3 {
                            0 => Ok(x),
                            1 => Err(StoreError::Corrupt("refused".to_owned())),
                            _ => panic!("a bug in write {x}"),
                        }
                    })
                    .await
            }));
        }
        for (x, task) in tasks.into_iter().enumerate() {
            let result = task.await.expect("joined");
            assert_eq!(result.is_ok(), x % 3 == 0, "write {x}: {result:?}");
        }
        let kept: Vec<i64> = store
            .read(|c| {
                let mut stmt = c.prepare("SELECT x FROM t ORDER BY x")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .expect("read");
        assert_eq!(kept, (0..30).filter(|x| x % 3 == 0).collect::<Vec<_>>());
    }
}
