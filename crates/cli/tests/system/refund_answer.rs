//! The POS hears the MPP's answer to a refund (DECISIONS 39): `payment/return` waits for it up to
//! `refunds.pos_wait_ms`; a success is the usual answer, a final refusal is `-99000006` naming it
//! with the amount refundable again, and no answer in time is a success while delivery goes on.
//! Against a real `/refund` receiver.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tolem_ps::domain::PaymentId;

use crate::harness::*;
use crate::receiver::{Act, Receiver};
use crate::refunds::{available, refund_r3, refund_status, scan_id_refund, wait_refund};

const RETURN_R3: &str = "/r3/v01/payment/return";

/// A PS whose `payment/return` waits up to `wait_ms` for demobank's receiver.
async fn start(wait_ms: u64, change: impl FnOnce(&mut tolem_ps::Config)) -> (TestPs, Receiver) {
    let ps = TestPs::start_configured(|c| {
        c.refunds.pos_wait_ms = wait_ms;
        change(c);
    })
    .await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    (ps, mpp)
}

fn r3_body(device: &str, payment: i64, amount: u64) -> Value {
    json!({"DeviceToken": device, "QrPaymentId": payment, "Amount": amount, "OrganizationBin": "990340001234"})
}

/// A return QR shown at the café and scanned by `customer`'s demobank app; returns its id.
async fn return_qr(ps: &TestPs, device: &str, customer: &str) -> i64 {
    let body = json!({"DeviceToken": device});
    let (_, created) = ps
        .pos("POST", "/r2/v01/return/create", API_KEY, Some(&body))
        .await;
    let token = created["Data"]["QrToken"].as_str().expect("a token");
    scan_id_refund(ps, token, customer).await;
    created["Data"]["QrReturnId"].as_i64().expect("an id")
}

async fn refund_r2(ps: &TestPs, device: &str, payment: i64, qr: i64, amount: u64) -> Value {
    let body =
        json!({"DeviceToken": device, "QrPaymentId": payment, "QrReturnId": qr, "Amount": amount});
    ps.pos("POST", "/r2/v01/payment/return", API_KEY, Some(&body))
        .await
        .1
}

/// A purchase of `amount` tenge at the café paid by `customer` of demowallet.
async fn paid_by_wallet(ps: &TestPs, device: &str, amount: u64, customer: &str) -> i64 {
    let (qr, id) = ps.dynamic_qr(device, amount).await;
    let payment_id = scan_id(ps, "demowallet", &qr, customer).await;
    let body = notify_body(&payment_id, customer, "SUCCESS", None);
    let (_, answer) = ps
        .mpp_call("/api/v1/qr/notifyPayment", "demowallet", "n", &body)
        .await;
    assert_eq!(result_code(&answer), "SUCCESS");
    id
}

fn refused_naming(answer: &Value, code: &str) {
    assert_eq!(answer["StatusCode"], -99000006, "{answer}");
    let message = answer["Message"].as_str().expect("a message");
    // All in the caller's language, naming the MPP's answer.
    assert_eq!(
        message,
        format!(
            "Ошибка возврата, повторите попытку: банк покупателя (МПП) отклонил возврат: {code}"
        )
    );
    assert!(answer.get("Data").is_none(), "{answer}");
}

#[tokio::test]
async fn the_pos_is_answered_after_the_mpp_credited_the_refund() {
    let (ps, mpp) = start(10_000, |_| {}).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    let answer = refund_r3(&ps, &device, purchase, 300.0).await;
    assert_eq!(answer["StatusCode"], 0, "{answer}");
    let id = answer["Data"]["ReturnOperationId"].as_i64().expect("id");
    // The answer came after the MPP's: the money is back and the refund complete already.
    assert_eq!(
        mpp.credited().get(&id.to_string()).map(String::as_str),
        Some("300.00")
    );
    assert_eq!(refund_status(&ps, id).await["status"], "completed");
    // With the customer (r2), the same.
    let qr = return_qr(&ps, &device, "C1").await;
    let answer = refund_r2(&ps, &device, purchase, qr, 400).await;
    assert_eq!(answer["Data"]["ReturnOperationId"], qr, "{answer}");
    assert_eq!(refund_status(&ps, qr).await["status"], "completed");
    assert_eq!(available(&ps, &device, purchase).await, json!(300.0));
    assert_eq!(
        ps.app.refund_outcomes.waiting(),
        0,
        "nobody is left waiting"
    );
}

/// An MPP's SUCCESS without `resultMessage` is its answer all the same: read once, not sent again.
#[tokio::test]
async fn a_success_without_its_message_completes_the_refund() {
    let (ps, mpp) = start(10_000, |_| {}).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    mpp.script([Act::SucceedTerse]);
    let answer = refund_r3(&ps, &device, purchase, 300.0).await;
    assert_eq!(answer["StatusCode"], 0, "{answer}");
    let id = answer["Data"]["ReturnOperationId"].as_i64().expect("id");
    assert_eq!(refund_status(&ps, id).await["status"], "completed");
    assert_eq!(mpp.calls().len(), 1, "sent once");
}

