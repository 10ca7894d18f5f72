//! The console in the browser (`/console/…`) over real HTTP, its cookie handled by hand: the
//! operator's and an MPP's sign-in, sessions that are signed (a tampered cookie is nobody),
//! POSTs refused without the session's CSRF token or from another origin (changing nothing), a
//! retry that makes a delivery due, a suspension the merchant API then enforces, and an MPP that
//! sees only its own refunds and registers. The real browser drives the same pages in the
//! browser tests.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tolem_ps::clock::Clock;

use crate::harness::*;
use crate::receiver::Receiver;
use crate::refunds::{refund_r3, refund_status};

const BANK_CABINET: &str = "sandbox-cabinet-demobank";
const WALLET_CABINET: &str = "sandbox-cabinet-demowallet";

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// `application/x-www-form-urlencoded` by hand (the values here are plain).
pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn set_cookie(&self) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("tolem_console="))
            .map(str::to_owned)
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        self.body[start..]
            .split('"')
            .next()
            .expect("the token")
            .to_owned()
    }
}

async fn call(
    ps: &TestPs,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<String>,
) -> Answer {
    let mut request = client().request(
        method.parse().expect("a method"),
        format!("{}{path}", ps.url),
    );
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(ps: &TestPs, path: &str, cookie: &str) -> Answer {
    call(ps, "GET", path, Some(cookie), &[], None).await
}

async fn post(ps: &TestPs, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Answer {
    call(ps, "POST", path, Some(cookie), &[], Some(form(fields))).await
}

/// Signs in with `token`; the `name=value` of the session cookie and where it leads.
async fn sign_in(ps: &TestPs, token: &str) -> (String, String) {
    let answer = call(
        ps,
        "POST",
        "/console/sign-in",
        None,
        &[],
        Some(form(&[("token", token)])),
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let set = answer.set_cookie().expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let pair = set.split(';').next().expect("name=value").to_owned();
    (pair, answer.location().to_owned())
}

/// A page asked for without a session (a register's link in an e-mail, opened from webmail,
/// whose click carries no `SameSite=Strict` cookie) leads to the sign-in and, once signed in,
/// back to that page; only to a page of the console, and only to one of the role's.
#[tokio::test]
async fn a_page_asked_for_before_signing_in_is_where_the_sign_in_leads() {
    let ps = TestPs::start().await;
    let file = "/console/cabinet/registers/daily/2026-11-26.xlsx";
    let away = call(&ps, "GET", file, None, &[], None).await;
    assert_eq!(away.status, 303);
    let to_sign_in = away.location().to_owned();
    assert_eq!(
        to_sign_in,
        "/console?next=%2Fconsole%2Fcabinet%2Fregisters%2Fdaily%2F2026-11-26.xlsx"
    );
    let page = call(&ps, "GET", &to_sign_in, None, &[], None).await;
    assert!(
        page.body.contains(&format!(
            "<input type=\"hidden\" name=\"next\" value=\"{file}\">"
        )),
        "{}",
        page.body
    );
    let signed = |token: &'static str, next: &'static str| {
        let ps = &ps;
        async move {
            call(
                ps,
                "POST",
                "/console/sign-in",
                None,
                &[],
                Some(form(&[("token", token), ("next", next)])),
            )
            .await
            .location()
            .to_owned()
        }
    };
    assert_eq!(signed(BANK_CABINET, file).await, file);
    // Never another site, and never the other role's page.
    assert_eq!(
        signed(BANK_CABINET, "//evil.example/console/").await,
        "/console/cabinet"
    );
    for elsewhere in [
        "/console/operator",
        "/console/cabinet/../../admin/v1/catalog",
        "/console/cabinet/%2e%2e/operator",
    ] {
        assert_eq!(signed(BANK_CABINET, elsewhere).await, "/console/cabinet");
    }
    assert_eq!(signed(ADMIN_TOKEN, file).await, "/console/operator");
}

#[tokio::test]
async fn sign_in_fits_each_token_and_a_wrong_or_tampered_one_is_nobody() {
    let ps = TestPs::start().await;
    // The form, in Russian by default and in Kazakh on request.
    let page = call(&ps, "GET", "/console/", None, &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"token\"") && page.body.contains("id=\"sign-in\""));
    assert!(page.body.contains("<html lang=\"ru\""));
    for (header, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(page.headers[header], value);
    }
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .expect("text")
            .contains("default-src 'none'")
    );
    let kk = call(&ps, "GET", "/console?locale=kk", None, &[], None).await;
    assert!(kk.body.contains("<html lang=\"kk\"") && kk.body.contains("Кіру"));

    // A wrong token: the form again with #error, 401, no cookie.
    let wrong = call(
        &ps,
        "POST",
        "/console/sign-in",
        None,
        &[],
        Some(form(&[("token", "not-a-token")])),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("id=\"error\""));
    assert_eq!(wrong.set_cookie(), None);
    // Its language switch names the form's address, which a GET answers with the form's page
    // in that language (every form's address does: sign-out, cancel, retry, the organization's).
    assert!(
        wrong
            .body
            .contains("id=\"locale-kk\" lang=\"kk\" href=\"/console/sign-in?locale=kk\""),
        "{}",
        wrong.body
    );
    for (form, page) in [
        ("/console/sign-in?locale=kk", "/console?locale=kk"),
        ("/console/sign-out", "/console"),
        (
            "/console/operator/organizations/990340001234/api-keys?locale=kk",
            "/console/operator/organizations/990340001234?locale=kk",
        ),
        (
            "/console/operator/organizations/990340001234/certificates/ab/revoke?locale=ru",
            "/console/operator/organizations/990340001234?locale=ru",
        ),
        (
            "/console/operator/payments/7/cancel?locale=kk",
            "/console/operator/payments/7?locale=kk",
        ),
        (
            "/console/operator/refunds/7/retry?locale=kk",
            "/console/operator?locale=kk",
        ),
    ] {
        let answer = call(&ps, "GET", form, None, &[], None).await;
        assert_eq!((answer.status, answer.location()), (303, page), "{form}");
    }
    // Each refusal is counted for the operator (and logged at most once a second).
    let (_, metrics) = ps.admin("GET", "/admin/v1/metrics", &Value::Null).await;
    let metrics = metrics.as_str().expect("Prometheus text");
    assert!(
        metrics.contains("tolem_console_sign_ins_refused_total 1\n"),
        "{metrics}"
    );

    let (operator, to) = sign_in(&ps, ADMIN_TOKEN).await;
    assert_eq!(to, "/console/operator");
    let (bank, to) = sign_in(&ps, BANK_CABINET).await;
    assert_eq!(to, "/console/cabinet");
    // Each role stays on its own pages.
    assert_eq!(get(&ps, "/console/operator", &operator).await.status, 200);
    assert_eq!(get(&ps, "/console/cabinet", &bank).await.status, 200);
    assert_eq!(
        get(&ps, "/console/cabinet", &operator).await.location(),
        "/console"
    );
    assert_eq!(
        get(&ps, "/console/operator", &bank).await.location(),
        "/console"
    );

    // The MPP's session turned into the operator's, or its signature touched: nobody.
    let value = bank.trim_start_matches("tolem_console=");
    let (payload, tag) = value.split_once('.').expect("payload.tag");
    let text = String::from_utf8(
        (0..payload.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&payload[i..i + 2], 16).expect("hex"))
            .collect(),
    )
    .expect("text");
    let forged: String = text
        .replace("mpp:demobank", "operator")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let forged = format!("tolem_console={forged}.{tag}");
    let answer = get(&ps, "/console/operator", &forged).await;
    assert_eq!(
        (answer.status, answer.location()),
        (303, "/console?next=%2Fconsole%2Foperator")
    );
    let flipped = format!(
        "{}{}",
        &bank[..bank.len() - 1],
        if bank.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(
        get(&ps, "/console/cabinet", &flipped).await.location(),
        "/console?next=%2Fconsole%2Fcabinet"
    );

    // Sign-out needs the CSRF token too, and clears the cookie.
    let page = get(&ps, "/console/operator", &operator).await;
    assert_eq!(
        post(&ps, "/console/sign-out", &operator, &[]).await.status,
        403
    );
    let out = post(
        &ps,
        "/console/sign-out",
        &operator,
        &[("csrf", &page.csrf())],
    )
    .await;
    assert_eq!(out.status, 303);
    let cleared = out.headers[SET_COOKIE].to_str().expect("text");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn without_tokens_there_is_no_console() {
    let ps = TestPs::start_configured(|config| {
        config.admin_token.clear();
        config.registers.cabinet_tokens.clear();
    })
    .await;
    assert_eq!(
        call(&ps, "GET", "/console", None, &[], None).await.status,
        404
    );
    let answer = call(
        &ps,
        "POST",
        "/console/sign-in",
        None,
        &[],
        Some(form(&[("token", "")])),
    )
    .await;
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn the_day_adds_up_past_what_one_amount_can_be() {
    // Two purchases of the largest amount at one MPP: their sum is no amount, but it is the
    // day's figure, and the page still opens.
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    for customer in ["C1", "C2"] {
        ps.paid(&device, 9_999_999_999_999, customer).await;
    }
    let (operator, _) = sign_in(&ps, ADMIN_TOKEN).await;
    let page = get(&ps, "/console/operator", &operator).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("data-payments=\"2\" data-paid-tiyn=\"1999999999999800\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("19 999 999 999 998,00 ₸"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_operator_sees_the_day_finds_a_purchase_and_retries_a_delivery() {
    let ps = TestPs::start().await;
    ps.set_refund_url("demobank", "http://127.0.0.1:9/refund")
        .await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 1500, "C1").await;
    let refund = refund_r3(&ps, &device, purchase, 500.0).await["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("id");
    // The first attempt fails; the clock stands still, so the next is never due by itself.
    // A claim counts the attempt before its outcome is recorded: wait for the outcome too.
    eventually("the first attempt failed", || async {
        let status = refund_status(&ps, refund).await;
        status["attempts"] == 1 && status["last_error"].is_string()
    })
    .await;
    let before = refund_status(&ps, refund).await;
    assert_eq!(before["status"], "pending");

    let (operator, _) = sign_in(&ps, ADMIN_TOKEN).await;
    let page = get(&ps, "/console/operator", &operator).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"today\""), "{}", page.body);
    assert!(
        page.body
            .contains("data-payments=\"1\" data-paid-tiyn=\"150000\"")
    );
    assert!(page.body.contains("1 500,00 ₸"));
    assert!(page.body.contains(&format!("data-refund-id=\"{refund}\"")));
    assert!(page.body.contains("class=\"retry\""));

    // The purchase by its id: its details and timeline.
    let found = get(
        &ps,
        &format!("/console/operator/search?q={purchase}"),
        &operator,
    )
    .await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains("id=\"purchase\"") && found.body.contains("id=\"timeline\""));
    for event in ["scan", "notify", "refund", "delivery"] {
        assert!(
            found.body.contains(&format!("data-event=\"{event}\"")),
            "{event}: {}",
            found.body
        );
    }
    // By the customer: the same purchase.
    let by_customer = get(&ps, "/console/operator/search?q=C1", &operator).await;
    assert!(
        by_customer
            .body
            .contains(&format!("data-payment-id=\"{purchase}\""))
    );
    // By the MPP's name, whatever its case: its latest purchases.
    let by_mpp = get(&ps, "/console/operator/search?q=DemoBank", &operator).await;
    assert!(
        by_mpp
            .body
            .contains(&format!("data-payment-id=\"{purchase}\"")),
        "{}",
        by_mpp.body
    );

    // The MPP is back. A retry without the CSRF token, or from another origin, changes nothing.
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let path = format!("/console/operator/refunds/{refund}/retry");
    let refused = post(&ps, &path, &operator, &[]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("id=\"message\""));
    let csrf = page.csrf();
    let foreign = call(
        &ps,
        "POST",
        &path,
        Some(&operator),
        &[("origin", "http://evil.example")],
        Some(form(&[("csrf", &csrf)])),
    )
    .await;
    assert_eq!(foreign.status, 403);
    let other_session = sign_in(&ps, ADMIN_TOKEN).await.0;
    assert_eq!(
        post(&ps, &path, &other_session, &[("csrf", &csrf)])
            .await
            .status,
        403,
        "a CSRF token of another session"
    );
    assert_eq!(refund_status(&ps, refund).await, before);
    assert!(mpp.credited().is_empty());

    // With it, the delivery is due now: the MPP is paid without the clock moving.
    let own_origin = ps.url.clone();
    let retry = || async {
        call(
            &ps,
            "POST",
            &path,
            Some(&operator),
            &[("origin", &own_origin)],
            Some(form(&[("csrf", &csrf)])),
        )
        .await
    };
    let retried = retry().await;
    assert_eq!(retried.status, 303, "{}", retried.body);
    assert_eq!(retried.location(), "/console/operator?done=retried");
    eventually("the refund is delivered", || async {
        !mpp.credited().is_empty()
    })
    .await;
    eventually("the refund is completed", || async {
        refund_status(&ps, refund).await["status"] == "completed"
    })
    .await;
    // The same form again, from the page left open: the refund waits no more, and is said so.
    let again = retry().await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.body.contains(&format!(
            "Возврат № {refund} уже не ждёт доставки: Проведён. Обновите страницу."
        )),
        "{}",
        again.body
    );
    let page = get(&ps, "/console/operator", &operator).await;
    assert!(
        page.body
            .contains("data-refunds=\"1\" data-refunded-tiyn=\"50000\"")
    );

    // The timeline shows both attempts, each with its outcome and node: the first failed (the
    // closed port), the second delivered.
    let timeline = get(
        &ps,
        &format!("/console/operator/payments/{purchase}"),
        &operator,
    )
    .await;
    assert_eq!(timeline.status, 200);
    let attempts: Vec<&str> = timeline
        .body
        .split("<li data-event=\"delivery\"")
        .skip(1)
        .collect();
    assert_eq!(attempts.len(), 2, "{}", timeline.body);
    assert!(
        attempts[0].contains(&format!(
            "data-refund-id=\"{refund}\" data-attempt=\"1\" data-outcome=\"failed\""
        )),
        "{}",
        attempts[0]
    );
    assert!(
        attempts[0].contains("class=\"error-text\""),
        "{}",
        attempts[0]
    );
    assert!(
        attempts[1].contains(&format!(
            "data-refund-id=\"{refund}\" data-attempt=\"2\" data-outcome=\"delivered\""
        )),
        "{}",
        attempts[1]
    );
    assert!(
        attempts[1].contains("class=\"node\""),
        "the node that made it: {}",
        attempts[1]
    );
    assert!(
        !timeline.body.contains("data-event=\"delivery-not-kept\""),
        "every attempt kept: {}",
        timeline.body
    );
}

