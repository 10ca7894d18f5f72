//! The MPP kit end to end: the reference MPP (its ledger, pay flow and `/refund`) against the
//! real PS, both on port 0.

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tolem_mpp::flows::{FlowError, Notice, PaymentView};
use tolem_mpp::{Mpp, MppConfig};
use tolem_sdk::RetryPolicy;
use tolem_wire::mpp::{ParameterValue, QrCodeType};
use tolem_wire::{Amount, Locale};

use crate::harness::*;

/// A running reference MPP with demo customers C1 (50 000 ₸) and C2 (10 000 ₸).
pub struct TestMpp {
    pub url: String,
    /// Where its `/refund` is served: on its own listener, or beside the app at `url`.
    pub refund_url: String,
    pub mpp: Mpp,
    stop: Option<oneshot::Sender<()>>,
    dir: tempfile::TempDir,
}

impl TestMpp {
    pub async fn start(ps_url: &str) -> TestMpp {
        TestMpp::start_with(ps_url, false).await
    }

    /// With `refund_listener`, `/refund` is served on a listener of its own.
    pub async fn start_with(ps_url: &str, refund_listener: bool) -> TestMpp {
        let dir = tempfile::tempdir().expect("dir");
        let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let listener = bind().await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let refund_listener = match refund_listener {
            true => Some(bind().await.expect("bind")),
            false => None,
        };
        let refund_url = match &refund_listener {
            Some(refunds) => format!("http://{}/refund", refunds.local_addr().expect("addr")),
            None => format!("{url}/refund"),
        };
        let config = MppConfig {
            ps_url: ps_url.to_owned(),
            database: dir.path().join("mpp.db"),
            ..MppConfig::default()
        };
        let retry = RetryPolicy::default().with_delays_ms(20, 200);
        let mpp = Mpp::open(&config, retry).expect("the MPP opens");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(tolem_mpp::serve(
            listener,
            refund_listener,
            mpp.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        TestMpp {
            url,
            refund_url,
            mpp,
            stop: Some(stop),
            dir,
        }
    }

    /// The MPP's database file (to open the same books from another client).
    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("mpp.db")
    }

    pub async fn balance(&self, customer: &str) -> i64 {
        self.mpp
            .account(customer)
            .await
            .expect("an account")
            .balance_tiyn
    }

    pub async fn balanced(&self) -> bool {
        self.mpp.ledger_balanced().await.expect("ledger readable")
    }
}

impl Drop for TestMpp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A PS whose demobank refunds go to a fresh reference MPP.
pub async fn ps_and_mpp() -> (TestPs, TestMpp) {
    let ps = TestPs::start().await;
    let bank = TestMpp::start(&ps.url).await;
    ps.set_refund_url("demobank", &format!("{}/refund", bank.url))
        .await;
    (ps, bank)
}

const C1_OPENING: i64 = 5_000_000;

/// C1 pays a Dynamic QR of 100 ₸ at POS-1 through `bank`; the purchase's id.
async fn c1_paid_100(ps: &TestPs, bank: &TestMpp) -> i64 {
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scan");
    bank.mpp
        .confirm("C1", &id.to_string(), None, Locale::Ru)
        .await
        .expect("paid");
    id
}

#[tokio::test]
async fn dynamic_static_and_custom_payments_move_the_ledger() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1500).await;
    let scan = bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scan");
    assert_eq!(
        (scan.kind, scan.amount),
        (QrCodeType::Dynamic, Amount::from_tenge(1500))
    );
    let paid = bank
        .mpp
        .confirm("C1", &id.to_string(), None, Locale::Ru)
        .await
        .expect("paid");
    assert_eq!(paid.status, "paid");
    assert!(paid.receipt.is_some());
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    assert_eq!(bank.balance("C1").await, C1_OPENING - 150_000);
    // Static: the customer enters whole tenge.
    let scan = bank
        .mpp
        .scan("C1", STATIC_QR, Locale::Kk)
        .await
        .expect("scan");
    let payment_id = scan.payment_id.expect("id");
    let refused = bank
        .mpp
        .confirm(
            "C1",
            &payment_id,
            Some(Amount::from_tiyn(5_050)),
            Locale::Kk,
        )
        .await;
    assert!(matches!(refused, Err(FlowError::Invalid(_))));
    bank.mpp
        .confirm("C1", &payment_id, Amount::from_tenge(700), Locale::Kk)
        .await
        .expect("paid");
    assert_eq!(bank.balance("C1").await, C1_OPENING - 150_000 - 70_000);
    // Custom: the form, then the frozen amount.
    let scan = bank
        .mpp
        .scan("C1", PARKING_QR, Locale::Ru)
        .await
        .expect("scan");
    let payment_id = scan.payment_id.expect("id");
    let values = vec![
        ParameterValue {
            id: 3932,
            value: Some("777ABC02".to_owned()),
        },
        ParameterValue {
            id: 3933,
            value: Some("3h".to_owned()),
        },
    ];
    let amount = bank
        .mpp
        .checkout("C1", &payment_id, values, Locale::Ru)
        .await
        .expect("checkout");
    assert_eq!(amount, Amount::from_tenge(800).expect("fits"));
    bank.mpp
        .confirm("C1", &payment_id, None, Locale::Ru)
        .await
        .expect("paid");
    assert_eq!(
        bank.balance("C1").await,
        C1_OPENING - 150_000 - 70_000 - 80_000
    );
    assert!(bank.balanced().await);
    let account = bank.mpp.account("C1").await.expect("account");
    assert_eq!(
        account.history.len(),
        4,
        "three payments and the opening deposit"
    );
    assert_eq!(account.notifications.len(), 3);
}

