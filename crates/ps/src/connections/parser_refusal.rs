//! hyper's own refusals, said in the surface's envelope (DECISIONS 43). hyper's parser refuses a
//! request it cannot read before the router sees it: more than [`HEADERS_MAX`] headers or a head
//! over [`ConnectionLimits::parser_bytes_max`] (431), a request target over 64 KiB (414), a
//! request line or header that is not HTTP/1.1 (400). It then writes a bare status line and
//! closes the connection. [`Enveloped`] sits between hyper and the connection's plaintext and
//! writes in its place the answer the surface's callers read: `{"result": …}` on the MPP API,
//! `{"StatusCode", "Message"}` on the merchant API, `{"error": …}` elsewhere.
//!
//! Which surface: the request target of the latest request, from its first bytes as read after
//! the connection's last write (a request's head begins there, unless it was sent before the
//! previous answer). The caller's language is not known (its headers were not read): the
//! surfaces' default is used.
//!
//! What is hyper's: a write of a 400, 414 or 431 whose head says `content-length: 0`. Every
//! answer of ours with those statuses carries a body, so none is taken for hyper's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode as HttpStatus;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ConnectionLimits;
use super::refusal::{self, Refusal};

/// The most headers hyper's parser takes (its default; raising it would put the parser's header
/// array on the heap for every request).
pub(crate) const HEADERS_MAX: usize = 100;

/// How many first bytes of a request are kept: the method, a space and enough of the target to
/// tell its surface.
const START_LEN: usize = 24;

/// A connection's plaintext, with hyper's refusals put in the surface's envelope.
pub(super) struct Enveloped<T> {
    inner: T,
    /// The first bytes read after the last write, and how many.
    start: [u8; START_LEN],
    start_len: usize,
    /// Whether a write went through since the last read: the next bytes read begin a request.
    fresh: bool,
    uri_bytes_max: usize,
    parser_bytes_max: usize,
    /// The answer written in place of hyper's, and how much of it is written.
    stand_in: Option<(Vec<u8>, usize)>,
}

impl<T> Enveloped<T> {
    pub(super) fn new(inner: T, limits: &ConnectionLimits) -> Enveloped<T> {
        Enveloped {
            inner,
            start: [0; START_LEN],
            start_len: 0,
            fresh: true,
            uri_bytes_max: limits.uri_bytes_max,
            parser_bytes_max: limits.parser_bytes_max(),
            stand_in: None,
        }
    }

    pub(super) fn into_inner(self) -> T {
        self.inner
    }

    /// The path of the latest request, as far as its first bytes tell: `/` when they do not.
    fn path_hint(&self) -> &str {
        let start = &self.start[..self.start_len];
        let target = start
            .iter()
            .position(|&b| b == b' ')
            .map_or(&[][..], |space| &start[space + 1..]);
        let end = target
            .iter()
            .position(|&b| b == b' ' || b == b'?')
            .unwrap_or(target.len());
        match std::str::from_utf8(&target[..end]) {
            Ok(path) if path.starts_with('/') => path,
            // A multi-byte character cut at the end: its whole part.
            Err(e) if target[..e.valid_up_to()].starts_with(b"/") => {
                std::str::from_utf8(&target[..e.valid_up_to()]).unwrap_or("/")
            }
            _ => "/",
        }
    }

    /// What hyper's bare answer in `head` refuses, if it is one.
    fn hypers_refusal(&self, head: &[u8]) -> Option<Refusal> {
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
        bare.then_some(refusal)
    }

