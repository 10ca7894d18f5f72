//! The merchant (POS) API: devices, QR creation, status, isolation, idempotency, emulators.

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn trade_points_and_device_lifecycle() {
    let ps = TestPs::start().await;
    let (_, points) = ps
        .pos("GET", "/r1/v01/partner/tradepoints", API_KEY, None)
        .await;
    assert_eq!(
        points["Data"][0],
        json!({"TradePointId": 1001, "TradePointName": "Demo Coffee (Абай, 10)"})
    );
    // register is idempotent per DeviceId + TradePointId, and accepts any case and string ids.
    let first = ps.device("POS-1").await;
    let body = json!({"deviceId": "POS-1", "tradePointId": "1001"});
    let (_, again) = ps
        .pos("POST", "/r1/v01/device/register/", API_KEY, Some(&body))
        .await;
    assert_eq!(again["Data"]["DeviceToken"], first.as_str());
    let body = json!({"DeviceId": "POS-1", "TradePointId": 1002});
    let (_, other_point) = ps
        .pos("POST", "/r1/v01/device/register", API_KEY, Some(&body))
        .await;
    assert_eq!(other_point["StatusCode"], -1503);
    let body = json!({"DeviceId": "POS-2", "TradePointId": 2001});
    let (_, foreign_point) = ps
        .pos("POST", "/r1/v01/device/register", API_KEY, Some(&body))
        .await;
    assert_eq!(foreign_point["StatusCode"], -99000002);
    let body = json!({"DeviceId": "bad id!", "TradePointId": 1001});
    let (_, bad) = ps
        .pos("POST", "/r1/v01/device/register", API_KEY, Some(&body))
        .await;
    assert_eq!(bad["StatusCode"], -99000400);
    // A POS that keeps the token in a GUID type sends it back upper case and in braces: the
    // same device.
    let guid = format!("{{{}}}", first.to_uppercase());
    let (_, created) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some(&json!({"DeviceToken": guid, "Amount": 5})),
        )
        .await;
    assert_eq!(created["StatusCode"], 0, "{created}");
    // delete, then the token no longer creates anything.
    let (_, deleted) = ps
        .pos(
            "POST",
            "/r1/v01/device/delete",
            API_KEY,
            Some(&json!({"DeviceToken": first})),
        )
        .await;
    assert_eq!(deleted["StatusCode"], 0);
    let (_, again) = ps
        .pos(
            "POST",
            "/r1/v01/device/delete",
            API_KEY,
            Some(&json!({"DeviceToken": first})),
        )
        .await;
    assert_eq!(again["StatusCode"], 0, "a delete retried succeeds: {again}");
    let (_, create) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some(&json!({"DeviceToken": first, "Amount": 5})),
        )
        .await;
    assert_eq!(create["StatusCode"], -1502);
    let (_, ping) = ps.pos("GET", "/r2/v01/health/ping", API_KEY, None).await;
    assert_eq!(ping, json!({"StatusCode": 0, "Message": "OK"}));
}

