//! Typed, layered configuration: defaults < TOML file < `TOLEM_...` environment variables.
//!
//! A variable `TOLEM_PAYMENTS__CONFIRM_WINDOW_S=30` sets `payments.confirm_window_s` (a double
//! underscore separates table levels). Unknown keys are errors, and every error names the key.
//! The operator data (MPPs, organizations, trade points, services) sits in the same file; see
//! `catalog` (the tables as written, `config::catalog`) and `docs/configuration.md`. This module
//! is plain data at the bottom of the crate: it imports no other module but `domain`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub(crate) mod catalog;
mod durations;
pub(crate) mod ipsec;
pub(crate) mod pem;
pub mod registers;

use catalog::CatalogFile;

/// The demo configuration `tolem sandbox` runs with, and the test sandboxes' catalog (the café,
/// the parking, the MPPs `demobank` and `demowallet`, their test keys; `docs/sandbox.md`). Its
/// one copy is `crates/ps/sandbox.toml`, inside this package so that the published crate has
/// it; `examples/sandbox.toml` links to it for `tolem serve --config`.
pub const SANDBOX_TOML: &str = include_str!("../../sandbox.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the server listens on when `listeners` is empty (one plain listener for every
    /// surface); unused otherwise.
    pub listen: SocketAddr,
    /// The database: a SQLite file (one node), or a PostgreSQL URL `postgres://…` (any number of
    /// nodes sharing it, DECISIONS 45).
    pub database: PathBuf,
    /// Whether `database` was given (by the file, a variable or `--db`) rather than left at its
    /// default, `tolem.db` in the working folder: a node meant for PostgreSQL whose
    /// `TOLEM_DATABASE` was lost would otherwise serve from a file of its own unnoticed.
    #[serde(skip)]
    pub database_given: bool,
    /// Base URL under which the PS is reached from outside (receipt and payment links): with
    /// `listeners`, the merchant listener's public address.
    pub public_url: String,
    /// The operator's time zone: dates on the wire, register days.
    pub time_zone: String,
    /// The PS's own name: its `X-Caller-Name` on every request it makes to an MPP (DECISIONS 36),
    /// 1–12 printable ASCII characters like the MPPs' names.
    pub caller_name: String,
    /// Sandbox mode turns on the merchant API's emulators (`test/payment/*`).
    pub sandbox: bool,
    /// Bearer token of the admin API; the admin API is off when empty.
    pub admin_token: String,
    /// This PS process's node: the name its delivery leases carry, so that at start it takes back
    /// the deliveries an earlier run of the same node held (a run killed in the middle of them).
    /// Several `tolem serve` on one database need one name each.
    pub node_name: String,
    /// Share the listening ports with other PS processes on this machine (Linux `SO_REUSEPORT`):
    /// the kernel spreads new connections over every process listening on a port, so that
    /// several nodes on one host need no balancer between them, and a new process can start
    /// before the old one stops. PostgreSQL only: a SQLite file serves one process.
    pub reuse_port: bool,
    pub payments: PaymentsConfig,
    pub refunds: RefundsConfig,
    pub registers: registers::RegistersConfig,
    pub limits: LimitsConfig,
    /// Listeners by surface, each with or without TLS (DECISIONS 41). Empty: one plain listener
    /// on `listen` for every surface (the sandbox).
    pub listeners: Vec<ListenerConfig>,
    /// How r2 and r3 callers are known by their client certificate (DECISIONS 41).
    pub client_identity: ClientIdentityConfig,
    /// TLS of the PS's own outgoing calls: refund delivery, Custom callbacks, SMTP.
    pub outgoing: OutgoingConfig,
    /// The IPSec link to each MPP (DECISIONS 42), read by `tolem ipsec`.
    pub ipsec: IpsecConfig,
    #[serde(flatten)]
    pub catalog: CatalogFile,
}

/// The parts of the PS a listener serves (DECISIONS 41).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurfaceName {
    /// The MPP API (`/api/v1/...`): meant for the IPSec tunnel, plain HTTP allowed.
    Mpp,
    /// The merchant API (`/r1`–`/r3`), receipts, QR pictures and payment links: public, TLS.
    Merchant,
    /// The admin API, its metrics and the MPP cabinet: localhost unless configured.
    Admin,
    /// The MPPs' register cabinet alone (`/cabinet/v1/…` and the console's cabinet pages), for
    /// a listener the MPPs reach: no admin API, no operator console. The admin surface serves it
    /// too.
    Cabinet,
}

impl SurfaceName {
    pub const ALL: [SurfaceName; 3] = [SurfaceName::Mpp, SurfaceName::Merchant, SurfaceName::Admin];

    /// The name as the configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SurfaceName::Mpp => "mpp",
            SurfaceName::Merchant => "merchant",
            SurfaceName::Admin => "admin",
            SurfaceName::Cabinet => "cabinet",
        }
    }

    /// The surface a request path belongs to, by its first segment (leading slashes trimmed, as
    /// the router matches them): `/api` the MPP API; `/r1`–`/r3`, `/receipt`, `/qr` and `/pay`
    /// the merchant side; `/admin` and `/cabinet` the operator's. `None` for a path of no
    /// surface, which no route takes.
    pub fn of_path(path: &str) -> Option<SurfaceName> {
        match first_segment(path) {
            "api" => Some(SurfaceName::Mpp),
            "r1" | "r2" | "r3" | "receipt" | "qr" | "pay" | "pos" => Some(SurfaceName::Merchant),
            "admin" | "cabinet" | "console" => Some(SurfaceName::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for SurfaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A path's first segment, leading slashes trimmed as the router matches them: what tells the
/// surfaces (and their envelopes) apart.
pub(crate) fn first_segment(path: &str) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

/// One address the PS listens on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// What it serves; a path of another surface is answered as unknown.
    pub surfaces: Vec<SurfaceName>,
    /// Absent: plain HTTP.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
}

/// TLS terminated by the PS on one listener: PEM files, read again on SIGHUP and when they change.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The certificate chain, leaf first (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) whose client certificates the listener asks for and accepts: the r2
    /// and r3 identity. Absent: no client certificate is asked for.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// Client certificates seen by a TLS-terminating proxy in front of the PS (DECISIONS 41).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientIdentityConfig {
    /// Addresses of the proxies whose fingerprint header is believed; from any other address the
    /// header is ignored. Empty: the header is never read.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The header that carries the client certificate's SHA-256 fingerprint (hex, colons allowed).
    pub fingerprint_header: String,
}

impl Default for ClientIdentityConfig {
    fn default() -> ClientIdentityConfig {
        ClientIdentityConfig {
            trusted_proxies: Vec::new(),
            fingerprint_header: "x-client-cert-sha256".to_owned(),
        }
    }
}

/// Outgoing TLS: the system's roots, plus the operator's CA when given.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutgoingConfig {
    /// CA certificates (PEM) trusted beside the system's roots for refund delivery, Custom
    /// service callbacks and SMTP.
    pub ca_file: Option<PathBuf>,
    /// The PS's client certificate (PEM, its chain after it) for HTTPS calls whose server asks
    /// for one: an MPP's `/refund` that admits the PS alone, a Custom service. With
    /// `client_key`, or neither.
    pub client_certificate: Option<PathBuf>,
    /// The private key (PEM) of `client_certificate`.
    pub client_key: Option<PathBuf>,
}

/// The PS's side of the IPSec link to each MPP (DECISIONS 42), read by `tolem ipsec`, which
/// generates both sides' strongSwan configuration from it and each MPP's `[mpps.ipsec]`
/// (the `ipsec` module, docs/ipsec.md). The server itself does not read it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpsecConfig {
    /// The PS gateway's outer (public) address: IKE and ESP run between it and each MPP's
    /// gateway. Absent: `tolem ipsec` has nothing to generate.
    pub gateway: Option<std::net::IpAddr>,
    /// The PS's IKE identity; absent: its gateway address.
    pub id: Option<String>,
    /// The PS's inner addresses or networks (its encryption domain), where the MPPs reach the
    /// MPP API. Empty: the addresses of the listeners that serve `mpp` (or `listen`).
    pub inner: Vec<ipsec::Subnet>,
    /// `psk` (a pre-shared key per MPP, the regulation's way) or `pubkey` (certificates).
    pub auth: ipsec::IpsecAuth,
    /// With `auth = "pubkey"`: the PS gateway's certificate, a file name in swanctl's `x509/`.
    pub certificate: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// canConfirmUntil = scan (or checkout) time + this (DECISIONS 16).
    pub confirm_window_s: u32,
    /// notifyPayment is still accepted this long after canConfirmUntil.
    pub confirm_grace_s: u32,
    /// A dynamic QR must be scanned within this (its ExpireDate).
    pub qr_scan_wait_s: u32,
    /// A payment link must be opened within this.
    pub link_activation_wait_s: u32,
    /// How often the POS is told to poll status.
    pub status_polling_interval_s: u32,
    /// What `PaymentMethods` lists to the POS.
    pub payment_methods: Vec<String>,
    /// How often open purchases past their deadline are expired.
    pub expiry_sweep_interval_ms: u64,
    /// Timeout of a Custom service's amount callback unless the service sets its own.
    pub amount_callback_timeout_ms: u64,
    /// Amount callbacks in flight to one Custom service at most; a checkout past it is told to
    /// retry (`UNKNOWN_EXCEPTION`), so that a caller looping over checkouts cannot hold the PS's
    /// sockets on a slow provider. At least 1.
    pub amount_callbacks_max: usize,
    /// Purchases never paid (`cancelled`, `failed`, `expired`) are deleted this long after they
    /// ended, and so are return QRs never used (DECISIONS 43). At least 1.
    pub unpaid_retention_days: u32,
}

