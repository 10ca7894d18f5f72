//! What the operator's monitoring reads (`GET /admin/v1/metrics`, `docs/deployment.md`,
//! "Monitoring"): every MPP API answer counted by method and `resultCode`, every other request by
//! its route and status, each timed; the text is valid Prometheus exposition, and every series
//! the deployment guide's alert rules name is there.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::harness::*;

/// The metrics text.
pub(crate) async fn metrics(ps: &TestPs) -> String {
    let (status, text) = ps.admin("GET", "/admin/v1/metrics", &Value::Null).await;
    assert_eq!(status, 200);
    text.as_str().expect("Prometheus text").to_owned()
}

/// The value of the sample `series` (name and labels, as written), if there is one.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn every_answer_is_counted_by_method_and_result_or_route_and_status_and_timed() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 100).await;
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    // The notifyPayment, and a repeat of it answered from the store: both counted with their code.
    let body = notify_body(&payment_id, "C1", "SUCCESS", None);
    for _ in 0..2 {
        let (_, answer) = ps
            .mpp_call("/api/v1/qr/notifyPayment", "demobank", "n", &body)
            .await;
        assert_eq!(result_code(&answer), "SUCCESS");
    }
    assert_eq!(ps.status(id).await["StatusCode"], 0);
    let unknown_qr = json!({"qrCode": "no-such-token", "customerId": "C1"});
    let (_, answer) = ps
        .mpp_call("/api/v1/qr/scan", "demobank", "s-x", &unknown_qr)
        .await;
    assert_eq!(result_code(&answer), "INVALID_TOKEN");
    let (status, _) = ps
        .mpp_call("/api/v1/qr/nothing", "demobank", "u-1", &json!({}))
        .await;
    assert_eq!(status, 404);
    // A method's path with another HTTP method than POST is no method of the API either.
    let got = ps
        .http
        .get(format!("{}/api/v1/qr/scan", ps.url))
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(
        result_code(&got.text().await.expect("a body")),
        "PARAM_ILLEGAL"
    );
    // A caller the PS does not know: refused before anything else, and counted so.
    let (_, answer) = ps
        .mpp_call("/api/v1/qr/scan", "nobank", "s-y", &unknown_qr)
        .await;
    assert_eq!(result_code(&answer), "UNKNOWN_SOURCE");
    let (status, _) = ps.pos("GET", "/r1/v01/no/such/route", API_KEY, None).await;

    let text = metrics(&ps).await;
    for (series, count) in [
        (
            r#"tolem_mpp_requests_total{method="scan",result="SUCCESS"}"#,
            1,
        ),
        (
            r#"tolem_mpp_requests_total{method="scan",result="INVALID_TOKEN"}"#,
            1,
        ),
        (
            r#"tolem_mpp_requests_total{method="scan",result="UNKNOWN_SOURCE"}"#,
            1,
        ),
        (
            r#"tolem_mpp_requests_total{method="notifyPayment",result="SUCCESS"}"#,
            2,
        ),
        (
            r#"tolem_mpp_requests_total{method="unknown",result="PARAM_ILLEGAL"}"#,
            2,
        ),
        ("tolem_server_errors_total", 0),
        (
            r#"tolem_mpp_request_duration_seconds_count{method="scan"}"#,
            3,
        ),
        (
            r#"tolem_mpp_request_duration_seconds_count{method="notifyPayment"}"#,
            2,
        ),
        (
            r#"tolem_http_requests_total{route="/r1/v01/qr/create",status="200"}"#,
            1,
        ),
        (
            r#"tolem_http_requests_total{route="/r1/v01/device/register",status="200"}"#,
            1,
        ),
        (
            r#"tolem_http_request_duration_seconds_count{route="/r1/v01/qr/create"}"#,
            1,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(count), "{series} in\n{text}");
    }
    // The route's template, never the path with its id: one series whatever the purchase.
    assert!(
        text.contains(
            r#"tolem_http_requests_total{route="/r1/v02/payment/status/{id}",status="200"}"#
        ),
        "{text}"
    );
    assert!(!text.contains(&format!("status/{id}\"")), "{text}");
    let unmatched = format!(r#"tolem_http_requests_total{{route="unmatched",status="{status}"}}"#);
    assert_eq!(sample(&text, &unmatched), Some(1), "{text}");
    // A method nobody called is there at 0, so that its first answer shows as an increase.
    let none = r#"tolem_mpp_requests_total{method="checkout",result="SUCCESS"}"#;
    assert_eq!(sample(&text, none), Some(0), "{text}");
    assert_valid_exposition(&text);
}

