//! The crash loop: rounds of concurrent payments and refunds while the PS process (`tolem serve`
//! on a real SQLite file) is killed with SIGKILL at a random moment and started again on the same
//! file. After every round and at the end: every payment acknowledged to its MPP is `Processed`
//! and a repeat of its notifyPayment gets the same bytes; every refund the POS was told about is
//! credited exactly once at the reference MPP, and nothing else is; balances are exact.
//!
//! Three rounds by default (CI); `TOLEM_CRASH_ROUNDS=50` runs more. The draw (which operations,
//! when the kill comes) is seeded: the seed is printed, and `TOLEM_CRASH_SEED` repeats it (the
//! interleaving of concurrent requests cannot be repeated, only the draw).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tolem_mpp::flows::FlowError;
use tolem_wire::mpp::ParameterValue;
use tolem_wire::{Amount, Locale};

use crate::fault_proxy::{Books, Relay, ps_refunds, seed, tiyn};
use crate::harness::*;
use crate::reference_mpp::TestMpp;

const ROUNDS_DEFAULT: usize = 3;
const WORKERS: usize = 4;
const OPS_PER_WORKER: usize = 5;
/// Opening deposits of the reference MPP's demo customers (tiyn).
const OPENING: [(&str, i64); 2] = [("C1", 5_000_000), ("C2", 1_000_000)];
/// A Custom parking payment of one hour: 300 ₸.
const PARKING_TIYN: i64 = 30_000;
/// How long a client keeps retrying one request while the PS is down or restarting.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// How long the PS has, after a round, to deliver every refund and answer every notification.
const SETTLE_FOR: Duration = Duration::from_secs(60);

/// Delivery settings that let a killed PS's refunds go again soon: short retries, and leases a
/// little longer than one call.
const REFUNDS_TOML: &str = "\n[refunds]\nretry_delay_ms_initial = 50\nretry_delay_ms_max = 300\nrequest_timeout_ms = 2000\nlease_ms = 2500\npoll_interval_ms = 20\npos_wait_ms = 1000\n";

/// One `tolem serve` process.
struct PsProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl PsProcess {
    async fn start(dir: &Path, db: &Path) -> PsProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("ps.log"))
            .expect("the log opens");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(dir.join("ps.toml"))
            .arg("--db")
            .arg(db)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("tolem starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(RETRY_FOR, lines.next_line())
            .await
            .expect("the PS says where it listens within a minute")
            .expect("stdout readable")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(dir.join("ps.log")).unwrap_or_default();
                panic!("the PS stopped before listening; its log:\n{log}")
            });
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("the address line, got {first}"));
        // Whatever else it prints is read, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        PsProcess { child, addr }
    }

    /// SIGKILL: no shutdown code runs.
    async fn kill(mut self) {
        self.child.kill().await.expect("killed and reaped");
    }
}

/// A purchase the test made through the reference MPP.
#[derive(Clone, Debug)]
struct Purchase {
    id: i64,
    customer: &'static str,
    tiyn: i64,
    /// Which device (trade point) may refund it.
    device: usize,
    /// What the MPP's confirm said: `paid` is an acknowledged SUCCESS.
    confirm: String,
    /// Tiyn asked back so far, answered or not.
    asked: i64,
}

/// A refund the POS asked for and the answer it got.
#[derive(Clone, Debug)]
struct Ask {
    purchase: i64,
    tiyn: i64,
    refund_id: i64,
}

/// A payment the test made as an MPP over raw HTTP, with the first final answer's bytes.
#[derive(Clone, Debug)]
struct RawPay {
    payment_id: String,
    answer: String,
}

/// What the workers did and were told.
#[derive(Default)]
struct Seen {
    purchases: Vec<Purchase>,
    asks: Vec<Ask>,
    /// Refunds whose POS gave up without an answer: (purchase, tiyn).
    abandoned: Vec<(i64, i64)>,
    raw: Vec<RawPay>,
}

/// What the round's workers share.
struct World {
    relay: Relay,
    bank: TestMpp,
    http: reqwest::Client,
    devices: [String; 2],
    seen: Mutex<Seen>,
    started: AtomicUsize,
    /// Attempts that found the PS down or failing: how much the kills interrupted.
    retried: AtomicUsize,
}

