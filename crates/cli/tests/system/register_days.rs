//! A register's day is the operator's calendar day to the millisecond (DECISIONS 25).

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
}