/// Refunds and their delivery to the MPPs (DECISIONS 20–23).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefundsConfig {
    /// A return QR must be scanned within this.
    pub return_qr_scan_wait_s: u32,
    /// After its scan, a return QR can be used for `payment/return` within this.
    pub return_qr_use_window_s: u32,
    /// How often the POS is told to poll a return QR's status.
    pub return_polling_interval_s: u32,
    /// First retry delay of a delivery; it doubles up to `retry_delay_ms_max`.
    pub retry_delay_ms_initial: u64,
    pub retry_delay_ms_max: u64,
    /// Timeout of one call to an MPP's `/refund`.
    pub request_timeout_ms: u64,
    /// Calls in flight to one MPP at most.
    pub mpp_concurrency_max: usize,
    /// Calls in flight to all MPPs at most.
    pub in_flight_max: usize,
    /// Deliveries claimed per transaction at most.
    pub claim_batch_max: usize,
    /// How often the dispatcher looks for due deliveries when nothing wakes it.
    pub poll_interval_ms: u64,
    /// A refund undelivered this long after it was requested is flagged for the operator.
    pub alert_after_s: u64,
    /// A claimed delivery whose outcome is not recorded within this (the PS crashed) is claimed
    /// again. Must exceed `request_timeout_ms`.
    pub lease_ms: u64,
    /// How long `payment/return` waits for the MPP's answer before it tells the POS the refund
    /// is accepted and delivery goes on (DECISIONS 39); 0 answers at once.
    pub pos_wait_ms: u64,
    /// Refunds of one purchase that hold part of it (pending or completed) at most: each is a
    /// call to the MPP and a line in its register, and every new one reads them all.
    pub per_purchase_max: usize,
}

impl Default for RefundsConfig {
    fn default() -> RefundsConfig {
        RefundsConfig {
            return_qr_scan_wait_s: 180,
            return_qr_use_window_s: 600,
            return_polling_interval_s: 5,
            retry_delay_ms_initial: 1_000,
            retry_delay_ms_max: 300_000,
            request_timeout_ms: 10_000,
            mpp_concurrency_max: 32,
            in_flight_max: 512,
            claim_batch_max: 256,
            poll_interval_ms: 500,
            alert_after_s: 86_400,
            lease_ms: 60_000,
            pos_wait_ms: 10_000,
            per_purchase_max: 100,
        }
    }
}

/// Bounds of `limits.uri_bytes_max`: room for every path of the APIs, and below hyper's own
/// limit of 64 KiB, past which it answers 414 without our envelope.
const URI_BYTES_MIN: usize = 1024;
const URI_BYTES_MAX: usize = 32 * 1024;
/// Bounds of `limits.header_bytes_max`: room for the headers the APIs read, and a bound on what
/// one request may make the PS hold.
const HEADER_BYTES_MIN: usize = 2 * 1024;
const HEADER_BYTES_MAX: usize = 256 * 1024;
/// Longest `node_name`: it is stored with every lease.
const NODE_NAME_LEN_MAX: usize = 64;
/// `why` with `value` left out where a parser quotes it (`"{\"a\":1}"`, `` `1e9` ``). Only the
/// quoted forms: a short value (`0`) left out everywhere would garble the sentence around it.
fn hide_value(why: &str, value: &str) -> String {
    if value.is_empty() {
        return why.to_owned();
    }
    // The error reaches here with its runs of spaces made one (`parse_table`): the value too.
    let collapsed = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    why.replace(&format!("{value:?}"), "\"…\"")
        .replace(&collapsed(format!("{value:?}")), "\"…\"")
        .replace(&format!("`{value}`"), "`…`")
        .replace(&format!("\"{value}\""), "\"…\"")
}

/// The shortest time answers are kept for retries (`limits.pos_replay_retention_s`).
const POS_REPLAY_RETENTION_S_MIN: u64 = 3_600;

/// The shortest admin token taken (as `registers.cabinet_tokens`).
const ADMIN_TOKEN_LEN_MIN: usize = 16;

/// `limits.body_bytes_max`'s bounds: no request of either API is near 4 KiB, and DECISIONS 43
/// caps MPP and merchant bodies at 64 KiB.
const BODY_BYTES_MIN: usize = 4 * 1024;
const BODY_BYTES_MAX: usize = 64 * 1024;

/// Longest `refunds.pos_wait_ms`: POS clients give up on an answer after about a minute.
const POS_WAIT_MS_MAX: u64 = 60_000;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub body_bytes_max: usize,
    /// Writes waiting for the writer; past this the PS answers 503 (retry).
    pub write_queue_max: usize,
    /// Most writes that share one commit.
    pub write_batch_max: usize,
    pub read_connections: usize,
    /// PostgreSQL only: connections this node keeps to the database, for writes and reads alike.
    pub database_connections: usize,
    /// How long a request waits for its write to commit; past it, 503 and "retry".
    pub request_timeout_ms: u64,
    pub expiry_batch_max: usize,
    /// How long the merchant API remembers a request's answer for replays (DECISIONS 29).
    pub pos_replay_retention_s: u64,
    // The connection layer (DECISIONS 43, the `connections` module).
    /// A request's headers must arrive within this from its first byte (a new connection's first
    /// request, from the connection's opening); past it the connection is closed.
    pub header_timeout_ms: u64,
    /// A request's body must arrive whole within this from the request's first byte; past it,
    /// HTTP 408 in the surface's envelope and the connection is closed.
    pub body_timeout_ms: u64,
    /// A keep-alive connection without a request for this long is closed.
    pub idle_timeout_ms: u64,
    /// An answer being sent must make progress within this: a client that stops reading it is
    /// closed this long after the PS's last write to it went through.
    pub send_timeout_ms: u64,
    /// While a listener is at its connection cap, the header, idle, body and send deadlines
    /// become this, so that connections held without use cannot keep others out.
    pub header_timeout_at_cap_ms: u64,
    /// Open connections per listener at most; at the cap the PS accepts no more until one closes.
    pub connections_max: usize,
    /// File descriptors kept free below the open-files limit for the database, outgoing calls
    /// (refunds, callbacks, e-mail) and logs; the connection cap is lowered to leave them.
    pub open_files_reserved: usize,
    /// Longest request target (path and query) in bytes; past it, HTTP 414 in the envelope.
    pub uri_bytes_max: usize,
    /// Most bytes of header lines (`name: value`) a request may carry; past it, HTTP 431.
    pub header_bytes_max: usize,
    // Admin API (DECISIONS 43): its bodies are catalog items and small commands, so a much
    // smaller limit than the APIs' is enough; checked after the token, before anything is read.
    /// Largest admin API request body; a larger declared length is refused at once (413).
    pub admin_body_bytes_max: usize,
    // Disk and request rate (DECISIONS 43).
    /// Rows deleted per transaction when purchases, return QRs or replay records past their
    /// retention are forgotten: each batch is one short write among the payments.
    pub retention_batch_max: usize,
    /// Requests one MPP may make per second on the MPP API; past it, HTTP 503 with
    /// `UNKNOWN_EXCEPTION` (retry). 0 = no limit.
    pub mpp_requests_per_s: u32,
    /// Requests one MPP may make at once above its rate; 0 = one second's worth of its rate.
    pub mpp_requests_burst: u32,
    /// POSTs (QR codes, links, return QRs, refunds, devices: what stores something) one
    /// organization may make per second on the merchant API; past it, HTTP 503 with `-999`
    /// (retry). 0 = no limit; the sandbox has none, so that load tools may make QR codes fast.
    pub pos_writes_per_s: u32,
    /// POSTs one organization may make at once above its rate; 0 = one second's worth.
    pub pos_writes_burst: u32,
    // TLS listeners (DECISIONS 41, `connections::tls`).
    /// How often the TLS listeners' certificate, key and client CA files are read to see whether
    /// they changed (SIGHUP reads them at once).
    pub tls_files_check_interval_ms: u64,
    /// How often a node checks whether the operator data changed in the database (an admin change
    /// made through another node sharing it, DECISIONS 45); its own changes are live at once.
    pub catalog_check_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: PathBuf::from("tolem.db"),
            database_given: false,
            public_url: "http://127.0.0.1:8080".to_owned(),
            time_zone: "Asia/Almaty".to_owned(),
            caller_name: "tolem".to_owned(),
            sandbox: false,
            admin_token: String::new(),
            node_name: "ps".to_owned(),
            reuse_port: false,
            payments: PaymentsConfig::default(),
            refunds: RefundsConfig::default(),
            registers: Default::default(),
            limits: LimitsConfig::default(),
            listeners: Vec::new(),
            client_identity: ClientIdentityConfig::default(),
            outgoing: OutgoingConfig::default(),
            ipsec: IpsecConfig::default(),
            catalog: CatalogFile::default(),
        }
    }
}

