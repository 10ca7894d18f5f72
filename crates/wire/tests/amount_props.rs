//! Property tests of [`Amount`] (DECISIONS 1–3): the text forms round-trip, formatting is always
//! the plain two-decimal form, checked arithmetic agrees with a wider integer model and never
//! wraps, and the parser accepts exactly the texts of a small reference grammar.
//!
//! `PROPTEST_CASES` raises the number of cases (default 256 per property here, well under a
//! second in a debug build).

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use tolem_wire::Amount;
use tolem_wire::amount::{AMOUNT_DIGITS_MAX, AMOUNT_TIYN_MAX, AmountError, as_number, strict_json};

/// The largest amount whose wire form has at most [`AMOUNT_DIGITS_MAX`] digits: 9 999 999 999 999.99.
const WIRE_TIYN_MAX: u64 = 999_999_999_999_999;

#[test]
fn the_largest_amount_is_the_largest_written_with_fifteen_digits() {
    assert_eq!(tolem_wire::amount::AMOUNT_TIYN_MAX, WIRE_TIYN_MAX);
}

/// The reference grammar of DECISIONS 3, written independently of the parser: ASCII digits,
/// optionally a point and one or two ASCII digits, at most 15 digits in all, and no more than
/// 9 999 999 999 999.99 (so that the written form, with two decimals, is read back). Returns the tiyn
/// (in a wider integer, so that the model itself cannot overflow) or the error the parser must give.
fn reference(text: &str) -> Result<u128, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let (whole, fraction) = match text.find('.') {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let fraction_ok = fraction.is_none_or(|f| digits(f) && f.len() <= 2);
    if !digits(whole) || !fraction_ok {
        return Err(AmountError::Malformed);
    }
    let fraction = fraction.unwrap_or("");
    if whole.len() + fraction.len() > AMOUNT_DIGITS_MAX {
        return Err(AmountError::TooLong);
    }
    let mut tiyn: u128 = 0;
    for c in whole.chars() {
        tiyn = tiyn * 10 + u128::from(c.to_digit(10).unwrap_or(0));
    }
    let mut cents: u128 = 0;
    for c in format!("{fraction:0<2}").chars() {
        cents = cents * 10 + u128::from(c.to_digit(10).unwrap_or(0));
    }
    let tiyn = tiyn * 100 + cents;
    if tiyn > u128::from(WIRE_TIYN_MAX) {
        return Err(AmountError::TooLong);
    }
    Ok(tiyn)
}

/// Texts near the grammar: mostly digits and points, with the characters that make numbers
/// wrong (signs, exponents, spaces, commas, other scripts' digits).
fn near_amount_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => "[0-9]{1,4}",
        3 => Just(".".to_owned()),
        1 => prop::sample::select(vec![
            "-", "+", "e", "E", " ", ",", "_", "0x", "\u{0663}", "\u{FF11}", "\u{00B9}", "\t",
            "\n", "inf", "NaN", "",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// Any amount a request can carry, with the edges of the range over-represented.
fn wire_amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=WIRE_TIYN_MAX,
        0u64..1_000,
        prop::sample::select(vec![0, 1, 99, 100, 101, WIRE_TIYN_MAX - 1, WIRE_TIYN_MAX]),
    ]
}

fn any_amount() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), wire_amount(), (u64::MAX - 1_000)..=u64::MAX,]
}

#[derive(Deserialize)]
struct Strict {
    #[serde(deserialize_with = "strict_json")]
    a: Amount,
}

