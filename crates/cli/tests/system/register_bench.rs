//! The benchmark of docs/registers.md: one MPP's daily register of 1,000,000 operations, its time
//! and peak memory. Ignored in the normal run; run it in release:
//!
//! ```text
//! cargo test -p tolem --release --test system register_bench -- --ignored --nocapture
//! ```
//! `TOLEM_BENCH_OPS` changes the number of operations. `TOLEM_BENCH_DB` names a SQLite file
//! that exists (e.g. one grown with `tolem-load fill`) to add them to, instead of a fresh one;
//! its own operations of that day are then in the register too. SQLite only: it fills the file
//! itself.

use std::sync::Arc;
use std::time::Instant;

use tolem_ps::App;
use tolem_ps::clock::ManualClock;
use tolem_ps::registers::make::{self, Format};
use tolem_ps::registers::{Period, RegisterKind};

use crate::harness::{sqlite_only, test_config};
use crate::registers::local;

/// A `/proc/self/status` figure in KiB (`VmHWM`, `VmRSS`).
fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .expect("the figure")
}

/// Resets the peak resident set size to the current one, so the peak measured next is the
/// register's, not the filling's (Linux `clear_refs` value 5).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
}

/// Inserts `ops` operations of demobank on 2026-11-26: payments, and one refund per 100 of them.
/// Ids are the file's next ones and tokens are this run's, so a grown file takes them too.
pub(crate) fn fill(db: &std::path::Path, ops: u64) {
    let run = jiff::Timestamp::now().as_millisecond();
    let mut conn = rusqlite::Connection::open(db).expect("opens");
    let tx = conn.transaction().expect("a transaction");
    let day_start = local("2026-11-26T00:00:00").as_millisecond();
    let step_ms = 86_400_000 / i64::try_from(ops).expect("fits");
    {
        let mut pay = tx
            .prepare(
                "INSERT INTO payments (kind, status, trade_point_id, amount_tiyn, created_at_ms, mpp, customer_id, \
                 mpp_payment_id, finished_at_ms, receipt_token) \
                 VALUES ('dynamic', 'confirmed', 1001, ?1, ?2, 'demobank', ?3, ?4, ?2, ?5)",
            )
            .expect("sql");
        let mut refund = tx
            .prepare(
                "INSERT INTO refunds (kind, status, trade_point_id, mpp, customer_id, payment_id, amount_tiyn, \
                 requested_at_ms, finished_at_ms, created_at_ms, receipt_token) \
                 VALUES ('direct', 'completed', 1001, 'demobank', ?1, ?2, ?3, ?4, ?4, ?4, ?5)",
            )
            .expect("sql");
        let mut last_payment = 0;
        for i in 0..ops {
            let id = i64::try_from(i).expect("fits") + 1;
            let at = day_start + id * step_ms - 1;
            let customer = format!("C{:08}", id % 50_000);
            let tiyn = 10_000 + (id * 7_919) % 2_000_000;
            if i % 100 == 99 {
                refund
                    .execute(rusqlite::params![
                        customer,
                        last_payment,
                        500,
                        at,
                        format!("r{run}-{id}")
                    ])
                    .expect("a refund");
            } else {
                pay.execute(rusqlite::params![
                    tiyn,
                    at,
                    customer,
                    format!("MPP-{id:012}"),
                    format!("p{run}-{id}")
                ])
                .expect("a payment");
                last_payment = tx.last_insert_rowid();
            }
        }
    }
    tx.commit().expect("committed");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run it in release with --ignored"]
async fn register_bench() {
    if !sqlite_only("it fills the SQLite file directly, in one transaction") {
        return;
    }
    let ops: u64 = std::env::var("TOLEM_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let grown = std::env::var_os("TOLEM_BENCH_DB").map(std::path::PathBuf::from);
    let db = match &grown {
        Some(db) => {
            assert!(
                db.is_file(),
                "TOLEM_BENCH_DB must name a SQLite file that exists"
            );
            db.clone()
        }
        None => dir.path().join("bench.db"),
    };
    let mut config = test_config(&db);
    config.registers.temp_dir = Some(dir.path().to_owned());
    let clock = Arc::new(ManualClock::new(local("2026-11-27T10:00:00")));
    let app = App::start(config, clock).await.expect("the PS starts");
    let started = Instant::now();
    fill(&db, ops);
    println!(
        "filled {ops} operations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let period = Period::parse(RegisterKind::Daily, "2026-11-26").expect("a day");
    for format in [Format::Xlsx, Format::Csv] {
        reset_peak();
        let rss_before = status_kib("VmRSS");
        let started = Instant::now();
        let request = make::request(&app, "demobank", period, format).expect("a request");
        let (path, totals) = make::make_in_dir(&app, request, dir.path())
            .await
            .expect("made");
        let seconds = started.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).expect("the file").len();
        let rows = totals.payments.count + totals.refunds.count;
        if grown.is_some() {
            assert!(
                rows >= ops,
                "the register has at least the operations added"
            );
        } else {
            assert_eq!(rows, ops);
        }
        println!(
            "{:?}: {} rows in {seconds:.2} s ({:.0} rows/s), file {:.1} MiB, RSS before {} MiB, peak {} MiB",
            format,
            rows,
            rows as f64 / seconds,
            size as f64 / 1_048_576.0,
            rss_before / 1024,
            status_kib("VmHWM") / 1024,
        );
    }
}
