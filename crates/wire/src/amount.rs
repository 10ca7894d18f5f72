//! Money on the wire and inside the system: [`Amount`], an exact count of tiyn (1/100 tenge).
//!
//! This module is the one place where amounts are parsed from and formatted to the wire
//! (DECISIONS 1–4). Every API type that carries money uses [`Amount`]; the MPP API writes it as a
//! string with two decimals (`"100.00"`), the merchant API as a JSON number with two decimals
//! (`100.00`, see [`as_number`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::Locale;

/// The most digits (integer and fraction together) an amount may have on the wire (DECISIONS 3).
pub const AMOUNT_DIGITS_MAX: usize = 15;

/// The largest amount accepted: the largest whose written form (always two decimals, DECISIONS 2)
/// has at most [`AMOUNT_DIGITS_MAX`] digits, 9 999 999 999 999.99 tenge. A larger one would be
/// written with more digits than anyone reading it accepts, so the PS could take a payment it
/// cannot refund; `"123456789012345"` (15 digits, but 17 when written) is refused as too long.
pub const AMOUNT_TIYN_MAX: u64 = 999_999_999_999_999;

/// A non-negative amount of money in tiyn. It cannot be negative and never overflows silently:
/// arithmetic is checked and returns `None` on overflow or underflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

/// Why a text is not an amount.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is empty")]
    Empty,
    #[error("the amount is not a plain decimal number with at most two decimals")]
    Malformed,
    #[error("the amount has more than {AMOUNT_DIGITS_MAX} digits")]
    TooLong,
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// An amount of `tiyn`, which the caller knows to be at most [`AMOUNT_TIYN_MAX`] (a count
    /// read back from the store, a constant); [`Amount::checked_from_tiyn`] checks it.
    pub const fn from_tiyn(tiyn: u64) -> Amount {
        Amount(tiyn)
    }

    /// An amount kept as a signed count of tiyn (a database's integer column); `None` below zero
    /// or past [`AMOUNT_TIYN_MAX`], which only a damaged row holds. The one reading of stored
    /// money, for the PS's store, the reference MPP's ledger and the kit's refund store.
    pub fn from_stored_tiyn(tiyn: i64) -> Option<Amount> {
        u64::try_from(tiyn).ok().and_then(Amount::checked_from_tiyn)
    }

    /// An amount of `tiyn`; `None` past [`AMOUNT_TIYN_MAX`], which could not be written back.
    pub const fn checked_from_tiyn(tiyn: u64) -> Option<Amount> {
        if tiyn <= AMOUNT_TIYN_MAX {
            Some(Amount(tiyn))
        } else {
            None
        }
    }

    /// Whole tenge; `None` when the result would not fit.
    pub fn from_tenge(tenge: u64) -> Option<Amount> {
        tenge.checked_mul(100).and_then(Amount::checked_from_tiyn)
    }

    pub const fn tiyn(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True when the amount has no fractional tenge (SPEC 4.3 asks notifyPayment for that).
    pub const fn is_whole_tenge(self) -> bool {
        self.0.is_multiple_of(100)
    }

    /// The sum; `None` on overflow. Not held to [`AMOUNT_TIYN_MAX`]: a register's or a month's
    /// total of many amounts may pass what one amount on the wire can be.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `self * bps / 10_000`, rounded half up; `None` past [`AMOUNT_TIYN_MAX`].
    pub fn checked_mul_bps(self, bps: u32) -> Option<Amount> {
        let product = u128::from(self.0).checked_mul(u128::from(bps))?;
        let rounded = (product + 5_000) / 10_000;
        u64::try_from(rounded)
            .ok()
            .filter(|&tiyn| tiyn <= AMOUNT_TIYN_MAX)
            .map(Amount)
    }

    /// Reads an amount as a person types it on a screen or a command line: spaces of any kind
    /// between the digits (`1 500`, `1\u{a0}500`), a comma or a point before the tiyn
    /// (`1500,50`), and the tenge sign after it (`1 500,00 ₸`, as the console shows amounts).
    /// What is left is read by [`Amount::parse`], so its limits hold; zero is an amount here, and
    /// the caller that needs one above it says so.
    /// A space inside the tenge must part groups of three digits, as the PS writes them: `1 0`
    /// is refused rather than read as 10.
    pub fn parse_typed(text: &str) -> Result<Amount, AmountError> {
        let text = text.trim();
        let text = text.strip_suffix('₸').map_or(text, str::trim_end);
        let (whole, fraction) = match text.split_once([',', '.']) {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let groups: Vec<&str> = whole.split(char::is_whitespace).collect();
        let grouped = groups.len() == 1
            || groups
                .iter()
                .enumerate()
                .all(|(i, group)| (1..=3).contains(&group.len()) && (i == 0 || group.len() == 3));
        if !grouped {
            return Err(AmountError::Malformed);
        }
        let mut compact = groups.concat();
        if let Some(fraction) = fraction {
            compact.push('.');
            compact.push_str(fraction);
        }
        Amount::parse(&compact)
    }

    /// Parses the text form: digits, optionally a point and one or two digits
    /// (`100`, `100.5`, `100.50`). No sign, no exponent, no spaces, at most 15 digits, and at
    /// most [`AMOUNT_TIYN_MAX`] (so that what is accepted is always written back readable).
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(AmountError::Malformed);
        }
        if text.contains('.') && fraction.is_empty() || fraction.len() > 2 {
            return Err(AmountError::Malformed);
        }
        if whole.len() + fraction.len() > AMOUNT_DIGITS_MAX {
            return Err(AmountError::TooLong);
        }
        // At most 15 digits, so neither number can overflow a u64.
        let whole: u64 = whole.parse().map_err(|_| AmountError::Malformed)?;
        let fraction: u64 = match fraction.len() {
            0 => 0,
            1 => {
                fraction
                    .parse::<u64>()
                    .map_err(|_| AmountError::Malformed)?
                    * 10
            }
            _ => fraction.parse().map_err(|_| AmountError::Malformed)?,
        };
        whole
            .checked_mul(100)
            .and_then(|t| t.checked_add(fraction))
            .filter(|&tiyn| tiyn <= AMOUNT_TIYN_MAX)
            .map(Amount)
            .ok_or(AmountError::TooLong)
    }

    /// The amount as a person reads it in `locale` (DECISIONS 35): tenge grouped by thousands
    /// with spaces, tiyn after a comma, and the tenge sign: `1 500,00 ₸`. For receipts, pages and
    /// the wallet; the wire forms stay those of [`Display`](fmt::Display) and [`as_number`].
    pub fn human(self, locale: Locale) -> HumanAmount {
        HumanAmount {
            tiyn: u128::from(self.0),
            locale,
        }
    }

    /// Parses a JSON value as written in a request: a string (`"100.00"`) or a number (`100.5`).
    pub fn parse_json(raw: &RawValue) -> Result<Amount, AmountError> {
        let text = raw.get().trim();
        if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).map_err(|_| AmountError::Malformed)?;
            Amount::parse(&inner)
        } else {
            Amount::parse(text)
        }
    }
}

