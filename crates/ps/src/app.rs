//! Wiring: the router of every surface, the listeners ([`Listener`], one per surface or one for
//! all) and [`serve_listeners`], which runs them with the background tasks. The shared state is
//! [`crate::state`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tolem_wire::mpp::{HEADER_REQUEST_ID, ResultCode};
use tower::{Layer, Service};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tracing::Instrument;

use crate::config::{ListenerConfig, SurfaceName};
use crate::connections::{self, ConnectionLimits, TlsError, TlsFiles, tls};
use crate::state::{AppState, MppMethodOf, Traffic};
use crate::{
    admin_api, catalog_watch, console, merchant_api, mpp_api, qr_image, receipt, refund_dispatch,
    registers, request_id, sweeper,
};

/// Every route of the PS.
pub fn router(app: AppState) -> Router {
    router_for(app, &SurfaceName::ALL)
}

/// The routes of the given surfaces only (DECISIONS 41): a listener never routes a path of a
/// surface it does not serve, and answers it as an unknown path of its own ([`refuse_path`]).
pub(crate) fn router_for(app: AppState, surfaces: &[SurfaceName]) -> Router {
    let served: Arc<[SurfaceName]> = surfaces.into();
    let mut routes = Router::new();
    if served.contains(&SurfaceName::Mpp) {
        routes = routes.merge(mpp_api::router());
    }
    if served.contains(&SurfaceName::Merchant) {
        routes = routes
            .merge(merchant_api::router())
            .merge(merchant_api::cashier::router())
            .merge(qr_image::router())
            .merge(receipt::router());
    }
    if served.contains(&SurfaceName::Admin) {
        routes = routes
            .merge(admin_api::router(app.clone()))
            .merge(registers::router())
            .merge(console::router(app.clone()));
    } else if served.contains(&SurfaceName::Cabinet) {
        routes = routes
            .merge(registers::router())
            .merge(console::cabinet_router(app.clone()));
    }
    // The root leads a person to the screen of the listener: the console where the admin (or
    // cabinet) surface is served (the sandbox's one listener too), else the cashier's.
    let home = if served.contains(&SurfaceName::Admin) || served.contains(&SurfaceName::Cabinet) {
        Some("/console/")
    } else if served.contains(&SurfaceName::Merchant) {
        Some("/pos/")
    } else {
        None
    };
    if let Some(home) = home {
        routes = routes.route(
            "/",
            axum::routing::get(move || async move { Redirect::to(home) }),
        );
    }
    let counts = RequestSpanLayer {
        traffic: app.metrics.traffic.clone(),
        mpp_served: served.contains(&SurfaceName::Mpp),
    };
    let unknown = served.clone();
    let wrong = served;
    routes
        .merge(crate::health::router())
        .route("/favicon.ico", axum::routing::get(crate::icon::favicon))
        .fallback(
            move |State(app): State<AppState>, headers: HeaderMap, uri: Uri| async move {
                refuse_path(&app, &headers, &uri, false, &unknown).await
            },
        )
        .method_not_allowed_fallback(
            move |State(app): State<AppState>, headers: HeaderMap, uri: Uri| async move {
                refuse_path(&app, &headers, &uri, true, &wrong).await
            },
        )
        // Outside the panic's catch: a request that panicked is logged and counted too, with
        // the answer it got.
        .layer(CatchPanicLayer::custom(|_| internal_fault()))
        .layer(counts)
        .with_state(app)
}

/// The request's X-Request-ID if it keeps the rule of the API it was sent to
/// ([`request_id`]): the MPP API's for `/api`, the merchant API's elsewhere.
fn valid_request_id(req: &Request) -> Option<&str> {
    match Surface::of(req.uri().path()) {
        Surface::Mpp => request_id::of_mpp(req.headers()).ok(),
        _ => request_id::of_merchant(req.headers()),
    }
}

/// An X-Request-ID as a log line names it: as sent when it is visible ASCII, else quoted and
/// escaped as Rust writes a string, so that a space or a letter beyond ASCII (DECISIONS 9 allows
/// both) cannot make the line read as another field.
struct LoggedId<'a>(&'a str);

