//! `tolem serve` and `tolem sandbox`: load the configuration, bind (one listener, or one per
//! entry of `listeners`), run the PS until a signal.
//! The sandbox also runs a reference MPP for each demo MPP, so refunds reach a real `/refund`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tolem_mpp::config::CustomerSeed;
use tolem_mpp::{Mpp, MppConfig};
use tolem_ps::app::{Listener, ListenerError};
use tolem_ps::clock::SystemClock;
use tolem_ps::state::{AppState, StartError};
use tolem_ps::store::{DatabaseLock, DatabaseLockError, SchemaState, StoreError};
use tolem_ps::{App, Config};
use tolem_sdk::RetryPolicy;
use tolem_wire::Amount;

use crate::Overrides;

/// The demo configuration the sandbox runs with (`crates/ps/sandbox.toml`, linked from
/// `examples/`).
const SANDBOX_CONFIG: &str = tolem_ps::SANDBOX_TOML;

fn environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars()
}

pub async fn serve(file: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let config = Config::load(file.as_deref(), environment())?;
    warn_of_secrets_open_to_all(file.as_deref(), &config);
    run(config, overrides).await
}

/// `tolem serve --check`: the configuration as `serve` would take it (the file, the environment,
/// the flags), the files it names read and the database's schema version read (whether a start
/// would make or migrate it), but nothing bound, created or changed; what a start would warn of is
/// said too.
pub fn check(file: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let mut config = Config::load(file.as_deref(), environment())?;
    if let Some(db) = overrides.db.clone() {
        config.database = db;
        config.database_given = true;
    }
    config.check_reuse_port()?;
    check_database_folder(&config.database)?;
    let rights = database_rights(&config.database)?;
    for warning in &rights {
        tracing::warn!("{warning}");
    }
    anyhow::ensure!(
        config.listeners.is_empty() || overrides.listen.is_none(),
        "--listen cannot be used with `listeners` in the configuration, which give each listener its address; drop --listen or change listeners[].address"
    );
    let warnings =
        tolem_ps::check_files(&config).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let catalog = tolem_ps::catalog::Catalog::of_file(&config.catalog);
    let more = usize::from(warn_of_default_database(&config))
        + usize::from(warn_of_r2_r3_refused(&config))
        + usize::from(warn_of_mpps_without_tunnel(
            &config,
            &catalog,
            overrides.listen.unwrap_or(config.listen),
        ))
        + usize::from(warn_of_sandbox_credentials(&config, &catalog))
        + warn_of_secrets_open_to_all(file.as_deref(), &config)
        + rights.len();
    let listeners = match config.listeners.len() {
        0 => format!(
            "one plain listener on {}",
            overrides.listen.unwrap_or(config.listen)
        ),
        n => format!("{n} listener(s)"),
    };
    // Read, never changed: whether the database is there and what a start would do to it.
    let database = tolem_ps::database_for_display(&config.database);
    let state = tolem_ps::store::schema_state(&config.database);
    let schema = match &state {
        Ok(SchemaState::New { .. }) => "new: a start makes its schema".to_owned(),
        Ok(SchemaState::UpToDate { version }) => format!("schema {version}, up to date"),
        Ok(SchemaState::Behind { found, known }) => {
            format!("schema {found}: a start migrates it to {known}")
        }
        Ok(SchemaState::Newer { found, known }) => anyhow::bail!(
            "the database {database} has schema version {found}, newer than this build's {known}: \
             a newer build migrated it; run that build, or restore a backup made for this one"
        ),
        Err(e) => anyhow::bail!(
            "cannot read the database {database}: {e}{}",
            tolem_ps::database_url_hint(&config.database)
        ),
    };
    // What a start would keep of the database's operator data over the file's.
    let set_aside = match state {
        Ok(SchemaState::UpToDate { .. }) if !config.sandbox => {
            tolem_ps::store::read_catalog_file(&config.database)
                .ok()
                .and_then(|stored| config.catalog.set_aside_warning(&stored))
        }
        _ => None,
    };
    if let Some(warning) = &set_aside {
        tracing::warn!("{warning}");
    }
    let more = more + usize::from(set_aside.is_some());
    say!(
        "configuration OK: {listeners}, database {database} ({schema}){}{}",
        if config.sandbox { ", sandbox" } else { "" },
        if warnings.len() + more == 0 {
            String::new()
        } else {
            format!(", {} warning(s) above", warnings.len() + more)
        }
    );
    Ok(())
}

