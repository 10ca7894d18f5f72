//! The PS's edges seen from outside (DECISIONS 43, issue 9): the admin token is checked before
//! any of the request is read, admin bodies are small, every refusal comes in its surface's own
//! envelope, an X-Request-ID is echoed only when it keeps the one rule, and the admin lists page
//! with a cursor.
//!
//! Nothing here measures time: "the PS did not read the body" is shown by a body that was never
//! sent, so an answer that arrives at all proves it. Each raw exchange is bounded (`EXCHANGE_S`)
//! only so that a regression fails instead of hanging.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;
use crate::receiver::Receiver;
use crate::refunds::refund_r3;

/// Longest a raw exchange may take before the test calls it a hang.
const EXCHANGE_S: u64 = 20;
/// What the probe of issue 9 sent: 2 MiB, the old body limit of the admin API.
const PROBE_BODY_BYTES: usize = 2 * 1024 * 1024;

/// An HTTP/1.1 answer read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    body: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("a JSON body, got {:?}", self.body))
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` on a fresh
/// connection, then reads until the PS closes it: the PS must answer, and must let go.
async fn raw(ps: &TestPs, head: &str, body: &[u8]) -> Raw {
    let addr = ps.url.trim_start_matches("http://").to_owned();
    let exchange = async {
        let mut socket = TcpStream::connect(&addr).await.expect("connect");
        let mut request =
            format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes();
        request.extend_from_slice(body);
        socket
            .write_all(&request)
            .await
            .expect("the request is sent");
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.expect("the answer");
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(EXCHANGE_S), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {head:?}: the PS waits for something"));
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer, got {text:?}"));
    Raw {
        status,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn the_admin_token_is_checked_before_the_body_is_read() {
    let ps = TestPs::start().await;
    // A 2 MiB body is announced and never sent: an answer at all shows that none of it was read.
    for auth in ["", "Authorization: Bearer wrong\r\n"] {
        let head = format!(
            "PUT /admin/v1/mpps/x HTTP/1.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {PROBE_BODY_BYTES}"
        );
        let answer = raw(&ps, head.trim_end(), b"").await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(
            answer.json(),
            json!({"error": "bad or missing bearer token"})
        );
    }
    // Nothing of the path is parsed before the token either.
    let answer = raw(&ps, "GET /admin/v1/payments/abc HTTP/1.1", b"").await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(answer.json()["error"].is_string());
    // With the token, a declared length over `limits.admin_body_bytes_max` is refused at once.
    let head = format!(
        "PUT /admin/v1/mpps/x HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {PROBE_BODY_BYTES}"
    );
    let answer = raw(&ps, &head, b"").await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(
        answer.json(),
        json!({"error": "the body is larger than 65536 bytes (limits.admin_body_bytes_max)"})
    );
}

#[tokio::test]
async fn three_hundred_token_less_uploads_cost_the_ps_no_body() {
    let ps = TestPs::start().await;
    // Issue 9's probe, at once: 300 token-less PUTs announcing 2 MiB each. None of the bodies is
    // ever sent, so every 401 is an answer given without reading one.
    let head = format!(
        "PUT /admin/v1/mpps/x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {PROBE_BODY_BYTES}"
    );
    let answers = join_all((0..300).map(|_| raw(&ps, &head, b""))).await;
    for answer in &answers {
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    // The operator is served as before.
    let (status, _) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_admin_body_is_limited_while_it_is_read() {
    let ps = TestPs::start_configured(|c| c.limits.admin_body_bytes_max = 1024).await;
    let mpp = json!({"caller_name": "newbank", "name": "New Bank", "refund_url": "http://127.0.0.1:1/refund"});
    let mut text = mpp.to_string();
    let fits = text.clone();
    // Padding inside the JSON keeps the body valid; only its size is wrong.
    text.insert_str(1, &format!("\"pad\": \"{}\", ", "x".repeat(1100)));
    // Chunked: no length is declared, so the limit applies while reading.
    let chunked = |body: &str| format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let head = format!(
        "PUT /admin/v1/mpps/newbank HTTP/1.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    );
    let answer = raw(&ps, &head, chunked(&text).as_bytes()).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(
        answer.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("1024"))
    );
    let answer = raw(&ps, &head, chunked(&fits).as_bytes()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["caller_name"], "newbank");
}

/// Which envelope an answer must carry.
#[derive(Clone, Copy, Debug)]
enum Envelope {
    /// The MPP API's `result` (DECISIONS 7).
    Mpp,
    /// The merchant API's `StatusCode` / `Message` (DECISIONS 33).
    Merchant,
    /// The admin API's `{"error"}`.
    Admin,
}

fn check_envelope(kind: Envelope, body: &Value) -> bool {
    match kind {
        Envelope::Mpp => {
            body["result"]["resultCode"].is_string() && body["result"]["resultMessage"].is_string()
        }
        Envelope::Merchant => body["StatusCode"].is_i64() && body["Message"].is_string(),
        Envelope::Admin => {
            body["error"].is_string() && body.as_object().is_some_and(|o| o.len() == 1)
        }
    }
}

/// A request and what it must get: (method, path, headers, body, HTTP status, envelope).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a str,
    u16,
    Envelope,
);

#[tokio::test]
async fn every_refusal_comes_in_its_surfaces_envelope() {
    use Envelope::*;
    let ps = TestPs::start().await;
    let token = format!("Bearer {ADMIN_TOKEN}");
    let admin = [("authorization", token.as_str())];
    let pos = [("api-key", API_KEY)];
    let none: [(&str, &str); 0] = [];
    let cases: Vec<Case> = vec![
        ("GET", "/api", &none, "", 404, Mpp),
        ("GET", "/api/", &none, "", 404, Mpp),
        ("POST", "/api/v1/x", &none, "", 404, Mpp),
        ("POST", "/api/v2/qr/scan", &none, "", 404, Mpp),
        ("GET", "/api/v1/qr/scan", &none, "", 404, Mpp),
        ("PUT", "/api/v1/qr/notifyPayment", &none, "", 404, Mpp),
        ("POST", "/api/v1/qr/scan", &none, "{}", 200, Mpp),
        ("POST", "/api/v1/qr/scan?x=%ZZ", &none, "{}", 200, Mpp),
        ("GET", "/r1", &none, "", 404, Merchant),
        ("GET", "/r1/", &none, "", 404, Merchant),
        ("GET", "/r1/v1/unknown", &none, "", 404, Merchant),
        ("GET", "/r1/v01/unknown", &pos, "", 404, Merchant),
        ("GET", "/r1/v01/qr/create", &pos, "", 404, Merchant),
        ("DELETE", "/r1/v01/health/ping", &pos, "", 404, Merchant),
        ("POST", "/r1/v01/qr/create", &none, "{}", 200, Merchant),
        ("GET", "/r1/v02/payment/status/abc", &pos, "", 200, Merchant),
        ("GET", "/r1/v02/payment/status/%FF", &pos, "", 200, Merchant),
        (
            "GET",
            "/r1/v02/payment/status/1?x=%ZZ",
            &pos,
            "",
            200,
            Merchant,
        ),
        ("GET", "/r2/", &none, "", 404, Merchant),
        ("GET", "/r3/", &none, "", 404, Merchant),
        (
            "GET",
            "/r3/v01/partner/tradepoints",
            &pos,
            "",
            404,
            Merchant,
        ),
        ("GET", "/admin", &none, "", 401, Admin),
        ("GET", "/admin/", &none, "", 401, Admin),
        ("GET", "/admin/v1/nope", &none, "", 401, Admin),
        ("GET", "/admin", &admin, "", 404, Admin),
        ("GET", "/admin/v1/nope", &admin, "", 404, Admin),
        ("DELETE", "/admin/v1/catalog", &none, "", 401, Admin),
        ("DELETE", "/admin/v1/catalog", &admin, "", 405, Admin),
        ("GET", "/admin/v1/payments/abc", &none, "", 401, Admin),
        ("GET", "/admin/v1/payments/abc", &admin, "", 400, Admin),
        ("GET", "/admin/v1/payments/99999999", &admin, "", 404, Admin),
        ("GET", "/admin/v1/refunds?limit=abc", &admin, "", 400, Admin),
        ("GET", "/admin/v1/refunds?limit=0", &admin, "", 400, Admin),
        (
            "GET",
            "/admin/v1/refunds?status=nope",
            &admin,
            "",
            400,
            Admin,
        ),
        ("GET", "/admin/v1/refunds?after=x", &admin, "", 400, Admin),
        (
            "GET",
            "/admin/v1/registers?limit=-1",
            &admin,
            "",
            400,
            Admin,
        ),
        ("PUT", "/admin/v1/mpps/x", &admin, "{not json", 400, Admin),
        ("PUT", "/admin/v1/mpps/x", &admin, "[]", 400, Admin),
        (
            "POST",
            "/admin/v1/refunds/abc/retry",
            &admin,
            "",
            400,
            Admin,
        ),
        ("POST", "/admin/v1/refunds/1/retry", &admin, "", 404, Admin),
    ];
    for (method, path, headers, body, status, kind) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = ps
            .http
            .request(method.clone(), format!("{}{path}", ps.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.expect("the PS answers");
        let got = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: JSON, got {got} {text:?}"));
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(
            check_envelope(kind, &answer),
            "{method} {path}: not the {kind:?} envelope: {answer}"
        );
    }
}

#[tokio::test]
async fn without_a_token_configured_the_admin_api_is_not_there() {
    let ps = TestPs::start_configured(|c| c.admin_token = String::new()).await;
    for path in ["/admin/v1/catalog", "/admin/v1/nope", "/admin"] {
        let (status, answer) = ps.admin("GET", path, &Value::Null).await;
        assert_eq!(
            (status, answer),
            (404, json!({"error": "the admin API is off"})),
            "{path}"
        );
    }
}

/// The X-Request-ID sent back on an answer, if any.
async fn echoed(req: reqwest::RequestBuilder, id: &[u8]) -> (u16, Option<Vec<u8>>, String) {
    let value = reqwest::header::HeaderValue::from_bytes(id).expect("a header value");
    let resp = req
        .header("x-request-id", value)
        .send()
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    let echo = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.as_bytes().to_vec());
    (status, echo, resp.text().await.expect("a body"))
}

#[tokio::test]
async fn an_x_request_id_is_echoed_only_when_it_keeps_the_rule() {
    let ps = TestPs::start().await;
    let body = json!({"qrCode": STATIC_QR, "customerId": "C1"}).to_string();
    let scan = || {
        ps.http
            .post(format!("{}/api/v1/qr/scan", ps.url))
            .header("content-type", "application/json")
            .header("x-caller-name", "demobank")
            .body(body.clone())
    };
    // The MPP API (SPEC 1.7, DECISIONS 9): 1–64 characters, else PARAM_ILLEGAL and no echo.
    // Characters, not bytes: a space and letters beyond ASCII are characters too.
    let longest = "m".repeat(64);
    let longest_letters = "ж".repeat(64);
    for good in [
        longest.as_bytes(),
        longest_letters.as_bytes(),
        b"two words",
        "кириллица".as_bytes(),
    ] {
        let (status, echo, answer) = echoed(scan(), good).await;
        assert_eq!((status, echo.as_deref()), (200, Some(good)), "{answer}");
        assert_eq!(result_code(&answer), "SUCCESS");
    }
    let huge = "x".repeat(70_000);
    let too_many_letters = "ж".repeat(65);
    for bad in [
        "m".repeat(65).as_bytes(),
        too_many_letters.as_bytes(),
        huge.as_bytes(),
        b"tab\there",
        b"\xff\xfe",
    ] {
        let (status, echo, answer) = echoed(scan(), bad).await;
        // 70 kB of headers is over `limits.header_bytes_max`: it is refused (431) before the MPP
        // API sees it, without an echo. Past twice the limits of the request line and headers
        // together (48 KiB), hyper's parser refuses it itself, in the envelope too
        // (docs/security.md).
        let expected = if bad.len() > 16 * 1024 { 431 } else { 200 };
        assert_eq!(
            (status, echo),
            (expected, None),
            "{:.80}",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(result_code(&answer), "PARAM_ILLEGAL", "{answer}");
        if expected == 200 {
            assert!(answer.contains("X-Request-ID"), "{answer}");
        }
    }
    // Said as docs/mpp-api.md shows it.
    let said = |answer: String| {
        let answer: Value = serde_json::from_str(&answer).expect("JSON");
        answer["result"]["resultMessage"].clone()
    };
    let (_, _, answer) = echoed(scan(), b"tab\there").await;
    assert_eq!(
        said(answer),
        "Некорректный параметр: X-Request-ID — содержит управляющий символ"
    );
    let (_, _, answer) = echoed(scan(), b"\xff\xfe").await;
    assert_eq!(
        said(answer),
        "Некорректный параметр: X-Request-ID — ожидается UTF-8"
    );
    // Missing is said as missing, empty as too short.
    let answer = scan()
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("a body");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        answer["result"]["resultMessage"],
        "Некорректный параметр: X-Request-ID — обязателен"
    );
    let (_, _, answer) = echoed(scan(), b"").await;
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        answer["result"]["resultMessage"],
        "Некорректный параметр: X-Request-ID — должен содержать от 1 до 64 символов"
    );
    // The merchant API: optional, up to 128; an invalid one is served as if absent, not echoed.
    let ping = || {
        ps.http
            .get(format!("{}/r1/v01/health/ping", ps.url))
            .header("api-key", API_KEY)
    };
    let longest = "p".repeat(128);
    let (status, echo, _) = echoed(ping(), longest.as_bytes()).await;
    assert_eq!((status, echo.as_deref()), (200, Some(longest.as_bytes())));
    let (status, echo, _) = echoed(ping(), b"a b").await;
    assert_eq!((status, echo.as_deref()), (200, Some(&b"a b"[..])));
    for bad in [
        "p".repeat(129).as_bytes(),
        huge.as_bytes(),
        b"a\tb",
        b"\xff",
    ] {
        let (status, echo, answer) = echoed(ping(), bad).await;
        if bad.len() > 16 * 1024 {
            assert_eq!((status, echo), (431, None));
            continue;
        }
        assert_eq!((status, echo), (200, None));
        assert_eq!(
            serde_json::from_str::<Value>(&answer).expect("JSON")["StatusCode"],
            0
        );
    }
    // The admin API and unknown paths follow the same rule.
    let catalog = || {
        ps.http
            .get(format!("{}/admin/v1/catalog", ps.url))
            .bearer_auth(ADMIN_TOKEN)
    };
    let (_, echo, _) = echoed(catalog(), b"op-1").await;
    assert_eq!(echo.as_deref(), Some(&b"op-1"[..]));
    let (_, echo, _) = echoed(catalog(), huge.as_bytes()).await;
    assert_eq!(echo, None);
    let unknown = || ps.http.get(format!("{}/nowhere", ps.url));
    let (_, echo, _) = echoed(unknown(), b"u-1").await;
    assert_eq!(echo.as_deref(), Some(&b"u-1"[..]));
    let (_, echo, _) = echoed(unknown(), huge.as_bytes()).await;
    assert_eq!(echo, None);
}

#[tokio::test]
async fn an_invalid_merchant_request_id_is_no_replay_key() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let body = json!({"DeviceToken": device, "Amount": 100});
    let create = |id: String| {
        let ps = &ps;
        let body = body.clone();
        async move {
            let (_, answer) = ps
                .pos_with("POST", "/r1/v01/qr/create", API_KEY, Some(&id), Some(&body))
                .await;
            assert_eq!(answer["StatusCode"], 0, "{answer}");
            answer["Data"]["QrPaymentId"].as_i64().expect("an id")
        }
    };
    // A valid id replays: the repeat gets the same purchase.
    let id = "r".repeat(128);
    assert_eq!(create(id.clone()).await, create(id).await);
    // One past the limit is treated as absent (DECISIONS 29): each request is a new one.
    let id = "r".repeat(129);
    assert_ne!(create(id.clone()).await, create(id).await);
}

#[tokio::test]
async fn the_admin_lists_page_past_any_limit_with_a_cursor() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1000, "C1").await;
    for _ in 0..7 {
        assert_eq!(
            refund_r3(&ps, &device, purchase, 100.0).await["StatusCode"],
            0
        );
    }
    let (_, all) = ps.admin("GET", "/admin/v1/refunds", &Value::Null).await;
    assert_eq!(all["next"], Value::Null, "one page holds them all");
    let want: Vec<i64> = all["refunds"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["refund_id"].as_i64().expect("an id"))
        .collect();
    assert_eq!(want.len(), 7);
    assert!(
        want.windows(2).all(|w| w[0] > w[1]),
        "newest first: {want:?}"
    );
    // Pages of 3 follow `next` through all of them: 3, 3, 1, each once, in the same order.
    let mut got = Vec::new();
    let mut path = "/admin/v1/refunds?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = ps.admin("GET", &path, &Value::Null).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        got.extend(
            page["refunds"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|r| r["refund_id"].as_i64().expect("an id")),
        );
        match page["next"].as_i64() {
            Some(next) => path = format!("/admin/v1/refunds?limit=3&after={next}"),
            None => break,
        }
        assert!(pages < 10, "the cursor must end");
    }
    assert_eq!((got, pages), (want.clone(), 3));
    // A page that ends exactly at the last row says so: no `next` after the seventh.
    let (_, page) = ps
        .admin("GET", "/admin/v1/refunds?limit=7", &Value::Null)
        .await;
    assert_eq!(page["next"], Value::Null);
    // The cursor combines with the status filter, and a refund made meanwhile does not move it.
    let after = want[2];
    assert_eq!(
        refund_r3(&ps, &device, purchase, 100.0).await["StatusCode"],
        0
    );
    let (_, page) = ps
        .admin(
            "GET",
            &format!("/admin/v1/refunds?after={after}"),
            &Value::Null,
        )
        .await;
    let rest: Vec<i64> = page["refunds"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["refund_id"].as_i64().expect("an id"))
        .collect();
    assert_eq!(rest, want[3..]);
    let (status, page) = ps
        .admin(
            "GET",
            &format!("/admin/v1/refunds?status=qr_created&after={after}"),
            &Value::Null,
        )
        .await;
    assert_eq!((status, page), (200, json!({"refunds": [], "next": null})));
}

#[tokio::test]
async fn an_organizations_posts_over_its_rate_are_told_to_retry_and_store_nothing() {
    // Outside the sandbox: 1 POST a second, 2 at once, per organization.
    let ps = TestPs::start_configured(|c| {
        c.sandbox = false;
        c.limits.pos_writes_per_s = 1;
        c.limits.pos_writes_burst = 2;
    })
    .await;
    let register = |key: &'static str, point: i64, n: usize| {
        let body = json!({"DeviceId": format!("POS-{n}"), "TradePointId": point});
        let ps = &ps;
        async move {
            ps.pos("POST", "/r1/v01/device/register", key, Some(&body))
                .await
        }
    };
    let answers = join_all((0..4).map(|n| register(API_KEY, 1001, n))).await;
    let mut told: Vec<(u16, i64)> = answers
        .iter()
        .map(|(status, a)| (*status, a["StatusCode"].as_i64().unwrap_or_default()))
        .collect();
    told.sort_unstable();
    assert_eq!(
        told,
        [(200, 0), (200, 0), (503, -999), (503, -999)],
        "past the burst, retry: {answers:?}"
    );
    let devices = PsBooks::open(&ps.db_path()).one("SELECT COUNT(*) FROM devices", &[]);
    assert_eq!(devices.int(0), 2, "what was refused stored nothing");
    // Another organization has its own rate, and reads are not counted.
    let (status, other) = register(OTHER_API_KEY, 2001, 9).await;
    assert_eq!((status, &other["StatusCode"]), (200, &json!(0)), "{other}");
    let (status, ping) = ps.pos("GET", "/r1/v01/health/ping", API_KEY, None).await;
    assert_eq!(status, 200, "{ping}");
}