impl std::fmt::Display for LoggedId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// Puts each request in a span `request` with its method, path and valid X-Request-ID, so that
/// every log line of the request names it, and echoes that id on the answer (DECISIONS 9). An
/// invalid id is never echoed, so a client cannot make the PS send back whatever it sent (a 70 kB
/// header came back as one). An answer of the 5xx class is logged as an error, every answer at
/// debug level, and counted and timed in the metrics ([`Traffic`]): an MPP API request by its
/// method and `resultCode`, any other by its route and status. One layer and one boxed future per
/// request: it does the work of tower-http's trace layer and a middleware function, which cost
/// more (docs/benchmarks.md).
#[derive(Clone)]
struct RequestSpanLayer {
    traffic: Arc<Traffic>,
    /// Whether the listener serves the MPP API: where it does not, an `/api` path is answered
    /// as an unknown path of another surface, and counted as one.
    mpp_served: bool,
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> RequestSpan<S> {
        RequestSpan {
            inner,
            counts: self.clone(),
        }
    }
}

#[derive(Clone)]
struct RequestSpan<S> {
    inner: S,
    counts: RequestSpanLayer,
}

/// What a request is counted as: an MPP API method (its path), or a route of another surface
/// (its template; none for a path no route has).
enum Counted {
    Mpp(MppMethodOf),
    Route(Option<MatchedPath>),
}

impl<S> Service<Request> for RequestSpan<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = valid_request_id(&req);
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %LoggedId(id.unwrap_or("-")),
        );
        let echo = id.and_then(|id| HeaderValue::from_str(id).ok());
        let counted = match Surface::of(req.uri().path()) {
            // Each method is a POST; any other is answered as a method the API does not have.
            Surface::Mpp if self.counts.mpp_served => {
                Counted::Mpp(if req.method() == Method::POST {
                    Traffic::mpp_method(req.uri().path())
                } else {
                    Traffic::mpp_method("")
                })
            }
            _ => Counted::Route(req.extensions().get::<MatchedPath>().cloned()),
        };
        let traffic = self.counts.traffic.clone();
        let began = Instant::now();
        let answer = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let Ok(mut response) = answer.await;
                let status = response.status().as_u16();
                let took = began.elapsed();
                let latency_ms = took.as_millis();
                traffic.answered_with(status);
                match counted {
                    Counted::Mpp(method) => {
                        let code = response.extensions().get::<ResultCode>().copied();
                        traffic.mpp_answered(method, code, took);
                    }
                    Counted::Route(route) => {
                        let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
                        traffic.http_answered(route, status, took);
                    }
                }
                let expected = response.extensions().get::<crate::health::Expected>();
                if response.status() == StatusCode::SERVICE_UNAVAILABLE && expected.is_none() {
                    // "Busy, retry" (a full queue, a rate, the cabinet's places, a database
                    // away): callers can cause it at any rate, so said once a second.
                    if let Some(left_out) = UNAVAILABLE_LOG.due() {
                        tracing::warn!(
                            status,
                            latency_ms,
                            left_out,
                            "answered: unavailable, retry"
                        );
                    }
                } else if response.status().is_server_error() && expected.is_none() {
                    // One line, with the fault's cause where the surface gave it.
                    let error = response
                        .extensions()
                        .get::<crate::health::Fault>()
                        .map_or("-", |fault| fault.0.as_str());
                    tracing::error!(status, latency_ms, error, "answered with a server error");
                } else {
                    tracing::debug!(status, latency_ms, "answered");
                }
                if let Some(id) = echo {
                    response
                        .headers_mut()
                        .entry(HEADER_REQUEST_ID)
                        .or_insert(id);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The log of 503 answers, at most a line a second ([`RequestSpanLayer`]).
static UNAVAILABLE_LOG: crate::log_sparse::SharedSparse = crate::log_sparse::SharedSparse::new();

/// The answer to a panic: a body both APIs' clients understand as "retry".
fn internal_fault() -> Response {
    let body = serde_json::json!({
        "result": {"resultCode": "UNKNOWN_EXCEPTION", "resultMessage": "internal error"},
        "StatusCode": -999,
        "Message": "internal error",
    });
    let mut response = (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    response
        .extensions_mut()
        .insert(ResultCode::UnknownException);
    response
}

/// Which API a path belongs to, by its first segment, so that a refusal is said in that API's
/// own envelope (DECISIONS 7, 33): `/api` is the MPP API, `/r1`–`/r3` the merchant API,
/// `/admin` the admin API, with or without anything after them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    Mpp,
    Merchant,
    Admin,
    Other,
}

impl Surface {
    fn of(path: &str) -> Surface {
        match crate::config::first_segment(path) {
            "api" => Surface::Mpp,
            "r1" | "r2" | "r3" => Surface::Merchant,
            "admin" => Surface::Admin,
            _ => Surface::Other,
        }
    }
}

/// A path or method no route takes, answered in its surface's envelope. The MPP and merchant
/// APIs answer both as an unknown method, as they always have; the admin API checks the token
/// first and then tells 404 from 405. A path of a surface the listener does not serve is
/// answered as an unknown path of the listener's first surface, so that the MPP listener, say,
/// never shows that the admin API exists (not even by its 401).
async fn refuse_path(
    app: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    path_exists: bool,
    served: &[SurfaceName],
) -> Response {
    let surface = match SurfaceName::of_path(uri.path()) {
        Some(surface) if !served.contains(&surface) => match served.first() {
            Some(SurfaceName::Mpp) => Surface::Mpp,
            Some(SurfaceName::Merchant) => Surface::Merchant,
            Some(SurfaceName::Admin) => Surface::Admin,
            // The cabinet's listener shows nothing of the admin API, not even its 401.
            Some(SurfaceName::Cabinet) | None => Surface::Other,
        },
        _ => Surface::of(uri.path()),
    };
    let path_exists = path_exists && surface == Surface::of(uri.path());
    match surface {
        Surface::Mpp => mpp_api::unknown_method(headers),
        Surface::Merchant => merchant_api::unknown_method(headers),
        Surface::Admin => admin_api::unknown(app, headers, path_exists).await,
        Surface::Other => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "not found"})),
        )
            .into_response(),
    }
}

