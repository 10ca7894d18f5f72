//! r2 and r3 known by the client certificate alone (DECISIONS 41), here through a trusted
//! TLS-terminating proxy's header: the PS on port 0 trusts 127.0.0.1 as its proxy, and the tests
//! speak for the proxy, setting the header it would set. A client on 127.0.0.2 is a stranger
//! whose header must be ignored. Certificates are made with rcgen; the operator registers them
//! through the admin API, by PEM or by fingerprint.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Value, json};
use tolem_ps::catalog::Fingerprint;

use crate::harness::{ADMIN_TOKEN, API_KEY, OTHER_API_KEY, TestPs};

const CAFE: &str = "990340001234";
const SHOP: &str = "990340005678";
/// The header the proxy names the certificate in; written in capitals in the configuration,
/// sent in lowercase, as header names are case-insensitive.
const HEADER: &str = "X-SSL-Client-SHA256";

async fn start() -> TestPs {
    TestPs::start_configured(|c| {
        c.client_identity.trusted_proxies = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        c.client_identity.fingerprint_header = HEADER.to_owned();
    })
    .await
}

/// A self-signed client certificate: its PEM and its fingerprint.
fn certificate(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("a certificate");
    (cert.pem(), Fingerprint::of_der(cert.der()).to_string())
}