#[tokio::test]
async fn qr_create_answers_like_the_api_merchants_know() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (_, answer) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some(&json!({"DeviceToken": device, "Amount": 150.5, "ExternalId": "sale-1"})),
        )
        .await;
    assert_eq!(answer["StatusCode"], 0);
    let data = &answer["Data"];
    assert_eq!(data["QrToken"].as_str().expect("token").len(), 41);
    assert!(data["QrPaymentId"].is_i64());
    assert_eq!(
        data["QrPaymentBehaviorOptions"],
        json!({"StatusPollingInterval": 5, "QrCodeScanWaitTimeout": 180, "PaymentConfirmationTimeout": 65})
    );
    let expire = data["ExpireDate"].as_str().expect("date");
    // yyyy-MM-ddTHH:mm:ss.fff+05:00
    assert_eq!(expire.len(), 29, "{expire}");
    assert!(
        expire.ends_with("+05:00") && expire.as_bytes()[19] == b'.',
        "{expire}"
    );
    // The POS's own reference, also as a JSON integer (a check number), kept as its text; a
    // fraction or a control character is refused, naming it.
    for (external, code, kept) in [
        (json!(12345), 0, Some("12345")),
        (json!(null), 0, None),
        (json!(1.5), -99000400, None),
        (json!("sale\u{1b}[31m"), -99000400, None),
    ] {
        let (_, answer) = ps
            .pos(
                "POST",
                "/r1/v01/qr/create",
                API_KEY,
                Some(&json!({"DeviceToken": device, "Amount": 10, "ExternalId": external})),
            )
            .await;
        assert_eq!(answer["StatusCode"], code, "{external}: {answer}");
        if code != 0 {
            assert!(
                answer["Message"]
                    .as_str()
                    .is_some_and(|m| m.contains("ExternalId")),
                "{answer}"
            );
            continue;
        }
        let id = answer["Data"]["QrPaymentId"].as_i64().expect("an id");
        let rows = ps
            .books()
            .rows("SELECT external_id FROM payments WHERE id = ?1", &[&id]);
        let stored = match &rows[0].0[0] {
            crate::backend::Cell::Text(text) => Some(text.as_str()),
            _ => None,
        };
        assert_eq!(stored, kept, "{external}");
    }
    for (amount, code) in [
        (json!(0), 990000028),
        (json!("abc"), 990000028),
        (json!(1.234), 990000028),
    ] {
        let (_, bad) = ps
            .pos(
                "POST",
                "/r1/v01/qr/create",
                API_KEY,
                Some(&json!({"DeviceToken": device, "Amount": amount})),
            )
            .await;
        assert_eq!(bad["StatusCode"], code, "{amount}");
    }
    let (_, link) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create-link",
            API_KEY,
            Some(&json!({"DeviceToken": device, "Amount": 200})),
        )
        .await;
    assert_eq!(link["StatusCode"], 0);
    let url = link["Data"]["PaymentLink"].as_str().expect("link");
    assert!(url.starts_with(&format!("{}/pay/", ps.url)), "{url}");
    assert_eq!(
        link["Data"]["PaymentBehaviorOptions"]["LinkActivationWaitTimeout"],
        180
    );
    let page = page_text(&ps, url).await;
    assert!(
        page.contains("200,00 ₸") && page.contains("/qr/image.svg?token="),
        "{page}"
    );
    // While it can be paid, the page looks again by itself (no script on public pages).
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "{page}"
    );
    assert!(page.contains("alt=\"QR-код для оплаты\""), "{page}");
    // The link is paid like a Dynamic QR.
    let payment_id = scan_id(&ps, "demobank", url, "C1").await;
    assert_eq!(payment_id, link["Data"]["PaymentId"].to_string());
    let (_, paid) = ps
        .mpp_call(
            "/api/v1/qr/notifyPayment",
            "demobank",
            "n",
            &notify_body(&payment_id, "C1", "SUCCESS", None),
        )
        .await;
    assert_eq!(result_code(&paid), "SUCCESS");
    // Paid: the page stops looking and leads to the receipt, in the page's language.
    let page = page_text(&ps, &format!("{url}?locale=kk")).await;
    assert!(!page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(
        page.contains("<a id=\"receipt\" href=\"")
            && page.contains("&amp;locale=kk\">Түбіртек</a>"),
        "{page}"
    );
}

/// The HTML of a page the PS serves at `url`.
async fn page_text(ps: &TestPs, url: &str) -> String {
    ps.http
        .get(url)
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("html")
}

