//! The connection layer under the router (DECISIONS 43): the accept loop of one listener, a cap
//! on its open connections, and the deadlines of every connection — headers, body, answer, idle
//! keep-alive — so that no client, careless or hostile, can hold the PS's sockets, memory or file
//! descriptors for ever. Requests over the size limits of the request target and the headers are
//! refused here, in the envelope of the surface they were meant for ([`refusal`]).
//!
//! [`serve`] takes a bound listener, its TLS files if it has them ([`tls`]), the service to run
//! and the limits, so that each listener (one per surface, DECISIONS 41) gets its own loop. On a
//! TLS listener the handshake runs under the header deadline and inside the connection cap, and
//! a verified client certificate goes into every request of the connection as a
//! [`PeerCertificate`]. Called by the router's `serve_listeners` (`app`). The counters of the
//! connections ([`ConnectionStats`]) live in the shared state, which the metrics read.
//!
//! What hyper still does below this layer: its parser refuses a request line and headers over
//! [`ConnectionLimits::parser_bytes_max`] (twice our own limits) with a 431, a request target
//! over 64 KiB with a 414, more than 100 headers with a 431 and a head that is not HTTP/1.1 with
//! a 400, and ends the connection. Our limits are lower, so the size refusals are only a
//! backstop; [`parser_refusal`] takes hyper's bare status line off the connection, and the
//! connection's task then writes the refusal in the surface's envelope, waits for it to go out
//! and closes as after any last answer ([`linger`]).

mod activity;
pub(crate) mod body;
pub(crate) mod files;
pub(crate) mod parser_refusal;
pub(crate) mod peer;
pub(crate) mod refusal;
#[cfg(test)]
mod test_pki;
pub(crate) mod tls;

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};

use crate::config::LimitsConfig;
use activity::{Activity, AnswerBody, Expiry, Watch, WatchedIo};
pub(crate) use body::read_body;
use parser_refusal::Enveloped;
pub(crate) use peer::{OverTls, PeerCertificate};
pub(crate) use refusal::{Refusal, Scheme};
pub(crate) use tls::{TlsError, TlsFiles};

/// The limits of one listener's connections (`limits.*` in the configuration).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    /// A request's headers must be complete this long after its first byte; a new connection's
    /// first request must be complete this long after the connection opened.
    pub header_timeout: Duration,
    /// A request's body must be complete this long after the request's first byte.
    pub body_timeout: Duration,
    /// A keep-alive connection without a request for this long is closed.
    pub idle_timeout: Duration,
    /// An answer being sent must make progress within this.
    pub send_timeout: Duration,
    /// The header, idle, body and send deadline while the listener is at its cap ([`Pressure`]).
    pub header_timeout_at_cap: Duration,
    /// Open connections at most, before the open-files limit lowers it ([`files`]).
    pub connections_max: usize,
    /// File descriptors kept free for the database and outgoing calls.
    pub open_files_reserved: usize,
    pub uri_bytes_max: usize,
    pub header_bytes_max: usize,
    /// Listeners of the process: they share the open-files limit, each with an equal part.
    pub listeners: usize,
    /// The largest body any surface of the listener takes (`body_bytes_max`,
    /// `admin_body_bytes_max`), for [`ConnectionLimits::request_wire_bytes_max`].
    pub body_bytes_max: usize,
}