/// The value of the hidden field `name` of the page's first form that has one.
fn hidden(page: &Answer, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).expect("the field") + marker.len();
    page.body[start..]
        .split('"')
        .next()
        .expect("a value")
        .to_owned()
}

/// The text of the element with `id`.
fn text_of(page: &Answer, id: &str) -> Option<String> {
    let start = page.body.find(&format!("id=\"{id}\""))?;
    let open = page.body[start..].find('>')? + start + 1;
    let end = page.body[open..].find('<')? + open;
    Some(page.body[open..end].to_owned())
}

#[tokio::test]
async fn keys_and_certificates_from_the_console() {
    let ps = TestPs::start().await;
    let (operator, _) = sign_in(&ps, ADMIN_TOKEN).await;
    let path = format!("/console/operator/organizations/{CAFE}");
    let page = get(&ps, &path, &operator).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for id in ["issue-key", "certificate-pem", "register-certificate"] {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "{id}");
    }
    let keys_before = text_of(&page, "key-count").expect("a count");
    let (csrf, nonce) = (page.csrf(), hidden(&page, "nonce"));

    // Without the CSRF token: refused, nothing issued.
    let keys_path = format!("{path}/api-keys");
    let refused = post(
        &ps,
        &keys_path,
        &operator,
        &[("kind", "test"), ("nonce", &nonce)],
    )
    .await;
    assert_eq!(refused.status, 403);
    let fields = [
        ("csrf", csrf.as_str()),
        ("kind", "test"),
        ("nonce", nonce.as_str()),
    ];
    let issued = post(&ps, &keys_path, &operator, &fields).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    assert_eq!(issued.headers["cache-control"], "no-store");
    let key = text_of(&issued, "new-key").expect("the key shown");
    assert!(key.starts_with("test_") && key.len() == 37, "{key}");
    let (status, points) = ps
        .pos("GET", "/r1/v01/partner/tradepoints", &key, None)
        .await;
    assert_eq!(
        (status, &points["StatusCode"]),
        (200, &json!(0)),
        "{points}"
    );

    // The same form again (a reload, a double click): no second key.
    let again = post(&ps, &keys_path, &operator, &fields).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(text_of(&again, "new-key").is_none(), "{}", again.body);
    assert!(again.body.contains("id=\"error\""));
    let count = |page: &Answer| {
        text_of(page, "key-count")
            .and_then(|n| n.parse::<usize>().ok())
            .expect("a count")
    };
    let before: usize = keys_before.parse().expect("a number");
    assert_eq!(count(&again), before + 1, "one key issued in all");
    // A kind that is none: the admin API's refusal, nothing issued.
    let fresh = get(&ps, &path, &operator).await;
    let odd = post(
        &ps,
        &keys_path,
        &operator,
        &[
            ("csrf", &csrf),
            ("kind", "live"),
            ("nonce", &hidden(&fresh, "nonce")),
        ],
    )
    .await;
    assert_eq!(odd.status, 400, "{}", odd.body);
    assert_eq!(count(&odd), before + 1);

    // A certificate by its fingerprint (capitals and colons, as a person copies it).
    let fingerprint = "ab".repeat(32);
    let typed: String = fingerprint
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let certs_path = format!("{path}/certificates");
    let bad = post(
        &ps,
        &certs_path,
        &operator,
        &[("csrf", &csrf), ("certificate", "not one")],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("id=\"error\""));
    assert!(!bad.body.contains("data-fingerprint="));
    let registered = post(
        &ps,
        &certs_path,
        &operator,
        &[("csrf", &csrf), ("certificate", &typed)],
    )
    .await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    assert_eq!(registered.location(), format!("{path}?done=registered"));
    let listed = cafe_certificates(&ps).await;
    assert_eq!(listed, json!([fingerprint]), "{listed}");
    let page = get(&ps, &path, &operator).await;
    let row = format!("tr data-fingerprint=\"{fingerprint}\"");
    assert!(page.body.contains(&row), "{}", page.body);
    assert!(page.body.contains("class=\"revoke"));
    let known = post(
        &ps,
        &certs_path,
        &operator,
        &[("csrf", &csrf), ("certificate", &fingerprint)],
    )
    .await;
    assert_eq!(known.location(), format!("{path}?done=known"));

    // Revoked: gone from the catalog and the page.
    let revoke = format!("{certs_path}/{fingerprint}/revoke");
    assert_eq!(post(&ps, &revoke, &operator, &[]).await.status, 403);
    // Asked once more first; nothing is revoked until the operator confirms.
    let asked = post(&ps, &revoke, &operator, &[("csrf", &csrf)]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("id=\"question\""), "{}", asked.body);
    assert!(asked.body.contains(&fingerprint), "{}", asked.body);
    assert!(
        asked.body.contains(&format!("action=\"{revoke}\""))
            && asked.body.contains("name=\"confirm\" value=\"yes\""),
        "{}",
        asked.body
    );
    let listed = cafe_certificates(&ps).await;
    assert_eq!(listed, json!([fingerprint]), "{listed}");
    let confirmed = [("csrf", csrf.as_str()), ("confirm", "yes")];
    let revoked = post(&ps, &revoke, &operator, &confirmed).await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let listed = cafe_certificates(&ps).await;
    assert_eq!(listed, json!([]), "{listed}");
    let page = get(&ps, &path, &operator).await;
    assert!(!page.body.contains(&row));
    // A second revoke: the admin API's 404, shown in the page.
    let twice = post(&ps, &revoke, &operator, &confirmed).await;
    assert_eq!(twice.status, 404, "{}", twice.body);
    assert!(twice.body.contains("id=\"error\""));

    // An MPP's cabinet session has no such page.
    let (bank, _) = sign_in(&ps, BANK_CABINET).await;
    let answer = get(&ps, &path, &bank).await;
    assert_eq!((answer.status, answer.location()), (303, "/console"));
}

