//! Request bodies read strictly, the same way on both APIs (DECISIONS 44).
//!
//! A body is one JSON object in which no object, at any depth, repeats a key: serde would
//! otherwise keep one of the two silently, and `{"Amount":1,"amount":100000}` would make a QR of
//! an amount the POS never showed. Numbers keep their exact text on the way to the request type, so
//! that an amount field read with [`crate::amount::strict_json`] sees `1e3` as written and refuses
//! it. When the body does not fit the request type, the error names the parameter (its path, e.g.
//! `payment.paymentAmount`) and what is wrong with it as a [`Param`].

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::amount::AmountError;
use crate::problem::{Param, Problem};

/// The deepest nesting a body may have: the bodies of both APIs are three levels deep, and a
/// bound keeps the checks' recursion (and their work) small whatever is sent.
pub const BODY_DEPTH_MAX: usize = 32;

/// Whether a `Content-Type` value says JSON: `application/json` in any case, parameters such
/// as `charset` allowed. Both the PS's MPP API and the kit's `/refund` read only such bodies, so
/// that a page in a browser cannot send them one without a CORS preflight.
pub fn is_json_media_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// How keys are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// The MPP API: names are exact (DECISIONS 6); `paymentId` and `PaymentId` are two keys.
    Exact,
    /// The merchant API: names in any case (DECISIONS 32), so keys are lower-cased before reading
    /// and `Amount` and `amount` are the same key, twice.
    AnyCase,
}

/// Reads a request body into `T` (DECISIONS 44). With [`Keys::AnyCase`], `T`'s fields are named in
/// lower case and the names in errors are lower case too.
///
/// The body is checked in one walk that borrows its keys and members from the body (an escaped
/// key is the only text it copies). With [`Keys::Exact`] the
/// body the walk passed is then read as it was sent; with [`Keys::AnyCase`] the walk writes it
/// again with its keys lower-cased, and that text is read.
pub fn read<T: DeserializeOwned>(body: &[u8], keys: Keys) -> Result<T, Param> {
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|_| Param::body(Problem::MalformedJson))?;
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(Param::body(Problem::NotObject));
    }
    // The walk parses each level's text again, so a body nested thousands deep would cost as
    // many passes as it has levels before the limit is met; one pass refuses it first.
    if nesting(text) > BODY_DEPTH_MAX {
        return Err(Param::body(Problem::TooDeep(BODY_DEPTH_MAX)));
    }
    match keys {
        Keys::Exact => {
            walk(raw, keys, Path::Root, 0, None)?;
            deserialize(text)
        }
        Keys::AnyCase => {
            let mut lowered = String::with_capacity(text.len());
            walk(raw, keys, Path::Root, 0, Some(&mut lowered))?;
            deserialize(&lowered)
        }
    }
}

/// Reads `T` from a body the walk passed, naming the parameter that does not fit.
fn deserialize<T: DeserializeOwned>(text: &str) -> Result<T, Param> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        what_is_wrong(path, &message(e.inner()))
    })
}

/// How deep objects and arrays nest in a valid JSON text (brackets inside strings do not count).
fn nesting(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'{' | b'[') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b'}' | b']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Where a value is in the body, as errors name it (`payment.x[0].a`); built on the stack during
/// the walk and written out only when an error names it.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Objects with more members than this find repeats with a hash set; smaller ones compare each
/// key with those before it.
const MEMBERS_COMPARED_PAIRWISE: usize = 16;

