//! A purchase and its state machine.
//!
//! ```text
//! created ──scan──▶ scanned ──notify SUCCESS──▶ confirmed
//!    │                 ├──notify CANCELLED_BY_CLIENT──▶ cancelled
//!    │                 ├──notify other verdict──▶ failed
//!    └──past ExpireDate┴──past canConfirmUntil + grace──▶ expired
//! ```
//! Static and Custom purchases are born `scanned` (each scan makes a new one). Only `confirmed`
//! counts as paid; `cancelled`, `failed` and `expired` are the POS's `Error`.

use jiff::{SignedDuration, Timestamp};
use tolem_wire::merchant::PaymentStatus;
use tolem_wire::mpp::ResultCode;
use tolem_wire::{Amount, Problem};

use super::{CallerName, DeviceId, PaymentId, ServiceId, TradePointId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Made by the POS with `qr/create`: one QR, one purchase.
    Dynamic,
    /// Made by the POS with `qr/create-link`; paid like a Dynamic QR.
    Link,
    /// A scan of a trade point's printed QR; the buyer enters the amount.
    Static,
    /// A scan of a service's QR; checkout computes the amount.
    Custom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Created,
    Scanned,
    Confirmed,
    Cancelled,
    Failed,
    Expired,
}

text_enum!(Kind { Dynamic = "dynamic", Link = "link", Static = "static", Custom = "custom" });
text_enum!(Status {
    Created = "created",
    Scanned = "scanned",
    Confirmed = "confirmed",
    Cancelled = "cancelled",
    Failed = "failed",
    Expired = "expired"
});

impl Status {
    pub(crate) fn is_open(self) -> bool {
        matches!(self, Status::Created | Status::Scanned)
    }

    pub fn pos_status(self) -> PaymentStatus {
        match self {
            Status::Created => PaymentStatus::QrTokenCreated,
            Status::Scanned => PaymentStatus::Wait,
            Status::Confirmed => PaymentStatus::Processed,
            Status::Cancelled | Status::Failed | Status::Expired => PaymentStatus::Error,
        }
    }
}

/// The MPP and customer a purchase is bound to by its first scan (DECISIONS 11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub mpp: CallerName,
    pub customer_id: String,
}

/// Who asks for a checkout: the calling MPP, and the customer if the request names one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutCaller {
    pub mpp: CallerName,
    pub customer_id: Option<String>,
}

/// Timing rules (DECISIONS 16).
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub confirm_window: SignedDuration,
    pub confirm_grace: SignedDuration,
}

/// What the operator allows for the purchase's merchant right now (DECISIONS 19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MerchantState {
    Open,
    Suspended,
    Blocked,
}

impl MerchantState {
    pub fn check(self) -> Result<(), ResultCode> {
        match self {
            MerchantState::Open => Ok(()),
            MerchantState::Suspended => Err(ResultCode::PaymentsSuspended),
            MerchantState::Blocked => Err(ResultCode::InvalidMerchant),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub kind: Kind,
    pub status: Status,
    pub trade_point_id: TradePointId,
    pub service_id: Option<ServiceId>,
    pub device_id: Option<DeviceId>,
    pub external_id: Option<String>,
    pub qr_token: Option<String>,
    pub amount: Option<Amount>,
    pub created_at: Timestamp,
    /// Scan deadline of a Dynamic QR or link (its ExpireDate).
    pub expire_at: Option<Timestamp>,
    pub owner: Option<Owner>,
    pub scanned_at: Option<Timestamp>,
    pub confirm_until: Option<Timestamp>,
    /// Custom: the parameters checkout accepted (JSON).
    pub parameters: Option<String>,
    /// The first checkout answer that took effect, byte for byte.
    pub checkout_response: Option<String>,
    /// When that checkout froze the amount (none for purchases checked out before it was kept).
    pub checkout_at: Option<Timestamp>,
    pub mpp_payment_id: Option<String>,
    /// The MPP's verdict code as sent in notifyPayment.
    pub verdict: Option<String>,
    /// The first notifyPayment answer that took effect, byte for byte.
    pub notify_response: Option<String>,
    pub finished_at: Option<Timestamp>,
    /// The unguessable part of the receipt link.
    pub receipt_token: String,
}

/// The MPP's outcome as sent in notifyPayment's `result` (DECISIONS 17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    CancelledByClient,
    /// Any other code: the payment failed. Holds the code as sent.
    Failed(String),
}

impl Verdict {
    pub fn from_code(code: &str) -> Verdict {
        match ResultCode::parse(code) {
            Some(ResultCode::Success) => Verdict::Success,
            Some(ResultCode::CancelledByClient) => Verdict::CancelledByClient,
            _ => Verdict::Failed(code.to_owned()),
        }
    }

