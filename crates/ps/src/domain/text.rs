//! Text from outside as the PS keeps and shows it: what reorders text unseen, and the form in
//! which a failure's words (an MPP's answer, an SMTP server's reply, a certificate's names) are
//! kept as a delivery's `last_error`.

/// Whether `c` reorders the text around it without being seen: the bidi marks (U+061C, U+200E,
/// U+200F), embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069).
pub fn reorders(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// `text` with its control characters and those that [`reorders`] written as escapes (`\u{0}`,
/// `\t`, `\u{202e}`), and cut to `chars_max` characters: PostgreSQL keeps no U+0000 in text,
/// and a page shows such a text as it reads.
pub fn kept(text: &str, chars_max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(chars_max));
    for c in text.chars() {
        if c.is_control() || reorders(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    match out.char_indices().nth(chars_max) {
        Some((at, _)) => {
            out.truncate(at);
            out
        }
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_is_kept_escaped_and_cut() {
        assert_eq!(
            kept("BAD\u{0}CODE\u{202e}LIAF\t", 100),
            "BAD\\u{0}CODE\\u{202e}LIAF\\t"
        );
        assert_eq!(kept("Қате: \"x\" 'y' \\", 100), "Қате: \"x\" 'y' \\");
        assert_eq!(kept(&"Щ".repeat(500), 300), "Щ".repeat(300));
        assert_eq!(kept("", 5), "");
    }
}
