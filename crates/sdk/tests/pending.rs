//! Durable notifyPayment: a debit and its pending notification are recorded together, and the
//! driver takes every notification to the PS's final answer across cancellations and restarts,
//! then keeps or reverses the debit exactly once. The PS is a real HTTP stand-in that can hold
//! its answer; the ledger is a real SQLite file shared with the kit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use rusqlite::{Connection, params};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, Semaphore};
use tolem_sdk::pending::{
    self, Driver, DriverConfig, Notification, Outcome, PendingStore, Settle, SettleError, State,
};
use tolem_sdk::{MppClient, RetryPolicy};

#[path = "common/log.rs"]
mod log;
use log::Log;
use tolem_wire::mpp::{NotifyPayment, NotifyPaymentRequest, ResultBody};
use tolem_wire::{Amount, Locale};

/// What the stand-in PS answers to notifyPayment.
#[derive(Clone, Copy)]
enum Answer {
    Success,
    Expired,
    /// SUCCESS, but the first `busy` calls hear UNKNOWN_SOURCE (the MPP deactivated for a while:
    /// the PS refused the caller before it looked at the payment).
    SuccessAfterUnknownSource,
    /// SUCCESS, but the first `busy` calls hear HTTP 503 with `Retry-After: 30`.
    SuccessAfterRetryAfter,
}

/// A PS stand-in: the first `busy` calls get HTTP 503 (or UNKNOWN_SOURCE); every call waits for
/// `gate` (a permit per call) when held; the first answer per payment is stored and repeated
/// (DECISIONS 18).
struct StandIn {
    url: String,
    /// X-Request-IDs of every call, in order.
    calls: Arc<StdMutex<Vec<(String, String)>>>,
    gate: Arc<Semaphore>,
    arrived: Arc<Notify>,
}

async fn stand_in(answer: Answer, busy: usize, held: bool) -> StandIn {
    let calls: Arc<StdMutex<Vec<(String, String)>>> = Arc::default();
    let gate = Arc::new(Semaphore::new(if held {
        0
    } else {
        Semaphore::MAX_PERMITS
    }));
    let arrived = Arc::new(Notify::new());
    let (log, g, a) = (calls.clone(), gate.clone(), arrived.clone());
    let app = axum::Router::new().route(
        "/api/v1/qr/notifyPayment",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let (log, gate, arrived) = (log.clone(), g.clone(), a.clone());
            async move {
                let id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let payment = body["payment"]["paymentId"].as_str().unwrap_or_default().to_owned();
                let n = {
                    let mut log = log.lock().expect("lock");
                    log.push((id, payment));
                    log.len()
                };
                arrived.notify_waiters();
                let _permit = gate.acquire().await.expect("open");
                if n <= busy {
                    if let Answer::SuccessAfterUnknownSource = answer {
                        let stranger = json!({"result": {"resultCode": "UNKNOWN_SOURCE", "resultMessage": "who?"}});
                        return (StatusCode::OK, [("retry-after", "0")], axum::Json(stranger));
                    }
                    let busy = json!({"result": {"resultCode": "UNKNOWN_EXCEPTION", "resultMessage": "busy"}});
                    let wait = match answer {
                        Answer::SuccessAfterRetryAfter => "30",
                        _ => "0",
                    };
                    return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", wait)], axum::Json(busy));
                }
                let body = match answer {
                    Answer::Success | Answer::SuccessAfterUnknownSource | Answer::SuccessAfterRetryAfter => json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}, "linkReceipt": "http://ps/r"}),
                    Answer::Expired => json!({"result": {"resultCode": "PAYMENT_INCORRECT_STATUS", "resultMessage": "expired"}}),
                };
                (StatusCode::OK, [("retry-after", "0")], axum::Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    StandIn {
        url,
        calls,
        gate,
        arrived,
    }
}

/// The bank's ledger in the kit's file: balances and one row per debit.
const LEDGER: &str = "CREATE TABLE IF NOT EXISTS balances (customer TEXT PRIMARY KEY, tiyn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS debits (id TEXT PRIMARY KEY, customer TEXT NOT NULL, tiyn INTEGER NOT NULL, status TEXT NOT NULL);
INSERT OR IGNORE INTO balances VALUES ('C1', 1000000);";

