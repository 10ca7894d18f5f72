//! Durable notifyPayment: no customer stays debited because a request was cancelled or the MPP
//! restarted while the PS was being told.
//!
//! Awaiting notifyPayment inside the app's request handler loses the retry loop when the phone
//! disconnects (the handler's future is dropped) or the process stops: the customer stays
//! debited while the PS shows `Wait`, and the purchase expires there. Instead:
//!
//! 1. Record the debit and a [`Notification`] together: [`record`] inside the bank's own SQLite
//!    transaction, or — when the ledger is elsewhere (PostgreSQL, a core-banking system) —
//!    [`PendingStore::add`] *before* the debit, with the notification's id as the debit's
//!    idempotency key.
//! 2. A [`Driver`] takes every pending notification to the PS's final answer: one attempt at a
//!    time, "not known yet" (no answer, HTTP 5xx, `UNKNOWN_EXCEPTION`, and whatever is not the
//!    PS's word on the payment: [`crate::Unanswered`]) retried with backoff under
//!    the same X-Request-ID (DECISIONS 18), each attempt and its reason recorded in the row, so a
//!    cancelled task, a crash or a restart resumes where it was.
//! 3. The PS's final answer is recorded in the row first, then the driver calls the bank's
//!    [`Settle`] with an [`Outcome`]: [`Outcome::Keep`] (the PS confirmed) or
//!    [`Outcome::Reverse`] (the PS refused, the confirmation window passed, or the verdict was
//!    not SUCCESS). Only after `settle` returns `Ok` is the notification settled.
//!
//! What each pattern guarantees:
//! - **Ledger in the kit's SQLite file** (debit and [`record`] in one transaction): a debit exists
//!   if and only if its notification does; every notification reaches a final answer; `settle`
//!   is called with one outcome per id — the same outcome if it is called again after a crash
//!   between `settle` and the row's update. Make `settle` a no-op when already applied (a
//!   conditional `UPDATE … WHERE status = 'debited'` does it), and exactly-once holds.
//! - **Ledger elsewhere** ([`PendingStore::add`], then the debit keyed by the notification's id):
//!   `settle` is at least once per id, always with the same outcome, and must converge: `Keep`
//!   means "the debit for this id stands" (make it if a crash came between `add` and the debit),
//!   `Reverse` means "no debit for this id stands" (give it back if it was made, nothing if not).
//!   With the id as the idempotency key on the ledger, the whole is exactly once.
//!
//! The driver never decides on its own: a failure of the bank's systems or a setup mistake is
//! retried (and logged), never turned into a reversal, because the PS may have confirmed already.
//!
//! **Time.** Leases and retry times are read from a [`Clock`]: the system's by default; a test
//! gives [`PendingStore::with_clock`] a [`ManualClock`] and crosses an hour's lease or backoff
//! with [`ManualClock::advance`] instead of waiting for it. The driver re-reads the clock at least
//! every `poll_interval_ms`, so a moved clock is seen within one poll.

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{Mutex, Semaphore};
use tolem_wire::Locale;
use tolem_wire::mpp::{NotifyPaymentRequest, NotifyPaymentResponse, ResultBody, ResultCode};

use crate::{MppClient, Outcome as CallOutcome, RequestId, RetryPolicy};

