//! Wiring: the [`App`] every handler shares, start-up, the router and [`serve`].

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::trace::TraceLayer;

use crate::catalog::{Catalog, CatalogHandle, MerchantCheck};
use crate::clock::SharedClock;
use crate::config::Config;
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
    /// Outgoing HTTP (Custom amount callbacks).
    pub http: reqwest::Client,
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
        let http = reqwest::Client::builder()
            // A service provider's answer is taken from the URL the operator configured, only.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_millis(
                config.payments.amount_callback_timeout_ms,
            ))
            .build()
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
        .merge(admin_api::router())
        .merge(qr_image::router())
        .merge(receipt::router())
        .merge(registers::router())
        .fallback(unknown_path)
        .method_not_allowed_fallback(unknown_path)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static("x-request-id")))
        .layer(CatchPanicLayer::custom(|_| internal_fault()))
        .with_state(app)
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

async fn unknown_path(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        mpp_api::unknown_method()
    } else if merchant_api::is_merchant_path(path) {
        merchant_api::unknown_method()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "not found"})),
        )
            .into_response()
    }
}

/// Serves the PS on an already bound listener until `shutdown` completes, with the background
/// tasks (expiry, retention, deliveries) running beside it. Deliveries an earlier run of this
/// node left in flight are due again first.
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
    let service = NormalizePathLayer::trim_trailing_slash().layer(router(app));
    let result = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(
            service,
        ),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    stop.cancel();
    let _ = sweeper.await;
    let _ = dispatcher.await;
    let _ = registers.await;
    result
}
