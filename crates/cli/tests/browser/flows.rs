//! The flows of issue 14 through its four screens, each against its own sandbox, driven by the
//! element ids of the screens' contract (the cashier `/pos/`, the wallet `/wallet/`, the console
//! `/console/`), with a screenshot of each screen at its key moment (`shot`).

use std::io::Cursor;
use std::sync::Arc;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use jiff::Timestamp;
use serde_json::{Value, json};
use tolem_ps::clock::ManualClock;

use crate::harness::*;

/// The cashier signed in with the café's key, its till registered at the café.
async fn cashier(sandbox: &Sandbox, driver: &Driver) -> Browser {
    let till = driver.browser(DESK).await;
    till.goto(&sandbox.pos).await;
    till.fill("#api-key", API_KEY).await;
    till.click("#sign-in").await;
    till.wait_shown("#sign-out").await;
    till.choose("#trade-point", &CAFE_TRADE_POINT.to_string())
        .await;
    till.click("#register").await;
    till.wait_some_attr("#device", "data-device-token").await;
    till
}

/// The wallet of demobank's customer `customer`, signed in; its balance in tiyn.
async fn wallet(sandbox: &Sandbox, driver: &Driver, customer: &str) -> (Browser, i64) {
    let phone = driver.browser(PHONE).await;
    phone.goto(&sandbox.wallet).await;
    phone.choose("#customer", customer).await;
    phone.click("#sign-in").await;
    phone.wait_shown("#sign-out").await;
    let tiyn = phone.wait_some_attr("#balance", "data-tiyn").await;
    (phone, tiyn.parse().expect("integer tiyn"))
}

/// Waits until the wallet's balance is `tiyn`, refreshing it as the customer would.
async fn wait_balance(phone: &Browser, tiyn: i64) {
    let want = tiyn.to_string();
    let probe = || async {
        let seen = phone.attribute("#balance", "data-tiyn").await;
        if seen.as_deref() != Some(want.as_str()) {
            let refreshed = phone
                .js(
                    "const b = document.querySelector('#refresh'); \
                     if (b && b.getClientRects().length) { b.click(); return true; } \
                     return false;",
                    Value::Null,
                )
                .await;
            if refreshed != Value::Bool(true) {
                // No refresh button on this view (a scan's result, say): the wallet's start.
                phone.js("location.reload();", Value::Null).await;
            }
        }
        seen
    };
    let (reached, last) = poll(probe, |seen| seen.as_deref() == Some(want.as_str())).await;
    assert!(reached, "the wallet's balance stayed {last:?}, not {want}");
}

