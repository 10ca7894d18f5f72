//! `tolem mpp`: the reference MPP (a bank back-end) with its app API and `/refund`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tolem_mpp::{Mpp, MppConfig};
use tolem_sdk::RetryPolicy;

#[derive(Args)]
pub struct MppArgs {
    /// The reference MPP's TOML configuration (defaults: demobank with two demo customers).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The PS's base URL.
    #[arg(long)]
    ps: Option<String>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The SQLite database file.
    #[arg(long)]
    db: Option<PathBuf>,
}

pub fn config(args: &MppArgs) -> anyhow::Result<MppConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            MppConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => MppConfig::default(),
    };
    if let Some(ps) = &args.ps {
        config.ps_url = ps.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(db) = &args.db {
        config.database = db.clone();
    }
    Ok(config)
}

pub async fn run(args: MppArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let mpp = Mpp::open(&config, RetryPolicy::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, caller = %config.caller_name, ps = %config.ps_url, "reference MPP started");
    tolem_mpp::serve(listener, mpp, crate::server::shutdown_signal()).await?;
    Ok(())
}
