//! The Markdown report: the machine, the parameters, PS against baseline, and the targets.

use std::fmt::Write as _;

use crate::RunArgs;
use crate::child::{StderrSummary, ThreadCpu};
use crate::drive::{Outcome, Stats};

/// The targets the PS is held to.
const RATIO_MIN: f64 = 0.5;
const PS_P99_MS_MAX: f64 = 10.0;
const PS_RSS_MB_MAX: f64 = 200.0;
/// Characters of an error answer quoted in the report.
const EXAMPLE_CHARS_MAX: usize = 300;

/// What one server's run measured.
pub struct Side {
    pub outcome: Outcome,
    pub rss_sampled_max_kb: u64,
    pub rss_hwm_kb: u64,
    pub server_cpu_s: f64,
    pub tool_cpu_s: f64,
    /// Busy CPU of the whole machine, so that other work running beside the test shows.
    pub machine_cpu_s: f64,
    /// The server's CPU under load by thread name, busiest first.
    pub server_threads: Vec<ThreadCpu>,
    pub stderr_lines: StderrSummary,
}

pub struct Report {
    args: RunArgs,
    ps: Side,
    baseline: Side,
}

impl Report {
    pub fn new(args: &RunArgs, ps: Side, baseline: Side) -> Report {
        Report {
            args: args.clone(),
            ps,
            baseline,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        let a = &self.args;
        writeln!(out, "## tolem-load report\n")?;
        writeln!(out, "- Machine: {}", machine())?;
        writeln!(
            out,
            "- Workload: {} measured scan + notifyPayment pairs ({} requests) per server, {} concurrent workers, \
             after {} warm-up pairs; one reqwest client, HTTP/1.1 keep-alive, pool of {} connections; \
             the load tool runs on the same machine",
            a.pairs,
            2 * a.pairs,
            a.concurrency,
            a.warmup_pairs,
            a.concurrency.max(a.setup_concurrency),
        )?;
        writeln!(
            out,
            "- PS: `{} serve --config {} --db <tmp>/load.db --listen 127.0.0.1:0`, a fresh SQLite file \
             (WAL, synchronous=FULL, group commit); {} fresh Dynamic QRs created before the run ({} in flight)",
            a.tolem_bin.display(),
            a.config.display(),
            a.warmup_pairs + a.pairs,
            a.setup_concurrency,
        )?;
        writeln!(
            out,
            "- Baseline: `tolem-load baseline-server`, plain axum on the same paths, bodies parsed into \
             the same tolem-wire types, answers of the same shape, no storage, no middleware"
        )?;
        writeln!(
            out,
            "- Both servers: separate processes, default tokio multi-thread runtime, `RUST_LOG={}`",
            a.server_log
        )?;
        writeln!(
            out,
            "- Latency: from sending a request to the last byte of its answer, per request\n"
        )?;

        let ps = Row::of(&self.ps);
        let base = Row::of(&self.baseline);
        writeln!(out, "| | PS | Baseline |")?;
        writeln!(out, "|---|---:|---:|")?;
        let line = |out: &mut String, name: &str, f: &dyn Fn(&Row) -> String| {
            writeln!(out, "| {name} | {} | {} |", f(&ps), f(&base))
        };
        line(out, "requests (scan + notify)", &|r| r.requests.to_string())?;
        line(out, "wall time, s", &|r| format!("{:.2}", r.elapsed_s))?;
        line(out, "**requests/s**", &|r| {
            format!("**{:.0}**", r.requests_per_s)
        })?;
        line(out, "p50, ms", &|r| format!("{:.2}", r.all.p50_ms))?;
        line(out, "p90, ms", &|r| format!("{:.2}", r.all.p90_ms))?;
        line(out, "**p99, ms**", &|r| format!("**{:.2}**", r.all.p99_ms))?;
        line(out, "max, ms", &|r| format!("{:.2}", r.all.max_ms))?;
        line(out, "errors", &|r| r.errors.to_string())?;
        line(out, "**peak RSS (VmHWM), MB**", &|r| {
            format!("**{:.1}**", r.hwm_mb)
        })?;
        line(out, "max sampled VmRSS under load, MB", &|r| {
            format!("{:.1}", r.sampled_mb)
        })?;
        line(out, "server CPU under load, s (cores busy)", &|r| {
            format!("{:.2} ({:.2})", r.server_cpu_s, r.server_cores)
        })?;
        line(out, "server CPU per request, µs", &|r| {
            format!("{:.0}", r.server_cpu_us_per_request)
        })?;
        line(out, "load tool CPU under load, s (cores busy)", &|r| {
            format!("{:.2} ({:.2})", r.tool_cpu_s, r.tool_cores)
        })?;
        line(
            out,
            "other CPU on the machine under load, s (cores busy)",
            &|r| format!("{:.2} ({:.2})", r.other_cpu_s, r.other_cores),
        )?;
        for (server, side) in [("PS", &self.ps), ("Baseline", &self.baseline)] {
            let elapsed_s = side.outcome.elapsed.as_secs_f64().max(f64::EPSILON);
            let threads: Vec<String> = side
                .server_threads
                .iter()
                .filter(|t| t.cpu_s > 0.0)
                .map(|t| {
                    format!(
                        "{} ×{}: {:.2} s ({:.2} cores)",
                        t.name,
                        t.threads,
                        t.cpu_s,
                        t.cpu_s / elapsed_s
                    )
                })
                .collect();
            writeln!(
                out,
                "\n{server} CPU under load by thread: {}",
                threads.join("; ")
            )?;
        }

        writeln!(out, "\nPer method:\n")?;
        writeln!(
            out,
            "| server | method | requests | errors | p50, ms | p90, ms | p99, ms | max, ms |"
        )?;
        writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|")?;
        for (server, row) in [("PS", &ps), ("Baseline", &base)] {
            for (method, l) in [("scan", &row.scan), ("notifyPayment", &row.notify)] {
                writeln!(
                    out,
                    "| {server} | {method} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    l.requests, l.errors, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                )?;
            }
        }

        let ratio = ps.requests_per_s / base.requests_per_s.max(f64::EPSILON);
        writeln!(out, "\nPS / baseline requests/s: **{ratio:.2}**\n")?;
        writeln!(out, "| target | measured | holds |")?;
        writeln!(out, "|---|---:|---|")?;
        let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
        writeln!(
            out,
            "| PS req/s ≥ {RATIO_MIN} × baseline | {ratio:.2} × | {} |",
            verdict(ratio >= RATIO_MIN)
        )?;
        writeln!(
            out,
            "| PS p99 ≤ {PS_P99_MS_MAX} ms | {:.2} ms | {} |",
            ps.all.p99_ms,
            verdict(ps.all.p99_ms <= PS_P99_MS_MAX)
        )?;
        writeln!(
            out,
            "| PS peak RSS ≤ {PS_RSS_MB_MAX} MB | {:.1} MB | {} |",
            ps.hwm_mb,
            verdict(ps.hwm_mb <= PS_RSS_MB_MAX)
        )?;
        writeln!(
            out,
            "| no errors | {} | {} |",
            ps.errors,
            verdict(ps.errors == 0)
        )?;

        for (server, side) in [("PS", &self.ps), ("Baseline", &self.baseline)] {
            write_failures(out, server, side)?;
        }
        writeln!(
            out,
            "\nMB = 10⁶ bytes. Server stderr at `RUST_LOG={}`: PS {} lines, baseline {} lines.",
            a.server_log, self.ps.stderr_lines.lines, self.baseline.stderr_lines.lines
        )
    }
}

fn write_failures(out: &mut String, server: &str, side: &Side) -> std::fmt::Result {
    let failures = &side.outcome.failures;
    if failures.is_empty() && side.stderr_lines.head.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n### {server}: errors\n")?;
    for (kind, failure) in failures {
        let example: String = failure.example.chars().take(EXAMPLE_CHARS_MAX).collect();
        writeln!(out, "- {kind}: {} times, e.g. `{example}`", failure.count)?;
    }
    if !side.stderr_lines.head.is_empty() {
        writeln!(out, "\nFirst lines of its stderr:\n\n```")?;
        for line in &side.stderr_lines.head {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```")?;
    }
    Ok(())
}

/// One side's numbers, ready to print.
struct Row {
    requests: u64,
    errors: u64,
    elapsed_s: f64,
    requests_per_s: f64,
    all: Latency,
    scan: Latency,
    notify: Latency,
    hwm_mb: f64,
    sampled_mb: f64,
    server_cpu_s: f64,
    server_cores: f64,
    server_cpu_us_per_request: f64,
    tool_cpu_s: f64,
    tool_cores: f64,
    other_cpu_s: f64,
    other_cores: f64,
}

impl Row {
    fn of(side: &Side) -> Row {
        let o = &side.outcome;
        let (scan, notify) = (Latency::of(&o.scan), Latency::of(&o.notify));
        let elapsed_s = o.elapsed.as_secs_f64().max(f64::EPSILON);
        let requests = o.scan.requests + o.notify.requests;
        // Ticks are 10 ms, so a quiet machine may show a few hundredths here, or below zero.
        let other = (side.machine_cpu_s - side.server_cpu_s - side.tool_cpu_s).max(0.0);
        Row {
            requests,
            errors: o.scan.errors + o.notify.errors,
            elapsed_s,
            requests_per_s: o.requests_per_s(),
            all: Latency::of(&o.all),
            scan,
            notify,
            hwm_mb: mb(side.rss_hwm_kb),
            sampled_mb: mb(side.rss_sampled_max_kb),
            server_cpu_s: side.server_cpu_s,
            server_cores: side.server_cpu_s / elapsed_s,
            server_cpu_us_per_request: side.server_cpu_s * 1e6 / (requests.max(1) as f64),
            tool_cpu_s: side.tool_cpu_s,
            tool_cores: side.tool_cpu_s / elapsed_s,
            other_cpu_s: other,
            other_cores: other / elapsed_s,
        }
    }
}

struct Latency {
    requests: u64,
    errors: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(stats: &Stats) -> Latency {
        let h = &stats.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            requests: stats.requests,
            errors: stats.errors,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// `2 × Intel(R) Xeon(R) Processor, 23.4 GB RAM, Linux 6.8.0`, from `/proc`.
pub fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = read("/proc/meminfo");
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "nproc {nproc}, {model}, {:.1} GB RAM, Linux {}",
        mb(mem_kb) / 1000.0,
        kernel.trim()
    )
}
