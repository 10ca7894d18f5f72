//! The shared state: the [`App`] every handler, use case and background task holds, and how it
//! starts (database, operator data, outgoing TLS). It sits below every edge and use case, so that
//! none of them imports the router (`app`), and below the connection layer, whose counters
//! ([`ConnectionStats`]) it holds for the metrics.

mod outcomes;
mod rate;
mod traffic;

pub use outcomes::Outcomes;
pub use rate::RequestRate;
pub(crate) use traffic::MppMethodOf;
pub use traffic::Traffic;
pub(crate) use traffic::label_value;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use jiff::tz::TimeZone;

use crate::catalog::{Catalog, CatalogHandle, MerchantCheck};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::Policy;
use crate::store::{LeaseHolder, Store, StoreError, StoreLimits};

/// Everything a request handler may use.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub catalog: CatalogHandle,
    /// The catalog version `catalog` was built from; -1 before the first load.
    catalog_version: AtomicI64,
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
    pub refund_outcomes: Outcomes,
    /// The name this run's delivery leases carry (`store/leases.rs`).
    pub lease_holder: LeaseHolder,
    /// Each MPP's request rate on the MPP API (`limits.mpp_requests_per_s`).
    pub mpp_requests: RequestRate,
    /// Each organization's POSTs on the merchant API (`limits.pos_writes_per_s`; none in the
    /// sandbox).
    pub pos_writes: RequestRate,
    /// Amount callbacks in flight, per Custom service (`payments.amount_callbacks_max`).
    pub(crate) amount_callbacks: std::sync::Mutex<
        std::collections::HashMap<crate::domain::ServiceId, Arc<tokio::sync::Semaphore>>,
    >,
    pub metrics: Metrics,
    /// The last answer of `GET /health/ready`, given again for a second.
    pub(crate) readiness: crate::store::Readiness,
    /// The registers being made for downloads (the cabinet, the console, the admin API), all
    /// together within `registers.cabinet_concurrency_max`.
    pub(crate) register_makers: RegisterMakers,
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
    /// Custom amount callbacks that got no amount from the provider, by kind: no answer, an
    /// HTTP status other than 2xx, or an answer the PS cannot read (a refusal with `error` in a
    /// 200 is the provider's word on one checkout, not counted).
    pub amount_callback_failures: crate::outgoing::FailureCounts,
    /// The listeners' connections, all listeners together (DECISIONS 43).
    pub connections: Arc<ConnectionStats>,
    /// Console sign-ins refused (a wrong token): counted each, logged at most once a second
    /// with how many were left out, so that guessing cannot flood the log (DECISIONS 43).
    pub console_sign_ins_refused: AtomicU64,
    pub(crate) console_refusal_log: crate::log_sparse::SharedSparse,
    /// Merchant certificates refused (unreadable, unregistered, of several organizations on r2):
    /// logged at most once a second, so that a certificate the CA signed but nobody registered
    /// cannot flood the log.
    pub(crate) certificate_refusal_log: crate::log_sparse::SharedSparse,
    /// Custom amount callbacks that failed or were refused at their limit: an MPP's checkouts
    /// drive them, so they are logged at most once a second too, for each callback address.
    pub(crate) callback_failure_log: crate::log_sparse::SparseByKey,
    /// Every answer by API method or route, with its time (the router's request layer).
    pub traffic: Arc<Traffic>,
    /// The TLS listeners by URL, whose certificates' ends and reloads the metrics show (set once
    /// the listeners are open).
    pub tls_listeners: std::sync::OnceLock<Vec<(String, Arc<crate::connections::TlsFiles>)>>,
}

pub use crate::connections::ConnectionStats;

/// Limits the registers made at once for downloads, all MPPs together and each MPP to half of
/// them (at least one), so that one MPP's downloads never keep every other MPP's out; sized from
/// the configuration on first use (the router is built before it sees the application).
#[derive(Clone, Default)]
pub(crate) struct RegisterMakers(Arc<MakersInner>);

