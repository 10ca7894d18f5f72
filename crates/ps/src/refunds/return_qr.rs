//! Return QRs (DECISIONS 22, 27): made by the POS (`return/create`), scanned by the customer's
//! MPP (or the sandbox's emulator), which binds the refund to that customer; the refund made with
//! one is placed by [`super::place`].

use tolem_wire::Locale;
use tolem_wire::mpp::ResultCode;

use crate::domain::{DeviceId, Owner, Refund, RefundKind, RefundStatus, TradePointId};
use crate::links::secret_token;
use crate::state::App;
use crate::store::{NewRefund, NewReturnQr, Replay, StoreResult};

/// A return QR a POS asks for.
#[derive(Clone, Debug)]
pub(crate) struct ReturnQrOrder {
    pub trade_point_id: TradePointId,
    pub device_id: DeviceId,
    pub external_id: Option<String>,
    /// The token the QR shows (the merchant API's digits).
    pub qr_token: String,
}

/// `return/create`: a return QR that can be scanned for `refunds.return_qr_scan_wait_s`, or the
/// answer to the same request made before (`replay`). `answer` renders what the POS is told,
/// stored for its repeats.
pub(crate) async fn create_return_qr(
    app: &App,
    order: ReturnQrOrder,
    replay: Option<Replay>,
    answer: impl Fn(&Refund) -> String + Send + 'static,
) -> StoreResult<String> {
    let now = app.clock.now();
    let new = NewRefund {
        kind: RefundKind::Qr,
        status: RefundStatus::QrCreated,
        trade_point_id: order.trade_point_id,
        device_id: Some(order.device_id),
        qr: Some(NewReturnQr {
            external_id: order.external_id,
            qr_token: order.qr_token,
            expire_at: now
                .checked_add(app.config.refunds.return_qr_scan_wait())
                .unwrap_or(now),
        }),
        receipt_token: secret_token(),
        commission_mode: app.config.registers.refund_commission,
    };
    app.store
        .transaction(move |tx| {
            if let Some(first) = tx.replayed(&replay)? {
                return Ok(first);
            }
            let qr = tx.insert_refund(&new, now)?;
            let body = answer(&qr);
            tx.remember(&replay, &body, now)?;
            Ok(body)
        })
        .await
}

/// A scan of a return QR token by `owner` in `locale` (the scanner's `X-Locale`; `None` for the
/// sandbox's emulator): like a Dynamic QR, the first scan binds it (DECISIONS 22, 27).
/// `Ok(None)` when no return QR has that token; the MPP code when the scan is refused.
pub(crate) async fn scan_return_qr(
    app: &App,
    token: String,
    owner: Owner,
    locale: Option<Locale>,
) -> StoreResult<Option<Result<Refund, ResultCode>>> {
    let now = app.clock.now();
    let use_window = app.config.refunds.return_qr_use_window();
    app.store
        .transaction(move |tx| {
            let Some(mut qr) = tx.refund_by_token(&token)? else {
                return Ok(None);
            };
            match qr.scan(&owner, locale, now, use_window) {
                Ok(changed) => {
                    if changed {
                        tx.save_refund(&qr)?;
                    }
                    Ok(Some(Ok(qr)))
                }
                Err(code) => Ok(Some(Err(code))),
            }
        })
        .await
}
