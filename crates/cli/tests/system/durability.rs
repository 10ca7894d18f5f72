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
pub(crate) struct Child {
    child: std::process::Child,
    pub(crate) url: String,
}

impl Child {
    pub(crate) fn start(config: &std::path::Path, db: &std::path::Path) -> Child {
        Child::start_at(config, db, Some("127.0.0.1:0"))
    }

    /// `tolem serve` with `--listen listen`, or without it (a configuration with `listeners`);
    /// `url` is where the first listener listens.
    pub(crate) fn start_at(
        config: &std::path::Path,
        db: &std::path::Path,
        listen: Option<&str>,
    ) -> Child {
        Child::start_with(config, db, listen, &[])
    }

    /// [`Child::start_at`] with these environment variables besides the test's own.
    pub(crate) fn start_with(
        config: &std::path::Path,
        db: &std::path::Path,
        listen: Option<&str>,
        env: &[(&str, &str)],
    ) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tolem"));
        command.envs(env.iter().copied());
        command.arg("serve");
        if let Some(listen) = listen {
            command.args(["--listen", listen]);
        }
        let mut child = command
            .arg("--config")
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

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn kill(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }
}

/// A purchase of 100 tenge at the sandbox's café paid by demobank's C1 and a refund of 50 of it
/// placed by r3, on the PS at `url` (a [`Child`]): the refund's id.
pub(crate) async fn paid_and_refunded(url: &str) -> String {
    let http = reqwest::Client::new();
    let call = |path: &str, mpp_call: bool, body: Value| {
        let mut req = http.post(format!("{url}{path}")).json(&body);
        req = if mpp_call {
            req.header("x-caller-name", "demobank")
                .header("x-request-id", "r")
        } else {
            req.header("api-key", API_KEY)
        };
        async move {
            req.send()
                .await
                .expect("answer")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let device = call(
        "/r1/v01/device/register",
        false,
        json!({"DeviceId": "K", "TradePointId": 1001}),
    )
    .await;
    let token = device["Data"]["DeviceToken"].as_str().expect("token");
    let qr = call(
        "/r1/v01/qr/create",
        false,
        json!({"DeviceToken": token, "Amount": 100}),
    )
    .await;
    let scan = call(
        "/api/v1/qr/scan",
        true,
        json!({"qrCode": qr["Data"]["QrToken"], "customerId": "C1"}),
    )
    .await;
    let payment_id = scan["payment"]["paymentId"].as_str().expect("id");
    let paid = call(
        "/api/v1/qr/notifyPayment",
        true,
        notify_body(payment_id, "C1", "SUCCESS", None),
    )
    .await;
    assert_eq!(paid["result"]["resultCode"], "SUCCESS");
    let body = json!({"DeviceToken": token, "QrPaymentId": payment_id, "Amount": 50, "OrganizationBin": "990340001234"});
    let placed = call("/r3/v01/payment/return", false, body).await;
    placed["Data"]["ReturnOperationId"]
        .as_i64()
        .unwrap_or_else(|| panic!("a refund: {placed}"))
        .to_string()
}

impl Drop for Child {
    fn drop(&mut self) {
        // A test that failed half-way leaves no server behind. After `kill` this finds the
        // process already reaped, which is no error worth telling.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_payment_answered_success_survives_sigkill() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    std::fs::write(&config, SANDBOX_TOML).expect("config written");
    let db = fresh_database(dir.path());
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

#[tokio::test]
async fn refunds_in_flight_are_delivered_after_sigkill() {
    use crate::receiver::Receiver;
    let mpp = Receiver::start().await;
    // Every delivery hangs past the PS's timeout until the PS is killed: some are in flight
    // when it dies, and none is credited before, however slow the machine.
    mpp.hold();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    // The POS is answered at once (pos_wait_ms = 0), so that the deliveries are still in flight
    // when the PS is killed.
    let toml = SANDBOX_TOML.replace("http://127.0.0.1:8091/refund", &mpp.url)
        + "\n[refunds]\nretry_delay_ms_initial = 50\nretry_delay_ms_max = 200\nrequest_timeout_ms = 300\nlease_ms = 1000\npoll_interval_ms = 20\npos_wait_ms = 0\n";
    std::fs::write(&config, toml).expect("config written");
    let db = fresh_database(dir.path());
    let http = reqwest::Client::new();
    let server = Child::start(&config, &db);
    let url = server.url.clone();
    let call = |path: String, key: Option<&'static str>, body: Value| {
        let mut req = http.post(format!("{url}{path}")).json(&body);
        req = match key {
            Some(key) => req.header("api-key", key),
            None => req
                .header("x-caller-name", "demobank")
                .header("x-request-id", "r"),
        };
        async move {
            req.send()
                .await
                .expect("answer")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let device = call(
        "/r1/v01/device/register".into(),
        Some(API_KEY),
        json!({"DeviceId": "K", "TradePointId": 1001}),
    )
    .await;
    let token = device["Data"]["DeviceToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut purchases = Vec::new();
    for i in 0..10 {
        let qr = call(
            "/r1/v01/qr/create".into(),
            Some(API_KEY),
            json!({"DeviceToken": token, "Amount": 100 + i}),
        )
        .await;
        let scan = call(
            "/api/v1/qr/scan".into(),
            None,
            json!({"qrCode": qr["Data"]["QrToken"], "customerId": "C1"}),
        )
        .await;
        let payment_id = scan["payment"]["paymentId"]
            .as_str()
            .expect("id")
            .to_owned();
        let paid = call(
            "/api/v1/qr/notifyPayment".into(),
            None,
            notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
        assert_eq!(paid["result"]["resultCode"], "SUCCESS");
        purchases.push(payment_id);
    }
    let mut refunds = Vec::new();
    for payment_id in &purchases {
        let body = json!({"DeviceToken": token, "QrPaymentId": payment_id, "Amount": 50, "OrganizationBin": "990340001234"});
        let placed = call("/r3/v01/payment/return".into(), Some(API_KEY), body).await;
        refunds.push(
            placed["Data"]["ReturnOperationId"]
                .as_i64()
                .expect("placed")
                .to_string(),
        );
    }
    // Killed while the deliveries hang: some are in flight, none is credited.
    eventually("a delivery is in flight", || async {
        !mpp.calls().is_empty()
    })
    .await;
    assert!(
        mpp.credited().is_empty(),
        "nothing credited before the kill"
    );
    server.kill();
    mpp.release();
    let server = Child::start(&config, &db);
    eventually("every refund is credited", || async {
        refunds.iter().all(|id| mpp.credited().contains_key(id))
    })
    .await;
    let credited = mpp.credited();
    for id in &refunds {
        assert_eq!(
            credited.get(id).map(String::as_str),
            Some("50.00"),
            "refund {id} credited once"
        );
    }
    assert_eq!(credited.len(), refunds.len());
    // Some refunds were delivered more than once (at least once is the PS's promise; applying
    // each once is the MPP's, tested with the real endpoint below).
    assert!(mpp.calls().len() > refunds.len());
    server.kill();
}

#[tokio::test]
async fn refunds_survive_sigkill_and_the_reference_mpp_applies_each_once() {
    use crate::reference_mpp::TestMpp;
    use tolem_wire::Locale;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("ps.toml");
    let db = fresh_database(dir.path());
    // The MPP's address is needed in the PS's configuration before the PS starts, and the PS's
    // address by the MPP: start the MPP against a placeholder and learn the PS's after.
    let bank = TestMpp::start("http://127.0.0.1:9").await;
    // Until the kill, the refunds go to an address where nothing listens: each is placed and
    // told to the POS (pos_wait_ms = 0), and none can be delivered before the PS dies.
    // (Port 9, discard: nothing listens there, and no test's listener can take it.)
    let toml = SANDBOX_TOML.replace("http://127.0.0.1:8091/refund", "http://127.0.0.1:9/refund")
        + "\n[refunds]\nretry_delay_ms_initial = 50\nretry_delay_ms_max = 200\nrequest_timeout_ms = 300\nlease_ms = 1000\npoll_interval_ms = 20\npos_wait_ms = 0\n";
    std::fs::write(&config, toml).expect("config written");
    let server = Child::start(&config, &db);
    let http = reqwest::Client::new();
    let pos = |path: &str, body: Value| {
        let req = http
            .post(format!("{}{path}", server.url))
            .header("api-key", API_KEY)
            .json(&body);
        async move {
            req.send()
                .await
                .expect("answer")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let device = pos(
        "/r1/v01/device/register",
        json!({"DeviceId": "K", "TradePointId": 1001}),
    )
    .await;
    let token = device["Data"]["DeviceToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let client = tolem_mpp::Mpp::open(
        &tolem_mpp::MppConfig {
            ps_url: server.url.clone(),
            database: bank.db_path(),
            ..Default::default()
        },
        tolem_sdk::RetryPolicy::default().with_delays_ms(20, 200),
    )
    .expect("the same books, pointed at this PS");
    let mut purchases = Vec::new();
    for i in 0..8u64 {
        let qr = pos(
            "/r1/v01/qr/create",
            json!({"DeviceToken": token, "Amount": 100 + i}),
        )
        .await;
        let scan = client
            .scan(
                "C1",
                qr["Data"]["QrToken"].as_str().expect("qr"),
                Locale::Ru,
            )
            .await
            .expect("scan");
        let id = scan.payment_id.expect("id");
        client
            .confirm("C1", &id, None, Locale::Ru)
            .await
            .expect("paid");
        purchases.push(id);
    }
    let paid: i64 = (0..8).map(|i| (100 + i) * 100).sum();
    for payment in &purchases {
        let body = json!({"DeviceToken": token, "QrPaymentId": payment, "Amount": 50, "OrganizationBin": "990340001234"});
        assert_eq!(pos("/r3/v01/payment/return", body).await["StatusCode"], 0);
    }
    assert_eq!(
        bank.balance("C1").await,
        5_000_000 - paid,
        "no refund credited before the kill"
    );
    server.kill();
    let server = Child::start(&config, &db);
    // The MPP's address as the operator sets it after the restart (the stored one stands).
    let admin = |method: reqwest::Method, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{}/admin/v1/mpps/demobank", server.url))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move { req.send().await.expect("answer") }
    };
    let mut mpp: Value = admin(reqwest::Method::GET, None)
        .await
        .json()
        .await
        .expect("the MPP");
    mpp["refund_url"] = json!(format!("{}/refund", bank.url));
    assert_eq!(admin(reqwest::Method::PUT, Some(mpp)).await.status(), 200);
    let want = 5_000_000 - paid + 8 * 5_000;
    eventually("every refund is credited", || async {
        bank.balance("C1").await == want
    })
    .await;
    assert_eq!(
        bank.balance("C1").await,
        want,
        "every refund credited exactly once"
    );
    assert!(bank.balanced().await);
    server.kill();
}

/// A database restored from a backup has lost the ids its later history handed out, which the
/// MPPs, the POS and the registers still know; `tolem restored` moves the ids past them, so an
/// operation made after the restore never takes one of them (DECISIONS 40). Without it, the next
/// payment would take the id of the first one the backup missed.
#[tokio::test]
async fn after_a_restore_no_operation_id_is_issued_twice() {
    if !sqlite_only("a SQLite file restored from its online backup") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let kept = ps.paid(&device, 100, "C1").await;
    let backup = dir.path().join("backup.db");
    rusqlite::Connection::open(ps.db_path())
        .expect("the database")
        .execute("VACUUM INTO ?1", [backup.to_str().expect("UTF-8")])
        .expect("an online backup");
    // What the backup misses: a payment and its refund, their ids already out in the world.
    let lost = ps.paid(&device, 300, "C1").await;
    let refund = crate::refunds::refund_r3(&ps, &device, lost, 100.0).await;
    let lost_refund = refund["Data"]["ReturnOperationId"]
        .as_i64()
        .unwrap_or_else(|| panic!("a refund: {refund}"));
    let clock = ps.clock.clone();
    let mut ps = ps;
    ps.shutdown().await;
    drop(ps);
    // The restore as docs/deployment.md writes it: the backup in place (here beside the lost
    // file, which the stopped PS's test harness still holds), no log beside it.
    let db = dir.path().join("restored.db");
    std::fs::copy(&backup, &db).expect("the backup in place");
    let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["restored", "--db"])
        .arg(&db)
        .env_remove("TOLEM_CONFIG")
        .output()
        .expect("tolem restored runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("the next was {}", kept + 1)),
        "{said}"
    );
    let ps = TestPs::start_with(test_config(&db), clock).await;
    let after = ps.paid(&device, 50, "C2").await;
    assert!(
        after > lost.max(lost_refund),
        "id {after} after the restore; {lost} and {lost_refund} were handed out before it"
    );
    // Started again, the PS keeps counting from there.
    let ps = ps.restart().await;
    assert_eq!(ps.paid(&device, 50, "C2").await, after + 1);
}

/// The gap itself, on either database: the next id moves by it, past every id held.
#[tokio::test]
async fn the_operation_ids_move_by_the_gap_asked() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let last = ps.paid(&device, 100, "C1").await;
    let (before, after) = tolem_ps::store::skip_operation_ids(&ps.db_path(), 1_000).expect("moved");
    assert_eq!((before, after), (last + 1, last + 1_001));
    assert_eq!(ps.paid(&device, 100, "C1").await, last + 1_001);
    assert!(tolem_ps::store::skip_operation_ids(&ps.db_path(), 0).is_err());
}

/// `tolem restored` runs with every node stopped. On SQLite the file's lock, which `tolem
/// serve` holds, refuses it; on PostgreSQL, where no lock shows a node, the node's sessions do.
/// Stopped, it runs.
#[tokio::test]
async fn restored_refuses_while_a_node_still_serves_the_database() {
    if crate::backend::backend() == crate::backend::Backend::Sqlite {
        eprintln!("PostgreSQL only: a SQLite file's lock is `tolem serve`'s, not the harness's");
        return;
    }
    let ps = TestPs::start().await;
    let db = ps.db_path();
    let restored = || {
        let out = Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args(["restored", "--db"])
            .arg(&db)
            .env_remove("TOLEM_CONFIG")
            .env_remove("TOLEM_DATABASE")
            .output()
            .expect("tolem restored runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = restored();
    assert!(!ok, "{err}");
    assert!(err.contains("other session(s) are connected"), "{err}");
    let mut ps = ps;
    ps.shutdown().await;
    drop(ps);
    eventually(
        "the stopped PS's sessions are gone and the ids moved",
        || async { restored().0 },
    )
    .await;
}
