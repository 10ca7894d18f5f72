//! The `tolem` command: one binary, one wiring path, several jobs.
//!
//! - `tolem serve --config FILE`: the payment system server.
//! - `tolem sandbox`: the server with the demo data of `examples/sandbox.toml`, in sandbox mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tolem_ps::clock::SystemClock;
use tolem_ps::{App, Config};
use tracing_subscriber::EnvFilter;

/// The demo configuration the sandbox runs with (also in `examples/`).
const SANDBOX_CONFIG: &str = include_str!("../../../examples/sandbox.toml");

#[derive(Parser)]
#[command(
    name = "tolem",
    version,
    about = "Tolem: an open-source QR payment system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the payment system server.
    Serve {
        /// The TOML configuration file (settings and operator data).
        #[arg(long, env = "TOLEM_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run the server with the demo data, in sandbox mode, on a local SQLite file.
    Sandbox {
        #[command(flatten)]
        overrides: Overrides,
    },
}

#[derive(Args)]
struct Overrides {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The SQLite database file.
    #[arg(long)]
    db: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env = std::env::vars().filter(|(k, _)| k != "TOLEM_CONFIG");
    let sandbox_mode = matches!(cli.command, Command::Sandbox { .. });
    let (mut config, overrides) = match cli.command {
        Command::Serve { config, overrides } => (Config::load(config.as_deref(), env)?, overrides),
        Command::Sandbox { overrides } => {
            let dir = std::env::temp_dir().join("tolem-sandbox");
            std::fs::create_dir_all(&dir).ok();
            let file = dir.join("sandbox.toml");
            std::fs::write(&file, SANDBOX_CONFIG)
                .context("cannot write the sandbox configuration")?;
            let mut config = Config::load(Some(&file), env)?;
            config.sandbox = true;
            (config, overrides)
        }
    };
    if let Some(listen) = overrides.listen {
        config.listen = listen;
    }
    if let Some(db) = overrides.db {
        config.database = db;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    if sandbox_mode {
        // Links in answers must point at where this sandbox really listens.
        config.public_url = format!("http://{addr}");
    }
    let database = config.database.clone();
    let app = App::start(config, Arc::new(SystemClock)).await?;
    // The first line on stdout says where the server is (tests and scripts read it).
    println!("listening on http://{addr}");
    tracing::info!(%addr, database = %database.display(), sandbox = app.config.sandbox, "Tolem PS started");
    tolem_ps::serve(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