/// Keeps or reverses a debit once (a conditional update), and counts what it applied.
#[derive(Clone)]
struct Bank {
    conn: Arc<Mutex<Connection>>,
    applied: Arc<StdMutex<HashMap<String, Vec<String>>>>,
}

impl Settle for Bank {
    async fn settle(&self, n: &Notification, outcome: &Outcome) -> Result<(), SettleError> {
        let conn = self.conn.lock().await;
        let tx = conn.unchecked_transaction().map_err(SettleError::new)?;
        let (status, give_back) = match outcome {
            Outcome::Keep { .. } => ("kept", false),
            _ => ("reversed", true),
        };
        let changed = tx
            .execute(
                "UPDATE debits SET status = ?2 WHERE id = ?1 AND status = 'debited'",
                params![n.id, status],
            )
            .map_err(SettleError::new)?;
        if changed == 1 && give_back {
            tx.execute(
                "UPDATE balances SET tiyn = tiyn + (SELECT tiyn FROM debits WHERE id = ?1) WHERE customer = 'C1'",
                [&n.id],
            )
            .map_err(SettleError::new)?;
        }
        tx.commit().map_err(SettleError::new)?;
        if changed == 1 {
            self.applied
                .lock()
                .expect("lock")
                .entry(n.id.clone())
                .or_default()
                .push(status.to_owned());
        }
        Ok(())
    }
}

fn open(path: &std::path::Path) -> (PendingStore, Bank) {
    let conn = Connection::open(path).expect("db");
    conn.execute_batch(LEDGER).expect("ledger");
    let conn = Arc::new(Mutex::new(conn));
    let store = PendingStore::with_connection(conn.clone());
    (
        store,
        Bank {
            conn,
            applied: Arc::default(),
        },
    )
}

fn driver(ps: &StandIn, store: PendingStore, bank: Bank) -> Driver<Bank> {
    let retry = RetryPolicy::default()
        .with_delays_ms(10, 40)
        .with_attempts_max(None);
    let mut config = DriverConfig::new(retry, 300);
    config.poll_interval_ms = 20;
    Driver::new(
        store,
        MppClient::new(&ps.url, "demobank").expect("client"),
        bank,
        config,
    )
}

/// The customer is debited and the notification recorded in one transaction.
async fn pay(bank: &Bank, payment: &str, tenge: u64) -> String {
    pay_as(bank, payment, &format!("M-{payment}"), tenge).await
}

/// [`pay`] with the bank's own id of the payment.
async fn pay_as(bank: &Bank, payment: &str, mpp_payment_id: &str, tenge: u64) -> String {
    let request = NotifyPaymentRequest {
        result: ResultBody::success(),
        payment: NotifyPayment {
            payment_id: payment.into(),
            mpp_payment_id: mpp_payment_id.into(),
            payment_amount: Amount::from_tenge(tenge),
            customer_id: None,
        },
        customer_id: Some("C1".into()),
    };
    let n = Notification::new(request, Locale::Ru);
    let mut conn = bank.conn.lock().await;
    let tx = conn.transaction().expect("tx");
    let tiyn = i64::try_from(tenge * 100).expect("small");
    tx.execute(
        "UPDATE balances SET tiyn = tiyn - ?1 WHERE customer = 'C1'",
        [tiyn],
    )
    .expect("debit");
    tx.execute(
        "INSERT INTO debits VALUES (?1, 'C1', ?2, 'debited')",
        params![n.id, tiyn],
    )
    .expect("debit row");
    pending::record(&tx, &n).expect("recorded");
    tx.commit().expect("commit");
    n.id
}

async fn balance(bank: &Bank) -> i64 {
    bank.conn
        .lock()
        .await
        .query_row("SELECT tiyn FROM balances WHERE customer = 'C1'", [], |r| {
            r.get(0)
        })
        .expect("balance")
}

