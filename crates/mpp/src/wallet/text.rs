//! Every string the wallet shows, in Russian and Kazakh side by side, and the one way it writes
//! money: exact tiyn through [`Amount`], grouped by thousands, `1 500,00 ₸`.
//!
//! Names of Custom services, parameters and options are not here: the PS localizes them by the
//! locale the wallet sends.

use tolem_wire::mpp::{Merchant, ParameterOption};
use tolem_wire::{Amount, Locale};

use crate::flows::Notice;
use crate::wallet::WalletError;

/// Picks the text of the customer's language; only the chosen branch is evaluated.
macro_rules! tr {
    ($locale:expr, ru: $ru:expr, kk: $kk:expr $(,)?) => {
        match $locale {
            Locale::Ru => $ru.to_string(),
            Locale::Kk => $kk.to_string(),
        }
    };
}

/// `1 500,00 ₸`: tenge grouped by thousands with spaces, tiyn after a comma ([`Amount::human`],
/// the same in both languages).
pub fn money(amount: Amount) -> String {
    amount.human(Locale::Ru).to_string()
}

/// A movement of the account: `+50 000,00 ₸` or `−1 500,00 ₸`.
pub fn signed_money(tiyn: i64) -> String {
    let sign = if tiyn < 0 { '−' } else { '+' };
    format!("{sign}{}", money(Amount::from_tiyn(tiyn.unsigned_abs())))
}

pub fn merchant(locale: Locale, m: &Merchant) -> String {
    let (name, mcc) = (&m.merchant_name, &m.merchant_mcc);
    tr!(locale,
        ru: format!("Продавец: {name} (MCC {mcc})"),
        kk: format!("Сатушы: {name} (MCC {mcc})"))
}

pub fn service(locale: Locale, name: &str) -> String {
    tr!(locale, ru: format!("Услуга: {name}"), kk: format!("Қызмет: {name}"))
}

/// A Custom parameter the PS filled in already.
pub fn prefilled(name: &str, value: &str) -> String {
    format!("{name}: {value}")
}

/// A `--param` the form does not ask for, and the ids it does:
/// `--param 9999: в этой форме параметры 3932, 3933`.
pub fn unknown_param(locale: Locale, id: i64, asked: &str) -> String {
    tr!(locale,
        ru: format!("--param {id}: в этой форме параметры {asked}"),
        kk: format!("--param {id}: бұл формадағы параметрлер: {asked}"))
}

/// One line of a numbered choice: `  2) 3 часа — до 24 часов`.
pub fn option_line(number: usize, option: &ParameterOption) -> String {
    match &option.description {
        Some(description) => format!("  {number}) {} — {description}", option.label),
        None => format!("  {number}) {}", option.label),
    }
}

pub fn ask_parameter(name: &str) -> String {
    format!("{name}:")
}

pub fn ask_choice(locale: Locale, name: &str, count: usize) -> String {
    tr!(locale,
        ru: format!("{name} — выберите номер (1–{count}):"),
        kk: format!("{name} — нөмірін таңдаңыз (1–{count}):"))
}

pub fn ask_amount(locale: Locale) -> String {
    tr!(locale,
        ru: "Сумма в тенге (целое число):",
        kk: "Сома теңгемен (бүтін сан):")
}

pub fn ask_qr(locale: Locale) -> String {
    tr!(locale, ru: "QR-код (текст):", kk: "QR-код (мәтін):")
}

pub fn amount_due(locale: Locale, amount: Amount) -> String {
    let amount = money(amount);
    tr!(locale, ru: format!("К оплате: {amount}"), kk: format!("Төлеуге: {amount}"))
}

/// The deadline to confirm, as the time of day the PS wrote it in (the merchant's own time);
/// a deadline that does not parse is shown as it came.
pub fn confirm_until(locale: Locale, until: &str) -> String {
    let until = match jiff::fmt::temporal::Pieces::parse(until).map(|p| p.time()) {
        Ok(Some(time)) => time.strftime("%H:%M:%S").to_string(),
        _ => until.to_owned(),
    };
    tr!(locale,
        ru: format!("Подтвердить до {until}"),
        kk: format!("Растау мерзімі: {until}"))
}

