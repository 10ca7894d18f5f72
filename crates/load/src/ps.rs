//! The PS's setup, not measured: a POS device registered through the merchant API, then fresh
//! Dynamic QRs created with it, one per measured pair.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tolem_wire::merchant::{DeviceToken, Envelope, QrCreated};

/// The sandbox organization's test key (`examples/sandbox.toml`, `docs/sandbox.md`).
const API_KEY: &str = "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39";
/// The sandbox's coffee shop; its MCC and name are what the scans answer with.
const TRADE_POINT_ID: i64 = 1001;
const DEVICE_ID: &str = "LOAD-1";
/// Every QR asks for 100 tenge; notifyPayment confirms `"100.00"`.
pub const QR_AMOUNT_TENGE: u64 = 100;

const REGISTER_PATH: &str = "/r1/v01/device/register";
const QR_CREATE_PATH: &str = "/r1/v01/qr/create";

pub async fn register_device(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let body = json!({ "DeviceId": DEVICE_ID, "TradePointId": TRADE_POINT_ID });
    let data: DeviceToken = call(client, &format!("{url}{REGISTER_PATH}"), &body).await?;
    Ok(data.device_token)
}

/// Creates `count` Dynamic QRs, `concurrency` at a time; returns their tokens.
pub async fn create_qrs(
    client: &reqwest::Client,
    url: &str,
    device_token: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let endpoint: Arc<str> = format!("{url}{QR_CREATE_PATH}").into();
    let body = Arc::new(json!({ "DeviceToken": device_token, "Amount": QR_AMOUNT_TENGE }));
    let workers: Vec<_> = (0..concurrency.min(count))
        .map(|_| {
            let (client, next, endpoint, body) =
                (client.clone(), next.clone(), endpoint.clone(), body.clone());
            tokio::spawn(async move {
                let mut tokens = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let created: QrCreated = call(&client, &endpoint, &*body).await?;
                    tokens.push(created.qr_token);
                }
                anyhow::Ok(tokens)
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(count);
    for worker in workers {
        tokens.extend(worker.await.context("a qr/create worker panicked")??);
    }
    Ok(tokens)
}

/// One merchant API call that must answer `StatusCode` 0 with data.
async fn call<T: DeserializeOwned>(
    client: &reqwest::Client,
    endpoint: &str,
    body: &impl Serialize,
) -> anyhow::Result<T> {
    let response = client
        .post(endpoint)
        .header("Api-Key", API_KEY)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {endpoint}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("POST {endpoint}: reading the answer"))?;
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        bail!("POST {endpoint}: HTTP {status}: {text}");
    }
    // The envelope is read with untyped data first: `Envelope<T>` asks `T: Default` to deserialize.
    let envelope: Envelope<serde_json::Value> = serde_json::from_slice(&bytes)
        .with_context(|| format!("POST {endpoint}: unexpected answer {text}"))?;
    match envelope.data {
        Some(data) if envelope.status_code == 0 => serde_json::from_value(data)
            .with_context(|| format!("POST {endpoint}: unexpected data in {text}")),
        _ => bail!(
            "POST {endpoint}: StatusCode {}: {text}",
            envelope.status_code
        ),
    }
}
