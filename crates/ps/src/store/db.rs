//! One SQL connection for both backends: the per-table operations write their SQL once and run it
//! on SQLite (rusqlite) or PostgreSQL (`tokio-postgres`, driven from the blocking thread the
//! transaction runs on, or run ahead of the database on an async worker: [`Staged`]) through
//! [`Db`]. SQL is written
//! with `?` or `?N` placeholders; for PostgreSQL they become `$N`, and each connection keeps its
//! prepared statements, as rusqlite's statement cache does for SQLite. Values cross as [`Cell`]s
//! (an integer, a text, bytes or NULL), so a typed id or a flag binds and reads the same on both.
//! Where the dialects differ, an operation asks [`Db::is_postgres`].

use std::cell::{Cell as StdCell, RefCell};
use std::collections::HashMap;
use std::error::Error;

use bytes::BytesMut;
use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio_postgres::types::{IsNull, ToSql as PgToSql, Type};

use super::pg_tls::{DatabaseUrl, chain};
use super::{StoreError, StoreResult};
use crate::domain::{CallerName, DeviceId, OutboxId, PaymentId, RefundId, ServiceId, TradePointId};

/// A connection the per-table operations run their SQL on.
#[derive(Clone, Copy)]
pub(crate) enum Db<'c> {
    Lite(&'c rusqlite::Connection),
    Pg(&'c PgConn),
    /// PostgreSQL, run ahead of the database on an async worker ([`Staged`]).
    Staged(&'c Staged),
}

/// A PostgreSQL connection with its prepared statements (by the SQL as written).
///
/// The client is `tokio-postgres` on a single-threaded runtime of the connection's own, driven by
/// the blocking thread that runs the transaction (the store's closures are synchronous). That is
/// what the `postgres` crate does too; holding the asynchronous client lets a transaction's
/// `BEGIN` travel with its first statement in one write (pipelined) instead of a round trip of
/// its own, on a machine where every round trip costs both sides CPU.
pub(crate) struct PgConn {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
    /// A `BEGIN …` not sent yet: it goes out with the transaction's first statement.
    begin: StdCell<Option<&'static str>>,
    /// A write not sent yet ([`Db::execute_pipelined`]): it goes out with the next statement or
    /// the `COMMIT`, in the same write.
    pipelined: RefCell<Option<Pipelined>>,
    /// A read to send with the next statement ([`Db::prefetch`]) and, once sent, its rows.
    prefetch: RefCell<Option<Prefetch>>,
    /// Ids found by [`Db::lookup_kept`] that a committed transaction saw: they never change.
    kept: RefCell<HashMap<Lookup, i64>>,
    /// Ids found by [`Db::lookup_kept`] in the transaction still open: kept once it commits.
    kept_pending: RefCell<Vec<(Lookup, i64)>>,
}

/// A write whose answer nobody waits for, to be sent with what follows it.
struct Pipelined {
    statement: tokio_postgres::Statement,
    params: Vec<OwnedCell>,
}

/// A read asked for ahead of its use, and its rows once it has been sent.
struct Prefetch {
    key: Lookup,
    statement: tokio_postgres::Statement,
    rows: Option<Vec<tokio_postgres::Row>>,
}

/// A lookup's SQL and arguments, as [`PgConn::kept`] remembers them.
pub(crate) type Lookup = (String, Vec<OwnedCell>);

/// Lookups one connection remembers before it forgets them all (the store's are a few dozen
/// notifyPayment answer forms).
const KEPT_MAX: usize = 1_000;

/// Prepared statements one PostgreSQL connection keeps before it forgets them all; the SQL of
/// the store is a few hundred fixed texts, dynamic IN lists aside.
pub(super) const STATEMENTS_MAX: usize = 1_000;

/// Adds ids found in committed work to a connection's kept ones, forgetting them all first when
/// they would pass [`KEPT_MAX`].
pub(super) fn keep(kept: &mut HashMap<Lookup, i64>, found: Vec<(Lookup, i64)>) {
    if kept.len() + found.len() > KEPT_MAX {
        kept.clear();
    }
    kept.extend(found);
}

impl PgConn {
    /// Connects. Blocking, and not on an async worker (it runs a runtime of its own).
    pub(crate) fn connect(url: &DatabaseUrl) -> StoreResult<PgConn> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Corrupt(format!("a runtime for a connection: {e}")))?;
        let refused = |e: tokio_postgres::Error| {
            StoreError::Connect(format!("cannot connect to the database: {}", chain(&e)))
        };
        // The connection's task runs whenever the runtime is driven, i.e. during every query;
        // it ends when the client is dropped or the server closes the connection.
        let client = match &url.tls {
            Some(tls) => {
                let (client, connection) = runtime
                    .block_on(url.config.connect(tls.clone()))
                    .map_err(refused)?;
                runtime.spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "a database connection ended");
                    }
                });
                client
            }
            None => {
                let (client, connection) = runtime
                    .block_on(url.config.connect(tokio_postgres::NoTls))
                    .map_err(refused)?;
                runtime.spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "a database connection ended");
                    }
                });
                client
            }
        };
        Ok(PgConn {
            runtime,
            client,
            statements: RefCell::new(HashMap::new()),
            begin: StdCell::new(None),
            pipelined: RefCell::new(None),
            prefetch: RefCell::new(None),
            kept: RefCell::new(HashMap::new()),
            kept_pending: RefCell::new(Vec::new()),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Starts a transaction whose `BEGIN` is sent with its first statement. A transaction that
    /// sends no statement sends no `BEGIN` either (its `COMMIT`/`ROLLBACK` are dropped too).
    ///
    /// Pipelining means the first statement is on its way before `BEGIN`'s answer is read; a
    /// `BEGIN` fails only on a broken connection, which fails the statement after it too, so the
    /// statement never runs outside the transaction it belongs to.
    pub(crate) fn begin(&self, begin: &'static str) {
        self.begin.set(Some(begin));
    }

    /// Runs statements without arguments (the simple protocol), after a pending `BEGIN` and
    /// write. `COMMIT` and `ROLLBACK` are [`Self::commit`] and [`Self::rollback`].
    pub(crate) fn batch(&self, sql: &str) -> StoreResult<()> {
        match sql {
            "COMMIT" => self.commit(),
            "ROLLBACK" => self.rollback(),
            _ => self.after_pending(self.client.batch_execute(sql)),
        }
    }

    /// Commits the transaction [`Self::begin`] started: its pending write and the `COMMIT` go
    /// out in one write. A transaction that sent nothing sends nothing. If the pending write
    /// fails, PostgreSQL ends the transaction at the `COMMIT` without keeping anything, and the
    /// write's error is returned.
    pub(crate) fn commit(&self) -> StoreResult<()> {
        if self.begin.get().is_some() && self.pipelined.borrow().is_none() {
            self.begin.set(None);
            self.prefetch.borrow_mut().take();
            self.kept_pending.borrow_mut().clear();
            return Ok(());
        }
        let committed = self.after_pending(self.client.batch_execute("COMMIT"));
        self.prefetch.borrow_mut().take();
        if committed.is_ok() {
            self.keep_found();
        } else {
            self.kept_pending.borrow_mut().clear();
        }
        committed
    }

    /// Remembers the ids [`Db::lookup_kept`] found in work that has now committed.
    fn keep_found(&self) {
        let found = std::mem::take(&mut *self.kept_pending.borrow_mut());
        keep(&mut self.kept.borrow_mut(), found);
    }

    /// Rolls the transaction back; a pending `BEGIN` or write is never sent.
    pub(crate) fn rollback(&self) -> StoreResult<()> {
        self.pipelined.borrow_mut().take();
        self.prefetch.borrow_mut().take();
        self.kept_pending.borrow_mut().clear();
        match self.begin.take() {
            Some(_) => Ok(()),
            None => Ok(self
                .runtime
                .block_on(self.client.batch_execute("ROLLBACK"))?),
        }
    }

    /// Sends a pending write on its own and waits for it (at the end of work outside a
    /// transaction, where no statement or `COMMIT` follows to carry it).
    pub(crate) fn flush(&self) -> StoreResult<()> {
        if self.pipelined.borrow().is_none() {
            return Ok(());
        }
        self.after_pending(async { Ok(()) })
    }

    /// Ends work outside a transaction (autocommit): sends a pending write, and remembers the
    /// ids [`Db::lookup_kept`] found, which were committed when read.
    pub(crate) fn end_autocommit(&self) -> StoreResult<()> {
        self.flush()?;
        self.prefetch.borrow_mut().take();
        self.keep_found();
        Ok(())
    }

    /// Whether a write is still waiting to be sent (a use of the connection that forgot to
    /// commit, roll back or flush).
    pub(crate) fn has_pending_write(&self) -> bool {
        self.pipelined.borrow().is_some()
    }

    fn statement(&self, sql: &str) -> StoreResult<tokio_postgres::Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .runtime
            .block_on(self.client.prepare(&dollar_placeholders(sql)))?;
        let mut statements = self.statements.borrow_mut();
        if statements.len() >= STATEMENTS_MAX {
            statements.clear();
        }
        statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// The rows of a prepared statement, after a pending `BEGIN`.
    fn query(
        &self,
        statement: &tokio_postgres::Statement,
        params: &[&(dyn PgToSql + Sync)],
    ) -> StoreResult<Vec<tokio_postgres::Row>> {
        self.after_pending(self.client.query(statement, params))
    }

    /// The number of rows a prepared statement changed, after a pending `BEGIN`.
    fn execute(
        &self,
        statement: &tokio_postgres::Statement,
        params: &[&(dyn PgToSql + Sync)],
    ) -> StoreResult<u64> {
        self.after_pending(self.client.execute(statement, params))
    }

    /// Keeps a write to send with whatever this connection sends next (a statement, the
    /// `COMMIT`), after sending a write kept before it.
    fn pipeline(
        &self,
        statement: tokio_postgres::Statement,
        params: Vec<OwnedCell>,
    ) -> StoreResult<()> {
        if self.pipelined.borrow().is_some() {
            self.flush()?;
        }
        *self.pipelined.borrow_mut() = Some(Pipelined { statement, params });
        Ok(())
    }

    /// Runs `statement` (not polled yet), preceded by a pending `BEGIN` and a pending write, all
    /// in the same write to the server: `join!(biased; …)` polls them in order, and each sends
    /// its message when first polled. The first error in that order is the one returned: a
    /// statement after a failed one fails only because the transaction was aborted.
    fn after_pending<T>(
        &self,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> StoreResult<T> {
        let begin = self.begin.take();
        let pipelined = self.pipelined.borrow_mut().take();
        let mut prefetch = self.prefetch.borrow_mut();
        let read = prefetch.as_ref().filter(|p| p.rows.is_none());
        if begin.is_none() && pipelined.is_none() && read.is_none() {
            drop(prefetch);
            return Ok(self.runtime.block_on(statement)?);
        }
        let write = pipelined
            .as_ref()
            .map(|w| (&w.statement, pg_params(&w.params)));
        let read = read.map(|p| (&p.statement, pg_params(&p.key.1)));
        let (begun, wrote, prefetched, done) = self.runtime.block_on(async {
            tokio::join!(
                biased;
                async {
                    match begin {
                        Some(begin) => self.client.batch_execute(begin).await,
                        None => Ok(()),
                    }
                },
                async {
                    match &write {
                        Some((statement, params)) => {
                            self.client.execute(*statement, params).await.map(drop)
                        }
                        None => Ok(()),
                    }
                },
                async {
                    match &read {
                        Some((statement, params)) => {
                            self.client.query(*statement, params).await.map(Some)
                        }
                        None => Ok(None),
                    }
                },
                statement
            )
        });
        begun?;
        wrote?;
        match prefetched {
            Ok(Some(rows)) => {
                if let Some(p) = prefetch.as_mut() {
                    p.rows = Some(rows);
                }
            }
            Ok(None) => {}
            Err(e) => {
                prefetch.take();
                return Err(e.into());
            }
        }
        Ok(done?)
    }

    /// Keeps a read to send with the next statement; its rows are kept for the
    /// [`Db::query_row`] that asks the same (one read ahead at a time; a second replaces the
    /// first).
    fn prefetch(&self, statement: tokio_postgres::Statement, key: Lookup) {
        *self.prefetch.borrow_mut() = Some(Prefetch {
            key,
            statement,
            rows: None,
        });
    }

    /// The rows of a read asked for ahead with this SQL and these arguments, once it was sent.
    fn prefetched(&self, sql: &str, cells: &[Cell<'_>]) -> Option<Vec<tokio_postgres::Row>> {
        let mut prefetch = self.prefetch.borrow_mut();
        let matches = prefetch.as_ref().is_some_and(|p| {
            p.rows.is_some()
                && p.key.0 == sql
                && p.key.1.len() == cells.len()
                && p.key.1.iter().zip(cells).all(|(a, b)| a.cell() == *b)
        });
        if matches {
            prefetch.take().and_then(|p| p.rows)
        } else {
            None
        }
    }
}

/// `?` and `?N` placeholders as PostgreSQL's `$N` (outside quoted text), numbered as SQLite
/// numbers them: a bare `?` is one past the largest number given so far.
pub(super) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut largest: u32 = 0;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        let mut number = String::new();
        while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
            number.push(d);
            chars.next();
        }
        let n = match number.parse::<u32>() {
            Ok(n) => n,
            Err(_) => largest + 1,
        };
        largest = largest.max(n);
        out.push('$');
        out.push_str(&n.to_string());
    }
    out
}

