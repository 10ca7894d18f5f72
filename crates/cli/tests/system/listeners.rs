//! Listeners per surface and TLS (DECISIONS 41), against real `tolem serve` processes with
//! certificates made here (rcgen): each surface answers on its own listener only, and any other
//! path there is an unknown path of that listener's; the merchant listener speaks TLS, accepts a
//! client certificate of its client CA and refuses one of another CA in the handshake; a client
//! that never says hello is closed at the header deadline; the certificate is read again on
//! SIGHUP and when its files change, and a broken file keeps the one in force; a bad file at
//! start is a configuration error naming it. Every wait is bounded and fails by name; nothing
//! asserts how fast anything was.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::harness::{ADMIN_TOKEN, API_KEY, SANDBOX_TOML, STATIC_QR, fresh_database};

/// How long a test waits for the PS before it fails.
const BOUND: Duration = Duration::from_secs(30);

/// A certificate authority made for the test.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, signed by a [`Ca`].
pub(crate) struct Issued {
    pub der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("a key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `name` and for 127.0.0.1, where the tests reach the PS.
    pub fn issue(&self, name: &str) -> Issued {
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("a certificate");
        Issued {
            der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes a file whole under another name, then renames it over `path`, as a careful operator
/// (or certbot) does: a check never sees it half-written.
fn replace(path: &Path, text: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, text).expect("written");
    std::fs::rename(&fresh, path).expect("renamed");
}

/// A `tolem serve` with `listeners`; killed on drop. Its stderr is kept for the test to read.
pub(crate) struct Served {
    child: std::process::Child,
    /// `(url, surfaces)` of each listener, as `tolem serve` printed them.
    listeners: Vec<(String, String)>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `tolem serve` with the sandbox's data, `listeners` (TOML) and `env`.
    pub fn start(dir: tempfile::TempDir, listeners: &str, env: &[(&str, &str)]) -> Served {
        let database = fresh_database(dir.path());
        Served::start_on(dir, &database, listeners, env)
    }

    /// [`Served::start`] on `database`, which may be one a PS used before.
    pub fn start_on(
        dir: tempfile::TempDir,
        database: &Path,
        listeners: &str,
        env: &[(&str, &str)],
    ) -> Served {
        let config = dir.path().join("ps.toml");
        std::fs::write(&config, format!("{SANDBOX_TOML}\n{listeners}")).expect("config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tolem"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--db")
            .arg(database)
            .env("RUST_LOG", "warn")
            .env("TOLEM_LIMITS__HEADER_TIMEOUT_MS", "1000")
            .env("TOLEM_LIMITS__BODY_TIMEOUT_MS", "2000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("tolem starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut from = BufReader::new(child.stderr.take().expect("stderr"));
        let into = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while from.read_line(&mut line).unwrap_or(0) > 0 {
                into.lock().expect("lock").push_str(&line);
                line.clear();
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("a first line");
        let first = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "no address line: {first:?}; stderr: {}",
                    stderr.lock().expect("lock")
                )
            })
            .to_owned();
        let count = listeners.matches("[[listeners]]").count();
        let mut parsed = Vec::new();
        for _ in 0..count {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("a listener line");
            let (url, surfaces) = line.trim().split_once(' ').expect("url (surfaces)");
            parsed.push((url.to_owned(), surfaces.trim_matches(['(', ')']).to_owned()));
        }
        assert_eq!(
            first, parsed[0].0,
            "the first line names the first listener"
        );
        Served {
            child,
            listeners: parsed,
            stderr,
            _dir: dir,
        }
    }

    /// A PS with [`three_listeners`]: its certificate from a server CA, its client CA the POS
    /// CA; returns both CAs beside it.
    pub fn three_listeners() -> (Served, Ca, Ca) {
        let dir = tempfile::tempdir().expect("dir");
        let server_ca = Ca::new();
        let pos_ca = Ca::new();
        let ps_cert = server_ca.issue("localhost");
        std::fs::write(dir.path().join("ps.pem"), &ps_cert.cert_pem).expect("written");
        std::fs::write(dir.path().join("ps.key"), &ps_cert.key_pem).expect("written");
        std::fs::write(dir.path().join("pos-ca.pem"), pos_ca.pem()).expect("written");
        let listeners = three_listeners(dir.path());
        (Served::start(dir, &listeners, &[]), server_ca, pos_ca)
    }

    pub fn url(&self, surfaces: &str) -> &str {
        &self
            .listeners
            .iter()
            .find(|(_, s)| s == surfaces)
            .unwrap_or_else(|| panic!("no listener of {surfaces}: {:?}", self.listeners))
            .0
    }

    fn hangup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "{which} sent");
    }

    /// Waits until the PS's log holds a line with every one of `words`; a log that is not a
    /// terminal is plain text, without colour codes.
    pub(crate) async fn logged(&self, words: &[&str]) {
        let found = async {
            loop {
                let log = self.stderr.lock().expect("lock").clone();
                if log.lines().any(|l| words.iter().all(|w| l.contains(w))) {
                    assert!(
                        !log.contains('\u{1b}'),
                        "colour codes in a piped log: {log}"
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(BOUND, found)
            .await
            .unwrap_or_else(|_| panic!("no log line with {words:?}"));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the TLS listener trusting only `ca`, with an optional client certificate; a new
/// one per call, so that every call makes a new connection (and sees the certificate in force).
pub(crate) fn tls_client(ca: &Ca, identity: Option<&Issued>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("the CA");
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .tls_info(true)
        .timeout(BOUND);
    if let Some(issued) = identity {
        let pem = format!("{}{}", issued.cert_pem, issued.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("a client")
}

/// (HTTP status, body) of a request; `headers` are name-value pairs.
async fn call(
    http: &reqwest::Client,
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Result<(u16, String), reqwest::Error> {
    let mut request = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url),
    };
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

pub(crate) async fn answer(
    http: &reqwest::Client,
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, String) {
    let what = format!("{method} {url}");
    call(http, method, url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// The DER of the leaf certificate a new TLS connection to `url` is served.
async fn served_leaf(ca: &Ca, url: &str) -> Vec<u8> {
    let response = tls_client(ca, None)
        .get(format!("{url}/r1/v01/health/ping"))
        .header("api-key", API_KEY)
        .send()
        .await
        .expect("a TLS answer");
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    info.peer_certificate().expect("a leaf").to_vec()
}

/// Waits until new connections are served `leaf`.
async fn until_served(ca: &Ca, url: &str, leaf: &[u8], what: &str) {
    let served = async {
        while served_leaf(ca, url).await != leaf {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(BOUND, served)
        .await
        .unwrap_or_else(|_| panic!("{what}: the new certificate was not served"));
}

/// A counter of the admin API's metrics.
async fn metric(admin: &str, name: &str) -> u64 {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, text) = answer(
        &reqwest::Client::new(),
        "GET",
        format!("{admin}/admin/v1/metrics"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn metric_reaches(admin: &str, name: &str, at_least: u64) {
    let reached = async {
        while metric(admin, name).await < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(BOUND, reached)
        .await
        .unwrap_or_else(|_| panic!("{name} did not reach {at_least}"));
}

/// The three listeners of a production layout: the MPP API in plain HTTP (the tunnel's side),
/// the merchant API in TLS asking for client certificates of `pos-ca.pem`, the admin API in
/// plain HTTP on loopback.
fn three_listeners(dir: &Path) -> String {
    let file = |name: &str| dir.join(name).display().to_string();
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
surfaces = ["mpp"]

[[listeners]]
address = "127.0.0.1:0"
surfaces = ["merchant"]
tls = {{ certificate = "{}", key = "{}", client_ca = "{}" }}

[[listeners]]
address = "127.0.0.1:0"
surfaces = ["admin"]
"#,
        file("ps.pem"),
        file("ps.key"),
        file("pos-ca.pem")
    )
}

#[tokio::test]
async fn each_surface_answers_on_its_own_listener_and_the_merchant_one_speaks_tls() {
    let (ps, server_ca, pos_ca) = Served::three_listeners();
    let mpp = ps.url("mpp").to_owned();
    let merchant = ps.url("merchant").to_owned();
    let admin = ps.url("admin").to_owned();
    assert!(mpp.starts_with("http://") && admin.starts_with("http://"));
    assert!(merchant.starts_with("https://"), "{merchant}");

    // Each surface on its own listener.
    let plain = reqwest::Client::new();
    let mpp_headers = [("x-caller-name", "demobank"), ("x-request-id", "scan-1")];
    let scan = json!({"qrCode": STATIC_QR, "customerId": "C1"});
    let (_, body) = answer(
        &plain,
        "POST",
        format!("{mpp}/api/v1/qr/scan"),
        &mpp_headers,
        Some(scan.clone()),
    )
    .await;
    let scanned: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(scanned["result"]["resultCode"], "SUCCESS", "{body}");
    let pos = tls_client(&server_ca, None);
    let (status, body) = answer(
        &pos,
        "POST",
        format!("{merchant}/r1/v01/device/register"),
        &[("api-key", API_KEY)],
        Some(json!({"DeviceId": "K-1", "TradePointId": 1001})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let registered: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(registered["StatusCode"], 0, "{body}");
    assert!(metric(&admin, "tolem_connections_accepted_total").await >= 2);
    // Over TLS every answer keeps browsers on TLS (HSTS), the cashier's page and a refusal
    // alike; in plain HTTP, where it means nothing, none says it.
    let hsts = |client: &reqwest::Client, url: String| {
        let request = client.get(url);
        async move {
            request
                .send()
                .await
                .expect("an answer")
                .headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().expect("text").to_owned())
        }
    };
    for path in ["/pos/", "/r1/v01/nope"] {
        assert_eq!(
            hsts(&pos, format!("{merchant}{path}")).await.as_deref(),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    assert_eq!(hsts(&plain, format!("{admin}/console/")).await, None);

    // Anything else is an unknown path of the listener's own surface: the same status and body
    // as a path of its own that does not exist.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let unknown_mpp = answer(
        &plain,
        "POST",
        format!("{mpp}/api/v1/nope"),
        &mpp_headers,
        None,
    )
    .await;
    for path in [
        "/admin/v1/metrics",
        "/cabinet/v1/registers/daily/x.csv",
        "/r1/v01/health/ping",
        "/receipt",
        "/qr/image.png",
    ] {
        let got = answer(
            &plain,
            "GET",
            format!("{mpp}{path}"),
            &[("authorization", &bearer), ("api-key", API_KEY)],
            None,
        )
        .await;
        assert_eq!(got, unknown_mpp, "{path} on the MPP listener");
    }
    let unknown_pos = answer(&pos, "GET", format!("{merchant}/r1/v01/nope"), &[], None).await;
    for path in ["/admin/v1/metrics", "/api/v1/qr/scan"] {
        let got = answer(
            &pos,
            "GET",
            format!("{merchant}{path}"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
        assert_eq!(got, unknown_pos, "{path} on the merchant listener");
    }
    // Without its token the admin listener says 401 to any path, its own or not.
    let unknown_admin = answer(&plain, "GET", format!("{admin}/admin/v1/nope"), &[], None).await;
    assert_eq!(unknown_admin.0, 401);
    let got = answer(
        &plain,
        "POST",
        format!("{admin}/api/v1/qr/scan"),
        &mpp_headers,
        Some(scan),
    )
    .await;
    assert_eq!(got, unknown_admin, "the MPP API on the admin listener");
    let got = answer(
        &plain,
        "GET",
        format!("{admin}/r1/v01/health/ping"),
        &[("api-key", API_KEY)],
        None,
    )
    .await;
    assert_eq!(got, unknown_admin, "the merchant API on the admin listener");
    // Each counted as what it was answered as: the scans sent to the other listeners are
    // unknown paths there, not MPP API scans.
    let scans = r#"tolem_mpp_requests_total{method="scan",result="SUCCESS"}"#;
    assert_eq!(metric(&admin, scans).await, 1);
    let timed = r#"tolem_mpp_request_duration_seconds_count{method="scan"}"#;
    assert_eq!(metric(&admin, timed).await, 1);
    let unmatched = r#"tolem_http_requests_total{route="unmatched",status="401"}"#;
    assert!(metric(&admin, unmatched).await >= 3);

    // The root leads a person to the listener's screen: the console on the admin listener, the
    // cashier's on the merchant one; the MPP listener has none.
    let unfollowed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let root = unfollowed
        .get(format!("{admin}/"))
        .send()
        .await
        .expect("answer");
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/console/");
    let root = pos
        .get(format!("{merchant}/"))
        .send()
        .await
        .expect("answer");
    assert_eq!((root.status().as_u16(), root.url().path()), (200, "/pos/"));
    let root = unfollowed
        .get(format!("{mpp}/"))
        .send()
        .await
        .expect("answer");
    assert_eq!(root.status(), 404);

    // A balancer's checks answer on every listener, without credentials (the merchant one asks
    // no client certificate for them either).
    for (client, url) in [(&plain, &mpp), (&pos, &merchant), (&plain, &admin)] {
        for which in ["live", "ready"] {
            let (status, body) =
                answer(client, "GET", format!("{url}/health/{which}"), &[], None).await;
            assert_eq!(
                (status, body),
                (200, format!(r#"{{"status":"{which}"}}"#)),
                "/health/{which} on {url}"
            );
        }
    }

    // Client certificates: one of the POS CA passes the handshake; one of another CA does not,
    // and the PS counts it.
    let pos_cert = pos_ca.issue("pos-1");
    let with_cert = tls_client(&server_ca, Some(&pos_cert));
    let (status, body) = answer(
        &with_cert,
        "GET",
        format!("{merchant}/r1/v01/health/ping"),
        &[("api-key", API_KEY)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let failed_before = metric(&admin, "tolem_tls_handshakes_failed_total").await;
    let stranger = Ca::new().issue("pos-1");
    let refused = call(
        &tls_client(&server_ca, Some(&stranger)),
        "GET",
        format!("{merchant}/r1/v01/health/ping"),
        &[("api-key", API_KEY)],
        None,
    )
    .await;
    assert!(
        refused.is_err(),
        "another CA's certificate was let in: {refused:?}"
    );
    metric_reaches(
        &admin,
        "tolem_tls_handshakes_failed_total",
        failed_before + 1,
    )
    .await;
    // Plain HTTP to the TLS listener gets no answer either.
    let plain_to_tls = call(
        &plain,
        "GET",
        ps.url("merchant").replace("https", "http") + "/r1/v01/health/ping",
        &[],
        None,
    )
    .await;
    assert!(plain_to_tls.is_err(), "{plain_to_tls:?}");

    // A client that opens TCP and never says hello is closed at the header deadline (1 s here).
    let late_before = metric(&admin, "tolem_connections_closed_headers_late_total").await;
    let address = ps.url("merchant").trim_start_matches("https://").to_owned();
    let mut silent = TcpStream::connect(&address).await.expect("connected");
    let mut rest = Vec::new();
    tokio::time::timeout(BOUND, silent.read_to_end(&mut rest))
        .await
        .expect("the PS closed the silent connection")
        .ok();
    assert!(
        rest.is_empty(),
        "nothing is sent to a client that said nothing"
    );
    metric_reaches(
        &admin,
        "tolem_connections_closed_headers_late_total",
        late_before + 1,
    )
    .await;
}

/// One TLS listener for every surface, with the certificate files in `dir`.
fn one_tls_listener(dir: &Path) -> String {
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
surfaces = ["mpp", "merchant", "admin"]
tls = {{ certificate = "{}", key = "{}" }}
"#,
        dir.join("ps.pem").display(),
        dir.join("ps.key").display()
    )
}

fn install(dir: &Path, issued: &Issued) {
    replace(&dir.join("ps.pem"), &issued.cert_pem);
    replace(&dir.join("ps.key"), &issued.key_pem);
}

/// The sandbox's configuration with one TLS listener whose files are in `dir` (as the test puts
/// them there), a fresh database, and runs of `tolem serve` on them.
struct OneTlsListener {
    config: PathBuf,
    db: PathBuf,
}

impl OneTlsListener {
    fn new(dir: &Path) -> OneTlsListener {
        let config = dir.join("ps.toml");
        std::fs::write(
            &config,
            format!("{SANDBOX_TOML}\n{}", one_tls_listener(dir)),
        )
        .expect("config");
        let db = fresh_database(dir);
        OneTlsListener { config, db }
    }

    /// [`tolem_serve`] on this configuration and database.
    fn serve(&self, extra: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        tolem_serve(&self.config, &self.db, extra, env)
    }
}

/// `tolem serve` on `config` and `db` with `extra` flags and `env`, at `RUST_LOG=warn`: whether
/// it succeeded, and what it said (its output, then its errors).
fn tolem_serve(config: &Path, db: &Path, extra: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--db")
        .arg(db)
        .args(extra)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("tolem runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn the_certificate_is_read_again_on_sighup_and_a_broken_one_keeps_the_old() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new();
    let first = ca.issue("localhost");
    install(dir.path(), &first);
    let listeners = one_tls_listener(dir.path());
    let files: PathBuf = dir.path().to_owned();
    // Files are checked only once an hour here: what changes the certificate is the SIGHUP.
    // Not a sandbox: a merchant listener without client_ca is then worth a warning.
    let ps = Served::start(
        dir,
        &listeners,
        &[
            ("TOLEM_LIMITS__TLS_FILES_CHECK_INTERVAL_MS", "3600000"),
            ("TOLEM_SANDBOX", "false"),
            ("TOLEM_PUBLIC_URL", "https://localhost:8443"),
        ],
    );
    ps.logged(&["WARN", "r2 and r3 refuse every call"]).await;
    let url = ps.url("mpp, merchant, admin").to_owned();
    assert_eq!(served_leaf(&ca, &url).await, first.der);
    // Outside the sandbox r2 and r3 are known by a certificate alone (DECISIONS 41): with no way
    // to receive one, the API key that opens r1 opens neither.
    let http = tls_client(&ca, None);
    for path in ["/r2/v01/payment/status/1", "/r3/v02/payment/status/1"] {
        let (status, body) = answer(
            &http,
            "GET",
            format!("{url}{path}"),
            &[("api-key", API_KEY)],
            None,
        )
        .await;
        assert!(body.contains("-10000"), "{path}: {status} {body}");
    }

    let second = ca.issue("localhost");
    install(&files, &second);
    assert_eq!(
        served_leaf(&ca, &url).await,
        first.der,
        "not before the SIGHUP"
    );
    ps.hangup();
    until_served(&ca, &url, &second.der, "after SIGHUP").await;

    // A broken certificate: the error names the file, and the one in force stays.
    replace(
        &files.join("ps.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    );
    ps.hangup();
    ps.logged(&["TLS files not reloaded", "ps.pem"]).await;
    assert_eq!(served_leaf(&ca, &url).await, second.der);
    // The metrics say so, and when the certificate in force ends.
    let metrics = answer(
        &http,
        "GET",
        format!("{url}/admin/v1/metrics"),
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        None,
    )
    .await
    .1;
    assert!(
        metrics.contains(&format!(
            "tolem_tls_files_reload_failing{{certificate=\"{url}\"}} 1"
        )),
        "{metrics}"
    );
    let end = format!("tolem_tls_certificate_expiry_timestamp_seconds{{certificate=\"{url}\"}} ");
    let end: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&end))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    let now = jiff::Timestamp::now().as_second();
    assert!(end > now, "the certificate in force ends later: {end}");
    // And a key that is not the certificate's.
    replace(&files.join("ps.pem"), &ca.issue("localhost").cert_pem);
    ps.hangup();
    ps.logged(&["TLS files not reloaded", "does not belong"])
        .await;
    assert_eq!(served_leaf(&ca, &url).await, second.der);

    // A certificate for another host than public_url's is served, with a warning: the receipt
    // and payment links would not be taken on it. Those for localhost had none.
    let other = ca.issue("pay.example.kz");
    install(&files, &other);
    ps.hangup();
    let warning = "the certificate is for pay.example.kz, 127.0.0.1, not for localhost, the host of public_url";
    ps.logged(&["WARN", warning]).await;
    let log = ps.stderr.lock().expect("lock").clone();
    assert_eq!(log.matches("not for localhost").count(), 1, "{log}");
}

#[tokio::test]
async fn the_certificate_is_read_again_when_its_files_change() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new();
    let first = ca.issue("localhost");
    install(dir.path(), &first);
    let listeners = one_tls_listener(dir.path());
    let files: PathBuf = dir.path().to_owned();
    let ps = Served::start(
        dir,
        &listeners,
        &[("TOLEM_LIMITS__TLS_FILES_CHECK_INTERVAL_MS", "100")],
    );
    let url = ps.url("mpp, merchant, admin").to_owned();
    assert_eq!(served_leaf(&ca, &url).await, first.der);
    // An open connection keeps the certificate it was made with.
    let kept = tls_client(&ca, None);
    answer(
        &kept,
        "GET",
        format!("{url}/r1/v01/health/ping"),
        &[("api-key", API_KEY)],
        None,
    )
    .await;

    let second = ca.issue("localhost");
    install(&files, &second);
    until_served(&ca, &url, &second.der, "after the files changed").await;
    let response = kept
        .get(format!("{url}/r1/v01/health/ping"))
        .header("api-key", API_KEY)
        .send()
        .await
        .expect("the open connection still answers");
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a leaf")
        .to_vec();
    assert_eq!(leaf, first.der, "the open connection kept its certificate");

    replace(&files.join("ps.key"), "no key here");
    ps.logged(&["TLS files not reloaded", "ps.key", "no private key"])
        .await;
    assert_eq!(served_leaf(&ca, &url).await, second.der);
}

#[tokio::test]
async fn a_bad_tls_file_or_listen_with_listeners_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new();
    let issued = ca.issue("localhost");
    std::fs::write(dir.path().join("ps.pem"), &issued.cert_pem).expect("written");
    let serve = OneTlsListener::new(dir.path());
    let (config, db) = (&serve.config, &serve.db);
    let run = |extra: &[&str]| {
        let (ok, said) = serve.serve(extra, &[]);
        assert!(!ok, "{said}");
        said
    };
    // The key file is missing.
    let said = run(&[]);
    assert!(
        said.contains("configuration: listeners[0].tls: cannot read") && said.contains("ps.key"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    // `--check` finds the same, before anything is bound or opened.
    let said = run(&["--check"]);
    assert!(
        said.contains("configuration: listeners[0].tls: cannot read") && said.contains("ps.key"),
        "{said}"
    );
    std::fs::write(dir.path().join("ps.key"), &issued.key_pem).expect("written");
    let said = run(&["--listen", "127.0.0.1:0"]);
    assert!(
        said.contains("--listen cannot be used with `listeners`"),
        "{said}"
    );
    // `--check` with every file in place: (success, stdout and stderr).
    let check_with = |db: &Path| tolem_serve(config, db, &["--check"], &[]);
    let check = || check_with(db);
    // It says so and exits; it made no database.
    let (ok, said) = check();
    assert!(ok, "{said}");
    assert!(
        said.starts_with("configuration OK: 1 listener(s), database ")
            && said.contains("(new: a start makes its schema)"),
        "{said}"
    );
    // It says whether a start would migrate the database, and refuses one a newer build made.
    let limits = tolem_ps::store::StoreLimits::of(&tolem_ps::Config::default().limits);
    drop(tolem_ps::store::Store::open(db, &limits).expect("the schema made"));
    let (ok, said) = check();
    assert!(ok && said.contains(", up to date)"), "{said}");
    let books = crate::backend::PsBooks::open_for_writing(db);
    let set_version = |version: i64| {
        if tolem_ps::is_postgres_url(db) {
            books.execute("UPDATE schema_version SET version = ?1", &[&version]);
        } else {
            books.execute(&format!("PRAGMA user_version = {version}"), &[]);
        }
    };
    set_version(2);
    let (ok, said) = check();
    assert!(
        ok && said.contains("(schema 2: a start migrates it to "),
        "{said}"
    );
    set_version(1000);
    let (ok, said) = check();
    assert!(
        !ok && said.contains("has schema version 1000, newer than this build's"),
        "{said}"
    );
    drop(books);
    if !tolem_ps::is_postgres_url(db) {
        // Nothing else made or changed: the file is the one made above, still at version 1000.
        assert!(db.exists());
        // A SQLite file in a folder that is not there is named before a start would fail on it.
        let (ok, said) = check_with(&dir.path().join("no-such-folder").join("tolem.db"));
        assert!(!ok, "{said}");
        assert!(
            said.contains("no folder") && said.contains("no-such-folder"),
            "{said}"
        );
        assert!(!dir.path().join("no-such-folder").exists(), "{said}");
    }
}

#[tokio::test]
async fn sighup_on_a_ps_without_tls_changes_nothing_and_ends_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let listeners = r#"
[[listeners]]
address = "127.0.0.1:0"
surfaces = ["mpp", "merchant", "admin"]
"#;
    let ps = Served::start(dir, listeners, &[("RUST_LOG", "info")]);
    let url = ps.url("mpp, merchant, admin").to_owned();
    let http = reqwest::Client::new();
    let ping = || {
        answer(
            &http,
            "GET",
            format!("{url}/r1/v01/health/ping"),
            &[("api-key", API_KEY)],
            None,
        )
    };
    assert_eq!(ping().await.0, 200);
    // `systemctl reload` sends SIGHUP whether or not TLS is configured.
    ps.hangup();
    ps.logged(&["SIGHUP", "nothing to read again"]).await;
    assert_eq!(ping().await.0, 200, "the PS still serves after SIGHUP");
}

/// An MPP without a tunnel is known by its `X-Caller-Name` alone: where the MPP API listens
/// beyond loopback, `--check` (and a start) names those MPPs; on loopback it says nothing. The
/// sandbox's published credentials, outside a sandbox, are named too.
#[tokio::test]
async fn mpps_without_a_tunnel_and_the_sandbox_credentials_outside_a_sandbox_are_warned_of() {
    let dir = tempfile::tempdir().expect("dir");
    let db = fresh_database(dir.path());
    let check = |address: &str| {
        let config = dir
            .path()
            .join(format!("ps-{}.toml", address.replace([':', '.'], "-")));
        std::fs::write(
            &config,
            format!(
                "{SANDBOX_TOML}\n[[listeners]]\naddress = \"{address}\"\nsurfaces = [\"mpp\"]\n\n\
                 [[listeners]]\naddress = \"127.0.0.1:0\"\nsurfaces = [\"merchant\", \"admin\"]\n"
            ),
        )
        .expect("config");
        set_mode(&config, 0o644);
        let (ok, said) = tolem_serve(&config, &db, &["--check"], &[("TOLEM_SANDBOX", "false")]);
        assert!(ok, "{said}");
        said
    };
    let said = check("0.0.0.0:0");
    assert!(
        said.contains("these MPPs have no [mpps.ipsec]")
            && said.contains("demobank, demowallet")
            && said.contains("0.0.0.0:0"),
        "{said}"
    );
    // Not a sandbox, yet with the sandbox's published credentials: each is named.
    assert!(
        said.contains("the sandbox's published credentials")
            && said.contains("admin_token")
            && said.contains("registers.cabinet_tokens.demobank")
            && said.contains("organizations.990340001234: the API key test_5F3C"),
        "{said}"
    );
    // The file that holds them may be read by every user of the machine, which is said too.
    assert!(
        said.contains("holds admin_token, registers.cabinet_tokens, organizations.api_keys and every user of this machine may read or change it (mode 644)"),
        "{said}"
    );
    // And the OK line counts them, with the one that r2 and r3 take no call here.
    assert!(said.contains(", 4 warning(s) above"), "{said}");
    let said = check("127.0.0.1:0");
    assert!(!said.contains("[mpps.ipsec]"), "{said}");
}

fn set_mode(path: &Path, mode: u32) {
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode);
    std::fs::set_permissions(path, mode).expect("chmod");
}

/// A private key every user of the machine may read is said by `--check` and at a start, and
/// counted; one its group may read is the usual way to give it to the service, and is not said.
/// So is a configuration file with secrets, outside the sandbox (whose secrets are published).
#[tokio::test]
async fn private_keys_and_secrets_every_user_may_read_are_said() {
    let dir = tempfile::tempdir().expect("dir");
    let issued = Ca::new().issue("localhost");
    install(dir.path(), &issued);
    let serve = OneTlsListener::new(dir.path());
    let config = &serve.config;
    let run = |extra: &[&str], sandbox: &str| serve.serve(extra, &[("TOLEM_SANDBOX", sandbox)]).1;
    let key_said =
        "listeners[0].tls.key: every user of this machine may read or change the private key";
    let file_said =
        "holds admin_token, registers.cabinet_tokens, organizations.api_keys and every user";
    set_mode(&dir.path().join("ps.key"), 0o644);
    set_mode(config, 0o644);
    let said = run(&["--check"], "true");
    assert!(
        said.contains(key_said) && said.contains("(mode 644)"),
        "{said}"
    );
    assert!(
        !said.contains(file_said),
        "a sandbox's secrets are published: {said}"
    );
    let said = run(&["--check"], "false");
    assert!(
        said.contains(key_said) && said.contains(file_said),
        "{said}"
    );
    // A start says it before anything else can fail (here, --listen beside `listeners`).
    let said = run(&["--listen", "127.0.0.1:0"], "false");
    assert!(
        said.contains(key_said)
            && said.contains(file_said)
            && said.contains("--listen cannot be used"),
        "{said}"
    );
    // Readable by the group alone: nothing said, one warning fewer for each.
    let count = |said: &str| {
        said.find(" warning(s) above").map_or(0, |end| {
            let count = said[..end].rsplit(' ').next().unwrap_or_default();
            count.parse::<usize>().expect("a count")
        })
    };
    let before = count(&run(&["--check"], "false"));
    set_mode(&dir.path().join("ps.key"), 0o640);
    set_mode(config, 0o640);
    let said = run(&["--check"], "false");
    assert!(
        !said.contains(key_said) && !said.contains(file_said),
        "{said}"
    );
    assert_eq!(count(&said), before - 2, "{said}");
    // Writable by every user, though not readable: said too (anyone could put in a key or a
    // token of their own).
    set_mode(&dir.path().join("ps.key"), 0o602);
    set_mode(config, 0o602);
    let said = run(&["--check"], "false");
    assert!(
        said.contains(key_said) && said.contains("(mode 602)") && said.contains(file_said),
        "{said}"
    );
}

/// A listener of the cabinet surface alone, for the MPPs to reach: their register API and
/// cabinet pages, and nothing of the operator's — no admin API (not even its 401), no operator
/// console, the admin token taken for no one, an operator's session cookie nobody's.
#[tokio::test]
async fn a_cabinet_listener_serves_the_mpps_registers_and_nothing_of_the_operators() {
    let dir = tempfile::tempdir().expect("dir");
    let listeners = r#"
[[listeners]]
address = "127.0.0.1:0"
surfaces = ["mpp", "merchant", "admin"]

[[listeners]]
address = "127.0.0.1:0"
surfaces = ["cabinet"]
"#;
    let ps = Served::start(dir, listeners, &[]);
    let cabinet = ps.url("cabinet").to_owned();
    let admin = ps.url("mpp, merchant, admin").to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let bank = [("authorization", "Bearer sandbox-cabinet-demobank")];
    let (status, body) = answer(
        &http,
        "GET",
        format!("{cabinet}/cabinet/v1/registers/daily/2026-11-26.csv"),
        &bank,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The admin API is not there: the answer of any unknown path, whatever the token.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let unknown = answer(&http, "GET", format!("{cabinet}/nope"), &[], None).await;
    for path in [
        "/admin/v1/catalog",
        "/admin/v1/metrics",
        "/api/v1/qr/scan",
        "/r1/v01/health/ping",
    ] {
        let got = answer(
            &http,
            "GET",
            format!("{cabinet}{path}"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
        assert_eq!(got, unknown, "{path} on the cabinet's listener");
    }
    assert_eq!(unknown.0, 404);
    // The console takes the MPP's cabinet token, not the admin token.
    let sign_in = |token: &'static str| {
        http.post(format!("{cabinet}/console/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let refused = sign_in(ADMIN_TOKEN).await.expect("an answer");
    assert_eq!(refused.status(), 401);
    let taken = sign_in("sandbox-cabinet-demobank")
        .await
        .expect("an answer");
    assert_eq!(taken.status(), 303);
    assert_eq!(taken.headers()["location"], "/console/cabinet");
    // An operator's session from the admin listener is nobody's here, and its pages are not.
    let operator = http
        .post(format!("{admin}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(operator.status(), 303);
    let cookie = operator.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let home = http
        .get(format!("{cabinet}/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("an answer");
    assert_eq!(home.status(), 200, "the sign-in page, not the operator's");
    assert!(
        home.text()
            .await
            .expect("a page")
            .contains("id=\"sign-in\"")
    );
    let page = http
        .get(format!("{cabinet}/console/operator"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("an answer");
    assert_eq!(page.status(), 404);
}

/// A repeat of notifyPayment that says otherwise than the one that took effect (another
/// mppPaymentId and amount) gets the first answer and changes nothing (DECISIONS 18), and the
/// log says it: the MPP may have debited its customer twice, and its answer does not tell it.
#[tokio::test]
async fn a_repeat_of_notify_unlike_the_first_gets_its_answer_and_is_logged() {
    async fn call(mpp: &str, path: &str, request_id: &str, body: Value) -> (u16, String) {
        answer(
            &reqwest::Client::new(),
            "POST",
            format!("{mpp}/api/v1/qr/{path}"),
            &[("x-caller-name", "demobank"), ("x-request-id", request_id)],
            Some(body),
        )
        .await
    }
    let ps = Served::start(
        tempfile::tempdir().expect("dir"),
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nsurfaces = [\"mpp\", \"merchant\", \"admin\"]\n",
        &[],
    );
    let mpp = ps.url("mpp, merchant, admin").to_owned();
    let scan = json!({"qrCode": STATIC_QR, "customerId": "C1"});
    let (_, body) = call(&mpp, "scan", "scan-1", scan).await;
    let scanned: Value = serde_json::from_str(&body).expect("JSON");
    let id = scanned["payment"]["paymentId"]
        .as_str()
        .expect("an id")
        .to_owned();
    let notify = |mpp_payment_id: &str, amount: &str| {
        let mut body = crate::harness::notify_body(&id, "C1", "SUCCESS", Some(amount));
        body["payment"]["mppPaymentId"] = json!(mpp_payment_id);
        (mpp_payment_id.to_owned(), body)
    };
    let (request, body) = notify("BANK-1", "500");
    let first = call(&mpp, "notifyPayment", &request, body).await;
    assert_eq!(first.0, 200, "{first:?}");
    assert!(first.1.contains("\"SUCCESS\""), "{first:?}");
    let (request, body) = notify("BANK-2", "700");
    let again = call(&mpp, "notifyPayment", &request, body).await;
    assert_eq!(again, first, "the first answer");
    ps.logged(&[
        "a repeat of notifyPayment differs",
        "payment.mppPaymentId, payment.paymentAmount",
        "demobank",
    ])
    .await;
}

/// A stop says at once that it has begun and what it waits for, so that one that takes a while
/// (a POS waiting for an MPP's answer) does not look hung; and it ends said too.
#[tokio::test]
async fn a_stop_is_said_when_it_begins_and_when_it_ends() {
    let ps = Served::start(
        tempfile::tempdir().expect("dir"),
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nsurfaces = [\"mpp\", \"merchant\", \"admin\"]\n",
        &[("RUST_LOG", "info")],
    );
    // Its signal handler is in place once it serves: an answer says it is.
    let admin = ps.url("mpp, merchant, admin").to_owned();
    metric(&admin, "tolem_connections_accepted_total").await;
    ps.signal("-TERM");
    ps.logged(&["stopping: no new connections", "connections="])
        .await;
    ps.logged(&["Tolem PS stopped"]).await;
}
