//! Request bodies read strictly, the same way on both APIs (DECISIONS 44).
//!
//! A body is one JSON object in which no object, at any depth, repeats a key: serde would
//! otherwise keep one of the two silently, and `{"Amount":1,"amount":100000}` would make a QR of
//! an amount the POS never showed. Numbers keep their exact text on the way to the request type, so
//! that an amount field read with [`crate::amount::strict_json`] sees `1e3` as written and refuses
//! it. When the body does not fit the request type, the error names the parameter (its path, e.g.
//! `payment.paymentAmount`) and what is wrong with it as a [`Param`].

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::amount::AmountError;
use crate::problem::{Param, Problem};

/// The deepest nesting a body may have: the bodies of both APIs are three levels deep, and a
/// bound keeps the checks' recursion (and their work) small whatever is sent.
pub const BODY_DEPTH_MAX: usize = 32;

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
pub fn read<T: DeserializeOwned>(body: &[u8], keys: Keys) -> Result<T, Param> {
    let text = normalized(body, keys)?;
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        what_is_wrong(path, &message(e.inner()))
    })
}

/// The body as one line of JSON, checked: an object, no repeated key at any depth; keys
/// lower-cased with [`Keys::AnyCase`]; every number and string exactly as sent.
fn normalized(body: &[u8], keys: Keys) -> Result<String, Param> {
    let raw: Box<RawValue> =
        serde_json::from_slice(body).map_err(|_| Param::body(Problem::MalformedJson))?;
    if !raw.get().starts_with('{') {
        return Err(Param::body(Problem::NotObject));
    }
    // The walk below parses each level's text again, so a body nested thousands deep would cost
    // as many passes as it has levels before the limit is met; one pass refuses it first.
    if nesting(raw.get()) > BODY_DEPTH_MAX {
        return Err(Param::body(Problem::TooDeep(BODY_DEPTH_MAX)));
    }
    let mut out = String::with_capacity(body.len());
    write_checked(&raw, keys, "", 0, &mut out)?;
    Ok(out)
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

/// Writes one value; objects and arrays are taken apart and checked member by member, at most
/// [`BODY_DEPTH_MAX`] levels deep (serde_json reads a raw value of any depth without recursing).
fn write_checked(
    raw: &RawValue,
    keys: Keys,
    path: &str,
    depth: usize,
    out: &mut String,
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
            let mut seen = HashSet::with_capacity(members.len());
            out.push('{');
            for (i, (sent, value)) in members.iter().enumerate() {
                let key = match keys {
                    Keys::Exact => sent.clone(),
                    Keys::AnyCase => sent.to_lowercase(),
                };
                let name = if path.is_empty() {
                    sent.clone()
                } else {
                    format!("{path}.{sent}")
                };
                if !seen.insert(key.clone()) {
                    return Err(Param::new(name, Problem::Duplicate));
                }
                if i > 0 {
                    out.push(',');
                }
                // A string always serializes.
                out.push_str(&serde_json::to_string(&key).unwrap_or_default());
                out.push(':');
                write_checked(value, keys, &name, depth + 1, out)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text).map_err(malformed)?;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_checked(item, keys, &format!("{path}[{i}]"), depth + 1, out)?;
            }
            out.push(']');
        }
        // A string, number, boolean or null: valid JSON text already, kept as it was sent.
        _ => out.push_str(text),
    }
    Ok(())
}

/// The members of one object in the order sent, repeats included (a map would drop them).
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Members, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
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
