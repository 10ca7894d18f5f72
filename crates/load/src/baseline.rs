//! The baseline: a plain axum server on the same tokio runtime defaults as the PS, serving the
//! same two MPP paths. It parses each body into the same wire types and answers the same shape of
//! JSON, but keeps nothing: no storage, no checks, no middleware. The gap between it and the PS is
//! what the PS's work (validation, SQLite, durable commits, tracing) costs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use tolem_wire::mpp::{
    self, Merchant, NotifyPaymentRequest, NotifyPaymentResponse, QrCodeType, ResultBody,
    ScanPayment, ScanRequest, ScanResponse,
};

use crate::drive;

/// A fixed deadline in the MPP API's date form; the PS computes one per scan.
const CONFIRM_UNTIL: &str = "2026-11-27T18:31:42+05:00";
const RECEIPT_URL: &str = "http://127.0.0.1:8080/receipt?id=";

/// Serves until killed; the first stdout line says where, as the PS's does.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(mpp::SCAN_PATH, post(scan))
        .route(mpp::NOTIFY_PAYMENT_PATH, post(notify))
        .with_state(Arc::new(AtomicU64::new(1)));
    println!("listening on http://{addr}");
    axum::serve(listener, app)
        .await
        .context("the baseline server stopped")
}

async fn scan(
    State(next_id): State<Arc<AtomicU64>>,
    Json(_req): Json<ScanRequest>,
) -> Json<ScanResponse> {
    let id = next_id.fetch_add(1, Ordering::Relaxed);
    Json(ScanResponse {
        result: ResultBody::success(),
        qr_code_type: Some(QrCodeType::Dynamic),
        merchant: Some(Merchant {
            merchant_id: "1001".to_owned(),
            merchant_name: "Demo Coffee (Абай, 10)".to_owned(),
            merchant_mcc: "5814".to_owned(),
            author_type: Some("POS".to_owned()),
        }),
        payment: Some(ScanPayment {
            payment_id: id.to_string(),
            payment_amount: Some(drive::PAID),
            can_confirm_until: CONFIRM_UNTIL.to_owned(),
        }),
        refund: None,
        payment_data: None,
    })
}

async fn notify(Json(req): Json<NotifyPaymentRequest>) -> Json<NotifyPaymentResponse> {
    // A receipt token as long as the PS's (32 characters), made from the request.
    let token = format!("{:0>32}", req.payment.payment_id);
    Json(NotifyPaymentResponse {
        result: ResultBody::success(),
        link_receipt: Some(format!("{RECEIPT_URL}{token}")),
    })
}
