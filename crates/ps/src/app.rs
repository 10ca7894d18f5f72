//! Wiring: the [`App`] every handler shares, start-up, the router and [`serve`].

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tolem_wire::mpp::HEADER_REQUEST_ID;
use tolem_wire::request_id::{
    MERCHANT_REQUEST_ID_LEN_MAX, MPP_REQUEST_ID_LEN_MAX, check_request_id,
};
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::trace::TraceLayer;

use crate::catalog::{Catalog, CatalogHandle, MerchantCheck};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::connections::{self, ConnectionLimits};
use crate::domain::Policy;
use crate::store::{LeaseHolder, Store, StoreError, StoreLimits};
use crate::{
    admin_api, merchant_api, mpp_api, qr_image, receipt, refund_dispatch, registers, sweeper,
};

/// Everything a request handler may use.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub catalog: CatalogHandle,
    pub clock: SharedClock,
    pub zone: TimeZone,
    pub policy: Policy,
    /// Outgoing HTTP (Custom amount callbacks), over [`Self::outgoing`]'s TLS.
    pub http: reqwest::Client,
    /// The roots every outgoing TLS call trusts (refunds, callbacks, SMTP; DECISIONS 41).
    pub outgoing: crate::outgoing::OutgoingTls,
    /// Held by every change of operator data from its read to its snapshot reload, so that
    /// concurrent changes never overwrite each other or reload out of order.
    pub catalog_changes: tokio::sync::Mutex<()>,
    /// Wakes the refund dispatcher when a refund is placed.
    pub refund_wake: tokio::sync::Notify,
    /// POS requests waiting for the MPP's answer to their refund (DECISIONS 39).
    pub refund_outcomes: refund_dispatch::Outcomes,
    /// The name this run's delivery leases carry (`store/leases.rs`).
    pub lease_holder: LeaseHolder,
    /// Each MPP's request rate on the MPP API (`limits.mpp_requests_per_s`).
    pub mpp_requests: mpp_api::RequestRate,
    pub metrics: Metrics,
}

/// Counters the operator watches (`GET /admin/v1/metrics`).
#[derive(Default)]
pub struct Metrics {
    pub refund_attempts: std::sync::atomic::AtomicU64,
    pub refunds_completed: std::sync::atomic::AtomicU64,
    pub refunds_failed: std::sync::atomic::AtomicU64,
    pub refund_retries: std::sync::atomic::AtomicU64,
    pub refunds_flagged: std::sync::atomic::AtomicU64,
    /// Refund attempts that met no final answer, by kind (TLS, connect, timeout, ...).
    pub refund_attempt_failures: crate::outgoing::FailureCounts,
    /// Register e-mail attempts that failed, by kind.
    pub register_email_failures: crate::outgoing::FailureCounts,
    /// The listener's connections (DECISIONS 43).
    pub connections: Arc<crate::connections::ConnectionStats>,
}

pub type AppState = Arc<App>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
}

impl App {
    /// Opens the database (running migrations), seeds the operator data from the configuration
    /// and loads the catalog snapshot.
    pub async fn start(config: Config, clock: SharedClock) -> Result<AppState, StartError> {
        let zone =
            TimeZone::get(&config.time_zone).map_err(|e| StartError::Setup(e.to_string()))?;
        let limits = StoreLimits {
            write_queue_max: config.limits.write_queue_max,
            write_batch_max: config.limits.write_batch_max,
            read_connections: config.limits.read_connections,
            write_wait_ms: config.limits.request_timeout_ms,
        };
        let store = Store::open(&config.database, &limits)?;
        let added = store
            .seed_catalog(config.catalog.clone(), clock.now())
            .await?;
        tracing::info!(added, "operator data seeded from the configuration");
        // A bad operator CA file stops the start here, naming the file.
        let outgoing = crate::outgoing::OutgoingTls::load(&config.outgoing)
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let http = outgoing
            .http_client(
                reqwest::Client::builder()
                    // A service provider's answer is taken from the URL the operator configured, only.
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(std::time::Duration::from_millis(
                        config.payments.amount_callback_timeout_ms,
                    )),
            )
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let policy = Policy {
            confirm_window: SignedDuration::from_secs(i64::from(config.payments.confirm_window_s)),
            confirm_grace: SignedDuration::from_secs(i64::from(config.payments.confirm_grace_s)),
        };
        let lease_holder = LeaseHolder::new_run(&config.node_name);
        let mpp_requests = mpp_api::RequestRate::new(
            config.limits.mpp_requests_per_s,
            config.limits.mpp_requests_burst,
        );
        let app = App {
            config,
            store,
            catalog: CatalogHandle::default(),
            clock,
            zone,
            policy,
            http,
            outgoing,
            catalog_changes: tokio::sync::Mutex::new(()),
            refund_wake: tokio::sync::Notify::new(),
            refund_outcomes: refund_dispatch::Outcomes::default(),
            lease_holder,
            mpp_requests,
            metrics: Metrics::default(),
        };
        app.reload_catalog().await?;
        Ok(Arc::new(app))
    }