#[tokio::test]
async fn back_and_failures_leave_the_money_where_it_was() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    // Back: CANCELLED_BY_CLIENT, nothing debited.
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    bank.mpp.scan("C2", &qr, Locale::Ru).await.expect("scan");
    let back = bank
        .mpp
        .back("C2", &id.to_string(), Locale::Ru)
        .await
        .expect("back");
    assert_eq!(
        (back.status.as_str(), back.ps_code.as_deref()),
        ("cancelled", Some("CANCELLED_BY_CLIENT"))
    );
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    // Expired confirmation: debited, the PS refuses, the debit is reversed.
    let (qr, id) = ps.dynamic_qr(&device, 300).await;
    bank.mpp.scan("C2", &qr, Locale::Ru).await.expect("scan");
    ps.advance(70);
    let late: PaymentView = bank
        .mpp
        .confirm("C2", &id.to_string(), None, Locale::Ru)
        .await
        .expect("answered");
    assert_eq!(
        (late.status.as_str(), late.ps_code.as_deref()),
        ("rejected", Some("PAYMENT_INCORRECT_STATUS"))
    );
    assert_eq!(bank.balance("C2").await, 1_000_000);
    // Not enough money: the PS is told the payment failed.
    let (qr, id) = ps.dynamic_qr(&device, 20_000).await;
    bank.mpp.scan("C2", &qr, Locale::Ru).await.expect("scan");
    let poor = bank
        .mpp
        .confirm("C2", &id.to_string(), None, Locale::Ru)
        .await;
    assert!(matches!(poor, Err(FlowError::InsufficientFunds)));
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    assert_eq!(bank.balance("C2").await, 1_000_000);
    assert!(bank.balanced().await);
    let account = bank.mpp.account("C2").await.expect("account");
    assert!(
        account.notifications.iter().any(
            |n| matches!(n, Notice::Rejected { code, .. } if code == "PAYMENT_INCORRECT_STATUS")
        )
    );
}

/// C1 pays a Dynamic QR of 1 000 ₸ and the cashier refunds 400 through a return QR the customer
/// scanned (r2); returns once the bank has credited it.
async fn pay_1000_and_refund_400(ps: &TestPs, bank: &TestMpp) {
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1000).await;
    bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scan");
    bank.mpp
        .confirm("C1", &id.to_string(), None, Locale::Ru)
        .await
        .expect("paid");
    let (qr_return_id, token) = ps.return_qr(&device).await;
    let scan = bank.mpp.scan("C1", &token, Locale::Ru).await.expect("scan");
    assert_eq!(
        (scan.kind, scan.refund_id),
        (QrCodeType::Refund, Some(qr_return_id.to_string()))
    );
    let body = json!({"DeviceToken": device, "QrPaymentId": id, "QrReturnId": qr_return_id, "Amount": 400});
    assert_eq!(
        ps.pos("POST", "/r2/v01/payment/return", API_KEY, Some(&body))
            .await
            .1["StatusCode"],
        0
    );
    ps.wait_until("the refund is credited", || async {
        bank.balance("C1").await == C1_OPENING - 60_000
    })
    .await;
}

