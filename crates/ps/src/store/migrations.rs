//! SQLite's schema migrations, applied in order at start-up; `PRAGMA user_version` records how
//! many ran. PostgreSQL has its own (`migrations_pg.rs`), which end in the same tables.

use std::path::Path;

use rusqlite::Connection;

use super::{StoreError, StoreResult};

const MIGRATIONS: &[&str] = &[
    // 1: operator data, purchases, POS devices and POS idempotency records.
    r#"
    CREATE TABLE catalog (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        doc TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;

    CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        trade_point_id INTEGER NOT NULL,
        service_id INTEGER,
        device_id INTEGER,
        external_id TEXT,
        qr_token TEXT UNIQUE,
        amount_tiyn INTEGER CHECK (amount_tiyn >= 0),
        created_at_ms INTEGER NOT NULL,
        expire_at_ms INTEGER,
        mpp TEXT,
        customer_id TEXT,
        scanned_at_ms INTEGER,
        confirm_until_ms INTEGER,
        deadline_ms INTEGER,
        parameters TEXT,
        checkout_response TEXT,
        mpp_payment_id TEXT,
        verdict TEXT,
        notify_response TEXT,
        finished_at_ms INTEGER,
        receipt_token TEXT NOT NULL UNIQUE
    );
    CREATE INDEX payments_open_by_deadline ON payments (deadline_ms)
        WHERE status IN ('created', 'scanned');
    CREATE INDEX payments_by_customer ON payments (mpp, customer_id, trade_point_id, finished_at_ms)
        WHERE status = 'confirmed';

    CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        organization_bin TEXT NOT NULL,
        trade_point_id INTEGER NOT NULL,
        device_id TEXT NOT NULL,
        token TEXT NOT NULL UNIQUE,
        active INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX devices_active_by_device_id ON devices (organization_bin, device_id) WHERE active = 1;

    CREATE TABLE pos_requests (
        device_id INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (device_id, request_id, body_sha256)
    ) WITHOUT ROWID;
    "#,
    // 2: refunds (return QRs and refund operations share one id space) and the outbox.
    r#"
    CREATE TABLE refunds (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        trade_point_id INTEGER NOT NULL,
        device_id INTEGER,
        external_id TEXT,
        qr_token TEXT UNIQUE,
        expire_at_ms INTEGER,
        mpp TEXT,
        customer_id TEXT,
        identified_at_ms INTEGER,
        payment_id INTEGER REFERENCES payments (id),
        amount_tiyn INTEGER CHECK (amount_tiyn > 0),
        requested_at_ms INTEGER,
        finished_at_ms INTEGER,
        mpp_result TEXT,
        created_at_ms INTEGER NOT NULL,
        receipt_token TEXT NOT NULL UNIQUE
    );
    CREATE INDEX refunds_by_payment ON refunds (payment_id) WHERE payment_id IS NOT NULL;
    CREATE INDEX refunds_by_status ON refunds (status, id);

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        ref_id INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        due_at_ms INTEGER NOT NULL,
        lease_until_ms INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        flagged INTEGER NOT NULL DEFAULT 0,
        done_at_ms INTEGER,
        UNIQUE (kind, ref_id)
    );
    CREATE INDEX outbox_due ON outbox (due_at_ms) WHERE done_at_ms IS NULL;
    CREATE INDEX pos_requests_by_age ON pos_requests (created_at_ms);
    "#,
    // 3: registers: their operations by MPP and time, their e-mails (one per MPP, kind and
    // period, ever) and the scheduler's last run.
    r#"
    CREATE INDEX payments_for_registers ON payments (mpp, finished_at_ms, id)
        WHERE status = 'confirmed';
    CREATE INDEX refunds_for_registers ON refunds (mpp, finished_at_ms, id)
        WHERE status = 'completed';

    CREATE TABLE register_deliveries (
        id INTEGER PRIMARY KEY,
        mpp TEXT NOT NULL,
        kind TEXT NOT NULL,
        period TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        sent_at_ms INTEGER,
        sent_to TEXT,
        message_id TEXT,
        UNIQUE (mpp, kind, period)
    );

    CREATE TABLE register_schedule (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_run_date TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    "#,
    // 4: due outbox rows found by kind and due time. The planner preferred the UNIQUE (kind,
    // ref_id) index for `kind = ?` and then read every row of that kind ever written.
    r#"
    DROP INDEX outbox_due;
    CREATE INDEX outbox_due ON outbox (kind, due_at_ms) WHERE done_at_ms IS NULL;
    "#,
    // 5: the party a side effect goes to (a refund's MPP), so that each MPP's due deliveries are
    // claimed up to its own free slots.
    r#"
    ALTER TABLE outbox ADD COLUMN target TEXT NOT NULL DEFAULT '';
    UPDATE outbox SET target = COALESCE((SELECT mpp FROM refunds WHERE refunds.id = outbox.ref_id), '')
        WHERE kind = 'refund';
    CREATE INDEX outbox_due_by_target ON outbox (kind, target, due_at_ms) WHERE done_at_ms IS NULL;
    "#,
    // 6: what the POS that placed a refund was told (DECISIONS 39); NULL while it waits for the
    // MPP's answer. Refunds placed before this were all answered "accepted" at once.
    r#"
    ALTER TABLE refunds ADD COLUMN pos_answer TEXT CHECK (pos_answer IN ('accepted', 'refused'));
    UPDATE refunds SET pos_answer = 'accepted' WHERE requested_at_ms IS NOT NULL;
    "#,
    // 7: one id space for payments and refunds (DECISIONS 40; `store/ids.rs`). The counter starts
    // past every id either table already gave out, so new ids collide with none of them. Ids that
    // two operations already share from before stay as they are: they were given to MPPs and POS
    // devices and cannot be renumbered.
    r#"
    CREATE TABLE operation_ids (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_id INTEGER NOT NULL
    );
    INSERT INTO operation_ids (id, last_id) VALUES (1, MAX(
        IFNULL((SELECT MAX(id) FROM payments), 0),
        IFNULL((SELECT MAX(id) FROM refunds), 0)));
    "#,
    // 8: the commission is fixed when a payment is confirmed (DECISIONS 37, 38): the rate and
    // minimum of the payment service and of the «Сервис» service, as the MPP had them then.
    // Payments confirmed before this migration get the rates their MPP has now, the best that is
    // known of them; from here on they never change. Catalog documents hold amounts in `Amount`'s
    // one written form, always two decimals (`"1.00"`), so dropping the point gives tiyn exactly.
    // No MPP before this migration had a «Сервис» setting, so theirs is the payment commission.
    r#"
    ALTER TABLE payments ADD COLUMN commission_bps INTEGER;
    ALTER TABLE payments ADD COLUMN commission_min_tiyn INTEGER;
    ALTER TABLE payments ADD COLUMN service_commission_bps INTEGER;
    ALTER TABLE payments ADD COLUMN service_commission_min_tiyn INTEGER;
    UPDATE payments SET
        commission_bps = IFNULL(json_extract(c.doc, '$.commission_bps'), 0),
        commission_min_tiyn = CAST(REPLACE(json_extract(c.doc, '$.commission_min'), '.', '') AS INTEGER),
        service_commission_bps = IFNULL(json_extract(c.doc, '$.commission_bps'), 0),
        service_commission_min_tiyn = CAST(REPLACE(json_extract(c.doc, '$.commission_min'), '.', '') AS INTEGER)
    FROM catalog c
    WHERE c.kind = 'mpp' AND c.key = payments.mpp AND payments.status = 'confirmed';
    "#,
    // 9: the language of the scan that identified the customer (DECISIONS 36): a purchase's
    // binding scan, and a return QR's scan or else its purchase's, for the refund's X-Locale.
    // NULL where no scan said (rows from before, the sandbox's emulator): ru-RU.
    r#"
    ALTER TABLE payments ADD COLUMN scan_locale TEXT;
    ALTER TABLE refunds ADD COLUMN locale TEXT;
    "#,
    // 10: purchases never paid found by when they ended, so that retention (DECISIONS 43) deletes
    // the oldest without reading the others.
    r#"
    CREATE INDEX payments_unpaid_by_end ON payments (finished_at_ms)
        WHERE status IN ('cancelled', 'failed', 'expired');
    "#,
    // 11: a lease names the node and the run (one process's life) that holds it, so that a
    // restarted node takes back at once what its killed run held instead of waiting it out.
    r#"
    ALTER TABLE outbox ADD COLUMN lease_node TEXT;
    ALTER TABLE outbox ADD COLUMN lease_run TEXT;
    "#,
    // 12: the operator's replayable answers (the admin API's cancel) in their own table, keyed
    // by what the operator sent alone, instead of under a device id no device has (0); the
    // records kept so far move there, so a repeat still hears its first answer.
    r#"
    CREATE TABLE operator_requests (
        request_id TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (request_id, body_sha256)
    ) WITHOUT ROWID;
    CREATE INDEX operator_requests_by_age ON operator_requests (created_at_ms);
    INSERT INTO operator_requests (request_id, body_sha256, response, created_at_ms)
        SELECT request_id, body_sha256, response, created_at_ms FROM pos_requests WHERE device_id = 0;
    DELETE FROM pos_requests WHERE device_id = 0;
    "#,
    // 13: the version of the operator data (DECISIONS 45): each change through the admin API
    // bumps it, so that every node of a PostgreSQL database sees that its snapshot is stale. One
    // node on SQLite needs no such signal; the table is here too so the store's code is one.
    r#"
    CREATE TABLE catalog_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO catalog_version (id, version) VALUES (1, 0);
    "#,
    // 14: each delivery attempt of an outbox row (a refund, a register e-mail), for the
    // operator's timeline: when it started and ended, on which node, and how it ended. Written
    // in the transaction that records the attempt's outcome; bounded per row (`outbox.rs`).
    // And when checkout froze a Custom purchase's amount, which the timeline shows too.
    r#"
    CREATE TABLE outbox_attempts (
        outbox_id INTEGER NOT NULL REFERENCES outbox (id),
        attempt INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'refused', 'failed')),
        error TEXT,
        node TEXT NOT NULL,
        PRIMARY KEY (outbox_id, attempt)
    ) WITHOUT ROWID;
    ALTER TABLE payments ADD COLUMN checkout_at_ms INTEGER;
    "#,
    // 15: no IN list of three or more values where a row is written. SQLite evaluates such a
    // list through a temporary table it builds and drops each time: every UPDATE of a purchase
    // (partial index `payments_unpaid_by_end`, evaluated for the old and the new row) and every
    // attempt's CHECK. That was about a tenth of the writer's profile, plus the allocations it
    // made; the MPP mix ran 19 % faster without it (docs/benchmarks.md). The same sets, with OR.
    r#"
    DROP INDEX payments_unpaid_by_end;
    CREATE INDEX payments_unpaid_by_end ON payments (finished_at_ms)
        WHERE status = 'cancelled' OR status = 'failed' OR status = 'expired';
    CREATE TABLE outbox_attempts_15 (
        outbox_id INTEGER NOT NULL REFERENCES outbox (id),
        attempt INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL
            CHECK (outcome = 'delivered' OR outcome = 'refused' OR outcome = 'failed'),
        error TEXT,
        node TEXT NOT NULL,
        PRIMARY KEY (outbox_id, attempt)
    ) WITHOUT ROWID;
    INSERT INTO outbox_attempts_15 SELECT * FROM outbox_attempts;
    DROP TABLE outbox_attempts;
    ALTER TABLE outbox_attempts_15 RENAME TO outbox_attempts;
    "#,
    // 16: a notifyPayment answer kept as its form and the purchase's receipt token (issue 13:
    // bytes per purchase). Every answer of one verdict, language and public URL is the same text
    // around the receipt token; the text is kept once in `notify_forms`, and a purchase names its
    // form. What was stored before stays in `notify_response` and is read as it was.
    r#"
    CREATE TABLE notify_forms (
        id INTEGER PRIMARY KEY,
        prefix TEXT NOT NULL,
        with_token INTEGER NOT NULL CHECK (with_token = 0 OR with_token = 1),
        suffix TEXT NOT NULL,
        UNIQUE (prefix, with_token, suffix)
    );
    ALTER TABLE payments ADD COLUMN notify_form INTEGER REFERENCES notify_forms (id);
    "#,
    // 17: whether a refund gives back its share of the payment's commission, fixed when the
    // refund's row is made (DECISIONS 37), so that changing `registers.refund_commission` later
    // changes no register of the past. Rows made before read the setting in force (NULL).
    r#"
    ALTER TABLE refunds ADD COLUMN commission_mode TEXT
        CHECK (commission_mode IS NULL OR commission_mode = 'none' OR commission_mode = 'reverse');
    "#,
    // 18: the refunds made before 17, found without reading the table, so that the first start
    // after it gives them the mode in force then (`Tx::fix_refund_commission_modes`); empty after.
    r#"
    CREATE INDEX refunds_without_commission_mode ON refunds (id) WHERE commission_mode IS NULL;
    "#,
    // 19: the purchase each Static or Custom scan made, by the MPP's X-Request-ID and body, so
    // that a retried scan gets the same purchase (`ScanKey`); kept a day, as POS replay records.
    r#"
    CREATE TABLE mpp_scans (
        mpp TEXT NOT NULL,
        request_id TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        payment_id INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (mpp, request_id, body_sha256)
    ) WITHOUT ROWID;
    CREATE INDEX mpp_scans_by_age ON mpp_scans (created_at_ms);
    "#,
    // 20: how many times each register's e-mail was asked to be sent: 1, and one more for each
    // sending the operator asked again (`Store::send_register`), which gets a Message-ID of its
    // own.
    r#"
    ALTER TABLE register_deliveries ADD COLUMN sendings INTEGER NOT NULL DEFAULT 1;
    "#,
];