#[tokio::test]
async fn a_final_refusal_reaches_the_pos_and_the_amount_is_refundable_again_at_once() {
    let (ps, mpp) = start(10_000, |_| {}).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    mpp.script([Act::Answer("PROCESS_FAIL")]);
    let body = r3_body(&device, purchase, 1000);
    let (_, refused) = ps
        .pos_with("POST", RETURN_R3, API_KEY, Some("ret-1"), Some(&body))
        .await;
    refused_naming(&refused, "PROCESS_FAIL");
    assert_eq!(available(&ps, &device, purchase).await, json!(1000.0));
    // A repeat of the request hears the refusal again; nothing is placed or sent again.
    let calls = mpp.calls().len();
    let (_, again) = ps
        .pos_with("POST", RETURN_R3, API_KEY, Some("ret-1"), Some(&body))
        .await;
    assert_eq!(again, refused);
    assert_eq!(mpp.calls().len(), calls);
    let placed = ps
        .app
        .store
        .refunds_of(PaymentId::new(purchase))
        .await
        .expect("refunds");
    assert_eq!(placed.len(), 1);
    // The same amount as a new request: accepted and credited.
    let (_, accepted) = ps
        .pos_with("POST", RETURN_R3, API_KEY, Some("ret-2"), Some(&body))
        .await;
    assert_eq!(accepted["StatusCode"], 0, "{accepted}");
    let id = accepted["Data"]["ReturnOperationId"].as_i64().expect("id");
    assert_eq!(
        mpp.credited().get(&id.to_string()).map(String::as_str),
        Some("1000.00")
    );
    // With the customer (r2): the same refusal; the return QR is used up, a new one works.
    let purchase = ps.paid(&device, 200, "C1").await;
    mpp.script([Act::Answer("PAYMENTS_SUSPENDED")]);
    let qr = return_qr(&ps, &device, "C1").await;
    refused_naming(
        &refund_r2(&ps, &device, purchase, qr, 200).await,
        "PAYMENTS_SUSPENDED",
    );
    assert_eq!(available(&ps, &device, purchase).await, json!(200.0));
    let again = refund_r2(&ps, &device, purchase, qr, 200).await;
    assert_eq!(again["StatusCode"], -99000400, "{again}");
    let qr = return_qr(&ps, &device, "C1").await;
    assert_eq!(
        refund_r2(&ps, &device, purchase, qr, 200).await["StatusCode"],
        0
    );
    assert_eq!(ps.app.refund_outcomes.waiting(), 0);
}