/// The cashier makes a QR of `tenge` and the wallet pays it: the purchase's QrPaymentId.
async fn sale(till: &Browser, phone: &Browser, tenge: &str) -> String {
    till.fill("#amount", tenge).await;
    till.click("#create-qr").await;
    let token = till.wait_text("#qr-token").await;
    let payment = till.wait_text("#qr-payment-id").await;
    till.wait_shown("#qr").await;
    // A new QR is QrTokenCreated until a wallet scans it (docs/merchant-api.md, Statuses).
    till.wait_attr("#status", "data-status", "QrTokenCreated")
        .await;
    shot(till, "cashier-qr").await;

    phone.fill("#token", &token).await;
    // Enter on «Продолжить», and again a moment later (a key pressed twice or held): the
    // customer sees what to pay, and nothing is paid before `#pay`.
    phone
        .js("document.getElementById('scan').focus();", json!(null))
        .await;
    for _ in 0..2 {
        phone
            .active_element()
            .await
            .expect("the focused element")
            .send_keys("\u{E007}")
            .await
            .expect("Enter");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    phone.wait_text("#merchant").await;
    let due = phone.wait_text("#due").await;
    assert!(due.contains(" ₸"), "{due}");
    assert_eq!(
        phone.attribute("#result", "data-outcome").await.as_deref(),
        Some(""),
        "paid before the customer chose to"
    );
    // The second Enter may land on the scan button as the first scan's answer arrives and scan
    // again; while a scan is under way its button is disabled and nothing has the focus. Once
    // the page has settled, the focus is on what is to be paid.
    let (_, focused) = poll(
        || phone.js("return document.activeElement.id;", json!(null)),
        |id| id != &json!(""),
    )
    .await;
    assert_eq!(
        focused,
        json!("payment-title"),
        "the page leads to what is to be paid, not to the button that pays it"
    );
    shot(phone, "wallet-scanned").await;
    phone.click("#pay").await;
    phone.wait_attr("#result", "data-outcome", "paid").await;
    shot(phone, "wallet-paid").await;
    accessible(phone, "the wallet, paid").await;

    till.wait_attr("#status", "data-status", "Processed").await;
    shot(till, "cashier-processed").await;
    accessible(till, "the cashier, paid").await;
    payment
}

#[tokio::test]
async fn the_cashier_makes_a_qr_the_wallet_pays_it_and_the_cashier_sees_processed() {
    let sandbox = Sandbox::start();
    let driver = Driver::start().await;
    let till = cashier(&sandbox, &driver).await;
    let (phone, before) = wallet(&sandbox, &driver, "C1").await;
    shot(&phone, "wallet-signed-in").await;

    sale(&till, &phone, "1500").await;
    wait_balance(&phone, before - 150_000).await;
    let shown = phone.text("#balance").await;
    assert_eq!(shown, "48 500,00 ₸");
    let history = phone.wait_text("#history li[data-kind]").await;
    assert!(
        history.contains("1 500,00") && history.contains("покупка № "),
        "the newest movement, in the page's language: {history}"
    );
    // The MPP's books agree with the page.
    let account = sandbox.account("C1").await;
    assert_eq!(account["balance_tiyn"], before - 150_000, "{account}");
    till.close().await;
    phone.close().await;
}

#[tokio::test]
async fn refunds_from_the_cashier_with_and_without_the_customer_reach_the_wallet() {
    let sandbox = Sandbox::start();
    let driver = Driver::start().await;
    let till = cashier(&sandbox, &driver).await;
    let (phone, before) = wallet(&sandbox, &driver, "C1").await;
    let payment = sale(&till, &phone, "1500").await;
    wait_balance(&phone, before - 150_000).await;
    // A reload keeps the sale on screen, asked again: the cashier still sees it paid.
    till.goto(&sandbox.pos).await;
    till.wait_attr("#status", "data-status", "Processed").await;
    assert_eq!(till.text("#qr-payment-id").await, payment);

    // Without the customer: the purchase named by its id. Nothing is sent before the cashier
    // confirms what the page asks.
    till.fill("#plain-payment-id", &payment).await;
    // Enter submits the form, which asks; a second Enter (a key held down) does not answer.
    till.fill("#plain-amount", "500\u{E007}\u{E007}").await;
    till.wait_shown("#plain-yes").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        till.attribute("#plain-result", "data-status-code").await,
        None,
        "nothing sent before the cashier's yes"
    );
    let question = till.text("#plain-question").await;
    assert_eq!(
        question,
        format!("Вернуть 500,00 ₸ по покупке № {payment}?")
    );
    till.click("#plain-no").await;
    let shown = "const e = document.querySelector(arguments[0]); \
                 return !!e && e.getClientRects().length > 0;";
    assert_eq!(till.js(shown, json!("#plain-yes")).await, json!(false));
    assert_eq!(
        till.attribute("#plain-result", "data-status-code").await,
        None
    );
    till.click("#plain-refund").await;
    till.click("#plain-yes").await;
    till.wait_attr("#plain-result", "data-status-code", "0")
        .await;
    let said = till.text("#plain-result").await;
    assert!(
        said.starts_with(&format!("Возврат 500,00 ₸ по покупке № {payment} принят")),
        "{said}"
    );
    shot(&till, "cashier-refund-plain").await;
    wait_balance(&phone, before - 100_000).await;
    // More than is left: the cashier is told how much may go back, in the page's words.
    till.fill("#plain-payment-id", &payment).await;
    till.fill("#plain-amount", "5000").await;
    till.click("#plain-refund").await;
    till.click("#plain-yes").await;
    till.wait_attr("#plain-result", "data-status-code", "-99000005")
        .await;
    assert_eq!(
        till.text("#plain-result").await,
        "Можно вернуть не больше 1 000,00 ₸."
    );
    till.fill("#plain-payment-id", "").await;
    till.fill("#plain-amount", "").await;
    // An empty form asks for the purchase and the amount instead of refunding anything.
    let value = "return document.querySelector(arguments[0]).value;";
    assert_eq!(till.js(value, json!("#plain-amount")).await, json!(""));
    till.click("#plain-refund").await;
    assert_eq!(
        till.attribute("#plain-result", "data-status-code").await,
        None
    );
    let said = till.text("#plain-result").await;
    assert!(!said.is_empty() && !said.contains("принят"), "{said}");

    // With the customer: a return QR, which the wallet scans, so the PS knows who it is; then
    // the customer's purchases, the one chosen, refunded whole (what is left of it).
    till.click("#return-create").await;
    till.wait_shown("#return-qr").await;
    let token = till.wait_text("#return-token").await;
    till.wait_attr("#return-status", "data-status", "QrTokenCreated")
        .await;
    shot(&till, "cashier-return-qr").await;
    // The wallet still shows the payment's result: a new scan starts from `#again`.
    phone.click("#again").await;
    phone.fill("#token", &token).await;
    phone.click("#scan").await;
    till.wait_attr("#return-status", "data-status", "CustomerIdentityObtained")
        .await;
    let choose = format!("#purchases [data-payment-id=\"{payment}\"] button.choose");
    // The purchase's date as the PS wrote it (the operator's zone), not the browser's.
    let row = till
        .text(&format!("#purchases [data-payment-id=\"{payment}\"] span"))
        .await;
    let date = row.rsplit(" · ").next().unwrap_or_default().to_owned();
    let digits: Vec<bool> = date.chars().map(|c| c.is_ascii_digit()).collect();
    assert!(
        date.len() == 16
            && date.chars().nth(2) == Some('.')
            && digits.iter().filter(|d| **d).count() == 12,
        "dd.mm.yyyy hh:mm: {row}"
    );
    till.click(&choose).await;
    till.wait_shown("#refund-amount").await;
    // What is left, grouped as amounts are shown: 1 500 paid, 500 refunded.
    let value = "return document.querySelector(arguments[0]).value;";
    assert_eq!(
        till.js(value, json!("#refund-amount")).await,
        json!("1 000,00")
    );
    shot(&till, "cashier-purchases").await;
    // More than is left is refused before the question, in the page's words.
    till.fill("#refund-amount", "2000").await;
    till.click("#refund").await;
    assert_eq!(
        till.text("#refund-result").await,
        "Можно вернуть не больше 1 000,00 ₸."
    );
    assert_eq!(till.js(shown, json!("#refund-yes")).await, json!(false));
    till.fill("#refund-amount", "1 000,00").await;
    till.click("#refund").await;
    let question = till.text("#refund-question").await;
    assert_eq!(
        question,
        format!("Вернуть 1 000,00 ₸ по покупке № {payment}?")
    );
    till.click("#refund-yes").await;
    till.wait_attr("#refund-result", "data-status-code", "0")
        .await;
    shot(&till, "cashier-refunded").await;
    // The return QR served its refund: the form and the customer's purchases are gone, nothing
    // to press twice, and the QR says it is used.
    assert_eq!(till.js(shown, json!("#refund")).await, json!(false));
    assert_eq!(till.js(shown, json!("#purchases")).await, json!(false));
    let status = till.text("#return-status").await;
    assert!(status.starts_with("QR возврата использован"), "{status}");
    // The page's own words follow a change of language.
    till.click("#locale-kk").await;
    let said = till.text("#refund-result").await;
    assert!(
        said.starts_with(&format!(
            "№ {payment} сатып алу бойынша 1 000,00 ₸ қайтару қабылданды"
        )),
        "{said}"
    );

    wait_balance(&phone, before).await;
    let notice = phone.wait_text("#notifications li").await;
    assert!(notice.contains(" ₸"), "a refund's notification: {notice}");
    shot(&phone, "wallet-refunded").await;
    till.close().await;
    phone.close().await;
}

