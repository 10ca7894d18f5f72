//! A stand-in MPP for `tolem-load refunds`: an axum server on `127.0.0.1:0`, inside the load
//! tool, that answers every `POST /refund` with SUCCESS at once. It counts the calls and keeps the
//! time each refundId was first answered, so that deliveries per second and duplicates can be
//! read off afterwards. While its gate is shut it holds the calls it gets, unanswered; that is how
//! a backlog is built up before it is drained.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tolem_wire::mpp::RefundRequest;

const REFUND_PATH: &str = "/refund";

struct Shared {
    /// Calls answered, repeats included (a held call is counted when it is answered).
    calls: AtomicU64,
    /// Calls whose body was not a refund request with a numeric refundId.
    malformed: AtomicU64,
    /// When each refundId was first answered.
    first: Mutex<HashMap<i64, Instant>>,
    open: watch::Receiver<bool>,
}

pub struct Receiver {
    /// The `refund_url` to give the PS.
    pub refund_url: String,
    shared: Arc<Shared>,
    gate: watch::Sender<bool>,
    server: JoinHandle<()>,
}

/// What the receiver saw.
pub struct Seen {
    pub calls: u64,
    pub malformed: u64,
    /// (refundId, first answered), in no particular order.
    pub first: Vec<(i64, Instant)>,
}

impl Receiver {
    /// Starts listening; with `open` false, calls are held until [`Receiver::open`].
    pub async fn start(open: bool) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("the MPP receiver cannot listen")?;
        let addr = listener.local_addr()?;
        let (gate, open) = watch::channel(open);
        let shared = Arc::new(Shared {
            calls: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            first: Mutex::new(HashMap::new()),
            open,
        });
        let app = Router::new()
            .route(REFUND_PATH, post(refund))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("the MPP receiver stopped: {e}");
            }
        });
        Ok(Receiver {
            refund_url: format!("http://{addr}{REFUND_PATH}"),
            shared,
            gate,
            server,
        })
    }

    /// Answers the held calls and every call from now on.
    pub fn open(&self) {
        self.gate.send_replace(true);
    }

    /// Distinct refundIds answered so far.
    pub fn distinct(&self) -> usize {
        self.shared
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn seen(&self) -> Seen {
        let first = self
            .shared
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(&id, &at)| (id, at))
            .collect();
        Seen {
            calls: self.shared.calls.load(Ordering::Relaxed),
            malformed: self.shared.malformed.load(Ordering::Relaxed),
            first,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn refund(State(shared): State<Arc<Shared>>, body: Bytes) -> (StatusCode, Json<Value>) {
    let mut open = shared.open.clone();
    // The sender lives as long as the server; if it is gone, answer rather than hang.
    let _ = open.wait_for(|open| *open).await;
    let now = Instant::now();
    shared.calls.fetch_add(1, Ordering::Relaxed);
    let id = serde_json::from_slice::<RefundRequest>(&body)
        .ok()
        .and_then(|r| r.refund_id.parse::<i64>().ok());
    let Some(id) = id else {
        shared.malformed.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"result": {"resultCode": "PARAM_ILLEGAL", "resultMessage": "malformed"}})),
        );
    };
    shared
        .first
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(id)
        .or_insert(now);
    (
        StatusCode::OK,
        Json(json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}})),
    )
}