#[tokio::test]
async fn the_alert_rules_of_the_deployment_guide_name_only_series_the_ps_exports() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    ps.paid(&device, 100, "C1").await;
    let text = metrics(&ps).await;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let monitoring = monitoring_section();
    let named: BTreeSet<String> = monitoring
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("tolem_"))
        .map(|w| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(w)
                .to_owned()
        })
        .collect();
    assert!(named.len() >= 8, "the section names the series: {named:?}");
    for name in &named {
        assert!(
            exported.contains(name.as_str()),
            "{name} is not exported:\n{text}"
        );
    }
    assert_valid_exposition(&text);
}

/// The Prometheus text format as a scraper reads it: each sample's metric declared once by a
/// `# TYPE` line before it; a number for each value; each histogram's buckets growing, ending
/// with `+Inf`, which equals its `_count`.
fn assert_valid_exposition(text: &str) {
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    // Each histogram series (its labels without `le`): its buckets in order, and its count.
    let mut buckets: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split(' ');
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type of {line}"
            );
            assert!(types.insert(name, kind).is_none(), "{name} declared twice");
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "line {line:?}");
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a number in {line}"));
        assert!(value >= 0.0, "{line}");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels end with }");
                (name, labels)
            }
            None => (series, ""),
        };
        for label in labels.split("\",").filter(|l| !l.is_empty()) {
            let (key, value) = label.split_once("=\"").expect("key=\"value\"");
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(!value.trim_end_matches('"').contains('\n'), "{line}");
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| types.get(b) == Some(&"histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(base), "{name} has no # TYPE before it");
        if base != name {
            let (le, rest): (Vec<&str>, Vec<&str>) =
                labels.split(',').partition(|l| l.starts_with("le=\""));
            let key = format!("{base}{{{}}}", rest.join(","));
            match name.strip_prefix(base) {
                Some("_bucket") => buckets.entry(key).or_default().push((le.concat(), value)),
                Some("_count") => {
                    counts.insert(key, value);
                }
                _ => {}
            }
        }
    }
    assert!(!buckets.is_empty(), "some histogram in\n{text}");
    for (series, list) in &buckets {
        assert!(
            list.windows(2).all(|w| w[0].1 <= w[1].1),
            "{series}: buckets grow"
        );
        let (le, last) = list.last().expect("a bucket");
        assert_eq!(le, "le=\"+Inf\"", "{series} ends with +Inf");
        assert_eq!(
            Some(last),
            counts.get(series),
            "{series}: +Inf is the count"
        );
    }
}

#[tokio::test]
async fn with_the_database_away_the_counters_are_still_answered_and_say_so() {
    let ps = TestPs::start().await;
    let text = metrics(&ps).await;
    assert_eq!(sample(&text, "tolem_store_reachable"), Some(1), "{text}");
    assert_eq!(
        sample(&text, "tolem_refunds_undelivered"),
        Some(0),
        "{text}"
    );
    if crate::backend::backend() != crate::backend::Backend::Postgres {
        eprintln!("the database taken away is shown on PostgreSQL only");
        return;
    }
    crate::backend::cut_off_database(&ps.db_path(), true);
    eventually("the metrics say the store is out of reach", || async {
        sample(&metrics(&ps).await, "tolem_store_reachable") == Some(0)
    })
    .await;
    let text = metrics(&ps).await;
    // The store's gauges are left out, not made up; the counters in memory are all there.
    assert_eq!(sample(&text, "tolem_refunds_undelivered"), None, "{text}");
    assert!(
        sample(&text, "tolem_connections_accepted_total").is_some(),
        "{text}"
    );
    let scans = r#"tolem_mpp_requests_total{method="scan",result="SUCCESS"}"#;
    assert_eq!(sample(&text, scans), Some(0), "{text}");
    assert_valid_exposition(&text);
    crate::backend::cut_off_database(&ps.db_path(), false);
    eventually("the store's gauges come back", || async {
        let text = metrics(&ps).await;
        sample(&text, "tolem_store_reachable") == Some(1)
            && sample(&text, "tolem_refunds_undelivered") == Some(0)
    })
    .await;
}

/// A Prometheus server of the test's own, killed when dropped.
struct Prometheus {
    child: std::process::Child,
    url: String,
    /// Its configuration, data and log (`prometheus.log`, shown when a test fails).
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // A test that failed shows what Prometheus said (a bad configuration, a scrape refused).
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("prometheus.log"));
            eprintln!("Prometheus said:\n{}", log.unwrap_or_default());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Debian's Prometheus, installed by scripts/install-test-packages when missing (as root);
/// otherwise the test fails and says how to install it.
fn ensure_prometheus() {
    if !std::path::Path::new(PROMETHEUS).exists() {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/install-test-packages"
        );
        let _ = std::process::Command::new("bash")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .status();
    }
    assert!(
        std::path::Path::new(PROMETHEUS).exists(),
        "this test runs Debian's Prometheus ({PROMETHEUS}): run scripts/install-test-packages \
         as root, or `apt-get install prometheus`"
    );
}