/// `tolem restored`: the operation ids of the database the configuration (or `db`) names moved
/// `gap` past the highest it holds or had handed out (`tolem_ps::store::skip_operation_ids`).
/// A SQLite file is locked for it as for a serving PS, so it is refused while one runs.
pub fn restored(file: Option<PathBuf>, db: Option<PathBuf>, gap: i64) -> anyhow::Result<()> {
    let mut config = Config::load(file.as_deref(), environment())?;
    if let Some(db) = db {
        config.database = db;
    }
    let database = tolem_ps::database_for_display(&config.database);
    if !tolem_ps::is_postgres_url(&config.database) {
        anyhow::ensure!(
            config.database.exists(),
            "no database {database}: put the backup in place first, or give --db the restored file"
        );
    }
    let _lock = claim_database(&config.database)?;
    // On PostgreSQL no lock says whether a node still serves: its sessions do. A node serving
    // meanwhile would hand out the ids about to be skipped, and the ids of the lost history too.
    let others = tolem_ps::store::other_sessions(&config.database)
        .map_err(|e| anyhow::anyhow!("cannot read the database {database}: {e}"))?;
    if let Some(others) = others.filter(|n| *n > 0) {
        anyhow::bail!(
            "{others} other session(s) are connected to {database}: stop every node (and any \
             other client) first, then run `tolem restored` once (docs/deployment.md, Backups)"
        );
    }
    let (before, after) =
        tolem_ps::store::skip_operation_ids(&config.database, gap).map_err(|e| match e {
            StoreError::Refused(why) => {
                anyhow::anyhow!("cannot move the operation ids of {database}: {why}")
            }
            e => anyhow::anyhow!(
                "cannot move the operation ids of {database}: {e}; give the restored database of a \
             Tolem PS (--db or the configuration's `database`)"
            ),
        })?;
    say!(
        "operation ids of {database}: the next was {before}, now {after}; start the PS (docs/deployment.md, Backups)"
    );
    Ok(())
}

/// A reference MPP the sandbox runs beside the PS.
struct SandboxMpp {
    caller: &'static str,
    /// (customerId, name, opening deposit in tenge)
    customers: &'static [(&'static str, &'static str, u64)],
}

/// The demo MPPs of `examples/sandbox.toml`, in the order of their ports.
const SANDBOX_MPPS: &[SandboxMpp] = &[
    SandboxMpp {
        caller: "demobank",
        customers: &[("C1", "Айгерим", 50_000), ("C2", "Нурлан", 10_000)],
    },
    SandboxMpp {
        caller: "demowallet",
        customers: &[("W1", "Дана", 20_000)],
    },
];

/// The sandbox's folder for the demo MPPs' books when the PS is on PostgreSQL: this user's own
/// (`tolem-sandbox-UID` in the temporary folder, mode 0700). One that is not a folder of this
/// user's, or that others may enter, is refused: in a temporary folder anyone may have made it
/// first, to read the books or swap them.
fn private_temp_folder() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = rustix::process::geteuid().as_raw();
    let dir = std::env::temp_dir().join(format!("tolem-sandbox-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot create the folder {}", dir.display()));
        }
    }
    let meta = std::fs::symlink_metadata(&dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0,
        "{} is not a folder of this user's that only it may enter: remove it, and the sandbox \
         makes its own",
        dir.display()
    );
    Ok(dir)
}

