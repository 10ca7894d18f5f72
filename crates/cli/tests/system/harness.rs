//! Starts the PS for a test, on a fresh database of this binary's backend (backend.rs), and
//! speaks to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tolem_ps::clock::{ManualClock, SharedClock};
use tolem_ps::{App, AppState, Config};
use tolem_sdk::MppClient;

pub use crate::backend::{PsBooks, fresh_database, sqlite_only};

pub const SANDBOX_TOML: &str = tolem_ps::SANDBOX_TOML;
pub const API_KEY: &str = "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39";
pub const OTHER_API_KEY: &str = "test_0A1B2C3D4E5F60718293A4B5C6D7E8F9";
pub const ADMIN_TOKEN: &str = "sandbox-admin-token";
pub const STATIC_QR: &str = "TOLEM-STATIC-CAFE-1001";
pub const PARKING_QR: &str = "https://pay.tolem.example/pay/parking";

/// A running PS with its own database (a SQLite file or a PostgreSQL database) and clock.
pub struct TestPs {
    pub url: String,
    pub app: AppState,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    db: PathBuf,
    _dir: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn test_config(db: &Path) -> Config {
    let mut config = Config::from_toml(SANDBOX_TOML).expect("the sandbox configuration is valid");
    config.database = db.to_owned();
    config.sandbox = true;
    config.payments.expiry_sweep_interval_ms = 50;
    config.refunds.retry_delay_ms_initial = 100;
    config.refunds.retry_delay_ms_max = 800;
    // Long enough for an answer on a loaded CI machine: a call that times out uses up what a
    // test scripted for it. The tests about timeouts set their own.
    config.refunds.request_timeout_ms = 5_000;
    config.refunds.poll_interval_ms = 20;
    config.refunds.alert_after_s = 120;
    // Most tests look at delivery, not at the POS's wait for the MPP (refund_answer.rs does).
    config.refunds.pos_wait_ms = 0;
    config
}

impl TestPs {
    pub async fn start() -> TestPs {
        TestPs::start_configured(|_| {}).await
    }

    /// A fresh PS whose test configuration `change` adjusts first.
    pub async fn start_configured(change: impl FnOnce(&mut Config)) -> TestPs {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = fresh_database(dir.path());
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let mut config = test_config(&db);
        change(&mut config);
        let mut ps = TestPs::start_with(config, clock).await;
        ps._dir = Some(dir);
        ps
    }

    /// Waits (moving the clock a second at a time, so retries fall due) until `done` holds. The
    /// clock moves 300 s at most; past that it waits on without moving it, up to [`PATIENCE`],
    /// for a machine too busy to keep up.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..300 {
            if done().await {
                return;
            }
            self.advance(1);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        eventually(what, done).await;
    }

    pub async fn start_with(config: Config, clock: Arc<ManualClock>) -> TestPs {
        TestPs::start_at("127.0.0.1:0", config, clock).await
    }

