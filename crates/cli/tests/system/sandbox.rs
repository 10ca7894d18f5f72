//! The newcomer's path, as the README writes it: its Quick start commands run exactly as written
//! (the sandbox only gets flags that pick free ports and a file of its own), then the café's QR
//! is paid with the README's wallet commands, answering the wallet's questions on its stdin, and
//! 200 ₸ of a purchase is refunded with the README's curl line.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Sandbox(std::process::Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The commands of the README's fenced block that follows `after`, comments taken off.
fn readme_block(after: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let rest = &text[text.find(after).expect("the README's section")..];
    let block = rest.split("```sh\n").nth(1).expect("a sh block");
    let block = block.split("```").next().expect("its end");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `cargo …` as the README writes it, in the repository, with `extra` after the command's words.
fn cargo(command: &str, extra: &[&str]) -> Command {
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("cargo"), "{command}");
    // At the lowest priority, so that the first build does not starve the tests running beside it.
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "19"])
        .arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(words)
        .args(extra)
        .current_dir(root());
    cmd
}

/// Runs a README wallet command for demobank's customer C1 at `bank`, with `input` on stdin.
fn wallet(command: &str, bank: &str, input: &str) -> (bool, String) {
    // The wallet's flags go right after `wallet`, before its subcommand.
    let (before, after) = command.split_once(" wallet ").expect("a wallet command");
    let command = format!("{before} wallet --mpp {bank} --customer C1 {after}");
    let mut child = cargo(&command, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the wallet runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("answers written");
    let out = child.wait_with_output().expect("the wallet ends");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_readme_quick_start_runs_as_written_and_the_wallet_pays_the_cafe() {
    if !crate::harness::sqlite_only("the README's quick start is the sandbox on its SQLite file") {
        return;
    }
    let quick_start = readme_block("## Quick start");
    assert_eq!(quick_start.len(), 2, "{quick_start:?}");
    let (sandbox, tests) = (&quick_start[0], &quick_start[1]);
    assert_eq!(sandbox, "cargo run --release -- sandbox");
    // CI runs the README's test command, exactly (once its PostgreSQL cluster is up).
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == tests),
        ".ci/run must run `{tests}`:\n{ci}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("build.log");
    let db = dir.path().join("sandbox.db");
    let db = db.to_str().expect("a UTF-8 path");
    // The first run builds the release binary: this may take minutes, and says nothing meanwhile.
    let child = cargo(
        sandbox,
        &["--listen", "127.0.0.1:0", "--mpps-port", "0", "--db", db],
    )
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).expect("log"))
    .spawn()
    .expect("cargo runs");
    let mut sandbox = Sandbox(child);
    let stdout = sandbox.0.stdout.take().expect("stdout");
    let mut bank = None;
    let mut ps = None;
    let mut guide = false;
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if let Some(rest) = line.trim().strip_prefix("MPP demobank") {
            bank = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.trim().strip_prefix("listening on ") {
            ps = Some(rest.trim().to_owned());
        }
        if line.starts_with("Try, in another terminal") {
            guide = true;
            break;
        }
        banner.push(line);
    }
    let build = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(guide, "the sandbox did not come up:\n{build}");
    let bank = bank.expect("the guide names demobank's address");
    let ps = ps.expect("the first line names the PS's address");
    // The four screens of the console (issue 14), where they are and what signs in to each.
    let banner = banner.join("\n");
    for (what, url, with) in [
        (
            "operator console",
            format!("{ps}/console/"),
            "token sandbox-admin-token",
        ),
        (
            "MPP cabinet",
            format!("{ps}/console/"),
            "token sandbox-cabinet-demobank",
        ),
        (
            "cashier",
            format!("{ps}/pos/"),
            "API key test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39",
        ),
        ("wallet", format!("{bank}/wallet/"), "customer C1"),
    ] {
        let line = banner
            .lines()
            .find(|l| l.trim().starts_with(what))
            .unwrap_or_else(|| panic!("the banner lists the {what}:\n{banner}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words.contains(&url.as_str()), "{what} at {url}: {line}");
        assert!(line.contains(with), "{what} with {with}: {line}");
    }

    let then = readme_block("Then, in another terminal");
    assert_eq!(then.len(), 2, "{then:?}");
    // The README's pay command asks for the amount and for the go-ahead.
    let (ok, out) = wallet(&then[0], &bank, "500\nда\n");
    assert!(ok, "{out}");
    assert!(out.contains("/receipt?id="), "{out}");
    let (ok, out) = wallet(&then[1], &bank, "");
    assert!(ok && out.contains("49 500,00"), "{out}");

    // The README's refund: a purchase paid with the wallet, 200 ₸ of it given back by the café's
    // POS with the README's curl line (the walk-through's PS, KEY and DEVICE), seen in the balance.
    let refund = readme_block("placed by the café's POS without the customer");
    let (pay, curl, balance) = (&refund[0], &refund[2..refund.len() - 1], refund.last());
    let (ok, out) = wallet(pay, &bank, "");
    assert!(ok, "{out}");
    let number = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Покупка № "))
        .unwrap_or_else(|| panic!("the wallet names the purchase:\n{out}"))
        .to_owned();
    let walk_through = readme_block("## Walk-through");
    let script = format!(
        "set -euo pipefail\n{}\n{}\nN={number}\n{}",
        walk_through[..4]
            .join("\n")
            .replace("http://127.0.0.1:8080", &ps),
        walk_through[4..6].join("\n"),
        curl.join("\n"),
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && said.contains("\"StatusCode\":0")
            && said.contains("ReturnOperationId"),
        "{script}\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out) = wallet(balance.expect("the balance line"), &bank, "");
    assert!(ok && out.contains("49 200,00"), "{out}");
}

/// The banner `tolem sandbox` prints with `args`, up to its guide; the sandbox is then stopped.
fn sandbox_banner(args: &[&str]) -> String {
    let args: Vec<&str> = ["sandbox"].iter().chain(args).copied().collect();
    let (banner, guide) = crate::harness::tolem_until(
        &args,
        &[("RUST_LOG", "warn")],
        crate::harness::Output::Stdout,
        |line| line.starts_with("Try, in another terminal"),
    );
    let banner = banner.join("\n") + "\n";
    assert!(guide.is_some(), "the sandbox did not come up:\n{banner}");
    banner
}

#[test]
fn a_sandbox_started_again_on_other_ports_says_where_its_refunds_still_go() {
    if !crate::harness::sqlite_only("the sandbox's own SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("sandbox.db");
    let db = db.to_str().expect("a UTF-8 path");
    let args = ["--listen", "127.0.0.1:0", "--mpps-port", "0", "--db", db];
    // A fresh database takes the demo MPPs' refund URLs from where they listen: nothing to say.
    let first = sandbox_banner(&args);
    assert!(!first.contains("note:"), "{first}");
    // The same database with the demo MPPs on other (free) ports keeps the URLs of the first
    // start, and says so, naming where refunds go and where the MPP is now.
    let again = sandbox_banner(&args);
    let note = again
        .lines()
        .find(|l| l.starts_with("note: demobank's refunds go to http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("a note on demobank's refunds:\n{again}"));
    let now = again
        .lines()
        .find_map(|l| l.trim().strip_prefix("MPP demobank"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("demobank's address:\n{again}"));
    assert!(note.contains(&format!("not to {now}/refund")), "{note}");
    assert!(
        again.contains("note: demowallet's refunds go to"),
        "{again}"
    );
}

#[test]
fn a_sandbox_on_every_address_puts_a_reachable_one_in_its_links() {
    if !crate::harness::sqlite_only("the sandbox's own SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("sandbox.db");
    let db = db.to_str().expect("a UTF-8 path");
    let banner = sandbox_banner(&["--listen", "0.0.0.0:0", "--mpps-port", "0", "--db", db]);
    assert!(
        banner.contains("note: listening on every address (0.0.0.0:")
            && banner.contains("set TOLEM_PUBLIC_URL"),
        "{banner}"
    );
    assert!(!banner.contains("http://0.0.0.0"), "{banner}");
    assert!(
        banner.contains("listening on http://127.0.0.1:"),
        "{banner}"
    );
}
