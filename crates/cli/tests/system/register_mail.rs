//! Registers e-mailed to a real SMTP server on working days: exactly one e-mail per register,
//! across restarts, refusals and downtime, on the days DECISIONS 25 says.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::eventually;
use crate::registers::{Scene, check_xlsx, expected, local, paid_by};
use crate::smtp::{Mail, SmtpServer};

const BANK_EMAIL: &str = "registers@demobank.example";
const WALLET_EMAIL: &str = "registers@demowallet.example";

pub(crate) async fn scene_with_mail(at: &str, smtp: &SmtpServer) -> Scene {
    scene_with_mail_and(at, smtp, |_| {}).await
}

/// [`scene_with_mail`] with more settings changed after its own.
async fn scene_with_mail_and(
    at: &str,
    smtp: &SmtpServer,
    change: impl FnOnce(&mut tolem_ps::Config),
) -> Scene {
    let port = smtp.port;
    Scene::start(at, move |c| {
        let r = &mut c.registers;
        r.smtp_host = "127.0.0.1".to_owned();
        r.smtp_port = port;
        r.from = "Tolem PS <registers@ps.tolem.test>".to_owned();
        r.poll_interval_ms = 20;
        r.retry_delay_ms_initial = 1_000;
        r.retry_delay_ms_max = 4_000;
        r.smtp_timeout_ms = 2_000;
        for mpp in &mut c.catalog.mpps {
            if mpp.caller_name == "demowallet" {
                mpp.register_email = Some(WALLET_EMAIL.to_owned());
            }
        }
        change(c);
    })
    .await
}

/// The e-mails received, by (recipient, register) from their attachment's name.
fn by_register(mails: &[Mail]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for mail in mails {
        let (name, _) = mail.attachment();
        *seen.entry(name).or_insert(0) += 1;
    }
    seen
}

fn names(list: &[&str]) -> BTreeMap<String, usize> {
    list.iter().map(|n| ((*n).to_owned(), 1)).collect()
}

/// Waits (in real time) until the register scheduler has run once: e-mail starts with the next
/// delivery day once the scheduler has seen this one.
pub(crate) async fn scheduler_has_run(scene: &Scene) {
    eventually("the register scheduler has run", || async {
        let last = scene.ps.app.store.register_last_run().await;
        last.expect("a read").is_some()
    })
    .await;
}

/// Waits (in real time; the clock stays) until `count` e-mails arrived, then a little longer to
/// see that no more come.
pub(crate) async fn expect_mails(smtp: &SmtpServer, count: usize) -> Vec<Mail> {
    eventually(&format!("{count} e-mails arrive"), || async {
        smtp.mails().len() >= count
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), count, "{:?}", by_register(&mails));
    mails
}

