//! Bodies read strictly on both APIs (DECISIONS 44), refusals that name the parameter in the
//! caller's language, and the operator's texts held to the regulation's lengths.

use serde_json::{Value, json};
use tolem_wire::Locale;
use tolem_wire::merchant::StatusCode;
use tolem_wire::mpp::ResultCode;

use crate::harness::*;
use crate::listeners::Served;

const SCAN: &str = "/api/v1/qr/scan";
const NOTIFY: &str = "/api/v1/qr/notifyPayment";
const BIN: &str = "990340001234";

/// A merchant API call with a body sent exactly as given (the harness's calls send a `Value`,
/// which cannot repeat a key).
async fn pos_text(ps: &TestPs, path: &str, extra: &[(&str, &str)], body: &str) -> Value {
    let mut req = ps
        .http
        .post(format!("{}{path}", ps.url))
        .header("api-key", API_KEY)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("the PS answers");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}"))
}

/// An MPP API call of demobank with a body sent exactly as given: the parsed answer.
async fn mpp_text(ps: &TestPs, path: &str, locale: Option<&str>, body: &str) -> Value {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-caller-name", "demobank"),
        ("x-request-id", "strict-1"),
    ];
    if let Some(locale) = locale {
        headers.push(("x-locale", locale));
    }
    let (status, text) = ps.mpp_raw(path, &headers, body).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON, got {text}"))
}

fn rows(ps: &TestPs, table: &str) -> i64 {
    ps.books()
        .count(&format!("SELECT COUNT(*) FROM {table}"), &[])
}

fn code(answer: &Value) -> i64 {
    answer["StatusCode"]
        .as_i64()
        .unwrap_or_else(|| panic!("a StatusCode in {answer}"))
}

fn message(answer: &Value) -> &str {
    answer["Message"]
        .as_str()
        .unwrap_or_else(|| panic!("a Message in {answer}"))
}

