//! Log lines a caller, or a fault that lasts, can cause at any rate: at most one a second per
//! kind, each saying how many were left out since the last (`left_out`). The journal stays
//! readable while a database is away or a client misbehaves (docs/configuration.md, Logs).

use std::time::Duration;

use tokio::time::Instant;

/// A log line at most once a second, with how many were left out since the last one.
#[derive(Default)]
pub(crate) struct Sparse {
    last: Option<Instant>,
    left_out: u64,
}

impl Sparse {
    /// None said yet; for a `static`.
    pub(crate) const fn new() -> Sparse {
        Sparse {
            last: None,
            left_out: 0,
        }
    }

    /// `Some(left out)` when a line is due now.
    pub(crate) fn due(&mut self) -> Option<u64> {
        self.due_every(Duration::from_secs(1))
    }

    /// `Some(left out)` when a line is due now, at most one `every`.
    fn due_every(&mut self, every: Duration) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + every) {
            self.left_out += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.left_out))
    }
}

/// A [`Sparse`] log shared by the threads that may say it: a `static`, or a field of the app.
#[derive(Default)]
pub(crate) struct SharedSparse(std::sync::Mutex<Sparse>);

impl SharedSparse {
    /// None said yet; for a `static`.
    pub(crate) const fn new() -> SharedSparse {
        SharedSparse(std::sync::Mutex::new(Sparse::new()))
    }

    /// `Some(left out)` when a line is due now.
    pub(crate) fn due(&self) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .due()
    }
}

/// A [`Sparse`] log per key (a Custom provider's callback address), so that one noisy key hides
/// none of another's lines. Holds at most [`SparseByKey::KEYS_MAX`] keys; past that it starts
/// afresh, which at worst logs one line more.
#[derive(Default)]
pub(crate) struct SparseByKey(std::sync::Mutex<std::collections::HashMap<String, Sparse>>);

impl SparseByKey {
    const KEYS_MAX: usize = 1024;

    /// `Some(left out)` when a line about `key` is due now.
    pub(crate) fn due(&self, key: &str) -> Option<u64> {
        let mut keys = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sparse) = keys.get_mut(key) {
            return sparse.due();
        }
        if keys.len() >= Self::KEYS_MAX {
            keys.clear();
        }
        keys.entry(key.to_owned()).or_default().due()
    }
}

/// Says that the store is busy or out of reach and the caller was told to retry (HTTP 503), at
/// most once a second for every surface together: while a database is away every request would
/// say it.
pub(crate) fn store_unavailable(error: &dyn std::fmt::Display) {
    static LOG: SharedSparse = SharedSparse::new();
    if let Some(left_out) = LOG.due() {
        tracing::warn!(
            error = %error,
            left_out,
            "the store is busy or out of reach; told to retry"
        );
    }
}

/// A background task's fault that may last (a database away for minutes): its first failure
/// is said at once, the next ones at most once a minute with how many were left out, and its
/// first success after them once, so that the journal says when it ended.
#[derive(Default)]
pub(crate) struct Lasting {
    /// Since the first failure of the run, and how many failures it has had.
    failing: Option<(Instant, u64)>,
    said: Sparse,
}

impl Lasting {
    /// How long repeats of a lasting fault stay unsaid.
    const QUIET: Duration = Duration::from_secs(60);

    /// The task failed: `Some(left out)` when a line is due now.
    pub(crate) fn failed(&mut self) -> Option<u64> {
        let (_, failures) = self.failing.get_or_insert((Instant::now(), 0));
        *failures += 1;
        self.said.due_every(Self::QUIET)
    }

    /// The task succeeded: `Some((failures, how long))` the first time after failures.
    pub(crate) fn succeeded(&mut self) -> Option<(u64, Duration)> {
        let (since, failures) = self.failing.take()?;
        self.said = Sparse::default();
        Some((failures, since.elapsed()))
    }
}

impl Lasting {
    /// Says how `what` went, as above: a failure (WARN, `what` failed; will retry) when one is
    /// due, or, after failures, that it works again (INFO).
    pub(crate) fn note<T, E: std::fmt::Display>(&mut self, what: &str, result: &Result<T, E>) {
        match result {
            Ok(_) => {
                if let Some((failures, after)) = self.succeeded() {
                    tracing::info!(failures, after_s = after.as_secs(), "{what}: works again");
                }
            }
            Err(e) => {
                if let Some(left_out) = self.failed() {
                    tracing::warn!(error = %e, left_out, "{what} failed; will retry");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sparse_log_says_one_line_a_second_and_how_many_it_left_out() {
        let mut sparse = Sparse::default();
        assert_eq!(sparse.due(), Some(0));
        for _ in 0..3 {
            assert_eq!(sparse.due(), None);
        }
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(sparse.due(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(sparse.due(), Some(4));
        assert_eq!(sparse.due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_noisy_callback_hides_no_line_of_another() {
        let sparse = SparseByKey::default();
        assert_eq!(sparse.due("https://noisy.example/amount"), Some(0));
        assert_eq!(sparse.due("https://noisy.example/amount"), None);
        assert_eq!(sparse.due("https://quiet.example/amount"), Some(0));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(sparse.due("https://noisy.example/amount"), Some(1));
        // Past its bound it starts afresh: one line more at worst.
        for key in 0..SparseByKey::KEYS_MAX {
            sparse.due(&key.to_string());
        }
        assert_eq!(sparse.due("https://noisy.example/amount"), Some(0));
    }

    #[test]
    fn a_lasting_fault_is_said_once_a_minute_and_its_end_once() {
        let mut lasting = Lasting::default();
        assert_eq!(lasting.succeeded(), None, "nothing failed");
        assert_eq!(lasting.failed(), Some(0));
        assert_eq!(lasting.failed(), None);
        assert_eq!(lasting.failed(), None);
        let (failures, _) = lasting.succeeded().expect("the end is said");
        assert_eq!(failures, 3);
        assert_eq!(lasting.succeeded(), None, "once");
        // A new fault is said at once again.
        assert_eq!(lasting.failed(), Some(0));
    }
}
