//! When registers fall due for e-mail: a working day's registers are due from `send_at` local
//! time, and after downtime the scheduler catches up on the working days it missed (a bounded
//! number of them). E-mails go out only on working days from `send_at`: what was missed during
//! downtime over a weekend or a holiday waits for the next working day. Pure functions of the
//! calendar and the local time.

use jiff::civil::{Date, DateTime, Time};

use super::calendar::Calendar;

/// The latest working day whose registers are due at `local`: today once `send_at` has passed,
/// else the working day before.
pub(crate) fn delivery_day(calendar: &Calendar, local: DateTime, send_at: Time) -> Option<Date> {
    let today = local.date();
    if calendar.is_working_day(today) && local.time() >= send_at {
        Some(today)
    } else {
        calendar.previous_working_day(today)
    }
}

/// Whether register e-mails may go out at `local`: on a working day, from `send_at` (DECISIONS
/// 25). Catching up after downtime and retrying a refused e-mail both wait for this, so an MPP
/// never gets registers on a day off.
pub(crate) fn sending_open(calendar: &Calendar, local: DateTime, send_at: Time) -> bool {
    calendar.is_working_day(local.date()) && local.time() >= send_at
}

/// The delivery days whose registers are to be queued at `upto` (today's, once `send_at` has
/// passed): `upto` itself and the working days missed since `last_run`, the latest `max_missed`
/// of them; and, apart, the missed days left out beyond that bound (oldest first), so that the
/// caller can say which registers were not e-mailed. With no last run (e-mail was just turned on)
/// none: delivery starts with the next working day, not with registers of days before it.
pub(crate) fn days_to_queue(
    calendar: &Calendar,
    last_run: Option<Date>,
    upto: Date,
    max_missed: u32,
) -> (Vec<Date>, Vec<Date>) {
    let Some(last_run) = last_run else {
        return (Vec::new(), Vec::new());
    };
    let max_missed = usize::try_from(max_missed).unwrap_or(usize::MAX);
    let (mut days, mut left_out) = (Vec::new(), Vec::new());
    let mut missed = 0;
    let mut day = Some(upto);
    while let Some(at) = day {
        if at <= last_run {
            break;
        }
        if calendar.is_working_day(at) {
            if at == upto {
                days.push(at);
            } else if missed < max_missed {
                days.push(at);
                missed += 1;
            } else {
                left_out.push(at);
            }
        }
        day = calendar.previous_working_day(at);
    }
    days.reverse();
    left_out.reverse();
    (days, left_out)
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time};

    use super::*;

    #[test]
    fn a_working_day_is_due_from_send_at() {
        let cal = Calendar::default();
        let nine = time(9, 0, 0, 0);
        // Thursday 2026-11-26.
        let before = date(2026, 11, 26).at(8, 59, 59, 0);
        let after = date(2026, 11, 26).at(9, 0, 0, 0);
        assert_eq!(delivery_day(&cal, before, nine), Some(date(2026, 11, 25)));
        assert_eq!(delivery_day(&cal, after, nine), Some(date(2026, 11, 26)));
        // Sunday: Friday's delivery is the latest.
        let sunday = date(2026, 11, 29).at(12, 0, 0, 0);
        assert_eq!(delivery_day(&cal, sunday, nine), Some(date(2026, 11, 27)));
    }

    #[test]
    fn e_mails_go_out_on_working_days_from_send_at_only() {
        let nine = time(9, 0, 0, 0);
        let cal = Calendar::default();
        let open = |at: DateTime| sending_open(&cal, at, nine);
        assert!(
            open(date(2026, 11, 26).at(9, 0, 0, 0)),
            "a Thursday at 09:00"
        );
        assert!(open(date(2026, 11, 26).at(23, 59, 59, 0)));
        assert!(!open(date(2026, 11, 26).at(8, 59, 59, 0)), "before send_at");
        assert!(!open(date(2026, 11, 28).at(12, 0, 0, 0)), "a Saturday");
        assert!(
            !open(date(2026, 12, 16).at(12, 0, 0, 0)),
            "Independence Day"
        );
        let decreed = Calendar::new(&[], &[date(2026, 11, 28)]);
        assert!(sending_open(
            &decreed,
            date(2026, 11, 28).at(9, 0, 0, 0),
            nine
        ));
    }

    #[test]
    fn catching_up_is_bounded_and_starts_after_the_last_run() {
        let cal = Calendar::default();
        let upto = date(2026, 11, 30); // a Monday
        let none: (Vec<Date>, Vec<Date>) = (Vec::new(), Vec::new());
        assert_eq!(days_to_queue(&cal, None, upto, 10), none);
        assert_eq!(days_to_queue(&cal, Some(upto), upto, 10), none);
        assert_eq!(
            days_to_queue(&cal, Some(date(2026, 11, 25)), upto, 10),
            (
                vec![date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 30)],
                vec![]
            )
        );
        // Today's delivery is not a missed one: two missed days besides it, and the rest said.
        assert_eq!(
            days_to_queue(&cal, Some(date(2026, 11, 20)), upto, 2),
            (
                vec![date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 30)],
                vec![date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]
            )
        );
    }

    #[test]
    fn exactly_the_bound_of_missed_days_is_caught_up_after_a_holiday() {
        // Last run Tuesday 2026-12-01, back on Thursday 2026-12-17 after send_at: the working
        // days missed are December 2-4, 7-11, 14 and 15 (the 16th is Independence Day), ten of
        // them, so with the default bound every one is delivered, December 1's daily included.
        let cal = Calendar::default();
        let (days, left_out) = days_to_queue(&cal, Some(date(2026, 12, 1)), date(2026, 12, 17), 10);
        assert_eq!(days.first(), Some(&date(2026, 12, 2)));
        assert_eq!(days.len(), 11, "{days:?}");
        assert!(left_out.is_empty(), "{left_out:?}");
        let (days, left_out) = days_to_queue(&cal, Some(date(2026, 12, 1)), date(2026, 12, 17), 9);
        assert_eq!(days.first(), Some(&date(2026, 12, 3)));
        assert_eq!(left_out, [date(2026, 12, 2)]);
    }
}