#[tokio::test]
async fn each_register_is_mailed_once_across_refusals_restarts_and_downtime() {
    let smtp = SmtpServer::start().await;
    // Thursday 26 November 2026, after the day's send time.
    let scene = scene_with_mail("2026-11-26T10:00:00", &smtp).await;
    let device = scene.ps.device("POS-1").await;
    scene.ps.paid(&device, 1500, "C1").await;
    scene.ps.paid(&device, 20, "C2").await;
    paid_by(&scene.ps, &device, "demowallet", 300, "W1").await;
    // E-mail was switched on after today's send time: today's delivery (Wednesday's registers)
    // is not made; delivery starts tomorrow.
    scene.set_clock("2026-11-26T12:00:00");
    expect_mails(&smtp, 0).await;
    // Friday 09:00: Thursday's registers; the relay refuses the first attempt once.
    // Friday 09:00: Thursday's registers are due, but the relay refuses them for now.
    smtp.refuse_next(usize::MAX);
    scene.set_clock("2026-11-27T09:00:00");
    eventually("both registers are tried", || async { smtp.refused() >= 2 }).await;
    assert_eq!(smtp.refused(), 2, "each register tried once");
    // Not lost across a restart: once the relay takes them, each is sent once.
    let scene = scene.restart().await;
    smtp.refuse_next(0);
    expect_mails(&smtp, 0).await;
    scene.set_clock("2026-11-27T09:00:05"); // past the retry delay
    let mails = expect_mails(&smtp, 2).await;
    assert_eq!(
        by_register(&mails),
        names(&[
            "demobank-daily-2026-11-26.xlsx",
            "demowallet-daily-2026-11-26.xlsx"
        ])
    );
    let bank = mails
        .iter()
        .find(|m| m.to.iter().any(|to| to.contains(BANK_EMAIL)))
        .expect("demobank's e-mail");
    assert!(bank.from.contains("registers@ps.tolem.test"));
    assert_eq!(
        bank.message_id(),
        "register.demobank.daily.2026-11-26@ps.tolem.test"
    );
    let subject = bank.parsed().subject().expect("a subject").to_owned();
    assert!(
        subject.contains("Demo Bank") && subject.contains("26.11.2026"),
        "{subject}"
    );
    // Written as people write dates and money, in both languages.
    let text = bank
        .parsed()
        .body_text(0)
        .expect("a text part")
        .into_owned();
    assert!(
        text.contains("Ежедневный реестр операций за 26.11.2026.")
            && text.contains("Күнделікті операциялар тізілімі: 26.11.2026.")
            && text.contains(",00 ₸"),
        "{text}"
    );
    let (_, xlsx) = bank.attachment();
    let want = expected(
        &scene.db(),
        "demobank",
        local("2026-11-26T00:00:00"),
        local("2026-11-27T00:00:00"),
        false,
    );
    assert_eq!(want.len(), 2);
    check_xlsx(xlsx, &want);
    // A restart on the same day sends nothing again.
    let scene = scene.restart().await;
    scene.set_clock("2026-11-27T15:00:00");
    expect_mails(&smtp, 2).await;
    // Down over the weekend and Monday; back on Tuesday 1 December: Monday's registers (Friday,
    // Saturday, Sunday) and Tuesday's (Monday, and November's monthly) are caught up.
    let mut scene = scene;
    scene.ps.shutdown().await;
    scene.set_clock("2026-12-01T10:00:00");
    let scene = scene.restart().await;
    let mails = expect_mails(&smtp, 12).await;
    let mut want = vec![];
    for mpp in ["demobank", "demowallet"] {
        for register in [
            "daily-2026-11-26",
            "daily-2026-11-27",
            "daily-2026-11-28",
            "daily-2026-11-29",
            "daily-2026-11-30",
            "monthly-2026-11",
        ] {
            want.push(format!("{mpp}-{register}.xlsx"));
        }
    }
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(by_register(&mails), names(&want));
    let views = scene
        .ps
        .app
        .store
        .register_deliveries(None, 100)
        .await
        .expect("deliveries");
    assert_eq!(views.len(), 12);
    assert!(views.iter().all(|v| v.sent_at.is_some()));
}

#[tokio::test]
async fn mondays_deliver_the_weekend_and_holidays_are_skipped() {
    let smtp = SmtpServer::start().await;
    // Friday 11 December 2026; Wednesday 16 December is Independence Day.
    let scene = scene_with_mail("2026-12-11T10:00:00", &smtp).await;
    let bank_only = |mails: &[Mail]| {
        let list: Vec<Mail> = mails
            .iter()
            .filter(|m| m.to.iter().any(|to| to.contains(BANK_EMAIL)))
            .cloned()
            .collect();
        by_register(&list).into_keys().collect::<Vec<_>>()
    };
    scene.set_clock("2026-12-12T09:30:00"); // Saturday: nothing
    expect_mails(&smtp, 0).await;
    scene.set_clock("2026-12-14T08:59:00"); // Monday before the send time: nothing
    expect_mails(&smtp, 0).await;
    scene.set_clock("2026-12-14T09:00:00");
    let mails = expect_mails(&smtp, 6).await;
    assert_eq!(
        bank_only(&mails),
        [
            "demobank-daily-2026-12-11.xlsx",
            "demobank-daily-2026-12-12.xlsx",
            "demobank-daily-2026-12-13.xlsx"
        ]
    );
    scene.set_clock("2026-12-15T09:00:00");
    expect_mails(&smtp, 8).await;
    scene.set_clock("2026-12-16T09:00:00"); // a holiday: nothing
    expect_mails(&smtp, 8).await;
    scene.set_clock("2026-12-17T09:00:00");
    let mails = expect_mails(&smtp, 12).await;
    let bank = bank_only(&mails);
    assert_eq!(
        &bank[bank.len() - 2..],
        [
            "demobank-daily-2026-12-15.xlsx",
            "demobank-daily-2026-12-16.xlsx"
        ]
    );
}

