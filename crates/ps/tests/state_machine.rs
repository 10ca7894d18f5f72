//! The payment and refund state machines against a simple model (issue 9 item 6): random
//! sequences of scans, notifyPayment verdicts (repeats with the same and other request ids, right
//! and wrong amounts), clock moves past the confirmation window, refunds from the POS (repeats
//! with the same X-Request-ID) and refund delivery outcomes (SUCCESS, refusal, retry), run through
//! the real router in process on a real temporary SQLite file. Delivery uses the store's own
//! claim and record steps, as the dispatcher does around its HTTP call.
//!
//! Invariants after every step: no purchase is ever refunded more than was paid (the PS's
//! refundable amount equals the model's, and a refund is accepted exactly when the model says it
//! fits); a final state never changes; a confirmed payment stays confirmed once; a repeat gets the
//! first answer byte for byte (notifyPayment after the verdict took effect, `payment/return` with
//! the same X-Request-ID and body).
//!
//! 24 cases in CI; `PROPTEST_CASES` asks for more.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};
use tolem_ps::clock::{Clock, ManualClock, SharedClock};
use tolem_ps::domain::PaymentId;
use tolem_ps::domain::refund::{Delivery, RefundStatus};
use tolem_ps::outbox;
use tolem_ps::refund_dispatch::RefundDelivery;
use tolem_ps::{App, AppState, Config};
use tolem_wire::Amount;
use tower::ServiceExt;

const SANDBOX_TOML: &str = tolem_ps::SANDBOX_TOML;
const API_KEY: &str = "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39";
const BIN: &str = "990340001234";
/// The purchases of a case, in tenge: Dynamic QRs made by the POS.
const PRICES: [u64; 2] = [500, 300];

#[derive(Clone, Debug)]
enum Verdict {
    Success,
    Cancelled,
    Refused,
}