impl ConnectionLimits {
    pub(crate) fn of(limits: &LimitsConfig) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: limits.header_timeout(),
            body_timeout: limits.body_timeout(),
            idle_timeout: limits.idle_timeout(),
            send_timeout: limits.send_timeout(),
            header_timeout_at_cap: limits.header_timeout_at_cap(),
            connections_max: limits.connections_max,
            open_files_reserved: limits.open_files_reserved,
            uri_bytes_max: limits.uri_bytes_max,
            header_bytes_max: limits.header_bytes_max,
            listeners: 1,
            body_bytes_max: limits.body_bytes_max.max(limits.admin_body_bytes_max),
        }
    }

    /// The bytes a connection may read from one request's start to the next's: the largest
    /// body in the costliest framing a client would use (chunks of a byte or two, eight bytes
    /// on the wire for each byte of data), and a full parser buffer of the next request's head
    /// read ahead. A body's data past its limit is refused by the edges with a 413; this bounds
    /// what is not data (a chunk-size line without end), which hyper reads without counting.
    pub(crate) fn request_wire_bytes_max(&self) -> u64 {
        let bytes = self
            .body_bytes_max
            .saturating_mul(8)
            .saturating_add(self.parser_bytes_max() + 16 * 1024);
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }

    /// hyper's own parser limit on the request line and headers together: far enough above ours
    /// that a request over our limits reaches [`refusal`] and gets its envelope, yet bounded.
    pub(crate) fn parser_bytes_max(&self) -> usize {
        (2 * (self.uri_bytes_max + self.header_bytes_max)).max(16 * 1024)
    }
}

/// Whether a listener is at its connection cap. Then connections held without use give way:
/// idle keep-alive ones close after [`ConnectionLimits::header_timeout_at_cap`], a request's
/// headers (a new connection's first, after its TLS handshake) must arrive within it, and a
/// request's body must be whole within it of the later of the request's start and the pressure's
/// ([`body::DeadlineBody`]), so that a client opening connections and leaving them idle, or
/// sending headers or bodies slowly, cannot keep others out for longer than that. A request whose
/// body has arrived is being served, and is never cut.
#[derive(Default)]
pub(crate) struct Pressure {
    at_cap: AtomicBool,
    /// When the pressure last began.
    since: std::sync::Mutex<Option<Instant>>,
    changed: Notify,
}

impl Pressure {
    fn set(&self, at_cap: bool) {
        // The usual case, no change, takes no lock.
        if self.at_cap.load(Ordering::SeqCst) == at_cap {
            return;
        }
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if self.at_cap.swap(at_cap, Ordering::SeqCst) != at_cap {
            if at_cap {
                *since = Some(Instant::now());
            }
            drop(since);
            self.changed.notify_waiters();
        }
    }

    pub(crate) fn on(&self) -> bool {
        self.at_cap.load(Ordering::SeqCst)
    }

    /// When the pressure in force began, if it is on.
    pub(crate) fn since(&self) -> Option<Instant> {
        if !self.on() {
            return None;
        }
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The header, idle and send deadlines in force now. At the cap an idle connection gets the
    /// same short time as headers, not none: a connection counts as idle once hyper took its
    /// answer's last bytes, which may still sit in its buffers for a slow client; the moment
    /// lets them go out before the socket is closed.
    fn timeouts(&self, limits: &ConnectionLimits) -> Timeouts {
        if self.on() {
            let at_cap = limits.header_timeout_at_cap;
            Timeouts {
                header: at_cap,
                idle: at_cap.min(limits.idle_timeout),
                send: at_cap.min(limits.send_timeout),
            }
        } else {
            Timeouts {
                header: limits.header_timeout,
                idle: limits.idle_timeout,
                send: limits.send_timeout,
            }
        }
    }
}

/// The deadlines of a connection in force now ([`Pressure::timeouts`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
    pub send: Duration,
}

impl Timeouts {
    fn shortest(&self) -> Duration {
        self.header.min(self.idle).min(self.send)
    }
}