/// The operator's console, signed in with the admin token.
pub(crate) async fn operator(sandbox: &Sandbox, driver: &Driver) -> Browser {
    let desk = driver.browser(DESK).await;
    desk.goto(&sandbox.console).await;
    desk.fill("#token", ADMIN_TOKEN).await;
    desk.click("#sign-in").await;
    desk.wait_shown("#sign-out").await;
    desk.wait_shown("#today").await;
    desk
}

/// The `#refunds` row of the refund whose `.last-error` is not empty, once one is: its id.
async fn failed_refund_row(desk: &Browser) -> String {
    let probe = || async {
        let id = desk
            .js(
                "for (const row of document.querySelectorAll('#refunds tr[data-refund-id]')) { \
                   const e = row.querySelector('.last-error'); \
                   if (e && e.innerText.trim()) return row.dataset.refundId; } \
                 location.reload(); return null;",
                Value::Null,
            )
            .await;
        id.as_str().map(str::to_owned)
    };
    let (reached, found) = poll(probe, Option::is_some).await;
    assert!(reached, "no refund shows a delivery error");
    found.unwrap_or_default()
}

/// How far the PS's own next delivery attempt must be for the console's retry to be the one
/// that delivers; the PS's backoff is longer than this after a few attempts.
const RETRY_MARGIN_S: i64 = 8;

