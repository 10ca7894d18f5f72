//! The merchant (POS) API, wire-compatible with the merchant QR API POS software already speaks
//! (DECISIONS 26–34, `MERCHANT-API.md`).
//!
//! Responses are written in PascalCase inside the `{StatusCode, Message, Data}` envelope. Requests
//! are read case-insensitively: [`parse_request`] lower-cases every key before deserializing into
//! the request types below, whose fields are therefore named in lower case. Ids are accepted as
//! JSON numbers or numeric strings and written as numbers.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::amount::as_number;
use crate::body::{self, Keys};
use crate::{Amount, Locale, Param, Problem};

macro_rules! status_codes {
    ($( $variant:ident => $code:literal, ru: $ru:literal, kk: $kk:literal; )*) => {
        /// Every `StatusCode` the merchant API answers: the one table of codes and messages.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum StatusCode { $( $variant, )* }

        impl StatusCode {
            pub const ALL: &'static [StatusCode] = &[ $( StatusCode::$variant, )* ];

            pub fn code(self) -> i64 {
                match self { $( StatusCode::$variant => $code, )* }
            }

            pub fn from_code(code: i64) -> Option<StatusCode> {
                match code { $( $code => Some(StatusCode::$variant), )* _ => None }
            }

            /// The `Message` in the request's language (docs/merchant-api.md, "Language").
            pub fn message(self, locale: Locale) -> &'static str {
                match (self, locale) {
                    $( (StatusCode::$variant, Locale::Ru) => $ru,
                       (StatusCode::$variant, Locale::Kk) => $kk, )*
                }
            }
        }
    };
}

// Codes and meanings follow the merchant API's own table (MERCHANT-API.md §7); the codes from
// -99000100 on are Tolem's, for situations that table has no code for (docs/merchant-api.md).
status_codes! {
    Ok => 0, ru: "OK", kk: "OK";
    Unavailable => -999, ru: "Сервис временно недоступен", kk: "Қызмет уақытша қолжетімсіз";
    AuthenticationFailed => -10000, ru: "Ошибка аутентификации (Api-Key или сертификат)",
        kk: "Аутентификация қатесі (Api-Key немесе сертификат)";
    DeviceNotFound => -1501, ru: "Устройство с заданным идентификатором не найдено",
        kk: "Берілген идентификаторы бар құрылғы табылмады";
    DeviceInactive => -1502, ru: "Устройство не активно (отключено или удалено)",
        kk: "Құрылғы белсенді емес (ажыратылған немесе жойылған)";
    DeviceOnOtherTradePoint => -1503, ru: "Устройство уже добавлено в другую торговую точку",
        kk: "Құрылғы басқа сауда нүктесіне қосылған";
    PurchaseNotFound => -1601, ru: "Покупка не найдена", kk: "Сатып алу табылмады";
    NoTradePoints => -14000002, ru: "Нет торговых точек", kk: "Сауда нүктелері жоқ";
    PaymentNotFound => -99000001, ru: "Покупка с заданным идентификатором не найдена",
        kk: "Берілген идентификаторы бар сатып алу табылмады";
    TradePointNotFound => -99000002, ru: "Торговая точка не найдена",
        kk: "Сауда нүктесі табылмады";
    TradePointMismatch => -99000003,
        ru: "Торговая точка покупки не совпадает с текущим устройством",
        kk: "Сатып алудың сауда нүктесі ағымдағы құрылғыға сәйкес келмейді";
    ReturnAmountExceeded => -99000005, ru: "Сумма возврата больше, чем осталось вернуть по покупке",
        kk: "Қайтару сомасы сатып алудан қайтаруға қалған сомадан асады";
    ReturnFailed => -99000006, ru: "Ошибка возврата, повторите попытку",
        kk: "Қайтару қатесі, әрекетті қайталаңыз";
    ReturnWrongStatus => -99000011, ru: "Невозможно вернуть покупку (несоответствующий статус)",
        kk: "Сатып алуды қайтару мүмкін емес (мәртебесі сәйкес емес)";
    PartialReturnImpossible => -99000020, ru: "Частичный возврат невозможен",
        kk: "Ішінара қайтару мүмкін емес";
    TradePointDisabled => 990000018, ru: "Торговая точка отключена",
        kk: "Сауда нүктесі ажыратылған";
    TradePointNoQr => 990000026, ru: "Торговая точка не принимает оплату с QR",
        kk: "Сауда нүктесі QR арқылы төлем қабылдамайды";
    InvalidAmount => 990000028, ru: "Неверная сумма операции", kk: "Операция сомасы қате";
    NoPaymentMethods => 990000033, ru: "Нет доступных методов оплаты",
        kk: "Қолжетімді төлем әдістері жоқ";
    NotSupported => -99000100, ru: "Операция не поддерживается этой платёжной системой",
        kk: "Бұл төлем жүйесі операцияны қолдамайды";
    InvalidRequest => -99000400, ru: "Некорректный запрос", kk: "Сұрау дұрыс емес";
    UnknownMethod => -99000404, ru: "Неизвестный метод", kk: "Белгісіз әдіс";
}