#[derive(serde::Serialize)]
struct AsNumber {
    #[serde(serialize_with = "as_number")]
    a: Amount,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every amount is written with digits, one point and exactly two decimals; never an
    /// exponent, a sign or a separator.
    #[test]
    fn formatting_is_plain_with_two_decimals(tiyn in any_amount()) {
        let text = Amount::from_tiyn(tiyn).to_string();
        let (whole, fraction) = text.split_once('.').expect("a point");
        prop_assert_eq!(fraction.len(), 2, "{}", text);
        prop_assert!(whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit()), "{}", text);
        prop_assert!(whole == "0" || !whole.starts_with('0'), "{}", text);
        prop_assert_eq!(reference(&text).ok(), (whole.len() + 2 <= AMOUNT_DIGITS_MAX).then_some(u128::from(tiyn)));
    }

    /// parse ∘ format is the identity on every amount a request can carry, in each wire form:
    /// the text, the MPP API's JSON string and the merchant API's JSON number.
    #[test]
    fn wire_forms_round_trip(tiyn in wire_amount()) {
        let amount = Amount::from_tiyn(tiyn);
        prop_assert_eq!(Amount::parse(&amount.to_string()), Ok(amount));
        let string = serde_json::to_string(&amount).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<Amount>(&string).ok(), Some(amount));
        let number = serde_json::to_string(&AsNumber { a: amount }).expect("serializes");
        let strict: Strict = serde_json::from_str(&number).expect("reads back");
        prop_assert_eq!(strict.a, amount);
        // The tolerant reader (configuration files) takes the number through a float; within
        // 15 digits that float's shortest text is exact.
        let tolerant = serde_json::from_str::<Amount>(&amount.to_string());
        prop_assert_eq!(tolerant.ok(), Some(amount));
    }

    /// Above 15 digits the written form is refused by name, never read back as something else.
    #[test]
    fn amounts_past_the_wire_limit_are_refused_as_too_long(tiyn in (WIRE_TIYN_MAX + 1)..=u64::MAX) {
        prop_assert_eq!(Amount::parse(&Amount::from_tiyn(tiyn).to_string()), Err(AmountError::TooLong));
    }

    /// The parser accepts exactly the reference grammar's texts, with the same value, and names
    /// the same error for the rest.
    #[test]
    fn parser_accepts_exactly_the_grammar(text in near_amount_text()) {
        let parsed = Amount::parse(&text).map(|a| u128::from(a.tiyn()));
        prop_assert_eq!(parsed, reference(&text), "{:?}", text);
    }

    #[test]
    fn parser_accepts_nothing_outside_the_grammar_from_arbitrary_text(text in any::<String>()) {
        let parsed = Amount::parse(&text).map(|a| u128::from(a.tiyn()));
        prop_assert_eq!(parsed, reference(&text), "{:?}", text);
    }

    /// A JSON string carries exactly the text forms; a JSON number exactly the texts that are
    /// also amounts (so no exponent, no sign, no third decimal survives a number either).
    #[test]
    fn strict_json_agrees_with_the_grammar(text in near_amount_text()) {
        let quoted = serde_json::to_string(&text).expect("a JSON string");
        let raw = RawValue::from_string(quoted).expect("valid JSON");
        prop_assert_eq!(Amount::parse_json(&raw).map(|a| u128::from(a.tiyn())).ok(), reference(&text).ok());
        if let Ok(raw) = RawValue::from_string(text.clone()) {
            let parsed = Amount::parse_json(&raw).map(|a| u128::from(a.tiyn())).ok();
            prop_assert_eq!(parsed, reference(text.trim()).ok(), "{:?}", text);
        }
    }

    /// Checked arithmetic equals the arithmetic of a wider integer when that fits, and is `None`
    /// exactly when it does not: nothing wraps, nothing goes negative, and a commission or an
    /// amount in tenge never passes what the wire carries (`AMOUNT_TIYN_MAX`).
    #[test]
    fn checked_arithmetic_never_wraps(a in any_amount(), b in any_amount(), bps in prop_oneof![0u32..=10_000, any::<u32>()]) {
        let (x, y) = (Amount::from_tiyn(a), Amount::from_tiyn(b));
        let fit = |v: u128| {
            u64::try_from(v)
                .ok()
                .filter(|&tiyn| tiyn <= AMOUNT_TIYN_MAX)
                .map(Amount::from_tiyn)
        };
        // A total may pass what one amount on the wire can be; it never wraps.
        prop_assert_eq!(
            x.checked_add(y),
            u64::try_from(u128::from(a) + u128::from(b)).ok().map(Amount::from_tiyn)
        );
        let difference = i128::from(a) - i128::from(b);
        prop_assert_eq!(x.checked_sub(y), u64::try_from(difference).ok().map(Amount::from_tiyn));
        // Commission: a * bps / 10 000, rounded half up.
        let product = u128::from(a) * u128::from(bps);
        prop_assert_eq!(x.checked_mul_bps(bps), fit((product + 5_000) / 10_000));
        prop_assert_eq!(Amount::from_tenge(a), fit(u128::from(a) * 100));
        prop_assert_eq!(x.is_whole_tenge(), a % 100 == 0);
        prop_assert_eq!(Amount::checked_from_tiyn(a), fit(u128::from(a)));
    }

    /// A commission of at most 100 % never exceeds the amount it is taken from.
    #[test]
    fn commission_never_exceeds_the_amount(a in 0..=AMOUNT_TIYN_MAX, bps in 0u32..=10_000) {
        let commission = Amount::from_tiyn(a).checked_mul_bps(bps);
        prop_assert!(commission.is_some_and(|c| c.tiyn() <= a), "{a} {bps}");
    }
}
