//! Nothing is lost, nothing happens twice: restarts, and a crash right after SUCCESS.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::*;

const NOTIFY: &str = "/api/v1/qr/notifyPayment";

#[tokio::test]
async fn a_duplicate_after_a_restart_gets_the_same_body() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 300).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    let body = notify_body(&payment_id, "C1", "SUCCESS", None);
    let (_, first) = ps.mpp_call(NOTIFY, "demobank", "n1", &body).await;
    assert_eq!(result_code(&first), "SUCCESS");
    let ps = ps.restart().await;
    let (_, again) = ps.mpp_call(NOTIFY, "demobank", "n1", &body).await;
    assert_eq!(again, first);
    // The POS idempotency records survive too.
    let qr_body = json!({"DeviceToken": device, "Amount": 42});
    let (_, a) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("k"),
            Some(&qr_body),
        )
        .await;
    let ps = ps.restart().await;
    let (_, b) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("k"),
            Some(&qr_body),
        )
        .await;
    assert_eq!(a, b);
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
}

/// The `tolem` binary as a child process; killed with SIGKILL on drop.
struct Child {
    child: std::process::Child,
    url: String,
}

impl Child {
    fn start(config: &std::path::Path, db: &std::path::Path) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--db")
            .arg(db)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tolem starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("the address line")
            .to_owned();
        Child { child, url }
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }
}

#[tokio::test]
async fn a_payment_answered_success_survives_sigkill() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    std::fs::write(&config, SANDBOX_TOML).expect("config written");
    let db = dir.path().join("ps.db");
    let http = reqwest::Client::new();
    let server = Child::start(&config, &db);
    let url = server.url.clone();
    let post = |path: &str, body: Value, headers: Vec<(&'static str, String)>| {
        let mut req = http.post(format!("{url}{path}")).json(&body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let key = vec![("api-key", API_KEY.to_owned())];
    let device: Value = post(
        "/r1/v01/device/register",
        json!({"DeviceId": "K", "TradePointId": 1001}),
        key.clone(),
    )
    .await
    .expect("answer")
    .json()
    .await
    .expect("json");
    let token = device["Data"]["DeviceToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let mpp = vec![
        ("x-caller-name", "demobank".to_owned()),
        ("x-request-id", "r".to_owned()),
    ];
    let mut paid = Vec::new();
    for i in 0..5 {
        let created: Value = post(
            "/r1/v01/qr/create",
            json!({"DeviceToken": token, "Amount": 100 + i}),
            key.clone(),
        )
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
        let qr = created["Data"]["QrToken"].as_str().expect("qr").to_owned();
        let scanned: Value = post(
            "/api/v1/qr/scan",
            json!({"qrCode": qr, "customerId": "C1"}),
            mpp.clone(),
        )
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
        let payment_id = scanned["payment"]["paymentId"]
            .as_str()
            .expect("id")
            .to_owned();
        let answer = post(
            NOTIFY,
            notify_body(&payment_id, "C1", "SUCCESS", None),
            mpp.clone(),
        )
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
        assert_eq!(result_code(&answer), "SUCCESS");
        paid.push((payment_id, answer));
    }
    // Killed the moment the last SUCCESS was read.
    server.kill();
    let server = Child::start(&config, &db);
    for (payment_id, answer) in &paid {
        let status: Value = http
            .get(format!("{}/r1/v02/payment/status/{payment_id}", server.url))
            .header("api-key", API_KEY)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        assert_eq!(status["Data"]["Status"], "Processed", "{payment_id}");
        let again = http
            .post(format!("{}{NOTIFY}", server.url))
            .header("x-caller-name", "demobank")
            .header("x-request-id", "r")
            .json(&notify_body(payment_id, "C1", "SUCCESS", None))
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("body");
        assert_eq!(&again, answer);
    }
    server.kill();
}