/// A value bound to a placeholder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A [`Cell`] that owns its text or bytes (a write kept to be sent later, a lookup remembered).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum OwnedCell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl OwnedCell {
    fn of(cell: Cell<'_>) -> OwnedCell {
        match cell {
            Cell::Null => OwnedCell::Null,
            Cell::Int(v) => OwnedCell::Int(v),
            Cell::Text(s) => OwnedCell::Text(s.to_owned()),
            Cell::Blob(b) => OwnedCell::Blob(b.to_vec()),
        }
    }

    fn cell(&self) -> Cell<'_> {
        match self {
            OwnedCell::Null => Cell::Null,
            OwnedCell::Int(v) => Cell::Int(*v),
            OwnedCell::Text(s) => Cell::Text(s),
            OwnedCell::Blob(b) => Cell::Blob(b),
        }
    }
}

/// What can be bound to a placeholder.
pub(crate) trait Arg {
    fn cell(&self) -> Cell<'_>;
}

/// The arguments of a statement: `args![a, b]`.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$(&$arg as &dyn $crate::store::db::Arg),*] as &[&dyn $crate::store::db::Arg]
    };
}
pub(crate) use args;

impl Arg for i64 {
    fn cell(&self) -> Cell<'_> {
        Cell::Int(*self)
    }
}

