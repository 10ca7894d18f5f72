//! The `/refund` endpoint over real HTTP, crediting a ledger outside the kit's file (a second
//! SQLite file standing in for core banking, idempotent per refundId): exactly once per
//! refundId, identical answers, different refunds in parallel, a restart between claim and
//! outcome.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Notify};
use tolem_sdk::refund::{Credit, CreditError, Credited, RefundEndpoint, RefundOrder, Refusal};

/// Core banking: its own database, where a credit is keyed by the refundId (the idempotency key),
/// so a repeated call moves nothing.
struct CoreBanking {
    conn: Mutex<rusqlite::Connection>,
}

impl CoreBanking {
    fn open(path: &Path) -> Arc<CoreBanking> {
        let conn = rusqlite::Connection::open(path).expect("core banking db");
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS credits (refund_id TEXT PRIMARY KEY, customer TEXT NOT NULL, tiyn INTEGER NOT NULL)",
        )
        .expect("table");
        Arc::new(CoreBanking {
            conn: Mutex::new(conn),
        })
    }

    fn credit(&self, refund: &RefundOrder) -> Result<(), CreditError> {
        let tiyn = i64::try_from(refund.amount().tiyn()).map_err(CreditError::new)?;
        let conn = self
            .conn
            .lock()
            .map_err(|e| CreditError::new(e.to_string()))?;
        conn.execute(
            "INSERT INTO credits (refund_id, customer, tiyn) VALUES (?1, ?2, ?3) ON CONFLICT (refund_id) DO NOTHING",
            rusqlite::params![refund.refund_id(), refund.customer_id(), tiyn],
        )
        .map_err(CreditError::new)?;
        Ok(())
    }

    fn balance(&self, customer: &str) -> i64 {
        let conn = self.conn.lock().expect("core banking");
        conn.query_row(
            "SELECT COALESCE(SUM(tiyn), 0) FROM credits WHERE customer = ?1",
            [customer],
            |r| r.get(0),
        )
        .expect("balance")
    }

    fn credits(&self) -> i64 {
        let conn = self.conn.lock().expect("core banking");
        conn.query_row("SELECT COUNT(*) FROM credits", [], |r| r.get(0))
            .expect("count")
    }
}

/// What the hook does before it credits, per test.
#[derive(Default)]
enum Before {
    #[default]
    Nothing,
    /// Waits until this many credits are running at once: only parallel credits get past it.
    Meet(Arc<Barrier>),
    /// Says it has started, then waits to be let through.
    Hold {
        started: Arc<Notify>,
        go: Arc<Notify>,
    },
    /// Fails the first call (core banking down), panics on the second.
    FailThenPanic,
    /// Fails the first call only.
    FailFirst,
}

/// What happens after it credited.
#[derive(Default)]
enum After {
    #[default]
    Return,
    /// Says so, then never returns: the process will stop here.
    Hang(Arc<Notify>),
}

struct Hook {
    bank: Arc<CoreBanking>,
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<RefundOrder>>>,
    before: Before,
    after: After,
}

impl Hook {
    fn new(bank: &Arc<CoreBanking>) -> Hook {
        Hook {
            bank: bank.clone(),
            calls: Arc::default(),
            seen: Arc::default(),
            before: Before::Nothing,
            after: After::Return,
        }
    }
}

impl Credit for Hook {
    async fn credit(&self, refund: &RefundOrder) -> Result<Credited, CreditError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.lock().expect("seen").push(refund.clone());
        if refund.customer_id() == "GONE" {
            return Ok(Credited::Refused(Refusal::ProcessFail));
        }
        match &self.before {
            Before::Nothing => {}
            Before::Meet(barrier) => {
                barrier.wait().await;
            }
            Before::Hold { started, go } => {
                started.notify_one();
                go.notified().await;
            }
            Before::FailThenPanic if call == 1 => {
                return Err(CreditError::new("core banking answered 503"));
            }
            Before::FailThenPanic if call == 2 => panic!("a bug in the hook"),
            Before::FailThenPanic => {}
            Before::FailFirst if call == 1 => {
                return Err(CreditError::new("core banking answered 503"));
            }
            Before::FailFirst => {}
        }
        self.bank.credit(refund)?;
        if let After::Hang(credited) = &self.after {
            credited.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(Credited::Yes)
    }
}

