//! The HTTP API the customer's app (`tolem wallet`) calls, and the PS-facing `/refund`, on one
//! listener. Errors are `{"error": "…"}` with a fitting HTTP status.

use std::future::Future;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tolem_wire::mpp::ParameterValue;
use tolem_wire::{Amount, Locale};

use crate::flows::{FlowError, Mpp};

/// Paths of the app API.
pub const SCAN_PATH: &str = "/app/v1/scan";
pub const CHECKOUT_PATH: &str = "/app/v1/checkout";
pub const CONFIRM_PATH: &str = "/app/v1/confirm";
pub const BACK_PATH: &str = "/app/v1/back";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanBody {
    pub customer_id: String,
    pub qr_code: String,
    /// `ru` or `kk`.
    #[serde(default)]
    pub locale: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckoutBody {
    pub customer_id: String,
    pub payment_id: String,
    pub parameters: Vec<ParameterValue>,
    #[serde(default)]
    pub locale: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfirmBody {
    pub customer_id: String,
    pub payment_id: String,
    /// The customer's amount for a Static QR.
    #[serde(default)]
    pub amount: Option<Amount>,
    #[serde(default)]
    pub locale: Option<String>,
}

/// Answers of `checkout`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckoutView {
    pub amount: Amount,
}

pub fn locale_of(text: Option<&str>) -> Locale {
    if text == Some("kk") {
        Locale::Kk
    } else {
        Locale::Ru
    }
}

pub fn router(mpp: Mpp) -> Router {
    let app = Router::new()
        .route(SCAN_PATH, post(scan))
        .route(CHECKOUT_PATH, post(checkout))
        .route(CONFIRM_PATH, post(confirm))
        .route(BACK_PATH, post(back))
        .route("/app/v1/customers/{id}", get(account))
        .with_state(mpp.clone());
    app.merge(mpp.refund_endpoint().router())
}

struct ApiError(FlowError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            FlowError::Invalid(_) | FlowError::InsufficientFunds => StatusCode::BAD_REQUEST,
            FlowError::NotFound | FlowError::UnknownCustomer(_) => StatusCode::NOT_FOUND,
            FlowError::Ps(_) => StatusCode::UNPROCESSABLE_ENTITY,
            FlowError::Unreachable(_) => StatusCode::BAD_GATEWAY,
            FlowError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.0.to_string() })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn scan(
    State(mpp): State<Mpp>,
    Json(body): Json<ScanBody>,
) -> ApiResult<crate::flows::ScanView> {
    let locale = locale_of(body.locale.as_deref());
    mpp.scan(&body.customer_id, &body.qr_code, locale)
        .await
        .map(Json)
        .map_err(ApiError)
}

async fn checkout(
    State(mpp): State<Mpp>,
    Json(body): Json<CheckoutBody>,
) -> ApiResult<CheckoutView> {
    let locale = locale_of(body.locale.as_deref());
    let amount = mpp
        .checkout(&body.customer_id, &body.payment_id, body.parameters, locale)
        .await
        .map_err(ApiError)?;
    Ok(Json(CheckoutView { amount }))
}

async fn confirm(
    State(mpp): State<Mpp>,
    Json(body): Json<ConfirmBody>,
) -> ApiResult<crate::flows::PaymentView> {
    let locale = locale_of(body.locale.as_deref());
    mpp.confirm(&body.customer_id, &body.payment_id, body.amount, locale)
        .await
        .map(Json)
        .map_err(ApiError)
}

async fn back(
    State(mpp): State<Mpp>,
    Json(body): Json<ConfirmBody>,
) -> ApiResult<crate::flows::PaymentView> {
    let locale = locale_of(body.locale.as_deref());
    mpp.back(&body.customer_id, &body.payment_id, locale)
        .await
        .map(Json)
        .map_err(ApiError)
}

async fn account(
    State(mpp): State<Mpp>,
    Path(id): Path<String>,
) -> ApiResult<crate::flows::Account> {
    mpp.account(&id).await.map(Json).map_err(ApiError)
}

/// Serves the app API and `/refund` on a bound listener until `shutdown`, with the kit's driver
/// finishing every pending notifyPayment (those an earlier run left too) meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mpp: Mpp,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let driver = match mpp.resume().await {
        Ok((n, driver)) => {
            if n > 0 {
                tracing::info!(payments = n, "finishing notifications left by the last run");
            }
            Some(driver)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the notification driver");
            None
        }
    };
    let served = axum::serve(listener, router(mpp))
        .with_graceful_shutdown(shutdown)
        .await;
    // Stopping mid-notification is safe: the next start resumes from the record.
    if let Some(driver) = driver {
        driver.abort();
    }
    served
}
