//! The two languages of Tolem's users: Russian and Kazakh (DECISIONS 10).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Locale {
    #[default]
    Ru,
    Kk,
}

impl Locale {
    /// Parses the `X-Locale` header; a missing header means Russian.
    pub fn from_header(value: Option<&str>) -> Option<Locale> {
        match value {
            None => Some(Locale::Ru),
            Some("ru-RU") => Some(Locale::Ru),
            Some("kk-KZ") => Some(Locale::Kk),
            Some(_) => None,
        }
    }

    pub fn header_value(self) -> &'static str {
        match self {
            Locale::Ru => "ru-RU",
            Locale::Kk => "kk-KZ",
        }
    }

    /// Parses the short code of a receipt link's `locale` parameter (SPEC 4.3) and of stored
    /// rows: `ru` or `kk`.
    pub fn from_code(code: &str) -> Option<Locale> {
        match code {
            "ru" => Some(Locale::Ru),
            "kk" => Some(Locale::Kk),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Locale::Ru => "ru",
            Locale::Kk => "kk",
        }
    }
}

/// A text in both languages, as operators configure service, parameter and option names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    pub ru: String,
    pub kk: String,
}

impl Localized {
    pub fn get(&self, locale: Locale) -> &str {
        match locale {
            Locale::Ru => &self.ru,
            Locale::Kk => &self.kk,
        }
    }
}
