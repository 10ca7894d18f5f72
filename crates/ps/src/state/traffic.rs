//! What the PS answered and how long it took, for the operator's monitoring
//! (`GET /admin/v1/metrics`, `docs/deployment.md`, "Monitoring"): every MPP API request by
//! method and the `resultCode` it was answered with, and every other request by its route and
//! HTTP status, each with a histogram of its time from the request's headers to its answer.
//!
//! Counted once per answer by the router's request layer (`app.rs`), which times every request
//! already. The MPP API's counts are fixed arrays of atomics (no lock on its hot path); the
//! other routes, a bounded set of route templates, share one mutex.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tolem_wire::mpp::{self, ResultCode};

/// The histograms' upper bounds, in microseconds, with their `le` labels in seconds: from half
/// a millisecond (a scan on a quiet PS) to the longest deadline a request may have.
const BOUNDS: [(u64, &str); 14] = [
    (500, "0.0005"),
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
];

/// The MPP API's methods, and `unknown` for a path it does not have.
const METHODS: [&str; 4] = ["scan", "checkout", "notifyPayment", "unknown"];

/// The MPP API's `resultCode`s, each an index into [`ResultCode::ALL`].
const CODES: usize = ResultCode::ALL.len();

/// Requests answered since the process started.
#[derive(Default)]
pub struct Traffic {
    mpp: [MppMethod; METHODS.len()],
    /// Other requests by route template (the fallback's `unmatched` for a path no route has).
    http: Mutex<BTreeMap<String, Route>>,
    /// Answers of the 5xx class other than 503 ("busy, retry", which a rate, a full queue or a
    /// database away says on purpose), on any surface: faults.
    server_errors: AtomicU64,
}

#[derive(Default)]
struct MppMethod {
    /// One count per `resultCode`, and last one for an answer that carried none.
    results: [AtomicU64; CODES + 1],
    time: Histogram,
}

#[derive(Default)]
struct Route {
    statuses: BTreeMap<u16, u64>,
    time: Histogram,
}

/// A Prometheus histogram: a count per bucket (not yet cumulative), the sum in microseconds
/// and the count.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BOUNDS.iter().position(|(bound, _)| us <= *bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name`, after `labels` (`key="value",` each).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for ((_, le), bucket) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        // Read after the buckets: a request counted meanwhile shows in `+Inf` and `_count`, so
        // the buckets never add up to more than them.
        let count = self.count.load(Relaxed).max(cumulative);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed);
        let labels = labels.trim_end_matches(',');
        // Seconds with six decimals, from whole microseconds: no float on the way.
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}.{:06}",
            sum / 1_000_000,
            sum % 1_000_000
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// An MPP API method, or `unknown` ([`Traffic::mpp_method`]).
#[derive(Clone, Copy)]
pub(crate) struct MppMethodOf(usize);

impl Traffic {
    /// The MPP API method of a request to `path`.
    pub(crate) fn mpp_method(path: &str) -> MppMethodOf {
        MppMethodOf(match path {
            mpp::SCAN_PATH => 0,
            mpp::CHECKOUT_PATH => 1,
            mpp::NOTIFY_PAYMENT_PATH => 2,
            _ => 3,
        })
    }

    /// One MPP API request of `method`, answered with `code` (none when the answer carried
    /// none) after `took`.
    pub(crate) fn mpp_answered(
        &self,
        method: MppMethodOf,
        code: Option<ResultCode>,
        took: Duration,
    ) {
        let counts = &self.mpp[method.0];
        counts.results[code.map_or(CODES, |code| code as usize)].fetch_add(1, Relaxed);
        counts.time.observe(took);
    }

    /// One answer of any surface with `status`: counted when it is a fault.
    pub(crate) fn answered_with(&self, status: u16) {
        if (500..600).contains(&status) && status != 503 {
            self.server_errors.fetch_add(1, Relaxed);
        }
    }

    /// One request on another route (`route`, its template), answered with `status`.
    pub(crate) fn http_answered(&self, route: &str, status: u16, took: Duration) {
        let mut routes = self
            .http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = match routes.get_mut(route) {
            Some(counts) => counts,
            None => routes.entry(route.to_owned()).or_default(),
        };
        *counts.statuses.entry(status).or_default() += 1;
        counts.time.observe(took);
    }

