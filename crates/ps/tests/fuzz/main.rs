//! The fuzz harness (issue 9 item 6), on stable Rust: a mutation fuzzer seeded from valid
//! requests, over every wire parser (`wire_parsers`) and every HTTP surface (`http_surfaces`:
//! the real router in process, on a real temporary SQLite file). It checks that nothing panics,
//! that every answer is in its surface's envelope with a status of the documented set, and that
//! what a parser accepts survives being written and read again.
//!
//! Why a hand-written mutator with a seeded generator rather than `cargo fuzz`: libFuzzer needs
//! nightly Rust and a sanitizer build, while this must run in the normal `cargo test` on stable,
//! for a bounded number of inputs, with the same inputs on every run. The requests that matter
//! are structured (JSON bodies, headers, paths), so mutations that know that structure reach the
//! PS's rules far more often than blind byte flips would.
//!
//! Bounded in CI; longer runs (docs/testing.md):
//! `TOLEM_FUZZ_INPUTS=10000000 cargo test -p tolem-ps --test fuzz -- --nocapture`.
//! `TOLEM_FUZZ_SEED` picks another sequence of inputs; each run prints its seed.

mod check;
mod mutate;
mod rng;
mod seeds;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Instant;

use jiff::SignedDuration;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tolem_wire::body::{self, Keys};
use tolem_wire::merchant::{self, from_value_any_case, parse_request};
use tolem_wire::mpp::{self, ResultCode};
use tolem_wire::{Amount, Locale};

use crate::check::Verdict;
use crate::mutate::Input;
use crate::rng::Rng;

/// Inputs per target in CI: a few seconds each in a debug build on a loaded 2-core machine.
const HTTP_INPUTS_CI: u64 = 3_000;
const PARSER_INPUTS_CI: u64 = 3_000;
/// The longest input given to the parsers.
const PARSER_INPUT_BYTES_MAX: usize = 16 * 1024;
/// How many requests are in flight at once against the router.
const HTTP_WORKERS: u64 = 4;
/// Every this many inputs a worker puts back the operator data the seeds rely on, so that a
/// long run keeps reaching the rules behind authentication.
const RESTORE_EVERY: u64 = 400;

/// The number of inputs: `TOLEM_FUZZ_INPUTS`, else the CI figure.
fn inputs(ci: u64) -> u64 {
    std::env::var("TOLEM_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}

fn seed() -> u64 {
    std::env::var("TOLEM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x7013_3E40)
}

/// Panics anywhere in the process (in the router's tasks too), counted with where they were.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

fn count_panics() {
    HOOK.call_once(|| {
        // One line per panic, without the default hook's backtrace: a finding is reproduced
        // from the input the test prints, and capturing backtraces would slow a run to a crawl.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic: {info}");
            let thread = std::thread::current().name().unwrap_or_default().to_owned();
            PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("[{thread}] {info}"));
        }));
    });
}

fn panics() -> Vec<String> {
    PANICS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The process's peak resident memory (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn report(target: &str, inputs: u64, started: Instant, extra: &str) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz {target}: {inputs} inputs in {secs:.1} s ({:.0} inputs/s), peak RSS {} MiB, panics: {}{extra}",
        inputs as f64 / secs.max(1e-9),
        peak_rss_mib().map_or("?".to_owned(), |m| m.to_string()),
        panics().len(),
    );
}

// ---------------------------------------------------------------------------------------------
// Wire parsers