/// The same fingerprint as `openssl x509 -fingerprint -sha256` prints it: `AB:CD:…`.
fn with_colons(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// A merchant API call: the certificate's fingerprint in the proxy's header, and an `Api-Key`,
/// each when given. Returns the envelope.
async fn pos(
    http: &reqwest::Client,
    ps: &TestPs,
    method: &str,
    path: &str,
    fingerprint: Option<&str>,
    key: Option<&str>,
    body: Option<&Value>,
) -> Value {
    let url = format!("{}{path}", ps.url);
    let mut req = match method {
        "GET" => http.get(url),
        _ => http.post(url),
    };
    if let Some(fingerprint) = fingerprint {
        req = req.header(HEADER.to_lowercase(), fingerprint);
    }
    if let Some(key) = key {
        req = req.header("api-key", key);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await.expect("the PS answers");
    let text = resp.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}"))
}

/// A call with the certificate alone, from the proxy.
async fn with_cert(
    ps: &TestPs,
    fingerprint: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Value {
    pos(&ps.http, ps, method, path, Some(fingerprint), None, body).await
}

/// An admin call of any method: (HTTP status, body).
async fn admin(ps: &TestPs, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!("{}{path}", ps.url);
    let mut req = match method {
        "GET" => ps.http.get(url),
        "DELETE" => ps.http.delete(url),
        _ => ps.http.post(url),
    };
    req = req.bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.expect("the PS answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Registers a certificate to an organization; returns its fingerprint as the PS writes it.
async fn register(ps: &TestPs, bin: &str, body: Value) -> String {
    let path = format!("/admin/v1/organizations/{bin}/certificates");
    let (status, answer) = admin(ps, "POST", &path, Some(&body)).await;
    assert_eq!(status, 201, "{answer}");
    answer["fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_owned()
}

fn code(answer: &Value) -> i64 {
    answer["StatusCode"]
        .as_i64()
        .unwrap_or_else(|| panic!("a StatusCode in {answer}"))
}

/// Pays a purchase through the sandbox's emulators, on the scheme and with the certificate given.
async fn pay(ps: &TestPs, fingerprint: &str, scheme: &str, id: i64) {
    for step in ["scan", "confirm"] {
        let path = format!("/{scheme}/v01/test/payment/{step}");
        let answer = with_cert(
            ps,
            fingerprint,
            "POST",
            &path,
            Some(&json!({"qrPaymentId": id})),
        )
        .await;
        assert_eq!(code(&answer), 0, "{step}: {answer}");
    }
}

#[tokio::test]
async fn r2_and_r3_work_with_the_client_certificate_alone() {
    let ps = start().await;
    let (pem, expected) = certificate("cafe-pos");
    let body = json!({"pem": pem});
    let cert = register(&ps, CAFE, body.clone()).await;
    assert_eq!(cert, expected, "the SHA-256 of the leaf's DER");
    // Registering again is the same one registration.
    let path = format!("/admin/v1/organizations/{CAFE}/certificates");
    let (status, again) = admin(&ps, "POST", &path, Some(&body)).await;
    assert_eq!((status, &again["fingerprint"]), (200, &json!(cert)));
    let (_, list) = admin(&ps, "GET", &path, None).await;
    assert_eq!(list["certificates"], json!([cert]));

    // r2: a device, a purchase, its status, the refund with the customer; no Api-Key anywhere.
    let c = cert.as_str();
    let points = with_cert(&ps, c, "GET", "/r2/v01/partner/tradepoints", None).await;
    assert_eq!(points["Data"][0]["TradePointId"], 1001, "{points}");
    let registered = with_cert(
        &ps,
        c,
        "POST",
        "/r2/v01/device/register",
        Some(&json!({"DeviceId": "R2-1", "TradePointId": 1001})),
    )
    .await;
    let device = registered["Data"]["DeviceToken"]
        .as_str()
        .expect("a token")
        .to_owned();
    let created = with_cert(
        &ps,
        c,
        "POST",
        "/r2/v01/qr/create",
        Some(&json!({"DeviceToken": device, "Amount": 500})),
    )
    .await;
    assert_eq!(code(&created), 0, "{created}");
    let purchase = created["Data"]["QrPaymentId"].as_i64().expect("an id");
    pay(&ps, c, "r2", purchase).await;
    let status = with_cert(
        &ps,
        c,
        "GET",
        &format!("/r2/v01/payment/status/{purchase}"),
        None,
    )
    .await;
    assert_eq!(status["Data"]["Status"], "Processed", "{status}");
    let status = with_cert(
        &ps,
        c,
        "GET",
        &format!("/r2/v02/payment/status/{purchase}"),
        None,
    )
    .await;
    assert_eq!(status["Data"]["Amount"], json!(500.0), "{status}");

    let created = with_cert(
        &ps,
        c,
        "POST",
        "/r2/v01/return/create",
        Some(&json!({"DeviceToken": device})),
    )
    .await;
    let qr_return = created["Data"]["QrReturnId"].as_i64().expect("a return QR");
    let scanned = with_cert(
        &ps,
        c,
        "POST",
        "/r2/v01/test/return/scan",
        Some(&json!({"qrReturnId": qr_return})),
    )
    .await;
    assert_eq!(code(&scanned), 0, "{scanned}");
    let status = with_cert(
        &ps,
        c,
        "GET",
        &format!("/r2/v01/return/status/{qr_return}"),
        None,
    )
    .await;
    assert_eq!(
        status["Data"]["Status"], "CustomerIdentityObtained",
        "{status}"
    );
    let ops = with_cert(
        &ps,
        c,
        "POST",
        "/r2/v01/return/operations",
        Some(&json!({"DeviceToken": device, "QrReturnId": qr_return})),
    )
    .await;
    assert_eq!(ops["Data"][0]["QrPaymentId"], purchase, "{ops}");
    let details_path =
        format!("/r2/v01/payment/details?QrPaymentId={purchase}&DeviceToken={device}");
    let details = with_cert(&ps, c, "GET", &details_path, None).await;
    assert_eq!(
        details["Data"]["AvailableReturnAmount"],
        json!(500.0),
        "{details}"
    );
    let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "QrReturnId": qr_return, "Amount": 200});
    let returned = with_cert(&ps, c, "POST", "/r2/v01/payment/return", Some(&body)).await;
    assert_eq!(
        returned["Data"]["ReturnOperationId"], qr_return,
        "{returned}"
    );

    // r3: the same certificate, the organization named in every body; a refund without customer.
    let points = with_cert(
        &ps,
        c,
        "GET",
        &format!("/r3/v01/partner/tradepoints/{CAFE}"),
        None,
    )
    .await;
    assert_eq!(code(&points), 0, "{points}");
    let body = json!({"DeviceToken": device, "Amount": 300, "OrganizationBin": CAFE});
    let created = with_cert(&ps, c, "POST", "/r3/v01/qr/create", Some(&body)).await;
    assert_eq!(code(&created), 0, "{created}");
    let purchase = created["Data"]["QrPaymentId"].as_i64().expect("an id");
    pay(&ps, c, "r3", purchase).await;
    let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": 100, "OrganizationBin": CAFE});
    let returned = with_cert(&ps, c, "POST", "/r3/v01/payment/return", Some(&body)).await;
    assert!(returned["Data"]["ReturnOperationId"].is_i64(), "{returned}");
    let details_path =
        format!("/r3/v01/payment/details?QrPaymentId={purchase}&DeviceToken={device}");
    let details = with_cert(&ps, c, "GET", &details_path, None).await;
    assert_eq!(
        details["Data"]["AvailableReturnAmount"],
        json!(200.0),
        "{details}"
    );

    // An Api-Key sent beside the certificate must be the same organization's.
    let ping = |key| {
        pos(
            &ps.http,
            &ps,
            "GET",
            "/r2/v01/health/ping",
            Some(c),
            Some(key),
            None,
        )
    };
    assert_eq!(code(&ping(API_KEY).await), 0);
    let other = ping(OTHER_API_KEY).await;
    assert_eq!(code(&other), -10000, "{other}");
    assert_eq!(code(&ping("test_NOT_A_KEY").await), -10000);
    assert_eq!(
        code(&ping("").await),
        0,
        "an empty Api-Key header is no key"
    );
    let body = json!({"DeviceToken": device, "Amount": 300, "OrganizationBin": CAFE});
    let other = pos(
        &ps.http,
        &ps,
        "POST",
        "/r3/v01/qr/create",
        Some(c),
        Some(OTHER_API_KEY),
        Some(&body),
    )
    .await;
    assert_eq!(code(&other), -10000, "{other}");
}

#[tokio::test]
async fn without_a_usable_certificate_r2_and_r3_get_nothing() {
    let ps = start().await;
    let (pem, _) = certificate("cafe-pos");
    let cert = register(&ps, CAFE, json!({"pem": pem})).await;
    let device = ps.device("R1-1").await;
    let (_, purchase) = ps.dynamic_qr(&device, 700).await;
    let status_path = |scheme: &str| format!("/{scheme}/v01/payment/status/{purchase}");
    let refused = |answer: Value| {
        assert_eq!(code(&answer), -10000, "{answer}");
        assert!(
            answer.get("Data").is_none_or(Value::is_null),
            "nothing shown: {answer}"
        );
    };

    // Mutual TLS is set up (a trusted proxy), so the Api-Key alone no longer opens r2 and r3;
    // r1 keeps it.
    for scheme in ["r2", "r3"] {
        refused(pos(&ps.http, &ps, "GET", &status_path(scheme), None, None, None).await);
        refused(
            pos(
                &ps.http,
                &ps,
                "GET",
                &status_path(scheme),
                None,
                Some(API_KEY),
                None,
            )
            .await,
        );
    }
    let r1 = pos(
        &ps.http,
        &ps,
        "GET",
        &status_path("r1"),
        None,
        Some(API_KEY),
        None,
    )
    .await;
    assert_eq!(code(&r1), 0, "{r1}");
    assert_eq!(
        code(&with_cert(&ps, &cert, "GET", &status_path("r2"), None).await),
        0
    );

    // An unknown certificate, a SHA-1 fingerprint, a header that is no fingerprint.
    let (_, unknown) = certificate("stranger");
    for header in [unknown.as_str(), &cert[..40], "yes", "ZZ:ZZ"] {
        refused(with_cert(&ps, header, "GET", &status_path("r2"), None).await);
        refused(with_cert(&ps, header, "GET", &status_path("r3"), None).await);
    }
    // The same fingerprint written as openssl prints it is the same certificate.
    assert_eq!(
        code(&with_cert(&ps, &with_colons(&cert), "GET", &status_path("r3"), None).await),
        0
    );

    // From an address that is not a trusted proxy the header is ignored: a forged one opens
    // nothing, while r1 with its key from there works (the connection itself is fine).
    let stranger = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .expect("a client");
    refused(
        pos(
            &stranger,
            &ps,
            "GET",
            &status_path("r2"),
            Some(&cert),
            None,
            None,
        )
        .await,
    );
    refused(
        pos(
            &stranger,
            &ps,
            "GET",
            &status_path("r3"),
            Some(&cert),
            None,
            None,
        )
        .await,
    );
    let r1 = pos(
        &stranger,
        &ps,
        "GET",
        &status_path("r1"),
        Some(&cert),
        Some(API_KEY),
        None,
    )
    .await;
    assert_eq!(code(&r1), 0, "{r1}");

    // A header sent twice with two values is read as neither: a client's forged fingerprint and
    // the proxy's added after it (a proxy that adds instead of replacing), or two Api-Keys.
    let (_, forged) = certificate("forger");
    for path in [status_path("r2"), status_path("r3")] {
        let twice = ps
            .http
            .get(format!("{}{path}", ps.url))
            .header(HEADER.to_lowercase(), &cert)
            .header(HEADER.to_lowercase(), &forged)
            .send()
            .await
            .expect("the PS answers");
        refused(twice.json().await.expect("JSON"));
    }
    // The same key sent again (a client's default header and its own) is that key.
    for (keys, known) in [
        ([API_KEY, "another-key"], false),
        ([API_KEY, API_KEY], true),
    ] {
        let twice = ps
            .http
            .get(format!("{}{}", ps.url, status_path("r1")))
            .header("api-key", keys[0])
            .header("api-key", keys[1])
            .send()
            .await
            .expect("the PS answers");
        let answer: Value = twice.json().await.expect("JSON");
        if known {
            assert_eq!(code(&answer), 0, "{answer}");
        } else {
            refused(answer);
        }
    }

    // Revoked: the next request is refused.
    let path = format!(
        "/admin/v1/organizations/{CAFE}/certificates/{}",
        with_colons(&cert)
    );
    let (status, left) = admin(&ps, "DELETE", &path, None).await;
    assert_eq!((status, &left["certificates"]), (200, &json!([])), "{left}");
    refused(with_cert(&ps, &cert, "GET", &status_path("r2"), None).await);
    refused(with_cert(&ps, &cert, "GET", &status_path("r3"), None).await);
    let (status, _) = admin(&ps, "DELETE", &path, None).await;
    assert_eq!(status, 404, "already revoked");
}

#[tokio::test]
async fn another_organizations_certificate_finds_nothing_of_the_first() {
    let ps = start().await;
    let (cafe_pem, _) = certificate("cafe-pos");
    let cafe = register(&ps, CAFE, json!({"pem": cafe_pem})).await;
    let (_, shop_hex) = certificate("shop-pos");
    // Registered by fingerprint, as openssl prints it: stored in lowercase without colons.
    let shop = register(&ps, SHOP, json!({"fingerprint": with_colons(&shop_hex)})).await;
    assert_eq!(shop, shop_hex);
    let device = ps.device("CAFE-1").await;
    let (_, purchase) = ps.dynamic_qr(&device, 900).await;
    pay(&ps, &cafe, "r2", purchase).await;
    let shop_device = ps.device_at(OTHER_API_KEY, "SHOP-1", 2001).await;

    for path in [
        format!("/r2/v01/payment/status/{purchase}"),
        format!("/r3/v02/payment/status/{purchase}"),
    ] {
        let answer = with_cert(&ps, &shop, "GET", &path, None).await;
        assert_eq!(code(&answer), -1601, "{path}: {answer}");
    }
    let details = with_cert(
        &ps,
        &shop,
        "GET",
        &format!("/r3/v01/payment/details?QrPaymentId={purchase}&DeviceToken={shop_device}"),
        None,
    )
    .await;
    assert_eq!(code(&details), -1601, "{details}");
    let body = json!({"DeviceToken": shop_device, "QrPaymentId": purchase, "Amount": 100, "OrganizationBin": SHOP});
    let refund = with_cert(&ps, &shop, "POST", "/r3/v01/payment/return", Some(&body)).await;
    assert_eq!(code(&refund), -99000001, "{refund}");
    // Naming the café in the body does not make the shop's certificate the café's.
    let body = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": 100, "OrganizationBin": CAFE});
    let refund = with_cert(&ps, &shop, "POST", "/r3/v01/payment/return", Some(&body)).await;
    assert_eq!(code(&refund), -10000, "{refund}");
    let details = with_cert(
        &ps,
        &cafe,
        "GET",
        &format!("/r3/v01/payment/details?QrPaymentId={purchase}&DeviceToken={device}"),
        None,
    )
    .await;
    assert_eq!(
        details["Data"]["AvailableReturnAmount"],
        json!(900.0),
        "nothing was refunded: {details}"
    );
}

#[tokio::test]
async fn a_partner_certificate_acts_for_the_organization_its_bin_names() {
    let ps = start().await;
    let (pem, _) = certificate("partner-server");
    let partner = register(&ps, CAFE, json!({"pem": pem})).await;
    register(&ps, SHOP, json!({"fingerprint": partner.to_uppercase()})).await;
    let cafe_device = ps.device("CAFE-1").await;
    let shop_device = ps.device_at(OTHER_API_KEY, "SHOP-1", 2001).await;
    let p = partner.as_str();

    // r2 names no organization: a certificate of two is refused, saying why.
    let r2 = with_cert(&ps, p, "GET", "/r2/v01/partner/tradepoints", None).await;
    assert_eq!(code(&r2), -10000, "{r2}");
    assert!(
        r2["Message"]
            .as_str()
            .is_some_and(|m| m.contains("несколькими организациями")),
        "{r2}"
    );

    // r3 acts for the organization the path or the body names.
    let points = with_cert(
        &ps,
        p,
        "GET",
        &format!("/r3/v01/partner/tradepoints/{CAFE}"),
        None,
    )
    .await;
    assert_eq!(points["Data"][0]["TradePointId"], 1001, "{points}");
    let points = with_cert(
        &ps,
        p,
        "GET",
        &format!("/r3/v01/partner/tradepoints/{SHOP}"),
        None,
    )
    .await;
    assert_eq!(points["Data"][0]["TradePointId"], 2001, "{points}");
    let other = with_cert(
        &ps,
        p,
        "GET",
        "/r3/v01/partner/tradepoints/990340009999",
        None,
    )
    .await;
    assert_eq!(code(&other), -10000, "{other}");
    let create = |device: &str, bin: &str| json!({"DeviceToken": device, "Amount": 100, "OrganizationBin": bin});
    let cafe_qr = with_cert(
        &ps,
        p,
        "POST",
        "/r3/v01/qr/create",
        Some(&create(&cafe_device, CAFE)),
    )
    .await;
    let cafe_purchase = cafe_qr["Data"]["QrPaymentId"].as_i64().expect("a purchase");
    let shop_qr = with_cert(
        &ps,
        p,
        "POST",
        "/r3/v01/qr/create",
        Some(&create(&shop_device, SHOP)),
    )
    .await;
    let shop_purchase = shop_qr["Data"]["QrPaymentId"].as_i64().expect("a purchase");
    // One organization's device under the other's BIN is not found.
    let crossed = with_cert(
        &ps,
        p,
        "POST",
        "/r3/v01/qr/create",
        Some(&create(&cafe_device, SHOP)),
    )
    .await;
    assert_eq!(code(&crossed), -1501, "{crossed}");
    let missing = with_cert(
        &ps,
        p,
        "POST",
        "/r3/v01/qr/create",
        Some(&json!({"DeviceToken": cafe_device, "Amount": 100})),
    )
    .await;
    assert_eq!(code(&missing), -99000400, "{missing}");
    // A call that names no organization sees what belongs to either.
    for purchase in [cafe_purchase, shop_purchase] {
        let status = with_cert(
            &ps,
            p,
            "GET",
            &format!("/r3/v01/payment/status/{purchase}"),
            None,
        )
        .await;
        assert_eq!(status["Data"]["Status"], "QrTokenCreated", "{status}");
    }
    // A purchase of one organization is not seen through the other's device.
    let details = with_cert(
        &ps,
        p,
        "GET",
        &format!("/r3/v01/payment/details?QrPaymentId={cafe_purchase}&DeviceToken={shop_device}"),
        None,
    )
    .await;
    assert_eq!(code(&details), -1601, "{details}");

    // Revoked for the shop only: the café's calls go on.
    let path = format!("/admin/v1/organizations/{SHOP}/certificates/{partner}");
    assert_eq!(admin(&ps, "DELETE", &path, None).await.0, 200);
    let shop = with_cert(
        &ps,
        p,
        "GET",
        &format!("/r3/v01/partner/tradepoints/{SHOP}"),
        None,
    )
    .await;
    assert_eq!(code(&shop), -10000, "{shop}");
    let status = with_cert(
        &ps,
        p,
        "GET",
        &format!("/r3/v01/payment/status/{shop_purchase}"),
        None,
    )
    .await;
    assert_eq!(code(&status), -1601, "{status}");
    let r2 = with_cert(&ps, p, "GET", "/r2/v01/partner/tradepoints", None).await;
    assert_eq!(code(&r2), 0, "one organization again: {r2}");
}

#[tokio::test]
async fn the_admin_api_refuses_bad_certificates_and_changes_nothing() {
    let ps = start().await;
    let (pem, hex) = certificate("cafe-pos");
    register(&ps, CAFE, json!({"fingerprint": hex})).await;
    let (_, before) = admin(&ps, "GET", "/admin/v1/catalog", None).await;
    assert_eq!(
        before["organizations"][0]["client_certificates"],
        json!([hex]),
        "{before}"
    );
    let path = format!("/admin/v1/organizations/{CAFE}/certificates");
    let key_pem = rcgen::KeyPair::generate().expect("a key").serialize_pem();
    let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let refusals = [
        (json!({"pem": "hello"}), "no PEM certificate"),
        (json!({"pem": key_pem}), "no PEM certificate"),
        (json!({"pem": garbage}), "not an X.509 certificate"),
        (json!({"pem": pem, "fingerprint": hex}), "exactly one"),
        (json!({}), "exactly one"),
        (json!({"fingerprint": &hex[..40]}), "64 hex digits"),
        (
            json!({"fingerprint": format!("{}zz", &hex[..62])}),
            "64 hex digits",
        ),
        (
            json!({"fingerprint": hex, "organization": SHOP}),
            "unknown field",
        ),
        (json!("just text"), "invalid type"),
    ];
    for (body, why) in refusals {
        let (status, answer) = admin(&ps, "POST", &path, Some(&body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(why)),
            "{body}: {answer}"
        );
    }
    let unknown_org = "/admin/v1/organizations/990340009999/certificates";
    let (status, _) = admin(&ps, "POST", unknown_org, Some(&json!({"pem": pem}))).await;
    assert_eq!(status, 404);
    let (status, _) = admin(&ps, "GET", unknown_org, None).await;
    assert_eq!(status, 404);
    let (status, answer) = admin(&ps, "DELETE", &format!("{path}/not-a-fingerprint"), None).await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = admin(&ps, "DELETE", &format!("{path}/{}", "0".repeat(64)), None).await;
    assert_eq!(status, 404, "not registered");
    let (status, _) = admin(&ps, "DELETE", &format!("{unknown_org}/{hex}"), None).await;
    assert_eq!(status, 404);
    // A whole organization with a bad fingerprint is refused, naming it.
    let mut org = before["organizations"][0].clone();
    org["client_certificates"] = json!([hex, "not-a-fingerprint"]);
    let resp = ps
        .http
        .put(format!("{}/admin/v1/organizations/{CAFE}", ps.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&org)
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(resp.status().as_u16(), 400);
    let answer: Value = resp.json().await.expect("JSON");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("client_certificates")),
        "{answer}"
    );
    // Without the token nothing is read or changed.
    let resp = ps
        .http
        .delete(format!("{}{path}/{hex}", ps.url))
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(resp.status().as_u16(), 401);

    let (_, after) = admin(&ps, "GET", "/admin/v1/catalog", None).await;
    assert_eq!(after, before, "nothing changed");
    // And the registered certificate still works.
    let answer = with_cert(&ps, &hex, "GET", "/r2/v01/health/ping", None).await;
    assert_eq!(code(&answer), 0, "{answer}");
}
