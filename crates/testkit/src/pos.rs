//! What a POS does, through the merchant API over HTTP as a real POS does it: QRs, refunds,
//! purchase status.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tolem_wire::Amount;
use tolem_wire::amount::as_number;
use tolem_wire::merchant::{
    DeviceToken, Envelope, PaymentDetails, PaymentStatusData, QrCreated, ReturnCreated,
    ReturnOperationId,
};

use crate::sandbox::SandboxPs;
use crate::{CAFE_BIN, TestkitError};

/// The demo café organization's test key (`examples/sandbox.toml`, `docs/sandbox.md`).
const API_KEY: &str = "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39";

/// A Dynamic QR the café's POS made: the token a customer's app scans, and the purchase it is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DynamicQr {
    /// The QR's text: what the bank's scan sends as `qrCode`.
    pub token: String,
    /// The purchase's id: the scan's `paymentId`, and `QrPaymentId` to the POS.
    pub payment_id: i64,
}

/// A return QR the café's POS shows to refund a purchase to the customer who scans it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReturnQr {
    /// The QR's text: what the bank's scan sends as `qrCode` (a `Refund` scan).
    pub token: String,
    /// Its `QrReturnId`, also the refundId the bank's `/refund` is later called with.
    pub id: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct QrCreate<'a> {
    device_token: &'a str,
    // The merchant API's amounts are JSON numbers; written from the exact tiyn, never a float.
    #[serde(serialize_with = "as_number")]
    amount: Amount,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PaymentReturn<'a> {
    device_token: &'a str,
    qr_payment_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    qr_return_id: Option<i64>,
    #[serde(serialize_with = "as_number")]
    amount: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization_bin: Option<&'a str>,
}

impl SandboxPs {
    /// The café's POS shows a Dynamic QR of `amount` (`POST /r1/v01/qr/create`).
    pub async fn dynamic_qr(&self, amount: Amount) -> Result<DynamicQr, TestkitError> {
        let body = QrCreate {
            device_token: &self.device,
            amount,
        };
        let created: QrCreated = self.pos_post("/r1/v01/qr/create", &body).await?;
        Ok(DynamicQr {
            token: created.qr_token,
            payment_id: created.qr_payment_id,
        })
    }

    /// The café's POS shows a return QR (`POST /r2/v01/return/create`). Once the bank has scanned
    /// it, [`SandboxPs::refund_with_qr`] refunds a purchase of that customer with it.
    pub async fn return_qr(&self) -> Result<ReturnQr, TestkitError> {
        let body = serde_json::json!({ "DeviceToken": self.device });
        let created: ReturnCreated = self.pos_post("/r2/v01/return/create", &body).await?;
        Ok(ReturnQr {
            token: created.qr_token,
            id: created.qr_return_id,
        })
    }

    /// The café refunds `amount` of purchase `payment_id` without the customer
    /// (`POST /r3/v01/payment/return`), as a cashier does; returns the refund's id (the
    /// refundId the bank's `/refund` is called with). The PS delivers it in the background:
    /// [`SandboxPs::wait_refund_settled`] waits for the bank's answer.
    pub async fn refund(&self, payment_id: i64, amount: Amount) -> Result<i64, TestkitError> {
        let body = PaymentReturn {
            device_token: &self.device,
            qr_payment_id: payment_id,
            qr_return_id: None,
            amount,
            organization_bin: Some(CAFE_BIN),
        };
        let placed: ReturnOperationId = self.pos_post("/r3/v01/payment/return", &body).await?;
        Ok(placed.return_operation_id)
    }

    /// The café refunds `amount` of purchase `payment_id` with a return QR the bank has scanned
    /// (`POST /r2/v01/payment/return`); returns the refund's id (the return QR's id).
    pub async fn refund_with_qr(
        &self,
        qr: &ReturnQr,
        payment_id: i64,
        amount: Amount,
    ) -> Result<i64, TestkitError> {
        let body = PaymentReturn {
            device_token: &self.device,
            qr_payment_id: payment_id,
            qr_return_id: Some(qr.id),
            amount,
            organization_bin: None,
        };
        let placed: ReturnOperationId = self.pos_post("/r2/v01/payment/return", &body).await?;
        Ok(placed.return_operation_id)
    }

    /// A purchase as the POS sees it (`GET /r1/v02/payment/status/{id}`): `Wait` while the bank
    /// has not confirmed, `Processed` once paid, `Error` when refused or expired.
    pub async fn payment_status(&self, payment_id: i64) -> Result<PaymentStatusData, TestkitError> {
        self.pos_get(&format!("/r1/v02/payment/status/{payment_id}"))
            .await
    }

    /// What is left to refund of a purchase (`GET /r2/v01/payment/details`): its amount less
    /// the refunds placed, delivered or not.
    pub async fn refundable(&self, payment_id: i64) -> Result<Amount, TestkitError> {
        let path = format!(
            "/r2/v01/payment/details?QrPaymentId={payment_id}&DeviceToken={}",
            self.device
        );
        let details: PaymentDetails = self.pos_get(&path).await?;
        Ok(details.available_return_amount)
    }

    pub(crate) async fn register_device(
        &self,
        device_id: &str,
        trade_point: i64,
    ) -> Result<String, TestkitError> {
        let body = serde_json::json!({ "DeviceId": device_id, "TradePointId": trade_point });
        let token: DeviceToken = self.pos_post("/r1/v01/device/register", &body).await?;
        Ok(token.device_token)
    }

    async fn pos_post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, TestkitError> {
        let request = self.http.post(format!("{}{path}", self.url)).json(body);
        self.pos_send(format!("POST {path}"), request).await
    }

    async fn pos_get<T: DeserializeOwned>(&self, path: &str) -> Result<T, TestkitError> {
        let request = self.http.get(format!("{}{path}", self.url));
        self.pos_send(format!("GET {path}"), request).await
    }

    /// Sends a merchant API call and opens its envelope: `Data` on `StatusCode` 0, the code
    /// as [`TestkitError::Refused`] otherwise.
    async fn pos_send<T: DeserializeOwned>(
        &self,
        call: String,
        request: reqwest::RequestBuilder,
    ) -> Result<T, TestkitError> {
        let (http_status, body) = send(&call, request.header("api-key", API_KEY)).await?;
        let unexpected = || TestkitError::Unexpected {
            call: call.clone(),
            http_status,
            body: body.clone(),
        };
        let envelope: Envelope<serde_json::Value> =
            serde_json::from_str(&body).map_err(|_| unexpected())?;
        if envelope.status_code != 0 {
            return Err(TestkitError::Refused {
                call,
                status_code: envelope.status_code,
                message: envelope.message.unwrap_or_default(),
            });
        }
        let data = envelope.data.ok_or_else(unexpected)?;
        serde_json::from_value(data).map_err(|_| unexpected())
    }
}

/// Sends a request: (HTTP status, body), or [`TestkitError::NoAnswer`].
pub(crate) async fn send(
    call: &str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, String), TestkitError> {
    let no_answer = |e: reqwest::Error| TestkitError::NoAnswer {
        call: call.to_owned(),
        reason: e.to_string(),
    };
    let response = request.send().await.map_err(no_answer)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(no_answer)?;
    Ok((status, body))
}
