//! What a person sees when a `tolem` command fails: one or two lines naming the cause and the
//! fix, never a backtrace (`RUST_BACKTRACE=1` is set here, as on many machines) and never a
//! "Caused by" chain; and a command that reads a database never leaves an empty one behind.

use std::process::{Command, Stdio};

/// Runs `tolem args` with `env`; returns (exit success, stderr).
fn tolem(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("tolem runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A failure told in one or two lines that name `cause` and `fix`.
fn explained(args: &[&str], env: &[(&str, &str)], cause: &str, fix: &str) {
    let (ok, err) = tolem(args, env);
    assert!(!ok, "{args:?} must fail");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        (1..=2).contains(&lines.len()),
        "{args:?}: one or two lines, not:\n{err}"
    );
    assert!(lines[0].starts_with("error: "), "{err}");
    for noise in ["backtrace", "Caused by", "panicked", "RUST_BACKTRACE"] {
        assert!(!err.contains(noise), "{args:?}: {noise} in\n{err}");
    }
    assert!(
        err.contains(cause),
        "{args:?}: the cause `{cause}` in\n{err}"
    );
    assert!(err.contains(fix), "{args:?}: the fix `{fix}` in\n{err}");
}

#[test]
fn an_unknown_variable_is_named_and_the_tools_own_are_not_settings() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("ps.db");
    let db = db.to_str().expect("UTF-8");
    explained(
        &["serve", "--listen", "127.0.0.1:0", "--db", db],
        &[("TOLEM_FOO", "1")],
        "TOLEM_FOO",
        "unset it",
    );
    explained(
        &["serve", "--listen", "127.0.0.1:0", "--db", db],
        &[("TOLEM_PAYMENTS__CONFIRM_WINDOW_S", "soon")],
        "payments.confirm_window_s",
        "unset it",
    );
    // The variable the register benchmark's docs tell people to set reaches `tolem registers`
    // too; it is not taken for a setting: the command gets past the configuration and fails on
    // the missing database, as it should.
    explained(
        &[
            "registers",
            "monthly",
            "--mpp",
            "demobank",
            "--month",
            "2026-11",
            "--db",
            db,
            "--out",
            ".",
        ],
        &[("TOLEM_BENCH_OPS", "100000")],
        "no database",
        "--db",
    );
    assert!(!std::path::Path::new(db).exists(), "no database was made");
}

#[test]
fn a_bad_configuration_file_is_one_line_with_its_place() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("ps.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\n[payments\n").expect("written");
    explained(
        &["serve", "--config", file.to_str().expect("UTF-8")],
        &[],
        "line 2",
        "ps.toml",
    );
}

#[test]
fn a_shared_port_on_a_sqlite_file_is_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("ps.db");
    let db = db.to_str().expect("UTF-8");
    explained(
        &["serve", "--listen", "127.0.0.1:0", "--db", db],
        &[("TOLEM_REUSE_PORT", "true")],
        "reuse_port",
        "--db postgres://",
    );
    assert!(!std::path::Path::new(db).exists(), "no database was made");
}

#[tokio::test]
async fn a_second_ps_on_one_sqlite_file_is_refused_until_the_first_is_gone() {
    if !crate::harness::sqlite_only("the lock of a SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    std::fs::write(&config, crate::harness::SANDBOX_TOML).expect("config written");
    let db = dir.path().join("ps.db");
    let first = crate::durability::Child::start(&config, &db);
    let db_arg = db.to_str().expect("UTF-8");
    let config_arg = config.to_str().expect("UTF-8");
    let second = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config_arg,
        "--db",
        db_arg,
    ];
    explained(
        &second,
        &[],
        &format!("in use by another Tolem process (process {})", first.pid()),
        "--db another file",
    );
    // The first one still serves.
    let ping: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/r1/v01/health/ping", first.url))
        .header("api-key", crate::harness::API_KEY)
        .send()
        .await
        .expect("the first PS answers")
        .json()
        .await
        .expect("json");
    assert_eq!(ping["StatusCode"], 0, "{ping}");
    // The sandbox on the same file is refused the same way.
    explained(
        &[
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--mpps-port",
            "0",
            "--db",
            db_arg,
        ],
        &[],
        "in use by another Tolem process",
        "--db another file",
    );
    // `tolem registers` reads beside the server: not refused.
    let out = dir.path().join("registers");
    let out_arg = out.to_str().expect("UTF-8");
    let made = [
        "registers",
        "daily",
        "--mpp",
        "demobank",
        "--date",
        "2026-01-05",
        "--format",
        "csv",
        "--config",
        config_arg,
        "--db",
        db_arg,
        "--out",
        out_arg,
    ];
    let (ok, err) = tolem(&made, &[]);
    assert!(ok, "tolem registers beside the server: {err}");
    assert!(out.join("demobank-daily-2026-01-05.csv").exists(), "{err}");
    // Killed (no shutdown code runs), it leaves the file to the next one.
    first.kill();
    let next = crate::durability::Child::start(&config, &db);
    assert!(next.url.starts_with("http://127.0.0.1:"), "{}", next.url);
}