    /// The code as the purchase keeps it (`Payment::verdict`).
    pub(crate) fn code(&self) -> &str {
        match self {
            Verdict::Success => ResultCode::Success.as_str(),
            Verdict::CancelledByClient => ResultCode::CancelledByClient.as_str(),
            Verdict::Failed(code) => code,
        }
    }

    /// What the PS answers when this verdict took effect: SUCCESS only for a confirmed payment,
    /// so that an MPP can never read a cancellation or failure as a confirmation.
    pub(crate) fn answer_code(&self) -> ResultCode {
        match self {
            Verdict::Success => ResultCode::Success,
            Verdict::CancelledByClient => ResultCode::CancelledByClient,
            Verdict::Failed(code) => match ResultCode::parse(code) {
                Some(ResultCode::RiskReject) => ResultCode::RiskReject,
                _ => ResultCode::ProcessFail,
            },
        }
    }
}

/// A notifyPayment that passed the edge's checks.
#[derive(Clone, Debug)]
pub struct Notify {
    pub owner: Owner,
    pub verdict: Verdict,
    pub mpp_payment_id: String,
    pub amount: Option<Amount>,
}

/// What notifyPayment does to a purchase.
#[derive(Debug, PartialEq, Eq)]
pub enum NotifyDecision {
    /// A repeat: answer the stored first answer.
    Repeat(String),
    /// The verdict takes effect: the purchase has moved; answer with `code` and store the answer.
    Apply(ResultCode),
    /// The purchase is past its deadline: it moved to `expired`; answer `code`, store nothing.
    Expired(ResultCode),
    /// Rejected; nothing changed.
    Reject(ResultCode),
    /// Rejected as PARAM_ILLEGAL because of `paymentAmount`; nothing changed.
    BadAmount(Problem),
}

impl Payment {
    /// When an open purchase expires: its scan deadline, or canConfirmUntil + grace once scanned.
    pub fn deadline(&self, policy: &Policy) -> Option<Timestamp> {
        match self.status {
            Status::Created => self.expire_at,
            Status::Scanned => self
                .confirm_until
                .and_then(|t| t.checked_add(policy.confirm_grace).ok()),
            _ => None,
        }
    }

    /// The status with a passed deadline applied, whether or not the sweeper has run yet.
    pub fn effective_status(&self, now: Timestamp, policy: &Policy) -> Status {
        match self.deadline(policy) {
            Some(deadline) if now > deadline => Status::Expired,
            _ => self.status,
        }
    }

    fn owned_by(&self, who: &Owner) -> Result<(), ResultCode> {
        match &self.owner {
            Some(owner) if owner.mpp != who.mpp => Err(ResultCode::OrderNotExist),
            Some(owner) if owner.customer_id != who.customer_id => Err(ResultCode::UnknownCustomer),
            Some(_) => Ok(()),
            None => Err(ResultCode::OrderNotExist),
        }
    }

