//! The newcomer's path: `tolem sandbox`, then the café's QR paid with `tolem wallet`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Sandbox(std::process::Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wallet(mpp: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["wallet", "--mpp", mpp, "--customer", "C1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the wallet runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_sandbox_runs_and_the_wallet_pays_the_cafe() {
    let dir = tempfile::tempdir().expect("dir");
    let child = Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--mpps-port",
            "0",
            "--db",
        ])
        .arg(dir.path().join("sandbox.db"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sandbox starts");
    let mut sandbox = Sandbox(child);
    let stdout = sandbox.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut bank = None;
    for line in lines.by_ref() {
        let line = line.expect("a line");
        if let Some(rest) = line.trim().strip_prefix("MPP demobank") {
            bank = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("Try, in another terminal") {
            break;
        }
    }
    let bank = bank.expect("the guide names demobank's address");
    let (ok, out) = wallet(
        &bank,
        &["pay", "TOLEM-STATIC-CAFE-1001", "--amount", "500", "--yes"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("/receipt?id="), "{out}");
    let (ok, out) = wallet(&bank, &["balance"]);
    assert!(ok && out.contains("49 500,00"), "{out}");
}