/// Seconds until the PS's next own attempt to deliver refund `id` (the admin API); none
/// planned counts as never.
async fn next_attempt_in_s(sandbox: &Sandbox, id: i64) -> i64 {
    let (_, page) = sandbox
        .admin(reqwest::Method::GET, "/admin/v1/refunds", &Value::Null)
        .await;
    let refund = page["refunds"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["refund_id"] == id).cloned())
        .unwrap_or(Value::Null);
    refund["next_attempt_at"]
        .as_str()
        .and_then(|at| at.parse::<Timestamp>().ok())
        .map_or(i64::MAX, |at| at.duration_since(Timestamp::now()).as_secs())
}

#[tokio::test]
async fn the_operator_sees_the_days_payments_and_refunds_and_retries_a_failed_delivery() {
    let sandbox = Sandbox::start();
    let device = sandbox.device("BROWSER-OPERATOR").await;
    let (qr, payment) = sandbox.dynamic_qr(&device, 1500).await;
    sandbox.pay("C1", &qr).await;
    let delivered = sandbox.refund(&device, payment, 500).await;
    assert_eq!(delivered["StatusCode"], 0, "{delivered}");
    // demobank is out of reach (its refund URL a port nothing listens on) while the next refund
    // is placed: its delivery fails and waits for a retry.
    let refunds = format!("{}/refund", sandbox.bank);
    let closed = format!("http://127.0.0.1:{}/refund", free_port());
    sandbox.set_bank_refund_url(&closed).await;
    let stuck = sandbox.refund(&device, payment, 300).await;
    assert!(stuck["StatusCode"].is_i64(), "{stuck}");

    let driver = Driver::start().await;
    let desk = operator(&sandbox, &driver).await;
    let today = desk.text("#today").await;
    assert!(today.contains("1 500,00 ₸"), "today's payments: {today}");
    let rows = desk
        .js(
            "return document.querySelectorAll('#refunds tr[data-refund-id]').length;",
            Value::Null,
        )
        .await;
    assert_eq!(rows, 2, "both refunds are listed");
    let failed = failed_refund_row(&desk).await;
    let row = format!("#refunds tr[data-refund-id=\"{failed}\"]");
    shot(&desk, "operator-undelivered").await;
    accessible(&desk, "operator-undelivered").await;

    // The operator fixes the MPP's address, then retries from the console: at a moment when
    // the PS's own next attempt is not about to come, so that it is the button that delivers.
    let id: i64 = failed.parse().expect("a refund id");
    let quiet = poll(
        || next_attempt_in_s(&sandbox, id),
        |secs| *secs >= RETRY_MARGIN_S,
    )
    .await;
    assert!(
        quiet.0,
        "refund {id}'s next attempt is always due: {}",
        quiet.1
    );
    sandbox.set_bank_refund_url(&refunds).await;
    desk.click(&format!("{row} button.retry")).await;
    let status = format!("{row} .status");
    let completed = wait_until(|| async {
        if desk.attribute(&status, "data-status").await.as_deref() == Some("completed") {
            return true;
        }
        desk.js("location.reload();", Value::Null).await;
        false
    })
    .await;
    assert!(completed, "the retried refund {failed} was not delivered");
    assert_eq!(desk.text(&format!("{row} .last-error")).await, "");
    shot(&desk, "operator-retried").await;
    let account = sandbox.account("C1").await;
    assert_eq!(
        account["balance_tiyn"],
        5_000_000 - 150_000 + 80_000,
        "{account}"
    );

    // A purchase and its timeline.
    desk.fill("#search", &payment.to_string()).await;
    desk.click("#search-go").await;
    desk.wait_shown("#purchase").await;
    for event in ["scan", "notify", "refund", "delivery"] {
        desk.wait_shown(&format!("#timeline li[data-event=\"{event}\"]"))
            .await;
    }
    shot(&desk, "operator-purchase").await;
    accessible(&desk, "operator-purchase").await;

    // Suspending a merchant asks once more; going back leaves it as it was.
    let cafe = "#organizations tr[data-bin=\"990340001234\"]";
    desk.goto(&sandbox.console).await;
    desk.wait_shown(cafe).await;
    desk.click(&format!("{cafe} button[value=\"suspended\"]"))
        .await;
    desk.wait_shown("#question").await;
    shot(&desk, "operator-confirm-suspend").await;
    accessible(&desk, "operator-confirm-suspend").await;
    // The focus is on the question: an Enter pressed twice or held answers nothing.
    assert_eq!(
        desk.js("return document.activeElement.id;", json!(null))
            .await,
        json!("question")
    );
    desk.active_element()
        .await
        .expect("the focused element")
        .send_keys("\u{E007}")
        .await
        .expect("Enter");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    desk.wait_shown("#question").await;
    desk.click("#back").await;
    desk.wait_attr(cafe, "data-status", "active").await;
    desk.click(&format!("{cafe} button[value=\"suspended\"]"))
        .await;
    desk.wait_shown("#confirm").await;
    desk.click("#confirm").await;
    desk.wait_attr(cafe, "data-status", "suspended").await;
    // Reopening asks nothing.
    desk.click(&format!("{cafe} button[value=\"active\"]"))
        .await;
    desk.wait_attr(cafe, "data-status", "active").await;
    desk.close().await;
}

