//! The operator's admin API (`/admin/v1/...`, `Authorization: Bearer <admin_token>`): read and
//! change operator data (MPPs, organizations, trade points, Custom services), suspend or block a
//! merchant, issue API keys, look at a purchase. Off when no `admin_token` is configured.
//! Documented in `docs/admin-api.md`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::catalog::{
    CatalogFile, Mpp, Organization, OrganizationStatus, Service, TradePoint, api_key_hash,
};
use crate::domain::refund::RefundOrder;
use crate::domain::{RefundKind, RefundStatus};
use crate::store::CatalogDoc;
use tolem_wire::Amount;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/catalog", get(catalog))
        .route("/admin/v1/mpps/{caller_name}", put(put_mpp))
        .route("/admin/v1/organizations/{bin}", put(put_organization))
        .route("/admin/v1/organizations/{bin}/status", post(set_status))
        .route("/admin/v1/organizations/{bin}/api-keys", post(new_api_key))
        .route("/admin/v1/trade-points/{id}", put(put_trade_point))
        .route("/admin/v1/services/{id}", put(put_service))
        .route("/admin/v1/payments/{id}", get(payment))
        .route("/admin/v1/payments/{id}/cancel", post(cancel_payment))
        .route("/admin/v1/refunds", get(refunds))
        .route("/admin/v1/refunds/{id}/retry", post(retry_refund))
        .route("/admin/v1/metrics", get(metrics))
        .route("/admin/v1/registers", get(register_deliveries))
}

/// An admin API failure: HTTP status and a sentence.
pub struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type AdminResult = Result<Response, AdminError>;

fn bad(why: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, why.into())
}

fn internal(e: impl std::fmt::Display) -> AdminError {
    tracing::error!(error = %e, "admin API fault");
    AdminError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error".to_owned(),
    )
}

/// Checks the bearer token; the admin API does not exist without one configured.
fn authorize(app: &AppState, headers: &HeaderMap) -> Result<(), AdminError> {
    let configured = &app.config.admin_token;
    if configured.is_empty() {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            "the admin API is off".to_owned(),
        ));
    }
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Comparing digests keeps the comparison's time independent of where the texts differ.
    if Sha256::digest(sent.as_bytes()) != Sha256::digest(configured.as_bytes()) {
        return Err(AdminError(
            StatusCode::UNAUTHORIZED,
            "bad or missing bearer token".to_owned(),
        ));
    }
    Ok(())
}

async fn catalog(State(app): State<AppState>, headers: HeaderMap) -> AdminResult {
    authorize(&app, &headers)?;
    let file = app.store.load_catalog().await.map_err(internal)?;
    Ok(Json(file).into_response())
}

/// Stores one item if the catalog stays valid with it, then refreshes the snapshot.
async fn save<T: CatalogDoc + Clone + Serialize>(
    app: &AppState,
    doc: T,
    apply: impl FnOnce(&mut CatalogFile, T) + Send + 'static,
) -> AdminResult {
    let saved = app
        .store
        .put_catalog_item(doc.clone(), app.clock.now(), apply)
        .await
        .map_err(internal)?;
    saved.map_err(bad)?;
    app.reload_catalog().await.map_err(internal)?;
    tracing::info!(kind = T::KIND, key = %doc.key(), "operator data changed");
    Ok(Json(doc).into_response())
}

fn upsert<T: CatalogDoc>(items: &mut Vec<T>, doc: T) {
    let key = doc.key();
    items.retain(|i| i.key() != key);
    items.push(doc);
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))
}

/// The PUT of one catalog item whose key is in the path: authorized, one change at a time,
/// checked against the whole catalog, then live.
async fn put_item<T>(
    app: &AppState,
    headers: &HeaderMap,
    key: &str,
    raw: &[u8],
    upsert_into: fn(&mut CatalogFile, T),
) -> AdminResult
where
    T: CatalogDoc + Clone + Serialize + for<'de> Deserialize<'de> + PrepareDoc,
{
    authorize(app, headers)?;
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let mut doc: T = body(raw)?;
    if doc.key() != key {
        return Err(bad("the key in the body differs from the path"));
    }
    doc.prepare();
    save(app, doc, upsert_into).await
}

/// What an item needs before it is stored.
trait PrepareDoc {
    fn prepare(&mut self) {}
}

impl PrepareDoc for Mpp {}
impl PrepareDoc for TradePoint {}
impl PrepareDoc for Service {}

impl PrepareDoc for Organization {
    /// Only hashes of API keys are stored.
    fn prepare(&mut self) {
        self.hash_keys();
    }
}

type Put = (State<AppState>, Path<String>, HeaderMap, axum::body::Bytes);

async fn put_mpp((State(app), Path(key), headers, raw): Put) -> AdminResult {
    put_item::<Mpp>(&app, &headers, &key, &raw, |f, d| upsert(&mut f.mpps, d)).await
}

