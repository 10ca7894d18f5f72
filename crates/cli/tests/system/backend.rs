//! Which database this test binary runs the PS on, a fresh database per test, and a reader of
//! the PS's tables on either backend.
//!
//! The system suite is built twice from the same sources: `system` runs every test on a SQLite
//! file in the test's temp dir, `system_postgres` (tests/system_postgres.rs) on a new PostgreSQL
//! database (`CREATE DATABASE t_…`) of a cluster: the one `TOLEM_TEST_POSTGRES` names (an admin
//! URL, as .ci/run sets it), or else one this process starts with scripts/test-postgres and a
//! watchdog stops once the process is gone, however it ends. A PostgreSQL that is missing is
//! installed (scripts/install-test-packages, as root) or named as missing: the PostgreSQL pass
//! fails, it is never skipped in silence.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The database a test binary puts the PS on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// This binary's backend: `system_postgres` runs on PostgreSQL, `system` on SQLite.
pub fn backend() -> Backend {
    if env!("CARGO_CRATE_NAME") == "system_postgres" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// True on SQLite. On PostgreSQL it says on stderr that the test is about SQLite (`why`) and
/// returns false, so that the test returns at once: `if !sqlite_only("…") { return; }`.
pub fn sqlite_only(why: &str) -> bool {
    if backend() == Backend::Sqlite {
        return true;
    }
    eprintln!("SQLite only, not run on PostgreSQL: {why}");
    false
}

/// A database for one PS that no other test uses, as `config.database` takes it: on SQLite a
/// file in `dir` (made by the PS), on PostgreSQL a new database's URL.
pub fn fresh_database(dir: &Path) -> PathBuf {
    match backend() {
        Backend::Sqlite => dir.join("ps.db"),
        Backend::Postgres => {
            let admin = cluster();
            let name = database_name();
            on_cluster(&admin, &format!("CREATE DATABASE {name}"));
            PathBuf::from(with_database(&admin, &name))
        }
    }
}

/// True when `database` (as `config.database` holds it) is a PostgreSQL URL.
pub fn is_postgres_url(database: &Path) -> bool {
    let text = database.to_string_lossy();
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// On PostgreSQL, takes a test's database away from its PS (`cut`: no new connection allowed,
/// every open one ended) or gives it back, as an outage of the database would.
pub fn cut_off_database(database: &Path, cut: bool) {
    assert!(is_postgres_url(database), "a PostgreSQL database");
    let text = database.to_string_lossy();
    let base = text.split('?').next().unwrap_or_default();
    let name = base.rsplit('/').next().unwrap_or_default().to_owned();
    let sql = if cut {
        format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
    } else {
        format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
    };
    on_cluster(&cluster(), &sql);
}

/// Runs `sql` on the test cluster as its admin (`admin`, the cluster's URL).
fn on_cluster(admin: &str, sql: &str) {
    on_plain_thread(move || {
        let mut client = postgres::Client::connect(admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("the test cluster {admin} takes connections: {e}"));
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql} on {admin}: {}", pg_error(&e)));
    });
}

/// `t_<seconds>_<pid>_<n>`: unique in this process, and across runs on a cluster that stays.
fn database_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t_{seconds}_{}_{n}", std::process::id())
}

/// `admin` with its database replaced by `name` (user, host, port and parameters kept).
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let authority = base.find("://").map_or(0, |at| at + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |at| authority + at);
    format!("{}/{name}{query}", &base[..path])
}

