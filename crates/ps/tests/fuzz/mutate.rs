//! The mutations: bytes, JSON structure (types, duplicate keys, huge numbers, deep nesting,
//! unicode), headers, paths, queries and methods. Each takes a valid request and makes it wrong
//! in one way; an input gets one to four of them.

use serde_json::{Map, Number, Value};

use crate::rng::Rng;

/// One HTTP request as the fuzzer builds it: everything as bytes or text the router may see.
#[derive(Clone, Debug)]
pub struct Input {
    pub method: String,
    /// Path and query, as in the request line.
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Input {
    /// A short, printable description to reproduce a finding.
    pub fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
            .collect();
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(2_000).collect();
        format!(
            "{} {}\n{}\n\n{body:?} ({} bytes)",
            self.method,
            self.target,
            headers.join("\n"),
            self.body.len()
        )
    }
}

/// Texts that break parsers: other scripts, escapes, control characters, signs and exponents,
/// numbers past every integer type, SQL and path tricks.
pub const NASTY: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "-0",
    "1e2",
    "1E999",
    "1.000",
    "100.5",
    "0.001",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890",
    "NaN",
    "Infinity",
    "null",
    "true",
    "\u{0}",
    "\u{7f}",
    "\u{200f}\u{202e}",
    "\u{FEFF}",
    "\u{FFFF}",
    "💳💥",
    "Ақша",
    "Деньги",
    "\u{0663}\u{0664}",
    "１２３",
    "%00",
    "%ff%fe",
    "../../etc/passwd",
    "'; DROP TABLE payments; --",
    "\\",
    "\"",
    "{",
    "]",
    "\r\n",
    "ru-RU",
    "kk-KZ",
    "en",
    "SUCCESS",
    "CANCELLED_BY_CLIENT",
    "RISK_REJECT",
    "2026-11-27T18:31:42+05:00",
    "2026-02-30",
    "9999-12-31T23:59:59Z",
];

pub fn nasty_text(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "x".repeat(rng.pick(&[63, 64, 65, 128, 129, 1_000, 70_000]).to_owned()),
        1 => {
            let len = rng.below(40);
            (0..len)
                .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'))
                .collect()
        }
        _ => (*rng.pick(NASTY)).to_owned(),
    }
}

fn nasty_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::Number(Number::from(rng.next_u64())),
        3 => Value::Number(Number::from(-(rng.below(1_000_000) as i64))),
        4 => Number::from_f64((rng.next_u64() as f64) / 7.0 - 1e12)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        5 => Value::String(nasty_text(rng)),
        6 if depth < 3 => Value::Array(
            (0..rng.below(4))
                .map(|_| nasty_value(rng, depth + 1))
                .collect(),
        ),
        7 if depth < 3 => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                map.insert(nasty_text(rng), nasty_value(rng, depth + 1));
            }
            Value::Object(map)
        }
        _ => Value::String((*rng.pick(NASTY)).to_owned()),
    }
}

/// Applies one to four mutations to a copy of `seed`.
pub fn mutate(rng: &mut Rng, seed: &Input) -> Input {
    let mut input = seed.clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(20) {
            0..=6 => json(rng, &mut input.body),
            7..=10 => bytes(rng, &mut input.body),
            11..=14 => header(rng, &mut input.headers),
            15..=17 => target(rng, &mut input.target),
            18 => method(rng, &mut input.method),
            _ => text_splice(rng, &mut input.body),
        }
    }
    input
}

fn method(rng: &mut Rng, method: &mut String) {
    *method = (*rng.pick(&[
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "get", "FUZZ",
    ]))
    .to_owned();
}

