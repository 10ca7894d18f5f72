//! `tolem registers daily|monthly …`: a register made on demand, from the same database and
//! operator data as the server (DECISIONS 25: any past day or month).
//!
//! ```text
//! tolem registers daily   --mpp demobank --date 2026-11-26 --config tolem.toml --out DIR [--format csv]
//! tolem registers monthly --mpp demobank --month 2026-11   --config tolem.toml --out DIR
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use tolem_ps::Config;
use tolem_ps::registers::make::{self, Format};
use tolem_ps::registers::{Period, RegisterKind};

#[derive(Args)]
pub struct RegistersArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// The daily register of one calendar day (the operator's time zone).
    Daily {
        /// The day, e.g. 2026-11-26.
        #[arg(long)]
        date: String,
        #[command(flatten)]
        common: Common,
    },
    /// The monthly register of one calendar month.
    Monthly {
        /// The month, e.g. 2026-11.
        #[arg(long)]
        month: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct Common {
    /// The MPP's caller name.
    #[arg(long)]
    mpp: String,
    /// The server's TOML configuration file.
    #[arg(long, env = "TOLEM_CONFIG")]
    config: Option<PathBuf>,
    /// The server's database, overriding the configuration's `database`: its SQLite file or
    /// its PostgreSQL URL.
    #[arg(long)]
    db: Option<PathBuf>,
    /// The folder the register is written to.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = FormatArg::Xlsx)]
    format: FormatArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Xlsx,
    Csv,
}

pub async fn run(args: RegistersArgs) -> anyhow::Result<()> {
    let (kind, text, common) = match args.which {
        Which::Daily { date, common } => (RegisterKind::Daily, date, common),
        Which::Monthly { month, common } => (RegisterKind::Monthly, month, common),
    };
    let period = Period::parse(kind, &text)?;
    let mut config = Config::load(common.config.as_deref(), std::env::vars())?;
    if let Some(db) = common.db {
        config.database = db;
    }
    // A register of a database that is not there would be an empty register, not an answer.
    anyhow::ensure!(
        tolem_ps::is_postgres_url(&config.database) || config.database.exists(),
        "no database at {}: give --db the PS's database file (or `database` in --config)",
        tolem_ps::database_for_display(&config.database)
    );
    std::fs::create_dir_all(&common.out)
        .with_context(|| format!("cannot create {}", common.out.display()))?;
    let format = match common.format {
        FormatArg::Xlsx => Format::Xlsx,
        FormatArg::Csv => Format::Csv,
    };
    // The database's operator data is the truth here; seeding the file's would write into it.
    config.catalog = Default::default();
    let app = crate::server::start(config).await?;
    let request = make::request(&app, &common.mpp, period, format)?;
    let (path, totals) = make::make_in_dir(&app, request, &common.out).await?;
    let (p, r) = (totals.payments, totals.refunds);
    say!("{}", path.display());
    eprintln!(
        "payments: {} ({} commission {}), refunds: {} ({} commission {})",
        p.count, p.amount, p.commission, r.count, r.amount, r.commission
    );
    Ok(())
}