impl World {
    fn url(&self) -> &str {
        &self.relay.url
    }

    /// A request sent again, the same, until the PS answers it below HTTP 500 (it is down,
    /// restarting or overloaded meanwhile); the answer's status and body.
    async fn until_answered(
        &self,
        what: &str,
        send: impl Fn() -> reqwest::RequestBuilder,
    ) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        while tokio::time::Instant::now() < deadline {
            if let Ok(resp) = send().send().await {
                let status = resp.status().as_u16();
                if let (true, Ok(text)) = (status < 500, resp.text().await) {
                    return (status, text);
                }
            }
            self.retried.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the PS did not answer {what} within {RETRY_FOR:?}");
    }

    /// A merchant API call repeated with the same X-Request-ID until answered (DECISIONS 29).
    async fn pos(&self, path: &str, request_id: &str, body: &Value) -> Value {
        let (_, text) = self
            .until_answered(path, || {
                self.http
                    .post(format!("{}{path}", self.url()))
                    .header("api-key", API_KEY)
                    .header("x-request-id", request_id)
                    .json(body)
            })
            .await;
        let answer: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}"));
        assert_ne!(answer["StatusCode"], -999, "{path}: {answer}");
        answer
    }

    /// A merchant API call sent once; `None` when the PS did not answer it (down, or HTTP 5xx).
    async fn once(&self, path: &str, request_id: &str, body: &Value) -> Option<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url()))
            .header("api-key", API_KEY)
            .header("x-request-id", request_id)
            .json(body)
            .send()
            .await
            .ok()
            .filter(|r| r.status().as_u16() < 500)?;
        let text = resp.text().await.ok()?;
        Some(serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}")))
    }

    /// An MPP API call as demowallet, repeated with the same X-Request-ID until a final answer
    /// (UNKNOWN_EXCEPTION means "not known yet": DECISIONS 18); the answer's bytes.
    async fn mpp_raw(&self, path: &str, request_id: &str, body: &Value) -> String {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        loop {
            let (_, text) = self
                .until_answered(path, || {
                    self.http
                        .post(format!("{}{path}", self.url()))
                        .header("x-caller-name", "demowallet")
                        .header("x-request-id", request_id)
                        .json(body)
                })
                .await;
            if result_code(&text) != "UNKNOWN_EXCEPTION" {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} not known for {RETRY_FOR:?}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn dynamic_qr(&self, tag: &str, tiyn: i64) -> (String, i64) {
        let amount = Amount::from_tiyn(u64::try_from(tiyn).expect("positive"));
        let body = json!({"DeviceToken": self.devices[0], "Amount": amount});
        let answer = self
            .pos("/r1/v01/qr/create", &format!("qr-{tag}"), &body)
            .await;
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        (
            answer["Data"]["QrToken"]
                .as_str()
                .expect("token")
                .to_owned(),
            answer["Data"]["QrPaymentId"].as_i64().expect("id"),
        )
    }

    /// A purchase paid through the reference MPP: its debit and notifyPayment are the kit's,
    /// retried by its driver until the PS answers for good.
    async fn pay_dynamic(&self, tag: &str, rng: &mut StdRng) {
        let customer = OPENING[rng.random_range(0..OPENING.len())].0;
        let tiyn = rng.random_range(100..1_000);
        let (qr, id) = self.dynamic_qr(tag, tiyn).await;
        if self.bank.mpp.scan(customer, &qr, Locale::Ru).await.is_err() {
            // The PS went down under the scan: the purchase is left to expire.
            return;
        }
        self.confirm(id, customer, tiyn, 0).await;
    }

    async fn pay_parking(&self, rng: &mut StdRng) {
        let customer = "C1";
        let Ok(scan) = self.bank.mpp.scan(customer, PARKING_QR, Locale::Ru).await else {
            return;
        };
        let payment_id = scan.payment_id.expect("a Custom scan has a payment");
        let plate = format!("{:03}ABC02", rng.random_range(0..1000));
        let values = vec![
            ParameterValue {
                id: 3932,
                value: Some(plate),
            },
            ParameterValue {
                id: 3933,
                value: Some("1h".to_owned()),
            },
        ];
        match self
            .bank
            .mpp
            .checkout(customer, &payment_id, values, Locale::Ru)
            .await
        {
            Ok(amount) => assert_eq!(amount, Amount::from_tenge(300).expect("fits")),
            Err(_) => return,
        }
        let id = payment_id.parse().expect("a numeric paymentId");
        self.confirm(id, customer, PARKING_TIYN, 1).await;
    }

    async fn confirm(&self, id: i64, customer: &'static str, tiyn: i64, device: usize) {
        let confirm = match self
            .bank
            .mpp
            .confirm(customer, &id.to_string(), None, Locale::Ru)
            .await
        {
            Ok(view) => view.status,
            Err(FlowError::InsufficientFunds) => "rejected".to_owned(),
            Err(e) => panic!("confirm of {id}: {e}"),
        };
        self.seen.lock().expect("books").purchases.push(Purchase {
            id,
            customer,
            tiyn,
            device,
            confirm,
            asked: 0,
        });
    }

    /// A partial or full refund (r3) of a paid purchase, repeated under one X-Request-ID until
    /// answered; false when nothing is left to refund.
    async fn refund(&self, tag: &str, rng: &mut StdRng) -> bool {
        let chosen = {
            let mut seen = self.seen.lock().expect("books");
            let open: Vec<usize> = (0..seen.purchases.len())
                .filter(|&i| {
                    let p = &seen.purchases[i];
                    p.confirm == "paid" && p.asked < p.tiyn
                })
                .collect();
            if open.is_empty() {
                return false;
            }
            let p = &mut seen.purchases[open[rng.random_range(0..open.len())]];
            let left = p.tiyn - p.asked;
            let tiyn = if rng.random_bool(0.5) {
                left
            } else {
                rng.random_range(1..=left)
            };
            p.asked += tiyn;
            (p.id, p.device, tiyn)
        };
        let (purchase, device, tiyn) = chosen;
        let amount = Amount::from_tiyn(u64::try_from(tiyn).expect("positive"));
        let body = json!({"DeviceToken": self.devices[device], "QrPaymentId": purchase, "Amount": amount, "OrganizationBin": "990340001234"});
        let (path, request_id) = ("/r3/v01/payment/return", format!("refund-{tag}"));
        // Some POS give up when the PS does not answer: their refund may exist or not, but
        // never twice, and if it exists it is delivered like any other.
        let answer = if rng.random_bool(0.25) {
            let Some(answer) = self.once(path, &request_id, &body).await else {
                let mut seen = self.seen.lock().expect("books");
                seen.abandoned.push((purchase, tiyn));
                return true;
            };
            answer
        } else {
            self.pos(path, &request_id, &body).await
        };
        assert_eq!(
            answer["StatusCode"], 0,
            "refund of {tiyn} tiyn of {purchase}: {answer}"
        );
        let refund_id = answer["Data"]["ReturnOperationId"]
            .as_i64()
            .expect("placed");
        self.seen.lock().expect("books").asks.push(Ask {
            purchase,
            tiyn,
            refund_id,
        });
        true
    }

    /// A payment where the test itself is the MPP (demowallet), keeping the first final answer
    /// of its notifyPayment byte for byte.
    async fn pay_raw(&self, tag: &str, rng: &mut StdRng) {
        let (qr, _) = self.dynamic_qr(tag, rng.random_range(100..1_000)).await;
        let scan = self
            .mpp_raw(
                "/api/v1/qr/scan",
                &format!("scan-{tag}"),
                &json!({"qrCode": qr, "customerId": "W1"}),
            )
            .await;
        if result_code(&scan) != "SUCCESS" {
            return;
        }
        let scanned: Value = serde_json::from_str(&scan).expect("JSON");
        let payment_id = scanned["payment"]["paymentId"]
            .as_str()
            .expect("paymentId")
            .to_owned();
        let answer = self
            .mpp_raw(
                NOTIFY,
                &format!("notify-{payment_id}"),
                &notify_body(&payment_id, "W1", "SUCCESS", None),
            )
            .await;
        if result_code(&answer) == "SUCCESS" {
            self.seen
                .lock()
                .expect("books")
                .raw
                .push(RawPay { payment_id, answer });
        }
    }

    async fn work(&self, round: usize, worker: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        for op in 0..OPS_PER_WORKER {
            self.started.fetch_add(1, Ordering::SeqCst);
            let tag = format!("{round}-{worker}-{op}");
            match rng.random_range(0..20) {
                0..=8 => self.pay_dynamic(&tag, &mut rng).await,
                9 => self.pay_parking(&mut rng).await,
                10..=16 => {
                    if !self.refund(&tag, &mut rng).await {
                        self.pay_dynamic(&tag, &mut rng).await;
                    }
                }
                _ => self.pay_raw(&tag, &mut rng).await,
            }
        }
    }
}

const NOTIFY: &str = "/api/v1/qr/notifyPayment";

/// What was checked in earlier rounds and cannot change any more.
#[derive(Default)]
struct Checked {
    purchases: usize,
    raw: usize,
    /// refund id → (purchase, tiyn): completed at the PS and credited once at the MPP.
    refunds: HashMap<i64, (i64, i64)>,
    /// Abandoned requests (by index) found to have placed a refund.
    abandoned_placed: HashSet<usize>,
    /// Per customer: tiyn of payments the PS confirmed, tiyn refunded.
    paid: HashMap<&'static str, i64>,
    refunded: HashMap<&'static str, i64>,
}

impl World {
    /// Waits (bounded) until the PS has delivered every refund and the MPP has settled every
    /// payment, then checks everything the round may have changed.
    async fn check(&self, checked: &mut Checked, everything: bool) {
        let deadline = tokio::time::Instant::now() + SETTLE_FOR;
        let (pending, unsettled) = loop {
            let pending: Vec<i64> = ps_refunds(&self.http, self.url())
                .await
                .into_values()
                .filter(|r| r["status"] == "pending")
                .map(|r| r["refund_id"].as_i64().expect("id"))
                .collect();
            let unsettled = unsettled_payments(&self.bank);
            if (pending.is_empty() && unsettled.is_empty())
                || tokio::time::Instant::now() > deadline
            {
                break (pending, unsettled);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            pending.is_empty(),
            "refunds still undelivered after {SETTLE_FOR:?}: {pending:?}"
        );
        assert!(
            unsettled.is_empty(),
            "payments the MPP still waits on after {SETTLE_FOR:?}: {unsettled:?}"
        );
        let seen = {
            let seen = self.seen.lock().expect("books");
            Seen {
                purchases: seen.purchases.clone(),
                asks: seen.asks.clone(),
                abandoned: seen.abandoned.clone(),
                raw: seen.raw.clone(),
            }
        };
        self.check_payments(&seen, checked, everything).await;
        self.check_refunds(&seen, checked).await;
        for (customer, opening) in OPENING {
            let want = opening - checked.paid.get(customer).copied().unwrap_or(0)
                + checked.refunded.get(customer).copied().unwrap_or(0);
            assert_eq!(
                self.bank.balance(customer).await,
                want,
                "{customer}'s balance to the tiyn"
            );
        }
        assert!(self.bank.balanced().await, "the MPP's ledger balances");
    }

    async fn check_payments(&self, seen: &Seen, checked: &mut Checked, everything: bool) {
        let bank = bank_payments(&self.bank);
        let from = if everything { 0 } else { checked.purchases };
        for p in &seen.purchases[from..] {
            let status = self.pos_status(p.id).await;
            let processed = status["Data"]["Status"] == "Processed";
            let at_bank = bank.get(&p.id.to_string()).map(String::as_str);
            assert_eq!(
                processed,
                at_bank == Some("paid"),
                "purchase {p:?}: the PS says {status}, the MPP {at_bank:?}"
            );
            if p.confirm == "paid" {
                assert!(processed, "purchase {p:?} was acknowledged but is {status}");
            }
            if processed {
                assert_eq!(tiyn(&status["Data"]["Amount"]), p.tiyn, "{status}");
                if !everything {
                    *checked.paid.entry(p.customer).or_default() += p.tiyn;
                }
            }
        }
        checked.purchases = seen.purchases.len();
        let from = if everything { 0 } else { checked.raw };
        for pay in &seen.raw[from..] {
            let status = self
                .pos_status(pay.payment_id.parse().expect("numeric"))
                .await;
            assert_eq!(status["Data"]["Status"], "Processed", "{pay:?}: {status}");
            let again = self
                .mpp_raw(
                    NOTIFY,
                    &format!("notify-{}", pay.payment_id),
                    &notify_body(&pay.payment_id, "W1", "SUCCESS", None),
                )
                .await;
            assert_eq!(
                again, pay.answer,
                "a repeat of notifyPayment {} gets the same bytes",
                pay.payment_id
            );
        }
        checked.raw = seen.raw.len();
    }

    async fn check_refunds(&self, seen: &Seen, checked: &mut Checked) {
        let listed = ps_refunds(&self.http, self.url()).await;
        let oldest = listed.keys().min().copied();
        assert!(
            listed.len() < 500 || oldest.is_some_and(|id| checked.refunds.contains_key(&id)),
            "the PS's newest 500 refunds reach back to ones checked before"
        );
        let purchases: HashMap<i64, &Purchase> = seen.purchases.iter().map(|p| (p.id, p)).collect();
        let asked: HashMap<i64, &Ask> = seen.asks.iter().map(|a| (a.refund_id, a)).collect();
        assert_eq!(
            asked.len(),
            seen.asks.len(),
            "two requests were answered with one refund: {:?}",
            seen.asks
        );
        let books = Books::read(&self.bank);
        assert!(
            books.doubles.is_empty(),
            "refunds credited twice: {:?}",
            books.doubles
        );
        // Every refund the PS holds that was not checked before: asked for (answered, or given up
        // by its POS — each such request places one refund at most), completed, credited.
        let new: Vec<(&i64, &Value)> = listed
            .iter()
            .filter(|(id, _)| !checked.refunds.contains_key(id))
            .collect();
        for (id, r) in new {
            let held = (
                r["payment_id"].as_i64().expect("a purchase"),
                tiyn(&r["amount"]),
            );
            let (purchase, tiyn) = match asked.get(id) {
                Some(ask) => (ask.purchase, ask.tiyn),
                None => {
                    let given_up = (0..seen.abandoned.len()).find(|i| {
                        seen.abandoned[*i] == held && !checked.abandoned_placed.contains(i)
                    });
                    let given_up = given_up.unwrap_or_else(|| {
                        panic!("the PS holds refund {r} no POS asked for (placed twice?)")
                    });
                    checked.abandoned_placed.insert(given_up);
                    held
                }
            };
            assert_eq!(r["status"], "completed", "{r}");
            assert_eq!(held, (purchase, tiyn), "{r}");
            let p = purchases[&purchase];
            assert_eq!(
                books.credited.get(&id.to_string()),
                Some(&(purchase.to_string(), p.customer.to_owned(), tiyn)),
                "refund {id} credited once at the MPP"
            );
            *checked.refunded.entry(p.customer).or_default() += tiyn;
            checked.refunds.insert(*id, (purchase, tiyn));
        }
        for ask in &seen.asks {
            assert!(
                checked.refunds.contains_key(&ask.refund_id),
                "refund {ask:?} was acknowledged but the PS does not show it"
            );
        }
        let credited: HashSet<i64> = books
            .credited
            .keys()
            .map(|id| id.parse().expect("numeric"))
            .collect();
        let known: HashSet<i64> = checked.refunds.keys().copied().collect();
        assert_eq!(
            credited, known,
            "the MPP credited exactly the refunds the PS completed"
        );
    }

    async fn pos_status(&self, id: i64) -> Value {
        let path = format!("/r1/v02/payment/status/{id}");
        let (_, text) = self
            .until_answered(&path, || {
                self.http
                    .get(format!("{}{path}", self.url()))
                    .header("api-key", API_KEY)
            })
            .await;
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}"))
    }
}

/// The reference MPP's payments by paymentId, with their status.
fn bank_payments(bank: &TestMpp) -> HashMap<String, String> {
    let conn = open_books(&bank.db_path());
    let mut stmt = conn
        .prepare("SELECT payment_id, status FROM payments")
        .expect("payments");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("read")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Payments debited (or closing) whose notifyPayment has no final answer yet.
fn unsettled_payments(bank: &TestMpp) -> Vec<String> {
    bank_payments(bank)
        .into_iter()
        .filter(|(_, status)| matches!(status.as_str(), "debited" | "closing"))
        .map(|(id, _)| id)
        .collect()
}

fn open_books(path: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the MPP's books open");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("a busy timeout");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_and_refunds_survive_sigkill_at_random_moments() {
    let rounds: usize = std::env::var("TOLEM_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS_DEFAULT);
    let seed = seed();
    let mut dir = tempfile::Builder::new()
        .prefix("tolem-crash-")
        .tempdir()
        .expect("dir");
    // Kept when the test fails, for the PS's log and database (on PostgreSQL, the database stays
    // in the cluster); removed at the end otherwise.
    dir.disable_cleanup(true);
    println!(
        "crash loop: {rounds} rounds, seed {seed} (TOLEM_CRASH_SEED={seed} repeats the draw), PS files in {}",
        dir.path().display()
    );
    let relay = Relay::start().await;
    let bank = TestMpp::start(&relay.url).await;
    let toml = SANDBOX_TOML.replace(
        "http://127.0.0.1:8091/refund",
        &format!("{}/refund", bank.url),
    ) + REFUNDS_TOML;
    std::fs::write(dir.path().join("ps.toml"), toml).expect("config written");
    let db = fresh_database(dir.path());
    let mut ps = PsProcess::start(dir.path(), &db).await;
    relay.point_at(Some(ps.addr));
    let http = reqwest::Client::builder()
        .timeout(RETRY_FOR)
        .build()
        .expect("a client");
    let mut world = World {
        relay,
        bank,
        http,
        devices: [String::new(), String::new()],
        seen: Mutex::default(),
        started: AtomicUsize::new(0),
        retried: AtomicUsize::new(0),
    };
    for (i, trade_point) in [1001, 1002].into_iter().enumerate() {
        let body = json!({"DeviceId": format!("CRASH-{trade_point}"), "TradePointId": trade_point});
        let answer = world.pos("/r1/v01/device/register", "device", &body).await;
        world.devices[i] = answer["Data"]["DeviceToken"]
            .as_str()
            .expect("a token")
            .to_owned();
    }
    let world = Arc::new(world);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut checked = Checked::default();
    let ops = WORKERS * OPS_PER_WORKER;
    // Requests sent again because the PS was away (killed, or not yet back): none would mean
    // that no kill met the workers at work.
    let mut cut_short = 0;
    for round in 0..rounds {
        world.started.store(0, Ordering::SeqCst);
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let world = world.clone();
                let seed = rng.random::<u64>();
                tokio::spawn(async move { world.work(round, worker, seed).await })
            })
            .collect();
        // The kill comes once a drawn number of operations have begun, a little after.
        let kill_after_ops = rng.random_range(1..=ops);
        let kill_after_ms = rng.random_range(0..40);
        while world.started.load(Ordering::SeqCst) < kill_after_ops {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        world.relay.point_at(None);
        ps.kill().await;
        ps = PsProcess::start(dir.path(), &db).await;
        world.relay.point_at(Some(ps.addr));
        for worker in workers {
            worker.await.expect("a worker finished");
        }
        world.check(&mut checked, false).await;
        let retried = world.retried.swap(0, Ordering::SeqCst);
        cut_short += retried;
        println!(
            "round {round}: killed after {kill_after_ops} of {ops} operations (+{kill_after_ms} ms), {retried} requests sent again; so far {} purchases, {} refunds ({} of {} given up by their POS), {} raw payments",
            checked.purchases,
            checked.refunds.len(),
            checked.abandoned_placed.len(),
            world.seen.lock().expect("books").abandoned.len(),
            checked.raw
        );
    }
    assert!(
        cut_short > 0,
        "no request of {rounds} rounds met the PS away: no kill came while the workers worked"
    );
    // A last kill with nothing in flight, and everything again from the new process.
    world.relay.point_at(None);
    ps.kill().await;
    ps = PsProcess::start(dir.path(), &db).await;
    world.relay.point_at(Some(ps.addr));
    world.check(&mut checked, true).await;
    ps.kill().await;
    let _ = std::fs::remove_dir_all(dir.path());
}
