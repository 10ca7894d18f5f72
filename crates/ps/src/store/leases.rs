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
use super::{Store, StoreResult};

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
        let limits = StoreLimits {
            write_queue_max: 16,
            write_batch_max: 16,
            read_connections: 1,
            database_connections: 1,
            write_wait_ms: 10_000,
        };
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
