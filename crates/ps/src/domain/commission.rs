//! The commission of a register row (DECISIONS 24, 37, 38), in exact tiyn.
//!
//! A payment's commission is a rate in basis points of its amount, rounded half up, at least the
//! rate's minimum, and never more than the payment itself. The rate is the one fixed with the
//! payment when it was confirmed: for the payment service on the daily register, for the
//! «Сервис» service on the monthly one. A refund's depends on
//! `registers.refund_commission`: `none` leaves the payment's commission alone (0.00 on the
//! refund's row); `reverse` gives back the refunded share of the payment's commission, counted on
//! the running total of the payment's refunds, so that refunds of the whole amount give back
//! exactly the commission charged and never more.
//! A refund is priced at its payment's fixed rate, so it never gives back more than was charged.
//!
//! Pure values: the catalog gives each MPP its rates, the store keeps the rates fixed with each
//! payment, and the registers price their rows with them.

use serde::Deserialize;
use tolem_wire::Amount;

/// How a completed refund changes the commission (DECISIONS 24): `registers.refund_commission`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundCommission {
    /// The commission of the refunded payment stays; a refund row shows 0.00.
    #[default]
    None,
    /// A refund gives back the refunded share of its payment's commission.
    Reverse,
}

impl RefundCommission {
    /// As the configuration and the store write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundCommission::None => "none",
            RefundCommission::Reverse => "reverse",
        }
    }

    pub fn parse(text: &str) -> Option<RefundCommission> {
        match text {
            "none" => Some(RefundCommission::None),
            "reverse" => Some(RefundCommission::Reverse),
            _ => None,
        }
    }
}

/// A commission that does not fit in an amount (a corrupt database, in practice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an amount overflowed")]
pub(crate) struct Overflow;

/// Commission terms: basis points of the amount, and an optional minimum per payment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    pub bps: u32,
    pub min: Option<Amount>,
}

impl Rate {
    /// The commission of a payment of `amount`.
    pub(crate) fn of_payment(self, amount: Amount) -> Result<Amount, Overflow> {
        let by_rate = amount.checked_mul_bps(self.bps).ok_or(Overflow)?;
        let floor = self.min.unwrap_or(Amount::ZERO);
        Ok(by_rate.max(floor).min(amount))
    }

    /// The commission a refund gives back: `refunded_before` is what the payment's completed
    /// refunds returned before this one.
    pub(crate) fn of_refund(
        self,
        mode: RefundCommission,
        payment: Amount,
        refunded_before: Amount,
        refund: Amount,
    ) -> Result<Amount, Overflow> {
        if mode == RefundCommission::None || payment.is_zero() {
            return Ok(Amount::ZERO);
        }
        let charged = self.of_payment(payment)?;
        let after = refunded_before
            .checked_add(refund)
            .ok_or(Overflow)?
            .min(payment);
        let before = refunded_before.min(payment);
        // floor(charged × refunded / payment): the running share, so the parts add up exactly.
        let share = |refunded: Amount| {
            let product = u128::from(charged.tiyn()) * u128::from(refunded.tiyn());
            let tiyn = product / u128::from(payment.tiyn());
            u64::try_from(tiyn)
                .map(Amount::from_tiyn)
                .map_err(|_| Overflow)
        };
        share(after)?.checked_sub(share(before)?).ok_or(Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tiyn: u64) -> Amount {
        Amount::from_tiyn(tiyn)
    }

    #[test]
    fn payments_pay_the_rate_rounded_half_up_with_a_minimum() {
        let one_percent = Rate {
            bps: 100,
            min: None,
        };
        assert_eq!(one_percent.of_payment(t(150_050)).expect("ok"), t(1_501));
        assert_eq!(one_percent.of_payment(t(150)).expect("ok"), t(2), "1.5 → 2");
        assert_eq!(one_percent.of_payment(t(149)).expect("ok"), t(1));
        let with_min = Rate {
            bps: 80,
            min: Some(t(100)),
        };
        assert_eq!(with_min.of_payment(t(5_000)).expect("ok"), t(100));
        assert_eq!(with_min.of_payment(t(50_000)).expect("ok"), t(400));
        assert_eq!(with_min.of_payment(t(60)).expect("ok"), t(60), "capped");
    }

    #[test]
    fn reversed_refunds_give_back_exactly_what_was_charged() {
        let rate = Rate {
            bps: 80,
            min: Some(t(100)),
        };
        let payment = t(5_000); // charged 1.00 (the minimum)
        let none = rate.of_refund(RefundCommission::None, payment, t(0), payment);
        assert_eq!(none.expect("ok"), Amount::ZERO);
        let full = rate.of_refund(RefundCommission::Reverse, payment, t(0), payment);
        assert_eq!(full.expect("ok"), t(100));
        // Three refunds of a third each add up to the whole commission.
        let parts = [t(1_667), t(1_667), t(1_666)];
        let mut before = t(0);
        let mut back = t(0);
        for part in parts {
            let c = rate
                .of_refund(RefundCommission::Reverse, payment, before, part)
                .expect("ok");
            back = back.checked_add(c).expect("fits");
            before = before.checked_add(part).expect("fits");
        }
        assert_eq!(back, t(100));
    }
}