#[derive(Clone, Debug)]
enum Op {
    Scan {
        p: usize,
        customer: usize,
    },
    Notify {
        p: usize,
        verdict: Verdict,
        request: u8,
        right_amount: bool,
    },
    Advance {
        secs: i64,
    },
    Refund {
        p: usize,
        tiyn: u64,
        request: u8,
    },
    Deliver {
        outcome: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PRICES.len();
    prop_oneof![
        3 => (p.clone(), 0..2usize).prop_map(|(p, customer)| Op::Scan { p, customer }),
        4 => (p.clone(), prop_oneof![3 => Just(Verdict::Success), 1 => Just(Verdict::Cancelled), 1 => Just(Verdict::Refused)], 0..3u8, prop::bool::weighted(0.85))
            .prop_map(|(p, verdict, request, right_amount)| Op::Notify { p, verdict, request, right_amount }),
        1 => prop::sample::select(vec![5i64, 30, 70]).prop_map(|secs| Op::Advance { secs }),
        5 => (p, prop::sample::select(vec![1u64, 100, 10_000, 15_000, 30_000, 50_000, 50_001]), 0..3u8)
            .prop_map(|(p, tiyn, request)| Op::Refund { p, tiyn, request }),
        3 => (0..3u8).prop_map(|outcome| Op::Deliver { outcome }),
    ]
}

/// What the model knows of one purchase.
#[derive(Default)]
struct Purchase {
    qr_id: i64,
    qr_token: String,
    price_tiyn: u64,
    /// The paymentId and customer of the first scan.
    payment: Option<(String, usize)>,
    /// The POS status last seen; once final it never changes.
    status: String,
    /// The notifyPayment answer that made the purchase final; every later one is the same.
    stored_notify: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Held {
    Pending,
    Completed,
    Failed,
}

struct Case {
    app: AppState,
    clock: Arc<ManualClock>,
    service: axum::Router,
    device: String,
    purchases: Vec<Purchase>,
    /// Refunds by id: purchase index, amount, state.
    refunds: HashMap<i64, (usize, u64, Held)>,
    /// First answers of `payment/return` that placed a refund, by (X-Request-ID, body).
    refund_answers: HashMap<(u8, String), String>,
    _dir: tempfile::TempDir,
}

async fn call(
    service: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, String) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let request = builder.body(body).expect("a valid request");
    let response = service
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn pos(service: &axum::Router, path: &str, request_id: &str, body: &Value) -> Value {
    let headers = [
        ("api-key", API_KEY),
        ("content-type", "application/json"),
        ("x-request-id", request_id),
    ];
    let (status, text) = call(service, "POST", path, &headers, body).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

async fn mpp(service: &axum::Router, path: &str, request_id: &str, body: &Value) -> String {
    let headers = [
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", request_id),
    ];
    let (status, text) = call(service, "POST", path, &headers, body).await;
    assert_eq!(status, 200, "{path}: {text}");
    text
}

/// A notifyPayment body; `amount` none for an MPP's guess that names none.
fn notify_body(
    code: &str,
    payment_id: &str,
    mpp_payment_id: &str,
    amount: Option<&str>,
    customer: &str,
) -> Value {
    let mut payment = json!({"paymentId": payment_id, "mppPaymentId": mpp_payment_id});
    if let Some(amount) = amount {
        payment["paymentAmount"] = json!(amount);
    }
    json!({"result": {"resultCode": code, "resultMessage": "m"},
        "payment": payment, "customerId": customer})
}

/// notifyPayment sent with the request id of the op's `request`.
async fn notify(service: &axum::Router, request: u8, body: &Value) -> String {
    mpp(
        service,
        "/api/v1/qr/notifyPayment",
        &format!("n-{request}"),
        body,
    )
    .await
}

/// The `resultCode` of an MPP API answer.
fn result_code(answer: &str) -> String {
    serde_json::from_str::<Value>(answer).expect("JSON")["result"]["resultCode"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

impl Case {
    async fn start() -> Case {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = Config::from_toml(SANDBOX_TOML).expect("valid");
        config.database = dir.path().join("ps.db");
        config.sandbox = true;
        config.refunds.pos_wait_ms = 0;
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let shared: SharedClock = clock.clone();
        let app = App::start(config, shared).await.expect("the PS starts");
        let service = tolem_ps::app::router(app.clone());
        let answer = pos(
            &service,
            "/r1/v01/device/register",
            "d",
            &json!({"DeviceId": "model", "TradePointId": 1001}),
        )
        .await;
        let device = answer["Data"]["DeviceToken"]
            .as_str()
            .expect("a token")
            .to_owned();
        let mut purchases = Vec::new();
        for (i, price) in PRICES.iter().enumerate() {
            let answer = pos(
                &service,
                "/r1/v01/qr/create",
                &format!("qr-{i}"),
                &json!({"DeviceToken": device, "Amount": price}),
            )
            .await;
            purchases.push(Purchase {
                qr_id: answer["Data"]["QrPaymentId"].as_i64().expect("id"),
                qr_token: answer["Data"]["QrToken"]
                    .as_str()
                    .expect("token")
                    .to_owned(),
                price_tiyn: price * 100,
                status: "QrTokenCreated".to_owned(),
                ..Purchase::default()
            });
        }
        Case {
            app,
            clock,
            service,
            device,
            purchases,
            refunds: HashMap::new(),
            refund_answers: HashMap::new(),
            _dir: dir,
        }
    }

    /// What the model says may still be refunded of a purchase.
    fn available(&self, p: usize) -> u64 {
        let purchase = &self.purchases[p];
        if purchase.status != "Processed" {
            return 0;
        }
        let held: u64 = self
            .refunds
            .values()
            .filter(|(of, _, state)| *of == p && *state != Held::Failed)
            .map(|(_, amount, _)| amount)
            .sum();
        purchase.price_tiyn - held
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Scan { p, customer } => {
                let body = json!({"qrCode": self.purchases[*p].qr_token, "customerId": format!("C-{customer}")});
                let answer: Value =
                    serde_json::from_str(&mpp(&self.service, "/api/v1/qr/scan", "s", &body).await)
                        .expect("JSON");
                let code = answer["result"]["resultCode"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let purchase = &mut self.purchases[*p];
                if code == "SUCCESS" {
                    let id = answer["payment"]["paymentId"]
                        .as_str()
                        .expect("an id")
                        .to_owned();
                    match &purchase.payment {
                        // A repeated scan by its owner is the same payment (DECISIONS 12).
                        Some((first, owner)) => {
                            prop_assert_eq!(first, &id);
                            prop_assert_eq!(*owner, *customer);
                        }
                        None => purchase.payment = Some((id, *customer)),
                    }
                } else {
                    prop_assert!(
                        purchase
                            .payment
                            .as_ref()
                            .is_some_and(|(_, owner)| owner != customer)
                            || purchase.status != "QrTokenCreated" && purchase.status != "Wait"
                            || code == "EXPIRED_CODE",
                        "a scan refused with {code} while the purchase was open to this customer"
                    );
                }
            }
            Op::Notify {
                p,
                verdict,
                request,
                right_amount,
            } => {
                let purchase = &self.purchases[*p];
                let Some((payment_id, owner)) = purchase.payment.clone() else {
                    // No MPP scanned it: an MPP that guesses its id (the POS knows it) finds
                    // nothing to confirm, and the QR stays as it was.
                    let body = notify_body(
                        "SUCCESS",
                        &purchase.qr_id.to_string(),
                        "M-guess",
                        None,
                        "C-0",
                    );
                    let before = purchase.status.clone();
                    let answer = notify(&self.service, *request, &body).await;
                    self.observe(*p).await?;
                    let code = result_code(&answer);
                    prop_assert!(
                        code == "ORDER_NOT_EXIST",
                        "notifyPayment on a purchase nobody scanned: {}",
                        answer
                    );
                    // Only its own expiry may have moved it (to Error) meanwhile.
                    let now = &self.purchases[*p].status;
                    prop_assert!(
                        *now == before || (before == "QrTokenCreated" && now == "Error"),
                        "a guessed notifyPayment moved purchase {} from {} to {}",
                        p,
                        before,
                        now
                    );
                    return Ok(());
                };
                let code = match verdict {
                    Verdict::Success => "SUCCESS",
                    Verdict::Cancelled => "CANCELLED_BY_CLIENT",
                    Verdict::Refused => "RISK_REJECT",
                };
                let amount = if *right_amount {
                    Amount::from_tiyn(purchase.price_tiyn).to_string()
                } else {
                    "1.00".to_owned()
                };
                let body = notify_body(
                    code,
                    &payment_id,
                    &format!("M-{payment_id}"),
                    Some(&amount),
                    &format!("C-{owner}"),
                );
                let before = purchase.status.clone();
                let answer = notify(&self.service, *request, &body).await;
                self.observe(*p).await?;
                let purchase = &mut self.purchases[*p];
                if !*right_amount && purchase.stored_notify.is_none() {
                    // A wrong amount never takes effect (SPEC 4.3): refused, nothing changed.
                    let code = result_code(&answer);
                    prop_assert!(
                        code != "SUCCESS"
                            && !(purchase.status == "Processed" && before != "Processed"),
                        "a notifyPayment of a wrong amount took effect: {}",
                        answer
                    );
                }
                if let Some(stored) = &purchase.stored_notify {
                    // Once final, every repeat gets the stored bytes, whatever amount it carries
                    // (DECISIONS 18).
                    prop_assert_eq!(
                        stored,
                        &answer,
                        "a repeat of notifyPayment answered differently"
                    );
                } else if final_status(&purchase.status) && !final_status(&before) && *right_amount
                {
                    // This call took effect: every repeat gets these bytes (DECISIONS 18).
                    purchase.stored_notify = Some(answer);
                }
            }
            Op::Advance { secs } => {
                self.clock.advance(SignedDuration::from_secs(*secs));
                for p in 0..self.purchases.len() {
                    self.observe(p).await?;
                }
            }
            Op::Refund { p, tiyn, request } => {
                let fits = *tiyn <= self.available(*p);
                let body = json!({"DeviceToken": self.device, "QrPaymentId": self.purchases[*p].qr_id,
                    "Amount": Amount::from_tiyn(*tiyn).to_string().parse::<f64>().unwrap_or_default(), "OrganizationBin": BIN});
                let key = (*request, body.to_string());
                let answer = pos(
                    &self.service,
                    "/r3/v01/payment/return",
                    &format!("r-{request}"),
                    &body,
                )
                .await;
                let text = answer.to_string();
                if let Some(first) = self.refund_answers.get(&key) {
                    // The same request again: the first answer, and nothing new (DECISIONS 29).
                    prop_assert_eq!(first, &text);
                } else {
                    let placed = answer["StatusCode"] == 0;
                    prop_assert_eq!(
                        placed,
                        fits,
                        "refund of {} tiyn, model allows {}: {}",
                        tiyn,
                        self.available(*p),
                        text
                    );
                    if placed {
                        let id = answer["Data"]["ReturnOperationId"].as_i64().expect("an id");
                        prop_assert!(
                            self.refunds
                                .insert(id, (*p, *tiyn, Held::Pending))
                                .is_none()
                        );
                        // Only a refund that was placed is an answer to repeat: a refusal stores
                        // nothing, and the same request may succeed later (as DECISIONS 18 says
                        // of the MPP API).
                        self.refund_answers.insert(key, text);
                    }
                }
            }
            Op::Deliver { outcome } => {
                let now = self.clock.now();
                let claimed = outbox::claim::<RefundDelivery>(
                    &self.app.store,
                    Some("demobank".to_owned()),
                    now,
                    10,
                    SignedDuration::from_secs(60),
                    self.app.lease_holder.clone(),
                )
                .await
                .expect("claims");
                for claim in claimed {
                    let id = claim.item.id.get();
                    let Some(refund) = self.refunds.get_mut(&id) else {
                        return Err(TestCaseError::fail(format!(
                            "refund {id} unknown to the model"
                        )));
                    };
                    prop_assert_eq!(refund.2, Held::Pending, "a final refund was claimed again");
                    let delivery = match outcome {
                        0 => Delivery::Completed,
                        1 => Delivery::Failed("PROCESS_FAIL".to_owned()),
                        _ => Delivery::Retry("HTTP 503".to_owned()),
                    };
                    refund.2 = match delivery {
                        Delivery::Completed => Held::Completed,
                        Delivery::Failed(_) => Held::Failed,
                        Delivery::Retry(_) => Held::Pending,
                    };
                    let retry_at = now.checked_add(SignedDuration::from_secs(1)).unwrap_or(now);
                    outbox::record::<RefundDelivery>(
                        &self.app.store,
                        claim,
                        delivery,
                        now,
                        retry_at,
                        false,
                    )
                    .await
                    .expect("recorded");
                }
            }
        }
        self.check_refunds().await
    }

    /// Reads the POS status; a final one never changes.
    async fn observe(&mut self, p: usize) -> Result<(), TestCaseError> {
        let path = format!("/r1/v02/payment/status/{}", self.purchases[p].qr_id);
        let (_, text) = call(
            &self.service,
            "GET",
            &path,
            &[("api-key", API_KEY)],
            &Value::Null,
        )
        .await;
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        let status = answer["Data"]["Status"]
            .as_str()
            .expect("a status")
            .to_owned();
        let purchase = &mut self.purchases[p];
        if final_status(&purchase.status) {
            prop_assert_eq!(&purchase.status, &status, "a final state changed");
        }
        // Confirmed at the price the QR was made for, whatever amounts were tried.
        if status == "Processed" {
            let amount = answer["Data"]["Amount"].to_string();
            let price = Amount::from_tiyn(purchase.price_tiyn);
            prop_assert_eq!(
                Amount::parse(&amount).ok(),
                Some(price),
                "purchase {} confirmed at {}",
                p,
                amount
            );
        }
        purchase.status = status;
        Ok(())
    }

    /// The PS holds what the model holds: refundable = paid − (pending + completed), never below zero.
    async fn check_refunds(&mut self) -> Result<(), TestCaseError> {
        for p in 0..self.purchases.len() {
            self.observe(p).await?;
            let purchase = &self.purchases[p];
            if purchase.status != "Processed" {
                continue;
            }
            let total = Amount::from_tiyn(purchase.price_tiyn);
            let refundable =
                tolem_ps::refunds::refundable(&self.app, PaymentId::new(purchase.qr_id), total)
                    .await
                    .expect("readable");
            prop_assert_eq!(
                refundable.tiyn(),
                self.available(p),
                "refundable amount of purchase {}",
                p
            );
            let refunds = self
                .app
                .store
                .refunds_of(PaymentId::new(purchase.qr_id))
                .await
                .expect("readable");
            let now = self.clock.now();
            let held: u64 = refunds
                .iter()
                .filter(|r| {
                    matches!(
                        r.effective_status(now),
                        RefundStatus::Pending | RefundStatus::Completed
                    )
                })
                .filter_map(|r| r.amount.map(Amount::tiyn))
                .sum();
            prop_assert!(
                held <= purchase.price_tiyn,
                "refunded {} of {}",
                held,
                purchase.price_tiyn
            );
        }
        Ok(())
    }
}

fn final_status(status: &str) -> bool {
    matches!(status, "Processed" | "Error")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_of_calls_breaks_the_payment_and_refund_rules(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let mut case = Case::start().await;
            for op in &ops {
                case.step(op).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
