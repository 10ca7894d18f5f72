//! [`SandboxPs`]: the PS in the test's process, its start, stop and clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tolem_ps::Config;
use tolem_ps::clock::{ManualClock, SharedClock};

use crate::TestkitError;

/// The demo configuration `tolem sandbox` runs with: the catalog every helper here relies on.
const SANDBOX_TOML: &str = tolem_ps::SANDBOX_TOML;

/// The demo café's POS device the testkit registers at start, to make QRs and refunds with.
const DEVICE_ID: &str = "TESTKIT-POS-1";
/// The café's trade point, where that device stands.
pub(crate) const CAFE_TRADE_POINT: i64 = 1001;

/// A change of the PS's configuration made before it starts.
type Change = Box<dyn FnOnce(&mut Config) + Send>;

/// Options of a [`SandboxPs`] before it starts; made by [`SandboxPs::builder`].
#[must_use]
pub struct SandboxBuilder {
    refund_urls: Vec<(String, String)>,
    changes: Vec<Change>,
}

impl SandboxBuilder {
    /// Delivers the refunds of MPP `caller_name` (e.g. [`crate::DEMO_BANK`]) to `url` (the
    /// bank's `POST /refund`). [`SandboxPs::set_refund_url`] does the same once it runs.
    pub fn refund_url(mut self, caller_name: &str, url: &str) -> SandboxBuilder {
        self.refund_urls
            .push((caller_name.to_owned(), url.to_owned()));
        self
    }

    /// Changes the PS's configuration before it starts, for what the builder has no method
    /// for (e.g. `config.payments.confirm_window_s`); `docs/configuration.md` lists the keys.
    pub fn configure(
        mut self,
        change: impl FnOnce(&mut Config) + Send + 'static,
    ) -> SandboxBuilder {
        self.changes.push(Box::new(change));
        self
    }

    /// Starts the PS on `127.0.0.1:0` with a fresh database in a temporary directory, and
    /// registers the café's POS device the QR and refund helpers use.
    pub async fn start(self) -> Result<SandboxPs, TestkitError> {
        let dir = tempfile::tempdir().map_err(|e| start_error("a temporary directory", e))?;
        let mut config = test_config(&dir)?;
        for (caller, url) in self.refund_urls {
            let mpp = config
                .catalog
                .mpps
                .iter_mut()
                .find(|m| m.caller_name == caller.as_str())
                .ok_or_else(|| {
                    TestkitError::Start(format!("no MPP {caller} in the demo catalog"))
                })?;
            mpp.refund_url = url;
        }
        for change in self.changes {
            change(&mut config);
        }
        config
            .validate()
            .map_err(|e| TestkitError::Start(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| start_error("binding 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| start_error("the bound address", e))?;
        config.public_url = format!("http://{addr}");
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let running = run(listener, config.clone(), clock.clone()).await?;
        let mut ps = SandboxPs {
            url: format!("http://{addr}"),
            addr,
            config,
            clock,
            http: reqwest::Client::new(),
            device: String::new(),
            running: Some(running),
            _dir: dir,
        };
        ps.device = ps.register_device(DEVICE_ID, CAFE_TRADE_POINT).await?;
        Ok(ps)
    }
}

/// A running sandbox PS with its own database and clock. It stops when dropped.
pub struct SandboxPs {
    pub(crate) url: String,
    addr: SocketAddr,
    config: Config,
    clock: Arc<ManualClock>,
    pub(crate) http: reqwest::Client,
    /// The café's POS device token (see `DEVICE_ID`).
    pub(crate) device: String,
    running: Option<Running>,
    /// Holds the database file; removed with the PS.
    _dir: TempDir,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SandboxPs {
    /// Starts a sandbox PS with the demo catalog as it is (refunds go to the URLs of
    /// `examples/sandbox.toml` until [`SandboxPs::set_refund_url`] points them elsewhere).
    pub async fn start() -> Result<SandboxPs, TestkitError> {
        SandboxPs::builder().start().await
    }

    /// Options before the start: refund URLs, configuration changes.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            refund_urls: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// The PS's base URL (`http://127.0.0.1:<port>`): the bank's MPP API client points here.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The configuration the PS runs with (its deadlines, its catalog).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The PS's time now. It starts at the real time and then moves only by
    /// [`SandboxPs::advance`] (and by the waits that say they move it).
    pub fn now(&self) -> Timestamp {
        tolem_ps::clock::Clock::now(&*self.clock)
    }

    /// Moves the PS's clock forward: deadlines (a QR's scan wait, canConfirmUntil) and refund
    /// retries fall due as if that time had passed. Nothing sleeps.
    pub fn advance(&self, by: Duration) {
        let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
        self.clock.advance(by);
    }

    /// Moves the clock past every deadline of a purchase still open (not yet scanned, or
    /// scanned and not confirmed, with its grace), so the next call about one finds it expired:
    /// a scan answers `EXPIRED_CODE`, a notifyPayment `PAYMENT_INCORRECT_STATUS`, the POS `Error`.
    pub fn expire_open_payments(&self) {
        let p = &self.config.payments;
        let longest = u64::from(p.qr_scan_wait_s)
            .max(u64::from(p.link_activation_wait_s))
            .saturating_add(u64::from(p.confirm_window_s))
            .saturating_add(u64::from(p.confirm_grace_s))
            .saturating_add(1);
        self.advance(Duration::from_secs(longest));
    }

    /// Stops the PS (gracefully: requests in flight are answered). Until
    /// [`SandboxPs::start_again`], calls to [`SandboxPs::url`] are refused, as when the PS is down.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            // The server's own result is of no interest to a test that stopped it.
            let _ = running.task.await;
        }
    }

    /// Starts the PS again on the same address and database after [`SandboxPs::stop`]: what it
    /// recorded (purchases, refunds, operator changes) is still there.
    pub async fn start_again(&mut self) -> Result<(), TestkitError> {
        if self.running.is_some() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|e| start_error("binding the same address again", e))?;
        self.running = Some(run(listener, self.config.clone(), self.clock.clone()).await?);
        Ok(())
    }
}

impl Drop for SandboxPs {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
        }
    }
}

/// The sandbox configuration with short delays, so that retries and expiry need no waiting.
fn test_config(dir: &TempDir) -> Result<Config, TestkitError> {
    let mut config =
        Config::from_toml(SANDBOX_TOML).map_err(|e| TestkitError::Start(e.to_string()))?;
    config.database = dir.path().join("ps.db");
    config.sandbox = true;
    config.payments.expiry_sweep_interval_ms = 50;
    // Refund retries are due after a moment of the PS's clock, which the waits move.
    config.refunds.retry_delay_ms_initial = 100;
    config.refunds.retry_delay_ms_max = 1_000;
    config.refunds.poll_interval_ms = 20;
    config.refunds.request_timeout_ms = 5_000;
    config.refunds.lease_ms = 10_000;
    // The POS is answered at once; a test waits for delivery with `wait_refund_settled`.
    config.refunds.pos_wait_ms = 0;
    Ok(config)
}

async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    clock: Arc<ManualClock>,
) -> Result<Running, TestkitError> {
    let shared: SharedClock = clock;
    let app = tolem_ps::App::start(config, shared)
        .await
        .map_err(|e| TestkitError::Start(e.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(tolem_ps::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    Ok(Running { stop, task })
}

fn start_error(what: &str, e: impl std::fmt::Display) -> TestkitError {
    TestkitError::Start(format!("{what}: {e}"))
}
