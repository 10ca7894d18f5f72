//! Slow and greedy clients against the connection layer (DECISIONS 43, issue 9), over real TCP
//! sockets: idle sockets, slowloris headers, slow bodies and idle keep-alive connections are
//! closed at their deadlines; well-behaved clients are served while hundreds of them are held;
//! the connection cap holds; refusals below the application (408, 413, 414, 431) carry the
//! surface's envelope. Deadlines are short here (1–2 s); every wait for "closed" is bounded and
//! fails by name, and nothing asserts how fast anything was.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;
use tolem_ps::Config;

use crate::harness::*;

/// How long a test waits for the PS to close a connection or answer before it fails.
const BOUND: Duration = Duration::from_secs(30);

/// Deadlines short enough for a test: headers 1 s, body 2 s, idle keep-alive 1.5 s.
fn short_deadlines(config: &mut Config) {
    config.limits.header_timeout_ms = 1_000;
    config.limits.body_timeout_ms = 2_000;
    config.limits.idle_timeout_ms = 1_500;
}

/// Deadlines long enough that the slow clients of a test are still held when it looks.
fn long_deadlines(config: &mut Config) {
    config.limits.header_timeout_ms = 60_000;
    config.limits.body_timeout_ms = 60_000;
    config.limits.idle_timeout_ms = 60_000;
}

/// A connection to the PS whose receive buffer is `bytes`: a client that takes little at a time.
async fn small_window(ps: &TestPs, bytes: u32) -> TcpStream {
    let addr: std::net::SocketAddr = ps
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(bytes).expect("a small window");
    socket.connect(addr).await.expect("connected")
}

async fn connect(ps: &TestPs) -> TcpStream {
    let addr = ps.url.trim_start_matches("http://");
    TcpStream::connect(addr)
        .await
        .expect("the PS takes a connection")
}

/// Everything the PS sends until it closes the connection (a reset counts as closed).
async fn until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .unwrap_or_else(|_| panic!("the PS did not close {what} within {BOUND:?}"))
}

