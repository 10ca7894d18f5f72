//! Faults between the PS and the reference MPP: a TCP proxy that refuses connections, resets in
//! the middle of an answer the MPP already acted on, holds requests or answers past the PS's
//! timeout and sends requests twice — and the test that drives refunds through it and finds each
//! credited exactly once. Also the plain relay the crash loop puts in front of a PS that moves
//! port at every restart, and a reader of the reference MPP's books that both tests check with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tolem_wire::{Amount, Locale};

use crate::harness::*;
use crate::reference_mpp::TestMpp;

/// What the proxy does to one connection from the PS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The request reaches the MPP once and its answer reaches the PS.
    Pass,
    /// The connection is reset before a byte of the request is read: the MPP never sees it.
    Refuse,
    /// The MPP answers in full (so it has applied the refund); the PS gets half of the answer,
    /// then a reset.
    ResetMidAnswer,
    /// The MPP answers at once; the answer is held past the PS's timeout.
    DelayAnswer,
    /// The request is held past the PS's timeout before it reaches the MPP, so it may arrive
    /// while the PS's retry is there too.
    DelayRequest,
    /// The request reaches the MPP twice at the same time; the PS gets one of the answers.
    Duplicate,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Pass,
        Fault::Refuse,
        Fault::ResetMidAnswer,
        Fault::DelayAnswer,
        Fault::DelayRequest,
        Fault::Duplicate,
    ];
}

/// Which fault each connection gets: first `script` in order, then a seeded draw where each
/// fault is as likely as passing.
struct Plan {
    script: std::collections::VecDeque<Fault>,
    rng: StdRng,
}

impl Plan {
    fn next(&mut self) -> Fault {
        self.script
            .pop_front()
            .unwrap_or_else(|| match self.rng.random_range(0..10) {
                0..=4 => Fault::Pass,
                5 => Fault::Refuse,
                6 => Fault::ResetMidAnswer,
                7 => Fault::DelayAnswer,
                8 => Fault::DelayRequest,
                _ => Fault::Duplicate,
            })
    }
}

/// Largest request head or answer the proxy handles; the PS's and the MPP's are far smaller.
const MESSAGE_BYTES_MAX: usize = 256 * 1024;

/// An HTTP/1.1 proxy for one upstream that injects [`Fault`]s, one per connection.
pub struct FaultProxy {
    pub url: String,
    applied: Arc<Mutex<HashMap<Fault, usize>>>,
    /// Requests the upstream received (a duplicated one counts twice).
    forwarded: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Proxies to `upstream`; `delay` is how long the delay faults hold a request or an answer.
    pub async fn start(
        upstream: SocketAddr,
        script: Vec<Fault>,
        seed: u64,
        delay: Duration,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let plan = Arc::new(Mutex::new(Plan {
            script: script.into(),
            rng: StdRng::seed_from_u64(seed),
        }));
        let applied: Arc<Mutex<HashMap<Fault, usize>>> = Arc::default();
        let forwarded: Arc<Mutex<usize>> = Arc::default();
        let (counts, sent) = (applied.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = plan.lock().expect("the plan").next();
                *counts.lock().expect("counts").entry(fault).or_default() += 1;
                tokio::spawn(serve_one(client, upstream, fault, delay, sent.clone()));
            }
        });
        FaultProxy {
            url,
            applied,
            forwarded,
            task,
        }
    }

    /// How many connections got each fault so far.
    pub fn applied(&self) -> HashMap<Fault, usize> {
        self.applied.lock().expect("counts").clone()
    }

    pub fn forwarded(&self) -> usize {
        *self.forwarded.lock().expect("count")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    delay: Duration,
    forwarded: Arc<Mutex<usize>>,
) {
    if fault == Fault::Refuse {
        reset(client);
        return;
    }
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    if fault == Fault::DelayRequest {
        tokio::time::sleep(delay).await;
    }
    let times = if fault == Fault::Duplicate { 2 } else { 1 };
    let answers = join_all((0..times).map(|_| forward(upstream, &request))).await;
    *forwarded.lock().expect("count") += times;
    // The last answer: for a duplicate, the one a repeat of an applied refund gets.
    let Some(Some(answer)) = answers.into_iter().last() else {
        reset(client);
        return;
    };
    match fault {
        Fault::ResetMidAnswer => {
            let _ = client.write_all(&answer[..answer.len() / 2]).await;
            let _ = client.flush().await;
            reset(client);
        }
        Fault::DelayAnswer => {
            tokio::time::sleep(delay).await;
            // The PS gave up long ago; whatever it does with a late answer, nothing is owed.
            let _ = client.write_all(&answer).await;
            let _ = client.shutdown().await;
        }
        _ => {
            let _ = client.write_all(&answer).await;
            let _ = client.shutdown().await;
        }
    }
}