/// The deployment guide's "Monitoring" section, up to the next one.
fn monitoring_section() -> String {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/deployment.md"
    ))
    .expect("docs/deployment.md");
    guide
        .split("\n## Monitoring\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Monitoring section")
        .to_owned()
}

/// The `yaml` blocks of the deployment guide's Monitoring section: the scrape configuration and
/// the alert rules.
fn guide_yaml() -> (String, String) {
    let section = monitoring_section();
    let blocks: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2, "the scrape configuration and the rules");
    (blocks[0].to_owned(), blocks[1].to_owned())
}

/// Prometheus scraping `ps` every second with the guide's configuration (its paths and target
/// made the test's) and evaluating the guide's rules, word for word, every second.
fn start_prometheus(ps: &TestPs) -> Prometheus {
    ensure_prometheus();
    let dir = tempfile::tempdir().expect("dir");
    let (scrape, rules) = guide_yaml();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("token"), ADMIN_TOKEN).expect("token");
    std::fs::write(path("tolem.yml"), rules).expect("rules");
    let target = ps.url.trim_start_matches("http://");
    let scrape = scrape
        .replace("/etc/prometheus/tolem-admin-token", &path("token"))
        .replace("/etc/prometheus/rules/tolem.yml", &path("tolem.yml"))
        .replace("127.0.0.1:8082", target);
    let config = format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{scrape}");
    std::fs::write(path("prometheus.yml"), config).expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = std::process::Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", path("prometheus.yml")))
        .arg(format!("--storage.tsdb.path={}", path("data")))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(path("prometheus.log")).expect("a log"))
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

impl Prometheus {
    /// `data` of an API answer, or Null while Prometheus is not answering yet.
    async fn api(&self, path: &str) -> Value {
        let Ok(resp) = reqwest::get(format!("{}{path}", self.url)).await else {
            return Value::Null;
        };
        resp.json::<Value>()
            .await
            .map(|v| v["data"].clone())
            .unwrap_or(Value::Null)
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_ps_with_the_guides_rules_and_the_rate_alert_fires() {
    let ps = TestPs::start_configured(|c| {
        c.limits.mpp_requests_per_s = 1;
        c.limits.mpp_requests_burst = 1;
    })
    .await;
    let prometheus = start_prometheus(&ps);
    // Scraped, with demobank's refusals at 0, and every rule of the guide loaded and healthy.
    eventually("Prometheus scraped demobank's refusals at 0", || async {
        let query = r#"/api/v1/query?query=tolem_mpp_requests_over_rate_total{mpp="demobank"}"#;
        let found = prometheus.api(query).await;
        found["result"][0]["value"][1] == "0"
    })
    .await;
    let targets = prometheus.api("/api/v1/targets").await;
    assert_eq!(targets["activeTargets"][0]["health"], "up", "{targets}");
    // Past its rate of one a second: refused.
    let mut refused = 0;
    for n in 0..5 {
        let body = json!({"qrCode": STATIC_QR, "customerId": "C1"});
        let (status, _) = ps
            .mpp_call("/api/v1/qr/scan", "demobank", &format!("p-{n}"), &body)
            .await;
        refused += u32::from(status == 503);
    }
    assert!(
        refused > 0,
        "five scans at once pass a rate of one a second"
    );
    eventually("the MPP rate alert fires for demobank", || async {
        let alerts = prometheus.api("/api/v1/alerts").await;
        alerts["alerts"].as_array().is_some_and(|alerts| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == "TolemMppOverRate"
                    && a["labels"]["mpp"] == "demobank"
                    && a["state"] == "firing"
            })
        })
    })
    .await;
    let rules = prometheus.api("/api/v1/rules").await;
    let rules = rules["groups"][0]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rules.len(), 14, "every rule of the guide is loaded");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    // Nothing else fires: the node is up, nothing failed.
    let alerts = prometheus.api("/api/v1/alerts").await;
    let firing: BTreeSet<String> = alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(firing, BTreeSet::from(["TolemMppOverRate".to_owned()]));
}

