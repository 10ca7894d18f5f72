//! A register's day is the operator's calendar day to the millisecond (DECISIONS 25).

use calamine::{Data, Reader, Xlsx, open_workbook};
use tolem_ps::clock::Clock;
use tolem_ps::registers::make::{self, Format};
use tolem_ps::registers::{Period, RegisterKind};

use crate::harness::*;

/// Payment ids listed in a CSV register (the third column of its operation rows).
fn listed(csv: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv).expect("text");
    text.lines()
        .skip(2)
        .take_while(|l| !l.trim_matches(',').is_empty())
        .map(|l| l.split(',').nth(2).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn an_operation_a_millisecond_before_midnight_is_in_that_days_register() {
    let ps = TestPs::start().await;
    let device = ps.device("POS-1").await;
    let zone = ps.app.zone.clone();
    // Move to one millisecond before the next local midnight.
    let now = ps.clock.now();
    let today = now.to_zoned_datetime(zone.clone()).date();
    let midnight = today
        .tomorrow()
        .expect("a tomorrow")
        .to_zoned_datetime(zone.clone())
        .expect("a midnight")
        .timestamp();
    let to_midnight = midnight.duration_since(now);
    ps.clock
        .advance(to_midnight - jiff::SignedDuration::from_millis(1));
    let late = ps.paid(&device, 100, "C1").await;
    ps.clock.advance(jiff::SignedDuration::from_millis(1));
    let early = ps.paid(&device, 200, "C1").await;
    ps.advance(2 * 86_400);
    let dir = tempfile::tempdir().expect("dir");
    for (day, want) in [
        (today, late),
        (today.tomorrow().expect("a tomorrow"), early),
    ] {
        let period = Period::parse(RegisterKind::Daily, &day.to_string()).expect("a day");
        let request = make::request(&ps.app, "demobank", period, Format::Csv).expect("a request");
        let (csv, _) = make::make_in_dir(&ps.app, request, dir.path())
            .await
            .expect("a register");
        assert_eq!(listed(&csv), vec![want.to_string()], "{day}");
    }
    // In the workbook the late payment shows 23:59:59 of its day: whole seconds, which Excel
    // shows as they are, where 23:59:59.999 would be shown rounded, as the next day's midnight.
    let period = Period::parse(RegisterKind::Daily, &today.to_string()).expect("a day");
    let request = make::request(&ps.app, "demobank", period, Format::Xlsx).expect("a request");
    let (xlsx, _) = make::make_in_dir(&ps.app, request, dir.path())
        .await
        .expect("a register");
    // Made again a while later, it is the same file byte for byte (dated by its period).
    let first = std::fs::read(&xlsx).expect("the workbook");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again_dir = tempfile::tempdir().expect("dir");
    let request = make::request(&ps.app, "demobank", period, Format::Xlsx).expect("a request");
    let (again, _) = make::make_in_dir(&ps.app, request, again_dir.path())
        .await
        .expect("a register");
    assert!(
        first == std::fs::read(&again).expect("the workbook"),
        "the same bytes"
    );
    let mut book: Xlsx<_> = open_workbook(&xlsx).expect("a workbook");
    let sheet = book.worksheet_range("Реестр").expect("the sheet");
    let Some(Data::DateTime(when)) = sheet.get((2, 3)) else {
        panic!("a date cell: {:?}", sheet.get((2, 3)));
    };
    let epoch: jiff::civil::DateTime = "1899-12-30T00:00:00".parse().expect("Excel's epoch");
    let last_second = today.at(23, 59, 59, 0);
    let serial = epoch.duration_until(last_second).as_secs_f64() / 86_400.0;
    assert!(
        (when.as_f64() - serial).abs() < 1e-9,
        "{} is not {last_second}",
        when.as_f64()
    );
}
