//! The merchant (POS) API over HTTP (DECISIONS 26–34, `MERCHANT-API.md`): the same paths under
//! `/r1/v01`, `/r2/v01`, `/r3/v01` (and `/rN/v02/payment/status/{id}`), the `{StatusCode, Message,
//! Data}` envelope, case-insensitive input. This module holds the edge (authentication, body
//! limits, the one mapping of errors to the envelope); the calls live in its submodules.
//!
//! Authentication: every scheme takes the organization's `Api-Key` header for now; r3 also checks
//! `OrganizationBin` against the key's organization. Client certificates (r2, r3) come later.

mod devices;
mod payments;
mod refunds;
mod sandbox;

pub use sandbox::SANDBOX_MPP;

use std::sync::Arc;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode as HttpStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tolem_wire::merchant::{Envelope, StatusCode, parse_request};

use crate::app::AppState;
use crate::catalog::{Organization, TradePoint};
use crate::store::{Device, StoreError};

/// The three integration schemes (MERCHANT-API.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    R1,
    R2,
    R3,
}

impl Scheme {
    fn of_path(path: &str) -> Option<Scheme> {
        match path.get(..4) {
            Some("/r1/") => Some(Scheme::R1),
            Some("/r2/") => Some(Scheme::R2),
            Some("/r3/") => Some(Scheme::R3),
            _ => None,
        }
    }
}

pub fn is_merchant_path(path: &str) -> bool {
    Scheme::of_path(path).is_some()
}

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
        .route("/r2/v01/return/operations", post(refunds::operations))
        .route("/r1/v01/test/return/scan", post(sandbox::return_scan))
        .route("/r2/v01/test/return/scan", post(sandbox::return_scan))
        .route("/r3/v01/test/return/scan", post(sandbox::return_scan))
        .route("/r1/v01/partner/tradepoints", get(devices::trade_points))
        .route("/r2/v01/partner/tradepoints", get(devices::trade_points))
        .route(
            "/r3/v01/partner/tradepoints/{bin}",
            get(devices::trade_points_of_bin),
        )
}

async fn ping(_call: PosCall) -> Response {
    envelope(HttpStatus::OK, &Envelope::ok_empty())
}

async fn not_supported(_call: PosCall) -> Response {
    PosError::status(StatusCode::NotSupported).into_response()
}

/// The answer to a path or method the merchant API does not have.
pub fn unknown_method() -> Response {
    envelope(
        HttpStatus::NOT_FOUND,
        &Envelope::error(StatusCode::UnknownMethod, None),
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
pub enum PosError {
    Status(StatusCode, Option<String>),
    Store(StoreError),
}

impl PosError {
    pub fn status(code: StatusCode) -> PosError {
        PosError::Status(code, None)
    }

    pub fn invalid(detail: impl Into<String>) -> PosError {
        PosError::Status(StatusCode::InvalidRequest, Some(detail.into()))
    }
}

impl From<StoreError> for PosError {
    fn from(e: StoreError) -> PosError {
        PosError::Store(e)
    }
}

impl IntoResponse for PosError {
    /// The one mapping of merchant API errors to the wire: business errors are HTTP 200 with a
    /// non-zero StatusCode; faults are 500/503 with -999 (retry).
    fn into_response(self) -> Response {
        match self {
            PosError::Status(code, detail) => {
                envelope(HttpStatus::OK, &Envelope::error(code, detail.as_deref()))
            }
            PosError::Store(e) if e.is_overload() => {
                tracing::warn!(error = %e, "overloaded");
                envelope(
                    HttpStatus::SERVICE_UNAVAILABLE,
                    &Envelope::error(StatusCode::Unavailable, None),
                )
            }
            PosError::Store(e) => {
                tracing::error!(error = %e, "internal fault");
                envelope(
                    HttpStatus::INTERNAL_SERVER_ERROR,
                    &Envelope::error(StatusCode::Unavailable, None),
                )
            }
        }
    }
}

pub type PosResult = Result<Response, PosError>;

/// A path parameter as text; one that is not valid UTF-8 is answered with the envelope.
pub fn path_text(
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, PosError> {
    path.map(|axum::extract::Path(text)| text)
        .map_err(|_| PosError::invalid("malformed path"))
}

/// An authenticated merchant API request.
pub struct PosCall {
    pub scheme: Scheme,
    pub organization: Arc<Organization>,
    pub request_id: Option<String>,
    pub query: Option<String>,
    pub body: Bytes,
}

impl PosCall {
    /// The body, read case-insensitively (DECISIONS 32).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PosError> {
        parse_request(&self.body).map_err(|e| PosError::invalid(e.to_string()))
    }

    pub fn body_sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.body))
    }

    /// r3 names the organization in every body; it must be the key's (DECISIONS 28).
    pub fn check_bin(&self, bin: Option<&str>) -> Result<(), PosError> {
        match (self.scheme, bin) {
            (Scheme::R3, Some(bin)) if bin == self.organization.bin => Ok(()),
            (Scheme::R3, _) => Err(PosError::Status(
                StatusCode::AuthenticationFailed,
                Some("OrganizationBin".into()),
            )),
            (_, Some(bin)) if bin != self.organization.bin => Err(PosError::Status(
                StatusCode::AuthenticationFailed,
                Some("OrganizationBin".into()),
            )),
            _ => Ok(()),
        }
    }
}

