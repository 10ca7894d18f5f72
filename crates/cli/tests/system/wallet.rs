//! The wallet (`tolem_mpp::wallet`, `tolem wallet`) against the real PS and the reference MPP,
//! both on port 0: the dialogue driven by scripted answers, QR pictures fetched from the PS, and
//! the binary itself run without a dialogue.

use std::collections::{BTreeMap, VecDeque};
use std::io::Cursor;
use std::process::Stdio;

use serde_json::json;
use tolem_mpp::wallet::qr::{self, image};
use tolem_mpp::wallet::{Decision, PayAnswers, PayOutcome, Prompt, Wallet, WalletError};
use tolem_wire::{Amount, Locale};

use crate::harness::*;
use crate::reference_mpp::{TestMpp, ps_and_mpp};

const C1_OPENING: i64 = 5_000_000;
const C2_OPENING: i64 = 1_000_000;

/// A customer who gives the answers of a script and remembers everything shown.
struct Script {
    answers: VecDeque<String>,
    shown: Vec<String>,
}

impl Script {
    fn new(answers: &[&str]) -> Script {
        Script {
            answers: answers.iter().map(|a| (*a).to_owned()).collect(),
            shown: Vec::new(),
        }
    }

    fn saw(&self, text: &str) -> bool {
        self.shown.iter().any(|line| line.contains(text))
    }

    fn screen(&self) -> String {
        self.shown.join("\n")
    }
}

impl Prompt for Script {
    fn say(&mut self, line: &str) {
        self.shown.push(line.to_owned());
    }

    fn ask(&mut self, question: &str) -> Option<String> {
        self.shown.push(question.to_owned());
        self.answers.pop_front()
    }
}

fn wallet(bank: &TestMpp, customer: &str, locale: Locale) -> Wallet {
    Wallet::new(&bank.url, customer, locale).expect("a valid MPP url")
}