struct Mpp {
    url: String,
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<RefundOrder>>>,
    _dir: Option<tempfile::TempDir>,
}

/// Serves the endpoint on port 0 over the kit's file `kit`.
async fn serve(kit: &Path, hook: Hook, configure: fn(RefundEndpoint) -> RefundEndpoint) -> Mpp {
    let calls = hook.calls.clone();
    let seen = hook.seen.clone();
    let endpoint = configure(RefundEndpoint::open(kit, hook).expect("endpoint"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/refund", listener.local_addr().expect("addr"));
    let router = endpoint.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Mpp {
        url,
        calls,
        seen,
        _dir: None,
    }
}

/// A fresh kit file and core-banking file, and the endpoint over them.
async fn start(
    configure: impl FnOnce(Hook) -> Hook,
    endpoint: fn(RefundEndpoint) -> RefundEndpoint,
) -> (Mpp, Arc<CoreBanking>) {
    let dir = tempfile::tempdir().expect("dir");
    let bank = CoreBanking::open(&dir.path().join("core.db"));
    let mut mpp = serve(
        &dir.path().join("kit.db"),
        configure(Hook::new(&bank)),
        endpoint,
    )
    .await;
    mpp._dir = Some(dir);
    (mpp, bank)
}

fn patient(endpoint: RefundEndpoint) -> RefundEndpoint {
    // Repeats wait as long as it takes, so that every answer is the final one.
    endpoint.in_process_wait_ms(120_000)
}

fn refund(id: &str, customer: &str, amount: &str) -> Value {
    json!({"customerId": customer, "paymentId": "1001", "refundAmount": amount, "refundId": id,
           "linkReceipt": "http://ps/receipt?id=x"})
}

async fn post(url: &str, body: &Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("answer");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("json");
    v["result"]["resultCode"]
        .as_str()
        .expect("resultCode")
        .to_owned()
}

/// A deadline for a step that deadlocks when the behaviour breaks: a test failure with a reason
/// instead of a hung test, not a measurement.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_duplicates_credit_once_with_identical_answers() {
    let (mpp, bank) = start(|h| h, patient).await;
    let body = refund("R1", "C1", "150.00");
    let answers = join_all((0..50).map(|_| post(&mpp.url, &body))).await;
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "identical answers"
    );
    assert_eq!(answers[0].0, 200);
    assert_eq!(code(&answers[0].1), "SUCCESS");
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 1);
    assert_eq!(bank.balance("C1"), 15_000);
    // A repeat with another amount still gets the first answer and credits nothing.
    let (_, again) = post(&mpp.url, &refund("R1", "C1", "999")).await;
    assert_eq!(again, answers[0].1);
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 1);
    assert_eq!(bank.balance("C1"), 15_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slow_refunds_are_credited_in_parallel_each_once() {
    // Each credit waits at a barrier for the other: were refunds applied one at a time, neither
    // would ever get past it.
    let barrier = Arc::new(Barrier::new(2));
    let (mpp, bank) = start(
        |mut h| {
            h.before = Before::Meet(barrier);
            h
        },
        patient,
    )
    .await;
    let (a, b) = within(
        "two refunds credited together",
        futures::future::join(
            post(&mpp.url, &refund("RA", "C1", "10")),
            post(&mpp.url, &refund("RB", "C2", "20")),
        ),
    )
    .await;
    assert_eq!((a.0, code(&a.1)), (200, "SUCCESS".to_owned()));
    assert_eq!((b.0, code(&b.1)), (200, "SUCCESS".to_owned()));
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 2);
    assert_eq!((bank.balance("C1"), bank.balance("C2")), (1_000, 2_000));
    // Their repeats are answered from the record: the barrier is never reached again.
    assert_eq!(post(&mpp.url, &refund("RA", "C1", "10")).await, a);
    assert_eq!(post(&mpp.url, &refund("RB", "C2", "20")).await, b);
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 2);
    assert_eq!(bank.credits(), 2);
}

