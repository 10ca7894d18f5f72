//! Operator data through the admin API, and Custom amounts computed by a provider's callback.

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn the_admin_api_needs_its_token_and_keeps_the_catalog_valid() {
    let ps = TestPs::start().await;
    let resp = ps
        .http
        .get(format!("{}/admin/v1/catalog", ps.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
    let resp = ps
        .http
        .get(format!("{}/admin/v1/catalog", ps.url))
        .bearer_auth("nope")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
    // Two tokens name no one caller, in either order; the same one twice is that one.
    let good = format!("Bearer {ADMIN_TOKEN}");
    for (first, second, want) in [
        ("Bearer nope", good.as_str(), 401),
        (good.as_str(), "Bearer nope", 401),
        (good.as_str(), good.as_str(), 200),
    ] {
        let resp = ps
            .http
            .get(format!("{}/admin/v1/catalog", ps.url))
            .header("authorization", first)
            .header("authorization", second)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), want, "{first} then {second}");
    }
    let (status, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    assert_eq!(status, 200);
    // Only hashes of API keys are stored.
    assert!(!catalog.to_string().contains(API_KEY));
    // A value of the wrong type names its field, as a missing one does.
    let (_, mut bank) = ps
        .admin("GET", "/admin/v1/mpps/demobank", &Value::Null)
        .await;
    bank["commission_bps"] = json!("150");
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/demobank", &bank).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("commission_bps: invalid type: string \"150\"")),
        "{answer}"
    );
    // Another organization's API key is refused: a key says which organization calls.
    let (status, mut other) = ps
        .admin("GET", "/admin/v1/organizations/990340005678", &Value::Null)
        .await;
    assert_eq!(status, 200, "{other}");
    other["api_keys"] = json!([API_KEY]);
    let (status, answer) = ps
        .admin("PUT", "/admin/v1/organizations/990340005678", &other)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("a key of the organization 990340001234 too"),
        "{answer}"
    );
    // A trade point of an unknown organization is refused.
    let point = json!({"id": 3001, "organization_bin": "000000000000", "name": "X", "mcc": "5411", "terminal_type": "POS"});
    let (status, answer) = ps.admin("PUT", "/admin/v1/trade-points/3001", &point).await;
    assert_eq!(status, 400, "{answer}");
    // A new MPP can call at once, and survives a restart.
    let mpp = json!({"caller_name": "newbank", "name": "New Bank", "refund_url": "http://127.0.0.1:1/refund"});
    let (status, _) = ps.admin("PUT", "/admin/v1/mpps/newbank", &mpp).await;
    assert_eq!(status, 200);
    scan_id(&ps, "newbank", STATIC_QR, "N1").await;
    let ps = ps.restart().await;
    scan_id(&ps, "newbank", STATIC_QR, "N1").await;
    // A new API key works at once; its clear text is shown once.
    let (status, key) = ps
        .admin(
            "POST",
            "/admin/v1/organizations/990340001234/api-keys",
            &json!({"kind": "prod"}),
        )
        .await;
    assert_eq!(status, 201);
    let key = key["api_key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("prod_") && key.len() == 37);
    let (_, points) = ps
        .pos("GET", "/r1/v01/partner/tradepoints", &key, None)
        .await;
    assert_eq!(points["StatusCode"], 0);
    // A payment as the operator sees it.
    let id = scan_id(&ps, "demobank", STATIC_QR, "C1").await;
    let (status, view) = ps
        .admin("GET", &format!("/admin/v1/payments/{id}"), &Value::Null)
        .await;
    assert_eq!((status, view["status"].as_str()), (200, Some("scanned")));
    // Register e-mails: none queued without an SMTP relay.
    let (status, list) = ps.admin("GET", "/admin/v1/registers", &Value::Null).await;
    assert_eq!(
        (status, list),
        (200, json!({"registers": [], "next": null}))
    );
}

