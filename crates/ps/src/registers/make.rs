//! Making one register: the MPP's confirmed payments and completed refunds of the period, read
//! page by page from a snapshot of the database, merged in time order, priced and written to a
//! file. Memory stays bounded by two pages and the writer's one row; the work runs on a blocking
//! thread, off the request path.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::OwnedSemaphorePermit;

use super::RegisterError;
use super::config::{RefundCommission, RegistersConfig};
use super::csv_file::CsvSink;
use super::period::{Period, RegisterKind};
use super::sheet::{Line, Sink, Totals};
use super::xlsx_file::XlsxSink;
use crate::domain::commission::Rate;
use crate::state::App;
use crate::store::{OpKind, PageCursor, RegisterOp, RegisterReader, Store};

/// The file format of a register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Xlsx,
    Csv,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "xlsx" => Some(Format::Xlsx),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Xlsx => "xlsx",
            Format::Csv => "csv",
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Which register to make.
#[derive(Clone, Debug)]
pub struct Request {
    pub mpp: String,
    pub mpp_name: String,
    /// The MPP's rate now, for the register's kind: only for a payment stored without its own
    /// (every payment confirmed by the PS has one, DECISIONS 37).
    pub rate: Rate,
    pub period: Period,
    pub format: Format,
}

/// How registers are made (from `[registers]`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub refund_commission: RefundCommission,
    pub page_rows_max: usize,
    pub sheet_rows_max: u32,
    pub temp_dir: PathBuf,
}

impl Settings {
    pub(crate) fn from_config(config: &RegistersConfig) -> Settings {
        Settings {
            refund_commission: config.refund_commission,
            page_rows_max: config.page_rows_max,
            sheet_rows_max: config.sheet_rows_max,
            temp_dir: config.temp_dir.clone().unwrap_or_else(std::env::temp_dir),
        }
    }
}

/// One table's operations, a page at a time.
struct Pages<'a> {
    reader: &'a RegisterReader,
    kind: OpKind,
    mpp: &'a str,
    bounds: (Timestamp, Timestamp),
    limit: usize,
    cursor: Option<PageCursor>,
    buffer: VecDeque<RegisterOp>,
    exhausted: bool,
}

