//! POS devices and the replay records of requests answered again on a repeat (DECISIONS 29):
//! a POS device's in `pos_requests`, the operator's in `operator_requests`. Per-table operations
//! only, in the store (SQLite or PostgreSQL); the use cases that replay (POS purchases, refunds,
//! the operator's cancel) decide when.

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::db::{Db, Row, args};
use super::{Store, StoreError, StoreResult};
use crate::domain::{DeviceId, TradePointId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: DeviceId,
    pub organization_bin: String,
    pub trade_point_id: TradePointId,
    pub device_id: String,
    pub token: String,
    pub active: bool,
}

/// Identifies a request for replay: the same requester, X-Request-ID, call and body.
#[derive(Clone, Debug)]
pub struct Replay {
    pub by: Requester,
    pub request_id: String,
    /// The SHA-256 of what makes the request this one: for a POS, the call (`qr/create`) and
    /// its body ([`PosRequestKey`]); for the operator, the body (the call is in `request_id`).
    pub body_sha256: String,
    /// A POS answer stored before the call was part of the key matched the body's SHA-256
    /// alone: such a row is still found by that, so that a repeat across the upgrade places
    /// nothing twice. Rows age out after `limits.pos_replay_retention_s` (a day by default).
    pub body_only_sha256: Option<String>,
}

/// A POS request's key for replay, before its device is known: the X-Request-ID, and the
/// SHA-256 of its call (the path after `/rN/vNN/`) and body, so that the same X-Request-ID and
/// body sent to another call is another request (DECISIONS 29).
#[derive(Clone, Debug)]
pub struct PosRequestKey {
    pub request_id: String,
    pub sha256: String,
    /// The body's SHA-256 alone, the key before the call was part of it ([`Replay`]).
    pub body_only_sha256: String,
}

impl PosRequestKey {
    pub fn new(request_id: String, call: &str, body: &[u8]) -> PosRequestKey {
        let mut digest = Sha256::new();
        digest.update(call.as_bytes());
        digest.update(b"\n");
        digest.update(body);
        PosRequestKey {
            request_id,
            sha256: hex::encode(digest.finalize()),
            body_only_sha256: hex::encode(Sha256::digest(body)),
        }
    }
}

/// Who made a replayable request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    /// A POS device of the merchant API (its row id in `devices`).
    Device(DeviceId),
    /// The operator, through the admin API: one requester, no device.
    Operator,
}

impl Replay {
    /// A POS device's request.
    pub fn device(device_id: DeviceId, key: PosRequestKey) -> Replay {
        Replay {
            by: Requester::Device(device_id),
            request_id: key.request_id,
            body_sha256: key.sha256,
            body_only_sha256: Some(key.body_only_sha256),
        }
    }

    /// The operator's request.
    pub fn operator(request_id: String, body_sha256: String) -> Replay {
        Replay {
            by: Requester::Operator,
            request_id,
            body_sha256,
            body_only_sha256: None,
        }
    }
}

/// What `device/register` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Registered {
    Device(Device),
    /// The DeviceId is already active on another trade point.
    OnOtherTradePoint,
}

