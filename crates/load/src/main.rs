//! `tolem-load`: drives the MPP API's scan + notifyPayment pair against the PS and against a
//! storage-less axum baseline in the same run, and prints a Markdown report (throughput, latency,
//! memory). `tolem-load refunds` measures how fast the PS delivers refunds to an MPP instead.
//! Benchmarks are a tool with a report, never timed assertions (STYLE.md).
//!
//! - [`child`]: a server as a child process: its address, its memory and CPU, its end.
//! - [`ps`]: the PS through the merchant and admin APIs (a device, fresh Dynamic QRs, refunds,
//!   refund metrics).
//! - [`drive`]: the measured workload, the same for both servers.
//! - [`baseline`]: the baseline server, run as the hidden `tolem-load baseline-server`.
//! - [`report`]: the machine, the parameters and the results in Markdown.
//! - [`refunds`], [`receiver`], [`refund_report`]: `tolem-load refunds`, its stand-in MPP and
//!   its report.
//! - [`fill`]: `tolem-load fill`, realistic purchases added to a store without HTTP.

mod baseline;
mod child;
mod drive;
mod fill;
mod ps;
mod receiver;
mod refund_report;
mod refunds;
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::child::Server;
use crate::drive::Outcome;
use crate::report::{Report, Side};

/// The most pairs one run may drive: `customerId` is `C<n>` and may have at most 12 characters.
const PAIRS_MAX: usize = 10_000_000;
/// The most concurrent workers (and pooled connections) of one run.
const CONCURRENCY_MAX: usize = 4_096;
/// How long one HTTP request may take before it counts as an error.
const REQUEST_TIMEOUT_S: u64 = 30;
/// Set, it keeps the temporary directory. The servers do not inherit it: the PS would read it as
/// a configuration key and refuse to start.
const KEEP_VAR: &str = "TOLEM_LOAD_KEEP";