#[tokio::test]
async fn after_downtime_over_a_holiday_nothing_goes_out_until_the_next_working_day() {
    let smtp = SmtpServer::start().await;
    // Friday 11 December 2026; Wednesday 16 December is Independence Day.
    let scene = scene_with_mail("2026-12-11T10:00:00", &smtp).await;
    scheduler_has_run(&scene).await;
    // Monday's registers (Friday, Saturday, Sunday) are refused for now.
    smtp.refuse_next(usize::MAX);
    scene.set_clock("2026-12-14T09:00:00");
    eventually("the six registers are tried", || async {
        smtp.refused() >= 6
    })
    .await;
    assert_eq!(smtp.refused(), 6, "each register tried once");
    // Down through Tuesday (its registers never queued); back on the holiday, with the relay
    // taking mail again: neither the retries nor the catch-up go out on a day off.
    let mut scene = scene;
    scene.ps.shutdown().await;
    smtp.refuse_next(0);
    scene.set_clock("2026-12-16T12:00:00");
    let scene = scene.restart().await;
    expect_mails(&smtp, 0).await;
    scene.set_clock("2026-12-17T08:59:00"); // a working day, before the send time
    expect_mails(&smtp, 0).await;
    let queued = scene
        .ps
        .app
        .store
        .register_deliveries(None, 100)
        .await
        .expect("deliveries");
    assert_eq!(queued.len(), 6, "only Monday's, queued before the downtime");
    // Thursday 09:00: everything at once, each register once.
    scene.set_clock("2026-12-17T09:00:00");
    let mails = expect_mails(&smtp, 12).await;
    let mut want = vec![];
    for mpp in ["demobank", "demowallet"] {
        for day in [11, 12, 13, 14, 15, 16] {
            want.push(format!("{mpp}-daily-2026-12-{day}.xlsx"));
        }
    }
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(by_register(&mails), names(&want));
}

/// GETs an admin download: (status, bytes).
async fn admin_file(scene: &Scene, path: &str) -> (u16, Vec<u8>) {
    let resp = scene
        .ps
        .http
        .get(format!("{}/admin/v1/registers/{path}", scene.ps.url))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("the PS answers");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("a body").to_vec())
}