/// Byte-level damage: flips, insertions, deletions, repeats, truncation, a huge body.
fn bytes(rng: &mut Rng, body: &mut Vec<u8>) {
    let at = |rng: &mut Rng, body: &Vec<u8>| rng.below(body.len() + 1);
    match rng.below(8) {
        0 if !body.is_empty() => {
            let i = rng.below(body.len());
            body[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = at(rng, body);
            body.insert(i, rng.below(256) as u8);
        }
        2 if !body.is_empty() => {
            let i = rng.below(body.len());
            let end = (i + 1 + rng.below(16)).min(body.len());
            body.drain(i..end);
        }
        3 if !body.is_empty() => {
            let i = rng.below(body.len());
            let end = (i + 1 + rng.below(32)).min(body.len());
            let piece = body[i..end].to_vec();
            let j = at(rng, body);
            body.splice(j..j, piece);
        }
        4 => {
            let i = at(rng, body);
            body.truncate(i);
        }
        5 => {
            // Past the 64 KiB body limit, or just under it.
            let size = *rng.pick(&[65_535, 65_536, 65_537, 200_000]);
            let filler = if rng.one_in(2) { b' ' } else { b'a' };
            body.resize(size, filler);
        }
        6 => {
            let i = at(rng, body);
            let bad: &[&[u8]] = &[b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf"];
            body.splice(i..i, rng.pick(bad).iter().copied());
        }
        _ => {
            let i = at(rng, body);
            let text = nasty_text(rng);
            body.splice(i..i, text.bytes());
        }
    }
}

/// Textual splices that a JSON value cannot express: duplicate keys, keys in another case,
/// unbalanced and deep nesting, raw numbers no float holds.
fn text_splice(rng: &mut Rng, body: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(body).into_owned();
    let keys: Vec<(usize, String)> = text
        .match_indices('"')
        .filter_map(|(i, _)| {
            let rest = &text[i + 1..];
            let end = rest.find('"')?;
            rest[end + 1..]
                .trim_start()
                .starts_with(':')
                .then(|| (i, rest[..end].to_owned()))
        })
        .collect();
    let spliced = match rng.below(5) {
        // The same key again (DECISIONS 44), maybe in another case, right after an opening brace.
        0 | 1 if !keys.is_empty() => {
            let (_, key) = rng.pick(&keys).clone();
            let key = match rng.below(3) {
                0 => key.to_uppercase(),
                1 => key.to_lowercase(),
                _ => key,
            };
            let value = serde_json::to_string(&nasty_value(rng, 0)).unwrap_or_default();
            let braces: Vec<usize> = text.match_indices('{').map(|(i, _)| i + 1).collect();
            match braces.is_empty() {
                true => text,
                false => {
                    let at = *rng.pick(&braces);
                    format!("{}\"{key}\":{value},{}", &text[..at], &text[at..])
                }
            }
        }
        2 => {
            let depth = *rng.pick(&[33, 128, 129, 5_000, 50_000]);
            let open = if rng.one_in(2) { "[" } else { "{\"a\":" };
            let close = if open == "[" { "]" } else { "}" };
            let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            replace_a_value(rng, &text, &deep)
        }
        3 => {
            let number = *rng.pick(&[
                "1e400",
                "-1e-400",
                "123456789012345678901234567890.12",
                "0.0000000000000000000001",
                "1.5e3",
                "00012",
                "-0.0",
                "1_000",
                "0x10",
            ]);
            replace_a_value(rng, &text, number)
        }
        _ => {
            let at = rng.below(text.len() + 1);
            let at = (0..=at)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            let junk = *rng.pick(&["{", "}", "[", "]", ",", ":", "\"", ",,", "//", "/*", "\\u"]);
            format!("{}{junk}{}", &text[..at], &text[at..])
        }
    };
    *body = spliced.into_bytes();
}

/// Puts `raw` where a value follows a colon, else replaces the whole text.
fn replace_a_value(rng: &mut Rng, text: &str, raw: &str) -> String {
    let colons: Vec<usize> = text.match_indices(':').map(|(i, _)| i + 1).collect();
    if colons.is_empty() {
        return raw.to_owned();
    }
    let at = *rng.pick(&colons);
    let rest = &text[at..];
    // The old value ends at the next comma or closing brace (good enough for a fuzzer).
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    format!("{}{raw}{}", &text[..at], &rest[end..])
}

/// Structural damage on the parsed JSON: a node's type changed, a key dropped, renamed or
/// added, an array emptied or grown; bodies that are not JSON are replaced by a random value.
fn json(rng: &mut Rng, body: &mut Vec<u8>) {
    let mut value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            if rng.one_in(4) {
                *body = serde_json::to_vec(&nasty_value(rng, 0)).unwrap_or_default();
            }
            return;
        }
    };
    let count = count_nodes(&value);
    let target = rng.below(count);
    let mut seen = 0;
    change_node(rng, &mut value, target, &mut seen);
    *body = serde_json::to_vec(&value).unwrap_or_default();
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn change_node(rng: &mut Rng, value: &mut Value, target: usize, seen: &mut usize) -> bool {
    if *seen == target {
        match value {
            Value::Object(map) if rng.one_in(2) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                match rng.below(4) {
                    0 if !keys.is_empty() => {
                        map.remove(rng.pick(&keys));
                    }
                    1 if !keys.is_empty() => {
                        let key = rng.pick(&keys).clone();
                        let renamed = match rng.below(3) {
                            0 => key.to_uppercase(),
                            1 => key.to_lowercase(),
                            _ => format!("{key} "),
                        };
                        if let Some(v) = map.remove(&key) {
                            map.insert(renamed, v);
                        }
                    }
                    _ => {
                        map.insert(nasty_text(rng), nasty_value(rng, 0));
                    }
                }
            }
            Value::Array(items) if rng.one_in(2) => match rng.below(3) {
                0 => items.clear(),
                1 if !items.is_empty() => {
                    let copy = items[0].clone();
                    items.extend(std::iter::repeat_n(copy, 1 + rng.below(100)));
                }
                _ => items.push(nasty_value(rng, 0)),
            },
            Value::String(s) if rng.one_in(3) => {
                // Keep the text, change its type: "100.00" → 100.00, "7" → 7.
                if let Ok(v) = serde_json::from_str::<Value>(s) {
                    *value = v;
                } else {
                    s.push_str(&nasty_text(rng));
                }
            }
            _ => *value = nasty_value(rng, 0),
        }
        return true;
    }
    *seen += 1;
    match value {
        Value::Array(items) => items
            .iter_mut()
            .any(|item| change_node(rng, item, target, seen)),
        Value::Object(map) => map
            .values_mut()
            .any(|item| change_node(rng, item, target, seen)),
        _ => false,
    }
}

