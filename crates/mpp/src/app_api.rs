//! The HTTP API the customer's app (`tolem wallet`, the browser wallet of [`crate::web`]) calls,
//! and the PS-facing `/refund`, on one listener. Errors are `{"error": "…"}` with a fitting HTTP
//! status.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tolem_wire::mpp::ParameterValue;
use tolem_wire::{Amount, Locale};

use crate::flows::{FlowError, Mpp};
use crate::wallet::WalletError;
use crate::wallet::qr::{self, Bounds};

/// Paths of the app API.
pub const SCAN_PATH: &str = "/app/v1/scan";
pub const CHECKOUT_PATH: &str = "/app/v1/checkout";
pub const CONFIRM_PATH: &str = "/app/v1/confirm";
pub const BACK_PATH: &str = "/app/v1/back";
/// Reads the QR code in a picture the app uploads (the browser wallet, where it has no camera).
pub const QR_DECODE_PATH: &str = "/app/v1/qr/decode";

/// The largest picture `/app/v1/qr/decode` takes: a phone's photo of a code, well within.
pub const QR_IMAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The pictures the MPP reads for its customers: smaller than a file the CLI wallet reads on
/// the customer's own machine, since here the memory is the MPP's (a 12-megapixel photo is
/// 4 032 px wide).
pub const QR_IMAGE_BOUNDS: Bounds = Bounds {
    bytes_max: QR_IMAGE_BYTES_MAX as u64,
    side_px_max: 6_000,
    alloc_bytes_max: 192 * 1024 * 1024,
};
/// How many pictures are read at once; the rest wait their turn (decoding takes a core).
const QR_DECODES_MAX: usize = 2;
static QR_DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(QR_DECODES_MAX);

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
    /// The customer's amount for a Static QR, read from its exact text (DECISIONS 3).
    #[serde(default, deserialize_with = "tolem_wire::amount::strict_json_opt")]
    pub amount: Option<Amount>,
    #[serde(default)]
    pub locale: Option<String>,
}

/// The answer of `qr/decode`: the QR code's text, to send to `scan`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecodedQr {
    pub qr_code: String,
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

/// The app API, the wallet's pages and `/refund`, on one listener.
pub fn router(mpp: Mpp) -> Router {
    app_router(mpp.clone()).merge(mpp.refund_endpoint().router())
}

/// The app API and the wallet's pages, without `/refund`.
fn app_router(mpp: Mpp) -> Router {
    let app = Router::new()
        .route(SCAN_PATH, post(scan))
        .route(CHECKOUT_PATH, post(checkout))
        .route(CONFIRM_PATH, post(confirm))
        .route(BACK_PATH, post(back))
        .route("/app/v1/customers/{id}", get(account))
        .route(
            QR_DECODE_PATH,
            post(decode_qr).layer(DefaultBodyLimit::max(QR_IMAGE_BYTES_MAX)),
        )
        .with_state(mpp);
    app.merge(crate::web::router())
}

struct ApiError(FlowError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            FlowError::Invalid(_) | FlowError::InsufficientFunds => StatusCode::BAD_REQUEST,
            FlowError::NotFound | FlowError::UnknownCustomer(_) => StatusCode::NOT_FOUND,
            FlowError::Ps(_) => StatusCode::UNPROCESSABLE_ENTITY,
            FlowError::Unreachable(_) | FlowError::Unreadable(_) => StatusCode::BAD_GATEWAY,
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

/// `POST /app/v1/qr/decode[?locale=kk]` with the picture's bytes (PNG or JPEG) as the body:
/// `{"qrCode": "…"}`, or `{"error": "…", "code": "…"}` worded in the locale: 413 `too_large`,
/// 400 `image_unreadable` (not a PNG/JPEG, torn, too many pixels), 422 `no_qr_code` or
/// `qr_unreadable`.
async fn decode_qr(RawQuery(query): RawQuery, body: Result<Bytes, BytesRejection>) -> Response {
    let locale = locale_of(query_locale(query.as_deref()));
    let refuse = |status: StatusCode, code: &str, e: WalletError| {
        let body = serde_json::json!({ "error": e.message(locale), "code": code });
        (status, Json(body)).into_response()
    };
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let why = format!(
                "the file is larger than {} MiB",
                QR_IMAGE_BYTES_MAX / 1024 / 1024
            );
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                WalletError::ImageUnreadable(why),
            );
        }
        Err(rejection) => {
            let e = WalletError::ImageUnreadable(rejection.body_text());
            return refuse(StatusCode::BAD_REQUEST, "image_unreadable", e);
        }
    };
    // The semaphore is never closed, so acquiring only waits.
    let Ok(_permit) = QR_DECODES.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let read =
        tokio::task::spawn_blocking(move || qr::decode_within(&bytes, QR_IMAGE_BOUNDS)).await;
    match read {
        Ok(Ok(qr_code)) => Json(DecodedQr { qr_code }).into_response(),
        Ok(Err(e @ WalletError::ImageUnreadable(_))) => {
            refuse(StatusCode::BAD_REQUEST, "image_unreadable", e)
        }
        Ok(Err(e @ WalletError::NoQrCode)) => {
            refuse(StatusCode::UNPROCESSABLE_ENTITY, "no_qr_code", e)
        }
        Ok(Err(e)) => refuse(StatusCode::UNPROCESSABLE_ENTITY, "qr_unreadable", e),
        Err(e) => ApiError(FlowError::Internal(e.to_string())).into_response(),
    }
}

/// The `locale` of a query string (`?locale=kk`), if any.
fn query_locale(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("locale="))
}

/// Serves the app API and `/refund` on a bound listener until `shutdown` (`/refund` on
/// `refund_listener` alone when there is one), with the kit's driver finishing every pending
/// notifyPayment (those an earlier run left too) meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    refund_listener: Option<tokio::net::TcpListener>,
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
    let served = match refund_listener {
        None => crate::listen::serve(listener, router(mpp), shutdown).await,
        Some(refund_listener) => {
            // Either listener ending (the shutdown, or a failure) ends the other.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let stop = std::sync::Arc::new(stop);
            let on_shutdown = stop.clone();
            tokio::spawn(async move {
                shutdown.await;
                on_shutdown.send_replace(true);
            });
            let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let refunds = crate::listen::serve(
                refund_listener,
                mpp.refund_endpoint().router(),
                until_stopped(stopped.clone()),
            );
            let app = crate::listen::serve(listener, app_router(mpp), until_stopped(stopped));
            let (app, refunds) = tokio::join!(
                async {
                    let served = app.await;
                    stop.send_replace(true);
                    served
                },
                async {
                    let served = refunds.await;
                    stop.send_replace(true);
                    served
                }
            );
            app.and(refunds)
        }
    };
    // Stopping mid-notification is safe: the next start resumes from the record.
    if let Some(driver) = driver {
        driver.abort();
    }
    served
}
