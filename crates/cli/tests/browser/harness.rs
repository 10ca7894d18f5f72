//! The browser tests' machinery: the real `tolem sandbox` process (the PS and the demo MPPs, on
//! free ports, its URLs read from its banner), Debian's chromedriver on a free port driving a
//! headless Chromium through WebDriver (fantoccini), and DOM waits that poll with a bound.
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`; missing, they are
//! installed by scripts/install-test-packages (as root) or named as missing: the tests fail,
//! they are never skipped in silence (as the system suite does for PostgreSQL).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "sandbox-admin-token";
pub const CABINET_TOKEN: &str = "sandbox-cabinet-demobank";
pub const API_KEY: &str = "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39";
pub const CAFE_BIN: &str = "990340001234";
pub const CAFE_TRADE_POINT: i64 = 1001;

/// The window of a phone (the wallet) and of a desk (the cashier, the console).
pub const PHONE: (u32, u32) = (420, 900);
pub const DESK: (u32, u32) = (1280, 900);

/// How long a wait for the page (or a process) may take before the test fails: generous, since
/// the machine is shared; a wait ends as soon as its condition holds.
const WAIT_MAX: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------------
// The sandbox

/// A running `tolem sandbox` in a temp dir of its own, killed on drop.
pub struct Sandbox {
    child: Child,
    /// The PS, `http://127.0.0.1:PORT`.
    pub ps: String,
    /// demobank, the reference MPP of customers C1 and C2.
    pub bank: String,
    /// The banner's screen URLs: operator console, MPP cabinet, cashier, wallet.
    pub console: String,
    pub cabinet: String,
    pub pos: String,
    pub wallet: String,
    pub http: reqwest::Client,
    _dir: TempDir,
}

impl Sandbox {
    /// A sandbox on a fresh database.
    pub fn start() -> Sandbox {
        let dir = tempfile::tempdir().expect("a temp dir");
        Sandbox::start_in(dir)
    }

