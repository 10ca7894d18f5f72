//! Property tests of [`tolem_wire::body::read`] (DECISIONS 44) against a model written apart from
//! it: bodies are drawn as trees whose objects may repeat a key (or repeat it in another case),
//! written with random spacing and escaped keys. A body without repeats reads as the value the
//! tree means, its keys lower-cased with [`Keys::AnyCase`]; a body with one is refused, naming the
//! first repeat in the order sent.
//!
//! `PROPTEST_CASES` raises the number of cases (default 256).

use proptest::prelude::*;
use serde_json::{Map, Value};
use tolem_wire::body::{Keys, read};
use tolem_wire::problem::{Param, Problem};

/// A JSON value whose objects keep their members in order, repeats included.
#[derive(Clone, Debug)]
enum Tree {
    Scalar(Value),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 \\\\\"{}\\[\\],:]{0,8}".prop_map(Value::String),
    ]
    .prop_map(Tree::Scalar);
    scalar.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Tree::Array),
            prop::collection::vec(("(a|A|b|B|aB|Ab|c)", inner), 0..5).prop_map(Tree::Object),
        ]
    })
}

/// Writes `tree` as JSON, with spacing from `spaces` between tokens and, where `escape` says so,
/// a key's first letter as a `\u` escape.
fn write(tree: &Tree, spaces: &mut impl Iterator<Item = (bool, bool)>, out: &mut String) {
    fn gap(spaces: &mut impl Iterator<Item = (bool, bool)>, out: &mut String) {
        if spaces.next().is_some_and(|(space, _)| space) {
            out.push_str(" \n");
        }
    }
    match tree {
        Tree::Scalar(value) => out.push_str(&value.to_string()),
        Tree::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gap(spaces, out);
                write(item, spaces, out);
            }
            out.push(']');
        }
        Tree::Object(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gap(spaces, out);
                let escape = spaces.next().is_some_and(|(_, escape)| escape);
                let mut chars = key.chars();
                match (escape, chars.next()) {
                    (true, Some(first)) => out.push_str(&format!(
                        "\"\\u{:04x}{}\"",
                        u32::from(first),
                        chars.as_str()
                    )),
                    _ => out.push_str(&Value::from(key.as_str()).to_string()),
                }
                out.push(':');
                gap(spaces, out);
                write(value, spaces, out);
            }
            out.push('}');
        }
    }
}

/// What a key is compared as.
fn compared(key: &str, keys: Keys) -> String {
    match keys {
        Keys::Exact => key.to_owned(),
        Keys::AnyCase => key.to_lowercase(),
    }
}

/// The first repeated key in the order sent, named by its path, if any.
fn first_repeat(tree: &Tree, keys: Keys, path: &str) -> Option<String> {
    match tree {
        Tree::Scalar(_) => None,
        Tree::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_repeat(item, keys, &format!("{path}[{i}]"))),
        Tree::Object(members) => {
            let mut before: Vec<String> = Vec::new();
            for (key, value) in members {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let key = compared(key, keys);
                if before.contains(&key) {
                    return Some(here);
                }
                before.push(key);
                if let Some(found) = first_repeat(value, keys, &here) {
                    return Some(found);
                }
            }
            None
        }
    }
}

/// The value a body without repeats means.
fn meaning(tree: &Tree, keys: Keys) -> Value {
    match tree {
        Tree::Scalar(value) => value.clone(),
        Tree::Array(items) => Value::Array(items.iter().map(|t| meaning(t, keys)).collect()),
        Tree::Object(members) => Value::Object(
            members
                .iter()
                .map(|(key, value)| (compared(key, keys), meaning(value, keys)))
                .collect::<Map<_, _>>(),
        ),
    }
}

proptest! {
    #[test]
    fn a_body_reads_as_its_model_says(
        members in prop::collection::vec(("(a|A|b|B|aB|Ab|c)", tree()), 0..5),
        spaces in prop::collection::vec(any::<(bool, bool)>(), 64),
    ) {
        let body = Tree::Object(members);
        let mut text = String::new();
        write(&body, &mut spaces.into_iter().cycle(), &mut text);
        for keys in [Keys::Exact, Keys::AnyCase] {
            let expected = match first_repeat(&body, keys, "") {
                Some(name) => Err(Param::new(name, Problem::Duplicate)),
                None => Ok(meaning(&body, keys)),
            };
            prop_assert_eq!(read::<Value>(text.as_bytes(), keys), expected, "{:?} {}", keys, text);
        }
    }
}