async fn status(bank: &Bank, id: &str) -> String {
    bank.conn
        .lock()
        .await
        .query_row("SELECT status FROM debits WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("status")
}

#[tokio::test]
async fn a_request_cancelled_during_notify_payment_is_finished_by_the_driver() {
    let ps = stand_in(Answer::Success, 0, true).await;
    let dir = tempfile::tempdir().expect("dir");
    let (store, bank) = open(&dir.path().join("bank.db"));
    let id = pay(&bank, "1", 500).await;
    // The app's request drives the notification itself and is dropped while the PS holds it.
    let arrived = ps.arrived.notified();
    let first = driver(&ps, store, bank.clone());
    let request = tokio::spawn(async move { first.drive(&id).await });
    arrived.await;
    request.abort();
    assert!(request.await.expect_err("aborted").is_cancelled());
    let id = "notify-M-1".to_owned();
    assert!(matches!(
        bank_state(&bank, &id).await,
        State::Pending { .. }
    ));
    assert_eq!(status(&bank, &id).await, "debited");
    // The PS answers from now on; a driver started anew (the next process) finishes it.
    ps.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let (store, _) = open(&dir.path().join("bank.db"));
    let outcome = driver(&ps, store, bank.clone())
        .drive(&id)
        .await
        .expect("driven");
    assert_eq!(
        outcome,
        Some(Outcome::Keep {
            link_receipt: Some("http://ps/r".into())
        })
    );
    assert_eq!(status(&bank, &id).await, "kept");
    assert_eq!(balance(&bank).await, 1_000_000 - 50_000);
    assert_eq!(bank.applied.lock().expect("lock")[&id], vec!["kept"]);
    let calls = ps.calls.lock().expect("lock").clone();
    assert!(
        calls.len() >= 2 && calls.iter().all(|(rid, _)| rid == &id),
        "{calls:?}"
    );
}

#[tokio::test]
async fn unknown_source_is_no_verdict_and_the_debit_is_kept_once_the_ps_knows_the_caller() {
    let ps = stand_in(Answer::SuccessAfterUnknownSource, 2, false).await;
    let dir = tempfile::tempdir().expect("dir");
    let (store, bank) = open(&dir.path().join("bank.db"));
    let id = pay(&bank, "3", 300).await;
    let outcome = driver(&ps, store, bank.clone())
        .finish(&id, std::time::Duration::from_secs(30))
        .await
        .expect("finished");
    assert!(matches!(outcome, Some(Outcome::Keep { .. })), "{outcome:?}");
    assert_eq!(status(&bank, &id).await, "kept");
    assert_eq!(bank.applied.lock().expect("lock")[&id], vec!["kept"]);
    assert_eq!(ps.calls.lock().expect("lock").len(), 3);
}

async fn bank_state(bank: &Bank, id: &str) -> State {
    PendingStore::with_connection(bank.conn.clone())
        .state(id)
        .await
        .expect("read")
        .expect("recorded")
}

#[tokio::test]
async fn a_refusal_reverses_the_debit_once() {
    let ps = stand_in(Answer::Expired, 0, false).await;
    let dir = tempfile::tempdir().expect("dir");
    let (store, bank) = open(&dir.path().join("bank.db"));
    let id = pay(&bank, "2", 700).await;
    let d = driver(&ps, store.clone(), bank.clone());
    let outcome = d
        .finish(&id, std::time::Duration::from_secs(30))
        .await
        .expect("finished");
    assert!(
        matches!(&outcome, Some(Outcome::Reverse { result }) if result.result_code == "PAYMENT_INCORRECT_STATUS"),
        "{outcome:?}"
    );
    // Driving it again, in this driver or another, changes nothing.
    assert_eq!(d.drive(&id).await.expect("again"), outcome);
    assert_eq!(
        driver(&ps, store, bank.clone())
            .drive(&id)
            .await
            .expect("again"),
        outcome
    );
    assert_eq!(status(&bank, &id).await, "reversed");
    assert_eq!(balance(&bank).await, 1_000_000);
    assert_eq!(bank.applied.lock().expect("lock")[&id], vec!["reversed"]);
    assert_eq!(
        ps.calls.lock().expect("lock").len(),
        1,
        "a final answer is asked once"
    );
}

/// The bank's systems fail to settle at first: the PS's answer is kept, and a driver opened
/// anew on the same file settles it without asking the PS again.
struct Flaky(Bank, Arc<StdMutex<u32>>);

impl Settle for Flaky {
    async fn settle(&self, n: &Notification, outcome: &Outcome) -> Result<(), SettleError> {
        {
            let mut failures = self.1.lock().expect("lock");
            if *failures > 0 {
                *failures -= 1;
                return Err(SettleError::new("core banking is down"));
            }
        }
        self.0.settle(n, outcome).await
    }
}

#[tokio::test]
async fn a_restart_mid_way_finishes_once() {
    let ps = stand_in(Answer::Success, 3, false).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bank.db");
    let (store, bank) = open(&path);
    let id = pay(&bank, "3", 900).await;
    let retry = RetryPolicy::default()
        .with_delays_ms(10, 40)
        .with_attempts_max(None);
    let mut config = DriverConfig::new(retry, 300);
    config.poll_interval_ms = 20;
    let client = MppClient::new(&ps.url, "demobank").expect("client");
    let failing = Driver::new(
        store,
        client,
        Flaky(bank.clone(), Arc::new(StdMutex::new(u32::MAX))),
        config,
    );
    // Runs until the PS has answered for good and the bank has failed to settle; then the
    // process "stops".
    let running = tokio::spawn(failing.clone().run());
    loop {
        if matches!(bank_state(&bank, &id).await, State::Answered(_)) {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    running.abort();
    let _ = running.await;
    drop(failing);
    let asked = ps.calls.lock().expect("lock").len();
    assert_eq!(asked, 4, "three busy answers, then the final one");
    assert_eq!(status(&bank, &id).await, "debited");
    // Reopened on the same file: settled once, the PS not asked again.
    let (store, _) = open(&path);
    let outcome = driver(&ps, store, bank.clone())
        .drive(&id)
        .await
        .expect("driven");
    assert!(matches!(outcome, Some(Outcome::Keep { .. })));
    assert_eq!(ps.calls.lock().expect("lock").len(), asked);
    assert_eq!(bank.applied.lock().expect("lock")[&id], vec!["kept"]);
    assert_eq!(balance(&bank).await, 1_000_000 - 90_000);
}

#[tokio::test]
async fn twenty_pending_notifications_are_each_finished_once_by_two_drivers() {
    let ps = stand_in(Answer::Success, 5, false).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bank.db");
    let (store, bank) = open(&path);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(pay(&bank, &format!("P{i}"), 100 + i).await);
    }
    // Two drivers on one file, as two processes of the bank: each notification is worked on
    // by one at a time (leases), and settled once.
    let (other_store, _) = open(&path);
    let a = tokio::spawn(driver(&ps, store.clone(), bank.clone()).run());
    let b = tokio::spawn(driver(&ps, other_store, bank.clone()).run());
    while !store.unsettled().await.expect("read").is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    a.abort();
    b.abort();
    let applied = bank.applied.lock().expect("lock").clone();
    for id in &ids {
        assert_eq!(applied.get(id), Some(&vec!["kept".to_owned()]), "{id}");
        assert_eq!(status(&bank, id).await, "kept");
    }
    let total: i64 = (0..20).map(|i| (100 + i) * 100).sum();
    assert_eq!(balance(&bank).await, 1_000_000 - total);
}

#[tokio::test]
async fn every_valid_mpp_payment_id_gets_its_own_notification_id() {
    let ps = stand_in(Answer::Success, 0, false).await;
    let dir = tempfile::tempdir().expect("dir");
    let (store, bank) = open(&dir.path().join("bank.db"));
    // Two ids of 64 characters (SPEC's longest) alike in their first 57, and one in Cyrillic.
    let long_a = format!("{}A", "X".repeat(63));
    let long_b = format!("{}B", "X".repeat(63));
    let mut ids = Vec::new();
    for (payment, mpp_payment_id) in [
        ("1", "M-1"),
        ("2", &*long_a),
        ("3", &*long_b),
        ("4", "Платёж-7"),
        ("5", "with space"),
    ] {
        ids.push(pay_as(&bank, payment, mpp_payment_id, 100).await);
    }
    assert_eq!(ids[0], "notify-M-1", "a short ASCII id stays readable");
    for id in &ids[1..] {
        assert_eq!(id.len(), 64, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    // The id is the same whenever it is derived (a restart), and it is what the PS is sent.
    assert_eq!(Notification::id_of("Платёж-7"), ids[3]);
    let driver = driver(&ps, store, bank.clone());
    for id in &ids {
        let outcome = driver.drive(id).await.expect("driven");
        assert!(
            matches!(outcome, Some(Outcome::Keep { .. })),
            "{id}: {outcome:?}"
        );
    }
    let sent: Vec<String> = ps
        .calls
        .lock()
        .expect("lock")
        .iter()
        .map(|(rid, _)| rid.clone())
        .collect();
    assert_eq!(sent, ids);
}

#[tokio::test]
async fn a_bad_notification_id_is_refused_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, _) = open(&dir.path().join("bank.db"));
    let mut n = Notification::new(
        NotifyPaymentRequest {
            result: ResultBody::success(),
            payment: NotifyPayment {
                payment_id: "9".into(),
                mpp_payment_id: "M-9".into(),
                payment_amount: None,
                customer_id: None,
            },
            customer_id: Some("C1".into()),
        },
        Locale::Kk,
    );
    n.id = "two\nlines".into();
    assert!(matches!(
        store.add(n.clone()).await,
        Err(pending::PendingError::InvalidId(_))
    ));
    n.id = "x".repeat(65);
    assert!(store.add(n.clone()).await.is_err());
    assert!(store.unsettled().await.expect("read").is_empty());
    n.id = "notify-M-9".into();
    store.add(n.clone()).await.expect("recorded");
    store
        .add(n.clone())
        .await
        .expect("the same again changes nothing");
    // The same id with another verdict is another notification: refused, so that a debit made
    // with it is rolled back rather than never settled.
    let mut cancelled = n.clone();
    cancelled.request.result = ResultBody {
        result_code: "CANCELLED_BY_CLIENT".into(),
        result_message: "back".into(),
    };
    assert!(matches!(
        store.add(cancelled).await,
        Err(pending::PendingError::Conflict(_))
    ));
    n.id = "another".into();
    assert!(matches!(
        store.add(n).await,
        Err(pending::PendingError::Conflict(_))
    ));
}

#[tokio::test]
async fn a_crashed_processs_lease_is_taken_over_when_the_clock_passes_it() {
    // Leases of an hour: without the manual clock, this test would wait that long.
    const HOUR_MS: u64 = 3_600_000;
    let ps = stand_in(Answer::Success, 0, true).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bank.db");
    let clock = Arc::new(pending::ManualClock::new(std::time::SystemTime::now()));
    let (store, bank) = open(&path);
    let id = pay(&bank, "4", 300).await;
    let with_hour_lease = |store: PendingStore, bank: Bank| {
        let retry = RetryPolicy::default()
            .with_delays_ms(10, 40)
            .with_attempts_max(None);
        let mut config = DriverConfig::new(retry, HOUR_MS);
        config.poll_interval_ms = 20;
        let client = MppClient::new(&ps.url, "demobank").expect("client");
        Driver::new(store.with_clock(clock.clone()), client, bank, config)
    };
    // The first process claims the notification, asks the PS and dies while it holds the
    // answer: its lease runs for an hour on the clock.
    let arrived = ps.arrived.notified();
    let first = with_hour_lease(store, bank.clone());
    let crashed = tokio::spawn(async move { first.drive(&id).await });
    arrived.await;
    crashed.abort();
    let _ = crashed.await;
    ps.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let id = "notify-M-4".to_owned();

    // The next process finds the lease held and waits for it, polling.
    let (store, _) = open(&path);
    let second = with_hour_lease(store, bank.clone());
    let driving = tokio::spawn({
        let id = id.clone();
        async move { second.drive(&id).await }
    });
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!driving.is_finished(), "the lease was not honoured");
    }
    assert_eq!(ps.calls.lock().expect("lock").len(), 1);
    assert_eq!(status(&bank, &id).await, "debited");

    // The hour passes on the clock: the lease lapses and the second process finishes it once.
    clock.advance(std::time::Duration::from_millis(HOUR_MS + 1));
    let outcome = driving.await.expect("joined").expect("driven");
    assert!(matches!(outcome, Some(Outcome::Keep { .. })), "{outcome:?}");
    assert_eq!(bank.applied.lock().expect("lock")[&id], vec!["kept"]);
    assert_eq!(ps.calls.lock().expect("lock").len(), 2);
    assert_eq!(balance(&bank).await, 1_000_000 - 30_000);
}

