//! The customer's account as lines to print: balance, history (newest first) and notifications.
//! Amounts come from the MPP in tiyn and are written through [`text::money`], never as floats;
//! times are shown in the operator's time zone, as the PS writes its dates, whatever the
//! machine's zone.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tolem_wire::Locale;

use crate::flows::Account;
use crate::wallet::text;

/// The operator's time zone unless the customer names another: the PS's default `time_zone`.
pub const OPERATOR_TIME_ZONE: &str = "Asia/Almaty";

pub fn balance_lines(locale: Locale, account: &Account) -> Vec<String> {
    vec![text::balance(
        locale,
        &account.name,
        &account.customer_id,
        account.balance_tiyn,
    )]
}

/// One line a movement: when (in `zone`, the operator's), how much, what kind, and the MPP's
/// reference.
pub fn history_lines(locale: Locale, account: &Account, zone: &TimeZone) -> Vec<String> {
    let mut lines = vec![text::history_title(locale)];
    if account.history.is_empty() {
        lines.push(text::nothing_yet(locale));
    }
    for movement in &account.history {
        lines.push(format!(
            "  {}  {:>14}  {} · {}",
            when(movement.at_ms, zone),
            text::signed_money(movement.tiyn),
            text::movement_kind(locale, &movement.kind),
            text::movement_reference(locale, &movement.reference)
        ));
    }
    lines
}

/// Each notification worded in the customer's language.
pub fn notification_lines(locale: Locale, account: &Account) -> Vec<String> {
    let mut lines = vec![text::notifications_title(locale)];
    if account.notifications.is_empty() {
        lines.push(text::nothing_yet(locale));
    }
    lines.extend(
        account
            .notifications
            .iter()
            .map(|n| format!("  • {}", text::notice(locale, n))),
    );
    lines
}

/// `01.03.2025 14:05` in `zone`, as receipts write dates; a time the MPP got wrong is shown as
/// its raw milliseconds.
fn when(at_ms: i64, zone: &TimeZone) -> String {
    match Timestamp::from_millisecond(at_ms) {
        Ok(at) => tolem_wire::time::format_human(at, zone),
        Err(_) => at_ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::Movement;

    #[test]
    fn lines_in_both_languages() {
        let account = Account {
            customer_id: "C1".into(),
            name: "Айгерим".into(),
            balance_tiyn: 4_850_000,
            history: vec![Movement {
                kind: "payment".into(),
                reference: "payment 7".into(),
                tiyn: -150_000,
                at_ms: 1_740_837_900_000,
            }],
            notifications: vec![],
        };
        assert_eq!(
            balance_lines(Locale::Ru, &account),
            ["Айгерим (C1), баланс: 48 500,00 ₸"]
        );
        let history = history_lines(Locale::Kk, &account, &TimeZone::UTC);
        assert_eq!(history[0], "Операциялар тарихы:");
        assert!(
            history[1].starts_with("  01.03.2025 14:05"),
            "{}",
            history[1]
        );
        let operator = tolem_wire::time::zone(OPERATOR_TIME_ZONE).expect("bundled");
        let almaty = history_lines(Locale::Ru, &account, &operator);
        assert!(almaty[1].starts_with("  01.03.2025 19:05"), "{}", almaty[1]);
        assert!(
            history[1].contains("−1 500,00 ₸  Төлем · № 7 сатып алу"),
            "{}",
            history[1]
        );
        assert!(almaty[1].ends_with("Оплата · покупка № 7"), "{}", almaty[1]);
        for (reference, ru, kk) in [
            (
                "refund 12 of payment 7",
                "возврат № 12 по покупке № 7",
                "№ 7 сатып алу бойынша № 12 қайтару",
            ),
            (
                "payment 7 (PROCESS_FAIL)",
                "покупка № 7 (PROCESS_FAIL)",
                "№ 7 сатып алу (PROCESS_FAIL)",
            ),
            ("opening balance", "opening balance", "opening balance"),
        ] {
            assert_eq!(text::movement_reference(Locale::Ru, reference), ru);
            assert_eq!(text::movement_reference(Locale::Kk, reference), kk);
        }
        assert_eq!(
            notification_lines(Locale::Ru, &account),
            ["Уведомления:", "  пока пусто"]
        );
    }
}