#[tokio::test]
async fn refunds_reach_the_customer_once() {
    let (ps, bank) = ps_and_mpp().await;
    pay_1000_and_refund_400(&ps, &bank).await;
    // A Custom payment cancelled by the provider comes back in full.
    let scan = bank
        .mpp
        .scan("C1", PARKING_QR, Locale::Ru)
        .await
        .expect("scan");
    let payment_id = scan.payment_id.expect("id");
    let values = vec![
        ParameterValue {
            id: 3932,
            value: Some("A".into()),
        },
        ParameterValue {
            id: 3933,
            value: Some("1h".into()),
        },
    ];
    bank.mpp
        .checkout("C1", &payment_id, values, Locale::Ru)
        .await
        .expect("checkout");
    bank.mpp
        .confirm("C1", &payment_id, None, Locale::Ru)
        .await
        .expect("paid");
    let (status, _) = ps
        .admin(
            "POST",
            &format!("/admin/v1/payments/{payment_id}/cancel"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 201);
    ps.wait_until("the cancellation is credited", || async {
        bank.balance("C1").await == C1_OPENING - 60_000
    })
    .await;
    assert!(bank.balanced().await);
    let account = bank.mpp.account("C1").await.expect("account");
    assert_eq!(
        account
            .notifications
            .iter()
            .filter(|n| matches!(n, Notice::Refunded { .. }))
            .count(),
        2
    );
}

#[tokio::test]
async fn a_refund_listener_of_its_own_serves_refunds_and_nothing_else() {
    let ps = TestPs::start().await;
    let bank = TestMpp::start_with(&ps.url, true).await;
    ps.set_refund_url("demobank", &bank.refund_url).await;
    let http = reqwest::Client::new();
    let refund = json!({"customerId": "C1", "paymentId": "1", "refundAmount": "500.00",
        "refundId": "FORGED-1", "linkReceipt": "http://x/y"});
    // Whoever reaches the app cannot credit a customer...
    let forged = http
        .post(format!("{}/refund", bank.url))
        .json(&refund)
        .send()
        .await
        .expect("the app answers");
    assert_eq!(forged.status(), 404);
    // ...and the refund listener serves no app.
    let base = bank.refund_url.trim_end_matches("/refund");
    let app = http
        .get(format!("{base}/app/v1/customers/C1"))
        .send()
        .await
        .expect("the refund listener answers");
    assert_eq!(app.status(), 404);
    assert_eq!(bank.balance("C1").await, C1_OPENING);
    // The app's root leads to the wallet; the refund listener's is nothing.
    let root = http
        .get(format!("{}/", bank.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        (root.status().as_u16(), root.url().path()),
        (200, "/wallet/")
    );
    let root = http.get(format!("{base}/")).send().await.expect("answer");
    assert_eq!(root.status(), 404);
    // The PS's refund reaches it there.
    pay_1000_and_refund_400(&ps, &bank).await;
    assert!(bank.balanced().await);
}

/// `tolem mpp` started with `args` until it says it started: everything it wrote to stderr.
fn started_mpp(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bank.db");
    let mpp = [
        "mpp",
        "--ps",
        "http://127.0.0.1:9",
        "--db",
        db.to_str().expect("UTF-8"),
    ];
    let args: Vec<&str> = mpp.iter().chain(args).copied().collect();
    let (mut said, started) = crate::harness::tolem_until(
        &args,
        &[("RUST_LOG", "info")],
        crate::harness::Output::Stderr,
        |line| line.contains("reference MPP started"),
    );
    said.extend(started.clone());
    let said = said.join("\n") + "\n";
    assert!(started.is_some(), "{said}");
    said
}

#[test]
fn refund_beside_the_app_off_loopback_is_warned_of() {
    let warning = "/refund is served beside the app API";
    let off_loopback = started_mpp(&["--listen", "0.0.0.0:0"]);
    assert!(
        off_loopback
            .lines()
            .any(|l| l.contains("WARN") && l.contains(warning) && l.contains("--refund-listen")),
        "{off_loopback}"
    );
    // On loopback (the sandbox), or with /refund on an address of its own: no warning.
    let local = started_mpp(&["--listen", "127.0.0.1:0"]);
    assert!(!local.contains(warning), "{local}");
    let apart = started_mpp(&["--listen", "0.0.0.0:0", "--refund-listen", "127.0.0.1:0"]);
    assert!(!apart.contains(warning), "{apart}");
}

#[tokio::test]
async fn notify_payment_completes_once_when_the_ps_comes_back() {
    let ps = TestPs::start().await;
    let addr = ps.url.trim_start_matches("http://").to_owned();
    let bank = TestMpp::start(&ps.url).await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 250).await;
    bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scan");
    // The PS goes away; the customer confirms meanwhile.
    let (db, clock) = (ps.db_path(), ps.clock.clone());
    let mut ps = ps;
    ps.shutdown().await;
    let mpp = bank.mpp.clone();
    let paying =
        tokio::spawn(async move { mpp.confirm("C1", &id.to_string(), None, Locale::Ru).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!paying.is_finished(), "still retrying");
    // Back on the same address and database.
    let ps = TestPs::start_at(&addr, test_config(&db), clock).await;
    let paid = paying.await.expect("joined").expect("answered");
    assert_eq!(paid.status, "paid");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    assert_eq!(bank.balance("C1").await, C1_OPENING - 25_000);
    assert!(bank.balanced().await);
}

#[tokio::test]
async fn the_register_reconciles_with_the_books_and_differences_are_listed() {
    use tolem_mpp::reconcile::{Difference, EDGE_MARGIN_MS};
    use tolem_ps::clock::Clock;
    use tolem_ps::registers::make::{self, Format};
    use tolem_ps::registers::{Period, RegisterKind};

    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let mut paid = Vec::new();
    for (customer, amount) in [("C1", 1000), ("C2", 300), ("C1", 120)] {
        let (qr, id) = ps.dynamic_qr(&device, amount).await;
        bank.mpp
            .scan(customer, &qr, Locale::Ru)
            .await
            .expect("scan");
        bank.mpp
            .confirm(customer, &id.to_string(), None, Locale::Ru)
            .await
            .expect("paid");
        paid.push(id);
    }
    let body = json!({"DeviceToken": device, "QrPaymentId": paid[0], "Amount": 250, "OrganizationBin": "990340001234"});
    let (_, answer) = ps
        .pos("POST", "/r3/v01/payment/return", API_KEY, Some(&body))
        .await;
    assert_eq!(answer["StatusCode"], 0, "{answer}");
    let refund_id = answer["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("ReturnOperationId");
    ps.wait_until("the refund is credited", || async {
        bank.balance("C1").await == C1_OPENING - 100_000 - 12_000 + 25_000
    })
    .await;
    // The MPP credits before it answers, so the PS may record the completion a moment after the
    // balance moved; the register counts refunds the PS has recorded as completed.
    crate::refunds::wait_refund(&ps, refund_id, "completed").await;
    // The day's register, as the PS makes it (once the day is over).
    let day = ps.clock.now().to_zoned_datetime(ps.app.zone.clone()).date();
    // A day's register can be made once it has ended and settled (from 00:05 the next day).
    ps.advance(86_400 + make::REGISTER_SETTLE_MIN.as_secs());
    let period = Period::parse(RegisterKind::Daily, &day.to_string()).expect("a day");
    let request = make::request(&ps.app, "demobank", period, Format::Csv).expect("a request");
    let dir = tempfile::tempdir().expect("dir");
    let (csv, _) = make::make_in_dir(&ps.app, request, dir.path())
        .await
        .expect("a register");
    let (from, to) = period.bounds(&ps.app.zone).expect("bounds");
    let (from, to) = (from.as_millisecond(), to.as_millisecond());
    let differences = bank
        .mpp
        .reconcile(&csv, from, to)
        .await
        .expect("reconciled");
    assert_eq!(differences, vec![], "the PS and the MPP agree");
    // A register that lost a line and changed an amount: both are listed.
    let text = std::fs::read_to_string(&csv).expect("text");
    let lines: Vec<&str> = text.lines().collect();
    let dropped = lines[2];
    let changed = lines[3].replace(",300.00,", ",301.00,");
    assert_ne!(changed, lines[3], "the second operation is the 300 ₸ one");
    let tampered: Vec<String> = [
        lines[..2].to_vec(),
        vec![changed.as_str()],
        lines[4..].to_vec(),
    ]
    .concat()
    .into_iter()
    .map(str::to_owned)
    .collect();
    std::fs::write(&csv, tampered.join("\n")).expect("written");
    let differences = bank
        .mpp
        .reconcile(&csv, from, to)
        .await
        .expect("reconciled");
    assert_eq!(differences.len(), 2, "{differences:?}");
    assert!(differences.iter().any(|d| matches!(d, Difference::Differs { register, .. } if register.amount == Amount::from_tenge(301).expect("fits"))));
    // The MPP books by its own (real) clock: an operation within the margin of the day's edge,
    // as when this runs in the hour either side of midnight in Almaty, is near the edge instead.
    let edge = |at: i64| at < from + EDGE_MARGIN_MS || at >= to - EDGE_MARGIN_MS;
    assert!(
        differences.iter().any(|d| match d {
            Difference::MissingInRegister { entry } => {
                dropped.contains(&entry.ps_operation_id) && !edge(entry.at_ms)
            }
            Difference::NearTheEdge { entry } => {
                dropped.contains(&entry.ps_operation_id) && edge(entry.at_ms)
            }
            _ => false,
        }),
        "{differences:?}"
    );
}

#[tokio::test]
async fn concurrent_confirms_and_back_debit_once() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1000).await;
    bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scan");
    let id = id.to_string();
    let confirms = (0..5).map(|_| bank.mpp.confirm("C1", &id, None, Locale::Ru));
    let (answers, back) = tokio::join!(
        futures::future::join_all(confirms),
        bank.mpp.back("C1", &id, Locale::Ru)
    );
    let paid = answers
        .iter()
        .filter(|a| a.as_ref().is_ok_and(|v| v.status == "paid"))
        .count();
    // Either one confirm won (and Back was refused) or Back won (and every confirm was refused).
    match back {
        Ok(view) => assert_eq!((view.status.as_str(), paid), ("cancelled", 0)),
        Err(_) => assert_eq!(paid, 1),
    }
    assert_eq!(
        bank.balance("C1").await,
        C1_OPENING - 100_000 * i64::try_from(paid).expect("small")
    );
    assert!(bank.balanced().await);
}

#[tokio::test]
async fn the_mpp_refuses_refunds_it_cannot_owe() {
    let (ps, bank) = ps_and_mpp().await;
    let id = c1_paid_100(&ps, &bank).await;
    let http = reqwest::Client::new();
    let refund = |id: &str, payment: &str, customer: &str, amount: &str| json!({"customerId": customer, "paymentId": payment, "refundAmount": amount, "refundId": id, "linkReceipt": "http://r"});
    for (body, why) in [
        (refund("F1", "nope", "C1", "10"), "no such payment"),
        (
            refund("F2", &id.to_string(), "C2", "10"),
            "another customer's payment",
        ),
        (
            refund("F3", &id.to_string(), "C1", "100.01"),
            "more than was paid",
        ),
    ] {
        let answer: Value = http
            .post(format!("{}/refund", bank.url))
            .json(&body)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        assert_eq!(answer["result"]["resultCode"], "PROCESS_FAIL", "{why}");
    }
    assert_eq!(bank.balance("C1").await, C1_OPENING - 10_000);
}

/// The kit runs different refunds at once, so the reference MPP's limit check must hold in its
/// own transaction: ten partial refunds of 30 ₸ of a 100 ₸ payment, each sent twice, all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_partial_refunds_never_exceed_the_payment() {
    let (ps, bank) = ps_and_mpp().await;
    let id = c1_paid_100(&ps, &bank).await;
    let http = reqwest::Client::new();
    let mut sent = tokio::task::JoinSet::new();
    for n in 0..20 {
        let http = http.clone();
        let url = format!("{}/refund", bank.url);
        let body = json!({"customerId": "C1", "paymentId": id.to_string(), "refundAmount": "30",
                          "refundId": format!("P{}", n % 10), "linkReceipt": "http://r"});
        sent.spawn(async move {
            let answer: Value = http
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("json");
            (n % 10, answer)
        });
    }
    let mut answers: Vec<(i32, Value)> = sent.join_all().await;
    answers.sort_by_key(|(refund, _)| *refund);
    for pair in answers.chunks(2) {
        assert_eq!(pair[0], pair[1], "a refundId's answers are identical");
    }
    let codes: Vec<&str> = answers
        .iter()
        .step_by(2)
        .map(|(_, a)| a["result"]["resultCode"].as_str().expect("code"))
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == "SUCCESS").count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "PROCESS_FAIL").count(),
        7,
        "{codes:?}"
    );
    assert_eq!(bank.balance("C1").await, C1_OPENING - 10_000 + 9_000);
    assert!(bank.balanced().await);
}