    /// Starts on a given address (to come back where a stopped PS was).
    pub async fn start_at(addr: &str, mut config: Config, clock: Arc<ManualClock>) -> TestPs {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        config.public_url = url.clone();
        let db = config.database.clone();
        let shared: SharedClock = clock.clone();
        let app = App::start(config, shared).await.expect("the PS starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tolem_ps::serve(listener, app.clone(), async move {
            let _ = stopped.await;
        }));
        TestPs {
            url,
            app,
            clock,
            http: reqwest::Client::new(),
            db,
            _dir: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and starts a new one on the same database.
    pub async fn restart(mut self) -> TestPs {
        let dir = self._dir.take();
        let db = self.db.clone();
        let clock = self.clock.clone();
        self.shutdown().await;
        let mut ps = TestPs::start_with(test_config(&db), clock).await;
        ps._dir = dir;
        ps
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// The PS's database as `config.database` holds it: a file path or a PostgreSQL URL.
    pub fn db_path(&self) -> PathBuf {
        self.db.clone()
    }

    /// The PS's tables, to read behind its back.
    pub fn books(&self) -> PsBooks {
        PsBooks::open(&self.db)
    }

    pub fn mpp(&self, caller: &str) -> MppClient {
        MppClient::new(&self.url, caller).expect("a client")
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs));
    }

    /// A raw MPP API call: (HTTP status, body text).
    pub async fn mpp_raw(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.expect("the PS answers");
        (resp.status().as_u16(), resp.text().await.expect("a body"))
    }

    /// An MPP API call with the usual headers.
    pub async fn mpp_call(
        &self,
        path: &str,
        caller: &str,
        request_id: &str,
        body: &Value,
    ) -> (u16, String) {
        let headers = [
            ("content-type", "application/json"),
            ("x-caller-name", caller),
            ("x-request-id", request_id),
        ];
        self.mpp_raw(path, &headers, &body.to_string()).await
    }

    /// A merchant API call with an API key: (HTTP status, parsed body).
    pub async fn pos(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.pos_with(method, path, key, None, body).await
    }

    pub async fn pos_with(
        &self,
        method: &str,
        path: &str,
        key: &str,
        request_id: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let mut req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        req = req.header("api-key", key);
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("the PS answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}")),
        )
    }

    /// Registers a POS device of the demo café and returns its token.
    pub async fn device(&self, device_id: &str) -> String {
        self.device_at(API_KEY, device_id, 1001).await
    }

    /// A return (refund) QR made by `device` with the sandbox key: (QrReturnId, QrToken).
    pub async fn return_qr(&self, device: &str) -> (i64, String) {
        let body = json!({"DeviceToken": device});
        let (_, created) = self
            .pos("POST", "/r2/v01/return/create", API_KEY, Some(&body))
            .await;
        assert_eq!(created["StatusCode"], 0, "{created}");
        let id = created["Data"]["QrReturnId"].as_i64().expect("an id");
        let token = created["Data"]["QrToken"].as_str().expect("a token");
        (id, token.to_owned())
    }

    pub async fn device_at(&self, key: &str, device_id: &str, trade_point: i64) -> String {
        let body = json!({"DeviceId": device_id, "TradePointId": trade_point});
        let (_, answer) = self
            .pos("POST", "/r1/v01/device/register", key, Some(&body))
            .await;
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        answer["Data"]["DeviceToken"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// Creates a Dynamic QR of `amount` tenge; returns (QrToken, QrPaymentId).
    pub async fn dynamic_qr(&self, device: &str, amount: u64) -> (String, i64) {
        let body = json!({"DeviceToken": device, "Amount": amount});
        let (_, answer) = self
            .pos("POST", "/r1/v01/qr/create", API_KEY, Some(&body))
            .await;
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        let data = &answer["Data"];
        (
            data["QrToken"].as_str().expect("token").to_owned(),
            data["QrPaymentId"].as_i64().expect("id"),
        )
    }

    /// The POS status (v02 data) of a purchase.
    pub async fn status(&self, id: i64) -> Value {
        let (_, answer) = self
            .pos(
                "GET",
                &format!("/r1/v02/payment/status/{id}"),
                API_KEY,
                None,
            )
            .await;
        answer
    }

    pub async fn admin(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "PUT" => self.http.put(url),
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        let resp = req
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("the PS answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `copies` copies of one merchant API POST (same X-Request-ID and body) sent at once, as a
    /// POS that retries before its first try was answered: each must get the first answer, a
    /// success; returns it.
    pub async fn pos_copies(
        &self,
        path: &str,
        request_id: &str,
        body: &Value,
        copies: usize,
    ) -> Value {
        let answers = futures::future::join_all(
            (0..copies).map(|_| self.pos_with("POST", path, API_KEY, Some(request_id), Some(body))),
        )
        .await;
        let first = answers[0].clone();
        assert_eq!(first.1["StatusCode"], 0, "{:?}", first.1);
        for answer in &answers {
            assert_eq!(answer, &first, "every copy gets the first answer");
        }
        first.1
    }

    /// Points an MPP's refunds at `url`.
    pub async fn set_refund_url(&self, caller: &str, url: &str) {
        let (_, catalog) = self.admin("GET", "/admin/v1/catalog", &Value::Null).await;
        let mpps = catalog["mpps"].as_array().expect("mpps");
        let mut mpp = mpps
            .iter()
            .find(|m| m["caller_name"] == caller)
            .expect("the MPP")
            .clone();
        mpp["refund_url"] = json!(url);
        let (status, answer) = self
            .admin("PUT", &format!("/admin/v1/mpps/{caller}"), &mpp)
            .await;
        assert_eq!(status, 200, "{answer}");
    }

    /// The operator sets an organization's status (`active`, `suspended`, `blocked`) through the
    /// admin API.
    pub async fn set_organization_status(&self, bin: &str, status: &str) {
        let (answer_status, answer) = self
            .admin(
                "POST",
                &format!("/admin/v1/organizations/{bin}/status"),
                &json!({"status": status}),
            )
            .await;
        assert_eq!(answer_status, 200, "{answer}");
    }

    /// The operator changes trade point `id` as `change` says, from its stored form, through the
    /// admin API's PUT.
    pub async fn change_trade_point(&self, id: i64, change: impl FnOnce(&mut Value)) {
        let path = format!("/admin/v1/trade-points/{id}");
        let (status, mut point) = self.admin("GET", &path, &Value::Null).await;
        assert_eq!(status, 200, "{point}");
        change(&mut point);
        let (status, answer) = self.admin("PUT", &path, &point).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// A purchase of `amount` tenge at the café, paid by `customer` of demobank; returns its id.
    pub async fn paid(&self, device: &str, amount: u64, customer: &str) -> i64 {
        let (qr, id) = self.dynamic_qr(device, amount).await;
        let payment_id = scan_id(self, "demobank", &qr, customer).await;
        let body = notify_body(&payment_id, customer, "SUCCESS", None);
        let (_, answer) = self
            .mpp_call("/api/v1/qr/notifyPayment", "demobank", "n", &body)
            .await;
        assert_eq!(result_code(&answer), "SUCCESS");
        id
    }
}

impl Drop for TestPs {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How long a test waits, by the wall clock, for what a background task of the PS does (a
/// delivery, a sweep): far longer than it takes, so that a loaded machine does not fail a test.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until `done` holds, looking every 20 ms, without moving the PS's clock; fails after
/// [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < PATIENCE {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

pub fn notify_body(payment_id: &str, customer: &str, code: &str, amount: Option<&str>) -> Value {
    let mut payment = json!({"paymentId": payment_id, "mppPaymentId": format!("M-{payment_id}")});
    if let Some(amount) = amount {
        payment["paymentAmount"] = json!(amount);
    }
    json!({"result": {"resultCode": code, "resultMessage": code.to_lowercase()}, "payment": payment, "customerId": customer})
}

pub fn result_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON, got {body}"));
    v["result"]["resultCode"]
        .as_str()
        .unwrap_or_else(|| panic!("a result in {body}"))
        .to_owned()
}

pub fn result_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON, got {body}"));
    v["result"]["resultMessage"]
        .as_str()
        .unwrap_or_else(|| panic!("a result in {body}"))
        .to_owned()
}

/// Scans through the raw API and returns the paymentId.
pub async fn scan_id(ps: &TestPs, caller: &str, qr: &str, customer: &str) -> String {
    // Each call is a new scan, with an X-Request-ID of its own: a repeated one would be a retry
    // of the same scan, answered with the purchase it made (DECISIONS 9).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (_, body) = ps
        .mpp_call(
            "/api/v1/qr/scan",
            caller,
            &format!("scan-{n}"),
            &json!({"qrCode": qr, "customerId": customer}),
        )
        .await;
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["result"]["resultCode"], "SUCCESS", "{body}");
    v["payment"]["paymentId"]
        .as_str()
        .expect("paymentId")
        .to_owned()
}

/// Which of a process's outputs [`tolem_until`] reads.
#[derive(Clone, Copy)]
pub enum Output {
    Stdout,
    Stderr,
}

/// Runs `tolem args` with `env` in `dir`, reads `output` a line at a time until a line
/// satisfies `until`, then stops the process. Returns the lines before that one, and the line
/// (`None` when the output ended, or 60 s passed, without one).
pub fn tolem_until(
    args: &[&str],
    env: &[(&str, &str)],
    output: Output,
    until: impl Fn(&str) -> bool,
) -> (Vec<String>, Option<String>) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let (stdout, stderr) = match output {
        Output::Stdout => (Stdio::piped(), Stdio::null()),
        Output::Stderr => (Stdio::null(), Stdio::piped()),
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("TOLEM_CONFIG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("tolem runs");
    let read: Box<dyn Read + Send> = match output {
        Output::Stdout => Box::new(child.stdout.take().expect("stdout")),
        Output::Stderr => Box::new(child.stderr.take().expect("stderr")),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut before = Vec::new();
    let found = loop {
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) if until(&line) => break Some(line),
            Ok(line) => before.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    (before, found)
}