#[derive(Default)]
struct MakersInner {
    all: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
    each: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl RegisterMakers {
    /// A place for `mpp`'s register, held until its making stops; `None` when all are taken.
    pub(crate) fn place(
        &self,
        mpp: &str,
        max: usize,
    ) -> Option<Vec<tokio::sync::OwnedSemaphorePermit>> {
        let each = {
            let mut each = self
                .0
                .each
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // One entry per MPP of the catalog that downloaded: a few at most.
            each.entry(mpp.to_owned())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new((max / 2).max(1))))
                .clone()
        };
        let own = each.try_acquire_owned().ok()?;
        let all = self
            .0
            .all
            .get_or_init(|| Arc::new(tokio::sync::Semaphore::new(max)));
        let shared = all.clone().try_acquire_owned().ok()?;
        Some(vec![own, shared])
    }
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
        let zone = tolem_wire::time::zone(&config.time_zone)
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let store = Store::open(&config.database, &StoreLimits::of(&config.limits))?;
        let added = store
            .seed_catalog(config.catalog.clone(), clock.now())
            .await?;
        // Said only when something was added: a restart (or `tolem registers`, which seeds
        // nothing) would otherwise read as if the configuration had been applied again.
        if added > 0 {
            tracing::info!(added, "operator data added from the configuration");
        }
        let mode = config.registers.refund_commission;
        let fixed = store
            .transaction(move |tx| tx.fix_refund_commission_modes(mode))
            .await?;
        if fixed > 0 {
            tracing::info!(
                refunds = fixed,
                refund_commission = mode.as_str(),
                "refunds made before their commission mode was kept now keep the one in force"
            );
        }
        config
            .registers
            .check_temp_dir()
            .map_err(StartError::Setup)?;
        // A bad operator CA file stops the start here, naming the file.
        let outgoing = crate::outgoing::OutgoingTls::load(&config.outgoing)
            .map_err(|e| StartError::Setup(e.to_string()))?;
        for warning in outgoing
            .warnings()
            .into_iter()
            .chain(config.registers.warnings())
        {
            tracing::warn!("{warning}");
        }
        let http = outgoing
            .http_client(
                reqwest::Client::builder()
                    // A service provider's answer is taken from the URL the operator configured, only.
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(config.payments.amount_callback_timeout(None)),
            )
            .map_err(|e| StartError::Setup(e.to_string()))?;
        let policy = Policy {
            confirm_window: config.payments.confirm_window(),
            confirm_grace: config.payments.confirm_grace(),
        };
        let lease_holder = LeaseHolder::new_run(&config.node_name);
        let pos_writes = if config.sandbox {
            RequestRate::new(0, 0)
        } else {
            RequestRate::new(
                config.limits.pos_writes_per_s,
                config.limits.pos_writes_burst,
            )
        };
        let mpp_requests = RequestRate::new(
            config.limits.mpp_requests_per_s,
            config.limits.mpp_requests_burst,
        );
        let app = App {
            config,
            store,
            catalog: CatalogHandle::default(),
            catalog_version: AtomicI64::new(-1),
            clock,
            zone,
            policy,
            http,
            outgoing,
            catalog_changes: tokio::sync::Mutex::new(()),
            refund_wake: tokio::sync::Notify::new(),
            refund_outcomes: Outcomes::default(),
            lease_holder,
            mpp_requests,
            pos_writes,
            amount_callbacks: std::sync::Mutex::default(),
            metrics: Metrics::default(),
            readiness: crate::store::Readiness::default(),
            register_makers: RegisterMakers::default(),
        };
        app.reload_catalog().await?;
        // Stored before a type was required: their scans answer no authorType (SPEC 4.1).
        let mut untyped: Vec<_> = app
            .catalog
            .get()
            .trade_points
            .values()
            .filter(|t| t.terminal_type.is_empty())
            .map(|t| t.id.to_string())
            .collect();
        if !untyped.is_empty() {
            untyped.sort();
            tracing::warn!(
                trade_points = %untyped.join(", "),
                "trade points without terminal_type: their scans answer no authorType; give each \
                 one (PUT /admin/v1/trade-points/{{id}})"
            );
        }
        // Stored before the rule, or seeded from the file beside the admin API's: the key lets
        // in only one of the two.
        let (_, stored) = app.store.load_catalog().await?;
        // The sandbox points its demo MPPs' refunds where they listen, and says so itself.
        let set_aside = (!app.config.sandbox)
            .then(|| app.config.catalog.set_aside_warning(&stored))
            .flatten();
        if let Some(warning) = set_aside {
            tracing::warn!("{warning}");
        }
        let shared = stored.shared_keys();
        if !shared.is_empty() {
            tracing::warn!(
                organizations = %shared.join("; "),
                "organizations that share an API key: it lets in only one of them; give each its \
                 own (POST /admin/v1/organizations/{{bin}}/api-keys, then revoke the shared one)"
            );
        }
        Ok(Arc::new(app))
    }

    /// Rebuilds the in-memory snapshot from the database (after an admin change, here or on
    /// another node) and remembers the version it was built from.
    pub(crate) async fn reload_catalog(&self) -> Result<(), StoreError> {
        let (version, file) = self.store.load_catalog().await?;
        self.catalog.replace(Catalog::build(&file));
        self.catalog_version.store(version, Ordering::Relaxed);
        Ok(())
    }

    /// The catalog version the snapshot was built from (`catalog_watch`).
    pub(crate) fn catalog_version(&self) -> i64 {
        self.catalog_version.load(Ordering::Relaxed)
    }

    pub(crate) fn merchant_check(&self) -> MerchantCheck {
        MerchantCheck(self.catalog.get())
    }
}