/// Closes with a reset (RST) instead of an orderly close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// One request: its head and its `Content-Length` body; `None` when the peer closed first.
async fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MESSAGE_BYTES_MAX {
            return None;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

/// Sends `request` on a fresh connection to `upstream`, asking it to close after its answer, and
/// reads the whole answer; `None` when the upstream cannot be reached.
async fn forward(upstream: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let head_end = find(request, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&request[..head_end]);
    let mut lines = head.split("\r\n");
    let mut rewritten = format!("{}\r\nconnection: close\r\n", lines.next()?);
    for line in lines.filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("\r\n");
    let mut stream = TcpStream::connect(upstream).await.ok()?;
    stream.write_all(rewritten.as_bytes()).await.ok()?;
    stream.write_all(&request[head_end..]).await.ok()?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MESSAGE_BYTES_MAX as u64)
        .read_to_end(&mut answer)
        .await
        .ok()?;
    Some(answer)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A byte-for-byte TCP relay with a stable address in front of a server that may be anywhere
/// or nowhere: the crash loop points it at each new PS process. While it points nowhere, every
/// connection is closed at once, as a dead server's port would refuse it.
pub struct Relay {
    pub url: String,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let current = upstream.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = *current.lock().expect("upstream");
                tokio::spawn(async move {
                    let Some(to) = to else { return };
                    if let Ok(mut server) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay {
            url,
            upstream,
            task,
        }
    }

    pub fn point_at(&self, upstream: Option<SocketAddr>) {
        *self.upstream.lock().expect("upstream") = upstream;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the reference MPP's own tables say about refunds.
pub struct Books {
    /// refundId → (paymentId, customer, tiyn), from `refunds_applied`.
    pub credited: HashMap<String, (String, String, i64)>,
    /// Ledger references of refund transactions made more than once, and refund transactions
    /// with no mark: a refund credited twice shows here.
    pub doubles: Vec<String>,
}

impl Books {
    pub fn read(bank: &TestMpp) -> Books {
        let conn = rusqlite::Connection::open_with_flags(
            bank.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("the MPP's books open");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("a busy timeout");
        let mut stmt = conn
            .prepare("SELECT refund_id, payment_id, customer_id, amount_tiyn FROM refunds_applied")
            .expect("refunds_applied");
        let credited = stmt
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
            .expect("read")
            .collect::<Result<_, _>>()
            .expect("rows");
        let mut stmt = conn
            .prepare(
                "SELECT t.reference FROM ledger_txns t LEFT JOIN refunds_applied a ON a.txn_id = t.id \
                 WHERE t.kind = 'refund' GROUP BY t.reference HAVING COUNT(*) > 1 OR MAX(a.refund_id) IS NULL",
            )
            .expect("ledger_txns");
        let doubles = stmt
            .query_map([], |r| r.get(0))
            .expect("read")
            .collect::<Result<_, _>>()
            .expect("rows");
        Books { credited, doubles }
    }
}

/// The PS's refunds as the operator sees them, every page of them, by refund id.
pub async fn ps_refunds(admin: &reqwest::Client, ps_url: &str) -> HashMap<i64, Value> {
    let mut refunds = HashMap::new();
    let mut after: Option<i64> = None;
    loop {
        let cursor = after.map(|id| format!("&after={id}")).unwrap_or_default();
        let page: Value = admin
            .get(format!("{ps_url}/admin/v1/refunds?limit=500{cursor}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the PS answers")
            .json()
            .await
            .expect("JSON");
        for r in page["refunds"].as_array().expect("a list") {
            refunds.insert(r["refund_id"].as_i64().expect("an id"), r.clone());
        }
        match page["next"].as_i64() {
            Some(next) => after = Some(next),
            None => return refunds,
        }
    }
}

/// Tiyn of an amount as the PS writes it (a string or a number with two decimals).
pub fn tiyn(v: &Value) -> i64 {
    let amount: Amount = serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("{v}"));
    i64::try_from(amount.tiyn()).expect("fits")
}

/// The seed of a test's draw: `TOLEM_CRASH_SEED`, or a fresh one (printed by the test).
pub fn seed() -> u64 {
    std::env::var("TOLEM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// The delay faults hold a request or answer this long: well past the PS's timeout below.
const FAULT_DELAY: Duration = Duration::from_millis(2_500);
const PURCHASES: u64 = 12;

#[tokio::test]
async fn refunds_through_a_faulty_network_are_credited_exactly_once() {
    let seed = seed();
    println!("fault proxy seed {seed} (TOLEM_CRASH_SEED={seed} repeats the draw)");
    let ps = TestPs::start_configured(|c| {
        // A clean call answers within it even on a loaded machine; a delayed one does not.
        c.refunds.request_timeout_ms = 1_000;
        c.refunds.retry_delay_ms_initial = 100;
        c.refunds.retry_delay_ms_max = 400;
    })
    .await;
    let bank = TestMpp::start(&ps.url).await;
    let upstream: SocketAddr = bank
        .url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("the MPP's address");
    // Each fault once for the first deliveries, so that every kind is met whatever the draw.
    let proxy = FaultProxy::start(upstream, Fault::ALL.to_vec(), seed, FAULT_DELAY).await;
    ps.set_refund_url("demobank", &format!("{}/refund", proxy.url))
        .await;
    let device = ps.device("POS-F").await;
    let mut paid = Vec::new();
    for i in 0..PURCHASES {
        let (qr, id) = ps.dynamic_qr(&device, 10 + i).await;
        bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scan");
        let view = bank
            .mpp
            .confirm("C1", &id.to_string(), None, Locale::Ru)
            .await
            .expect("confirm");
        assert_eq!(view.status, "paid");
        paid.push((id, (10 + i) * 100));
    }
    // Two refunds of each purchase: a part, then all that is left, placed together.
    let refunds = join_all(paid.iter().flat_map(|&(id, tiyn)| {
        let part = tiyn / 4;
        [(id, part), (id, tiyn - part)].map(|(id, amount)| {
            let ps = &ps;
            let device = &device;
            async move {
                let body = json!({"DeviceToken": device, "QrPaymentId": id, "Amount": Amount::from_tiyn(amount), "OrganizationBin": "990340001234"});
                let (_, answer) = ps
                    .pos("POST", "/r3/v01/payment/return", API_KEY, Some(&body))
                    .await;
                assert_eq!(answer["StatusCode"], 0, "{answer}");
                let refund = answer["Data"]["ReturnOperationId"]
                    .as_i64()
                    .expect("placed");
                (refund, id, amount)
            }
        })
    }))
    .await;
    // The PS's clock stands still until wait_until moves it, so a failed delivery waits for its
    // retry and the operator sees why it failed.
    let admin = reqwest::Client::new();
    let mut failing = None;
    for _ in 0..500 {
        failing = ps_refunds(&admin, &ps.url).await.into_values().find(|r| {
            r["status"] == "pending" && r["last_error"].as_str().is_some_and(|e| !e.is_empty())
        });
        if failing.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failing = failing.expect("a failing delivery shows its last error in the admin API");
    assert!(failing["attempts"].as_i64().unwrap_or(0) >= 1, "{failing}");
    // Each step moves the PS's clock a second, so every failed delivery falls due again.
    let mut unfinished = Vec::new();
    for _ in 0..300 {
        let list = ps_refunds(&admin, &ps.url).await;
        unfinished = refunds
            .iter()
            .filter_map(|(id, _, _)| list.get(id).filter(|r| r["status"] != "completed"))
            .cloned()
            .collect();
        if unfinished.is_empty() {
            break;
        }
        ps.advance(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        unfinished.is_empty(),
        "refunds not delivered through the faults: {unfinished:?}; the MPP credited {:?}",
        Books::read(&bank).credited
    );
    let books = Books::read(&bank);
    assert!(
        books.doubles.is_empty(),
        "credited twice: {:?}",
        books.doubles
    );
    assert_eq!(books.credited.len(), refunds.len(), "{:?}", books.credited);
    for (refund, payment, amount) in &refunds {
        let credited = books.credited.get(&refund.to_string());
        assert_eq!(
            credited,
            Some(&(
                payment.to_string(),
                "C1".to_owned(),
                i64::try_from(*amount).expect("fits")
            )),
            "refund {refund} credited once, in full"
        );
    }
    // Every purchase was refunded in full: the customer has all of the opening deposit back.
    assert_eq!(bank.balance("C1").await, 5_000_000);
    assert!(bank.balanced().await);
    let applied = proxy.applied();
    for fault in Fault::ALL {
        assert!(
            applied.get(&fault).is_some_and(|&n| n > 0),
            "{fault:?} never happened: {applied:?}"
        );
    }
    // Resets, delays and duplicates made the MPP see refunds more than once.
    assert!(proxy.forwarded() > refunds.len(), "{}", proxy.forwarded());
}