    /// A sandbox on `dir/sandbox.db`, which may already hold a PS's books.
    pub fn start_in(dir: TempDir) -> Sandbox {
        let db = dir.path().join("sandbox.db");
        let log = dir.path().join("sandbox.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--mpps-port",
                "0",
                "--db",
            ])
            .arg(&db)
            // The sandbox writes its configuration into the temp dir: one of its own per test.
            .env("TMPDIR", dir.path())
            .env("RUST_LOG", "warn")
            .env_remove("TOLEM_PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("tolem sandbox runs");
        let stdout = child.stdout.take().expect("its stdout");
        // Lines are read on a thread that goes on draining the pipe after the banner, so the
        // sandbox never blocks on a full pipe.
        let (lines, banner) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match banner.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("Try, in another terminal");
                    seen.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the sandbox did not come up; its output:\n{}\n{}",
                        seen.join("\n"),
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        let url_of = |label: &str| {
            url_after(&seen, label)
                .unwrap_or_else(|| panic!("the banner names {label}:\n{}", seen.join("\n")))
        };
        Sandbox {
            ps: url_of("listening on"),
            bank: url_of("MPP demobank"),
            console: url_of("operator console"),
            cabinet: url_of("MPP cabinet"),
            pos: url_of("cashier"),
            wallet: url_of("wallet"),
            child,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// A merchant API call with the café's key: the parsed answer.
    pub async fn pos_call(&self, path: &str, body: &Value) -> Value {
        let answer = self
            .http
            .post(format!("{}{path}", self.ps))
            .header("api-key", API_KEY)
            .json(body)
            .send()
            .await
            .expect("the PS answers");
        answer.json().await.expect("JSON")
    }

    /// Registers a till of the café; its DeviceToken.
    pub async fn device(&self, id: &str) -> String {
        let body = json!({"DeviceId": id, "TradePointId": CAFE_TRADE_POINT});
        let answer = self.pos_call("/r1/v01/device/register", &body).await;
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        answer["Data"]["DeviceToken"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    /// A Dynamic QR of `tenge` at the café: (QrToken, QrPaymentId).
    pub async fn dynamic_qr(&self, device: &str, tenge: u64) -> (String, i64) {
        let body = json!({"DeviceToken": device, "Amount": tenge});
        let answer = self.pos_call("/r1/v01/qr/create", &body).await;
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        let data = &answer["Data"];
        (
            data["QrToken"].as_str().expect("a token").to_owned(),
            data["QrPaymentId"].as_i64().expect("an id"),
        )
    }

    /// A reference MPP app API call (what the wallet's page calls): the parsed answer.
    pub async fn app_call(&self, path: &str, body: &Value) -> Value {
        let answer = self
            .http
            .post(format!("{}{path}", self.bank))
            .json(body)
            .send()
            .await
            .expect("the MPP answers");
        let status = answer.status();
        let body: Value = answer.json().await.expect("JSON");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// demobank's customer pays a Dynamic QR through the app API; the confirm's answer.
    pub async fn pay(&self, customer: &str, qr: &str) -> Value {
        let scanned = self
            .app_call(
                "/app/v1/scan",
                &json!({"customer_id": customer, "qr_code": qr}),
            )
            .await;
        let payment = scanned["payment_id"].as_str().expect("a paymentId");
        let paid = self
            .app_call(
                "/app/v1/confirm",
                &json!({"customer_id": customer, "payment_id": payment}),
            )
            .await;
        assert_eq!(paid["status"], "paid", "{paid}");
        paid
    }

    /// A refund without the customer (r3) of `tenge` of a café purchase: the answer.
    pub async fn refund(&self, device: &str, payment: i64, tenge: u64) -> Value {
        let body = json!({"DeviceToken": device, "QrPaymentId": payment, "Amount": tenge,
            "OrganizationBin": CAFE_BIN});
        self.pos_call("/r3/v01/payment/return", &body).await
    }

    /// An admin API call with the sandbox's token: (HTTP status, parsed body).
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.ps))
            .bearer_auth(ADMIN_TOKEN);
        if !body.is_null() {
            req = req.json(body);
        }
        let answer = req.send().await.expect("the PS answers");
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Points demobank's refunds at `url` (through the admin API, as an operator would).
    pub async fn set_bank_refund_url(&self, url: &str) {
        let (_, catalog) = self
            .admin(reqwest::Method::GET, "/admin/v1/catalog", &Value::Null)
            .await;
        let mut mpp = catalog["mpps"]
            .as_array()
            .expect("the catalog's MPPs")
            .iter()
            .find(|m| m["caller_name"] == "demobank")
            .expect("demobank")
            .clone();
        mpp["refund_url"] = json!(url);
        let (status, answer) = self
            .admin(reqwest::Method::PUT, "/admin/v1/mpps/demobank", &mpp)
            .await;
        assert_eq!(status, 200, "{answer}");
    }

    /// The customer's account at demobank, as the app API gives it.
    pub async fn account(&self, customer: &str) -> Value {
        let answer = self
            .http
            .get(format!("{}/app/v1/customers/{customer}", self.bank))
            .send()
            .await
            .expect("the MPP answers");
        answer.json().await.expect("JSON")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `http…` word after `label` on a banner line that starts with it.
fn url_after(lines: &[String], label: &str) -> Option<String> {
    lines.iter().find_map(|line| {
        let rest = line.trim().strip_prefix(label)?;
        rest.split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(str::to_owned)
    })
}

/// A port nothing listens on now: the kernel's pick for port 0, given back.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------------------------
// The browser

const HOW_TO_INSTALL: &str = "the browser tests need Debian's Chromium and its WebDriver \
     (/usr/bin/chromium, /usr/bin/chromedriver): run scripts/install-test-packages as root \
     (it installs `chromium` and `chromium-driver`), or `apt-get install chromium chromium-driver`";

fn browser_installed() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// Installs Chromium and chromedriver once per process when missing; fails with how to.
fn ensure_installed() {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let ok = *INSTALLED.get_or_init(|| {
        if !browser_installed() {
            // Quiet when it has nothing to do; its own message says what failed otherwise.
            let _ = Command::new("bash")
                .arg(root().join("scripts/install-test-packages"))
                .stdin(Stdio::null())
                .status();
        }
        browser_installed()
    });
    assert!(ok, "{HOW_TO_INSTALL}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved, file system: the effective one decides.
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// chromedriver on a free port, in a process group of its own so that the Chromiums it starts
/// go with it: the whole group is killed on drop, however the test ends.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub async fn start() -> Driver {
        ensure_installed();
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver runs");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        let http = reqwest::Client::new();
        let ready = wait_until(|| async {
            match http.get(&status).send().await {
                Ok(answer) => answer
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            }
        })
        .await;
        assert!(ready, "chromedriver did not answer on {status}");
        driver
    }

    /// A new headless Chromium with a fresh profile and a window of `size`.
    pub async fn browser(&self, size: (u32, u32)) -> Browser {
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", size.0, size.1),
        ];
        if is_root() {
            // Chromium refuses to run as root with its sandbox on.
            args.push("--no-sandbox".to_owned());
        }
        // The window's size alone does not make the page's viewport (the headless window keeps
        // room for a toolbar and is at least 500 px wide): the viewport is set exactly, and a
        // phone-sized one is a phone's (touch, `<meta name=viewport>` honoured).
        let phone = size.0 < 600;
        let options = json!({
            "binary": CHROMIUM,
            "args": args,
            "mobileEmulation": {"deviceMetrics": {
                "width": size.0, "height": size.1, "pixelRatio": 1.0,
                "mobile": phone, "touch": phone,
            }},
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session through {}: {e}", self.url));
        Browser {
            client,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)); `kill -KILL -PGID` ends
        // chromedriver and the Chromiums it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Chromium session: a window on one screen.
pub struct Browser {
    pub client: Client,
    _profile: TempDir,
}

impl std::ops::Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments[0]` is `arg`) and returns its value.
    pub async fn js(&self, script: &str, arg: Value) -> Value {
        self.client
            .execute(script, vec![arg])
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Waits until `css` matches a displayed element; fails after the bound.
    pub async fn wait_shown(&self, css: &str) {
        let found = wait_until(|| async {
            self.js(
                "const e = document.querySelector(arguments[0]); \
                 return !!e && e.getClientRects().length > 0;",
                json!(css),
            )
            .await
                == json!(true)
        })
        .await;
        assert!(found, "{css} is not shown on {}", self.here().await);
    }

    pub async fn click(&self, css: &str) {
        self.wait_shown(css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the input `css`, after clearing it.
    pub async fn fill(&self, css: &str, text: &str) {
        self.wait_shown(css).await;
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Picks `value` in `css`, a `<select>` (the option of that value) or a text input.
    pub async fn choose(&self, css: &str, value: &str) {
        self.wait_shown(css).await;
        let tag = self
            .js(
                "return document.querySelector(arguments[0]).tagName;",
                json!(css),
            )
            .await;
        if tag == "SELECT" {
            let option = format!("{css} option[value=\"{value}\"]");
            let picked = wait_until(|| async {
                self.js(
                    "const o = document.querySelector(arguments[0]); if (!o) return false; \
                     o.selected = true; \
                     o.parentElement.dispatchEvent(new Event('change', {bubbles: true})); \
                     return true;",
                    json!(option),
                )
                .await
                    == json!(true)
            })
            .await;
            assert!(picked, "{css} has no option {value}");
        } else {
            self.fill(css, value).await;
        }
    }

    /// The visible text of `css` (empty when there is no such element), spaces made plain.
    pub async fn text(&self, css: &str) -> String {
        let text = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                json!(css),
            )
            .await;
        plain(text.as_str().unwrap_or_default())
    }

    /// Waits until the attribute `name` of `css` is `want`; fails after the bound, naming what
    /// it last saw.
    pub async fn wait_attr(&self, css: &str, name: &str, want: &str) {
        let probe = || self.attribute(css, name);
        let (reached, last) = poll(probe, |seen| seen.as_deref() == Some(want)).await;
        assert!(
            reached,
            "{css}[{name}] did not become {want:?}; last {last:?} on {}",
            self.here().await
        );
    }

    /// Waits until the attribute `name` of `css` is there and not empty; its value.
    pub async fn wait_some_attr(&self, css: &str, name: &str) -> String {
        let probe = || self.attribute(css, name);
        let (reached, last) =
            poll(probe, |seen| seen.as_deref().is_some_and(|v| !v.is_empty())).await;
        assert!(reached, "{css}[{name}] never came on {}", self.here().await);
        last.unwrap_or_default()
    }

    /// Waits until the text of `css` is not empty; that text.
    pub async fn wait_text(&self, css: &str) -> String {
        let (reached, last) = poll(|| self.text(css), |seen| !seen.is_empty()).await;
        assert!(reached, "{css} stayed empty on {}", self.here().await);
        last
    }

    /// The attribute `name` of the first element matching `css`, when both are there.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let value = self
            .js(
                "const [css, name] = arguments[0]; const e = document.querySelector(css); \
                 return e ? e.getAttribute(name) : null;",
                json!([css, name]),
            )
            .await;
        value.as_str().map(str::to_owned)
    }

    /// `<html lang>`.
    pub async fn lang(&self) -> String {
        self.js("return document.documentElement.lang;", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The URL shown, for failure messages.
    pub async fn here(&self) -> String {
        self.client
            .current_url()
            .await
            .map_or_else(|e| format!("(no URL: {e})"), |u| u.to_string())
    }

    /// The session's cookies as a `Cookie:` header, to fetch what the page links to.
    pub async fn cookie_header(&self) -> String {
        let cookies = self
            .client
            .get_all_cookies()
            .await
            .expect("the session's cookies");
        cookies
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Ends the session (Chromium closes); the driver's drop kills whatever is left.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Saves a screenshot of the window as `<name>.png` into the folder `TOLEM_SCREENSHOTS` names
/// (relative to the repository's root); does nothing when it is not set. The docs' pictures
/// (docs/screens/) are made so: `TOLEM_SCREENSHOTS=docs/screens cargo test -p tolem --test
/// browser`.
pub async fn shot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("TOLEM_SCREENSHOTS").filter(|d| !d.is_empty()) else {
        return;
    };
    let dir = root().join(dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let png = browser.screenshot().await.expect("a screenshot");
    let file = dir.join(format!("{name}.png"));
    std::fs::write(&file, png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// Runs `check` every [`POLL_INTERVAL`] until it holds (true) or [`WAIT_MAX`] has passed (false).
pub async fn wait_until<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Runs `probe` every [`POLL_INTERVAL`] until what it sees is `done` or [`WAIT_MAX`] has
/// passed: whether it got there, and what it saw last (for the failure's message).
pub async fn poll<T, F, Fut>(mut probe: F, done: impl Fn(&T) -> bool) -> (bool, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let seen = probe().await;
        if done(&seen) {
            return (true, seen);
        }
        if Instant::now() >= deadline {
            return (false, seen);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Text with the spaces amounts are written with (no-break, narrow no-break) made plain, and
/// runs of white space made one.
pub fn plain(text: &str) -> String {
    text.replace(['\u{a0}', '\u{202f}'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