/// An endpoint whose hook holds each credit until `go` (a repeat waits 50 ms for it), with the
/// refund R1 of C1 posted and its credit started: the endpoint, the bank, `go`, and R1's answer
/// to come.
async fn r1_held_in_its_credit() -> (
    Mpp,
    Arc<CoreBanking>,
    Arc<Notify>,
    tokio::task::JoinHandle<(u16, String)>,
) {
    let started = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let (mpp, bank) = start(
        |mut h| {
            h.before = Before::Hold {
                started: started.clone(),
                go: go.clone(),
            };
            h
        },
        |e| e.in_process_wait_ms(50),
    )
    .await;
    let url = mpp.url.clone();
    let first = tokio::spawn(async move { post(&url, &refund("R1", "C1", "10")).await });
    within("the first credit starts", started.notified()).await;
    (mpp, bank, go, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_of_a_running_refund_is_told_in_process_and_another_refund_is_not_held() {
    let (mpp, bank, go, first) = r1_held_in_its_credit().await;
    // R1's credit is held until `go`, so its repeat cannot get an answer within the wait.
    let repeat = post(&mpp.url, &refund("R1", "C1", "10")).await;
    assert_eq!(
        (repeat.0, code(&repeat.1)),
        (200, "REFUND_IN_PROCESS".to_owned())
    );
    // A refused refund of another customer is answered meanwhile (it never reaches the hold).
    let other = post(&mpp.url, &refund("R2", "GONE", "10")).await;
    assert_eq!(code(&other.1), "PROCESS_FAIL");
    go.notify_one();
    let first = within("the first answer", first).await.expect("task");
    assert_eq!(code(&first.1), "SUCCESS");
    assert_eq!(post(&mpp.url, &refund("R1", "C1", "10")).await, first);
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 2, "R1 once, R2 once");
    assert_eq!(bank.balance("C1"), 1_000);
}

#[tokio::test]
async fn refusals_are_remembered_and_bad_requests_are_not() {
    let (mpp, _bank) = start(|h| h, patient).await;
    let (_, refused) = post(&mpp.url, &refund("R2", "GONE", "10")).await;
    assert_eq!(code(&refused), "PROCESS_FAIL");
    assert_eq!(post(&mpp.url, &refund("R2", "GONE", "10")).await.1, refused);
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 1);
    for bad in [
        refund("R3", "C1", "0"),
        refund("R3", "1234567890123", "1"),
        refund("", "C1", "1"),
        json!({"refundId": "R3"}),
        // SPEC 4.4's lengths: 64 characters at most for each id.
        refund(&"R".repeat(65), "C1", "1"),
        json!({"customerId": "C1", "paymentId": "1".repeat(65), "refundAmount": "1", "refundId": "R3",
               "linkReceipt": "http://ps/r"}),
        json!({"customerId": "C1", "paymentId": "1", "refundAmount": "1", "refundId": "R3",
               "linkReceipt": "javascript:alert(1)"}),
        json!({"customerId": "C1", "paymentId": "1", "refundAmount": "1", "refundId": "R3",
               "linkReceipt": "https://ps/receipt?id=x\n<b>"}),
    ] {
        let (status, body) = post(&mpp.url, &bad).await;
        assert_eq!(status, 200);
        assert_eq!(code(&body), "PARAM_ILLEGAL", "{bad}");
    }
    assert_eq!(
        mpp.calls.load(Ordering::SeqCst),
        1,
        "a refused request never reaches the bank's credit"
    );
    // Read as strictly as the PS reads its own bodies, the answer naming the field: an
    // amount a float would round, a key given twice, a field of the wrong type.
    for (raw, field) in [
        (
            r#"{"customerId":"C1","paymentId":"1","refundAmount":1e2,"refundId":"R3","linkReceipt":"http://ps/r"}"#,
            "refundAmount",
        ),
        (
            r#"{"customerId":"C1","paymentId":"1","refundAmount":"1","refundAmount":"100","refundId":"R3","linkReceipt":"http://ps/r"}"#,
            "refundAmount",
        ),
        (
            r#"{"customerId":7,"paymentId":"1","refundAmount":"1","refundId":"R3","linkReceipt":"http://ps/r"}"#,
            "customerId",
        ),
        ("[]", "body"),
    ] {
        let resp = reqwest::Client::new()
            .post(&mpp.url)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("answer");
        let body = resp.text().await.expect("body");
        assert_eq!(code(&body), "PARAM_ILLEGAL", "{raw}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let message = v["result"]["resultMessage"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{raw}: {message}");
    }
    assert_eq!(
        mpp.calls.load(Ordering::SeqCst),
        1,
        "nothing invalid reaches the hook"
    );
    let (_, ok) = post(&mpp.url, &refund("R3", "C1", "1")).await;
    assert_eq!(code(&ok), "SUCCESS", "a corrected request still applies");
    // A repeat of an answered refundId gets its answer even if this version would refuse the
    // request (a PARAM_ILLEGAL would make the PS refund the amount again).
    let calls = mpp.calls.load(Ordering::SeqCst);
    let mut odd = refund("R3", "C1", "1");
    odd["linkReceipt"] = json!("javascript:alert(1)");
    assert_eq!(post(&mpp.url, &odd).await.1, ok);
    assert_eq!(
        mpp.calls.load(Ordering::SeqCst),
        calls,
        "not credited again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_request_of_a_refund_in_flight_is_never_refused() {
    let (mpp, bank, go, first) = r1_held_in_its_credit().await;
    // The same refundId with an amount of 0, while its credit runs: the PS would take a
    // PARAM_ILLEGAL as final and free the amount the hook is moving.
    let (status, body) = post(&mpp.url, &refund("R1", "C1", "0")).await;
    assert_eq!((status, code(&body)), (200, "REFUND_IN_PROCESS".to_owned()));
    go.notify_one();
    let first = within("the first answer", first).await.expect("task");
    assert_eq!(code(&first.1), "SUCCESS");
    // Once answered, every request of R1 gets that answer, a bad one too.
    assert_eq!(post(&mpp.url, &refund("R1", "C1", "0")).await, first);
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 1);
    assert_eq!(bank.balance("C1"), 1_000);
}