/// The state a crash leaves between the reference MPP's credit and the kit's record of it: the
/// ledger's mark is committed, the kit's answer is not (its row removed here, its claim put back).
/// The PS's retry calls the hook again with the same refundId, and the mark keeps it from
/// crediting twice.
#[tokio::test]
async fn a_refund_credited_but_not_recorded_is_not_credited_again() {
    let (ps, bank) = ps_and_mpp().await;
    let id = c1_paid_100(&ps, &bank).await;
    let http = reqwest::Client::new();
    let body = json!({"customerId": "C1", "paymentId": id.to_string(), "refundAmount": "40",
                      "refundId": "K1", "linkReceipt": "http://r"});
    let send = || async {
        http.post(format!("{}/refund", bank.url))
            .json(&body)
            .send()
            .await
            .expect("answer")
            .json::<Value>()
            .await
            .expect("json")
    };
    assert_eq!(send().await["result"]["resultCode"], "SUCCESS");
    let after_credit = bank.balance("C1").await;
    assert_eq!(after_credit, C1_OPENING - 10_000 + 4_000);
    let db = rusqlite::Connection::open(bank.db_path()).expect("db");
    db.execute_batch(
        "INSERT INTO tolem_refund_claims (refund_id, payment_id, customer_id, amount_tiyn, link_receipt, attempts, claimed_at_ms) \
         SELECT refund_id, payment_id, customer_id, amount_tiyn, 'http://r', 1, created_at_ms FROM tolem_refunds WHERE refund_id = 'K1'; \
         DELETE FROM tolem_refunds WHERE refund_id = 'K1';",
    )
    .expect("the crash's state");
    assert_eq!(send().await["result"]["resultCode"], "SUCCESS");
    assert_eq!(bank.balance("C1").await, after_credit, "credited once");
    let notices = bank.mpp.account("C1").await.expect("account").notifications;
    let refunds = notices
        .iter()
        .filter(|n| matches!(n, Notice::Refunded { .. }))
        .count();
    assert_eq!(refunds, 1, "notified once");
    assert!(bank.balanced().await);
}

