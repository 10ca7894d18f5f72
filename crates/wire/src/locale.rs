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

    /// The merchant API's language (docs/merchant-api.md): from `Accept-Language`, the language
    /// of the two it names with the highest weight (`kk`, `kk-KZ` → Kazakh); Russian when it
    /// names neither, is missing or cannot be read. The MPP API's strict `X-Locale` is the
    /// regulation's; POS software sends the standard HTTP header instead, and never fails on it.
    pub fn from_accept_language(value: Option<&str>) -> Locale {
        let mut best: Option<(Locale, f32)> = None;
        for entry in value.unwrap_or_default().split(',') {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let primary = tag.split(['-', '_']).next().unwrap_or_default();
            let locale = if primary.eq_ignore_ascii_case("kk") {
                Locale::Kk
            } else if primary.eq_ignore_ascii_case("ru") {
                Locale::Ru
            } else {
                continue;
            };
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if weight > 0.0 && best.is_none_or(|(_, w)| weight > w) {
                best = Some((locale, weight));
            }
        }
        best.map_or(Locale::Ru, |(locale, _)| locale)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_heaviest_known_language() {
        for (header, locale) in [
            (None, Locale::Ru),
            (Some(""), Locale::Ru),
            (Some("kk"), Locale::Kk),
            (Some("kk-KZ"), Locale::Kk),
            (Some("en-US,en;q=0.9"), Locale::Ru),
            (Some("en, kk;q=0.8, ru;q=0.5"), Locale::Kk),
            (Some("ru-RU, kk;q=0.9"), Locale::Ru),
            (Some("ru;q=0.3, KK-kz;q=0.7"), Locale::Kk),
            (Some("kk;q=0"), Locale::Ru),
            (Some("kk;q=abc"), Locale::Kk),
        ] {
            assert_eq!(Locale::from_accept_language(header), locale, "{header:?}");
        }
    }
}
