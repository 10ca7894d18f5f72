//! r2 and r3 over real mutual TLS (DECISIONS 41), end to end: a `tolem serve` with the production
//! layout of listeners (`listeners.rs`), the merchant listener asking for client certificates of
//! the merchants' CA, the operator registering each organization's certificate through the admin
//! listener. A POS with only its certificate is served; without one, with another CA's, with
//! another organization's, or after revocation, it gets nothing.

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, API_KEY};
use crate::listeners::{Ca, Issued, Served, answer, tls_client};

const CAFE: &str = "990340001234";
const SHOP: &str = "990340005678";

fn envelope(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("an envelope, got {text}"))
}

fn code(answer: &Value) -> i64 {
    answer["StatusCode"]
        .as_i64()
        .unwrap_or_else(|| panic!("a StatusCode in {answer}"))
}

/// A merchant API call over TLS as `identity` (with an `Api-Key` when given): the envelope.
async fn pos(
    ps: &Served,
    ca: &Ca,
    identity: Option<&Issued>,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let url = format!("{}{path}", ps.url("merchant"));
    let headers: Vec<(&str, &str)> = key.map(|k| ("api-key", k)).into_iter().collect();
    let (_, text) = answer(&tls_client(ca, identity), method, url, &headers, body).await;
    envelope(&text)
}

/// The operator registers `issued` to the organization `bin` by its PEM, through the admin
/// listener.
async fn register(ps: &Served, bin: &str, issued: &Issued) {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, text) = answer(
        &reqwest::Client::new(),
        "POST",
        format!(
            "{}/admin/v1/organizations/{bin}/certificates",
            ps.url("admin")
        ),
        &[("authorization", &auth)],
        Some(json!({"pem": issued.cert_pem})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
}

fn ok_data(answer: &Value) -> &Value {
    assert_eq!(code(answer), 0, "{answer}");
    &answer["Data"]
}

fn refused(answer: &Value, expected: i64) {
    assert_eq!(code(answer), expected, "{answer}");
    assert!(
        answer.get("Data").is_none_or(Value::is_null),
        "nothing shown: {answer}"
    );
}

#[tokio::test]
async fn r2_and_r3_are_served_on_a_client_certificate_alone_and_to_nobody_else() {
    let (ps, server_ca, pos_ca) = Served::three_listeners();
    let stranger_ca = Ca::new();
    let cafe = pos_ca.issue("cafe-pos");
    let shop = pos_ca.issue("shop-pos");
    let forged = stranger_ca.issue("cafe-pos");
    register(&ps, CAFE, &cafe).await;
    register(&ps, SHOP, &shop).await;
    let as_cafe = Some(&cafe);

    // r2 with the café's certificate and nothing else: a device, a purchase, its status.
    let registered = pos(
        &ps,
        &server_ca,
        as_cafe,
        None,
        "POST",
        "/r2/v01/device/register",
        Some(json!({"DeviceId": "MTLS-1", "TradePointId": 1001})),
    )
    .await;
    let device = ok_data(&registered)["DeviceToken"]
        .as_str()
        .expect("a device token")
        .to_owned();
    let created = pos(
        &ps,
        &server_ca,
        as_cafe,
        None,
        "POST",
        "/r2/v01/qr/create",
        Some(json!({"DeviceToken": device, "Amount": 1500})),
    )
    .await;
    let purchase = ok_data(&created)["QrPaymentId"].as_i64().expect("an id");
    let r2_status = format!("/r2/v01/payment/status/{purchase}");
    let status = pos(&ps, &server_ca, as_cafe, None, "GET", &r2_status, None).await;
    assert_eq!(ok_data(&status)["Status"], "QrTokenCreated", "{status}");

    // r3 with the same certificate, the organization named in the body.
    let created = pos(
        &ps,
        &server_ca,
        as_cafe,
        None,
        "POST",
        "/r3/v01/qr/create",
        Some(json!({"DeviceToken": device, "Amount": 700, "OrganizationBin": CAFE})),
    )
    .await;
    let r3_purchase = ok_data(&created)["QrPaymentId"].as_i64().expect("an id");
    let r3_status = format!("/r3/v02/payment/status/{r3_purchase}");
    let status = pos(&ps, &server_ca, as_cafe, None, "GET", &r3_status, None).await;
    assert_eq!(ok_data(&status)["Amount"], json!(700.0), "{status}");

    // Without a certificate the key alone no longer opens r2 and r3 (the PS can receive
    // certificates, so it requires one); r1 stays on its key.
    for path in [&r2_status, &r3_status] {
        let got = pos(&ps, &server_ca, None, Some(API_KEY), "GET", path, None).await;
        refused(&got, -10000);
    }
    let r1 = format!("/r1/v01/payment/status/{purchase}");
    let got = pos(&ps, &server_ca, None, Some(API_KEY), "GET", &r1, None).await;
    ok_data(&got);

    // Another CA's certificate does not get past the handshake.
    let url = format!("{}{r2_status}", ps.url("merchant"));
    let stranger = tls_client(&server_ca, Some(&forged)).get(url).send().await;
    assert!(
        stranger.is_err(),
        "another CA's certificate was served: {stranger:?}"
    );

    // The shop's certificate is the shop: the café's purchases are not found, never shown.
    let as_shop = Some(&shop);
    let got = pos(&ps, &server_ca, as_shop, None, "GET", &r2_status, None).await;
    refused(&got, -1601);
    let got = pos(&ps, &server_ca, as_shop, None, "GET", &r3_status, None).await;
    refused(&got, -1601);

    // Revoked, the café's certificate is nobody's from the next request on.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let fingerprint = tolem_ps::catalog::Fingerprint::of_der(&cafe.der).to_string();
    let (status, text) = answer(
        &reqwest::Client::new(),
        "DELETE",
        format!(
            "{}/admin/v1/organizations/{CAFE}/certificates/{fingerprint}",
            ps.url("admin")
        ),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let got = pos(&ps, &server_ca, as_cafe, None, "GET", &r2_status, None).await;
    refused(&got, -10000);
}