/// The admin URL of the cluster the tests' databases are made on; the first call of the
/// process starts one when `TOLEM_TEST_POSTGRES` names none. A failure is kept, so that every
/// test fails with the same message instead of trying again.
fn cluster() -> String {
    static CLUSTER: OnceLock<Result<String, String>> = OnceLock::new();
    let found = CLUSTER.get_or_init(|| match std::env::var("TOLEM_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
        _ => start_cluster(),
    });
    match found {
        Ok(url) => url.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

/// PostgreSQL's server binaries are where scripts/test-postgres looks for them.
fn postgres_installed() -> bool {
    let versioned = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .any(|dir| dir.path().join("bin/initdb").exists())
        })
        .unwrap_or(false);
    versioned
        || Command::new("sh")
            .args(["-c", "command -v initdb"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

const HOW_TO_INSTALL: &str = "the system suite's PostgreSQL pass (--test system_postgres) needs PostgreSQL: \
     install it (Debian: `apt-get install postgresql`, which scripts/install-test-packages does as root) \
     or set TOLEM_TEST_POSTGRES to the admin URL of a cluster of yours \
     (postgres://USER@HOST:PORT/postgres, a user that may CREATE DATABASE)";

/// How many ports are tried before the cluster is given up (a port drawn can be taken between
/// the draw and the server's bind).
const CLUSTER_START_ATTEMPTS_MAX: u32 = 5;

/// Starts this process's own cluster in a new temp dir on a free port, with a watchdog that
/// stops it and removes the dir once this process is gone.
fn start_cluster() -> Result<String, String> {
    if !postgres_installed() {
        // Quiet when it has nothing to do; its own message says what failed otherwise.
        let _ = Command::new("bash")
            .arg(scripts().join("install-test-packages"))
            .stdin(Stdio::null())
            .status();
        if !postgres_installed() {
            return Err(HOW_TO_INSTALL.to_owned());
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("tolem-test-postgres-")
        .tempdir()
        .map_err(|e| format!("a temp dir for the test cluster: {e}"))?
        // scripts/test-postgres stop removes it, once the server is down.
        .keep();
    watch(&dir)?;
    let script = scripts().join("test-postgres");
    let mut failed = String::new();
    for _ in 0..CLUSTER_START_ATTEMPTS_MAX {
        let port = free_port()?;
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{} runs: {e}", script.display()))?;
        if out.status.success() {
            let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            eprintln!(
                "the PostgreSQL pass runs on its own cluster {url} in {}",
                dir.display()
            );
            return Ok(url);
        }
        failed = String::from_utf8_lossy(&out.stderr).into_owned();
        if !failed.contains("did not start on port") {
            break;
        }
    }
    Err(format!(
        "the test cluster did not start: {failed}\n{HOW_TO_INSTALL}"
    ))
}

/// A port nothing listens on now: the kernel's pick for port 0, given back.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("a free port: {e}"))
}

/// A child that waits for end of file on its stdin, then runs `scripts/test-postgres stop DIR`.
/// Its stdin is a pipe whose other end only this process holds (the standard library opens it
/// close-on-exec, so nothing this process spawns inherits it), so the end of file comes when
/// this process ends, whether it returns, panics or is killed. Its own process group keeps a ^C
/// at the terminal from ending it before it has stopped the cluster.
fn watch(dir: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt as _;
    static WATCHDOG: Mutex<Option<Child>> = Mutex::new(None);
    let child = Command::new("bash")
        .args(["-c", r#"cat >/dev/null; exec bash "$0" stop "$1""#])
        .arg(scripts().join("test-postgres"))
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("the test cluster's watchdog starts: {e}"))?;
    // Held in a static, never dropped: the pipe stays open for as long as the process lives.
    *WATCHDOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
    Ok(())
}

/// Runs `work` on a thread of its own: the `postgres` client runs a runtime of its own, which
/// cannot be entered from a tokio worker thread (every `#[tokio::test]` runs on one).
fn on_plain_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A value a query of [`PsBooks`] takes, on either backend.
pub trait BookArg: rusqlite::ToSql + postgres::types::ToSql + Sync {}
impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync + ?Sized> BookArg for T {}

/// One value read, whatever the backend's column type.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// One row read by [`PsBooks::rows`].
#[derive(Clone, Debug)]
pub struct BookRow(pub Vec<Cell>);

impl BookRow {
    pub fn int(&self, at: usize) -> i64 {
        self.opt_int(at)
            .unwrap_or_else(|| panic!("column {at} is NULL in {self:?}"))
    }

    pub fn opt_int(&self, at: usize) -> Option<i64> {
        match &self.0[at] {
            Cell::Int(v) => Some(*v),
            Cell::Null => None,
            Cell::Text(_) => panic!("column {at} is text in {self:?}"),
        }
    }

    pub fn text(&self, at: usize) -> String {
        match &self.0[at] {
            Cell::Text(v) => v.clone(),
            other => panic!("column {at} is {other:?}, not text, in {self:?}"),
        }
    }
}

/// The PS's own tables, read (or, for a test that fakes an old row, written) behind its back on
/// whichever backend it runs: what a test checks against what the APIs said. SQL is written
/// once with `?N` placeholders and must be SQL both accept (`COALESCE`, `CAST(SUM(x) AS
/// BIGINT)`); on PostgreSQL the placeholders become `$N`.
pub struct PsBooks {
    conn: Conn,
}

enum Conn {
    Sqlite(rusqlite::Connection),
    // An Option so that Drop can hand the client to a plain thread.
    Postgres(Option<Box<Mutex<postgres::Client>>>),
}

impl PsBooks {
    /// The PS's database `db` (as `config.database` holds it), read only where the backend can say so.
    pub fn open(db: &Path) -> PsBooks {
        PsBooks::open_with(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    /// The same, for a test that changes a row the PS wrote.
    pub fn open_for_writing(db: &Path) -> PsBooks {
        PsBooks::open_with(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    fn open_with(db: &Path, flags: rusqlite::OpenFlags) -> PsBooks {
        let conn = if is_postgres_url(db) {
            let url = db.to_string_lossy().into_owned();
            let client = on_plain_thread(move || {
                postgres::Client::connect(&url, postgres::NoTls)
                    .unwrap_or_else(|e| panic!("the PS's database {url} opens: {e}"))
            });
            Conn::Postgres(Some(Box::new(Mutex::new(client))))
        } else {
            let conn = rusqlite::Connection::open_with_flags(db, flags)
                .unwrap_or_else(|e| panic!("the PS's database {} opens: {e}", db.display()));
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .expect("a busy timeout");
            Conn::Sqlite(conn)
        };
        PsBooks { conn }
    }

    /// Every row `sql` selects.
    pub fn rows(&self, sql: &str, args: &[&dyn BookArg]) -> Vec<BookRow> {
        match &self.conn {
            Conn::Sqlite(conn) => {
                let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let columns = stmt.column_count();
                let params = rusqlite::params_from_iter(args.iter().map(|a| {
                    let a: &dyn rusqlite::ToSql = *a;
                    a
                }));
                let rows = stmt
                    .query_map(params, |row| {
                        (0..columns)
                            .map(|at| sqlite_cell(row, at))
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.map(|row| BookRow(row.unwrap_or_else(|e| panic!("{sql}: {e}"))))
                    .collect()
            }
            Conn::Postgres(client) => {
                let sql = dollar_placeholders(sql);
                let client = client.as_ref().expect("open until dropped");
                on_plain_thread(|| {
                    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
                        .iter()
                        .map(|a| {
                            let a: &(dyn postgres::types::ToSql + Sync) = *a;
                            a
                        })
                        .collect();
                    let mut client = client.lock().unwrap_or_else(|e| e.into_inner());
                    let rows = client
                        .query(&sql, &params)
                        .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)));
                    rows.iter()
                        .map(|row| {
                            BookRow(
                                (0..row.len())
                                    .map(|at| postgres_cell(row, at, &sql))
                                    .collect(),
                            )
                        })
                        .collect()
                })
            }
        }
    }

    /// The one row `sql` selects (a test's assertion fails when there is none).
    pub fn one(&self, sql: &str, args: &[&dyn BookArg]) -> BookRow {
        self.rows(sql, args)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no row: {sql}"))
    }

    /// The integer in the first column of the one row `sql` selects.
    pub fn one_i64(&self, sql: &str, args: &[&dyn BookArg]) -> i64 {
        self.one(sql, args).int(0)
    }

    /// The text in the first column of the one row `sql` selects.
    pub fn one_text(&self, sql: &str, args: &[&dyn BookArg]) -> String {
        self.one(sql, args).text(0)
    }

    /// A `SELECT COUNT(*) …`.
    pub fn count(&self, sql: &str, args: &[&dyn BookArg]) -> i64 {
        self.one_i64(sql, args)
    }

    /// Runs a change (only on a [`PsBooks::open_for_writing`]); returns the rows changed.
    pub fn execute(&self, sql: &str, args: &[&dyn BookArg]) -> u64 {
        match &self.conn {
            Conn::Sqlite(conn) => {
                let params = rusqlite::params_from_iter(args.iter().map(|a| {
                    let a: &dyn rusqlite::ToSql = *a;
                    a
                }));
                let changed = conn
                    .execute(sql, params)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                u64::try_from(changed).expect("a count fits")
            }
            Conn::Postgres(client) => {
                let sql = dollar_placeholders(sql);
                let client = client.as_ref().expect("open until dropped");
                on_plain_thread(|| {
                    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args
                        .iter()
                        .map(|a| {
                            let a: &(dyn postgres::types::ToSql + Sync) = *a;
                            a
                        })
                        .collect();
                    let mut client = client.lock().unwrap_or_else(|e| e.into_inner());
                    client
                        .execute(&sql, &params)
                        .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)))
                })
            }
        }
    }
}

impl Drop for PsBooks {
    fn drop(&mut self) {
        // The client's runtime may not be dropped on a tokio worker thread either.
        if let Conn::Postgres(client) = &mut self.conn
            && let Some(client) = client.take()
        {
            on_plain_thread(move || drop(client));
        }
    }
}

/// The server's own words when it has any (the client's `Display` says only "db error").
fn pg_error(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

fn sqlite_cell(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Cell> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(at)? {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(v) => Cell::Int(v),
        ValueRef::Text(v) => Cell::Text(String::from_utf8_lossy(v).into_owned()),
        // A purchase's receipt token, kept as its 16 bytes on SQLite: read as the text it is.
        ValueRef::Blob(v) => Cell::Text(v.iter().map(|b| format!("{b:02x}")).collect()),
        other => panic!("column {at} is {other:?}: the books read integers, text and tokens"),
    })
}

fn postgres_cell(row: &postgres::Row, at: usize, sql: &str) -> Cell {
    use postgres::types::{FromSqlOwned, Type};
    fn get<T: FromSqlOwned>(row: &postgres::Row, at: usize, sql: &str) -> Option<T> {
        row.try_get(at)
            .unwrap_or_else(|e| panic!("column {at} of {sql}: {e}"))
    }
    let int = |v: Option<i64>| v.map_or(Cell::Null, Cell::Int);
    match row.columns()[at].type_().clone() {
        Type::INT8 => int(get(row, at, sql)),
        Type::INT4 => int(get::<i32>(row, at, sql).map(i64::from)),
        Type::INT2 => int(get::<i16>(row, at, sql).map(i64::from)),
        Type::BOOL => int(get::<bool>(row, at, sql).map(i64::from)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get(row, at, sql).map_or(Cell::Null, Cell::Text)
        }
        Type::NUMERIC => {
            panic!("column {at} of {sql} is NUMERIC (a SUM of BIGINT is): CAST it AS BIGINT")
        }
        other => panic!("column {at} of {sql} is {other}: the books read integers and text"),
    }
}

/// `?N` → `$N` and a bare `?` → the next `$N`, outside quoted text.
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    let mut next = 0;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    next += 1;
                    digits = next.to_string();
                }
                let _ = write!(out, "${digits}");
            }
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn placeholders_and_urls_are_rewritten_for_postgres() {
    assert_eq!(
        dollar_placeholders("SELECT '?' , x FROM t WHERE a = ?1 AND b = ?2 OR c = ?1"),
        "SELECT '?' , x FROM t WHERE a = $1 AND b = $2 OR c = $1"
    );
    assert_eq!(dollar_placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_1"),
        "postgres://postgres@127.0.0.1:5432/t_1"
    );
    assert_eq!(
        with_database("postgresql://u:p@h:1/admin?sslmode=disable", "t_2"),
        "postgresql://u:p@h:1/t_2?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "t_3"), "postgres://h/t_3");
}

/// The reader on this binary's backend, on a table of its own (the PS is not needed for it).
#[tokio::test]
async fn the_books_read_and_write_on_this_binarys_backend() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = fresh_database(dir.path());
    assert_eq!(is_postgres_url(&db), backend() == Backend::Postgres);
    if backend() == Backend::Sqlite {
        // The PS makes its file; here the test does.
        rusqlite::Connection::open(&db).expect("a file");
    }
    let books = PsBooks::open_for_writing(&db);
    books.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL, n BIGINT)",
        &[],
    );
    for (id, name, n) in [(1i64, "a'?", Some(5i64)), (2, "b", None)] {
        let changed = books.execute(
            "INSERT INTO t (id, name, n) VALUES (?1, ?2, ?3)",
            &[&id, &name, &n],
        );
        assert_eq!(changed, 1);
    }
    assert_eq!(
        books.count("SELECT COUNT(*) FROM t WHERE name <> ?", &[&"b"]),
        1
    );
    assert_eq!(
        books.one_text("SELECT name FROM t WHERE id = ?1", &[&1i64]),
        "a'?"
    );
    assert_eq!(
        books.one_i64(
            "SELECT CAST(SUM(id) AS BIGINT) FROM t WHERE name <> '?'",
            &[]
        ),
        3
    );
    let rows = books.rows(
        "SELECT 0, id, name, n, CAST(id AS TEXT) AS shown FROM t WHERE id >= ?1 ORDER BY id",
        &[&1i64],
    );
    let read: Vec<_> = rows
        .iter()
        .map(|r| (r.int(0), r.int(1), r.text(2), r.opt_int(3), r.text(4)))
        .collect();
    assert_eq!(
        read,
        [
            (0, 1, "a'?".to_owned(), Some(5), "1".to_owned()),
            (0, 2, "b".to_owned(), None, "2".to_owned()),
        ]
    );
    // Dropped here, on the test's runtime thread: the PostgreSQL client's own runtime goes to a
    // plain thread.
    drop(books);
    let books = PsBooks::open(&db);
    assert_eq!(books.count("SELECT COUNT(*) FROM t", &[]), 2);
}
