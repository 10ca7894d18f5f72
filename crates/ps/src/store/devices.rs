//! POS devices and the merchant API's idempotency records (DECISIONS 29).

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::payments::{NewPayment, insert};
use super::{Store, StoreResult};
use crate::domain::Payment;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: i64,
    pub organization_bin: String,
    pub trade_point_id: i64,
    pub device_id: String,
    pub token: String,
    pub active: bool,
}

/// Identifies a POS request for replay: the same device, X-Request-ID and body.
#[derive(Clone, Debug)]
pub struct PosReplay {
    pub device_id: i64,
    pub request_id: String,
    pub body_sha256: String,
}

/// What `device/register` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    Device(Device),
    /// The DeviceId is already active on another trade point.
    OnOtherTradePoint,
}

fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        organization_bin: r.get(1)?,
        trade_point_id: r.get(2)?,
        device_id: r.get(3)?,
        token: r.get(4)?,
        active: r.get(5)?,
    })
}

const DEVICE_COLUMNS: &str = "id, organization_bin, trade_point_id, device_id, token, active";

pub(super) fn replayed(
    conn: &Connection,
    replay: &Option<PosReplay>,
) -> StoreResult<Option<String>> {
    let Some(r) = replay else { return Ok(None) };
    let found = conn
        .prepare_cached(
            "SELECT response FROM pos_requests WHERE device_id = ?1 AND request_id = ?2 AND body_sha256 = ?3",
        )?
        .query_row(params![r.device_id, r.request_id, r.body_sha256], |row| row.get(0))
        .optional()?;
    Ok(found)
}

pub(super) fn remember(
    conn: &Connection,
    replay: &Option<PosReplay>,
    response: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let Some(r) = replay else { return Ok(()) };
    conn.prepare_cached(
        "INSERT INTO pos_requests (device_id, request_id, body_sha256, response, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![r.device_id, r.request_id, r.body_sha256, response, now.as_millisecond()])?;
    Ok(())
}

impl Store {
    pub async fn device_by_token(&self, token: String) -> StoreResult<Option<Device>> {
        self.read(move |conn| {
            let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([token], device_from_row)
                .optional()?)
        })
        .await
    }

    /// The stored answer to a POS request made before, if any.
    pub async fn pos_replay(&self, replay: PosReplay) -> StoreResult<Option<String>> {
        self.read(move |conn| replayed(conn, &Some(replay))).await
    }

    /// Forgets POS idempotency records made before `before` (at most `limit`).
    pub async fn forget_pos_requests(&self, before: Timestamp, limit: usize) -> StoreResult<usize> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM pos_requests WHERE (device_id, request_id, body_sha256) IN \
                     (SELECT device_id, request_id, body_sha256 FROM pos_requests WHERE created_at_ms < ?1 LIMIT ?2)",
                )?
                .execute(params![before.as_millisecond(), i64::try_from(limit).unwrap_or(i64::MAX)])?;
            Ok(n)
        })
        .await
    }

    /// `device/register`: the same DeviceId on the same trade point gets the same token.
    pub async fn register_device(
        &self,
        organization_bin: String,
        device_id: String,
        trade_point_id: i64,
        new_token: String,
        now: Timestamp,
    ) -> StoreResult<Registered> {
        self.write(move |conn| {
            let sql = format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE organization_bin = ?1 AND device_id = ?2 AND active = 1"
            );
            let existing = conn
                .prepare_cached(&sql)?
                .query_row(params![organization_bin, device_id], device_from_row)
                .optional()?;
            if let Some(device) = existing {
                if device.trade_point_id == trade_point_id {
                    return Ok(Registered::Device(device));
                }
                return Ok(Registered::OnOtherTradePoint);
            }
            conn.prepare_cached(
                "INSERT INTO devices (organization_bin, trade_point_id, device_id, token, active, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            )?
            .execute(params![organization_bin, trade_point_id, device_id, new_token, now.as_millisecond()])?;
            Ok(Registered::Device(Device {
                id: conn.last_insert_rowid(),
                organization_bin,
                trade_point_id,
                device_id,
                token: new_token,
                active: true,
            }))
        })
        .await
    }

    /// `device/delete`: deactivates the device; false if no active device of this organization has the token.
    pub async fn delete_device(
        &self,
        organization_bin: String,
        token: String,
    ) -> StoreResult<bool> {
        self.write(move |conn| {
            let n = conn
                .prepare_cached("UPDATE devices SET active = 0 WHERE token = ?1 AND organization_bin = ?2 AND active = 1")?
                .execute(params![token, organization_bin])?;
            Ok(n > 0)
        })
        .await
    }

    /// Creates a purchase for a POS request, or replays the answer to the same request.
    pub async fn pos_create_payment(
        &self,
        replay: Option<PosReplay>,
        new: NewPayment,
        now: Timestamp,
        respond: impl FnOnce(&Payment) -> String + Send + 'static,
    ) -> StoreResult<String> {
        self.write(move |conn| {
            if let Some(response) = replayed(conn, &replay)? {
                return Ok(response);
            }
            let payment = insert(conn, &new, now)?;
            let response = respond(&payment);
            remember(conn, &replay, &response, now)?;
            Ok(response)
        })
        .await
    }
}

pub use Registered as DeviceRegistration;