    /// A scan of this purchase's Dynamic QR (DECISIONS 12). Returns whether it changed.
    pub fn scan(
        &mut self,
        who: &Owner,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<bool, ResultCode> {
        let past_expire_date = self.expire_at.is_some_and(|deadline| now > deadline);
        if self.effective_status(now, policy) == Status::Expired
            || !self.status.is_open()
            || past_expire_date
        {
            return Err(ResultCode::ExpiredCode);
        }
        match &self.owner {
            None => {
                self.bind(who, now, policy);
                Ok(true)
            }
            Some(owner) if owner == who => Ok(false),
            Some(_) => Err(ResultCode::ProcessFail),
        }
    }

    /// Binds a new or unscanned purchase to its scanner and starts the confirmation window.
    pub fn bind(&mut self, who: &Owner, now: Timestamp, policy: &Policy) {
        self.owner = Some(who.clone());
        self.status = Status::Scanned;
        self.scanned_at = Some(now);
        self.confirm_until = now.checked_add(policy.confirm_window).ok();
    }

    /// The checkout answer stored for a repeat, for the purchase's own MPP only: another MPP
    /// learns nothing of it.
    pub(crate) fn stored_checkout(&self, caller: &CheckoutCaller) -> Option<&str> {
        self.checkout_response
            .as_deref()
            .filter(|_| self.checkout_by(caller).is_ok())
    }

    /// Whether `caller` may check this purchase out (DECISIONS 11): its MPP, and its customer
    /// when the checkout names one (SPEC 4.2's checkout carries no `customerId`).
    fn checkout_by(&self, caller: &CheckoutCaller) -> Result<(), ResultCode> {
        match &self.owner {
            Some(owner) if owner.mpp != caller.mpp => Err(ResultCode::OrderNotExist),
            Some(owner)
                if caller
                    .customer_id
                    .as_ref()
                    .is_some_and(|c| *c != owner.customer_id) =>
            {
                Err(ResultCode::UnknownCustomer)
            }
            Some(_) => Ok(()),
            None => Err(ResultCode::OrderNotExist),
        }
    }

    /// Checkout may run on this purchase: it is the caller's, Custom, and still open.
    pub(crate) fn check_checkout(
        &self,
        caller: &CheckoutCaller,
        now: Timestamp,
        policy: &Policy,
    ) -> Result<(), ResultCode> {
        self.checkout_by(caller)?;
        if self.kind != Kind::Custom {
            return Err(ResultCode::ProcessFail);
        }
        match self.effective_status(now, policy) {
            // The grace after the window is notifyPayment's, for the MPP's retries (DECISIONS
            // 16); a checkout starts a payment, so none comes after the window.
            Status::Scanned if self.confirm_until.is_some_and(|until| now > until) => {
                Err(ResultCode::ExpiredCode)
            }
            Status::Scanned => Ok(()),
            Status::Expired => Err(ResultCode::ExpiredCode),
            _ => Err(ResultCode::ProcessFail),
        }
    }

    /// Freezes checkout's amount and restarts the confirmation window (DECISIONS 14, 16).
    pub(crate) fn freeze_checkout(
        &mut self,
        amount: Amount,
        parameters: String,
        response: String,
        now: Timestamp,
        policy: &Policy,
    ) {
        self.amount = Some(amount);
        self.parameters = Some(parameters);
        self.checkout_response = Some(response);
        self.checkout_at = Some(now);
        self.confirm_until = now.checked_add(policy.confirm_window).ok();
    }

    /// What a repeat of notifyPayment (`cmd`) says otherwise than the one that took effect, by
    /// the fields' names on the wire. It gets the first answer all the same (DECISIONS 18), but
    /// an MPP that sends another `mppPaymentId` or amount under one `paymentId` may have debited
    /// its customer twice.
    pub fn unlike_the_first(&self, cmd: &Notify) -> Vec<&'static str> {
        let mut unlike = Vec::new();
        if self
            .mpp_payment_id
            .as_deref()
            .is_some_and(|first| first != cmd.mpp_payment_id)
        {
            unlike.push("payment.mppPaymentId");
        }
        if let (Some(first), Some(sent)) = (self.amount, cmd.amount)
            && first != sent
        {
            unlike.push("payment.paymentAmount");
        }
        if self
            .verdict
            .as_deref()
            .is_some_and(|first| first != cmd.verdict.code())
        {
            unlike.push("result.resultCode");
        }
        unlike
    }

