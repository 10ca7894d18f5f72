//! Refunds (SPEC §3, 4.4; DECISIONS 20–23, 27) and how a delivery to the MPP ends.
//!
//! A return QR and the refund made with it are one record with one id: `QrReturnId`,
//! `ReturnOperationId` and the `refundId` the MPP sees are the same number (DECISIONS 27).
//!
//! ```text
//! qr_created ──MPP scan──▶ identified ──payment/return──▶ pending ──MPP SUCCESS──▶ completed
//!     └──unscanned past ExpireDate──▶ expired               │   └──MPP final failure──▶ failed
//!                        (r3 payment/return, Custom cancel)─┘
//! ```
//! A `pending` refund counts against the purchase's refundable amount; a `failed` one gives its
//! amount back.

use jiff::{SignedDuration, Timestamp};
use tolem_wire::merchant::ReturnStatus;
use tolem_wire::mpp::ResultCode;
use tolem_wire::{Amount, Locale};

use super::Owner;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundKind {
    /// With the customer: a return QR scanned by the customer's MPP (r2).
    Qr,
    /// Without the customer (r3 `payment/return` without `QrReturnId`).
    Direct,
    /// A Custom payment cancelled by the service provider (SPEC §3, last paragraph).
    Cancel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    QrCreated,
    Identified,
    Pending,
    Completed,
    Failed,
    Expired,
}

text_enum!(RefundKind { Qr = "qr", Direct = "direct", Cancel = "cancel" });
text_enum!(RefundStatus {
    QrCreated = "qr_created",
    Identified = "identified",
    Pending = "pending",
    Completed = "completed",
    Failed = "failed",
    Expired = "expired"
});

impl RefundStatus {
    /// Whether the refund holds part of the purchase's amount.
    pub fn holds_amount(self) -> bool {
        matches!(self, RefundStatus::Pending | RefundStatus::Completed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: i64,
    pub kind: RefundKind,
    pub status: RefundStatus,
    pub trade_point_id: i64,
    pub device_id: Option<i64>,
    pub external_id: Option<String>,
    pub qr_token: Option<String>,
    /// Scan deadline of a return QR.
    pub expire_at: Option<Timestamp>,
    /// The customer the money goes back to.
    pub owner: Option<Owner>,
    pub identified_at: Option<Timestamp>,
    pub payment_id: Option<i64>,
    pub amount: Option<Amount>,
    pub requested_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The MPP's final `resultCode`.
    pub mpp_result: Option<String>,
    pub created_at: Timestamp,
    pub receipt_token: String,
    /// The language of the scan that identified the customer (DECISIONS 36): the return QR's
    /// scan, else the purchase's; `None` when neither said.
    pub locale: Option<Locale>,
}

impl Refund {
    pub fn effective_status(&self, now: Timestamp) -> RefundStatus {
        match (self.status, self.expire_at) {
            (RefundStatus::QrCreated, Some(deadline)) if now > deadline => RefundStatus::Expired,
            (status, _) => status,
        }
    }

    /// What `return/status` shows the POS.
    pub fn pos_status(&self, now: Timestamp) -> ReturnStatus {
        match self.effective_status(now) {
            RefundStatus::QrCreated => ReturnStatus::QrTokenCreated,
            RefundStatus::Expired => ReturnStatus::Error,
            _ => ReturnStatus::CustomerIdentityObtained,
        }
    }

    /// A scan of the return QR by the customer's MPP (DECISIONS 22, 27); like a Dynamic QR, the
    /// first scan binds it. Returns whether it changed.
    pub fn scan(
        &mut self,
        who: &Owner,
        locale: Option<Locale>,
        now: Timestamp,
    ) -> Result<bool, ResultCode> {
        match (self.effective_status(now), &self.owner) {
            (RefundStatus::QrCreated, None) => {
                self.owner = Some(who.clone());
                self.locale = locale;
                self.status = RefundStatus::Identified;
                self.identified_at = Some(now);
                Ok(true)
            }
            (RefundStatus::Identified, Some(owner)) if owner == who => Ok(false),
            (RefundStatus::Identified, Some(_)) => Err(ResultCode::ProcessFail),
            _ => Err(ResultCode::ExpiredCode),
        }
    }

    /// The `X-Locale` of the refund's request to the MPP (DECISIONS 36): ru-RU when no scan said.
    pub fn mpp_locale(&self) -> Locale {
        self.locale.unwrap_or(Locale::Ru)
    }

    /// A return QR may be used for `payment/return` once, within `use_window` of its scan.
    pub fn usable_for_return(&self, now: Timestamp, use_window: SignedDuration) -> bool {
        let in_time = self
            .identified_at
            .and_then(|t| t.checked_add(use_window).ok())
            .is_some_and(|deadline| now <= deadline);
        self.status == RefundStatus::Identified && in_time
    }

    /// Turns the record into a refund of `amount` of `payment_id` to `owner`, to be delivered.
    /// It speaks to the MPP in its return QR scan's language, else in `payment_locale`, the
    /// language of the purchase's scan (DECISIONS 36).
    pub fn request(
        &mut self,
        payment_id: i64,
        owner: Owner,
        amount: Amount,
        payment_locale: Option<Locale>,
        now: Timestamp,
    ) {
        self.locale = self.locale.or(payment_locale);
        self.payment_id = Some(payment_id);
        self.owner = Some(owner);
        self.amount = Some(amount);
        self.status = RefundStatus::Pending;
        self.requested_at = Some(now);
    }
}

/// Why a refund request is refused; nothing changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such purchase, or not the caller's (or not the return QR customer's).
    PaymentNotFound,
    /// The purchase was made at another trade point than the device's.
    TradePointMismatch,
    /// The purchase is not confirmed, or a cancellation was asked for a payment that is not Custom.
    /// (A Custom payment can also be refunded by its merchant through `payment/return`: the
    /// service provider is the merchant, and that is its authenticated call, DECISIONS 23.)
    NotRefundable,
    /// The return QR is unknown, unscanned, used or past its window.
    ReturnQrNotUsable,
    /// More than what is left to refund.
    AmountExceeded,
}

/// A refund to make of a confirmed purchase.
#[derive(Clone, Debug)]
pub struct RefundOrder {
    pub kind: RefundKind,
    pub payment_id: i64,
    /// The device's trade point; the purchase must be from it (`None`: any, for the operator).
    pub trade_point_id: Option<i64>,
    pub device_id: Option<i64>,
    /// The scanned return QR to use (r2).
    pub return_qr: Option<i64>,
    pub amount: Amount,
    pub use_window: SignedDuration,
}

/// What is left to refund of a purchase of `total`, given the amounts of its refunds that hold
/// part of it (pending and completed).
pub fn available(total: Amount, held: impl IntoIterator<Item = Amount>) -> Amount {
    let held = held
        .into_iter()
        .fold(Amount::ZERO, |sum, a| sum.checked_add(a).unwrap_or(total));
    total.checked_sub(held).unwrap_or(Amount::ZERO)
}

/// How one delivery attempt to the MPP's `/refund` ended (DECISIONS 21).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// SUCCESS: the MPP returned the money.
    Completed,
    /// PROCESS_FAIL, PARAM_ILLEGAL or PAYMENTS_SUSPENDED: it never will; the amount is freed.
    Failed(String),
    /// Anything else (network error, timeout, HTTP 5xx, UNKNOWN_EXCEPTION, REFUND_IN_PROCESS, an
    /// unreadable answer): try again later.
    Retry(String),
}

