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

/// A random unguessable token (128 bits, hex).
pub(crate) fn secret_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// `n` random decimal digits: a dynamic QR token (see [`QR_TOKEN_DIGITS`]).
pub(crate) fn random_digits(n: usize) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    // The first digit is not zero so the token keeps its length when read as a number.
    let mut digits = String::with_capacity(n);
    digits.push(char::from(b'1' + rng.random_range(0..9u8)));
    while digits.len() < n {
        digits.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    digits
}

/// The payment link of a dynamic payment (`Kind::Link`): the page `/pay/{digits}` under the
/// public URL. The link is the payment's token as stored, so the page finds it by the same text.
pub(crate) fn pay_link(public_url: &str, digits: &str) -> String {
    format!("{}/pay/{digits}", public_url.trim_end_matches('/'))
}