    /// Decides a notifyPayment (DECISIONS 14–18) and applies it to `self` when it takes effect.
    pub fn notify(
        &mut self,
        cmd: &Notify,
        merchant: MerchantState,
        now: Timestamp,
        policy: &Policy,
    ) -> NotifyDecision {
        if let Err(code) = self.owned_by(&cmd.owner) {
            return NotifyDecision::Reject(code);
        }
        if let Some(stored) = &self.notify_response {
            return NotifyDecision::Repeat(stored.clone());
        }
        if self.status != Status::Scanned {
            return NotifyDecision::Reject(ResultCode::PaymentIncorrectStatus);
        }
        if self.effective_status(now, policy) == Status::Expired {
            self.finish(Status::Expired, now);
            return NotifyDecision::Expired(ResultCode::PaymentIncorrectStatus);
        }
        // DECISIONS 19: a suspended or blocked merchant takes no verdict at all.
        if let Err(code) = merchant.check() {
            return NotifyDecision::Reject(code);
        }
        if cmd.verdict == Verdict::Success {
            // A Custom payment is confirmed only at the amount checkout froze; it may be
            // cancelled (Back) before checkout.
            if self.kind == Kind::Custom && self.checkout_response.is_none() {
                return NotifyDecision::Reject(ResultCode::PaymentIncorrectStatus);
            }
            match self.confirmed_amount(cmd.amount) {
                Ok(amount) => self.amount = Some(amount),
                Err(problem) => return NotifyDecision::BadAmount(problem),
            }
        } else if let Some(sent) = cmd.amount
            && let Err(problem) = self.carried_amount(sent)
        {
            return NotifyDecision::BadAmount(problem);
        }
        let status = match cmd.verdict {
            Verdict::Success => Status::Confirmed,
            Verdict::CancelledByClient => Status::Cancelled,
            Verdict::Failed(_) => Status::Failed,
        };
        self.mpp_payment_id = Some(cmd.mpp_payment_id.clone());
        self.verdict = Some(cmd.verdict.code().to_owned());
        self.finish(status, now);
        NotifyDecision::Apply(cmd.verdict.answer_code())
    }

    /// The amount a SUCCESS verdict confirms (DECISIONS 4, 13–15). Where the PS set the amount (a
    /// Dynamic QR made by the POS, which may have tiyn; a Custom checkout) the MPP echoes it, or
    /// omits it for a Dynamic QR, and it is taken as it is. An amount the MPP chooses itself
    /// (Static) must be whole tenge, as SPEC 4.3 asks.
    fn confirmed_amount(&self, sent: Option<Amount>) -> Result<Amount, Problem> {
        match (self.kind, self.amount, sent) {
            (Kind::Dynamic | Kind::Link, Some(own), None) => Ok(own),
            (Kind::Dynamic | Kind::Link | Kind::Custom, Some(own), Some(sent)) if own == sent => {
                Ok(own)
            }
            (Kind::Dynamic | Kind::Link | Kind::Custom, Some(own), Some(_)) => {
                Err(Problem::NotEqual(own))
            }
            (Kind::Custom, Some(_), None) => Err(Problem::Missing),
            (Kind::Static, None, None) => Err(Problem::RequiredForStatic),
            (Kind::Static, None, Some(sent)) if sent.is_zero() => Err(Problem::NotPositive),
            (Kind::Static, None, Some(sent)) if !sent.is_whole_tenge() => {
                Err(Problem::NotWholeTenge)
            }
            (Kind::Static, None, Some(sent)) => Ok(sent),
            _ => Err(Problem::Invalid),
        }
    }

    /// An amount a verdict other than SUCCESS carries, which it need not: still one the PS
    /// would take (DECISIONS 4, 14, 15), the amount the PS set where it set one, whole tenge where
    /// the MPP chooses it (Static). A Custom purchase cancelled before checkout has no amount to
    /// compare with.
    fn carried_amount(&self, sent: Amount) -> Result<(), Problem> {
        match (self.kind, self.amount) {
            (_, Some(own)) if own != sent => Err(Problem::NotEqual(own)),
            (Kind::Static, None) if !sent.is_whole_tenge() => Err(Problem::NotWholeTenge),
            _ => Ok(()),
        }
    }