/// What each connection runs: the router with trailing slashes trimmed first (`/api/` is `/api`).
/// Tests that drive the PS in process use this too, so they see what a client sees.
pub fn service(app: AppState) -> NormalizePath<Router> {
    service_for(app, &SurfaceName::ALL, false)
}

/// [`service`] of a listener that serves `surfaces` only; over TLS (`tls`), every answer tells
/// browsers to come back over TLS only (HSTS), so that a cashier's or operator's first visit by
/// `http://` cannot be taken over on the way.
pub(crate) fn service_for(
    app: AppState,
    surfaces: &[SurfaceName],
    tls: bool,
) -> NormalizePath<Router> {
    let mut router = router_for(app, surfaces);
    if tls {
        router = router.layer(axum::middleware::map_response(strict_transport_security));
    }
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// A year: the browsers' own lists ask for at least this.
async fn strict_transport_security(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(axum::http::header::STRICT_TRANSPORT_SECURITY)
        .or_insert(HeaderValue::from_static("max-age=31536000"));
    response
}

/// A bound address of the PS, the surfaces it serves and its TLS files if it has them.
pub struct Listener {
    pub tcp: TcpListener,
    pub surfaces: Vec<SurfaceName>,
    pub tls: Option<Arc<TlsFiles>>,
}

/// Reads every file a start reads before it serves — each listener's TLS files, the CA of
/// outgoing calls — without binding a port or opening the database (`tolem serve --check`).
/// Returns the warnings a start would log; an error names the setting and the file.
pub fn check_files(config: &crate::Config) -> Result<Vec<String>, String> {
    let outgoing =
        crate::outgoing::OutgoingTls::load(&config.outgoing).map_err(|e| e.to_string())?;
    config.registers.check_temp_dir()?;
    let mut warnings = outgoing.warnings();
    warnings.extend(config.registers.warnings());
    if config.registers.email_enabled() {
        let zone = tolem_wire::time::zone(&config.time_zone).map_err(|e| e.to_string())?;
        let today = jiff::Timestamp::now().to_zoned_datetime(zone).date();
        let calendar = crate::registers::calendar::Calendar::new(
            &config.registers.extra_holidays,
            &config.registers.extra_working_days,
        );
        warnings.extend(calendar.warnings(today));
    }
    if config.listeners.is_empty() {
        warnings.extend(exposure(config.listen, &SurfaceName::ALL, false).map(str::to_owned));
    }
    for listener in &config.listeners {
        let said = exposure(listener.address, &listener.surfaces, listener.tls.is_some());
        warnings.extend(said.map(|warning| format!("{}: {warning}", listener.address)));
    }
    for (index, listener) in config.listeners.iter().enumerate() {
        let found =
            Listener::check(index, listener, &config.public_url).map_err(|e| e.to_string())?;
        warnings.extend(
            found
                .into_iter()
                .map(|warning| format!("listeners[{index}].tls: {warning}")),
        );
    }
    Ok(warnings)
}

/// Why a configured listener could not be opened; `index` is its place in `listeners`.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listeners[{index}].address: cannot listen on {address}: {source}")]
    Bind {
        index: usize,
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("listeners[{index}].tls: {source}")]
    Tls { index: usize, source: TlsError },
}