impl fmt::Display for Amount {
    /// Always two decimals: `100.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_plain(f, u128::from(self.0))
    }
}

/// The one writing of money as text, for [`Amount`] and [`AmountTotal`]: two decimals.
fn write_plain(f: &mut fmt::Formatter<'_>, tiyn: u128) -> fmt::Result {
    write!(f, "{}.{:02}", tiyn / 100, tiyn % 100)
}

/// The sum of many amounts (a register's, a day's figures), in tiyn, exact and checked. One
/// amount is at most [`AMOUNT_TIYN_MAX`], but 18 447 of them pass what a `u64` holds; a total
/// holds more than any count of rows a store can keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmountTotal(u128);

impl AmountTotal {
    pub const ZERO: AmountTotal = AmountTotal(0);

    /// A total of `tiyn` (a sum read back from the store).
    pub const fn from_tiyn(tiyn: u128) -> AmountTotal {
        AmountTotal(tiyn)
    }

    pub const fn tiyn(self) -> u128 {
        self.0
    }

    /// The total with `amount` added; `None` on overflow.
    pub fn checked_add(self, amount: Amount) -> Option<AmountTotal> {
        self.0.checked_add(u128::from(amount.0)).map(AmountTotal)
    }

    /// The sum of two totals; `None` on overflow.
    pub fn checked_sum(self, other: AmountTotal) -> Option<AmountTotal> {
        self.0.checked_add(other.0).map(AmountTotal)
    }

