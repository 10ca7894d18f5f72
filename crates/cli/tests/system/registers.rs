//! Registers read back with real readers (calamine for .xlsx, csv for CSV) and checked row by row
//! and total by total against the database; the cabinet's authentication and isolation; the
//! `tolem registers` command.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tempfile::TempDir;
use tolem_ps::Config;
use tolem_ps::clock::{Clock, ManualClock};
use tolem_ps::registers::RefundCommission;

use crate::harness::*;
use crate::receiver::{Act, Receiver};

pub const BANK_TOKEN: &str = "demobank-cabinet-token-0123456789";
pub const WALLET_TOKEN: &str = "demowallet-cabinet-token-0123456789";

fn almaty() -> TimeZone {
    tolem_wire::time::zone("Asia/Almaty").expect("bundled")
}

/// An instant given as the operator's local time, `2026-11-26T10:00:00`.
pub fn local(text: &str) -> Timestamp {
    let at: DateTime = text.parse().expect("a local date-time");
    at.to_zoned_datetime(almaty()).expect("exists").timestamp()
}

/// A PS on a fresh database whose clock starts at a local time; restartable with its settings.
pub struct Scene {
    pub ps: TestPs,
    pub config: Config,
    pub clock: Arc<ManualClock>,
    _dir: TempDir,
}

impl Scene {
    pub async fn start(at: &str, change: impl FnOnce(&mut Config)) -> Scene {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut config = test_config(&fresh_database(dir.path()));
        config.registers.cabinet_tokens = [
            ("demobank".to_owned(), BANK_TOKEN.to_owned()),
            ("demowallet".to_owned(), WALLET_TOKEN.to_owned()),
        ]
        .into();
        change(&mut config);
        let clock = Arc::new(ManualClock::new(local(at)));
        let ps = TestPs::start_with(config.clone(), clock.clone()).await;
        Scene {
            ps,
            config,
            clock,
            _dir: dir,
        }
    }

    /// Stops the server gracefully and starts it again on the same database and settings.
    pub async fn restart(mut self) -> Scene {
        self.ps.shutdown().await;
        self.ps = TestPs::start_with(self.config.clone(), self.clock.clone()).await;
        self
    }

    /// The PS's tables, to check what it said against.
    pub fn db(&self) -> PsBooks {
        PsBooks::open(&self.config.database)
    }

    pub fn set_clock(&self, at: &str) {
        let by = self.clock.now().duration_until(local(at));
        assert!(by.is_positive(), "the clock only moves forward");
        self.clock.advance(by);
    }

    /// The wall clock stepped back to `at` (a clock that was ahead put right).
    pub fn step_clock_back(&self, at: &str) {
        let by = self.clock.now().duration_until(local(at));
        assert!(by.is_negative(), "a step back");
        self.clock.advance(by);
    }
}

/// A purchase of `amount` tenge at the café, paid by `customer` of `mpp`; returns its id.
pub async fn paid_by(ps: &TestPs, device: &str, mpp: &str, amount: u64, customer: &str) -> i64 {
    let (qr, id) = ps.dynamic_qr(device, amount).await;
    let payment_id = scan_id(ps, mpp, &qr, customer).await;
    let body = notify_body(&payment_id, customer, "SUCCESS", None);
    let (_, answer) = ps
        .mpp_call("/api/v1/qr/notifyPayment", mpp, "n", &body)
        .await;
    assert_eq!(result_code(&answer), "SUCCESS");
    id
}

/// Refunds `amount` tenge of a purchase (r3) and waits until the MPP's answer is recorded.
pub async fn refunded(scene: &Scene, device: &str, payment: i64, amount: u64, status: &str) -> i64 {
    let body = json!({"DeviceToken": device, "QrPaymentId": payment, "Amount": amount, "OrganizationBin": "990340001234"});
    let (_, answer) = scene
        .ps
        .pos("POST", "/r3/v01/payment/return", API_KEY, Some(&body))
        .await;
    let id = answer["Data"]["ReturnOperationId"]
        .as_i64()
        .unwrap_or_else(|| panic!("a refund id in {answer}"));
    let db = scene.db();
    scene
        .ps
        .wait_until(&format!("refund {id} is {status}"), || {
            let now = db.one_text("SELECT status FROM refunds WHERE id = ?1", &[&id]);
            async move { now == status }
        })
        .await;
    id
}

/// One register row as the database says it must be.
#[derive(Debug, PartialEq)]
pub struct Expected {
    pub customer: String,
    pub mpp_id: String,
    pub ps_id: String,
    pub finished_ms: i64,
    pub refund: bool,
    pub tiyn: i64,
    pub commission: i64,
    pub payment: Option<i64>,
}

/// (bps, minimum in tiyn) of the sandbox's MPPs.
fn rate(mpp: &str) -> (i64, i64) {
    match mpp {
        "demobank" => (100, 0),
        _ => (80, 100),
    }
}

fn payment_commission(mpp: &str, tiyn: i64) -> i64 {
    let (bps, min) = rate(mpp);
    ((tiyn * bps + 5_000) / 10_000).max(min).min(tiyn)
}

