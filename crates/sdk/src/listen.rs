//! Serving a bank's endpoints (`/refund`, an app API) guarded in small as the PS guards its own
//! (DECISIONS 43, `docs/security.md`), instead of with plain `axum::serve`, which has no
//! deadlines and no cap (feature `axum`; the reference MPP and the example bank serve on it):
//! at most [`CONNECTIONS_MAX`] open connections per listener (the next clients wait in the
//! kernel's backlog, so the process keeps file descriptors for everything else it does — the
//! sandbox runs its demo MPPs inside the PS's process), headers
//! within [`HEADER_TIMEOUT`] (an idle keep-alive connection's next ones too), a whole request,
//! its body included, within [`REQUEST_TIMEOUT`] or a 408, and an answer's writes going through
//! within [`SEND_TIMEOUT`] of each other (a client that asks and never reads is closed).

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;

/// Open connections per listener: far more than a bank's PS and its phones keep open at once on
/// one machine, and few enough to leave file descriptors to the rest of the process.
pub const CONNECTIONS_MAX: usize = 512;
/// A request's headers, from the moment the connection waits for them.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, body and answer: longer than any call the app API makes to the PS.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest an answer's write may wait for the client to read.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections get to finish their requests once the listener stops; then they
/// are ended.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown`, then stops accepting, lets open requests
/// finish for up to [`DRAIN`] and ends the connections left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ));
    let places = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        while connections.try_join_next().is_some() {}
        let place = tokio::select! {
            place = places.clone().acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: said once a second, and waited out a
                    // little rather than spun on.
                    if last_accept_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "accept error");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            router.clone().oneshot(req.map(Body::new))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(SendDeadline::new(stream)), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(place);
        });
    }
    // No new client waits in the backlog for an answer that will not come.
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A connection whose writes fail once one has waited [`SEND_TIMEOUT`] for the client to read.
struct SendDeadline {
    stream: TcpStream,
    /// Armed while a write waits; disarmed by any write that goes through.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl SendDeadline {
    fn new(stream: TcpStream) -> SendDeadline {
        SendDeadline {
            stream,
            waiting: None,
        }
    }

    /// `written` as it came, with the deadline disarmed by progress and armed by a wait, and
    /// an error once the wait has lasted the whole deadline.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.waiting = None;
            return written;
        }
        let deadline = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(SEND_TIMEOUT)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read its answer in time",
        )))
    }
}

impl AsyncRead for SendDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        this.watch(cx, flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
