//! The Markdown report of `tolem-load refunds`: the machine, the parameters, each variant's
//! placing and delivery, and the target.

use std::fmt::Write as _;
use std::time::Duration;

use crate::refunds::{Measured, RefundArgs};
use crate::report::{machine, mb};

/// Refunds delivered per second the PS is held to (issue 3, item 8).
const DELIVERED_PER_S_MIN: f64 = 2_000.0;
/// The delivery timeline's bucket.
const TIMELINE_BUCKET_MS: u64 = 500;
/// Characters of a refused placement's answer quoted in the report.
const EXAMPLE_CHARS_MAX: usize = 300;

pub struct RefundReport<'a> {
    args: &'a RefundArgs,
    runs: &'a [Measured],
}

impl<'a> RefundReport<'a> {
    pub fn new(args: &'a RefundArgs, runs: &'a [Measured]) -> RefundReport<'a> {
        RefundReport { args, runs }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        let a = self.args;
        writeln!(out, "## tolem-load refunds report\n")?;
        writeln!(out, "- Machine: {}", machine())?;
        writeln!(
            out,
            "- Workload: {} refunds per variant, each the whole of a confirmed purchase of its own \
             customer, placed with `POST /r3/v01/payment/return`, {} in flight; one reqwest client, \
             HTTP/1.1 keep-alive; the load tool (and the MPP receiver in it) runs on the same machine",
            a.refunds, a.concurrency
        )?;
        match &a.db {
            None => writeln!(
                out,
                "- PS: `{} serve --config <tmp>/ps-<variant>.toml --db <tmp>/ps-<variant>.db --listen \
                 127.0.0.1:0`, a fresh SQLite file per variant; the configuration is `{}` with demobank's \
                 `refund_url` pointed at the receiver",
                a.tolem_bin.display(),
                a.config.display()
            )?,
            Some(db) => writeln!(
                out,
                "- PS: `{} serve --config <tmp>/ps-<variant>.toml --db {db} --listen 127.0.0.1:0`, \
                 the given store for every variant; the configuration is `{}`, and demobank's \
                 `refund_url` in the store's catalog is pointed at the receiver through the admin API",
                a.tolem_bin.display(),
                a.config.display()
            )?,
        }
        writeln!(
            out,
            "- MPP receiver: axum inside the load tool, `POST /refund` answered SUCCESS at once \
             (in the backlog variant: held until all refunds are placed); a refund counts as \
             delivered when its refundId is first answered"
        )?;
        writeln!(out, "- PS settings: {}", settings())?;
        writeln!(
            out,
            "- Delivery window: concurrent, from the first placement to the last first delivery; \
             backlog, from the receiver's opening to the last first delivery. CPU is measured over \
             the same window"
        )?;
        writeln!(out, "- PS log level: `RUST_LOG={}`\n", a.server_log)?;

        let rows: Vec<Row> = self.runs.iter().map(Row::of).collect();
        write!(out, "|")?;
        for run in self.runs {
            write!(out, " | {}", run.variant.name())?;
        }
        writeln!(out, " |")?;
        write!(out, "|---")?;
        for _ in self.runs {
            write!(out, "|---:")?;
        }
        writeln!(out, "|")?;
        let line = |out: &mut String, name: &str, f: &dyn Fn(&Row) -> String| {
            write!(out, "| {name} ")?;
            for row in &rows {
                write!(out, "| {} ", f(row))?;
            }
            writeln!(out, "|")
        };
        line(out, "refunds placed (refused)", &|r| {
            format!("{} ({})", r.placed, r.refused)
        })?;
        line(out, "placing, s", &|r| format!("{:.2}", r.placing_s))?;
        line(out, "**placed/s**", &|r| {
            format!("**{:.0}**", r.placed_per_s)
        })?;
        line(out, "placing p50 / p99 / max, ms", &|r| {
            format!(
                "{:.1} / {:.1} / {:.1}",
                r.place_p50_ms, r.place_p99_ms, r.place_max_ms
            )
        })?;
        line(out, "delivered (distinct refundIds)", &|r| {
            r.delivered.to_string()
        })?;
        line(out, "delivery window, s", &|r| format!("{:.2}", r.window_s))?;
        line(out, "**delivered/s**", &|r| {
            format!("**{:.0}**", r.delivered_per_s)
        })?;
        line(
            out,
            "steady delivered/s (25th to 75th percentile delivery)",
            &|r| format!("{:.0}", r.steady_per_s),
        )?;
        line(out, "first delivery after, ms", &|r| {
            format!("{:.1}", r.first_ms)
        })?;
        line(
            out,
            "longest pause between deliveries, ms (ending at, s)",
            &|r| format!("{:.0} ({:.2})", r.pause_ms, r.pause_end_s),
        )?;
        line(out, "last placement to last delivery, s", &|r| {
            r.lag_s.map_or("–".to_owned(), |s| format!("{s:.2}"))
        })?;
        line(out, "every outcome recorded after, s", &|r| {
            r.recorded_s
                .map_or("**not seen**".to_owned(), |s| format!("{s:.2}"))
        })?;
        line(out, "receiver calls (**duplicates**)", &|r| {
            format!("{} (**{}**)", r.calls, r.duplicates)
        })?;
        line(out, "PS attempts / retries / failed", &|r| {
            format!("{} / {} / {}", r.attempts, r.retries, r.failed)
        })?;
        line(out, "unknown refundIds / malformed calls", &|r| {
            format!("{} / {}", r.unknown_ids, r.malformed)
        })?;
        line(out, "**PS peak RSS (VmHWM), MB**", &|r| {
            format!("**{:.1}**", r.hwm_mb)
        })?;
        line(
            out,
            "max sampled VmRSS while placing and delivering, MB",
            &|r| format!("{:.1}", r.sampled_mb),
        )?;
        line(out, "PS CPU, s (cores busy)", &|r| {
            format!("{:.2} ({:.2})", r.ps_cpu_s, r.ps_cpu_s / r.cpu_window_s)
        })?;
        line(out, "PS CPU per refund, µs", &|r| {
            format!("{:.0}", r.ps_cpu_s * 1e6 / (r.delivered.max(1) as f64))
        })?;
        line(out, "load tool CPU, s (cores busy)", &|r| {
            format!("{:.2} ({:.2})", r.tool_cpu_s, r.tool_cpu_s / r.cpu_window_s)
        })?;
        line(out, "other CPU on the machine, s (cores busy)", &|r| {
            format!(
                "{:.2} ({:.2})",
                r.other_cpu_s,
                r.other_cpu_s / r.cpu_window_s
            )
        })?;