/// The `{StatusCode, Message, Data}` envelope of every merchant API response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope<T> {
    pub status_code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Envelope<T> {
        Envelope {
            status_code: 0,
            message: Some("OK".to_owned()),
            data: Some(data),
        }
    }
}

impl Envelope<()> {
    pub fn ok_empty() -> Envelope<()> {
        Envelope {
            status_code: 0,
            message: Some("OK".to_owned()),
            data: None,
        }
    }

    /// An error: the code's message in the locale, then the detail (already in that locale).
    pub fn error(code: StatusCode, locale: Locale, detail: Option<&str>) -> Envelope<()> {
        let message = match detail {
            Some(detail) => format!("{}: {detail}", code.message(locale)),
            None => code.message(locale).to_owned(),
        };
        Envelope {
            status_code: code.code(),
            message: Some(message),
            data: None,
        }
    }
}

/// A body the merchant API refuses: the code to answer and the parameter to name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    pub code: StatusCode,
    pub param: Param,
}

/// Reads a request body strictly (DECISIONS 44) and case-insensitively (DECISIONS 32): one JSON
/// object, no key twice in any case, keys lower-cased before deserializing into `T` (whose fields
/// are named in lower case). A missing or malformed `Amount` is `990000028`, anything else
/// wrong `-99000400`; the parameter is named as the API documents it (`DeviceToken`).
pub fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    body::read(body, Keys::AnyCase).map_err(|mut param| {
        let amount = param.name == "amount"
            && matches!(param.problem, Problem::Missing | Problem::Amount(_));
        // A repeated key is named as it was sent; other names are the lower-cased field's.
        if param.problem != Problem::Duplicate {
            param.name = documented_name(&param.name);
        }
        let code = if amount {
            StatusCode::InvalidAmount
        } else {
            StatusCode::InvalidRequest
        };
        BadRequest { code, param }
    })
}

/// A request field as the API's documents spell it (`devicetoken` → `DeviceToken`).
pub fn documented_name(lower: &str) -> String {
    const NAMES: &[&str] = &[
        "Amount",
        "DeviceId",
        "DeviceToken",
        "ExternalId",
        "MaxResult",
        "OrganizationBin",
        "QrPaymentId",
        "QrReturnId",
        "TradePointId",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(lower))
        .map_or_else(|| lower.to_owned(), |n| (*n).to_owned())
}

/// Reads an already parsed value case-insensitively (query strings, whose keys cannot repeat once
/// collected into a map).
pub fn from_value_any_case<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(lower_keys(value))
}

fn lower_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_lowercase(), lower_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lower_keys).collect()),
        other => other,
    }
}

/// Reads an id given as a JSON number or a numeric string (`23` or `"23"`).
pub fn lenient_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| D::Error::custom("the id is not an integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom("the id is not an integer")),
        _ => Err(D::Error::custom("the id must be a number")),
    }
}

fn lenient_id_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    lenient_id(deserializer).map(Some)
}