#[tokio::test]
async fn an_invalid_request_of_a_refund_left_claimed_credits_the_first_order() {
    let (mpp, bank) = start(
        |mut h| {
            h.before = Before::FailFirst;
            h
        },
        patient,
    )
    .await;
    let (status, _) = post(&mpp.url, &refund("R1", "C1", "10")).await;
    assert_eq!(status, 500, "the hook failed: the claim stays");
    let mut bad = refund("R1", "C1", "10");
    bad["linkReceipt"] = json!("javascript:alert(1)");
    let (status, body) = post(&mpp.url, &bad).await;
    assert_eq!((status, code(&body)), (200, "SUCCESS".to_owned()));
    let seen = mpp.seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1], seen[0],
        "called again with the first request's order"
    );
    assert_eq!(bank.balance("C1"), 1_000);
    assert_eq!(post(&mpp.url, &refund("R1", "C1", "10")).await.1, body);
}

#[tokio::test]
async fn control_characters_other_methods_and_large_bodies_are_refused_in_the_envelope() {
    let (mpp, _bank) = start(|h| h, patient).await;
    for (field, id) in [("customerId", 0), ("paymentId", 1), ("refundId", 2)] {
        let mut bad = refund("R5", "C1", "1");
        bad[field] = json!(["C\n1", "10\u{0}1", "R\t5"][id]);
        let (status, body) = post(&mpp.url, &bad).await;
        assert_eq!(
            (status, code(&body)),
            (200, "PARAM_ILLEGAL".to_owned()),
            "{bad}"
        );
        assert!(body.contains(field), "{body}");
    }
    assert_eq!(
        mpp.calls.load(Ordering::SeqCst),
        0,
        "the hook never sees them"
    );
    let http = reqwest::Client::new();
    // A refund as a web page in a browser could send it, without a CORS preflight: as
    // `text/plain`, as a form, or with no type. Not read, and 415, which the PS retries.
    let valid = serde_json::to_string(&refund("R6", "C1", "1")).expect("json");
    let typed = |kind: &str| {
        http.post(&mpp.url)
            .header("content-type", kind)
            .body(valid.clone())
    };
    let json = |body: Vec<u8>| {
        http.post(&mpp.url)
            .header("content-type", "application/json")
            .body(body)
    };
    for (request, want) in [
        (http.get(&mpp.url), 405),
        (http.put(&mpp.url).body("{}"), 405),
        (typed("text/plain"), 415),
        (typed("application/x-www-form-urlencoded"), 415),
        (typed("multipart/form-data; boundary=x"), 415),
        (http.post(&mpp.url).body(valid.clone()), 415),
        (json(vec![b' '; 3 * 1024 * 1024]), 413),
    ] {
        let resp = request.send().await.expect("answer");
        assert_eq!(resp.status().as_u16(), want);
        if want == 405 {
            assert_eq!(resp.headers()["allow"], "POST", "what it takes");
        }
        let kind = resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(kind, "application/json");
        let body = resp.text().await.expect("body");
        assert_eq!(code(&body), "PARAM_ILLEGAL", "{body}");
    }
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 0);
}

