//! The benchmark of docs/registers.md: one MPP's daily register of 1,000,000 operations, its time
//! and peak memory. Ignored in the normal run; run it in release:
//!
//! ```text
//! cargo test -p tolem --release --test system register_bench -- --ignored --nocapture
//! ```
//! `TOLEM_BENCH_OPS` changes the number of operations. SQLite only: it fills the file itself.

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
fn fill(db: &std::path::Path, ops: u64) {
    let mut conn = rusqlite::Connection::open(db).expect("opens");
    let tx = conn.transaction().expect("a transaction");
    let day_start = local("2026-11-26T00:00:00").as_millisecond();
    let step_ms = 86_400_000 / i64::try_from(ops).expect("fits");
    {
        let mut pay = tx
            .prepare(
                "INSERT INTO payments (id, kind, status, trade_point_id, amount_tiyn, created_at_ms, mpp, customer_id, \
                 mpp_payment_id, finished_at_ms, receipt_token) \
                 VALUES (?1, 'dynamic', 'confirmed', 1001, ?2, ?3, 'demobank', ?4, ?5, ?3, ?6)",
            )
            .expect("sql");
        let mut refund = tx
            .prepare(
                "INSERT INTO refunds (kind, status, trade_point_id, mpp, customer_id, payment_id, amount_tiyn, \
                 requested_at_ms, finished_at_ms, created_at_ms, receipt_token) \
                 VALUES ('direct', 'completed', 1001, 'demobank', ?1, ?2, ?3, ?4, ?4, ?4, ?5)",
            )
            .expect("sql");
        for i in 0..ops {
            let id = i64::try_from(i).expect("fits") + 1;
            let at = day_start + id * step_ms - 1;
            let customer = format!("C{:08}", id % 50_000);
            let tiyn = 10_000 + (id * 7_919) % 2_000_000;
            if i % 100 == 99 {
                refund
                    .execute(rusqlite::params![
                        customer,
                        id - 1,
                        500,
                        at,
                        format!("r{id}")
                    ])
                    .expect("a refund");
            } else {
                pay.execute(rusqlite::params![
                    id,
                    tiyn,
                    at,
                    customer,
                    format!("MPP-{id:012}"),
                    format!("p{id}")
                ])
                .expect("a payment");
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
    let db = dir.path().join("bench.db");
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
        assert_eq!(totals.payments.count + totals.refunds.count, ops);
        println!(
            "{:?}: {} rows in {seconds:.2} s ({:.0} rows/s), file {:.1} MiB, RSS before {} MiB, peak {} MiB",
            format,
            ops,
            ops as f64 / seconds,
            size as f64 / 1_048_576.0,
            rss_before / 1024,
            status_kib("VmHWM") / 1024,
        );
    }
}