pub fn ask_confirm(locale: Locale) -> String {
    tr!(locale,
        ru: "Оплатить? (д — оплатить, н — назад):",
        kk: "Төлейсіз бе? (и — төлеу, ж — артқа):")
}

/// A Static QR's amount that is not whole tenge above zero (`1,5`, `0`): what it must be.
pub fn bad_amount(locale: Locale) -> String {
    tr!(locale,
        ru: "Сумма — целое число тенге больше нуля, например 500 или 1 500.",
        kk: "Сома — нөлден үлкен бүтін теңге, мысалы 500 немесе 1 500.")
}

/// `--amount` for a Static QR that is not whole tenge above zero: nothing is paid.
pub fn bad_static_amount(locale: Locale, typed: Amount) -> String {
    let typed = money(typed);
    tr!(locale,
        ru: format!("--amount {typed}: {} Не оплачено.", bad_amount(locale)),
        kk: format!("--amount {typed}: {} Төленбеді.", bad_amount(locale)))
}

pub fn not_understood(locale: Locale) -> String {
    tr!(locale,
        ru: "Ответ не понят, попробуйте ещё раз.",
        kk: "Жауап түсініксіз, қайталап көріңіз.")
}

pub fn paid(locale: Locale, amount: Option<Amount>) -> String {
    match amount {
        Some(amount) => {
            let amount = money(amount);
            tr!(locale, ru: format!("Оплачено: {amount}"), kk: format!("Төленді: {amount}"))
        }
        None => tr!(locale, ru: "Оплачено", kk: "Төленді"),
    }
}

/// The PS's number of the purchase: what the merchant's refund names (`QrPaymentId`).
pub fn purchase(locale: Locale, payment_id: &str) -> String {
    tr!(locale,
        ru: format!("Покупка № {payment_id}"),
        kk: format!("Сатып алу № {payment_id}"))
}

pub fn receipt(locale: Locale, link: &str) -> String {
    let link = receipt_link(locale, link);
    tr!(locale, ru: format!("Чек: {link}"), kk: format!("Түбіртек: {link}"))
}

/// The PS's receipt link in the customer's language: the PS hands out the Russian receipt and the
/// MPP appends `&locale=kk` for Kazakh (SPEC 4.3, DECISIONS 35).
pub fn receipt_link(locale: Locale, link: &str) -> String {
    match locale {
        Locale::Ru => link.to_owned(),
        Locale::Kk => format!("{link}&locale=kk"),
    }
}

/// One notification of the feed, worded in the customer's language.
pub fn notice(locale: Locale, notice: &Notice) -> String {
    match notice {
        Notice::Paid { merchant, amount } => {
            let amount = money(*amount);
            tr!(locale,
                ru: format!("Оплата {merchant}: {amount}"),
                kk: format!("Төлем {merchant}: {amount}"))
        }
        Notice::Rejected { code, amount } => {
            let amount = money(*amount);
            tr!(locale,
                ru: format!("Платёж отклонён ({code}), {amount} возвращены на счёт"),
                kk: format!("Төлем қабылданбады ({code}), {amount} шотқа қайтарылды"))
        }
        Notice::Refunded { amount, receipt } => {
            let amount = money(*amount);
            let receipt = receipt_link(locale, receipt);
            tr!(locale,
                ru: format!("Возврат {amount}, чек: {receipt}"),
                kk: format!("Қайтару {amount}, түбіртек: {receipt}"))
        }
        Notice::Text { text } => text.clone(),
    }
}

pub fn cancelled(locale: Locale) -> String {
    tr!(locale,
        ru: "Платёж отменён (CANCELLED_BY_CLIENT), деньги не списаны.",
        kk: "Төлемнен бас тартылды (CANCELLED_BY_CLIENT), ақша шегерілмеді.")
}

pub fn rejected(locale: Locale, code: &str) -> String {
    tr!(locale,
        ru: format!("Платёж отклонён ({code}), деньги возвращены на счёт."),
        kk: format!("Төлем қабылданбады ({code}), ақша шотқа қайтарылды."))
}