impl Default for PaymentsConfig {
    fn default() -> PaymentsConfig {
        PaymentsConfig {
            confirm_window_s: 60,
            confirm_grace_s: 5,
            qr_scan_wait_s: 180,
            link_activation_wait_s: 180,
            status_polling_interval_s: 5,
            payment_methods: vec!["Gold".to_owned()],
            expiry_sweep_interval_ms: 1_000,
            amount_callback_timeout_ms: 3_000,
            amount_callbacks_max: 32,
            unpaid_retention_days: 30,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            body_bytes_max: BODY_BYTES_MAX,
            write_queue_max: 20_000,
            write_batch_max: 1_024,
            read_connections: 4,
            database_connections: 16,
            request_timeout_ms: 10_000,
            expiry_batch_max: 1_000,
            pos_replay_retention_s: 86_400,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            send_timeout_ms: 30_000,
            header_timeout_at_cap_ms: 1_000,
            // Thousands of POS devices and dozens of MPPs keep well under it; at about 10 KiB of
            // buffers per idle connection and 64 KiB per body it bounds their memory to a few
            // hundred MiB, and it fits the common hard open-files limits (4,096 and up) with
            // `open_files_reserved` left over on most.
            connections_max: 4_096,
            // More than `refunds.in_flight_max` (512) outgoing calls, the database's files and
            // the idle connections reqwest keeps.
            open_files_reserved: 1_024,
            uri_bytes_max: 8 * 1024,
            header_bytes_max: 16 * 1024,
            admin_body_bytes_max: 64 * 1024,
            retention_batch_max: 500,
            mpp_requests_per_s: 0,
            mpp_requests_burst: 0,
            pos_writes_per_s: 100,
            pos_writes_burst: 0,
            tls_files_check_interval_ms: 10_000,
            catalog_check_interval_ms: 1_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Whether `database` names PostgreSQL (`postgres://…`, `postgresql://…`) rather than a file.
pub fn is_postgres_url(database: &Path) -> bool {
    database
        .to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// The name of a `name=value` pair of a URL's query or a connection string: letters, digits, `_`.
fn is_pair_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `database` is a libpq connection string (`host=db user=tolem dbname=tolem`): words of
/// `name=value` only, one of them a connection keyword. Taken for a file's name it would give a
/// node meant to share PostgreSQL a SQLite file of its own, named with the password.
pub fn is_key_value_connection_string(database: &Path) -> bool {
    const KEYWORDS: [&str; 7] = [
        "host", "hostaddr", "port", "dbname", "user", "password", "sslmode",
    ];
    let Some(text) = database.to_str().filter(|_| !is_postgres_url(database)) else {
        return false;
    };
    let pairs: Vec<_> = text.split_whitespace().map(|w| w.split_once('=')).collect();
    pairs
        .iter()
        .all(|pair| pair.is_some_and(|(name, _)| is_pair_name(name)))
        && pairs
            .iter()
            .flatten()
            .any(|(name, _)| KEYWORDS.contains(&name.to_ascii_lowercase().as_str()))
}

/// The secret settings a configuration file's own text holds, named as in the file: the admin
/// token, the SMTP password, cabinet tokens, merchants' API keys in clear and a database URL's
/// password. Those the environment
/// gives are not the file's. Text that is not TOML holds none that can be named.
pub fn secrets_in_file(text: &str) -> Vec<&'static str> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let filled = |value: Option<&toml::Value>| match value {
        Some(toml::Value::String(s)) => !s.is_empty(),
        Some(toml::Value::Table(t)) => !t.is_empty(),
        _ => false,
    };
    let registers = table.get("registers").and_then(toml::Value::as_table);
    let database = table.get("database").and_then(toml::Value::as_str);
    let mut held = Vec::new();
    if filled(table.get("admin_token")) {
        held.push("admin_token");
    }
    if filled(registers.and_then(|r| r.get("smtp_password"))) {
        held.push("registers.smtp_password");
    }
    if filled(registers.and_then(|r| r.get("cabinet_tokens"))) {
        held.push("registers.cabinet_tokens");
    }
    let clear_keys = table
        .get("organizations")
        .and_then(toml::Value::as_array)
        .is_some_and(|orgs| {
            orgs.iter().any(|org| {
                org.get("api_keys")
                    .and_then(toml::Value::as_array)
                    .is_some_and(|k| !k.is_empty())
            })
        });
    if clear_keys {
        held.push("organizations.api_keys");
    }
    if database.is_some_and(|url| database_for_display(Path::new(url)) != url) {
        held.push("the database's password");
    }
    held
}

/// `database` fit for a log line or an error: a PostgreSQL URL without its password.
///
/// The password runs from the user's `:` to the last `@` before the query, so that one written
/// with a raw `@`, `/`, `?` or `&` (rather than `%40`, `%2F`, `%3F`, `%26`) is still masked whole.
pub fn database_for_display(database: &Path) -> String {
    let shown = database.display().to_string();
    if is_key_value_connection_string(database) {
        // Refused as a database, but said first by the commands that name it.
        return shown
            .split_whitespace()
            .map(|word| match word.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => word.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    if !is_postgres_url(database) {
        return shown;
    }
    let Some(scheme) = shown.find("://").map(|at| at + 3) else {
        return shown;
    };
    // The user's `@` is before the query, and before any `password=` pair, whose value may hold
    // a raw `@` of its own.
    let end = url_query_start(&shown, scheme)
        .or_else(|| query_password_at(&shown))
        .unwrap_or(shown.len());
    let head = &shown[..end];
    let masked = match head[scheme..].rfind('@').map(|at| scheme + at) {
        Some(at) => match shown[scheme..at].split_once(':') {
            Some((user, _password)) => format!("{}{user}:***{}", &shown[..scheme], &shown[at..]),
            None => shown,
        },
        None => shown,
    };
    query_passwords_masked(&masked)
}

/// Where the first `password=` pair of `url`'s query begins (its `?` or `&`).
fn query_password_at(url: &str) -> Option<usize> {
    let lower = url.to_ascii_lowercase();
    lower
        .match_indices("password=")
        .map(|(at, _)| at)
        .find(|&at| at > 0 && matches!(url.as_bytes()[at - 1], b'?' | b'&'))
        .map(|at| at - 1)
}

/// `url` with the value of every `password=` pair of its query masked: the driver takes the
/// password there too. A value runs to the next `&name=` or the end, so that one written with a
/// raw `&`, `@` or `?` is masked whole.
fn query_passwords_masked(url: &str) -> String {
    const NAME: &str = "password=";
    let lower = url.to_ascii_lowercase();
    let starts_pair = |at: usize| {
        url[at..]
            .split_once('=')
            .is_some_and(|(name, _)| is_pair_name(name))
    };
    let (mut shown, mut from) = (String::with_capacity(url.len()), 0);
    while let Some(found) = lower[from..].find(NAME).map(|at| from + at) {
        let value = found + NAME.len();
        shown.push_str(&url[from..value]);
        from = value;
        if found > 0 && matches!(url.as_bytes()[found - 1], b'?' | b'&') {
            let end = url[value..]
                .match_indices('&')
                .map(|(at, _)| value + at)
                .find(|&at| starts_pair(at + 1))
                .unwrap_or(url.len());
            shown.push_str("***");
            from = end;
        }
    }
    shown.push_str(&url[from..]);
    shown
}

/// What to add to an error about `database` when its URL's password holds a raw `@`: the driver
/// ends the password at the first `@` and takes the rest for the host, which
/// [`database_for_display`] masks with the password, so the error would name a host that is not
/// the cause. Empty otherwise.
pub fn database_url_hint(database: &Path) -> &'static str {
    let Some(text) = database.to_str().filter(|_| is_postgres_url(database)) else {
        return "";
    };
    let Some(scheme) = text.find("://").map(|at| at + 3) else {
        return "";
    };
    let head = &text[scheme..url_query_start(text, scheme).unwrap_or(text.len())];
    if head.matches('@').count() > 1 {
        "; the URL's password holds a raw `@`: write it %40 (docs/deployment.md, \"The database\")"
    } else {
        ""
    }
}

/// Where the query of `url` begins: the first `?` after an `@` that is followed by nothing but
/// `name=value` pairs joined by `&`. A `?` in a raw password is followed by the host, which is
/// not such a pair, and an `@` in the query (a file name in `sslrootcert`) is then left out of
/// the password.
fn url_query_start(url: &str, from: usize) -> Option<usize> {
    let is_query = |rest: &str| {
        rest.is_empty()
            || rest.split('&').all(|pair| {
                pair.split_once('=')
                    .is_some_and(|(name, _)| is_pair_name(name))
            })
    };
    url[from..]
        .match_indices('?')
        .map(|(at, _)| from + at)
        .find(|&at| url[from..at].contains('@') && is_query(&url[at + 1..]))
}

impl Config {
    /// Defaults, then the file (if any), then `TOLEM_...` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::load_text(&text, &path.display().to_string(), env)
            }
            None => Config::load_table(toml::Table::new(), None, env),
        }
    }