/// The rows of `mpp`'s register of `[from, to)`, computed from the database independently of the
/// PS's own queries.
pub fn expected(
    db: &PsBooks,
    mpp: &str,
    from: Timestamp,
    to: Timestamp,
    reverse: bool,
) -> Vec<Expected> {
    let sql = "SELECT 0, id, customer_id, mpp_payment_id, finished_at_ms, amount_tiyn, NULL FROM payments \
               WHERE mpp = ?1 AND status = 'confirmed' AND finished_at_ms >= ?2 AND finished_at_ms < ?3 \
               UNION ALL SELECT 1, id, customer_id, CAST(id AS TEXT), finished_at_ms, amount_tiyn, payment_id FROM refunds \
               WHERE mpp = ?1 AND status = 'completed' AND finished_at_ms >= ?2 AND finished_at_ms < ?3 \
               ORDER BY 5, 1, 2";
    let rows = db.rows(sql, &[&mpp, &from.as_millisecond(), &to.as_millisecond()]);
    rows.into_iter()
        .map(|r| {
            let (kind, id, customer, mpp_id, finished_ms, tiyn, payment) = (
                r.int(0),
                r.int(1),
                r.text(2),
                r.text(3),
                r.int(4),
                r.int(5),
                r.opt_int(6),
            );
            let commission = match payment {
                None => payment_commission(mpp, tiyn),
                Some(_) if !reverse => 0,
                Some(payment) => reversed(db, mpp, payment, id),
            };
            Expected {
                customer,
                mpp_id,
                ps_id: id.to_string(),
                finished_ms,
                refund: kind == 1,
                tiyn,
                commission,
                payment,
            }
        })
        .collect()
}

/// The share of a payment's commission a refund gives back: the running share of its payment's
/// completed refunds, rounded down, minus the share before it.
fn reversed(db: &PsBooks, mpp: &str, payment: i64, refund: i64) -> i64 {
    let amount = db.one_i64(
        "SELECT amount_tiyn FROM payments WHERE id = ?1",
        &[&payment],
    );
    let charged = payment_commission(mpp, amount);
    let mut before = 0;
    for row in db.rows(
        "SELECT id, amount_tiyn FROM refunds WHERE payment_id = ?1 AND status = 'completed' ORDER BY finished_at_ms, id",
        &[&payment],
    ) {
        let (id, tiyn) = (row.int(0), row.int(1));
        if id == refund {
            return charged * (before + tiyn) / amount - charged * before / amount;
        }
        before += tiyn;
    }
    panic!("refund {refund} is not completed");
}

/// Excel's serial date-time of a local wall-clock time, in whole seconds as the register writes
/// it (Excel would round a fraction of a second when it shows the time, even into the next day).
fn excel_serial(ms: i64) -> f64 {
    let at = Timestamp::from_millisecond(ms - ms.rem_euclid(1000)).expect("valid");
    let local = at.to_zoned_datetime(almaty()).datetime();
    let epoch: DateTime = "1899-12-30T00:00:00".parse().expect("epoch");
    let span = epoch.duration_until(local);
    span.as_secs_f64() / 86_400.0
}

fn tiyn_of(cell: &Data) -> i64 {
    match cell {
        Data::Float(f) => (f * 100.0).round() as i64,
        Data::Int(i) => i * 100,
        other => panic!("an amount must be a number cell, got {other:?}"),
    }
}

fn text(cell: &Data) -> String {
    match cell {
        Data::String(s) => s.clone(),
        Data::Empty => String::new(),
        other => panic!("a text cell, got {other:?}"),
    }
}

/// Totals per type: (count, tiyn, commission).
fn totals(rows: &[Expected], refund: bool) -> (i64, i64, i64) {
    rows.iter()
        .filter(|r| r.refund == refund)
        .fold((0, 0, 0), |(n, a, c), r| {
            (n + 1, a + r.tiyn, c + r.commission)
        })
}

/// The XML of each worksheet of a workbook, in order.
fn sheet_xml(bytes: &[u8]) -> Vec<String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("an xlsx is a zip");
    let mut sheets = Vec::new();
    for n in 1.. {
        let Ok(mut file) = zip.by_name(&format!("xl/worksheets/sheet{n}.xml")) else {
            break;
        };
        let mut xml = String::new();
        std::io::Read::read_to_string(&mut file, &mut xml).expect("UTF-8 XML");
        sheets.push(xml);
    }
    sheets
}

/// The `name="…"` attribute of an XML element's start tag.
fn attribute<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    element[start..].split('"').next()
}

