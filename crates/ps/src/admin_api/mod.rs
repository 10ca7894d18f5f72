//! The operator's admin API (`/admin/v1/...`, `Authorization: Bearer <admin_token>`): read and
//! change operator data (MPPs, organizations, trade points, Custom services), suspend or block a
//! merchant, issue API keys, register and revoke client certificates, look at a purchase. Off when no `admin_token` is configured.
//! Documented in `docs/admin-api.md`. Every route runs behind [`edge::guard`]: the token is checked
//! before anything else, so the handlers here start from an authorized request.

mod certificates;
mod edge;
mod operations;
mod registers;

pub(crate) use certificates::{Registered, register_certificate, revoke_certificate};
pub(crate) use edge::unknown;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::catalog::{
    CatalogFile, Mpp, Organization, OrganizationStatus, Service, TradePoint, api_key_hash,
};
use crate::domain::PaymentId;
use crate::state::AppState;
use crate::store::{CatalogDoc, Replay};
use edge::{AdminBody, AdminPath};

/// The admin routes, each behind [`edge::guard`] (token first, then a small body).
pub(crate) fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/v1/catalog", get(catalog))
        .route("/admin/v1/mpps/{caller_name}", put(put_mpp).get(get_mpp))
        .route(
            "/admin/v1/mpps/{caller_name}/cabinet-tokens",
            post(new_cabinet_token),
        )
        .route(
            "/admin/v1/mpps/{caller_name}/cabinet-tokens/{hash}",
            delete(delete_cabinet_token),
        )
        .route(
            "/admin/v1/organizations/{bin}",
            put(put_organization).get(get_organization),
        )
        .route("/admin/v1/organizations/{bin}/status", post(set_status))
        .route("/admin/v1/organizations/{bin}/api-keys", post(new_api_key))
        .route(
            "/admin/v1/organizations/{bin}/api-keys/{hash}",
            delete(revoke_api_key),
        )
        .route(
            "/admin/v1/organizations/{bin}/certificates",
            get(certificates::list).post(certificates::register),
        )
        .route(
            "/admin/v1/organizations/{bin}/certificates/{fingerprint}",
            delete(certificates::revoke),
        )
        .route(
            "/admin/v1/trade-points/{id}",
            put(put_trade_point).get(get_trade_point),
        )
        .route("/admin/v1/services/{id}", put(put_service).get(get_service))
        .route("/admin/v1/payments/{id}", get(payment))
        .route(
            "/admin/v1/payments/{id}/cancel",
            post(operations::cancel_payment),
        )
        .route("/admin/v1/refunds", get(operations::refunds))
        .route(
            "/admin/v1/refunds/{id}/retry",
            post(operations::retry_refund),
        )
        .route("/admin/v1/metrics", get(operations::metrics))
        .route("/admin/v1/registers", get(operations::register_deliveries))
        .route(
            "/admin/v1/registers/{mpp}/{kind}/{file}",
            get(registers::file),
        )
        .route(
            "/admin/v1/registers/{mpp}/{kind}/{period}/send",
            post(registers::send),
        )
        .route_layer(middleware::from_fn_with_state(app, edge::guard))
}

/// An admin API failure: HTTP status and a sentence. A 500's sentence is its cause, for the
/// log's one line (`health::Fault`); the caller reads `internal error`.
pub(crate) struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if self.0 == StatusCode::INTERNAL_SERVER_ERROR {
            let answer = (self.0, Json(json!({ "error": "internal error" }))).into_response();
            return crate::health::Fault::on(answer, &self.1);
        }
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type AdminResult = Result<Response, AdminError>;

fn bad(why: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, why.into())
}

/// A store failure: a store busy or out of reach is 503 (retry), as on the other APIs; anything
/// else 500.
fn internal(e: crate::store::StoreError) -> AdminError {
    if e.is_unavailable() {
        crate::log_sparse::store_unavailable(&e);
        return AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the PS is busy; retry".to_owned(),
        );
    }
    AdminError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
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
    let sent = crate::connections::bearer_token(headers).unwrap_or_default();
    if !is_admin_token(app, sent) {
        return Err(AdminError(
            StatusCode::UNAUTHORIZED,
            "bad or missing bearer token".to_owned(),
        ));
    }
    Ok(())
}

