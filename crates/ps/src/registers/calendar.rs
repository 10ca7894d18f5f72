//! The working-day calendar of Kazakhstan and the delivery rules of DECISIONS 25.
//!
//! A working day is Monday to Friday, except the days off below, plus the weekend days the
//! configuration makes working (`registers.extra_working_days`); `registers.extra_holidays`
//! adds days off. Shipped:
//! - the national and state holidays of the law "On holidays": 1–2 January, 8 March,
//!   21–23 March (Nauryz), 1 May, 7 May, 9 May, 6 July, 30 August, 25 October, 16 December;
//! - the religious holidays that are days off: 7 January (Orthodox Christmas) and the first day
//!   of Kurban Ait, whose date moves and is shipped for 2026 (27 May) and 2027 (16 May);
//! - the Labour Code's transfer: a national or state holiday on a Saturday or Sunday makes the
//!   next working day a day off (religious holidays are not transferred).
//!
//! The government's yearly decrees that swap further days are not shipped: add them with the two
//! configuration lists. For years after 2027 the fixed holidays and transfers still apply, and
//! Kurban Ait must be added to `extra_holidays`.

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday, date};

use super::period::Period;

/// National and state holidays (month, day); transferred when they fall on a weekend.
const STATE_HOLIDAYS: [(i8, i8); 13] = [
    (1, 1),
    (1, 2),
    (3, 8),
    (3, 21),
    (3, 22),
    (3, 23),
    (5, 1),
    (5, 7),
    (5, 9),
    (7, 6),
    (8, 30),
    (10, 25),
    (12, 16),
];

/// Orthodox Christmas: a day off, not transferred.
const ORTHODOX_CHRISTMAS: (i8, i8) = (1, 7);

/// The first day of Kurban Ait, by year: a day off, not transferred.
const KURBAN_AIT: [Date; 2] = [date(2026, 5, 27), date(2027, 5, 16)];

/// The month from which a missing Kurban Ait of the next year is warned of (October).
const NEXT_YEAR_WARNED_FROM_MONTH: i8 = 10;

/// How far the calendar looks for a working day before giving up (a configuration that declares
/// months of holidays is a mistake, not a reason to loop).
const SEARCH_DAYS_MAX: i32 = 62;

#[derive(Clone, Debug, Default)]
pub(crate) struct Calendar {
    extra_holidays: BTreeSet<Date>,
    extra_working_days: BTreeSet<Date>,
}