/// What makes a register readable and printable, on every sheet: each header row tall enough
/// for its wrapped headers (so LibreOffice does not spill the Kazakh row over the Russian one),
/// wrapped header cells, and a page setup of one page wide.
fn check_layout(bytes: &[u8]) {
    let sheets = sheet_xml(bytes);
    assert!(!sheets.is_empty());
    for xml in &sheets {
        assert!(xml.contains(r#"<pageSetUpPr fitToPage="1"/>"#), "{xml}");
        let setup = &xml[xml.find("<pageSetup ").expect("a page setup")..];
        let setup = &setup[..setup.find("/>").expect("an element")];
        assert_eq!(attribute(setup, "fitToHeight"), Some("0"), "{setup}");
        assert_ne!(attribute(setup, "fitToWidth"), Some("0"), "{setup}");
        assert_eq!(
            attribute(setup, "orientation"),
            Some("landscape"),
            "{setup}"
        );
        for r in ["1", "2"] {
            let at = xml.find(&format!("<row r=\"{r}\"")).expect("a header row");
            let row = &xml[at..at + xml[at..].find('>').expect("a tag")];
            assert_eq!(attribute(row, "customHeight"), Some("1"), "{row}");
            let height: f64 = attribute(row, "ht")
                .expect("a height")
                .parse()
                .expect("points");
            assert!(height >= 30.0, "two lines at least: {row}");
        }
    }
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("a workbook");
    for name in book.sheet_names() {
        let styles = book.worksheet_style(&name).expect("styles");
        for cell in [(0, 0), (0, 1), (1, 1), (1, 7)] {
            let style = styles.get(cell).expect("a styled header");
            assert!(
                style.alignment.as_ref().is_some_and(|a| a.wrap_text),
                "{name} {cell:?} wraps"
            );
        }
    }
}

/// The commission column's Russian and Kazakh headers of a daily register (SPEC 5.1) …
pub const DAILY_COMMISSION: [&str; 2] = [
    "Комиссия за платёжную услугу",
    "Төлем қызметі үшін комиссия",
];
/// … and of a monthly one (SPEC 5.2, DECISIONS 38).
pub const MONTHLY_COMMISSION: [&str; 2] = [
    "Комиссия за услугу «Сервис»",
    "«Сервис» қызметі үшін комиссия",
];

/// The commission column's headers (Russian, Kazakh) on a register workbook's first sheet.
pub fn commission_headers(bytes: &[u8]) -> [String; 2] {
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("a workbook");
    let sheet = book.worksheet_range("Реестр").expect("the first sheet");
    [text(&sheet[(0, 6)]), text(&sheet[(1, 6)])]
}

/// Reads a register workbook and checks it against `want`, cell by cell: every sheet under both
/// header rows, the operations in order across the sheets, the totals at the end of the last.
pub fn check_xlsx(bytes: Vec<u8>, want: &[Expected]) {
    check_layout(&bytes);
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("a workbook");
    let names = book.sheet_names();
    assert_eq!(names[0], "Реестр");
    let mut ops: Vec<Vec<Data>> = Vec::new();
    let mut bottom: Vec<Vec<Data>> = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let sheet = book.worksheet_range(name).expect("a sheet");
        let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
        assert_eq!(text(&rows[0][0]), "ID покупателя");
        let commission = [text(&rows[0][6]), text(&rows[1][6])];
        assert!(
            commission == DAILY_COMMISSION || commission == MONTHLY_COMMISSION,
            "{commission:?}"
        );
        assert_eq!(text(&rows[1][0]), "Сатып алушының ID");
        assert_eq!(text(&rows[1][5]), "Сома");
        if index + 1 < names.len() {
            ops.extend_from_slice(&rows[2..]);
        } else {
            assert!(
                rows[rows.len() - 3].iter().all(|c| *c == Data::Empty),
                "a blank row"
            );
            ops.extend_from_slice(&rows[2..rows.len() - 3]);
            bottom.extend_from_slice(&rows[rows.len() - 2..]);
        }
    }
    assert_eq!(ops.len(), want.len());
    for (row, w) in ops.iter().zip(want) {
        assert_eq!(text(&row[0]), w.customer);
        assert_eq!(text(&row[1]), w.mpp_id);
        assert_eq!(text(&row[2]), w.ps_id);
        let Data::DateTime(when) = &row[3] else {
            panic!("a date cell, got {:?}", row[3]);
        };
        assert!(when.is_datetime());
        assert!(
            (when.as_f64() - excel_serial(w.finished_ms)).abs() < 1e-8,
            "{w:?}"
        );
        let kind = if w.refund {
            "Возврат / Қайтару"
        } else {
            "Оплата / Төлем"
        };
        assert_eq!(text(&row[4]), kind);
        assert_eq!(tiyn_of(&row[5]), w.tiyn, "{w:?}");
        assert_eq!(tiyn_of(&row[6]), w.commission, "{w:?}");
        assert_eq!(
            text(&row[7]),
            w.payment.map(|p| p.to_string()).unwrap_or_default()
        );
    }
    for (row, refund) in bottom.iter().zip([false, true]) {
        let (count, tiyn, commission) = totals(want, refund);
        assert_eq!(text(&row[0]), "Итого / Барлығы");
        assert_eq!(row[2], Data::Float(count as f64));
        let kind = if refund {
            "Возврат / Қайтару"
        } else {
            "Оплата / Төлем"
        };
        assert_eq!(text(&row[4]), kind);
        assert_eq!(tiyn_of(&row[5]), tiyn);
        assert_eq!(tiyn_of(&row[6]), commission);
    }
}

fn money(tiyn: i64) -> String {
    format!("{}.{:02}", tiyn / 100, tiyn % 100)
}

/// Reads a CSV register and checks it against `want`: the same rows, amounts as exact text.
pub fn check_csv(bytes: &[u8], want: &[Expected]) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a record")).collect();
    assert_eq!(&records[1][4], "Операция түрі");
    assert_eq!(records.len(), 2 + want.len() + 3);
    for (record, w) in records[2..].iter().zip(want) {
        let at = Timestamp::from_millisecond(w.finished_ms).expect("valid");
        assert_eq!(&record[0], w.customer);
        assert_eq!(&record[1], w.mpp_id);
        assert_eq!(&record[2], w.ps_id);
        assert_eq!(&record[3], tolem_wire::time::format_mpp(at, &almaty()));
        assert_eq!(&record[5], money(w.tiyn));
        assert_eq!(&record[6], money(w.commission));
    }
    let (count, tiyn, commission) = totals(want, true);
    let last = &records[records.len() - 1];
    assert_eq!(
        (&last[2], &last[5], &last[6]),
        (
            count.to_string().as_str(),
            money(tiyn).as_str(),
            money(commission).as_str()
        )
    );
}

