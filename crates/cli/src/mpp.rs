//! `tolem mpp`: the reference MPP (a bank back-end) with its app API and `/refund`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tolem_mpp::{Mpp, MppConfig};
use tolem_sdk::RetryPolicy;

#[derive(Args)]
pub struct MppArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// The reference MPP's TOML configuration (defaults: demobank with two demo customers).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The PS's base URL (for running the MPP; `reconcile` reads files only).
    #[arg(long)]
    ps: Option<String>,
    /// Address to listen on (for running the MPP).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address where `/refund` alone listens, for the PS only (the tunnel's address).
    #[arg(long)]
    refund_listen: Option<SocketAddr>,
    /// The SQLite database file.
    #[arg(long, global = true)]
    db: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Compare a PS register (CSV) with this MPP's books and list every difference.
    Reconcile {
        /// The register, as the PS made it in CSV (`tolem registers … --format csv`, or the cabinet).
        #[arg(long)]
        register: PathBuf,
        /// The register's day (YYYY-MM-DD) …
        #[arg(long, conflicts_with = "month")]
        date: Option<String>,
        /// … or month (YYYY-MM).
        #[arg(long)]
        month: Option<String>,
        /// The operator's time zone, in which the register's days are counted.
        #[arg(long, default_value = "Asia/Almaty")]
        time_zone: String,
    },
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
    if let Some(refund_listen) = args.refund_listen {
        config.refund_listen = Some(refund_listen);
    }
    if let Some(db) = &args.db {
        config.database = db.clone();
    }
    Ok(config)
}

pub async fn run(args: MppArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    if let Some(Action::Reconcile {
        register,
        date,
        month,
        time_zone,
    }) = &args.action
    {
        return reconcile(
            &config,
            register,
            date.as_deref(),
            month.as_deref(),
            time_zone,
        )
        .await;
    }
    let listener = crate::server::bind(config.listen, "--listen", false)?;
    let addr = listener.local_addr()?;
    let refund_listener = config
        .refund_listen
        .map(|at| crate::server::bind(at, "--refund-listen", false))
        .transpose()?;
    let mpp = Mpp::open(&config, RetryPolicy::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    say!("listening on http://{addr}");
    match &refund_listener {
        Some(refunds) => say!("refunds on http://{}/refund", refunds.local_addr()?),
        None if !addr.ip().is_loopback() => tracing::warn!(
            %addr,
            "/refund is served beside the app API: whoever reaches {addr} can credit a customer; \
             give it an address only the PS reaches (refund_listen, --refund-listen)"
        ),
        None => {}
    }
    tracing::info!(%addr, caller = %config.caller_name, ps = %config.ps_url, "reference MPP started");
    tolem_mpp::serve(
        listener,
        refund_listener,
        mpp,
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// The period's bounds in milliseconds, from a day or a month in `zone`.
fn bounds(date: Option<&str>, month: Option<&str>, zone: &str) -> anyhow::Result<(i64, i64)> {
    let zone = tolem_wire::time::zone(zone).context("unknown time zone")?;
    let (first, next) = match (date, month) {
        (Some(day), None) => {
            let day: jiff::civil::Date = day.parse().context("--date must be YYYY-MM-DD")?;
            (day, day.tomorrow()?)
        }
        (None, Some(month)) => {
            let first: jiff::civil::Date = format!("{month}-01")
                .parse()
                .context("--month must be YYYY-MM")?;
            (first, first.checked_add(jiff::Span::new().months(1))?)
        }
        _ => anyhow::bail!("give --date or --month"),
    };
    let start = |d: jiff::civil::Date| -> anyhow::Result<i64> {
        Ok(d.to_zoned_datetime(zone.clone())?
            .timestamp()
            .as_millisecond())
    };
    Ok((start(first)?, start(next)?))
}

async fn reconcile(
    config: &MppConfig,
    register: &std::path::Path,
    date: Option<&str>,
    month: Option<&str>,
    zone: &str,
) -> anyhow::Result<()> {
    let (from, to) = bounds(date, month, zone)?;
    // Reconciling against books that are not there would report every row as missing, and
    // opening them would leave an empty database behind.
    anyhow::ensure!(
        config.database.exists(),
        "no MPP database at {}: give --db the file `tolem mpp` runs with",
        config.database.display()
    );
    anyhow::ensure!(
        register.exists(),
        "no register at {}: make one with `tolem registers … --format csv` or download it from the cabinet",
        register.display()
    );
    let mpp = Mpp::open(config, RetryPolicy::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let differences = mpp.reconcile(register, from, to).await?;
    for difference in &differences {
        say!("{}", serde_json::to_string(difference)?);
    }
    let breaks = differences.iter().filter(|d| d.is_break()).count();
    let near = differences.len() - breaks;
    if breaks > 0 {
        anyhow::bail!("{breaks} difference(s)");
    }
    // Likely the neighbouring register's, but not known to be until it is looked at there: an
    // operation the PS lost near midnight must not pass unseen.
    anyhow::ensure!(
        near == 0,
        "no difference, but {near} operation(s) booked near the period's edge are not in this \
         register (near_the_edge): find each in the neighbouring period's register"
    );
    say!("no differences: the register and the books agree");
    Ok(())
}
