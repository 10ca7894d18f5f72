//! The MPP API v1 (SPEC §4): requests, responses and the table of result codes.
//!
//! Field names are exactly the regulation's camelCase (DECISIONS 6); unknown fields are ignored.
//! Amounts are [`Amount`] (accepted as string or number, sent as `"100.00"`).

use serde::{Deserialize, Serialize};

use crate::{Amount, Locale, Param};

/// Longest values the regulation allows (SPEC 1.7, 4.1–4.4).
pub const REQUEST_ID_LEN_MAX: usize = crate::request_id::MPP_REQUEST_ID_LEN_MAX;
pub const CALLER_NAME_LEN_MAX: usize = 12;

/// Whether `name` is an MPP's name as a PS's catalog takes it: 1–12 Latin letters, digits, `.`,
/// `_`, `-`. It travels as `X-Caller-Name` (visible ASCII) and names the MPP in paths, file
/// names and the tunnel's configuration.
pub fn is_caller_name(name: &str) -> bool {
    (1..=CALLER_NAME_LEN_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
pub const QR_CODE_LEN_MAX: usize = 128;
pub const CUSTOMER_ID_LEN_MAX: usize = 12;
pub const PAYMENT_ID_LEN_MAX: usize = 64;
pub const MPP_PAYMENT_ID_LEN_MAX: usize = 64;
pub const REFUND_ID_LEN_MAX: usize = 64;
pub const RESULT_CODE_LEN_MAX: usize = 64;
pub const RESULT_MESSAGE_LEN_MAX: usize = 256;
pub const PARAMETER_VALUE_LEN_MAX: usize = 64;
pub const MERCHANT_NAME_LEN_MAX: usize = 128;
pub const MERCHANT_MCC_LEN_MAX: usize = 32;
pub const AUTHOR_TYPE_LEN_MAX: usize = 5;

/// Paths of the MPP API on the PS.
pub const SCAN_PATH: &str = "/api/v1/qr/scan";
pub const CHECKOUT_PATH: &str = "/api/v1/qr/checkout";
pub const NOTIFY_PAYMENT_PATH: &str = "/api/v1/qr/notifyPayment";

/// Headers of SPEC 1.7.
pub const HEADER_REQUEST_ID: &str = "x-request-id";
pub const HEADER_CALLER_NAME: &str = "x-caller-name";
pub const HEADER_LOCALE: &str = "x-locale";

macro_rules! result_codes {
    ($( $variant:ident => $code:literal, retry: $retry:literal, ru: $ru:literal, kk: $kk:literal; )*) => {
        /// Every result code of the MPP API: the one table of codes, messages and retryability.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ResultCode { $( $variant, )* }

        impl ResultCode {
            pub const ALL: &'static [ResultCode] = &[ $( ResultCode::$variant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( ResultCode::$variant => $code, )* }
            }

            pub fn parse(code: &str) -> Option<ResultCode> {
                match code { $( $code => Some(ResultCode::$variant), )* _ => None }
            }

            /// True when the caller should repeat the same request later (same X-Request-ID).
            pub fn is_retryable(self) -> bool {
                match self { $( ResultCode::$variant => $retry, )* }
            }

            /// The short human text sent as `resultMessage`.
            pub fn message(self, locale: Locale) -> &'static str {
                match (self, locale) {
                    $( (ResultCode::$variant, Locale::Ru) => $ru,
                       (ResultCode::$variant, Locale::Kk) => $kk, )*
                }
            }
        }
    };
}

