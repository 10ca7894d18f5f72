//! The SDK's example bank (`crates/sdk/examples/bank.rs`, this very file included below) run end
//! to end against the sandbox PS over real HTTP: a Dynamic QR made by the café's POS is paid
//! through the example's `/pay`, and a refund the POS makes reaches the example's `/refund`; the
//! example's own ledger moves once each time. It lives in this package, which is not published,
//! because it compiles a file of another package (tolem-testkit's tests are published with it).

#[allow(dead_code)] // the example's `main`: a test calls `run`
#[path = "../../sdk/examples/bank.rs"]
mod bank;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tolem_testkit::{DEMO_BANK, RefundState, STATIC_QR, SandboxPs};
use tolem_wire::Amount;
use tolem_wire::merchant::PaymentStatus;

/// The example's opening balance of customer C1.
const OPENING_TIYN: i64 = 5_000_000;
/// How many times a test looks at the ledger before it gives up (every 50 ms: a generous bound,
/// not a timing claim).
const LEDGER_POLLS_MAX: u32 = 2_400;

fn tenge(n: u64) -> Amount {
    Amount::from_tenge(n).expect("a small amount")
}

/// One value from the example's ledger file, read on a connection of the test's own.
fn ledger<T: rusqlite::types::FromSql>(dir: &Path, sql: &str) -> T {
    let conn = Connection::open_with_flags(dir.join("bank.db"), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the example's ledger");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Waits until `sql` reads `want` from the ledger.
async fn ledger_reaches(dir: &Path, sql: &str, want: i64) {
    for _ in 0..LEDGER_POLLS_MAX {
        if ledger::<i64>(dir, sql) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ledger never read {want} for {sql}");
}

#[tokio::test]
async fn the_example_bank_pays_a_dynamic_qr_and_takes_its_refund_once() {
    let ps = SandboxPs::start().await.expect("the sandbox PS");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bank_url = format!("http://{}", listener.local_addr().expect("addr"));
    ps.set_refund_url(DEMO_BANK, &format!("{bank_url}/refund"))
        .await
        .expect("the refund URL");
    let dir = tempfile::tempdir().expect("dir");
    let (ps_url, bank_dir) = (ps.url().to_owned(), dir.path().to_owned());
    let server = tokio::spawn(async move { bank::run(&ps_url, listener, &bank_dir).await });
    let http = reqwest::Client::new();
    let pay = |qr: String| {
        let request = http
            .post(format!("{bank_url}/pay"))
            .json(&json!({"customerId": "C1", "qrCode": qr}));
        async move {
            let answer = request.send().await.expect("the example answers");
            answer.json::<Value>().await.expect("JSON")
        }
    };

    // A Dynamic QR of 500 tenge: paid (or still being told to the PS on a slow machine: the
    // driver finishes it in the background).
    let qr = ps.dynamic_qr(tenge(500)).await.expect("a QR");
    let answer = pay(qr.token.clone()).await;
    assert!(
        answer["status"] == "paid" || answer["status"] == "pending",
        "{answer}"
    );
    ledger_reaches(
        dir.path(),
        "SELECT count(*) FROM debits WHERE status = 'kept'",
        1,
    )
    .await;
    let status = ps.payment_status(qr.payment_id).await.expect("status");
    assert_eq!(
        (status.status, status.amount),
        (PaymentStatus::Processed, Some(tenge(500)))
    );
    let balance = "SELECT tiyn FROM balances WHERE customer = 'C1'";
    assert_eq!(ledger::<i64>(dir.path(), balance), OPENING_TIYN - 50_000);
    assert_eq!(ledger::<i64>(dir.path(), "SELECT count(*) FROM debits"), 1);

    // The same QR again: the PS refuses the scan, nothing moves.
    let again = pay(qr.token.clone()).await;
    assert!(again["error"].is_string(), "{again}");
    // A QR this bank does not pay (a static one): refused before any debit.
    let other = pay(STATIC_QR.to_owned()).await;
    assert!(other["error"].is_string(), "{other}");
    assert_eq!(ledger::<i64>(dir.path(), balance), OPENING_TIYN - 50_000);

    // The café refunds 200 tenge as a POS: the PS delivers it to the example's `/refund`.
    let refund_id = ps.refund(qr.payment_id, tenge(200)).await.expect("placed");
    let delivery = ps.wait_refund_settled(refund_id).await.expect("answered");
    assert_eq!(delivery.status, RefundState::Completed);
    assert_eq!(delivery.mpp_result.as_deref(), Some("SUCCESS"));
    assert_eq!(ledger::<i64>(dir.path(), "SELECT count(*) FROM credits"), 1);
    assert_eq!(
        ledger::<String>(dir.path(), "SELECT refund_id FROM credits"),
        refund_id.to_string()
    );
    assert_eq!(
        ledger::<i64>(dir.path(), balance),
        OPENING_TIYN - 50_000 + 20_000
    );
    assert!(!server.is_finished(), "the example stopped: {server:?}");
    server.abort();
}
