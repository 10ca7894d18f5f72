//! hyper's own refusals, said in the surface's envelope (DECISIONS 43). hyper's parser refuses a
//! request it cannot read before the router sees it: more than [`HEADERS_MAX`] headers or a head
//! over [`ConnectionLimits::parser_bytes_max`] (431), a request target over 64 KiB (414), a
//! request line or header that is not HTTP/1.1 (400). It then writes a bare status line and ends
//! the connection with an error.
//!
//! [`Enveloped`] sits between hyper and the connection's plaintext, takes hyper's bare answer
//! from it and writes nothing; once hyper has given the connection back, the connection layer
//! writes [`Swallowed::answer`] in its place, the answer the surface's callers read:
//! `{"result": …}` on the MPP API, `{"StatusCode", "Message"}` on the merchant API,
//! `{"error": …}` elsewhere. The surface is told from the refused request's own target, read from
//! the bytes hyper had not consumed, which begin with that request when the parser refused its
//! line or headers. When hyper refused it after taking its head (a doubled `Content-Length`, a
//! bad `Transfer-Encoding`), they do not: the first bytes read after the connection's last
//! answer stand in, the refused request's own unless the client sent it before that answer. The
//! caller's language is the surface's default, since the headers were not read. A HEAD request
//! gets the head alone.
//!
//! What is hyper's: a write of a 400, 414 or 431 whose head is the whole write, says
//! `content-length: 0` and has no content type. Every answer of ours with those statuses carries
//! a body, and JSON or HTML cannot hold the line breaks such a head needs.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ConnectionLimits;
use super::refusal::{self, Refusal};

/// The most headers hyper's parser takes (its default; raising it would put the parser's header
/// array on the heap for every request).
pub(crate) const HEADERS_MAX: usize = 100;

/// How many bytes of the refused request's target are looked at: enough to tell its surface.
const PATH_PREFIX_LEN: usize = 16;

/// How many first bytes of a request are kept as they are read: a method, a space and an
/// absolute-form target's start besides [`PATH_PREFIX_LEN`] bytes of its path.
const START_LEN: usize = 64;

/// A connection's plaintext, with hyper's bare refusal taken off it.
pub(super) struct Enveloped<T> {
    inner: T,
    uri_bytes_max: usize,
    parser_bytes_max: usize,
    swallowed: Option<Swallowed>,
    /// The first bytes read after the last answer went out, and how many.
    start: [u8; START_LEN],
    start_len: usize,
    /// Whether an answer went out since the last read: the next bytes read begin a request.
    fresh: bool,
}

/// hyper's bare refusal, taken off the connection.
#[derive(Debug)]
pub(super) struct Swallowed {
    refusal: Refusal,
    /// The first bytes read after the last answer, when hyper refused.
    start: Vec<u8>,
    /// hyper's `date` header line, kept for the answer written in its place.
    date: Option<String>,
}

impl<T> Enveloped<T> {
    pub(super) fn new(inner: T, limits: &ConnectionLimits) -> Enveloped<T> {
        Enveloped {
            inner,
            uri_bytes_max: limits.uri_bytes_max,
            parser_bytes_max: limits.parser_bytes_max(),
            swallowed: None,
            start: [0; START_LEN],
            start_len: 0,
            fresh: true,
        }
    }

    /// The connection's plaintext, and hyper's refusal if it made one.
    pub(super) fn into_parts(self) -> (T, Option<Swallowed>) {
        (self.inner, self.swallowed)
    }

    /// hyper's bare refusal in `head`, if it is one.
    fn hypers_refusal(&self, head: &[u8]) -> Option<Swallowed> {
        let status = head.strip_prefix(b"HTTP/1.1 ")?;
        let refusal = match status.get(..4)? {
            b"400 " => Refusal::HeadMalformed,
            b"414 " => Refusal::UriTooLong {
                bytes_max: self.uri_bytes_max,
            },
            b"431 " => Refusal::HeadTooLarge {
                headers_max: HEADERS_MAX,
                bytes_max: self.parser_bytes_max,
            },
            _ => return None,
        };
        let bare = head.ends_with(b"\r\n\r\n")
            && contains(head, b"\r\ncontent-length: 0\r\n")
            && !contains(head, b"\r\ncontent-type:");
        if !bare {
            return None;
        }
        let date = head
            .split(|&b| b == b'\n')
            .find(|line| line.starts_with(b"date: "))
            .and_then(|line| std::str::from_utf8(line).ok())
            .map(|line| line.trim_end().to_owned());
        let start = self.start[..self.start_len].to_vec();
        Some(Swallowed {
            refusal,
            start,
            date,
        })
    }
}