/// One answer read off a socket: status and body (framed by Content-Length).
async fn read_answer(stream: &mut TcpStream, what: &str) -> (u16, String) {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(answer) = parse_answer(&got) {
                return answer;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => panic!("{what}: closed before a whole answer: {got:?}"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

/// `Some((status, body))` once `bytes` hold a whole answer.
fn parse_answer(bytes: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (body.len() >= length).then(|| (status, body[..length].to_owned()))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON, got {body:?}"))
}

/// Writes `bytes` one at a time, `gap` apart, until they are sent or the PS closes.
fn trickle(mut writer: OwnedWriteHalf, bytes: Vec<u8>, gap: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    })
}

/// The head of an MPP API scan whose body is `length` bytes.
fn mpp_head(length: usize) -> String {
    format!(
        "POST /api/v1/qr/scan HTTP/1.1\r\nHost: ps\r\nContent-Type: application/json\r\n\
         X-Caller-Name: demobank\r\nX-Request-ID: slow-1\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// The head of a merchant API device registration whose body is `length` bytes.
fn merchant_head(length: usize) -> String {
    format!(
        "POST /r1/v01/device/register HTTP/1.1\r\nHost: ps\r\nContent-Type: application/json\r\n\
         Api-Key: {API_KEY}\r\nContent-Length: {length}\r\n\r\n"
    )
}

const PING: &str = "/r1/v01/health/ping";

fn ping_request() -> String {
    format!("GET {PING} HTTP/1.1\r\nHost: ps\r\nApi-Key: {API_KEY}\r\n\r\n")
}

async fn ping(ps: &TestPs) {
    let (status, answer) = ps.pos("GET", PING, API_KEY, None).await;
    assert_eq!(
        (status, &answer["StatusCode"]),
        (200, &json!(0)),
        "{answer}"
    );
}

/// Waits until `done` holds, failing by name after [`BOUND`].
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(BOUND, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

#[tokio::test]
async fn idle_slowloris_slow_bodies_and_idle_keep_alive_are_closed_at_their_deadlines() {
    let ps = TestPs::start_configured(short_deadlines).await;
    let idle = async {
        let mut stream = connect(&ps).await;
        let got = until_closed(&mut stream, "a connection that sent nothing").await;
        assert!(got.is_empty(), "no answer to nothing: {got:?}");
    };
    let slowloris = async {
        let (mut reader, writer) = connect(&ps).await.into_split();
        let head = format!(
            "GET {PING} HTTP/1.1\r\nHost: ps\r\nX-Slow: {}",
            "a".repeat(400)
        );
        let writer = trickle(writer, head.into_bytes(), Duration::from_millis(100));
        let mut got = Vec::new();
        let closed = tokio::time::timeout(BOUND, reader.read_to_end(&mut got)).await;
        assert!(
            closed.is_ok(),
            "the PS did not close a slowloris within {BOUND:?}"
        );
        assert!(got.is_empty(), "no answer to half a header: {got:?}");
        writer.abort();
    };
    // A body that stops half-way: the answer is a 408 in the surface's envelope.
    let stalled_mpp = async {
        let mut stream = connect(&ps).await;
        let request = format!("{}{{\"qrCode\":", mpp_head(1_000));
        stream.write_all(request.as_bytes()).await.expect("sent");
        let (status, body) = read_answer(&mut stream, "a stalled MPP body").await;
        assert_eq!(status, 408, "{body}");
        let result = &json_of(&body)["result"];
        assert_eq!(result["resultCode"], "UNKNOWN_EXCEPTION", "{body}");
        let message = result["resultMessage"].as_str().unwrap_or_default();
        assert!(message.contains("не получено вовремя"), "{body}");
        until_closed(&mut stream, "the connection of a late MPP body").await;
    };
    let stalled_merchant = async {
        let mut stream = connect(&ps).await;
        let request = format!("{}{{\"DeviceId\":", merchant_head(1_000));
        stream.write_all(request.as_bytes()).await.expect("sent");
        let (status, body) = read_answer(&mut stream, "a stalled merchant body").await;
        assert_eq!(status, 408, "{body}");
        assert_eq!(json_of(&body)["StatusCode"], -999, "{body}");
        until_closed(&mut stream, "the connection of a late merchant body").await;
    };
    // The admin API's too, with its token: 408 in its own `{"error"}` shape, send it again.
    let stalled_admin = async {
        let mut stream = connect(&ps).await;
        let request = format!(
            "PUT /admin/v1/trade-points/1001 HTTP/1.1\r\nHost: ps\r\n\
             Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"id\":"
        );
        stream.write_all(request.as_bytes()).await.expect("sent");
        let (status, body) = read_answer(&mut stream, "a stalled admin body").await;
        assert_eq!(status, 408, "{body}");
        assert!(
            json_of(&body)["error"]
                .as_str()
                .is_some_and(|e| e.contains("send it again")),
            "{body}"
        );
    };
    // The console's sign-in form likewise (a 408 page, not a refused sign-in).
    let stalled_form = async {
        let mut stream = connect(&ps).await;
        let request = "POST /console/sign-in HTTP/1.1\r\nHost: ps\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 1000\r\n\r\ntoken=";
        stream.write_all(request.as_bytes()).await.expect("sent");
        let (status, body) = read_answer(&mut stream, "a stalled sign-in form").await;
        assert_eq!(status, 408, "{body}");
        assert!(body.contains("отправьте её снова"), "{body}");
    };
    // A body that keeps coming, a byte at a time: refused at the deadline (408 if the answer
    // gets through before the connection closes).
    let trickling_body = async {
        let (mut reader, mut writer) = connect(&ps).await.into_split();
        writer
            .write_all(mpp_head(1_000).as_bytes())
            .await
            .expect("sent");
        let writer = trickle(writer, vec![b' '; 1_000], Duration::from_millis(100));
        let mut got = Vec::new();
        let closed = tokio::time::timeout(BOUND, async {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf).await {
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the PS did not close a trickling body within {BOUND:?}"
        );
        if let Some((status, body)) = parse_answer(&got) {
            assert_eq!(status, 408, "{body}");
        }
        writer.abort();
    };
    let idle_keep_alive = async {
        let mut stream = connect(&ps).await;
        stream
            .write_all(ping_request().as_bytes())
            .await
            .expect("sent");
        let (status, body) = read_answer(&mut stream, "a ping").await;
        assert_eq!(status, 200, "{body}");
        until_closed(&mut stream, "an idle keep-alive connection").await;
    };
    tokio::join!(
        idle,
        slowloris,
        stalled_mpp,
        stalled_merchant,
        stalled_admin,
        stalled_form,
        trickling_body,
        idle_keep_alive
    );
    let stats = &ps.app.metrics.connections;
    // The idle socket and the slowloris were closed by the header deadline, the keep-alive
    // connection by the idle one.
    assert!(stats.closed_headers_late.load(Ordering::SeqCst) >= 2);
    assert!(stats.closed_idle.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn well_behaved_clients_are_served_while_hundreds_of_slow_ones_are_held() {
    let ps = TestPs::start_configured(long_deadlines).await;
    let mut held = Vec::new();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..300 {
        held.push(connect(&ps).await);
    }
    for _ in 0..100 {
        let (reader, writer) = connect(&ps).await.into_split();
        let head = format!(
            "GET {PING} HTTP/1.1\r\nHost: ps\r\nX-Slow: {}",
            "a".repeat(100)
        );
        writers.push(trickle(
            writer,
            head.into_bytes(),
            Duration::from_millis(500),
        ));
        readers.push(reader);
    }
    for _ in 0..100 {
        let mut stream = connect(&ps).await;
        let request = format!("{}{{\"qrCode\":", mpp_head(60_000));
        stream.write_all(request.as_bytes()).await.expect("sent");
        held.push(stream);
    }
    let stats = ps.app.metrics.connections.clone();
    wait_for("the 500 slow connections are open", || {
        stats.open.load(Ordering::SeqCst) >= 500
    })
    .await;
    let scans = join_all((0..20).map(|i| {
        let customer = format!("C{i}");
        let ps = &ps;
        async move { scan_id(ps, "demobank", STATIC_QR, &customer).await }
    }));
    let pings = join_all((0..20).map(|_| ping(&ps)));
    let (scanned, _) = tokio::join!(scans, pings);
    assert_eq!(scanned.len(), 20);
    assert!(
        stats.open.load(Ordering::SeqCst) >= 500,
        "the slow connections were held while the others were served"
    );
    for writer in writers {
        writer.abort();
    }
}

#[tokio::test]
async fn the_connection_cap_holds_and_the_next_client_is_served_when_one_closes() {
    const CAP: usize = 8;
    let ps = TestPs::start_configured(|config| {
        long_deadlines(config);
        // Connections that sent nothing keep their place even at the cap here.
        config.limits.header_timeout_at_cap_ms = 60_000;
        config.limits.connections_max = CAP;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(connect(&ps).await);
    }
    let stats = ps.app.metrics.connections.clone();
    wait_for("the cap is reached", || {
        stats.open.load(Ordering::SeqCst) == CAP && stats.cap_reached.load(Ordering::SeqCst) >= 1
    })
    .await;
    let mut next = connect(&ps).await;
    next.write_all(ping_request().as_bytes())
        .await
        .expect("the kernel takes the request");
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), next.read(&mut first)).await;
    assert!(
        early.is_err(),
        "a client past the cap is not served while the cap holds"
    );
    assert_eq!(stats.open.load(Ordering::SeqCst), CAP);
    drop(held.pop());
    let (status, body) = read_answer(&mut next, "the client past the cap, once one closed").await;
    assert_eq!(status, 200, "{body}");
    assert!(stats.open_max.load(Ordering::SeqCst) <= CAP);
}

#[tokio::test]
async fn at_the_cap_connections_held_without_use_give_way_to_a_new_client() {
    const CAP: usize = 8;
    // Long deadlines but the one at the cap (1 s by default).
    let ps = TestPs::start_configured(|config| {
        long_deadlines(config);
        config.limits.connections_max = CAP;
    })
    .await;
    // Half the places held by keep-alive connections left idle after one request, half by
    // connections that never send a request: a client that wants to keep others out.
    let mut held = Vec::new();
    for n in 0..CAP {
        let mut stream = connect(&ps).await;
        if n % 2 == 0 {
            stream
                .write_all(ping_request().as_bytes())
                .await
                .expect("sent");
            let (status, _) = read_answer(&mut stream, "a keep-alive connection's request").await;
            assert_eq!(status, 200);
        }
        held.push(stream);
    }
    let stats = ps.app.metrics.connections.clone();
    // The cap reached, the idle ones close within the deadline at the cap (whether or not anyone waits: a place is
    // worth more to a new client than to a connection with nothing to ask) and the silent ones
    // at the deadline at the cap; the next client, waiting in the backlog meanwhile, is served
    // well within the long deadlines.
    wait_for("the idle connections are closed at the cap", || {
        stats.cap_reached.load(Ordering::SeqCst) >= 1
            && stats.closed_idle.load(Ordering::SeqCst) >= CAP as u64 / 2
    })
    .await;
    let mut next = connect(&ps).await;
    next.write_all(ping_request().as_bytes())
        .await
        .expect("the kernel takes the request");
    let (status, body) = read_answer(&mut next, "the client past the cap").await;
    assert_eq!(status, 200, "{body}");
    drop(held);

    // Every place held by a connection that never sends a request: they go at the deadline at
    // the cap (1 s), not at the 60 s header deadline, and the next client is served.
    let late_before = stats.closed_headers_late.load(Ordering::SeqCst);
    let mut silent = Vec::new();
    for _ in 0..CAP {
        silent.push(connect(&ps).await);
    }
    let mut next = connect(&ps).await;
    next.write_all(ping_request().as_bytes())
        .await
        .expect("the kernel takes the request");
    let (status, body) = read_answer(&mut next, "the client past silent ones").await;
    assert_eq!(status, 200, "{body}");
    assert!(stats.closed_headers_late.load(Ordering::SeqCst) > late_before);
    assert!(stats.open_max.load(Ordering::SeqCst) <= CAP);

    // Places free again, the pressure ends: a keep-alive connection idle for a moment keeps
    // its place and serves its next request.
    drop(silent);
    drop(next);
    wait_for("places are free", || stats.open.load(Ordering::SeqCst) == 0).await;
    let mut kept = connect(&ps).await;
    for n in 0..2 {
        kept.write_all(ping_request().as_bytes())
            .await
            .expect("sent");
        let (status, _) = read_answer(&mut kept, "a keep-alive connection after the cap").await;
        assert_eq!(status, 200, "request {n}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn at_the_cap_slow_bodies_give_way_to_a_new_client() {
    const CAP: usize = 8;
    // Long deadlines but the one at the cap (1 s by default).
    let ps = TestPs::start_configured(|config| {
        long_deadlines(config);
        config.limits.connections_max = CAP;
    })
    .await;
    // Every place held by a caller with valid credentials whose body keeps coming, a byte every
    // 200 ms: without the cap it would be held for the 60 s body deadline.
    let mut slow = Vec::new();
    for _ in 0..CAP {
        let (reader, mut writer) = connect(&ps).await.into_split();
        writer
            .write_all(merchant_head(1_000).as_bytes())
            .await
            .expect("sent");
        let writer = trickle(writer, vec![b' '; 1_000], Duration::from_millis(200));
        slow.push((reader, writer));
    }
    let stats = ps.app.metrics.connections.clone();
    wait_for("the cap is reached", || {
        stats.open.load(Ordering::SeqCst) == CAP && stats.cap_reached.load(Ordering::SeqCst) >= 1
    })
    .await;
    // The next client, in the backlog meanwhile, is served once the slow bodies are cut.
    let mut next = connect(&ps).await;
    next.write_all(ping_request().as_bytes())
        .await
        .expect("the kernel takes the request");
    let (status, body) = read_answer(&mut next, "the client past slow bodies").await;
    assert_eq!(status, 200, "{body}");
    // Each slow body was refused as late (408 in the merchant API's envelope) when its answer
    // got through before the connection closed.
    let mut refused = 0;
    for (mut reader, writer) in slow {
        let mut got = Vec::new();
        let closed = tokio::time::timeout(BOUND, async {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf).await {
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow body at the cap was not closed");
        if let Some((status, body)) = parse_answer(&got) {
            assert_eq!(status, 408, "{body}");
            assert_eq!(json_of(&body)["StatusCode"], -999, "{body}");
            refused += 1;
        }
        writer.abort();
    }
    assert!(refused >= 1, "no slow body was told 408");
    assert!(stats.open_max.load(Ordering::SeqCst) <= CAP);
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answers_is_closed_at_the_send_deadline() {
    let ps = TestPs::start_configured(|config| {
        long_deadlines(config);
        config.limits.send_timeout_ms = 1_000;
    })
    .await;
    // A client with a small receive window that sends pings one after another on one connection
    // and reads none of the answers: once the socket's buffers are full, the PS's writes wait.
    let stream = small_window(&ps, 4096).await;
    let (mut reader, mut writer) = stream.into_split();
    let pings = ping_request().repeat(1_000);
    let sender = tokio::spawn(async move {
        // Up to 100,000 pings (8 MB of answers), until the PS stops taking them or closes.
        for _ in 0..100 {
            if writer.write_all(pings.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let stats = ps.app.metrics.connections.clone();
    wait_for("the connection is closed at the send deadline", || {
        stats.closed_send_late.load(Ordering::SeqCst) >= 1
    })
    .await;
    // The client finds its connection closed once it reads what was sent before.
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(BOUND, async {
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            let _ = n;
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was not closed");
    sender.abort();
    // Others are served meanwhile and after.
    ping(&ps).await;
}

#[tokio::test]
async fn a_client_that_reads_its_answers_slowly_but_steadily_is_not_cut() {
    let ps = TestPs::start_configured(|config| {
        long_deadlines(config);
        config.limits.send_timeout_ms = 1_000;
    })
    .await;
    // Many pages asked at once on one connection (megabytes of answers), read 8 KiB every
    // 25 ms: far slower than the PS writes, but never stopping.
    let stream = small_window(&ps, 8192).await;
    let (mut reader, mut writer) = stream.into_split();
    let page = "GET /pos/ HTTP/1.1\r\nHost: ps\r\n\r\n".repeat(300);
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(page.as_bytes()).await;
        writer
    });
    const WANTED: usize = 1_200_000;
    let mut got = 0;
    let mut buf = vec![0u8; 8192];
    while got < WANTED {
        match tokio::time::timeout(BOUND, reader.read(&mut buf)).await {
            Ok(Ok(n @ 1..)) => got += n,
            other => panic!("cut after {got} bytes: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stats = &ps.app.metrics.connections;
    assert_eq!(stats.closed_send_late.load(Ordering::SeqCst), 0);
    sender.abort();
}

#[tokio::test]
async fn refusals_below_the_application_carry_the_surfaces_envelope() {
    let ps = TestPs::start().await;
    let long_query = format!("?pad={}", "a".repeat(9_000));
    let mpp_headers = [
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", "r-1"),
    ];
    // 414 on the MPP API.
    let (status, body) = ps
        .mpp_raw(&format!("/api/v1/qr/scan{long_query}"), &mpp_headers, "{}")
        .await;
    assert_eq!(status, 414, "{body}");
    let result = &json_of(&body)["result"];
    assert_eq!(result["resultCode"], "PARAM_ILLEGAL", "{body}");
    assert!(body.contains("URI — длиннее 8192 байт"), "{body}");
    // 431 on the MPP API, in the caller's language.
    let pad = "b".repeat(17_000);
    let headers = [
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", "r-2"),
        ("x-locale", "kk-KZ"),
        ("x-pad", &pad),
    ];
    let (status, body) = ps.mpp_raw("/api/v1/qr/scan", &headers, "{}").await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(json_of(&body)["result"]["resultCode"], "PARAM_ILLEGAL");
    assert!(body.contains("headers — 16384 байттан ұзын"), "{body}");
    // 413 on the MPP API, by Content-Length.
    let large = format!("{{\"qrCode\":\"{}\"}}", "c".repeat(70_000));
    let (status, body) = ps.mpp_raw("/api/v1/qr/scan", &mpp_headers, &large).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(json_of(&body)["result"]["resultCode"], "PARAM_ILLEGAL");
    // 413 on the MPP API while reading a chunked body, which declares no length.
    let mut stream = connect(&ps).await;
    let head = "POST /api/v1/qr/scan HTTP/1.1\r\nHost: ps\r\nContent-Type: application/json\r\n\
                X-Caller-Name: demobank\r\nX-Request-ID: r-3\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("sent");
    let chunk = format!("2000\r\n{}\r\n", " ".repeat(0x2000));
    for _ in 0..9 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let (status, body) = read_answer(&mut stream, "a chunked body over the limit").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(json_of(&body)["result"]["resultCode"], "PARAM_ILLEGAL");
    // The merchant API: 414, 431, 413 with StatusCode -99000400.
    let (status, answer) = ps
        .pos("GET", &format!("{PING}{long_query}"), API_KEY, None)
        .await;
    assert_eq!(
        (status, &answer["StatusCode"]),
        (414, &json!(-99000400)),
        "{answer}"
    );
    let resp = ps
        .http
        .get(format!("{}{PING}", ps.url))
        .header("api-key", API_KEY)
        .header("x-pad", &pad)
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(resp.status().as_u16(), 431);
    let answer = json_of(&resp.text().await.expect("a body"));
    assert_eq!(answer["StatusCode"], -99000400, "{answer}");
    let large = json!({"DeviceId": "c".repeat(70_000), "TradePointId": 1001});
    let (status, answer) = ps
        .pos("POST", "/r1/v01/device/register", API_KEY, Some(&large))
        .await;
    assert_eq!(
        (status, &answer["StatusCode"]),
        (413, &json!(-99000400)),
        "{answer}"
    );
    // Elsewhere (admin, pages): {"error": …}.
    let resp = ps
        .http
        .get(format!("{}/admin/v1/catalog{long_query}", ps.url))
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(resp.status().as_u16(), 414);
    let answer = json_of(&resp.text().await.expect("a body"));
    assert_eq!(answer["error"], "URI longer than 8192 bytes", "{answer}");

    // What hyper's parser refuses before the router sees it, in the envelope too: more than 100
    // headers on the MPP API...
    let names: Vec<String> = (0..101).map(|i| format!("x-h{i}")).collect();
    let mut many = mpp_headers.to_vec();
    many.extend(names.iter().map(|name| (name.as_str(), "1")));
    let (status, body) = ps.mpp_raw("/api/v1/qr/scan", &many, "{}").await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(
        json_of(&body)["result"]["resultMessage"],
        "Некорректный параметр: headers — более 100 заголовков или длиннее 49152 байт"
    );
    // ... a head over twice the limits on the merchant API...
    let resp = ps
        .http
        .get(format!("{}{PING}", ps.url))
        .header("api-key", API_KEY)
        .header("x-pad", "d".repeat(50_000))
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(resp.status().as_u16(), 431);
    let answer = json_of(&resp.text().await.expect("a body"));
    assert_eq!(answer["StatusCode"], -99000400, "{answer}");
    // ... and a header that is not HTTP, on the merchant API and elsewhere; the connection is
    // closed after it.
    for (path, key) in [(PING, "StatusCode"), ("/admin/v1/catalog", "error")] {
        let mut stream = connect(&ps).await;
        let head = format!("GET {path} HTTP/1.1\r\nHost: ps\r\nbad header: 1\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("sent");
        let (status, body) = read_answer(&mut stream, "a malformed header").await;
        assert_eq!(status, 400, "{body}");
        let answer = json_of(&body);
        assert!(!answer[key].is_null(), "{answer}");
        until_closed(&mut stream, "the connection after a malformed head").await;
    }

    // Each refusal below the router is counted for the operator, by its reason: the router's
    // traffic counters never see them.
    let (_, metrics) = ps.admin("GET", "/admin/v1/metrics", &Value::Null).await;
    let metrics = metrics.as_str().expect("Prometheus text");
    for (reason, count) in [
        ("uri_too_long", 3),
        ("headers_too_large", 2),
        ("head_too_large", 2),
        ("head_malformed", 2),
    ] {
        let line = format!("tolem_connections_refused_total{{reason=\"{reason}\"}} {count}\n");
        assert!(metrics.contains(&line), "{line}{metrics}");
    }
}

/// A chunked body whose chunk-size line never ends (zeros, which no size limit sees as data) is
/// cut once the request has taken more bytes than its limits allow, long before the body's
/// deadline, and counted; a body sent in small chunks of a legitimate size is still served.
#[tokio::test]
async fn a_chunk_size_line_without_end_is_cut_at_the_requests_byte_limit() {
    let ps = TestPs::start_configured(long_deadlines).await;
    let head = "POST /api/v1/qr/scan HTTP/1.1\r\nHost: ps\r\nContent-Type: application/json\r\n\
                X-Caller-Name: demobank\r\nX-Request-ID: zeros-1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut stream = connect(&ps).await;
    stream.write_all(head.as_bytes()).await.expect("sent");
    let zeros = vec![b'0'; 64 * 1024];
    let mut sent = 0usize;
    let cut = tokio::time::timeout(BOUND, async {
        // 64 MiB at most: the limit at the defaults is well under one.
        while sent < 64 * 1024 * 1024 {
            if stream.write_all(&zeros).await.is_err() {
                return true;
            }
            sent += zeros.len();
        }
        false
    })
    .await
    .expect("the PS reads or cuts within the bound");
    assert!(cut, "64 MiB of a chunk-size line were read");
    assert!(sent < 4 * 1024 * 1024, "cut after {sent} bytes");
    // Counted as the connection's task ends, a moment after the socket closed.
    let line = "tolem_connections_refused_total{reason=\"body_framing\"} 1\n";
    let counted = tokio::time::timeout(BOUND, async {
        loop {
            let (_, metrics) = ps.admin("GET", "/admin/v1/metrics", &Value::Null).await;
            if metrics.as_str().is_some_and(|m| m.contains(line)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "never counted: {line}");
    // A scan's body in chunks of one byte (eight bytes on the wire for each) is still read whole.
    let body = br#"{"qrCode":"TOLEM-STATIC-CAFE-1001","customerId":"C1"}"#;
    let mut chunks = String::new();
    for byte in body {
        chunks.push_str(&format!("1\r\n{}\r\n", *byte as char));
    }
    chunks.push_str("0\r\n\r\n");
    let mut stream = connect(&ps).await;
    let head = head.replace("zeros-1", "chunks-1");
    stream
        .write_all(format!("{head}{chunks}").as_bytes())
        .await
        .expect("sent");
    let (status, body) = read_answer(&mut stream, "a scan in one-byte chunks").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["result"]["resultCode"], "SUCCESS", "{body}");
}

/// hyper's refusals, answered by the connection layer once hyper gives the connection back:
/// whole for a client that reads late, after answers it has not read yet; in the envelope of the
/// refused request's own target however its bytes came; the head alone for a HEAD.
#[tokio::test]
async fn hypers_refusals_arrive_whole_and_name_their_own_request() {
    let ps = TestPs::start().await;
    let bad_scan = "POST /api/v1/qr/scan HTTP/1.1\r\nHost: ps\r\nbad header: 1\r\n\r\n";
    // Twenty answers the client does not read yet, then a request hyper refuses.
    let mut stream = small_window(&ps, 1024).await;
    let metrics = format!(
        "GET /admin/v1/metrics HTTP/1.1\r\nHost: ps\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    );
    let pipelined = format!("{}{bad_scan}", metrics.repeat(20));
    stream.write_all(pipelined.as_bytes()).await.expect("sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = until_closed(&mut stream, "twenty answers and a refusal").await;
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 20);
    let last = &text[text.rfind("HTTP/1.1 ").expect("answers")..];
    let (status, body) = parse_answer(last.as_bytes()).expect("the refusal whole");
    assert_eq!(status, 400, "{last}");
    assert_eq!(json_of(&body)["result"]["resultCode"], "PARAM_ILLEGAL");

    // A request line sent a byte at a time, and an absolute-form target: still the MPP API's.
    let names: String = (0..101).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let absolute = format!("POST http://ps/api/v1/qr/scan HTTP/1.1\r\nHost: ps\r\n{names}\r\n");
    for (request, by_byte) in [(bad_scan, true), (absolute.as_str(), false)] {
        let mut stream = connect(&ps).await;
        if by_byte {
            for byte in request.as_bytes() {
                stream.write_all(&[*byte]).await.expect("sent");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        } else {
            stream.write_all(request.as_bytes()).await.expect("sent");
        }
        let (_, body) = read_answer(&mut stream, "a refusal").await;
        assert_eq!(json_of(&body)["result"]["resultCode"], "PARAM_ILLEGAL");
    }

    // A doubled Content-Length, which hyper refuses after it took the head: still the envelope
    // of the request's own target, on the MPP API and the merchant API.
    for (path, key) in [
        ("/api/v1/qr/scan", "result"),
        ("/r1/v01/qr/create", "StatusCode"),
    ] {
        let mut stream = connect(&ps).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: ps\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("sent");
        let (status, body) = read_answer(&mut stream, "a doubled Content-Length").await;
        assert_eq!(status, 400, "{body}");
        assert!(!json_of(&body)[key].is_null(), "{body}");
    }

    // A HEAD: the head, no body.
    let mut stream = connect(&ps).await;
    let head = format!("HEAD /r1/v01/health/ping HTTP/1.1\r\nHost: ps\r\n{names}\r\n");
    stream.write_all(head.as_bytes()).await.expect("sent");
    let got = until_closed(&mut stream, "the refusal of a HEAD").await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}

/// The probe of issue 9: with 1,100 idle sockets open a health ping used to time out (the PS was
/// out of file descriptors). Now the ping is served, and the idle sockets are closed at the
/// header deadline.
#[tokio::test]
async fn eleven_hundred_idle_sockets_do_not_stop_a_health_ping() {
    const IDLE: usize = 1_100;
    // This process holds both ends of every socket.
    let soft = rlimit::increase_nofile_limit(u64::MAX).expect("the open-files limit");
    assert!(
        soft > 3 * IDLE as u64,
        "this test needs an open-files limit above {}; the hard limit allows {soft}",
        3 * IDLE
    );
    let ps = TestPs::start_configured(|config| {
        config.limits.header_timeout_ms = 2_000;
        config.limits.body_timeout_ms = 2_000;
    })
    .await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect(&ps).await);
    }
    ping(&ps).await;
    join_all(
        idle.iter_mut()
            .map(|stream| until_closed(stream, "one of 1,100 idle sockets")),
    )
    .await;
    let stats = &ps.app.metrics.connections;
    assert!(stats.closed_headers_late.load(Ordering::SeqCst) >= IDLE as u64);
    ping(&ps).await;
    // The operator sees it in the metrics.
    let metrics = ps
        .http
        .get(format!("{}/admin/v1/metrics", ps.url))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let closed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tolem_connections_closed_headers_late_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no closed-headers counter in {metrics}"));
    assert!(closed >= IDLE as u64, "{metrics}");
}