/// Longest notification id: it is sent as the X-Request-ID (DECISIONS 9).
pub const ID_LEN_MAX: usize = 64;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tolem_pending_notifications (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    locale TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'answered', 'settled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at_ms INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    answer TEXT,
    created_at_ms INTEGER NOT NULL,
    settled_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS tolem_pending_due ON tolem_pending_notifications (state, due_at_ms)";

/// A notifyPayment the MPP owes the PS. Its `id` is the X-Request-ID of every attempt and the
/// idempotency key of the bank's [`Settle`].
#[derive(Clone, Debug)]
pub struct Notification {
    /// 1–[`ID_LEN_MAX`] characters, unique per payment, the same after a restart.
    pub id: String,
    /// What the PS is told: the verdict (`result`) and the payment.
    pub request: NotifyPaymentRequest,
    /// The `X-Locale` of the calls (the language of the PS's messages and receipt).
    pub locale: Locale,
}

impl Notification {
    /// A notification whose id is derived from the payment's `mppPaymentId`, so that it is the
    /// same after a restart and distinct mppPaymentIds never share one:
    /// - `notify-<mppPaymentId>` when that is at most [`ID_LEN_MAX`]
    ///   visible ASCII characters, an X-Request-ID of DECISIONS 9 that reads the same in every
    ///   log (an mppPaymentId of up to 57 such characters);
    /// - otherwise the SHA-256 of the mppPaymentId's UTF-8 bytes in 64 lower-case hex digits
    ///   (a longer one, or one with spaces or letters beyond ASCII such as `Платёж-7`). Such an
    ///   id never starts with `notify-`, so the two forms never meet.
    pub fn new(request: NotifyPaymentRequest, locale: Locale) -> Notification {
        let id = Notification::id_of(&request.payment.mpp_payment_id);
        Notification {
            id,
            request,
            locale,
        }
    }

    /// The id [`Notification::new`] gives the notification of `mpp_payment_id`.
    pub fn id_of(mpp_payment_id: &str) -> String {
        let readable = format!("notify-{mpp_payment_id}");
        if is_valid_id(&readable) {
            readable
        } else {
            Sha256::digest(mpp_payment_id.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
    }

    /// True when the MPP's verdict is SUCCESS (the customer was debited).
    pub fn is_payment(&self) -> bool {
        self.request.result.code() == Some(ResultCode::Success)
    }
}

/// What the bank does with the debit once the PS has answered for good.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The PS confirmed the payment: keep the debit.
    Keep {
        /// The receipt link (no locale, DECISIONS 35).
        link_receipt: Option<String>,
    },
    /// The PS did not confirm it (a refusal, `canConfirmUntil` passed, or the verdict was not
    /// SUCCESS, as for CANCELLED_BY_CLIENT): give back the debit of this notification's id if
    /// there is one. Its `result` is the PS's answer as it came: SUCCESS too, for a verdict other
    /// than SUCCESS on a payment the PS had confirmed on an earlier request made outside the kit
    /// — so reverse by the notification's id, never by the payment.
    Reverse {
        /// The PS's answer.
        result: ResultBody,
    },
}

impl Outcome {
    /// The outcome of the PS's final answer to `notification`.
    fn of(notification: &Notification, answer: &NotifyPaymentResponse) -> Outcome {
        if notification.is_payment() && answer.result.code() == Some(ResultCode::Success) {
            Outcome::Keep {
                link_receipt: answer.link_receipt.clone(),
            }
        } else {
            Outcome::Reverse {
                result: answer.result.clone(),
            }
        }
    }

    /// The PS's result code: `SUCCESS` for [`Outcome::Keep`].
    pub fn result_code(&self) -> &str {
        match self {
            Outcome::Keep { .. } => ResultCode::Success.as_str(),
            Outcome::Reverse { result } => &result.result_code,
        }
    }
}

/// A failure of the bank's own systems while settling: the driver retries later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettleError(String);

impl SettleError {
    /// A failure described by `why`.
    pub fn new(why: impl std::fmt::Display) -> SettleError {
        SettleError(why.to_string())
    }
}

/// The bank's side of a final answer: keep or reverse the debit of `notification.id`.
///
/// Called at least once per settled notification, always with the same outcome; it must be
/// idempotent by `notification.id` (see the module's guarantees).
pub trait Settle: Send + Sync + 'static {
    /// Applies `outcome` to the debit of `notification`.
    fn settle(
        &self,
        notification: &Notification,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<(), SettleError>> + Send;
}

/// Why the kit's own record could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PendingError {
    /// The SQLite database failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The notification's id is empty or longer than [`ID_LEN_MAX`], or has a character that
    /// cannot be a header value.
    #[error("a notification id must be 1–{ID_LEN_MAX} visible ASCII characters: {0:?}")]
    InvalidId(String),
    /// Another notification for the same payment is recorded: with another id, or with this id
    /// and another request (another verdict, amount or customer).
    #[error("payment {0} already has another notification")]
    Conflict(String),
    /// A stored row could not be read back (written by a newer version?).
    #[error("stored notification {0} is unreadable: {1}")]
    Unreadable(String, String),
    /// The blocking database task stopped.
    #[error("database task: {0}")]
    Task(String),
}

/// Records `notification` inside the bank's transaction `tx`, which also holds the debit: both
/// commit or neither does. Recording the same notification again changes nothing; another one
/// for the same payment (another id, or this id with another request) is
/// [`PendingError::Conflict`], so that the transaction with its debit is rolled back. The notification is due
/// at once, whatever the driver's [`Clock`] says; its creation time is the system's.
pub fn record(
    tx: &rusqlite::Transaction<'_>,
    notification: &Notification,
) -> Result<(), PendingError> {
    tx.execute_batch(SCHEMA)?;
    insert(tx, notification, now_ms(&SystemClock))
}

/// Creates the kit's table in the bank's database if it is not there (also done by [`record`]
/// and on a [`PendingStore`]'s first use).
pub fn create_table(conn: &Connection) -> Result<(), PendingError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// 1–[`ID_LEN_MAX`] visible ASCII characters: the kit's own ids, a part of the X-Request-IDs the
/// PS takes (DECISIONS 9 takes any 1–64 characters but control ones) that reads the same in
/// every log.
fn is_valid_id(id: &str) -> bool {
    (1..=ID_LEN_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

fn insert(conn: &Connection, n: &Notification, now: i64) -> Result<(), PendingError> {
    if !is_valid_id(&n.id) {
        return Err(PendingError::InvalidId(n.id.clone()));
    }
    let request = serde_json::to_string(&n.request)
        .map_err(|e| PendingError::Unreadable(n.id.clone(), e.to_string()))?;
    let existing: Option<(String, String)> = conn
        .query_row(
            "SELECT id, request FROM tolem_pending_notifications WHERE payment_id = ?1",
            [&n.request.payment.payment_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match existing {
        // The same notification again (a transaction retried): nothing to do. The same id with
        // another verdict or amount is not: a debit recorded with it would never be settled.
        Some((id, stored)) if id == n.id && stored == request => Ok(()),
        Some(_) => Err(PendingError::Conflict(n.request.payment.payment_id.clone())),
        None => {
            // Due at once (0): a clock set in the past by a test must not hold a new one back.
            conn.execute(
                "INSERT INTO tolem_pending_notifications (id, payment_id, request, locale, state, due_at_ms, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5)",
                params![n.id, n.request.payment.payment_id, request, n.locale.code(), now],
            )?;
            Ok(())
        }
    }
}

/// The kit's record of pending notifications, in a SQLite file of its own or in the bank's.
#[derive(Clone)]
pub struct PendingStore {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    /// Set once the kit's table is known to exist in the shared file.
    table_ready: Arc<std::sync::atomic::AtomicBool>,
}

/// Where a notification stands, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Not answered for good yet; `attempts` so far, the last one's reason if it failed.
    Pending {
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt did not end it.
        last_error: Option<String>,
    },
    /// The PS answered for good; the bank's `settle` has not returned yet.
    Answered(Outcome),
    /// Settled: the bank applied this outcome.
    Settled(Outcome),
}

impl PendingStore {
    /// Opens (creating) a database file of the kit's own.
    pub fn open(path: &Path) -> Result<PendingStore, PendingError> {
        crate::create_private_database(path);
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(PendingStore::with_connection(Arc::new(Mutex::new(conn))))
    }

    /// Uses the bank's connection (its ledger's), so that [`record`] and the driver's updates
    /// go to the same file. The kit's table is created on first use.
    pub fn with_connection(conn: Arc<Mutex<Connection>>) -> PendingStore {
        PendingStore {
            conn,
            clock: Arc::new(SystemClock),
            table_ready: Arc::default(),
        }
    }

    /// Reads time from `clock` instead of the system's: leases, retry times and the records'
    /// timestamps, for this store and the [`Driver`]s on it. Tests use a [`ManualClock`].
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> PendingStore {
        self.clock = clock;
        self
    }

    /// The shared connection.
    pub fn connection(&self) -> Arc<Mutex<Connection>> {
        self.conn.clone()
    }

    /// Records `notification` in its own transaction (a ledger outside this file): call it
    /// *before* debiting, and debit with `notification.id` as the idempotency key.
    pub async fn add(&self, notification: Notification) -> Result<(), PendingError> {
        let now = now_ms(self.clock.as_ref());
        self.db(move |conn| insert(conn, &notification, now)).await
    }

    /// Where the notification `id` stands, if recorded.
    pub async fn state(&self, id: &str) -> Result<Option<State>, PendingError> {
        let id = id.to_owned();
        self.db(move |conn| {
            let row = conn
                .query_row(
                    "SELECT request, locale, state, attempts, last_error, answer FROM tolem_pending_notifications WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, u32>(3)?, r.get(4)?, r.get::<_, Option<String>>(5)?)),
                )
                .optional()?;
            let Some((request, locale, state, attempts, last_error, answer)) = row else {
                return Ok(None);
            };
            if state == "pending" {
                return Ok(Some(State::Pending { attempts, last_error }));
            }
            let n = notification(&id, &request, &locale)?;
            let outcome = Outcome::of(&n, &parse_answer(&id, answer.as_deref())?);
            Ok(Some(if state == "settled" { State::Settled(outcome) } else { State::Answered(outcome) }))
        })
        .await
    }

    /// Ids of notifications not settled yet.
    pub async fn unsettled(&self) -> Result<Vec<String>, PendingError> {
        self.db(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id FROM tolem_pending_notifications WHERE state != 'settled' ORDER BY due_at_ms, created_at_ms",
            )?;
            let ids = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
        .await
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, PendingError> + Send + 'static,
    ) -> Result<T, PendingError> {
        let guard = self.conn.clone().lock_owned().await;
        let table_ready = self.table_ready.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            if !table_ready.load(std::sync::atomic::Ordering::Acquire) {
                guard.execute_batch(SCHEMA)?;
                table_ready.store(true, std::sync::atomic::Ordering::Release);
            }
            f(&mut guard)
        })
        .await
        .map_err(|e| PendingError::Task(e.to_string()))?
    }
}

fn notification(id: &str, request: &str, locale: &str) -> Result<Notification, PendingError> {
    let request = serde_json::from_str(request)
        .map_err(|e| PendingError::Unreadable(id.to_owned(), e.to_string()))?;
    Ok(Notification {
        id: id.to_owned(),
        request,
        locale: Locale::from_code(locale).unwrap_or_default(),
    })
}

fn parse_answer(id: &str, answer: Option<&str>) -> Result<NotifyPaymentResponse, PendingError> {
    answer
        .ok_or_else(|| PendingError::Unreadable(id.to_owned(), "no answer".to_owned()))
        .and_then(|a| {
            serde_json::from_str(a)
                .map_err(|e| PendingError::Unreadable(id.to_owned(), e.to_string()))
        })
}

/// Where the kit reads the time: leases and retry times of pending notifications.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's clock, the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told: a test sets it and crosses a lease or a backoff without
/// waiting. Share it as `Arc<ManualClock>` (an `Arc<dyn Clock>` for
/// [`PendingStore::with_clock`]) and keep a handle to move it.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<SystemTime>);

impl ManualClock {
    /// A clock standing at `now`.
    pub fn new(now: SystemTime) -> ManualClock {
        ManualClock(std::sync::Mutex::new(now))
    }

    /// Sets the time.
    pub fn set(&self, now: SystemTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.checked_add(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Milliseconds since the Unix epoch on `clock` (0 before it), the records' unit.
fn now_ms(clock: &dyn Clock) -> i64 {
    clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Settlements announced to waiters but not yet read; a waiter that falls behind reads the
/// record instead.
const SETTLED_QUEUE_MAX: usize = 256;

/// Limits of a [`Driver`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DriverConfig {
    /// Backoff between attempts of one notification (its `attempts_max` is ignored: the driver
    /// goes on until the PS answers, as SPEC 4.3 asks).
    pub retry: RetryPolicy,
    /// How long a claimed notification is reserved for this driver; another process may take
    /// it over after that (its owner crashed). Longer than one attempt (`REQUEST_TIMEOUT_MS`).
    pub lease_ms: u64,
    /// Notifications worked on at once.
    pub concurrency_max: usize,
    /// How often [`Driver::run`] looks for due notifications when not woken.
    pub poll_interval_ms: u64,
    /// Age of a notification after which each failed attempt is logged at WARN instead of
    /// INFO (default 60 000 ms, the PS's confirmation window, DECISIONS 16): a customer is
    /// debited and the PS has not answered for that long.
    pub warn_after_ms: u64,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            retry: RetryPolicy::default(),
            lease_ms: crate::REQUEST_TIMEOUT_MS_DEFAULT * 3,
            concurrency_max: 16,
            poll_interval_ms: 1_000,
            warn_after_ms: 60_000,
        }
    }
}

impl DriverConfig {
    /// The default limits with another backoff and lease (tests use short ones).
    pub fn new(retry: RetryPolicy, lease_ms: u64) -> DriverConfig {
        DriverConfig {
            retry,
            lease_ms,
            ..DriverConfig::default()
        }
    }
}

/// Takes pending notifications to a final answer and settles them. Cheap to clone; clones share
/// their work, so one notification is worked on by one task of a process at a time.
pub struct Driver<S: Settle> {
    inner: Arc<Inner<S>>,
}

impl<S: Settle> Clone for Driver<S> {
    fn clone(&self) -> Driver<S> {
        Driver {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    store: PendingStore,
    client: MppClient,
    settle: S,
    config: DriverConfig,
    /// This driver's name in leases: another process's driver leaves its claims alone.
    owner: String,
    in_flight: std::sync::Mutex<HashSet<String>>,
    permits: Semaphore,
    /// Ids as they are settled, for [`Driver::finish`].
    settled: tokio::sync::broadcast::Sender<String>,
}

/// What one step of a notification did.
enum Step {
    Settled(Outcome),
    Again,
    /// Someone else holds it, or it is gone.
    NotMine,
}

impl<S: Settle> Driver<S> {
    /// A driver of `store`'s notifications, telling the PS through `client`.
    pub fn new(
        store: PendingStore,
        client: MppClient,
        settle: S,
        config: DriverConfig,
    ) -> Driver<S> {
        let permits = Semaphore::new(config.concurrency_max.max(1));
        Driver {
            inner: Arc::new(Inner {
                store,
                client,
                settle,
                config,
                owner: uuid::Uuid::new_v4().simple().to_string(),
                in_flight: std::sync::Mutex::default(),
                permits,
                settled: tokio::sync::broadcast::channel(SETTLED_QUEUE_MAX).0,
            }),
        }
    }

    /// The store this driver works on.
    pub fn store(&self) -> &PendingStore {
        &self.inner.store
    }

    /// Works on every pending notification until dropped (or its task aborted, which also
    /// stops the tasks it started): start it once at start-up
    /// (`tokio::spawn(driver.clone().run())`); it resumes what an earlier run left.
    pub async fn run(self) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            match self.inner.store.unsettled().await {
                Ok(ids) => {
                    for id in ids {
                        let busy = self
                            .inner
                            .in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .contains(&id);
                        if !busy {
                            let driver = self.clone();
                            tasks.spawn(async move {
                                if let Err(e) = driver.drive(&id).await {
                                    tracing::error!(error = %e, id, "cannot drive a pending notification");
                                }
                            });
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read pending notifications"),
            }
            let poll = Duration::from_millis(self.inner.config.poll_interval_ms);
            tokio::time::sleep(poll).await;
        }
    }

    /// Starts driving notification `id` in a task of its own, so that it goes on whatever
    /// happens to the caller (a dropped request, a closed connection).
    pub fn spawn(&self, id: String) {
        let driver = self.clone();
        tokio::spawn(async move {
            if let Err(e) = driver.drive(&id).await {
                tracing::error!(error = %e, id, "cannot drive a pending notification");
            }
        });
    }

    /// Starts driving notification `id` ([`Driver::spawn`]) and waits up to `wait` for its
    /// outcome: `None` when it is not settled by then — it goes on in the background, and the
    /// app shows the payment as being processed. Call it right after committing the debit.
    pub async fn finish(&self, id: &str, wait: Duration) -> Result<Option<Outcome>, PendingError> {
        let mut settled = self.inner.settled.subscribe();
        self.spawn(id.to_owned());
        let waited = tokio::time::timeout(wait, async {
            loop {
                match settled.recv().await {
                    Ok(done) if done == id => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
        .await;
        let _ = waited;
        // The record decides, also when it was settled by another task or process.
        match self.inner.store.state(id).await? {
            Some(State::Settled(outcome)) => Ok(Some(outcome)),
            _ => Ok(None),
        }
    }

    /// Drives notification `id` to the end in this task and gives its outcome (`None` when this
    /// process already drives it in another task, or it is not recorded). Cancelling it is
    /// safe: the next [`Driver::run`] or [`Driver::spawn`] resumes from the record.
    pub async fn drive(&self, id: &str) -> Result<Option<Outcome>, PendingError> {
        {
            let mut in_flight = self
                .inner
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !in_flight.insert(id.to_owned()) {
                return Ok(None);
            }
        }
        let _release = InFlight(self, id.to_owned());
        loop {
            // A notification taken over from an earlier run waits for its recorded due time, on
            // the store's clock: it is read again at least every poll, so a clock moved forward
            // (a test's) is seen without waiting out the whole delay.
            let poll = Duration::from_millis(self.inner.config.poll_interval_ms);
            let due = self.due_in(id).await.unwrap_or(poll);
            if !due.is_zero() {
                tokio::time::sleep(due.min(poll)).await;
                continue;
            }
            let step = {
                let _permit = self.inner.permits.acquire().await;
                self.step(id).await
            };
            match step {
                Ok(Step::Settled(outcome)) => {
                    // Nobody listening is fine: waiters also read the record.
                    let _ = self.inner.settled.send(id.to_owned());
                    return Ok(Some(outcome));
                }
                Ok(Step::NotMine) => match self.inner.store.state(id).await? {
                    Some(State::Settled(outcome)) => return Ok(Some(outcome)),
                    None => return Ok(None),
                    // Another process holds the lease: take over if it lapses (its owner died).
                    Some(_) => {
                        let poll = Duration::from_millis(self.inner.config.poll_interval_ms);
                        tokio::time::sleep(poll).await;
                    }
                },
                Ok(Step::Again) => {}
                Err(e) => {
                    tracing::error!(error = %e, id, "pending notification: the record failed; retrying");
                    let poll = Duration::from_millis(self.inner.config.poll_interval_ms);
                    tokio::time::sleep(poll).await;
                }
            }
        }
    }

    async fn due_in(&self, id: &str) -> Result<Duration, PendingError> {
        let id = id.to_owned();
        let due: Option<i64> = self
            .inner
            .store
            .db(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT due_at_ms FROM tolem_pending_notifications WHERE id = ?1",
                        [&id],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await?;
        let now = now_ms(self.inner.store.clock.as_ref());
        let wait = due.map_or(0, |due| due.saturating_sub(now).max(0));
        Ok(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
    }

    /// Claims the notification (a lease, one short transaction), then one attempt or the
    /// settlement outside any transaction, then records what happened (a second one).
    async fn step(&self, id: &str) -> Result<Step, PendingError> {
        let Some((n, answer)) = self.claim(id).await? else {
            return Ok(Step::NotMine);
        };
        let answer = match answer {
            Some(answer) => answer,
            None => match notify(&self.inner.client, &n).await {
                Attempt::Final(answer) => self.answered(&n.id, &answer).await?,
                Attempt::Again { why, retry_after } => {
                    self.failed(&n.id, &why, Failed::Notify { retry_after })
                        .await?;
                    return Ok(Step::Again);
                }
            },
        };
        let outcome = Outcome::of(&n, &answer);
        if let Err(e) = self.inner.settle.settle(&n, &outcome).await {
            tracing::warn!(error = %e, id = n.id, "the bank could not settle a notification; retrying");
            self.failed(&n.id, &format!("settle: {e}"), Failed::Settle)
                .await?;
            return Ok(Step::Again);
        }
        let id = n.id.clone();
        let now = now_ms(self.inner.store.clock.as_ref());
        self.inner
            .store
            .db(move |conn| {
                conn.execute(
                    "UPDATE tolem_pending_notifications SET state = 'settled', settled_at_ms = ?2, lease_owner = NULL, lease_until_ms = 0 WHERE id = ?1",
                    params![id, now],
                )?;
                Ok(())
            })
            .await?;
        tracing::info!(
            id = n.id,
            outcome = outcome.result_code(),
            "notification settled"
        );
        Ok(Step::Settled(outcome))
    }

    /// Takes the lease when it is free or already this driver's; the notification and its
    /// recorded final answer, if any.
    async fn claim(
        &self,
        id: &str,
    ) -> Result<Option<(Notification, Option<NotifyPaymentResponse>)>, PendingError> {
        let (id, owner) = (id.to_owned(), self.inner.owner.clone());
        let lease_ms = i64::try_from(self.inner.config.lease_ms).unwrap_or(i64::MAX);
        let now = now_ms(self.inner.store.clock.as_ref());
        self.inner
            .store
            .db(move |conn| {
                let taken = conn.execute(
                    "UPDATE tolem_pending_notifications SET lease_owner = ?2, lease_until_ms = ?3 \
                     WHERE id = ?1 AND state != 'settled' AND (lease_until_ms <= ?4 OR lease_owner = ?2)",
                    params![id, owner, now.saturating_add(lease_ms), now],
                )?;
                if taken == 0 {
                    return Ok(None);
                }
                let (request, locale, answer): (String, String, Option<String>) = conn.query_row(
                    "SELECT request, locale, answer FROM tolem_pending_notifications WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let n = notification(&id, &request, &locale)?;
                let answer = match answer {
                    Some(a) => Some(parse_answer(&id, Some(&a))?),
                    None => None,
                };
                Ok(Some((n, answer)))
            })
            .await
    }

    /// Records the PS's final answer, unless one is recorded already (another process whose
    /// lease lapsed got there first): the recorded one is returned and decides.
    async fn answered(
        &self,
        id: &str,
        answer: &NotifyPaymentResponse,
    ) -> Result<NotifyPaymentResponse, PendingError> {
        let text = serde_json::to_string(answer)
            .map_err(|e| PendingError::Unreadable(id.to_owned(), e.to_string()))?;
        let id = id.to_owned();
        self.inner
            .store
            .db(move |conn| {
                conn.execute(
                    "UPDATE tolem_pending_notifications SET state = 'answered', answer = ?2, attempts = attempts + 1 \
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, text],
                )?;
                let recorded: Option<String> = conn.query_row(
                    "SELECT answer FROM tolem_pending_notifications WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )?;
                parse_answer(&id, recorded.as_deref())
            })
            .await
    }

    /// Records a failed attempt (or settlement) and when to try again: after the policy's
    /// delay, or the `Retry-After` the PS asked for when that is longer. The lease covers one
    /// attempt only, so another process of the bank may make the next one. A failed attempt is
    /// logged at INFO while the notification is younger than [`DriverConfig::warn_after_ms`],
    /// at WARN after (a failed settlement is logged where it failed).
    async fn failed(&self, id: &str, why: &str, failed: Failed) -> Result<(), PendingError> {
        let retry_after = match failed {
            Failed::Notify { retry_after } => retry_after,
            Failed::Settle => None,
        };
        let (row, error) = (id.to_owned(), why.to_owned());
        let retry = self.inner.config.retry.clone();
        let warn_after_ms = i64::try_from(self.inner.config.warn_after_ms).unwrap_or(i64::MAX);
        let owner = self.inner.owner.clone();
        let now = now_ms(self.inner.store.clock.as_ref());
        let (attempts, age_ms, delay_ms) = self
            .inner
            .store
            .db(move |conn| {
                let (attempts, created_at_ms): (u32, i64) = conn.query_row(
                    "SELECT attempts, created_at_ms FROM tolem_pending_notifications WHERE id = ?1",
                    [&row],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let attempts = attempts.saturating_add(1);
                let delay = retry.delay_after(attempts, retry_after);
                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                conn.execute(
                    "UPDATE tolem_pending_notifications SET attempts = ?2, last_error = ?3, due_at_ms = ?4, \
                     lease_owner = NULL, lease_until_ms = 0 WHERE id = ?1 AND lease_owner = ?5",
                    params![row, attempts, error, now.saturating_add(delay_ms), owner],
                )?;
                Ok((attempts, now.saturating_sub(created_at_ms), delay_ms))
            })
            .await?;
        let reason = why;
        if let Failed::Settle = failed {
            return Ok(());
        }
        if age_ms >= warn_after_ms {
            // The customer has been debited this long without the PS's word, and only that word
            // settles the debit: the PS, or the way to it, may be down. Someone should look.
            tracing::warn!(
                id,
                attempts,
                age_ms,
                delay_ms,
                reason,
                "notifyPayment still not finished; the debit stays until the PS answers"
            );
        } else {
            tracing::info!(
                id,
                attempts,
                delay_ms,
                reason,
                "notifyPayment not finished; retrying"
            );
        }
        Ok(())
    }
}

/// Frees a notification for this process's other tasks when its driving task ends or is
/// cancelled.
struct InFlight<'a, S: Settle>(&'a Driver<S>, String);

impl<S: Settle> Drop for InFlight<'_, S> {
    fn drop(&mut self) {
        let mut in_flight = self
            .0
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        in_flight.remove(&self.1);
    }
}

/// What did not get done: telling the PS (which may have asked for a wait), or the bank's
/// settlement of the PS's answer.
enum Failed {
    Notify { retry_after: Option<Duration> },
    Settle,
}

/// One attempt's result.
enum Attempt {
    /// The PS's final answer.
    Final(NotifyPaymentResponse),
    /// Not known yet: try again later (the reason is logged and recorded), not before the wait
    /// the answer asked for, if any.
    Again {
        why: String,
        retry_after: Option<Duration>,
    },
}

impl Attempt {
    fn again(why: String) -> Attempt {
        Attempt::Again {
            why,
            retry_after: None,
        }
    }
}

/// The driver's only call of the client: one notifyPayment attempt with the notification's id
/// as X-Request-ID, sorted into a final answer or "not known yet".
async fn notify(client: &MppClient, n: &Notification) -> Attempt {
    let once = RetryPolicy::default().with_attempts_max(Some(1));
    // Ids are checked when recorded; one that is not a valid X-Request-ID is never final.
    let request_id = match RequestId::new(&n.id) {
        Ok(id) => id,
        Err(e) => return Attempt::again(e.to_string()),
    };
    let reply = client
        .in_locale(n.locale)
        .with_retry(once)
        .notify_payment_with_id(&n.request, &request_id)
        .await;
    let reply = match reply {
        Ok(reply) => reply,
        // An answer that cannot be read is not a refusal: the PS may have confirmed.
        Err(e) => return Attempt::again(e.to_string()),
    };
    match reply.outcome {
        CallOutcome::Done(answer) => Attempt::Final(answer),
        // The client's rule decides what is the PS's word on the payment: a refusal is one
        // (a code of the regulation, not UNKNOWN_SOURCE); everything else is not known yet.
        CallOutcome::Refused(result) => Attempt::Final(NotifyPaymentResponse {
            result,
            link_receipt: None,
        }),
        CallOutcome::NotKnownYet(why) => Attempt::Again {
            why: format!("not known yet: {why}"),
            retry_after: reply.retry_after,
        },
    }
}