pub async fn cabinet(ps: &TestPs, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = ps
        .http
        .get(format!("{}/cabinet/v1/registers/{path}", ps.url));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("the PS answers");
    let status = resp.status().as_u16();
    if status == 200 {
        // Customers' ids and amounts: no cache on the way may keep them.
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{path}"
        );
    }
    (status, resp.bytes().await.expect("a body").to_vec())
}

/// A day of both MPPs' payments and refunds, including what a register must leave out.
async fn a_busy_day(scene: &Scene) -> String {
    let ps = &scene.ps;
    let (bank, wallet) = (Receiver::start().await, Receiver::start().await);
    ps.set_refund_url("demobank", &bank.url).await;
    ps.set_refund_url("demowallet", &wallet.url).await;
    let device = ps.device("POS-1").await;
    let big = ps.paid(&device, 1500, "C1").await;
    ps.paid(&device, 250, "C2").await;
    let odd = paid_by(ps, &device, "demobank", 999, "C1").await;
    let small = paid_by(ps, &device, "demowallet", 50, "W1").await;
    let mid = paid_by(ps, &device, "demowallet", 333, "W2").await;
    // Cancelled by the buyer: not in any register.
    let (qr, _) = ps.dynamic_qr(&device, 777).await;
    let payment_id = scan_id(ps, "demobank", &qr, "C3").await;
    let body = notify_body(&payment_id, "C3", "CANCELLED_BY_CLIENT", None);
    ps.mpp_call("/api/v1/qr/notifyPayment", "demobank", "c", &body)
        .await;
    // Completed refunds (two partial ones of one payment), and one the MPP refused.
    refunded(scene, &device, big, 400, "completed").await;
    refunded(scene, &device, big, 700, "completed").await;
    refunded(scene, &device, small, 50, "completed").await;
    refunded(scene, &device, mid, 100, "completed").await;
    bank.script([Act::Answer("PROCESS_FAIL")]);
    refunded(scene, &device, odd, 99, "failed").await;
    device
}

#[tokio::test]
async fn every_row_and_total_matches_the_database_in_xlsx_and_csv() {
    let scene = Scene::start("2026-11-26T10:00:00", |c| {
        c.registers.refund_commission = RefundCommission::Reverse;
        // Pages of one row: every row is read across a page boundary.
        c.registers.page_rows_max = 1;
    })
    .await;
    let device = a_busy_day(&scene).await;
    // The next day: the 26th is over; today's purchase is in no register of the 26th.
    scene.set_clock("2026-11-27T00:05:00");
    scene.ps.paid(&device, 5000, "C1").await;
    let (from, to) = (local("2026-11-26T00:00:00"), local("2026-11-27T00:00:00"));
    for (mpp, token) in [("demobank", BANK_TOKEN), ("demowallet", WALLET_TOKEN)] {
        let want = expected(&scene.db(), mpp, from, to, true);
        let payments = want.iter().filter(|w| !w.refund).count();
        assert_eq!(
            (payments, want.len() - payments),
            if mpp == "demobank" { (3, 2) } else { (2, 2) }
        );
        let (status, xlsx) = cabinet(&scene.ps, "daily/2026-11-26.xlsx", Some(token)).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&xlsx));
        assert_eq!(commission_headers(&xlsx), DAILY_COMMISSION);
        check_xlsx(xlsx, &want);
        let (status, csv) = cabinet(&scene.ps, "daily/2026-11-26.csv", Some(token)).await;
        assert_eq!(status, 200);
        check_csv(&csv, &want);
        assert!(String::from_utf8_lossy(&csv).contains(DAILY_COMMISSION[1]));
    }
    // The monthly register of November, once November is over.
    let (status, body) = cabinet(&scene.ps, "monthly/2026-11.xlsx", Some(BANK_TOKEN)).await;
    assert_eq!(status, 409, "November has not ended");
    let body: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(
        body["error"],
        "the register of 2026-11 cannot be made yet: 2026-11 has not ended, or its last writes \
         may still be committing; it can be made from 2026-12-01 00:05 Asia/Almaty"
    );
    // At midnight a write dated the month's last second may still be committing.
    scene.set_clock("2026-12-01T00:04:59");
    let (status, _) = cabinet(&scene.ps, "monthly/2026-11.xlsx", Some(BANK_TOKEN)).await;
    assert_eq!(status, 409, "November ended a moment ago");
    scene.set_clock("2026-12-01T00:05:00");
    let (status, xlsx) = cabinet(&scene.ps, "monthly/2026-11.xlsx", Some(BANK_TOKEN)).await;
    assert_eq!(status, 200);
    let month = expected(
        &scene.db(),
        "demobank",
        from,
        local("2026-12-01T00:00:00"),
        true,
    );
    assert_eq!(month.len(), 6);
    assert_eq!(commission_headers(&xlsx), MONTHLY_COMMISSION);
    check_xlsx(xlsx, &month);
}