#[test]
fn a_node_joining_a_shared_port_opens_its_database_before_it_binds() {
    // A port taken without SO_REUSEPORT, and no PostgreSQL server at the URL.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let listen = format!("127.0.0.1:{}", taken.local_addr().expect("addr").port());
    let unreachable = "postgres://tolem@127.0.0.1:1/tolem";
    let serve = ["serve", "--listen", &listen, "--db", unreachable];
    // Alone on its port, the port is checked first.
    explained(&serve, &[], "the port is in use", "--listen");
    // Joining a shared port, the database is opened first: the kernel would hand a socket bound
    // any earlier its share of connections while the store could not answer them.
    explained(
        &serve,
        &[("TOLEM_REUSE_PORT", "true")],
        "cannot connect to the database",
        "PostgreSQL server there is running and reachable",
    );
}

#[test]
fn a_port_in_use_names_the_flag_that_moves_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("sandbox.db");
    let db = db.to_str().expect("UTF-8");
    explained(
        &[
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--mpps-port",
            &port,
            "--db",
            db,
        ],
        &[],
        "in use",
        "--mpps-port",
    );
    explained(
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            db,
        ],
        &[],
        "in use",
        "--listen",
    );
}

#[test]
fn reading_a_database_that_is_not_there_creates_none() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("bank.db");
    let register = dir.path().join("register.csv");
    std::fs::write(&register, "").expect("written");
    // `--db` after the subcommand, as docs/mpp-kit.md writes it.
    explained(
        &[
            "mpp",
            "reconcile",
            "--register",
            register.to_str().expect("UTF-8"),
            "--date",
            "2026-11-26",
            "--db",
            missing.to_str().expect("UTF-8"),
        ],
        &[],
        "no MPP database",
        "--db",
    );
    assert!(!missing.exists(), "reconcile made no database");
    let ps = dir.path().join("ps.db");
    explained(
        &[
            "registers",
            "daily",
            "--mpp",
            "demobank",
            "--date",
            "2026-11-26",
            "--db",
            ps.to_str().expect("UTF-8"),
            "--out",
            dir.path().to_str().expect("UTF-8"),
        ],
        &[],
        "no database",
        "--db",
    );
    assert!(!ps.exists(), "registers made no database");
    explained(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "/nonexistent-folder/ps.db",
        ],
        &[],
        "/nonexistent-folder",
        "--db",
    );
}

#[test]
fn a_wallet_without_its_bank_says_how_to_reach_one() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", free.local_addr().expect("addr"));
    drop(free);
    explained(
        &["wallet", "--mpp", &url, "balance"],
        &[],
        &url,
        "--mpp URL",
    );
}

#[test]
fn tolem_log_format_json_writes_one_json_object_a_line() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["serve", "--check", "--db"])
        .arg(dir.path().join("ps.db"))
        .env("TOLEM_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("tolem runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"] == "outgoing TLS: trusted roots loaded"
            && l["fields"]["system"].is_u64()),
        "{stderr}"
    );
    // The variable is the CLI's, not a setting: the configuration passed over it.
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("configuration OK"),
        "{stderr}"
    );
}

/// The line of `tolem serve` (started with `args`, on a database of its own) that contains
/// `needle` among what it logs at start; the PS is stopped once it is seen.
fn said_at_start(args: &[&str], needle: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("tolem.db");
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().expect("UTF-8"),
    ];
    let args: Vec<&str> = serve.iter().chain(args).copied().collect();
    let stderr = crate::harness::Output::Stderr;
    crate::harness::tolem_until(&args, &[("RUST_LOG", "warn")], stderr, |line| {
        line.contains(needle)
    })
    .1
}