    pub fn finish(&mut self, status: Status, now: Timestamp) {
        self.status = status;
        self.finished_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            confirm_window: SignedDuration::from_secs(60),
            confirm_grace: SignedDuration::from_secs(5),
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("in range")
    }

    fn owner(mpp: &str, customer: &str) -> Owner {
        Owner {
            mpp: CallerName::from(mpp),
            customer_id: customer.to_owned(),
        }
    }

    fn dynamic() -> Payment {
        Payment {
            id: PaymentId::new(1),
            kind: Kind::Dynamic,
            status: Status::Created,
            trade_point_id: TradePointId::new(1),
            service_id: None,
            device_id: None,
            external_id: None,
            qr_token: Some("1".repeat(41)),
            amount: Amount::from_tenge(100),
            created_at: t(0),
            expire_at: Some(t(180)),
            owner: None,
            scanned_at: None,
            confirm_until: None,
            parameters: None,
            checkout_response: None,
            checkout_at: None,
            mpp_payment_id: None,
            verdict: None,
            notify_response: None,
            finished_at: None,
            receipt_token: "r".to_owned(),
        }
    }

    fn notify(who: Owner, verdict: Verdict, amount: Option<Amount>) -> Notify {
        Notify {
            owner: who,
            verdict,
            mpp_payment_id: "m1".to_owned(),
            amount,
        }
    }

    #[test]
    fn scan_binds_once_and_refuses_others() {
        let mut p = dynamic();
        assert_eq!(p.scan(&owner("A", "c1"), t(10), &policy()), Ok(true));
        assert_eq!(p.confirm_until, Some(t(70)));
        assert_eq!(p.scan(&owner("A", "c1"), t(11), &policy()), Ok(false));
        assert_eq!(
            p.scan(&owner("A", "c2"), t(11), &policy()),
            Err(ResultCode::ProcessFail)
        );
        assert_eq!(
            p.scan(&owner("B", "c1"), t(11), &policy()),
            Err(ResultCode::ProcessFail)
        );
        assert_eq!(
            p.scan(&owner("A", "c1"), t(76), &policy()),
            Err(ResultCode::ExpiredCode)
        );
    }

    #[test]
    fn checkout_is_the_scanners_and_names_another_customer_unknown() {
        let mut p = dynamic();
        p.kind = Kind::Custom;
        p.scan(&owner("A", "c1"), t(0), &policy()).expect("scans");
        let caller = |mpp: &str, customer: Option<&str>| CheckoutCaller {
            mpp: CallerName::from(mpp),
            customer_id: customer.map(str::to_owned),
        };
        let check = |who: &CheckoutCaller| p.check_checkout(who, t(1), &policy());
        assert_eq!(check(&caller("A", Some("c1"))), Ok(()));
        // SPEC 4.2's checkout carries no customerId: then the MPP's word is taken.
        assert_eq!(check(&caller("A", None)), Ok(()));
        assert_eq!(
            check(&caller("A", Some("c2"))),
            Err(ResultCode::UnknownCustomer)
        );
        assert_eq!(
            check(&caller("B", Some("c1"))),
            Err(ResultCode::OrderNotExist)
        );
        // The window's last second takes a checkout; the grace after it is notifyPayment's alone.
        let at = |secs| p.check_checkout(&caller("A", None), t(secs), &policy());
        assert_eq!(at(60), Ok(()));
        assert_eq!(at(61), Err(ResultCode::ExpiredCode));
        assert_eq!(at(66), Err(ResultCode::ExpiredCode));
        p.checkout_response = Some("{}".to_owned());
        assert_eq!(p.stored_checkout(&caller("A", None)), Some("{}"));
        assert_eq!(p.stored_checkout(&caller("A", Some("c2"))), None);
        assert_eq!(p.stored_checkout(&caller("B", None)), None);
    }