fn device_from_row(r: &Row<'_>) -> StoreResult<Device> {
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

pub(super) fn replayed(db: Db<'_>, replay: &Option<Replay>) -> StoreResult<Option<String>> {
    let Some(r) = replay else { return Ok(None) };
    match r.by {
        // The call's own key first; an answer stored under the body alone (`body_only_sha256`)
        // only when there is none.
        Requester::Device(device_id) => db.query_row(
            "SELECT response FROM pos_requests WHERE device_id = ?1 AND request_id = ?2 \
             AND body_sha256 IN (?3, ?4) ORDER BY body_sha256 = ?3 DESC LIMIT 1",
            args![
                device_id,
                r.request_id,
                r.body_sha256,
                r.body_only_sha256.as_deref().unwrap_or(&r.body_sha256)
            ],
            |row| row.get(0),
        ),
        Requester::Operator => db.query_row(
            "SELECT response FROM operator_requests WHERE request_id = ?1 AND body_sha256 = ?2",
            args![r.request_id, r.body_sha256],
            |row| row.get(0),
        ),
    }
}

pub(super) fn remember(
    db: Db<'_>,
    replay: &Option<Replay>,
    response: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let Some(r) = replay else { return Ok(()) };
    // Sent with the transaction's next statement or its `COMMIT` on PostgreSQL: the same request
    // stored by a concurrent transaction first fails that statement, and the transaction runs
    // again and finds the answer stored (`replayed`).
    match r.by {
        Requester::Device(device_id) => db.execute_pipelined(
            "INSERT INTO pos_requests (device_id, request_id, body_sha256, response, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![device_id, r.request_id, r.body_sha256, response, now.as_millisecond()],
        ),
        Requester::Operator => db.execute_pipelined(
            "INSERT INTO operator_requests (request_id, body_sha256, response, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
            args![r.request_id, r.body_sha256, response, now.as_millisecond()],
        ),
    }
}

impl super::Tx<'_> {
    /// The stored answer to a request made before, if any.
    pub fn replayed(&self, replay: &Option<Replay>) -> StoreResult<Option<String>> {
        replayed(self.db, replay)
    }

    /// Stores the answer to a request, for its repeats.
    pub(crate) fn remember(
        &self,
        replay: &Option<Replay>,
        response: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        remember(self.db, replay, response, now)
    }
}

impl Store {
    pub(crate) async fn device_by_token(&self, token: String) -> StoreResult<Option<Device>> {
        self.staged_read(move |db| {
            let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE token = ?1");
            db.query_row(&sql, args![token], device_from_row)
        })
        .await
    }

    /// [`Self::device_by_token`] and, for a request with an X-Request-ID (`request`: the id and
    /// the body's SHA-256), the answer that device got for the same request before, if any
    /// ([`Self::pos_replay`]): one statement, so that a POS call that may be a repeat reads
    /// once before its transaction.
    pub(crate) async fn device_with_replay(
        &self,
        token: String,
        request: Option<PosRequestKey>,
    ) -> StoreResult<Option<(Device, Option<String>)>> {
        let Some(key) = request else {
            return Ok(self.device_by_token(token).await?.map(|d| (d, None)));
        };
        self.staged_read(move |db| {
            // As `replayed`: the call's own key first, then an answer stored under the body alone.
            db.query_row(
                "SELECT d.id, d.organization_bin, d.trade_point_id, d.device_id, d.token, d.active, \
                 (SELECT r.response FROM pos_requests r WHERE r.device_id = d.id \
                 AND r.request_id = ?2 AND r.body_sha256 IN (?3, ?4) \
                 ORDER BY r.body_sha256 = ?3 DESC LIMIT 1) \
                 FROM devices d WHERE d.token = ?1",
                args![token, key.request_id, key.sha256, key.body_only_sha256],
                |r| Ok((device_from_row(r)?, r.get::<Option<String>>(6)?)),
            )
        })
        .await
    }

    /// The stored answer to a request made before, if any.
    pub(crate) async fn pos_replay(&self, replay: Replay) -> StoreResult<Option<String>> {
        self.staged_read(move |db| replayed(db, &Some(replay.clone())))
            .await
    }

