//! Typed names: an MPP's `CallerName` (the name it calls the PS by and its purchases are bound
//! to), so that a caller name is never mixed up with a customer id or a BIN. It prints and
//! serializes as the plain text it wraps, so no answer changes; its length and character rules
//! are checked where the catalog is loaded (`config::catalog`), its SQL conversion is the store's.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An MPP's `caller_name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallerName(String);

impl CallerName {
    pub fn new(name: impl Into<String>) -> CallerName {
        CallerName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for CallerName {
    fn from(name: String) -> CallerName {
        CallerName(name)
    }
}

impl From<&str> for CallerName {
    fn from(name: &str) -> CallerName {
        CallerName(name.to_owned())
    }
}

/// Lets a map keyed by caller name be searched with a `&str` (hashes as the text does).
impl Borrow<str> for CallerName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CallerName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for CallerName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CallerName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for CallerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_name_prints_and_serializes_as_its_text() {
        let name = CallerName::from("wallet");
        assert_eq!(name.to_string(), "wallet");
        assert_eq!(serde_json::to_string(&name).expect("json"), "\"wallet\"");
        assert!(name == "wallet");
        let map = std::collections::HashMap::from([(name.clone(), 1)]);
        assert_eq!(map.get("wallet"), Some(&1));
    }
}