/// Whether `sent` is the configured admin token (never when none is configured); the console's
/// sign-in asks this too.
pub(crate) fn is_admin_token(app: &AppState, sent: &str) -> bool {
    let configured = &app.config.admin_token;
    // Comparing digests keeps the comparison's time independent of where the texts differ.
    !configured.is_empty()
        && Sha256::digest(sent.as_bytes()) == Sha256::digest(configured.as_bytes())
}

impl AdminError {
    /// The HTTP status and the sentence, for the console, which shows them in a page.
    /// The status and the sentence a person may read: a 500's is `internal error`, its cause
    /// being for the log ([`AdminError::logged`]).
    pub(crate) fn parts(&self) -> (StatusCode, &str) {
        if self.0 == StatusCode::INTERNAL_SERVER_ERROR {
            return (self.0, "internal error");
        }
        (self.0, &self.1)
    }

    /// `response`, a page made of this refusal, carrying a 500's cause to the request's one log
    /// line (`health::Fault`).
    pub(crate) fn logged(&self, response: Response) -> Response {
        if self.0 == StatusCode::INTERNAL_SERVER_ERROR {
            return crate::health::Fault::on(response, &self.1);
        }
        response
    }
}

async fn catalog(State(app): State<AppState>) -> AdminResult {
    let (_, file) = app.store.load_catalog().await.map_err(internal)?;
    Ok(Json(file).into_response())
}

/// Stores one item, whole, if the catalog stays valid with it, then refreshes the snapshot.
/// Checked against the whole catalog with the change, in the transaction that stores it, and
/// against `precondition` (the PUT's `If-Match`) on the item as stored: a PUT built on an item
/// someone changed since it was read is refused (412) instead of putting back what they changed.
async fn save<T: InCatalog + Clone + Serialize>(
    app: &AppState,
    doc: T,
    precondition: Option<Precondition>,
    named: BodyKeys,
) -> AdminResult {
    let (item, now, key) = (doc.clone(), app.clock.now(), doc.key());
    let saved = app
        .store
        .transaction(move |tx| {
            let mut file = tx.catalog_file()?;
            // What the stored item has that a PUT may not drop without naming it, checked on the
            // item as stored (another node may have changed it a moment ago).
            if let Some(stored) = T::items(&file).iter().find(|i| i.key() == item.key())
                && let Err(why) = T::keeps(stored, &item, &named)
            {
                return Ok(Err(bad(why)));
            }
            if let Err(why) = T::fits(&item, &file) {
                return Ok(Err(bad(why)));
            }
            if let Some(precondition) = &precondition {
                let stored = T::items(&file).iter().find(|i| i.key() == item.key());
                // A repeat of a PUT that was stored (its first answer lost, a 503 whose write
                // still committed) finds its own item: that is no change by someone else.
                let already = stored.is_some_and(|s| entity_tag(s) == entity_tag(&item));
                if !already && !precondition.holds(stored) {
                    // An item that is not there was not changed by anyone: say what is missing.
                    let why = match stored {
                        Some(_) => "the item changed since it was read (If-Match): read it again",
                        None => {
                            "there is no such item to replace (If-Match asks that it exist): \
                             a PUT without If-Match creates it"
                        }
                    };
                    return Ok(Err(AdminError(StatusCode::PRECONDITION_FAILED, why.into())));
                }
            }
            T::upsert(&mut file, item.clone());
            if let Err(why) = file.validate() {
                return Ok(Err(bad(why)));
            }
            tx.put_catalog_item(&item, now)?;
            Ok(Ok(()))
        })
        .await
        .map_err(internal)?;
    saved?;
    app.reload_catalog().await.map_err(internal)?;
    tracing::info!(kind = T::KIND, key = %key, "operator data changed");
    Ok(tagged(&doc))
}

/// An item of the catalog file, which the admin API reads and replaces by its key.
pub(crate) trait InCatalog: CatalogDoc + Clone + Serialize {
    fn items(file: &CatalogFile) -> &[Self];
    fn upsert(file: &mut CatalogFile, item: Self);