/// Checks one value: objects and arrays are taken apart member by member, at most
/// [`BODY_DEPTH_MAX`] levels deep (serde_json reads a raw value of any depth without recursing),
/// and no object may repeat a key. With `out`, writes the value again with its keys as they are
/// compared (lower-cased with [`Keys::AnyCase`]) and everything else exactly as sent.
fn walk(
    raw: &RawValue,
    keys: Keys,
    path: Path<'_>,
    depth: usize,
    mut out: Option<&mut String>,
) -> Result<(), Param> {
    let text = raw.get();
    let malformed = |_| Param::body(Problem::MalformedJson);
    let nested = matches!(text.as_bytes().first(), Some(b'{' | b'['));
    if nested && depth >= BODY_DEPTH_MAX {
        return Err(Param::body(Problem::TooDeep(BODY_DEPTH_MAX)));
    }
    match text.as_bytes().first() {
        Some(b'{') => {
            let Members(members) = serde_json::from_str(text).map_err(malformed)?;
            let compared: Vec<Cow<'_, str>> = members
                .iter()
                .map(|(Key(sent), _)| match keys {
                    Keys::Exact => Cow::Borrowed(sent.as_ref()),
                    Keys::AnyCase => Cow::Owned(sent.to_lowercase()),
                })
                .collect();
            let mut seen = (compared.len() > MEMBERS_COMPARED_PAIRWISE)
                .then(|| HashSet::with_capacity(compared.len()));
            push(&mut out, "{");
            for (i, ((Key(sent), value), key)) in members.iter().zip(&compared).enumerate() {
                let here = Path::Key(&path, sent);
                let repeated = match &mut seen {
                    Some(seen) => !seen.insert(key),
                    None => compared[..i].contains(key),
                };
                if repeated {
                    return Err(Param::new(here.to_string(), Problem::Duplicate));
                }
                if let Some(out) = out.as_deref_mut() {
                    if i > 0 {
                        out.push(',');
                    }
                    // A string always serializes.
                    out.push_str(&serde_json::to_string(key).unwrap_or_default());
                    out.push(':');
                }
                walk(value, keys, here, depth + 1, out.as_deref_mut())?;
            }
            push(&mut out, "}");
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(malformed)?;
            push(&mut out, "[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    push(&mut out, ",");
                }
                walk(
                    item,
                    keys,
                    Path::Index(&path, i),
                    depth + 1,
                    out.as_deref_mut(),
                )?;
            }
            push(&mut out, "]");
        }
        // A string, number, boolean or null: valid JSON text already, kept as it was sent. A
        // string may not hold U+0000 (only `\u0000` can write it): SQLite would keep it and
        // PostgreSQL refuse it, so both APIs refuse it here, the same on either database.
        Some(b'"') if text.contains("u0000") && has_nul(text) => {
            return Err(Param::new(path.to_string(), Problem::ControlCharacter));
        }
        _ => push(&mut out, text),
    }
    Ok(())
}

/// Whether a JSON string (as sent, quotes and escapes included) decodes to a text with U+0000.
fn has_nul(text: &str) -> bool {
    serde_json::from_str::<Cow<'_, str>>(text).map_or(true, |decoded| decoded.contains('\0'))
}

fn push(out: &mut Option<&mut String>, text: &str) {
    if let Some(out) = out {
        out.push_str(text);
    }
}