    /// Rebuilds the in-memory snapshot from the database (after an admin change).
    pub async fn reload_catalog(&self) -> Result<(), StoreError> {
        let file = self.store.load_catalog().await?;
        self.catalog.replace(Catalog::build(&file));
        Ok(())
    }

    pub fn merchant_check(&self) -> MerchantCheck {
        MerchantCheck(self.catalog.get())
    }
}

/// Every route of the PS.
pub fn router(app: AppState) -> Router {
    Router::new()
        .merge(mpp_api::router())
        .merge(merchant_api::router())
        .merge(admin_api::router(app.clone()))
        .merge(qr_image::router())
        .merge(receipt::router())
        .merge(registers::router())
        .fallback(unknown_path)
        .method_not_allowed_fallback(wrong_method)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = valid_request_id(req).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(middleware::from_fn(echo_request_id))
        .layer(CatchPanicLayer::custom(|_| internal_fault()))
        .with_state(app)
}

/// The request's X-Request-ID if it keeps the one rule (`tolem_wire::request_id`) with the limit
/// of the surface it was sent to: the MPP API's for `/api`, the PS's own elsewhere.
fn valid_request_id(req: &Request) -> Option<&str> {
    let len_max = match Surface::of(req.uri().path()) {
        Surface::Mpp => MPP_REQUEST_ID_LEN_MAX,
        _ => MERCHANT_REQUEST_ID_LEN_MAX,
    };
    let value = req.headers().get(HEADER_REQUEST_ID)?;
    check_request_id(value.as_bytes(), len_max).ok()
}

/// Echoes a valid X-Request-ID on the answer (DECISIONS 9); an invalid one is never echoed, so a
/// client cannot make the PS send back whatever it sent (a 70 kB header came back as one).
async fn echo_request_id(req: Request, next: Next) -> Response {
    let echo = valid_request_id(&req).and_then(|id| HeaderValue::from_str(id).ok());
    let mut response = next.run(req).await;
    if let Some(id) = echo {
        response
            .headers_mut()
            .entry(HEADER_REQUEST_ID)
            .or_insert(id);
    }
    response
}

/// The answer to a panic: a body both APIs' clients understand as "retry".
fn internal_fault() -> Response {
    let body = serde_json::json!({
        "result": {"resultCode": "UNKNOWN_EXCEPTION", "resultMessage": "internal error"},
        "StatusCode": -999,
        "Message": "internal error",
    });
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
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
        let first = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        match first {
            "api" => Surface::Mpp,
            "r1" | "r2" | "r3" => Surface::Merchant,
            "admin" => Surface::Admin,
            _ => Surface::Other,
        }
    }
}

async fn unknown_path(State(app): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    refuse_path(&app, &headers, &uri, false).await
}

async fn wrong_method(State(app): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    refuse_path(&app, &headers, &uri, true).await
}

/// A path or method no route takes, answered in its surface's envelope. The MPP and merchant
/// APIs answer both as an unknown method, as they always have; the admin API checks the token
/// first and then tells 404 from 405.
async fn refuse_path(
    app: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    path_exists: bool,
) -> Response {
    match Surface::of(uri.path()) {
        Surface::Mpp => mpp_api::unknown_method(),
        Surface::Merchant => merchant_api::unknown_method(),
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
    NormalizePathLayer::trim_trailing_slash().layer(router(app))
}

/// Serves the PS on an already bound listener until `shutdown` completes, with the background
/// tasks (expiry, retention, refunds, registers) running beside it; the connection layer
/// ([`connections`]) holds every connection to its deadlines and the listener to its cap.
/// Deliveries an earlier run of this node left in flight are due again first.
pub async fn serve(
    listener: TcpListener,
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
    let service = service(app.clone());
    let limits = ConnectionLimits::of(&app.config.limits);
    let stats = app.metrics.connections.clone();
    let result = connections::serve(listener, service, limits, stats, shutdown).await;
    stop.cancel();
    let _ = sweeper.await;
    let _ = dispatcher.await;
    let _ = registers.await;
    result
}