pub async fn sandbox(overrides: Overrides, mpps_port: u16) -> anyhow::Result<()> {
    let mut config =
        Config::load_text(SANDBOX_CONFIG, "the sandbox's configuration", environment())?;
    config.sandbox = true;
    // The demo MPPs' connections are file descriptors of this process too: the PS's cap leaves
    // room for them at their own caps (`tolem_mpp::listen`).
    config.limits.open_files_reserved = config
        .limits
        .open_files_reserved
        .saturating_add(SANDBOX_MPPS.len() * tolem_mpp::listen::CONNECTIONS_MAX);
    if let Some(listen) = overrides.listen {
        config.listen = listen;
    }
    if let Some(db) = overrides.db {
        config.database = db;
    }
    config.check_reuse_port()?;
    let _lock = claim_database(&config.database)?;
    let listener = bind(config.listen, "--listen", config.reuse_port)?;
    let bound = listener.local_addr()?;
    // On every address (`0.0.0.0`), this machine reaches the sandbox on loopback; 0.0.0.0 is
    // no address to put in a link.
    let addr = match bound.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        }
        ip if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, bound.port()))
        }
        _ => bound,
    };
    let local_url = format!("http://{addr}");
    // Links point where the sandbox listens, unless the operator said where it is reached from
    // outside (behind a TLS proxy, say): a configured `public_url` is kept.
    if std::env::var_os("TOLEM_PUBLIC_URL").is_none() {
        config.public_url = local_url.clone();
        if addr != bound {
            say!(
                "note: listening on every address ({bound}); links and receipts name \
                 {local_url}, which only this machine reaches: set TOLEM_PUBLIC_URL to the \
                 address others reach the sandbox by"
            );
        }
    }
    let on_postgres = tolem_ps::is_postgres_url(&config.database);
    // The demo MPPs keep their books in SQLite files: beside the PS's file, or in the sandbox's
    // temporary folder when the PS is on PostgreSQL.
    let dir = if on_postgres {
        Some(private_temp_folder()?)
    } else {
        None
    };
    let mpp_books = |caller: &str| match &dir {
        Some(dir) => dir.join(format!("tolem-sandbox-{caller}.db")),
        None => sibling(&config.database, caller),
    };
    if !on_postgres && !config.database.exists() {
        // A new PS numbers payments and refunds from 1 again; demo MPP books of an earlier PS
        // would take those ids for ones they already know.
        for demo in SANDBOX_MPPS {
            let file = mpp_books(demo.caller);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
    let stop = CancellationToken::new();
    let mut mpps = Vec::new();
    let mut mpp_urls = Vec::new();
    for (index, demo) in SANDBOX_MPPS.iter().enumerate() {
        let SandboxMpp { caller, customers } = demo;
        let port = match mpps_port {
            0 => 0,
            base => base.saturating_add(u16::try_from(index).unwrap_or(u16::MAX)),
        };
        let mpp_listener = bind(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "--mpps-port",
            false,
        )?;
        let mpp_addr = mpp_listener.local_addr()?;
        // The PS delivers this MPP's refunds to where it really listens.
        for m in config
            .catalog
            .mpps
            .iter_mut()
            .filter(|m| m.caller_name == *caller)
        {
            m.refund_url = format!("http://{mpp_addr}/refund");
        }
        mpp_urls.push((demo, format!("http://{mpp_addr}")));
        let mpp_config = MppConfig {
            caller_name: (*caller).to_owned(),
            // The demo MPPs call the PS where it listens, beside them.
            ps_url: local_url.clone(),
            listen: mpp_addr,
            // One machine: /refund beside the app, where the PS above calls it.
            refund_listen: None,
            database: mpp_books(caller),
            customers: customers
                .iter()
                .map(|(id, name, tenge)| CustomerSeed {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                    deposit: Amount::from_tenge(*tenge).unwrap_or_default(),
                })
                .collect(),
        };
        let mpp = Mpp::open(&mpp_config, RetryPolicy::default())
            .map_err(|e| anyhow::anyhow!("{caller}: {e}"))?;
        let done = stop.clone();
        mpps.push(tokio::spawn(tolem_mpp::serve(
            mpp_listener,
            None,
            mpp,
            async move { done.cancelled().await },
        )));
    }
    let app = start(config).await?;
    say!("listening on http://{addr}");
    tracing::info!(version = env!("CARGO_PKG_VERSION"), node = %app.config.node_name, %addr, sandbox = true, "Tolem PS started");
    warn_moved_refunds(&app, &mpp_urls);
    print_guide(&app.config, &addr.to_string(), &mpp_urls);
    let done = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        done.cancel();
    });
    let done = stop.clone();
    tolem_ps::serve(listener, app, async move { done.cancelled().await }).await?;
    stop.cancel();
    for mpp in mpps {
        let _ = mpp.await;
    }
    Ok(())
}

/// A database of an earlier start keeps the demo MPPs' refund URLs of then (or the ones the
/// operator gave them since): says so when one is not where its demo MPP listens now, since its
/// refunds go there, not to the MPP the wallet pays from.
fn warn_moved_refunds(app: &AppState, mpp_urls: &[(&SandboxMpp, String)]) {
    let catalog = app.catalog.get();
    for (demo, url) in mpp_urls {
        let here = format!("{url}/refund");
        let stored = catalog
            .mpps
            .values()
            .find(|m| m.caller_name.as_str() == demo.caller)
            .map(|m| m.refund_url.as_str())
            .filter(|stored| *stored != here);
        if let Some(stored) = stored {
            say!(
                "note: {caller}'s refunds go to {stored}, as this database has it from an \
                 earlier start, not to {here}, where {caller} listens now; start with the \
                 --mpps-port of then, or point them here (docs/sandbox.md, refund_url)",
                caller = demo.caller
            );
        }
    }
}