    /// The counts in the Prometheus text format: `tolem_mpp_requests_total`,
    /// `tolem_mpp_request_duration_seconds`, `tolem_http_requests_total` and
    /// `tolem_http_request_duration_seconds`, and `tolem_server_errors_total`. The MPP API's methods are there from the start,
    /// each result at 0 until it happens, so that a query over a window sees its first increase
    /// (a series that appears at 1 shows none); `unknown` and the other routes once they happen.
    pub(crate) fn prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE tolem_mpp_requests_total counter\n");
        for (i, (method, counts)) in METHODS.iter().zip(&self.mpp).enumerate() {
            let known = i < METHODS.len() - 1;
            let codes = ResultCode::ALL.iter().map(|code| code.as_str());
            for (code, count) in codes.chain(["OTHER"]).zip(&counts.results) {
                let count = count.load(Relaxed);
                if (known && code != "OTHER") || count > 0 {
                    let _ = writeln!(
                        out,
                        "tolem_mpp_requests_total{{method=\"{method}\",result=\"{code}\"}} {count}"
                    );
                }
            }
        }
        out.push_str("# TYPE tolem_mpp_request_duration_seconds histogram\n");
        for (i, (method, counts)) in METHODS.iter().zip(&self.mpp).enumerate() {
            if i < METHODS.len() - 1 || counts.time.count.load(Relaxed) > 0 {
                let labels = format!("method=\"{method}\",");
                counts
                    .time
                    .render(&mut out, "tolem_mpp_request_duration_seconds", &labels);
            }
        }
        let _ = writeln!(
            out,
            "# TYPE tolem_server_errors_total counter\ntolem_server_errors_total {}",
            self.server_errors.load(Relaxed)
        );
        let routes = self
            .http
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.push_str("# TYPE tolem_http_requests_total counter\n");
        for (route, counts) in routes.iter() {
            let route = label_value(route);
            for (status, count) in &counts.statuses {
                let _ = writeln!(
                    out,
                    "tolem_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str("# TYPE tolem_http_request_duration_seconds histogram\n");
        for (route, counts) in routes.iter() {
            let labels = format!("route=\"{}\",", label_value(route));
            counts
                .time
                .render(&mut out, "tolem_http_request_duration_seconds", &labels);
        }
        out
    }
}

/// `value` as a Prometheus label value: backslash, quote and line feed escaped.
pub(crate) fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mpp_answer_is_counted_by_method_and_result_and_timed() {
        let traffic = Traffic::default();
        let ms = Duration::from_millis;
        let scan = Traffic::mpp_method(mpp::SCAN_PATH);
        traffic.mpp_answered(scan, Some(ResultCode::Success), ms(3));
        traffic.mpp_answered(scan, Some(ResultCode::Success), ms(30));
        traffic.mpp_answered(scan, Some(ResultCode::InvalidToken), ms(0));
        let unknown = Traffic::mpp_method("/api/v1/nothing");
        traffic.mpp_answered(unknown, Some(ResultCode::ParamIllegal), ms(0));
        let text = traffic.prometheus();
        for line in [
            "tolem_mpp_requests_total{method=\"scan\",result=\"SUCCESS\"} 2\n",
            "tolem_mpp_requests_total{method=\"scan\",result=\"INVALID_TOKEN\"} 1\n",
            "tolem_mpp_requests_total{method=\"unknown\",result=\"PARAM_ILLEGAL\"} 1\n",
            "tolem_mpp_request_duration_seconds_bucket{method=\"scan\",le=\"0.0005\"} 1\n",
            "tolem_mpp_request_duration_seconds_bucket{method=\"scan\",le=\"0.005\"} 2\n",
            "tolem_mpp_request_duration_seconds_bucket{method=\"scan\",le=\"0.025\"} 2\n",
            "tolem_mpp_request_duration_seconds_bucket{method=\"scan\",le=\"0.05\"} 3\n",
            "tolem_mpp_request_duration_seconds_bucket{method=\"scan\",le=\"+Inf\"} 3\n",
            "tolem_mpp_request_duration_seconds_sum{method=\"scan\"} 0.033000\n",
            "tolem_mpp_request_duration_seconds_count{method=\"scan\"} 3\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // A method no request reached is there at 0; the unknown one only once it happened.
        assert!(
            text.contains("tolem_mpp_requests_total{method=\"checkout\",result=\"SUCCESS\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("tolem_mpp_request_duration_seconds_count{method=\"checkout\"} 0\n"),
            "{text}"
        );
        let quiet = Traffic::default().prometheus();
        assert!(!quiet.contains("method=\"unknown\""), "{quiet}");
        assert!(!quiet.contains("result=\"OTHER\""), "{quiet}");
        assert!(quiet.contains("tolem_server_errors_total 0\n"), "{quiet}");
        // An answer without a code still counts, so that the counter and the histogram agree.
        traffic.mpp_answered(scan, None, ms(1));
        let text = traffic.prometheus();
        assert!(
            text.contains("tolem_mpp_requests_total{method=\"scan\",result=\"OTHER\"} 1\n"),
            "{text}"
        );
        for status in [200, 404, 503, 500, 502] {
            traffic.answered_with(status);
        }
        assert!(
            traffic
                .prometheus()
                .contains("tolem_server_errors_total 2\n")
        );
    }

    #[test]
    fn a_code_is_its_own_index_in_the_list_of_codes() {
        // `mpp_answered` counts a code at `code as usize`, and the text names it from `ALL`.
        for (i, code) in ResultCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{}", code.as_str());
        }
    }

    #[test]
    fn other_routes_are_counted_by_status_and_a_time_past_the_last_bound_only_in_inf() {
        let traffic = Traffic::default();
        traffic.http_answered("/r1/qr/create", 200, Duration::from_millis(2));
        traffic.http_answered("/r1/qr/create", 429, Duration::from_secs(11));
        traffic.http_answered("/a\"b", 404, Duration::ZERO);
        let text = traffic.prometheus();
        for line in [
            "tolem_http_requests_total{route=\"/r1/qr/create\",status=\"200\"} 1\n",
            "tolem_http_requests_total{route=\"/r1/qr/create\",status=\"429\"} 1\n",
            "tolem_http_requests_total{route=\"/a\\\"b\",status=\"404\"} 1\n",
            "tolem_http_request_duration_seconds_bucket{route=\"/r1/qr/create\",le=\"10\"} 1\n",
            "tolem_http_request_duration_seconds_bucket{route=\"/r1/qr/create\",le=\"+Inf\"} 2\n",
            "tolem_http_request_duration_seconds_sum{route=\"/r1/qr/create\"} 11.002000\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
