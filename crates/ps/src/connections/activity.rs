//! What one connection is doing, for its deadlines (DECISIONS 43): waiting for a request,
//! receiving a request's headers, or busy with requests; and whether the client stopped reading.
//! The socket ([`WatchedIo`]) reports the first byte of a request and writes that wait or go
//! through, the service reports a request's start and the end of its answer ([`AnswerBody`]);
//! the connection's task asks [`Activity::deadline`] when to close it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::Timeouts;

/// Which deadline closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A request's headers (or a new connection's first request) did not arrive in time.
    Headers,
    /// A keep-alive connection sat without a request for too long.
    Idle,
    /// The client stopped reading an answer: no write went through for too long.
    Send,
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// No request in progress since `since`; `first` until the connection's first request.
    Waiting { since: Instant, first: bool },
    /// Bytes of a request arrived at `since`; its headers are not complete yet.
    Headers { since: Instant },
    /// Requests whose answers are not yet written out. Their bodies have their own deadline.
    Busy { in_flight: usize },
}

/// No waiter is woken when the phase changes: the connection's task looks at the deadline often
/// enough without it (`next_look` in the connection layer).
pub(super) struct Activity {
    phase: Mutex<Phase>,
    /// When the connection was opened: [`Activity::write_blocked`] counts from it.
    opened: Instant,
    /// Since when a write has waited for the client with none going through since, in
    /// nanoseconds after `opened` plus one; 0 while writes go through. An atomic, so that the
    /// write of every answer costs one load.
    write_blocked: AtomicU64,
    /// Bytes read since the last request began: its body as sent, chunked framing included,
    /// and the head of the next. hyper counts a body's data against its limit but not the
    /// framing around it, so a chunk-size line of zeros without end would be read until the
    /// body's deadline, a core's worth of parsing per connection.
    read_since_request: AtomicU64,
    /// Past this, the connection's reads fail and it is closed
    /// ([`ConnectionLimits::request_wire_bytes_max`](super::ConnectionLimits)).
    read_max: u64,
    /// Set when `read_max` was passed, for the count.
    overran: AtomicBool,
}

impl Activity {
    pub(super) fn new(read_max: u64) -> Activity {
        let opened = Instant::now();
        Activity {
            phase: Mutex::new(Phase::Waiting {
                since: opened,
                first: true,
            }),
            opened,
            write_blocked: AtomicU64::new(0),
            read_since_request: AtomicU64::new(0),
            read_max,
            overran: AtomicBool::new(false),
        }
    }

    /// Whether the connection's reads failed because a request took more bytes than it may.
    pub(super) fn overran(&self) -> bool {
        self.overran.load(Ordering::Relaxed)
    }

    /// A write waits for the client (its socket's buffers are full).
    fn write_waits(&self) {
        if self.write_blocked.load(Ordering::Relaxed) == 0 {
            let after = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            self.write_blocked.store(after + 1, Ordering::Relaxed);
        }
    }

    /// A write went through.
    fn write_went(&self) {
        if self.write_blocked.load(Ordering::Relaxed) != 0 {
            self.write_blocked.store(0, Ordering::Relaxed);
        }
    }