/// The schema version of the SQLite file at `path`, read without changing it (`None`: no file
/// yet), and this build's.
pub(super) fn versions(path: &Path) -> StoreResult<(Option<i64>, usize)> {
    if !path.exists() {
        return Ok((None, MIGRATIONS.len()));
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok((Some(found), MIGRATIONS.len()))
}

/// Applies every migration not applied yet; a database a newer build migrated is refused, so a
/// rollback to an older binary never writes rows in tables it does not know.
pub(super) fn run(conn: &mut Connection) -> StoreResult<()> {
    let done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if usize::try_from(done).is_ok_and(|done| done > MIGRATIONS.len()) {
        return Err(StoreError::NewerSchema {
            found: done,
            known: MIGRATIONS.len(),
        });
    }
    run_to(conn, MIGRATIONS.len())
}

/// Refuses a database whose schema is not this build's, for a reader that must not migrate it.
pub(super) fn check_current(conn: &Connection) -> StoreResult<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len();
    match usize::try_from(found) {
        Ok(done) if done == known => Ok(()),
        Ok(done) if done < known => Err(StoreError::OlderSchema { found, known }),
        _ => Err(StoreError::NewerSchema { found, known }),
    }
}

/// Applies the migrations not applied yet, up to the first `count` (tests stop early to build a
/// database as an older build left it).
pub(super) fn run_to(conn: &mut Connection, count: usize) -> StoreResult<()> {
    let done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let done = usize::try_from(done).unwrap_or(0);
    let mut applied = 0;
    let mut apply = || -> StoreResult<()> {
        for (index, sql) in MIGRATIONS.iter().enumerate().take(count).skip(done) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(index + 1).unwrap_or(i64::MAX),
            )?;
            tx.commit()?;
            tracing::debug!(migration = index + 1, "applied schema migration");
            applied += 1;
        }
        Ok(())
    };
    let result = apply();
    // One line for all (a new database has every migration to apply), also when one failed
    // after others were applied.
    if applied > 0 {
        tracing::info!(
            applied,
            from = done,
            version = done + applied,
            "applied schema migrations"
        );
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_of_a_newer_build_is_refused_and_left_as_it_is() {
        let mut conn = Connection::open_in_memory().expect("a database");
        run(&mut conn).expect("migrations");
        let newer = i64::try_from(MIGRATIONS.len() + 1).expect("a small number");
        conn.pragma_update(None, "user_version", newer)
            .expect("a version");
        let refused = run(&mut conn);
        assert!(
            matches!(refused, Err(StoreError::NewerSchema { found, known })
                if found == newer && known == MIGRATIONS.len()),
            "{refused:?}"
        );
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("a version");
        assert_eq!(version, newer);
    }

    #[test]
    fn a_reader_takes_only_a_database_of_this_builds_schema() {
        let mut conn = Connection::open_in_memory().expect("a database");
        run_to(&mut conn, 1).expect("the first migration");
        assert!(matches!(
            check_current(&conn),
            Err(StoreError::OlderSchema { found: 1, .. })
        ));
        run(&mut conn).expect("the rest");
        check_current(&conn).expect("this build's schema");
        let newer = i64::try_from(MIGRATIONS.len() + 1).expect("a small number");
        conn.pragma_update(None, "user_version", newer)
            .expect("a version");
        assert!(matches!(
            check_current(&conn),
            Err(StoreError::NewerSchema { .. })
        ));
    }
}
