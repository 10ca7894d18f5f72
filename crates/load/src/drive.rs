//! The measured workload: `concurrency` workers take QR tokens from one shared queue; for each,
//! a scan (`/api/v1/qr/scan`) and then, with the payment id it gave, a notifyPayment
//! (`/api/v1/qr/notifyPayment`) confirming it. Every request's latency, from sending to the last
//! byte of the answer, goes into a histogram in microseconds; every answer must be SUCCESS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tolem_wire::Amount;
use tolem_wire::mpp::{
    self, NotifyPayment, NotifyPaymentRequest, NotifyPaymentResponse, ResultBody, ResultCode,
    ResultOnly, ScanRequest, ScanResponse,
};

use crate::ps::QR_AMOUNT_TENGE;

/// The largest latency the histograms tell apart (larger ones are recorded as this).
const LATENCY_US_MAX: u64 = 60_000_000;
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// The amount every notifyPayment confirms: the amount of every QR.
pub const PAID: Amount = Amount::from_tiyn(QR_AMOUNT_TENGE * 100);
const CALLER_NAME: &str = "demobank";
const LOCALE: &str = "ru-RU";

/// Where a workload goes; `tag` makes request ids and MPP payment ids unique per server.
pub struct Target<'a> {
    pub client: &'a reqwest::Client,
    pub url: &'a str,
    pub tag: &'static str,
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Scan,
    Notify,
}

/// Requests of one method (or of both), their errors and their latencies.
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub latency_us: Histogram<u64>,
}

impl Stats {
    fn new() -> anyhow::Result<Stats> {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .map_err(|e| anyhow!("cannot create a histogram: {e:?}"))?;
        Ok(Stats {
            requests: 0,
            errors: 0,
            latency_us,
        })
    }

    fn add(&mut self, other: &Stats) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency_us
            .add(&other.latency_us)
            .map_err(|e| anyhow!("cannot merge histograms: {e:?}"))
    }

    fn record(&mut self, latency: Duration) {
        self.latency_us
            .saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }
}

/// A kind of failed request (method, HTTP status, result code), how often, and one answer.
#[derive(Clone, Debug)]
pub struct Failure {
    pub count: u64,
    pub example: String,
}

/// What one run of the workload measured.
pub struct Outcome {
    pub elapsed: Duration,
    pub scan: Stats,
    pub notify: Stats,
    /// Scan and notify together.
    pub all: Stats,
    pub failures: BTreeMap<String, Failure>,
}