#[tokio::test]
async fn qr_create_takes_one_object_with_one_plain_amount() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let d = &device;
    for (body, expected, named) in [
        // An exponent is not an amount (it once made a 1 000 ₸ QR).
        (
            format!(r#"{{"DeviceToken":"{d}","Amount":1e3}}"#),
            990000028,
            "Amount",
        ),
        (
            format!(r#"{{"DeviceToken":"{d}","Amount":"1e3"}}"#),
            990000028,
            "Amount",
        ),
        (
            format!(r#"{{"DeviceToken":"{d}","Amount":1.001}}"#),
            990000028,
            "Amount",
        ),
        (
            format!(r#"{{"DeviceToken":"{d}","Amount":-1}}"#),
            990000028,
            "Amount",
        ),
        (format!(r#"{{"DeviceToken":"{d}"}}"#), 990000028, "Amount"),
        // The same key twice, in another case: once 1 ₸ and 100 000 ₸ made a 100 000 ₸ QR.
        (
            format!(r#"{{"DeviceToken":"{d}","Amount":1,"amount":100000}}"#),
            -99000400,
            "amount — повторяется",
        ),
        (
            format!(r#"{{"deviceToken":"{d}","DEVICETOKEN":"{d}","Amount":1}}"#),
            -99000400,
            "DEVICETOKEN — повторяется",
        ),
        // Repeats count at any depth, even in a field nobody reads.
        (
            format!(r#"{{"DeviceToken":"{d}","Amount":1,"Extra":{{"a":[{{"k":1,"K":2}}]}}}}"#),
            -99000400,
            "Extra.a[0].K — повторяется",
        ),
        // An array is not the object it holds.
        (
            format!(r#"[{{"DeviceToken":"{d}","Amount":1}}]"#),
            -99000400,
            "JSON-объектом",
        ),
        // U+0000 in any text, on either database.
        (
            format!(r#"{{"DeviceToken":"{d}","Amount":1,"Description":"a\u0000b"}}"#),
            -99000400,
            "Description — содержит управляющий символ",
        ),
        ("1".to_owned(), -99000400, "JSON-объектом"),
        ("null".to_owned(), -99000400, "JSON-объектом"),
        ("{".to_owned(), -99000400, "JSON"),
    ] {
        for path in ["/r1/v01/qr/create", "/r2/v01/qr/create-link"] {
            let answer = pos_text(&ps, path, &[], &body).await;
            assert_eq!(code(&answer), expected, "{path} {body}: {answer}");
            assert!(message(&answer).contains(named), "{body}: {answer}");
        }
    }
    assert_eq!(rows(&ps, "payments"), 0, "a refused body stores nothing");
    let answer = pos_text(
        &ps,
        "/r1/v01/qr/create",
        &[],
        &format!(r#"{{"deviceTOKEN":"{d}","aMoUnT":"150.50"}}"#),
    )
    .await;
    assert_eq!(code(&answer), 0, "{answer}");
    assert_eq!(rows(&ps, "payments"), 1);
}

#[tokio::test]
async fn payment_return_with_a_bad_amount_is_990000028_and_places_nothing() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 100, "C1").await;
    let d = &device;
    for amount in ["-1", "1.001", "\"abc\"", "1e2", "\"1e2\"", "null", "\"\""] {
        let body = format!(
            r#"{{"DeviceToken":"{d}","QrPaymentId":{purchase},"Amount":{amount},"OrganizationBin":"{BIN}"}}"#
        );
        let answer = pos_text(&ps, "/r3/v01/payment/return", &[], &body).await;
        assert_eq!(code(&answer), 990000028, "{amount}: {answer}");
        assert!(
            message(&answer).starts_with("Неверная сумма операции: Amount — "),
            "{answer}"
        );
    }
    let body =
        format!(r#"{{"DeviceToken":"{d}","QrPaymentId":{purchase},"OrganizationBin":"{BIN}"}}"#);
    let answer = pos_text(&ps, "/r3/v01/payment/return", &[], &body).await;
    assert_eq!(code(&answer), 990000028, "{answer}");
    let body = format!(
        r#"{{"DeviceToken":"{d}","QrPaymentId":{purchase},"Amount":1,"AMOUNT":100,"OrganizationBin":"{BIN}"}}"#
    );
    let answer = pos_text(&ps, "/r3/v01/payment/return", &[], &body).await;
    assert_eq!(code(&answer), -99000400, "{answer}");
    assert_eq!(rows(&ps, "refunds"), 0, "nothing was placed");
    let (_, details) = ps
        .pos(
            "GET",
            &format!("/r3/v01/payment/details?QrPaymentId={purchase}&DeviceToken={device}"),
            API_KEY,
            None,
        )
        .await;
    assert_eq!(details["Data"]["AvailableReturnAmount"], json!(100.0));
    // A query parameter given twice, in any case, names it: neither purchase is chosen.
    let (_, twice) = ps
        .pos(
            "GET",
            &format!(
                "/r3/v01/payment/details?QrPaymentId={purchase}&DeviceToken={device}&qrpaymentid=1"
            ),
            API_KEY,
            None,
        )
        .await;
    assert_eq!(code(&twice), -99000400, "{twice}");
    assert!(message(&twice).contains("QrPaymentId"), "{twice}");
}

#[tokio::test]
async fn r3_without_organization_bin_is_a_malformed_request_naming_it() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 100, "C1").await;
    let without = json!({"DeviceToken": device, "Amount": 10});
    let (_, answer) = ps
        .pos("POST", "/r3/v01/qr/create", API_KEY, Some(&without))
        .await;
    assert_eq!(code(&answer), -99000400, "{answer}");
    assert_eq!(
        message(&answer),
        "Некорректный запрос: OrganizationBin — обязателен"
    );
    let refund = json!({"DeviceToken": device, "QrPaymentId": purchase, "Amount": 10});
    let (_, answer) = ps
        .pos("POST", "/r3/v01/payment/return", API_KEY, Some(&refund))
        .await;
    assert_eq!(code(&answer), -99000400, "{answer}");
    assert!(message(&answer).contains("OrganizationBin"), "{answer}");
    // Another organization's BIN is still a matter of credentials.
    let foreign = json!({"DeviceToken": device, "Amount": 10, "OrganizationBin": "990340005678"});
    let (_, answer) = ps
        .pos("POST", "/r3/v01/qr/create", API_KEY, Some(&foreign))
        .await;
    assert_eq!(code(&answer), -10000, "{answer}");
    assert_eq!(rows(&ps, "refunds"), 0);
    assert_eq!(rows(&ps, "payments"), 1, "only the paid purchase");
}

#[tokio::test]
async fn merchant_messages_follow_accept_language() {
    let ps = TestPs::start().await;
    let body = r#"{"Amount": 10}"#;
    let answer = pos_text(&ps, "/r1/v01/qr/create", &[], body).await;
    assert_eq!(
        message(&answer),
        "Некорректный запрос: DeviceToken — обязателен"
    );
    let kk = [("accept-language", "kk-KZ, ru;q=0.5")];
    let answer = pos_text(&ps, "/r1/v01/qr/create", &kk, body).await;
    assert_eq!(code(&answer), -99000400);
    assert_eq!(message(&answer), "Сұрау дұрыс емес: DeviceToken — міндетті");
    let answer = pos_text(
        &ps,
        "/r1/v01/qr/create",
        &kk,
        r#"{"DeviceToken": "nope", "Amount": 0}"#,
    )
    .await;
    assert_eq!(
        message(&answer),
        "Операция сомасы қате: Amount — нөлден үлкен болуы керек"
    );
    // A code without a detail, and one raised before the body is read, speak Kazakh too.
    let answer = pos_text(
        &ps,
        "/r1/v01/qr/create",
        &kk,
        r#"{"DeviceToken": "nope", "Amount": 10}"#,
    )
    .await;
    assert_eq!(
        message(&answer),
        StatusCode::DeviceNotFound.message(Locale::Kk)
    );
    let resp = ps
        .http
        .post(format!("{}/r1/v01/qr/create", ps.url))
        .header("api-key", "wrong")
        .header("accept-language", "kk")
        .body(body)
        .send()
        .await
        .expect("the PS answers");
    let answer: Value = resp.json().await.expect("JSON");
    assert_eq!(code(&answer), -10000);
    assert!(
        message(&answer).starts_with(StatusCode::AuthenticationFailed.message(Locale::Kk)),
        "{answer}"
    );
    // A language the PS does not speak falls back to Russian.
    let answer = pos_text(&ps, "/r1/v01/qr/create", &[("accept-language", "en")], body).await;
    assert_eq!(
        message(&answer),
        "Некорректный запрос: DeviceToken — обязателен"
    );
}

#[tokio::test]
async fn mpp_bodies_are_one_object_without_repeated_keys() {
    let ps = TestPs::start().await;
    for (body, named) in [
        (
            format!(r#"[{{"qrCode":"{STATIC_QR}","customerId":"C1"}}]"#),
            "тело запроса должно быть JSON-объектом",
        ),
        (
            "\"scan\"".to_owned(),
            "тело запроса должно быть JSON-объектом",
        ),
        (
            format!(r#"{{"qrCode":"{STATIC_QR}","customerId":"C1","qrCode":"{STATIC_QR}"}}"#),
            "qrCode — повторяется",
        ),
        (
            format!(
                r#"{{"qrCode":"{STATIC_QR}","customerId":"C1","x":{{"y":[1,{{"z":1,"z":2}}]}}}}"#
            ),
            "x.y[1].z — повторяется",
        ),
        (r#"{"customerId":"C1"}"#.to_owned(), "qrCode — обязателен"),
        (
            r#"{"qrCode":5,"customerId":"C1"}"#.to_owned(),
            "qrCode — неверный тип значения",
        ),
        // U+0000 is refused in any text (PostgreSQL cannot keep it, SQLite would), and an
        // identifier holds no control character at all.
        (
            format!(r#"{{"qrCode":"{STATIC_QR}","customerId":"C\u0000"}}"#),
            "customerId — содержит управляющий символ",
        ),
        (
            r#"{"qrCode":"TOLEM\u0000","customerId":"C1"}"#.to_owned(),
            "qrCode — содержит управляющий символ",
        ),
        (
            format!(r#"{{"qrCode":"{STATIC_QR}","customerId":"C\n1"}}"#),
            "customerId — содержит управляющий символ",
        ),
        (
            format!(r#"{{"qrCode":"{STATIC_QR}","customerId":"C1","note":["\u0000"]}}"#),
            "note[0] — содержит управляющий символ",
        ),
        // Spaces alone name no customer.
        (
            format!(r#"{{"qrCode":"{STATIC_QR}","customerId":"   "}}"#),
            "customerId — должен содержать от 1 до 12 символов",
        ),
    ] {
        let answer = mpp_text(&ps, SCAN, None, &body).await;
        assert_eq!(answer["result"]["resultCode"], "PARAM_ILLEGAL", "{body}");
        assert_eq!(
            answer["result"]["resultMessage"],
            format!("Некорректный параметр: {named}"),
            "{body}"
        );
    }
    assert_eq!(rows(&ps, "payments"), 0, "no refused scan made a purchase");
    // Names are exact on the MPP API: another case is another (unknown, ignored) field.
    let body = format!(r#"{{"qrCode":"{STATIC_QR}","customerId":"C1","QrCode":"x"}}"#);
    let answer = mpp_text(&ps, SCAN, None, &body).await;
    assert_eq!(answer["result"]["resultCode"], "SUCCESS", "{answer}");
    let payment_id = answer["payment"]["paymentId"]
        .as_str()
        .expect("paymentId")
        .to_owned();
    // A repeat deep inside notifyPayment: 100 ₸ or a million?
    let p = &payment_id;
    let body = format!(
        r#"{{"result":{{"resultCode":"SUCCESS","resultMessage":"success"}},"payment":{{"paymentId":"{p}","mppPaymentId":"M1","paymentAmount":"100","paymentAmount":"1000000"}},"customerId":"C1"}}"#
    );
    let answer = mpp_text(&ps, NOTIFY, Some("kk-KZ"), &body).await;
    assert_eq!(answer["result"]["resultCode"], "PARAM_ILLEGAL");
    assert_eq!(
        answer["result"]["resultMessage"],
        "Параметр дұрыс емес: payment.paymentAmount — қайталанады"
    );
    let body = format!(
        r#"{{"result":{{"resultCode":"SUCCESS","resultCode":"RISK_REJECT","resultMessage":"x"}},"payment":{{"paymentId":"{p}","mppPaymentId":"M1","paymentAmount":"100"}},"customerId":"C1"}}"#
    );
    let answer = mpp_text(&ps, NOTIFY, None, &body).await;
    assert_eq!(answer["result"]["resultCode"], "PARAM_ILLEGAL");
    // A text written `\\u0000` is a backslash and five characters, not U+0000; a message of
    // free text may hold a line break but not U+0000.
    for (message, named) in [
        (r"line\u0000", Some("result.resultMessage")),
        (r"not \\u0000", None),
        (r"two\nlines", None),
    ] {
        let body = format!(
            r#"{{"result":{{"resultCode":"NOT_A_CODE","resultMessage":"{message}"}},"payment":{{"paymentId":"{p}","mppPaymentId":"M\u0000"}},"customerId":"C1"}}"#
        );
        let answer = mpp_text(&ps, NOTIFY, None, &body).await;
        assert_eq!(answer["result"]["resultCode"], "PARAM_ILLEGAL", "{body}");
        let named = named.unwrap_or("payment.mppPaymentId");
        assert_eq!(
            answer["result"]["resultMessage"],
            format!("Некорректный параметр: {named} — содержит управляющий символ"),
            "{body}"
        );
    }
    // The customer named twice, two customers: which one paid?
    let body = format!(
        r#"{{"result":{{"resultCode":"SUCCESS","resultMessage":"success"}},"payment":{{"paymentId":"{p}","mppPaymentId":"M1","paymentAmount":"100","customerId":"C2"}},"customerId":"C1"}}"#
    );
    let answer = mpp_text(&ps, NOTIFY, None, &body).await;
    assert_eq!(answer["result"]["resultCode"], "PARAM_ILLEGAL", "{answer}");
    assert_eq!(
        answer["result"]["resultMessage"],
        "Некорректный параметр: payment.customerId — не совпадает с customerId"
    );
    let (_, payment) = ps
        .admin("GET", &format!("/admin/v1/payments/{p}"), &Value::Null)
        .await;
    assert_eq!(
        payment["status"], "scanned",
        "nothing took effect: {payment}"
    );
}

#[tokio::test]
async fn static_notify_names_the_missing_or_wrong_amount_in_both_languages() {
    let ps = TestPs::start().await;
    let payment_id = scan_id(&ps, "demobank", STATIC_QR, "C1").await;
    let notify = |amount: Option<&str>| notify_body(&payment_id, "C1", "SUCCESS", amount);
    let call = |locale: &'static str, body: Value| {
        let ps = &ps;
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("x-caller-name", "demobank"),
                ("x-request-id", "n"),
                ("x-locale", locale),
            ];
            let (_, text) = ps.mpp_raw(NOTIFY, &headers, &body.to_string()).await;
            let v: Value = serde_json::from_str(&text).expect("JSON");
            (
                v["result"]["resultCode"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v["result"]["resultMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    let illegal = ResultCode::ParamIllegal.as_str().to_owned();
    assert_eq!(
        call("ru-RU", notify(None)).await,
        (
            illegal.clone(),
            "Некорректный параметр: payment.paymentAmount — обязателен для статического QR"
                .to_owned()
        )
    );
    assert_eq!(
        call("kk-KZ", notify(None)).await,
        (
            illegal.clone(),
            "Параметр дұрыс емес: payment.paymentAmount — статикалық QR үшін міндетті".to_owned()
        )
    );
    assert_eq!(
        call("ru-RU", notify(Some("100.50"))).await.1,
        "Некорректный параметр: payment.paymentAmount — должна быть в целых тенге"
    );
    assert_eq!(
        call("kk-KZ", notify(Some("1e2"))).await.0,
        illegal,
        "an exponent is refused at the edge"
    );
    let (_, payment) = ps
        .admin(
            "GET",
            &format!("/admin/v1/payments/{payment_id}"),
            &Value::Null,
        )
        .await;
    assert_eq!(
        payment["status"], "scanned",
        "nothing took effect: {payment}"
    );
    assert_eq!(call("ru-RU", notify(Some("100"))).await.0, "SUCCESS");
}

#[tokio::test]
async fn a_dynamic_qr_with_tiyn_is_confirmed_at_its_own_amount_only() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (_, created) = ps
        .pos(
            "POST",
            "/r1/v01/qr/create",
            API_KEY,
            Some(&json!({"DeviceToken": device, "Amount": "150.50"})),
        )
        .await;
    let qr = created["Data"]["QrToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let payment_id = scan_id(&ps, "demobank", &qr, "C1").await;
    let body = notify_body(&payment_id, "C1", "SUCCESS", Some("150"));
    let (_, answer) = ps.mpp_call(NOTIFY, "demobank", "n1", &body).await;
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(
        v["result"]["resultMessage"],
        "Некорректный параметр: payment.paymentAmount — должна быть равна 150.50"
    );
    // The PS set this amount: the MPP's echo of it, tiyn and all, is accepted (DECISIONS 4).
    let body = notify_body(&payment_id, "C1", "SUCCESS", Some("150.50"));
    let (_, answer) = ps.mpp_call(NOTIFY, "demobank", "n2", &body).await;
    assert_eq!(result_code(&answer), "SUCCESS");
}

#[tokio::test]
async fn the_admin_api_holds_trade_point_texts_to_the_regulation() {
    let ps = TestPs::start().await;
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let point = catalog["trade_points"]
        .as_array()
        .expect("trade points")
        .iter()
        .find(|t| t["id"] == 1001)
        .expect("the café")
        .clone();
    let put = |point: Value| {
        let ps = &ps;
        async move { ps.admin("PUT", "/admin/v1/trade-points/1001", &point).await }
    };
    for (field, value, named) in [
        ("name", "Ә".repeat(129), "merchantName"),
        ("name", String::new(), "merchantName"),
        ("mcc", "5".repeat(33), "merchantMCC"),
        ("terminal_type", "POSPOS".to_owned(), "authorType"),
        // Every scan answers an authorType (SPEC 4.1): a trade point without one is refused.
        ("terminal_type", String::new(), "authorType"),
    ] {
        let mut bad = point.clone();
        bad[field] = json!(value);
        let (status, answer) = put(bad).await;
        assert_eq!(status, 400, "{field}: {answer}");
        let error = answer["error"].as_str().expect("an error");
        assert!(
            error.contains(&format!("trade_points.1001: {field}")) && error.contains(named),
            "{error}"
        );
    }
    // No control character in operator data: it reaches the MPPs in every scan, receipts,
    // registers and e-mail headers.
    for (field, value) in [
        ("name", "TP\u{0}nul"),
        ("address", "line\nbreak"),
        ("terminal_type", "P\t"),
    ] {
        let mut bad = point.clone();
        bad[field] = json!(value);
        let (status, answer) = put(bad).await;
        assert_eq!(status, 400, "{field}: {answer}");
        let error = answer["error"].as_str().expect("an error");
        assert_eq!(error, format!("{field}: holds a control character"));
    }
    // Nor a character that reorders text unseen.
    let mut bad = point.clone();
    bad["name"] = json!("Кафе \u{202e}ilaB");
    let (status, answer) = put(bad).await;
    assert_eq!(
        (status, &answer["error"]),
        (
            400,
            &json!("name: holds U+202E, which reorders text unseen")
        ),
        "{answer}"
    );
    let mut bank = catalog["mpps"][0].clone();
    bank["register_email"] = json!("a@b.example\r\nBcc: someone@else.example");
    let key = bank["caller_name"].as_str().expect("a name").to_owned();
    let (status, answer) = ps
        .admin("PUT", &format!("/admin/v1/mpps/{key}"), &bank)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"], "register_email: holds a control character",
        "{answer}"
    );
    // One address the registers can be sent to: a list, an empty text or a stray space would be
    // stored and fail every sending.
    for to in ["a@x.kz, b@x.kz", "", "not-an-email", "a@b@c", "x@y.kz "] {
        bank["register_email"] = json!(to);
        let (status, answer) = ps
            .admin("PUT", &format!("/admin/v1/mpps/{key}"), &bank)
            .await;
        assert_eq!(status, 400, "{to:?}: {answer}");
        let said = answer["error"].as_str().expect("why");
        assert!(
            said.starts_with(&format!(
                "mpps.{key}: register_email must be one e-mail address"
            )),
            "{said}"
        );
    }
    let (_, after) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    assert_eq!(
        after["trade_points"], catalog["trade_points"],
        "nothing changed"
    );
    assert_eq!(after["mpps"], catalog["mpps"], "nothing changed");
    let mut longest = point.clone();
    longest["name"] = json!("Ә".repeat(128));
    let (status, answer) = put(longest).await;
    assert_eq!(status, 200, "{answer}");
    // A trade point stored before a type was required blocks no other change (a suspension, a
    // key revoked must not wait for it); it gets a type when it is next changed itself.
    let changed = crate::backend::PsBooks::open_for_writing(&ps.db_path()).execute(
        "UPDATE catalog SET doc = replace(doc, '\"terminal_type\":\"POS\"', '\"terminal_type\":\"\"')",
        &[],
    );
    assert!(changed > 0);
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let mut bank = catalog["mpps"][0].clone();
    bank["name"] = json!("Renamed Bank");
    let key = bank["caller_name"].as_str().expect("a name").to_owned();
    let (status, answer) = ps
        .admin("PUT", &format!("/admin/v1/mpps/{key}"), &bank)
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_start_names_the_trade_points_stored_without_a_terminal_type() {
    const LISTENER: &str =
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nsurfaces = [\"mpp\", \"merchant\", \"admin\"]\n";
    let kept = tempfile::tempdir().expect("dir");
    let database = crate::backend::fresh_database(kept.path());
    let first = Served::start_on(tempfile::tempdir().expect("dir"), &database, LISTENER, &[]);
    drop(first);
    // As a trade point stored before a type was required.
    let changed = crate::backend::PsBooks::open_for_writing(&database).execute(
        "UPDATE catalog SET doc = replace(doc, '\"terminal_type\":\"POS\"', '\"terminal_type\":\"\"') \
         WHERE key = '1001'",
        &[],
    );
    assert_eq!(changed, 1);
    let again = Served::start_on(tempfile::tempdir().expect("dir"), &database, LISTENER, &[]);
    again
        .logged(&[
            "WARN",
            "trade points without terminal_type",
            "trade_points=1001",
        ])
        .await;
}

#[tokio::test]
async fn an_mpp_header_sent_twice_is_refused_never_read_as_either() {
    let ps = TestPs::start().await;
    let body = format!(r#"{{"qrCode":"{STATIC_QR}","customerId":"C1"}}"#);
    let json = ("content-type", "application/json");
    let bank = ("x-caller-name", "demobank");
    let id = ("x-request-id", "twice-1");
    for (headers, code, named) in [
        // Two callers: the payment would have belonged to whichever came first.
        (
            vec![json, ("x-caller-name", "demowallet"), bank, id],
            "UNKNOWN_SOURCE",
            None,
        ),
        (
            vec![json, bank, id, ("x-request-id", "twice-2")],
            "PARAM_ILLEGAL",
            Some("X-Request-ID — повторяется"),
        ),
        (
            vec![json, bank, id, ("x-locale", "kk-KZ"), ("x-locale", "ru-RU")],
            "PARAM_ILLEGAL",
            Some("X-Locale — повторяется"),
        ),
        (
            vec![json, bank, id, ("content-type", "text/plain")],
            "PARAM_ILLEGAL",
            Some("Content-Type — повторяется"),
        ),
    ] {
        let (status, text) = ps.mpp_raw(SCAN, &headers, &body).await;
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(answer["result"]["resultCode"], code, "{headers:?}: {text}");
        if code == "UNKNOWN_SOURCE" {
            assert_eq!(
                answer["result"]["resultMessage"],
                "Неизвестный участник (X-Caller-Name): заголовок передан дважды"
            );
        }
        if let Some(named) = named {
            assert_eq!(
                answer["result"]["resultMessage"],
                format!("Некорректный параметр: {named}"),
                "{headers:?}"
            );
        }
    }
    assert_eq!(rows(&ps, "payments"), 0, "no refused scan made a purchase");
    // A request id sent twice is not echoed: neither is the request's.
    let response = ps
        .http
        .post(format!("{}{SCAN}", ps.url))
        .header("content-type", "application/json")
        .header("x-caller-name", "demobank")
        .header("x-request-id", "twice-1")
        .header("x-request-id", "twice-2")
        .body(body.clone())
        .send()
        .await
        .expect("an answer");
    assert!(response.headers().get("x-request-id").is_none());
}

/// A token or id with U+0000 sent in a URL names nothing, on either database: PostgreSQL refuses
/// such text in a query, which once made these answer 500 or `-999` (retry, for ever).
#[tokio::test]
async fn a_nul_in_a_url_names_nothing_and_is_no_fault() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    for path in [
        "/r2/v01/payment/details?QrPaymentId=1&DeviceToken=%00".to_owned(),
        format!("/r2/v01/payment/details?QrPaymentId=1&DeviceToken={device}%00"),
        "/r1/v01/payment/status/%00".to_owned(),
        "/r2/v01/return/status/%00".to_owned(),
    ] {
        let (status, answer) = ps.pos("GET", &path, API_KEY, None).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_ne!(code(&answer), -999, "{path}: {answer}");
    }
    for path in [
        "/qr/image.png?token=%00",
        "/qr/image.svg?token=a%00b",
        "/receipt?id=%00",
        "/pay/%00",
    ] {
        let status = ps
            .http
            .get(format!("{}{path}", ps.url))
            .send()
            .await
            .expect("an answer")
            .status();
        assert!(status.is_client_error(), "{path}: {status}");
    }
}

/// What a stranger sends to the public pages and pictures, and to the cabinet, is answered in
/// their own words, never the router's ("Failed to deserialize query string", "Invalid URL").
#[tokio::test]
async fn malformed_page_and_picture_addresses_get_the_surfaces_own_answers() {
    let ps = TestPs::start().await;
    let get = |path: &str, token: Option<&str>| {
        let mut req = ps.http.get(format!("{}{path}", ps.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move {
            let resp = req.send().await.expect("an answer");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("a body"))
        }
    };
    for path in ["/qr/image.png", "/qr/image.svg?token=a&token=b"] {
        let (status, text) = get(path, None).await;
        assert_eq!(
            (status, text.as_str()),
            (400, "one token is needed: ?token=<the QR's token>"),
            "{path}"
        );
    }
    let (status, page) = get("/pay/%ff", None).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("Ссылка на оплату не найдена."), "{page}");
    let (status, text) = get(
        "/cabinet/v1/registers/daily/%ff.xlsx",
        Some("sandbox-cabinet-demobank"),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no such register"), "{text}");
    for (_, text) in [
        get("/qr/image.png", None).await,
        get("/pay/%ff", None).await,
    ] {
        assert!(
            !text.contains("Invalid URL") && !text.contains("deserialize"),
            "{text}"
        );
    }
}