/// Reads the POS's own reference, a text, also given as a JSON integer (a check number, `12345`:
/// kept as `"12345"`), as DECISIONS 32 takes ids; `null` is none.
fn reference_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        other => Err(D::Error::invalid_type(
            serde::de::Unexpected::Other(match other {
                Value::Number(_) => "a number that is not an integer",
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            }),
            &"a text or an integer",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests (field names lower-case: see `parse_request`).

#[derive(Clone, Debug, Deserialize)]
pub struct DeviceRegisterRequest {
    pub deviceid: String,
    #[serde(deserialize_with = "lenient_id")]
    pub tradepointid: i64,
    #[serde(default)]
    pub organizationbin: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DeviceDeleteRequest {
    pub devicetoken: String,
    #[serde(default)]
    pub organizationbin: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct QrCreateRequest {
    pub devicetoken: String,
    /// Read from its exact text: no exponent, at most two decimals (DECISIONS 3, 44).
    #[serde(deserialize_with = "crate::amount::strict_json")]
    pub amount: Amount,
    #[serde(default, deserialize_with = "reference_opt")]
    pub externalid: Option<String>,
    #[serde(default)]
    pub organizationbin: Option<String>,
}

/// Body of the sandbox emulators `test/payment/*` (`{"qrPaymentId": "123"}`).
#[derive(Clone, Debug, Deserialize)]
pub struct EmulatorRequest {
    #[serde(deserialize_with = "lenient_id")]
    pub qrpaymentid: i64,
    /// r3 names the organization it acts for; when sent, it must be the caller's.
    #[serde(default)]
    pub organizationbin: Option<String>,
}

/// Query of `payment/details` and similar GET calls.
#[derive(Clone, Debug, Deserialize)]
pub struct PaymentQuery {
    #[serde(default, deserialize_with = "lenient_id_opt")]
    pub qrpaymentid: Option<i64>,
    #[serde(default)]
    pub devicetoken: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Responses (PascalCase).

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TradePoint {
    pub trade_point_id: i64,
    pub trade_point_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceToken {
    pub device_token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QrPaymentBehaviorOptions {
    pub status_polling_interval: u32,
    pub qr_code_scan_wait_timeout: u32,
    pub payment_confirmation_timeout: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QrCreated {
    pub qr_token: String,
    pub expire_date: String,
    pub qr_payment_id: i64,
    pub payment_methods: Vec<String>,
    pub qr_payment_behavior_options: QrPaymentBehaviorOptions,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentBehaviorOptions {
    pub status_polling_interval: u32,
    pub link_activation_wait_timeout: u32,
    pub payment_confirmation_timeout: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LinkCreated {
    pub payment_link: String,
    pub expire_date: String,
    pub payment_id: i64,
    pub payment_methods: Vec<String>,
    pub payment_behavior_options: PaymentBehaviorOptions,
}

/// The statuses of a purchase as the POS sees them (MERCHANT-API.md §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    QrTokenCreated,
    Wait,
    Processed,
    Error,
}

/// `payment/status`: v01 carries `Status` only; v02 adds the rest once known (DECISIONS 27).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentStatusData {
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_number"
    )]
    pub amount: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
}

fn optional_number<S: serde::Serializer>(amount: &Option<Amount>, s: S) -> Result<S::Ok, S::Error> {
    match amount {
        Some(amount) => as_number(amount, s),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------------------------
// Refunds ("returns"): requests.

#[derive(Clone, Debug, Deserialize)]
pub struct ReturnCreateRequest {
    pub devicetoken: String,
    #[serde(default, deserialize_with = "reference_opt")]
    pub externalid: Option<String>,
    #[serde(default)]
    pub organizationbin: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ReturnOperationsRequest {
    pub devicetoken: String,
    #[serde(deserialize_with = "lenient_id")]
    pub qrreturnid: i64,
    #[serde(default, deserialize_with = "lenient_id_opt")]
    pub maxresult: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PaymentReturnRequest {
    pub devicetoken: String,
    #[serde(deserialize_with = "lenient_id")]
    pub qrpaymentid: i64,
    #[serde(default, deserialize_with = "lenient_id_opt")]
    pub qrreturnid: Option<i64>,
    /// Read from its exact text, as in `qr/create`.
    #[serde(deserialize_with = "crate::amount::strict_json")]
    pub amount: Amount,
    #[serde(default)]
    pub organizationbin: Option<String>,
}

/// Body of the sandbox emulator `test/return/scan`.
#[derive(Clone, Debug, Deserialize)]
pub struct ReturnEmulatorRequest {
    #[serde(deserialize_with = "lenient_id")]
    pub qrreturnid: i64,
    /// As [`EmulatorRequest::organizationbin`].
    #[serde(default)]
    pub organizationbin: Option<String>,
}

// Refunds: responses.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QrReturnBehaviorOptions {
    pub qr_code_scan_event_polling_interval: u32,
    pub qr_code_scan_wait_timeout: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReturnCreated {
    pub qr_token: String,
    pub expire_date: String,
    pub qr_return_id: i64,
    pub qr_return_behavior_options: QrReturnBehaviorOptions,
}

/// Statuses of a return QR (MERCHANT-API.md §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnStatus {
    QrTokenCreated,
    CustomerIdentityObtained,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReturnStatusData {
    pub status: ReturnStatus,
}

/// One of the customer's purchases in `return/operations`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReturnOperation {
    pub qr_payment_id: i64,
    #[serde(serialize_with = "as_number")]
    pub amount: Amount,
    pub transaction_date: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentDetails {
    pub qr_payment_id: i64,
    #[serde(serialize_with = "as_number")]
    pub total_amount: Amount,
    #[serde(serialize_with = "as_number")]
    pub available_return_amount: Amount,
    pub transaction_date: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReturnOperationId {
    pub return_operation_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique() {
        for (i, a) in StatusCode::ALL.iter().enumerate() {
            assert_eq!(StatusCode::from_code(a.code()), Some(*a));
            assert!(
                StatusCode::ALL[i + 1..]
                    .iter()
                    .all(|b| b.code() != a.code())
            );
        }
    }

    #[test]
    fn reads_any_case_and_string_ids() {
        let req: DeviceRegisterRequest =
            parse_request(br#"{"deviceId":"GFC-1","TRADEPOINTID":"23"}"#).expect("parses");
        assert_eq!((req.deviceid.as_str(), req.tradepointid), ("GFC-1", 23));
        let req: QrCreateRequest =
            parse_request(br#"{"DeviceToken":"t","Amount":150.5}"#).expect("parses");
        assert_eq!(req.amount, Amount::from_tiyn(15_050));
    }

    #[test]
    fn refuses_repeats_in_any_case_and_bad_amounts() {
        let refused = |body: &str| parse_request::<QrCreateRequest>(body.as_bytes()).err();
        assert_eq!(
            refused(r#"{"DeviceToken":"t","Amount":1,"amount":100000}"#),
            Some(BadRequest {
                code: StatusCode::InvalidRequest,
                param: Param::new("amount", Problem::Duplicate),
            })
        );
        for amount in ["1e3", "-1", "1.001", "\"abc\"", "null", "\"\""] {
            let body = format!(r#"{{"DeviceToken":"t","Amount":{amount}}}"#);
            let refused = refused(&body).expect("refused");
            assert_eq!(refused.code, StatusCode::InvalidAmount, "{amount}");
            assert_eq!(refused.param.name, "Amount", "{amount}");
        }
        let missing = refused(r#"{"DeviceToken":"t"}"#).expect("refused");
        assert_eq!(
            (missing.code, missing.param),
            (
                StatusCode::InvalidAmount,
                Param::new("Amount", Problem::Missing)
            )
        );
        let missing = refused(r#"{"Amount":1}"#).expect("refused");
        assert_eq!(
            (missing.code, missing.param),
            (
                StatusCode::InvalidRequest,
                Param::new("DeviceToken", Problem::Missing)
            )
        );
        assert_eq!(
            refused("[1]").map(|r| r.code),
            Some(StatusCode::InvalidRequest)
        );
    }

    #[test]
    fn writes_pascal_case_and_numeric_amounts() {
        let data = PaymentStatusData {
            status: PaymentStatus::Processed,
            transaction_id: None,
            amount: Some(Amount::from_tiyn(20_000)),
            store_name: None,
            address: None,
            city: None,
            product_type: None,
        };
        let json = serde_json::to_string(&Envelope::ok(data)).expect("serializes");
        assert_eq!(
            json,
            r#"{"StatusCode":0,"Message":"OK","Data":{"Status":"Processed","Amount":200.00}}"#
        );
    }
}