    /// What a PUT of `new`, whose body names the keys `named`, may not change in `stored`, or
    /// drop from it without naming it.
    fn keeps(_stored: &Self, _new: &Self, _named: &BodyKeys) -> Result<(), String> {
        Ok(())
    }

    /// Whether `new` fits among the others of `file` (the catalog as stored), beyond what the
    /// catalog's validation asks of every item: a rule that came later, so that one stored before
    /// it blocks no other change.
    fn fits(_new: &Self, _file: &CatalogFile) -> Result<(), String> {
        Ok(())
    }
}

/// The top-level keys a PUT's body names (`null` included).
pub(crate) type BodyKeys = std::collections::BTreeSet<String>;

/// The top-level keys of a JSON object body; none for a body that is not one (which the PUT
/// then refuses on its own).
fn body_keys(raw: &[u8]) -> BodyKeys {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(raw)
        .map(|body| body.into_iter().map(|(key, _)| key).collect())
        .unwrap_or_default()
}

impl InCatalog for Mpp {
    fn items(file: &CatalogFile) -> &[Mpp] {
        &file.mpps
    }
    fn upsert(file: &mut CatalogFile, item: Mpp) {
        upsert(&mut file.mpps, item);
    }

    /// A PUT replaces the whole item, so one that leaves `ipsec` out of an MPP bound to its
    /// tunnel would unbind it (its name then taken from any address) without a word: a body that
    /// changes a commission, say. Taking the binding away is said with `"ipsec": null`.
    fn keeps(stored: &Mpp, _new: &Mpp, named: &BodyKeys) -> Result<(), String> {
        if stored.ipsec.is_some() && !named.contains("ipsec") {
            return Err(format!(
                "ipsec: the MPP {} is bound to its tunnel's inner addresses, and a PUT \
                 replaces the whole item; send its `ipsec` again (GET it first) to keep the \
                 binding, or `\"ipsec\": null` to take it away",
                stored.caller_name
            ));
        }
        // So too the cabinet tokens issued it: a body that changes a commission would sign the
        // MPP's engineers out of their cabinet.
        if !stored.cabinet_token_hashes.is_empty() && !named.contains("cabinet_token_hashes") {
            return Err(format!(
                "cabinet_token_hashes: the MPP {} has cabinet tokens, and a PUT replaces the \
                 whole item; send its `cabinet_token_hashes` again (GET it first) to keep them, \
                 or revoke each (DELETE …/cabinet-tokens/{{hash}})",
                stored.caller_name
            ));
        }
        Ok(())
    }
}

impl InCatalog for Organization {
    fn items(file: &CatalogFile) -> &[Organization] {
        &file.organizations
    }
    fn upsert(file: &mut CatalogFile, item: Organization) {
        upsert(&mut file.organizations, item);
    }

    /// A key says which organization calls: one given to two would lock the other out.
    fn fits(new: &Organization, file: &CatalogFile) -> Result<(), String> {
        file.check_keys_of(new)
    }
}

impl InCatalog for TradePoint {
    fn items(file: &CatalogFile) -> &[TradePoint] {
        &file.trade_points
    }
    fn upsert(file: &mut CatalogFile, item: TradePoint) {
        upsert(&mut file.trade_points, item);
    }

    /// A trade point stays with the organization it was made for (DECISIONS 28): its purchases,
    /// return QRs and devices are that organization's, and a merchant finds them by the trade
    /// point. Moved, they would go with it: the new holder could read and refund the old one's
    /// purchases, and the old one could no longer refund its own customers.
    fn keeps(stored: &TradePoint, new: &TradePoint, _named: &BodyKeys) -> Result<(), String> {
        if stored.organization_bin != new.organization_bin {
            return Err(format!(
                "organization_bin: the trade point {} belongs to the organization {}, whose \
                 purchases and refunds were made there; it cannot move to another. Give the \
                 other organization a trade point of its own (a new id)",
                stored.id, stored.organization_bin
            ));
        }
        Ok(())
    }
}

impl InCatalog for Service {
    fn items(file: &CatalogFile) -> &[Service] {
        &file.services
    }
    fn upsert(file: &mut CatalogFile, item: Service) {
        upsert(&mut file.services, item);
    }
}

