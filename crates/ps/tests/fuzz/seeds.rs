//! The PS under test and the valid requests the fuzzer starts from: the sandbox configuration on
//! a real temporary SQLite file, a device, purchases in several states, a refund QR, and one
//! valid request for every route of every surface (the shapes of the contract examples in
//! `docs/mpp-api.md`, `docs/merchant-api.md` and `docs/admin-api.md`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use jiff::Timestamp;
use serde_json::{Value, json};
use tempfile::TempDir;
use tolem_ps::clock::{ManualClock, SharedClock};
use tolem_ps::{App, Config};
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

use crate::mutate::Input;

pub const SANDBOX_TOML: &str = tolem_ps::SANDBOX_TOML;
pub const API_KEY: &str = "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39";
pub const ADMIN_TOKEN: &str = "sandbox-admin-token";
pub const CABINET_TOKEN: &str = "sandbox-cabinet-demobank";
pub const STATIC_QR: &str = "TOLEM-STATIC-CAFE-1001";
pub const PARKING_QR: &str = "https://pay.tolem.example/pay/parking";
pub const BIN: &str = "990340001234";
pub const OTHER_BIN: &str = "990340005678";

/// The router as `serve` wraps it (trailing slashes trimmed), called in process.
pub type Service = NormalizePath<axum::Router>;

pub struct Target {
    pub clock: Arc<ManualClock>,
    pub service: Service,
    pub seeds: Vec<Input>,
    /// Requests that put the operator data the seeds rely on back as it was.
    pub restore: Vec<Input>,
    _dir: TempDir,
}

/// Sends one request to the router and returns (status, headers, body).
pub async fn send(
    service: &Service,
    input: &Input,
) -> Option<(u16, axum::http::HeaderMap, Vec<u8>)> {
    let mut builder = Request::builder()
        .method(input.method.as_str())
        .uri(input.target.as_str());
    for (name, value) in &input.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    // A request the HTTP parser would refuse never reaches the router: not an input here.
    let mut request = builder.body(Body::from(input.body.clone())).ok()?;
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    let response = service.clone().oneshot(request).await.ok()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    // Every answer of the PS is small; a cap keeps a runaway answer from hiding as memory use.
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .ok()?
        .to_vec();
    Some((status, headers, body))
}

fn input(method: &str, target: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Input {
    Input {
        method: method.to_owned(),
        target: target.to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: body.map(Value::to_string).unwrap_or_default().into_bytes(),
    }
}

fn mpp(path: &str, locale: &str, body: Value) -> Input {
    input(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("x-caller-name", "demobank"),
            ("x-request-id", "fuzz-0001"),
            ("x-locale", locale),
        ],
        Some(&body),
    )
}

fn pos(method: &str, path: &str, body: Option<Value>) -> Input {
    let mut headers = vec![("api-key", API_KEY), ("x-request-id", "pos-0001")];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    input(method, path, &headers, body.as_ref())
}

fn admin(method: &str, path: &str, body: Option<Value>) -> Input {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    input(method, path, &headers, body.as_ref())
}

fn page(target: &str) -> Input {
    input("GET", target, &[], None)
}

/// A valid call during set-up; its answer as JSON.
async fn call(service: &Service, input: &Input) -> Value {
    let (status, _, body) = send(service, input)
        .await
        .expect("the set-up request is sent");
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert!(
        status < 300,
        "set-up {} {}: {status} {value}",
        input.method,
        input.target
    );
    value
}

fn ok_mpp(answer: &Value) -> &Value {
    assert_eq!(answer["result"]["resultCode"], "SUCCESS", "{answer}");
    answer
}

fn ok_pos(answer: &Value) -> &Value {
    assert_eq!(answer["StatusCode"], 0, "{answer}");
    &answer["Data"]
}