/// The Almaty date of yesterday and an instant at its noon. In the first minutes of a day,
/// before yesterday's register can be made (from 00:05, a minute more for the test's own time),
/// the day before.
fn yesterday() -> (String, Timestamp) {
    let almaty = tolem_wire::time::zone("Asia/Almaty").expect("bundled");
    let settled = Timestamp::now() - jiff::SignedDuration::from_mins(6);
    let today = settled.to_zoned_datetime(almaty.clone()).date();
    let day = today.yesterday().expect("a day before");
    let noon = day
        .at(12, 0, 0, 0)
        .to_zoned_datetime(almaty)
        .expect("noon exists")
        .timestamp();
    (day.to_string(), noon)
}

#[tokio::test]
async fn the_mpp_downloads_yesterdays_register_from_its_cabinet() {
    // Yesterday's purchase: the sandbox's books made first by the in-process PS on a clock set
    // to yesterday's noon; then the real sandbox runs on them, on the real clock.
    let (day, noon) = yesterday();
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = crate::system::test_config(&dir.path().join("sandbox.db"));
    config.sandbox = true;
    let mut books =
        crate::system::TestPs::start_with(config, Arc::new(ManualClock::new(noon))).await;
    let device = books.device("BROWSER-REGISTER").await;
    let payment = books.paid(&device, 700, "C1").await;
    books.shutdown().await;
    drop(books);
    let sandbox = Sandbox::start_in(dir);

    let driver = Driver::start().await;
    let desk = driver.browser(DESK).await;
    desk.goto(&sandbox.cabinet).await;
    desk.fill("#token", CABINET_TOKEN).await;
    desk.click("#sign-in").await;
    desk.wait_shown("#sign-out").await;
    let link = format!("#registers a.register[data-kind=\"daily\"][data-period=\"{day}\"]");
    desk.wait_shown(&link).await;
    shot(&desk, "cabinet-registers").await;
    accessible(&desk, "the cabinet").await;
    let href = desk
        .js(
            "return document.querySelector(arguments[0]).href;",
            Value::String(link.clone()),
        )
        .await;
    let href = href.as_str().expect("a link").to_owned();
    // The file as the browser would download it: the link, with the session's cookie.
    let answer = sandbox
        .http
        .get(&href)
        .header("cookie", desk.cookie_header().await)
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(answer.status(), 200, "{href}");
    let bytes = answer.bytes().await.expect("the file").to_vec();
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("an xlsx");
    let sheet = book
        .worksheet_range("Реестр")
        .expect("the register's sheet");
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|row| row.iter().map(Data::to_string).collect())
        .collect();
    // Customer, PS id and amount (columns A, C, F; docs/registers.md), and the totals.
    let id = payment.to_string();
    assert!(
        rows.iter()
            .any(|r| r.len() > 5 && r[0] == "C1" && r[2] == id && r[5] == "700"),
        "yesterday's purchase {id} in {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.first().is_some_and(|c| c.starts_with("Итого"))),
        "{rows:?}"
    );
    desk.close().await;
}