/// A refund that arrives before the PS's answer to the payment's notifyPayment (lost, or the PS
/// was down after its commit): the payment is still debited here, and the refund is the PS's
/// word that it confirmed it. The PS is told to retry, never refused for good (which would leave
/// the customer charged); once the driver has settled the payment the retry is credited, once.
#[tokio::test]
async fn a_refund_before_the_notify_answer_is_retried_not_refused() {
    let (ps, bank) = ps_and_mpp().await;
    let id = c1_paid_100(&ps, &bank).await;
    let db = rusqlite::Connection::open(bank.db_path()).expect("db");
    let set_status = |status: &str| {
        db.execute(
            "UPDATE payments SET status = ?1 WHERE payment_id = ?2",
            (status, id.to_string()),
        )
        .expect("the payment's state")
    };
    let http = reqwest::Client::new();
    let body = json!({"customerId": "C1", "paymentId": id.to_string(), "refundAmount": "40",
                      "refundId": "K2", "linkReceipt": "http://r"});
    let send = || async {
        let answer = http
            .post(format!("{}/refund", bank.url))
            .json(&body)
            .send()
            .await
            .expect("answer");
        let status = answer.status().as_u16();
        (status, answer.json::<Value>().await.expect("json"))
    };
    let debited = bank.balance("C1").await;
    set_status("debited");
    let (status, answer) = send().await;
    assert_eq!(
        (status, &answer["result"]["resultCode"]),
        (500, &json!("UNKNOWN_EXCEPTION")),
        "{answer}"
    );
    assert_eq!(bank.balance("C1").await, debited);
    set_status("paid");
    let (status, answer) = send().await;
    assert_eq!(
        (status, &answer["result"]["resultCode"]),
        (200, &json!("SUCCESS"))
    );
    assert_eq!(bank.balance("C1").await, debited + 4_000, "credited once");
    assert!(bank.balanced().await);
}