    /// Since when writes wait for the client, if they do.
    fn write_blocked(&self) -> Option<Instant> {
        match self.write_blocked.load(Ordering::Relaxed) {
            0 => None,
            after => Some(self.opened + Duration::from_nanos(after - 1)),
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        // A panic while the lock was held cannot leave a phase half-written: it is one copy.
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
    }

    /// `count` bytes came in: if no request was in progress, a request's headers have begun.
    /// False when they take the bytes read since the last request began past `read_max`.
    fn bytes_read(&self, count: usize) -> bool {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        let read = self
            .read_since_request
            .fetch_add(count, Ordering::Relaxed)
            .saturating_add(count);
        if read > self.read_max {
            self.overran.store(true, Ordering::Relaxed);
            return false;
        }
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Phase::Waiting { .. } = *phase {
            *phase = Phase::Headers {
                since: Instant::now(),
            };
        }
        true
    }

    /// A request's headers are complete; returns when the request began (its first byte), from
    /// which its body's deadline runs.
    pub(super) fn request_began(&self) -> Instant {
        self.read_since_request.store(0, Ordering::Relaxed);
        let now = Instant::now();
        let mut began = now;
        self.update(|phase| match phase {
            Phase::Headers { since } => {
                began = since;
                Phase::Busy { in_flight: 1 }
            }
            Phase::Waiting { .. } => Phase::Busy { in_flight: 1 },
            Phase::Busy { in_flight } => Phase::Busy {
                in_flight: in_flight + 1,
            },
        });
        began
    }

    /// A request's answer is written out (or dropped).
    fn request_ended(&self) {
        self.update(|phase| match phase {
            Phase::Busy { in_flight } if in_flight > 1 => Phase::Busy {
                in_flight: in_flight - 1,
            },
            Phase::Busy { .. } => Phase::Waiting {
                since: Instant::now(),
                first: false,
            },
            other => other,
        });
    }

    /// When the connection is to be closed if nothing changes, and why: the deadline of its
    /// phase (none while busy with requests) or, sooner, of a write that waits for the client.
    pub(super) fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, Expiry)> {
        let phase = match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Waiting { since, first: true } | Phase::Headers { since } => {
                Some((since + timeouts.header, Expiry::Headers))
            }
            Phase::Waiting {
                since,
                first: false,
            } => Some((since + timeouts.idle, Expiry::Idle)),
            Phase::Busy { .. } => None,
        };
        let send = self
            .write_blocked()
            .map(|since| (since + timeouts.send, Expiry::Send));
        match (phase, send) {
            (Some(phase), Some(send)) => Some(if send.0 < phase.0 { send } else { phase }),
            (phase, send) => phase.or(send),
        }
    }
}

/// What a [`WatchedIo`] reports to its [`Activity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Watch {
    /// Incoming bytes and writes: a plain TCP connection.
    Both,
    /// Incoming bytes only: above TLS, where they are the plaintext's.
    Reads,
    /// Writes only: below TLS, where they leave the PS.
    Writes,
}

/// The socket of a connection, or its TLS stream, reporting incoming bytes and writes that wait
/// or go through to its [`Activity`].
pub(super) struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    watch: Watch,
}

impl<T> WatchedIo<T> {
    pub(super) fn new(inner: T, activity: Arc<Activity>, watch: Watch) -> WatchedIo<T> {
        WatchedIo {
            inner,
            activity,
            watch,
        }
    }

    pub(super) fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if self.watch != Watch::Writes
            && matches!(result, Poll::Ready(Ok(())))
            && read > 0
            && !self.activity.bytes_read(read)
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a request took more bytes than its limits allow",
            )));
        }
        result
    }
}

impl<T> WatchedIo<T> {
    /// Tells the [`Activity`] whether a write waited for the client or went through.
    fn watch<R>(&self, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if self.watch == Watch::Reads {
            return result;
        }
        match &result {
            Poll::Pending => self.activity.write_waits(),
            Poll::Ready(Ok(_)) => self.activity.write_went(),
            Poll::Ready(Err(_)) => {}
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An answer's body that tells the [`Activity`] when it is written out (hyper drops a body once
/// it has sent its end), so that the idle deadline starts then and not while a large answer is
/// still going out.
pub(super) struct AnswerBody {
    inner: Body,
    activity: Option<Arc<Activity>>,
}

impl AnswerBody {
    pub(super) fn new(inner: Body, activity: Arc<Activity>) -> AnswerBody {
        AnswerBody {
            inner,
            activity: Some(activity),
        }
    }

    fn finish(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.request_ended();
        }
    }
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) {
            self.finish();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        send: Duration::from_secs(30),
    };

    #[test]
    fn a_write_that_waits_sets_the_send_deadline_and_one_that_goes_through_clears_it() {
        let activity = Activity::new(u64::MAX);
        activity.request_began();
        assert_eq!(activity.deadline(&TIMEOUTS), None, "busy: no deadline");
        activity.write_waits();
        let blocked = activity.write_blocked().expect("blocked");
        let (at, expiry) = activity.deadline(&TIMEOUTS).expect("a send deadline");
        assert_eq!((at, expiry), (blocked + TIMEOUTS.send, Expiry::Send));
        // A second wait keeps the first's time.
        activity.write_waits();
        assert_eq!(activity.write_blocked(), Some(blocked));
        activity.write_went();
        assert_eq!(activity.deadline(&TIMEOUTS), None);
        // Idle with a write waiting: the sooner of the two.
        activity.request_ended();
        activity.write_waits();
        let (_, expiry) = activity.deadline(&TIMEOUTS).expect("a deadline");
        assert_eq!(expiry, Expiry::Send, "30 s of send before 60 s of idle");
    }
}
