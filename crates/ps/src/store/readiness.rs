//! Whether the node can reach its database, for `GET /health/ready` (`health.rs`): one round
//! trip at most once a second whoever asks.

use std::time::Duration;

use tokio::time::Instant;

use super::{Store, StoreError};

/// How long one readiness answer is given again.
const FRESH: Duration = Duration::from_secs(1);
/// How long a readiness check waits for the database before it says "not ready".
const CHECK_WAIT: Duration = Duration::from_secs(2);

/// Why a node is not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotReady {
    /// The database refused or failed the check (down, unreachable, the writer gone).
    Database,
    /// The database did not answer within [`CHECK_WAIT`].
    DatabaseLate,
    /// SQLite: writes with data in them do not commit (a full disk, say).
    TakesNoWrites,
}

impl NotReady {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotReady::Database => "the database does not answer",
            NotReady::DatabaseLate => "the database did not answer in time",
            NotReady::TakesNoWrites => "the database takes no writes",
        }
    }
}

/// The last readiness answer and when it was found. Checks run one at a time: a caller that
/// comes while one runs waits for it and takes its answer.
#[derive(Default)]
pub(crate) struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), NotReady>)>>,
    /// A database away fails every check: said once a minute, and its end once.
    lasting: std::sync::Mutex<crate::log_sparse::Lasting>,
}

impl Readiness {
    pub(crate) async fn check(&self, store: &Store) -> Result<(), NotReady> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < FRESH
        {
            return answer;
        }
        let pinged = match tokio::time::timeout(CHECK_WAIT, store.ping()).await {
            // Full (every connection or the writer's queue taken) is busy, not down: taking a
            // busy node out of the balancer would only move its load to the others.
            Ok(Ok(()) | Err(StoreError::Overloaded)) => Ok(()),
            Ok(Err(e @ StoreError::TakesNoWrites(_))) => {
                Err((NotReady::TakesNoWrites, e.to_string()))
            }
            Ok(Err(e)) => Err((NotReady::Database, e.to_string())),
            Err(_) => Err((
                NotReady::DatabaseLate,
                format!("no answer in {} ms", CHECK_WAIT.as_millis()),
            )),
        };
        self.lasting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .note(
                "readiness: the database check",
                &pinged.as_ref().map_err(|(_, why)| why),
            );
        let answer = pinged.map_err(|(not_ready, _)| not_ready);
        *last = Some((Instant::now(), answer));
        answer
    }
}