/// A file from before `refunds_applied`: its refunds are known from the kit's table only, and
/// the limit of a later partial refund still counts them once the MPP opens it again.
#[tokio::test]
async fn refunds_recorded_before_the_marks_still_count_toward_the_limit() {
    let (ps, bank) = ps_and_mpp().await;
    let id = c1_paid_100(&ps, &bank).await;
    let refund = |refund_id: &str, amount: &str| {
        json!({"customerId": "C1", "paymentId": id.to_string(), "refundAmount": amount,
               "refundId": refund_id, "linkReceipt": "http://r"})
        .to_string()
    };
    let first = bank
        .mpp
        .refund_endpoint()
        .answer(refund("U1", "60").as_bytes())
        .await;
    assert!(first.body().contains("SUCCESS"), "{}", first.body());
    rusqlite::Connection::open(bank.db_path())
        .expect("db")
        .execute_batch("DROP TABLE refunds_applied")
        .expect("as an earlier version left it");
    let config = MppConfig {
        ps_url: ps.url.clone(),
        database: bank.db_path(),
        ..MppConfig::default()
    };
    let reopened = Mpp::open(&config, RetryPolicy::default()).expect("reopens");
    let over = reopened
        .refund_endpoint()
        .answer(refund("U2", "50").as_bytes())
        .await;
    assert!(over.body().contains("PROCESS_FAIL"), "{}", over.body());
    let within = reopened
        .refund_endpoint()
        .answer(refund("U3", "40").as_bytes())
        .await;
    assert!(within.body().contains("SUCCESS"), "{}", within.body());
    assert_eq!(bank.balance("C1").await, C1_OPENING - 10_000 + 10_000);
}