    #[test]
    fn scan_after_expire_date_is_expired() {
        assert_eq!(
            dynamic().scan(&owner("A", "c"), t(181), &policy()),
            Err(ResultCode::ExpiredCode)
        );
    }

    #[test]
    fn notify_checks_owner_amount_and_deadline() {
        let mut p = dynamic();
        p.scan(&owner("A", "c1"), t(0), &policy()).expect("scans");
        let open = MerchantState::Open;
        let wrong_mpp = notify(owner("B", "c1"), Verdict::Success, None);
        assert_eq!(
            p.notify(&wrong_mpp, open, t(1), &policy()),
            NotifyDecision::Reject(ResultCode::OrderNotExist)
        );
        let wrong_customer = notify(owner("A", "c2"), Verdict::Success, None);
        assert_eq!(
            p.notify(&wrong_customer, open, t(1), &policy()),
            NotifyDecision::Reject(ResultCode::UnknownCustomer)
        );
        let wrong_amount = notify(owner("A", "c1"), Verdict::Success, Amount::from_tenge(99));
        assert_eq!(
            p.notify(&wrong_amount, open, t(1), &policy()),
            NotifyDecision::BadAmount(Problem::NotEqual(Amount::from_tiyn(10_000)))
        );
        assert_eq!(
            p.notify(
                &notify(owner("A", "c1"), Verdict::Success, None),
                MerchantState::Suspended,
                t(1),
                &policy()
            ),
            NotifyDecision::Reject(ResultCode::PaymentsSuspended)
        );
        assert_eq!(p.status, Status::Scanned);
        // Within the grace after canConfirmUntil (60 s) it still confirms.
        let ok = notify(owner("A", "c1"), Verdict::Success, Amount::from_tenge(100));
        assert_eq!(
            p.notify(&ok, open, t(64), &policy()),
            NotifyDecision::Apply(ResultCode::Success)
        );
        assert_eq!(p.status, Status::Confirmed);
    }

    #[test]
    fn a_repeat_is_answered_the_first_and_what_it_says_otherwise_is_named() {
        let mut p = dynamic();
        p.scan(&owner("A", "c1"), t(0), &policy()).expect("scans");
        let first = notify(owner("A", "c1"), Verdict::Success, Amount::from_tenge(100));
        assert!(matches!(
            p.notify(&first, MerchantState::Open, t(1), &policy()),
            NotifyDecision::Apply(ResultCode::Success)
        ));
        p.notify_response = Some("first".to_owned());
        assert!(p.unlike_the_first(&first).is_empty());
        // The same with the amount left out or written otherwise is the same.
        let same = notify(owner("A", "c1"), Verdict::Success, None);
        assert!(p.unlike_the_first(&same).is_empty());
        let twice = Notify {
            mpp_payment_id: "m2".to_owned(),
            ..notify(
                owner("A", "c1"),
                Verdict::CancelledByClient,
                Amount::from_tenge(500),
            )
        };
        assert_eq!(
            p.notify(&twice, MerchantState::Open, t(2), &policy()),
            NotifyDecision::Repeat("first".to_owned())
        );
        assert_eq!(
            p.unlike_the_first(&twice),
            [
                "payment.mppPaymentId",
                "payment.paymentAmount",
                "result.resultCode"
            ]
        );
        assert_eq!(p.status, Status::Confirmed);
    }