impl Delivery {
    /// Classifies the MPP's answer: its HTTP status and its `result.resultCode`, if readable.
    pub fn classify(http_status: u16, result_code: Option<&str>) -> Delivery {
        if http_status >= 500 {
            return Delivery::Retry(format!("HTTP {http_status}"));
        }
        match result_code.map(|c| (c, ResultCode::parse(c))) {
            Some((_, Some(ResultCode::Success))) if http_status == 200 => Delivery::Completed,
            Some((
                c,
                Some(
                    ResultCode::ProcessFail
                    | ResultCode::ParamIllegal
                    | ResultCode::PaymentsSuspended,
                ),
            )) => Delivery::Failed(c.to_owned()),
            Some((c, _)) => Delivery::Retry(format!("HTTP {http_status}, {c}")),
            None => Delivery::Retry(format!("HTTP {http_status}, no readable result")),
        }
    }
}

/// The delay before the next attempt after `attempts` failed ones: doubling from `initial` up to
/// `max`, then a random part of up to half of it taken off (jitter), so retries of many refunds
/// spread out.
pub fn backoff(attempts: u32, initial: SignedDuration, max: SignedDuration) -> SignedDuration {
    let doubled = initial
        .checked_mul(1 << attempts.saturating_sub(1).min(30))
        .unwrap_or(max);
    let capped = doubled.min(max);
    let capped_ms = u64::try_from(capped.as_millis()).unwrap_or(0);
    let jitter_ms = rand::random_range(0..=capped_ms / 2);
    SignedDuration::from_millis(i64::try_from(capped_ms - jitter_ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_outcomes_follow_decision_21() {
        assert_eq!(
            Delivery::classify(200, Some("SUCCESS")),
            Delivery::Completed
        );
        for final_code in ["PROCESS_FAIL", "PARAM_ILLEGAL", "PAYMENTS_SUSPENDED"] {
            assert_eq!(
                Delivery::classify(200, Some(final_code)),
                Delivery::Failed(final_code.to_owned())
            );
        }
        for retry in [
            Some("REFUND_IN_PROCESS"),
            Some("UNKNOWN_EXCEPTION"),
            Some("WHO_KNOWS"),
            None,
        ] {
            assert!(
                matches!(Delivery::classify(200, retry), Delivery::Retry(_)),
                "{retry:?}"
            );
        }
        assert!(matches!(
            Delivery::classify(503, Some("SUCCESS")),
            Delivery::Retry(_)
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let s = SignedDuration::from_secs;
        for attempts in 1..40 {
            let d = backoff(attempts, s(1), s(300));
            let full = s(1)
                .checked_mul(1 << (attempts - 1).min(30))
                .unwrap_or(s(300))
                .min(s(300));
            assert!(d <= full && d >= full / 2, "{attempts}: {d:?}");
        }
    }

    #[test]
    fn available_never_goes_below_zero() {
        let t = Amount::from_tenge(100).expect("fits");
        assert_eq!(
            available(t, [Amount::from_tenge(30).expect("fits")]),
            Amount::from_tenge(70).expect("fits")
        );
        assert_eq!(available(t, [t, t]), Amount::ZERO);
    }
}