#[tokio::test]
async fn creating_calls_are_idempotent_per_request_id_and_body() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let body = json!({"DeviceToken": device, "Amount": 100});
    let (_, a) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("req-1"),
            Some(&body),
        )
        .await;
    let (_, b) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("req-1"),
            Some(&body),
        )
        .await;
    assert_eq!(a, b, "the same request gets the first answer");
    // Same id, other body: a new request (some clients send one fixed id).
    let other = json!({"DeviceToken": device, "Amount": 101});
    let (_, c) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("req-1"),
            Some(&other),
        )
        .await;
    assert_ne!(a["Data"]["QrPaymentId"], c["Data"]["QrPaymentId"]);
    // Same id and body to another call: a new request of that call, answered in its own shape.
    let (_, link) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create-link",
            API_KEY,
            Some("req-1"),
            Some(&body),
        )
        .await;
    assert_eq!(link["StatusCode"], 0, "{link}");
    assert!(link["Data"]["PaymentLink"].is_string(), "{link}");
    assert_ne!(a["Data"]["QrPaymentId"], link["Data"]["PaymentId"]);
    // No id: every call creates.
    let (_, d) = ps
        .pos("POST", "/r1/v01/qr/create", API_KEY, Some(&body))
        .await;
    let (_, e) = ps
        .pos("POST", "/r1/v01/qr/create", API_KEY, Some(&body))
        .await;
    assert_ne!(d["Data"]["QrPaymentId"], e["Data"]["QrPaymentId"]);
}

#[tokio::test]
async fn an_organization_never_sees_another_organizations_purchases() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (_, id) = ps.dynamic_qr(&device, 100).await;
    for path in [
        format!("/r1/v01/payment/status/{id}"),
        format!("/r2/v02/payment/status/{id}"),
    ] {
        let (_, answer) = ps.pos("GET", &path, OTHER_API_KEY, None).await;
        assert_eq!(answer["StatusCode"], -1601, "{path}");
        assert!(answer.get("Data").is_none());
    }
    // Nor use its device.
    let (_, answer) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create",
            OTHER_API_KEY,
            Some(&json!({"DeviceToken": device, "Amount": 1})),
        )
        .await;
    assert_eq!(answer["StatusCode"], -1501);
    let (_, emulate) = ps
        .pos(
            "POST",
            "/r1/v01/test/payment/scan",
            OTHER_API_KEY,
            Some(&json!({"qrPaymentId": id.to_string()})),
        )
        .await;
    assert_eq!(emulate["StatusCode"], -99000001);
    // The owner naming another organization's BIN is refused as on every r3 call.
    let (_, emulate) = ps
        .pos(
            "POST",
            "/r3/v01/test/payment/scan",
            API_KEY,
            Some(&json!({"qrPaymentId": id.to_string(), "OrganizationBin": "990340005678"})),
        )
        .await;
    assert_eq!(emulate["StatusCode"], -10000);
    // v01 carries Status only; v02 adds the rest.
    let (_, v01) = ps
        .pos(
            "GET",
            &format!("/r1/v01/payment/status/{id}"),
            API_KEY,
            None,
        )
        .await;
    assert_eq!(v01["Data"], json!({"Status": "QrTokenCreated"}));
    let (_, v02) = ps
        .pos(
            "GET",
            &format!("/r3/v02/payment/status/{id}"),
            API_KEY,
            None,
        )
        .await;
    assert_eq!(v02["Data"]["StoreName"], "Demo Coffee (Абай, 10)");
}