/// The demo café's BIN.
const CAFE: &str = "990340001234";

/// The café's registered certificates, as the admin API lists them.
async fn cafe_certificates(ps: &TestPs) -> Value {
    let (_, listed) = ps
        .admin(
            "GET",
            &format!("/admin/v1/organizations/{CAFE}/certificates"),
            &Value::Null,
        )
        .await;
    listed["certificates"].clone()
}

#[tokio::test]
async fn a_suspension_from_the_console_stops_the_merchant() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let (qr, _) = ps.dynamic_qr(&device, 100).await;
    let (operator, _) = sign_in(&ps, ADMIN_TOKEN).await;
    let page = get(&ps, "/console/operator", &operator).await;
    assert!(page.body.contains("data-bin=\"990340001234\""));
    let path = "/console/operator/organizations/990340001234/status";
    // Without the token: refused, the merchant still works.
    assert_eq!(
        post(&ps, path, &operator, &[("status", "suspended")])
            .await
            .status,
        403
    );
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let status = catalog["organizations"]
        .as_array()
        .expect("organizations")
        .iter()
        .find(|o| o["bin"] == "990340001234")
        .map(|o| o["status"].clone());
    assert_eq!(status, Some(json!("active")));
    // Asked once more first: the page names the organization, and nothing changed yet.
    let csrf = page.csrf();
    let asked = post(
        &ps,
        path,
        &operator,
        &[("csrf", &csrf), ("status", "suspended")],
    )
    .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(
        asked.body.contains("id=\"question\"") && asked.body.contains("990340001234"),
        "{}",
        asked.body
    );
    let page = get(&ps, "/console/operator", &operator).await;
    assert!(
        page.body
            .contains("data-bin=\"990340001234\" data-status=\"active\""),
        "not suspended before the confirmation"
    );
    let done = post(
        &ps,
        path,
        &operator,
        &[("csrf", &csrf), ("status", "suspended"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let (_, body) = ps
        .mpp_call(
            "/api/v1/qr/scan",
            "demobank",
            "s",
            &json!({"qrCode": qr, "customerId": "C1"}),
        )
        .await;
    assert_eq!(result_code(&body), "PAYMENTS_SUSPENDED");
    let page = get(&ps, "/console/operator", &operator).await;
    assert!(
        page.body
            .contains("data-bin=\"990340001234\" data-status=\"suspended\"")
    );
}

#[tokio::test]
async fn an_mpp_sees_only_its_own_refunds_and_registers() {
    let ps = TestPs::start().await;
    let mpp = Receiver::start().await;
    ps.set_refund_url("demobank", &mpp.url).await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 100, "C1").await;
    let refund = refund_r3(&ps, &device, purchase, 100.0).await["Data"]["ReturnOperationId"]
        .as_i64()
        .expect("id");
    let row = format!("data-refund-id=\"{refund}\"");

    let (bank, _) = sign_in(&ps, BANK_CABINET).await;
    let page = get(&ps, "/console/cabinet", &bank).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&row), "{}", page.body);
    assert!(page.body.contains("id=\"registers\""));
    assert!(page.body.contains("class=\"register\" data-kind=\"daily\""));
    assert!(
        page.body
            .contains("class=\"register\" data-kind=\"monthly\"")
    );
    assert!(
        !page.body.contains("class=\"retry\""),
        "no operator's buttons"
    );

    let (wallet, _) = sign_in(&ps, WALLET_CABINET).await;
    let page = get(&ps, "/console/cabinet", &wallet).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains(&row),
        "another MPP's refund: {}",
        page.body
    );

    // Yesterday's register, by the cabinet's code, is the session's MPP's and no other's. In the
    // first minutes of a day, before yesterday's register can be made, "yesterday" is the day
    // before (and "today", whose register is not ready, the day that has just ended).
    let yesterday = (ps.clock.now() - tolem_ps::registers::make::REGISTER_SETTLE_MIN)
        .to_zoned_datetime(tolem_wire::time::zone("Asia/Almaty").expect("the zone"))
        .date()
        .yesterday()
        .expect("a day");
    for (cookie, name) in [(&bank, "demobank"), (&wallet, "demowallet")] {
        for (format, kind) in [("xlsx", "spreadsheet"), ("csv", "text/csv")] {
            let answer = get(
                &ps,
                &format!("/console/cabinet/registers/daily/{yesterday}.{format}"),
                cookie,
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let disposition = answer.headers["content-disposition"]
                .to_str()
                .expect("text");
            assert!(
                disposition.contains(&format!("{name}-daily-{yesterday}.{format}")),
                "{disposition}"
            );
            let content_type = answer.headers["content-type"].to_str().expect("text");
            assert!(content_type.contains(kind), "{content_type}");
        }
    }
    // A register not due yet, or not one at all: a page in the session's language with the way
    // back, not the cabinet API's JSON.
    let today = yesterday.tomorrow().expect("a day");
    let ready = format!(
        "будет готов после его окончания, с {} 00:05 Asia/Almaty.",
        today.tomorrow().expect("a day")
    );
    for (path, status, text) in [
        (format!("daily/{today}.csv"), 409, ready.as_str()),
        ("daily/2026-13-01.csv".to_owned(), 404, "Не найдено"),
        ("weekly/2026-11.csv".to_owned(), 404, "Не найдено"),
    ] {
        let answer = get(&ps, &format!("/console/cabinet/registers/{path}"), &bank).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert!(
            answer.body.contains("<html") && answer.body.contains(text),
            "{path}: {}",
            answer.body
        );
        assert!(answer.body.contains("href=\"/console/cabinet\""), "{path}");
    }
    // Without a session, nothing.
    let answer = call(
        &ps,
        "GET",
        &format!("/console/cabinet/registers/daily/{yesterday}.csv"),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(
        (answer.status, answer.location()),
        (
            303,
            format!("/console?next=%2Fconsole%2Fcabinet%2Fregisters%2Fdaily%2F{yesterday}.csv")
                .as_str()
        )
    );
}

#[tokio::test]
async fn the_timeline_shows_when_checkout_froze_the_amount() {
    let ps = TestPs::start().await;
    let payment_id = scan_id(&ps, "demobank", PARKING_QR, "C9").await;
    // Checkout half a minute after the scan (inside its window), so its time is its own.
    ps.advance(30);
    let checked_out_at = ps.clock.now();
    let body = json!({"paymentId": payment_id, "serviceId": 2862,
        "parameters": [{"id": 3932, "value": "777ABC02"}, {"id": 3933, "value": "3h"}]});
    let (_, answer) = ps
        .mpp_call("/api/v1/qr/checkout", "demobank", "c1", &body)
        .await;
    assert_eq!(result_code(&answer), "SUCCESS", "{answer}");
    let (operator, _) = sign_in(&ps, ADMIN_TOKEN).await;
    let page = get(
        &ps,
        &format!("/console/operator/payments/{payment_id}"),
        &operator,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let checkout = page
        .body
        .split("<li data-event=\"checkout\">")
        .nth(1)
        .expect("a checkout event");
    let expected = jiff::Timestamp::from_millisecond(checked_out_at.as_millisecond())
        .expect("a time")
        .to_string();
    assert!(
        checkout.starts_with(&format!("<time datetime=\"{expected}\">")),
        "{checkout}"
    );
}

#[tokio::test]
async fn a_cancellation_from_the_console_says_it_was_placed_on_the_purchase_page() {
    let ps = TestPs::start().await;
    let payment_id = scan_id(&ps, "demobank", PARKING_QR, "C5").await;
    let body = json!({"paymentId": payment_id, "serviceId": 2862,
        "parameters": [{"id": 3932, "value": "A"}, {"id": 3933, "value": "3h"}]});
    ps.mpp_call("/api/v1/qr/checkout", "demobank", "c", &body)
        .await;
    let notify = notify_body(&payment_id, "C5", "SUCCESS", Some("800"));
    let (_, paid) = ps
        .mpp_call("/api/v1/qr/notifyPayment", "demobank", "n", &notify)
        .await;
    assert_eq!(result_code(&paid), "SUCCESS");
    let (operator, _) = sign_in(&ps, ADMIN_TOKEN).await;
    let path = format!("/console/operator/payments/{payment_id}");
    let page = get(&ps, &path, &operator).await;
    assert_eq!(
        text_of(&page, "message").as_deref(),
        Some(""),
        "nothing done yet"
    );
    // Its kind in the page's language, not the store's word.
    assert!(
        page.body
            .contains("<span data-kind=\"custom\">QR услуги</span>"),
        "{}",
        page.body
    );
    let cancel = format!("{path}/cancel");
    let submit = |page: &Answer, amount: &str, confirm: bool| {
        let mut fields = vec![
            ("csrf", page.csrf()),
            ("nonce", hidden(page, "nonce")),
            ("amount", amount.to_owned()),
        ];
        if confirm {
            fields.push(("confirm", "yes".to_owned()));
        }
        fields
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let (ps, cancel, operator) = (&ps, &cancel, &operator);
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(ps, cancel, operator, &fields).await
        }
    };
    // 0,00 is no cancellation: refused before the question, which would offer nothing back.
    let zero = send(submit(&page, "0,00", false)).await;
    assert_eq!(zero.status, 400, "{}", zero.body);
    assert_eq!(
        text_of(&zero, "cancel-error").as_deref(),
        Some("Сумма не понята: пишите больше нуля, например, 1500 или 1500,50."),
        "{}",
        zero.body
    );
    // More than was paid: refused on the purchase's page, the amount kept as typed, with how
    // much is left.
    let refused = send(submit(&page, "900", true)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        text_of(&refused, "cancel-error").as_deref(),
        Some("Сумма больше, чем осталось вернуть. Можно вернуть не больше 800,00 ₸."),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains("name=\"amount\" inputmode=\"decimal\" size=\"14\" value=\"900\""),
        "{}",
        refused.body
    );
    // Money goes back to a customer: the first press asks, naming the amount (all that is left,
    // for an empty field); nothing is placed.
    let asked = send(submit(&page, "", false)).await;
    assert_eq!(
        text_of(&asked, "question").as_deref(),
        Some(
            format!(
                "Отменить оплату услуги № {payment_id} и вернуть покупателю всё, что осталось: 800,00 ₸?"
            )
            .as_str()
        ),
        "{}",
        asked.body
    );
    // More than is left is refused before the question too, which would offer to give it back;
    // all that is left, typed as the console shows it, is asked as all that is left.
    let early = send(submit(&page, "900", false)).await;
    assert_eq!(early.status, 400, "{}", early.body);
    assert_eq!(
        text_of(&early, "cancel-error").as_deref(),
        Some("Сумма больше, чем осталось вернуть. Можно вернуть не больше 800,00 ₸."),
        "{}",
        early.body
    );
    let all = send(submit(&page, "800,00\u{a0}₸", false)).await;
    assert_eq!(
        text_of(&all, "question").as_deref(),
        Some(
            format!(
                "Отменить оплату услуги № {payment_id} и вернуть покупателю всё, что осталось: 800,00 ₸?"
            )
            .as_str()
        ),
        "{}",
        all.body
    );
    let asked = send(submit(&page, "100", false)).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert_eq!(
        text_of(&asked, "question").as_deref(),
        Some(
            format!(
                "Отменить оплату услуги № {payment_id} частично и вернуть покупателю 100,00 ₸?"
            )
            .as_str()
        ),
        "{}",
        asked.body
    );
    assert!(
        !get(&ps, &path, &operator)
            .await
            .body
            .contains("id=\"refunded\"")
    );
    // Confirmed: placed.
    let done = send(submit(&asked, &hidden(&asked, "amount"), true)).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), format!("{path}?done=cancelled"));
    // The page the operator lands on says the refund was placed, so nobody submits it again.
    let page = get(&ps, done.location(), &operator).await;
    assert_eq!(
        text_of(&page, "message").as_deref(),
        Some("Возврат по отмене создан и будет доставлен в МПП."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("отмена поставщиком услуги"),
        "{}",
        page.body
    );
    // What went back (or is on its way) is said beside the amount.
    let refunded = text_of(&page, "refunded").unwrap_or_default();
    assert!(
        refunded == "100,00 ₸" || refunded == "100,00 ₸ ещё в доставке",
        "{refunded}"
    );
    // The form's address opened again (a reload after a refusal) leads back to the purchase.
    let again = get(&ps, &format!("{path}/cancel"), &operator).await;
    assert_eq!((again.status, again.location()), (303, path.as_str()));
    // The overview lists the cancellation's refund, not a return QR nobody used.
    let device = ps.device("POS-1").await;
    let (unused, _) = ps.return_qr(&device).await;
    let overview = get(&ps, "/console/operator", &operator).await;
    assert!(
        !overview
            .body
            .contains(&format!("data-refund-id=\"{unused}\"")),
        "{}",
        overview.body
    );
    assert!(
        overview.body.contains(&format!(
            "<a href=\"/console/operator/payments/{payment_id}\">"
        )),
        "{}",
        overview.body
    );
}