#[tokio::test]
async fn the_operator_downloads_any_register_and_sends_one_again_under_a_message_id_of_its_own() {
    let smtp = SmtpServer::start().await;
    let scene = scene_with_mail("2026-11-26T10:00:00", &smtp).await;
    let device = scene.ps.device("POS-1").await;
    scene.ps.paid(&device, 1500, "C1").await;
    scheduler_has_run(&scene).await;
    scene.set_clock("2026-11-27T09:00:00");
    let mails = expect_mails(&smtp, 2).await;
    let first = mails
        .iter()
        .find(|m| m.to.iter().any(|to| to.contains(BANK_EMAIL)))
        .expect("demobank's e-mail")
        .clone();
    let (_, mailed) = first.attachment();

    // The operator's download is the e-mailed file, byte for byte; the CSV too is there.
    let (status, file) = admin_file(&scene, "demobank/daily/2026-11-26.xlsx").await;
    assert_eq!(status, 200);
    assert_eq!(file, mailed);
    let (status, csv) = admin_file(&scene, "demobank/daily/2026-11-26.csv").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&csv).contains("15.00"));
    let (status, _) = admin_file(&scene, "nobank/daily/2026-11-26.xlsx").await;
    assert_eq!(status, 404);

    // Sent again: a second e-mail, the same file, its own Message-ID (a receiver drops a copy of
    // one it has), and the list says it was the second sending.
    let path = "/admin/v1/registers/demobank/daily/2026-11-26/send";
    let (status, answer) = scene.ps.admin("POST", path, &serde_json::Value::Null).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sending"], 2, "{answer}");
    assert_eq!(answer["state"], "queued", "{answer}");
    let mails = expect_mails(&smtp, 3).await;
    let again = &mails[2];
    assert!(again.to.iter().any(|to| to.contains(BANK_EMAIL)));
    assert_eq!(again.attachment(), first.attachment());
    assert_eq!(
        again.message_id(),
        "register.demobank.daily.2026-11-26.2@ps.tolem.test"
    );
    let (_, list) = scene
        .ps
        .admin("GET", "/admin/v1/registers", &serde_json::Value::Null)
        .await;
    let row = list["registers"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["mpp"] == "demobank" && r["period"] == "2026-11-26")
        .expect("the row")
        .clone();
    assert_eq!(row["sendings"], 2, "{row}");
    assert!(row["sent_at"].is_string(), "{row}");

    // The same request again, naming the sending it saw: the register was asked again since,
    // so nothing more is sent (a retried request sends one e-mail).
    let (status, answer) = scene
        .ps
        .admin("POST", path, &serde_json::json!({"sending": 1}))
        .await;
    assert_eq!(status, 409, "{answer}");
    // Two operators at once, each naming the sending they saw: one more e-mail, not two.
    let saw_two = serde_json::json!({"sending": 2});
    let (one, two) = tokio::join!(
        scene.ps.admin("POST", path, &saw_two),
        scene.ps.admin("POST", path, &saw_two)
    );
    let mut statuses = [one.0, two.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{one:?} {two:?}");
    let mails = expect_mails(&smtp, 4).await;
    assert_eq!(
        mails[3].message_id(),
        "register.demobank.daily.2026-11-26.3@ps.tolem.test"
    );
    // Without naming one, two at once still make one sending: the second finds it waiting.
    let (one, two) = tokio::join!(
        scene.ps.admin("POST", path, &serde_json::Value::Null),
        scene.ps.admin("POST", path, &serde_json::Value::Null)
    );
    let mut states = [one.1["state"].clone(), two.1["state"].clone()];
    states.sort_by_key(|s| s.to_string());
    assert_eq!(states, ["queued", "waiting"], "{one:?} {two:?}");
    expect_mails(&smtp, 5).await;

    // A register never queued (a catch-up left it out, say) is queued as its first sending.
    let path = "/admin/v1/registers/demowallet/daily/2026-11-20/send";
    let (status, answer) = scene.ps.admin("POST", path, &serde_json::Value::Null).await;
    assert_eq!(
        (status, answer["sending"].clone()),
        (200, 1.into()),
        "{answer}"
    );
    let mails = expect_mails(&smtp, 6).await;
    assert_eq!(
        mails[5].message_id(),
        "register.demowallet.daily.2026-11-20@ps.tolem.test"
    );

    // Refusals change nothing: a period not over, an MPP the catalog lacks, no such kind, an
    // MPP without an address.
    for (path, want) in [
        ("demobank/daily/2026-11-27/send", 409),
        ("nobank/daily/2026-11-26/send", 404),
        ("demobank/weekly/2026-11-26/send", 404),
        ("demobank/daily/26.11.2026/send", 400),
    ] {
        let (status, answer) = scene
            .ps
            .admin(
                "POST",
                &format!("/admin/v1/registers/{path}"),
                &serde_json::Value::Null,
            )
            .await;
        assert_eq!(status, want, "{path}: {answer}");
        assert!(answer["error"].is_string(), "{path}: {answer}");
    }
    let mut mpp = scene
        .ps
        .admin("GET", "/admin/v1/mpps/demowallet", &serde_json::Value::Null)
        .await
        .1;
    mpp["register_email"] = serde_json::Value::Null;
    let (status, answer) = scene
        .ps
        .admin("PUT", "/admin/v1/mpps/demowallet", &mpp)
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = scene
        .ps
        .admin(
            "POST",
            "/admin/v1/registers/demowallet/daily/2026-11-26/send",
            &serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    expect_mails(&smtp, 6).await;
}

#[tokio::test]
async fn a_register_too_large_to_attach_links_to_the_published_cabinet_or_says_to_ask() {
    let smtp = SmtpServer::start().await;
    let scene = scene_with_mail_and("2026-11-26T10:00:00", &smtp, |c| {
        let r = &mut c.registers;
        r.email_attachment_bytes_max = 1;
        r.cabinet_url = "https://cabinet.ps.tolem.test:8443/".to_owned();
        // demowallet has an address and no cabinet token: no link it could follow.
        r.cabinet_tokens.remove("demowallet");
    })
    .await;
    scheduler_has_run(&scene).await;
    scene.set_clock("2026-11-27T09:00:00");
    let mails = expect_mails(&smtp, 2).await;
    let text_to = |address: &str| {
        let mail = mails
            .iter()
            .find(|m| m.to.iter().any(|to| to.contains(address)))
            .expect("the e-mail");
        assert_eq!(mail.parsed().attachments().count(), 0);
        mail.parsed().body_text(0).expect("a text").into_owned()
    };
    let bank = text_to(BANK_EMAIL);
    assert!(
        bank.contains(
            "https://cabinet.ps.tolem.test:8443/console/cabinet/registers/daily/2026-11-26.xlsx"
        ),
        "{bank}"
    );
    let wallet = text_to(WALLET_EMAIL);
    assert!(!wallet.contains("http"), "{wallet}");
    assert!(
        wallet.contains("запросите его у платёжной системы"),
        "{wallet}"
    );
}

/// While e-mails are due, the scheduler claims the next at once: a catch-up of twelve goes out
/// together, where one per poll interval (ten minutes here) would take two hours.
#[tokio::test]
async fn a_catch_up_goes_out_back_to_back_not_one_per_poll() {
    let smtp = SmtpServer::start().await;
    let scene = scene_with_mail_and("2026-11-26T10:00:00", &smtp, |c| {
        c.registers.poll_interval_ms = 600_000;
    })
    .await;
    scheduler_has_run(&scene).await;
    // Down from Thursday to Tuesday 1 December: six registers of each MPP are due at the start.
    let mut scene = scene;
    scene.ps.shutdown().await;
    scene.set_clock("2026-12-01T10:00:00");
    let _scene = scene.restart().await;
    expect_mails(&smtp, 12).await;
}

#[tokio::test]
async fn a_server_that_stops_answering_is_a_timeout_and_e_mail_goes_on() {
    // A server that takes the connection and never says a word: the conversation's bound ends
    // the attempt, kept as its last error and counted as a timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("an address").port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let holding = held.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = silent.accept().await {
            holding.lock().expect("lock").push(stream);
        }
    });
    let smtp = SmtpServer::start().await;
    let scene = scene_with_mail_and("2026-11-26T10:00:00", &smtp, |c| {
        c.registers.smtp_port = silent_port;
    })
    .await;
    scheduler_has_run(&scene).await;
    scene.set_clock("2026-11-27T09:00:00");
    eventually("an attempt ends as a timeout", || async {
        let (_, list) = scene
            .ps
            .admin("GET", "/admin/v1/registers", &serde_json::Value::Null)
            .await;
        list["registers"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("timeout"))
            })
        })
    })
    .await;
    assert!(!held.lock().expect("lock").is_empty(), "the PS connected");
    let (_, metrics) = scene
        .ps
        .admin("GET", "/admin/v1/metrics", &serde_json::Value::Null)
        .await;
    let metrics = metrics.as_str().expect("Prometheus text");
    let timeouts = metrics.lines().find_map(|line| {
        line.strip_prefix("tolem_register_email_failures_total{kind=\"timeout\"} ")
    });
    assert!(
        timeouts.is_some_and(|n| n != "0"),
        "counted as a timeout: {metrics}"
    );
}

