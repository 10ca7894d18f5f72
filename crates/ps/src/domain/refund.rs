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
//!
//! The POS that placed a refund waits a while for the MPP's answer (DECISIONS 39): what it was
//! told is the refund's [`PosAnswer`], fixed once, by whichever comes first of the MPP's final
//! answer and the end of the POS's wait, so every repeat of the request is told the same.
//!
//! All the rules of a refund are here, as plain functions and methods: what is left to refund
//! ([`available`]), who may refund what ([`check_order`]), the state changes of a refund
//! ([`Refund::scan`], [`Refund::request`], [`Refund::finish`], [`Refund::end_pos_wait`]) and what
//! the POS hears ([`Refund::told_pos`]). The refunds use case (`refunds/`) loads the rows, applies
//! these and saves the result in one transaction.

use jiff::{SignedDuration, Timestamp};
use tolem_wire::merchant::ReturnStatus;
use tolem_wire::mpp::ResultCode;
use tolem_wire::{Amount, Locale};

use super::{DeviceId, Kind, Owner, Payment, PaymentId, RefundId, Status, TradePointId};

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

/// What the POS that placed a refund was told (DECISIONS 39). `None` on a refund while its POS
/// still waits for the MPP's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PosAnswer {
    /// The refund was accepted: the MPP answered SUCCESS, or had not answered finally when the
    /// wait ended and delivery goes on (DECISIONS 21).
    Accepted,
    /// The MPP refused it finally while the POS waited: the POS hears `-99000006`.
    Refused,
}

