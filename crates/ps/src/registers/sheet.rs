//! What a register says, whatever its file format: the columns and their headers in Russian and
//! Kazakh, one line per operation, and the totals per type at the bottom.
//!
//! Layout (both formats): a Russian header row, a Kazakh header row, one row per operation in
//! time order, an empty row, then one totals row for payments and one for refunds (label in the
//! first column, the number of operations in the third, the type in the fifth, the sums of amount
//! and commission in the sixth and seventh).

use tolem_wire::{Amount, AmountTotal};

use super::{RegisterError, RegisterKind};
use crate::store::{OpKind, RegisterOp};

/// The column of the commission in [`headers`].
const COMMISSION_COLUMN: usize = 6;

/// The Russian and the Kazakh header rows of a `kind` register: its commission column names the
/// commission it shows (SPEC 5.1, 5.2; DECISIONS 38), in the regulation's words.
pub(crate) fn headers(kind: RegisterKind) -> [[&'static str; 8]; 2] {
    let mut ru = [
        "ID покупателя",
        "Номер операции участника",
        "Номер операции ПС",
        "Дата и время",
        "Тип операции",
        "Сумма",
        "",
        "Возвращённый платёж ПС",
    ];
    let mut kk = [
        "Сатып алушының ID",
        "Қатысушы операциясының нөмірі",
        "ТЖ операциясының нөмірі",
        "Күні мен уақыты",
        "Операция түрі",
        "Сома",
        "",
        "Қайтарылған ТЖ төлемі",
    ];
    (ru[COMMISSION_COLUMN], kk[COMMISSION_COLUMN]) = match kind {
        RegisterKind::Daily => (
            "Комиссия за платёжную услугу",
            "Төлем қызметі үшін комиссия",
        ),
        RegisterKind::Monthly => (
            "Комиссия за услугу «Сервис»",
            "«Сервис» қызметі үшін комиссия",
        ),
    };
    [ru, kk]
}

pub(crate) const TOTAL_LABEL: &str = "Итого / Барлығы";

/// The type column's text.
pub(crate) fn type_label(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Payment => "Оплата / Төлем",
        OpKind::Refund => "Возврат / Қайтару",
    }
}

/// One operation with its commission.
#[derive(Clone, Debug)]
pub struct Line {
    pub op: RegisterOp,
    pub commission: Amount,
}

/// The totals of one type of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeTotal {
    pub count: u64,
    pub amount: AmountTotal,
    pub commission: AmountTotal,
}

/// What a register adds up to; also what making it reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub payments: TypeTotal,
    pub refunds: TypeTotal,
}

impl Totals {
    pub fn add(&mut self, line: &Line) -> Result<(), RegisterError> {
        let total = match line.op.kind {
            OpKind::Payment => &mut self.payments,
            OpKind::Refund => &mut self.refunds,
        };
        total.count += 1;
        total.amount = total
            .amount
            .checked_add(line.op.amount)
            .ok_or(RegisterError::Overflow)?;
        total.commission = total
            .commission
            .checked_add(line.commission)
            .ok_or(RegisterError::Overflow)?;
        Ok(())
    }

    pub fn rows(&self) -> usize {
        usize::try_from(self.payments.count + self.refunds.count).unwrap_or(usize::MAX)
    }

    /// The totals rows, payments first.
    pub(crate) fn by_type(&self) -> [(OpKind, TypeTotal); 2] {
        [
            (OpKind::Payment, self.payments),
            (OpKind::Refund, self.refunds),
        ]
    }
}

/// A register file being written, row by row.
pub(crate) trait Sink {
    fn line(&mut self, line: &Line) -> Result<(), RegisterError>;
    /// Writes the totals and completes the file.
    fn finish(self, totals: &Totals) -> Result<(), RegisterError>;
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use tolem_wire::amount::AMOUNT_TIYN_MAX;

    use super::*;

    #[test]
    fn totals_past_64_bits_of_tiyn_add_up_exactly() {
        let largest = Amount::from_tiyn(AMOUNT_TIYN_MAX);
        let line = Line {
            op: RegisterOp {
                kind: OpKind::Payment,
                id: 1,
                customer_id: "C1".to_owned(),
                mpp_operation_id: "M1".to_owned(),
                finished_at: Timestamp::UNIX_EPOCH,
                amount: largest,
                refund_of: None,
                rates: None,
            },
            commission: largest,
        };
        let mut totals = Totals::default();
        // 18 447 of them pass 2^64 tiyn.
        for _ in 0..20_000 {
            totals.add(&line).expect("no overflow");
        }
        let expected = AmountTotal::from_tiyn(20_000 * u128::from(AMOUNT_TIYN_MAX));
        assert_eq!(totals.payments.count, 20_000);
        assert_eq!(totals.payments.amount, expected);
        assert_eq!(totals.payments.commission, expected);
        assert_eq!(totals.refunds, TypeTotal::default());
    }
}