/// The kernel's queue of connections not yet accepted, per listening socket (as tokio's
/// `TcpListener::bind` asks for).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds a TCP listener on `address` (`SO_REUSEADDR`, as `TcpListener::bind`). With
/// `reuse_port`, also `SO_REUSEPORT`: every process that binds the port so shares it, and Linux
/// hands each new connection to one of them by a hash of its addresses; a process that stops
/// leaves the others serving (`Config::reuse_port`, Linux only). Runs inside a Tokio runtime.
pub fn bind_tcp(address: std::net::SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    if reuse_port {
        #[cfg(target_os = "linux")]
        socket.set_reuseport(true)?;
        #[cfg(not(target_os = "linux"))]
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "reuse_port: only Linux spreads a shared port's connections over its processes",
        ));
    }
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The host of an `https://` URL as a client checks it against a certificate: a name, or an IP
/// address without its brackets; `None` for another scheme or no host.
fn https_host(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

impl Listener {
    /// One plain listener for every surface: the sandbox, and `tolem serve` without `listeners`.
    pub fn plain(tcp: TcpListener) -> Listener {
        Listener {
            tcp,
            surfaces: SurfaceName::ALL.to_vec(),
            tls: None,
        }
    }

    /// Reads the TLS files of `listeners[index]` (an error names the file) and binds it, sharing
    /// the port with other processes if `reuse_port` ([`bind_tcp`]). A listener of the merchant
    /// surface, which receipt and payment links lead to, is expected to hold a certificate for
    /// the host of an `https://` `public_url`: a warning says when it does not.
    pub async fn open(
        index: usize,
        config: &ListenerConfig,
        reuse_port: bool,
        public_url: &str,
    ) -> Result<Listener, ListenerError> {
        let tls = Listener::tls_files(index, config, public_url)?.map(Arc::new);
        let tcp = bind_tcp(config.address, reuse_port).map_err(|source| ListenerError::Bind {
            index,
            address: config.address,
            source,
        })?;
        for warning in tls.as_ref().map(|t| t.warnings()).unwrap_or_default() {
            let certificate = config
                .tls
                .as_ref()
                .map(|f| f.certificate.display().to_string())
                .unwrap_or_default();
            tracing::warn!(listener = index, %certificate, "{warning}");
        }
        Ok(Listener {
            tcp,
            surfaces: config.surfaces.clone(),
            tls,
        })
    }

    /// What [`Listener::open`] reads, without binding: the TLS files of `listeners[index]` (an
    /// error names the file), and the warnings a start would log, returned (`tolem serve
    /// --check`).
    pub fn check(
        index: usize,
        config: &ListenerConfig,
        public_url: &str,
    ) -> Result<Vec<String>, ListenerError> {
        Ok(Listener::tls_files(index, config, public_url)?
            .map(|tls| tls.warnings())
            .unwrap_or_default())
    }

    /// The TLS files of `listeners[index]`, read, if it has them. A listener of the merchant
    /// surface, which receipt and payment links lead to, is expected to hold a certificate for
    /// the host of an `https://` `public_url` (its warnings say when it does not).
    fn tls_files(
        index: usize,
        config: &ListenerConfig,
        public_url: &str,
    ) -> Result<Option<TlsFiles>, ListenerError> {
        let Some(files) = &config.tls else {
            return Ok(None);
        };
        let mut tls =
            TlsFiles::load(files).map_err(|source| ListenerError::Tls { index, source })?;
        if config.surfaces.contains(&SurfaceName::Merchant)
            && let Some(host) = https_host(public_url)
        {
            tls = tls.expecting_host(host);
        }
        Ok(Some(tls))
    }

    /// `https://ADDR` or `http://ADDR`, where it really listens (port 0 resolved).
    pub fn url(&self) -> std::io::Result<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://{}", self.tcp.local_addr()?))
    }

    /// The surfaces as the configuration names them: `mpp, merchant`.
    pub fn surface_names(&self) -> String {
        self.surfaces
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Serves the PS on one already bound plain listener, every surface on it (the sandbox), until
/// `shutdown` completes; see [`serve_listeners`].
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_listeners(vec![Listener::plain(listener)], app, shutdown).await
}

/// Serves the PS on its listeners until `shutdown` completes, with the background tasks
/// (expiry, retention, refunds, registers) running beside them and shared by them; the
/// connection layer ([`connections`]) holds every connection to its deadlines and each listener
/// to its own cap. The TLS listeners' files are read again on SIGHUP and when they change.
/// Deliveries an earlier run of this node left in flight are due again first.
pub async fn serve_listeners(
    listeners: Vec<Listener>,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match app
        .store
        .take_back_leases(app.lease_holder.clone(), app.clock.now())
        .await
    {
        Ok(0) => {}
        Ok(taken) => tracing::info!(
            taken,
            node = %app.lease_holder.node,
            "deliveries an earlier run left in flight are due again"
        ),
        // Their leases run out as usual; nothing is lost, only later.
        Err(e) => tracing::warn!(error = %e, "cannot take back an earlier run's leases"),
    }
    let stop = CancellationToken::new();
    let sweeper = tokio::spawn(sweeper::run(app.clone(), stop.clone()));
    let dispatcher = tokio::spawn(refund_dispatch::run(app.clone(), stop.clone()));
    let registers = tokio::spawn(registers::run(app.clone(), stop.clone()));
    let catalog_watch = tokio::spawn(catalog_watch::run(app.clone(), stop.clone()));
    let mut limits = ConnectionLimits::of(&app.config.limits);
    limits.listeners = listeners.len();
    let tls_files: Vec<(String, Arc<TlsFiles>)> = listeners
        .iter()
        .filter_map(|l| Some((l.url().unwrap_or_default(), l.tls.clone()?)))
        .collect();
    // Run even without a TLS listener: it holds SIGHUP, so that `systemctl reload` never ends a
    // PS whose signal would otherwise keep its default effect (terminate).
    let _ = app.metrics.tls_listeners.set(tls_files.clone());
    let interval = app.config.limits.tls_files_check_interval();
    let reloader = tokio::spawn(tls::watch(tls_files, interval, stop.clone()));
    // One shutdown for every listener.
    let closing = CancellationToken::new();
    let close = closing.clone();
    let open = app.metrics.connections.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Said at once: the requests under way may take a while (a POS waiting for an MPP's
        // answer to its refund, up to `refunds.pos_wait_ms`), and the stop would look hung.
        let connections = open.open.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            connections,
            "stopping: no new connections; the requests under way end first, then the \
             background tasks"
        );
        close.cancel();
    });
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        warn_if_exposed(&listener);
        let service = service_for(app.clone(), &listener.surfaces, listener.tls.is_some());
        let stats = app.metrics.connections.clone();
        loops.spawn(connections::serve(
            listener.tcp,
            listener.tls,
            service,
            limits,
            stats,
            closing.clone().cancelled_owned(),
        ));
    }
    let mut result = Ok(());
    while let Some(done) = loops.join_next().await {
        let outcome = done.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if result.is_ok() {
            result = outcome;
        }
        // One listener's end is every listener's: the PS is one process to the operator.
        closing.cancel();
    }
    stop.cancel();
    let _ = sweeper.await;
    let _ = dispatcher.await;
    let _ = registers.await;
    let _ = catalog_watch.await;
    let _ = reloader.await;
    result
}