#[tokio::test]
async fn a_callback_service_prices_the_payment() {
    // The service provider's system: 1500 tenge for any plate, refuses plate "STOP"; plate
    // "TIYN" costs 1500.50, and plate "FLOAT" gets an amount only a float could read.
    let provider = axum::Router::new().route(
        "/amount",
        post(|Json(req): Json<Value>| async move {
            let plate = req["parameters"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (status, body) = match plate.as_str() {
                "STOP" => (200, r#"{"error": "unknown plate"}"#),
                "TIYN" => (200, r#"{"amount": 1500.5}"#),
                "FLOAT" => (200, r#"{"amount": 1.5e3}"#),
                // A gateway's "later" and a redirect are not the provider's word; a 404 is a
                // refusal.
                "LATER" => (429, r#"{"amount": "1.00"}"#),
                "MOVED" => (302, r#"{"amount": "1.00"}"#),
                "NONE" => (404, r#"{"amount": "1.00"}"#),
                _ => (200, r#"{"amount": "1500.00"}"#),
            };
            (
                axum::http::StatusCode::from_u16(status).expect("a status"),
                [("content-type", "application/json")],
                body,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let provider_url = format!("http://{}/amount", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, provider).await });
    let ps = TestPs::start().await;
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let mut service = catalog["services"][0].clone();
    service["amount"] = json!({"kind": "callback", "url": provider_url});
    assert_eq!(
        ps.admin("PUT", "/admin/v1/services/2862", &service).await.0,
        200
    );
    let checkout = |id: &str, plate: &str| json!({"paymentId": id, "serviceId": 2862, "parameters": [{"id": 3932, "value": plate}, {"id": 3933, "value": "1h"}]});
    let id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
    let (_, answer) = ps
        .mpp_call(
            "/api/v1/qr/checkout",
            "demobank",
            "c",
            &checkout(&id, "STOP"),
        )
        .await;
    assert_eq!(result_code(&answer), "PROCESS_FAIL");
    for (plate, code) in [
        ("LATER", "UNKNOWN_EXCEPTION"),
        ("MOVED", "UNKNOWN_EXCEPTION"),
        ("NONE", "PROCESS_FAIL"),
    ] {
        let (_, answer) = ps
            .mpp_call(
                "/api/v1/qr/checkout",
                "demobank",
                plate,
                &checkout(&id, plate),
            )
            .await;
        assert_eq!(result_code(&answer), code, "{plate}: {answer}");
    }
    // Each answer that was no amount is counted, by kind; the refusal with `error` is not.
    let metrics = crate::metrics::metrics(&ps).await;
    assert!(
        metrics.contains("tolem_amount_callback_failures_total{kind=\"http\"} 3\n"),
        "{metrics}"
    );
    let (_, answer) = ps
        .mpp_call(
            "/api/v1/qr/checkout",
            "demobank",
            "c",
            &checkout(&id, "777ABC02"),
        )
        .await;
    let v: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(
        (
            v["result"]["resultCode"].as_str(),
            v["paymentAmount"].as_str()
        ),
        (Some("SUCCESS"), Some("1500.00"))
    );

    // `1.5e3` is no amount (DECISIONS 3): the provider's answer is refused, nothing frozen.
    let id = scan_id(&ps, "demobank", PARKING_QR, "C2").await;
    let (_, answer) = ps
        .mpp_call(
            "/api/v1/qr/checkout",
            "demobank",
            "f",
            &checkout(&id, "FLOAT"),
        )
        .await;
    assert_eq!(result_code(&answer), "PROCESS_FAIL");
    // An amount with tiyn is the PS's to set (DECISIONS 4): the MPP echoes it and it is paid.
    let (_, answer) = ps
        .mpp_call(
            "/api/v1/qr/checkout",
            "demobank",
            "t",
            &checkout(&id, "TIYN"),
        )
        .await;
    let v: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(v["paymentAmount"].as_str(), Some("1500.50"), "{answer}");
    let (_, paid) = ps
        .mpp_call(
            "/api/v1/qr/notifyPayment",
            "demobank",
            "n",
            &notify_body(&id, "C2", "SUCCESS", Some("1500.50")),
        )
        .await;
    assert_eq!(result_code(&paid), "SUCCESS", "{paid}");

    // A fixed tariff with tiyn is taken as well.
    service["amount"] = json!({"kind": "fixed", "amount": "150.50"});
    let (status, body) = ps.admin("PUT", "/admin/v1/services/2862", &service).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn concurrent_admin_changes_do_not_overwrite_each_other() {
    let ps = TestPs::start().await;
    let path = "/admin/v1/organizations/990340001234/api-keys";
    let kind = json!({"kind": "test"});
    let status = json!({"status": "suspended"});
    let issue = (0..20).map(|_| ps.admin("POST", path, &kind));
    let suspend = ps.admin(
        "POST",
        "/admin/v1/organizations/990340001234/status",
        &status,
    );
    let (keys, suspended) = tokio::join!(futures::future::join_all(issue), suspend);
    assert_eq!(suspended.0, 200);
    for (status, key) in keys {
        assert_eq!(status, 201);
        let key = key["api_key"].as_str().expect("key").to_owned();
        let (_, points) = ps
            .pos("GET", "/r1/v01/partner/tradepoints", &key, None)
            .await;
        assert_eq!(points["StatusCode"], 0, "key {key} works");
    }
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let org = catalog["organizations"]
        .as_array()
        .expect("orgs")
        .iter()
        .find(|o| o["bin"] == "990340001234")
        .cloned()
        .expect("org");
    assert_eq!(org["status"], "suspended");
}

#[tokio::test]
async fn an_api_key_is_revoked_by_its_hash_and_nothing_else_changes() {
    let ps = TestPs::start().await;
    let org = "/admin/v1/organizations/990340001234";
    let (keys, prod) = (format!("{org}/api-keys"), json!({"kind": "prod"}));
    let revoked = ps.admin("POST", &keys, &prod).await.1;
    let kept = ps.admin("POST", &keys, &prod).await.1;
    let (revoked, kept) = (
        revoked["api_key"].as_str().expect("a key"),
        kept["api_key"].as_str().expect("a key"),
    );
    let works = |key: &str| {
        let key = key.to_owned();
        let ps = &ps;
        async move {
            ps.pos("GET", "/r1/v01/partner/tradepoints", &key, None)
                .await
                .1["StatusCode"]
                .clone()
        }
    };
    assert_eq!(works(revoked).await, 0);
    let hash: String = <sha2::Sha256 as sha2::Digest>::digest(revoked.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Either case of the hash names it.
    let path = format!("{org}/api-keys/{}", hash.to_ascii_uppercase());
    let (status, answer) = ps.admin("DELETE", &path, &Value::Null).await;
    assert_eq!(status, 200, "{answer}");
    let left = answer["api_key_hashes"]
        .as_array()
        .expect("the hashes left");
    assert!(!left.contains(&json!(hash)), "{answer}");
    assert_eq!(
        works(revoked).await,
        -10000,
        "refused from the next request on"
    );
    assert_eq!(works(kept).await, 0, "the other key still works");
    let (status, _) = ps.admin("DELETE", &path, &Value::Null).await;
    assert_eq!(status, 404, "revoked already");
    let (status, _) = ps
        .admin("DELETE", &format!("{org}/api-keys/{revoked}"), &Value::Null)
        .await;
    assert_eq!(status, 400, "the key itself is not its hash");
    let (status, _) = ps
        .admin(
            "DELETE",
            &format!("/admin/v1/organizations/000000000000/api-keys/{hash}"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 404, "no such organization");
}

#[tokio::test]
async fn amount_callbacks_to_a_slow_provider_are_bounded_and_the_rest_told_to_retry() {
    // A provider that answers after a second.
    let provider = axum::Router::new().route(
        "/amount",
        post(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            (
                [("content-type", "application/json")],
                r#"{"amount": "700.00"}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let provider_url = format!("http://{}/amount", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, provider).await });
    let ps = TestPs::start_configured(|c| c.payments.amount_callbacks_max = 2).await;
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let mut service = catalog["services"][0].clone();
    service["amount"] = json!({"kind": "callback", "url": provider_url});
    assert_eq!(
        ps.admin("PUT", "/admin/v1/services/2862", &service).await.0,
        200
    );
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(scan_id(&ps, "demobank", PARKING_QR, &format!("C{n}")).await);
    }
    let checkouts = ids.iter().enumerate().map(|(n, id)| {
        let body = json!({"paymentId": id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}]});
        let ps = &ps;
        async move {
            ps.mpp_call("/api/v1/qr/checkout", "demobank", &format!("c{n}"), &body)
                .await
        }
    });
    let answers = futures::future::join_all(checkouts).await;
    let codes: Vec<(u16, String)> = answers
        .iter()
        .map(|(status, body)| (*status, result_code(body)))
        .collect();
    let priced = codes.iter().filter(|(_, c)| c == "SUCCESS").count();
    let retry = codes
        .iter()
        .filter(|(s, c)| *s == 503 && c == "UNKNOWN_EXCEPTION")
        .count();
    assert_eq!((priced, retry), (2, 3), "two in flight at most: {codes:?}");
    // Told to retry, a checkout is priced once a place is free: nothing was frozen.
    let told = codes
        .iter()
        .position(|(s, _)| *s == 503)
        .expect("one told to retry");
    let body = json!({"paymentId": ids[told], "serviceId": 2862, "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "1h"}]});
    let (_, again) = ps
        .mpp_call("/api/v1/qr/checkout", "demobank", "again", &body)
        .await;
    assert_eq!(result_code(&again), "SUCCESS", "{again}");
}

/// One admin call with `If-Match` (when given): (HTTP status, ETag, body).
async fn admin_if(
    ps: &TestPs,
    method: &str,
    path: &str,
    if_match: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let url = format!("{}{path}", ps.url);
    let mut req = match method {
        "PUT" => ps.http.put(url).json(body),
        _ => ps.http.get(url),
    };
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    let resp = req
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the PS answers");
    let status = resp.status().as_u16();
    let tag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, tag, body)
}

#[tokio::test]
async fn a_put_built_on_an_item_changed_since_it_was_read_is_refused_and_changes_nothing() {
    let ps = TestPs::start().await;
    let cafe = "/admin/v1/organizations/990340001234";
    let (status, read, org) = admin_if(&ps, "GET", cafe, None, &Value::Null).await;
    assert_eq!(status, 200, "{org}");
    let read = read.expect("an ETag");
    assert_eq!(org["bin"], "990340001234");

    // Two operators read the café. The first renames it, naming what it read: stored.
    let mut first = org.clone();
    first["name"] = json!("Кафе «Первый»");
    let (status, stored, answer) = admin_if(&ps, "PUT", cafe, Some(&read), &first).await;
    assert_eq!(status, 200, "{answer}");
    let stored = stored.expect("an ETag");
    assert_ne!(stored, read);
    let (_, now, _) = admin_if(&ps, "GET", cafe, None, &Value::Null).await;
    assert_eq!(now.as_deref(), Some(stored.as_str()));

    // The second, built on the same read, would put the old name back with its own change:
    // 412, and nothing changes.
    let mut second = org.clone();
    second["status"] = json!("suspended");
    let (status, _, answer) = admin_if(&ps, "PUT", cafe, Some(&read), &second).await;
    assert_eq!(status, 412, "{answer}");
    assert_eq!(
        answer["error"],
        "the item changed since it was read (If-Match): read it again"
    );
    let (_, now, held) = admin_if(&ps, "GET", cafe, None, &Value::Null).await;
    assert_eq!(now.as_deref(), Some(stored.as_str()));
    assert_eq!(held["name"], "Кафе «Первый»");
    assert_eq!(held["status"], "active");

    // The same PUT again (its answer lost): the change is already there, 200.
    let (status, _, _) = admin_if(&ps, "PUT", cafe, Some(&read), &first).await;
    assert_eq!(status, 200);

    // Any of several tags may match; a weak one never does; what is no tag is a 400.
    let list = format!("\"0000\", {stored}");
    let (status, _, _) = admin_if(&ps, "PUT", cafe, Some(&list), &held).await;
    assert_eq!(status, 200);
    let weak = format!("W/{stored}");
    let mut renamed = held.clone();
    renamed["name"] = json!("Кафе «Слабый»");
    let (status, _, _) = admin_if(&ps, "PUT", cafe, Some(&weak), &renamed).await;
    assert_eq!(status, 412);
    let (status, _, answer) = admin_if(&ps, "PUT", cafe, Some("abc"), &held).await;
    assert_eq!(status, 400, "{answer}");

    // `*` asks that the item exist: a PUT of a new one with it is refused and creates nothing.
    let new = "/admin/v1/organizations/990340009999";
    let mut other = held.clone();
    other["bin"] = json!("990340009999");
    other["api_key_hashes"] = json!([]);
    // It says that the item is missing, not that someone changed it; so does a tag.
    let missing = "there is no such item to replace (If-Match asks that it exist): \
                   a PUT without If-Match creates it";
    for tag in ["*", stored.as_str()] {
        let (status, _, answer) = admin_if(&ps, "PUT", new, Some(tag), &other).await;
        assert_eq!(status, 412, "{tag}: {answer}");
        assert_eq!(answer["error"], missing, "{tag}");
    }
    let (status, _, _) = admin_if(&ps, "GET", new, None, &Value::Null).await;
    assert_eq!(status, 404);
    // Without If-Match a PUT replaces the item as before.
    let (status, _, answer) = admin_if(&ps, "PUT", new, None, &other).await;
    assert_eq!(status, 200, "{answer}");

    // A change of status answers with the item's new tag, the one a GET then gives.
    let resp = ps
        .http
        .post(format!("{}{cafe}/status", ps.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"status": "active"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status().as_u16(), 200);
    let changed = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (_, now, _) = admin_if(&ps, "GET", cafe, None, &Value::Null).await;
    assert!(changed.is_some());
    assert_eq!(changed, now);

    // Every kind of item is read with its tag; the tag is the stored item's, the same after a
    // restart.
    let items = [
        "/admin/v1/mpps/demobank",
        "/admin/v1/trade-points/1001",
        "/admin/v1/services/2862",
        cafe,
    ];
    let mut tags = Vec::new();
    for path in items {
        let (status, tag, body) = admin_if(&ps, "GET", path, None, &Value::Null).await;
        assert_eq!(status, 200, "{path}: {body}");
        tags.push(tag.expect("an ETag"));
    }
    // A PUT answers with the tag a GET then gives, for every kind.
    for path in items {
        let (_, tag, item) = admin_if(&ps, "GET", path, None, &Value::Null).await;
        let (status, put, _) = admin_if(&ps, "PUT", path, tag.as_deref(), &item).await;
        assert_eq!((status, put), (200, tag), "{path}");
    }
    let (status, _, _) = admin_if(&ps, "GET", "/admin/v1/mpps/nobody", None, &Value::Null).await;
    assert_eq!(status, 404);
    let ps = ps.restart().await;
    for (path, tag) in items.iter().zip(&tags) {
        let (_, again, _) = admin_if(&ps, "GET", path, None, &Value::Null).await;
        assert_eq!(again.as_ref(), Some(tag), "{path}");
    }
}

#[tokio::test]
async fn a_trade_point_stays_with_its_organization() {
    // Its purchases are found through the trade point: moved to another organization, they
    // would go with it (DECISIONS 28). Any other change of it is still taken.
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let id = ps.paid(&device, 700, "C1").await;
    let (status, mut point) = ps
        .admin("GET", "/admin/v1/trade-points/1001", &Value::Null)
        .await;
    assert_eq!(status, 200);
    let owner = point["organization_bin"].clone();
    point["organization_bin"] = json!("990340005678");
    let (status, answer) = ps.admin("PUT", "/admin/v1/trade-points/1001", &point).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("cannot move to another"),
        "{answer}"
    );
    let (_, stored) = ps
        .admin("GET", "/admin/v1/trade-points/1001", &Value::Null)
        .await;
    assert_eq!(stored["organization_bin"], owner);
    let (_, other) = ps
        .pos(
            "GET",
            &format!("/r2/v02/payment/status/{id}"),
            OTHER_API_KEY,
            None,
        )
        .await;
    assert_eq!(other["StatusCode"], -1601, "{other}");
    point["organization_bin"] = owner;
    point["name"] = json!("Demo Coffee, renamed");
    let (status, answer) = ps.admin("PUT", "/admin/v1/trade-points/1001", &point).await;
    assert_eq!(status, 200, "{answer}");
    let (_, own) = ps
        .pos(
            "GET",
            &format!("/r2/v02/payment/status/{id}"),
            API_KEY,
            None,
        )
        .await;
    assert_eq!(own["Data"]["StoreName"], "Demo Coffee, renamed", "{own}");
}