text_enum!(RefundKind { Qr = "qr", Direct = "direct", Cancel = "cancel" });
text_enum!(PosAnswer {
    Accepted = "accepted",
    Refused = "refused"
});
text_enum!(RefundStatus {
    QrCreated = "qr_created",
    Identified = "identified",
    Pending = "pending",
    Completed = "completed",
    Failed = "failed",
    Expired = "expired"
});

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub kind: RefundKind,
    pub status: RefundStatus,
    pub trade_point_id: TradePointId,
    pub device_id: Option<DeviceId>,
    pub external_id: Option<String>,
    pub qr_token: Option<String>,
    /// Scan deadline of a return QR.
    pub expire_at: Option<Timestamp>,
    /// The customer the money goes back to.
    pub owner: Option<Owner>,
    pub identified_at: Option<Timestamp>,
    pub payment_id: Option<PaymentId>,
    pub amount: Option<Amount>,
    pub requested_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The MPP's final `resultCode`.
    pub mpp_result: Option<String>,
    pub created_at: Timestamp,
    pub receipt_token: String,
    /// What the POS was told; `None` while it waits for the MPP's answer.
    pub pos_answer: Option<PosAnswer>,
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
        use_window: SignedDuration,
    ) -> Result<bool, ResultCode> {
        match (self.effective_status(now), &self.owner) {
            // Scanned again once it can no longer be used for `payment/return`: ended, as a used
            // one is.
            (RefundStatus::Identified, Some(owner))
                if owner == who && !self.usable_for_return(now, use_window) =>
            {
                Err(ResultCode::ExpiredCode)
            }
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
    pub(crate) fn mpp_locale(&self) -> Locale {
        self.locale.unwrap_or(Locale::Ru)
    }

    /// A return QR may be used for `payment/return` once, within `use_window` of its scan.
    pub(crate) fn usable_for_return(&self, now: Timestamp, use_window: SignedDuration) -> bool {
        let in_time = self
            .identified_at
            .and_then(|t| t.checked_add(use_window).ok())
            .is_some_and(|deadline| now <= deadline);
        self.status == RefundStatus::Identified && in_time
    }

    /// Turns the record into a refund of `amount` of `payment_id` to `owner`, to be delivered.
    /// When its caller waits for the MPP's answer (`pos_waits`), what it is told is left open.
    /// It speaks to the MPP in its return QR scan's language, else in `payment_locale`, the
    /// language of the purchase's scan (DECISIONS 36).
    pub fn request(
        &mut self,
        payment_id: PaymentId,
        owner: Owner,
        amount: Amount,
        pos_waits: bool,
        payment_locale: Option<Locale>,
        now: Timestamp,
    ) {
        self.locale = self.locale.or(payment_locale);
        self.payment_id = Some(payment_id);
        self.owner = Some(owner);
        self.amount = Some(amount);
        self.status = RefundStatus::Pending;
        self.requested_at = Some(now);
        self.pos_answer = (!pos_waits).then_some(PosAnswer::Accepted);
    }

    /// The MPP's final answer to a pending refund; returns whether it changed anything. A POS
    /// still waiting hears it (DECISIONS 39): a refusal gives the amount back at once, and the
    /// POS is told so. Only the first final answer counts.
    pub fn finish(&mut self, outcome: &Delivery, now: Timestamp) -> bool {
        let (status, code, answer) = match outcome {
            Delivery::Completed => (
                RefundStatus::Completed,
                ResultCode::Success.as_str(),
                PosAnswer::Accepted,
            ),
            Delivery::Failed(code) => (RefundStatus::Failed, code.as_str(), PosAnswer::Refused),
            Delivery::Retry(_) => return false,
        };
        if self.status != RefundStatus::Pending {
            return false;
        }
        self.status = status;
        self.finished_at = Some(now);
        self.mpp_result = Some(code.to_owned());
        self.pos_answer.get_or_insert(answer);
        true
    }

    /// The POS's wait for the MPP's answer ended: unless the MPP refused first, the refund is
    /// accepted and delivery goes on (DECISIONS 21, 39). Returns what the POS is told, and
    /// whether that was decided now.
    pub(crate) fn end_pos_wait(&mut self) -> (PosAnswer, bool) {
        match self.pos_answer {
            Some(answer) => (answer, false),
            None => {
                // `finish` answers a refund as it leaves `pending`, so one without an answer is
                // pending and the POS hears "accepted"; a failed one is never told otherwise.
                let answer = if self.status == RefundStatus::Failed {
                    PosAnswer::Refused
                } else {
                    PosAnswer::Accepted
                };
                self.pos_answer = Some(answer);
                (answer, true)
            }
        }
    }

    /// What the POS that placed the refund hears (DECISIONS 39), once decided: `None` while it
    /// still waits for the MPP's answer.
    pub(crate) fn told_pos(&self) -> Option<Told> {
        Some(match self.pos_answer? {
            PosAnswer::Accepted => Told::Accepted,
            PosAnswer::Refused => Told::Refused {
                mpp_result: self.mpp_result.clone(),
            },
        })
    }
}

/// What the POS that placed a refund hears, the first time and on every repeat (DECISIONS 39).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Told {
    /// The answer stored when the refund was placed (its id).
    Accepted,
    /// `-99000006`, naming the MPP's final answer; the amount is refundable again.
    Refused { mpp_result: Option<String> },
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
    /// More than what is left to refund (`left`, refunds in flight counted).
    AmountExceeded { left: Amount },
    /// The purchase already has as many refunds as one may (`refunds.per_purchase_max`).
    TooManyRefunds,
}

/// A refund to make of a confirmed purchase.
#[derive(Clone, Debug)]
pub struct RefundOrder {
    pub kind: RefundKind,
    pub payment_id: PaymentId,
    /// The device's trade point; the purchase must be from it (`None`: any, for the operator).
    pub trade_point_id: Option<TradePointId>,
    pub device_id: Option<DeviceId>,
    /// The scanned return QR to use (r2).
    pub return_qr: Option<RefundId>,
    pub amount: Amount,
    pub use_window: SignedDuration,
    /// Whether the caller waits for the MPP's answer before it is answered (DECISIONS 39).
    pub pos_waits: bool,
}

