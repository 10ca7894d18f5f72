//! What is wrong with a request, said in the caller's language (DECISIONS 10, 44).
//!
//! A refused request names the parameter and what is wrong with it, after the code's own message
//! from its table: `Некорректный параметр: paymentAmount — обязателен для статического QR`. Both
//! APIs build those texts from the [`Problem`]s here, so a problem reads the same everywhere.

use std::fmt::Write as _;

use crate::amount::{AMOUNT_DIGITS_MAX, AmountError};
use crate::{Amount, Locale};

/// What is wrong with one parameter (or with the body as a whole). New kinds of problem come
/// with new rules, so a match outside this crate needs an arm for the others.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A required parameter is absent.
    Missing,
    /// Present, but a string where a number belongs, an object where a string belongs...
    WrongType,
    /// The right type, but not a value the call takes.
    Invalid,
    /// The same key appears twice in one object (DECISIONS 44).
    Duplicate,
    /// Longer than the regulation or the API allows, in characters.
    TooLong(usize),
    /// Holds a control character (U+0000–U+001F, U+007F–U+009F): none in an identifier, and
    /// no U+0000 in any text, which PostgreSQL cannot keep.
    ControlCharacter,
    /// Shorter or longer than allowed, in characters (inclusive bounds).
    Length(usize, usize),
    /// Not of the form shown, e.g. `[A-Za-z0-9_-]{1,64}` or `ru-RU | kk-KZ`.
    Expected(&'static str),
    /// Not an amount of DECISIONS 3.
    Amount(AmountError),
    /// An amount of zero where a purchase or refund needs money.
    NotPositive,
    /// The MPP chose an amount with tiyn where SPEC 4.3 asks for whole tenge (DECISIONS 4).
    NotWholeTenge,
    /// The PS set this amount (Dynamic QR, Custom checkout); the MPP must echo it (DECISIONS 4, 14, 15).
    NotEqual(Amount),
    /// A Static QR's amount is chosen by the MPP, so notifyPayment must carry it (DECISIONS 13).
    RequiredForStatic,
    /// The body is not JSON.
    MalformedJson,
    /// The body is JSON but not an object (DECISIONS 44).
    NotObject,
    /// The body is over the size limit.
    TooLarge,
    /// The body nests objects and arrays deeper than this.
    TooDeep(usize),
    /// A return QR that cannot be used for a refund now: not scanned, used, or past its time.
    ReturnQrNotUsable,
    /// Longer than the PS takes, in bytes: the request target or the headers (DECISIONS 43).
    BytesMax(usize),
    /// More headers than the first, or a request line and headers longer than the second in
    /// bytes: what the PS's HTTP parser takes (DECISIONS 43).
    HeadTooLarge {
        headers_max: usize,
        bytes_max: usize,
    },
    /// The request line or a header is not HTTP/1.1.
    MalformedHead,
    /// The body did not arrive whole within the PS's deadline (DECISIONS 43).
    Late,
    /// The connection ended before the whole body arrived.
    Incomplete,
    /// The purchase is not in the status a step starts from (the sandbox's emulators), e.g.
    /// `QrTokenCreated`.
    NotInStatus(&'static str),
    /// What the MPP API answers a real MPP's same step with (the sandbox's emulators), e.g.
    /// `EXPIRED_CODE`.
    MppApiAnswers(&'static str),
    /// Given twice in one body, in two places, with two values: differs from the one named.
    DiffersFrom(&'static str),
}

impl Problem {
    /// The problem alone, in the locale.
    pub fn text(&self, locale: Locale) -> String {
        let ru = locale == Locale::Ru;
        let pick = |ru_text: &str, kk_text: &str| {
            if ru {
                ru_text.to_owned()
            } else {
                kk_text.to_owned()
            }
        };
        match self {
            Problem::Missing => pick("обязателен", "міндетті"),
            Problem::WrongType => pick("неверный тип значения", "мән түрі дұрыс емес"),
            Problem::Invalid => pick("недопустимое значение", "мәні жарамсыз"),
            Problem::Duplicate => pick("повторяется", "қайталанады"),
            Problem::TooLong(max) => pick(
                &format!("длиннее {max} символов"),
                &format!("{max} таңбадан ұзын"),
            ),
            Problem::ControlCharacter => pick("содержит управляющий символ", "басқару таңбасы бар"),
            Problem::Length(min, max) => pick(
                &format!("должен содержать от {min} до {max} символов"),
                &format!("{min}–{max} таңбадан тұруы керек"),
            ),
            Problem::Expected(form) => pick(
                &format!("ожидается {form}"),
                &format!("күтілетін мән: {form}"),
            ),
            Problem::Amount(AmountError::Empty) => pick("пустая сумма", "сома бос"),
            Problem::Amount(AmountError::Malformed) => pick(
                "сумма должна быть неотрицательным числом без экспоненты, \
                 не более двух знаков после точки",
                "сома экспонентасыз, нүктеден кейін екі таңбадан аспайтын \
                 теріс емес сан болуы керек",
            ),
            // Counted as the amount is written back, with two decimals (DECISIONS 2, 3).
            Problem::Amount(AmountError::TooLong) => pick(
                &format!(
                    "больше {AMOUNT_DIGITS_MAX} цифр с двумя знаками после точки \
                     (наибольшая сумма 9999999999999.99)"
                ),
                &format!(
                    "нүктеден кейінгі екі таңбамен {AMOUNT_DIGITS_MAX} цифрдан көп \
                     (ең үлкен сома 9999999999999.99)"
                ),
            ),
            Problem::NotPositive => pick("должна быть больше нуля", "нөлден үлкен болуы керек"),
            Problem::NotWholeTenge => {
                pick("должна быть в целых тенге", "бүтін теңгемен болуы керек")
            }
            Problem::NotEqual(amount) => pick(
                &format!("должна быть равна {amount}"),
                &format!("{amount} сомасына тең болуы керек"),
            ),
            Problem::RequiredForStatic => pick(
                "обязателен для статического QR",
                "статикалық QR үшін міндетті",
            ),
            Problem::MalformedJson => pick(
                "тело запроса не является корректным JSON",
                "сұрау денесі дұрыс JSON емес",
            ),
            Problem::NotObject => pick(
                "тело запроса должно быть JSON-объектом",
                "сұрау денесі JSON-объект болуы керек",
            ),
            Problem::TooLarge => pick("тело запроса слишком большое", "сұрау денесі тым үлкен"),
            Problem::TooDeep(max) => pick(
                &format!("вложенность тела запроса глубже {max} уровней"),
                &format!("сұрау денесінің кірістірілуі {max} деңгейден терең"),
            ),
            Problem::ReturnQrNotUsable => pick(
                "QR возврата не отсканирован покупателем, уже использован или истёк",
                "қайтару QR-ын сатып алушы сканерлемеген, ол пайдаланылған немесе мерзімі өткен",
            ),
            Problem::BytesMax(max) => pick(
                &format!("длиннее {max} байт"),
                &format!("{max} байттан ұзын"),
            ),
            Problem::HeadTooLarge {
                headers_max,
                bytes_max,
            } => pick(
                &format!("более {headers_max} заголовков или длиннее {bytes_max} байт"),
                &format!("{headers_max} тақырыптан көп немесе {bytes_max} байттан ұзын"),
            ),
            Problem::MalformedHead => pick(
                "строка запроса или заголовки не по HTTP/1.1",
                "сұрау жолы немесе тақырыптар HTTP/1.1 бойынша емес",
            ),
            Problem::Late => pick(
                "тело запроса не получено вовремя",
                "сұрау денесі уақытында алынбады",
            ),
            Problem::Incomplete => pick(
                "тело запроса получено не полностью",
                "сұрау денесі толық алынбады",
            ),
            Problem::NotInStatus(status) => pick(
                &format!("покупка не в статусе {status}"),
                &format!("сатып алу {status} мәртебесінде емес"),
            ),
            Problem::DiffersFrom(other) => pick(
                &format!("не совпадает с {other}"),
                &format!("{other} мәнімен сәйкес емес"),
            ),
            Problem::MppApiAnswers(code) => pick(
                &format!("МПП получил бы ответ {code}"),
                &format!("МПП {code} жауабын алар еді"),
            ),
        }
    }
}

/// A parameter and what is wrong with it. An empty name means the body as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub problem: Problem,
}

impl Param {
    pub fn new(name: impl Into<String>, problem: Problem) -> Param {
        Param {
            name: name.into(),
            problem,
        }
    }

    /// A problem of the whole body (not JSON, not an object, too large).
    pub fn body(problem: Problem) -> Param {
        Param::new(String::new(), problem)
    }

    /// `name — problem` in the locale (the problem alone for the whole body): the detail that
    /// follows the code's message.
    pub fn text(&self, locale: Locale) -> String {
        let mut text = String::new();
        if !self.name.is_empty() {
            // Writing to a String cannot fail.
            let _ = write!(text, "{} — ", self.name);
        }
        text.push_str(&self.problem.text(locale));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_parameter_in_both_languages() {
        let p = Param::new("paymentAmount", Problem::RequiredForStatic);
        assert_eq!(
            p.text(Locale::Ru),
            "paymentAmount — обязателен для статического QR"
        );
        assert_eq!(
            p.text(Locale::Kk),
            "paymentAmount — статикалық QR үшін міндетті"
        );
        assert_eq!(
            Param::body(Problem::NotObject).text(Locale::Ru),
            "тело запроса должно быть JSON-объектом"
        );
        assert_eq!(
            Param::new("Amount", Problem::NotEqual(Amount::from_tiyn(15_050))).text(Locale::Ru),
            "Amount — должна быть равна 150.50"
        );
    }
}