    /// The total as one amount, when it is no more than one amount can be.
    pub fn as_amount(self) -> Option<Amount> {
        u64::try_from(self.0)
            .ok()
            .and_then(Amount::checked_from_tiyn)
    }

    /// The total as a person reads it: as [`Amount::human`].
    pub fn human(self, locale: Locale) -> HumanAmount {
        HumanAmount {
            tiyn: self.0,
            locale,
        }
    }
}

impl From<Amount> for AmountTotal {
    fn from(amount: Amount) -> AmountTotal {
        AmountTotal(u128::from(amount.0))
    }
}

impl fmt::Display for AmountTotal {
    /// Always two decimals, as [`Amount`]: `100.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_plain(f, self.0)
    }
}

/// An [`Amount`] (or [`AmountTotal`]) written for a person; made by [`Amount::human`].
#[derive(Clone, Copy, Debug)]
pub struct HumanAmount {
    tiyn: u128,
    locale: Locale,
}

impl fmt::Display for HumanAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Russian and Kazakh write money alike (space between thousands, decimal comma); the
        // match is here so that a third language is a decision, not an accident.
        let (group, decimal) = match self.locale {
            Locale::Ru | Locale::Kk => (' ', ','),
        };
        let tenge = (self.tiyn / 100).to_string();
        for (i, digit) in tenge.chars().enumerate() {
            if i > 0 && (tenge.len() - i).is_multiple_of(3) {
                write!(f, "{group}")?;
            }
            write!(f, "{digit}")?;
        }
        write!(f, "{decimal}{:02} ₸", self.tiyn % 100)
    }
}

impl Serialize for Amount {
    /// The MPP API form: a string with two decimals.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// Accepts a string or a number in the forms [`Amount::parse`] allows, from any format
    /// (JSON bodies, TOML configuration). A JSON number arrives here as a float and is read back
    /// through its shortest decimal form; the MPP API uses the stricter [`strict_json`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor)
    }
}

struct AmountVisitor;

impl serde::de::Visitor<'_> for AmountVisitor {
    type Value = Amount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount such as \"100.00\" or 100.5")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Amount, E> {
        Amount::parse(text).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Amount, E> {
        Amount::parse(&n.to_string()).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Amount, E> {
        Amount::parse(&n.to_string()).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Amount, E> {
        Amount::parse(&n.to_string()).map_err(E::custom)
    }
}

/// Reads an amount from the exact text of a JSON value, so that forms a float would hide
/// (`1e2`, `100.000`) are refused as DECISIONS 3 asks. For `#[serde(deserialize_with)]`.
pub fn strict_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    Amount::parse_json(&raw).map_err(serde::de::Error::custom)
}

/// [`strict_json`] for an optional field (use with `#[serde(default)]`).
pub fn strict_json_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Amount>, D::Error> {
    let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => Amount::parse_json(&raw)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Checks that every number in a JSON text (outside its strings) is written as an amount may be:
/// no exponent, at most two decimals. For bodies read into types shared with TOML (the admin
/// API's operator data), where an amount's JSON number reaches [`Amount`]'s `Deserialize` as a
/// float and `1e2` or `0.019999999999999999999` could no longer be told from `100` or `0.02`.
/// The error names the number.
pub fn plain_json_numbers(json: &str) -> Result<(), String> {
    let bytes = json.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            let number = json.get(start..i).unwrap_or_default();
            let decimals = number.split_once('.').map_or(0, |(_, f)| f.len());
            if number.contains(['e', 'E']) || decimals > 2 {
                return Err(format!(
                    "the number {number} is not written as an amount may be: no exponent, at most two decimals"
                ));
            }
            continue;
        }
        i += 1;
    }
    Ok(())
}

