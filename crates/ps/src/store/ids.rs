//! PS operation ids (DECISIONS 40): payments and refunds draw their ids from one sequence, so an
//! id names one operation across the whole PS, in registers and receipts alike. Ids stay integers
//! (JSON numbers on the wire); only who hands them out changed. A typed id of `domain::ids` crosses
//! into and out of SQL as the integer it wraps (`db.rs`'s `Arg`/`Column`).

use std::path::Path;

use super::db::Db;
use super::{StoreError, StoreResult};

const NEXT_ON_POSTGRES: &str = "SELECT nextval('operation_ids')";

/// Asks ahead for the id [`next_operation_id`] will take, on PostgreSQL, so that it travels with
/// the transaction's next read instead of a round trip of its own (an id taken and not used is a
/// gap, which ids have anyway). Nothing on SQLite.
pub(super) fn want_next_operation_id(db: Db<'_>) -> StoreResult<()> {
    if db.is_postgres() {
        db.prefetch(NEXT_ON_POSTGRES, &[])?;
    }
    Ok(())
}

/// The next operation id, taken inside the caller's write transaction.
///
/// On PostgreSQL it is the `operation_ids` sequence's next value: a sequence hands every node its
/// own numbers without a lock held to the commit, and never goes back. On SQLite every write runs
/// one at a time on the writer thread, so a counter row serves: the counter (`operation_ids`,
/// migration 7) never goes back, so an id stays unused after its purchase is deleted
/// (DECISIONS 43's retention) instead of naming a new operation later. It is also lifted past the
/// highest id of both tables: a row written without the counter (a database filled by an older
/// build or by a tool) can never make the next id collide.
pub(super) fn next_operation_id(db: Db<'_>) -> StoreResult<i64> {
    let sql = if db.is_postgres() {
        NEXT_ON_POSTGRES
    } else {
        // Each `(SELECT MAX(id) …)` stands alone so that SQLite answers it from the end of the
        // primary key instead of scanning the table. The scalar MAX of three is SQLite's.
        "UPDATE operation_ids SET last_id = MAX(last_id, \
         COALESCE((SELECT MAX(id) FROM payments), 0), \
         COALESCE((SELECT MAX(id) FROM refunds), 0)) + 1 \
         WHERE id = 1 RETURNING last_id"
    };
    db.query_row(sql, &[], |r| r.get(0))?
        .ok_or_else(|| super::StoreError::Corrupt("the operation id counter is missing".to_owned()))
}

/// Why `tolem restored` cannot move the ids of a SQLite file from before migration 7: its
/// payments and refunds each took the next row number of their own table, which nothing can lift.
const OLDER_THAN_ONE_SEQUENCE: &str = "its schema is from before payments and refunds took their \
     ids from one sequence (schema 7, builds of 2026-12-01 on), so nothing can move them, and a \
     build that old would hand out again the ids a newer one gave since the backup; roll back \
     only to a build of 2026-12-01 or later, with a backup it made";

/// The gap `tolem restored` leaves by default: more operations than any PS makes between two
/// backups, and few enough that ids stay far below 2^53 (exact in every JSON reader) after
/// millions of restores.
pub const RESTORE_GAP: i64 = 1_000_000_000;

/// After a restore (`tolem restored`, docs/deployment.md): lifts the operation id counter `gap`
/// past the highest id the restored database holds or had handed out, so that ids its lost
/// history issued — known to MPPs, POS software, receipts and registers — are never issued again
/// for other operations (DECISIONS 40). Returns the next id before and after. The database must
/// be one a PS has opened (its counter exists); nothing else should be writing to it.
pub fn skip_operation_ids(path: &Path, gap: i64) -> StoreResult<(i64, i64)> {
    if gap < 1 {
        return Err(StoreError::Corrupt(format!(
            "the gap must be at least 1, not {gap}"
        )));
    }
    let path = path.to_owned();
    std::thread::scope(|s| {
        s.spawn(|| {
            if crate::config::is_postgres_url(&path) {
                let url = super::pg_tls::parse(&path.to_string_lossy())?;
                let conn = super::db::PgConn::connect(&url)?;
                let db = Db::Pg(&conn);
                let high: i64 = db
                    .query_row(
                        "SELECT GREATEST((SELECT last_value FROM operation_ids), \
                         COALESCE((SELECT MAX(id) FROM payments), 0), \
                         COALESCE((SELECT MAX(id) FROM refunds), 0))",
                        &[],
                        |r| r.get(0),
                    )?
                    .unwrap_or_default();
                let lifted = lift(high, gap)?;
                db.query_row(
                    "SELECT setval('operation_ids', GREATEST(last_value, ?1)) FROM operation_ids",
                    &[&lifted],
                    |r| r.get::<i64>(0),
                )?;
                Ok((high + 1, lifted + 1))
            } else {
                let mut conn = rusqlite::Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                // A Tolem file of schema 1-6 (a PS made it, before the counter); any other file
                // without the counter fails below as no PS's database.
                let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                let counted: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'operation_ids')",
                    [],
                    |r| r.get(0),
                )?;
                if !counted && (1..7).contains(&version) {
                    return Err(StoreError::Refused(OLDER_THAN_ONE_SEQUENCE.to_owned()));
                }
                let high: i64 = tx.query_row(
                    "SELECT MAX(last_id, \
                     COALESCE((SELECT MAX(id) FROM payments), 0), \
                     COALESCE((SELECT MAX(id) FROM refunds), 0)) \
                     FROM operation_ids WHERE id = 1",
                    [],
                    |r| r.get(0),
                )?;
                let lifted = lift(high, gap)?;
                tx.execute(
                    "UPDATE operation_ids SET last_id = ?1 WHERE id = 1",
                    [lifted],
                )?;
                tx.commit()?;
                Ok((high + 1, lifted + 1))
            }
        })
        .join()
        .map_err(|_| StoreError::Corrupt("moving the operation ids panicked".to_owned()))?
    })
}

