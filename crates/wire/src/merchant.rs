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

use crate::Amount;
use crate::amount::as_number;

macro_rules! status_codes {
    ($( $variant:ident => $code:literal, $message:literal; )*) => {
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

            pub fn message(self) -> &'static str {
                match self { $( StatusCode::$variant => $message, )* }
            }
        }
    };
}

// Codes and meanings follow the merchant API's own table (MERCHANT-API.md §7); the codes from
// -99000100 on are Tolem's, for situations that table has no code for (docs/merchant-api.md).
status_codes! {
    Ok => 0, "OK";
    Unavailable => -999, "Сервис временно недоступен";
    AuthenticationFailed => -10000, "Ошибка аутентификации (Api-Key или сертификат)";
    DeviceNotFound => -1501, "Устройство с заданным идентификатором не найдено";
    DeviceInactive => -1502, "Устройство не активно (отключено или удалено)";
    DeviceOnOtherTradePoint => -1503, "Устройство уже добавлено в другую торговую точку";
    PurchaseNotFound => -1601, "Покупка не найдена";
    NoTradePoints => -14000002, "Нет торговых точек";
    PaymentNotFound => -99000001, "Покупка с заданным идентификатором не найдена";
    TradePointNotFound => -99000002, "Торговая точка не найдена";
    TradePointMismatch => -99000003, "Торговая точка покупки не совпадает с текущим устройством";
    ReturnAmountExceeded => -99000005, "Сумма возврата не может превышать сумму покупки";
    ReturnFailed => -99000006, "Ошибка возврата, повторите попытку";
    ReturnWrongStatus => -99000011, "Невозможно вернуть покупку (несоответствующий статус)";
    PartialReturnImpossible => -99000020, "Частичный возврат невозможен";
    TradePointDisabled => 990000018, "Торговая точка отключена";
    TradePointNoQr => 990000026, "Торговая точка не принимает оплату с QR";
    InvalidAmount => 990000028, "Неверная сумма операции";
    NoPaymentMethods => 990000033, "Нет доступных методов оплаты";
    NotSupported => -99000100, "Операция не поддерживается этой платёжной системой";
    InvalidRequest => -99000400, "Некорректный запрос";
    UnknownMethod => -99000404, "Неизвестный метод";
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

    pub fn error(code: StatusCode, detail: Option<&str>) -> Envelope<()> {
        let message = match detail {
            Some(detail) => format!("{}: {detail}", code.message()),
            None => code.message().to_owned(),
        };
        Envelope {
            status_code: code.code(),
            message: Some(message),
            data: None,
        }
    }
}

/// Reads a request body case-insensitively: every object key is lower-cased, then the value is
/// deserialized into `T` (whose fields are named in lower case).
pub fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    from_value_any_case(value)
}

/// Like [`parse_request`] for an already parsed value (also used for query strings).
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
    pub amount: Amount,
    #[serde(default)]
    pub externalid: Option<String>,
    #[serde(default)]
    pub organizationbin: Option<String>,
}

/// Body of the sandbox emulators `test/payment/*` (`{"qrPaymentId": "123"}`).
#[derive(Clone, Debug, Deserialize)]
pub struct EmulatorRequest {
    #[serde(deserialize_with = "lenient_id")]
    pub qrpaymentid: i64,
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
    #[serde(default)]
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
    pub amount: Amount,
    #[serde(default)]
    pub organizationbin: Option<String>,
}

/// Body of the sandbox emulator `test/return/scan`.
#[derive(Clone, Debug, Deserialize)]
pub struct ReturnEmulatorRequest {
    #[serde(deserialize_with = "lenient_id")]
    pub qrreturnid: i64,
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