#[tokio::test]
async fn the_driver_waits_out_the_ps_retry_after_and_warns_once_the_debit_is_a_minute_old() {
    let log = Log::get();
    // Three 503s, each asking for 30 s (Retry-After), then SUCCESS.
    let ps = stand_in(Answer::SuccessAfterRetryAfter, 3, false).await;
    let dir = tempfile::tempdir().expect("dir");
    let clock = Arc::new(pending::ManualClock::new(std::time::SystemTime::now()));
    let (store, bank) = open(&dir.path().join("bank.db"));
    // An id of this test's own, to tell its log lines from the other tests'.
    let id = pay_as(&bank, "5", "M-RETRY-AFTER", 500).await;
    let driver = {
        // The policy's own delays are 10–40 ms for these attempts, and it waits up to a minute:
        // only the PS's Retry-After makes the driver wait 30 s.
        let retry = RetryPolicy::default().with_delays_ms(10, 60_000);
        let mut config = DriverConfig::new(retry, 300);
        config.poll_interval_ms = 20;
        let client = MppClient::new(&ps.url, "demobank").expect("client");
        Driver::new(
            store.with_clock(clock.clone()),
            client,
            bank.clone(),
            config,
        )
    };
    let driving = tokio::spawn({
        let (driver, id) = (driver.clone(), id.clone());
        async move { driver.drive(&id).await }
    });
    let calls = || ps.calls.lock().expect("lock").len();
    // Each 503 is followed by the driver's log line and then a wait of at least 30 s on the
    // clock: ten polls later it has made no further attempt.
    let settle_into_wait = |attempts: usize| {
        let id = id.clone();
        async move {
            for _ in 0..500 {
                if log.lines(&["not finished", &id]).len() >= attempts {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            for _ in 0..10 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    settle_into_wait(1).await;
    // A second on the clock is far past the policy's own delays, not past the 30 s asked for.
    clock.advance(std::time::Duration::from_secs(1));
    settle_into_wait(1).await;
    assert_eq!(calls(), 1);
    let infos = log.lines(&[" INFO ", &id, "not finished"]);
    assert_eq!(infos.len(), 1, "{:?}", log.lines(&[&id]));

    // 30 s on: the second attempt, again a 503, with the debit under a minute old: INFO.
    clock.advance(std::time::Duration::from_secs(30));
    settle_into_wait(2).await;
    assert_eq!(calls(), 2);
    let warns = log.lines(&[" WARN ", &id]);
    assert_eq!(warns.len(), 0, "{:?}", log.lines(&[&id]));

    // 62 s after the debit, the third 503 is a WARN: a minute without the PS's word.
    clock.advance(std::time::Duration::from_secs(31));
    settle_into_wait(3).await;
    assert_eq!(calls(), 3);
    let warns = log.lines(&[" WARN ", &id]);
    assert_eq!(warns.len(), 1, "{:?}", log.lines(&[&id]));
    assert!(
        warns[0].contains("the debit stays until the PS answers"),
        "{warns:?}"
    );
    assert!(warns[0].contains("attempts=3"), "{warns:?}");

    // The fourth attempt, 31 s later, is answered SUCCESS and the debit is kept, once.
    clock.advance(std::time::Duration::from_secs(31));
    let outcome = driving.await.expect("joined").expect("driven");
    assert!(matches!(outcome, Some(Outcome::Keep { .. })), "{outcome:?}");
    assert_eq!(calls(), 4);
    assert_eq!(bank.applied.lock().expect("lock")[&id], vec!["kept"]);
}