#[tokio::test]
async fn a_clock_that_was_ahead_does_not_stop_the_registers_once_it_is_right() {
    let smtp = SmtpServer::start().await;
    let scene = scene_with_mail("2026-11-26T10:00:00", &smtp).await;
    scheduler_has_run(&scene).await;
    // The wall clock jumps two months ahead, past the days a catch-up sends: the scheduler
    // runs on that day, and Thursday's register is not among those it sends.
    scene.set_clock("2027-01-20T10:00:00");
    eventually("the scheduler ran on the day ahead", || async {
        let last = scene.ps.app.store.register_last_run().await;
        last.expect("a read").as_deref() == Some("2027-01-20")
    })
    .await;
    let thursday = |mails: &[Mail]| {
        mails
            .iter()
            .any(|m| m.attachment().0 == "demobank-daily-2026-11-26.xlsx")
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!thursday(&smtp.mails()));
    let early = smtp.mails().len();
    // The clock is put right: the next morning's registers still go out.
    scene.step_clock_back("2026-11-26T12:00:00");
    scene.set_clock("2026-11-27T09:00:00");
    eventually("Thursday's register goes out on Friday", || async {
        thursday(&smtp.mails())
    })
    .await;
    assert!(smtp.mails().len() > early);
    // The run is recorded on the right day again, so later catch-ups count from it.
    let last = scene.ps.app.store.register_last_run().await;
    assert_eq!(last.expect("a read").as_deref(), Some("2026-11-27"));
}