#[tokio::test]
async fn authentication_and_unknown_paths_answer_with_the_envelope() {
    let ps = TestPs::start().await;
    let (status, answer) = ps
        .pos("GET", "/r1/v01/partner/tradepoints", "test_WRONG", None)
        .await;
    assert_eq!((status, answer["StatusCode"].as_i64()), (200, Some(-10000)));
    let (status, answer) = ps.pos("GET", "/r1/v01/no/such/call", API_KEY, None).await;
    assert_eq!(
        (status, answer["StatusCode"].as_i64()),
        (404, Some(-99000404))
    );
    // In the caller's language, as every other answer.
    for (path, language, message) in [
        ("/r1/v01/no/such/call", "kk-KZ", "Белгісіз әдіс"),
        ("/r2/v01/nothing/here", "kk", "Белгісіз әдіс"),
        ("/r1/v01/no/such/call", "ru", "Неизвестный метод"),
    ] {
        let answer: Value = ps
            .http
            .get(format!("{}{path}", ps.url))
            .header("api-key", API_KEY)
            .header("accept-language", language)
            .send()
            .await
            .expect("the PS answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(answer["Message"], message, "{path} {language}: {answer}");
    }
    let (_, answer) = ps
        .pos("POST", "/r3/v01/remote/create", API_KEY, Some(&json!({})))
        .await;
    assert_eq!(answer["StatusCode"], -99000100);
    // r3 checks OrganizationBin against the key's organization.
    let body =
        json!({"DeviceId": "POS-9", "TradePointId": 1001, "OrganizationBin": "990340005678"});
    let (_, answer) = ps
        .pos("POST", "/r3/v01/device/register", API_KEY, Some(&body))
        .await;
    assert_eq!(answer["StatusCode"], -10000);
    let (_, answer) = ps
        .pos(
            "GET",
            "/r3/v01/partner/tradepoints/990340001234",
            API_KEY,
            None,
        )
        .await;
    assert_eq!(answer["StatusCode"], 0);
    let (_, answer) = ps
        .pos(
            "POST",
            "/r1/v01/device/register",
            API_KEY,
            Some(&json!("not an object")),
        )
        .await;
    assert_eq!(answer["StatusCode"], -99000400);
}

/// The sandbox's confirm of purchase `id`, its whole answer.
async fn confirm_answer(ps: &TestPs, id: i64) -> Value {
    let body = json!({"qrPaymentId": id.to_string()});
    let (_, answer) = ps
        .pos("POST", "/r1/v01/test/payment/confirm", API_KEY, Some(&body))
        .await;
    answer
}

#[tokio::test]
async fn sandbox_emulators_drive_the_state_machine() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let step = |name: &'static str, id: i64| {
        let ps = &ps;
        async move {
            let (_, a) = ps
                .pos(
                    "POST",
                    &format!("/r1/v01/test/payment/{name}"),
                    API_KEY,
                    Some(&json!({"qrPaymentId": id.to_string()})),
                )
                .await;
            a["StatusCode"].as_i64().expect("code")
        }
    };
    let (_, id) = ps.dynamic_qr(&device, 100).await;
    assert_eq!(
        step("confirm", id).await,
        -99000400,
        "confirm needs a scan first"
    );
    // And says so: the purchase exists, it only is not waiting for a confirmation yet.
    let early = confirm_answer(&ps, id).await;
    assert_eq!(
        early["Message"], "Некорректный запрос: QrPaymentId — покупка не в статусе Wait",
        "{early}"
    );
    assert_eq!(step("scan", id).await, 0);
    assert_eq!(ps.status(id).await["Data"]["Status"], "Wait");
    assert_eq!(step("confirm", id).await, 0);
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    let (_, id) = ps.dynamic_qr(&device, 100).await;
    assert_eq!(step("scanerror", id).await, 0);
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    let (_, id) = ps.dynamic_qr(&device, 100).await;
    step("scan", id).await;
    assert_eq!(step("confirmerror", id).await, 0);
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    // A refused step says why in the caller's language: the status it needs, or what the MPP
    // API would have answered; an unknown step names the steps.
    let said = |path: String, kk: bool| {
        let ps = &ps;
        async move {
            let mut req = ps
                .http
                .post(format!("{}{path}", ps.url))
                .header("api-key", API_KEY)
                .json(&json!({"qrPaymentId": id.to_string()}));
            if kk {
                req = req.header("accept-language", "kk");
            }
            let answer: Value = req
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("JSON");
            assert_eq!(answer["StatusCode"], -99000400, "{answer}");
            answer["Message"].as_str().expect("a message").to_owned()
        }
    };
    let confirm = || "/r1/v01/test/payment/confirm".to_owned();
    assert_eq!(
        said(confirm(), false).await,
        "Некорректный запрос: QrPaymentId — покупка не в статусе Wait"
    );
    assert_eq!(
        said(confirm(), true).await,
        "Сұрау дұрыс емес: QrPaymentId — сатып алу Wait мәртебесінде емес"
    );
    assert_eq!(
        said("/r1/v01/test/payment/scan".to_owned(), false).await,
        "Некорректный запрос: QrPaymentId — МПП получил бы ответ EXPIRED_CODE"
    );
    assert_eq!(
        said("/r1/v01/test/payment/pay".to_owned(), false).await,
        "Некорректный запрос: step — ожидается scan | confirm | scanerror | confirmerror"
    );
    // A purchase waiting while the operator suspends its merchant: confirm is refused as a
    // real MPP's notifyPayment would be, and says so (not that it is not waiting).
    let (_, id) = ps.dynamic_qr(&device, 100).await;
    assert_eq!(step("scan", id).await, 0);
    ps.set_organization_status("990340001234", "suspended")
        .await;
    let answer = confirm_answer(&ps, id).await;
    assert_eq!(
        answer["Message"],
        "Некорректный запрос: QrPaymentId — МПП получил бы ответ PAYMENTS_SUSPENDED",
        "{answer}"
    );
    assert_eq!(ps.status(id).await["Data"]["Status"], "Wait");
}

