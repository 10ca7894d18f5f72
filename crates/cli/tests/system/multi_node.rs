//! Several PS nodes on one PostgreSQL database (DECISIONS 45): real `tolem serve` processes, each
//! with its own `node_name` and port, on one fresh database, with requests spread over them.
//! Concurrent identical notifies and scans get one effect and byte-identical answers whichever
//! node they reach; concurrent partial refunds never exceed the purchase; the node holding refund
//! leases is killed with SIGKILL and the others deliver, each refund credited once at the
//! reference MPP; each register is e-mailed once although every node's scheduler runs; an
//! operator change made through one node is seen by the others within the catalog check (a
//! cabinet token issued or revoked included); a POS
//! waiting on one node for the MPP's answer hears it when another node delivered the refund;
//! scans and notifyPayments of Dynamic and Static QRs stay on each node's async workers (its
//! counters); nodes with `reuse_port` share one port without a balancer, and one of them can
//! stop and start again while the others keep answering on it.
//!
//! Only PostgreSQL has several nodes: in the SQLite binary (`system`) each test says so in one
//! line and returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::future::join_all;
use jiff::Timestamp;
use serde_json::{Value, json};
use tempfile::TempDir;
use tolem_wire::Locale;

use crate::backend::{Backend, backend};
use crate::durability::Child;
use crate::fault_proxy::{Books, Fault, FaultProxy, Relay, ps_refunds, tiyn};
use crate::harness::*;
use crate::receiver::{Act, Receiver};
use crate::reference_mpp::TestMpp;
use crate::registers::{check_xlsx, expected, local};
use crate::smtp::SmtpServer;

const SCAN: &str = "/api/v1/qr/scan";
const NOTIFY: &str = "/api/v1/qr/notifyPayment";
const CHECKOUT: &str = "/api/v1/qr/checkout";
const RETURN: &str = "/r3/v01/payment/return";
/// The merchant API's refusal of a refund larger than what is left of the purchase.
const AMOUNT_EXCEEDED: i64 = -99_000_005;

/// True on PostgreSQL. On SQLite it says why the test does not run there and returns false.
fn postgres_only() -> bool {
    if backend() == Backend::Postgres {
        return true;
    }
    eprintln!("PostgreSQL only, not run on SQLite: several nodes share one PostgreSQL database");
    false
}

/// `tolem serve` processes on one database, each with its own configuration file (the same
/// operator data, its own `node_name`); every one is killed with SIGKILL when dropped.
struct Nodes {
    nodes: Vec<Option<Child>>,
    urls: Vec<String>,
    db: PathBuf,
    dir: TempDir,
    toml: String,
}

impl Nodes {
    /// A fresh database and the configuration every node gets (`toml` after its `node_name`);
    /// no node runs yet.
    fn prepare(toml: String) -> Nodes {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = fresh_database(dir.path());
        Nodes {
            nodes: Vec::new(),
            urls: Vec::new(),
            db,
            dir,
            toml,
        }
    }

    /// `count` nodes on a fresh database, `node-0`, `node-1`, …
    fn start(count: usize, toml: String) -> Nodes {
        let mut nodes = Nodes::prepare(toml);
        nodes.add_at_once(count);
        nodes
    }

    /// One more node, `node-<n>`.
    fn add(&mut self) {
        self.add_at_once(1);
    }

    /// `count` more nodes started at the same time, so that they come up together.
    fn add_at_once(&mut self, count: usize) {
        let first = self.nodes.len();
        let configs: Vec<PathBuf> = (first..first + count)
            .map(|at| {
                let config = self.dir.path().join(format!("node-{at}.toml"));
                // `node_name` is a top-level key: it comes before the file's first table.
                std::fs::write(&config, format!("node_name = \"node-{at}\"\n{}", self.toml))
                    .expect("config written");
                config
            })
            .collect();
        let db = &self.db;
        let children: Vec<Child> = std::thread::scope(|s| {
            let started: Vec<_> = configs
                .iter()
                .map(|config| s.spawn(move || Child::start(config, db)))
                .collect();
            started
                .into_iter()
                .map(|t| t.join().expect("the node started"))
                .collect()
        });
        for child in children {
            self.urls.push(child.url.clone());
            self.nodes.push(Some(child));
        }
    }

    /// The address of node `at`, for a relay.
    fn addr(&self, at: usize) -> SocketAddr {
        self.urls[at]
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .expect("an address")
    }

    /// The URL of the node that takes the `i`-th request of a round robin.
    fn url(&self, i: usize) -> &str {
        &self.urls[i % self.urls.len()]
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self, at: usize) {
        self.nodes[at].take().expect("running").kill();
    }

    fn books(&self) -> PsBooks {
        PsBooks::open(&self.db)
    }
}

/// The sandbox's operator data with the MPPs' refunds sent to `refund_url`.
fn sandbox_toml(refund_url: &str) -> String {
    SANDBOX_TOML
        .replace("http://127.0.0.1:8091/refund", refund_url)
        .replace("http://127.0.0.1:8092/refund", refund_url)
}

/// A merchant API call: (HTTP status, parsed body).
async fn pos(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    request_id: Option<&str>,
    body: &Value,
) -> Value {
    let mut req = http
        .post(format!("{url}{path}"))
        .header("api-key", API_KEY)
        .json(body);
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let text = req
        .send()
        .await
        .expect("the node answers")
        .text()
        .await
        .expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}"))
}

/// An MPP API call as demobank: the body's bytes.
async fn mpp(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    request_id: &str,
    body: &Value,
) -> String {
    http.post(format!("{url}{path}"))
        .header("x-caller-name", "demobank")
        .header("x-request-id", request_id)
        .json(body)
        .send()
        .await
        .expect("the node answers")
        .text()
        .await
        .expect("a body")
}

async fn admin(http: &reqwest::Client, url: &str, path: &str, body: Option<&Value>) -> Value {
    let req = match body {
        Some(body) => http.post(format!("{url}{path}")).json(body),
        None => http.get(format!("{url}{path}")),
    };
    let resp = req
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the node answers");
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.expect("JSON")
}

async fn device(http: &reqwest::Client, url: &str) -> String {
    let answer = pos(
        http,
        url,
        "/r1/v01/device/register",
        None,
        &json!({"DeviceId": "POS-1", "TradePointId": 1001}),
    )
    .await;
    answer["Data"]["DeviceToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a device token: {answer}"))
        .to_owned()
}

/// A Dynamic QR of `amount` (tenge, as the merchant API takes it): (QrToken, QrPaymentId).
async fn dynamic_qr(
    http: &reqwest::Client,
    url: &str,
    device: &str,
    amount: Value,
) -> (String, i64) {
    let answer = pos(
        http,
        url,
        "/r1/v01/qr/create",
        None,
        &json!({"DeviceToken": device, "Amount": amount}),
    )
    .await;
    assert_eq!(answer["StatusCode"], 0, "{answer}");
    (
        answer["Data"]["QrToken"]
            .as_str()
            .expect("a token")
            .to_owned(),
        answer["Data"]["QrPaymentId"].as_i64().expect("an id"),
    )
}

