//! `tolem-load fill`: adds millions of realistic purchases to a PS store through the store's own
//! operations (`tolem_ps::payments::fill`), for the growth measurements of docs/benchmarks.md:
//! fill, then run the MPP mix against a `tolem serve` on the same database.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use tolem_ps::clock::SystemClock;
use tolem_ps::payments::{FillPlan, fill};
use tolem_ps::store::{DatabaseLock, DatabaseLockError};
use tolem_ps::{App, Config};

/// The most purchases one fill may add (run it again to add more).
const PURCHASES_MAX: u64 = 100_000_000;

#[derive(Args, Clone, Debug)]
pub struct FillArgs {
    /// The PS configuration whose catalog (MPPs, trade points) the purchases belong to.
    #[arg(long, default_value = "examples/sandbox.toml")]
    pub config: PathBuf,
    /// The database to fill: a SQLite file (created if missing) or a `postgres://` URL.
    #[arg(long)]
    pub db: String,
    /// Purchases to add.
    #[arg(long)]
    pub purchases: u64,
    /// The days they are spread over, ending now.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
}

/// Takes the lock of the SQLite file `path` (`db` as given on the command line).
fn lock(db: &str, path: &std::path::Path) -> anyhow::Result<DatabaseLock> {
    tolem_ps::store::lock_database(path).map_err(|e| match e {
        DatabaseLockError::InUse { holder } => {
            let holder = holder
                .map(|pid| format!(" (process {pid})"))
                .unwrap_or_default();
            anyhow::anyhow!(
                "the database {db} is in use by a Tolem PS or another fill{holder}: stop it \
                 before filling the file"
            )
        }
        other => other.into(),
    })
}

pub async fn run(args: FillArgs) -> anyhow::Result<()> {
    if !(1..=PURCHASES_MAX).contains(&args.purchases) {
        bail!("--purchases must be between 1 and {PURCHASES_MAX}");
    }
    if !(1..=3_650).contains(&args.days) {
        bail!("--days must be between 1 and 3650");
    }
    let mut config = Config::load(Some(&args.config), std::iter::empty())?;
    config.database = PathBuf::from(&args.db);
    // A SQLite file has one writing process: the fill is refused while a PS serves it, and a
    // PS is refused while the fill runs (DatabaseLock). PostgreSQL is shared.
    let _lock = if tolem_ps::is_postgres_url(&config.database) {
        None
    } else {
        Some(lock(&args.db, &config.database)?)
    };
    let app = App::start(config, Arc::new(SystemClock))
        .await
        .with_context(|| format!("cannot open the store {}", args.db))?;
    let plan = FillPlan {
        purchases: args.purchases,
        days: args.days,
    };
    let started = Instant::now();
    let mut reported = 0;
    let report = fill(&app, &plan, |done| {
        if done - reported >= 1_000_000 || done == plan.purchases {
            reported = done;
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprintln!("{done} purchases ({rate:.0}/s)");
        }
    })
    .await
    .context("the fill stopped")?;
    println!(
        "added {} purchases ({} confirmed) in {:.1} s",
        report.purchases,
        report.confirmed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