/// `tolem-sandbox.db` → `tolem-sandbox-demobank.db`, beside the PS's file.
fn sibling(db: &Path, caller: &str) -> PathBuf {
    let stem = db
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("tolem-sandbox");
    db.with_file_name(format!("{stem}-{caller}.db"))
}

/// One PS process per SQLite file (`tolem_ps::store::lock_database`): a second `tolem serve`
/// or `tolem sandbox` on the file is refused, naming the first.
fn lock_database(db: &Path) -> anyhow::Result<DatabaseLock> {
    tolem_ps::store::lock_database(db).map_err(|e| match e {
        DatabaseLockError::InUse { holder } => {
            let holder = holder
                .map(|pid| format!(" (process {pid})"))
                .unwrap_or_default();
            anyhow::anyhow!(
                "the database {} is in use by another Tolem process{holder}: a SQLite file \
                 serves one process; stop that one, or give --db another file (several nodes \
                 share a PostgreSQL database, docs/deployment.md)",
                db.display()
            )
        }
        e @ DatabaseLockError::Io { .. } => {
            anyhow::anyhow!("{e}; check that this user may write in the database's folder")
        }
    })
}

/// A SQLite database's folder must be there; SQLite would only say it cannot open the file.
fn check_database_folder(path: &Path) -> anyhow::Result<()> {
    // Taken as a file's name, it would give a node meant to share PostgreSQL a file of its own,
    // named with the password. The value is not repeated: it may hold one.
    anyhow::ensure!(
        !tolem_ps::is_key_value_connection_string(path),
        "the database is given as PostgreSQL's key=value pairs (host=… dbname=…), which would be \
         taken for a SQLite file's name: give it as a URL, \
         postgres://USER:PASSWORD@HOST:PORT/DBNAME (docs/deployment.md, \"The database\")"
    );
    if let Some(folder) = path
        .parent()
        .filter(|p| !tolem_ps::is_postgres_url(path) && !p.as_os_str().is_empty())
    {
        anyhow::ensure!(
            folder.is_dir(),
            "no folder {} for the database {}: create it or give --db another file",
            folder.display(),
            path.display()
        );
    }
    Ok(())
}