/// Counters of the listeners' connections (all listeners together), for the operator and the
/// tests.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// The most connections that were open at once.
    pub open_max: AtomicUsize,
    pub accepted: AtomicU64,
    /// Connections closed because a request's headers did not arrive in time.
    pub closed_headers_late: AtomicU64,
    /// Keep-alive connections closed after sitting idle.
    pub closed_idle: AtomicU64,
    /// Connections closed because the client stopped reading an answer (`send_timeout_ms`).
    pub closed_send_late: AtomicU64,
    /// Times the accept loop stopped at the connection cap.
    pub cap_reached: AtomicU64,
    /// TLS handshakes that failed: a client certificate from another CA, a client that speaks
    /// no TLS or no common version, or one that closed before the handshake ended. A handshake
    /// that ran out of time counts in `closed_headers_late` instead.
    pub tls_handshakes_failed: AtomicU64,
    /// Requests refused below the router, in the surface's envelope (DECISIONS 43): a target
    /// over `uri_bytes_max` or hyper's 64 KiB (414), headers over `header_bytes_max` (431), more
    /// headers or a larger head than hyper's parser takes (431), a head that is not HTTP/1.1
    /// (400). The router's traffic counters never see these.
    pub refused_uri_too_long: AtomicU64,
    pub refused_headers_too_large: AtomicU64,
    pub refused_head_too_large: AtomicU64,
    pub refused_head_malformed: AtomicU64,
    /// Connections closed because one request took more bytes than it may, framing included
    /// (a chunk-size line without end; [`ConnectionLimits::request_wire_bytes_max`]): no
    /// answer, the reads fail.
    pub refused_body_framing: AtomicU64,
}