    /// Forgets replay records (the POS devices', the operator's, then the MPPs' scans') made
    /// before `before`, at most `limit` in all.
    pub(crate) async fn forget_pos_requests(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> StoreResult<usize> {
        self.transaction(move |tx| {
            let before = before.as_millisecond();
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let pos = tx.db.execute(
                "DELETE FROM pos_requests WHERE (device_id, request_id, body_sha256) IN \
                 (SELECT device_id, request_id, body_sha256 FROM pos_requests WHERE created_at_ms < ?1 LIMIT ?2)",
                args![before, limit],
            )?;
            let left = limit.saturating_sub(i64::try_from(pos).unwrap_or(i64::MAX));
            let operator = tx.db.execute(
                "DELETE FROM operator_requests WHERE (request_id, body_sha256) IN \
                 (SELECT request_id, body_sha256 FROM operator_requests WHERE created_at_ms < ?1 LIMIT ?2)",
                args![before, left],
            )?;
            let left = left.saturating_sub(i64::try_from(operator).unwrap_or(i64::MAX));
            let scans = tx.db.execute(
                "DELETE FROM mpp_scans WHERE (mpp, request_id, body_sha256) IN \
                 (SELECT mpp, request_id, body_sha256 FROM mpp_scans WHERE created_at_ms < ?1 LIMIT ?2)",
                args![before, left],
            )?;
            Ok(pos + operator + scans)
        })
        .await
    }

    /// `device/register`: the same DeviceId on the same trade point gets the same token.
    pub async fn register_device(
        &self,
        organization_bin: String,
        device_id: String,
        trade_point_id: TradePointId,
        new_token: String,
        now: Timestamp,
    ) -> StoreResult<Registered> {
        self.transaction(move |tx| {
            let sql = format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE organization_bin = ?1 AND device_id = ?2 AND active = 1"
            );
            let existing = tx
                .db
                .query_row(&sql, args![organization_bin, device_id], device_from_row)?;
            if let Some(device) = existing {
                if device.trade_point_id == trade_point_id {
                    return Ok(Registered::Device(device));
                }
                return Ok(Registered::OnOtherTradePoint);
            }
            // The id is the database's (a rowid on SQLite, a sequence on PostgreSQL).
            let id = tx
                .db
                .query_row(
                    "INSERT INTO devices (organization_bin, trade_point_id, device_id, token, active, created_at_ms) \
                     VALUES (?1, ?2, ?3, ?4, 1, ?5) RETURNING id",
                    args![organization_bin, trade_point_id, device_id, new_token, now.as_millisecond()],
                    |r| r.get::<DeviceId>(0),
                )?
                .ok_or_else(|| StoreError::Corrupt("a device insert returned no id".to_owned()))?;
            Ok(Registered::Device(Device {
                id,
                organization_bin: organization_bin.clone(),
                trade_point_id,
                device_id: device_id.clone(),
                token: new_token.clone(),
                active: true,
            }))
        })
        .await
    }