#[tokio::test]
async fn qr_pictures_exist_for_issued_codes_only() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, _) = ps.dynamic_qr(&device, 100).await;
    for (path, kind) in [("png", "image/png"), ("svg", "image/svg+xml")] {
        for token in [qr.as_str(), STATIC_QR, PARKING_QR] {
            let resp = ps
                .http
                .get(format!("{}/qr/image.{path}", ps.url))
                .query(&[("token", token)])
                .send()
                .await
                .expect("answer");
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], kind);
            let bytes = resp.bytes().await.expect("bytes");
            if path == "png" {
                assert_eq!(&bytes[..4], b"\x89PNG");
            } else {
                assert!(bytes.starts_with(b"<?xml") || bytes.starts_with(b"<svg"));
            }
        }
        let resp = ps
            .http
            .get(format!("{}/qr/image.{path}?token=never-issued", ps.url))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 404);
    }
}

#[tokio::test]
async fn malformed_paths_still_get_the_envelope() {
    let ps = TestPs::start().await;
    for path in [
        "/r1/v02/payment/status/%FF",
        "/r1/v01/test/payment/%C3%28",
        "/r2/v01/return/status/%FF",
        "/r3/v01/partner/tradepoints/%FF",
    ] {
        let resp = ps
            .http
            .get(format!("{}{path}", ps.url))
            .header("api-key", API_KEY)
            .send()
            .await
            .expect("answer");
        let body: serde_json::Value = resp.json().await.expect("an envelope");
        assert!(
            body["StatusCode"].as_i64().is_some_and(|c| c != 0),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_repeated_create_gets_its_first_answer_even_after_the_trade_point_changed() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let body = json!({"DeviceToken": device, "Amount": 100});
    let (_, first) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("once"),
            Some(&body),
        )
        .await;
    ps.change_trade_point(1001, |point| point["active"] = json!(false))
        .await;
    let (_, again) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("once"),
            Some(&body),
        )
        .await;
    assert_eq!(again, first);
    let (_, fresh) = ps
        .pos_with(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some("twice"),
            Some(&body),
        )
        .await;
    assert_eq!(fresh["StatusCode"], 990000018);
}