fn paid_view(outcome: PayOutcome) -> tolem_mpp::flows::PaymentView {
    match outcome {
        PayOutcome::Finished(view) => view,
        other => panic!("expected a finished payment, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dynamic_qr_is_paid_after_the_customer_confirms() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 1500).await;
    let mut script = Script::new(&["д"]);
    let outcome = wallet(&bank, "C1", Locale::Ru)
        .pay(&mut script, &qr, &PayAnswers::default())
        .await
        .expect("paid");
    let view = paid_view(outcome);
    assert_eq!(view.status, "paid");
    let screen = script.screen();
    for shown in [
        "Продавец: Demo Coffee (Абай, 10) (MCC 5814)",
        "К оплате: 1 500,00 ₸",
        "Оплатить? (д — оплатить, н — назад):",
        "Оплачено: 1 500,00 ₸",
    ] {
        assert!(script.saw(shown), "{shown:?} not in\n{screen}");
    }
    // The PS's number of the purchase, which a refund names.
    assert!(script.saw(&format!("Покупка № {id}")), "{screen}");
    let receipt = view.receipt.expect("a receipt link");
    assert!(script.saw(&format!("Чек: {receipt}")), "{screen}");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    assert_eq!(bank.balance("C1").await, C1_OPENING - 150_000);
    let account = wallet(&bank, "C1", Locale::Ru)
        .account()
        .await
        .expect("the account");
    assert_eq!(
        tolem_mpp::wallet::account::balance_lines(Locale::Ru, &account),
        ["Айгерим (C1), баланс: 48 500,00 ₸"]
    );
    assert!(bank.balanced().await);
}

#[tokio::test]
async fn a_static_qr_asks_the_amount_until_it_is_whole_tenge() {
    let (_ps, bank) = ps_and_mpp().await;
    let mut script = Script::new(&["сто", "700,50", "700", "иә"]);
    let outcome = wallet(&bank, "C1", Locale::Kk)
        .pay(&mut script, STATIC_QR, &PayAnswers::default())
        .await
        .expect("paid");
    assert_eq!(paid_view(outcome).status, "paid");
    let screen = script.screen();
    assert_eq!(
        script
            .shown
            .iter()
            .filter(|l| *l == "Сома — нөлден үлкен бүтін теңге, мысалы 500 немесе 1 500.")
            .count(),
        2,
        "{screen}"
    );
    for shown in [
        "Сатушы: Demo Coffee (Абай, 10) (MCC 5814)",
        "Сома теңгемен (бүтін сан):",
        "Төлеуге: 700,00 ₸",
        "Төленді: 700,00 ₸",
        "Түбіртек: ",
    ] {
        assert!(script.saw(shown), "{shown:?} not in\n{screen}");
    }
    assert_eq!(bank.balance("C1").await, C1_OPENING - 70_000);
    // The same with the amount and the decision given in advance: nothing is asked.
    let mut silent = Script::new(&[]);
    let answers = PayAnswers {
        amount: Amount::from_tenge(250),
        decision: Some(Decision::Pay),
        ..PayAnswers::default()
    };
    wallet(&bank, "C1", Locale::Ru)
        .pay(&mut silent, STATIC_QR, &answers)
        .await
        .expect("paid");
    assert_eq!(bank.balance("C1").await, C1_OPENING - 70_000 - 25_000);
    assert!(bank.balanced().await);
}

#[tokio::test]
async fn a_custom_form_is_filled_choosing_an_option() {
    let (_ps, bank) = ps_and_mpp().await;
    let mut script = Script::new(&["777ABC02", "9", "2", "и"]);
    let outcome = wallet(&bank, "C2", Locale::Kk)
        .pay(&mut script, PARKING_QR, &PayAnswers::default())
        .await
        .expect("paid");
    assert_eq!(paid_view(outcome).status, "paid");
    let screen = script.screen();
    for shown in [
        "Сатушы: Demo Parking (MCC 7523)",
        "Қызмет: Тұрақ",
        "Мемлекеттік нөмір:",
        "  1) 1 сағат",
        "  2) 3 сағат",
        "  3) Тәулік — 24 сағатқа дейін",
        "Тұру уақыты — нөмірін таңдаңыз (1–3):",
        "Жауап түсініксіз",
        "Төлеуге: 800,00 ₸",
        "Төленді: 800,00 ₸",
    ] {
        assert!(script.saw(shown), "{shown:?} not in\n{screen}");
    }
    assert_eq!(bank.balance("C2").await, C2_OPENING - 80_000);
    // Flags instead of answers, in Russian: the option by its key.
    let mut silent = Script::new(&[]);
    let answers = PayAnswers {
        parameters: BTreeMap::from([(3932, "555XYZ01".to_owned()), (3933, "1h".to_owned())]),
        decision: Some(Decision::Pay),
        ..PayAnswers::default()
    };
    wallet(&bank, "C2", Locale::Ru)
        .pay(&mut silent, PARKING_QR, &answers)
        .await
        .expect("paid");
    assert!(silent.saw("Услуга: Парковка"), "{}", silent.screen());
    assert!(silent.saw("К оплате: 300,00 ₸"), "{}", silent.screen());
    assert_eq!(bank.balance("C2").await, C2_OPENING - 80_000 - 30_000);
    // A flag that fits no field, or no option, is refused before anything is paid.
    for (id, value) in [(1, "x"), (3933, "week")] {
        let answers = PayAnswers {
            parameters: BTreeMap::from([(id, value.to_owned())]),
            decision: Some(Decision::Pay),
            ..PayAnswers::default()
        };
        let refused = wallet(&bank, "C2", Locale::Ru)
            .pay(&mut Script::new(&["A1"]), PARKING_QR, &answers)
            .await;
        assert!(
            matches!(&refused, Err(WalletError::BadAnswer(why)) if why.contains(&id.to_string())),
            "{refused:?}"
        );
    }
    assert_eq!(bank.balance("C2").await, C2_OPENING - 110_000);
    assert!(bank.balanced().await);
}

#[tokio::test]
async fn back_cancels_and_debits_nothing() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 400).await;
    let mut script = Script::new(&["н"]);
    let outcome = wallet(&bank, "C1", Locale::Ru)
        .pay(&mut script, &qr, &PayAnswers::default())
        .await
        .expect("answered");
    let view = paid_view(outcome);
    assert_eq!(
        (view.status.as_str(), view.ps_code.as_deref()),
        ("cancelled", Some("CANCELLED_BY_CLIENT"))
    );
    assert!(
        script.saw("Платёж отменён (CANCELLED_BY_CLIENT)"),
        "{}",
        script.screen()
    );
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    assert_eq!(bank.balance("C1").await, C1_OPENING);
    // A customer who leaves without deciding goes Back too: the cashier sees Error at once.
    let (qr, id) = ps.dynamic_qr(&device, 400).await;
    let left = wallet(&bank, "C1", Locale::Ru)
        .pay(&mut Script::new(&[]), &qr, &PayAnswers::default())
        .await;
    assert!(
        matches!(&left, Err(WalletError::NoAnswer { flag, .. }) if flag.contains("--yes")),
        "{left:?}"
    );
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    assert_eq!(bank.balance("C1").await, C1_OPENING);
    assert!(bank.balanced().await);
}

