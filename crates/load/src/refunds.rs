//! `tolem-load refunds`: how fast the PS delivers refunds to an MPP. A stand-in MPP
//! ([`crate::receiver`]) answers every `/refund` at once; the PS is pointed at it through a
//! temporary copy of its configuration. After a setup that is not measured (N purchases confirmed
//! through the MPP API), N full refunds are placed through the merchant API (r3) and the tool
//! waits until the receiver has answered every one of them and the PS has recorded every outcome.
//!
//! Two variants, each on a fresh PS and database:
//! - **concurrent**: the receiver answers from the start, so refunds are delivered while they are
//!   still being placed; the delivery window starts at the first placement.
//! - **backlog**: the receiver holds its calls while all N are placed, then answers them and all
//!   that follow; the delivery window starts when it opens. This is an MPP coming back after an
//!   outage to a queue of N refunds.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;

use crate::child::{self, Server, StderrSummary, ThreadCpu};
use crate::receiver::Receiver;
use crate::refund_report::RefundReport;
use crate::{CONCURRENCY_MAX, REQUEST_TIMEOUT_S, WorkDir, drive, ps};

/// The most refunds of one run: each needs a purchase by its own customer `C<n>`.
const REFUNDS_MAX: usize = 1_000_000;
const STALL_TIMEOUT_S_MAX: u64 = 3_600;
/// How often the receiver's count is looked at while waiting for the last delivery.
const DELIVERED_POLL_MS: u64 = 2;
/// How often the PS's metrics are read while waiting for the last outcome to be recorded.
const RECORDED_POLL_MS: u64 = 20;
/// demobank's `refund_url` in the sandbox configuration; the receiver's URL replaces it.
const SANDBOX_REFUND_URL: &str = "http://127.0.0.1:8091/refund";
/// In the backlog variant the receiver holds the PS's first calls while all refunds are placed.
/// These keep a held call from timing out and being retried however long placing takes; they do
/// not change how fast calls that are answered at once go. The lease must exceed the timeout.
const HELD_REQUEST_TIMEOUT_MS: u64 = 600_000;
const HELD_LEASE_MS: u64 = 660_000;
const LATENCY_US_MAX: u64 = 60_000_000;

#[derive(Args, Clone, Debug)]
pub struct RefundArgs {
    /// The `tolem` binary to run as the PS.
    #[arg(long, default_value = "target/release/tolem")]
    pub tolem_bin: PathBuf,
    /// The PS configuration to copy; demobank's `refund_url` must be `http://127.0.0.1:8091/refund`.
    #[arg(long, default_value = "examples/sandbox.toml")]
    pub config: PathBuf,
    /// Refunds placed and delivered per variant (each of a purchase of its own).
    #[arg(long, default_value_t = 20_000)]
    pub refunds: usize,
    /// Concurrent `payment/return` calls while placing (and workers paying during the setup).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Concurrent `qr/create` calls during the setup.
    #[arg(long, default_value_t = 64)]
    pub setup_concurrency: usize,
    /// Which variants to run.
    #[arg(long, value_enum, default_value_t = VariantArg::Both)]
    pub variant: VariantArg,
    /// Give up waiting when no new refund was delivered (or recorded) for this long.
    #[arg(long, default_value_t = 30)]
    pub stall_timeout_s: u64,
    /// `RUST_LOG` of the PS.
    #[arg(long, default_value = "warn")]
    pub server_log: String,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Run on this store (SQLite file or `postgres://` URL, e.g. one grown with `tolem-load
    /// fill`) instead of a fresh file per variant. Such a store keeps its own catalog, so
    /// demobank's `refund_url` in it is pointed at the receiver through the admin API; it stays
    /// so after the run.
    #[arg(long)]
    pub db: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VariantArg {
    Both,
    Concurrent,
    Backlog,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Concurrent,
    Backlog,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Concurrent => "concurrent",
            Variant::Backlog => "backlog",
        }
    }

    fn server_name(self) -> &'static str {
        match self {
            Variant::Concurrent => "ps-concurrent",
            Variant::Backlog => "ps-backlog",
        }
    }
}

/// The placing of all refunds through `payment/return`.
pub struct Placement {
    pub elapsed: Duration,
    pub refund_ids: Vec<i64>,
    pub errors: u64,
    pub error_example: Option<String>,
    pub latency_us: Histogram<u64>,
}