impl<'a> Pages<'a> {
    fn new(
        reader: &'a RegisterReader,
        kind: OpKind,
        request: &'a Request,
        bounds: (Timestamp, Timestamp),
        limit: usize,
    ) -> Pages<'a> {
        Pages {
            reader,
            kind,
            mpp: &request.mpp,
            bounds,
            limit,
            cursor: None,
            buffer: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The next operation without taking it, reading the next page when the buffer is empty.
    fn peek(&mut self) -> Result<Option<&RegisterOp>, RegisterError> {
        if self.buffer.is_empty() && !self.exhausted {
            let page = match self.kind {
                OpKind::Payment => {
                    self.reader
                        .payments(self.mpp, self.bounds, self.cursor, self.limit)?
                }
                OpKind::Refund => {
                    self.reader
                        .refunds(self.mpp, self.bounds, self.cursor, self.limit)?
                }
            };
            self.exhausted = page.len() < self.limit;
            if let Some(last) = page.last() {
                self.cursor = Some((last.finished_at.as_millisecond(), last.id));
            }
            self.buffer.extend(page);
        }
        Ok(self.buffer.front())
    }

    fn take(&mut self) -> Option<RegisterOp> {
        self.buffer.pop_front()
    }
}

/// The next operation of either table, in time order.
fn next(
    payments: &mut Pages<'_>,
    refunds: &mut Pages<'_>,
) -> Result<Option<RegisterOp>, RegisterError> {
    let payment_first = match (
        payments.peek()?.map(RegisterOp::order_key),
        refunds.peek()?.map(RegisterOp::order_key),
    ) {
        (None, None) => return Ok(None),
        (Some(p), Some(r)) => p <= r,
        (Some(_), None) => true,
        (None, Some(_)) => false,
    };
    Ok(if payment_first {
        payments.take()
    } else {
        refunds.take()
    })
}

/// The row's commission at the rate fixed with its payment (DECISIONS 37): the payment service's
/// on a daily register, the «Сервис» service's on a monthly one (DECISIONS 38). A refund gives
/// commission back as was fixed when it was made; `mode`, the setting in force, only for refunds
/// made before that was kept.
fn commission(
    request: &Request,
    mode: RefundCommission,
    op: &RegisterOp,
) -> Result<tolem_wire::Amount, RegisterError> {
    let rate = match (op.rates, request.period.kind()) {
        (Some(fixed), RegisterKind::Daily) => fixed.payment,
        (Some(fixed), RegisterKind::Monthly) => fixed.service,
        (None, _) => request.rate,
    };
    let commission = match op.refund_of {
        None => rate.of_payment(op.amount),
        Some(of) => rate.of_refund(
            of.mode.unwrap_or(mode),
            of.payment_amount,
            of.refunded_before,
            op.amount,
        ),
    };
    Ok(commission?)
}

fn fill(
    store: &Store,
    zone: &TimeZone,
    settings: &Settings,
    (request, abandoned): (&Request, &AtomicBool),
    mut sink: impl Sink,
) -> Result<Totals, RegisterError> {
    let bounds = request.period.bounds(zone)?;
    let reader = store.register_reader()?;
    let limit = settings.page_rows_max;
    let mut payments = Pages::new(&reader, OpKind::Payment, request, bounds, limit);
    let mut refunds = Pages::new(&reader, OpKind::Refund, request, bounds, limit);
    let mut totals = Totals::default();
    while let Some(op) = next(&mut payments, &mut refunds)? {
        if abandoned.load(Ordering::Relaxed) {
            return Err(RegisterError::Abandoned);
        }
        let commission = commission(request, settings.refund_commission, &op)?;
        let line = Line { op, commission };
        totals.add(&line)?;
        sink.line(&line)?;
    }
    sink.finish(&totals)?;
    Ok(totals)
}

/// Makes the register into `out` (blocking: call it on a blocking thread); stops with
/// [`RegisterError::Abandoned`] at the next line once `abandoned` is set.
pub(crate) fn write_register(
    store: &Store,
    zone: &TimeZone,
    settings: &Settings,
    (request, abandoned): (&Request, &AtomicBool),
    out: &Path,
) -> Result<Totals, RegisterError> {
    let headers = super::sheet::headers(request.period.kind());
    match request.format {
        Format::Xlsx => {
            let title = format!(
                "Реестр операций / Операциялар тізілімі: {}, {}",
                request.mpp_name, request.period
            );
            let (_, period_end) = request.period.bounds(zone)?;
            let sink = XlsxSink::create(
                out,
                &settings.temp_dir,
                (&title, headers),
                period_end,
                zone,
                settings.sheet_rows_max,
            )?;
            fill(store, zone, settings, (request, abandoned), sink)
        }
        Format::Csv => fill(
            store,
            zone,
            settings,
            (request, abandoned),
            CsvSink::create(out, zone, headers)?,
        ),
    }
}

/// How long after a period's end its register can be made: [`REGISTER_SETTLE_MIN`], or longer
/// when writes may wait longer for their commit (`limits.request_timeout_ms` and a minute).
fn settle(request_timeout_ms: u64) -> jiff::SignedDuration {
    let waits = jiff::SignedDuration::from_millis(
        i64::try_from(request_timeout_ms).unwrap_or(i64::MAX / 2),
    );
    REGISTER_SETTLE_MIN.max(waits.saturating_add(jiff::SignedDuration::from_secs(60)))
}

/// The least time after a period's end before its register can be made. A payment or refund
/// takes its time from the clock before its write waits for the writer, so one dated 23:59:59
/// may commit just after midnight; PostgreSQL nodes' clocks may differ by a little too. A
/// register made at 00:00 could still change, which one delivered never does (DECISIONS 37).
pub const REGISTER_SETTLE_MIN: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// The request for `mpp`'s register of `period`, refused for an unknown MPP or a period that has
/// not ended in the operator's time zone at least [`settle`] ago.
pub fn request(
    app: &App,
    mpp: &str,
    period: Period,
    format: Format,
) -> Result<Request, RegisterError> {
    let (_, end) = period.bounds(&app.zone)?;
    let ready = end
        .checked_add(settle(app.config.limits.request_timeout_ms))
        .map_err(|_| RegisterError::BadPeriod(period.to_string()))?;
    if app.clock.now() < ready {
        let zone = app.zone.iana_name().unwrap_or("the operator's time zone");
        let ready = ready
            .to_zoned_datetime(app.zone.clone())
            .strftime("%Y-%m-%d %H:%M");
        return Err(RegisterError::NotEnded {
            period: period.to_string(),
            ready_from: format!("{ready} {zone}"),
        });
    }
    let catalog = app.catalog.get();
    let found = catalog
        .mpps
        .get(mpp)
        .ok_or_else(|| RegisterError::UnknownMpp(mpp.to_owned()))?;
    Ok(Request {
        mpp: found.caller_name.to_string(),
        mpp_name: found.name.clone(),
        rate: match period.kind() {
            RegisterKind::Daily => found.payment_rate(),
            RegisterKind::Monthly => found.service_rate(),
        },
        period,
        format,
    })
}

/// The prefix of a register's file while it is made (in `registers.temp_dir`, or beside its final
/// name).
const IN_MAKING: &str = ".tolem-register-";

/// How old a file in making must be, and unlocked, to be taken for a crash's: more than the
/// moment between its creation and its lock, and more than a long making, in case the folder is
/// shared over a file system whose locks another machine does not see (NFS with local locks).
const UNLOCKED_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the files of registers whose making a crash cut short: those in `dir` named as
/// [`temp_file`] names them that no process holds locked (older than [`UNLOCKED_AGE`]), or, where
/// the file system has no locks, not changed for `age`. A making in progress, in this process or
/// another sharing the folder, holds its file's lock until the file is closed. Logged; a file
/// that cannot be removed is left.
pub(crate) fn remove_leftovers(dir: &Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0u32;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(IN_MAKING) {
            continue;
        }
        let older_than = |span| {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|elapsed| elapsed > span))
        };
        let stale = match std::fs::File::open(entry.path()).map(|file| file.try_lock()) {
            // Nobody holds it: its maker is gone (the lock ends with the process).
            Ok(Ok(())) => older_than(UNLOCKED_AGE),
            Ok(Err(std::fs::TryLockError::WouldBlock)) => false,
            // No locks here: only its age can tell.
            Ok(Err(std::fs::TryLockError::Error(_))) | Err(_) => older_than(age),
        };
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed registers a crash left half made");
    }
}

