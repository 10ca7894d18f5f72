//! The POS requests waiting, in this process, for the MPP's final answer to their refund
//! (DECISIONS 39): registered by the merchant API, woken by the refund dispatcher.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::oneshot;

use crate::domain::RefundId;

/// The POS requests waiting for the MPP's final answer to a refund, by refund id (DECISIONS 39).
/// A waiter registers before it reads the refund's state, so an answer recorded after that read
/// wakes it; one recorded by another process is found by the waiter's last read.
#[derive(Default)]
pub struct Outcomes {
    waiting: Mutex<HashMap<RefundId, Vec<Ticket>>>,
    next_ticket: AtomicU64,
}

/// A waiting request's number, and how it is woken.
type Ticket = (u64, oneshot::Sender<()>);

/// One waiting request; it leaves the register when dropped, whether or not it was woken.
pub struct Waiter<'a> {
    outcomes: &'a Outcomes,
    refund_id: RefundId,
    ticket: u64,
    woken: oneshot::Receiver<()>,
}

impl Outcomes {
    pub fn wait_for(&self, refund_id: RefundId) -> Waiter<'_> {
        let ticket = self.next_ticket.fetch_add(1, Relaxed);
        let (tell, woken) = oneshot::channel();
        self.lock()
            .entry(refund_id)
            .or_default()
            .push((ticket, tell));
        Waiter {
            outcomes: self,
            refund_id,
            ticket,
            woken,
        }
    }

    /// The refund's final answer is recorded: wakes everyone waiting for it.
    pub fn recorded(&self, refund_id: RefundId) {
        let waiting = self.lock().remove(&refund_id).unwrap_or_default();
        for (_, tell) in waiting {
            // A waiter that gave up meanwhile is no loss.
            let _ = tell.send(());
        }
    }

    /// How many requests wait now; none once every request is answered.
    pub fn waiting(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RefundId, Vec<Ticket>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Waiter<'_> {
    /// Until the refund's final answer is recorded in this process, or `deadline`.
    pub async fn until(&mut self, deadline: tokio::time::Instant) {
        let _ = tokio::time::timeout_at(deadline, &mut self.woken).await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiting = self.outcomes.lock();
        if let Some(list) = waiting.get_mut(&self.refund_id) {
            list.retain(|(ticket, _)| *ticket != self.ticket);
            if list.is_empty() {
                waiting.remove(&self.refund_id);
            }
        }
    }
}