    /// `device/delete`: deactivates the device; false if no device of this organization has the
    /// token. A device deleted already stays so and is true: a delete retried after its answer
    /// was lost succeeds.
    pub(crate) async fn delete_device(
        &self,
        organization_bin: String,
        token: String,
    ) -> StoreResult<bool> {
        self.transaction(move |tx| {
            let n = tx.db.execute(
                "UPDATE devices SET active = 0 WHERE token = ?1 AND organization_bin = ?2",
                args![token, organization_bin],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

pub(crate) use Registered as DeviceRegistration;

#[cfg(test)]
mod tests {
    use super::super::payments::tests::{block_on, on_postgres, on_sqlite};
    use super::*;
    use rusqlite::{Connection, params};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("a time")
    }

    /// Two devices; the first got an answer to request `r1`. The one read finds the device by
    /// its token and that answer only for the same device, request id and body.
    fn a_device_and_its_replay_are_found_in_one_read(store: &Store) {
        block_on(async {
            let register = |device: &str, token: &str| {
                store.register_device(
                    "123456789012".to_owned(),
                    device.to_owned(),
                    TradePointId::new(1001),
                    token.to_owned(),
                    at(1),
                )
            };
            let Registered::Device(first) = register("till-1", "token-1").await.expect("one")
            else {
                panic!("a new device")
            };
            register("till-2", "token-2").await.expect("two");
            let key = |id: &str, call: &str, body: &str| {
                PosRequestKey::new(id.to_owned(), call, body.as_bytes())
            };
            let replay = Some(Replay::device(first.id, key("r1", "qr/create", "b1")));
            store
                .transaction(move |tx| tx.remember(&replay, "first answer", at(2)))
                .await
                .expect("remembered");
            // An answer stored by a build whose key was the body alone.
            let old = Some(Replay {
                by: Requester::Device(first.id),
                request_id: "r9".to_owned(),
                body_sha256: key("r9", "qr/create", "b9").body_only_sha256,
                body_only_sha256: None,
            });
            store
                .transaction(move |tx| tx.remember(&old, "old answer", at(2)))
                .await
                .expect("remembered");

            let look = |token: &str, request: Option<(&str, &str, &str)>| {
                let request = request.map(|(id, call, body)| key(id, call, body));
                store.device_with_replay(token.to_owned(), request)
            };
            for (request, answer) in [
                (("r1", "qr/create", "b1"), "first answer"),
                // Any call finds the old answer of its body, as it did when it was stored.
                (("r9", "qr/create", "b9"), "old answer"),
                (("r9", "payment/return", "b9"), "old answer"),
            ] {
                let found = look("token-1", Some(request)).await.expect("a read");
                let (device, found) = found.expect("the device");
                assert_eq!(device, first);
                assert_eq!(found.as_deref(), Some(answer), "{request:?}");
            }
            for (token, request) in [
                ("token-1", None),
                ("token-1", Some(("r1", "qr/create", "another body"))),
                // The same id and body to another call is another request (DECISIONS 29).
                ("token-1", Some(("r1", "qr/create-link", "b1"))),
                ("token-1", Some(("r2", "qr/create", "b1"))),
                ("token-2", Some(("r1", "qr/create", "b1"))),
            ] {
                let (device, answer) = look(token, request)
                    .await
                    .expect("a read")
                    .expect("the device");
                assert_eq!(device.token, token);
                assert_eq!(answer, None, "{token} {request:?}");
            }
            let none = look("no-such-token", Some(("r1", "qr/create", "b1"))).await;
            assert!(matches!(none, Ok(None)), "{none:?}");
        });
    }

    #[test]
    fn a_device_and_its_replay_are_found_in_one_read_on_sqlite() {
        on_sqlite(a_device_and_its_replay_are_found_in_one_read);
    }

    #[test]
    fn a_device_and_its_replay_are_found_in_one_read_on_postgres() {
        on_postgres(
            "a_device_and_its_replay_are_found_in_one_read_on_postgres",
            "device_replay",
            a_device_and_its_replay_are_found_in_one_read,
        );
    }

    #[test]
    fn the_operators_records_leave_device_zero_and_still_answer_repeats() {
        let mut conn = Connection::open_in_memory().expect("a database");
        super::super::migrations::run_to(&mut conn, 11).expect("the first eleven migrations");
        let insert = "INSERT INTO pos_requests (device_id, request_id, body_sha256, response, created_at_ms) \
                      VALUES (?1, ?2, 'h', ?3, 1)";
        conn.execute(insert, params![0, "cancel-7-r1", "first cancel"])
            .expect("an admin record as older builds kept it");
        conn.execute(insert, params![3, "r1", "first create"])
            .expect("a device's record");
        super::super::migrations::run(&mut conn).expect("the rest");

        let operator = Some(Replay::operator("cancel-7-r1".into(), "h".into()));
        // Stored under the body alone, as builds before the call was in the key did.
        let old_key = |request_id: &str| Replay {
            by: Requester::Device(DeviceId::new(3)),
            request_id: request_id.to_owned(),
            body_sha256: "the call and body".to_owned(),
            body_only_sha256: Some("h".to_owned()),
        };
        let device = Some(old_key("r1"));
        assert_eq!(
            replayed(Db::Lite(&conn), &operator)
                .expect("a read")
                .as_deref(),
            Some("first cancel")
        );
        assert_eq!(
            replayed(Db::Lite(&conn), &device)
                .expect("a read")
                .as_deref(),
            Some("first create")
        );
        let zero: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pos_requests WHERE device_id = 0",
                [],
                |r| r.get(0),
            )
            .expect("a count");
        assert_eq!(zero, 0, "no record names a device that does not exist");

        // The same request id from a device is another request than the operator's.
        let other = Some(old_key("cancel-7-r1"));
        assert_eq!(replayed(Db::Lite(&conn), &other).expect("a read"), None);
        let next = Some(Replay::operator("cancel-8-r2".into(), "h".into()));
        remember(Db::Lite(&conn), &next, "second cancel", at(5)).expect("a record");
        assert_eq!(
            replayed(Db::Lite(&conn), &next).expect("a read").as_deref(),
            Some("second cancel")
        );
    }
}