impl Arg for u32 {
    fn cell(&self) -> Cell<'_> {
        Cell::Int(i64::from(*self))
    }
}

impl Arg for i32 {
    fn cell(&self) -> Cell<'_> {
        Cell::Int(i64::from(*self))
    }
}

impl Arg for bool {
    fn cell(&self) -> Cell<'_> {
        Cell::Int(i64::from(*self))
    }
}

impl Arg for str {
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self)
    }
}

impl Arg for String {
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self)
    }
}

impl Arg for [u8] {
    fn cell(&self) -> Cell<'_> {
        Cell::Blob(self)
    }
}

impl Arg for Vec<u8> {
    fn cell(&self) -> Cell<'_> {
        Cell::Blob(self)
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn cell(&self) -> Cell<'_> {
        (**self).cell()
    }
}

impl<T: Arg> Arg for Option<T> {
    fn cell(&self) -> Cell<'_> {
        match self {
            Some(value) => value.cell(),
            None => Cell::Null,
        }
    }
}

impl Arg for Cell<'_> {
    fn cell(&self) -> Cell<'_> {
        *self
    }
}

impl Arg for CallerName {
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self.as_str())
    }
}

/// Typed ids bind as the integers they wrap.
macro_rules! id_cells {
    ($($name:ident),*) => {$(
        impl Arg for $name {
            fn cell(&self) -> Cell<'_> {
                Cell::Int(self.get())
            }
        }
        impl Column for $name {
            fn from_value(value: Value) -> Result<$name, String> {
                i64::from_value(value).map($name::new)
            }
        }
    )*};
}