/// A PS started without a configuration file knows no MPP and has no admin API to learn of
/// one: it runs (a PostgreSQL node may get its data from the database), and says that nothing
/// can be paid there and what to give it.
#[test]
fn a_ps_with_nothing_to_serve_says_so_at_start() {
    let said = said_at_start(&[], "no MPP is known").expect("a warning of nothing to serve");
    assert!(said.contains("--config or TOLEM_CONFIG"), "{said}");
}

/// An organization known by its certificate that lists no r3 addresses takes no r3 call
/// outside the sandbox (DECISIONS 28): the start names it.
#[test]
fn organizations_without_r3_addresses_are_named_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("tolem.toml");
    std::fs::write(
        &config,
        format!(
            "caller_name = \"tolem\"\n\n[[organizations]]\nbin = \"990340001234\"\n\
             name = \"ТОО «Partner»\"\nclient_certificates = [\"{}\"]\n\n\
             [[organizations]]\nbin = \"990340005678\"\nname = \"ТОО «Listed»\"\n\
             client_certificates = [\"{}\"]\nr3_allowed_ips = [\"203.0.113.5\"]\n",
            "ab".repeat(32),
            "cd".repeat(32)
        ),
    )
    .expect("written");
    let config = config.to_str().expect("UTF-8");
    let said = said_at_start(&["--config", config], "take no r3 call")
        .expect("a warning naming the organization");
    assert!(
        said.contains("1 organization(s)") && said.contains("990340001234"),
        "{said}"
    );
    assert!(!said.contains("990340005678"), "{said}");
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Real, effective, saved, file system: the effective one decides.
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `tolem serve --check --db DB`, as this user or, with `as_uid`, as that one (`setpriv`):
/// (success, stdout and stderr), or `None` when that user cannot run the binary here.
fn check_db(db: &std::path::Path, as_uid: Option<u32>) -> Option<(bool, String)> {
    let mut command = match as_uid {
        None => Command::new(env!("CARGO_BIN_EXE_tolem")),
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(env!("CARGO_BIN_EXE_tolem"));
            c
        }
    };
    let out = command
        .args(["serve", "--check", "--db"])
        .arg(db)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // setpriv's own failure to run the binary (its folders closed to that user): not the test's.
    if as_uid.is_some() && matches!(out.status.code(), Some(126 | 127)) {
        return None;
    }
    Some((out.status.success(), said))
}

#[test]
fn check_says_when_the_service_could_not_write_the_database() {
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("data");
    std::fs::create_dir(&folder).expect("folder");
    let db = folder.join("ps.db");
    std::fs::write(&db, b"").expect("an empty database");
    let warnings = |said: &str| {
        said.find(" warning(s) above").map_or(0, |end| {
            let count = said[..end].rsplit(' ').next().unwrap_or_default();
            count.parse::<usize>().expect("a count")
        })
    };
    let (ok, said) = check_db(&db, None).expect("tolem runs");
    assert!(ok && !said.contains("belongs to uid"), "{said}");
    let before = warnings(&said);
    if effective_uid() != Some(0) {
        // A folder this user may not write: a start would fail, and --check says so.
        let read_only =
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o555);
        std::fs::set_permissions(&folder, read_only).expect("chmod");
        let (ok, said) = check_db(&db, None).expect("tolem runs");
        assert!(!ok && said.contains("may not write"), "{said}");
        return;
    }
    // Root made the file in a folder the service's user owns (a restore by hand, say).
    let chown = Command::new("chown")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .arg(&folder)
        .status()
        .expect("chown runs");
    assert!(chown.success());
    let (ok, said) = check_db(&db, None).expect("tolem runs");
    assert!(ok, "{said}");
    assert!(
        said.contains("ps.db belongs to uid 0") && said.contains(&format!("to uid {NOBODY}")),
        "{said}"
    );
    assert_eq!(warnings(&said), before + 1, "{said}");
    // Run as that user, --check finds what a start would: it may not write the file.
    let open = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open).expect("chmod");
    match check_db(&db, Some(NOBODY)) {
        Some((ok, said)) => assert!(!ok && said.contains("may not write"), "{said}"),
        None => eprintln!("uid {NOBODY} cannot run the binary here: its run as that user skipped"),
    }
}