#[tokio::test]
async fn r3_can_be_bound_to_the_partners_addresses() {
    let ps = TestPs::start().await;
    let (_, catalog) = ps
        .admin("GET", "/admin/v1/catalog", &serde_json::Value::Null)
        .await;
    let mut org = catalog["organizations"]
        .as_array()
        .expect("orgs")
        .iter()
        .find(|o| o["bin"] == "990340001234")
        .expect("org")
        .clone();
    org["r3_allowed_ips"] = json!(["10.0.0.7"]);
    assert_eq!(
        ps.admin("PUT", "/admin/v1/organizations/990340001234", &org)
            .await
            .0,
        200
    );
    let (_, refused) = ps
        .pos(
            "GET",
            "/r3/v01/partner/tradepoints/990340001234",
            API_KEY,
            None,
        )
        .await;
    assert_eq!(refused["StatusCode"], -10000, "127.0.0.1 is not listed");
    let (_, r1) = ps
        .pos("GET", "/r1/v01/partner/tradepoints", API_KEY, None)
        .await;
    assert_eq!(r1["StatusCode"], 0, "only r3 is bound");
    org["r3_allowed_ips"] = json!(["10.0.0.7", "127.0.0.1"]);
    ps.admin("PUT", "/admin/v1/organizations/990340001234", &org)
        .await;
    let (_, allowed) = ps
        .pos(
            "GET",
            "/r3/v01/partner/tradepoints/990340001234",
            API_KEY,
            None,
        )
        .await;
    assert_eq!(allowed["StatusCode"], 0);
    // A key given in clear is one DECISIONS 28 names, long enough not to be guessed: a short
    // one is refused and changes nothing.
    let mut short = org.clone();
    short["api_keys"] = json!(["test_a"]);
    let (status, said) = ps
        .admin("PUT", "/admin/v1/organizations/990340001234", &short)
        .await;
    assert_eq!(status, 400, "{said}");
    assert!(said.to_string().contains("api_keys: "), "{said}");
    let (_, kept) = ps
        .pos("GET", "/r1/v01/partner/tradepoints", "test_a", None)
        .await;
    assert_eq!(kept["StatusCode"], -10000, "{kept}");
}

#[tokio::test]
async fn concurrent_repeats_of_a_creating_call_make_one_thing_and_get_one_answer() {
    // DECISIONS 29 under a POS that retries before its first try was answered: 20 copies of one
    // qr/create (same device, X-Request-ID and body) at once, on this binary's backend.
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let before = ps.books().count("SELECT COUNT(*) FROM payments", &[]);
    let body = json!({"DeviceToken": device, "Amount": 700});
    ps.pos_copies("/r1/v01/qr/create", "till-1-qr-9", &body, 20)
        .await;
    assert_eq!(
        ps.books().count("SELECT COUNT(*) FROM payments", &[]),
        before + 1,
        "one QR made"
    );
}

#[tokio::test]
async fn a_page_of_another_site_cannot_act_as_the_merchant() {
    // A browser sends the cashier's client certificate with any site's form-like POST; its
    // Origin names that site. POS software sends none; the cashier's page is this host.
    let ps = TestPs::start().await;
    let host = ps.url.trim_start_matches("http://").to_owned();
    let register = |origin: Option<String>, device: &'static str| {
        let mut req = ps
            .http
            .post(format!("{}/r2/v01/device/register", ps.url))
            .header("api-key", API_KEY)
            .header("content-type", "text/plain")
            .body(json!({"DeviceId": device, "TradePointId": 1001}).to_string());
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        async move {
            req.send()
                .await
                .expect("an answer")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let answer = register(Some(origin.to_owned()), "FROM-ELSEWHERE").await;
        assert_eq!(answer["StatusCode"], -10000, "{origin}: {answer}");
        assert!(
            answer["Message"]
                .as_str()
                .is_some_and(|m| m.contains("Origin")),
            "{answer}"
        );
    }
    assert_eq!(
        ps.books().count(
            "SELECT COUNT(*) FROM devices WHERE device_id = ?1",
            &[&"FROM-ELSEWHERE"]
        ),
        0,
        "nothing registered"
    );
    for origin in [None, Some(format!("http://{host}"))] {
        let answer = register(origin.clone(), "TILL-9").await;
        assert_eq!(answer["StatusCode"], 0, "{origin:?}: {answer}");
    }
}
