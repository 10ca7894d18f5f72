//! The merchant (POS) API over HTTP (DECISIONS 26–34, `MERCHANT-API.md`): the same paths under
//! `/r1/v01`, `/r2/v01`, `/r3/v01` (and `/rN/v02/payment/status/{id}`), the `{StatusCode, Message,
//! Data}` envelope, case-insensitive input. This module holds the edge (authentication, body
//! limits, the one mapping of errors to the envelope); the calls live in its submodules.
//!
//! Authentication ([`identity`]): r1 by the organization's `Api-Key`; r2 and r3 by the client
//! certificate (DECISIONS 41), or by the `Api-Key` where the PS receives no certificates; r3 also
//! checks `OrganizationBin` and the source address.
//!
//! Bodies are read strictly (DECISIONS 44, [`tolem_wire::body`]). Messages are in the language of
//! `Accept-Language` (Kazakh when it prefers `kk`, else Russian): errors are rendered in Russian
//! where they happen and rewritten by [`localize`], which alone sees the request's headers.

pub(crate) mod cashier;
mod devices;
pub mod identity;
mod payments;
mod refunds;
mod sandbox;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode as HttpStatus, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tolem_wire::merchant::{BadRequest, Envelope, StatusCode, parse_request};
use tolem_wire::{Locale, Param, Problem};

use crate::catalog::{Organization, OrganizationStatus, TradePoint};
pub(crate) use crate::connections::Scheme;
use crate::connections::{Refusal, read_body};
use crate::domain::DeviceId;
use crate::state::AppState;
use crate::store::{Device, PosRequestKey, Replay, StoreError};

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for scheme in ["r1", "r2", "r3"] {
        let v01 = |path: &str| format!("/{scheme}/v01{path}");
        router = router
            .route(&v01("/device/register"), post(devices::register))
            .route(&v01("/device/delete"), post(devices::delete))
            .route(&v01("/qr/create"), post(payments::create_qr))
            .route(&v01("/qr/create-link"), post(payments::create_link))
            .route(&v01("/payment/status/{id}"), get(payments::status_v01))
            .route(
                &format!("/{scheme}/v02/payment/status/{{id}}"),
                get(payments::status_v02),
            )
            .route(&v01("/health/ping"), get(ping))
            .route(&v01("/test/payment/{step}"), post(sandbox::payment_step))
            .route(
                &v01("/remote/{call}"),
                get(not_supported).post(not_supported),
            );
    }
    for scheme in ["r2", "r3"] {
        router = router
            .route(
                &format!("/{scheme}/v01/payment/details"),
                get(refunds::details),
            )
            .route(
                &format!("/{scheme}/v01/payment/return"),
                post(refunds::refund),
            );
    }
    router
        .route("/r2/v01/return/create", post(refunds::create))
        .route("/r2/v01/return/status/{id}", get(refunds::status))
        .route(RETURN_OPERATIONS, post(refunds::operations))
        .route("/r1/v01/test/return/scan", post(sandbox::return_scan))
        .route("/r2/v01/test/return/scan", post(sandbox::return_scan))
        .route("/r3/v01/test/return/scan", post(sandbox::return_scan))
        .route("/r1/v01/partner/tradepoints", get(devices::trade_points))
        .route("/r2/v01/partner/tradepoints", get(devices::trade_points))
        .route(
            "/r3/v01/partner/tradepoints/{bin}",
            get(devices::trade_points_of_bin),
        )
        .route_layer(middleware::from_fn(localize))
}

/// The one POST of the merchant API that only reads.
const RETURN_OPERATIONS: &str = "/r2/v01/return/operations";

/// Whether a call may store something, and so counts against `limits.pos_writes_per_s`: every
/// POST but [`RETURN_OPERATIONS`].
fn stores_something(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST && path != RETURN_OPERATIONS
}

/// Writes a failure's message in the language the caller asked for (`Accept-Language`).
async fn localize(req: Request, next: Next) -> Response {
    let locale = Locale::from_accept_language(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = next.run(req).await;
    if locale == Locale::Ru {
        return response;
    }
    match response.extensions_mut().remove::<Failure>() {
        Some(failure) => {
            let mut localized = envelope(response.status(), &failure.envelope(locale));
            if let Some(fault) = response.extensions_mut().remove::<crate::health::Fault>() {
                localized.extensions_mut().insert(fault);
            }
            localized
        }
        None => response,
    }
}

async fn ping(_call: PosCall) -> Response {
    envelope(HttpStatus::OK, &Envelope::ok_empty())
}

async fn not_supported(_call: PosCall) -> Response {
    PosError::status(StatusCode::NotSupported).into_response()
}

/// The answer to a path or method the merchant API does not have, in the language of
/// `Accept-Language` as every other answer.
pub(crate) fn unknown_method(headers: &axum::http::HeaderMap) -> Response {
    let locale = Locale::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    envelope(
        HttpStatus::NOT_FOUND,
        &Envelope::error(StatusCode::UnknownMethod, locale, None),
    )
}

fn envelope<T: Serialize>(status: HttpStatus, body: &T) -> Response {
    let json = serde_json::to_string(body).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json,
    )
        .into_response()
}