/// On PostgreSQL, how many other client sessions are connected to the database now: a node
/// still serving has some (its pool), and `tolem restored` must run with every node stopped
/// (`docs/deployment.md`, Backups). `None` for a SQLite file, whose lock says it instead.
pub fn other_sessions(path: &Path) -> StoreResult<Option<i64>> {
    if !crate::config::is_postgres_url(path) {
        return Ok(None);
    }
    let path = path.to_owned();
    std::thread::scope(|s| {
        s.spawn(|| {
            let url = super::pg_tls::parse(&path.to_string_lossy())?;
            let conn = super::db::PgConn::connect(&url)?;
            // Every role sees these columns of every session (not what they run).
            let others: i64 = Db::Pg(&conn)
                .query_row(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    &[],
                    |r| r.get(0),
                )?
                .unwrap_or_default();
            Ok(Some(others))
        })
        .join()
        .map_err(|_| StoreError::Corrupt("counting the sessions panicked".to_owned()))?
    })
}

fn lift(high: i64, gap: i64) -> StoreResult<i64> {
    high.checked_add(gap)
        .filter(|lifted| *lifted < i64::MAX)
        .ok_or_else(|| StoreError::Corrupt(format!("no room for a gap of {gap} past {high}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;
    use rusqlite::Connection;

    fn insert_payment(conn: &Connection, id: i64) {
        conn.execute(
            "INSERT INTO payments (id, kind, status, trade_point_id, created_at_ms, receipt_token) \
             VALUES (?1, 'dynamic', 'created', 1, 0, ?2)",
            rusqlite::params![id, format!("p{id}")],
        )
        .expect("a payment");
    }

    fn insert_refund(conn: &Connection, id: i64) {
        conn.execute(
            "INSERT INTO refunds (id, kind, status, trade_point_id, created_at_ms, receipt_token) \
             VALUES (?1, 'refund', 'pending', 1, 0, ?2)",
            rusqlite::params![id, format!("r{id}")],
        )
        .expect("a refund");
    }

    #[test]
    fn ids_from_before_the_one_sequence_are_not_moved_and_the_refusal_says_why() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("old.db");
        let mut conn = Connection::open(&path).expect("sqlite");
        migrations::run_to(&mut conn, 6).expect("migrations 1-6");
        insert_payment(&conn, 3);
        let refused = skip_operation_ids(&path, RESTORE_GAP).expect_err("refused");
        assert!(matches!(refused, StoreError::Refused(_)), "{refused}");
        assert!(
            refused
                .to_string()
                .contains("roll back only to a build of 2026-12-01 or later"),
            "{refused}"
        );
        migrations::run(&mut conn).expect("the rest");
        assert_eq!(skip_operation_ids(&path, 10).expect("moved"), (4, 14));
        // A file no PS made is not said to be an old one.
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER)"))
            .expect("a file of something else");
        let refused = skip_operation_ids(&other, 10).expect_err("refused");
        assert!(!matches!(refused, StoreError::Refused(_)), "{refused}");
    }

    #[test]
    fn an_existing_database_gets_ids_past_both_tables() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        // As an older build left it: payments 1-3 and refunds 1-7 in two id spaces.
        migrations::run_to(&mut conn, 5).expect("migrations 1-5");
        for id in 1..=3 {
            insert_payment(&conn, id);
        }
        for id in 1..=7 {
            insert_refund(&conn, id);
        }
        migrations::run(&mut conn).expect("the rest");
        assert_eq!(next_operation_id(Db::Lite(&conn)).expect("an id"), 8);
        assert_eq!(next_operation_id(Db::Lite(&conn)).expect("an id"), 9);
    }

    #[test]
    fn ids_never_go_back_and_never_collide() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        migrations::run(&mut conn).expect("migrations");
        assert_eq!(next_operation_id(Db::Lite(&conn)).expect("an id"), 1);
        insert_payment(&conn, 1);
        let id = next_operation_id(Db::Lite(&conn)).expect("an id");
        insert_refund(&conn, id);
        assert_eq!(id, 2);
        // The newest purchase deleted (retention): its id is not given out again.
        conn.execute("DELETE FROM refunds WHERE id = 2", [])
            .expect("deleted");
        assert_eq!(next_operation_id(Db::Lite(&conn)).expect("an id"), 3);
        // A row written past the counter (by another tool): the next id is past it.
        insert_payment(&conn, 40);
        assert_eq!(next_operation_id(Db::Lite(&conn)).expect("an id"), 41);
    }
}
