//! The `tolem` command: one binary, one wiring path, several jobs.
//!
//! - `tolem serve --config FILE`: the payment system server.
//! - `tolem sandbox`: the server with the demo data of `examples/sandbox.toml`, in sandbox mode.
//! - `tolem registers …`: registers made on demand.
//! - `tolem mpp`: the reference MPP; `tolem wallet …`: its customer on the command line.
//! - `tolem ipsec`: the strongSwan configuration of the IPSec link to each MPP, both sides.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The memory allocator of every job: mimalloc, whose per-thread free lists make the small
/// allocations of each request (headers, JSON, the hand-off to the store's writer) cheaper than
/// glibc's malloc across threads (docs/benchmarks.md, "Where the time goes"; docs/dependencies.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints a line on stdout. A closed stdout (`| head`, a reader gone) is not a failure of the
/// command: a server goes on serving, a listing just ends.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[cfg(test)]
mod doc_commands;
mod ipsec;
mod mpp;
mod registers;
mod server;
mod wallet;

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
        /// Check the configuration and the files it names (TLS certificates and keys, CA
        /// files) and read the database's schema version, say what was found, and exit without
        /// listening or creating or changing anything.
        #[arg(long)]
        check: bool,
    },
    /// Run the server with the demo data, in sandbox mode, on a local SQLite file (or the
    /// PostgreSQL database --db names), with a reference MPP for each demo MPP.
    Sandbox {
        #[command(flatten)]
        overrides: Overrides,
        /// Port of the first demo MPP (the next one gets the next port); 0 picks free ports and
        /// points the demo MPPs' refund URLs at them (on a fresh database).
        #[arg(long, default_value_t = 8091)]
        mpps_port: u16,
    },
    /// Make registers (reconciliation reports) on demand.
    Registers(registers::RegistersArgs),
    /// Run the reference MPP (a bank back-end with its customers' ledger).
    Mpp(mpp::MppArgs),
    /// Pay QR codes as a customer of the reference MPP.
    Wallet(wallet::WalletArgs),
    /// Write the strongSwan configuration of the IPSec link to each MPP, for both sides
    /// (docs/ipsec.md).
    Ipsec(ipsec::IpsecArgs),
    /// After restoring the database from a backup, before the PS starts on it: move the
    /// operation ids past any the lost part of its history handed out, so that no payment or
    /// refund id is issued twice (docs/deployment.md, Backups).
    Restored {
        /// The server's TOML configuration file (for its `database`).
        #[arg(long, env = "TOLEM_CONFIG")]
        config: Option<PathBuf>,
        /// The restored database, overriding the configuration's `database`: its SQLite file or
        /// a PostgreSQL URL.
        #[arg(long)]
        db: Option<PathBuf>,
        /// How far to move the ids: more operations than the PS could have made since the
        /// backup.
        #[arg(long, default_value_t = tolem_ps::store::RESTORE_GAP)]
        gap: i64,
    },
}

/// Flags that override the configuration.
#[derive(Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one); with `serve`, only
    /// when the configuration has no `listeners`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The database (with `serve`, in place of the configuration's `database`): a SQLite file
    /// (one serving process at a time) or a PostgreSQL URL, postgres://user@host:port/dbname.
    #[arg(long)]
    db: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs what it does (`info`); a command that answers and exits says only what
    // went wrong (`warn`), so that its answer is not preceded by lines about its start.
    let level = match &cli.command {
        Command::Serve { check: false, .. } | Command::Sandbox { .. } | Command::Mpp(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `TOLEM_LOG_FORMAT=json`: one JSON object a line, for a log shipper; else plain text.
    if std::env::var("TOLEM_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json().with_current_span(true).init();
    } else {
        // Colours only for a person at a terminal: a log file or journal gets plain text, and
        // each request's span is written without the escape codes around every field name.
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Already said on screen, in the customer's language.
        Err(err) if err.is::<wallet::StillPending>() => {
            ExitCode::from(wallet::StillPending::EXIT_STATUS)
        }
        Err(err) => {
            eprintln!("{}", explain(&err));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                config,
                overrides,
                check: true,
            } => server::check(config, overrides),
            Command::Serve {
                config,
                overrides,
                check: false,
            } => server::serve(config, overrides).await,
            Command::Sandbox {
                overrides,
                mpps_port,
            } => server::sandbox(overrides, mpps_port).await,
            Command::Registers(args) => registers::run(args).await,
            Command::Mpp(args) => mpp::run(args).await,
            Command::Wallet(args) => wallet::run(args).await,
            Command::Ipsec(args) => ipsec::run(args),
            Command::Restored { config, db, gap } => server::restored(config, db, gap),
        }
    })
}

/// An error as a person reads it: one line with what went wrong and what to do, and a second
/// with the underlying cause only where the first does not already say it. Never a backtrace
/// (also with `RUST_BACKTRACE=1`) and never a chain that repeats itself.
fn explain(err: &anyhow::Error) -> String {
    let top = err.to_string();
    let root = err.root_cause().to_string();
    if top.contains(&root) {
        format!("error: {top}")
    } else {
        format!("error: {top}\n  cause: {root}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_when_its_cause_adds_nothing() {
        let err = anyhow::anyhow!("no database at x.db");
        assert_eq!(explain(&err), "error: no database at x.db");
        let err = anyhow::Error::from(std::io::Error::other("disk on fire"))
            .context("cannot write x: disk on fire");
        assert_eq!(explain(&err), "error: cannot write x: disk on fire");
    }

    #[test]
    fn a_cause_the_message_does_not_name_is_a_second_line() {
        let err =
            anyhow::Error::from(std::io::Error::other("disk on fire")).context("cannot write x");
        assert_eq!(
            explain(&err),
            "error: cannot write x\n  cause: disk on fire"
        );
    }
}