/// The entity tag of an item as stored: the SHA-256 of its JSON with the members of every
/// object in order of their names, its first 16 bytes in hex, quoted. The same on every node and
/// after every restart; any change of the item changes it.
pub(crate) fn entity_tag<T: Serialize>(item: &T) -> String {
    // A `Value`'s objects keep their members sorted by name (serde_json without
    // `preserve_order`), so the text does not depend on the order of a map in the item.
    let text = serde_json::to_value(item)
        .and_then(|value| serde_json::to_vec(&value))
        .unwrap_or_default();
    format!("\"{}\"", hex::encode(&Sha256::digest(&text)[..16]))
}

/// The item as JSON, with its `ETag`.
fn tagged<T: Serialize>(item: &T) -> Response {
    let mut response = Json(item).into_response();
    if let Ok(tag) = axum::http::HeaderValue::from_str(&entity_tag(item)) {
        response.headers_mut().insert(axum::http::header::ETAG, tag);
    }
    response
}

/// What a PUT's `If-Match` asks of the item as stored (RFC 9110 13.1.1): that it exists (`*`),
/// or that its entity tag is one of these. A weak tag (`W/"…"`) never matches.
pub(crate) enum Precondition {
    Exists,
    OneOf(Vec<String>),
}

impl Precondition {
    /// The request's `If-Match`, if it has one; 400 when it cannot be read.
    fn of(headers: &HeaderMap) -> Result<Option<Precondition>, AdminError> {
        let mut tags = Vec::new();
        let mut any = false;
        for value in headers.get_all(axum::http::header::IF_MATCH) {
            let text = value
                .to_str()
                .map_err(|_| bad("If-Match: not an entity tag"))?;
            for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let quoted = |t: &str| t.len() >= 2 && t.starts_with('"') && t.ends_with('"');
                match tag {
                    "*" => any = true,
                    weak if weak.starts_with("W/") && quoted(&weak[2..]) => {}
                    strong if quoted(strong) => tags.push(strong.to_owned()),
                    _ => return Err(bad(format!("If-Match: {tag} is not an entity tag"))),
                }
            }
        }
        Ok(
            match (any, headers.contains_key(axum::http::header::IF_MATCH)) {
                (true, _) => Some(Precondition::Exists),
                (false, true) => Some(Precondition::OneOf(tags)),
                (false, false) => None,
            },
        )
    }

    fn holds<T: Serialize>(&self, stored: Option<&T>) -> bool {
        match (self, stored) {
            (_, None) => false,
            (Precondition::Exists, Some(_)) => true,
            (Precondition::OneOf(tags), Some(item)) => tags.contains(&entity_tag(item)),
        }
    }
}

/// `GET` of one item as stored, with its `ETag`; 404 when there is none.
async fn get_item<T: InCatalog>(app: &AppState, key: &str) -> AdminResult {
    let (_, file) = app.store.load_catalog().await.map_err(internal)?;
    let item = T::items(&file)
        .iter()
        .find(|i| i.key() == key)
        .ok_or(AdminError(
            StatusCode::NOT_FOUND,
            format!("no such {}", T::KIND),
        ))?;
    Ok(tagged(item))
}

type Get = (State<AppState>, AdminPath<String>);

async fn get_mpp((State(app), AdminPath(key)): Get) -> AdminResult {
    get_item::<Mpp>(&app, &key).await
}

async fn get_organization((State(app), AdminPath(key)): Get) -> AdminResult {
    get_item::<Organization>(&app, &key).await
}

async fn get_trade_point((State(app), AdminPath(key)): Get) -> AdminResult {
    get_item::<TradePoint>(&app, &key).await
}

async fn get_service((State(app), AdminPath(key)): Get) -> AdminResult {
    get_item::<Service>(&app, &key).await
}