result_codes! {
    Success => "SUCCESS", retry: false, ru: "success", kk: "success";
    CustomQrError => "CUSTOM_QR_ERROR", retry: false,
        ru: "Ошибка QR-кода услуги", kk: "Қызмет QR-кодының қатесі";
    ExpiredCode => "EXPIRED_CODE", retry: false,
        ru: "Срок действия QR-кода истёк", kk: "QR-кодтың мерзімі өтті";
    InvalidToken => "INVALID_TOKEN", retry: false,
        ru: "Неизвестный QR-код", kk: "Белгісіз QR-код";
    ProcessFail => "PROCESS_FAIL", retry: false,
        ru: "Операция не может быть выполнена", kk: "Операцияны орындау мүмкін емес";
    InvalidMerchant => "INVALID_MERCHANT", retry: false,
        ru: "Продавец недоступен", kk: "Сатушы қолжетімсіз";
    ParamIllegal => "PARAM_ILLEGAL", retry: false,
        ru: "Некорректный параметр", kk: "Параметр дұрыс емес";
    UnknownException => "UNKNOWN_EXCEPTION", retry: true,
        ru: "Внутренняя ошибка, повторите запрос", kk: "Ішкі қате, сұрауды қайталаңыз";
    PaymentsSuspended => "PAYMENTS_SUSPENDED", retry: false,
        ru: "Платежи продавца приостановлены", kk: "Сатушының төлемдері ТЖ-мен уақытша тоқтатылды";
    UnknownSource => "UNKNOWN_SOURCE", retry: false,
        ru: "Неизвестный участник (X-Caller-Name)", kk: "Белгісіз қатысушы (X-Caller-Name)";
    CancelledByClient => "CANCELLED_BY_CLIENT", retry: false,
        ru: "cancelled by client", kk: "cancelled by client";
    RiskReject => "RISK_REJECT", retry: false,
        ru: "Отклонено контролем рисков", kk: "Тәуекелдерді бақылау қабылдамады";
    OrderNotExist => "ORDER_NOT_EXIST", retry: false,
        ru: "Платёж не найден", kk: "Төлем табылмады";
    PaymentIncorrectStatus => "PAYMENT_INCORRECT_STATUS", retry: false,
        ru: "Статус платежа не допускает операцию", kk: "Төлем мәртебесі операцияға жол бермейді";
    UnknownCustomer => "UNKNOWN_CUSTOMER", retry: false,
        ru: "Покупатель не совпадает с покупателем сканирования",
        kk: "Сатып алушы сканерлеген сатып алушымен сәйкес емес";
    RefundInProcess => "REFUND_IN_PROCESS", retry: true,
        ru: "Возврат обрабатывается", kk: "Қайтару өңделуде";
}

/// The `result` object every response carries (SPEC 1.9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultBody {
    pub result_code: String,
    pub result_message: String,
}

impl ResultBody {
    pub fn success() -> ResultBody {
        ResultBody::of(ResultCode::Success, Locale::Ru)
    }

    pub fn of(code: ResultCode, locale: Locale) -> ResultBody {
        ResultBody {
            result_code: code.as_str().to_owned(),
            result_message: code.message(locale).to_owned(),
        }
    }

    /// An error with a detail, e.g. the name of the offending field.
    pub fn with_detail(code: ResultCode, locale: Locale, detail: &str) -> ResultBody {
        let mut message = format!("{}: {detail}", code.message(locale));
        truncate_chars(&mut message, RESULT_MESSAGE_LEN_MAX);
        ResultBody {
            result_code: code.as_str().to_owned(),
            result_message: message,
        }
    }

    /// An error naming a parameter and what is wrong with it, in the locale (DECISIONS 44):
    /// `Некорректный параметр: paymentAmount — обязателен для статического QR`.
    pub fn for_param(code: ResultCode, locale: Locale, param: &Param) -> ResultBody {
        ResultBody::with_detail(code, locale, &param.text(locale))
    }

    /// The known code, if the text is one.
    pub fn code(&self) -> Option<ResultCode> {
        ResultCode::parse(&self.result_code)
    }
}

fn truncate_chars(text: &mut String, chars_max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(chars_max) {
        text.truncate(cut);
    }
}

/// A body that carries only `result` (errors of every method, and `/refund`'s answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultOnly {
    pub result: ResultBody,
}

// ---------------------------------------------------------------------------------------------
// scan (SPEC 4.1)