/// The PS's PNG of a token.
async fn png_of(ps: &TestPs, token: &str) -> Vec<u8> {
    let response = ps
        .http
        .get(format!("{}/qr/image.png", ps.url))
        .query(&[("token", token)])
        .send()
        .await
        .expect("the PS answers");
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.expect("a picture").to_vec()
}

/// The same picture as a JPEG (lossy, as a phone's camera would save it).
fn as_jpeg(png: &[u8]) -> Vec<u8> {
    let picture = image::load_from_memory(png).expect("a PNG").to_luma8();
    let mut jpeg = Cursor::new(Vec::new());
    picture
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .expect("a JPEG");
    jpeg.into_inner()
}

#[tokio::test]
async fn pictures_of_the_code_are_read_and_paid() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (first, first_id) = ps.dynamic_qr(&device, 100).await;
    let (second, second_id) = ps.dynamic_qr(&device, 200).await;
    let png = png_of(&ps, &first).await;
    let jpeg = as_jpeg(&png_of(&ps, &second).await);
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "a JPEG file");
    let read_png = qr::decode(&png).expect("the PNG reads");
    let read_jpeg = qr::decode(&jpeg).expect("the JPEG reads");
    assert_eq!(
        (read_png.as_str(), read_jpeg.as_str()),
        (first.as_str(), second.as_str())
    );
    let yes = PayAnswers {
        decision: Some(Decision::Pay),
        ..PayAnswers::default()
    };
    for token in [&read_png, &read_jpeg] {
        wallet(&bank, "C1", Locale::Ru)
            .pay(&mut Script::new(&[]), token, &yes)
            .await
            .expect("paid");
    }
    for id in [first_id, second_id] {
        assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    }
    assert_eq!(bank.balance("C1").await, C1_OPENING - 30_000);
    // The café's sticker, from a file.
    let dir = tempfile::tempdir().expect("dir");
    let sticker = dir.path().join("cafe.jpg");
    std::fs::write(&sticker, as_jpeg(&png_of(&ps, STATIC_QR).await)).expect("written");
    assert_eq!(qr::read_file(&sticker).expect("reads"), STATIC_QR);
    // Pictures that are not QR codes.
    let blank = image::GrayImage::from_pixel(400, 400, image::Luma([255]));
    let mut blank_png = Cursor::new(Vec::new());
    blank
        .write_to(&mut blank_png, image::ImageFormat::Png)
        .expect("a PNG");
    assert_eq!(qr::decode(blank_png.get_ref()), Err(WalletError::NoQrCode));
    let mut torn = png.clone();
    torn.truncate(png.len() / 3);
    assert!(matches!(
        qr::decode(&torn),
        Err(WalletError::ImageUnreadable(_))
    ));
    let text_file = dir.path().join("qr.txt");
    std::fs::write(&text_file, &first).expect("written");
    let refused = qr::read_file(&text_file);
    assert!(
        matches!(&refused, Err(WalletError::ImageUnreadable(why)) if why.contains("qr.txt")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn errors_are_explained_not_panicked() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let yes = PayAnswers {
        decision: Some(Decision::Pay),
        ..PayAnswers::default()
    };
    // The MPP's own error bodies.
    let unknown = wallet(&bank, "NOBODY", Locale::Ru)
        .pay(&mut Script::new(&[]), STATIC_QR, &yes)
        .await;
    assert_eq!(
        unknown,
        Err(WalletError::Mpp {
            status: 400,
            message: "unknown customer NOBODY".to_owned()
        })
    );
    let (qr, id) = ps.dynamic_qr(&device, 20_000).await;
    let poor = wallet(&bank, "C2", Locale::Kk)
        .pay(&mut Script::new(&[]), &qr, &yes)
        .await;
    assert_eq!(
        poor,
        Err(WalletError::Mpp {
            status: 400,
            message: "not enough money".to_owned()
        })
    );
    // Told in the customer's words, as the browser wallet tells it.
    assert_eq!(
        poor.expect_err("refused").message(Locale::Kk),
        "Шотта қаражат жеткіліксіз."
    );
    assert_eq!(
        unknown.expect_err("refused").message(Locale::Ru),
        "Клиент NOBODY не найден в этом банке."
    );

    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    // A QR the PS does not know.
    let unknown_qr = wallet(&bank, "C1", Locale::Ru)
        .pay(&mut Script::new(&[]), "NO-SUCH-QR", &yes)
        .await;
    assert!(
        matches!(&unknown_qr, Err(WalletError::Mpp { status: 422, message }) if message.contains("INVALID_TOKEN")),
        "{unknown_qr:?}"
    );
    let said = unknown_qr.expect_err("refused").message(Locale::Kk);
    assert!(said.starts_with("Төлем жүйесі бас тартты: "), "{said}");
    // No MPP at that address.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let unreachable = Wallet::new(&gone, "C1", Locale::Ru)
        .expect("a valid url")
        .account()
        .await;
    assert!(
        matches!(&unreachable, Err(WalletError::Unreachable { url, .. }) if *url == gone),
        "{unreachable:?}"
    );
    assert!(matches!(
        Wallet::new("127.0.0.1:8091", "C1", Locale::Ru),
        Err(WalletError::BadUrl(_))
    ));
    let stranger = wallet(&bank, "NOBODY", Locale::Ru).account().await;
    assert_eq!(
        stranger.map(|a| a.balance_tiyn),
        Err(WalletError::Mpp {
            status: 404,
            message: "unknown customer NOBODY".to_owned()
        })
    );
    assert_eq!(bank.balance("C2").await, C2_OPENING);
}

#[tokio::test]
async fn a_refund_qr_tells_the_customer_what_happens_next() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (return_id, token) = ps.return_qr(&device).await;
    let token = token.as_str();
    let mut script = Script::new(&[]);
    let outcome = wallet(&bank, "C1", Locale::Ru)
        .pay(&mut script, token, &PayAnswers::default())
        .await
        .expect("scanned");
    assert_eq!(
        outcome,
        PayOutcome::Refund {
            refund_id: Some(return_id.to_string())
        }
    );
    assert!(
        script.saw(&format!(
            "QR-код возврата №{return_id}: кассир сейчас выберет покупку для возврата"
        )),
        "{}",
        script.screen()
    );
    assert_eq!(bank.balance("C1").await, C1_OPENING);
}