    /// The answer that stands in for hyper's.
    fn stand_in(&self, refusal: Refusal) -> Vec<u8> {
        let (status, content_type, body) = refusal::envelope(self.path_hint(), None, refusal);
        let reason = status.canonical_reason().unwrap_or("");
        let status = HttpStatus::as_u16(&status);
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl<T: AsyncWrite + Unpin> Enveloped<T> {
    /// Writes what is left of the stand-in answer, if there is one.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((bytes, written)) = &mut self.stand_in else {
            return Poll::Ready(Ok(()));
        };
        while *written < bytes.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => *written += n,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes hyper's bytes as written once a stand-in answer replaces them: hyper writes nothing
    /// after its refusal but the refusal itself.
    fn swallow(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        match self.drive(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // What is not written yet goes out with the flush hyper makes next.
            _ => Poll::Ready(Ok(len)),
        }
    }
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
        if self.fresh && !read.is_empty() {
            let this = &mut *self;
            this.start_len = read.len().min(START_LEN);
            this.start[..this.start_len].copy_from_slice(&read[..this.start_len]);
            this.fresh = false;
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
        if self.stand_in.is_none()
            && let Some(refusal) = self.hypers_refusal(buf)
        {
            self.stand_in = Some((self.stand_in(refusal), 0));
        }
        if self.stand_in.is_some() {
            return self.swallow(cx, buf.len());
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
        if self.stand_in.is_none()
            && let Some(first) = bufs.first()
            && bufs.iter().skip(1).all(|b| b.is_empty())
            && let Some(refusal) = self.hypers_refusal(first)
        {
            self.stand_in = Some((self.stand_in(refusal), 0));
        }
        if self.stand_in.is_some() {
            let len = bufs.iter().map(|b| b.len()).sum();
            return self.swallow(cx, len);
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
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;
    use crate::config::LimitsConfig;

    fn limits() -> ConnectionLimits {
        ConnectionLimits::of(&LimitsConfig::default())
    }

    /// Reads `request` through an [`Enveloped`] end, answers `answer` as hyper would, and returns
    /// what the client receives.
    async fn exchange(request: &[u8], answer: &[u8]) -> String {
        let (client, server) = duplex(1 << 16);
        let mut server = Enveloped::new(server, &limits());
        let (mut client_read, mut client_write) = tokio::io::split(client);
        client_write.write_all(request).await.expect("sent");
        let mut buf = vec![0; request.len()];
        server.read_exact(&mut buf).await.expect("read");
        server.write_all(answer).await.expect("written");
        server.flush().await.expect("flushed");
        server.shutdown().await.expect("shut");
        drop(server);
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client_read.read_to_end(&mut got))
            .await
            .expect("in time")
            .expect("read back");
        String::from_utf8(got).expect("UTF-8")
    }

    fn body(answer: &str) -> Value {
        let (_, body) = answer.split_once("\r\n\r\n").expect("a head");
        serde_json::from_str(body).expect("JSON")
    }

    const BARE_431: &[u8] =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";

    #[tokio::test]
    async fn hypers_bare_refusals_are_said_in_the_surfaces_envelope() {
        let got = exchange(b"POST /api/v1/qr/scan HTTP/1.1\r\nx: 1\r\n", BARE_431).await;
        assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
        assert!(got.contains("\r\nconnection: close\r\n"), "{got}");
        let result = &body(&got)["result"];
        assert_eq!(result["resultCode"], "PARAM_ILLEGAL");
        assert_eq!(
            result["resultMessage"],
            "Некорректный параметр: headers — более 100 заголовков или длиннее 49152 байт"
        );

        let got = exchange(b"GET /r1/v01/qr/1/status HTTP/1.1\r\n", BARE_431).await;
        assert_eq!(body(&got)["StatusCode"], -99000400, "{got}");

        let bare_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let got = exchange(b"POST /r3/v01/qr/create HTTP/1.1\r\nbad\0: 1\r\n", bare_400).await;
        assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
        assert_eq!(body(&got)["StatusCode"], -99000400, "{got}");

        let got = exchange(b"GET /admin/v1/mpps HTTP/1.1\r\n", BARE_431).await;
        assert!(body(&got)["error"].as_str().is_some(), "{got}");
        // Not even a request line: the plain words.
        let got = exchange(b"\x16\x03\x01", bare_400).await;
        assert!(body(&got)["error"].as_str().is_some(), "{got}");
    }

    #[tokio::test]
    async fn answers_of_ours_go_through_as_they_are() {
        let ours =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n\
                     content-length: 2\r\n\r\n{}";
        let got = exchange(b"POST /api/v1/qr/scan HTTP/1.1\r\n", ours).await;
        assert_eq!(got.as_bytes(), ours);
        let ok =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ncontent-type: text/plain\r\n\r\n";
        let got = exchange(b"GET / HTTP/1.1\r\n", ok).await;
        assert_eq!(got.as_bytes(), ok);
    }

    #[test]
    fn the_path_is_read_from_the_first_bytes() {
        let mut io = Enveloped::new((), &limits());
        for (start, path) in [
            (&b"POST /api/v1/qr/scan HTTP/1.1"[..], "/api/v1/qr/scan"),
            (b"GET /r2/v01/qr?x=1 HTTP/1.1", "/r2/v01/qr"),
            (b"GET", "/"),
            (b"GET *", "/"),
            (b"GET /\xd0\x90\xd0", "/\u{410}"),
        ] {
            io.start_len = start.len().min(START_LEN);
            io.start[..io.start_len].copy_from_slice(&start[..io.start_len]);
            assert_eq!(io.path_hint(), path, "{start:?}");
        }
    }
}
