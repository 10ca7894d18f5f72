//! Who holds the outbox's leases (refund deliveries, register e-mails), and taking back those an
//! earlier run of this node held when it died.
//!
//! A delivery is claimed with a lease so that no one else takes it while it is in flight, and a
//! crashed holder's is taken again when the lease runs out. The lease names its holder: the node
//! (`node_name`) and the run (a new id each time the PS starts). A node that starts again knows
//! that whatever its earlier runs still hold is abandoned, so those deliveries are due at once
//! instead of after the rest of their lease (a refund's is a minute by default, a register
//! e-mail's a quarter of an hour). Other nodes' leases are left to run out: they may be alive.
//! Taking back is one conditional statement, so a row another node claims at that moment (its
//! lease then names that node) is left to it, under READ COMMITTED as under SERIALIZABLE.

use jiff::Timestamp;

use super::db::args;
use super::payments::ms;
use super::{Backend, Store, StoreError, StoreResult};

/// The class of the PostgreSQL advisory locks on node names: "tole" in ASCII.
const NODE_LOCK_CLASS: i32 = 0x74_6f_6c_65;

/// How long a start waits for its node name's lock: a run of this node that has just ended (a
/// restart, a kill) lets it go as soon as its server notices that the connection closed.
const NODE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the hold's connection is looked at: one the server closed (a restart, a failover)
/// took the lock with it, and the lock is taken again.
const NODE_LOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// This node's name held on the database while the node serves (PostgreSQL): a session advisory
/// lock on a connection of its own, let go when this value is dropped or the process ends. A
/// task watches the connection and takes the lock again on a new one when the server closed it.
#[must_use]
pub struct NodeNameHold {
    watch: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for NodeNameHold {
    fn drop(&mut self) {
        // The task owns the connection: ended, it closes it, and the lock goes with it.
        if let Some(watch) = self.watch.take() {
            watch.abort();
        }
    }
}

/// Keeps `connection`'s lock on `node` (its `key`): when the server closed the connection, the
/// lock is taken again on a new one, and said; another node that took the name meanwhile is
/// said as an error, every check until it lets it go.
async fn keep_node_name(
    pool: std::sync::Arc<super::postgres::Pool>,
    node: String,
    key: i32,
    mut connection: tokio_postgres::Client,
) {
    loop {
        tokio::time::sleep(NODE_LOCK_CHECK).await;
        if !connection.is_closed() {
            continue;
        }
        match pool.try_advisory_lock(NODE_LOCK_CLASS, key).await {
            Ok(Some(again)) => {
                connection = again;
                tracing::info!(node = %node, "the node name is held again on a new database connection");
            }
            Ok(None) => tracing::error!(
                node = %node,
                "another node took this node's name while its database connection was away: \
                 two live nodes share one node_name and may each take back the other's \
                 deliveries in flight at a start; give each node its own node_name"
            ),
            // The database is away: tried again at the next check.
            Err(_) => {}
        }
    }
}

/// The lock key of node name `node`: the first four bytes of its SHA-256.
fn node_lock_key(node: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(node.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Who holds a delivery's lease: this process's node and run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    pub node: String,
    pub run: String,
}

impl LeaseHolder {
    /// This process's holder on `node`: a new run id each call.
    pub(crate) fn new_run(node: &str) -> LeaseHolder {
        LeaseHolder {
            node: node.to_owned(),
            run: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

impl Store {
    /// Holds `node` on the database while this node serves, so that two live nodes never share
    /// a name: each would take back the other's deliveries in flight at its start and send
    /// them again. On PostgreSQL a lock held by another live node refuses the start, after
    /// [`NODE_LOCK_WAIT`] for a run that has just ended; SQLite has one process per file
    /// already (`file_lock.rs`).
    pub async fn hold_node_name(&self, node: &str) -> StoreResult<NodeNameHold> {
        let Backend::Postgres(pool) = &self.inner.backend else {
            return Ok(NodeNameHold { watch: None });
        };
        let key = node_lock_key(node);
        let started = tokio::time::Instant::now();
        loop {
            if let Some(connection) = pool.try_advisory_lock(NODE_LOCK_CLASS, key).await? {
                let watch = tokio::spawn(keep_node_name(
                    pool.clone(),
                    node.to_owned(),
                    key,
                    connection,
                ));
                return Ok(NodeNameHold { watch: Some(watch) });
            }
            if started.elapsed() >= NODE_LOCK_WAIT {
                return Err(StoreError::NodeNameTaken(node.to_owned()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Ends the leases still running at `now` that other runs of `holder`'s node hold: their
    /// deliveries are due again at once. Their attempts still count (one may have reached its
    /// receiver, which applies it once). Returns how many were taken back.
    pub(crate) async fn take_back_leases(
        &self,
        holder: LeaseHolder,
        now: Timestamp,
    ) -> StoreResult<usize> {
        self.transaction(move |tx| {
            // `lease_run IS NOT ?3` is SQLite's alone; a lease from before leases named a run
            // (NULL) is an earlier run's too.
            tx.db.execute(
                "UPDATE outbox SET lease_until_ms = 0 WHERE done_at_ms IS NULL \
                 AND lease_until_ms > ?1 AND lease_node = ?2 \
                 AND (lease_run IS NULL OR lease_run <> ?3)",
                args![ms(now), holder.node, holder.run],
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLimits;

    #[tokio::test]
    async fn only_the_leases_of_this_node_s_earlier_runs_are_taken_back() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let limits = StoreLimits::for_tests();
        let store = Store::open(&dir.path().join("ps.db"), &limits).expect("opens");
        let now = Timestamp::from_second(1_800_000_000).expect("in range");
        let later = ms(now) + 3_600_000;
        let this = LeaseHolder::new_run("node-a");
        let earlier = LeaseHolder::new_run("node-a");
        let other = LeaseHolder::new_run("node-b");
        // (ref_id, holder, lease end, done)
        let rows = [
            (1, &earlier, later, false),
            (2, &other, later, false),
            (3, &this, later, false),
            (4, &earlier, later, true),
            (5, &earlier, ms(now) - 1, false),
        ];
        for (ref_id, holder, until, done) in rows {
            let (node, run) = (holder.node.clone(), holder.run.clone());
            store
                .transaction(move |tx| {
                    tx.db.execute(
                        "INSERT INTO outbox (kind, ref_id, created_at_ms, due_at_ms, lease_until_ms, \
                         done_at_ms, lease_node, lease_run) VALUES ('refund', ?1, 0, 0, ?2, ?3, ?4, ?5)",
                        args![ref_id, until, done.then_some(1), node, run],
                    )
                })
                .await
                .expect("inserted");
        }
        let taken = store.take_back_leases(this, now).await.expect("taken");
        assert_eq!(
            taken, 1,
            "only the earlier run's live lease of an open delivery"
        );
        let leases: Vec<(i64, i64)> = store
            .read_db(|db| {
                db.query_map(
                    "SELECT ref_id, lease_until_ms FROM outbox ORDER BY ref_id",
                    args![],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .await
            .expect("read");
        assert_eq!(
            leases,
            vec![(1, 0), (2, later), (3, later), (4, later), (5, ms(now) - 1)]
        );
    }
}