pub async fn start() -> Target {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = Config::from_toml(SANDBOX_TOML).expect("the sandbox configuration is valid");
    config.database = dir.path().join("ps.db");
    config.sandbox = true;
    // No dispatcher runs in process: a refund's POS answer must not wait for an MPP.
    config.refunds.pos_wait_ms = 0;
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let shared: SharedClock = clock.clone();
    let app = App::start(config, shared).await.expect("the PS starts");
    let service = tolem_ps::app::service(app.clone());
    let s = &service;

    // A device, a paid purchase (with its receipt), an open one, a link, a refund QR.
    let register = |id: &str| {
        pos(
            "POST",
            "/r1/v01/device/register",
            Some(json!({"DeviceId": id, "TradePointId": 1001})),
        )
    };
    let device = ok_pos(&call(s, &register("fuzz-1")).await)["DeviceToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let spare = ok_pos(&call(s, &register("fuzz-2")).await)["DeviceToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let qr = |amount: u64| {
        pos(
            "POST",
            "/r1/v01/qr/create",
            Some(json!({"DeviceToken": device, "Amount": amount})),
        )
    };
    let paid = ok_pos(&call(s, &qr(500)).await).clone();
    let paid_id = paid["QrPaymentId"].as_i64().expect("id");
    let scan = |qr: &str, customer: &str| {
        mpp(
            "/api/v1/qr/scan",
            "ru-RU",
            json!({"qrCode": qr, "customerId": customer}),
        )
    };
    let scanned = call(s, &scan(paid["QrToken"].as_str().expect("token"), "C-1")).await;
    let paid_payment = ok_mpp(&scanned)["payment"]["paymentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let notify = |payment: &str, code: &str, amount: Option<&str>| {
        let mut p = json!({"paymentId": payment, "mppPaymentId": format!("M-{payment}")});
        if let Some(amount) = amount {
            p["paymentAmount"] = json!(amount);
        }
        mpp(
            "/api/v1/qr/notifyPayment",
            "ru-RU",
            json!({"result": {"resultCode": code, "resultMessage": "ok"}, "payment": p, "customerId": "C-1"}),
        )
    };
    let notified = call(s, &notify(&paid_payment, "SUCCESS", None)).await;
    let receipt = ok_mpp(&notified)["linkReceipt"]
        .as_str()
        .expect("a receipt link")
        .to_owned();
    let receipt = receipt
        .split_once("/receipt")
        .map(|(_, r)| format!("/receipt{r}"))
        .expect("a path");
    let open = ok_pos(&call(s, &qr(700)).await).clone();
    let open_id = open["QrPaymentId"].as_i64().expect("id");
    let open_token = open["QrToken"].as_str().expect("token").to_owned();
    let link = call(
        s,
        &pos(
            "POST",
            "/r1/v01/qr/create-link",
            Some(json!({"DeviceToken": device, "Amount": 300})),
        ),
    )
    .await;
    let link = ok_pos(&link)["PaymentLink"]
        .as_str()
        .expect("a link")
        .to_owned();
    let link = link
        .split_once("/pay/")
        .map(|(_, d)| format!("/pay/{d}"))
        .expect("a path");
    let static_scan = call(s, &scan(STATIC_QR, "C-2")).await;
    let static_payment = ok_mpp(&static_scan)["payment"]["paymentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let parking_scan = call(s, &scan(PARKING_QR, "C-3")).await;
    let parking_payment = ok_mpp(&parking_scan)["payment"]["paymentId"]
        .as_str()
        .expect("id")
        .to_owned();
    let refund_qr = call(
        s,
        &pos(
            "POST",
            "/r2/v01/return/create",
            Some(json!({"DeviceToken": device})),
        ),
    )
    .await;
    let return_id = ok_pos(&refund_qr)["QrReturnId"].as_i64().expect("id");
    let catalog = call(s, &admin("GET", "/admin/v1/catalog", None)).await;
    let item = |list: &str, key: &str, value: Value| -> Value {
        catalog[list]
            .as_array()
            .and_then(|items| items.iter().find(|i| i[key] == value).cloned())
            .unwrap_or(Value::Null)
    };
    let demowallet = item("mpps", "caller_name", json!("demowallet"));
    let demobank = item("mpps", "caller_name", json!("demobank"));
    let other_org = item("organizations", "bin", json!(OTHER_BIN));
    let other_point = item("trade_points", "id", json!(2001));
    let cafe = item("trade_points", "id", json!(1001));
    let parking = item("services", "id", json!(2862));

    let checkout = json!({"paymentId": parking_payment, "serviceId": 2862,
        "parameters": [{"id": 3932, "value": "123ABC02"}, {"id": 3933, "value": "1h"}]});
    let seeds = vec![
        // MPP API (SPEC 4.1–4.3, docs/mpp-api.md).
        scan(STATIC_QR, "C-2"),
        scan(&open_token, "C-4"),
        scan(PARKING_QR, "C-3"),
        mpp(
            "/api/v1/qr/scan",
            "kk-KZ",
            json!({"qrCode": PARKING_QR, "customerId": "C-3"}),
        ),
        mpp("/api/v1/qr/checkout", "kk-KZ", checkout),
        notify(&static_payment, "SUCCESS", Some("100.00")),
        notify(&static_payment, "CANCELLED_BY_CLIENT", Some("100")),
        notify(&paid_payment, "SUCCESS", None),
        notify(&parking_payment, "RISK_REJECT", Some("300.00")),
        // Merchant API r1/r2/r3 (docs/merchant-api.md).
        pos(
            "POST",
            "/r1/v01/device/register",
            Some(json!({"DeviceId": "fuzz-3", "TradePointId": "1001"})),
        ),
        pos(
            "POST",
            "/r2/v01/device/delete",
            Some(json!({"DeviceToken": spare})),
        ),
        pos(
            "POST",
            "/r1/v01/qr/create",
            Some(json!({"DeviceToken": device, "Amount": 200.5, "ExternalId": "x-1"})),
        ),
        pos(
            "POST",
            "/r3/v01/qr/create",
            Some(json!({"DeviceToken": device, "Amount": "150.00", "OrganizationBin": BIN})),
        ),
        pos(
            "POST",
            "/r1/v01/qr/create-link",
            Some(json!({"DeviceToken": device, "Amount": 300})),
        ),
        pos("GET", &format!("/r1/v01/payment/status/{paid_id}"), None),
        pos("GET", &format!("/r2/v02/payment/status/{open_id}"), None),
        pos(
            "GET",
            &format!("/r2/v01/payment/details?QrPaymentId={paid_id}&DeviceToken={device}"),
            None,
        ),
        pos(
            "GET",
            &format!("/r3/v01/payment/details?qrPaymentId={paid_id}&deviceToken={device}"),
            None,
        ),
        pos(
            "POST",
            "/r2/v01/return/create",
            Some(json!({"DeviceToken": device, "ExternalId": "r-1"})),
        ),
        pos("GET", &format!("/r2/v01/return/status/{return_id}"), None),
        pos(
            "POST",
            "/r2/v01/return/operations",
            Some(json!({"DeviceToken": device, "QrReturnId": return_id, "MaxResult": 10})),
        ),
        pos(
            "POST",
            "/r2/v01/payment/return",
            Some(
                json!({"DeviceToken": device, "QrPaymentId": paid_id, "QrReturnId": return_id, "Amount": 1}),
            ),
        ),
        pos(
            "POST",
            "/r3/v01/payment/return",
            Some(
                json!({"DeviceToken": device, "QrPaymentId": paid_id, "Amount": "1.00", "OrganizationBin": BIN}),
            ),
        ),
        pos(
            "POST",
            "/r1/v01/test/payment/scan",
            Some(json!({"QrPaymentId": open_id})),
        ),
        pos(
            "POST",
            "/r1/v01/test/payment/confirm",
            Some(json!({"QrPaymentId": open_id})),
        ),
        pos(
            "POST",
            "/r1/v01/test/payment/scanerror",
            Some(json!({"QrPaymentId": open_id})),
        ),
        pos(
            "POST",
            "/r2/v01/test/return/scan",
            Some(json!({"QrReturnId": return_id})),
        ),
        pos("GET", "/r1/v01/partner/tradepoints", None),
        pos("GET", &format!("/r3/v01/partner/tradepoints/{BIN}"), None),
        pos("GET", "/r1/v01/health/ping", None),
        pos(
            "POST",
            "/r1/v01/remote/invoice",
            Some(json!({"DeviceToken": device})),
        ),
        // Admin API (docs/admin-api.md), on data whose change does not stop the other seeds.
        admin("GET", "/admin/v1/catalog", None),
        admin("PUT", "/admin/v1/mpps/demowallet", Some(demowallet.clone())),
        admin(
            "PUT",
            &format!("/admin/v1/organizations/{OTHER_BIN}"),
            Some(other_org.clone()),
        ),
        admin(
            "POST",
            &format!("/admin/v1/organizations/{OTHER_BIN}/status"),
            Some(json!({"status": "suspended"})),
        ),
        admin(
            "POST",
            &format!("/admin/v1/organizations/{OTHER_BIN}/api-keys"),
            Some(json!({"kind": "test"})),
        ),
        admin(
            "PUT",
            "/admin/v1/trade-points/2001",
            Some(other_point.clone()),
        ),
        admin("PUT", "/admin/v1/services/2862", Some(parking.clone())),
        admin("GET", &format!("/admin/v1/payments/{paid_id}"), None),
        admin(
            "POST",
            &format!("/admin/v1/payments/{paid_id}/cancel"),
            Some(json!({"amount": "1"})),
        ),
        admin("GET", "/admin/v1/refunds?status=pending&limit=100", None),
        admin(
            "POST",
            &format!("/admin/v1/refunds/{return_id}/retry"),
            None,
        ),
        admin("GET", "/admin/v1/metrics", None),
        admin("GET", "/admin/v1/registers?limit=10", None),
        // Receipts, QR pictures, payment links, the MPP's cabinet.
        page(&receipt),
        page(&format!("{receipt}&locale=kk")),
        page(&format!("/qr/image.png?token={STATIC_QR}")),
        page(&format!("/qr/image.svg?token={open_token}")),
        page(&link),
        // The cashier screen and its one call of its own.
        page("/pos/"),
        pos("GET", "/pos/organization", None),
        input(
            "GET",
            "/cabinet/v1/registers/daily/2026-11-26.xlsx",
            &[("authorization", &format!("Bearer {CABINET_TOKEN}"))],
            None,
        ),
        input(
            "GET",
            "/cabinet/v1/registers/monthly/2026-10.csv",
            &[("authorization", &format!("Bearer {CABINET_TOKEN}"))],
            None,
        ),
        page("/no/such/path"),
    ];
    let restore = vec![
        admin("PUT", "/admin/v1/mpps/demobank", Some(demobank)),
        admin("PUT", "/admin/v1/trade-points/1001", Some(cafe)),
        admin(
            "POST",
            &format!("/admin/v1/organizations/{BIN}/status"),
            Some(json!({"status": "active"})),
        ),
        admin("PUT", "/admin/v1/services/2862", Some(parking)),
    ];
    Target {
        clock,
        service,
        seeds,
        restore,
        _dir: dir,
    }
}