/// Whether this user may write a SQLite database (its folder, the file and its companions:
/// `-wal`, `-shm`, `.lock`), as a start by this user must: `--check` run as the service's user
/// says it before a start fails. Returns warnings of companions that belong to another user than
/// the folder: made by root (a restore by hand, say) in a folder the service's user owns, they
/// stop the service, and root's `--check` sees that too.
fn database_rights(path: &Path) -> anyhow::Result<Vec<String>> {
    use rustix::fs::{Access, access};
    use std::os::unix::fs::MetadataExt;
    if tolem_ps::is_postgres_url(path) {
        return Ok(Vec::new());
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let companion = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let files = [
        path.to_owned(),
        companion("-wal"),
        companion("-shm"),
        companion(".lock"),
    ];
    let uid = rustix::process::geteuid().as_raw();
    for file in std::iter::once(folder).chain(files.iter().map(PathBuf::as_path)) {
        if file.symlink_metadata().is_ok() {
            anyhow::ensure!(
                access(file, Access::READ_OK | Access::WRITE_OK).is_ok(),
                "this user (uid {uid}) may not write {}: a start by this user would fail; \
                 run --check as the service's user, and give the database's folder and files to it",
                file.display()
            );
        }
    }
    let Ok(owner) = folder.metadata().map(|m| m.uid()) else {
        return Ok(Vec::new());
    };
    Ok(files
        .iter()
        .filter_map(|file| {
            let theirs = file.symlink_metadata().ok()?.uid();
            (theirs != owner).then(|| {
                format!(
                    "{} belongs to uid {theirs}, its folder {} to uid {owner}: a service running \
                     as the folder's owner cannot write it; give it to that user (chown)",
                    file.display(),
                    folder.display()
                )
            })
        })
        .collect())
}

/// Claims the database for a serving process (`tolem serve`, `tolem sandbox`) before anything
/// listens: a SQLite file is locked for this process alone (`lock_database`) until the lock
/// returned is dropped, at the end of the serving function; PostgreSQL is shared by design.
/// `tolem registers` only reads beside the server and claims nothing.
fn claim_database(path: &Path) -> anyhow::Result<Option<DatabaseLock>> {
    check_database_folder(path)?;
    if tolem_ps::is_postgres_url(path) {
        return Ok(None);
    }
    lock_database(path).map(Some)
}

/// Opens the PS on `config.database`; a database that cannot be used names the file and the flag.
pub async fn start(config: Config) -> anyhow::Result<AppState> {
    let path = config.database.clone();
    check_database_folder(&path)?;
    App::start(config, Arc::new(SystemClock))
        .await
        .map_err(|e| match e {
            StartError::Store(StoreError::Sqlite(err)) => anyhow::anyhow!(
                "cannot use the database {}: {err}; check that it is a Tolem PS database this user may write, or give --db another file",
                path.display()
            ),
            StartError::Store(StoreError::Postgres(err)) => anyhow::anyhow!(
                "cannot use the database {}: {err}; check that the PostgreSQL server is reachable \
                 and that the database exists and this user may create tables in it{}",
                tolem_ps::database_for_display(&path),
                tolem_ps::database_url_hint(&path)
            ),
            StartError::Store(StoreError::Connect(why)) => anyhow::anyhow!(
                "{why} ({}); check the URL in --db or `database`, and that the PostgreSQL server \
                 there is running and reachable from here{}",
                tolem_ps::database_for_display(&path),
                tolem_ps::database_url_hint(&path)
            ),
            other => other.into(),
        })
}

/// [`start`] for a node that serves: its `node_name` held on the database until the hold is
/// dropped, before it binds a shared port or says it started (another live node under this
/// name would take back this one's deliveries in flight at its start, and this one the
/// other's).
async fn start_node(config: Config) -> anyhow::Result<(AppState, tolem_ps::store::NodeNameHold)> {
    let app = start(config).await?;
    let hold = app.store.hold_node_name(&app.config.node_name).await?;
    Ok((app, hold))
}

/// Binds `addr`, shared with other processes if `reuse_port` (`tolem_ps::app::bind_tcp`); an
/// error names `flag`, the option that gave the address.
pub fn bind(
    addr: SocketAddr,
    flag: &str,
    reuse_port: bool,
) -> anyhow::Result<tokio::net::TcpListener> {
    tolem_ps::app::bind_tcp(addr, reuse_port).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {}",
            bind_failure(&e, &format!("give {flag} another one"))
        )
    })
}

/// Why an address could not be bound and what to do, as the operator reads it; `elsewhere`
/// says how to choose another address.
fn bind_failure(e: &std::io::Error, elsewhere: &str) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "the port is in use (another program, or a Tolem already running?); stop the other \
             program or {elsewhere}"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied; a port below 1024 needs root or the CAP_NET_BIND_SERVICE \
             capability (docs/deployment.md), or {elsewhere}"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("this machine has no such address; {elsewhere}")
        }
        _ => format!("{e}; {elsewhere}"),
    }
}

