//! Trade points and devices: `partner/tradepoints`, `device/register`, `device/delete`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use tolem_wire::Problem;
use tolem_wire::merchant::{
    self, DeviceDeleteRequest, DeviceRegisterRequest, Envelope, StatusCode,
};

use super::{PosCall, PosError, PosResult, check_trade_point, envelope, path_text};
use crate::domain::TradePointId;
use crate::state::AppState;
use crate::store::DeviceRegistration;

const DEVICE_ID_LEN_MAX: usize = 64;

pub(super) async fn trade_points(State(app): State<AppState>, call: PosCall) -> PosResult {
    list(&app, &call.organization()?.bin)
}

pub(super) async fn trade_points_of_bin(
    State(app): State<AppState>,
    bin: Result<Path<String>, PathRejection>,
    call: PosCall,
) -> PosResult {
    let bin = path_text(bin)?;
    call.check_bin(Some(&bin))?;
    list(&app, &bin)
}

fn list(app: &AppState, bin: &str) -> PosResult {
    let catalog = app.catalog.get();
    let points: Vec<_> = catalog
        .trade_points_of(bin)
        .into_iter()
        .filter(|t| t.active)
        .map(|t| merchant::TradePoint {
            trade_point_id: t.id.get(),
            trade_point_name: t.name.clone(),
        })
        .collect();
    if points.is_empty() {
        return Err(PosError::status(StatusCode::NoTradePoints));
    }
    Ok(envelope(HttpStatus::OK, &Envelope::ok(points)))
}

pub(super) async fn register(State(app): State<AppState>, call: PosCall) -> PosResult {
    let req: DeviceRegisterRequest = call.parse()?;
    call.check_bin(req.organizationbin.as_deref())?;
    let valid_id = !req.deviceid.is_empty()
        && req.deviceid.len() <= DEVICE_ID_LEN_MAX
        && req
            .deviceid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_id {
        return Err(PosError::param(
            "DeviceId",
            Problem::Expected("[A-Za-z0-9_-]{1,64}"),
        ));
    }
    let organization = call.organization()?;
    let catalog = app.catalog.get();
    let point = catalog
        .trade_points
        .get(&TradePointId::new(req.tradepointid))
        .filter(|t| t.organization_bin == organization.bin)
        .ok_or(PosError::status(StatusCode::TradePointNotFound))?;
    check_trade_point(point)?;
    let token = uuid::Uuid::new_v4().to_string();
    let registered = app
        .store
        .register_device(
            organization.bin.clone(),
            req.deviceid,
            point.id,
            token,
            app.clock.now(),
        )
        .await?;
    match registered {
        DeviceRegistration::Device(device) => Ok(envelope(
            HttpStatus::OK,
            &Envelope::ok(merchant::DeviceToken {
                device_token: device.token,
            }),
        )),
        DeviceRegistration::OnOtherTradePoint => {
            Err(PosError::status(StatusCode::DeviceOnOtherTradePoint))
        }
    }
}

pub(super) async fn delete(State(app): State<AppState>, call: PosCall) -> PosResult {
    let req: DeviceDeleteRequest = call.parse()?;
    call.check_bin(req.organizationbin.as_deref())?;
    if app
        .store
        .delete_device(
            call.organization()?.bin.clone(),
            super::device_token(&req.devicetoken),
        )
        .await?
    {
        Ok(envelope(HttpStatus::OK, &Envelope::ok_empty()))
    } else {
        Err(PosError::status(StatusCode::DeviceNotFound))
    }
}