#[tokio::test]
async fn an_mpp_sees_only_its_own_register_and_only_with_its_token() {
    let scene = Scene::start("2026-11-26T10:00:00", |_| {}).await;
    a_busy_day(&scene).await;
    scene.set_clock("2026-11-27T09:00:00");
    let db = scene.db();
    for (token, mpp) in [(BANK_TOKEN, "demobank"), (WALLET_TOKEN, "demowallet")] {
        let (_, csv) = cabinet(&scene.ps, "daily/2026-11-26.csv", Some(token)).await;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&csv[..]);
        let records: Vec<csv::StringRecord> =
            reader.records().map(|r| r.expect("a record")).collect();
        let ops = &records[2..records.len() - 3];
        assert!(!ops.is_empty());
        for op in ops {
            let table = if &op[4] == "Оплата / Төлем" {
                "payments"
            } else {
                "refunds"
            };
            let id: i64 = op[2].parse().expect("the PS's id is a number");
            let owner = db.one_text(&format!("SELECT mpp FROM {table} WHERE id = ?1"), &[&id]);
            assert_eq!(owner, mpp, "{op:?}");
        }
    }
    let refused = [
        ("daily/2026-11-26.xlsx", None, 401),
        (
            "daily/2026-11-26.xlsx",
            Some("not-a-token-of-anyone-at-all"),
            401,
        ),
        ("daily/2026-11-27.xlsx", Some(BANK_TOKEN), 409),
        ("daily/2026-13-01.xlsx", Some(BANK_TOKEN), 400),
        ("daily/2026-11-26.pdf", Some(BANK_TOKEN), 404),
        ("weekly/2026-11-26.xlsx", Some(BANK_TOKEN), 404),
    ];
    for (path, token, want) in refused {
        let (status, body) = cabinet(&scene.ps, path, token).await;
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(body["error"].is_string());
    }
    // Two tokens name no one MPP, in either order (a proxy's and the client's, say).
    for tokens in [[WALLET_TOKEN, BANK_TOKEN], [BANK_TOKEN, WALLET_TOKEN]] {
        let status = scene
            .ps
            .http
            .get(format!(
                "{}/cabinet/v1/registers/daily/2026-11-26.csv",
                scene.ps.url
            ))
            .header("authorization", format!("Bearer {}", tokens[0]))
            .header("authorization", format!("Bearer {}", tokens[1]))
            .send()
            .await
            .expect("the PS answers")
            .status();
        assert_eq!(status, 401, "{tokens:?}");
    }
}

fn write_config(dir: &Path) -> PathBuf {
    let file = dir.join("tolem.toml");
    std::fs::write(&file, SANDBOX_TOML).expect("written");
    file
}

#[tokio::test]
async fn the_command_makes_the_same_register_from_the_database() {
    // A day that is over by the real clock too: the command runs on the system clock.
    let scene = Scene::start("2026-11-26T10:00:00", |_| {}).await;
    a_busy_day(&scene).await;
    scene.set_clock("2026-11-27T10:00:00");
    let out = tempfile::tempdir().expect("a temp dir");
    let config = write_config(out.path());
    for format in ["xlsx", "csv"] {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
            .args([
                "registers",
                "daily",
                "--mpp",
                "demobank",
                "--date",
                "2026-11-26",
                "--format",
                format,
            ])
            .arg("--config")
            .arg(&config)
            .arg("--db")
            .arg(&scene.config.database)
            .arg("--out")
            .arg(out.path().join("registers"))
            .output()
            .expect("tolem runs");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let path = out
            .path()
            .join(format!("registers/demobank-daily-2026-11-26.{format}"));
        assert_eq!(
            String::from_utf8_lossy(&run.stdout).trim(),
            path.display().to_string()
        );
        let made = std::fs::read(&path).expect("the register");
        let (_, served) = cabinet(
            &scene.ps,
            &format!("daily/2026-11-26.{format}"),
            Some(BANK_TOKEN),
        )
        .await;
        let want = expected(
            &scene.db(),
            "demobank",
            local("2026-11-26T00:00:00"),
            local("2026-11-27T00:00:00"),
            false,
        );
        if format == "xlsx" {
            check_xlsx(made, &want);
        } else {
            assert_eq!(made, served, "the command and the cabinet agree");
            check_csv(&made, &want);
        }
    }
    // Errors name what is wrong.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args([
            "registers",
            "monthly",
            "--mpp",
            "nobody",
            "--month",
            "2026-10",
            "--out",
        ])
        .arg(out.path())
        .arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(&scene.config.database)
        .output()
        .expect("tolem runs");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("no MPP nobody"));
    // A day that has not ended (tomorrow, by the system clock the command runs on).
    let tomorrow = Timestamp::now()
        .to_zoned_datetime(almaty())
        .date()
        .tomorrow()
        .expect("a tomorrow");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["registers", "daily", "--mpp", "demobank", "--date"])
        .arg(tomorrow.to_string())
        .arg("--out")
        .arg(out.path().join("early"))
        .arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(&scene.config.database)
        .output()
        .expect("tolem runs");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!(
            "the register of {tomorrow} cannot be made yet: {tomorrow} has not ended"
        )),
        "{stderr}"
    );
    assert!(
        !out.path().join("early").exists()
            || std::fs::read_dir(out.path().join("early"))
                .expect("a dir")
                .next()
                .is_none(),
        "no file"
    );
}