/// What one variant measured.
pub struct Measured {
    pub variant: Variant,
    pub placement: Placement,
    /// Each refund's first delivery, from the start of the delivery window, in order.
    pub deliveries: Vec<Duration>,
    /// False if the tool gave up waiting for the last delivery.
    pub complete: bool,
    /// For the concurrent variant: the end of placing, from the start of the delivery window.
    pub placed_at: Option<Duration>,
    /// Every outcome recorded by the PS (no refund left undelivered), from the window's start.
    pub recorded_at: Option<Duration>,
    pub receiver_calls: u64,
    pub malformed: u64,
    /// Refund ids the receiver got that were never placed.
    pub unknown_ids: usize,
    /// The PS's refund counters at the end.
    pub metrics: BTreeMap<String, u64>,
    /// CPU over the delivery window, up to the last delivery.
    pub cpu_window_s: f64,
    pub ps_cpu_s: f64,
    pub tool_cpu_s: f64,
    pub machine_cpu_s: f64,
    pub ps_threads: Vec<ThreadCpu>,
    pub rss_sampled_max_kb: u64,
    pub rss_hwm_kb: u64,
    pub stderr: StderrSummary,
}

pub async fn run(args: RefundArgs) -> anyhow::Result<()> {
    if !(1..=REFUNDS_MAX).contains(&args.refunds) {
        bail!("--refunds must be between 1 and {REFUNDS_MAX}");
    }
    for (name, value) in [
        ("--concurrency", args.concurrency),
        ("--setup-concurrency", args.setup_concurrency),
    ] {
        if !(1..=CONCURRENCY_MAX).contains(&value) {
            bail!("{name} must be between 1 and {CONCURRENCY_MAX}");
        }
    }
    if !(1..=STALL_TIMEOUT_S_MAX).contains(&args.stall_timeout_s) {
        bail!("--stall-timeout-s must be between 1 and {STALL_TIMEOUT_S_MAX}");
    }
    if let Some(db) = &args.db
        && !tolem_ps::is_postgres_url(Path::new(db))
        && !Path::new(db).is_file()
    {
        bail!("--db {db} is neither a file nor a postgres:// URL (fill one with tolem-load fill)");
    }
    let tolem_bin = std::fs::canonicalize(&args.tolem_bin).with_context(|| {
        format!(
            "the PS binary {} (build it: cargo build --release -p tolem)",
            args.tolem_bin.display()
        )
    })?;
    let work_dir = WorkDir::create()?;
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(args.concurrency.max(args.setup_concurrency))
        .timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
        .build()
        .context("cannot build the HTTP client")?;
    let variants: &[Variant] = match args.variant {
        VariantArg::Both => &[Variant::Concurrent, Variant::Backlog],
        VariantArg::Concurrent => &[Variant::Concurrent],
        VariantArg::Backlog => &[Variant::Backlog],
    };
    let mut runs = Vec::new();
    for &variant in variants {
        runs.push(run_variant(&client, &args, &tolem_bin, variant, &work_dir.path).await?);
    }
    let report = RefundReport::new(&args, &runs).render();
    print!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(())
}

async fn run_variant(
    client: &reqwest::Client,
    args: &RefundArgs,
    tolem_bin: &Path,
    variant: Variant,
    dir: &Path,
) -> anyhow::Result<Measured> {
    let receiver = Receiver::start(variant == Variant::Concurrent).await?;
    let config = write_config(&args.config, &receiver.refund_url, variant, dir)?;
    let db = match &args.db {
        Some(db) => db.clone(),
        None => dir
            .join(format!("{}.db", variant.server_name()))
            .to_string_lossy()
            .into_owned(),
    };
    let config = config.to_string_lossy();
    let ps_args = [
        "serve",
        "--config",
        &config,
        "--db",
        &db,
        "--listen",
        "127.0.0.1:0",
    ];
    let name = variant.server_name();
    let server = Server::spawn(name, tolem_bin, &ps_args, &args.server_log, dir).await?;
    if args.db.is_some() {
        ps::point_refunds_at(client, &server.url, "demobank", &receiver.refund_url).await?;
    }
    eprintln!(
        "{name}: listening on {}; the MPP receiver at {}",
        server.url, receiver.refund_url
    );
    let measured = measure(client, args, variant, &server, &receiver).await;
    server.stop().await?;
    measured
}