fn print_guide(config: &Config, ps: &str, mpps: &[(&'static SandboxMpp, String)]) {
    say!("\nTolem sandbox");
    say!("  payment system (PS)   http://{ps}      admin token: sandbox-admin-token");
    say!(
        "  merchant API key      test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39   (ТОО «Demo Coffee», trade point 1001)"
    );
    for (SandboxMpp { caller, customers }, url) in mpps {
        let who: Vec<String> = customers
            .iter()
            .map(|(id, _, tenge)| {
                let deposit = Amount::from_tenge(*tenge).unwrap_or_default();
                format!(
                    "{id} (opened with {})",
                    deposit.human(tolem_wire::Locale::Ru)
                )
            })
            .collect();
        say!("  MPP {caller:<17} {url}   customers {}", who.join(", "));
    }
    print_screens(config, ps, mpps);
    let bank = mpps
        .first()
        .map(|(_, url)| url.as_str())
        .unwrap_or("http://127.0.0.1:8091");
    say!(
        "
Try, in another terminal:
  tolem wallet --mpp {bank} --customer C1 pay TOLEM-STATIC-CAFE-1001
  tolem wallet --mpp {bank} --customer C1 --locale kk pay https://pay.tolem.example/pay/parking
  tolem wallet --mpp {bank} --customer C1 balance
  (with cargo: cargo run --release -- wallet …)
The README's walk-through makes a Dynamic QR with curl; docs/sandbox.md lists everything."
    );
}

/// The four screens of the console (issue 14), where a person opens them and with what.
/// `tests/browser` learns its URLs from these lines and `tests/system/sandbox.rs` checks them.
fn print_screens(config: &Config, ps: &str, mpps: &[(&'static SandboxMpp, String)]) {
    let bank = mpps.first();
    let cabinet = bank
        .and_then(|(demo, _)| config.registers.cabinet_tokens.get(demo.caller))
        .map_or("(none configured)", String::as_str);
    let key = config
        .catalog
        .organizations
        .first()
        .and_then(|o| o.api_keys.first())
        .map_or("(none configured)", String::as_str);
    let mut screens = vec![
        (
            "operator console",
            format!("http://{ps}/console/"),
            format!("token {}", config.admin_token),
        ),
        (
            "MPP cabinet",
            format!("http://{ps}/console/"),
            format!("token {cabinet}"),
        ),
        (
            "cashier",
            format!("http://{ps}/pos/"),
            format!("API key {key}"),
        ),
    ];
    if let Some((demo, url)) = bank {
        let who: Vec<&str> = demo.customers.iter().map(|(id, _, _)| *id).collect();
        screens.push((
            "wallet",
            format!("{url}/wallet/"),
            format!("customer {}", who.join(" or ")),
        ));
    }
    let width = screens
        .iter()
        .map(|(_, url, _)| url.len())
        .max()
        .unwrap_or(0);
    say!("\nIn a browser:");
    for (what, url, with) in screens {
        say!("  {what:<21} {url:<width$}   {with}");
    }
}

async fn run(mut config: Config, overrides: Overrides) -> anyhow::Result<()> {
    if let Some(db) = overrides.db.clone() {
        config.database = db;
        config.database_given = true;
    }
    warn_of_default_database(&config);
    // `reuse_port` needs PostgreSQL, from the file or from --db.
    config.check_reuse_port()?;
    let _lock = claim_database(&config.database)?;
    if !config.listeners.is_empty() {
        anyhow::ensure!(
            overrides.listen.is_none(),
            "--listen cannot be used with `listeners` in the configuration, which give each listener its address; drop --listen or change listeners[].address"
        );
        return run_listeners(config).await;
    }
    if let Some(listen) = overrides.listen {
        config.listen = listen;
    }
    let database = config.database.clone();
    let (listener, app) = if config.reuse_port {
        // A node joining a shared port binds once its store is open: the kernel gives a bound
        // socket its share of new connections at once, and they would wait for the store, or
        // be reset if it could not open.
        let (app, hold) = start_node(config).await?;
        (bind(app.config.listen, "--listen", true)?, (app, hold))
    } else {
        // Alone on its port, a port in use is found before any database is made.
        let listener = bind(config.listen, "--listen", false)?;
        (listener, start_node(config).await?)
    };
    let (app, _node_name) = app;
    let addr = listener.local_addr()?;
    // The first line on stdout says where the server is (tests and scripts read it).
    say!("listening on http://{addr}");
    tracing::info!(version = env!("CARGO_PKG_VERSION"), node = %app.config.node_name, %addr, database = %tolem_ps::database_for_display(&database), sandbox = app.config.sandbox, "Tolem PS started");
    warn_of_r2_r3_refused(&app.config);
    warn_of_nothing_to_serve(&app);
    warn_of_r3_unlisted(&app);
    warn_of_mpps_without_tunnel(&app.config, &app.catalog.get(), addr);
    warn_of_sandbox_credentials(&app.config, &app.catalog.get());
    let node = app.config.node_name.clone();
    tolem_ps::serve(listener, app, shutdown_signal()).await?;
    tracing::info!(%node, "Tolem PS stopped");
    Ok(())
}

/// Binds each of `config.listeners` with its TLS files read; an error names the listener and the
/// file.
async fn open_listeners(config: &Config) -> anyhow::Result<Vec<Listener>> {
    let mut listeners = Vec::new();
    for (index, listener) in config.listeners.iter().enumerate() {
        let opened = Listener::open(index, listener, config.reuse_port, &config.public_url)
            .await
            .map_err(|e| match e {
                ListenerError::Bind {
                    index,
                    address,
                    source,
                } => anyhow::anyhow!(
                    "cannot listen on {address}: {}",
                    bind_failure(&source, &format!("change listeners[{index}].address"))
                ),
                tls @ ListenerError::Tls { .. } => anyhow::anyhow!("configuration: {tls}"),
            })?;
        listeners.push(opened);
    }
    Ok(listeners)
}

/// `tolem serve` with `listeners` (DECISIONS 41): each bound with its TLS files read (an error
/// names the listener and the file), then one line per listener on stdout.
async fn run_listeners(config: Config) -> anyhow::Result<()> {
    let database = config.database.clone();
    // As in `run`: joining a shared port waits for the store; alone, ports are checked first.
    let (listeners, (app, _node_name)) = if config.reuse_port {
        let (app, hold) = start_node(config).await?;
        (open_listeners(&app.config).await?, (app, hold))
    } else {
        let listeners = open_listeners(&config).await?;
        (listeners, start_node(config).await?)
    };
    let mut urls = Vec::new();
    for listener in &listeners {
        urls.push((listener.url()?, listener.surface_names()));
    }
    // The first line says where the first listener is, in the same form as with one listener
    // (tests and scripts read it); then each listener with what it serves.
    if let Some((first, _)) = urls.first() {
        say!("listening on {first}");
    }
    for (url, surfaces) in &urls {
        say!("  {url} ({surfaces})");
        tracing::info!(%url, %surfaces, "listening");
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), node = %app.config.node_name, database = %tolem_ps::database_for_display(&database), sandbox = app.config.sandbox, "Tolem PS started");
    warn_of_r2_r3_refused(&app.config);
    warn_of_nothing_to_serve(&app);
    warn_of_r3_unlisted(&app);
    warn_of_mpps_without_tunnel(&app.config, &app.catalog.get(), app.config.listen);
    warn_of_sandbox_credentials(&app.config, &app.catalog.get());
    let node = app.config.node_name.clone();
    tolem_ps::serve_listeners(listeners, app, shutdown_signal()).await?;
    tracing::info!(%node, "Tolem PS stopped");
    Ok(())
}

/// Private keys, and a configuration file that holds secrets, which every user of the machine
/// may read or write: each is said, at a start and by `--check`, and their number returned.
/// Readable by a group is the usual way to give a file to the service's user (`root:tolem`,
/// mode 640), and is not said. The sandbox's own secrets are published, so its configuration
/// file is not said.
fn warn_of_secrets_open_to_all(file: Option<&Path>, config: &Config) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let open_to_all = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|meta| meta.permissions().mode() & 0o777)
            .filter(|mode| mode & 0o006 != 0)
    };
    let mut said = 0;
    if let Some(path) = file.filter(|_| !config.sandbox)
        && let Some(mode) = open_to_all(path)
    {
        let held = std::fs::read_to_string(path)
            .map(|text| tolem_ps::secrets_in_file(&text))
            .unwrap_or_default();
        if !held.is_empty() {
            tracing::warn!(
                "{} holds {} and every user of this machine may read or change it (mode {mode:o}): \
                 `chmod 640` it with the service's group (or 600 with the service's user as its \
                 owner), or give the secrets by the environment",
                path.display(),
                held.join(", ")
            );
            said += 1;
        }
    }
    let listeners = config
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(index, listener)| {
            let tls = listener.tls.as_ref()?;
            Some((format!("listeners[{index}].tls.key"), tls.key.as_path()))
        });
    let client = config
        .outgoing
        .client_key
        .as_deref()
        .map(|key| ("outgoing.client_key".to_owned(), key));
    for (setting, key) in listeners.chain(client) {
        if let Some(mode) = open_to_all(key) {
            tracing::warn!(
                "{setting}: every user of this machine may read or change the private key {} (mode \
                 {mode:o}): `chmod 640` it with the service's group (or 600 with the service's \
                 user as its owner)",
                key.display()
            );
            said += 1;
        }
    }
    said
}