#[tokio::test]
async fn a_register_longer_than_a_sheet_goes_on_to_the_next_and_an_empty_one_has_totals() {
    let scene = Scene::start("2026-11-26T10:00:00", |c| {
        c.registers.sheet_rows_max = 2;
        c.registers.page_rows_max = 3;
    })
    .await;
    let device = scene.ps.device("POS-1").await;
    for amount in [10, 20, 30, 40, 50] {
        scene.ps.paid(&device, amount, "C1").await;
    }
    scene.set_clock("2026-11-28T10:00:00");
    let (_, xlsx) = cabinet(&scene.ps, "daily/2026-11-26.xlsx", Some(BANK_TOKEN)).await;
    let sheets = open_workbook_from_rs::<Xlsx<_>, _>(Cursor::new(xlsx.clone()))
        .expect("a workbook")
        .sheet_names();
    assert_eq!(sheets, ["Реестр", "Реестр 2", "Реестр 3"]);
    let want = expected(
        &scene.db(),
        "demobank",
        local("2026-11-26T00:00:00"),
        local("2026-11-27T00:00:00"),
        false,
    );
    assert_eq!(want.len(), 5);
    check_xlsx(xlsx, &want);
    // A day without operations: headers and zero totals.
    let (status, xlsx) = cabinet(&scene.ps, "daily/2026-11-27.xlsx", Some(BANK_TOKEN)).await;
    assert_eq!(status, 200);
    check_xlsx(xlsx, &[]);
}

/// Sets fields of an MPP through the admin API; returns the answer.
async fn put_mpp(ps: &TestPs, caller: &str, change: &[(&str, Value)]) -> (u16, Value) {
    let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
    let mut mpp = catalog["mpps"]
        .as_array()
        .expect("mpps")
        .iter()
        .find(|m| m["caller_name"] == caller)
        .expect("the MPP")
        .clone();
    for (field, value) in change {
        mpp[*field] = value.clone();
    }
    ps.admin("PUT", &format!("/admin/v1/mpps/{caller}"), &mpp)
        .await
}

/// The cells of every sheet of a workbook, as text (the file's own metadata, such as its creation
/// time, is not part of what a register says).
fn cells(xlsx: Vec<u8>) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(xlsx)).expect("a workbook");
    let mut all = Vec::new();
    for name in book.sheet_names() {
        let sheet = book.worksheet_range(&name).expect("a sheet");
        all.extend(
            sheet
                .rows()
                .map(|row| row.iter().map(|c| format!("{c:?}")).collect()),
        );
    }
    all
}

/// Each register of `paths` made again says what `before` did: the CSV byte for byte, the
/// workbook cell for cell.
async fn same_registers(scene: &Scene, paths: &[&str], before: &[Vec<u8>], when: &str) {
    for (path, was) in paths.iter().zip(before) {
        let (status, now) = cabinet(&scene.ps, path, Some(BANK_TOKEN)).await;
        assert_eq!(status, 200, "{path}");
        if path.ends_with(".csv") {
            assert_eq!(
                String::from_utf8_lossy(&now),
                String::from_utf8_lossy(was),
                "{path} {when}"
            );
        } else {
            assert_eq!(cells(now), cells(was.clone()), "{path} {when}");
        }
    }
}