/// The admin API is meant for localhost (DECISIONS 41): served in plain HTTP on another address,
/// its bearer token crosses the network readable; so do the cabinet's tokens and registers.
fn warn_if_exposed(listener: &Listener) {
    let Ok(address) = listener.tcp.local_addr() else {
        return;
    };
    if let Some(warning) = exposure(address, &listener.surfaces, listener.tls.is_some()) {
        tracing::warn!(%address, "{warning}");
    }
}

/// [`warn_if_exposed`]'s warning of a listener on `address` (a start's, and `--check`'s).
fn exposure(
    address: std::net::SocketAddr,
    surfaces: &[SurfaceName],
    tls: bool,
) -> Option<&'static str> {
    if tls || address.ip().is_loopback() {
        None
    } else if surfaces.contains(&SurfaceName::Admin) {
        Some(
            "the admin API is served without TLS on an address that is not loopback: its token crosses the network in clear; give this listener tls or a loopback address",
        )
    } else if surfaces.contains(&SurfaceName::Cabinet) {
        Some(
            "the MPPs' cabinet is served without TLS on an address that is not loopback: their tokens and registers cross the network in clear; give this listener tls or a loopback address",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::clock::{SharedClock, SystemClock};
    use crate::{App, Config};

    /// Log lines written by the test's subscriber.
    #[test]
    fn check_says_what_a_start_warns_of_an_exposed_listener() {
        let config = crate::Config::from_toml(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nsurfaces = [\"mpp\", \"merchant\"]\n\
             [[listeners]]\naddress = \"0.0.0.0:0\"\nsurfaces = [\"admin\"]",
        )
        .expect("valid");
        let warnings = check_files(&config).expect("no file to read");
        assert!(
            warnings.iter().any(|w| w.starts_with(
                "0.0.0.0:0: the admin API is served without TLS on an address that is not loopback"
            )),
            "{warnings:?}"
        );
        let quiet = crate::Config::from_toml("listen = \"127.0.0.1:0\"").expect("valid");
        assert!(check_files(&quiet).expect("read").is_empty());
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    #[test]
    fn the_host_a_certificate_must_name_is_that_of_an_https_public_url() {
        assert_eq!(
            https_host("https://pay.example.kz/").as_deref(),
            Some("pay.example.kz")
        );
        assert_eq!(
            https_host("https://pay.example.kz:8443/ps").as_deref(),
            Some("pay.example.kz")
        );
        assert_eq!(https_host("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(https_host("https://10.0.0.5").as_deref(), Some("10.0.0.5"));
        // Behind a proxy that terminates TLS the listener's certificate is not what links meet.
        assert_eq!(https_host("http://pay.example.kz"), None);
    }

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
        }
    }

    async fn scan(service: &Router, request_id: &str) -> Response {
        let request = axum::http::Request::post("/api/v1/qr/scan")
            .header(
                "X-Request-ID",
                HeaderValue::from_bytes(request_id.as_bytes()).expect("a header value"),
            )
            .header("X-Caller-Name", "demobank")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"qrCode":"no such token","customerId":"1"}"#))
            .expect("a request");
        service.clone().oneshot(request).await.expect("an answer")
    }

    #[tokio::test]
    async fn each_request_logs_in_its_span_and_a_valid_id_is_echoed() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config =
            Config::from_toml(include_str!("../../../examples/sandbox.toml")).expect("valid");
        config.database = dir.path().join("ps.db");
        let clock: SharedClock = Arc::new(SystemClock);
        let app = App::start(config, clock).await.expect("the PS starts");
        let service = router(app);

        let answer = scan(&service, "scan-7f3a").await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            answer
                .headers()
                .get(HEADER_REQUEST_ID)
                .map(HeaderValue::as_bytes),
            Some(&b"scan-7f3a"[..])
        );
        let logged = lines.text();
        assert!(
            logged.contains(
                "request{method=POST path=/api/v1/qr/scan request_id=scan-7f3a}: \
                 tolem_ps::app: answered status=200"
            ),
            "{logged}"
        );

        // An id with a space or letters beyond ASCII is one (DECISIONS 9): echoed as sent, and
        // logged quoted, so that the line still reads field by field.
        let answer = scan(&service, "скан 7f3a").await;
        assert_eq!(
            answer
                .headers()
                .get(HEADER_REQUEST_ID)
                .map(HeaderValue::as_bytes),
            Some("скан 7f3a".as_bytes())
        );
        let logged = lines.text();
        assert!(
            logged.contains("request{method=POST path=/api/v1/qr/scan request_id=\"скан 7f3a\"}"),
            "{logged}"
        );

        // An id the MPP API refuses (a tab in it) is neither echoed nor logged as sent.
        let answer = scan(&service, "scan\t7f3a").await;
        assert_eq!(answer.headers().get(HEADER_REQUEST_ID), None);
        let logged = lines.text();
        assert!(
            logged.contains("request{method=POST path=/api/v1/qr/scan request_id=-}"),
            "{logged}"
        );
        assert!(!logged.contains("scan\t7f3a"), "{logged}");
    }
}