id_cells!(
    PaymentId,
    RefundId,
    TradePointId,
    ServiceId,
    DeviceId,
    OutboxId
);

impl rusqlite::ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Cell::Null => ValueRef::Null,
            Cell::Int(v) => ValueRef::Integer(v),
            Cell::Text(s) => ValueRef::Text(s.as_bytes()),
            Cell::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl PgToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match *self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => Err(format!("an integer bound to a {ty} parameter").into()),
            },
            Cell::Text(s) => s.to_sql(ty, out),
            Cell::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl PgToSql for OwnedCell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.cell().to_sql(ty, out)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A value read from a row.
#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// What a column can be read as.
pub(crate) trait Column: Sized {
    fn from_value(value: Value) -> Result<Self, String>;
}

impl Column for i64 {
    fn from_value(value: Value) -> Result<i64, String> {
        match value {
            Value::Int(v) => Ok(v),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

impl Column for u32 {
    fn from_value(value: Value) -> Result<u32, String> {
        let v = i64::from_value(value)?;
        u32::try_from(v).map_err(|_| format!("{v} is out of range"))
    }
}

impl Column for bool {
    fn from_value(value: Value) -> Result<bool, String> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl Column for String {
    fn from_value(value: Value) -> Result<String, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl Column for Vec<u8> {
    fn from_value(value: Value) -> Result<Vec<u8>, String> {
        match value {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl Column for CallerName {
    fn from_value(value: Value) -> Result<CallerName, String> {
        String::from_value(value).map(CallerName::from)
    }
}

impl<T: Column> Column for Option<T> {
    fn from_value(value: Value) -> Result<Option<T>, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// A row of a result, on either backend.
pub(crate) enum Row<'r> {
    Lite(&'r rusqlite::Row<'r>),
    Pg(&'r tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `idx` (from 0) as `T`.
    pub(crate) fn get<T: Column>(&self, idx: usize) -> StoreResult<T> {
        let value = match self {
            Row::Lite(row) => match row.get_ref(idx)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Text(t) => Value::Text(
                    std::str::from_utf8(t)
                        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))?
                        .to_owned(),
                ),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                ValueRef::Real(r) => {
                    return Err(StoreError::Corrupt(format!(
                        "column {idx}: a real number {r}"
                    )));
                }
            },
            Row::Pg(row) => pg_value(row, idx)?,
        };
        T::from_value(value).map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
    }
}

fn pg_value(row: &tokio_postgres::Row, idx: usize) -> StoreResult<Value> {
    let ty = row
        .columns()
        .get(idx)
        .map(|c| c.type_().clone())
        .ok_or_else(|| StoreError::Corrupt(format!("no column {idx}")))?;
    let value = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(idx)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(idx)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(idx)?
            .map(|v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(idx)?
            .map(|v| Value::Int(v.into())),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(idx)?.map(Value::Blob),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            row.try_get::<_, Option<String>>(idx)?.map(Value::Text)
        }
        other => {
            return Err(StoreError::Corrupt(format!(
                "column {idx} has type {other}; the store reads integers, text and bytes (CAST \
                 a SUM to BIGINT)"
            )));
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

impl<'c> Db<'c> {
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_) | Db::Staged(_))
    }

    /// Runs a statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<usize> {
        let cells: Vec<Cell<'_>> = args.iter().map(|a| a.cell()).collect();
        match self {
            Db::Lite(conn) => Ok(conn
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(cells.iter()))?),
            Db::Pg(pg) => {
                let statement = pg.statement(sql)?;
                let params = pg_params(&cells);
                let changed = pg.execute(&statement, &params)?;
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            }
            // A row count is the server's answer to this very statement.
            Db::Staged(staged) => Err(staged.interrupt(Need::Connection)),
        }
    }

    /// Runs a write whose row count the caller does not need. On PostgreSQL it is sent with
    /// the connection's next statement or with the `COMMIT`, in one write instead of a round
    /// trip of its own, and an error it meets is returned by that statement or the commit
    /// (which then keeps nothing). On SQLite it runs at once.
    pub(crate) fn execute_pipelined(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<()> {
        match self {
            Db::Lite(_) => self.execute(sql, args).map(drop),
            Db::Pg(pg) => {
                let statement = pg.statement(sql)?;
                let params = args.iter().map(|a| OwnedCell::of(a.cell())).collect();
                pg.pipeline(statement, params)
            }
            Db::Staged(staged) => staged.write(lookup(sql, args)),
        }
    }

    /// Whether a read with `cells` can match no row without asking: PostgreSQL keeps no text
    /// holding U+0000 and refuses one in a query (an error, not an empty answer), so a token or
    /// key with it sent in a URL (`?DeviceToken=%00`) is answered as one that names nothing,
    /// as SQLite answers it.
    fn matches_nothing(&self, cells: &[Cell<'_>]) -> bool {
        !matches!(self, Db::Lite(_))
            && cells
                .iter()
                .any(|c| matches!(c, Cell::Text(text) if text.contains('\0')))
    }

    /// Asks for a read that a later [`Self::query_row`] of the same SQL and arguments in this
    /// transaction will make: on PostgreSQL it is sent with the next statement, in one write,
    /// and that `query_row` takes its rows instead of a round trip of its own. It reads what was
    /// committed when it was sent (READ COMMITTED), a moment earlier than the later read would.
    /// On SQLite, in the same process, nothing is done ahead.
    pub(crate) fn prefetch(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<()> {
        if self.matches_nothing(&args.iter().map(|a| a.cell()).collect::<Vec<_>>()) {
            return Ok(());
        }
        if let Db::Pg(pg) = self {
            let statement = pg.statement(sql)?;
            let key = (
                sql.to_owned(),
                args.iter().map(|a| OwnedCell::of(a.cell())).collect(),
            );
            pg.prefetch(statement, key);
        }
        if let Db::Staged(staged) = self {
            staged.want(lookup(sql, args));
        }
        Ok(())
    }

    /// The id in column 0 of a query's first row, for a row that never changes or goes away
    /// once committed (a notifyPayment answer's form). A PostgreSQL connection remembers what
    /// it found once the transaction that found it commits, and asks the server only for what
    /// it has not found before; an id found inside a transaction that rolls back is forgotten
    /// (that transaction may have inserted it). SQLite, in the same process, is always asked.
    pub(crate) fn lookup_kept(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<Option<i64>> {
        if let Db::Staged(staged) = self {
            return staged.lookup_kept(lookup(sql, args));
        }
        let Db::Pg(pg) = self else {
            return self.query_row(sql, args, |r| r.get::<i64>(0));
        };
        let key = (
            sql.to_owned(),
            args.iter().map(|a| OwnedCell::of(a.cell())).collect(),
        );
        if let Some(id) = pg.kept.borrow().get(&key) {
            return Ok(Some(*id));
        }
        let found = self.query_row(sql, args, |r| r.get::<i64>(0))?;
        if let Some(id) = found {
            pg.kept_pending.borrow_mut().push((key, id));
        }
        Ok(found)
    }

    /// The first row of a query, if any, read by `f`.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        f: impl FnOnce(&Row<'_>) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let cells: Vec<Cell<'_>> = args.iter().map(|a| a.cell()).collect();
        if self.matches_nothing(&cells) {
            return Ok(None);
        }
        match self {
            Db::Lite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(cells.iter()))?;
                match rows.next()? {
                    Some(row) => f(&Row::Lite(row)).map(Some),
                    None => Ok(None),
                }
            }
            Db::Pg(pg) => {
                let rows = match pg.prefetched(sql, &cells) {
                    Some(rows) => rows,
                    None => pg.query(&pg.statement(sql)?, &pg_params(&cells))?,
                };
                // More than one row is not an error, as with SQLite: the first is taken.
                let row = rows.into_iter().next();
                row.map(|row| f(&Row::Pg(&row))).transpose()
            }
            Db::Staged(staged) => staged.read(lookup(sql, args), |rows| {
                rows.first().map(|row| f(&Row::Pg(row))).transpose()
            }),
        }
    }

    /// Every row of a query, each read by `f`.
    pub(crate) fn query_map<T>(
        &self,
        sql: &str,
        args: &[&dyn Arg],
        mut f: impl FnMut(&Row<'_>) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let cells: Vec<Cell<'_>> = args.iter().map(|a| a.cell()).collect();
        if self.matches_nothing(&cells) {
            return Ok(Vec::new());
        }
        match self {
            Db::Lite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(cells.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(f(&Row::Lite(row))?);
                }
                Ok(out)
            }
            Db::Pg(pg) => {
                let statement = pg.statement(sql)?;
                let params = pg_params(&cells);
                let rows = pg.query(&statement, &params)?;
                rows.iter().map(|row| f(&Row::Pg(row))).collect()
            }
            Db::Staged(staged) => staged.read(lookup(sql, args), |rows| {
                rows.iter().map(|row| f(&Row::Pg(row))).collect()
            }),
        }
    }

    /// Runs statements without arguments (schema changes).
    pub(crate) fn execute_batch(&self, sql: &str) -> StoreResult<()> {
        match self {
            Db::Lite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Pg(pg) => pg.batch(sql),
            Db::Staged(staged) => Err(staged.interrupt(Need::Connection)),
        }
    }
}

/// A statement's SQL and arguments, owned.
fn lookup(sql: &str, args: &[&dyn Arg]) -> Lookup {
    (
        sql.to_owned(),
        args.iter().map(|a| OwnedCell::of(a.cell())).collect(),
    )
}

/// What a staged run of a transaction waits for before it can go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// The rows of the reads it asked for ([`Staged::wanted`]).
    Reads,
    /// A connection of its own, on a blocking thread: what only the server can answer at once
    /// (a row count, a read after a write, statements without arguments).
    Connection,
}

/// A PostgreSQL transaction run ahead of the database, on an async worker (`store/postgres.rs`,
/// `Pool::staged_transaction`). The use case's closure runs against what this transaction has
/// read so far: a read it has not made yet stops the run ([`Need::Reads`]); the pool sends
/// every read asked for (with the `BEGIN`, in one write), then runs the closure again from the
/// start, which it may since a transaction's closure is `Fn`. Writes whose row count nobody reads
/// are kept ([`Db::execute_pipelined`]) and go out with the `COMMIT`. Anything else stops the run
/// for good ([`Need::Connection`]) and the transaction is run on a blocking thread instead.
///
/// Once stopped, every further use fails too, whatever the closure does with the first error:
/// the pool takes nothing from a stopped run but what it asked for.
pub(crate) struct Staged {
    /// Rows of the reads made in this transaction, by SQL and arguments.
    read: Vec<(Lookup, Vec<tokio_postgres::Row>)>,
    /// Ids the connection found in committed work ([`Db::lookup_kept`]): they never change.
    kept: HashMap<Lookup, i64>,
    /// Reads asked for (by [`Db::prefetch`] or a read not made yet), in order.
    wanted: RefCell<Vec<Lookup>>,
    /// Writes to send with the `COMMIT`, in order.
    writes: RefCell<Vec<Lookup>>,
    /// Ids [`Db::lookup_kept`] found in this transaction: kept once it commits.
    found: RefCell<Vec<(Lookup, i64)>>,
    /// Why the run stopped, if it did.
    need: StdCell<Option<Need>>,
}

/// What a staged run left: why it stopped, if it did, and what it asked for.
pub(crate) struct StagedRun {
    pub(crate) need: Option<Need>,
    pub(crate) wanted: Vec<Lookup>,
    pub(crate) writes: Vec<Lookup>,
    pub(crate) found: Vec<(Lookup, i64)>,
}

impl Staged {
    /// A run over the rows read so far in the transaction and the connection's kept ids.
    pub(crate) fn new(
        read: Vec<(Lookup, Vec<tokio_postgres::Row>)>,
        kept: HashMap<Lookup, i64>,
    ) -> Staged {
        Staged {
            read,
            kept,
            wanted: RefCell::new(Vec::new()),
            writes: RefCell::new(Vec::new()),
            found: RefCell::new(Vec::new()),
            need: StdCell::new(None),
        }
    }

    /// The run's outcome, the rows and the kept ids given back for the next run.
    #[allow(clippy::type_complexity)]
    pub(crate) fn finish(
        self,
    ) -> (
        StagedRun,
        Vec<(Lookup, Vec<tokio_postgres::Row>)>,
        HashMap<Lookup, i64>,
    ) {
        let run = StagedRun {
            need: self.need.get(),
            wanted: self.wanted.into_inner(),
            writes: self.writes.into_inner(),
            found: self.found.into_inner(),
        };
        (run, self.read, self.kept)
    }

    /// Stops the run (a need for a connection outweighs a need for reads).
    fn interrupt(&self, need: Need) -> StoreError {
        if self.need.get() != Some(Need::Connection) {
            self.need.set(Some(need));
        }
        StoreError::Staged
    }

    fn stopped(&self) -> StoreResult<()> {
        match self.need.get() {
            Some(_) => Err(StoreError::Staged),
            None => Ok(()),
        }
    }

    fn write(&self, statement: Lookup) -> StoreResult<()> {
        self.stopped()?;
        self.writes.borrow_mut().push(statement);
        Ok(())
    }

    /// A read asked for ahead: it goes out with the next reads, if the run is still reading.
    fn want(&self, statement: Lookup) {
        if self.need.get().is_some() || !self.writes.borrow().is_empty() {
            return;
        }
        let mut wanted = self.wanted.borrow_mut();
        if !self.read.iter().any(|(l, _)| *l == statement) && !wanted.contains(&statement) {
            wanted.push(statement);
        }
    }

    /// The rows of a read, given to `f`. A read after a write needs the server to see the
    /// write first, so it stops the run for good.
    fn read<T>(
        &self,
        statement: Lookup,
        f: impl FnOnce(&[tokio_postgres::Row]) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.stopped()?;
        if !self.writes.borrow().is_empty() {
            return Err(self.interrupt(Need::Connection));
        }
        if let Some((_, rows)) = self.read.iter().find(|(l, _)| *l == statement) {
            return f(rows);
        }
        self.want(statement);
        Err(self.interrupt(Need::Reads))
    }

    fn lookup_kept(&self, statement: Lookup) -> StoreResult<Option<i64>> {
        self.stopped()?;
        if let Some(id) = self.kept.get(&statement) {
            return Ok(Some(*id));
        }
        let found = self.read(statement.clone(), |rows| {
            rows.first()
                .map(|row| Row::Pg(row).get::<i64>(0))
                .transpose()
        })?;
        if let Some(id) = found {
            self.found.borrow_mut().push((statement, id));
        }
        Ok(found)
    }
}

pub(super) fn pg_params<C: PgToSql + Sync>(cells: &[C]) -> Vec<&(dyn PgToSql + Sync)> {
    cells.iter().map(|c| c as &(dyn PgToSql + Sync)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::StoreError;
    use super::super::migrations_pg::tests::{TestDatabase, admin_url};
    use super::{Db, dollar_placeholders};

    /// The rows of `t` as another connection sees them (what was committed).
    fn committed(database: &TestDatabase) -> i64 {
        let other = database.pg();
        Db::Pg(&other)
            .query_row("SELECT COUNT(*) FROM t", args![], |r| r.get(0))
            .expect("a count")
            .expect("a row")
    }

    #[test]
    fn a_pending_begin_goes_out_before_the_first_statement_and_an_empty_one_not_at_all() {
        let Some(url) = admin_url("a_pending_begin_goes_out_before_the_first_statement") else {
            return;
        };
        let database = TestDatabase::create(&url, "begin");
        let pg = database.pg();
        let db = Db::Pg(&pg);
        pg.batch("CREATE TABLE t (n BIGINT)").expect("a table");
        let begin = "BEGIN ISOLATION LEVEL SERIALIZABLE";

        // The first statement runs inside the transaction: a rollback takes it back.
        pg.begin(begin);
        db.execute("INSERT INTO t (n) VALUES (?1)", args![1_i64])
            .expect("inserted");
        let isolation: String = db
            .query_row("SHOW transaction_isolation", args![], |r| r.get(0))
            .expect("read")
            .expect("a row");
        assert_eq!(isolation, "serializable");
        pg.batch("ROLLBACK").expect("rolled back");
        assert_eq!(
            committed(&database),
            0,
            "the insert was inside the transaction"
        );

        // The same as the first statement of a batch.
        pg.begin(begin);
        pg.batch("INSERT INTO t (n) VALUES (2)").expect("inserted");
        pg.batch("ROLLBACK").expect("rolled back");
        assert_eq!(committed(&database), 0);

        // Committed, it is there.
        pg.begin(begin);
        db.execute("INSERT INTO t (n) VALUES (?1)", args![3_i64])
            .expect("inserted");
        assert_eq!(committed(&database), 0, "not before the commit");
        pg.batch("COMMIT").expect("committed");
        assert_eq!(committed(&database), 1);

        // A transaction without a statement sends nothing: the next statement is on its own
        // (autocommit), not inside a transaction left open.
        pg.begin(begin);
        pg.batch("COMMIT").expect("nothing to commit");
        db.execute("INSERT INTO t (n) VALUES (?1)", args![4_i64])
            .expect("inserted");
        assert_eq!(committed(&database), 2);
    }

    #[test]
    fn a_pipelined_write_goes_out_with_what_follows_and_its_error_keeps_nothing() {
        let Some(url) = admin_url("a_pipelined_write_goes_out_with_what_follows") else {
            return;
        };
        let database = TestDatabase::create(&url, "pipelined");
        let pg = database.pg();
        let db = Db::Pg(&pg);
        pg.batch("CREATE TABLE t (n BIGINT PRIMARY KEY)")
            .expect("a table");
        let begin = "BEGIN ISOLATION LEVEL READ COMMITTED";
        let insert = "INSERT INTO t (n) VALUES (?1)";

        // Alone in its transaction, it goes out with BEGIN and COMMIT, and is committed.
        pg.begin(begin);
        db.execute_pipelined(insert, args![1_i64]).expect("kept");
        assert!(pg.has_pending_write());
        assert_eq!(committed(&database), 0, "nothing sent before the commit");
        pg.commit().expect("committed");
        assert!(!pg.has_pending_write());
        assert_eq!(committed(&database), 1);

        // A statement after it sees it; a rollback takes both back.
        pg.begin(begin);
        db.execute_pipelined(insert, args![2_i64]).expect("kept");
        let seen: i64 = db
            .query_row("SELECT COUNT(*) FROM t", args![], |r| r.get(0))
            .expect("read")
            .expect("a row");
        assert_eq!(seen, 2, "the write went out before the read");
        pg.rollback().expect("rolled back");
        assert_eq!(committed(&database), 1);

        // Rolled back before it was sent, it is never sent.
        pg.begin(begin);
        db.execute(insert, args![3_i64]).expect("inserted");
        db.execute_pipelined(insert, args![4_i64]).expect("kept");
        pg.rollback().expect("rolled back");
        assert!(!pg.has_pending_write());
        assert_eq!(committed(&database), 1);

        // A write that fails at the commit: its error is the commit's, and nothing of the
        // transaction is kept, not even what came before it.
        pg.begin(begin);
        db.execute(insert, args![5_i64]).expect("inserted");
        db.execute_pipelined(insert, args![1_i64]).expect("kept");
        let Err(refused) = pg.commit() else {
            panic!("the duplicate key must fail the commit");
        };
        // The log line says what the server said, not only "db error".
        let said = refused.to_string();
        assert!(
            said.starts_with("database: ERROR 23505: duplicate key"),
            "{said}"
        );
        assert!(!said.contains("Key ("), "no row values: {said}");
        let StoreError::Postgres(e) = refused else {
            panic!("a PostgreSQL error: {refused:?}");
        };
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        );
        assert_eq!(committed(&database), 1, "the insert before it was not kept");
        // The connection is out of the aborted transaction and serves the next one.
        pg.begin(begin);
        db.execute_pipelined(insert, args![6_i64]).expect("kept");
        pg.commit().expect("committed");
        assert_eq!(committed(&database), 2);

        // Outside a transaction, ending the work sends it.
        db.execute_pipelined(insert, args![7_i64]).expect("kept");
        pg.end_autocommit().expect("sent");
        assert_eq!(committed(&database), 3);
    }

    #[test]
    fn a_kept_lookup_is_remembered_only_once_its_transaction_commits() {
        let Some(url) = admin_url("a_kept_lookup_is_remembered_only_once") else {
            return;
        };
        let database = TestDatabase::create(&url, "kept");
        let pg = database.pg();
        let db = Db::Pg(&pg);
        pg.batch("CREATE TABLE f (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
            .expect("a table");
        let lookup = "SELECT id FROM f WHERE name = ?1";
        let begin = "BEGIN ISOLATION LEVEL READ COMMITTED";

        // Found in a transaction that inserted it and rolled back: forgotten.
        pg.begin(begin);
        db.execute("INSERT INTO f (id, name) VALUES (1, 'a')", args![])
            .expect("inserted");
        assert_eq!(db.lookup_kept(lookup, args!["a"]).expect("found"), Some(1));
        pg.rollback().expect("rolled back");
        assert_eq!(db.lookup_kept(lookup, args!["a"]).expect("asked"), None);
        pg.end_autocommit().expect("ended");

        // Found in a transaction that committed: remembered, even once the server's row is
        // gone (which the store never does: a kept row is never deleted).
        db.execute("INSERT INTO f (id, name) VALUES (2, 'a')", args![])
            .expect("inserted");
        pg.begin(begin);
        assert_eq!(db.lookup_kept(lookup, args!["a"]).expect("found"), Some(2));
        pg.commit().expect("committed");
        database
            .pg()
            .batch("DELETE FROM f")
            .expect("deleted elsewhere");
        assert_eq!(
            db.lookup_kept(lookup, args!["a"]).expect("remembered"),
            Some(2)
        );
        // Other arguments are other lookups.
        assert_eq!(db.lookup_kept(lookup, args!["b"]).expect("asked"), None);
    }

    #[test]
    fn a_prefetched_read_serves_only_its_own_query_and_only_in_its_transaction() {
        let Some(url) = admin_url("a_prefetched_read_serves_only_its_own_query") else {
            return;
        };
        let database = TestDatabase::create(&url, "prefetch");
        let pg = database.pg();
        let db = Db::Pg(&pg);
        pg.batch("CREATE TABLE t (n BIGINT PRIMARY KEY)")
            .expect("a table");
        db.execute("INSERT INTO t (n) VALUES (1), (2)", args![])
            .expect("inserted");
        let begin = "BEGIN ISOLATION LEVEL READ COMMITTED";
        let read = "SELECT n FROM t WHERE n = ?1";
        let other = database.pg();
        let read_n = |n: i64| {
            db.query_row(read, args![n], |r| r.get::<i64>(0))
                .expect("read")
        };

        // Sent with the next statement: the later read takes its rows, as they were then.
        pg.begin(begin);
        db.prefetch(read, args![1_i64]).expect("asked ahead");
        db.execute("UPDATE t SET n = n WHERE n = 2", args![])
            .expect("a statement that carries it");
        Db::Pg(&other)
            .execute("DELETE FROM t WHERE n = 1", args![])
            .expect("deleted elsewhere");
        assert_eq!(read_n(1), Some(1), "the rows read ahead");
        assert_eq!(
            read_n(1),
            None,
            "taken once; asked again, the server answers"
        );
        pg.commit().expect("committed");

        // Other arguments are another query: the server is asked.
        pg.begin(begin);
        db.prefetch(read, args![2_i64]).expect("asked ahead");
        db.execute("UPDATE t SET n = n WHERE n = 2", args![])
            .expect("a statement that carries it");
        assert_eq!(read_n(1), None);
        // Rows read ahead and not used end with their transaction.
        pg.commit().expect("committed");
        Db::Pg(&other)
            .execute("DELETE FROM t WHERE n = 2", args![])
            .expect("deleted elsewhere");
        pg.begin(begin);
        assert_eq!(read_n(2), None, "not the last transaction's rows");
        pg.rollback().expect("rolled back");
    }

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT ? , ?2 FROM t WHERE a = '?' AND b = ?"),
            "SELECT $1 , $2 FROM t WHERE a = '?' AND b = $3"
        );
    }
}