fn is_weekend(day: Date) -> bool {
    matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The days off of `year` by law: holidays, religious days off and transfers.
fn days_off(year: i16) -> BTreeSet<Date> {
    let state: Vec<Date> = STATE_HOLIDAYS
        .iter()
        .filter_map(|&(m, d)| Date::new(year, m, d).ok())
        .collect();
    let mut off: BTreeSet<Date> = state.iter().copied().collect();
    off.extend(Date::new(year, ORTHODOX_CHRISTMAS.0, ORTHODOX_CHRISTMAS.1).ok());
    off.extend(KURBAN_AIT.iter().filter(|d| d.year() == year));
    for holiday in state.iter().filter(|d| is_weekend(**d)) {
        // The next day that is neither a weekend nor already off becomes a day off.
        let mut day = *holiday;
        for _ in 0..SEARCH_DAYS_MAX {
            let Ok(next) = day.tomorrow() else { break };
            day = next;
            if !is_weekend(day) && !off.contains(&day) {
                off.insert(day);
                break;
            }
        }
    }
    off
}

impl Calendar {
    pub(crate) fn new(extra_holidays: &[Date], extra_working_days: &[Date]) -> Calendar {
        Calendar {
            extra_holidays: extra_holidays.iter().copied().collect(),
            extra_working_days: extra_working_days.iter().copied().collect(),
        }
    }

    /// What an operator must add for the year of `today`, and from 1 October for the next: a
    /// year past the ones Kurban Ait is shipped for, with no `extra_holidays` day in it, would
    /// have registers sent on that day off. The next year is said only in the last quarter,
    /// when the government announces its days off and transfers: a warning at every start for a
    /// whole year ahead teaches operators to skip warnings. Kurban Ait falls in March or later
    /// until 2034, so the current year's warning still comes two months or more before the day.
    pub(crate) fn warnings(&self, today: Date) -> Vec<String> {
        let shipped_to = KURBAN_AIT.iter().map(|d| d.year()).max().unwrap_or(0);
        let next =
            (today.month() >= NEXT_YEAR_WARNED_FROM_MONTH).then(|| today.year().saturating_add(1));
        std::iter::once(today.year())
            .chain(next)
            .filter(|&year| year > shipped_to)
            .filter(|&year| !self.extra_holidays.iter().any(|d| d.year() == year))
            .map(|year| {
                format!(
                    "registers.extra_holidays has no day of {year}: Kurban Ait's date is shipped \
                     up to {shipped_to}, so registers would be e-mailed on it; add the first day \
                     of Kurban Ait {year} (and the year's decreed transfers) as the government \
                     announces them (docs/registers.md)"
                )
            })
            .collect()
    }

    /// The [`Self::warnings`] of `today` not in `said` yet, which then holds them: a PS that
    /// runs for months says each once, on the day it first applies (1 October for the next
    /// year, 1 January for a year not warned of before), not only at a start.
    pub(crate) fn new_warnings(&self, today: Date, said: &mut BTreeSet<String>) -> Vec<String> {
        self.warnings(today)
            .into_iter()
            .filter(|warning| said.insert(warning.clone()))
            .collect()
    }

    pub(crate) fn is_working_day(&self, day: Date) -> bool {
        if self.extra_working_days.contains(&day) {
            return true;
        }
        !(is_weekend(day)
            || self.extra_holidays.contains(&day)
            || days_off(day.year()).contains(&day))
    }

    /// The last working day before `day`, if there is one within reach.
    pub(crate) fn previous_working_day(&self, day: Date) -> Option<Date> {
        let mut at = day;
        for _ in 0..SEARCH_DAYS_MAX {
            at = at.yesterday().ok()?;
            if self.is_working_day(at) {
                return Some(at);
            }
        }
        None
    }

    /// The registers delivered on `day` (DECISIONS 25): the daily registers of every day since the
    /// previous working day (so Monday delivers Friday's, Saturday's and Sunday's), and on the
    /// first working day of a month the previous month's. Nothing on a day off.
    pub(crate) fn due_on(&self, day: Date) -> Vec<Period> {
        if !self.is_working_day(day) {
            return Vec::new();
        }
        let from = self
            .previous_working_day(day)
            .unwrap_or_else(|| day.yesterday().unwrap_or(day));
        let mut due = Vec::new();
        let mut at = from;
        while at < day {
            due.push(Period::Day(at));
            let Ok(next) = at.tomorrow() else { break };
            at = next;
        }
        let first_working_of_month = self
            .previous_working_day(day)
            .is_none_or(|previous| previous < day.first_of_month());
        if first_working_of_month && let Ok(last_month) = day.first_of_month().yesterday() {
            due.push(Period::month_of(last_month));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn days(list: &[Period]) -> Vec<String> {
        list.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn ships_the_days_off_of_2026_and_2027_with_transfers() {
        let cal = Calendar::default();
        let off_weekdays = |year| {
            days_off(year)
                .into_iter()
                .filter(|d| !is_weekend(*d))
                .map(|d| d.strftime("%m-%d").to_string())
                .collect::<Vec<_>>()
        };
        // 2026: 8 March is a Sunday (→ 9 March); Nauryz 21–22 March a weekend (→ 24, 25 March);
        // 9 May a Saturday (→ 11 May); 30 August and 25 October Sundays (→ 31 Aug, 26 Oct).
        assert_eq!(
            off_weekdays(2026),
            [
                "01-01", "01-02", "01-07", "03-09", "03-23", "03-24", "03-25", "05-01", "05-07",
                "05-11", "05-27", "07-06", "08-31", "10-26", "12-16"
            ]
        );
        // 2027: 2 January a Saturday (→ 4 Jan); 21 March a Sunday (→ 24 Mar); 1 May a Saturday
        // (→ 3 May); 9 May a Sunday (→ 10 May); Kurban Ait on Sunday 16 May is not transferred.
        assert_eq!(
            off_weekdays(2027),
            [
                "01-01", "01-04", "01-07", "03-08", "03-22", "03-23", "03-24", "05-03", "05-07",
                "05-10", "07-06", "08-30", "10-25", "12-16"
            ]
        );
        assert!(cal.is_working_day(date(2026, 11, 26)));
        assert!(!cal.is_working_day(date(2026, 11, 28)), "a Saturday");
    }

    #[test]
    fn monday_delivers_friday_saturday_and_sunday() {
        let cal = Calendar::default();
        // Monday 2026-11-30.
        assert_eq!(
            days(&cal.due_on(date(2026, 11, 30))),
            ["2026-11-27", "2026-11-28", "2026-11-29"]
        );
        assert_eq!(days(&cal.due_on(date(2026, 11, 26))), ["2026-11-25"]);
        assert!(
            cal.due_on(date(2026, 11, 28)).is_empty(),
            "nothing on a Saturday"
        );
    }

    #[test]
    fn holidays_are_skipped_and_the_month_goes_on_its_first_working_day() {
        let cal = Calendar::default();
        // 16 December 2026 (Wednesday) is off: Thursday delivers Tuesday's and Wednesday's.
        assert!(cal.due_on(date(2026, 12, 16)).is_empty());
        assert_eq!(
            days(&cal.due_on(date(2026, 12, 17))),
            ["2026-12-15", "2026-12-16"]
        );
        // 1, 2 January 2027 off, then the weekend, then 4 January (transfer): Tuesday 5 January
        // delivers 31 December to 4 January and December's monthly register.
        assert_eq!(
            days(&cal.due_on(date(2027, 1, 5))),
            [
                "2026-12-31",
                "2027-01-01",
                "2027-01-02",
                "2027-01-03",
                "2027-01-04",
                "2026-12"
            ]
        );
        // November 2026 ends on a Monday; Tuesday 1 December is the first working day.
        assert_eq!(
            days(&cal.due_on(date(2026, 12, 1))),
            ["2026-11-30", "2026-11"]
        );
    }

    #[test]
    fn configuration_adds_days_off_and_working_days() {
        let cal = Calendar::new(&[date(2026, 11, 27)], &[date(2026, 11, 28)]);
        assert!(!cal.is_working_day(date(2026, 11, 27)));
        assert!(cal.is_working_day(date(2026, 11, 28)), "a working Saturday");
        assert_eq!(
            days(&cal.due_on(date(2026, 11, 28))),
            ["2026-11-26", "2026-11-27"]
        );
        assert_eq!(
            days(&cal.due_on(date(2026, 11, 30))),
            ["2026-11-28", "2026-11-29"]
        );
    }

    #[test]
    fn a_year_past_the_shipped_kurban_ait_is_warned_of_until_a_day_of_it_is_added() {
        let none = Calendar::new(&[], &[]);
        assert!(
            none.warnings(date(2026, 12, 7)).is_empty(),
            "2026 and 2027 ship"
        );
        // 2028 is not said all through 2027: from its last quarter only.
        assert!(none.warnings(date(2027, 1, 1)).is_empty());
        assert!(none.warnings(date(2027, 9, 30)).is_empty());
        let said = none.warnings(date(2027, 10, 1));
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("no day of 2028"), "{said:?}");
        // In 2028 itself it is said from its first day; 2029 from October.
        let said = none.warnings(date(2028, 1, 10));
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("no day of 2028"), "{said:?}");
        assert_eq!(none.warnings(date(2028, 12, 31)).len(), 2);
        let added = Calendar::new(&[date(2028, 5, 4)], &[]);
        assert!(added.warnings(date(2027, 12, 1)).is_empty());
        assert!(added.warnings(date(2028, 6, 1)).is_empty());
    }

    #[test]
    fn a_ps_that_runs_for_months_says_each_warning_once_on_the_day_it_applies() {
        let none = Calendar::new(&[], &[]);
        let mut said = BTreeSet::new();
        assert!(none.new_warnings(date(2027, 9, 30), &mut said).is_empty());
        let first = none.new_warnings(date(2027, 10, 1), &mut said);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].contains("no day of 2028"), "{first:?}");
        // Not again the next day, nor when 2028 itself begins: it is the same warning.
        assert!(none.new_warnings(date(2027, 10, 2), &mut said).is_empty());
        assert!(none.new_warnings(date(2028, 1, 1), &mut said).is_empty());
        let next = none.new_warnings(date(2028, 10, 1), &mut said);
        assert_eq!(next.len(), 1, "{next:?}");
        assert!(next[0].contains("no day of 2029"), "{next:?}");
    }
}
