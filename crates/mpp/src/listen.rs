//! How the reference MPP serves its listeners, guarded in small as the PS guards its own
//! (DECISIONS 43, `docs/security.md`): at most [`CONNECTIONS_MAX`] open connections per listener
//! (the next clients wait in the kernel's backlog, so the process keeps file descriptors for
//! everything else it does — the sandbox runs the demo MPPs inside the PS's process), headers
//! within [`HEADER_TIMEOUT`] (an idle keep-alive connection too), and a whole request, its body
//! included, within [`REQUEST_TIMEOUT`] or a 408.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;

/// Open connections per listener: far more than a bank's PS and its phones keep open at once on
/// one machine, and few enough to leave file descriptors to the rest of the process.
pub const CONNECTIONS_MAX: usize = 512;
/// A request's headers, from the moment the connection waits for them.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, body and answer: longer than any call the app API makes to the PS.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long open connections get to finish their requests once the listener stops.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (up to
/// [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ));
    let places = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
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
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
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
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(place);
        });
    }
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}