async fn put_organization((State(app), Path(key), headers, raw): Put) -> AdminResult {
    put_item::<Organization>(&app, &headers, &key, &raw, |f, d| {
        upsert(&mut f.organizations, d)
    })
    .await
}

async fn put_trade_point((State(app), Path(key), headers, raw): Put) -> AdminResult {
    put_item::<TradePoint>(&app, &headers, &key, &raw, |f, d| {
        upsert(&mut f.trade_points, d)
    })
    .await
}

async fn put_service((State(app), Path(key), headers, raw): Put) -> AdminResult {
    put_item::<Service>(&app, &headers, &key, &raw, |f, d| {
        upsert(&mut f.services, d)
    })
    .await
}

#[derive(Deserialize)]
struct StatusChange {
    status: OrganizationStatus,
}

async fn set_status(
    State(app): State<AppState>,
    Path(bin): Path<String>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> AdminResult {
    authorize(&app, &headers)?;
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let change: StatusChange = body(&raw)?;
    let mut org = current_organization(&app, &bin)?;
    org.status = change.status;
    save(&app, org, |f, d| upsert(&mut f.organizations, d)).await
}

fn current_organization(app: &AppState, bin: &str) -> Result<Organization, AdminError> {
    let catalog = app.catalog.get();
    let org = catalog.organizations.get(bin).ok_or(AdminError(
        StatusCode::NOT_FOUND,
        "no such organization".into(),
    ))?;
    Ok(Organization::clone(org))
}

#[derive(Deserialize)]
struct KeyRequest {
    /// `test` or `prod`: the key's prefix (DECISIONS 28).
    kind: String,
}

/// Issues a new API key; its clear text is shown once, only its hash is kept.
async fn new_api_key(
    State(app): State<AppState>,
    Path(bin): Path<String>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> AdminResult {
    authorize(&app, &headers)?;
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let req: KeyRequest = body(&raw)?;
    if req.kind != "test" && req.kind != "prod" {
        return Err(bad("kind must be test or prod"));
    }
    let mut org = current_organization(&app, &bin)?;
    let secret: [u8; 16] = rand::random();
    let key = format!("{}_{}", req.kind, hex::encode_upper(secret));
    org.api_key_hashes.push(api_key_hash(&key));
    save(&app, org, |f, d| upsert(&mut f.organizations, d)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "api_key": key }))).into_response())
}