impl ScanPayment {
    /// `canConfirmUntil` as a point in time, read tolerantly (`+05:00`, `+06`, `Z`: DECISIONS 5).
    pub fn can_confirm_until_at(&self) -> Option<jiff::Timestamp> {
        crate::time::parse(&self.can_confirm_until)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanRequest {
    pub qr_code: String,
    pub customer_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QrCodeType {
    Dynamic,
    Static,
    Refund,
    Custom,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Merchant {
    pub merchant_id: String,
    pub merchant_name: String,
    #[serde(rename = "merchantMCC")]
    pub merchant_mcc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanPayment {
    pub payment_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::amount::strict_json_opt"
    )]
    pub payment_amount: Option<Amount>,
    pub can_confirm_until: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanRefund {
    pub refund_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentData {
    pub service_id: i64,
    pub service_name: String,
    pub parameters: Vec<ServiceParameter>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceParameter {
    pub id: i64,
    #[serde(default)]
    pub value: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<ParameterOption>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterOption {
    pub key: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResponse {
    pub result: ResultBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_code_type: Option<QrCodeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<Merchant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<ScanPayment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<ScanRefund>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_data: Option<PaymentData>,
}

// ---------------------------------------------------------------------------------------------
// checkout (SPEC 4.2)

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutRequest {
    pub payment_id: String,
    pub service_id: i64,
    #[serde(default)]
    pub parameters: Vec<ParameterValue>,
    /// The customer checking out. Not in SPEC 4.2's table, so optional; when sent, it must be the
    /// customer who scanned, else `UNKNOWN_CUSTOMER` (DECISIONS 11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterValue {
    pub id: i64,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutResponse {
    pub result: ResultBody,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::amount::strict_json_opt"
    )]
    pub payment_amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_confirm_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<Merchant>,
}

// ---------------------------------------------------------------------------------------------
// notifyPayment (SPEC 4.3)

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyPaymentRequest {
    pub result: ResultBody,
    pub payment: NotifyPayment,
    /// At the top level as in the regulation's example; also accepted inside `payment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

impl NotifyPaymentRequest {
    /// The MPP's SUCCESS for the PS's `payment_id`: customer `customer_id` was debited `amount`
    /// under the MPP's own `mpp_payment_id`. `amount` is required for a Static QR (what the
    /// customer entered) and optional for the others, whose amount the PS already holds.
    pub fn success(
        payment_id: String,
        mpp_payment_id: String,
        amount: Option<Amount>,
        customer_id: String,
    ) -> NotifyPaymentRequest {
        NotifyPaymentRequest {
            result: ResultBody::success(),
            payment: NotifyPayment {
                payment_id,
                mpp_payment_id,
                payment_amount: amount,
                customer_id: None,
            },
            customer_id: Some(customer_id),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyPayment {
    pub payment_id: String,
    pub mpp_payment_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::amount::strict_json_opt"
    )]
    pub payment_amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyPaymentResponse {
    pub result: ResultBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_receipt: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// refund (SPEC 4.4), served by the MPP

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    pub customer_id: String,
    pub payment_id: String,
    #[serde(deserialize_with = "crate::amount::strict_json")]
    pub refund_amount: Amount,
    pub refund_id: String,
    pub link_receipt: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_fits() {
        for code in ResultCode::ALL {
            assert_eq!(ResultCode::parse(code.as_str()), Some(*code));
            assert!(code.as_str().len() <= RESULT_CODE_LEN_MAX);
            for locale in [Locale::Ru, Locale::Kk] {
                assert!(code.message(locale).chars().count() <= RESULT_MESSAGE_LEN_MAX);
            }
        }
    }

    #[test]
    fn detail_is_cut_to_the_message_limit() {
        let long = "x".repeat(1000);
        let body = ResultBody::with_detail(ResultCode::ParamIllegal, Locale::Kk, &long);
        assert_eq!(body.result_message.chars().count(), RESULT_MESSAGE_LEN_MAX);
    }

    #[test]
    fn notify_request_reads_the_regulation_example() {
        let json = r#"{"result":{"resultCode":"SUCCESS","resultMessage":"success"},
            "payment":{"paymentId":"abc1234567890","mppPaymentId":"abcd12333","paymentAmount":"100.00"},
            "customerId":"9009********"}"#;
        let req: NotifyPaymentRequest = serde_json::from_str(json).expect("the example parses");
        assert_eq!(req.payment.payment_amount, Amount::from_tenge(100));
        assert_eq!(req.customer_id.as_deref(), Some("9009********"));
    }

    #[test]
    fn an_answers_amount_is_read_from_its_text_never_through_a_float() {
        let scan = |amount: &str| {
            serde_json::from_str::<ScanResponse>(&format!(
                r#"{{"result":{{"resultCode":"SUCCESS","resultMessage":"ok"}},
                    "payment":{{"paymentId":"1","paymentAmount":{amount},
                    "canConfirmUntil":"2026-11-27T18:31:42+05:00"}}}}"#
            ))
            .map(|r| r.payment.and_then(|p| p.payment_amount))
        };
        assert_eq!(scan(r#""100.00""#).ok(), Some(Amount::from_tenge(100)));
        assert_eq!(scan("100.5").ok(), Some(Amount::checked_from_tiyn(10_050)));
        // Forms a float would round or hide.
        for refused in ["1e3", "100.001", "1.0000000000000001"] {
            assert!(scan(refused).is_err(), "{refused}");
        }
        let checkout = serde_json::from_str::<CheckoutResponse>(
            r#"{"result":{"resultCode":"SUCCESS","resultMessage":"ok"},"paymentAmount":1e3}"#,
        );
        assert!(checkout.is_err());
    }
}
