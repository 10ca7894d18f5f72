//! The `curl` examples of the README's walk-through, `docs/sandbox.md` and `docs/admin-api.md`,
//! run by bash as a person pastes them, against a real `tolem sandbox` (the only change: the PS's address, since
//! the test's sandbox listens on a free port).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// `tolem sandbox` on free ports with a database of its own, stopped when dropped.
struct Sandbox {
    child: std::process::Child,
    url: String,
    /// Its stdout, kept open while it runs, as a terminal would.
    _lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    fn start(env: &[(&str, &str)]) -> Sandbox {
        let dir = tempfile::tempdir().expect("dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args([
                "sandbox",
                "--listen",
                "127.0.0.1:0",
                "--mpps-port",
                "0",
                "--db",
            ])
            .arg(crate::harness::fresh_database(dir.path()))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the sandbox starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a line").expect("readable");
        let url = first.strip_prefix("listening on ").expect("the address");
        Sandbox {
            url: url.to_owned(),
            child,
            _lines: lines,
            _dir: dir,
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `sh` blocks of a file of the repository, from `after` to the next `## ` heading, that call
/// the sandbox's PS.
fn shell_blocks(file: &str, after: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("the file");
    let rest = &text[text.find(after).expect("the section")..];
    let rest = match rest[after.len()..].find("\n## ") {
        Some(end) => &rest[..after.len() + end],
        None => rest,
    };
    rest.split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("http://127.0.0.1:8080") && !b.contains("cargo run"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_walk_through_and_the_sandbox_examples_run_as_written() {
    let sandbox = Sandbox::start(&[]);
    let url = sandbox.url.as_str();

    // (file, section, what the block's output shows when it worked), in the order they run:
    // the admin example suspends the café, so it goes last.
    let examples = [
        ("README.md", "## Walk-through", "\"Status\":\"Processed\""),
        ("docs/sandbox.md", "## Things to try", "linkReceipt"),
        ("docs/admin-api.md", "## Pages", "\"next\":"),
        ("docs/admin-api.md", "## Changes made at once", "200"),
        ("docs/admin-api.md", "Example:", "\"status\":\"suspended\""),
    ];
    for (file, section, shows) in examples {
        let blocks = shell_blocks(file, section);
        assert_eq!(blocks.len(), 1, "{file}: one block after {section}");
        let script = blocks[0].replace("http://127.0.0.1:8080", url);
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .output()
            .expect("bash runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}:\n{script}\n{text}\n{errors}");
        // Every call the block makes succeeds.
        for line in text.lines().filter(|l| l.starts_with('{')) {
            assert!(
                !line.contains("\"resultCode\":\"") && !line.contains("\"StatusCode\":")
                    || line.contains("\"resultCode\":\"SUCCESS\"")
                    || line.contains("\"StatusCode\":0"),
                "{file}: {line}"
            );
        }
        assert!(text.contains(shows), "{file}: {shows} in\n{text}");
    }
}

#[tokio::test]
async fn the_sandbox_keeps_a_configured_public_url() {
    let sandbox = Sandbox::start(&[("TOLEM_PUBLIC_URL", "https://qr.example.kz")]);
    let url = sandbox.url.as_str();
    let http = reqwest::Client::new();
    let call = |path: &str, id: &str, body: serde_json::Value| {
        http.post(format!("{url}/api/v1/qr/{path}"))
            .header("X-Caller-Name", "demobank")
            .header("X-Request-ID", id)
            .json(&body)
            .send()
    };
    let scan: serde_json::Value = call(
        "scan",
        "s1",
        serde_json::json!({"qrCode": "TOLEM-STATIC-CAFE-1001", "customerId": "C1"}),
    )
    .await
    .expect("scan")
    .json()
    .await
    .expect("json");
    let id = scan["payment"]["paymentId"]
        .as_str()
        .unwrap_or_else(|| panic!("a payment id: {scan}"));
    let paid: serde_json::Value = call(
        "notifyPayment",
        "n1",
        crate::harness::notify_body(id, "C1", "SUCCESS", Some("500")),
    )
    .await
    .expect("notify")
    .json()
    .await
    .expect("json");
    let link = paid["linkReceipt"].as_str().expect("a receipt link");
    assert!(
        link.starts_with("https://qr.example.kz/receipt?id="),
        "{link}"
    );
}