#[tokio::test]
async fn browsers_find_an_icon_on_every_page_s_origin() {
    let ps = TestPs::start().await;
    let answer = reqwest::get(format!("{}/favicon.ico", ps.url))
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    let kind = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(kind, "image/svg+xml");
    let body = answer.text().await.expect("a body");
    assert!(body.starts_with("<svg"), "{body}");
}

#[tokio::test]
async fn an_edit_saved_over_a_change_made_since_it_was_opened_is_refused() {
    let ps = TestPs::start().await;
    let (operator, _) = sign_in(&ps, ADMIN_TOKEN).await;
    let path = "/console/operator/edit/organizations/990340001234";
    let opened = get(&ps, path, &operator).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    // The form carries the item's tag, the admin API's ETag, escaped as HTML.
    let tag = hidden(&opened, "etag").replace("&quot;", "\"");
    let (_, org) = ps
        .admin("GET", "/admin/v1/organizations/990340001234", &Value::Null)
        .await;
    // Someone suspends the café through the admin API while the form is open.
    ps.set_organization_status("990340001234", "suspended")
        .await;
    // Saving the form as it was opened (a new name, the old status) is refused, in the
    // console's language, and puts nothing back.
    let mut renamed = org.clone();
    renamed["name"] = json!("Кафе «Форма»");
    let json = renamed.to_string();
    let fields = [
        ("csrf", opened.csrf()),
        ("etag", tag.clone()),
        ("json", json.clone()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = post(&ps, path, &operator, &fields).await;
    assert_eq!(refused.status, 412, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("изменили после того, как вы её открыли"),
        "{}",
        refused.body
    );
    let (_, now) = ps
        .admin("GET", "/admin/v1/organizations/990340001234", &Value::Null)
        .await;
    assert_eq!(now["status"], "suspended");
    assert_eq!(now["name"], org["name"]);

    // Opened again, the form shows the suspension and saves.
    let reopened = get(&ps, path, &operator).await;
    let tag = hidden(&reopened, "etag").replace("&quot;", "\"");
    let mut renamed = now.clone();
    renamed["name"] = json!("Кафе «Форма»");
    let json = renamed.to_string();
    let fields = [("csrf", reopened.csrf()), ("etag", tag), ("json", json)];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = post(&ps, path, &operator, &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (_, now) = ps
        .admin("GET", "/admin/v1/organizations/990340001234", &Value::Null)
        .await;
    assert_eq!(now["status"], "suspended");
    assert_eq!(now["name"], "Кафе «Форма»");
}

#[tokio::test]
async fn the_operator_downloads_a_register_and_sends_its_e_mail_again_from_the_overview() {
    use crate::register_mail::{expect_mails, scene_with_mail, scheduler_has_run};
    let smtp = crate::smtp::SmtpServer::start().await;
    let scene = scene_with_mail("2026-11-26T10:00:00", &smtp).await;
    let ps = &scene.ps;
    let device = ps.device("POS-1").await;
    ps.paid(&device, 1500, "C1").await;
    scheduler_has_run(&scene).await;
    scene.set_clock("2026-11-27T09:00:00");
    expect_mails(&smtp, 2).await;

    let (operator, _) = sign_in(ps, ADMIN_TOKEN).await;
    let page = get(ps, "/console/operator", &operator).await;
    assert_eq!(page.status, 200);
    // Each e-mail's row links to its register and says its kind in the page's language.
    let link = "/console/operator/registers/demobank/daily/2026-11-26.xlsx";
    assert!(
        page.body.contains(&format!("href=\"{link}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("<td>дневной</td>"), "{}", page.body);
    let file = get(ps, link, &operator).await;
    assert_eq!(file.status, 200);
    let disposition = file
        .headers
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        disposition.contains("demobank-daily-2026-11-26.xlsx"),
        "{disposition}"
    );
    // An MPP's session is not the operator's.
    let (bank, _) = sign_in(ps, crate::registers::BANK_TOKEN).await;
    assert_eq!(get(ps, link, &bank).await.status, 303);

    // Sent again from its row's form: a third e-mail, a second sending of demobank's register.
    let path = "/console/operator/registers/demobank/daily/2026-11-26/send";
    let own_origin = ps.url.clone();
    let origin = [("origin", own_origin.as_str())];
    let send = || {
        call(
            ps,
            "POST",
            path,
            Some(&operator),
            &origin,
            Some(form(&[("csrf", &page.csrf()), ("sending", "1")])),
        )
    };
    let sent = send().await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(sent.location(), "/console/operator?done=register");
    let mails = expect_mails(&smtp, 3).await;
    assert_eq!(
        mails[2].message_id(),
        "register.demobank.daily.2026-11-26.2@ps.tolem.test"
    );
    // The same form sent again (a double click, a reload) sends nothing more, and says why.
    let twice = send().await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert!(
        twice.body.contains(
            "Этот реестр уже отправлен снова (отправка 2), пока страница была открыта: письмо не \
             повторено."
        ),
        "{}",
        twice.body
    );
    expect_mails(&smtp, 3).await;
    // A period not over is refused on a page that says why, and nothing is sent.
    let refused = call(
        ps,
        "POST",
        "/console/operator/registers/demobank/daily/2026-11-27/send",
        Some(&operator),
        &[("origin", &own_origin)],
        Some(form(&[("csrf", &page.csrf())])),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("2026-11-27"), "{}", refused.body);
    expect_mails(&smtp, 3).await;
}

/// An MPP added through the admin API gets its cabinet token there too, at once and with no
/// restart: the token opens the register API and the cabinet pages; a PUT that leaves the
/// token out is refused rather than signing the MPP out; revoking it ends both, its sessions
/// included.
#[tokio::test]
async fn a_cabinet_token_issued_through_the_admin_api_opens_the_cabinet_until_revoked() {
    let ps = TestPs::start().await;
    let newbank = json!({"caller_name": "newbank", "name": "New Bank", "refund_url": "http://127.0.0.1:9/refund"});
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/newbank", &newbank).await;
    assert_eq!(status, 200, "{answer}");
    let (status, issued) = ps
        .admin(
            "POST",
            "/admin/v1/mpps/newbank/cabinet-tokens",
            &Value::Null,
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["cabinet_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let hash = issued["hash"].as_str().expect("its hash").to_owned();
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
    let digest: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, digest);
    // Only the hash is kept, and shown.
    let (_, stored) = ps
        .admin("GET", "/admin/v1/mpps/newbank", &Value::Null)
        .await;
    assert_eq!(stored["cabinet_token_hashes"], json!([hash]));
    assert!(!stored.to_string().contains(&token));

    // The register API: today's register is not due yet (409), which only an MPP it knows hears.
    let today = ps
        .clock
        .now()
        .to_zoned_datetime(tolem_wire::time::zone("Asia/Almaty").expect("the zone"))
        .date();
    let register = |token: String| {
        let url = format!("{}/cabinet/v1/registers/daily/{today}.csv", ps.url);
        let http = ps.http.clone();
        async move {
            let answer = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("answer");
            answer.status().as_u16()
        }
    };
    assert_eq!(register(token.clone()).await, 409);
    assert_eq!(register("not-a-token-of-anyone".to_owned()).await, 401);
    // The cabinet pages: a session of this MPP.
    let (cookie, to) = sign_in(&ps, &token).await;
    assert_eq!(to, "/console/cabinet");
    let page = get(&ps, "/console/cabinet", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("newbank"), "{}", page.body);

    // A PUT without the hashes would sign it out: refused, naming the field; with them, taken.
    let mut changed = stored.clone();
    changed["commission_bps"] = json!(90);
    let mut without = changed.clone();
    without
        .as_object_mut()
        .expect("an object")
        .remove("cabinet_token_hashes");
    let (status, refused) = ps.admin("PUT", "/admin/v1/mpps/newbank", &without).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("cabinet_token_hashes"),
        "{refused}"
    );
    let (status, answer) = ps.admin("PUT", "/admin/v1/mpps/newbank", &changed).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(register(token.clone()).await, 409);
    // An MPP made from a copy of this one's item would share its token: refused, naming it.
    let mut copy = changed.clone();
    copy["caller_name"] = json!("copybank");
    let (status, refused) = ps.admin("PUT", "/admin/v1/mpps/copybank", &copy).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("a token of the MPP newbank too"),
        "{refused}"
    );

    // Revoked: the API and the session are nobody's from the next request.
    let revoke = format!("/admin/v1/mpps/newbank/cabinet-tokens/{hash}");
    let (status, left) = ps.admin("DELETE", &revoke, &Value::Null).await;
    assert_eq!(status, 200, "{left}");
    assert_eq!(left["cabinet_token_hashes"], json!([]));
    assert_eq!(register(token.clone()).await, 401);
    let page = get(&ps, "/console/cabinet", &cookie).await;
    assert_ne!(page.status, 200, "the session ended: {}", page.body);
    let (status, _) = ps.admin("DELETE", &revoke, &Value::Null).await;
    assert_eq!(status, 404);
    let (status, _) = ps
        .admin(
            "DELETE",
            "/admin/v1/mpps/newbank/cabinet-tokens/nothex",
            &Value::Null,
        )
        .await;
    assert_eq!(status, 400);
    let (status, answer) = ps
        .admin("POST", "/admin/v1/mpps/nobody/cabinet-tokens", &Value::Null)
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("no such mpp"))
    );
}