async fn payment(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> AdminResult {
    authorize(&app, &headers)?;
    let p = app.store.payment(id).await.map_err(internal)?;
    let p = p.ok_or(AdminError(StatusCode::NOT_FOUND, "no such payment".into()))?;
    let now = app.clock.now();
    let view = json!({
        "id": p.id,
        "kind": p.kind.as_str(),
        "status": p.effective_status(now, &app.policy).as_str(),
        "trade_point_id": p.trade_point_id,
        "service_id": p.service_id,
        "amount": p.amount.map(|a| a.to_string()),
        "mpp": p.owner.as_ref().map(|o| o.mpp.clone()),
        "created_at": p.created_at.to_string(),
        "confirm_until": p.confirm_until.map(|t| t.to_string()),
        "finished_at": p.finished_at.map(|t| t.to_string()),
        "mpp_payment_id": p.mpp_payment_id,
        "verdict": p.verdict,
    });
    Ok(Json(view).into_response())
}

/// The device id under which the admin API's replayable answers are kept (devices start at 1).
const ADMIN_REPLAY_DEVICE: i64 = 0;

#[derive(Deserialize, Default)]
struct CancelRequest {
    /// Part of the payment to give back; all that is left when absent.
    #[serde(default)]
    amount: Option<Amount>,
}

/// Cancels a Custom payment at the service provider's request (SPEC §3, DECISIONS 23): a refund
/// of it is placed and delivered to the MPP like any other.
async fn cancel_payment(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> AdminResult {
    authorize(&app, &headers)?;
    let req: CancelRequest = if raw.is_empty() {
        CancelRequest::default()
    } else {
        body::<Option<CancelRequest>>(&raw)?.unwrap_or_default()
    };
    // A repeat with the same X-Request-ID and body gets the first answer and places nothing.
    let replay = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(|request_id| crate::store::PosReplay {
            device_id: ADMIN_REPLAY_DEVICE,
            request_id: format!("cancel-{id}-{request_id}"),
            body_sha256: hex::encode(Sha256::digest(&raw)),
        });
    if let Some(first) = match replay.clone() {
        Some(r) => app.store.pos_replay(r).await.map_err(internal)?,
        None => None,
    } {
        return Ok((
            StatusCode::CREATED,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            first,
        )
            .into_response());
    }
    let payment = app.store.payment(id).await.map_err(internal)?;
    let payment = payment.ok_or(AdminError(StatusCode::NOT_FOUND, "no such payment".into()))?;
    let total = payment.amount.unwrap_or_default();
    let amount = match req.amount {
        Some(amount) => amount,
        None => app.store.refundable(id, total).await.map_err(internal)?,
    };
    if amount.is_zero() {
        return Err(bad("nothing left to refund"));
    }
    let order = RefundOrder {
        kind: RefundKind::Cancel,
        payment_id: id,
        trade_point_id: None,
        device_id: None,
        return_qr: None,
        amount,
        use_window: jiff::SignedDuration::ZERO,
    };
    let placed = app
        .store
        .place_refund(
            order,
            replay,
            crate::payments::secret_token(),
            app.clock.now(),
            |r| json!({"refund_id": r.id.to_string(), "amount": r.amount}).to_string(),
        )
        .await
        .map_err(internal)?;
    app.refund_wake.notify_one();
    match placed {
        Ok(body) => Ok((
            StatusCode::CREATED,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()),
        Err(refusal) => Err(bad(format!("refused: {refusal:?}"))),
    }
}

#[derive(Deserialize)]
struct RefundFilter {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Most refunds one listing shows.
const REFUNDS_PAGE_MAX: usize = 500;

async fn refunds(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<RefundFilter>,
) -> AdminResult {
    authorize(&app, &headers)?;
    let status = match filter.status.as_deref() {
        Some(text) => {
            Some(RefundStatus::parse(text).ok_or_else(|| bad(format!("unknown status {text}")))?)
        }
        None => None,
    };
    let limit = filter.limit.unwrap_or(100).min(REFUNDS_PAGE_MAX);
    let views = app
        .store
        .refund_views(status, limit)
        .await
        .map_err(internal)?;
    let list: Vec<_> = views
        .into_iter()
        .map(|v| {
            let r = v.refund;
            json!({
                "refund_id": r.id,
                "kind": r.kind.as_str(),
                "status": r.effective_status(app.clock.now()).as_str(),
                "payment_id": r.payment_id,
                "amount": r.amount,
                "mpp": r.owner.as_ref().map(|o| o.mpp.clone()),
                "requested_at": r.requested_at.map(|t| t.to_string()),
                "finished_at": r.finished_at.map(|t| t.to_string()),
                "mpp_result": r.mpp_result,
                "attempts": v.attempts,
                "next_attempt_at": v.next_attempt_at.map(|t| t.to_string()),
                "last_error": v.last_error,
                "flagged": v.flagged,
            })
        })
        .collect();
    Ok(Json(list).into_response())
}

async fn retry_refund(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> AdminResult {
    authorize(&app, &headers)?;
    if !app
        .store
        .retry_refund_now(id, app.clock.now())
        .await
        .map_err(internal)?
    {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            "no undelivered refund with that id".into(),
        ));
    }
    app.refund_wake.notify_one();
    Ok(Json(json!({"refund_id": id, "due": "now"})).into_response())
}

/// Counters in the Prometheus text format.
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> AdminResult {
    use std::sync::atomic::Ordering::Relaxed;
    authorize(&app, &headers)?;
    let m = &app.metrics;
    let (undelivered, flagged) = app.store.undelivered_counts().await.map_err(internal)?;
    let text = format!(
        "# TYPE tolem_refund_attempts_total counter\ntolem_refund_attempts_total {}\n\
         # TYPE tolem_refunds_completed_total counter\ntolem_refunds_completed_total {}\n\
         # TYPE tolem_refunds_failed_total counter\ntolem_refunds_failed_total {}\n\
         # TYPE tolem_refund_retries_total counter\ntolem_refund_retries_total {}\n\
         # TYPE tolem_refunds_flagged_total counter\ntolem_refunds_flagged_total {}\n\
         # TYPE tolem_refunds_undelivered gauge\ntolem_refunds_undelivered {undelivered}\n\
         # TYPE tolem_refunds_undelivered_flagged gauge\ntolem_refunds_undelivered_flagged {flagged}\n",
        m.refund_attempts.load(Relaxed),
        m.refunds_completed.load(Relaxed),
        m.refunds_failed.load(Relaxed),
        m.refund_retries.load(Relaxed),
        m.refunds_flagged.load(Relaxed),
    );
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}

/// Register e-mails, newest first: what is queued, sent (when, to whom) or failing.
async fn register_deliveries(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(filter): Query<RefundFilter>,
) -> AdminResult {
    authorize(&app, &headers)?;
    let limit = filter.limit.unwrap_or(100).min(REFUNDS_PAGE_MAX);
    let views = app
        .store
        .register_deliveries(limit)
        .await
        .map_err(internal)?;
    let list: Vec<_> = views
        .into_iter()
        .map(|v| {
            json!({
                "mpp": v.due.mpp,
                "kind": v.due.kind,
                "period": v.due.period,
                "sent_at": v.sent_at.map(|t| t.to_string()),
                "sent_to": v.sent_to,
                "attempts": v.attempts,
                "last_error": v.last_error,
                "flagged": v.flagged,
            })
        })
        .collect();
    Ok(Json(list).into_response())
}