/// What a phone that disconnects leaves: C1's confirm of a Dynamic QR of `tenge`, started while the
/// PS is down and dropped once the customer is debited. The PS is stopped; `restart` brings it back.
struct DroppedConfirm {
    bank: TestMpp,
    id: i64,
    addr: String,
    db: std::path::PathBuf,
    clock: std::sync::Arc<tolem_ps::clock::ManualClock>,
    /// The stopped PS: it holds the folder of its database.
    _stopped: TestPs,
}

impl DroppedConfirm {
    async fn start(tenge: u64) -> DroppedConfirm {
        let mut ps = TestPs::start().await;
        let addr = ps.url.trim_start_matches("http://").to_owned();
        let bank = TestMpp::start(&ps.url).await;
        let device = ps.device("POS-1").await;
        let (qr, id) = ps.dynamic_qr(&device, tenge).await;
        bank.mpp.scan("C1", &qr, Locale::Ru).await.expect("scan");
        let (db, clock) = (ps.db_path(), ps.clock.clone());
        ps.shutdown().await;
        let mpp = bank.mpp.clone();
        let request =
            tokio::spawn(async move { mpp.confirm("C1", &id.to_string(), None, Locale::Ru).await });
        let debited = C1_OPENING - i64::try_from(tenge * 100).expect("fits");
        eventually("the customer is debited", || async {
            bank.balance("C1").await == debited
        })
        .await;
        request.abort();
        assert!(request.await.expect_err("dropped").is_cancelled());
        DroppedConfirm {
            bank,
            id,
            addr,
            db,
            clock,
            _stopped: ps,
        }
    }

    /// The PS back on its address and database, `after_s` later on its clock.
    async fn restart(&self, after_s: i64) -> TestPs {
        self.clock.advance(jiff::SignedDuration::from_secs(after_s));
        TestPs::start_at(&self.addr, test_config(&self.db), self.clock.clone()).await
    }
}

/// The phone disconnects while the PS is down: the app's confirm request is dropped mid
/// notifyPayment. The kit's driver goes on, so once the PS is back the payment is Processed and
/// the customer debited once — nobody stays debited while the PS shows Wait.
#[tokio::test]
async fn a_confirm_dropped_mid_notify_is_finished_by_the_driver() {
    let dropped = DroppedConfirm::start(250).await;
    let (bank, id) = (&dropped.bank, dropped.id);
    let ps = dropped.restart(0).await;
    // The PS's clock stays still: the driver's retries run on the wall clock, and the
    // confirmation window must not pass meanwhile however slow the machine.
    eventually("the payment is Processed", || async {
        ps.status(id).await["Data"]["Status"] == "Processed"
    })
    .await;
    let paid = || async {
        let account = bank.mpp.account("C1").await.expect("account");
        account
            .notifications
            .iter()
            .filter(|n| matches!(n, Notice::Paid { .. }))
            .count()
    };
    eventually("the customer is told", || async { paid().await > 0 }).await;
    assert_eq!(
        bank.balance("C1").await,
        C1_OPENING - 25_000,
        "debited once, kept"
    );
    assert_eq!(paid().await, 1);
    assert!(bank.balanced().await);
}