#[tokio::test]
async fn the_pos_waits_through_retries_and_a_repeat_meanwhile_hears_the_same_answer() {
    let (ps, mpp) = start(10_000, |_| {}).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 500, "C1").await;
    // Not final, a refusal under HTTP 404 (not the MPP API's word: every business outcome is
    // HTTP 200), then final: each retry falls due only when the test moves the clock.
    mpp.script([
        Act::Answer("REFUND_IN_PROCESS"),
        Act::AnswerWith(404, "PROCESS_FAIL"),
        Act::Answer("PROCESS_FAIL"),
    ]);
    let body = r3_body(&device, purchase, 500);
    let first = ps.pos_with("POST", RETURN_R3, API_KEY, Some("ret-1"), Some(&body));
    let repeat = async {
        for _ in 0..250 {
            let (_, list) = ps.admin("GET", "/admin/v1/refunds", &Value::Null).await;
            if list["refunds"][0]["last_error"].is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The first attempt was not final and the first request still waits; its repeat too.
        let repeat = ps.pos_with("POST", RETURN_R3, API_KEY, Some("ret-1"), Some(&body));
        let retry = async {
            for _ in 0..150 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                ps.advance(1);
            }
        };
        tokio::select! {
            answer = repeat => answer,
            () = retry => panic!("the MPP's final answer never came"),
        }
    };
    let ((_, first), (_, repeat)) = tokio::join!(first, repeat);
    refused_naming(&first, "PROCESS_FAIL");
    assert_eq!(repeat, first);
    let list = ps
        .app
        .store
        .refunds_of(PaymentId::new(purchase))
        .await
        .expect("refunds");
    assert_eq!(list.len(), 1);
    let view = refund_status(&ps, list[0].id.get()).await;
    assert_eq!(
        (view["status"].as_str(), view["attempts"].as_u64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(available(&ps, &device, purchase).await, json!(500.0));
    assert_eq!(ps.app.refund_outcomes.waiting(), 0);
}

#[tokio::test]
async fn no_answer_in_time_is_a_success_and_delivery_goes_on() {
    // The MPP's first answers come after the call's timeout, or are HTTP 500.
    let (ps, mpp) = start(300, |c| c.refunds.request_timeout_ms = 1_000).await;
    mpp.script([Act::Hang(Duration::from_millis(1_500)), Act::Fail500]);
    let device = ps.device("POS-1").await;
    let slow = ps.paid(&device, 100, "C1").await;
    let failing = ps.paid(&device, 200, "C1").await;
    let mut ids = Vec::new();
    for (purchase, request_id) in [(slow, "slow-1"), (failing, "failing-1")] {
        let body = r3_body(&device, purchase, 50);
        let (_, answer) = ps
            .pos_with("POST", RETURN_R3, API_KEY, Some(request_id), Some(&body))
            .await;
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        let id = answer["Data"]["ReturnOperationId"].as_i64().expect("id");
        // No retry falls due before the clock moves, so the MPP has not answered SUCCESS.
        assert_eq!(refund_status(&ps, id).await["status"], "pending");
        ids.push((id, request_id, body, answer));
    }
    for (id, request_id, body, answer) in ids {
        wait_refund(&ps, id, "completed").await;
        assert_eq!(
            mpp.credited().get(&id.to_string()).map(String::as_str),
            Some("50.00")
        );
        // A repeat after the wait ended hears what the first request heard.
        let (_, again) = ps
            .pos_with("POST", RETURN_R3, API_KEY, Some(request_id), Some(&body))
            .await;
        assert_eq!(again, answer);
    }
    assert_eq!(ps.app.refund_outcomes.waiting(), 0);
}

#[tokio::test]
async fn concurrent_refunds_each_hear_their_own_answer() {
    let (ps, bank) = start(10_000, |_| {}).await;
    bank.script((0..4).map(|_| Act::Answer("PROCESS_FAIL")));
    let wallet = Receiver::start().await;
    ps.set_refund_url("demowallet", &wallet.url).await;
    let device = ps.device("POS-1").await;
    let mut banks = Vec::new();
    let mut wallets = Vec::new();
    for _ in 0..4 {
        banks.push(ps.paid(&device, 100, "C1").await);
        wallets.push(paid_by_wallet(&ps, &device, 100, "W1").await);
    }
    let shared = paid_by_wallet(&ps, &device, 1000, "W1").await;
    // demobank refuses its four, demowallet credits its four, and twenty partial refunds of one
    // purchase race for what is left of it: all at once.
    let refused = join_all(banks.iter().map(|p| refund_r3(&ps, &device, *p, 100.0)));
    let accepted = join_all(wallets.iter().map(|p| refund_r3(&ps, &device, *p, 100.0)));
    let racing = join_all((0..20).map(|_| refund_r3(&ps, &device, shared, 150.0)));
    let (refused, accepted, racing) = tokio::join!(refused, accepted, racing);
    for answer in &refused {
        refused_naming(answer, "PROCESS_FAIL");
    }
    for purchase in &banks {
        assert_eq!(available(&ps, &device, *purchase).await, json!(100.0));
    }
    for answer in &accepted {
        let id = answer["Data"]["ReturnOperationId"]
            .as_i64()
            .unwrap_or_else(|| panic!("an id in {answer}"));
        assert_eq!(refund_status(&ps, id).await["status"], "completed");
    }
    let ok = racing.iter().filter(|a| a["StatusCode"] == 0).count();
    let over = racing
        .iter()
        .filter(|a| a["StatusCode"] == -99000005)
        .count();
    assert_eq!((ok, over), (6, 14), "6 × 150 ≤ 1000 < 7 × 150");
    assert_eq!(available(&ps, &device, shared).await, json!(100.0));
    assert_eq!(wallet.credited().len(), 4 + 6);
    assert!(bank.credited().is_empty());
    assert_eq!(ps.app.refund_outcomes.waiting(), 0);
}

#[tokio::test]
async fn a_wait_whose_end_cannot_be_kept_says_retry_not_accepted() {
    if !sqlite_only("holds SQLite's write lock from another connection") {
        return;
    }
    let (ps, mpp) = start(1_000, |_| {}).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    // The MPP keeps the first delivery waiting; later it refuses the refund finally.
    mpp.hold();
    let body = r3_body(&device, purchase, 400);
    // The database takes no write while the POS's wait ends (another process holds the lock
    // past the busy timeout): what the POS is told cannot be kept, so it is told to retry.
    let db = rusqlite::Connection::open(ps.db_path()).expect("the PS's file");
    let request = ps.pos_with("POST", RETURN_R3, API_KEY, Some("ret-held"), Some(&body));
    let lock = async {
        eventually("the refund is placed and under way", || async {
            mpp.calls().len() == 1
        })
        .await;
        db.execute_batch("BEGIN IMMEDIATE").expect("the write lock");
    };
    let ((status, answer), ()) = tokio::join!(request, lock);
    db.execute_batch("ROLLBACK").expect("released");
    // -999, the merchant API's "temporarily unavailable": the POS asks again.
    assert!((500..600).contains(&status), "{status} {answer}");
    assert_eq!(answer["StatusCode"], -999, "{answer}");
    mpp.script([Act::Answer("PROCESS_FAIL")]);
    mpp.release();
    // The POS's retry hears the MPP's refusal, which it was never told otherwise.
    let placed = ps
        .app
        .store
        .refunds_of(PaymentId::new(purchase))
        .await
        .expect("refunds");
    wait_refund(&ps, placed[0].id.get(), "failed").await;
    let (_, again) = ps
        .pos_with("POST", RETURN_R3, API_KEY, Some("ret-held"), Some(&body))
        .await;
    refused_naming(&again, "PROCESS_FAIL");
}