/// Runs `tolem wallet ARGS…` with no standard input; returns (success, stdout, stderr).
async fn tolem_wallet(bank: &TestMpp, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["wallet", "--mpp", &bank.url, "--customer", "C1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_binary_pays_without_a_dialogue() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (token, id) = ps.dynamic_qr(&device, 1200).await;
    let (ok, out, err) = tolem_wallet(&bank, &["pay", &token, "--yes"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Оплачено: 1 200,00 ₸"), "{out}");
    assert!(out.contains(&format!("Чек: {}/", ps.url)), "{out}");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    // A picture, in Kazakh, the Static amount as a flag.
    let dir = tempfile::tempdir().expect("dir");
    let sticker = dir.path().join("cafe.png");
    std::fs::write(&sticker, png_of(&ps, STATIC_QR).await).expect("written");
    let image = sticker.to_str().expect("a UTF-8 path");
    let (ok, out, err) = tolem_wallet(
        &bank,
        &[
            "--locale", "kk", "pay", "--image", image, "--amount", "300", "--yes",
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("QR: {STATIC_QR}")), "{out}");
    assert!(out.contains("Төленді: 300,00 ₸"), "{out}");
    let (ok, out, _) = tolem_wallet(&bank, &["balance"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "Айгерим (C1), баланс: 48 500,00 ₸");
    let (ok, out, _) = tolem_wallet(&bank, &["history"]).await;
    assert!(ok);
    assert!(out.contains("−1 200,00 ₸  Оплата"), "{out}");
    // No answer and no flag: a clear error, no panic, and the payment went Back.
    let (token, id) = ps.dynamic_qr(&device, 50).await;
    let (ok, out, err) = tolem_wallet(&bank, &["pay", &token]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("--yes / --back"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    assert_eq!(bank.balance("C1").await, C1_OPENING - 150_000);
}

/// Runs `tolem wallet ARGS…` with extra environment; returns (success, stdout, stderr).
async fn tolem_wallet_env(
    bank: &TestMpp,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["wallet", "--mpp", &bank.url, "--customer", "C1"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn notifications_follow_the_locale_and_history_the_operators_time_zone() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (token, id) = ps.dynamic_qr(&device, 1500).await;
    let (ok, out, err) = tolem_wallet(&bank, &["--locale", "kk", "pay", &token, "--yes"]).await;
    assert!(ok, "{out}\n{err}");
    // The PS's link is the Russian receipt; the Kazakh wallet appends the suffix (SPEC 4.3).
    assert!(out.contains("&locale=kk"), "{out}");
    let body = json!({"DeviceToken": device, "QrPaymentId": id, "Amount": 400, "OrganizationBin": "990340001234"});
    let (_, refund) = ps
        .pos("POST", "/r3/v01/payment/return", API_KEY, Some(&body))
        .await;
    assert_eq!(refund["StatusCode"], 0, "{refund}");
    ps.wait_until("the customer is refunded", || async {
        bank.balance("C1").await == C1_OPENING - 110_000
    })
    .await;
    let (ok, ru, _) = tolem_wallet(&bank, &["notifications"]).await;
    assert!(ok);
    let (ok, kk, _) = tolem_wallet(&bank, &["--locale", "kk", "notifications"]).await;
    assert!(ok);
    assert!(ru.starts_with("Уведомления:"), "{ru}");
    assert!(ru.contains("• Возврат 400,00 ₸, чек: http://"), "{ru}");
    assert!(
        ru.contains("• Оплата Demo Coffee (Абай, 10): 1 500,00 ₸"),
        "{ru}"
    );
    assert!(kk.starts_with("Хабарламалар:"), "{kk}");
    assert!(kk.contains("• Қайтару 400,00 ₸, түбіртек: http://"), "{kk}");
    assert!(
        kk.contains("• Төлем Demo Coffee (Абай, 10): 1 500,00 ₸"),
        "{kk}"
    );
    for (feed, other) in [(&ru, "Қайтару"), (&kk, "Возврат")] {
        assert!(!feed.contains(other), "one language at a time: {feed}");
    }
    let link_of = |feed: &str| {
        feed.lines()
            .find_map(|l| {
                l.split_once("http://")
                    .map(|(_, rest)| format!("http://{rest}"))
            })
            .expect("a receipt link")
    };
    assert!(!link_of(&ru).contains("locale"), "{ru}");
    assert!(link_of(&kk).ends_with("&locale=kk"), "{kk}");
    let page = reqwest::get(link_of(&kk))
        .await
        .expect("the PS answers")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Қайтару түбіртегі"), "{page}");
    // History: the operator's time (Asia/Almaty), whatever the machine's zone.
    let account = bank.mpp.account("C1").await.expect("the account");
    let paid_at = account
        .history
        .iter()
        .find(|m| m.kind == "payment")
        .expect("the payment")
        .at_ms;
    let at = jiff::Timestamp::from_millisecond(paid_at).expect("a time");
    let in_zone = |zone: &str| {
        let zone = tolem_wire::time::zone(zone).expect("a zone");
        tolem_wire::time::format_human(at, &zone)
    };
    let almaty = format!("  {}  ", in_zone("Asia/Almaty"));
    let (ok, out, err) = tolem_wallet_env(&bank, &[("TZ", "America/New_York")], &["history"]).await;
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains("Оплата"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with(&almaty), "{line:?} in {almaty:?}");
    // An operator elsewhere names their zone; a zone that does not exist is a bad flag.
    let (ok, out, _) = tolem_wallet(&bank, &["--time-zone", "UTC", "history"]).await;
    assert!(ok);
    assert!(out.contains(&format!("  {}  ", in_zone("UTC"))), "{out}");
    let (ok, _, err) = tolem_wallet(&bank, &["--time-zone", "Mars/Olympus", "history"]).await;
    assert!(!ok && err.contains("Asia/Almaty"), "{err}");
}

#[tokio::test]
async fn history_into_a_closed_pipe_ends_quietly() {
    let (_ps, bank) = ps_and_mpp().await;
    // A reader that is gone before the wallet writes a line: every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    for command in ["history", "notifications", "balance"] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args(["wallet", "--mpp", &bank.url, command])
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("a second end"))
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("the binary runs");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{command}: {err}");
        assert!(err.is_empty(), "{command}: quietly, got {err}");
    }
    // The shell's way: `| head -1` reads one line and leaves.
    let script = format!(
        "set -o pipefail; {} wallet --mpp {} history | head -1",
        env!("CARGO_BIN_EXE_tolem"),
        bank.url
    );
    let output = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("bash runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "История операций:"
    );
}

/// A flag that does not fit the QR code pays nothing: `--amount` for a Dynamic QR is the amount
/// the script expects (another one is refused and the payment goes Back), `--param` for a QR
/// without a form is refused; `--back` needs no Static amount.
#[tokio::test]
async fn the_binary_pays_only_what_its_flags_say() {
    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (token, id) = ps.dynamic_qr(&device, 1200).await;
    let (ok, out, err) = tolem_wallet(&bank, &["pay", &token, "--amount", "1000", "--yes"]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("--amount 1 000,00 ₸: к оплате 1 200,00 ₸; не оплачено"),
        "{err}"
    );
    assert_eq!(ps.status(id).await["Data"]["Status"], "Error");
    assert_eq!(bank.balance("C1").await, C1_OPENING);
    let (token, id) = ps.dynamic_qr(&device, 1200).await;
    let (ok, out, err) =
        tolem_wallet(&bank, &["pay", &token, "--amount", "1 200,00", "--yes"]).await;
    assert!(ok, "{out}\n{err}");
    assert_eq!(ps.status(id).await["Data"]["Status"], "Processed");
    // A Static amount is whole tenge, said once the QR is known to be Static.
    let (ok, out, err) =
        tolem_wallet(&bank, &["pay", STATIC_QR, "--amount", "12,50", "--yes"]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains(
            "--amount 12,50 ₸: Сумма — целое число тенге больше нуля, например 500 или 1 500. \
             Не оплачено."
        ),
        "{err}"
    );
    let (ok, out, err) = tolem_wallet(
        &bank,
        &[
            "--locale", "kk", "pay", STATIC_QR, "--amount", "300", "--param", "1=2", "--yes",
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(err.contains("бұл QR-кодта форма жоқ; төленбеді"), "{err}");
    let (ok, out, err) = tolem_wallet(&bank, &["pay", STATIC_QR, "--back"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Платёж отменён (CANCELLED_BY_CLIENT)"),
        "{out}"
    );
    assert_eq!(bank.balance("C1").await, C1_OPENING - 120_000);
    assert!(bank.balanced().await);
}

/// The PS's answer to notifyPayment does not reach the MPP within its wait: the wallet says the
/// payment is being processed and exits 3, neither "paid" (0) nor "refused" (1), and the MPP's
/// driver pays it once the PS is reachable again.
#[tokio::test]
async fn a_payment_still_processing_is_neither_paid_nor_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut ps = TestPs::start().await;
    let addr = ps.url.trim_start_matches("http://").to_owned();
    let bank = TestMpp::start(&ps.url).await;
    let device = ps.device("POS-1").await;
    let (token, id) = ps.dynamic_qr(&device, 700).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args([
            "wallet",
            "--mpp",
            &bank.url,
            "--customer",
            "C1",
            "pay",
            &token,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut shown = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&shown).contains("Оплатить?") {
        let n = stdout.read(&mut buf).await.expect("read");
        assert!(n > 0, "{}", String::from_utf8_lossy(&shown));
        shown.extend_from_slice(&buf[..n]);
    }
    // The PS drops out of the MPP's reach once the customer has seen the amount.
    let (db, clock) = (ps.db_path(), ps.clock.clone());
    ps.shutdown().await;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all("д\n".as_bytes()).await.expect("answered");
    drop(stdin);
    let output = child.wait_with_output().await.expect("the wallet ends");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.expect("read");
    shown.extend_from_slice(&rest);
    let shown = String::from_utf8_lossy(&shown);
    assert_eq!(output.status.code(), Some(3), "{shown}");
    assert!(
        shown.contains("Платёж обрабатывается; результат появится в истории"),
        "{shown}"
    );
    let ps = TestPs::start_at(&addr, test_config(&db), clock).await;
    eventually("the driver pays it", || async {
        ps.status(id).await["Data"]["Status"] == "Processed"
    })
    .await;
    assert_eq!(bank.balance("C1").await, C1_OPENING - 70_000);
    assert!(bank.balanced().await);
}

/// The MPP took the payment but its answer was lost on the way (the connection reset): the
/// wallet does not say the bank is down and to start it, but that the payment may have gone
/// through and the history must be read before paying again; and it did go through.
#[tokio::test]
async fn a_confirm_without_an_answer_is_not_called_a_bank_that_is_down() {
    use crate::fault_proxy::{Fault, FaultProxy};

    let (ps, bank) = ps_and_mpp().await;
    let device = ps.device("POS-1").await;
    let (qr, id) = ps.dynamic_qr(&device, 300).await;
    let mpp: std::net::SocketAddr = bank
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the MPP's address");
    // The scan passes; the confirm reaches the MPP, and half of its answer the wallet.
    let proxy = FaultProxy::start(
        mpp,
        vec![Fault::Pass, Fault::ResetMidAnswer],
        1,
        std::time::Duration::from_secs(1),
    )
    .await;
    let yes = PayAnswers {
        decision: Some(Decision::Pay),
        ..PayAnswers::default()
    };
    let paid = Wallet::new(&proxy.url, "C1", Locale::Ru)
        .expect("a valid url")
        .pay(&mut Script::new(&[]), &qr, &yes)
        .await;
    let error = paid.expect_err("no answer reached the wallet");
    assert!(
        matches!(&error, WalletError::ConfirmUnanswered { url, .. } if *url == proxy.url),
        "{error:?}"
    );
    assert!(
        error
            .message(Locale::Ru)
            .contains("Если платёж дошёл до банка, он завершится: проверьте историю (history), прежде чем платить снова."),
        "{error}"
    );
    eventually("the payment is Processed", || async {
        ps.status(id).await["Data"]["Status"] == "Processed"
    })
    .await;
    assert_eq!(bank.balance("C1").await, C1_OPENING - 30_000);
    // The binary says so and exits 3, as for a payment still processing: never 1, which a
    // script could answer by paying again.
    let (qr, id) = ps.dynamic_qr(&device, 200).await;
    let proxy = FaultProxy::start(
        mpp,
        vec![Fault::Pass, Fault::ResetMidAnswer],
        1,
        std::time::Duration::from_secs(1),
    )
    .await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args([
            "wallet",
            "--mpp",
            &proxy.url,
            "--customer",
            "C1",
            "pay",
            &qr,
            "--yes",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the binary runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(err.contains("не ответил на оплату"), "{err}");
    eventually("the second payment is Processed", || async {
        ps.status(id).await["Data"]["Status"] == "Processed"
    })
    .await;
    assert_eq!(bank.balance("C1").await, C1_OPENING - 50_000);
    assert!(bank.balanced().await);
}
