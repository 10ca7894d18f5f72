//! Request bodies under a deadline and a size limit (DECISIONS 43). The connection layer wraps
//! every request body in [`DeadlineBody`]; the edges read bodies with [`read_body`], which tells
//! a body too large from one that came too slowly from one cut off by the client.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::{ConnectionLimits, Pressure};

/// A request body that fails with [`BodyFault::Late`] once its deadline has passed, so that a
/// client sending a few bytes now and then cannot hold a handler and its buffer for ever. While
/// the listener is at its connection cap ([`Pressure`]) the deadline is shorter: the body must be
/// whole within [`ConnectionLimits::header_timeout_at_cap`] of the later of the request's start
/// and the pressure's, so a slow body, like slow headers, gives way to the next client.
pub(crate) struct DeadlineBody {
    inner: Incoming,
    began: Instant,
    /// The deadline without pressure.
    deadline: Instant,
    at_cap: Duration,
    pressure: Arc<Pressure>,
    /// Made the first time the body makes its reader wait: a body that came with its headers,
    /// the usual case, needs none.
    timer: Option<Pin<Box<Sleep>>>,
    /// Set once the fault is reported; the body then ends.
    failed: bool,
}

impl DeadlineBody {
    pub(crate) fn new(
        inner: Incoming,
        began: Instant,
        limits: &ConnectionLimits,
        pressure: Arc<Pressure>,
    ) -> DeadlineBody {
        let deadline = began + limits.body_timeout;
        DeadlineBody {
            inner,
            began,
            deadline,
            at_cap: limits.header_timeout_at_cap,
            pressure,
            timer: None,
            failed: false,
        }
    }

    /// The deadline in force now.
    fn deadline(&self) -> Instant {
        match self.pressure.since() {
            Some(since) => self.deadline.min(self.began.max(since) + self.at_cap),
            None => self.deadline,
        }
    }
}

/// Why a request body stopped before its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyFault {
    #[error("the request body did not arrive within its deadline")]
    Late,
    #[error("the request body was cut off: {0}")]
    Connection(#[from] hyper::Error),
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyFault;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFault>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        // What has arrived is taken first; the deadline matters only when the body makes the
        // reader wait.
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                self.failed = true;
                Poll::Ready(Some(Err(BodyFault::Connection(e))))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|frame| frame.map_err(BodyFault::from))),
            Poll::Pending => {
                // No waiter of its own for the pressure: hyper polls the request's service,
                // and so this body, inside the connection's task, which wakes at each switch
                // (`http` in the connection layer) and polls the connection again.
                let deadline = self.deadline();
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.failed = true;
                        Poll::Ready(Some(Err(BodyFault::Late)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why [`read_body`] could not return a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over the limit, by its `Content-Length` or while it was read.
    TooLarge,
    /// Its deadline passed before it arrived whole.
    Late,
    /// The client cut it off (or sent a broken chunked encoding).
    Incomplete,
}

/// Reads a request's body whole, holding at most `bytes_max` of it: one whose `Content-Length`
/// says it is larger is refused before a byte of it is read.
pub(crate) async fn read_body(req: Request, bytes_max: usize) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > bytes_max as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = req.into_body();
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| classify(&e))?;
        // Trailers carry nothing the PS reads.
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > bytes_max {
                return Err(BodyError::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(bytes))
}

/// axum boxes a body's error; a [`BodyFault::Late`] inside is a deadline, anything else a body
/// the client did not finish.
fn classify(error: &axum::Error) -> BodyError {
    if is_late(error) {
        BodyError::Late
    } else {
        BodyError::Incomplete
    }
}

/// Whether a body's error, however boxed, is its deadline ([`BodyFault::Late`]).
pub(crate) fn is_late(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(BodyFault::Late) = e.downcast_ref::<BodyFault>() {
            return true;
        }
        source = e.source();
    }
    false
}