/// Valid bodies of both APIs and the MPP's `/refund`, and texts of the other parsers.
fn parser_corpus() -> Vec<Vec<u8>> {
    let bodies = [
        json!({"qrCode": "TOLEM-STATIC-CAFE-1001", "customerId": "9009********"}),
        json!({"paymentId": "12", "serviceId": 2862, "parameters": [{"id": 3932, "value": "123ABC02"}, {"id": 3933, "value": "1h"}]}),
        json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}, "payment": {"paymentId": "abc1234567890", "mppPaymentId": "abcd12333", "paymentAmount": "100.00"}, "customerId": "9009********"}),
        json!({"customerId": "C-1", "paymentId": "12", "refundAmount": "100.50", "refundId": "13", "linkReceipt": "http://ps/receipt?id=0123456789abcdef0123456789abcdef"}),
        json!({"DeviceId": "kassa-1", "TradePointId": "1001", "OrganizationBin": "990340001234"}),
        json!({"DeviceToken": "2be4a1e8-3c67-4ba7-a0a5-5d4e3b1bd2ec", "Amount": 200.5, "ExternalId": "x"}),
        json!({"QrPaymentId": 15}),
        json!({"DeviceToken": "t", "QrReturnId": 16, "MaxResult": 10}),
        json!({"DeviceToken": "t", "QrPaymentId": 15, "QrReturnId": "16", "Amount": "1.00", "OrganizationBin": "990340001234"}),
        json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}, "qrCodeType": "Static", "merchant": {"merchantId": "1001", "merchantName": "Cafe", "merchantMCC": "5814", "authorType": "POS"}, "payment": {"paymentId": "12", "canConfirmUntil": "2026-11-27T18:31:42+05:00"}}),
        json!({"StatusCode": 0, "Message": "OK", "Data": {"Status": "Processed", "Amount": 200.00}}),
    ];
    let mut corpus: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_string().into_bytes()).collect();
    for text in [
        "100.00",
        "2026-11-27T18:31:42+05:00",
        "2026-11-27T18:31:42.123+05:00",
        "2026-11-27T18:31:42Z",
        "ru-RU",
        "kk-KZ",
        "kk,ru;q=0.8",
        "SUCCESS",
        "2026-11-26",
        "2026-11",
        "12",
        "QrPaymentId=15&DeviceToken=t",
        "id=0123456789abcdef0123456789abcdef&locale=kk",
    ] {
        corpus.push(text.as_bytes().to_vec());
    }
    corpus
}

/// Reads a body as the MPP API does and, when it is accepted, checks that writing it back and
/// reading it again gives the same request.
fn mpp_request<T: DeserializeOwned + Serialize>(bytes: &[u8]) {
    let Ok(first) = body::read::<T>(bytes, Keys::Exact) else {
        return;
    };
    let written = serde_json::to_vec(&first).expect("a request serializes");
    let again: T = body::read(&written, Keys::Exact)
        .unwrap_or_else(|e| panic!("an accepted request does not read back: {e:?}"));
    assert_eq!(
        serde_json::to_value(&first).ok(),
        serde_json::to_value(&again).ok(),
        "a request changed on its way back"
    );
}

fn every_parser(bytes: &[u8]) {
    mpp_request::<mpp::ScanRequest>(bytes);
    mpp_request::<mpp::CheckoutRequest>(bytes);
    mpp_request::<mpp::NotifyPaymentRequest>(bytes);
    mpp_request::<mpp::RefundRequest>(bytes);
    let _ = parse_request::<merchant::DeviceRegisterRequest>(bytes);
    let _ = parse_request::<merchant::DeviceDeleteRequest>(bytes);
    let _ = parse_request::<merchant::QrCreateRequest>(bytes);
    let _ = parse_request::<merchant::EmulatorRequest>(bytes);
    let _ = parse_request::<merchant::ReturnCreateRequest>(bytes);
    let _ = parse_request::<merchant::ReturnOperationsRequest>(bytes);
    let _ = parse_request::<merchant::PaymentReturnRequest>(bytes);
    let _ = parse_request::<merchant::ReturnEmulatorRequest>(bytes);
    // Answers, as the SDK and POS clients read them.
    let _ = serde_json::from_slice::<mpp::ScanResponse>(bytes);
    let _ = serde_json::from_slice::<mpp::CheckoutResponse>(bytes);
    let _ = serde_json::from_slice::<mpp::NotifyPaymentResponse>(bytes);
    let _ = serde_json::from_slice::<mpp::ResultOnly>(bytes);
    let _ = serde_json::from_slice::<merchant::Envelope<Value>>(bytes);
    // Query strings (merchant `payment/details`) and the text parsers.
    let text = String::from_utf8_lossy(bytes);
    let map: Map<String, Value> = form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let _ = from_value_any_case::<merchant::PaymentQuery>(Value::Object(map));
    if let Ok(amount) = Amount::parse(&text) {
        // What is accepted is written back readable (AMOUNT_TIYN_MAX).
        assert_eq!(Amount::parse(&amount.to_string()), Ok(amount), "{text:?}");
    }
    if let Some(at) = tolem_wire::time::parse(&text) {
        let zone = tolem_wire::time::zone("Asia/Almaty").expect("the zone is bundled");
        // The MPP API writes whole seconds: what is read back is the same moment to the second.
        let written = tolem_wire::time::format_mpp(at, &zone);
        let again = tolem_wire::time::parse(&written).expect("a written date reads back");
        assert!(
            at.duration_since(again).abs() < SignedDuration::from_secs(1),
            "{text:?} came back as {written}"
        );
        let _ = tolem_wire::time::format_merchant(at, &zone);
    }
    let _ = Locale::from_header(Some(&text));
    let _ = Locale::from_accept_language(Some(&text));
    let _ = ResultCode::parse(&text);
    let _ = merchant::documented_name(&text.to_lowercase());
    if let Ok(id) = tolem_ps::payments::parse_payment_id(&text, "paymentId") {
        // One spelling per payment: the one the PS writes.
        assert_eq!(id.to_string(), text);
    }
    for kind in [
        tolem_ps::registers::RegisterKind::Daily,
        tolem_ps::registers::RegisterKind::Monthly,
    ] {
        let _ = tolem_ps::registers::Period::parse(kind, &text);
    }
}

