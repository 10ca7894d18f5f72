//! A server under test as a child process: started with its log level, its address read from the
//! first line it prints, its memory and CPU read from `/proc`, and killed at the end. The PS and
//! the baseline both run through here, so both are measured the same way.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a server may take to print where it listens.
const STARTUP_TIMEOUT_S: u64 = 30;
/// How often the resident memory is sampled under load.
const RSS_SAMPLE_INTERVAL_MS: u64 = 50;
/// Lines of a server's stderr quoted in the report.
const STDERR_QUOTED_LINES_MAX: usize = 5;
/// Linux reports CPU times in `USER_HZ` ticks, which is 100 on every architecture it exposes.
const USER_HZ: f64 = 100.0;

pub struct Server {
    pub name: &'static str,
    /// `http://ADDR`, as the server printed it.
    pub url: String,
    pub pid: u32,
    child: Child,
    stderr_path: PathBuf,
}

impl Server {
    /// Starts `program args…` with `RUST_LOG=log_level`, its stderr in `dir/<name>.stderr.log`,
    /// and waits for its first stdout line, `listening on http://ADDR`.
    pub async fn spawn<S: AsRef<OsStr>>(
        name: &'static str,
        program: &Path,
        args: &[S],
        log_level: &str,
        dir: &Path,
    ) -> anyhow::Result<Server> {
        let stderr_path = dir.join(format!("{name}.stderr.log"));
        let stderr = std::fs::File::create(&stderr_path)
            .with_context(|| format!("cannot create {}", stderr_path.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", log_level)
            .env_remove(crate::KEEP_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let Some(pid) = child.id() else {
            bail!("{name} exited at once")
        };
        let Some(stdout) = child.stdout.take() else {
            bail!("{name}: stdout is not piped")
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(
            Duration::from_secs(STARTUP_TIMEOUT_S),
            stdout.read_line(&mut line),
        )
        .await;
        let url = match read {
            Ok(Ok(_)) => line.trim().strip_prefix("listening on ").map(str::to_owned),
            Ok(Err(e)) => return Err(e).with_context(|| format!("cannot read {name}'s stdout")),
            Err(_) => bail!("{name} did not say where it listens within {STARTUP_TIMEOUT_S} s"),
        };
        let Some(url) = url else {
            let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            bail!(
                "{name} printed {line:?} instead of `listening on http://ADDR`; its stderr:\n{log}"
            );
        };
        // Keep reading stdout so that a later line never fails on a closed pipe.
        tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
        Ok(Server {
            name,
            url,
            pid,
            child,
            stderr_path,
        })
    }

    /// How many lines the server wrote to stderr so far, and the first few.
    pub fn stderr_lines(&self) -> StderrSummary {
        let log = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        StderrSummary {
            lines: log.lines().count(),
            head: log
                .lines()
                .take(STDERR_QUOTED_LINES_MAX)
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Kills the server (SIGKILL: its database is thrown away) and reaps it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child
            .start_kill()
            .with_context(|| format!("cannot kill {}", self.name))?;
        self.child
            .wait()
            .await
            .with_context(|| format!("cannot reap {}", self.name))?;
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
pub struct StderrSummary {
    pub lines: usize,
    pub head: Vec<String>,
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kb: u64,
    /// The peak resident set over the process's life.
    pub hwm_kb: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("{path} has no {name}"))?;
        let kb = line.trim().trim_end_matches("kB").trim();
        kb.parse()
            .with_context(|| format!("{path}: {name} {kb:?} is not a number"))
    };
    Ok(Memory {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

/// User plus system CPU time of a process so far, in ticks (`/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    cpu_ticks_of(&format!("/proc/{pid}/stat"))
}

/// The same for this load tool.
pub fn cpu_ticks_self() -> anyhow::Result<u64> {
    cpu_ticks_of("/proc/self/stat")
}

fn cpu_ticks_of(path: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let (_, ticks) = parse_stat(&stat).with_context(|| format!("{path} is malformed"))?;
    Ok(ticks)
}

/// CPU ticks spent busy by the whole machine so far (`/proc/stat`: all but idle and iowait).
pub fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no cpu line")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map_while(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …; guest time is already inside user.
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Ok(busy)
}

/// The name (field 2) and user plus system ticks (fields 14 and 15) of a `stat` file.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    // The name is in parentheses and may hold spaces and parentheses: it ends at the last `)`.
    // After it come the state (field 3) and so on, so utime is the 12th field of the rest.
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, name) = head.split_once('(')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name.to_owned(), utime + stime))
}

/// CPU ticks of every live thread of a process, by thread id, with the thread's name.
pub fn thread_ticks(pid: u32) -> anyhow::Result<BTreeMap<u32, (String, u64)>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        let Some(tid) = entry?
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        // A thread may end between listing and reading; it is simply left out.
        let Ok(stat) = std::fs::read_to_string(format!("{dir}/{tid}/stat")) else {
            continue;
        };
        if let Some(thread) = parse_stat(&stat) {
            threads.insert(tid, thread);
        }
    }
    Ok(threads)
}

/// CPU used by the threads of one name between two [`thread_ticks`] snapshots.
#[derive(Clone, Debug)]
pub struct ThreadCpu {
    pub name: String,
    pub threads: usize,
    pub cpu_s: f64,
}

/// CPU per thread name between two snapshots, busiest first. Threads that ended in between are
/// missing; threads that started count from zero.
pub fn thread_cpu(
    before: &BTreeMap<u32, (String, u64)>,
    after: &BTreeMap<u32, (String, u64)>,
) -> Vec<ThreadCpu> {
    let mut by_name: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for (tid, (name, ticks)) in after {
        let earlier = before.get(tid).map_or(0, |(_, t)| *t);
        let entry = by_name.entry(name).or_default();
        entry.0 += 1;
        entry.1 += ticks.saturating_sub(earlier);
    }
    let mut list: Vec<ThreadCpu> = by_name
        .into_iter()
        .map(|(name, (threads, ticks))| ThreadCpu {
            name: name.to_owned(),
            threads,
            cpu_s: ticks_to_s(ticks),
        })
        .collect();
    list.sort_by(|a, b| b.cpu_s.total_cmp(&a.cpu_s));
    list
}

pub fn ticks_to_s(ticks: u64) -> f64 {
    // Precision loss only beyond 2^53 ticks (about 2.8 million years).
    ticks as f64 / USER_HZ
}

/// Samples a process's `VmRSS` until stopped, keeping the largest value.
pub struct RssSampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut max_kb = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(RSS_SAMPLE_INTERVAL_MS));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        if let Ok(m) = memory(pid) {
                            max_kb = max_kb.max(m.rss_kb);
                        }
                    }
                }
            }
            max_kb
        });
        RssSampler { stop, task }
    }

    /// The largest `VmRSS` seen, in kB (0 if the process could not be read).
    pub async fn stop(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}