        for run in self.runs {
            write_details(out, run)?;
        }

        writeln!(out, "\n| target | variant | measured | holds |")?;
        writeln!(out, "|---|---|---:|---|")?;
        let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
        for (run, row) in self.runs.iter().zip(&rows) {
            let name = run.variant.name();
            writeln!(
                out,
                "| delivered/s ≥ {DELIVERED_PER_S_MIN:.0} | {name} | {:.0} | {} |",
                row.delivered_per_s,
                verdict(row.delivered_per_s >= DELIVERED_PER_S_MIN)
            )?;
            writeln!(
                out,
                "| every refund delivered and recorded | {name} | {} of {} | {} |",
                row.delivered,
                row.placed,
                verdict(run.complete && row.recorded_s.is_some() && row.unknown_ids == 0)
            )?;
            writeln!(
                out,
                "| no duplicate delivery | {name} | {} | {} |",
                row.duplicates,
                verdict(row.duplicates == 0)
            )?;
        }
        writeln!(
            out,
            "\nMB = 10⁶ bytes. A duplicate is a call for a refundId the receiver had already answered."
        )
    }
}

fn write_details(out: &mut String, run: &Measured) -> std::fmt::Result {
    let name = run.variant.name();
    let window_s = run.cpu_window_s.max(f64::EPSILON);
    let threads: Vec<String> = run
        .ps_threads
        .iter()
        .filter(|t| t.cpu_s > 0.0)
        .map(|t| {
            format!(
                "{} ×{}: {:.2} s ({:.2} cores)",
                t.name,
                t.threads,
                t.cpu_s,
                t.cpu_s / window_s
            )
        })
        .collect();
    writeln!(out, "\n{name}: PS CPU by thread: {}", threads.join("; "))?;
    let timeline: Vec<String> = timeline(&run.deliveries)
        .iter()
        .map(|n| format!("{:.0}", *n as f64 * 1000.0 / TIMELINE_BUCKET_MS as f64))
        .collect();
    writeln!(
        out,
        "\n{name}: delivered/s in each {TIMELINE_BUCKET_MS} ms of the window (the last one partial): {}",
        timeline.join(", ")
    )?;
    if let Some(example) = &run.placement.error_example {
        let example: String = example.chars().take(EXAMPLE_CHARS_MAX).collect();
        writeln!(
            out,
            "\n{name}: {} placements refused, e.g. `{example}`",
            run.placement.errors
        )?;
    }
    if !run.stderr.head.is_empty() {
        writeln!(
            out,
            "\n{name}: the PS wrote {} lines to stderr, first:\n\n```",
            run.stderr.lines
        )?;
        for line in &run.stderr.head {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```")?;
    }
    Ok(())
}

/// The dispatcher's settings that are not the defaults: the backlog variant's, and any
/// `TOLEM_REFUNDS__…` variable the PS inherits.
fn settings() -> String {
    let mut set = vec![
        "dispatcher defaults (`refunds.claim_batch_max` 256, `in_flight_max` 512, \
         `mpp_concurrency_max` 32, `poll_interval_ms` 500)"
            .to_owned(),
        "backlog variant only: `refunds.request_timeout_ms` 600000 and `lease_ms` 660000, so \
         that held calls do not time out"
            .to_owned(),
        "`refunds.pos_wait_ms` 0 (the POS is answered at once, so placing measures the outbox,          not the MPP; DECISIONS 39)"
            .to_owned(),
    ];
    let inherited: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("TOLEM_") && k != crate::KEEP_VAR)
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect();
    if inherited.is_empty() {
        set.push("no `TOLEM_…` variables".to_owned());
    } else {
        set.push(format!(
            "inherited from the environment: {}",
            inherited.join(", ")
        ));
    }
    set.join("; ")
}

/// Deliveries in each bucket of the window.
fn timeline(deliveries: &[Duration]) -> Vec<u64> {
    let Some(last) = deliveries.last() else {
        return Vec::new();
    };
    let bucket = |d: &Duration| {
        usize::try_from(d.as_millis() / u128::from(TIMELINE_BUCKET_MS)).unwrap_or(usize::MAX)
    };
    let mut counts = vec![0; bucket(last).saturating_add(1)];
    for d in deliveries {
        if let Some(count) = counts.get_mut(bucket(d)) {
            *count += 1;
        }
    }
    counts
}

/// One variant's numbers, ready to print.
struct Row {
    placed: usize,
    refused: u64,
    placing_s: f64,
    placed_per_s: f64,
    place_p50_ms: f64,
    place_p99_ms: f64,
    place_max_ms: f64,
    delivered: usize,
    window_s: f64,
    delivered_per_s: f64,
    steady_per_s: f64,
    first_ms: f64,
    pause_ms: f64,
    pause_end_s: f64,
    lag_s: Option<f64>,
    recorded_s: Option<f64>,
    calls: u64,
    duplicates: u64,
    attempts: u64,
    retries: u64,
    failed: u64,
    unknown_ids: usize,
    malformed: u64,
    hwm_mb: f64,
    sampled_mb: f64,
    cpu_window_s: f64,
    ps_cpu_s: f64,
    tool_cpu_s: f64,
    other_cpu_s: f64,
}

impl Row {
    fn of(m: &Measured) -> Row {
        let p = &m.placement;
        let placing_s = p.elapsed.as_secs_f64().max(f64::EPSILON);
        let h = &p.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let d = &m.deliveries;
        let window_s = d.last().map_or(0.0, Duration::as_secs_f64);
        // The middle half of the deliveries, which leaves out the start and the tail.
        let (q1, q3) = (d.len() / 4, d.len() * 3 / 4);
        let steady_per_s = match (d.get(q1), d.get(q3)) {
            (Some(a), Some(b)) if b > a => (q3 - q1) as f64 / (*b - *a).as_secs_f64(),
            _ => 0.0,
        };
        let (pause, pause_end) = d
            .iter()
            .scan(Duration::ZERO, |before, &at| {
                let gap = at.saturating_sub(*before);
                *before = at;
                Some((gap, at))
            })
            .max_by_key(|(gap, _)| *gap)
            .unwrap_or_default();
        let metric = |name: &str| m.metrics.get(name).copied().unwrap_or(0);
        let distinct = d.len() as u64;
        let other = m.machine_cpu_s - m.ps_cpu_s - m.tool_cpu_s;
        Row {
            placed: p.refund_ids.len(),
            refused: p.errors,
            placing_s,
            placed_per_s: p.refund_ids.len() as f64 / placing_s,
            place_p50_ms: ms(h.value_at_quantile(0.50)),
            place_p99_ms: ms(h.value_at_quantile(0.99)),
            place_max_ms: ms(h.max()),
            delivered: d.len(),
            window_s,
            delivered_per_s: d.len() as f64 / window_s.max(f64::EPSILON),
            steady_per_s,
            first_ms: d.first().map_or(0.0, |f| f.as_secs_f64() * 1000.0),
            pause_ms: pause.as_secs_f64() * 1000.0,
            pause_end_s: pause_end.as_secs_f64(),
            lag_s: m
                .placed_at
                .map(|placed| d.last().map_or(0.0, |l| l.as_secs_f64()) - placed.as_secs_f64()),
            recorded_s: m.recorded_at.map(|r| r.as_secs_f64()),
            calls: m.receiver_calls,
            duplicates: m.receiver_calls.saturating_sub(m.malformed + distinct),
            attempts: metric("tolem_refund_attempts_total"),
            retries: metric("tolem_refund_retries_total"),
            failed: metric("tolem_refunds_failed_total"),
            unknown_ids: m.unknown_ids,
            malformed: m.malformed,
            hwm_mb: mb(m.rss_hwm_kb),
            sampled_mb: mb(m.rss_sampled_max_kb),
            cpu_window_s: m.cpu_window_s.max(f64::EPSILON),
            ps_cpu_s: m.ps_cpu_s,
            tool_cpu_s: m.tool_cpu_s,
            other_cpu_s: other.max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_counts_each_bucket() {
        let at = |ms| Duration::from_millis(ms);
        assert_eq!(timeline(&[]), Vec::<u64>::new());
        assert_eq!(
            timeline(&[at(0), at(499), at(500), at(1_700)]),
            vec![2, 1, 0, 1]
        );
    }
}