/// `answer` outside a Tokio runtime (another executor) is a 500 the PS retries, not a panic.
#[test]
fn answer_outside_a_tokio_runtime_is_a_500_not_a_panic() {
    let dir = tempfile::tempdir().expect("dir");
    let bank = CoreBanking::open(&dir.path().join("core.db"));
    let endpoint =
        RefundEndpoint::open(&dir.path().join("kit.db"), Hook::new(&bank)).expect("open");
    let body = serde_json::to_vec(&refund("R1", "C1", "1")).expect("json");
    let answer = futures::executor::block_on(endpoint.answer(&body));
    assert_eq!(
        (answer.status(), code(answer.body())),
        (500, "UNKNOWN_EXCEPTION".to_owned())
    );
    assert_eq!(bank.credits(), 0);
}

#[tokio::test]
async fn a_failing_or_panicking_hook_records_nothing_and_is_called_again() {
    let (mpp, bank) = start(
        |mut h| {
            h.before = Before::FailThenPanic;
            h
        },
        patient,
    )
    .await;
    let body = refund("R1", "C1", "10");
    for _ in 0..2 {
        let (status, answer) = post(&mpp.url, &body).await;
        assert_eq!(
            (status, code(&answer)),
            (500, "UNKNOWN_EXCEPTION".to_owned())
        );
    }
    assert_eq!(bank.credits(), 0);
    let (status, answer) = post(&mpp.url, &body).await;
    assert_eq!((status, code(&answer)), (200, "SUCCESS".to_owned()));
    assert_eq!(mpp.calls.load(Ordering::SeqCst), 3);
    assert_eq!(bank.balance("C1"), 1_000);
}