impl Swallowed {
    /// What hyper refused.
    pub(super) fn refusal(&self) -> Refusal {
        self.refusal
    }

    /// The answer written in place of hyper's, given what hyper had read and not consumed: the
    /// refused request when it begins with a request line, else the first bytes read after the
    /// last answer.
    pub(super) fn answer(&self, unconsumed: &[u8]) -> Vec<u8> {
        let request = if starts_with_request_line(unconsumed) {
            unconsumed
        } else {
            &self.start
        };
        let (head_only, path) = method_and_path(request);
        let (status, content_type, body) = refusal::envelope(&path, None, self.refusal);
        let mut answer = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             connection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        if let Some(date) = &self.date {
            answer.push_str(date);
            answer.push_str("\r\n");
        }
        answer.push_str("\r\n");
        if !head_only {
            answer.push_str(&body);
        }
        answer.into_bytes()
    }
}

/// Whether the request is a HEAD, and the start of its target's path (`/` when its bytes do
/// not tell): the request line after any empty lines, an absolute-form target
/// (`http://host/path`) taken from its path.
fn method_and_path(request: &[u8]) -> (bool, String) {
    let start = request
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(request.len());
    let line = &request[start..];
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let mut words = line.split(|&b| b == b' ');
    let head_only = words.next() == Some(b"HEAD");
    let mut target = words.next().unwrap_or_default();
    for scheme in [&b"http://"[..], b"https://"] {
        if let Some(rest) = target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
        {
            let after = &target[rest.len()..];
            target = after
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b"/"[..], |slash| &after[slash..]);
        }
    }
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#' || b == b'\r')
        .unwrap_or(target.len())
        .min(PATH_PREFIX_LEN);
    let path = String::from_utf8_lossy(&target[..end]).into_owned();
    let path = if path.starts_with('/') {
        path
    } else {
        "/".to_owned()
    };
    (head_only, path)
}