impl FromRequest<AppState> for PosCall {
    type Rejection = PosError;

    async fn from_request(req: Request, app: &AppState) -> Result<PosCall, PosError> {
        let scheme =
            Scheme::of_path(req.uri().path()).ok_or(PosError::status(StatusCode::UnknownMethod))?;
        let key = req
            .headers()
            .get("api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let catalog = app.catalog.get();
        let organization =
            catalog
                .organization_by_api_key(key)
                .cloned()
                .ok_or(PosError::Status(
                    StatusCode::AuthenticationFailed,
                    Some("Api-Key".into()),
                ))?;
        // r3 is also bound to its partner's server addresses when the operator lists them.
        if scheme == Scheme::R3 && !organization.r3_allowed_ips.is_empty() {
            let peer = req
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            if !peer.is_some_and(|ip| organization.r3_allowed_ips.contains(&ip)) {
                return Err(PosError::Status(
                    StatusCode::AuthenticationFailed,
                    Some("source address".into()),
                ));
            }
        }
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned);
        let query = req.uri().query().map(str::to_owned);
        let body = to_bytes(req.into_body(), app.config.limits.body_bytes_max)
            .await
            .map_err(|_| PosError::invalid("body too large"))?;
        Ok(PosCall {
            scheme,
            organization,
            request_id,
            query,
            body,
        })
    }
}

/// The caller's active device with this token, and its trade point (DECISIONS 28).
pub async fn device_of(
    app: &AppState,
    call: &PosCall,
    token: &str,
) -> Result<(Device, Arc<TradePoint>), PosError> {
    let device = app.store.device_by_token(token.to_owned()).await?;
    let device = device
        .filter(|d| d.organization_bin == call.organization.bin)
        .ok_or(PosError::status(StatusCode::DeviceNotFound))?;
    if !device.active {
        return Err(PosError::status(StatusCode::DeviceInactive));
    }
    let point = app
        .catalog
        .get()
        .trade_points
        .get(&device.trade_point_id)
        // A trade point the operator moved to another organization is no longer this one's.
        .filter(|t| t.organization_bin == call.organization.bin)
        .cloned()
        .ok_or(PosError::status(StatusCode::TradePointNotFound))?;
    Ok((device, point))
}

/// The answer to the same request made before by the same device (DECISIONS 29), looked up
/// before any other check so that a repeat gets the first answer whatever changed since.
pub async fn early_replay(
    app: &AppState,
    call: &PosCall,
    token: &str,
) -> Result<Option<Response>, PosError> {
    let Some(request_id) = call.request_id.clone() else {
        return Ok(None);
    };
    let device = app.store.device_by_token(token.to_owned()).await?;
    let Some(device) = device.filter(|d| d.organization_bin == call.organization.bin) else {
        return Ok(None);
    };
    let replay = crate::store::PosReplay {
        device_id: device.id,
        request_id,
        body_sha256: call.body_sha256(),
    };
    Ok(app.store.pos_replay(replay).await?.map(raw_json))
}

/// A trade point must be active and accept QR to take new purchases.
pub fn check_trade_point(point: &TradePoint) -> Result<(), PosError> {
    if !point.active {
        return Err(PosError::status(StatusCode::TradePointDisabled));
    }
    if !point.accepts_qr {
        return Err(PosError::status(StatusCode::TradePointNoQr));
    }
    Ok(())
}