/// A database left at its default (`tolem.db` in the working folder) outside the sandbox: say
/// which file that is, since a node meant for PostgreSQL whose `TOLEM_DATABASE` was lost (an
/// environment file not read, an unquoted `&` in it) would serve from it unnoticed.
fn warn_of_default_database(config: &Config) -> bool {
    if config.sandbox || config.database_given {
        return false;
    }
    let folder = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|_| "the working folder".to_owned());
    tracing::warn!(
        "database: set neither in the configuration nor by TOLEM_DATABASE or --db, so the \
         default is used: {} in {folder}; set it, or check that the environment file was read \
         (docs/deployment.md, \"The database\")",
        config.database.display()
    );
    true
}

/// DECISIONS 41 knows r2 and r3 by their client certificate alone; a PS with no way to receive
/// one refuses them all, which the operator should know, whichever way it listens.
fn warn_of_r2_r3_refused(config: &Config) -> bool {
    let refused =
        !config.sandbox && !tolem_ps::merchant_api::identity::receives_certificates(config);
    if refused {
        tracing::warn!(
            "r2 and r3 refuse every call (-10000): they are known by a client certificate alone, \
             and no merchant API listener asks for one (listeners[].tls.client_ca) and \
             client_identity.trusted_proxies is empty; r1 works on API keys \
             (docs/merchant-api.md, Authentication)"
        );
    }
    refused
}

