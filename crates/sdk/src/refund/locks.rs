//! One lock per refundId, so that different refunds run side by side while the requests of one
//! refundId take turns. A refundId's entry lives only while someone holds or awaits it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Cell = Arc<AsyncMutex<()>>;

#[derive(Default)]
pub(super) struct KeyedLocks {
    // A std mutex: it is held only to look up or remove an entry, never across an await.
    cells: Mutex<HashMap<String, Cell>>,
}

/// Held while one request of a refundId claims, credits and records it.
pub(super) struct KeyGuard {
    locks: Arc<KeyedLocks>,
    key: String,
    cell: Option<Cell>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits up to `wait` for the lock of `key`; `None` when another request kept it that long.
    pub(super) async fn lock(self: &Arc<Self>, key: &str, wait: Duration) -> Option<KeyGuard> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            cells.entry(key.to_owned()).or_default().clone()
        };
        match tokio::time::timeout(wait, cell.clone().lock_owned()).await {
            Ok(guard) => Some(KeyGuard {
                locks: self.clone(),
                key: key.to_owned(),
                cell: Some(cell),
                guard: Some(guard),
            }),
            Err(_) => {
                self.release(key, cell);
                None
            }
        }
    }

    /// Drops one holder's handle and forgets the entry once nobody else has one. Handles are
    /// cloned only under `cells`' lock, so the count read under it is exact.
    fn release(&self, key: &str, cell: Cell) {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        drop(cell);
        if cells.get(key).is_some_and(|c| Arc::strong_count(c) == 1) {
            cells.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        // The owned guard holds a handle of its own: let it go first.
        self.guard.take();
        if let Some(cell) = self.cell.take() {
            self.locks.release(&self.key, cell);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn other_keys_do_not_wait_and_entries_are_forgotten() {
        let locks = Arc::new(KeyedLocks::default());
        let a = locks.lock("A", Duration::from_secs(60)).await;
        assert!(a.is_some());
        // B is free although A is held; a second A gives up after its wait.
        let b = locks.lock("B", Duration::from_secs(60)).await;
        assert!(b.is_some());
        assert!(locks.lock("A", Duration::from_millis(1)).await.is_none());
        assert_eq!(locks.len(), 2);
        drop(a);
        drop(b);
        assert_eq!(locks.len(), 0);
        assert!(locks.lock("A", Duration::from_millis(1)).await.is_some());
        assert_eq!(locks.len(), 0);
    }
}