/// What keeps a screen from being used with a keyboard, a screen reader or weak eyes, as far as
/// a script can see (issue 14 item 5): a control with no accessible name, an image without
/// `alt`, a page without `lang` or title, and text whose contrast with its background is under
/// WCAG AA (4.5:1; 3:1 for large text). Fails naming each problem.
pub(crate) async fn accessible(page: &Browser, name: &str) {
    let problems = page
        .js(
            r#"
            const out = [];
            const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
            const label = e => (e.getAttribute('aria-label') || '').trim()
                || (e.labels && [...e.labels].map(l => l.textContent).join(' ').trim())
                || (e.getAttribute('aria-labelledby') || '').split(' ').map(id => document.getElementById(id))
                     .filter(Boolean).map(l => l.textContent).join(' ').trim()
                || (e.getAttribute('title') || '').trim();
            const what = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : '');
            if (!document.documentElement.lang) out.push('<html> has no lang');
            if (!document.title.trim()) out.push('no <title>');
            for (const e of document.querySelectorAll('input, select, textarea')) {
                if (e.type === 'hidden' || e.type === 'submit' || !shown(e)) continue;
                if (!label(e)) out.push(what(e) + ' has no label');
            }
            for (const e of document.querySelectorAll('button, a[href], input[type=submit]')) {
                if (!shown(e)) continue;
                const text = (e.textContent || e.value || '').trim() || label(e);
                if (!text) out.push(what(e) + ' has no text');
            }
            for (const e of document.querySelectorAll('img')) {
                if (shown(e) && !e.hasAttribute('alt')) out.push(what(e) + ' has no alt');
            }
            const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
            const lum = ([r, g, b]) => {
                const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
            };
            const background = e => {
                for (let n = e; n; n = n.parentElement) {
                    const c = rgb(getComputedStyle(n).backgroundColor);
                    if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
                }
                return [255, 255, 255];
            };
            for (const e of document.querySelectorAll('body *')) {
                if (!shown(e)) continue;
                const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
                if (!own) continue;
                const style = getComputedStyle(e);
                if (e.closest('[disabled], [aria-disabled=true]')) continue;
                const fg = rgb(style.color), bg = background(e);
                const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
                const ratio = (a + 0.05) / (b + 0.05);
                const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
                const large = size >= 24 || (bold && size >= 18.66);
                if (ratio < (large ? 3 : 4.5)) out.push(what(e) + ' contrast ' + ratio.toFixed(2));
            }
            return out;
            "#,
            Value::Null,
        )
        .await;
    let problems: Vec<String> = serde_json::from_value(problems).expect("a list");
    assert!(problems.is_empty(), "{name}: {problems:#?}");
}

/// Switches a screen to Kazakh: `<html lang>` and the page's words change, and the choice
/// stays after a reload.
async fn kazakh(page: &Browser, name: &str) {
    page.wait_shown("#locale-kk").await;
    assert_eq!(page.lang().await, "ru", "{name} opens in Russian");
    accessible(page, name).await;
    let russian = page.text("body").await;
    page.click("#locale-kk").await;
    let switched = wait_until(|| async { page.lang().await == "kk" }).await;
    assert!(switched, "{name}: <html lang> stayed {}", page.lang().await);
    let kazakh = page.text("body").await;
    assert_ne!(russian, kazakh, "{name}: the words changed");
    accessible(page, &format!("{name} in Kazakh")).await;
    shot(page, &format!("{name}-kk")).await;
    page.js("location.reload();", Value::Null).await;
    page.wait_shown("#locale-ru").await;
    assert_eq!(page.lang().await, "kk", "{name} remembers Kazakh");
    page.click("#locale-ru").await;
    let back = wait_until(|| async { page.lang().await == "ru" }).await;
    assert!(back, "{name}: back to Russian");
}

#[tokio::test]
async fn every_screen_switches_between_russian_and_kazakh() {
    let sandbox = Sandbox::start();
    let driver = Driver::start().await;
    let till = driver.browser(DESK).await;
    till.goto(&sandbox.pos).await;
    shot(&till, "cashier-sign-in").await;
    kazakh(&till, "cashier").await;
    let phone = driver.browser(PHONE).await;
    phone.goto(&sandbox.wallet).await;
    shot(&phone, "wallet-sign-in").await;
    kazakh(&phone, "wallet").await;
    let desk = driver.browser(DESK).await;
    desk.goto(&sandbox.console).await;
    shot(&desk, "console-sign-in").await;
    kazakh(&desk, "console").await;
    // `?locale=kk` works without the switch.
    let fresh = driver.browser(DESK).await;
    fresh.goto(&format!("{}?locale=kk", sandbox.pos)).await;
    fresh.wait_shown("#locale-ru").await;
    assert_eq!(fresh.lang().await, "kk");
    for page in [till, phone, desk, fresh] {
        page.close().await;
    }
}