impl ConnectionStats {
    /// Counts a request refused below the router. A body's refusals are the router's answers,
    /// counted in its traffic.
    fn refused(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::UriTooLong { .. } => &self.refused_uri_too_long,
            Refusal::HeadersTooLarge { .. } => &self.refused_headers_too_large,
            Refusal::HeadTooLarge { .. } => &self.refused_head_too_large,
            Refusal::HeadMalformed => &self.refused_head_malformed,
            Refusal::BodyTooLarge | Refusal::BodyLate | Refusal::BodyIncomplete => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The token of `Authorization: Bearer …` (the admin API's and the cabinet's): none when the
/// header is absent, not a bearer token, or sent twice with different values, which name no one
/// caller (a proxy's and the client's, say, of which the PS would otherwise believe the first).
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let first = values.next()?;
    if values.any(|other| other != first) {
        return None;
    }
    // The scheme's name is case-insensitive (RFC 9110, 11.1): `bearer` is `Bearer`.
    let (scheme, token) = first.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// An open connection counted in [`ConnectionStats::open`] until dropped.
struct Counted(Arc<ConnectionStats>);

impl Counted {
    fn new(stats: Arc<ConnectionStats>) -> Counted {
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let open = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
        stats.open_max.fetch_max(open, Ordering::SeqCst);
        Counted(stats)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `TCP_NOTSENT_LOWAT` of every accepted connection.
const NOTSENT_LOWAT: u32 = 16 * 1024;

/// How often a listener waiting for a client under pressure looks whether places are free again.
const PRESSURE_CHECK: Duration = Duration::from_millis(100);

/// Pause after an accept error that is not the client's (EMFILE, ENFILE, ENOBUFS…), so that a
/// process out of descriptors does not spin; connections closing meanwhile free some.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `service` on `listener` (TLS with `tls`) until `shutdown` completes, then lets open
/// connections finish their requests (idle ones close at once) and returns.
pub(crate) async fn serve<S>(
    listener: TcpListener,
    tls: Option<Arc<TlsFiles>>,
    service: S,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    let cap = match files::raise_open_files_limit() {
        Ok(soft) => {
            let cap = files::connection_cap(
                limits.connections_max,
                soft,
                limits.open_files_reserved,
                limits.listeners,
            );
            tracing::info!(
                open_files_soft_limit = soft,
                connections_max = limits.connections_max,
                connection_cap = cap,
                "connection cap of this listener",
            );
            cap
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit");
            limits.connections_max
        }
    };
    let slots = Arc::new(Semaphore::new(cap));
    let pressure = Arc::new(Pressure::default());
    // Places that must be free before the pressure ends: each switch wakes every connection of
    // the listener, so one place freed and taken again must not switch it twice per client.
    let free_to_end = pressure_margin(cap);
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    let mut at_cap_log = crate::log_sparse::Sparse::default();
    let mut error_log = crate::log_sparse::Sparse::default();
    loop {
        // A slot before the accept: at the cap the PS leaves new clients in the kernel's backlog
        // (which refuses past its length) until a connection closes, rather than taking sockets
        // it cannot serve.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if slots.available_permits() + 1 >= free_to_end {
                    pressure.set(false);
                }
                slot
            }
            Err(_) => {
                // Until a slot is free without waiting, connections held without use give way.
                pressure.set(true);
                stats.cap_reached.fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = at_cap_log.due() {
                    tracing::warn!(
                        cap,
                        left_out,
                        "connection cap reached; not accepting until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        // While waiting for a client, the pressure ends as soon as enough places are free again
        // (the idle connections it closed, for one), not only at the next client.
        let accepted = loop {
            tokio::select! {
                accepted = listener.accept() => break Some(accepted),
                () = &mut shutdown => break None,
                () = tokio::time::sleep(PRESSURE_CHECK), if pressure.on() => {
                    // This loop holds a place already, for the client it waits for.
                    if slots.available_permits() + 1 >= free_to_end {
                        pressure.set(false);
                    }
                }
            }
        };
        let Some(accepted) = accepted else {
            break;
        };
        match accepted {
            Ok((stream, peer)) => {
                let held = (slot, Counted::new(stats.clone()));
                connections.spawn(connection(
                    stream,
                    peer,
                    tls.clone(),
                    service.clone(),
                    limits,
                    stats.clone(),
                    (stop.clone(), pressure.clone()),
                    held,
                ));
            }
            // The client gave up before we took its connection: nothing to wait for.
            Err(e) if is_client_error(&e) => {}
            Err(e) => {
                if let Some(left_out) = error_log.due() {
                    tracing::error!(error = %e, left_out, "accept error");
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Free places that end the pressure on a listener of `cap` connections: one in 32, at least one.
fn pressure_margin(cap: usize) -> usize {
    (cap / 32).max(1)
}

fn is_client_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it ends, a deadline passes, or the PS stops. On a TLS listener
/// the handshake comes first, and must end by the deadline of the connection's first request.
#[allow(clippy::too_many_arguments)]
async fn connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsFiles>>,
    service: S,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    (stop, pressure): (CancellationToken, Arc<Pressure>),
    // Held until the connection ends: its place under the cap, and its count.
    held: (OwnedSemaphorePermit, Counted),
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    let activity = Arc::new(Activity::new(limits.request_wire_bytes_max()));
    // The socket is reported writable again once little waits unsent (by default, once a third
    // of a send buffer of up to 4 MiB has gone), so a client that reads slowly but steadily lets
    // a write through once it has emptied its own receive buffer (about 130-190 KB with common
    // buffers, docs/configuration.md), and one that never reads pins little kernel memory. Best
    // effort: without it the deadline still holds.
    let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
    let Some(tls) = tls else {
        let io = WatchedIo::new(stream, activity.clone(), Watch::Both);
        return http(
            io,
            (false, None),
            peer,
            service,
            limits,
            activity,
            stats,
            (stop, pressure),
            held,
        )
        .await;
    };
    // The acceptor in force now: a reload later does not change this connection's certificate.
    // Writes are watched below TLS, where the bytes really leave: TLS may send some of its
    // buffer inside a flush that still waits, and that is progress too.
    let stream = WatchedIo::new(stream, activity.clone(), Watch::Writes);
    let mut handshake = pin!(tls.acceptor().accept(stream));
    let opened = Instant::now();
    let stream = {
        // The waiter exists before the deadline is read, so a switch in between is not missed.
        let mut pressure_changed = pin!(pressure.changed.notified());
        loop {
            let deadline = opened + pressure.timeouts(&limits).header;
            tokio::select! {
                done = &mut handshake => match done {
                    Ok(stream) => break stream,
                    Err(e) => {
                        stats.tls_handshakes_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    stats.closed_headers_late.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "TLS handshake not done by the header deadline");
                    return;
                }
                // The deadline may have become shorter.
                () = &mut pressure_changed => {
                    pressure_changed.set(pressure.changed.notified());
                }
                () = stop.cancelled() => return,
            }
        }
    };
    let certificate = tls::peer_certificate(stream.get_ref().1);
    // Reads are watched above TLS: the first byte of a request is of its plaintext.
    let io = WatchedIo::new(stream, activity.clone(), Watch::Reads);
    http(
        io,
        (true, certificate),
        peer,
        service,
        limits,
        activity,
        stats,
        (stop, pressure),
        held,
    )
    .await;
}

/// Runs HTTP/1 on a connection (after its TLS handshake, if any) until it ends.
#[allow(clippy::too_many_arguments)]
async fn http<S, T>(
    io: WatchedIo<T>,
    // Whether the connection is TLS, and the client certificate it verified.
    (over_tls, certificate): (bool, Option<PeerCertificate>),
    peer: SocketAddr,
    service: S,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    stats: Arc<ConnectionStats>,
    (stop, pressure): (CancellationToken, Arc<Pressure>),
    _held: (OwnedSemaphorePermit, Counted),
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Enveloped::new(io, &limits));
    let handler = hyper::service::service_fn(request_handler(
        Arc::new(service),
        (activity.clone(), stats.clone()),
        (limits, pressure.clone()),
        peer,
        (over_tls, certificate),
    ));
    let parser_bytes_max = limits.parser_bytes_max();
    let mut conn = hyper::server::conn::http1::Builder::new()
        .max_header_size(parser_bytes_max)
        .max_buf_size(parser_bytes_max + 16 * 1024)
        .serve_connection(io, handler);
    let mut stopping = false;
    // One waiter for the connection's life, not one per turn of the loop: the listener's
    // `Notify` is shared by all its connections.
    let mut pressure_changed = pin!(pressure.changed.notified());
    loop {
        let timeouts = pressure.timeouts(&limits);
        let wake = next_look(activity.deadline(&timeouts), timeouts.shortest());
        tokio::select! {
            result = poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                let parts = conn.into_parts();
                let (io, swallowed) = parts.io.into_inner().into_parts();
                if let Some(swallowed) = swallowed {
                    // hyper refused the request its unread bytes begin with: its answer, in the
                    // envelope, written here (`parser_refusal`).
                    if let Err(e) = &result {
                        tracing::debug!(%peer, error = %e, "request refused by the HTTP parser");
                    }
                    stats.refused(swallowed.refusal());
                    let answer = swallowed.answer(&parts.read_buf);
                    let send = pressure.timeouts(&limits).send;
                    let mut io = io;
                    let written = async {
                        io.write_all(&answer).await?;
                        io.flush().await
                    };
                    if !matches!(tokio::time::timeout(send, written).await, Ok(Ok(()))) {
                        return;
                    }
                    linger(io.into_inner()).await;
                    return;
                }
                if activity.overran() {
                    stats.refused_body_framing.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "connection closed: a request took more bytes than it may");
                    return;
                }
                match result {
                    Ok(()) => linger(io.into_inner()).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                }
                return;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
            // At the cap or no longer: the deadlines change.
            () = &mut pressure_changed => {
                pressure_changed.set(pressure.changed.notified());
            }
            () = tokio::time::sleep_until(wake) => {
                // Dropping the connection closes the socket: no request is in progress, or the
                // client stopped reading its answer.
                if let Some((at, expiry)) = activity.deadline(&pressure.timeouts(&limits))
                    && at <= Instant::now()
                {
                    let counter = match expiry {
                        Expiry::Headers => &stats.closed_headers_late,
                        Expiry::Idle => &stats.closed_idle,
                        Expiry::Send => &stats.closed_send_late,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, ?expiry, "connection closed at its deadline");
                    return;
                }
            }
        }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<hyper::Response<AnswerBody>, Infallible>> + Send>>;

/// What hyper calls with each request of a connection: the size limits checked, the body put
/// under its deadline, the peer's address made known (`ConnectInfo`) and its verified client
/// certificate ([`PeerCertificate`]) and whether it came over TLS ([`OverTls`]), the answer's
/// end reported.
fn request_handler<S>(
    service: Arc<S>,
    (activity, stats): (Arc<Activity>, Arc<ConnectionStats>),
    (limits, pressure): (ConnectionLimits, Arc<Pressure>),
    peer: SocketAddr,
    (over_tls, certificate): (bool, Option<PeerCertificate>),
) -> impl Fn(Request<Incoming>) -> Answer
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    move |req| {
        let began = activity.request_began();
        let (mut parts, body) = req.into_parts();
        let oversize = refusal::oversize(&parts, limits.uri_bytes_max, limits.header_bytes_max);
        if let Some(refused) = oversize {
            stats.refused(refused);
        }
        parts.extensions.insert(ConnectInfo(peer));
        if let Some(certificate) = certificate {
            parts.extensions.insert(certificate);
        }
        if over_tls {
            parts.extensions.insert(OverTls);
        }
        let body = Body::new(body::DeadlineBody::new(
            body,
            began,
            &limits,
            pressure.clone(),
        ));
        let service = S::clone(&service);
        let activity = activity.clone();
        Box::pin(async move {
            let response = match oversize {
                Some(refused) => refusal::answer(&parts, refused),
                None => match service.oneshot(Request::from_parts(parts, body)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
            };
            Ok(response.map(|b| AnswerBody::new(b, activity)))
        })
    }
}

/// Longest a closed connection's socket is drained ([`linger`]).
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes drained from a closed connection's socket.
const LINGER_BYTES_MAX: usize = 256 * 1024;

/// Closes a connection whose last answer is written: our side's end is sent first, then what the
/// client still sends (the rest of a body the PS refused unread) is read and dropped for a short
/// while. Closing a socket with unread bytes sends a reset, and a reset can make the client's
/// system drop the answer it has not read yet: the 413 or 408 would be lost.
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut stream: T) {
    // On TLS the shutdown writes a close_notify, which a client that reads nothing would hold.
    if !matches!(
        tokio::time::timeout(LINGER, stream.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 8 * 1024];
        let mut drained = 0;
        while drained <= LINGER_BYTES_MAX {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// When a connection's task looks at its deadline next: at the deadline in force, and no later
/// than `shortest` (the shortest of the header, idle and send deadlines) from now. A request's start or
/// end does not wake the task: any deadline a later change of phase sets is at least `shortest`
/// after that change, so a look this early is never too late for it, and the hot path pays no
/// wake-up and no new timer per request.
fn next_look(deadline: Option<(Instant, Expiry)>, shortest: Duration) -> Instant {
    let soon = Instant::now() + shortest;
    match deadline {
        Some((at, _)) => at.min(soon),
        None => soon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_whatever_the_schemes_case_and_only_when_one() {
        use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
        let token = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(AUTHORIZATION, HeaderValue::from_static(value));
            }
            bearer_token(&headers).map(str::to_owned)
        };
        assert_eq!(token(&["Bearer abc"]).as_deref(), Some("abc"));
        assert_eq!(token(&["bearer abc"]).as_deref(), Some("abc"));
        assert_eq!(token(&["BEARER abc"]).as_deref(), Some("abc"));
        assert_eq!(token(&["Bearer abc", "Bearer abc"]).as_deref(), Some("abc"));
        for refused in [
            &["Basic abc"][..],
            &["Bearer"],
            &["Bearer abc", "Bearer xyz"],
            &[],
        ] {
            assert_eq!(token(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn the_pressure_ends_with_one_place_in_32_free() {
        assert_eq!(pressure_margin(1), 1);
        assert_eq!(pressure_margin(8), 1);
        assert_eq!(pressure_margin(64), 2);
        assert_eq!(pressure_margin(4096), 128);
    }

    #[test]
    fn the_pressure_knows_when_it_began_only_while_on() {
        let pressure = Pressure::default();
        assert_eq!(pressure.since(), None);
        pressure.set(true);
        let since = pressure.since().expect("on");
        pressure.set(true);
        assert_eq!(
            pressure.since(),
            Some(since),
            "a second switch on keeps the start"
        );
        pressure.set(false);
        assert_eq!(pressure.since(), None);
    }
}