#[test]
fn wire_parsers_survive_mutated_input() {
    count_panics();
    let total = inputs(PARSER_INPUTS_CI);
    let seed = seed();
    println!("fuzz wire parsers: seed {seed}, {total} inputs");
    let corpus = parser_corpus();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut findings = Vec::new();
    for n in 0..total {
        let mut input = Input {
            method: String::new(),
            target: String::new(),
            headers: Vec::new(),
            body: rng.pick(&corpus).clone(),
        };
        input = mutate::mutate(&mut rng, &input);
        // Bodies past the 64 KiB limit never reach a parser (the HTTP target sends those), and
        // a short input keeps this target at thousands of inputs a second.
        input.body.truncate(PARSER_INPUT_BYTES_MAX);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| every_parser(&input.body)));
        if outcome.is_err() && findings.len() < 10 {
            findings.push(format!(
                "input {n}: {:?}",
                String::from_utf8_lossy(&input.body)
            ));
        }
    }
    report("wire parsers", total, started, "");
    assert!(
        findings.is_empty(),
        "parsers panicked on:\n{}",
        findings.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP surfaces

#[derive(Default)]
struct Tally {
    bugs: Vec<String>,
    statuses: HashMap<(String, u16), u64>,
    unsendable: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_surfaces_answer_every_mutated_request() {
    count_panics();
    let total = inputs(HTTP_INPUTS_CI);
    let seed = seed();
    println!("fuzz HTTP surfaces: seed {seed}, {total} inputs, {HTTP_WORKERS} in flight");
    let target = Arc::new(seeds::start().await);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..HTTP_WORKERS {
        let (target, tally, next) = (target.clone(), tally.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ worker.wrapping_mul(0x9E37_79B9));
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as u64;
                if n >= total {
                    return;
                }
                if n.is_multiple_of(RESTORE_EVERY) {
                    for input in &target.restore {
                        let _ = seeds::send(&target.service, input).await;
                    }
                }
                if rng.one_in(200) {
                    // Let purchases and QRs expire now and then.
                    target.clock.advance(SignedDuration::from_secs(70));
                }
                let seed_input = rng.pick(&target.seeds).clone();
                let input = mutate::mutate(&mut rng, &seed_input);
                let panics_before = panics().len();
                let answer = seeds::send(&target.service, &input).await;
                let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                let Some((status, headers, body)) = answer else {
                    tally.unsendable += 1;
                    continue;
                };
                let surface = check::surface(&input.target);
                *tally
                    .statuses
                    .entry((format!("{surface:?}"), status))
                    .or_default() += 1;
                let verdict = check::check(&input, status, &headers, &body);
                let panicked = panics().len() > panics_before;
                match verdict {
                    Verdict::Bug(why) if tally.bugs.len() < 20 => {
                        tally.bugs.push(format!("{why}\n{}", input.describe()));
                    }
                    _ if panicked && tally.bugs.len() < 20 => {
                        tally
                            .bugs
                            .push(format!("a panic around\n{}", input.describe()));
                    }
                    _ => {}
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a fuzz worker ends");
    }
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    let mut statuses: Vec<_> = tally.statuses.iter().collect();
    statuses.sort();
    let statuses: Vec<String> = statuses
        .iter()
        .map(|((s, c), n)| format!("{s} {c}: {n}"))
        .collect();
    let extra = format!(
        "\n  answers: {}\n  not sendable (refused below the router): {}",
        statuses.join(", "),
        tally.unsendable,
    );
    report("HTTP surfaces", total, started, &extra);
    // The parser target runs beside this one and catches its own panics on its own thread.
    let panics: Vec<String> = panics()
        .into_iter()
        .filter(|p| !p.starts_with("[wire_parsers_survive_mutated_input]"))
        .collect();
    assert!(panics.is_empty(), "panics: {panics:#?}");
    assert!(
        tally.bugs.is_empty(),
        "findings:\n\n{}",
        tally.bugs.join("\n\n")
    );
}