    /// [`Config::load`] of a configuration held in memory (the sandbox's own), named `name` in
    /// its errors.
    pub fn load_text(
        text: &str,
        name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Invalid(format!("{name}: {}", toml_error(text, &e))))?;
        Config::load_table(table, Some(name), env)
    }

    fn load_table(
        mut table: toml::Table,
        name: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // The file alone must read, so that an error it holds is not blamed on a variable.
        parse_table(&table).map_err(|e| match name {
            Some(name) => ConfigError::Invalid(format!("{name}: {e}")),
            None => ConfigError::Invalid(e),
        })?;
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| {
                name.starts_with("TOLEM_") && !TOOL_VARIABLES.contains(&name.as_str())
            })
            .collect();
        // Sorted, so that the same environment always names the same first offender.
        vars.sort();
        // Each variable's setting, so that a value the checks below refuse names its variable.
        let mut set_by: Vec<(String, String)> = Vec::new();
        for (name, value) in vars {
            let key = &name["TOLEM_".len()..];
            let path: Vec<String> = key.split("__").map(str::to_lowercase).collect();
            // Each variable is tried on its own, so that an error names the variable that caused it.
            let mut trial = table.clone();
            set_path(&mut trial, &path, env_value(&value))
                .and_then(|()| parse_table(&trial).map(drop).map_err(ConfigError::Invalid))
                .or_else(|typed| {
                    // A text setting given digits or `true` (a password, a name) is the text
                    // as written, leading zeros and all.
                    let mut text = table.clone();
                    set_path(&mut text, &path, toml::Value::String(value.clone()))?;
                    match parse_table(&text) {
                        Ok(_) => {
                            trial = text;
                            Ok(())
                        }
                        Err(_) => Err(typed),
                    }
                })
                .map_err(|e| {
                    let why = e.to_string();
                    let why = why.strip_prefix("configuration: ").unwrap_or(&why);
                    // The value may be a secret (a token, a password): named, never shown.
                    let why = hide_value(why, &value);
                    ConfigError::Invalid(format!(
                        "environment variable {name} (setting `{}`): {why}; unset it or see docs/configuration.md",
                        path.join(".")
                    ))
                })?;
            table = trial;
            set_by.push((path.join("."), name));
        }
        let mut config = parse_table(&table).map_err(ConfigError::Invalid)?;
        config.database_given = table.contains_key("database");
        config.validate().map_err(|e| match e {
            ConfigError::Invalid(why) => {
                let key = why.split_once(": ").map_or("", |(key, _)| key);
                // The setting itself, or an entry of a table a variable gave.
                let set = |setting: &str| {
                    key == setting
                        || key
                            .strip_prefix(setting)
                            .is_some_and(|rest| rest.starts_with('.'))
                };
                match set_by.iter().find(|(setting, _)| set(setting)) {
                    Some((setting, name)) => {
                        let why = why.strip_prefix(&format!("{key}: ")).unwrap_or(&why);
                        ConfigError::Invalid(format!(
                            "environment variable {name} (setting `{setting}`): {why}; change or unset it, or see docs/configuration.md"
                        ))
                    }
                    None => ConfigError::Invalid(why),
                }
            }
            other => other,
        })?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(toml_error(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: &str| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.database.as_os_str().is_empty() {
            return invalid(
                "database",
                "empty: a SQLite file or a postgres:// URL (in an environment file, quote a URL \
                 with `&` in it: an unquoted `&` ends the value there)",
            );
        }
        if tolem_wire::time::zone(&self.time_zone).is_err() {
            return invalid(
                "time_zone",
                &format!(
                    "unknown time zone {:?} (an IANA name, e.g. \"Asia/Almaty\")",
                    self.time_zone
                ),
            );
        }
        // The console signs in with it, on the merchant API's listener unless `listeners` part
        // them: short enough to guess is not a secret (as the cabinet tokens).
        let admin_len = self.admin_token.chars().count();
        // A token of spaces (or with them around it) is no secret, and a bearer header loses
        // them: the admin API would be on with no way in.
        if admin_len > 0 && self.admin_token.trim() != self.admin_token {
            return invalid(
                "admin_token",
                "starts or ends with a space; e.g. 32 random hex digits: openssl rand -hex 16",
            );
        }
        if admin_len > 0 && admin_len < ADMIN_TOKEN_LEN_MIN {
            return invalid(
                "admin_token",
                &format!(
                    "must be at least {ADMIN_TOKEN_LEN_MIN} characters (empty turns the admin \
                     API off); e.g. 32 random hex digits: openssl rand -hex 16"
                ),
            );
        }
        let name_len = self.caller_name.chars().count();
        if name_len == 0
            || name_len > tolem_wire::mpp::CALLER_NAME_LEN_MAX
            || !self.caller_name.bytes().all(|b| b.is_ascii_graphic())
        {
            return invalid("caller_name", "must be 1-12 printable ASCII characters");
        }
        let node_len = self.node_name.chars().count();
        if node_len == 0
            || node_len > NODE_NAME_LEN_MAX
            || !self.node_name.bytes().all(|b| b.is_ascii_graphic())
        {
            return invalid(
                "node_name",
                &format!("must be 1-{NODE_NAME_LEN_MAX} printable ASCII characters"),
            );
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return invalid("public_url", "must start with http:// or https://");
        }
        let p = &self.payments;
        let r = &self.refunds;
        let l = &self.limits;
        // Each named, so that the error names the key (and the variable that set it).
        for (key, value) in [
            ("payments.confirm_window_s", p.confirm_window_s as u64),
            ("payments.qr_scan_wait_s", p.qr_scan_wait_s as u64),
            (
                "payments.link_activation_wait_s",
                p.link_activation_wait_s as u64,
            ),
            (
                "payments.expiry_sweep_interval_ms",
                p.expiry_sweep_interval_ms,
            ),
            (
                "payments.amount_callbacks_max",
                p.amount_callbacks_max as u64,
            ),
            (
                "payments.status_polling_interval_s",
                p.status_polling_interval_s as u64,
            ),
            (
                "refunds.return_qr_scan_wait_s",
                r.return_qr_scan_wait_s as u64,
            ),
            (
                "refunds.return_qr_use_window_s",
                r.return_qr_use_window_s as u64,
            ),
            (
                "refunds.return_polling_interval_s",
                r.return_polling_interval_s as u64,
            ),
            ("refunds.mpp_concurrency_max", r.mpp_concurrency_max as u64),
            ("refunds.per_purchase_max", r.per_purchase_max as u64),
            ("refunds.in_flight_max", r.in_flight_max as u64),
            ("refunds.claim_batch_max", r.claim_batch_max as u64),
            ("refunds.poll_interval_ms", r.poll_interval_ms),
            ("limits.write_queue_max", l.write_queue_max as u64),
            ("limits.write_batch_max", l.write_batch_max as u64),
            ("limits.expiry_batch_max", l.expiry_batch_max as u64),
            ("limits.read_connections", l.read_connections as u64),
            ("limits.database_connections", l.database_connections as u64),
            ("limits.header_timeout_ms", l.header_timeout_ms),
            ("limits.idle_timeout_ms", l.idle_timeout_ms),
            ("limits.send_timeout_ms", l.send_timeout_ms),
            (
                "limits.header_timeout_at_cap_ms",
                l.header_timeout_at_cap_ms,
            ),
        ] {
            if value == 0 {
                return invalid(key, "must be positive");
            }
        }
        // The POS shows them to choose from: an empty list or name offers nothing.
        if self.payments.payment_methods.is_empty()
            || self
                .payments
                .payment_methods
                .iter()
                .any(|m| m.trim().is_empty())
        {
            return invalid(
                "payments.payment_methods",
                "must name at least one method, none of them empty (e.g. [\"Gold\"])",
            );
        }
        // Shorter, a retry after an outage (its X-Request-ID the same) would make a second QR,
        // refund or purchase (DECISIONS 9, 29).
        if l.pos_replay_retention_s < POS_REPLAY_RETENTION_S_MIN {
            return invalid(
                "limits.pos_replay_retention_s",
                &format!(
                    "must be at least {POS_REPLAY_RETENTION_S_MIN} (an hour): a retry with the \
                     same X-Request-ID later than this makes a second purchase or refund"
                ),
            );
        }
        // A call given no time at all can never be answered: every one would end in a timeout.
        for (key, ms) in [
            (
                "payments.amount_callback_timeout_ms",
                p.amount_callback_timeout_ms,
            ),
            (
                "refunds.request_timeout_ms",
                self.refunds.request_timeout_ms,
            ),
            ("limits.request_timeout_ms", self.limits.request_timeout_ms),
            ("registers.smtp_timeout_ms", self.registers.smtp_timeout_ms),
        ] {
            if ms == 0 {
                return invalid(key, "must be positive");
            }
        }
        // A day at least: an MPP repeating its notifyPayment, or a POS polling a purchase that
        // just ended, must still find it.
        if p.unpaid_retention_days == 0 {
            return invalid("payments.unpaid_retention_days", "must be at least 1");
        }
        if r.retry_delay_ms_initial == 0 || r.retry_delay_ms_max < r.retry_delay_ms_initial {
            return invalid(
                "refunds.retry_delay_ms_max",
                "must be at least retry_delay_ms_initial, which must be positive",
            );
        }
        if r.lease_ms <= r.request_timeout_ms {
            return invalid("refunds.lease_ms", "must exceed refunds.request_timeout_ms");
        }
        if r.pos_wait_ms > POS_WAIT_MS_MAX {
            return invalid(
                "refunds.pos_wait_ms",
                &format!("must be at most {POS_WAIT_MS_MAX}"),
            );
        }
        if l.body_timeout_ms < l.header_timeout_ms {
            return invalid(
                "limits.body_timeout_ms",
                "must be at least limits.header_timeout_ms (both run from a request's first byte)",
            );
        }
        if l.connections_max == 0 {
            return invalid("limits.connections_max", "must be positive");
        }
        if l.uri_bytes_max < URI_BYTES_MIN || l.uri_bytes_max > URI_BYTES_MAX {
            return invalid(
                "limits.uri_bytes_max",
                &format!("must be {URI_BYTES_MIN}-{URI_BYTES_MAX}"),
            );
        }
        if l.header_bytes_max < HEADER_BYTES_MIN || l.header_bytes_max > HEADER_BYTES_MAX {
            return invalid(
                "limits.header_bytes_max",
                &format!("must be {HEADER_BYTES_MIN}-{HEADER_BYTES_MAX}"),
            );
        }
        if l.body_bytes_max < BODY_BYTES_MIN || l.body_bytes_max > BODY_BYTES_MAX {
            return invalid(
                "limits.body_bytes_max",
                &format!("must be {BODY_BYTES_MIN}-{BODY_BYTES_MAX} (DECISIONS 43)"),
            );
        }
        if l.admin_body_bytes_max == 0 {
            return invalid("limits.admin_body_bytes_max", "must be positive");
        }
        if l.retention_batch_max == 0 {
            return invalid("limits.retention_batch_max", "must be positive");
        }
        if l.tls_files_check_interval_ms == 0 {
            return invalid("limits.tls_files_check_interval_ms", "must be positive");
        }
        if l.catalog_check_interval_ms == 0 {
            return invalid("limits.catalog_check_interval_ms", "must be positive");
        }
        self.validate_listeners()?;
        // The header a trusted proxy names the client certificate in (DECISIONS 41).
        let header = self.client_identity.fingerprint_header.as_bytes();
        if axum::http::HeaderName::from_bytes(header).is_err() {
            return invalid(
                "client_identity.fingerprint_header",
                "must be an HTTP header name (letters, digits and -)",
            );
        }
        ipsec::validate_config(self).map_err(ConfigError::Invalid)?;
        self.registers
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("registers.{e}")))?;
        // The console's sign-in takes the admin token first: an MPP given it would sign in as the
        // operator.
        if let Some((mpp, _)) = self
            .registers
            .cabinet_tokens
            .iter()
            .find(|(_, token)| !self.admin_token.is_empty() && **token == self.admin_token)
        {
            return invalid(
                &format!("registers.cabinet_tokens.{mpp}"),
                "is the admin_token; an MPP's cabinet token must be its own, or the MPP would \
                 sign in to the operator's console",
            );
        }
        for point in &self.catalog.trade_points {
            point.check_terminal_type().map_err(ConfigError::Invalid)?;
        }
        for mpp in &self.catalog.mpps {
            mpp.check_register_email().map_err(ConfigError::Invalid)?;
        }
        for org in &self.catalog.organizations {
            let bin = &org.bin;
            org.check_key_hashes()
                .and_then(|()| self.catalog.check_keys_of(org))
                .map_err(|why| ConfigError::Invalid(format!("organizations.{bin}: {why}")))?;
        }
        for service in &self.catalog.services {
            service
                .check_callback()
                .map_err(|why| ConfigError::Invalid(format!("services.{}: {why}", service.id)))?;
        }
        self.catalog.validate().map_err(ConfigError::Invalid)
    }

    /// `reuse_port` with the database it is given: several processes on one port share one
    /// PostgreSQL database, never a SQLite file. Not part of [`Config::validate`]: `tolem serve`
    /// checks it once `--db` has had its say over the file's `database`.
    pub fn check_reuse_port(&self) -> Result<(), ConfigError> {
        if self.reuse_port && !is_postgres_url(&self.database) {
            return Err(ConfigError::Invalid(
                "reuse_port: shares the listening ports with other PS processes, which share a \
                 PostgreSQL database, and a SQLite file serves one process; give --db postgres://… \
                 or set reuse_port = false"
                    .to_owned(),
            ));
        }
        if self.reuse_port && !cfg!(target_os = "linux") {
            return Err(ConfigError::Invalid(
                "reuse_port: only Linux spreads a shared port's connections over its processes"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// The listeners (DECISIONS 41): each serves something, no address twice, every surface
    /// somewhere, and client certificates only where the merchant API can read them.
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, why: String| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.listeners.is_empty() {
            return Ok(());
        }
        for (i, listener) in self.listeners.iter().enumerate() {
            let key = format!("listeners[{i}]");
            if listener.surfaces.is_empty() {
                return invalid(
                    format!("{key}.surfaces"),
                    "must name at least one of mpp, merchant, admin, cabinet".to_owned(),
                );
            }
            for (j, surface) in listener.surfaces.iter().enumerate() {
                if listener.surfaces[..j].contains(surface) {
                    return invalid(format!("{key}.surfaces"), format!("names {surface} twice"));
                }
            }
            // Port 0 asks the system for a free port: two of them are two addresses. An address
            // of every interface takes its port on each of them, so it clashes with another
            // address of that port, unless the processes share ports (`reuse_port`).
            // 0.0.0.0 takes every IPv4 address (and `::`'s); `::` every address.
            let covers = |wild: &std::net::SocketAddr, other: &std::net::SocketAddr| {
                wild.ip().is_unspecified()
                    && (wild.is_ipv6() || other.is_ipv4() || other.ip().is_unspecified())
            };
            let clashes = |other: &std::net::SocketAddr| {
                let (a, b) = (other, &listener.address);
                a.port() == b.port()
                    && (a.ip() == b.ip() || (!self.reuse_port && (covers(a, b) || covers(b, a))))
            };
            if listener.address.port() != 0
                && let Some(j) = self.listeners[..i]
                    .iter()
                    .position(|other| clashes(&other.address))
            {
                return invalid(
                    format!("{key}.address"),
                    format!(
                        "{} takes the port of listeners[{j}]'s {}",
                        listener.address, self.listeners[j].address
                    ),
                );
            }
            if let Some(tls) = &listener.tls
                && tls.client_ca.is_some()
                && !listener.surfaces.contains(&SurfaceName::Merchant)
            {
                return invalid(
                    format!("{key}.tls.client_ca"),
                    "client certificates are read by the merchant API only, which this listener does not serve".to_owned(),
                );
            }
        }
        for surface in SurfaceName::ALL {
            if !self
                .listeners
                .iter()
                .any(|listener| listener.surfaces.contains(&surface))
            {
                return invalid(
                    "listeners".to_owned(),
                    format!("no listener serves the {surface} surface; add it to one"),
                );
            }
        }
        Ok(())
    }

    /// canConfirmUntil + grace, as the POS is told it (`PaymentConfirmationTimeout`).
    pub fn payment_confirmation_timeout_s(&self) -> u32 {
        self.payments
            .confirm_window_s
            .saturating_add(self.payments.confirm_grace_s)
    }
}

/// A TOML error in one line, `line 3, column 7: expected …`, instead of toml's drawing of the
/// line, which takes five lines of a terminal.
pub(crate) fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// `TOLEM_…` variables that belong to the tools (the CLI, the load tool, the benchmarks), not to
/// the server's settings; the configuration passes over them instead of calling them unknown.
pub(crate) const TOOL_VARIABLES: &[&str] = &[
    "TOLEM_CONFIG",
    // The log's format, read by the CLI before any configuration (`docs/configuration.md`).
    "TOLEM_LOG_FORMAT",
    "TOLEM_BENCH_OPS",
    "TOLEM_LOAD_KEEP",
    // The fuzz harness's size and seed (docs/testing.md).
    "TOLEM_FUZZ_INPUTS",
    "TOLEM_FUZZ_SEED",
    // The crash loop's and the fault proxy's (docs/testing.md): the loop's `tolem serve`
    // processes inherit them.
    "TOLEM_CRASH_ROUNDS",
    "TOLEM_CRASH_SEED",
    // The system suite's PostgreSQL cluster (docs/testing.md), exported by .ci/run.
    "TOLEM_TEST_POSTGRES",
    // Where the browser tests save their screenshots (docs/testing.md); their sandbox inherits it.
    "TOLEM_SCREENSHOTS",
];

fn parse_table(table: &toml::Table) -> Result<Config, String> {
    toml::Value::Table(table.clone())
        .try_into()
        // toml puts the key on a line of its own; one line reads better on a terminal.
        .map_err(|e: toml::de::Error| {
            let said = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            match catalog_item_at_fault(table) {
                Some(item) => format!("{item}: {said}"),
                None => said,
            }
        })
}

/// The operator data's item that does not read, named by its place and key: the catalog's
/// arrays are read through `#[serde(flatten)]`, whose errors name neither.
fn catalog_item_at_fault(table: &toml::Table) -> Option<String> {
    fn first_bad<T: serde::de::DeserializeOwned>(
        table: &toml::Table,
        array: &str,
        key: &str,
    ) -> Option<String> {
        let items = table.get(array)?.as_array()?;
        items.iter().enumerate().find_map(|(i, item)| {
            item.clone()
                .try_into::<T>()
                .is_err()
                .then(|| match item.get(key) {
                    Some(named) => format!("{array}[{i}] ({key} = {named})"),
                    None => format!("{array}[{i}]"),
                })
        })
    }
    first_bad::<catalog::Mpp>(table, "mpps", "caller_name")
        .or_else(|| first_bad::<catalog::Organization>(table, "organizations", "bin"))
        .or_else(|| first_bad::<catalog::TradePoint>(table, "trade_points", "id"))
        .or_else(|| first_bad::<catalog::Service>(table, "services", "id"))
}

fn env_value(text: &str) -> toml::Value {
    if let Ok(i) = text.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    // A list or a table, written as in the file: `["Gold", "Silver"]`, `{ demobank = "…" }`.
    let trimmed = text.trim_start();
    if (trimmed.starts_with('[') || trimmed.starts_with('{'))
        && let Ok(mut wrapped) = format!("value = {text}").parse::<toml::Table>()
        && let Some(value) = wrapped.remove("value")
    {
        return value;
    }
    match text {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(text.to_owned()),
    }
}

fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
) -> Result<(), ConfigError> {
    match path {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set_path(inner, rest, value),
                _ => Err(ConfigError::Invalid(format!("{first}: is not a table"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_a_file_holds_are_named_and_none_else() {
        let text = r#"
admin_token = "0123456789abcdef0123456789abcdef"
database = "postgres://tolem:s3cret@db.example/tolem"
[registers]
smtp_password = "hunter2"
cabinet_tokens = { demobank = "0123456789abcdef0123456789abcdef" }
[[organizations]]
api_keys = ["test_0123456789abcdef0123456789abcdef"]
"#;
        assert_eq!(
            secrets_in_file(text),
            [
                "admin_token",
                "registers.smtp_password",
                "registers.cabinet_tokens",
                "organizations.api_keys",
                "the database's password"
            ]
        );
        let none = r#"
admin_token = ""
database = "postgres://tolem@db.example/tolem"
[registers]
cabinet_tokens = {}
"#;
        assert!(secrets_in_file(none).is_empty());
        assert!(secrets_in_file("database = \"/var/lib/tolem/ps.db\"").is_empty());
        assert!(secrets_in_file("not toml [").is_empty());
    }

    #[test]
    fn a_timeout_of_zero_is_refused() {
        for (table, key) in [
            ("payments", "amount_callback_timeout_ms"),
            ("refunds", "request_timeout_ms"),
            ("limits", "request_timeout_ms"),
            ("registers", "smtp_timeout_ms"),
        ] {
            let err = Config::from_toml(&format!("[{table}]\n{key} = 0\n")).expect_err(key);
            assert!(
                err.to_string()
                    .contains(&format!("{table}.{key}: must be positive")),
                "{err}"
            );
        }
    }

    #[test]
    fn an_admin_token_is_long_enough_to_be_a_secret_or_empty() {
        assert!(Config::from_toml("admin_token = \"\"").is_ok());
        assert!(Config::from_toml("admin_token = \"0123456789abcdef\"").is_ok());
        let err = Config::from_toml("admin_token = \"letmein\"").expect_err("too short");
        assert!(
            err.to_string().contains("admin_token: must be at least 16"),
            "{err}"
        );
    }

    #[test]
    fn answers_are_kept_for_retries_an_hour_at_least_and_a_callback_has_time() {
        let err = Config::from_toml("[limits]\npos_replay_retention_s = 0").expect_err("0");
        assert!(
            err.to_string()
                .contains("limits.pos_replay_retention_s: must be at least 3600"),
            "{err}"
        );
        assert!(Config::from_toml("[limits]\npos_replay_retention_s = 3600").is_ok());
        let sandbox = crate::SANDBOX_TOML.replace(
            r#"amount = { kind = "per_option", parameter_id = 3933, tariffs = { "1h" = "300", "3h" = "800", "day" = "2000" } }"#,
            r#"amount = { kind = "callback", url = "http://127.0.0.1:9/amount", timeout_ms = 0 }"#,
        );
        assert_ne!(
            sandbox,
            crate::SANDBOX_TOML,
            "the sandbox's tariffs are where they were"
        );
        let err = Config::from_toml(&sandbox).expect_err("no time");
        assert!(
            err.to_string()
                .contains(": amount.timeout_ms must be positive"),
            "{err}"
        );
    }

    #[test]
    fn a_list_or_a_table_is_given_by_a_variable_as_in_the_file() {
        let config = Config::load(
            None,
            [
                (
                    "TOLEM_PAYMENTS__PAYMENT_METHODS".to_owned(),
                    r#"["Gold", "Silver"]"#.to_owned(),
                ),
                (
                    "TOLEM_REGISTERS__EXTRA_HOLIDAYS".to_owned(),
                    r#"["2028-05-05"]"#.to_owned(),
                ),
                (
                    "TOLEM_REGISTERS__CABINET_TOKENS".to_owned(),
                    r#"{ demobank = "a-long-enough-cabinet-token" }"#.to_owned(),
                ),
            ],
        )
        .expect("read");
        assert_eq!(config.payments.payment_methods, ["Gold", "Silver"]);
        assert_eq!(
            config.registers.extra_holidays,
            [jiff::civil::date(2028, 5, 5)]
        );
        assert_eq!(
            config.registers.cabinet_tokens["demobank"],
            "a-long-enough-cabinet-token"
        );
    }

    #[test]
    fn a_variables_value_is_never_shown_in_its_error() {
        let secret = r#"{"bank":"CABINET-json-secret-000001"}"#;
        let err = Config::load(
            None,
            [(
                "TOLEM_REGISTERS__CABINET_TOKENS".to_owned(),
                secret.to_owned(),
            )],
        )
        .expect_err("not a map");
        let said = err.to_string();
        assert!(
            said.contains("TOLEM_REGISTERS__CABINET_TOKENS") && !said.contains("secret-000001"),
            "{said}"
        );
        // A short value is left out where it is quoted, not wherever its digits are.
        let err = Config::load(
            None,
            [("TOLEM_PAYMENTS__PAYMENT_METHODS".to_owned(), "0".to_owned())],
        )
        .expect_err("not a list")
        .to_string();
        assert!(
            err.contains("invalid type: integer `…`, expected a sequence"),
            "{err}"
        );
    }

    #[test]
    fn an_operator_data_item_that_does_not_read_is_named() {
        for (wrong, said) in [
            (
                "commission_bps = 100",
                "mpps[0] (caller_name = \"demobank\"): invalid value: integer `-1`",
            ),
            (
                "id = 1001",
                "trade_points[0] (id = \"1001\"): invalid type: string \"1001\"",
            ),
        ] {
            let right = if wrong.starts_with("commission") {
                wrong.replace("100", "-1")
            } else {
                wrong.replace("1001", "\"1001\"")
            };
            let toml = crate::SANDBOX_TOML.replacen(wrong, &right, 1);
            assert_ne!(
                toml,
                crate::SANDBOX_TOML,
                "{wrong} is in the sandbox's file"
            );
            let err = Config::load_text(&toml, "cfg.toml", Vec::new())
                .expect_err(said)
                .to_string();
            assert!(err.contains(&format!("cfg.toml: {said}")), "{err}");
        }
    }

    #[test]
    fn a_key_in_the_file_is_one_organizations() {
        let shared = crate::SANDBOX_TOML.replace(
            "test_0A1B2C3D4E5F60718293A4B5C6D7E8F9",
            "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39",
        );
        assert_ne!(shared, crate::SANDBOX_TOML);
        let err = Config::from_toml(&shared)
            .expect_err("a shared key")
            .to_string();
        assert!(
            err.contains(
                "organizations.990340001234: api_keys: a key of the organization 990340005678 too"
            ),
            "{err}"
        );
    }

    #[test]
    fn settings_that_can_only_misbehave_are_refused() {
        for (toml, said) in [
            (
                "admin_token = \"                \"",
                "admin_token: starts or ends with a space",
            ),
            (
                "[payments]\npayment_methods = []",
                "payments.payment_methods: must name at least one",
            ),
            (
                "[payments]\npayment_methods = [\"\"]",
                "payments.payment_methods: must name at least one",
            ),
            (
                "[registers]\nextra_holidays = [\"2027-05-05\"]\nextra_working_days = [\"2027-05-05\"]",
                "registers.extra_working_days: 2027-05-05 is in extra_holidays too",
            ),
        ] {
            let err = Config::from_toml(toml).expect_err(said).to_string();
            assert!(err.contains(said), "{toml}: {err}");
        }
    }

    #[test]
    fn no_mpp_signs_in_with_the_admin_token() {
        let err = Config::from_toml(
            "admin_token = \"0123456789abcdef\"\n\
             [registers.cabinet_tokens]\ndemobank = \"0123456789abcdef\"",
        )
        .expect_err("the admin token as a cabinet token");
        assert!(
            err.to_string()
                .contains("registers.cabinet_tokens.demobank: is the admin_token"),
            "{err}"
        );
    }

    #[test]
    fn an_mpps_register_email_in_the_file_is_one_address_the_e_mail_can_go_to() {
        let mpp = |to: &str| {
            format!(
                "[[mpps]]\ncaller_name = \"bank\"\nname = \"Bank\"\n\
                 refund_url = \"https://bank.example/refund\"\nregister_email = {to:?}\n"
            )
        };
        for good in ["reg@bank.kz", "Bank <reg@bank.kz>"] {
            assert!(Config::from_toml(&mpp(good)).is_ok(), "{good}");
        }
        for bad in ["a@x.kz, b@x.kz", "", " reg@bank.kz", "not-an-email"] {
            let err = Config::from_toml(&mpp(bad)).expect_err(bad);
            assert!(
                err.to_string()
                    .contains("mpps.bank: register_email must be one e-mail address"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn an_mpps_caller_name_is_plain_letters_digits_and_dot_dash_underscore() {
        let mpp = |name: &str| {
            format!(
                "[[mpps]]\ncaller_name = {name:?}\nname = \"Bank\"\n\
                 refund_url = \"https://bank.example/refund\"\n"
            )
        };
        for good in ["demobank", "bank-2.kz", "A_1"] {
            assert!(Config::from_toml(&mpp(good)).is_ok(), "{good}");
        }
        for bad in ["<b>x", "a b", "é", "../x", "a/b", "", "thirteen-char"] {
            let err = Config::from_toml(&mpp(bad)).expect_err(bad);
            assert!(
                err.to_string().contains("caller_name must be"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn environment_overrides_the_file_and_names_bad_keys() {
        let env = [(
            "TOLEM_PAYMENTS__CONFIRM_WINDOW_S".to_owned(),
            "30".to_owned(),
        )];
        let config = Config::load(None, env).expect("valid");
        assert_eq!(config.payments.confirm_window_s, 30);
        let env = [("TOLEM_PAYMENTS__NO_SUCH_KEY".to_owned(), "1".to_owned())];
        let err = Config::load(None, env).expect_err("unknown key");
        assert!(err.to_string().contains("no_such_key"), "{err}");
        assert!(
            err.to_string().contains("TOLEM_PAYMENTS__NO_SUCH_KEY"),
            "{err}"
        );
        let env = [("TOLEM_FOO".to_owned(), "1".to_owned())];
        let err = Config::load(None, env).expect_err("unknown key");
        assert!(
            err.to_string().contains("environment variable TOLEM_FOO"),
            "{err}"
        );
    }

    #[test]
    fn a_text_setting_given_digits_from_the_environment_is_the_text_as_written() {
        let env = [
            (
                "TOLEM_ADMIN_TOKEN".to_owned(),
                "0001234567890123".to_owned(),
            ),
            ("TOLEM_NODE_NAME".to_owned(), "true".to_owned()),
        ];
        let config = Config::load(None, env).expect("valid");
        assert_eq!(config.admin_token, "0001234567890123");
        assert_eq!(config.node_name, "true");
        // A number setting given text is still refused, naming the variable.
        let env = [(
            "TOLEM_PAYMENTS__CONFIRM_WINDOW_S".to_owned(),
            "soon".to_owned(),
        )];
        let err = Config::load(None, env).expect_err("not a number");
        assert!(
            err.to_string().contains("TOLEM_PAYMENTS__CONFIRM_WINDOW_S"),
            "{err}"
        );
    }

    #[test]
    fn a_toml_error_is_one_line_with_its_place() {
        let text = "listen = \"127.0.0.1:8080\"\n[bad";
        let err = text.parse::<toml::Table>().expect_err("unclosed table");
        let line = toml_error(text, &err);
        assert!(line.starts_with("line 2, column 5: "), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn the_tools_variables_are_not_settings() {
        let env = TOOL_VARIABLES
            .iter()
            .map(|name| ((*name).to_owned(), "1".to_owned()));
        Config::load(None, env).expect("the tools' variables are passed over");
    }

    #[test]
    fn the_connection_limits_default_to_decisions_43_and_are_checked() {
        let l = Config::default().limits;
        assert_eq!(
            (l.header_timeout_ms, l.body_timeout_ms, l.idle_timeout_ms),
            (10_000, 30_000, 60_000)
        );
        assert_eq!((l.uri_bytes_max, l.header_bytes_max), (8_192, 16_384));
        let refused = |name: &str, value: &str, key: &str| {
            let env = [(name.to_owned(), value.to_owned())];
            let err = Config::load(None, env).expect_err(name);
            assert!(err.to_string().contains(key), "{err}");
        };
        refused(
            "TOLEM_LIMITS__BODY_TIMEOUT_MS",
            "5000",
            "limits.body_timeout_ms",
        );
        refused(
            "TOLEM_LIMITS__HEADER_TIMEOUT_MS",
            "0",
            "environment variable TOLEM_LIMITS__HEADER_TIMEOUT_MS (setting `limits.header_timeout_ms`): must be positive; change or unset it",
        );
        refused(
            "TOLEM_LIMITS__EXPIRY_BATCH_MAX",
            "0",
            "(setting `limits.expiry_batch_max`): must be positive",
        );
        refused(
            "TOLEM_REGISTERS__PAGE_ROWS_MAX",
            "0",
            "environment variable TOLEM_REGISTERS__PAGE_ROWS_MAX (setting `registers.page_rows_max`): must be positive",
        );
        // A value the checks refuse names the variable that set it, and its setting.
        refused(
            "TOLEM_LIMITS__SEND_TIMEOUT_MS",
            "0",
            "environment variable TOLEM_LIMITS__SEND_TIMEOUT_MS (setting `limits.send_timeout_ms`): must be positive",
        );
        refused(
            "TOLEM_PAYMENTS__CONFIRM_WINDOW_S",
            "0",
            "environment variable TOLEM_PAYMENTS__CONFIRM_WINDOW_S (setting `payments.confirm_window_s`)",
        );
        refused(
            "TOLEM_LIMITS__CONNECTIONS_MAX",
            "0",
            "limits.connections_max",
        );
        refused(
            "TOLEM_LIMITS__URI_BYTES_MAX",
            "70000",
            "limits.uri_bytes_max",
        );
        refused(
            "TOLEM_LIMITS__HEADER_BYTES_MAX",
            "100",
            "limits.header_bytes_max",
        );
        for body in ["0", "1000", "65537", "1048576"] {
            refused(
                "TOLEM_LIMITS__BODY_BYTES_MAX",
                body,
                "limits.body_bytes_max",
            );
        }
    }

    #[test]
    fn the_fingerprint_header_must_be_a_header_name() {
        assert_eq!(
            Config::default().client_identity.fingerprint_header,
            "x-client-cert-sha256"
        );
        let env = [(
            "TOLEM_CLIENT_IDENTITY__FINGERPRINT_HEADER".to_owned(),
            "X-SSL-Client-SHA256".to_owned(),
        )];
        Config::load(None, env).expect("a header name in capitals");
        for bad in ["", "x client cert", "x-cert:"] {
            let env = [(
                "TOLEM_CLIENT_IDENTITY__FINGERPRINT_HEADER".to_owned(),
                bad.to_owned(),
            )];
            let err = Config::load(None, env).expect_err(bad);
            assert!(
                err.to_string()
                    .contains("client_identity.fingerprint_header"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_pos_wait_for_a_refund_is_bounded() {
        assert_eq!(Config::default().refunds.pos_wait_ms, 10_000);
        let env = [("TOLEM_REFUNDS__POS_WAIT_MS".to_owned(), "0".to_owned())];
        assert_eq!(
            Config::load(None, env).expect("valid").refunds.pos_wait_ms,
            0
        );
        let env = [("TOLEM_REFUNDS__POS_WAIT_MS".to_owned(), "60001".to_owned())];
        let err = Config::load(None, env).expect_err("too long");
        assert!(err.to_string().contains("refunds.pos_wait_ms"), "{err}");
    }

    #[test]
    fn listeners_are_checked_and_named() {
        let good = r#"
            [[listeners]]
            address = "10.0.0.1:8081"
            surfaces = ["mpp"]
            [[listeners]]
            address = "0.0.0.0:8443"
            surfaces = ["merchant"]
            tls = { certificate = "/etc/tolem/ps.pem", key = "/etc/tolem/ps.key", client_ca = "/etc/tolem/pos-ca.pem" }
            [[listeners]]
            address = "127.0.0.1:8082"
            surfaces = ["admin"]
        "#;
        let config = Config::from_toml(good).expect("valid");
        assert_eq!(config.listeners.len(), 3);
        assert_eq!(config.listeners[1].surfaces, [SurfaceName::Merchant]);
        let tls = config.listeners[1].tls.as_ref().expect("tls");
        assert_eq!(
            tls.client_ca.as_deref(),
            Some(Path::new("/etc/tolem/pos-ca.pem"))
        );
        assert!(
            Config::default().listeners.is_empty(),
            "the sandbox's one listener"
        );
        assert_eq!(Config::default().limits.tls_files_check_interval_ms, 10_000);

        let refused = |toml: &str, said: &str| {
            let err = Config::from_toml(toml).expect_err(said).to_string();
            assert!(err.contains(said), "{err}");
        };
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = []"#,
            "listeners[0].surfaces: must name at least one",
        );
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["mpp", "merchant", "mpp"]"#,
            "listeners[0].surfaces: names mpp twice",
        );
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["mpp", "merchant"]
            [[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["admin"]"#,
            "listeners[1].address: 127.0.0.1:8080 takes the port of listeners[0]'s 127.0.0.1:8080",
        );
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["mpp", "merchant"]
            [[listeners]]
            address = "0.0.0.0:8080"
            surfaces = ["admin"]"#,
            "listeners[1].address: 0.0.0.0:8080 takes the port of listeners[0]'s 127.0.0.1:8080",
        );
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["mpp", "merchant"]"#,
            "no listener serves the admin surface",
        );
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["mpp", "admin"]
            tls = { certificate = "c.pem", key = "k.pem", client_ca = "ca.pem" }
            [[listeners]]
            address = "127.0.0.1:8081"
            surfaces = ["merchant"]"#,
            "listeners[0].tls.client_ca: client certificates are read by the merchant API only",
        );
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["web"]"#,
            "unknown variant",
        );
        refused(
            r#"[[listeners]]
            address = "127.0.0.1:8080"
            surfaces = ["mpp", "merchant", "admin"]
            tls = { certificate = "c.pem" }"#,
            "missing field `key`",
        );
        // Several listeners on port 0 are several free ports (the tests use them).
        Config::from_toml(
            r#"[[listeners]]
            address = "127.0.0.1:0"
            surfaces = ["mpp", "merchant"]
            [[listeners]]
            address = "127.0.0.1:0"
            surfaces = ["admin"]"#,
        )
        .expect("two free ports");
        let env = [(
            "TOLEM_LIMITS__TLS_FILES_CHECK_INTERVAL_MS".to_owned(),
            "0".to_owned(),
        )];
        let err = Config::load(None, env).expect_err("zero").to_string();
        assert!(err.contains("limits.tls_files_check_interval_ms"), "{err}");
    }

    #[test]
    fn each_path_belongs_to_its_surface() {
        use SurfaceName::*;
        for (path, surface) in [
            ("/api/v1/qr/scan", Some(Mpp)),
            ("//api/v1/qr/scan", Some(Mpp)),
            ("/r1/v01/qr/create", Some(Merchant)),
            ("/r3/v01/partner/tradepoints/1", Some(Merchant)),
            ("/receipt", Some(Merchant)),
            ("/qr/image.png", Some(Merchant)),
            ("/pay/123", Some(Merchant)),
            ("/admin/v1/metrics", Some(Admin)),
            ("/cabinet/v1/registers/daily/x.csv", Some(Admin)),
            ("/pos/", Some(Merchant)),
            ("/console/operator", Some(Admin)),
            ("/", None),
            ("/apix", None),
            ("/r4/v01/qr/create", None),
        ] {
            assert_eq!(SurfaceName::of_path(path), surface, "{path}");
        }
    }

    #[test]
    fn a_raw_at_sign_in_the_password_is_named_in_the_hint() {
        let hint = |url: &str| database_url_hint(Path::new(url));
        assert!(hint("postgres://tolem:p@ss&word@127.0.0.1:5432/tolem").contains("%40"));
        for fine in [
            "postgres://tolem:p%40ss@db.example/ps",
            "postgres://tolem:pw@db.example/ps?sslmode=verify-full&sslrootcert=/etc/a@b/ca.pem",
            "postgres://db.example/ps",
            "/var/lib/tolem/a@b.db",
        ] {
            assert_eq!(hint(fine), "", "{fine}");
        }
    }

    #[test]
    fn a_database_url_is_shown_with_its_whole_password_masked() {
        let shown = |url: &str| database_for_display(Path::new(url));
        for (url, expected) in [
            (
                "postgres://tolem:secret@127.0.0.1:19432/db",
                "postgres://tolem:***@127.0.0.1:19432/db",
            ),
            // Written raw rather than percent-encoded, the password is still hidden whole.
            (
                "postgres://tolem:p@ss&word@127.0.0.1:19432/db",
                "postgres://tolem:***@127.0.0.1:19432/db",
            ),
            (
                "postgresql://tolem:a/b?c@d@db.example/ps?sslmode=verify-full",
                "postgresql://tolem:***@db.example/ps?sslmode=verify-full",
            ),
            (
                "postgres://tolem:p@ss&word/?@127.0.0.1:19432/db",
                "postgres://tolem:***@127.0.0.1:19432/db",
            ),
            (
                "postgres://tolem:a?b=c@db.example/ps",
                "postgres://tolem:***@db.example/ps",
            ),
            (
                "postgres://tolem:p%40ss%26word@db.example/ps",
                "postgres://tolem:***@db.example/ps",
            ),
            // Given in the query, as the driver also takes it.
            (
                "postgres://tolem@127.0.0.1:22090/tolem?password=secret",
                "postgres://tolem@127.0.0.1:22090/tolem?password=***",
            ),
            (
                "postgres://db.example/ps?sslmode=require&PASSWORD=secret&user=tolem",
                "postgres://db.example/ps?sslmode=require&PASSWORD=***&user=tolem",
            ),
            (
                "postgres://tolem:pw@db.example/ps?password=secret",
                "postgres://tolem:***@db.example/ps?password=***",
            ),
            // Raw `@` and `&` in the value: masked whole.
            (
                "postgres://db/ps?password=p@ss",
                "postgres://db/ps?password=***",
            ),
            (
                "postgres://db:5432/ps?password=p@ss",
                "postgres://db:5432/ps?password=***",
            ),
            (
                "postgres://db.example:5432/tolem?user=t&password=abc@def&sslmode=require",
                "postgres://db.example:5432/tolem?user=t&password=***&sslmode=require",
            ),
            // The key=value form, which is refused, is shown without its password too.
            (
                "host=db password=sekret dbname=x",
                "host=db password=*** dbname=x",
            ),
            (
                "postgres://tolem@db/ps?password=se&cret",
                "postgres://tolem@db/ps?password=***",
            ),
            (
                "postgres://tolem@db/ps?password=p&w&sslmode=require",
                "postgres://tolem@db/ps?password=***&sslmode=require",
            ),
            // An `@` in the query is not the password's end.
            (
                "postgres://tolem:pw@db.example/ps?sslmode=verify-full&sslrootcert=/etc/a@b/ca.pem",
                "postgres://tolem:***@db.example/ps?sslmode=verify-full&sslrootcert=/etc/a@b/ca.pem",
            ),
            // Nothing to hide.
            (
                "postgres://tolem@db.example/ps",
                "postgres://tolem@db.example/ps",
            ),
            ("postgres://db.example/ps", "postgres://db.example/ps"),
            ("/var/lib/tolem/ps.db", "/var/lib/tolem/ps.db"),
        ] {
            assert_eq!(shown(url), expected, "{url}");
        }
    }

    #[test]
    fn reuse_port_is_off_by_default_and_needs_postgres() {
        assert!(!Config::default().reuse_port);
        let env = [("TOLEM_REUSE_PORT".to_owned(), "true".to_owned())];
        // Loaded, as `--db postgres://…` may still come; refused with the SQLite file.
        let mut config = Config::load(None, env).expect("valid until the database is known");
        assert!(config.reuse_port);
        let err = config
            .check_reuse_port()
            .expect_err("a SQLite file serves one process");
        assert!(err.to_string().contains("reuse_port"), "{err}");
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
        config.database = PathBuf::from("postgres://tolem@db.ps.internal/tolem");
        assert!(config.check_reuse_port().is_ok());
    }

    #[test]
    fn retention_rate_and_node_settings_are_checked() {
        let config = Config::default();
        assert_eq!(config.payments.unpaid_retention_days, 30);
        assert_eq!(
            config.limits.mpp_requests_per_s, 0,
            "no rate limit by default"
        );
        assert_eq!(config.node_name, "ps");
        for (name, value, key) in [
            (
                "TOLEM_PAYMENTS__UNPAID_RETENTION_DAYS",
                "0",
                "payments.unpaid_retention_days",
            ),
            (
                "TOLEM_LIMITS__RETENTION_BATCH_MAX",
                "0",
                "limits.retention_batch_max",
            ),
            ("TOLEM_NODE_NAME", "a b", "node_name"),
        ] {
            let env = [(name.to_owned(), value.to_owned())];
            let err = Config::load(None, env).expect_err("refused");
            assert!(err.to_string().contains(key), "{err}");
        }
        let env = [
            (
                "TOLEM_LIMITS__MPP_REQUESTS_PER_S".to_owned(),
                "50".to_owned(),
            ),
            ("TOLEM_NODE_NAME".to_owned(), "ps-2".to_owned()),
        ];
        let config = Config::load(None, env).expect("valid");
        assert_eq!(config.limits.mpp_requests_per_s, 50);
        assert_eq!(config.node_name, "ps-2");
    }
}
