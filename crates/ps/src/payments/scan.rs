//! scan (SPEC 4.1, DECISIONS 12–14): resolve a QR token into a purchase bound to the scanner.
//! Each scan is one transaction of its own: a Static or Custom scan creates a purchase already
//! bound; a Dynamic QR's or link's scan binds the purchase of that token.

use jiff::Timestamp;
use tolem_wire::mpp::{
    CUSTOMER_ID_LEN_MAX, PaymentData, QR_CODE_LEN_MAX, QrCodeType, ResultBody, ResultCode,
    ScanPayment, ScanRefund, ScanRequest, ScanResponse, ServiceParameter,
};
use tolem_wire::{Locale, mpp};

use super::{Caller, MppError, check_len, merchant_of};
use crate::catalog::{CatalogToken, Service};
use crate::domain::{Kind, Owner, Payment, ServiceId, Status, TradePointId};
use crate::links::secret_token;
use crate::state::App;
use crate::store::{NewPayment, ScanKey, StoreResult};

/// `repeat` makes the key that tells a retry of a Static or Custom scan from a new scan of the
/// same sticker: a retry is answered with the purchase the first made. It is called only for
/// those (a Dynamic QR's or a return QR's scan binds what exists, and binding it again is the
/// same answer), so the scans of the hot path hash no body.
pub async fn scan(
    app: &App,
    caller: &Caller,
    req: ScanRequest,
    repeat: impl FnOnce() -> ScanKey,
) -> Result<ScanResponse, MppError> {
    check_len(&req.qr_code, QR_CODE_LEN_MAX, "qrCode")?;
    check_len(&req.customer_id, CUSTOMER_ID_LEN_MAX, "customerId")?;
    let owner = Owner {
        mpp: caller.mpp.caller_name.clone(),
        customer_id: req.customer_id,
    };
    let catalog = app.catalog.get();
    let now = app.clock.now();
    match catalog.token(&req.qr_code) {
        Some(CatalogToken::Static { trade_point_id }) => {
            app.merchant_check().state(trade_point_id).check()?;
            let new = new_scanned(Kind::Static, trade_point_id, None);
            let payment = create_scanned(app, new, (owner, repeat()), caller.locale, now).await?;
            Ok(answer(app, QrCodeType::Static, &payment, None))
        }
        Some(CatalogToken::Custom { service_id }) => {
            let service = catalog.services.get(&service_id).filter(|s| s.active);
            let Some(service) = service else {
                return Err(ResultCode::CustomQrError.into());
            };
            app.merchant_check().state(service.trade_point_id).check()?;
            let new = new_scanned(Kind::Custom, service.trade_point_id, Some(service.id));
            let payment = create_scanned(app, new, (owner, repeat()), caller.locale, now).await?;
            let data = payment_data(service, caller.locale);
            Ok(answer(app, QrCodeType::Custom, &payment, Some(data)))
        }
        None => {
            let scanned =
                scan_token(app, req.qr_code.clone(), owner.clone(), caller.locale, now).await?;
            match scanned {
                Some(Ok(payment)) => Ok(answer(app, QrCodeType::Dynamic, &payment, None)),
                Some(Err((code, status))) => Err(MppError::refusing(code, status, caller.locale)),
                None => scan_return_qr(app, req.qr_code, owner, caller.locale).await,
            }
        }
    }
}

/// Creates a purchase that is scanned at once (Static and Custom QR: DECISIONS 13–14), bound to
/// the scanner, with the scan's language; a repeat of the same scan (`repeat`) gets the purchase
/// the first made.
async fn create_scanned(
    app: &App,
    new: NewPayment,
    (owner, repeat): (Owner, ScanKey),
    locale: Locale,
    now: Timestamp,
) -> StoreResult<Payment> {
    let policy = app.policy;
    app.store
        // It reads one record and writes a purchase under a fresh id: READ COMMITTED, and staged
        // on PostgreSQL (the INSERTs and the scan's UPDATE go out with the `COMMIT`). Two
        // repeats at once both write the record; the second fails on its key and runs again.
        .staged_locking_transaction(move |tx| {
            // The new purchase's id travels with the record's read: one round trip, not two.
            tx.want_payment_id()?;
            if let Some(first) = tx.scanned_before(&repeat)? {
                // A retry while the first purchase is open gets it. Once that ended (paid,
                // cancelled, expired) or was deleted, the request id names no scan in progress:
                // an MPP that reuses its ids gets a new purchase, never a paid one back.
                match tx.payment(first)? {
                    Some(payment) if payment.effective_status(now, &policy) == Status::Scanned => {
                        return Ok(payment);
                    }
                    _ => tx.forget_scan(&repeat)?,
                }
            }
            let mut payment = tx.insert_payment(&new, now)?;
            payment.bind(&owner, now, &policy);
            tx.save_scanned_payment(&payment, &policy, locale)?;
            tx.remember_scan(&repeat, payment.id, now)?;
            Ok(payment)
        })
        .await
}