#[tokio::test]
async fn a_register_made_again_after_the_rates_changed_is_the_same() {
    let scene = Scene::start("2026-11-26T10:00:00", |c| {
        c.registers.refund_commission = RefundCommission::Reverse;
    })
    .await;
    let device = a_busy_day(&scene).await;
    scene.set_clock("2026-12-01T10:00:00");
    let paths = [
        "daily/2026-11-26.csv",
        "daily/2026-11-26.xlsx",
        "monthly/2026-11.csv",
        "monthly/2026-11.xlsx",
    ];
    let mut before = Vec::new();
    for path in paths {
        let (status, body) = cabinet(&scene.ps, path, Some(BANK_TOKEN)).await;
        assert_eq!(status, 200, "{path}");
        before.push(body);
    }
    check_csv(
        &before[0],
        &expected(
            &scene.db(),
            "demobank",
            local("2026-11-26T00:00:00"),
            local("2026-11-27T00:00:00"),
            true,
        ),
    );
    // The operator doubles demobank's rate and gives it a «Сервис» commission of its own.
    let (status, answer) = put_mpp(
        &scene.ps,
        "demobank",
        &[
            ("commission_bps", json!(200)),
            ("commission_min", json!("5.00")),
            ("service_commission_bps", json!(300)),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // A payment today is charged at the new rate; November's registers do not move (DECISIONS 37).
    let today = scene.ps.paid(&device, 1000, "C1").await;
    same_registers(&scene, &paths, &before, "after the rates changed").await;
    // Refunds of a store from before their mode was kept (SQLite migration 17, PostgreSQL 4)
    // take the one in force at the first start after it.
    let old = PsBooks::open_for_writing(&scene.config.database)
        .execute("UPDATE refunds SET commission_mode = NULL", &[]);
    assert!(old >= 2, "November has refunds: {old}");
    let scene = scene.restart().await;
    let without = "SELECT COUNT(*) FROM refunds WHERE commission_mode IS NULL";
    assert_eq!(scene.db().count(without, &[]), 0);
    // Nor when the operator stops giving commission back on refunds: November's refunds were
    // made under `reverse`, and keep it (DECISIONS 37).
    let mut scene = scene;
    scene.config.registers.refund_commission = RefundCommission::None;
    let scene = scene.restart().await;
    same_registers(&scene, &paths, &before, "after refund_commission = none").await;
    scene.set_clock("2026-12-02T10:00:00");
    let (_, daily) = cabinet(&scene.ps, "daily/2026-12-01.csv", Some(BANK_TOKEN)).await;
    let text = String::from_utf8_lossy(&daily);
    assert!(
        text.contains(&format!(",{today},")) && text.contains(",1000.00,20.00"),
        "2 % of 1000.00: {text}"
    );
    // No two rows of a register share a PS operation id (DECISIONS 40).
    let ids: Vec<String> = before[2]
        .split(|b| *b == b'\n')
        .skip(2)
        .map(|line| String::from_utf8_lossy(line).to_string())
        .take_while(|line| !line.trim_matches(',').is_empty())
        .map(|line| line.split(',').nth(2).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
}

#[tokio::test]
async fn payments_and_refunds_never_share_an_id() {
    let scene = Scene::start("2026-11-26T10:00:00", |_| {}).await;
    a_busy_day(&scene).await;
    let db = scene.db();
    let shared = db.count(
        "SELECT COUNT(*) FROM payments p JOIN refunds r ON r.id = p.id",
        &[],
    );
    let refunds = db.count("SELECT COUNT(*) FROM refunds", &[]);
    assert!(refunds >= 5);
    assert_eq!(shared, 0);
}

#[tokio::test]
async fn the_monthly_register_charges_the_service_commission_the_daily_the_payment_one() {
    let scene = Scene::start("2026-11-26T10:00:00", |c| {
        let bank = c
            .catalog
            .mpps
            .iter_mut()
            .find(|m| m.caller_name == "demobank")
            .expect("demobank");
        bank.service_commission_bps = Some(50);
        bank.service_commission_min = Some(tolem_wire::Amount::from_tiyn(200));
    })
    .await;
    let device = scene.ps.device("POS-1").await;
    scene.ps.paid(&device, 1500, "C1").await;
    scene.ps.paid(&device, 20, "C2").await;
    // demowallet has no «Сервис» setting: its monthly commission is its payment commission.
    paid_by(&scene.ps, &device, "demowallet", 300, "W1").await;
    scene.set_clock("2026-12-01T10:00:00");
    let commissions = |csv: Vec<u8>| -> Vec<String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&csv[..]);
        let records: Vec<csv::StringRecord> =
            reader.records().map(|r| r.expect("a record")).collect();
        records[2..records.len() - 3]
            .iter()
            .map(|r| r[6].to_owned())
            .collect()
    };
    let (_, daily) = cabinet(&scene.ps, "daily/2026-11-26.csv", Some(BANK_TOKEN)).await;
    assert_eq!(commissions(daily), ["15.00", "0.20"], "1 %");
    let (_, monthly) = cabinet(&scene.ps, "monthly/2026-11.csv", Some(BANK_TOKEN)).await;
    assert_eq!(
        commissions(monthly),
        ["7.50", "2.00"],
        "0.5 %, at least 2.00"
    );
    let (_, monthly) = cabinet(&scene.ps, "monthly/2026-11.csv", Some(WALLET_TOKEN)).await;
    assert_eq!(commissions(monthly), ["2.40"], "0.8 %, at least 1.00");
    // Settings that make no sense are refused, naming the field.
    for (change, field) in [
        (("commission_bps", json!(10_001)), "commission_bps"),
        (
            ("service_commission_bps", json!(20_000)),
            "service_commission_bps",
        ),
    ] {
        let (status, answer) = put_mpp(&scene.ps, "demowallet", &[change]).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(field), "{answer}");
    }
    let (status, answer) = put_mpp(
        &scene.ps,
        "demowallet",
        &[("service_commission_min", json!("1.00"))],
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("service_commission_min needs"),
        "{answer}"
    );
}