/// A new file for a register in making, locked (`flock`) for as long as it is open, so that
/// [`remove_leftovers`] tells it from one a crash left.
fn temp_file(dir: &Path, format: Format) -> Result<tempfile::NamedTempFile, RegisterError> {
    let file = tempfile::Builder::new()
        .prefix(IN_MAKING)
        .suffix(&format!(".{}", format.extension()))
        .tempfile_in(dir)?;
    // Waits out a start's look at it, which holds it a moment; a file system without locks
    // leaves the file to the age rule.
    let _ = file.as_file().lock();
    Ok(file)
}

/// Makes a register into `file` on a blocking thread, which holds `places` (among the registers
/// made at once, if the caller keeps count) and the file until it ends. A caller that
/// stops waiting (its future dropped: a download whose client left) stops the making at its next
/// line, and the file, never handed back, is removed when the thread ends: the place stays taken
/// while the work goes on, and nothing is left behind.
async fn make_into(
    app: &App,
    request: Request,
    file: tempfile::NamedTempFile,
    places: Vec<OwnedSemaphorePermit>,
) -> Result<(tempfile::NamedTempFile, Totals), RegisterError> {
    let settings = Settings::from_config(&app.config.registers);
    let (store, zone) = (app.store.clone(), app.zone.clone());
    let abandoned = Arc::new(AtomicBool::new(false));
    let _abandon_on_drop = AbandonOnDrop(abandoned.clone());
    let made = tokio::task::spawn_blocking(move || {
        let _places = places;
        let totals = write_register(
            &store,
            &zone,
            &settings,
            (&request, &abandoned),
            file.path(),
        )?;
        Ok::<_, RegisterError>((file, totals))
    })
    .await
    .map_err(|e| RegisterError::Write(format!("the register task failed: {e}")))??;
    Ok(made)
}