/// A scan of a Dynamic QR or link token in `locale`; `Ok(None)` when no purchase has that
/// token. The merchant's state is read from the catalog as it is now (DECISIONS 19).
async fn scan_token(
    app: &App,
    token: String,
    owner: Owner,
    locale: Locale,
    now: Timestamp,
) -> StoreResult<Option<Result<Payment, (ResultCode, Status)>>> {
    let check = app.merchant_check();
    let policy = app.policy;
    app.store
        // The scan reads and changes this purchase alone, which the load locks.
        .staged_locking_transaction(move |tx| {
            let Some(mut payment) = tx.payment_by_token_to_change(&token)? else {
                return Ok(None);
            };
            if let Err(code) = check.state(payment.trade_point_id).check() {
                return Ok(Some(Err((code, Status::Created))));
            }
            match payment.scan(&owner, now, &policy) {
                Ok(changed) => {
                    // Only the scan that binds the customer changes the purchase; a repeat
                    // scan by the same customer keeps the first scan's language.
                    if changed {
                        tx.save_scanned_payment(&payment, &policy, locale)?;
                    }
                    Ok(Some(Ok(payment)))
                }
                // Why it is final is the purchase's own MPP's to hear: another learns nothing
                // of it (DECISIONS 11), not even that its payment was refused.
                Err(code) => {
                    let own = payment.owner.as_ref().is_some_and(|o| o.mpp == owner.mpp);
                    let status = if own { payment.status } else { Status::Created };
                    Ok(Some(Err((code, status))))
                }
            }
        })
        .await
}

/// A return QR (DECISIONS 22, 27): the scan identifies the customer the refund will go to.
async fn scan_return_qr(
    app: &App,
    token: String,
    owner: Owner,
    locale: Locale,
) -> Result<ScanResponse, MppError> {
    let Some(qr) = app.store.refund_by_token(token.clone()).await? else {
        return Err(ResultCode::InvalidToken.into());
    };
    // A suspended merchant, or a trade point that no longer takes QR payments, may still give
    // money back; a blocked one may not.
    if !app.merchant_check().may_give_back(qr.trade_point_id) {
        return Err(ResultCode::InvalidMerchant.into());
    }
    match crate::refunds::scan_return_qr(app, token, owner, Some(locale)).await? {
        Some(Ok(qr)) => Ok(ScanResponse {
            result: ResultBody::success(),
            qr_code_type: Some(QrCodeType::Refund),
            merchant: merchant_of(&app.catalog.get(), qr.trade_point_id),
            payment: None,
            refund: Some(ScanRefund {
                refund_id: qr.id.to_string(),
            }),
            payment_data: None,
        }),
        Some(Err(code)) => Err(code.into()),
        None => Err(ResultCode::InvalidToken.into()),
    }
}

fn new_scanned(
    kind: Kind,
    trade_point_id: TradePointId,
    service_id: Option<ServiceId>,
) -> NewPayment {
    NewPayment {
        kind,
        trade_point_id,
        service_id,
        device_id: None,
        external_id: None,
        qr_token: None,
        amount: None,
        expire_at: None,
        receipt_token: secret_token(),
    }
}

fn answer(
    app: &App,
    kind: QrCodeType,
    payment: &Payment,
    data: Option<PaymentData>,
) -> ScanResponse {
    let catalog = app.catalog.get();
    let until = payment
        .confirm_until
        .map(|t| app.format_date(t))
        .unwrap_or_default();
    ScanResponse {
        result: ResultBody::success(),
        qr_code_type: Some(kind),
        merchant: merchant_of(&catalog, payment.trade_point_id),
        payment: Some(ScanPayment {
            payment_id: payment.id.to_string(),
            payment_amount: if kind == QrCodeType::Dynamic {
                payment.amount
            } else {
                None
            },
            can_confirm_until: until,
        }),
        refund: None,
        payment_data: data,
    }
}

/// The Custom service's form in the caller's language.
fn payment_data(service: &Service, locale: Locale) -> PaymentData {
    PaymentData {
        service_id: service.id.get(),
        service_name: service.name.get(locale).to_owned(),
        parameters: service
            .parameters
            .iter()
            .map(|p| ServiceParameter {
                id: p.id,
                value: p.value.clone().unwrap_or_default(),
                name: p.name.get(locale).to_owned(),
                options: (!p.options.is_empty()).then(|| {
                    p.options
                        .iter()
                        .map(|o| mpp::ParameterOption {
                            key: o.key.clone(),
                            label: o.label.get(locale).to_owned(),
                            description: o.description.as_ref().map(|d| d.get(locale).to_owned()),
                        })
                        .collect()
                }),
            })
            .collect(),
    }
}