/// The register files being made in `dir` (`.tolem-register-…`).
fn registers_in_making(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("the folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".tolem-register-"))
        .collect()
}

#[tokio::test]
async fn a_download_its_client_left_stops_and_leaves_no_file() {
    if !sqlite_only("it fills the SQLite file directly") {
        return;
    }
    let temp = tempfile::tempdir().expect("a temp dir");
    let place = temp.path().to_owned();
    let scene = Scene::start("2026-11-27T10:00:00", |c| {
        c.registers.temp_dir = Some(place);
        c.registers.cabinet_concurrency_max = 1;
    })
    .await;
    let ps = &scene.ps;
    crate::register_bench::fill(&ps.db_path(), 60_000);
    // Clients that leave long before their register is made: each making stops at its next
    // line. Before, each went on to the end with its place given back at once, and wrote its
    // file again after the name was removed, leaving it behind.
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(100))
        .build()
        .expect("a client");
    for format in ["xlsx", "csv", "xlsx"] {
        let url = format!("{}/cabinet/v1/registers/daily/2026-11-26.{format}", ps.url);
        // Left, or told that the one place is still taken by a making that is stopping (or,
        // on a machine fast enough, made in time).
        let left = impatient.get(url).bearer_auth(BANK_TOKEN).send().await;
        assert!(
            left.as_ref()
                .map_or(true, |r| r.status() == 503 || r.status() == 200),
            "the client left before the answer: {:?}",
            left.map(|r| r.status())
        );
    }
    // The place comes back once the making stopped, and a patient client gets the whole day.
    eventually("a register is made for a client that waits", || async {
        cabinet(ps, "daily/2026-11-25.csv", Some(BANK_TOKEN))
            .await
            .0
            == 200
    })
    .await;
    let (status, whole) = cabinet(ps, "daily/2026-11-26.csv", Some(BANK_TOKEN)).await;
    assert_eq!(status, 200);
    let whole = String::from_utf8(whole).expect("text");
    assert!(whole.lines().count() > 60_000, "every operation is there");
    // Time for a making nobody stopped to reach its end (two of these registers, above) and
    // write its file again.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let left = registers_in_making(temp.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn a_start_removes_registers_a_crash_cut_short_but_not_those_another_node_makes() {
    let temp = tempfile::tempdir().expect("a temp dir");
    let place = temp.path().to_owned();
    let while_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(1200);
    // Left by a process that died twenty minutes ago while making it: nobody holds it.
    let crashed = temp.path().join(".tolem-register-crashed.xlsx");
    std::fs::File::create(&crashed)
        .and_then(|f| f.set_modified(while_ago))
        .expect("a leftover");
    // Made for two hours by another node sharing the folder, which holds its lock.
    let making = temp.path().join(".tolem-register-making.xlsx");
    let other_node = std::fs::File::create(&making).expect("a register in making");
    other_node
        .set_modified(while_ago - std::time::Duration::from_secs(7200))
        .expect("a time");
    other_node.try_lock().expect("its lock");
    let _scene = Scene::start("2026-11-27T10:00:00", |c| {
        c.registers.temp_dir = Some(place);
    })
    .await;
    eventually("the leftover is removed at the start", || async {
        !crashed.exists()
    })
    .await;
    assert_eq!(
        registers_in_making(temp.path()),
        [".tolem-register-making.xlsx"]
    );
}

#[tokio::test]
async fn one_mpps_downloads_never_take_every_place() {
    if !sqlite_only("it fills the SQLite file directly") {
        return;
    }
    let scene = Scene::start("2026-11-27T10:00:00", |c| {
        c.registers.cabinet_concurrency_max = 2;
    })
    .await;
    let ps = &scene.ps;
    crate::register_bench::fill(&ps.db_path(), 60_000);
    // demobank's long register takes its one place of the two...
    let url = format!("{}/cabinet/v1/registers/daily/2026-11-26.xlsx", ps.url);
    let long = tokio::spawn(ps.http.get(url).bearer_auth(BANK_TOKEN).send());
    let mut busy = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // ...so its second waits (its half of the places is taken)...
        if cabinet(ps, "daily/2026-11-25.csv", Some(BANK_TOKEN))
            .await
            .0
            == 503
        {
            busy = true;
            break;
        }
    }
    assert!(busy, "demobank's second register waits for its first");
    // ...while demowallet still has a place.
    let (status, _) = cabinet(ps, "daily/2026-11-25.csv", Some(WALLET_TOKEN)).await;
    assert_eq!(status, 200);
    let long = long.await.expect("joined").expect("an answer");
    assert_eq!(long.status(), 200);
}