/// Whether `bytes`, after any empty lines, begin as a request line does: a method of capital
/// letters, a space, and a target (`/…`, `*` or an absolute URL).
fn starts_with_request_line(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[start..];
    let method = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method > 0
        && line.get(method) == Some(&b' ')
        && line
            .get(method + 1)
            .is_some_and(|&b| b == b'/' || b == b'*' || b.is_ascii_alphabetic())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl<T: AsyncRead + Unpin> AsyncRead for Enveloped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            let this = &mut *self;
            if this.fresh {
                this.fresh = false;
                this.start_len = 0;
            }
            let take = read.len().min(START_LEN - this.start_len);
            this.start[this.start_len..this.start_len + take].copy_from_slice(&read[..take]);
            this.start_len += take;
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Enveloped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.swallowed.is_none() {
            self.swallowed = self.hypers_refusal(buf);
        }
        // hyper writes nothing after its refusal; should it, that is taken too.
        if self.swallowed.is_some() {
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.fresh = true;
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.swallowed.is_none()
            && let Some(first) = bufs.first()
            && bufs.iter().skip(1).all(|b| b.is_empty())
        {
            self.swallowed = self.hypers_refusal(first);
        }
        if self.swallowed.is_some() {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.fresh = true;
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::config::LimitsConfig;

    fn limits() -> ConnectionLimits {
        ConnectionLimits::of(&LimitsConfig::default())
    }

    /// Writes `written` through an [`Enveloped`] as hyper would; returns what went through and
    /// the answer written in place of a refusal for `request`.
    async fn through(written: &[u8], request: &[u8]) -> (Vec<u8>, Option<String>) {
        let mut io = Enveloped::new(Vec::new(), &limits());
        io.write_all(written).await.expect("written");
        io.flush().await.expect("flushed");
        let (passed, swallowed) = io.into_parts();
        let answer = swallowed.map(|s| String::from_utf8(s.answer(request)).expect("UTF-8"));
        (passed, answer)
    }

    fn body(answer: &str) -> Value {
        let (_, body) = answer.split_once("\r\n\r\n").expect("a head");
        serde_json::from_str(body).expect("JSON")
    }

    const BARE_431: &[u8] =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                              date: Mon, 07 Dec 2026 01:00:00 GMT\r\n\r\n";
    const BARE_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 01:00:00 GMT\r\n\r\n";

    #[tokio::test]
    async fn hypers_bare_refusals_are_said_in_the_surfaces_envelope() {
        let (passed, answer) =
            through(BARE_431, b"POST /api/v1/qr/scan HTTP/1.1\r\nx: 1\r\n").await;
        assert!(passed.is_empty(), "hyper's bytes are taken off");
        let answer = answer.expect("an answer in its place");
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(
            answer.contains("\r\ndate: Mon, 07 Dec 2026 01:00:00 GMT\r\n"),
            "{answer}"
        );
        let (head, text) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.contains(&format!("content-length: {}", text.len())),
            "{answer}"
        );
        let result = &body(&answer)["result"];
        assert_eq!(result["resultCode"], "PARAM_ILLEGAL");
        assert_eq!(
            result["resultMessage"],
            "Некорректный параметр: headers — более 100 заголовков или длиннее 49152 байт"
        );

        let (_, answer) = through(BARE_431, b"GET /r1/v01/qr/1/status HTTP/1.1\r\n").await;
        assert_eq!(body(&answer.expect("an answer"))["StatusCode"], -99000400);
        let (_, answer) =
            through(BARE_400, b"POST /r3/v01/qr/create HTTP/1.1\r\nbad\0: 1\r\n").await;
        let answer = answer.expect("an answer");
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert_eq!(body(&answer)["StatusCode"], -99000400, "{answer}");
        let (_, answer) = through(BARE_431, b"GET /admin/v1/mpps HTTP/1.1\r\n").await;
        assert!(body(&answer.expect("an answer"))["error"].is_string());
        // Not even a request line: the plain words.
        let (_, answer) = through(BARE_400, b"\x16\x03\x01").await;
        assert!(body(&answer.expect("an answer"))["error"].is_string());
        // A HEAD gets the head alone.
        let (_, answer) = through(BARE_431, b"HEAD /api/v1/qr/scan HTTP/1.1\r\n").await;
        let answer = answer.expect("an answer");
        assert!(
            answer.ends_with("\r\n\r\n") && answer.contains("content-length: "),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_head_hyper_took_before_refusing_is_told_by_the_bytes_read_after_the_last_answer() {
        // A doubled Content-Length: hyper took the head off its buffer, and what is left is the
        // body (or nothing).
        let head = b"POST /api/v1/qr/scan HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n";
        let mut io = Enveloped::new(Vec::new(), &limits());
        io.start_len = START_LEN.min(head.len());
        io.start[..io.start_len].copy_from_slice(&head[..io.start_len]);
        io.write_all(BARE_400).await.expect("written");
        let (_, swallowed) = io.into_parts();
        let swallowed = swallowed.expect("hyper's refusal");
        for left in [&b""[..], b"{\"qrCode\": 1}"] {
            let answer = String::from_utf8(swallowed.answer(left)).expect("UTF-8");
            assert_eq!(
                body(&answer)["result"]["resultCode"],
                "PARAM_ILLEGAL",
                "{answer}"
            );
        }
        // What is left, when it is a request of its own, is the one refused.
        let answer =
            String::from_utf8(swallowed.answer(b"GET /r1/v01/x HTTP/1.1\r\n")).expect("UTF-8");
        assert_eq!(body(&answer)["StatusCode"], -99000400, "{answer}");
        assert!(starts_with_request_line(b"\r\nOPTIONS * HTTP/1.1"));
        assert!(!starts_with_request_line(b"{\"a\": 1}"));
        assert!(!starts_with_request_line(b"GET"));
    }

    #[tokio::test]
    async fn answers_of_ours_go_through_as_they_are() {
        let ours =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n\
                     content-length: 2\r\n\r\n{}";
        assert_eq!(through(ours, b"").await, (ours.to_vec(), None));
        let typed =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ncontent-type: text/plain\r\n\r\n";
        assert_eq!(through(typed, b"").await, (typed.to_vec(), None));
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(through(ok, b"").await, (ok.to_vec(), None));
    }

    #[test]
    fn the_path_is_read_from_the_refused_request() {
        for (request, path) in [
            (&b"POST /api/v1/qr/scan HTTP/1.1\r\n"[..], "/api/v1/qr/scan"),
            (b"GET /r2/v01/qr?x=1 HTTP/1.1", "/r2/v01/qr"),
            (b"\r\n\r\nGET /r1/v01/x HTTP/1.1", "/r1/v01/x"),
            (
                b"GET http://ps.example/api/v1/qr/scan HTTP/1.1",
                "/api/v1/qr/scan",
            ),
            (b"GET HTTPS://ps.example HTTP/1.1", "/"),
            (
                b"GET /api/v1/qr/scan-a-very-long-path HTTP/1.1",
                "/api/v1/qr/scan-",
            ),
            (b"GET", "/"),
            (b"OPTIONS * HTTP/1.1", "/"),
            (b"GET /\xd0\x90 HTTP/1.1", "/\u{410}"),
        ] {
            assert_eq!(
                method_and_path(request),
                (false, path.to_owned()),
                "{request:?}"
            );
        }
        assert_eq!(
            method_and_path(b"HEAD /api/ HTTP/1.1"),
            (true, "/api/".to_owned())
        );
    }
}