/// The configuration at `template` with demobank's refunds sent to the receiver.
fn write_config(
    template: &Path,
    refund_url: &str,
    variant: Variant,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    if !text.contains(SANDBOX_REFUND_URL) {
        bail!(
            "{} has no refund_url = \"{SANDBOX_REFUND_URL}\" (demobank's) to point at the receiver",
            template.display()
        );
    }
    let mut text = text.replace(SANDBOX_REFUND_URL, refund_url);
    if text.contains("[refunds]") {
        bail!(
            "{} has a [refunds] table; tolem-load adds its own",
            template.display()
        );
    }
    // What is measured is the outbox: placing and delivering. The POS's wait for the MPP's answer
    // (DECISIONS 39) would tie each placing call to a delivery, and to a held one for ever.
    text.push_str(
        "\n# Added by tolem-load: the POS is answered at once.\n[refunds]\npos_wait_ms = 0\n",
    );
    if variant == Variant::Backlog {
        text.push_str(&format!(
            "# Added by tolem-load: calls held while the backlog is built must not time out.\n\
             request_timeout_ms = {HELD_REQUEST_TIMEOUT_MS}\nlease_ms = {HELD_LEASE_MS}\n"
        ));
    }
    let path = dir.join(format!("{}.toml", variant.server_name()));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

async fn measure(
    client: &reqwest::Client,
    args: &RefundArgs,
    variant: Variant,
    server: &Server,
    receiver: &Receiver,
) -> anyhow::Result<Measured> {
    let name = server.name;
    let (device_token, payment_ids) = setup(client, args, server).await?;
    eprintln!(
        "{name}: placing {} refunds ({} in flight)",
        payment_ids.len(),
        args.concurrency
    );
    let sampler = child::RssSampler::start(server.pid);
    let endpoint = ps::payment_return_url(&server.url);

    let mut snapshot = Snapshot::take(server.pid)?;
    let mut window_start = Instant::now();
    let placement = place_all(
        client,
        &endpoint,
        &device_token,
        payment_ids.into(),
        args.concurrency,
    )
    .await?;
    let placed_at = window_start.elapsed();
    eprintln!(
        "{name}: {} refunds placed in {:.2} s ({} refused)",
        placement.refund_ids.len(),
        placed_at.as_secs_f64(),
        placement.errors
    );
    if variant == Variant::Backlog {
        eprintln!("{name}: opening the receiver to drain the backlog");
        snapshot = Snapshot::take(server.pid)?;
        window_start = Instant::now();
        receiver.open();
    }
    let stall = Duration::from_secs(args.stall_timeout_s);
    let expected = placement.refund_ids.len();
    let complete = wait_delivered(receiver, expected, stall).await;
    let after = Snapshot::take(server.pid)?;
    let cpu_window_s = window_start.elapsed().as_secs_f64();
    eprintln!(
        "{name}: {} of {expected} refunds delivered; waiting for the PS to record them",
        receiver.distinct()
    );
    let (recorded_at, metrics) = wait_recorded(client, &server.url, window_start, stall).await?;
    let rss_sampled_max_kb = sampler.stop().await;
    let memory = child::memory(server.pid)?;

    let seen = receiver.seen();
    let placed: HashSet<i64> = placement.refund_ids.iter().copied().collect();
    let unknown_ids = seen
        .first
        .iter()
        .filter(|(id, _)| !placed.contains(id))
        .count();
    let mut deliveries: Vec<Duration> = seen
        .first
        .iter()
        .map(|(_, at)| at.saturating_duration_since(window_start))
        .collect();
    deliveries.sort_unstable();
    Ok(Measured {
        variant,
        placement,
        deliveries,
        complete,
        placed_at: (variant == Variant::Concurrent).then_some(placed_at),
        recorded_at,
        receiver_calls: seen.calls,
        malformed: seen.malformed,
        unknown_ids,
        metrics,
        cpu_window_s,
        ps_cpu_s: child::ticks_to_s(after.ps.saturating_sub(snapshot.ps)),
        tool_cpu_s: child::ticks_to_s(after.tool.saturating_sub(snapshot.tool)),
        machine_cpu_s: child::ticks_to_s(after.machine.saturating_sub(snapshot.machine)),
        ps_threads: child::thread_cpu(&snapshot.threads, &after.threads),
        rss_sampled_max_kb,
        rss_hwm_kb: memory.hwm_kb,
        stderr: server.stderr_lines(),
    })
}

/// Not measured: a device, `refunds` Dynamic QRs, each scanned and confirmed by its own customer
/// through the MPP API. Returns the device token and the purchases' ids.
async fn setup(
    client: &reqwest::Client,
    args: &RefundArgs,
    server: &Server,
) -> anyhow::Result<(String, Vec<i64>)> {
    let device_token = ps::register_device(client, &server.url).await?;
    eprintln!(
        "{}: creating {} Dynamic QRs ({} in flight)",
        server.name, args.refunds, args.setup_concurrency
    );
    let created = ps::create_qrs(
        client,
        &server.url,
        &device_token,
        args.refunds,
        args.setup_concurrency,
    )
    .await?;
    eprintln!("{}: paying for them (scan + notifyPayment)", server.name);
    let tokens: Arc<[String]> = created.iter().map(|qr| qr.qr_token.clone()).collect();
    let target = drive::Target {
        client,
        url: &server.url,
        tag: server.name,
    };
    let paid = drive::run(&target, "p", tokens, 0, args.concurrency).await?;
    if let Some((kind, failure)) = paid.failures.iter().next() {
        bail!(
            "paying for the purchases to refund failed: {kind}, {} times, e.g. {}",
            failure.count,
            failure.example
        );
    }
    Ok((
        device_token,
        created.iter().map(|qr| qr.qr_payment_id).collect(),
    ))
}

/// One full refund of each purchase, `concurrency` at a time.
async fn place_all(
    client: &reqwest::Client,
    endpoint: &str,
    device_token: &str,
    payment_ids: Arc<[i64]>,
    concurrency: usize,
) -> anyhow::Result<Placement> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.min(payment_ids.len()))
        .map(|_| {
            let (client, next, ids) = (client.clone(), next.clone(), payment_ids.clone());
            let (endpoint, device_token) = (endpoint.to_owned(), device_token.to_owned());
            tokio::spawn(async move {
                let mut placed = Placement::empty()?;
                while let Some(&payment_id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let sent = Instant::now();
                    let result =
                        ps::place_refund(&client, &endpoint, &device_token, payment_id).await;
                    let latency_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    placed.latency_us.saturating_record(latency_us);
                    match result {
                        Ok(refund_id) => placed.refund_ids.push(refund_id),
                        Err(e) => {
                            placed.errors += 1;
                            placed.error_example.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                anyhow::Ok(placed)
            })
        })
        .collect();
    let mut all = Placement::empty()?;
    for worker in workers {
        let placed = worker.await.context("a placing worker panicked")??;
        all.refund_ids.extend(placed.refund_ids);
        all.errors += placed.errors;
        if all.error_example.is_none() {
            all.error_example = placed.error_example;
        }
        all.latency_us
            .add(&placed.latency_us)
            .map_err(|e| anyhow!("cannot merge histograms: {e:?}"))?;
    }
    all.elapsed = started.elapsed();
    Ok(all)
}

impl Placement {
    fn empty() -> anyhow::Result<Placement> {
        Ok(Placement {
            elapsed: Duration::ZERO,
            refund_ids: Vec::new(),
            errors: 0,
            error_example: None,
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .map_err(|e| anyhow!("cannot create a histogram: {e:?}"))?,
        })
    }
}

/// Waits until the receiver has answered `expected` distinct refunds; false if it gave up because
/// none came for `stall`.
async fn wait_delivered(receiver: &Receiver, expected: usize, stall: Duration) -> bool {
    let mut last = (receiver.distinct(), Instant::now());
    loop {
        let delivered = receiver.distinct();
        if delivered >= expected {
            return true;
        }
        if delivered != last.0 {
            last = (delivered, Instant::now());
        } else if last.1.elapsed() > stall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(DELIVERED_POLL_MS)).await;
    }
}

/// Waits until the PS has no refund left undelivered; returns when that was seen (None if the
/// count stopped moving for `stall`) and the PS's refund counters at that time.
async fn wait_recorded(
    client: &reqwest::Client,
    url: &str,
    window_start: Instant,
    stall: Duration,
) -> anyhow::Result<(Option<Duration>, BTreeMap<String, u64>)> {
    let mut last: Option<(u64, Instant)> = None;
    loop {
        let metrics = ps::refund_metrics(client, url).await?;
        let Some(&undelivered) = metrics.get("tolem_refunds_undelivered") else {
            bail!("the PS's metrics have no tolem_refunds_undelivered");
        };
        if undelivered == 0 {
            return Ok((Some(window_start.elapsed()), metrics));
        }
        match last {
            Some((count, since)) if count == undelivered => {
                if since.elapsed() > stall {
                    return Ok((None, metrics));
                }
            }
            _ => last = Some((undelivered, Instant::now())),
        }
        tokio::time::sleep(Duration::from_millis(RECORDED_POLL_MS)).await;
    }
}

/// CPU ticks of the PS (and of its threads), of this tool and of the machine at one moment.
struct Snapshot {
    ps: u64,
    tool: u64,
    machine: u64,
    threads: BTreeMap<u32, (String, u64)>,
}

impl Snapshot {
    fn take(pid: u32) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            ps: child::cpu_ticks(pid)?,
            tool: child::cpu_ticks_self()?,
            machine: child::machine_busy_ticks()?,
            threads: child::thread_ticks(pid)?,
        })
    }
}
