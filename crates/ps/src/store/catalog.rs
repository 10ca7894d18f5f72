//! Operator data in the store (SQLite or PostgreSQL): each MPP, organization, trade point and
//! service is one JSON document. [`read_catalog_file`] reads a SQLite file beside a running PS.

use jiff::Timestamp;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::db::{Db, PgConn, args};
use super::{Store, StoreError, StoreResult};
use crate::catalog::{CatalogFile, Mpp, Organization, Service, TradePoint};

/// The kinds of catalog documents and their keys.
pub(crate) trait CatalogDoc: Serialize + DeserializeOwned + Send + 'static {
    const KIND: &'static str;
    fn key(&self) -> String;
}

impl CatalogDoc for Mpp {
    const KIND: &'static str = "mpp";
    fn key(&self) -> String {
        self.caller_name.to_string()
    }
}

impl CatalogDoc for Organization {
    const KIND: &'static str = "organization";
    fn key(&self) -> String {
        self.bin.clone()
    }
}

impl CatalogDoc for TradePoint {
    const KIND: &'static str = "trade_point";
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl CatalogDoc for Service {
    const KIND: &'static str = "service";
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// Stores `doc`; an item already stored under its key is replaced when `overwrite`, else kept.
/// True if a row was written. One statement: of several nodes seeding the same item at once, one
/// inserts it and the others find it there.
fn put<T: CatalogDoc>(db: Db<'_>, doc: &T, now: Timestamp, overwrite: bool) -> StoreResult<bool> {
    let json = serde_json::to_string(doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = if overwrite {
        "INSERT INTO catalog (kind, key, doc, updated_at_ms) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, \
         updated_at_ms = excluded.updated_at_ms"
    } else {
        "INSERT INTO catalog (kind, key, doc, updated_at_ms) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (kind, key) DO NOTHING"
    };
    let n = db.execute(sql, args![T::KIND, doc.key(), json, now.as_millisecond()])?;
    Ok(n > 0)
}

fn catalog_file(db: Db<'_>) -> StoreResult<CatalogFile> {
    Ok(CatalogFile {
        mpps: all(db)?,
        organizations: all(db)?,
        trade_points: all(db)?,
        services: all(db)?,
    })
}

/// The operator data of a database (a file or a PostgreSQL URL), read beside a PS that may be
/// running and without writing anything: no migration, no writer, no checkpoint (`tolem ipsec`).
/// A database of another schema version than this build's is refused rather than misread.
pub fn read_catalog_file(path: &Path) -> StoreResult<CatalogFile> {
    if crate::config::is_postgres_url(path) {
        let url = path.to_string_lossy().into_owned();
        // A connection runs a runtime of its own, which may not start on an async worker: a
        // thread of its own.
        return std::thread::spawn(move || {
            let conn = PgConn::connect(&super::pg_tls::parse(&url)?)?;
            super::migrations_pg::check_current(Db::Pg(&conn))?;
            catalog_file(Db::Pg(&conn))
        })
        .join()
        .map_err(|_| StoreError::Corrupt("reading the operator data panicked".to_owned()))?;
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    super::migrations::check_current(&conn)?;
    catalog_file(Db::Lite(&conn))
}

fn all<T: CatalogDoc>(db: Db<'_>) -> StoreResult<Vec<T>> {
    let rows = db.query_map(
        "SELECT key, doc FROM catalog WHERE kind = ?1 ORDER BY key",
        args![T::KIND],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut docs = Vec::new();
    for (key, json) in rows {
        let doc = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("catalog {} {key}: {e}", T::KIND)))?;
        docs.push(doc);
    }
    Ok(docs)
}

impl super::Tx<'_> {
    /// Everything stored, as one file, as this transaction sees it.
    pub(crate) fn catalog_file(&self) -> StoreResult<CatalogFile> {
        catalog_file(self.db)
    }

    /// Creates or replaces one item (the caller checked the catalog with it first).
    pub(crate) fn put_catalog_item<T: CatalogDoc>(
        &self,
        doc: &T,
        now: Timestamp,
    ) -> StoreResult<()> {
        put(self.db, doc, now, true)?;
        bump_version(self.db)
    }
}

/// A new catalog version: the other nodes sharing the database reload their snapshot when
/// they see it (`catalog_watch`).
fn bump_version(db: Db<'_>) -> StoreResult<()> {
    db.execute(
        "UPDATE catalog_version SET version = version + 1 WHERE id = 1",
        args![],
    )?;
    Ok(())
}

fn version(db: Db<'_>) -> StoreResult<i64> {
    Ok(db
        .query_row(
            "SELECT version FROM catalog_version WHERE id = 1",
            args![],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

impl Store {
    /// Inserts every item of `file` whose key is not stored yet; stored items are left as they
    /// are, so changes made through the admin API survive a restart. Returns how many were new.
    pub async fn seed_catalog(&self, file: CatalogFile, now: Timestamp) -> StoreResult<usize> {
        self.transaction(move |tx| {
            let mut added = 0;
            for m in &file.mpps {
                added += usize::from(put(tx.db, m, now, false)?);
            }
            for o in &file.organizations {
                let mut o = o.clone();
                o.hash_keys();
                added += usize::from(put(tx.db, &o, now, false)?);
            }
            for t in &file.trade_points {
                added += usize::from(put(tx.db, t, now, false)?);
            }
            for s in &file.services {
                added += usize::from(put(tx.db, s, now, false)?);
            }
            if added > 0 {
                bump_version(tx.db)?;
            }
            Ok(added)
        })
        .await
    }

    /// Everything stored, as one file, with the catalog version it is at least as new as (the
    /// version is read first: a change committed between the two reads only makes the next
    /// check reload once more).
    pub(crate) async fn load_catalog(&self) -> StoreResult<(i64, CatalogFile)> {
        self.read_db(|db| Ok((version(db)?, catalog_file(db)?)))
            .await
    }

    /// The catalog version: it moves with every change of the operator data.
    pub(crate) async fn catalog_version(&self) -> StoreResult<i64> {
        self.read_db(version).await
    }
}