/// The MPP has not heard the PS's answer yet: its driver goes on, and the outcome shows in the
/// history.
pub fn pending(locale: Locale) -> String {
    tr!(locale,
        ru: "Платёж обрабатывается; результат появится в истории.",
        kk: "Төлем өңделуде; нәтижесі тарихта шығады.")
}

/// `--amount` for a QR whose amount is set, and not its amount.
pub fn amount_differs(locale: Locale, expected: Amount, due: Amount) -> String {
    let (expected, due) = (money(expected), money(due));
    tr!(locale,
        ru: format!("--amount {expected}: к оплате {due}; не оплачено"),
        kk: format!("--amount {expected}: төлеуге {due}; төленбеді"))
}

/// `--param` for a QR code without a form (Dynamic or Static).
pub fn no_form(locale: Locale) -> String {
    tr!(locale,
        ru: "--param: у этого QR-кода нет формы; не оплачено",
        kk: "--param: бұл QR-кодта форма жоқ; төленбеді")
}

/// A status the wallet does not know (a newer MPP).
pub fn other_status(locale: Locale, status: &str) -> String {
    tr!(locale, ru: format!("Статус платежа: {status}"), kk: format!("Төлем мәртебесі: {status}"))
}

pub fn refund_scanned(locale: Locale, refund_id: Option<&str>) -> String {
    let id = refund_id.map(|id| format!(" №{id}")).unwrap_or_default();
    tr!(locale,
        ru: format!("QR-код возврата{id}: кассир сейчас выберет покупку для возврата. Деньги придут на счёт, уведомление появится в уведомлениях (notifications)."),
        kk: format!("Қайтару QR-коды{id}: кассир енді қайтарылатын сатып алуды таңдайды. Ақша шотқа түседі, хабарлама хабарламаларда (notifications) шығады."))
}

pub fn balance(locale: Locale, name: &str, customer_id: &str, tiyn: i64) -> String {
    let amount = if tiyn < 0 {
        signed_money(tiyn)
    } else {
        money(Amount::from_tiyn(tiyn.unsigned_abs()))
    };
    tr!(locale,
        ru: format!("{name} ({customer_id}), баланс: {amount}"),
        kk: format!("{name} ({customer_id}), баланс: {amount}"))
}

pub fn history_title(locale: Locale) -> String {
    tr!(locale, ru: "История операций:", kk: "Операциялар тарихы:")
}

pub fn notifications_title(locale: Locale) -> String {
    tr!(locale, ru: "Уведомления:", kk: "Хабарламалар:")
}

pub fn nothing_yet(locale: Locale) -> String {
    tr!(locale, ru: "  пока пусто", kk: "  әзірге бос")
}

/// The kind of a ledger movement, as the reference MPP names them.
pub fn movement_kind(locale: Locale, kind: &str) -> String {
    match kind {
        "deposit" => tr!(locale, ru: "Пополнение", kk: "Толықтыру"),
        "payment" => tr!(locale, ru: "Оплата", kk: "Төлем"),
        "reversal" => tr!(locale, ru: "Отмена списания", kk: "Шегерімнің күшін жою"),
        "refund" => tr!(locale, ru: "Возврат", kk: "Қайтару"),
        other => other.to_owned(),
    }
}

/// The reference MPP's ledger reference of a movement (`payment 7`, `refund 12 of payment 7`,
/// `payment 7 (PROCESS_FAIL)`, as `flows` writes them) said in `locale`; any other text as it is.
pub fn movement_reference(locale: Locale, reference: &str) -> String {
    if let Some((refund, payment)) = reference
        .strip_prefix("refund ")
        .and_then(|rest| rest.split_once(" of payment "))
    {
        return tr!(locale,
            ru: format!("возврат № {refund} по покупке № {payment}"),
            kk: format!("№ {payment} сатып алу бойынша № {refund} қайтару"));
    }
    if let Some(rest) = reference.strip_prefix("payment ") {
        return match rest.split_once(" (") {
            Some((id, code)) => {
                let code = code.strip_suffix(')').unwrap_or(code);
                tr!(locale,
                    ru: format!("покупка № {id} ({code})"),
                    kk: format!("№ {id} сатып алу ({code})"))
            }
            None => tr!(locale,
                ru: format!("покупка № {rest}"),
                kk: format!("№ {rest} сатып алу")),
        };
    }
    reference.to_owned()
}

