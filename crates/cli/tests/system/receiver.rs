//! A real HTTP MPP `/refund` receiver for tests, misbehaving on a script. It credits each refundId
//! once (as SPEC 4.4 asks of an MPP), counts every call and records the headers of each.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the receiver does with one call.
#[derive(Clone, Debug)]
pub enum Act {
    /// Credit (once per refundId) and answer SUCCESS.
    Succeed,
    /// Credit and answer SUCCESS without the `resultMessage` the regulation asks for.
    SucceedTerse,
    /// Answer this result code without crediting.
    Answer(&'static str),
    /// Answer this result code under this HTTP status (a gateway in front of the MPP, say).
    AnswerWith(u16, &'static str),
    /// HTTP 500 with no body.
    Fail500,
    /// Wait this long before answering SUCCESS (longer than the PS's timeout: a timeout).
    Hang(Duration),
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Act>,
    /// refundId → (amount credited, body of the first call).
    credited: HashMap<String, (String, Value)>,
    calls: Vec<Value>,
    /// The headers of each call, in the order of `calls`.
    headers: Vec<HeaderMap>,
    /// While set, a call the script has nothing for hangs for an hour (the PS times it out).
    holding: bool,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = axum::Router::new()
            .route("/refund", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/refund", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inner }
    }

    /// The next calls do these, in order; after them, every call succeeds.
    pub fn script(&self, acts: impl IntoIterator<Item = Act>) {
        self.inner.lock().expect("lock").script.extend(acts);
    }

    /// From now on, until [`Receiver::release`], every call without a scripted act hangs: none
    /// is credited, however many the PS makes.
    pub fn hold(&self) {
        self.inner.lock().expect("lock").holding = true;
    }

    /// Calls after this succeed again.
    pub fn release(&self) {
        self.inner.lock().expect("lock").holding = false;
    }

    pub fn calls(&self) -> Vec<Value> {
        self.inner.lock().expect("lock").calls.clone()
    }

    /// The headers of every call, in order.
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.inner.lock().expect("lock").headers.clone()
    }

    /// refundId → amount credited.
    pub fn credited(&self) -> HashMap<String, String> {
        self.inner
            .lock()
            .expect("lock")
            .credited
            .iter()
            .map(|(k, (a, _))| (k.clone(), a.clone()))
            .collect()
    }

    pub fn first_body(&self, refund_id: &str) -> Option<Value> {
        self.inner
            .lock()
            .expect("lock")
            .credited
            .get(refund_id)
            .map(|(_, body)| body.clone())
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let act = {
        let mut inner = inner.lock().expect("lock");
        inner.calls.push(body.clone());
        inner.headers.push(headers);
        let unscripted = if inner.holding {
            Act::Hang(Duration::from_secs(3600))
        } else {
            Act::Succeed
        };
        inner.script.pop_front().unwrap_or(unscripted)
    };
    let credit = |inner: &Arc<Mutex<Inner>>| {
        let id = body["refundId"].as_str().unwrap_or_default().to_owned();
        let amount = body["refundAmount"].as_str().unwrap_or_default().to_owned();
        inner
            .lock()
            .expect("lock")
            .credited
            .entry(id)
            .or_insert((amount, body.clone()));
    };
    let success = Json(json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}}));
    match act {
        Act::Succeed => {
            credit(&inner);
            success.into_response()
        }
        Act::SucceedTerse => {
            credit(&inner);
            Json(json!({"result": {"resultCode": "SUCCESS"}})).into_response()
        }
        Act::Answer(code) => {
            Json(json!({"result": {"resultCode": code, "resultMessage": code}})).into_response()
        }
        Act::AnswerWith(status, code) => (
            StatusCode::from_u16(status).expect("a status"),
            Json(json!({"result": {"resultCode": code, "resultMessage": code}})),
        )
            .into_response(),
        Act::Fail500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Act::Hang(d) => {
            tokio::time::sleep(d).await;
            credit(&inner);
            success.into_response()
        }
    }
}