    #[test]
    fn a_verdict_other_than_success_is_held_to_the_amount_it_carries() {
        let open = MerchantState::Open;
        for verdict in [
            Verdict::CancelledByClient,
            Verdict::Failed("RISK_REJECT".to_owned()),
        ] {
            // Dynamic: the QR's amount or none.
            let mut p = dynamic();
            p.scan(&owner("A", "c1"), t(0), &policy()).expect("scans");
            let wrong = notify(owner("A", "c1"), verdict.clone(), Amount::from_tenge(999));
            assert_eq!(
                p.notify(&wrong, open, t(1), &policy()),
                NotifyDecision::BadAmount(Problem::NotEqual(Amount::from_tiyn(10_000)))
            );
            assert_eq!(p.status, Status::Scanned, "refused, nothing changed");
            let same = notify(owner("A", "c1"), verdict.clone(), Amount::from_tenge(100));
            assert_eq!(
                p.notify(&same, open, t(1), &policy()),
                NotifyDecision::Apply(verdict.answer_code())
            );
            let mut p = dynamic();
            p.scan(&owner("A", "c1"), t(0), &policy()).expect("scans");
            let none = notify(owner("A", "c1"), verdict.clone(), None);
            assert_eq!(
                p.notify(&none, open, t(1), &policy()),
                NotifyDecision::Apply(verdict.answer_code())
            );
            // Static: an amount the MPP names is whole tenge.
            let mut p = dynamic();
            p.kind = Kind::Static;
            p.amount = None;
            p.scan(&owner("A", "c1"), t(0), &policy()).expect("scans");
            let tiyn = notify(
                owner("A", "c1"),
                verdict.clone(),
                Some(Amount::from_tiyn(10_050)),
            );
            assert_eq!(
                p.notify(&tiyn, open, t(1), &policy()),
                NotifyDecision::BadAmount(Problem::NotWholeTenge)
            );
            let whole = notify(owner("A", "c1"), verdict.clone(), Amount::from_tenge(100));
            assert_eq!(
                p.notify(&whole, open, t(1), &policy()),
                NotifyDecision::Apply(verdict.answer_code())
            );
            assert_eq!(p.amount, None, "a cancelled Static purchase has no amount");
        }
    }

    #[test]
    fn notify_past_grace_expires_the_purchase() {
        let mut p = dynamic();
        p.scan(&owner("A", "c1"), t(0), &policy()).expect("scans");
        let ok = notify(owner("A", "c1"), Verdict::Success, None);
        assert_eq!(
            p.notify(&ok, MerchantState::Open, t(66), &policy()),
            NotifyDecision::Expired(ResultCode::PaymentIncorrectStatus)
        );
        assert_eq!(p.status, Status::Expired);
    }

    #[test]
    fn verdicts_answer_their_own_codes() {
        assert_eq!(
            Verdict::from_code("CANCELLED_BY_CLIENT").answer_code(),
            ResultCode::CancelledByClient
        );
        assert_eq!(
            Verdict::from_code("RISK_REJECT").answer_code(),
            ResultCode::RiskReject
        );
        assert_eq!(
            Verdict::from_code("WHATEVER").answer_code(),
            ResultCode::ProcessFail
        );
        assert_eq!(
            Verdict::from_code("SUCCESS").answer_code(),
            ResultCode::Success
        );
    }

    #[test]
    fn static_needs_a_positive_amount() {
        let mut p = dynamic();
        p.kind = Kind::Static;
        p.amount = None;
        p.bind(&owner("A", "c"), t(0), &policy());
        let zero = notify(owner("A", "c"), Verdict::Success, Some(Amount::ZERO));
        assert_eq!(
            p.notify(&zero, MerchantState::Open, t(1), &policy()),
            NotifyDecision::BadAmount(Problem::NotPositive)
        );
        let none = notify(owner("A", "c"), Verdict::Success, None);
        assert_eq!(
            p.notify(&none, MerchantState::Open, t(1), &policy()),
            NotifyDecision::BadAmount(Problem::RequiredForStatic)
        );
        let tiyn = notify(
            owner("A", "c"),
            Verdict::Success,
            Some(Amount::from_tiyn(10_050)),
        );
        assert_eq!(
            p.notify(&tiyn, MerchantState::Open, t(1), &policy()),
            NotifyDecision::BadAmount(Problem::NotWholeTenge)
        );
        let cancel = notify(owner("A", "c"), Verdict::CancelledByClient, None);
        assert_eq!(
            p.notify(&cancel, MerchantState::Open, t(1), &policy()),
            NotifyDecision::Apply(ResultCode::CancelledByClient)
        );
    }
}