/// Changes the organization `bin` as it is stored, in the transaction that stores the change:
/// `change` edits the stored organization and says whether there is anything to store. Two
/// changes made at once through two nodes (each node's snapshot may be a moment old) both hold,
/// since the transaction that loses the race is run again on what the other stored; a change
/// built on a node's snapshot would put back what the other had changed. The organization as
/// stored after it and whether it changed.
async fn change_organization(
    app: &AppState,
    bin: &str,
    change: impl Fn(&mut Organization) -> Result<bool, AdminError> + Send + 'static,
) -> Result<(Organization, bool), AdminError> {
    change_item(app, bin, change).await
}

/// [`change_organization`] for an item of any kind.
async fn change_item<T: InCatalog>(
    app: &AppState,
    key: &str,
    change: impl Fn(&mut T) -> Result<bool, AdminError> + Send + 'static,
) -> Result<(T, bool), AdminError> {
    change_item_once(app, key, None, change)
        .await?
        .ok_or_else(|| AdminError(StatusCode::INTERNAL_SERVER_ERROR, "no change made".into()))
}

/// Takes the hash `hash` (hex, either case: one stored in capitals by an earlier build goes too)
/// out of `hashes`; 404 saying `none` when it is not there.
fn remove_hash(hashes: &mut Vec<String>, hash: &str, none: &str) -> Result<bool, AdminError> {
    let before = hashes.len();
    hashes.retain(|h| !h.eq_ignore_ascii_case(hash));
    if hashes.len() == before {
        return Err(AdminError(StatusCode::NOT_FOUND, none.into()));
    }
    Ok(true)
}

/// [`change_organization`], once per `replay`: `None`, and nothing changed, when `replay` names
/// a change made already (the console's form submitted twice).
async fn change_organization_once(
    app: &AppState,
    bin: &str,
    replay: Option<Replay>,
    change: impl Fn(&mut Organization) -> Result<bool, AdminError> + Send + 'static,
) -> Result<Option<(Organization, bool)>, AdminError> {
    change_item_once(app, bin, replay, change).await
}

/// Changes the item `key` of its kind as it is stored, as [`change_organization`] does, once
/// per `replay`.
async fn change_item_once<T: InCatalog>(
    app: &AppState,
    key: &str,
    replay: Option<Replay>,
    change: impl Fn(&mut T) -> Result<bool, AdminError> + Send + 'static,
) -> Result<Option<(T, bool)>, AdminError> {
    let (key, now) = (key.to_owned(), app.clock.now());
    let changed = app
        .store
        .transaction(move |tx| {
            if tx.replayed(&replay)?.is_some() {
                return Ok(Ok(None));
            }
            let mut file = tx.catalog_file()?;
            let Some(mut item) = T::items(&file).iter().find(|i| i.key() == key).cloned() else {
                let kind = T::KIND.replace('_', " ");
                return Ok(Err(AdminError(
                    StatusCode::NOT_FOUND,
                    format!("no such {kind}"),
                )));
            };
            match change(&mut item) {
                Ok(true) => {}
                Ok(false) => return Ok(Ok(Some((item, false)))),
                Err(refused) => return Ok(Err(refused)),
            }
            T::upsert(&mut file, item.clone());
            if let Err(why) = file.validate() {
                return Ok(Err(bad(why)));
            }
            tx.put_catalog_item(&item, now)?;
            tx.remember(&replay, "changed", now)?;
            Ok(Ok(Some((item, true))))
        })
        .await
        .map_err(internal)??;
    if let Some((item, true)) = &changed {
        app.reload_catalog().await.map_err(internal)?;
        tracing::info!(kind = T::KIND, key = %item.key(), "operator data changed");
    }
    Ok(changed)
}

fn upsert<T: CatalogDoc>(items: &mut Vec<T>, doc: T) {
    let key = doc.key();
    items.retain(|i| i.key() != key);
    items.push(doc);
}

/// A JSON body; its amounts, which reach types shared with the TOML configuration, are first
/// checked as written (DECISIONS 3: no exponent, at most two decimals).
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, AdminError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        tolem_wire::amount::plain_json_numbers(text).map_err(bad)?;
    }
    // The field's path leads the message (`commission_bps: invalid type: string "150", …`),
    // as a missing one's name does.
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        match path.as_str() {
            "." | "" => bad(e.into_inner().to_string()),
            _ => bad(format!("{path}: {}", e.into_inner())),
        }
    })?;
    reader.end().map_err(|e| bad(e.to_string()))?;
    Ok(value)
}

