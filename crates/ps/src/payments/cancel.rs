//! The operator's cancellation of a Custom payment at the service provider's request (SPEC §3,
//! DECISIONS 23, admin API `POST /admin/payments/{id}/cancel`): a refund of it is placed and
//! delivered to the MPP like any other. A repeat with the same X-Request-ID and body hears the
//! first answer and places nothing; the record of it is the operator's own, not a device's.

use serde_json::json;
use tolem_wire::Amount;

use crate::domain::refund::{RefundOrder, Refusal};
use crate::domain::{PaymentId, RefundKind};
use crate::state::App;
use crate::store::{Replay, StoreResult};

/// A cancellation the operator asks for.
#[derive(Clone, Debug)]
pub struct CancelOrder {
    pub payment_id: PaymentId,
    /// Part of the payment to give back; all that is left when absent.
    pub amount: Option<Amount>,
    /// The request's key for repeats ([`Replay::operator`]); `None` without an X-Request-ID.
    pub replay: Option<Replay>,
}

/// What became of a cancellation.
#[derive(Debug)]
pub enum Cancelled {
    /// The refund was placed (or a repeat found the first answer): the answer body, JSON.
    Placed(String),
    NoSuchPayment,
    /// Nothing is left to give back.
    NothingLeft,
    /// An amount of 0.00 was asked for: not a cancellation (no amount means all that is left).
    ZeroAmount,
    /// The refund rules refused it; nothing was placed.
    Refused(Refusal),
}

pub async fn cancel(app: &App, order: CancelOrder) -> StoreResult<Cancelled> {
    if let Some(replay) = order.replay.clone()
        && let Some(first) = app.store.pos_replay(replay).await?
    {
        return Ok(Cancelled::Placed(first));
    }
    let id = order.payment_id;
    let Some(payment) = app.store.payment(id).await? else {
        return Ok(Cancelled::NoSuchPayment);
    };
    if order.amount.is_some_and(Amount::is_zero) {
        return Ok(Cancelled::ZeroAmount);
    }
    let total = payment.amount.unwrap_or_default();
    let amount = match order.amount {
        Some(amount) => amount,
        None => crate::refunds::refundable(app, id, total).await?,
    };
    if amount.is_zero() {
        return Ok(Cancelled::NothingLeft);
    }
    let refund = RefundOrder {
        kind: RefundKind::Cancel,
        payment_id: id,
        trade_point_id: None,
        device_id: None,
        return_qr: None,
        amount,
        use_window: jiff::SignedDuration::ZERO,
        // The operator is answered at once; the refund's outcome shows in the refunds list.
        pos_waits: false,
    };
    // The refunds use case places it (the rules and the replay record in one transaction) and
    // wakes delivery.
    let placed = crate::refunds::place(app, refund, order.replay, |r| {
        json!({"refund_id": r.id.to_string(), "amount": r.amount}).to_string()
    })
    .await?;
    Ok(match placed {
        Ok(body) => Cancelled::Placed(body),
        Err(refusal) => Cancelled::Refused(refusal),
    })
}