/// An MPP without a tunnel (`[mpps.ipsec]`) is known by its `X-Caller-Name` alone: wherever the
/// MPP API is reachable beyond this machine, anyone who reaches it may speak as that MPP (the
/// operator's network is then all that keeps strangers out), which the operator should know.
/// `listen` is the single listener's address when `listeners` is empty. The sandbox, on its own
/// machine, is left alone.
fn warn_of_mpps_without_tunnel(
    config: &Config,
    catalog: &tolem_ps::catalog::Catalog,
    listen: std::net::SocketAddr,
) -> bool {
    if config.sandbox {
        return false;
    }
    let exposed: Vec<std::net::SocketAddr> = if config.listeners.is_empty() {
        vec![listen]
    } else {
        config
            .listeners
            .iter()
            .filter(|l| l.surfaces.contains(&tolem_ps::SurfaceName::Mpp))
            .map(|l| l.address)
            .collect()
    };
    let exposed: Vec<String> = exposed
        .into_iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.to_string())
        .collect();
    let unbound = catalog.mpps_without_tunnel();
    if exposed.is_empty() || unbound.is_empty() {
        return false;
    }
    let names: Vec<&str> = unbound.iter().map(|n| n.as_str()).collect();
    tracing::warn!(
        mpps = %names.join(", "),
        mpp_api = %exposed.join(", "),
        "these MPPs have no [mpps.ipsec]: their X-Caller-Name is taken from any address that \
         reaches the MPP API, so anyone who reaches it can speak as them; bind each to its \
         tunnel's inner addresses (docs/ipsec.md)"
    );
    true
}

/// The sandbox's credentials are published (`docs/sandbox.md`): outside the sandbox, each one the
/// PS would take is the first thing a stranger tries.
fn warn_of_sandbox_credentials(config: &Config, catalog: &tolem_ps::catalog::Catalog) -> bool {
    if config.sandbox {
        return false;
    }
    let found = catalog.sandbox_credentials(config);
    if !found.is_empty() {
        tracing::warn!(
            credentials = %found.join("; "),
            "the sandbox's published credentials (docs/sandbox.md) open this PS, which is not a \
             sandbox: replace each with a secret of its own"
        );
    }
    !found.is_empty()
}

/// A PS that knows no MPP and has no admin API to be told of one (started without a
/// configuration file, say) answers every MPP with `UNKNOWN_SOURCE`: the operator should know.
fn warn_of_nothing_to_serve(app: &AppState) {
    if app.catalog.get().mpps.is_empty() && app.config.admin_token.is_empty() {
        tracing::warn!(
            "no MPP is known and the admin API is off (no admin_token): nothing can be paid \
             here; give the operator data and settings in a configuration file (--config or \
             TOLEM_CONFIG, docs/configuration.md)"
        );
    }
}

/// Outside the sandbox r3 takes calls only from an organization's listed addresses (DECISIONS
/// 28): an organization known by a certificate (r2 and r3) that lists none takes no r3 call, which
/// the operator should know at start, the more after an upgrade that began to refuse them.
fn warn_of_r3_unlisted(app: &AppState) {
    if app.config.sandbox {
        return;
    }
    let catalog = app.catalog.get();
    let mut unlisted: Vec<&str> = catalog
        .organizations
        .values()
        .filter(|o| !o.client_certificates.is_empty() && o.r3_allowed_ips.is_empty())
        .map(|o| o.bin.as_str())
        .collect();
    if unlisted.is_empty() {
        return;
    }
    unlisted.sort_unstable();
    let count = unlisted.len();
    let named = unlisted
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if count > 10 {
        format!(" and {} more", count - 10)
    } else {
        String::new()
    };
    tracing::warn!(
        "{count} organization(s) with client certificates list no r3_allowed_ips and take no r3 \
         call (-10000): {named}{more}; list their partners' addresses (docs/merchant-api.md, \
         r3's source addresses)"
    );
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