/// The PUT of one catalog item whose key is in the path: one change at a time, checked against
/// the whole catalog, then live.
async fn put_item<T>(
    app: &AppState,
    key: &str,
    raw: &[u8],
    precondition: Option<Precondition>,
) -> AdminResult
where
    T: InCatalog + for<'de> Deserialize<'de> + PrepareDoc,
{
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let mut doc: T = body(raw)?;
    if doc.key() != key {
        return Err(bad("the key in the body differs from the path"));
    }
    no_control_characters(&doc).map_err(bad)?;
    doc.prepare().map_err(bad)?;
    save(app, doc, precondition, body_keys(raw)).await
}

/// Operator data holds no control character: it reaches MPPs (a trade point's name in every
/// scan), receipts, registers and e-mail headers (an MPP's `register_email`), and PostgreSQL
/// keeps no U+0000. A certificate's PEM alone may break lines. Nor a character that reorders
/// text unseen (a right-to-left override pasted with a name would turn the rest of a receipt's
/// or an MPP app's line around; the pages show it as its code, `domain::text::reorders`).
fn no_control_characters<T: Serialize>(doc: &T) -> Result<(), String> {
    fn walk(value: &serde_json::Value, path: &str, lines_allowed: bool) -> Result<(), String> {
        match value {
            serde_json::Value::String(text) => {
                let refused = text
                    .chars()
                    .any(|c| c.is_control() && !(lines_allowed && matches!(c, '\n' | '\r')));
                if refused {
                    return Err(format!("{path}: holds a control character"));
                }
                if let Some(c) = text.chars().find(|c| crate::domain::text::reorders(*c)) {
                    return Err(format!(
                        "{path}: holds U+{:04X}, which reorders text unseen",
                        u32::from(c)
                    ));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), lines_allowed)?;
                }
            }
            serde_json::Value::Object(members) => {
                for (key, member) in members {
                    let at = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(member, &at, key == "client_certificates")?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let value = serde_json::to_value(doc).map_err(|e| e.to_string())?;
    walk(&value, "", false)
}

/// What an item needs before it is stored, and what is asked of the item itself (not of the
/// catalog around it, which may hold items stored before a rule was made).
trait PrepareDoc {
    fn prepare(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl PrepareDoc for Mpp {
    fn prepare(&mut self) -> Result<(), String> {
        self.check_register_email()
    }
}
impl PrepareDoc for Service {
    fn prepare(&mut self) -> Result<(), String> {
        self.check_callback()
    }
}

impl PrepareDoc for TradePoint {
    fn prepare(&mut self) -> Result<(), String> {
        self.check_terminal_type()
    }
}

impl PrepareDoc for Organization {
    /// Only hashes of API keys are stored; certificates' fingerprints are written one way.
    fn prepare(&mut self) -> Result<(), String> {
        self.check_api_keys()
            .map_err(|why| format!("api_keys: {why}"))?;
        self.check_key_hashes()?;
        self.hash_keys();
        Ok(())
    }
}

type Put = (State<AppState>, AdminPath<String>, HeaderMap, AdminBody);

async fn put_mpp((State(app), AdminPath(key), headers, AdminBody(raw)): Put) -> AdminResult {
    put_item::<Mpp>(&app, &key, &raw, Precondition::of(&headers)?).await
}

async fn put_organization(
    (State(app), AdminPath(key), headers, AdminBody(raw)): Put,
) -> AdminResult {
    put_item::<Organization>(&app, &key, &raw, Precondition::of(&headers)?).await
}

async fn put_trade_point(
    (State(app), AdminPath(key), headers, AdminBody(raw)): Put,
) -> AdminResult {
    put_item::<TradePoint>(&app, &key, &raw, Precondition::of(&headers)?).await
}

async fn put_service((State(app), AdminPath(key), headers, AdminBody(raw)): Put) -> AdminResult {
    put_item::<Service>(&app, &key, &raw, Precondition::of(&headers)?).await
}

#[derive(Deserialize)]
struct StatusChange {
    status: OrganizationStatus,
}

async fn set_status(
    State(app): State<AppState>,
    AdminPath(bin): AdminPath<String>,
    AdminBody(raw): AdminBody,
) -> AdminResult {
    let change: StatusChange = body(&raw)?;
    change_status(&app, &bin, change.status).await
}

/// Suspends, blocks or reopens a merchant (POST …/status, and the console's buttons).
pub(crate) async fn change_status(
    app: &AppState,
    bin: &str,
    status: OrganizationStatus,
) -> AdminResult {
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let (org, _) = change_organization(app, bin, move |org| {
        org.status = status;
        Ok(true)
    })
    .await?;
    Ok(tagged(&org))
}

/// The PUT of one catalog item of `kind` (`mpps`, `organizations`, `trade-points`, `services`:
/// the admin API's path segment) from its JSON, with the admin API's very validation and
/// `precondition` (an `If-Match`); the console's editor calls it. `None` for a kind that does
/// not exist.
pub(crate) async fn put_catalog_item(
    app: &AppState,
    kind: &str,
    key: &str,
    raw: &[u8],
    precondition: Option<Precondition>,
) -> Option<AdminResult> {
    Some(match kind {
        "mpps" => put_item::<Mpp>(app, key, raw, precondition).await,
        "organizations" => put_item::<Organization>(app, key, raw, precondition).await,
        "trade-points" => put_item::<TradePoint>(app, key, raw, precondition).await,
        "services" => put_item::<Service>(app, key, raw, precondition).await,
        _ => return None,
    })
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

/// `POST /admin/v1/organizations/{bin}/api-keys`: a new API key, shown once.
async fn new_api_key(
    State(app): State<AppState>,
    AdminPath(bin): AdminPath<String>,
    AdminBody(raw): AdminBody,
) -> AdminResult {
    let req: KeyRequest = body(&raw)?;
    match issue_api_key(&app, &bin, &req.kind, None).await? {
        Some(key) => Ok((StatusCode::CREATED, Json(json!({ "api_key": key }))).into_response()),
        // Without a replay record every call issues one; kept total all the same.
        None => Err(AdminError(StatusCode::CONFLICT, "issued already".into())),
    }
}

/// Issues a new API key of `kind` (`test` or `prod`) to the organization `bin`: its clear text
/// is returned once, only its hash is kept. `None` when `replay` names an issue made already
/// (the console's form submitted twice): no second key. The admin API and the console call it.
pub(crate) async fn issue_api_key(
    app: &AppState,
    bin: &str,
    kind: &str,
    replay: Option<Replay>,
) -> Result<Option<String>, AdminError> {
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    if kind != "test" && kind != "prod" {
        return Err(bad("kind must be test or prod"));
    }
    let secret: [u8; 16] = rand::random();
    let key = format!("{kind}_{}", hex::encode_upper(secret));
    let hash = api_key_hash(&key);
    let issued = change_organization_once(app, bin, replay, move |org| {
        org.api_key_hashes.push(hash.clone());
        Ok(true)
    })
    .await?;
    Ok(issued.map(|_| key))
}

/// `POST /admin/v1/mpps/{caller_name}/cabinet-tokens`: a new cabinet token for the MPP, shown
/// once (only its hash is kept): its engineers' way into the register API and the cabinet pages,
/// with no restart (other nodes take it when they read the catalog again). 201 with the token
/// and its hash.
async fn new_cabinet_token(
    State(app): State<AppState>,
    AdminPath(caller_name): AdminPath<String>,
) -> AdminResult {
    match issue_cabinet_token(&app, &caller_name, None).await? {
        Some((token, hash)) => Ok((
            StatusCode::CREATED,
            Json(json!({ "mpp": caller_name, "cabinet_token": token, "hash": hash })),
        )
            .into_response()),
        // Without a replay record every call issues one; kept total all the same.
        None => Err(AdminError(StatusCode::CONFLICT, "issued already".into())),
    }
}

/// Issues the MPP `caller_name` a new cabinet token: the token and its SHA-256 (hex), the token
/// returned once, only the hash kept (`cabinet_token_hashes`). `None` when `replay` names an
/// issue made already (the console's form submitted twice): no second token. The admin API and
/// the console call it.
pub(crate) async fn issue_cabinet_token(
    app: &AppState,
    caller_name: &str,
    replay: Option<Replay>,
) -> Result<Option<(String, String)>, AdminError> {
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    let token = hex::encode(rand::random::<[u8; 24]>());
    let hash = api_key_hash(&token);
    let stored = hash.clone();
    let issued = change_item_once::<Mpp>(app, caller_name, replay, move |mpp| {
        mpp.cabinet_token_hashes.push(stored.clone());
        Ok(true)
    })
    .await?;
    Ok(issued.map(|_| (token, hash)))
}

/// `DELETE /admin/v1/mpps/{caller_name}/cabinet-tokens/{hash}`: the cabinet token whose SHA-256
/// is `hash` lets no one in from the next request on (on other nodes, once they read the catalog
/// again), and the console sessions it opened end; 200 with the hashes left, 404 when it is not
/// the MPP's.
async fn delete_cabinet_token(
    State(app): State<AppState>,
    AdminPath((caller_name, hash)): AdminPath<(String, String)>,
) -> AdminResult {
    let mpp = revoke_cabinet_token(&app, &caller_name, &hash).await?;
    Ok(
        Json(json!({"mpp": mpp.caller_name, "cabinet_token_hashes": mpp.cabinet_token_hashes}))
            .into_response(),
    )
}

/// Takes the cabinet token whose SHA-256 is `hash` (hex, either case) from the MPP
/// `caller_name`; the MPP as it is now. 400 for what is not a SHA-256, 404 when no token of the
/// MPP has it. The admin API and the console call it.
pub(crate) async fn revoke_cabinet_token(
    app: &AppState,
    caller_name: &str,
    hash: &str,
) -> Result<Mpp, AdminError> {
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    if !crate::config::catalog::is_sha256_hex(hash) {
        return Err(bad("a cabinet token's hash is 64 hex digits (its SHA-256)"));
    }
    let hash = hash.to_owned();
    let (mpp, _) = change_item::<Mpp>(app, caller_name, move |mpp| {
        let none = "no cabinet token of this MPP has that hash";
        remove_hash(&mut mpp.cabinet_token_hashes, &hash, none)
    })
    .await?;
    Ok(mpp)
}

/// `DELETE /admin/v1/organizations/{bin}/api-keys/{hash}`: the key whose SHA-256 is `hash` (hex,
/// either case) no longer lets anyone in, from the next request on; 200 with the hashes left,
/// 404 when it is not the organization's. Made on the organization as stored, so a key issued or
/// a suspension made meanwhile through another node stays.
async fn revoke_api_key(
    State(app): State<AppState>,
    AdminPath((bin, hash)): AdminPath<(String, String)>,
) -> AdminResult {
    let _one_change_at_a_time = app.catalog_changes.lock().await;
    if !crate::config::catalog::is_sha256_hex(&hash) {
        return Err(bad("an API key's hash is 64 hex digits (its SHA-256)"));
    }
    let (org, _) = change_organization(&app, &bin, move |org| {
        let none = "no API key of this organization has that hash";
        remove_hash(&mut org.api_key_hashes, &hash, none)
    })
    .await?;
    Ok(
        Json(json!({"organization": org.bin, "api_key_hashes": org.api_key_hashes}))
            .into_response(),
    )
}

async fn payment(State(app): State<AppState>, AdminPath(id): AdminPath<PaymentId>) -> AdminResult {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[tokio::test]
    async fn an_overloaded_store_is_503_and_any_other_fault_500() {
        let AdminError(status, why) = internal(StoreError::Overloaded);
        assert_eq!(
            (status, why.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "the PS is busy; retry")
        );
        // A 500 says `internal error` and carries its cause to the request's one log line.
        let cause = StoreError::WriterGone.to_string();
        let answer = internal(StoreError::WriterGone).into_response();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let fault = answer.extensions().get::<crate::health::Fault>();
        assert_eq!(fault.map(|f| f.0.as_str()), Some(cause.as_str()));
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(&body[..], br#"{"error":"internal error"}"#);
        assert_eq!(
            crate::receipt::fault(StoreError::Overloaded).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