/// Who may refund what, and how much (DECISIONS 20, 22, 23, 27): checks `order` against its
/// purchase, the amounts its refunds already hold (pending and completed), and the return QR it
/// names (`None` when it names none, `Some(None)` when no such record exists). The checks run in
/// this order, so a request wrong in several ways always hears the same refusal. Returns the
/// customer the money goes back to. (No purchase at all is [`Refusal::PaymentNotFound`].)
pub(crate) fn check_order(
    order: &RefundOrder,
    payment: &Payment,
    held: impl IntoIterator<Item = Amount>,
    return_qr: Option<Option<&Refund>>,
    now: Timestamp,
) -> Result<Owner, Refusal> {
    if order
        .trade_point_id
        .is_some_and(|tp| tp != payment.trade_point_id)
    {
        return Err(Refusal::TradePointMismatch);
    }
    let (Status::Confirmed, Some(total), Some(owner)) =
        (payment.status, payment.amount, payment.owner.as_ref())
    else {
        return Err(Refusal::NotRefundable);
    };
    if order.kind == RefundKind::Cancel && payment.kind != Kind::Custom {
        return Err(Refusal::NotRefundable);
    }
    // The return QR before the amount: a cashier told to lower the amount of a refund that no
    // amount could make (the QR is not usable, or the purchase is not its customer's) would try
    // again in vain.
    if let Some(qr) = return_qr {
        let Some(qr) = qr else {
            return Err(Refusal::ReturnQrNotUsable);
        };
        if qr.kind != RefundKind::Qr || !qr.usable_for_return(now, order.use_window) {
            return Err(Refusal::ReturnQrNotUsable);
        }
        // The money goes back to the customer who scanned, so it must be their purchase.
        if qr.owner.as_ref() != Some(owner) || qr.trade_point_id != payment.trade_point_id {
            return Err(Refusal::PaymentNotFound);
        }
    }
    let left = available(total, held);
    if order.amount > left {
        return Err(Refusal::AmountExceeded { left });
    }
    Ok(owner.clone())
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
    /// A final answer, a success or a refusal, comes with HTTP 200 (DECISIONS 7: every business
    /// outcome is HTTP 200); the same code under another status is taken for something between
    /// (a gateway's error page in the API's envelope, say) and tried again, so that a refund is
    /// neither completed nor freed on a word the MPP's API did not say.
    pub(crate) fn classify(http_status: u16, result_code: Option<&str>) -> Delivery {
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
            )) if http_status == 200 => Delivery::Failed(c.to_owned()),
            Some((c, _)) => Delivery::Retry(format!("HTTP {http_status}, {}", said(c))),
            None => Delivery::Retry(format!("HTTP {http_status}, no readable result")),
        }
    }
}

/// Most characters of an MPP's unknown `resultCode` kept in a delivery's `last_error`.
const SAID_CHARS_MAX: usize = 64;