/// A stored or fresh answer body, sent as is.
fn raw_json(body: String) -> Response {
    (
        HttpStatus::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Why a merchant API call failed: a StatusCode of the API, or an infrastructure fault.
#[derive(Debug)]
pub(crate) enum PosError {
    Status(StatusCode, Option<String>),
    /// `-10000`, naming what authentication found missing or wrong in the caller's language.
    Unauthenticated(identity::Unauthenticated),
    /// A parameter is missing or wrong: the code (`-99000400`, or `990000028` for an amount) and
    /// the parameter named with what is wrong, in the caller's language (DECISIONS 44).
    Param(StatusCode, Param),
    /// The body was too large, too slow or cut off (DECISIONS 43): answered with the HTTP status
    /// and code of the connection layer's table.
    Refused(Refusal),
    /// The MPP refused a refund while the POS waited (`-99000006` naming its answer).
    MppRefused(Option<String>),
    /// The organization's POSTs are over `limits.pos_writes_per_s`: HTTP 503, `-999`, retry.
    TooFast,
    /// The operator suspended or blocked the organization (DECISIONS 19): `990000018`, the trade
    /// point disabled, naming why, so that a cashier does not look for a fault at the till.
    MerchantStopped {
        blocked: bool,
    },
    Store(StoreError),
}

impl PosError {
    pub(crate) fn status(code: StatusCode) -> PosError {
        PosError::Status(code, None)
    }

    /// `-99000400` naming the parameter and what is wrong with it.
    pub(crate) fn param(name: &str, problem: Problem) -> PosError {
        PosError::Param(StatusCode::InvalidRequest, Param::new(name, problem))
    }
}

impl From<StoreError> for PosError {
    fn from(e: StoreError) -> PosError {
        PosError::Store(e)
    }
}

impl From<BadRequest> for PosError {
    fn from(bad: BadRequest) -> PosError {
        PosError::Param(bad.code, bad.param)
    }
}

/// A failure as the envelope says it, kept on the response so that [`localize`] can say it again
/// in the caller's language.
#[derive(Clone, Debug)]
struct Failure {
    code: StatusCode,
    detail: Option<Detail>,
}

#[derive(Clone, Debug)]
enum Detail {
    /// A text sent as is in either language: what is left of a purchase
    /// (`AvailableReturnAmount 600.00`), which names the thing itself.
    Text(String),
    /// What authentication found missing or wrong, said in the caller's language.
    Unauthenticated(identity::Unauthenticated),
    /// A parameter and its problem, said in the caller's language.
    Param(Param),
    /// The customer's MPP refused a refund finally, with its `resultCode` (DECISIONS 39), said in
    /// the caller's language: retrying will not change it.
    MppRefused(Option<String>),
    /// The operator suspended (or blocked) the trade point's organization.
    MerchantStopped { blocked: bool },
}

impl Detail {
    fn mpp_refused(code: Option<&str>, locale: Locale) -> String {
        let code = code.unwrap_or("—");
        match locale {
            Locale::Ru => format!("банк покупателя (МПП) отклонил возврат: {code}"),
            Locale::Kk => format!("сатып алушының банкі (МПП) қайтаруды қабылдамады: {code}"),
        }
    }
}

impl Failure {
    fn envelope(&self, locale: Locale) -> Envelope<()> {
        let detail = match &self.detail {
            None => None,
            Some(Detail::Text(text)) => Some(text.clone()),
            Some(Detail::Unauthenticated(why)) => Some(why.text(locale)),
            Some(Detail::Param(param)) => Some(param.text(locale)),
            Some(Detail::MppRefused(code)) => Some(Detail::mpp_refused(code.as_deref(), locale)),
            Some(Detail::MerchantStopped { blocked }) => Some(
                match (blocked, locale) {
                    (false, Locale::Ru) => {
                        "организация приостановлена оператором платёжной системы"
                    }
                    (true, Locale::Ru) => "организация заблокирована оператором платёжной системы",
                    (false, Locale::Kk) => {
                        "ұйымның төлемдерін төлем жүйесінің операторы уақытша тоқтатқан"
                    }
                    (true, Locale::Kk) => "ұйымды төлем жүйесінің операторы бұғаттаған",
                }
                .to_owned(),
            ),
        };
        Envelope::error(self.code, locale, detail.as_deref())
    }

    fn into_response(self, status: HttpStatus) -> Response {
        let mut response = envelope(status, &self.envelope(Locale::Ru));
        response.extensions_mut().insert(self);
        response
    }
}

impl IntoResponse for PosError {
    /// The one mapping of merchant API errors to the wire: business errors are HTTP 200 with a
    /// non-zero StatusCode; faults are 500/503 with -999 (retry).
    fn into_response(self) -> Response {
        let (status, failure) = match self {
            PosError::Status(code, detail) => (
                HttpStatus::OK,
                Failure {
                    code,
                    detail: detail.map(Detail::Text),
                },
            ),
            PosError::Unauthenticated(why) => (
                HttpStatus::OK,
                Failure {
                    code: StatusCode::AuthenticationFailed,
                    detail: Some(Detail::Unauthenticated(why)),
                },
            ),
            PosError::Param(code, param) => (
                HttpStatus::OK,
                Failure {
                    code,
                    detail: Some(Detail::Param(param)),
                },
            ),
            PosError::MerchantStopped { blocked } => (
                HttpStatus::OK,
                Failure {
                    code: StatusCode::TradePointDisabled,
                    detail: Some(Detail::MerchantStopped { blocked }),
                },
            ),
            PosError::TooFast => (
                HttpStatus::SERVICE_UNAVAILABLE,
                Failure {
                    code: StatusCode::Unavailable,
                    detail: None,
                },
            ),
            PosError::MppRefused(code) => (
                HttpStatus::OK,
                Failure {
                    code: StatusCode::ReturnFailed,
                    detail: Some(Detail::MppRefused(code)),
                },
            ),
            PosError::Refused(refusal) => (
                refusal.http_status(),
                Failure {
                    code: refusal.merchant_code(),
                    detail: Some(Detail::Param(refusal.param())),
                },
            ),
            PosError::Store(e) => {
                let failure = Failure {
                    code: StatusCode::Unavailable,
                    detail: None,
                };
                if e.is_unavailable() {
                    crate::log_sparse::store_unavailable(&e);
                    (HttpStatus::SERVICE_UNAVAILABLE, failure)
                } else {
                    // Said in the request's one line (`app.rs`).
                    return crate::health::Fault::on(
                        failure.into_response(HttpStatus::INTERNAL_SERVER_ERROR),
                        &e,
                    );
                }
            }
        };
        failure.into_response(status)
    }
}

pub(crate) type PosResult = Result<Response, PosError>;

/// A path parameter as text; one that is not valid UTF-8 is answered with the envelope.
pub(crate) fn path_text(
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, PosError> {
    path.map(|axum::extract::Path(text)| text)
        .map_err(|_| PosError::param("path", Problem::Invalid))
}

/// An authenticated merchant API request.
pub(crate) struct PosCall {
    pub scheme: Scheme,
    /// The organizations the caller acts for, in BIN order: one, except for an r3 certificate
    /// registered to several on a call that names none of them ([`identity`]).
    organizations: Vec<Arc<Organization>>,
    pub request_id: Option<String>,
    /// The call: the path after `/rN/vNN/` (`qr/create`), part of a repeat's key.
    call: String,
    pub query: Option<String>,
    pub body: Bytes,
}

impl PosCall {
    /// The body, read strictly (DECISIONS 44) and case-insensitively (DECISIONS 32).
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, PosError> {
        parse_request(&self.body).map_err(PosError::from)
    }

    /// The key under which this request's answer is kept for repeats (DECISIONS 29): `None`
    /// without an X-Request-ID.
    pub(crate) fn request_key(&self) -> Option<PosRequestKey> {
        let request_id = self.request_id.clone()?;
        Some(PosRequestKey::new(request_id, &self.call, &self.body))
    }

    /// [`Self::request_key`] for the caller's device.
    pub(crate) fn replay(&self, device: DeviceId) -> Option<Replay> {
        self.request_key().map(|key| Replay::device(device, key))
    }

    /// The one organization the call acts for. Every call that needs one names it on r3 (its
    /// `OrganizationBin`, checked by [`PosCall::check_bin`] first), so the refusal here is for a
    /// call that names none with a certificate of several organizations.
    pub(crate) fn organization(&self) -> Result<&Arc<Organization>, PosError> {
        match self.organizations.as_slice() {
            [one] => Ok(one),
            _ => Err(PosError::Unauthenticated(identity::Unauthenticated::Named(
                "OrganizationBin",
            ))),
        }
    }

    /// Whether the caller acts for the organization with this BIN: what it may see and change
    /// belongs to it (DECISIONS 28).
    pub(crate) fn acts_for(&self, bin: &str) -> bool {
        self.organizations.iter().any(|o| o.bin == bin)
    }

    /// As [`Self::check_bin`], but a call that names no organization passes (the sandbox
    /// emulators, which real clients call without one).
    pub(crate) fn check_named_bin(&self, bin: Option<&str>) -> Result<(), PosError> {
        match bin.filter(|b| !b.is_empty()) {
            Some(bin) if !self.acts_for(bin) => Err(PosError::Unauthenticated(
                identity::Unauthenticated::Named("OrganizationBin"),
            )),
            _ => Ok(()),
        }
    }

    /// r3 names the organization in every body; it must be the caller's (DECISIONS 28). One that
    /// is missing is a malformed request, not bad credentials; another organization's BIN is.
    pub(crate) fn check_bin(&self, bin: Option<&str>) -> Result<(), PosError> {
        self.check_named_bin(bin)?;
        if self.scheme == Scheme::R3 && bin.is_none_or(str::is_empty) {
            return Err(PosError::param("OrganizationBin", Problem::Missing));
        }
        Ok(())
    }
}

impl FromRequest<AppState> for PosCall {
    type Rejection = PosError;

    async fn from_request(req: Request, app: &AppState) -> Result<PosCall, PosError> {
        let scheme =
            Scheme::of_path(req.uri().path()).ok_or(PosError::status(StatusCode::UnknownMethod))?;
        let over_tls = req
            .extensions()
            .get::<crate::connections::OverTls>()
            .is_some();
        identity::check_origin(req.headers(), over_tls, &app.config.public_url)?;
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let mut organizations =
            identity::organizations(app, scheme, req.headers(), req.extensions(), peer)?;
        // One organization is checked before its body is read; a certificate's several are
        // narrowed to the one the body names first.
        if organizations.len() == 1 {
            identity::check_source(scheme, &mut organizations, peer, app.config.sandbox)?;
        }
        // Optional here (DECISIONS 29): one that breaks the rule is treated as absent.
        let request_id = crate::request_id::of_merchant(req.headers()).map(str::to_owned);
        let query = req.uri().query().map(str::to_owned);
        let path = req.uri().path().to_owned();
        let writes = stores_something(req.method(), &path);
        // `/r1/v01/qr/create` → `qr/create` (the scheme and version are known to be there).
        let call = path.splitn(4, '/').nth(3).unwrap_or_default().to_owned();
        let body = read_body(req, app.config.limits.body_bytes_max)
            .await
            .map_err(|e| PosError::Refused(Refusal::from(e)))?;
        if organizations.len() > 1 {
            identity::choose_named(&mut organizations, &path, &body)?;
            identity::check_source(scheme, &mut organizations, peer, app.config.sandbox)?;
        }
        // A POST may store something: each organization has its rate (DECISIONS 43).
        if writes
            && let Some(first) = organizations.first()
            && !app.pos_writes.admit(&first.bin)
        {
            return Err(PosError::TooFast);
        }
        Ok(PosCall {
            scheme,
            organizations,
            request_id,
            call,
            query,
            body,
        })
    }
}

/// The caller's active device with this token, and its trade point (DECISIONS 28).
pub(crate) async fn device_of(
    app: &AppState,
    call: &PosCall,
    token: &str,
) -> Result<(Device, Arc<TradePoint>), PosError> {
    let device = app.store.device_by_token(device_token(token)).await?;
    checked_device(app, call, device)
}

/// A `DeviceToken` as it is stored: the PS issues lowercase hyphenated UUIDs, and a POS that
/// keeps it in a GUID type may send it back in another spelling (upper case, in braces, without
/// hyphens), which names the same token. Anything else is looked up as it is.
pub(crate) fn device_token(sent: &str) -> String {
    match uuid::Uuid::try_parse(sent.trim()) {
        Ok(token) => token.hyphenated().to_string(),
        Err(_) => sent.to_owned(),
    }
}

/// What a POS call that takes a new purchase or return QR finds first: the answer the same
/// device got for the same request before (DECISIONS 29), looked up before any other check so
/// that a repeat gets the first answer whatever changed since, or else the caller's device as
/// [`device_of`] gives it. Both in one read.
pub(crate) enum FirstLook {
    Repeat(Response),
    Device(Device, Arc<TradePoint>),
}

pub(crate) async fn first_look(
    app: &AppState,
    call: &PosCall,
    token: &str,
) -> Result<FirstLook, PosError> {
    match device_and_answer(app, call, token).await? {
        (_, Some(first)) => Ok(FirstLook::Repeat(raw_json(first))),
        (device, None) => {
            let (device, point) = checked_device(app, call, device)?;
            Ok(FirstLook::Device(device, point))
        }
    }
}

/// The device with this token if it is the caller's, unchecked otherwise, and the answer it
/// got for the same request before (DECISIONS 29), if the call has an X-Request-ID: one read.
/// [`checked_device`] checks the device.
pub(crate) async fn device_and_answer(
    app: &AppState,
    call: &PosCall,
    token: &str,
) -> Result<(Option<Device>, Option<String>), PosError> {
    let found = app
        .store
        .device_with_replay(device_token(token), call.request_key())
        .await?
        .filter(|(d, _)| call.acts_for(&d.organization_bin));
    Ok(match found {
        Some((device, answer)) => (Some(device), answer),
        None => (None, None),
    })
}

/// [`device_of`] for a device already read.
pub(crate) fn checked_device(
    app: &AppState,
    call: &PosCall,
    device: Option<Device>,
) -> Result<(Device, Arc<TradePoint>), PosError> {
    let device = device
        .filter(|d| call.acts_for(&d.organization_bin))
        .ok_or(PosError::status(StatusCode::DeviceNotFound))?;
    if !device.active {
        return Err(PosError::status(StatusCode::DeviceInactive));
    }
    let point = app
        .catalog
        .get()
        .trade_points
        .get(&device.trade_point_id)
        // A trade point moved to another organization (which builds before this one allowed)
        // is no longer this one's.
        .filter(|t| t.organization_bin == device.organization_bin)
        .cloned()
        .ok_or(PosError::status(StatusCode::TradePointNotFound))?;
    Ok((device, point))
}

/// What the operator set for the trade point's organization (DECISIONS 19), for a POS call that
/// would move money: a suspended or blocked merchant takes no new purchase, which its
/// customers' banks would only refuse (`PAYMENTS_SUSPENDED`, `INVALID_MERCHANT`); a blocked one
/// gives no money back either, as its return QRs answer `INVALID_MERCHANT`. Both are
/// `990000018`, the trade point disabled.
pub(crate) fn check_organization(
    app: &AppState,
    point: &TradePoint,
    giving_back: bool,
) -> Result<(), PosError> {
    let catalog = app.catalog.get();
    match catalog
        .organizations
        .get(&point.organization_bin)
        .map(|o| o.status)
    {
        Some(OrganizationStatus::Active) => Ok(()),
        Some(OrganizationStatus::Suspended) if giving_back => Ok(()),
        Some(OrganizationStatus::Suspended) => Err(PosError::MerchantStopped { blocked: false }),
        Some(OrganizationStatus::Blocked) => Err(PosError::MerchantStopped { blocked: true }),
        None => Err(PosError::status(StatusCode::TradePointDisabled)),
    }
}

/// A trade point must be active and accept QR to take new purchases.
pub(crate) fn check_trade_point(point: &TradePoint) -> Result<(), PosError> {
    if !point.active {
        return Err(PosError::status(StatusCode::TradePointDisabled));
    }
    if !point.accepts_qr {
        return Err(PosError::status(StatusCode::TradePointNoQr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::{device_token, stores_something};

    #[test]
    fn a_device_token_in_any_spelling_of_its_uuid_is_the_stored_one() {
        let stored = "5f3c2a9b-8e7d-4c1a-0b9f-8e7d6c5b4a39";
        for sent in [
            stored,
            "5F3C2A9B-8E7D-4C1A-0B9F-8E7D6C5B4A39",
            "{5F3C2A9B-8E7D-4C1A-0B9F-8E7D6C5B4A39}",
            "5f3c2a9b8e7d4c1a0b9f8e7d6c5b4a39",
            " 5f3c2a9b-8e7d-4c1a-0b9f-8e7d6c5b4a39 ",
        ] {
            assert_eq!(device_token(sent), stored, "{sent}");
        }
        assert_eq!(device_token("not a uuid"), "not a uuid");
    }

    #[test]
    fn every_post_but_the_operations_list_counts_as_a_write() {
        for path in [
            "/r1/v01/qr/create",
            "/r1/v01/device/register",
            "/r2/v01/return/create",
            "/r3/v01/payment/return",
        ] {
            assert!(stores_something(&Method::POST, path), "{path}");
        }
        assert!(!stores_something(
            &Method::POST,
            "/r2/v01/return/operations"
        ));
        assert!(!stores_something(&Method::GET, "/r1/v01/qr/status/1"));
    }
}
