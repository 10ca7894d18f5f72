//! Tokens and links the PS makes: the unguessable tokens of receipts and return QRs, the digits
//! of dynamic QR tokens, and the public links built on `public_url` (receipts, payment links).
//! One place, so that a link the PS hands out and the route that answers it cannot drift apart.
//!
//! Plain functions of their inputs, below everything that hands tokens out: the MPP API's use
//! cases, the merchant and admin edges, refund delivery, the QR pictures and payment pages.

/// Digits of a dynamic QR token, a payment link's last segment and a return QR's token.
pub(crate) const QR_TOKEN_DIGITS: usize = 41;

/// The receipt link for a payment or refund. It carries no locale (DECISIONS 35): it is the
/// Russian receipt, and the MPP appends `&locale=kk` for Kazakh (SPEC 4.3).
pub(crate) fn receipt_link(public_url: &str, receipt_token: &str) -> String {
    let base = public_url.trim_end_matches('/');
    format!("{base}/receipt?id={receipt_token}")
}

/// A receipt's unguessable token: 32 hex digits, the first 11 the time it was made (milliseconds
/// since 1970), the other 21 random (84 bits). Tokens made one after another sort together, so
/// the index that finds a receipt by its token grows at its end, where its pages are in memory,
/// instead of taking each new token on a page of its own: as the books grow to millions, random
/// tokens made every insert read and write a page no recent insert had touched. The time adds
/// nothing an attacker could use: the receipt shows it.
pub(crate) fn secret_token() -> String {
    let random = hex::encode(rand::random::<[u8; 11]>());
    format!("{:011x}{}", now_ms() % 16u64.pow(11), &random[..21])
}

/// Digits of a new dynamic QR token, payment link or return QR (see [`QR_TOKEN_DIGITS`]): the
/// first 13 the time it was made (milliseconds since 1970, 13 digits from 2001 to 2286, so the
/// first is not zero and the token keeps its length when read as a number), the other 28 random
/// (93 bits). Time first, for the reason given at [`secret_token`]: the QR-token index grows at
/// its end.
pub(crate) fn qr_digits() -> String {
    use rand::RngExt;
    const TIME_DIGITS: usize = 13;
    let ms = now_ms().clamp(10u64.pow(12), 10u64.pow(13) - 1);
    let mut rng = rand::rng();
    let mut digits = String::with_capacity(QR_TOKEN_DIGITS);
    digits.push_str(&format!("{ms:0TIME_DIGITS$}"));
    while digits.len() < QR_TOKEN_DIGITS {
        digits.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    digits
}

/// Milliseconds since 1970 by the system's clock (0 if it is set before 1970).
fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

/// The payment link of a dynamic payment (`Kind::Link`): the page `/pay/{digits}` under the
/// public URL. The link is the payment's token as stored, so the page finds it by the same text.
pub(crate) fn pay_link(public_url: &str, digits: &str) -> String {
    format!("{}/pay/{digits}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_their_form_and_follow_the_clock() {
        let (a, b) = (qr_digits(), qr_digits());
        for t in [&a, &b] {
            assert_eq!(t.len(), QR_TOKEN_DIGITS);
            assert!(
                t.bytes().all(|c| c.is_ascii_digit()) && !t.starts_with('0'),
                "{t}"
            );
        }
        assert_ne!(a, b);
        assert!(a[..13] <= b[..13], "{a} then {b}");
        let (r, s) = (secret_token(), secret_token());
        for t in [&r, &s] {
            assert_eq!(t.len(), 32);
            assert!(t.bytes().all(|c| c.is_ascii_hexdigit()), "{t}");
        }
        assert_ne!(r, s);
        assert!(r[..11] <= s[..11], "{r} then {s}");
    }
}
