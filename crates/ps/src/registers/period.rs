//! The period a register covers: one calendar day or one calendar month in the operator's time
//! zone (DECISIONS 25), and the instants that bound it.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::RegisterError;

/// Daily or monthly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterKind {
    Daily,
    Monthly,
}

impl RegisterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Daily => "daily",
            RegisterKind::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<RegisterKind> {
        match text {
            "daily" => Some(RegisterKind::Daily),
            "monthly" => Some(RegisterKind::Monthly),
            _ => None,
        }
    }
}

/// The first year a register can be of: no PS ran before.
const FIRST_YEAR: i16 = 2000;

/// A calendar day or a calendar month. A month is kept as its first day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Day(Date),
    Month(Date),
}

impl Period {
    pub(crate) fn month_of(day: Date) -> Period {
        Period::Month(day.first_of_month())
    }

    /// Parses `2026-11-26` (daily) or `2026-11` (monthly): digits only, of a year from
    /// [`FIRST_YEAR`] on (no sign, no year 0).
    pub fn parse(kind: RegisterKind, text: &str) -> Result<Period, RegisterError> {
        let bad = || RegisterError::BadPeriod(text.chars().take(20).collect());
        let digits =
            |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = text.split('-').collect();
        let period = match (kind, parts.as_slice()) {
            (RegisterKind::Daily, [year, month, day])
                if digits(year, 4) && digits(month, 2) && digits(day, 2) =>
            {
                text.parse::<Date>().map(Period::Day).map_err(|_| bad())?
            }
            (RegisterKind::Monthly, [year, month]) if digits(year, 4) && digits(month, 2) => {
                let year: i16 = year.parse().map_err(|_| bad())?;
                let month: i8 = month.parse().map_err(|_| bad())?;
                Date::new(year, month, 1)
                    .map(Period::Month)
                    .map_err(|_| bad())?
            }
            _ => return Err(bad()),
        };
        if period.first_day().year() < FIRST_YEAR {
            return Err(bad());
        }
        Ok(period)
    }

    pub fn kind(self) -> RegisterKind {
        match self {
            Period::Day(_) => RegisterKind::Daily,
            Period::Month(_) => RegisterKind::Monthly,
        }
    }

    /// The first day of the period.
    pub(crate) fn first_day(self) -> Date {
        match self {
            Period::Day(day) | Period::Month(day) => day,
        }
    }

    /// The day after the period's last day.
    pub(crate) fn end_day(self) -> Result<Date, RegisterError> {
        let end = match self {
            Period::Day(day) => day.tomorrow(),
            Period::Month(first) => first.last_of_month().tomorrow(),
        };
        end.map_err(|_| RegisterError::BadPeriod(self.to_string()))
    }

    /// `[start, end)`: the instants of the period's local midnights in `zone`.
    pub fn bounds(self, zone: &TimeZone) -> Result<(Timestamp, Timestamp), RegisterError> {
        let midnight = |day: Date| {
            day.to_zoned_datetime(zone.clone())
                .map(|z| z.timestamp())
                .map_err(|_| RegisterError::BadPeriod(self.to_string()))
        };
        Ok((midnight(self.first_day())?, midnight(self.end_day()?)?))
    }

    /// The file name of the register: `demobank-daily-2026-11-26.xlsx`. Characters of the
    /// caller name that are unsafe in a path or a header become `_`.
    pub fn file_name(self, mpp: &str, extension: &str) -> String {
        let mpp: String = mpp
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{mpp}-{}-{self}.{extension}", self.kind().as_str())
    }
}

impl Period {
    /// How people write it, in either language: `26.11.2026` or `11.2026` (an e-mail's subject
    /// and text; [`Period`]'s `Display` is the machine form of keys and URLs).
    pub fn human(&self) -> String {
        match self {
            Period::Day(day) => day.strftime("%d.%m.%Y").to_string(),
            Period::Month(first) => first.strftime("%m.%Y").to_string(),
        }
    }
}

impl fmt::Display for Period {
    /// `2026-11-26` or `2026-11`: the key of a delivery and the name used in URLs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Day(day) => write!(f, "{}", day.strftime("%Y-%m-%d")),
            Period::Month(first) => write!(f, "{}", first.strftime("%Y-%m")),
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    #[test]
    fn parses_formats_and_bounds_in_almaty() {
        let zone = tolem_wire::time::zone("Asia/Almaty").expect("bundled");
        let day = Period::parse(RegisterKind::Daily, "2026-11-26").expect("a day");
        assert_eq!(day, Period::Day(date(2026, 11, 26)));
        assert_eq!(day.to_string(), "2026-11-26");
        let (start, end) = day.bounds(&zone).expect("bounds");
        assert_eq!(start.to_string(), "2026-11-25T19:00:00Z");
        assert_eq!(end.to_string(), "2026-11-26T19:00:00Z");
        let month = Period::parse(RegisterKind::Monthly, "2026-02").expect("a month");
        assert_eq!(month.to_string(), "2026-02");
        assert_eq!(month.end_day().expect("end"), date(2026, 3, 1));
        for bad in [
            "2026-13",
            "26-11",
            "2026-1",
            "2026-11-31",
            "20261126",
            "x",
            "+999-01",
            "0000-01",
            "1999-12",
            "+999-01-01",
            "0000-01-01",
            "2026-+1",
            "2026-1-01",
        ] {
            assert!(Period::parse(RegisterKind::Monthly, bad).is_err(), "{bad}");
            assert!(Period::parse(RegisterKind::Daily, bad).is_err(), "{bad}");
        }
        assert_eq!(
            month.file_name("demobank", "xlsx"),
            "demobank-monthly-2026-02.xlsx"
        );
        assert_eq!(day.file_name("../x\"", "csv"), "___x_-daily-2026-11-26.csv");
    }
}