fn count(kit: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(kit).expect("kit db");
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// The MPP stops after the hook credited and before the kit recorded it: its runtime is shut
/// down with the hook still running, as a killed process leaves it. The next process is called
/// again with the same refundId; core banking, keyed by it, credits once.
#[test]
fn a_restart_between_claim_and_outcome_credits_once() {
    let dir = tempfile::tempdir().expect("dir");
    let kit: PathBuf = dir.path().join("kit.db");
    let bank = CoreBanking::open(&dir.path().join("core.db"));
    let body = refund("R1", "C1", "25.50");

    let first = tokio::runtime::Runtime::new().expect("runtime");
    first.block_on(async {
        let credited = Arc::new(Notify::new());
        let mut hook = Hook::new(&bank);
        hook.after = After::Hang(credited.clone());
        let mpp = serve(&kit, hook, patient).await;
        let url = mpp.url.clone();
        let body = body.clone();
        tokio::spawn(async move { post(&url, &body).await });
        within("the first credit", credited.notified()).await;
    });
    first.shutdown_background();
    assert_eq!(bank.balance("C1"), 2_550);
    assert_eq!(count(&kit, "tolem_refund_claims"), 1, "claimed");
    assert_eq!(count(&kit, "tolem_refunds"), 0, "no outcome");

    let second = tokio::runtime::Runtime::new().expect("runtime");
    second.block_on(async {
        let mpp = serve(&kit, Hook::new(&bank), patient).await;
        let (status, answer) = post(&mpp.url, &body).await;
        assert_eq!((status, code(&answer)), (200, "SUCCESS".to_owned()));
        assert_eq!(mpp.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            mpp.seen.lock().expect("seen")[0].refund_id(),
            "R1",
            "called again with the same idempotency key"
        );
        assert_eq!(post(&mpp.url, &body).await, (status, answer));
        assert_eq!(mpp.calls.load(Ordering::SeqCst), 1);
    });
    assert_eq!(bank.balance("C1"), 2_550, "credited once");
    assert_eq!(bank.credits(), 1);
    assert_eq!(count(&kit, "tolem_refund_claims"), 0);
    assert_eq!(count(&kit, "tolem_refunds"), 1);
}

#[tokio::test]
async fn answers_are_in_the_ps_locale_and_a_repeat_keeps_the_first() {
    use tolem_wire::Locale;
    use tolem_wire::mpp::{ResultBody, ResultCode};
    let (mpp, bank) = start(|hook| hook, patient).await;
    let message = |body: &str| -> String {
        let v: Value = serde_json::from_str(body).expect("json");
        v["result"]["resultMessage"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let post_in = |locale: &'static str, body: Value| {
        let url = mpp.url.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .header("x-locale", locale)
                .json(&body)
                .send()
                .await
                .expect("answer");
            resp.text().await.expect("body")
        }
    };
    // The hook refuses customer GONE: PROCESS_FAIL, whose message differs by language.
    let kazakh = ResultBody::of(ResultCode::ProcessFail, Locale::Kk).result_message;
    let russian = ResultBody::of(ResultCode::ProcessFail, Locale::Ru).result_message;
    assert_ne!(kazakh, russian);
    // A refund the PS sends in Kazakh is answered in Kazakh...
    let first = post_in("kk-KZ", refund("L1", "GONE", "10")).await;
    assert_eq!(code(&first), "PROCESS_FAIL");
    assert_eq!(message(&first), kazakh);
    // ...and its repeat, in whatever language, gets the first answer, as recorded.
    assert_eq!(post_in("ru-RU", refund("L1", "GONE", "10")).await, first);
    // Without X-Locale, or with one the regulation does not have, Russian.
    let (_, plain) = post(&mpp.url, &refund("L2", "GONE", "10")).await;
    assert_eq!(message(&plain), russian);
    let odd = post_in("en-US", refund("L3", "GONE", "10")).await;
    assert_eq!(message(&odd), russian);
    // A refusal of a bad request speaks the PS's language too.
    let mut bad = refund("L4", "C1", "10");
    bad["refundAmount"] = json!("ten");
    let refused = post_in("kk-KZ", bad).await;
    assert_eq!(code(&refused), "PARAM_ILLEGAL");
    let kazakh_refusal = ResultBody::of(ResultCode::ParamIllegal, Locale::Kk).result_message;
    let russian_refusal = ResultBody::of(ResultCode::ParamIllegal, Locale::Ru).result_message;
    assert_ne!(kazakh_refusal, russian_refusal);
    assert!(message(&refused).starts_with(&kazakh_refusal), "{refused}");
    // A credit answered in Kazakh is still one credit.
    let credited = post_in("kk-KZ", refund("L5", "C1", "10")).await;
    assert_eq!(code(&credited), "SUCCESS");
    assert_eq!(bank.balance("C1"), 1_000);
}
