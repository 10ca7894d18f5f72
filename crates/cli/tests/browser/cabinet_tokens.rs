//! The operator issues demobank a cabinet token on the participants page, sees it once, the
//! token opens the MPP's cabinet in another browser, and revoking it on the same page ends that
//! cabinet's session (docs/console.md, Participants).

use serde_json::{Value, json};

use crate::flows::{accessible, operator};
use crate::harness::*;

const ROW: &str = "#mpps tr[data-key=\"demobank\"]";

/// demobank's number of cabinet tokens as the participants' page shows it.
async fn token_count(desk: &Browser) -> usize {
    let cell = format!("{ROW} td.cabinet-tokens");
    let count = desk.wait_some_attr(&cell, "data-count").await;
    count.parse().expect("a count")
}

/// Submits, from the page shown, a form of `fields` to `action`: what a browser sends when a
/// form is submitted again (a double click, a resubmission).
async fn post_again(page: &Browser, action: &str, fields: &Value) {
    page.js(
        "const [action, fields] = arguments[0]; const f = document.createElement('form'); \
         f.method = 'post'; f.action = action; \
         for (const [name, value] of Object.entries(fields)) { \
           const i = document.createElement('input'); i.type = 'hidden'; \
           i.name = name; i.value = value; f.appendChild(i); } \
         document.body.appendChild(f); f.submit(); return true;",
        json!([action, fields]),
    )
    .await;
}

/// The fields of the form `css` on the page shown, by name.
async fn fields_of(page: &Browser, css: &str) -> Value {
    page.js(
        "const f = document.querySelector(arguments[0]); \
         return Object.fromEntries(new FormData(f).entries());",
        json!(css),
    )
    .await
}

#[tokio::test]
async fn the_operator_issues_a_cabinet_token_shown_once_and_revokes_it() {
    let sandbox = Sandbox::start();
    let driver = Driver::start().await;
    let desk = operator(&sandbox, &driver).await;
    let participants = format!("{}/console/operator/participants", sandbox.ps);
    desk.goto(&participants).await;
    let before = token_count(&desk).await;
    let columns = desk
        .js(
            "return [document.querySelectorAll('#mpps thead th').length, \
             document.querySelectorAll(arguments[0]).length];",
            json!(format!("{ROW} > td")),
        )
        .await;
    assert_eq!(
        columns[0], columns[1],
        "a cell under each heading: {columns}"
    );
    accessible(&desk, "operator-participants").await;

    // Issued and shown once, with the sentence that says so.
    let issue_form = format!("{ROW} td.cabinet-tokens > form");
    let action = desk
        .js(
            "return document.querySelector(arguments[0]).action;",
            json!(issue_form),
        )
        .await;
    let action = action.as_str().expect("the form's address").to_owned();
    let fields = fields_of(&desk, &issue_form).await;
    desk.click(&format!("{ROW} button.issue-token")).await;
    let token = desk.wait_text("#new-cabinet-token").await;
    assert!(
        token.len() == 48 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    let hash = desk.wait_some_attr("#new-cabinet-token", "data-hash").await;
    let card = desk.text(".card").await;
    assert!(
        card.contains("показан только сейчас") && card.contains("только его хеш"),
        "{card}"
    );
    assert_eq!(token_count(&desk).await, before + 1);
    let short = &hash[..12];
    let listed = desk
        .text(&format!("{ROW} li[data-hash=\"{hash}\"] code"))
        .await;
    assert_eq!(listed, format!("{short}…"));
    shot(&desk, "operator-cabinet-token").await;
    accessible(&desk, "operator-cabinet-token").await;

    // The same form again: no second token, said so.
    post_again(&desk, &action, &fields).await;
    desk.wait_shown("#error").await;
    assert_eq!(desk.text("#new-cabinet-token").await, "");
    assert_eq!(token_count(&desk).await, before + 1, "one token in all");

    // Without the session's CSRF token: refused, nothing issued.
    post_again(&desk, &action, &json!({"nonce": "without-csrf"})).await;
    desk.wait_shown("#message[data-status=\"403\"]").await;
    // A hash that is no token of the MPP: the admin API's refusal, shown in the page.
    let csrf = fields["csrf"].as_str().expect("the form's CSRF token");
    let unknown = format!("{action}/{}/revoke", "0".repeat(64));
    post_again(&desk, &unknown, &json!({"csrf": csrf, "confirm": "yes"})).await;
    let refused = desk.wait_text("#error").await;
    assert!(
        refused.contains("no cabinet token of this MPP"),
        "{refused}"
    );
    assert_eq!(token_count(&desk).await, before + 1, "nothing changed");

    // The token opens demobank's cabinet.
    let cabinet = driver.browser(DESK).await;
    cabinet.goto(&sandbox.cabinet).await;
    cabinet.fill("#token", &token).await;
    cabinet.click("#sign-in").await;
    cabinet.wait_shown("#sign-out").await;
    cabinet.wait_shown("#registers").await;
    let header = cabinet.text("header").await;
    assert!(header.contains("demobank"), "{header}");
    let cabinet_page = cabinet.here().await;

    // Its session is refused the operator's form, as every operator action is: back to its
    // own page, nothing issued.
    let csrf = cabinet
        .attribute(
            "form[action=\"/console/sign-out\"] input[name=csrf]",
            "value",
        )
        .await
        .expect("the session's CSRF token");
    // The page as it was is marked, so that its replacement is seen (the address stays).
    cabinet
        .js(
            "document.documentElement.dataset.before = '1';",
            Value::Null,
        )
        .await;
    let fields = json!({"csrf": csrf, "nonce": "from-the-cabinet"});
    post_again(&cabinet, &action, &fields).await;
    let home = wait_until(|| async {
        let fresh = cabinet
            .js(
                "return !document.documentElement.dataset.before;",
                Value::Null,
            )
            .await;
        fresh == json!(true) && cabinet.here().await == cabinet_page
    })
    .await;
    assert!(home, "the cabinet's post led to {}", cabinet.here().await);
    cabinet.wait_shown("#registers").await;
    desk.goto(&participants).await;
    assert_eq!(
        token_count(&desk).await,
        before + 1,
        "the cabinet issued none"
    );

    // Revoked (asked once more): the hash goes, and with it the cabinet's session.
    let revoke = format!("{ROW} li[data-hash=\"{hash}\"] button.revoke");
    desk.click(&revoke).await;
    desk.wait_shown("#question").await;
    let question = desk.text("#question").await;
    assert!(question.contains(short), "{question}");
    desk.click("#confirm").await;
    desk.wait_shown("#message.message").await;
    assert_eq!(token_count(&desk).await, before);
    assert_eq!(
        desk.text(&format!("{ROW} li[data-hash=\"{hash}\"]")).await,
        ""
    );

    cabinet.goto(&cabinet_page).await;
    cabinet.wait_shown("#token").await;
    assert_eq!(cabinet.text("#sign-out").await, "", "signed out");
    cabinet.fill("#token", &token).await;
    cabinet.click("#sign-in").await;
    cabinet.wait_shown("#error").await;
    cabinet.close().await;
    desk.close().await;
}
