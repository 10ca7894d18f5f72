//! `tolem serve` and `tolem sandbox`: load the configuration, bind, run the PS until a signal.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tolem_ps::clock::SystemClock;
use tolem_ps::{App, Config};

use crate::Overrides;

/// The demo configuration the sandbox runs with (also in `examples/`).
const SANDBOX_CONFIG: &str = include_str!("../../../examples/sandbox.toml");

fn environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(k, _)| k != "TOLEM_CONFIG")
}

pub async fn serve(file: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let config = Config::load(file.as_deref(), environment())?;
    run(config, overrides, false).await
}

pub async fn sandbox(overrides: Overrides) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("tolem-sandbox");
    std::fs::create_dir_all(&dir).context("cannot create the sandbox's temporary folder")?;
    let file = dir.join("sandbox.toml");
    std::fs::write(&file, SANDBOX_CONFIG).context("cannot write the sandbox configuration")?;
    let mut config = Config::load(Some(&file), environment())?;
    config.sandbox = true;
    run(config, overrides, true).await
}

async fn run(mut config: Config, overrides: Overrides, sandbox: bool) -> anyhow::Result<()> {
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
    if sandbox {
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

pub async fn shutdown_signal() {
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