impl Outcome {
    pub fn requests_per_s(&self) -> f64 {
        (self.scan.requests + self.notify.requests) as f64
            / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

struct Worker {
    client: reqwest::Client,
    scan_url: String,
    notify_url: String,
    tag: &'static str,
    phase: &'static str,
    tokens: Arc<[String]>,
    /// The number of the first token, so that customers and ids differ between phases.
    first_index: usize,
    next: Arc<AtomicUsize>,
}

struct Tally {
    scan: Stats,
    notify: Stats,
    failures: BTreeMap<String, Failure>,
}

/// Runs one scan + notifyPayment pair per token with `concurrency` workers.
pub async fn run(
    target: &Target<'_>,
    phase: &'static str,
    tokens: Arc<[String]>,
    first_index: usize,
    concurrency: usize,
) -> anyhow::Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..concurrency.min(tokens.len()))
        .map(|_| {
            let worker = Worker {
                client: target.client.clone(),
                scan_url: format!("{}{}", target.url, mpp::SCAN_PATH),
                notify_url: format!("{}{}", target.url, mpp::NOTIFY_PAYMENT_PATH),
                tag: target.tag,
                phase,
                tokens: tokens.clone(),
                first_index,
                next: next.clone(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let mut outcome = Outcome {
        elapsed: Duration::ZERO,
        scan: Stats::new()?,
        notify: Stats::new()?,
        all: Stats::new()?,
        failures: BTreeMap::new(),
    };
    for handle in handles {
        let tally = handle.await.context("a load worker panicked")??;
        outcome.scan.add(&tally.scan)?;
        outcome.notify.add(&tally.notify)?;
        for (kind, failure) in tally.failures {
            let entry = outcome.failures.entry(kind).or_insert(Failure {
                count: 0,
                example: failure.example,
            });
            entry.count += failure.count;
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.all.add(&outcome.scan)?;
    outcome.all.add(&outcome.notify)?;
    Ok(outcome)
}

impl Worker {
    async fn run(self) -> anyhow::Result<Tally> {
        let mut tally = Tally {
            scan: Stats::new()?,
            notify: Stats::new()?,
            failures: BTreeMap::new(),
        };
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(token) = self.tokens.get(i) else {
                break;
            };
            self.pair(self.first_index + i, token, &mut tally).await;
        }
        Ok(tally)
    }

    async fn pair(&self, n: usize, token: &str, tally: &mut Tally) {
        let customer_id = format!("C{n}");
        let scan = ScanRequest {
            qr_code: token.to_owned(),
            customer_id: customer_id.clone(),
        };
        let request_id = format!("{}-{}-{n}-s", self.tag, self.phase);
        let scanned = self
            .exchange::<ScanResponse>(
                Method::Scan,
                &self.scan_url,
                &request_id,
                &scan,
                &mut tally.scan,
            )
            .await;
        let payment_id = match scanned.and_then(|answer| {
            success(Method::Scan, &answer.result, &answer)?;
            answer
                .payment
                .as_ref()
                .map(|p| p.payment_id.clone())
                .ok_or_else(|| failed(Method::Scan, "no payment", &answer))
        }) {
            Ok(payment_id) => payment_id,
            Err((kind, example)) => return tally.fail(Method::Scan, kind, example),
        };
        let notify = NotifyPaymentRequest {
            result: ResultBody::success(),
            payment: NotifyPayment {
                payment_id,
                mpp_payment_id: format!("M{}{n}", self.tag),
                payment_amount: Some(PAID),
                customer_id: None,
            },
            customer_id: Some(customer_id),
        };
        let request_id = format!("{}-{}-{n}-n", self.tag, self.phase);
        let notified = self
            .exchange::<NotifyPaymentResponse>(
                Method::Notify,
                &self.notify_url,
                &request_id,
                &notify,
                &mut tally.notify,
            )
            .await
            .and_then(|answer| success(Method::Notify, &answer.result, &answer));
        if let Err((kind, example)) = notified {
            tally.fail(Method::Notify, kind, example);
        }
    }

    /// Sends one request, records its latency and reads the answer as `T`; a transport error, an
    /// HTTP status other than 200 or an answer that is not a `T` is a failure.
    async fn exchange<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        request_id: &str,
        body: &impl Serialize,
        stats: &mut Stats,
    ) -> Result<T, (String, String)> {
        stats.requests += 1;
        let started = Instant::now();
        let sent = self
            .client
            .post(url)
            .header(mpp::HEADER_REQUEST_ID, request_id)
            .header(mpp::HEADER_CALLER_NAME, CALLER_NAME)
            .header(mpp::HEADER_LOCALE, LOCALE)
            .json(body)
            .send()
            .await;
        let response = sent.map_err(|e| (format!("{method:?}: transport"), format!("{e:#}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| (format!("{method:?}: transport"), format!("{e:#}")))?;
        stats.record(started.elapsed());
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        if status != reqwest::StatusCode::OK {
            let code = serde_json::from_slice::<ResultOnly>(&bytes)
                .map(|r| r.result.result_code)
                .unwrap_or_default();
            return Err((
                format!("{method:?}: HTTP {} {code}", status.as_u16()),
                text(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|_| (format!("{method:?}: unexpected answer"), text()))
    }
}

impl Tally {
    fn fail(&mut self, method: Method, kind: String, example: String) {
        match method {
            Method::Scan => self.scan.errors += 1,
            Method::Notify => self.notify.errors += 1,
        }
        self.failures
            .entry(kind)
            .or_insert(Failure { count: 0, example })
            .count += 1;
    }
}

fn success(
    method: Method,
    result: &ResultBody,
    answer: &impl Serialize,
) -> Result<(), (String, String)> {
    if result.code() == Some(ResultCode::Success) {
        return Ok(());
    }
    Err(failed(
        method,
        &format!("HTTP 200 {}", result.result_code),
        answer,
    ))
}

fn failed(method: Method, what: &str, answer: &impl Serialize) -> (String, String) {
    (
        format!("{method:?}: {what}"),
        serde_json::to_string(answer).unwrap_or_default(),
    )
}
