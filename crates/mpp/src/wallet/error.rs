//! Why the wallet could not do what the customer asked. The human text of each error lives in
//! [`crate::wallet::text::error`] (Russian and Kazakh, side by side); `Display` is its Russian
//! form, so there is one wording per error and nothing to drift apart.

use std::fmt;

use tolem_wire::Locale;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletError {
    /// The MPP's address is not an `http(s)://` URL.
    BadUrl(String),
    /// The MPP could not be reached: no connection was made (refused, DNS, no route), so
    /// nothing was sent.
    Unreachable { url: String, why: String },
    /// The connection to the MPP failed once made (a reset, a broken body): what was sent may
    /// have reached it.
    Interrupted { url: String, why: String },
    /// The MPP took longer than the wallet waits; the payment may still complete there.
    Timeout { url: String },
    /// The payment was sent but no answer came back (the connection failed, the wait ended, the
    /// MPP failed with a 5xx): it may have reached the MPP and complete there, so it must not be
    /// paid again before the history says.
    ConfirmUnanswered { url: String, why: String },
    /// The MPP answered with an error body `{"error": "…"}` (or a non-JSON error).
    Mpp { status: u16, message: String },
    /// The MPP answered success with a body the wallet does not understand.
    Protocol(String),
    /// The picture could not be read (missing file, not PNG/JPEG, too large, corrupt).
    ImageUnreadable(String),
    /// The picture was read but holds no QR code.
    NoQrCode,
    /// A QR code was found but its content could not be decoded.
    QrUnreadable(String),
    /// The input ended before the question was answered (a script without the flag).
    NoAnswer {
        question: String,
        flag: &'static str,
    },
    /// The customer answered the same question wrongly too many times.
    TooManyTries { question: String },
    /// An answer given in advance (a flag) does not fit the QR code.
    BadAnswer(String),
}

impl WalletError {
    /// The message for the customer, in their language.
    pub fn message(&self, locale: Locale) -> String {
        crate::wallet::text::error(self, locale)
    }
}

impl fmt::Display for WalletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(Locale::Ru))
    }
}

impl std::error::Error for WalletError {}