/// An object's key as sent: borrowed from the body unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The members of one object in the order sent, repeats included (a map would drop them).
struct Members<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Members<'de>, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// serde_json's message without its " at line 1 column 42" (the normalized body is one line,
/// so the position would point into a text the caller never sent).
fn message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// Turns serde's message about the value at `path` into a parameter and a problem.
fn what_is_wrong(path: String, message: &str) -> Param {
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let name = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return Param::new(name, Problem::Missing);
    }
    // The amount parsers report an AmountError; its text is ours, so it is recognised exactly.
    let amount = [
        AmountError::Empty,
        AmountError::Malformed,
        AmountError::TooLong,
    ]
    .into_iter()
    .find(|e| e.to_string() == message);
    let problem = match amount {
        Some(e) => Problem::Amount(e),
        None if message.starts_with("invalid type") => Problem::WrongType,
        None => Problem::Invalid,
    };
    Param::new(path, problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Amount;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        payment: Inner,
        #[serde(default)]
        note: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        payment_id: String,
        #[serde(default, deserialize_with = "crate::amount::strict_json_opt")]
        payment_amount: Option<Amount>,
    }

    fn read_exact(body: &str) -> Result<Outer, Param> {
        read(body.as_bytes(), Keys::Exact)
    }

    #[test]
    fn json_is_application_json_in_any_case_with_parameters() {
        for said in [
            "application/json",
            "Application/JSON",
            " application/json ; charset=utf-8",
        ] {
            assert!(is_json_media_type(said), "{said}");
        }
        for said in [
            "",
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=application/json",
        ] {
            assert!(!is_json_media_type(said), "{said}");
        }
    }

    #[test]
    fn reads_an_object_and_keeps_amount_text() {
        let ok = read_exact(r#" {"payment": {"paymentId": "1", "paymentAmount": 100.5}} "#)
            .expect("reads");
        assert_eq!(ok.payment.payment_amount, Some(Amount::from_tiyn(10_050)));
        assert_eq!((ok.payment.payment_id.as_str(), ok.note), ("1", None));
        assert_eq!(
            read_exact(r#"{"payment":{"paymentId":"1","paymentAmount":1e2}}"#).err(),
            Some(Param::new(
                "payment.paymentAmount",
                Problem::Amount(AmountError::Malformed)
            ))
        );
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for (body, problem) in [
            ("[]", Problem::NotObject),
            (r#"[{"payment":{"paymentId":"1"}}]"#, Problem::NotObject),
            ("\"x\"", Problem::NotObject),
            ("null", Problem::NotObject),
            ("{", Problem::MalformedJson),
            ("", Problem::MalformedJson),
            ("{} {}", Problem::MalformedJson),
        ] {
            assert_eq!(read_exact(body).err(), Some(Param::body(problem)), "{body}");
        }
        // Bytes that are not UTF-8, in a value or in a key.
        for body in [&b"{\"note\":\"\xff\"}"[..], b"{\"\xc3\":1}"] {
            assert_eq!(
                read::<serde_json::Value>(body, Keys::Exact).err(),
                Some(Param::body(Problem::MalformedJson))
            );
        }
    }

    #[test]
    fn refuses_repeated_keys_at_any_depth() {
        let top = r#"{"note":"a","payment":{"paymentId":"1"},"note":"b"}"#;
        assert_eq!(
            read_exact(top).err(),
            Some(Param::new("note", Problem::Duplicate))
        );
        let deep = r#"{"payment":{"paymentId":"1","x":[{"a":1,"a":2}]}}"#;
        assert_eq!(
            read_exact(deep).err(),
            Some(Param::new("payment.x[0].a", Problem::Duplicate))
        );
        // An escaped key is the same key.
        let escaped = r#"{"payment":{"paymentId":"1","payment\u0049d":"2"}}"#;
        assert_eq!(
            read_exact(escaped).err(),
            Some(Param::new("payment.paymentId", Problem::Duplicate))
        );
        // Exact keys differ by case; any-case keys do not.
        let cased = r#"{"payment":{"paymentId":"1","PaymentId":"2"}}"#;
        assert!(read_exact(cased).is_ok());
        #[derive(Debug, Deserialize)]
        struct Lower {
            #[allow(dead_code)]
            amount: u32,
        }
        assert_eq!(
            read::<Lower>(br#"{"Amount":1,"amount":100000}"#, Keys::AnyCase).err(),
            Some(Param::new("amount", Problem::Duplicate))
        );
    }

    #[test]
    fn finds_a_repeat_among_many_keys() {
        let many = |last: &str| {
            let keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
            format!(r#"{{"wide":{{{},"{last}":0}}}}"#, keys.join(","))
        };
        assert!(read::<serde_json::Value>(many("k40").as_bytes(), Keys::Exact).is_ok());
        assert_eq!(
            read::<serde_json::Value>(many("k7").as_bytes(), Keys::Exact).err(),
            Some(Param::new("wide.k7", Problem::Duplicate))
        );
        assert_eq!(
            read::<serde_json::Value>(many("K7").as_bytes(), Keys::AnyCase).err(),
            Some(Param::new("wide.K7", Problem::Duplicate))
        );
    }

    #[test]
    fn names_missing_and_wrong_fields() {
        assert_eq!(
            read_exact(r#"{"payment":{}}"#).err(),
            Some(Param::new("payment.paymentId", Problem::Missing))
        );
        assert_eq!(
            read_exact(r#"{}"#).err(),
            Some(Param::new("payment", Problem::Missing))
        );
        assert_eq!(
            read_exact(r#"{"payment":{"paymentId":5}}"#).err(),
            Some(Param::new("payment.paymentId", Problem::WrongType))
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        for depth in [BODY_DEPTH_MAX, 10_000] {
            let deep = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(
                read_exact(&deep).err(),
                Some(Param::body(Problem::TooDeep(BODY_DEPTH_MAX))),
                "{depth}"
            );
        }
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert_eq!(nesting(r#"{"a":[1,{"b":"]]}}[[[\"{"}]}"#), 3);
        // As deep as allowed is read; one level more is refused before the walk.
        let at_limit = format!(
            "{}1{}",
            "{\"a\":".repeat(BODY_DEPTH_MAX),
            "}".repeat(BODY_DEPTH_MAX)
        );
        assert!(read::<serde_json::Value>(at_limit.as_bytes(), Keys::Exact).is_ok());
        let over = format!("{{\"a\":{at_limit}}}");
        assert_eq!(
            read::<serde_json::Value>(over.as_bytes(), Keys::Exact).err(),
            Some(Param::body(Problem::TooDeep(BODY_DEPTH_MAX)))
        );
    }
}