/// Header damage: dropped, emptied, overlong, non-ASCII, repeated, or a random one added.
fn header(rng: &mut Rng, headers: &mut Vec<(String, Vec<u8>)>) {
    const NAMES: &[&str] = &[
        "content-type",
        "x-caller-name",
        "x-request-id",
        "x-locale",
        "api-key",
        "authorization",
        "accept-language",
        "content-length",
        "transfer-encoding",
        "host",
    ];
    match rng.below(7) {
        0 if !headers.is_empty() => {
            let i = rng.below(headers.len());
            headers.remove(i);
        }
        1 if !headers.is_empty() => {
            let i = rng.below(headers.len());
            let copy = headers[i].clone();
            headers.push(copy);
        }
        2 if !headers.is_empty() => {
            let i = rng.below(headers.len());
            let mut value = headers[i].1.clone();
            let at = rng.below(value.len() + 1);
            value.insert(at, *rng.pick(&[0x80, 0xff, b' ', b'\t', b'"', b';', b',']));
            headers[i].1 = value;
        }
        _ => {
            let name = (*rng.pick(NAMES)).to_owned();
            let value = match rng.below(8) {
                0 => b"application/json; charset=utf-8".to_vec(),
                1 => b"text/plain".to_vec(),
                2 => b"Bearer sandbox-admin-token".to_vec(),
                3 => b"demobank".to_vec(),
                4 => "Б".repeat(40).into_bytes(),
                5 => (0..rng.below(100))
                    .map(|_| 0x20 + rng.below(0xe0) as u8)
                    .collect(),
                _ => nasty_text(rng).into_bytes(),
            };
            headers.retain(|(n, _)| *n != name || rng.one_in(2));
            headers.push((name, value));
        }
    }
}

/// Path and query damage: segments replaced by nasty text (percent-encoded or raw), ids past
/// every integer type, slashes doubled or added, queries repeated or broken.
fn target(rng: &mut Rng, target: &mut String) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.clone(), None),
    };
    let mut segments: Vec<String> = path.split('/').map(str::to_owned).collect();
    let mut query = query;
    match rng.below(8) {
        0 | 1 if segments.len() > 1 => {
            let i = 1 + rng.below(segments.len() - 1);
            segments[i] = encode(&nasty_text(rng));
        }
        2 if segments.len() > 1 => {
            let i = 1 + rng.below(segments.len() - 1);
            segments[i] = (*rng.pick(&[
                "0",
                "-1",
                "99999999999999999999",
                "9223372036854775807",
                "1.5",
                "%20",
                "..",
                ".",
                "",
                "daily",
                "monthly",
                "2026-11-26.xlsx",
                "2026-11.csv",
                "r1",
                "v02",
            ]))
            .to_owned();
        }
        3 => segments.push(String::new()),
        4 if segments.len() > 2 => {
            let i = 1 + rng.below(segments.len() - 1);
            segments.remove(i);
        }
        5 => {
            let pairs = [
                "id",
                "token",
                "locale",
                "QrPaymentId",
                "DeviceToken",
                "status",
                "limit",
            ];
            let extra = format!("{}={}", rng.pick(&pairs), encode(&nasty_text(rng)));
            query = Some(match query {
                Some(q) if rng.one_in(2) => format!("{q}&{extra}"),
                _ => extra,
            });
        }
        6 => {
            query = Some(
                (*rng.pick(&[
                    "",
                    "&&",
                    "=",
                    "a=%",
                    "id=%zz",
                    "locale=kk&locale=ru&locale=xx",
                ]))
                .to_owned(),
            )
        }
        _ => {
            let i = rng.below(segments.len());
            segments[i] = segments[i].to_uppercase();
        }
    }
    let path = segments.join("/");
    *target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
}

/// Percent-encodes every byte a path segment may not carry as is, so that the request reaches the
/// router (a raw space or control byte is refused below it, by the HTTP parser).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