/// A database set nowhere is the default file in the working folder, and `--check` (as a start)
/// says so, naming the folder: a node meant for PostgreSQL whose `TOLEM_DATABASE` was lost
/// would otherwise serve from it unnoticed. An empty one is refused.
#[test]
fn a_database_left_at_its_default_is_said_and_an_empty_one_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let check = |env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args(["serve", "--check"])
            .current_dir(dir.path())
            .env_remove("TOLEM_DATABASE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("tolem runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = check(&[]);
    assert!(ok, "{err}");
    assert!(
        err.contains("default is used: tolem.db in")
            && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
    assert!(out.contains("warning(s) above"), "{out}");
    let (ok, _, err) = check(&[("TOLEM_DATABASE", "")]);
    assert!(!ok);
    assert!(
        err.contains("environment variable TOLEM_DATABASE (setting `database`): empty"),
        "{err}"
    );
    // Given, nothing is said.
    let (ok, _, err) = check(&[("TOLEM_DATABASE", "ps.db")]);
    assert!(ok, "{err}");
    assert!(!err.contains("default is used"), "{err}");
}

#[test]
fn a_postgresql_key_value_string_is_refused_without_its_password_or_a_file() {
    // Taken for a file's name, it gave a node meant to share PostgreSQL a SQLite file of its own.
    let dir = tempfile::tempdir().expect("dir");
    let db = "host=127.0.0.1 port=1 user=tolem password=KVSECRET dbname=tolem";
    let folder = dir.path().to_str().expect("UTF-8");
    for args in [
        vec!["serve", "--check", "--db", db],
        vec!["serve", "--listen", "127.0.0.1:0", "--db", db],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args(&args)
            .current_dir(folder)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .expect("tolem runs");
        let said = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?}: {said}");
        assert!(said.contains("postgres://USER:PASSWORD@"), "{said}");
        assert!(!said.contains("KVSECRET"), "{said}");
    }
    let made: Vec<_> = std::fs::read_dir(dir.path()).expect("the folder").collect();
    assert!(made.is_empty(), "{made:?}");
}

/// Operator data the file says otherwise than the database, after a start set it down (an MPP's
/// `refund_url` edited in the file): the database's is in force, and a start and `--check` name
/// each such item and setting, so refunds do not go on to the old address unnoticed.
#[test]
fn file_data_the_database_holds_otherwise_is_named_at_start_and_by_check() {
    let dir = tempfile::tempdir().expect("dir");
    let (config, db) = (dir.path().join("ps.toml"), dir.path().join("ps.db"));
    std::fs::write(&config, crate::harness::SANDBOX_TOML).expect("written");
    let (config, db) = (config.to_str().expect("UTF-8"), db.to_str().expect("UTF-8"));
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config,
        "--db",
        db,
    ];
    let env = [("RUST_LOG", "warn"), ("TOLEM_SANDBOX", "false")];
    let differs = "mpps demobank (refund_url)";
    // A start says this after it has set down the operator data.
    let started = "r2 and r3 refuse every call";
    let (said, first) =
        crate::harness::tolem_until(&serve, &env, crate::harness::Output::Stderr, |line| {
            line.contains(started)
        });
    assert!(first.is_some(), "{said:?}");
    assert!(
        !said
            .iter()
            .any(|l| l.contains("operator data in the configuration")),
        "a first start adds it all: {said:?}"
    );
    let moved = crate::harness::SANDBOX_TOML.replacen(
        "http://127.0.0.1:8091/refund",
        "http://10.0.0.5/refund",
        1,
    );
    assert_ne!(
        moved,
        crate::harness::SANDBOX_TOML,
        "demobank's refund_url is where it was"
    );
    std::fs::write(config, moved).expect("written");
    let (ok, said) = tolem(&["serve", "--check", "--config", config, "--db", db], &env);
    assert!(
        ok && said.contains(differs) && said.contains("the database's is in force"),
        "{said}"
    );
    let (_, at_start) =
        crate::harness::tolem_until(&serve, &env, crate::harness::Output::Stderr, |line| {
            line.contains(differs)
        });
    assert!(at_start.is_some(), "a start names it too");
}
