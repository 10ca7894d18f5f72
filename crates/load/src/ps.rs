//! The PS through its merchant and admin APIs: a POS device registered, fresh Dynamic QRs created
//! with it (the setup, not measured), refunds placed without the customer (r3), and the refund
//! counters of the admin API's metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tolem_wire::merchant::{DeviceToken, Envelope, QrCreated, ReturnOperationId};

/// The sandbox organization's test key (`examples/sandbox.toml`, `docs/sandbox.md`).
const API_KEY: &str = "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39";
/// The organization that key belongs to.
const ORGANIZATION_BIN: &str = "990340001234";
/// The sandbox's operator token for the admin API.
const ADMIN_TOKEN: &str = "sandbox-admin-token";
/// The sandbox's coffee shop; its MCC and name are what the scans answer with.
const TRADE_POINT_ID: i64 = 1001;
const DEVICE_ID: &str = "LOAD-1";
/// Every QR asks for 100 tenge; notifyPayment confirms `"100.00"`.
pub const QR_AMOUNT_TENGE: u64 = 100;

const REGISTER_PATH: &str = "/r1/v01/device/register";
const QR_CREATE_PATH: &str = "/r1/v01/qr/create";
/// A refund without the customer (r3): the POS names the purchase and the amount.
const PAYMENT_RETURN_PATH: &str = "/r3/v01/payment/return";
const METRICS_PATH: &str = "/admin/v1/metrics";
const CATALOG_PATH: &str = "/admin/v1/catalog";
const MPPS_PATH: &str = "/admin/v1/mpps/";

pub async fn register_device(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let body = json!({ "DeviceId": DEVICE_ID, "TradePointId": TRADE_POINT_ID });
    let data: DeviceToken = call(client, &format!("{url}{REGISTER_PATH}"), &body).await?;
    Ok(data.device_token)
}

/// Creates `count` Dynamic QRs, `concurrency` at a time.
pub async fn create_qrs(
    client: &reqwest::Client,
    url: &str,
    device_token: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<QrCreated>> {
    let next = Arc::new(AtomicUsize::new(0));
    let endpoint: Arc<str> = format!("{url}{QR_CREATE_PATH}").into();
    let body = Arc::new(json!({ "DeviceToken": device_token, "Amount": QR_AMOUNT_TENGE }));
    let workers: Vec<_> = (0..concurrency.min(count))
        .map(|_| {
            let (client, next, endpoint, body) =
                (client.clone(), next.clone(), endpoint.clone(), body.clone());
            tokio::spawn(async move {
                let mut created = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    created.push(call::<QrCreated>(&client, &endpoint, &*body).await?);
                }
                anyhow::Ok(created)
            })
        })
        .collect();
    let mut created = Vec::with_capacity(count);
    for worker in workers {
        created.extend(worker.await.context("a qr/create worker panicked")??);
    }
    Ok(created)
}

/// Refunds the whole of a confirmed purchase (a QR of [`QR_AMOUNT_TENGE`]) without the customer;
/// returns the refund's id, which is the `refundId` its MPP is sent.
pub async fn place_refund(
    client: &reqwest::Client,
    endpoint: &str,
    device_token: &str,
    payment_id: i64,
) -> anyhow::Result<i64> {
    let body = json!({
        "DeviceToken": device_token,
        "QrPaymentId": payment_id,
        "Amount": QR_AMOUNT_TENGE,
        "OrganizationBin": ORGANIZATION_BIN,
    });
    let placed: ReturnOperationId = call(client, endpoint, &body).await?;
    Ok(placed.return_operation_id)
}

pub fn payment_return_url(url: &str) -> String {
    format!("{url}{PAYMENT_RETURN_PATH}")
}

/// Points `caller`'s refunds at `refund_url` through the admin API (`GET /admin/v1/catalog`, then
/// `PUT /admin/v1/mpps/{caller}` with the one field changed): the way to reach an MPP of a store
/// that keeps its own catalog, such as one grown with `tolem-load fill`.
pub async fn point_refunds_at(
    client: &reqwest::Client,
    url: &str,
    caller: &str,
    refund_url: &str,
) -> anyhow::Result<()> {
    let endpoint = format!("{url}{CATALOG_PATH}");
    let catalog: serde_json::Value = admin_answer(
        client.get(&endpoint).bearer_auth(ADMIN_TOKEN),
        &format!("GET {endpoint}"),
    )
    .await?;
    let Some(mut mpp) = catalog["mpps"]
        .as_array()
        .and_then(|mpps| mpps.iter().find(|m| m["caller_name"] == caller))
        .cloned()
    else {
        bail!("the PS's catalog has no MPP {caller}");
    };
    mpp["refund_url"] = json!(refund_url);
    let endpoint = format!("{url}{MPPS_PATH}{caller}");
    let _: serde_json::Value = admin_answer(
        client.put(&endpoint).bearer_auth(ADMIN_TOKEN).json(&mpp),
        &format!("PUT {endpoint}"),
    )
    .await?;
    Ok(())
}

/// An admin API answer parsed as JSON.
async fn admin_answer<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<T> {
    let text = admin_text(request, what).await?;
    serde_json::from_str(&text).with_context(|| format!("{what}: the answer {text}"))
}

/// An admin API answer's body; an HTTP status other than success is an error naming `what`.
async fn admin_text(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<String> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{what}: reading the answer"))?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {text}");
    }
    Ok(text)
}

/// The PS's refund counters (`GET /admin/v1/metrics`), by metric name.
pub async fn refund_metrics(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let endpoint = format!("{url}{METRICS_PATH}");
    let text = admin_text(
        client.get(&endpoint).bearer_auth(ADMIN_TOKEN),
        &format!("GET {endpoint}"),
    )
    .await?;
    // The Prometheus text format: `# …` comments, then `name value` lines.
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect())
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