/// The PS is down past the confirmation window (and its grace): when it is back it refuses the
/// late notifyPayment, and the driver gives the debit back once.
#[tokio::test]
async fn a_dropped_confirm_the_ps_then_refuses_is_reversed_once() {
    let dropped = DroppedConfirm::start(120).await;
    let (bank, id) = (&dropped.bank, dropped.id);
    let ps = dropped.restart(600).await;
    eventually("the debit is given back", || async {
        bank.balance("C1").await == C1_OPENING
    })
    .await;
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    let account = bank.mpp.account("C1").await.expect("account");
    let reversals = account
        .history
        .iter()
        .filter(|m| m.kind == "reversal")
        .count();
    assert_eq!(reversals, 1);
    assert!(bank.balanced().await);
}

/// The reference MPP's listeners are guarded (`tolem_mpp::listen`): a client that never
/// finishes its headers is closed at the header deadline, and connections held without a
/// request fill no more than the cap, so the process keeps its file descriptors (the sandbox
/// runs its demo MPPs inside the PS's process); the next client waits its turn and is served
/// once a place is free.
#[tokio::test]
async fn the_reference_mpp_closes_slow_clients_and_caps_its_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tolem_mpp::listen::CONNECTIONS_MAX;
    let ps = TestPs::start().await;
    let bank = TestMpp::start(&ps.url).await;
    let addr = bank.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS_MAX {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connected");
        stream
            .write_all(b"GET /wallet/ HTTP/1.1\r\n")
            .await
            .expect("sent");
        held.push(stream);
    }
    // One more client: it waits in the backlog while the cap is full, and is served once the
    // header deadline has closed a held connection — by then the first one held is closed.
    let served = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        reqwest::get(format!("{}/wallet/", bank.url)),
    )
    .await
    .expect("served within a minute")
    .expect("served");
    assert_eq!(served.status(), 200);
    let mut buf = [0u8; 64];
    let first = held[0].try_read(&mut buf);
    assert!(
        matches!(first, Ok(0))
            || first
                .as_ref()
                .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock),
        "served while the cap was full: {first:?}"
    );
    // Every held connection was closed by the MPP, without an answer.
    for mut stream in held {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stream.read_to_end(&mut rest),
        )
        .await;
        assert!(read.is_ok(), "left open");
        assert!(
            !String::from_utf8_lossy(&rest).contains("200 OK"),
            "{rest:?}"
        );
    }
}

/// A client that asks and never reads its answers is closed once a write has waited the send
/// deadline, instead of holding its place for ever.
#[tokio::test]
async fn the_reference_mpp_closes_a_client_that_never_reads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tolem_mpp::listen::{HEADER_TIMEOUT, SEND_TIMEOUT};
    let ps = TestPs::start().await;
    let bank = TestMpp::start(&ps.url).await;
    let addr: std::net::SocketAddr = bank
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small window");
    let mut stream = socket.connect(addr).await.expect("connected");
    let asks = "GET /wallet/app.js HTTP/1.1\r\nHost: bank\r\n\r\n".repeat(300);
    stream.write_all(asks.as_bytes()).await.expect("sent");
    tokio::time::sleep(SEND_TIMEOUT + std::time::Duration::from_secs(3)).await;
    // Closed by now: what was sent drains at once and ends. Still open, the MPP would write the
    // remaining answers as they are read and then wait the header deadline for more.
    let mut rest = Vec::new();
    let drained = tokio::time::timeout(HEADER_TIMEOUT / 2, stream.read_to_end(&mut rest)).await;
    assert!(drained.is_ok(), "still open after the send deadline");
}

/// A PS answer that is not the PS's words (a proxy's page under HTTP 200) is told to the
/// wallet as the PS's fault, HTTP 502 naming the call, not as the customer's or the MPP's own;
/// the customer's money does not move.
#[tokio::test]
async fn an_unreadable_ps_answer_is_a_bad_gateway_to_the_wallet() {
    let page = axum::Router::new().fallback(|| async {
        (
            [("content-type", "text/html")],
            "<html><body>Service temporarily unavailable</body></html>",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let not_the_ps = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, page).await });
    let bank = TestMpp::start(&not_the_ps).await;
    let before = bank.balance("C1").await;
    let answer = reqwest::Client::new()
        .post(format!("{}{}", bank.url, tolem_mpp::app_api::SCAN_PATH))
        .json(&json!({"customer_id": "C1", "qr_code": STATIC_QR}))
        .send()
        .await
        .expect("the MPP answers");
    assert_eq!(answer.status().as_u16(), 502);
    let body: Value = answer.json().await.expect("JSON");
    let said = body["error"].as_str().unwrap_or_default();
    assert!(
        said.contains("scan") && said.contains("cannot be read"),
        "{body}"
    );
    assert_eq!(bank.balance("C1").await, before);
}