/// Unit tests of the guide's rules for `promtool test rules`: series made up minute by minute,
/// among them the cases a first look gets wrong (a counter seen first at 0 then raised; "retry"
/// answers that are only an MPP's rate; a store that stops answering).
const RULE_TESTS: &str = r#"
rule_files: [tolem.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'tolem_server_errors_total{instance="a"}'
        values: '0 0 1 1 1 1 1 1 1 1 1 1'
      - series: 'tolem_mpp_requests_over_rate_total{instance="a",mpp="demobank"}'
        values: '0 0 3 3 3 3 3 3 3 3 3 3'
      - series: 'tolem_store_reachable{instance="a"}'
        values: '1 1 0 0 0 0 1 1 1 1 1 1'
      # Left out while the store does not answer (minutes 6-8), then delivered.
      - series: 'tolem_refunds_undelivered_flagged{instance="a"}'
        values: '0 0 0 1 1 1 stale stale stale 0 0 0'
      # Ends two minutes past fourteen days from the start: within them from the third minute.
      - series: 'tolem_tls_certificate_expiry_timestamp_seconds{instance="a",certificate="outgoing"}'
        values: '1209720x11'
      - series: 'tolem_tls_files_reload_failing{instance="a",certificate="https://a:443"}'
        values: '0 0 1 1 1 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 1m
        alertname: TolemCertificateExpiring
        exp_alerts: []
      - eval_time: 3m
        alertname: TolemCertificateExpiring
        exp_alerts: [{exp_labels: {certificate: outgoing}}]
      # Failing for one evaluation is not yet an alert; for a minute, it is.
      - eval_time: 2m
        alertname: TolemTlsFilesNotReloaded
        exp_alerts: []
      - eval_time: 3m
        alertname: TolemTlsFilesNotReloaded
        exp_alerts: [{exp_labels: {certificate: "https://a:443"}}]
      - eval_time: 1m
        alertname: TolemServerErrors
        exp_alerts: []
      - eval_time: 3m
        alertname: TolemServerErrors
        exp_alerts: [{}]
      - eval_time: 3m
        alertname: TolemMppOverRate
        exp_alerts: [{exp_labels: {mpp: demobank}}]
      - eval_time: 2m
        alertname: TolemStoreUnreachable
        exp_alerts: []
      - eval_time: 4m
        alertname: TolemStoreUnreachable
        exp_alerts: [{}]
      - eval_time: 8m
        alertname: TolemStoreUnreachable
        exp_alerts: []
      - eval_time: 4m
        alertname: TolemRefundsFlagged
        exp_alerts: [{}]
      - eval_time: 7m
        alertname: TolemRefundsFlagged
        exp_alerts: [{}]
      - eval_time: 10m
        alertname: TolemRefundsFlagged
        exp_alerts: []
  # An MPP's /refund failing every minute is an alert after half an hour; one failure retried
  # with success is none.
  - interval: 1m
    input_series:
      - series: 'tolem_refund_attempt_failures_total{kind="http"}'
        values: '0+1x50'
      - series: 'tolem_refund_attempt_failures_total{kind="connect"}'
        values: '0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
    alert_rule_test:
      - eval_time: 20m
        alertname: TolemRefundsFailing
        exp_alerts: []
      - eval_time: 40m
        alertname: TolemRefundsFailing
        exp_alerts: [{}]
  - interval: 1m
    input_series:
      - series: 'tolem_refund_attempt_failures_total{kind="connect"}'
        values: '0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
    alert_rule_test:
      - eval_time: 45m
        alertname: TolemRefundsFailing
        exp_alerts: []
  # Every "retry" answer is an MPP over its rate: that rule's, not this one's.
  - interval: 1m
    input_series:
      - series: 'tolem_mpp_requests_total{method="scan",result="SUCCESS"}'
        values: '0+100x15'
      - series: 'tolem_mpp_requests_total{method="scan",result="UNKNOWN_EXCEPTION"}'
        values: '0+10x15'
      - series: 'tolem_mpp_requests_over_rate_total{mpp="demobank"}'
        values: '0+10x15'
    alert_rule_test:
      - eval_time: 12m
        alertname: TolemMppRetryAnswers
        exp_alerts: []
  # The same "retry" answers with no MPP over its rate: the store.
  - interval: 1m
    input_series:
      - series: 'tolem_mpp_requests_total{method="scan",result="SUCCESS"}'
        values: '0+100x15'
      - series: 'tolem_mpp_requests_total{method="scan",result="UNKNOWN_EXCEPTION"}'
        values: '0+10x15'
      - series: 'tolem_mpp_requests_over_rate_total{mpp="demobank"}'
        values: '0+0x15'
    alert_rule_test:
      - eval_time: 12m
        alertname: TolemMppRetryAnswers
        exp_alerts: [{}]
"#;

#[test]
fn the_guides_rules_pass_promtool_and_its_unit_tests() {
    ensure_prometheus();
    let dir = tempfile::tempdir().expect("dir");
    let (_, rules) = guide_yaml();
    std::fs::write(dir.path().join("tolem.yml"), rules).expect("rules");
    std::fs::write(dir.path().join("tests.yml"), RULE_TESTS).expect("tests");
    for args in [
        &["check", "rules", "tolem.yml"][..],
        &["test", "rules", "tests.yml"],
    ] {
        let out = std::process::Command::new("/usr/bin/promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