/// An MPP's unknown `resultCode` as it is kept and shown: control characters and those that
/// reorder text written as escapes (`\u{0}`, `\u{202e}`), cut to [`SAID_CHARS_MAX`] characters.
/// An answer can then neither stop its attempt from being recorded (PostgreSQL takes no U+0000)
/// nor make the console show another word than it said (a right-to-left override), and a 16 KiB
/// code is not kept on every retry.
fn said(code: &str) -> String {
    let whole = super::text::kept(code, usize::MAX);
    if whole.chars().count() <= SAID_CHARS_MAX {
        return whole;
    }
    let mut cut = super::text::kept(&whole, SAID_CHARS_MAX);
    cut.push('…');
    cut
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
        // An unknown code is kept escaped and cut: the store takes it, the console shows what
        // it says.
        assert_eq!(
            Delivery::classify(200, Some("BAD\u{0}CODE\u{202e}LIAF")),
            Delivery::Retry("HTTP 200, BAD\\u{0}CODE\\u{202e}LIAF".to_owned())
        );
        let long = "Щ".repeat(5_000);
        assert_eq!(
            Delivery::classify(200, Some(&long)),
            Delivery::Retry(format!("HTTP 200, {}…", "Щ".repeat(64)))
        );
        // A final word under another status than 200 is not the MPP API's: tried again.
        for status in [201, 401, 404] {
            for code in ["SUCCESS", "PROCESS_FAIL", "PARAM_ILLEGAL"] {
                assert!(
                    matches!(Delivery::classify(status, Some(code)), Delivery::Retry(_)),
                    "{status} {code}"
                );
            }
        }
    }

    fn pending(pos_waits: bool) -> Refund {
        let now = Timestamp::UNIX_EPOCH;
        let mut refund = Refund {
            id: RefundId::new(7),
            kind: RefundKind::Direct,
            status: RefundStatus::Pending,
            trade_point_id: TradePointId::new(1),
            device_id: None,
            external_id: None,
            qr_token: None,
            expire_at: None,
            owner: None,
            identified_at: None,
            payment_id: None,
            amount: None,
            requested_at: None,
            finished_at: None,
            mpp_result: None,
            created_at: now,
            receipt_token: String::new(),
            pos_answer: None,
            locale: None,
        };
        let owner = Owner {
            mpp: "bank".into(),
            customer_id: "C1".to_owned(),
        };
        refund.request(
            PaymentId::new(1),
            owner,
            Amount::from_tenge(5).expect("fits"),
            pos_waits,
            None,
            now,
        );
        refund
    }

    #[test]
    fn what_the_pos_is_told_is_decided_once_by_whichever_comes_first() {
        let now = Timestamp::UNIX_EPOCH;
        // A refusal while the POS waits is what it hears; its wait ending later changes nothing.
        let mut refused = pending(true);
        assert!(refused.finish(&Delivery::Failed("PROCESS_FAIL".into()), now));
        assert_eq!(refused.end_pos_wait(), (PosAnswer::Refused, false));
        assert_eq!(refused.mpp_result.as_deref(), Some("PROCESS_FAIL"));
        // The wait ended first: accepted, and a later refusal fails the refund but not the answer.
        let mut late = pending(true);
        assert!(!late.finish(&Delivery::Retry("HTTP 500".into()), now));
        assert_eq!(late.end_pos_wait(), (PosAnswer::Accepted, true));
        assert!(late.finish(&Delivery::Failed("PROCESS_FAIL".into()), now));
        assert_eq!(
            (late.status, late.pos_answer),
            (RefundStatus::Failed, Some(PosAnswer::Accepted))
        );
        // Only the first final answer counts.
        assert!(!late.finish(&Delivery::Completed, now));
        assert_eq!(late.status, RefundStatus::Failed);
        // A caller that does not wait is told "accepted" when the refund is placed.
        let mut at_once = pending(false);
        assert_eq!(at_once.pos_answer, Some(PosAnswer::Accepted));
        assert!(at_once.finish(&Delivery::Failed("PARAM_ILLEGAL".into()), now));
        assert_eq!(at_once.pos_answer, Some(PosAnswer::Accepted));
        let mut done = pending(true);
        assert!(done.finish(&Delivery::Completed, now));
        assert_eq!(
            (done.pos_answer, done.mpp_result.as_deref()),
            (Some(PosAnswer::Accepted), Some("SUCCESS"))
        );
    }

    fn confirmed(kind: Kind, tenge: u64) -> Payment {
        let now = Timestamp::UNIX_EPOCH;
        Payment {
            id: PaymentId::new(1),
            kind,
            status: Status::Confirmed,
            trade_point_id: TradePointId::new(1),
            service_id: None,
            device_id: None,
            external_id: None,
            qr_token: None,
            amount: Some(Amount::from_tenge(tenge).expect("fits")),
            created_at: now,
            expire_at: None,
            owner: Some(Owner {
                mpp: "bank".into(),
                customer_id: "C1".to_owned(),
            }),
            scanned_at: None,
            confirm_until: None,
            parameters: None,
            checkout_response: None,
            checkout_at: None,
            mpp_payment_id: None,
            verdict: None,
            notify_response: None,
            finished_at: Some(now),
            receipt_token: String::new(),
        }
    }

    fn order(kind: RefundKind, tenge: u64) -> RefundOrder {
        RefundOrder {
            kind,
            payment_id: PaymentId::new(1),
            trade_point_id: Some(TradePointId::new(1)),
            device_id: Some(DeviceId::new(1)),
            return_qr: None,
            amount: Amount::from_tenge(tenge).expect("fits"),
            use_window: SignedDuration::from_secs(600),
            pos_waits: true,
        }
    }

    fn scanned_qr(customer: &str) -> Refund {
        let mut qr = pending(true);
        qr.kind = RefundKind::Qr;
        qr.status = RefundStatus::Identified;
        qr.identified_at = Some(Timestamp::UNIX_EPOCH);
        qr.owner = Some(Owner {
            mpp: "bank".into(),
            customer_id: customer.to_owned(),
        });
        qr
    }

    #[test]
    fn a_return_qr_scanned_again_is_the_same_until_its_use_window_closes() {
        let window = SignedDuration::from_secs(600);
        let mut qr = scanned_qr("c1");
        let owner = qr.owner.clone().expect("scanned");
        let at = |secs| Timestamp::from_second(secs).expect("in range");
        assert_eq!(qr.scan(&owner, None, at(600), window), Ok(false));
        assert_eq!(
            qr.scan(&owner, None, at(601), window),
            Err(ResultCode::ExpiredCode)
        );
        // Used: ended too.
        qr.status = RefundStatus::Pending;
        assert_eq!(
            qr.scan(&owner, None, at(1), window),
            Err(ResultCode::ExpiredCode)
        );
    }

    #[test]
    fn an_order_is_checked_against_the_purchase_what_is_left_and_its_return_qr() {
        let now = Timestamp::UNIX_EPOCH;
        let t = |n| Amount::from_tenge(n).expect("fits");
        let paid = confirmed(Kind::Dynamic, 100);
        let direct = order(RefundKind::Direct, 60);
        assert_eq!(
            check_order(&direct, &paid, [], None, now).map(|o| o.customer_id),
            Ok("C1".to_owned())
        );
        assert_eq!(
            check_order(&direct, &paid, [t(50)], None, now),
            Err(Refusal::AmountExceeded { left: t(50) })
        );
        let elsewhere = RefundOrder {
            trade_point_id: Some(TradePointId::new(2)),
            ..direct.clone()
        };
        assert_eq!(
            check_order(&elsewhere, &paid, [], None, now),
            Err(Refusal::TradePointMismatch)
        );
        // Only a Custom payment is cancelled by its service provider (DECISIONS 23).
        let cancel = order(RefundKind::Cancel, 10);
        assert_eq!(
            check_order(&cancel, &paid, [], None, now),
            Err(Refusal::NotRefundable)
        );
        assert!(check_order(&cancel, &confirmed(Kind::Custom, 100), [], None, now).is_ok());
        let unpaid = Payment {
            status: Status::Created,
            ..paid.clone()
        };
        assert_eq!(
            check_order(&direct, &unpaid, [], None, now),
            Err(Refusal::NotRefundable)
        );
        // A return QR must exist, be scanned, in its window, and by the purchase's customer.
        let with_qr = RefundOrder {
            kind: RefundKind::Qr,
            return_qr: Some(RefundId::new(7)),
            ..direct
        };
        let theirs = scanned_qr("C1");
        assert!(check_order(&with_qr, &paid, [], Some(Some(&theirs)), now).is_ok());
        assert_eq!(
            check_order(&with_qr, &paid, [], Some(None), now),
            Err(Refusal::ReturnQrNotUsable)
        );
        let late = now
            .checked_add(SignedDuration::from_secs(601))
            .expect("fits");
        assert_eq!(
            check_order(&with_qr, &paid, [], Some(Some(&theirs)), late),
            Err(Refusal::ReturnQrNotUsable)
        );
        assert_eq!(
            check_order(&with_qr, &paid, [], Some(Some(&scanned_qr("C2"))), now),
            Err(Refusal::PaymentNotFound)
        );
        // Whose purchase, and whether the QR can be used, before how much: no amount would do.
        let too_much = RefundOrder {
            amount: Amount::from_tiyn(1_000_000_000_000),
            ..with_qr.clone()
        };
        assert_eq!(
            check_order(&too_much, &paid, [], Some(Some(&scanned_qr("C2"))), now),
            Err(Refusal::PaymentNotFound)
        );
        assert_eq!(
            check_order(&too_much, &paid, [], Some(None), now),
            Err(Refusal::ReturnQrNotUsable)
        );
        assert!(matches!(
            check_order(&too_much, &paid, [], Some(Some(&theirs)), now),
            Err(Refusal::AmountExceeded { .. })
        ));
    }

    #[test]
    fn the_pos_hears_the_refusal_with_the_mpps_code_or_acceptance() {
        let now = Timestamp::UNIX_EPOCH;
        let mut waiting = pending(true);
        assert_eq!(waiting.told_pos(), None);
        waiting.finish(&Delivery::Failed("PROCESS_FAIL".into()), now);
        assert_eq!(
            waiting.told_pos(),
            Some(Told::Refused {
                mpp_result: Some("PROCESS_FAIL".to_owned())
            })
        );
        assert_eq!(pending(false).told_pos(), Some(Told::Accepted));
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