#[derive(Parser)]
#[command(
    name = "tolem-load",
    version,
    about = "Load tool: the MPP API on the PS against a storage-less baseline"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The baseline server: the same two MPP paths, parsed into the same wire types, no storage.
    #[command(hide = true)]
    BaselineServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Refund delivery: refunds placed through the merchant API and delivered by the PS to a
    /// stand-in MPP inside this tool that answers at once; deliveries per second.
    Refunds(refunds::RefundArgs),
    /// Adds realistic purchases to a store through the PS's own store operations (no HTTP), for
    /// runs against a store that has grown.
    Fill(fill::FillArgs),
}

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The `tolem` binary to run as the PS.
    #[arg(long, default_value = "target/release/tolem")]
    pub tolem_bin: PathBuf,
    /// The PS configuration (it must have the sandbox's API key, trade point 1001 and `demobank`).
    #[arg(long, default_value = "examples/sandbox.toml")]
    pub config: PathBuf,
    /// Measured scan + notifyPayment pairs per server (twice as many requests).
    #[arg(long, default_value_t = 20_000)]
    pub pairs: usize,
    /// Concurrent workers in the measured phase (and connections in the client's pool).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Concurrent `qr/create` calls during the PS's setup.
    #[arg(long, default_value_t = 64)]
    pub setup_concurrency: usize,
    /// Pairs run before the measured phase, not measured, to open connections and warm caches.
    #[arg(long, default_value_t = 64)]
    pub warmup_pairs: usize,
    /// `RUST_LOG` for both servers; per-request spans at `info` would measure the logger.
    #[arg(long, default_value = "warn")]
    pub server_log: String,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match start(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // What went wrong, and its root cause when the message does not already say it,
            // as `tolem` prints its own; no backtrace, even with RUST_BACKTRACE.
            let (top, root) = (err.to_string(), err.root_cause().to_string());
            if top.contains(&root) {
                eprintln!("tolem-load: {top}");
            } else {
                eprintln!("tolem-load: {top}\n  cause: {root}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::BaselineServer { listen }) => baseline::serve(listen).await,
        Some(Command::Refunds(args)) => refunds::run(args).await,
        Some(Command::Fill(args)) => fill::run(args).await,
        None => run(cli.run).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if !(1..=PAIRS_MAX).contains(&args.pairs) {
        bail!("--pairs must be between 1 and {PAIRS_MAX}");
    }
    for (name, value) in [
        ("--concurrency", args.concurrency),
        ("--setup-concurrency", args.setup_concurrency),
    ] {
        if !(1..=CONCURRENCY_MAX).contains(&value) {
            bail!("{name} must be between 1 and {CONCURRENCY_MAX}");
        }
    }
    if args.warmup_pairs > PAIRS_MAX {
        bail!("--warmup-pairs must be at most {PAIRS_MAX}");
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

    let baseline = run_baseline(&client, &args, &work_dir.path).await?;
    let ps = run_ps(&client, &args, &tolem_bin, &work_dir.path).await?;

    let report = Report::new(&args, ps, baseline).render();
    print!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(())
}

async fn run_baseline(
    client: &reqwest::Client,
    args: &RunArgs,
    dir: &Path,
) -> anyhow::Result<Side> {
    let me = std::env::current_exe().context("cannot find the tolem-load binary")?;
    let server =
        Server::spawn("baseline", &me, &["baseline-server"], &args.server_log, dir).await?;
    eprintln!("baseline: listening on {}", server.url);
    // The baseline keeps nothing, so any token does; they have the length of the PS's tokens.
    let tokens: Arc<[String]> = (0..args.warmup_pairs + args.pairs)
        .map(|i| format!("{i:041}"))
        .collect();
    let side = measure(client, args, &server, tokens).await;
    server.stop().await?;
    side
}

async fn run_ps(
    client: &reqwest::Client,
    args: &RunArgs,
    tolem_bin: &Path,
    dir: &Path,
) -> anyhow::Result<Side> {
    let db = dir.join("load.db");
    let config = args.config.to_string_lossy();
    let db_arg = db.to_string_lossy();
    let ps_args = [
        "serve",
        "--config",
        &config,
        "--db",
        &db_arg,
        "--listen",
        "127.0.0.1:0",
    ];
    let server = Server::spawn("ps", tolem_bin, &ps_args, &args.server_log, dir).await?;
    eprintln!("ps: listening on {}", server.url);
    let setup = async {
        let device_token = ps::register_device(client, &server.url).await?;
        let count = args.warmup_pairs + args.pairs;
        eprintln!(
            "ps: creating {count} Dynamic QRs ({} in flight)",
            args.setup_concurrency
        );
        ps::create_qrs(
            client,
            &server.url,
            &device_token,
            count,
            args.setup_concurrency,
        )
        .await
    };
    let side = match setup.await {
        Ok(created) => {
            let tokens = created.into_iter().map(|qr| qr.qr_token).collect();
            measure(client, args, &server, tokens).await
        }
        Err(e) => Err(e),
    };
    server.stop().await?;
    side
}

/// Warm-up, then the measured phase while the server's memory is sampled.
async fn measure(
    client: &reqwest::Client,
    args: &RunArgs,
    server: &Server,
    tokens: Arc<[String]>,
) -> anyhow::Result<Side> {
    let (warmup, measured) = tokens.split_at(args.warmup_pairs.min(tokens.len()));
    let target = drive::Target {
        client,
        url: &server.url,
        tag: server.name,
    };
    drive::run(&target, "w", warmup.into(), 0, args.concurrency).await?;
    eprintln!(
        "{}: driving {} pairs with {} workers",
        server.name,
        measured.len(),
        args.concurrency
    );
    let sampler = child::RssSampler::start(server.pid);
    let cpu_before = (
        child::cpu_ticks(server.pid)?,
        child::cpu_ticks_self()?,
        child::machine_busy_ticks()?,
    );
    let threads_before = child::thread_ticks(server.pid)?;
    let outcome: Outcome = drive::run(
        &target,
        "m",
        measured.into(),
        warmup.len(),
        args.concurrency,
    )
    .await?;
    let cpu_after = (
        child::cpu_ticks(server.pid)?,
        child::cpu_ticks_self()?,
        child::machine_busy_ticks()?,
    );
    let threads_after = child::thread_ticks(server.pid)?;
    let rss_max_kb = sampler.stop().await;
    let memory = child::memory(server.pid)?;
    let stderr_lines = server.stderr_lines();
    Ok(Side {
        outcome,
        rss_sampled_max_kb: rss_max_kb,
        rss_hwm_kb: memory.hwm_kb,
        server_cpu_s: child::ticks_to_s(cpu_after.0.saturating_sub(cpu_before.0)),
        tool_cpu_s: child::ticks_to_s(cpu_after.1.saturating_sub(cpu_before.1)),
        machine_cpu_s: child::ticks_to_s(cpu_after.2.saturating_sub(cpu_before.2)),
        server_threads: child::thread_cpu(&threads_before, &threads_after),
        stderr_lines,
    })
}

/// A fresh directory for the PS's database and the servers' logs, removed at the end.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn create() -> anyhow::Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("tolem-load-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot clear {}", path.display()))?;
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Keep the logs when asked to, e.g. to read the servers' warnings after a failed run.
        if std::env::var_os(KEEP_VAR).is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