/// Serializes an amount as a JSON number with two decimals (`200.00`), the merchant API's form.
pub fn as_number<S: Serializer>(amount: &Amount, serializer: S) -> Result<S::Ok, S::Error> {
    let raw = RawValue::from_string(amount.to_string()).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_json_are_checked_outside_strings_only() {
        for fine in [
            r#"{"amount": 100, "min": 1.5, "bps": 150, "neg": -2.25}"#,
            r#"{"text": "1e2 and 100.000 are words here", "q": "a \"1e9\" b"}"#,
            "[]",
        ] {
            assert_eq!(plain_json_numbers(fine), Ok(()), "{fine}");
        }
        for bad in [
            r#"{"amount": 1e2}"#,
            r#"{"amount": 100.000}"#,
            r#"{"a": "x", "amount": 1.5E+1}"#,
            r#"[0.019999999999999999999]"#,
        ] {
            let err = plain_json_numbers(bad).expect_err(bad);
            assert!(err.contains("no exponent"), "{err}");
        }
    }

    #[test]
    fn stored_money_is_read_within_what_an_amount_may_be() {
        let max = i64::try_from(AMOUNT_TIYN_MAX).expect("fits");
        assert_eq!(Amount::from_stored_tiyn(0).map(Amount::tiyn), Some(0));
        assert_eq!(
            Amount::from_stored_tiyn(max).map(Amount::tiyn),
            Some(AMOUNT_TIYN_MAX)
        );
        assert_eq!(Amount::from_stored_tiyn(max + 1), None);
        assert_eq!(Amount::from_stored_tiyn(-1), None);
    }

    #[test]
    fn reads_amounts_as_people_type_them() {
        for (text, tiyn) in [
            ("1500", 150_000),
            ("1 500", 150_000),
            ("1\u{a0}500,50", 150_050),
            ("1\u{202f}500,00\u{a0}₸", 150_000),
            ("1500.5", 150_050),
            ("500 ₸", 50_000),
            ("0,01", 1),
            ("0", 0),
        ] {
            assert_eq!(
                Amount::parse_typed(text).map(Amount::tiyn),
                Ok(tiyn),
                "{text}"
            );
        }
        for text in [
            "",
            "₸",
            "-1",
            "1e3",
            "1,234,5",
            "abc",
            "1.001",
            "₸500",
            "500 ₸₸",
            "1 0",
            "1 50",
            "1500 000",
            "1  500",
            "1 500, 50",
            "1\u{3000}5",
        ] {
            assert!(Amount::parse_typed(text).is_err(), "{text}");
        }
    }

    #[test]
    fn parses_the_forms_the_regulation_uses() {
        for (text, tiyn) in [
            ("100", 10_000),
            ("100.5", 10_050),
            ("100.00", 10_000),
            ("0.01", 1),
        ] {
            assert_eq!(Amount::parse(text), Ok(Amount(tiyn)), "{text}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "",
            "-1",
            "1e2",
            "1.",
            ".5",
            "1.234",
            "1,00",
            " 1",
            "+1",
            "0x10",
            "1234567890123456",
        ] {
            assert!(Amount::parse(text).is_err(), "{text}");
        }
        // 15 digits, but 17 when written with two decimals: more than anyone reads back.
        assert_eq!(Amount::parse("123456789012345"), Err(AmountError::TooLong));
        assert_eq!(
            Amount::parse("9999999999999.99"),
            Ok(Amount(AMOUNT_TIYN_MAX))
        );
        assert_eq!(Amount::parse("0000000000100.5"), Ok(Amount(10_050)));
    }

    #[test]
    fn json_strings_and_numbers() {
        #[derive(Deserialize)]
        struct S {
            #[serde(deserialize_with = "strict_json")]
            a: Amount,
        }
        let parse =
            |json: &str| serde_json::from_str::<S>(&format!("{{\"a\":{json}}}")).map(|s| s.a);
        assert_eq!(parse("\"100.00\"").ok(), Some(Amount(10_000)));
        assert_eq!(parse("100.5").ok(), Some(Amount(10_050)));
        assert_eq!(parse("100").ok(), Some(Amount(10_000)));
        assert!(parse("1e2").is_err());
        assert!(parse("-5").is_err());
        assert!(parse("null").is_err());
        assert!(parse("\"\"").is_err());
        assert!(parse("100.000").is_err());
        // The tolerant form reads floats through their decimal text.
        assert_eq!(
            serde_json::from_str::<Amount>("150.5").ok(),
            Some(Amount(15_050))
        );
        assert_eq!(
            serde_json::from_str::<Amount>("\"7\"").ok(),
            Some(Amount(700))
        );
    }

    #[test]
    fn formats_two_decimals_as_string_and_number() {
        assert_eq!(
            serde_json::to_string(&Amount(10_050)).ok().as_deref(),
            Some("\"100.50\"")
        );
        #[derive(Serialize)]
        struct N {
            #[serde(serialize_with = "as_number")]
            a: Amount,
        }
        assert_eq!(
            serde_json::to_string(&N { a: Amount(7) }).ok().as_deref(),
            Some("{\"a\":0.07}")
        );
    }

    #[test]
    fn human_form_groups_thousands_with_a_decimal_comma() {
        for locale in [Locale::Ru, Locale::Kk] {
            for (tiyn, text) in [
                (0, "0,00 ₸"),
                (5, "0,05 ₸"),
                (99_999, "999,99 ₸"),
                (150_000, "1 500,00 ₸"),
                (5_000_000, "50 000,00 ₸"),
                (123_456_789_012, "1 234 567 890,12 ₸"),
                (u64::MAX, "184 467 440 737 095 516,15 ₸"),
            ] {
                assert_eq!(Amount(tiyn).human(locale).to_string(), text);
            }
        }
        // The wire form is untouched.
        assert_eq!(Amount(150_000).to_string(), "1500.00");
    }

    #[test]
    fn a_total_holds_more_than_one_amount_and_is_written_alike() {
        let max = Amount(AMOUNT_TIYN_MAX);
        let mut total = AmountTotal::ZERO;
        for _ in 0..20_000 {
            total = total.checked_add(max).expect("no overflow");
        }
        assert_eq!(total.tiyn(), 20_000 * u128::from(AMOUNT_TIYN_MAX));
        assert_eq!(total.to_string(), "199999999999999800.00");
        assert_eq!(
            total.human(Locale::Ru).to_string(),
            "199 999 999 999 999 800,00 ₸"
        );
        assert_eq!(total.as_amount(), None);
        let one = AmountTotal::from(Amount(150_000));
        assert_eq!(one.to_string(), Amount(150_000).to_string());
        assert_eq!(
            one.human(Locale::Kk).to_string(),
            Amount(150_000).human(Locale::Kk).to_string()
        );
        assert_eq!(one.as_amount(), Some(Amount(150_000)));
        assert_eq!(
            AmountTotal::from_tiyn(u128::MAX).checked_add(Amount(1)),
            None
        );
    }

    #[test]
    fn checked_arithmetic() {
        assert_eq!(Amount(5).checked_sub(Amount(6)), None);
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        // One amount never passes what the wire can carry; a total may.
        assert_eq!(
            Amount(AMOUNT_TIYN_MAX).checked_add(Amount(1)),
            Some(Amount(AMOUNT_TIYN_MAX + 1))
        );
        assert_eq!(Amount::checked_from_tiyn(AMOUNT_TIYN_MAX + 1), None);
        assert_eq!(Amount::from_tenge(AMOUNT_TIYN_MAX / 100 + 1), None);
        assert_eq!(Amount(10_000).checked_mul_bps(150), Some(Amount(150)));
        assert_eq!(Amount(333).checked_mul_bps(150), Some(Amount(5)));
    }
}