/// Sets its flag when dropped: with the future that waits for a register.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Makes a register into a new temporary file (removed when dropped).
pub(crate) async fn make_temp(
    app: &App,
    request: Request,
    places: Vec<OwnedSemaphorePermit>,
) -> Result<(tempfile::NamedTempFile, Totals), RegisterError> {
    let dir = Settings::from_config(&app.config.registers).temp_dir;
    let file = temp_file(&dir, request.format)?;
    make_into(app, request, file, places).await
}

/// Makes a register into `dir` under its usual file name; returns the path.
pub async fn make_in_dir(
    app: &App,
    request: Request,
    dir: &Path,
) -> Result<(PathBuf, Totals), RegisterError> {
    let path = dir.join(
        request
            .period
            .file_name(&request.mpp, request.format.extension()),
    );
    // Written in full beside its final name, then renamed: nobody sees half a register.
    let file = temp_file(dir, request.format)?;
    let (file, totals) = make_into(app, request, file, Vec::new()).await?;
    file.persist(&path)
        .map_err(|e| RegisterError::Write(e.to_string()))?;
    Ok((path, totals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_register_waits_five_minutes_or_a_write_s_longest_wait_and_a_minute() {
        assert_eq!(settle(10_000), REGISTER_SETTLE_MIN);
        assert_eq!(settle(600_000), jiff::SignedDuration::from_mins(11));
        assert!(settle(u64::MAX) > REGISTER_SETTLE_MIN);
    }

    #[test]
    fn only_registers_no_process_is_making_are_removed() {
        let dir = tempfile::tempdir().expect("a dir");
        let now = SystemTime::now();
        let write = |name: &str, at: SystemTime| {
            let file = std::fs::File::create(dir.path().join(name)).expect("a file");
            file.set_modified(at).expect("a time");
            file
        };
        // Left by a crash twenty minutes ago: no lock, old enough.
        drop(write(
            ".tolem-register-crashed.xlsx",
            now - Duration::from_secs(1200),
        ));
        // Made a minute ago, its lock not taken yet (or taken on another machine's share).
        drop(write(
            ".tolem-register-new.csv",
            now - Duration::from_secs(60),
        ));
        // Made for two hours by a process still at it.
        let long = write(".tolem-register-long.xlsx", now - Duration::from_secs(7200));
        long.try_lock().expect("the maker's lock");
        // Made now through the same path as every register.
        let making = temp_file(dir.path(), Format::Csv).expect("a register in making");
        making
            .as_file()
            .set_modified(now - Duration::from_secs(1200))
            .expect("a time");
        drop(write(
            "demobank-2026-11-26.xlsx",
            now - Duration::from_secs(7200),
        ));
        remove_leftovers(dir.path(), Duration::from_secs(3600));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("the dir")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        left.sort();
        let making_name = making
            .path()
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let mut expected = vec![
            ".tolem-register-long.xlsx".to_owned(),
            ".tolem-register-new.csv".to_owned(),
            "demobank-2026-11-26.xlsx".to_owned(),
            making_name,
        ];
        expected.sort();
        assert_eq!(left, expected);
        // Once its maker closes it, a leftover is removed at the next look.
        drop(long);
        remove_leftovers(dir.path(), Duration::from_secs(3600));
        assert!(!dir.path().join(".tolem-register-long.xlsx").exists());
    }
}