/// The reference MPP's own refusals (the `error` of its app API, `crate::flows`), worded for
/// the customer; `None` for any other text, which is shown as the MPP wrote it.
fn mpp_refusal(message: &str, locale: Locale) -> Option<String> {
    if message == "not enough money" {
        return Some(insufficient(locale));
    }
    if let Some(id) = message.strip_prefix("unknown customer ") {
        return Some(unknown_customer(locale, id));
    }
    message
        .strip_prefix("the PS answered ")
        .map(|why| ps_refused(locale, why))
}

pub fn insufficient(locale: Locale) -> String {
    tr!(locale,
        ru: "Недостаточно средств на счёте.",
        kk: "Шотта қаражат жеткіліксіз.")
}

pub fn unknown_customer(locale: Locale, id: &str) -> String {
    tr!(locale,
        ru: format!("Клиент {id} не найден в этом банке."),
        kk: format!("Бұл банкте {id} клиенті табылмады."))
}

pub fn ps_refused(locale: Locale, why: &str) -> String {
    tr!(locale,
        ru: format!("Платёжная система отказала: {why}"),
        kk: format!("Төлем жүйесі бас тартты: {why}"))
}

/// The one wording of every [`WalletError`].
pub fn error(e: &WalletError, locale: Locale) -> String {
    match e {
        WalletError::BadUrl(url) => tr!(locale,
            ru: format!("Адрес банка (МПП) должен начинаться с http:// или https://: {url}"),
            kk: format!("Банк (МПП) мекенжайы http:// немесе https:// деп басталуы керек: {url}")),
        WalletError::Unreachable { url, why } => tr!(locale,
            ru: format!("Банк (МПП) недоступен по адресу {url}: {why}. Запустите песочницу (tolem sandbox) или укажите адрес банка: --mpp URL"),
            kk: format!("Банк (МПП) қолжетімсіз, мекенжайы {url}: {why}. Құмсалғышты іске қосыңыз (tolem sandbox) немесе банк мекенжайын көрсетіңіз: --mpp URL")),
        WalletError::Interrupted { url, why } => tr!(locale,
            ru: format!("Связь с банком (МПП) {url} прервалась: {why}. Попробуйте ещё раз."),
            kk: format!("Банкпен (МПП) байланыс үзілді, мекенжайы {url}: {why}. Қайталап көріңіз.")),
        WalletError::Timeout { url } => tr!(locale,
            ru: format!("Банк (МПП) {url} не ответил вовремя. Платёж может ещё завершиться — проверьте историю (history)."),
            kk: format!("Банк (МПП) {url} уақытында жауап бермеді. Төлем әлі аяқталуы мүмкін — тарихты (history) тексеріңіз.")),
        WalletError::ConfirmUnanswered { url, why } => tr!(locale,
            ru: format!("Банк (МПП) {url} не ответил на оплату: {why}. Если платёж дошёл до банка, он завершится: проверьте историю (history), прежде чем платить снова."),
            kk: format!("Банк (МПП) {url} төлемге жауап бермеді: {why}. Төлем банкке жетсе, ол аяқталады: қайта төлемес бұрын тарихты (history) тексеріңіз.")),
        WalletError::Mpp { status, message } => mpp_refusal(message, locale).unwrap_or_else(|| {
            tr!(locale,
                ru: format!("Банк (МПП) ответил ошибкой (HTTP {status}): {message}"),
                kk: format!("Банк (МПП) қатемен жауап берді (HTTP {status}): {message}"))
        }),
        WalletError::Protocol(why) => tr!(locale,
            ru: format!("Непонятный ответ банка (МПП): {why}"),
            kk: format!("Банктің (МПП) жауабы түсініксіз: {why}")),
        WalletError::ImageUnreadable(why) => tr!(locale,
            ru: format!("Не удалось прочитать изображение (нужен PNG или JPEG): {why}"),
            kk: format!("Суретті оқу мүмкін болмады (PNG немесе JPEG керек): {why}")),
        WalletError::NoQrCode => tr!(locale,
            ru: "На изображении не найден QR-код.",
            kk: "Суретте QR-код табылмады."),
        WalletError::QrUnreadable(why) => tr!(locale,
            ru: format!("QR-код найден, но не читается: {why}"),
            kk: format!("QR-код табылды, бірақ оқылмайды: {why}")),
        WalletError::NoAnswer { question, flag } => tr!(locale,
            ru: format!("Нет ответа на вопрос «{question}» (без диалога укажите {flag})"),
            kk: format!("«{question}» сұрағына жауап жоқ (диалогсыз {flag} көрсетіңіз)")),
        WalletError::TooManyTries { question } => tr!(locale,
            ru: format!("Слишком много неверных ответов на вопрос «{question}»"),
            kk: format!("«{question}» сұрағына қате жауап тым көп")),
        WalletError::BadAnswer(why) => tr!(locale,
            ru: format!("Неверный параметр: {why}"),
            kk: format!("Параметр дұрыс емес: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_and_grouped() {
        // The grouping itself is `Amount::human`'s, tested beside it; here, the sign.
        assert_eq!(money(Amount::from_tiyn(150_000)), "1 500,00 ₸");
        assert_eq!(signed_money(-150_000), "−1 500,00 ₸");
        assert_eq!(signed_money(5_000_000), "+50 000,00 ₸");
        assert_eq!(signed_money(i64::MIN), "−92 233 720 368 547 758,08 ₸");
    }

    #[test]
    fn notices_and_receipt_links_follow_the_locale() {
        let refund = Notice::Refunded {
            amount: Amount::from_tiyn(40_000),
            receipt: "http://ps/receipt?id=ab".into(),
        };
        assert_eq!(
            notice(Locale::Ru, &refund),
            "Возврат 400,00 ₸, чек: http://ps/receipt?id=ab"
        );
        assert_eq!(
            notice(Locale::Kk, &refund),
            "Қайтару 400,00 ₸, түбіртек: http://ps/receipt?id=ab&locale=kk"
        );
        let paid = Notice::Paid {
            merchant: "Demo Coffee".into(),
            amount: Amount::from_tiyn(150_000),
        };
        assert_eq!(notice(Locale::Kk, &paid), "Төлем Demo Coffee: 1 500,00 ₸");
        let old = Notice::Text {
            text: "Возврат 4.00 ₸ · Қайтару 4.00 ₸".into(),
        };
        assert_eq!(notice(Locale::Kk, &old), "Возврат 4.00 ₸ · Қайтару 4.00 ₸");
    }

    #[test]
    fn the_deadline_is_a_time_of_day() {
        assert_eq!(
            confirm_until(Locale::Ru, "2026-11-28T01:29:04+05:00"),
            "Подтвердить до 01:29:04"
        );
        assert_eq!(confirm_until(Locale::Kk, "soon"), "Растау мерзімі: soon");
    }

    #[test]
    fn every_error_reads_in_both_languages() {
        let errors = [
            WalletError::BadUrl("x".into()),
            WalletError::Unreachable {
                url: "u".into(),
                why: "w".into(),
            },
            WalletError::Interrupted {
                url: "u".into(),
                why: "w".into(),
            },
            WalletError::Timeout { url: "u".into() },
            WalletError::ConfirmUnanswered {
                url: "u".into(),
                why: "w".into(),
            },
            WalletError::Mpp {
                status: 400,
                message: "m".into(),
            },
            WalletError::Protocol("p".into()),
            WalletError::ImageUnreadable("i".into()),
            WalletError::NoQrCode,
            WalletError::QrUnreadable("q".into()),
            WalletError::NoAnswer {
                question: "q".into(),
                flag: "--yes",
            },
            WalletError::TooManyTries {
                question: "q".into(),
            },
            WalletError::BadAnswer("b".into()),
        ];
        for e in errors {
            let (ru, kk) = (e.message(Locale::Ru), e.message(Locale::Kk));
            assert!(!ru.is_empty() && !kk.is_empty() && ru != kk, "{e:?}");
            assert_eq!(e.to_string(), ru);
        }
    }
}