/// A purchase scanned and paid through demobank over raw HTTP; returns its id.
async fn paid(http: &reqwest::Client, url: &str, device: &str, amount: Value) -> i64 {
    let (qr, id) = dynamic_qr(http, url, device, amount).await;
    let scanned = mpp(
        http,
        url,
        SCAN,
        &format!("scan-{id}"),
        &json!({"qrCode": qr, "customerId": "C1"}),
    )
    .await;
    assert_eq!(result_code(&scanned), "SUCCESS", "{scanned}");
    let answer = mpp(
        http,
        url,
        NOTIFY,
        &format!("notify-{id}"),
        &notify_body(&id.to_string(), "C1", "SUCCESS", None),
    )
    .await;
    assert_eq!(result_code(&answer), "SUCCESS", "{answer}");
    id
}

/// Waits until `done` holds, checking every 20 ms; fails after `bound`. Returns how long it took.
async fn within<F, Fut>(bound: Duration, what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if done().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_identical_creates_scans_notifies_and_checkouts_over_three_nodes_have_one_effect() {
    if !postgres_only() {
        return;
    }
    let nodes = Nodes::start(3, SANDBOX_TOML.to_owned());
    let books = nodes.books();
    let http = reqwest::Client::new();
    let device = device(&http, nodes.url(0)).await;

    // 50 identical qr/create calls of a POS under one X-Request-ID, at once, round robin: one
    // purchase (READ COMMITTED: the answer's unique key makes every loser run again and find
    // the winner's answer), and the same answer to all.
    let order = json!({"DeviceToken": device, "Amount": 300, "ExternalId": "ORDER-50"});
    let creates = join_all((0..50).map(|i| {
        pos(
            &http,
            nodes.url(i),
            "/r1/v01/qr/create",
            Some("create-once"),
            &order,
        )
    }))
    .await;
    assert_eq!(creates[0]["StatusCode"], 0, "{}", creates[0]);
    let distinct: HashSet<String> = creates.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), 1, "50 creates, one body: {distinct:?}");
    assert_eq!(
        books.count(
            "SELECT COUNT(*) FROM payments WHERE external_id = 'ORDER-50'",
            &[]
        ),
        1,
        "one purchase"
    );
    let qr = creates[0]["Data"]["QrToken"]
        .as_str()
        .expect("a token")
        .to_owned();
    let id = creates[0]["Data"]["QrPaymentId"].as_i64().expect("an id");

    // 50 identical scans of one Dynamic QR under one X-Request-ID, at once, round robin.
    let scan = json!({"qrCode": qr, "customerId": "C1"});
    let scans = join_all((0..50).map(|i| mpp(&http, nodes.url(i), SCAN, "scan-once", &scan))).await;
    assert_eq!(result_code(&scans[0]), "SUCCESS", "{}", scans[0]);
    let distinct: HashSet<&String> = scans.iter().collect();
    assert_eq!(distinct.len(), 1, "50 scans, one body: {distinct:?}");
    let scanned: Value = serde_json::from_str(&scans[0]).expect("JSON");
    assert_eq!(scanned["payment"]["paymentId"], id.to_string());
    assert_eq!(
        books.count("SELECT COUNT(*) FROM payments WHERE qr_token = ?1", &[&qr]),
        1
    );

    // 50 identical notifies under one X-Request-ID, at once, round robin.
    let body = notify_body(&id.to_string(), "C1", "SUCCESS", None);
    let notifies =
        join_all((0..50).map(|i| mpp(&http, nodes.url(i), NOTIFY, "notify-once", &body))).await;
    assert_eq!(result_code(&notifies[0]), "SUCCESS", "{}", notifies[0]);
    let distinct: HashSet<&String> = notifies.iter().collect();
    assert_eq!(distinct.len(), 1, "50 notifies, one body: {distinct:?}");

    // One effect, the same through every node.
    for url in &nodes.urls {
        let status = pos_status(&http, url, id).await;
        assert_eq!(status["Data"]["Status"], "Processed", "{status}");
        assert_eq!(tiyn(&status["Data"]["Amount"]), 30_000, "{status}");
        let view = admin(&http, url, &format!("/admin/v1/payments/{id}"), None).await;
        assert_eq!(view["status"], "confirmed", "{view}");
    }
    let row = books.one(
        "SELECT status, amount_tiyn, mpp_payment_id, COUNT(*) OVER () FROM payments \
         WHERE trade_point_id = 1001 AND customer_id = 'C1'",
        &[],
    );
    assert_eq!(
        (row.text(0), row.int(1), row.text(2), row.int(3)),
        ("confirmed".to_owned(), 30_000, format!("M-{id}"), 1),
        "one purchase, paid once"
    );
    assert_eq!(
        books.count(
            "SELECT COUNT(DISTINCT receipt_token) FROM payments WHERE id = ?1",
            &[&id]
        ),
        1,
        "one receipt"
    );
    // A repeat later, through any node, still gets the same bytes.
    for i in 0..3 {
        let again = mpp(&http, nodes.url(i), NOTIFY, "notify-once", &body).await;
        assert_eq!(again, notifies[0]);
    }

    // 30 concurrent checkouts of one Custom QR's purchase, each its own request with its own
    // parameters, round robin: the purchase is locked while one decides, so one freezes its
    // amount and every other gets that answer byte for byte.
    let scan = json!({"qrCode": PARKING_QR, "customerId": "C4"});
    let custom = scanned_id(&http, nodes.url(0), "custom-scan", &scan).await;
    let checkouts = join_all((0..30).map(|i| {
        let option = ["1h", "3h", "day"][i % 3];
        let body = json!({"paymentId": custom, "serviceId": 2862, "parameters": [
            {"id": 3932, "value": format!("{i:03}ABC02")}, {"id": 3933, "value": option}]});
        let (http, url) = (&http, nodes.url(i));
        async move { mpp(http, url, CHECKOUT, &format!("checkout-{i}"), &body).await }
    }))
    .await;
    assert_eq!(result_code(&checkouts[0]), "SUCCESS", "{}", checkouts[0]);
    let distinct: HashSet<&String> = checkouts.iter().collect();
    assert_eq!(distinct.len(), 1, "30 checkouts, one answer: {distinct:?}");
    // The answer all got is the one the purchase keeps.
    let kept = books.one_text(
        "SELECT checkout_response FROM payments WHERE id = ?1",
        &[&custom.parse::<i64>().expect("an id")],
    );
    assert_eq!(kept, checkouts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_partial_refunds_over_three_nodes_never_exceed_the_purchase() {
    if !postgres_only() {
        return;
    }
    let receiver = Receiver::start().await;
    let toml = sandbox_toml(&receiver.url) + "\n[refunds]\npos_wait_ms = 0\n";
    let nodes = Nodes::start(3, toml);
    let http = reqwest::Client::new();
    let device = device(&http, nodes.url(0)).await;
    // 10 ₸: 1000 tiyn.
    let purchase = paid(&http, nodes.url(1), &device, json!(10)).await;
    // 20 refunds of 100 tiyn and 4 of 150, at once, each with its own X-Request-ID, round robin.
    let asks: Vec<i64> = (0..24)
        .map(|i| if i % 6 == 5 { 150 } else { 100 })
        .collect();
    let answers = join_all(asks.iter().enumerate().map(|(i, tiyn)| {
        let amount = format!("{}.{:02}", tiyn / 100, tiyn % 100);
        let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": amount.parse::<f64>().expect("a number"), "OrganizationBin": "990340001234"});
        let (http, url) = (&http, nodes.url(i));
        async move { pos(http, url, RETURN, Some(&format!("refund-{i}")), &body).await }
    }))
    .await;
    let mut accepted = 0;
    let mut refused = Vec::new();
    let mut ids = HashSet::new();
    for (answer, tiyn) in answers.iter().zip(&asks) {
        match answer["StatusCode"].as_i64() {
            Some(0) => {
                accepted += tiyn;
                let id = answer["Data"]["ReturnOperationId"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("a refund id: {answer}"));
                assert!(ids.insert(id), "one refund per request: {answer}");
            }
            Some(AMOUNT_EXCEEDED) => {
                let why = answer["Message"].as_str().unwrap_or_default();
                assert!(!why.is_empty(), "a refusal says why: {answer}");
                refused.push(*tiyn);
            }
            _ => panic!("a refund of {tiyn} tiyn is placed or refused as too large: {answer}"),
        }
    }
    assert!(accepted <= 1_000, "refunded {accepted} of 1000 tiyn");
    let books = nodes.books();
    let held = books.one(
        "SELECT CAST(COALESCE(SUM(amount_tiyn), 0) AS BIGINT), COUNT(*) FROM refunds WHERE payment_id = ?1",
        &[&purchase],
    );
    assert_eq!(
        (held.int(0), usize::try_from(held.int(1)).expect("a count")),
        (accepted, ids.len()),
        "the store holds exactly the refunds answered as placed; the refused left nothing"
    );
    // What is left only shrinks: a refusal was right if even the end leaves too little for it.
    let left = 1_000 - accepted;
    for tiyn in &refused {
        assert!(
            left < *tiyn,
            "a refund of {tiyn} tiyn was refused, yet {left} tiyn are left"
        );
    }
    assert!(!refused.is_empty(), "2450 tiyn asked of 1000");
    for url in &nodes.urls {
        let path = format!("/r2/v01/payment/details?QrPaymentId={purchase}&DeviceToken={device}");
        let details = pos_get(&http, url, &path).await;
        assert_eq!(
            tiyn(&details["Data"]["AvailableReturnAmount"]),
            left,
            "{details}"
        );
    }
    // Every one placed is delivered once.
    within(
        Duration::from_secs(30),
        "every refund is credited",
        || async { receiver.credited().len() == ids.len() },
    )
    .await;
}

/// The reference MPP's address, for a proxy in front of it.
fn addr_of(url: &str) -> SocketAddr {
    url.strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("an address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_refunds_of_a_node_killed_while_delivering_are_delivered_by_the_others_once() {
    if !postgres_only() {
        return;
    }
    const REFUNDS: usize = 3;
    // Long enough for two more debug-build nodes to start on a loaded CI machine before node 0's
    // leases run out (the test checks that they still run when it kills node 0).
    const LEASE_MS: u64 = 8_000;
    // The held deliveries reach the MPP this long after they were sent: after the dead node's
    // lease ran out, so probably after another node delivered them too.
    const HELD: Duration = Duration::from_secs(10);
    // The MPP pays through a relay, so that it reaches whichever node is alive.
    let relay = Relay::start().await;
    let bank = TestMpp::start(&relay.url).await;
    // The first deliveries are held on the way (the sender waits for an answer that does not
    // come in time); every later one passes.
    let script: Vec<Fault> = std::iter::repeat_n(Fault::DelayRequest, REFUNDS)
        .chain(std::iter::repeat_n(Fault::Pass, 1_000))
        .collect();
    let proxy = FaultProxy::start(addr_of(&bank.url), script, 0, HELD).await;
    // Calls time out just before the lease runs out; a claim's lease covers one call.
    let toml = sandbox_toml(&format!("{}/refund", proxy.url))
        + &format!(
            "\n[refunds]\nlease_ms = {LEASE_MS}\nrequest_timeout_ms = {}\nretry_delay_ms_initial = 50\nretry_delay_ms_max = 200\npoll_interval_ms = 20\npos_wait_ms = 0\n",
            LEASE_MS - 500
        );
    let mut nodes = Nodes::prepare(toml);
    // Node 0 runs alone while the refunds are placed: it claims every one.
    nodes.add();
    relay.point_at(Some(nodes.addr(0)));
    let http = reqwest::Client::new();
    let device = device(&http, nodes.url(0)).await;
    let (qr, purchase) = dynamic_qr(&http, nodes.url(0), &device, json!(1000)).await;
    bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scanned");
    let confirmed = bank
        .mpp
        .confirm("C1", &purchase.to_string(), None, Locale::Ru)
        .await
        .expect("paid");
    assert_eq!(confirmed.status, "paid");
    let mut refunds = BTreeMap::new();
    for i in 0..REFUNDS {
        let tiyn = 10_000 * (i64::try_from(i).expect("small") + 1);
        let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": tiyn / 100, "OrganizationBin": "990340001234"});
        let answer = pos(&http, nodes.url(0), RETURN, Some(&format!("r-{i}")), &body).await;
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        let id = answer["Data"]["ReturnOperationId"].as_i64().expect("an id");
        refunds.insert(id, tiyn);
    }
    within(
        Duration::from_secs(10),
        "node 0's first deliveries are on their way, held",
        || async { proxy.applied().get(&Fault::DelayRequest) == Some(&REFUNDS) },
    )
    .await;
    // Two more nodes, then the one holding the leases dies with its calls in flight.
    nodes.add();
    nodes.add();
    let books = nodes.books();
    let leases = books.rows(
        "SELECT lease_node, lease_until_ms FROM outbox WHERE kind = 'refund' AND done_at_ms IS NULL",
        &[],
    );
    assert_eq!(leases.len(), REFUNDS);
    let now_ms = Timestamp::now().as_millisecond();
    for lease in &leases {
        assert_eq!(lease.text(0), "node-0", "{lease:?}");
        assert!(
            lease.int(1) > now_ms,
            "node 0's lease still runs: {lease:?}"
        );
    }
    let connections: usize = proxy.applied().values().sum();
    assert_eq!(
        connections, REFUNDS,
        "node 0 made one call per refund so far"
    );
    nodes.kill(0);
    relay.point_at(Some(nodes.addr(1)));

    // The others deliver once node 0's leases ran out.
    let taken = within(
        Duration::from_millis(LEASE_MS + 5_000),
        "every refund is completed by the living nodes",
        || async {
            let listed = ps_refunds(&http, nodes.url(1)).await;
            refunds
                .keys()
                .all(|id| listed.get(id).is_some_and(|r| r["status"] == "completed"))
        },
    )
    .await;
    eprintln!("delivered by the living nodes {taken:?} after the kill (lease {LEASE_MS} ms)");
    // The last claim of each (the lease names its node) was a living node's.
    let completed = books.rows(
        "SELECT lease_node FROM outbox WHERE kind = 'refund' AND done_at_ms IS NOT NULL",
        &[],
    );
    assert_eq!(completed.len(), REFUNDS);
    for row in &completed {
        assert_ne!(row.text(0), "node-0", "delivered by a living node");
    }
    // The held calls reach the MPP too, late; it applies each refundId once.
    within(
        HELD + Duration::from_secs(10),
        "every call has reached the MPP",
        || async { proxy.forwarded() == proxy.applied().values().sum::<usize>() },
    )
    .await;
    let books_of_mpp = Books::read(&bank);
    assert!(
        books_of_mpp.doubles.is_empty(),
        "credited twice: {:?}",
        books_of_mpp.doubles
    );
    let credited: BTreeMap<i64, i64> = books_of_mpp
        .credited
        .iter()
        .map(|(id, (payment, customer, tiyn))| {
            assert_eq!((payment, customer.as_str()), (&purchase.to_string(), "C1"));
            (id.parse().expect("a numeric refundId"), *tiyn)
        })
        .collect();
    assert_eq!(credited, refunds, "each refund credited once, in full");
    let listed = ps_refunds(&http, nodes.url(2)).await;
    for id in refunds.keys() {
        assert_eq!(listed[id]["status"], "completed", "{}", listed[id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pos_waiting_on_one_node_hears_the_answer_another_node_recorded() {
    if !postgres_only() {
        return;
    }
    // The POS's wait (DECISIONS 39): long, so that an answer heard only at its end would show.
    const POS_WAIT_MS: u64 = 40_000;
    // The MPP answers every call after a second: node 0 gives up on it sooner, node 1 does not.
    const MPP_ANSWERS_AFTER: Duration = Duration::from_millis(1_000);
    let receiver = Receiver::start().await;
    receiver.script(std::iter::repeat_n(Act::Hang(MPP_ANSWERS_AFTER), 1_000));
    let refunds = |timeout_ms: u64| {
        format!(
            "\n[refunds]\nlease_ms = {}\nrequest_timeout_ms = {timeout_ms}\nretry_delay_ms_initial = 50\nretry_delay_ms_max = 200\npoll_interval_ms = 20\npos_wait_ms = {POS_WAIT_MS}\n",
            timeout_ms + 3_000
        )
    };
    let mut nodes = Nodes::prepare(sandbox_toml(&receiver.url) + &refunds(300));
    nodes.add();
    nodes.toml = sandbox_toml(&receiver.url) + &refunds(5_000);
    nodes.add();
    let http = reqwest::Client::new();
    let device = device(&http, nodes.url(0)).await;
    let purchase = paid(&http, nodes.url(0), &device, json!(1000)).await;

    // Placed through node 0, which waits while its own calls time out and node 1 delivers.
    let started = Instant::now();
    let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": 100, "OrganizationBin": "990340001234"});
    let answer = pos(&http, nodes.url(0), RETURN, Some("r-1"), &body).await;
    let waited = started.elapsed();
    assert_eq!(answer["StatusCode"], 0, "{answer}");
    let books = nodes.books();
    let delivered = books.rows(
        "SELECT lease_node FROM outbox WHERE kind = 'refund' AND done_at_ms IS NOT NULL",
        &[],
    );
    assert_eq!(delivered.len(), 1, "one refund, delivered");
    assert_eq!(
        delivered[0].text(0),
        "node-1",
        "delivered by the other node"
    );
    // Heard through the read every 100 ms, not at the end of the wait.
    assert!(
        waited < Duration::from_millis(POS_WAIT_MS / 2),
        "answered after {waited:?}, the wait is {POS_WAIT_MS} ms"
    );
    eprintln!("the POS heard node 1's delivery through node 0 after {waited:?}");
    assert_eq!(receiver.credited().len(), 1, "credited once");
}

/// The e-mails received, by their attachment's name.
fn by_register(mails: &[crate::smtp::Mail]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for mail in mails {
        *seen.entry(mail.attachment().0).or_insert(0) += 1;
    }
    seen
}

/// Waits, on the real clock, until this day's minutes around midnight in `zone` are over: from
/// two minutes before it to 00:06, a register of yesterday cannot be made yet (from 00:05) or the
/// day would change during the test.
async fn away_from_midnight(zone: &jiff::tz::TimeZone) {
    let now = Timestamp::now().to_zoned_datetime(zone.clone());
    let minute = i32::from(now.hour()) * 60 + i32::from(now.minute());
    if (6..23 * 60 + 58).contains(&minute) {
        return;
    }
    let day = (now.timestamp() + jiff::SignedDuration::from_mins(10))
        .to_zoned_datetime(zone.clone())
        .date();
    let at = day
        .at(0, 6, 0, 0)
        .to_zoned_datetime(zone.clone())
        .expect("00:06 exists")
        .timestamp();
    let wait = at.duration_since(now.timestamp());
    tokio::time::sleep(wait.unsigned_abs()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_register_is_e_mailed_once_by_three_nodes() {
    if !postgres_only() {
        return;
    }
    let smtp = SmtpServer::start().await;
    let almaty = tolem_wire::time::zone("Asia/Almaty").expect("bundled");
    away_from_midnight(&almaty).await;
    let today = Timestamp::now().to_zoned_datetime(almaty).date();
    let yesterday = today.yesterday().expect("a day before");
    let wallet = "commission_min = \"1.00\"\n";
    assert!(SANDBOX_TOML.contains(wallet));
    let base = sandbox_toml("http://127.0.0.1:9/refund").replace(
        wallet,
        &format!("{wallet}register_email = \"registers@demowallet.example\"\n"),
    );
    // A first node without e-mail makes the schema and takes the day's payments.
    let mut nodes = Nodes::prepare(base.clone());
    nodes.add();
    let http = reqwest::Client::new();
    let device = device(&http, nodes.url(0)).await;
    let mut paid_ids = Vec::new();
    for amount in [1500, 20] {
        paid_ids.push(paid(&http, nodes.url(0), &device, json!(amount)).await);
    }
    let (qr, id) = dynamic_qr(&http, nodes.url(0), &device, json!(300)).await;
    let scanned = http
        .post(format!("{}{SCAN}", nodes.url(0)))
        .header("x-caller-name", "demowallet")
        .header("x-request-id", "w")
        .json(&json!({"qrCode": qr, "customerId": "W1"}))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert_eq!(result_code(&scanned), "SUCCESS", "{scanned}");
    let notified = http
        .post(format!("{}{NOTIFY}", nodes.url(0)))
        .header("x-caller-name", "demowallet")
        .header("x-request-id", "w")
        .json(&notify_body(&id.to_string(), "W1", "SUCCESS", None))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    assert_eq!(result_code(&notified), "SUCCESS", "{notified}");
    paid_ids.push(id);
    nodes.kill(0);
    // The payments were made yesterday, and the registers were last queued days ago: those of
    // the days since are due today (from midnight, today a working day whatever the calendar
    // says), and yesterday's daily registers hold the payments. The clock of a process is the
    // real one.
    let writer = PsBooks::open_for_writing(&nodes.db);
    let day_ms: i64 = 86_400_000;
    for id in &paid_ids {
        let changed = writer.execute(
            "UPDATE payments SET created_at_ms = created_at_ms - ?2, scanned_at_ms = scanned_at_ms - ?2, \
             finished_at_ms = finished_at_ms - ?2 WHERE id = ?1",
            &[id, &day_ms],
        );
        assert_eq!(changed, 1);
    }
    // Queued last a week and a day ago: the working days since are caught up too, so that
    // there are more e-mails than nodes.
    let last_run = today.checked_sub(jiff::Span::new().days(8)).expect("a day");
    writer.execute(
        "INSERT INTO register_schedule (id, last_run_date, updated_at_ms) VALUES (1, ?1, 0) \
         ON CONFLICT (id) DO UPDATE SET last_run_date = excluded.last_run_date",
        &[&last_run.to_string()],
    );
    drop(writer);
    nodes.toml = base.replace(
        "[registers]\n",
        &format!(
            "[registers]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nfrom = \"Tolem PS <registers@ps.tolem.test>\"\n\
             send_at = \"00:00:00\"\nextra_working_days = [\"{today}\"]\npoll_interval_ms = 20\n\
             smtp_timeout_ms = 2000\nretry_delay_ms_initial = 1000\nretry_delay_ms_max = 4000\n",
            smtp.port
        ),
    );
    // Three nodes, each with its scheduler, on the same registers. The relay refuses every
    // e-mail until all three run, so that their retries meet.
    smtp.refuse_next(usize::MAX);
    nodes.add_at_once(3);
    let books = nodes.books();
    within(
        Duration::from_secs(10),
        "the registers are queued and tried",
        || async { smtp.refused() > 0 },
    )
    .await;
    smtp.refuse_next(0);
    let queued = |books: &PsBooks| books.count("SELECT COUNT(*) FROM register_deliveries", &[]);
    within(
        Duration::from_secs(20),
        "the registers are queued and every one sent",
        || async {
            let n = queued(&books);
            n > 0
                && books.count(
                    "SELECT COUNT(*) FROM register_deliveries WHERE sent_at_ms IS NOT NULL",
                    &[],
                ) == n
                && usize::try_from(n).is_ok_and(|n| smtp.mails().len() >= n)
        },
    )
    .await;
    // A little longer, to see that no copy follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.mails();
    let seen = by_register(&mails);
    assert!(
        seen.values().all(|n| *n == 1),
        "each register e-mailed once: {seen:?}"
    );
    assert_eq!(
        i64::try_from(mails.len()).expect("a count"),
        queued(&books),
        "{seen:?}"
    );
    let start = local(&format!("{yesterday}T00:00:00"));
    let end = local(&format!("{today}T00:00:00"));
    for (mpp, email, rows) in [
        ("demobank", "registers@demobank.example", 2),
        ("demowallet", "registers@demowallet.example", 1),
    ] {
        let name = format!("{mpp}-daily-{yesterday}.xlsx");
        let mail = mails
            .iter()
            .find(|m| m.attachment().0 == name)
            .unwrap_or_else(|| panic!("{name} e-mailed: {seen:?}"));
        assert!(mail.to.iter().any(|to| to.contains(email)), "{:?}", mail.to);
        let want = expected(&books, mpp, start, end, false);
        assert_eq!(want.len(), rows, "{mpp}'s payments of yesterday");
        check_xlsx(mail.attachment().1, &want);
    }
    let sent_by: HashMap<String, i64> = books
        .rows(
            "SELECT COALESCE(lease_node, ''), COUNT(*) FROM outbox WHERE kind = 'register_email' \
             AND done_at_ms IS NOT NULL GROUP BY lease_node",
            &[],
        )
        .into_iter()
        .map(|r| (r.text(0), r.int(1)))
        .collect();
    eprintln!("register e-mails sent by node: {sent_by:?}");
    assert_eq!(sent_by.values().sum::<i64>(), queued(&books));
}

/// How often the nodes of [`two_nodes_checking_the_catalog_often`] look for catalog changes.
const CATALOG_CHECK_MS: u64 = 200;

/// Two sandbox nodes that look for another node's catalog changes every `CATALOG_CHECK_MS`.
fn two_nodes_checking_the_catalog_often() -> Nodes {
    let toml =
        format!("{SANDBOX_TOML}\n[limits]\ncatalog_check_interval_ms = {CATALOG_CHECK_MS}\n");
    Nodes::start(2, toml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_suspended_through_one_node_is_refused_by_another() {
    if !postgres_only() {
        return;
    }
    let nodes = two_nodes_checking_the_catalog_often();
    let http = reqwest::Client::new();
    let (a, b) = (nodes.url(0), nodes.url(1));
    let scan = json!({"qrCode": STATIC_QR, "customerId": "C1"});
    let (http_ref, scan_ref) = (&http, &scan);
    let mut n = 0;
    // Each scan with its own X-Request-ID: a repeat would get the first answer again.
    let mut scan_at = move |url: &str| {
        n += 1;
        let (id, url) = (format!("s-{n}"), url.to_owned());
        async move { result_code(&mpp(http_ref, &url, SCAN, &id, scan_ref).await) }
    };
    assert_eq!(scan_at(b).await, "SUCCESS");
    let status = "/admin/v1/organizations/990340001234/status";
    admin(&http, a, status, Some(&json!({"status": "suspended"}))).await;
    // The node that made the change refuses at once.
    assert_eq!(scan_at(a).await, "PAYMENTS_SUSPENDED");
    // Node B sees the change at its next check (200 ms here, a few on a quiet machine); the
    // bound leaves room for a loaded CI machine, and the time taken is printed.
    let bound = Duration::from_millis(CATALOG_CHECK_MS) + Duration::from_secs(15);
    let taken = within(bound, "node B refuses", || {
        let code = scan_at(b);
        async move { code.await == "PAYMENTS_SUSPENDED" }
    })
    .await;
    eprintln!("node B refused {taken:?} after the change");
    // It stays refused there, and is lifted the same way.
    assert_eq!(scan_at(b).await, "PAYMENTS_SUSPENDED");
    admin(&http, a, status, Some(&json!({"status": "active"}))).await;
    assert_eq!(scan_at(a).await, "SUCCESS");
    within(bound, "node B serves again", || {
        let code = scan_at(b);
        async move { code.await == "SUCCESS" }
    })
    .await;
}

/// A cabinet token issued through one node opens the register API and the cabinet on another
/// once that node's catalog check has run; revoked through the first, it opens neither there,
/// and a cabinet session signed in on either node ends on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cabinet_token_issued_and_revoked_through_one_node_holds_on_another() {
    if !postgres_only() {
        return;
    }
    let nodes = two_nodes_checking_the_catalog_often();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let (a, b) = (nodes.url(0), nodes.url(1));
    let zone = tolem_wire::time::zone("Asia/Almaty").expect("the zone");
    // Today's register is not due before the day ends (409), which only an MPP the node knows
    // hears; anyone else is 401.
    away_from_midnight(&zone).await;
    let today = Timestamp::now().to_zoned_datetime(zone).date();
    let register = |url: &str, token: &str| {
        let req = http
            .get(format!("{url}/cabinet/v1/registers/daily/{today}.csv"))
            .bearer_auth(token);
        async move {
            req.send()
                .await
                .expect("the node answers")
                .status()
                .as_u16()
        }
    };
    let (status, issued) = admin_call(
        &http,
        a,
        reqwest::Method::POST,
        "/admin/v1/mpps/demobank/cabinet-tokens",
        None,
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["cabinet_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let hash = issued["hash"].as_str().expect("its hash").to_owned();
    assert_eq!(register(a, &token).await, 409, "the node that issued it");
    let bound = Duration::from_millis(CATALOG_CHECK_MS) + Duration::from_secs(15);
    let taken = within(bound, "node B takes the token", || {
        let status = register(b, &token);
        async move { status.await == 409 }
    })
    .await;
    eprintln!("node B took the token {taken:?} after it was issued");
    // A cabinet session, signed in on node B, is one on node A too (the nodes share what
    // signs it).
    let signed_in = http
        .post(format!("{b}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::console::form(&[("token", token.as_str())]))
        .send()
        .await
        .expect("node B answers");
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let cabinet = |url: &str| {
        let req = http
            .get(format!("{url}/console/cabinet"))
            .header("cookie", cookie.as_str());
        async move {
            req.send()
                .await
                .expect("the node answers")
                .status()
                .as_u16()
        }
    };
    assert_eq!((cabinet(a).await, cabinet(b).await), (200, 200));

    let revoke = format!("/admin/v1/mpps/demobank/cabinet-tokens/{hash}");
    let (status, left) = admin_call(&http, a, reqwest::Method::DELETE, &revoke, None).await;
    assert_eq!(status, 200, "{left}");
    assert_eq!(register(a, &token).await, 401, "the node that revoked it");
    assert_ne!(cabinet(a).await, 200, "the session ended on node A");
    let taken = within(bound, "node B drops the token and its session", || {
        let (status, page) = (register(b, &token), cabinet(b));
        async move { status.await == 401 && page.await != 200 }
    })
    .await;
    eprintln!("node B dropped the token {taken:?} after it was revoked");
}

/// An admin call of any method: (HTTP status, body).
async fn admin_call(
    http: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method, format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("the node answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

#[tokio::test]
async fn changes_of_one_merchant_made_through_two_nodes_all_hold() {
    if !postgres_only() {
        return;
    }
    // Node B's snapshot of the operator data stays as it started for the whole test: each
    // change must be made on what is stored, never on a node's copy.
    let toml = format!("{SANDBOX_TOML}\n[limits]\ncatalog_check_interval_ms = 600000\n");
    let nodes = Nodes::start(2, toml);
    let http = reqwest::Client::new();
    let (a, b) = (nodes.url(0), nodes.url(1));
    let org = "/admin/v1/organizations/990340001234";
    let stored = || async {
        let (_, catalog) =
            admin_call(&http, a, reqwest::Method::GET, "/admin/v1/catalog", None).await;
        catalog["organizations"]
            .as_array()
            .expect("organizations")
            .iter()
            .find(|o| o["bin"] == "990340001234")
            .expect("the merchant")
            .clone()
    };
    let keys_before = stored().await["api_key_hashes"]
        .as_array()
        .expect("keys")
        .len();
    let post = reqwest::Method::POST;
    let (aa, bb) = ("aa".repeat(32), "bb".repeat(32));
    for (node, path, body, expected) in [
        (a, "/status", json!({"status": "suspended"}), 200),
        (b, "/api-keys", json!({"kind": "test"}), 201),
        (a, "/certificates", json!({"fingerprint": aa}), 201),
        (b, "/certificates", json!({"fingerprint": bb}), 201),
    ] {
        let (status, answer) = admin_call(
            &http,
            node,
            post.clone(),
            &format!("{org}{path}"),
            Some(body),
        )
        .await;
        assert_eq!(status, expected, "{path}: {answer}");
    }
    // Revoked through B, which never saw it registered.
    let revoke = format!("{org}/certificates/{aa}");
    let (status, answer) = admin_call(&http, b, reqwest::Method::DELETE, &revoke, None).await;
    assert_eq!(status, 200, "{answer}");
    let merchant = stored().await;
    assert_eq!(merchant["status"], "suspended", "{merchant}");
    assert_eq!(
        merchant["api_key_hashes"].as_array().expect("keys").len(),
        keys_before + 1,
        "{merchant}"
    );
    assert_eq!(merchant["client_certificates"], json!([bb]), "{merchant}");
}

/// A counter of a node's `/admin/v1/metrics`, by its name.
async fn metric(http: &reqwest::Client, url: &str, name: &str) -> u64 {
    let text = http
        .get(format!("{url}/admin/v1/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the node answers")
        .text()
        .await
        .expect("a body");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
}

/// A POS's status poll of purchase `id` (merchant API, JSON).
async fn pos_status(http: &reqwest::Client, url: &str, id: i64) -> Value {
    pos_get(http, url, &format!("/r1/v02/payment/status/{id}")).await
}

/// A POS's GET of `path` on the node at `url` (merchant API, JSON).
async fn pos_get(http: &reqwest::Client, url: &str, path: &str) -> Value {
    http.get(format!("{url}{path}"))
        .header("api-key", API_KEY)
        .send()
        .await
        .expect("the node answers")
        .json()
        .await
        .expect("JSON")
}

/// A successful scan as demobank; the paymentId of the purchase it made.
async fn scanned_id(http: &reqwest::Client, url: &str, request_id: &str, scan: &Value) -> String {
    let scanned = mpp(http, url, SCAN, request_id, scan).await;
    assert_eq!(result_code(&scanned), "SUCCESS", "{scanned}");
    serde_json::from_str::<Value>(&scanned).expect("JSON")["payment"]["paymentId"]
        .as_str()
        .expect("a paymentId")
        .to_owned()
}

/// Scans and notifyPayments of every kind over two nodes, request ids marked with `round`:
/// Dynamic QRs made, paid and their notify repeated through the other node, Static QRs paid, a
/// Custom QR checked out twice and paid, one Dynamic QR the MPP declined. Returns how many of the calls are staged transactions (every
/// one, the POS's `qr/create` calls too).
async fn every_kind_of_scan_and_notify(
    http: &reqwest::Client,
    nodes: &Nodes,
    device: &str,
    round: usize,
) -> u64 {
    let mut staged = 0;
    for i in 0..6 {
        let id = paid(http, nodes.url(i), device, json!(100 + i)).await;
        let again = mpp(
            http,
            nodes.url(i + 1),
            NOTIFY,
            &format!("notify-{id}"),
            &notify_body(&id.to_string(), "C1", "SUCCESS", None),
        )
        .await;
        assert_eq!(result_code(&again), "SUCCESS", "{again}");
        // The create, the scan and the two notifies.
        staged += 4;
        // The POS polls the purchase's status through the other node.
        let status = pos_status(http, nodes.url(i + 1), id).await;
        assert_eq!(status["Data"]["Status"], "Processed", "{status}");
    }
    for i in 0..4 {
        let scan = json!({"qrCode": STATIC_QR, "customerId": "C2"});
        let id = scanned_id(
            http,
            nodes.url(i),
            &format!("static-scan-{round}-{i}"),
            &scan,
        )
        .await;
        let answer = mpp(
            http,
            nodes.url(i + 1),
            NOTIFY,
            &format!("static-notify-{round}-{i}"),
            &notify_body(&id, "C2", "SUCCESS", Some("250.00")),
        )
        .await;
        assert_eq!(result_code(&answer), "SUCCESS", "{answer}");
        staged += 2;
    }
    // A Custom QR: scanned, checked out (twice, through both nodes: one answer), paid.
    let scan = json!({"qrCode": PARKING_QR, "customerId": "C4"});
    let id = scanned_id(http, nodes.url(0), &format!("custom-scan-{round}"), &scan).await;
    let checkout = json!({"paymentId": id, "serviceId": 2862, "parameters": [
        {"id": 3932, "value": "777ABC02"}, {"id": 3933, "value": "3h"}]});
    let first = mpp(
        http,
        nodes.url(1),
        CHECKOUT,
        &format!("custom-checkout-{round}"),
        &checkout,
    )
    .await;
    assert_eq!(result_code(&first), "SUCCESS", "{first}");
    let again = mpp(
        http,
        nodes.url(0),
        CHECKOUT,
        &format!("custom-again-{round}"),
        &checkout,
    )
    .await;
    assert_eq!(again, first);
    let answer = mpp(
        http,
        nodes.url(1),
        NOTIFY,
        &format!("custom-notify-{round}"),
        &notify_body(&id, "C4", "SUCCESS", Some("800.00")),
    )
    .await;
    assert_eq!(result_code(&answer), "SUCCESS", "{answer}");
    // The scan, the first checkout and the notify: the repeat finds the stored answer by a
    // staged read, before any transaction.
    staged += 3;
    let (qr, id) = dynamic_qr(http, nodes.url(0), device, json!(70)).await;
    let scanned = mpp(
        http,
        nodes.url(1),
        SCAN,
        &format!("declined-scan-{round}"),
        &json!({"qrCode": qr, "customerId": "C3"}),
    )
    .await;
    assert_eq!(result_code(&scanned), "SUCCESS", "{scanned}");
    let declined = notify_body(&id.to_string(), "C3", "CANCELLED_BY_CLIENT", None);
    let answer = mpp(
        http,
        nodes.url(0),
        NOTIFY,
        &format!("declined-notify-{round}"),
        &declined,
    )
    .await;
    assert_eq!(result_code(&answer), "CANCELLED_BY_CLIENT", "{answer}");
    staged + 3
}

/// A POS's `qr/create`, scan and notifyPayment run on the async workers (`store/postgres.rs`,
/// `Pool::staged_transaction`), not on a blocking thread, and so do the reads of the POS's
/// calls (its device token, the purchase it polls: `Pool::staged_read`): a fallback gives the
/// same answer, so only the nodes' counters can tell. The first round may fall back where a
/// notifyPayment makes a new form of answer (it needs the inserted row back; once per form and
/// database); in the second round, not one of its transactions and reads falls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_scans_and_notifies_stay_on_the_async_workers_of_every_node() {
    if !postgres_only() {
        return;
    }
    const STAGED: &str = "tolem_store_staged_transactions_total";
    const FALLBACKS: &str = "tolem_store_staged_fallbacks_total";
    const READS: &str = "tolem_store_staged_reads_total";
    const READ_FALLBACKS: &str = "tolem_store_staged_read_fallbacks_total";
    let nodes = Nodes::start(2, SANDBOX_TOML.to_owned());
    let http = reqwest::Client::new();
    let device = device(&http, nodes.url(0)).await;
    every_kind_of_scan_and_notify(&http, &nodes, &device, 0).await;
    let mut before = Vec::new();
    for url in &nodes.urls {
        before.push((
            metric(&http, url, STAGED).await,
            metric(&http, url, FALLBACKS).await,
            metric(&http, url, READS).await,
            metric(&http, url, READ_FALLBACKS).await,
        ));
    }

    let calls = every_kind_of_scan_and_notify(&http, &nodes, &device, 1).await;

    let (mut staged, mut reads) = (0, 0);
    for (url, (staged_before, fallbacks_before, reads_before, read_fallbacks_before)) in
        nodes.urls.iter().zip(before)
    {
        staged += metric(&http, url, STAGED).await - staged_before;
        assert_eq!(
            metric(&http, url, FALLBACKS).await,
            fallbacks_before,
            "no create, scan or notifyPayment on {url} ran on a blocking thread"
        );
        reads += metric(&http, url, READS).await - reads_before;
        assert_eq!(
            metric(&http, url, READ_FALLBACKS).await,
            read_fallbacks_before,
            "no read of a POS call on {url} ran on a blocking thread"
        );
    }
    // At least each create's device token and each status poll.
    assert!(reads >= 7 + 6, "{reads} reads staged");
    assert_eq!(
        staged, calls,
        "each create, scan and notifyPayment was staged once"
    );
}

/// A port no one listens on now, for nodes that must share it.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    probe.local_addr().expect("its address").port()
}

/// `count` health checks on the shared port, each on a connection of its own (so that the
/// kernel picks a node for each); panics on any that is not answered OK.
async fn pings_on_new_connections(shared: &str, count: usize) {
    for i in 0..count {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client");
        let body: Value = http
            .get(format!("{shared}/r1/v01/health/ping"))
            .header("api-key", API_KEY)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ping {i} on {shared}: {e}"))
            .json()
            .await
            .expect("json");
        assert_eq!(body["StatusCode"], 0, "ping {i}: {body}");
    }
}

/// The connections a node accepted on its listeners, read from its own admin listener on a
/// connection of its own (which counts as one).
async fn accepted(admin_url: &str) -> u64 {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    metric(&http, admin_url, "tolem_connections_accepted_total").await
}

#[tokio::test]
async fn nodes_with_reuse_port_share_one_port_and_one_can_restart_while_the_other_answers() {
    if !postgres_only() {
        return;
    }
    let port = free_port();
    let shared = format!("http://127.0.0.1:{port}");
    // Each node's admin listener first, on a port of its own: its first line names it, and
    // its metrics tell what that node accepted on the shared port.
    // (Top-level keys first, the listeners' tables after the operator data's.)
    let toml = format!(
        "reuse_port = true\n{}\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nsurfaces = [\"admin\"]\n\
         [[listeners]]\naddress = \"127.0.0.1:{port}\"\nsurfaces = [\"mpp\", \"merchant\"]\n",
        sandbox_toml("http://127.0.0.1:9/refund")
    );
    let nodes = Nodes::prepare(toml);
    let config = |at: usize| {
        let file = nodes.dir.path().join(format!("node-{at}.toml"));
        std::fs::write(&file, format!("node_name = \"node-{at}\"\n{}", nodes.toml))
            .expect("config written");
        file
    };
    let (first, second) = (config(0), config(1));
    let mut a = Child::start_at(&first, &nodes.db, None);
    let b = Child::start_at(&second, &nodes.db, None);
    assert_ne!(a.url, b.url, "each node's admin listener has its own port");

    const PINGS: u64 = 40;
    pings_on_new_connections(&shared, PINGS as usize).await;
    // Each node's count less the metrics call's own connection: the kernel gave both nodes
    // some of the shared port's connections, and every one of them to one node.
    let (on_a, on_b) = (accepted(&a.url).await - 1, accepted(&b.url).await - 1);
    assert_eq!(on_a + on_b, PINGS, "{on_a} + {on_b}");
    assert!(
        on_a > 0 && on_b > 0,
        "one node took them all: {on_a} + {on_b}"
    );

    // One node stops (SIGKILL: the hardest way): the other answers every new connection.
    a.kill();
    pings_on_new_connections(&shared, 20).await;
    assert_eq!(accepted(&b.url).await - 2, on_b + 20);
    // It starts again beside the running one, on the same port, and takes its share again.
    a = Child::start_at(&first, &nodes.db, None);
    pings_on_new_connections(&shared, PINGS as usize).await;
    let again = accepted(&a.url).await - 1;
    assert!(again > 0 && again < PINGS, "{again} of {PINGS}");
    drop((a, b));
}

/// DECISIONS 45: expiry by whichever node sees it first. Every node sweeps every 20 ms while
/// Dynamic QRs of one second reach their deadline, half of them scanned around it through
/// another node than the one that made them: a scan that won leaves its purchase scanned (no
/// sweep expires it after), a scan that lost finds it expired, a QR nobody scanned is expired,
/// and every node tells the POS the same.
#[tokio::test]
async fn purchases_expire_once_with_every_node_sweeping_and_never_after_a_scan_won() {
    if !postgres_only() {
        return;
    }
    const COUNT: usize = 30;
    let toml = SANDBOX_TOML.replace(
        "qr_scan_wait_s = 180",
        "qr_scan_wait_s = 1\nexpiry_sweep_interval_ms = 20",
    );
    let nodes = Nodes::start(3, toml);
    let http = reqwest::Client::new();
    let device = device(&http, nodes.url(0)).await;
    let start = Instant::now();
    let mut qrs = Vec::new();
    for i in 0..COUNT {
        qrs.push(dynamic_qr(&http, nodes.url(i), &device, json!(100)).await);
    }
    // Spread over 0.8–1.4 s after the first was made, around the deadlines.
    let scans = qrs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, (qr, id))| {
            let (http, url) = (&http, nodes.url(i + 1).to_owned());
            let at = start + Duration::from_millis(800 + 40 * u64::try_from(i).expect("small"));
            async move {
                tokio::time::sleep_until(at.into()).await;
                let scan = json!({"qrCode": qr, "customerId": "C1"});
                let answer = mpp(http, &url, SCAN, &format!("scan-{id}"), &scan).await;
                (*id, result_code(&answer))
            }
        });
    let scanned: HashMap<i64, String> = join_all(scans).await.into_iter().collect();
    let won = scanned.values().filter(|code| *code == "SUCCESS").count();
    eprintln!(
        "{won} of {} scans around the deadline won: {scanned:?}",
        scanned.len()
    );
    let books = nodes.books();
    let status = |id: i64| {
        books
            .one("SELECT status FROM payments WHERE id = ?1", &[&id])
            .text(0)
    };
    let open = || {
        qrs.iter()
            .filter(|(_, id)| scanned.get(id).is_none_or(|code| code != "SUCCESS"))
            .filter(|(_, id)| status(*id) != "expired")
            .count()
    };
    within(
        Duration::from_secs(20),
        "every purchase no scan won is expired",
        || {
            let left = open();
            async move { left == 0 }
        },
    )
    .await;
    for (_, id) in &qrs {
        let expected = match scanned.get(id).map(String::as_str) {
            Some("SUCCESS") => "scanned",
            _ => "expired",
        };
        assert_eq!(
            status(*id),
            expected,
            "purchase {id}, scan {:?}",
            scanned.get(id)
        );
        let seen: HashSet<String> =
            join_all(nodes.urls.iter().map(|url| pos_status(&http, url, *id)))
                .await
                .iter()
                .map(|answer| answer["Data"]["Status"].to_string())
                .collect();
        assert_eq!(
            seen.len(),
            1,
            "purchase {id}: every node says the same: {seen:?}"
        );
    }
}

#[tokio::test]
async fn of_puts_built_on_one_read_through_two_nodes_one_is_stored() {
    if !postgres_only() {
        return;
    }
    let nodes = Nodes::start(2, SANDBOX_TOML.to_owned());
    let http = reqwest::Client::new();
    let path = "/admin/v1/trade-points/1001";
    let (a, b) = (nodes.url(0), nodes.url(1));
    for round in 0..5 {
        let read = http
            .get(format!("{a}{path}"))
            .bearer_auth("sandbox-admin-token")
            .send()
            .await
            .expect("answered");
        let tag = read.headers()["etag"].to_str().expect("text").to_owned();
        let item: Value = read.json().await.expect("json");
        // Eight operators rename the trade point from that one read, through both nodes at once.
        let puts = (0..8).map(|i| {
            let (http, tag) = (http.clone(), tag.clone());
            let mut renamed = item.clone();
            renamed["name"] = json!(format!("Кафе {round}-{i}"));
            let node = if i % 2 == 0 { a } else { b };
            async move {
                http.put(format!("{node}{path}"))
                    .bearer_auth("sandbox-admin-token")
                    .header("if-match", tag)
                    .json(&renamed)
                    .send()
                    .await
                    .expect("answered")
                    .status()
                    .as_u16()
            }
        });
        let mut statuses = futures::future::join_all(puts).await;
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 412, 412, 412, 412, 412, 412, 412],
            "round {round}"
        );
    }
}

#[tokio::test]
async fn a_second_live_node_with_a_name_in_use_is_refused_and_a_restart_of_it_is_not() {
    if !postgres_only() {
        return;
    }
    let mut nodes = Nodes::start(1, SANDBOX_TOML.to_owned());
    // Another process under node-0's name: it would take back node-0's deliveries in flight.
    let twin = nodes.dir.path().join("twin.toml");
    std::fs::write(&twin, format!("node_name = \"node-0\"\n{SANDBOX_TOML}")).expect("written");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&twin)
        .arg("--db")
        .arg(&nodes.db)
        .env("RUST_LOG", "warn")
        .output()
        .expect("tolem runs");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("holds the node name \"node-0\"") && said.contains("node_name"),
        "{said}"
    );
    // node-0 itself, killed and started again at once, takes its name back.
    nodes.kill(0);
    let config = nodes.dir.path().join("node-0.toml");
    let again = Child::start(&config, &nodes.db);
    let http = reqwest::Client::new();
    let answer = http
        .get(format!("{}/health/ready", again.url))
        .send()
        .await
        .expect("the restarted node answers");
    assert_eq!(answer.status(), 200);
}
