//! The pay dialogue: scan, show the merchant and the amount, ask what the QR type needs (the
//! amount of a Static QR, the fields of a Custom form), then pay or go Back.
//!
//! The dialogue talks to the customer only through [`Prompt`], so the terminal, a script of
//! flags ([`PayAnswers`]) and the tests' scripted answers all run the same code.

use std::collections::BTreeMap;

use tolem_wire::mpp::{ParameterValue, PaymentData, QrCodeType, ServiceParameter};
use tolem_wire::{Amount, Locale};

use crate::flows::{Account, PaymentView, ScanView};
use crate::wallet::{AppClient, WalletError, text};

/// How many wrong answers to one question the dialogue takes before it gives up.
pub const ANSWER_TRIES_MAX: usize = 3;

/// The customer's side of the dialogue.
pub trait Prompt {
    /// Shows a line.
    fn say(&mut self, line: &str);
    /// Asks a question and returns the answer, or `None` when there is no more input.
    fn ask(&mut self, question: &str) -> Option<String>;
}

/// Answers given in advance (command-line flags); what is missing is asked.
#[derive(Clone, Debug, Default)]
pub struct PayAnswers {
    /// The amount of a Static QR (whole tenge).
    pub amount: Option<Amount>,
    /// Values of Custom parameters by id (for a parameter with options: the option's key).
    pub parameters: BTreeMap<i64, String>,
    /// Pay or go Back without asking.
    pub decision: Option<Decision>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Pay,
    Back,
}

/// How a scan ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayOutcome {
    /// The payment was paid, rejected (and the debit reversed) or cancelled with Back.
    Finished(PaymentView),
    /// A refund QR: the cashier now picks the purchase to refund; the money comes later.
    Refund { refund_id: Option<String> },
}

/// The customer `customer_id` of the MPP behind `client`, speaking `locale`.
#[derive(Clone, Debug)]
pub struct Wallet {
    client: AppClient,
    customer_id: String,
    locale: Locale,
}

impl Wallet {
    pub fn new(mpp_url: &str, customer_id: &str, locale: Locale) -> Result<Wallet, WalletError> {
        Ok(Wallet {
            client: AppClient::new(mpp_url)?,
            customer_id: customer_id.to_owned(),
            locale,
        })
    }

    pub fn locale(&self) -> Locale {
        self.locale
    }

    pub async fn account(&self) -> Result<Account, WalletError> {
        self.client.account(&self.customer_id).await
    }

    /// Scans `qr_code` and leads the customer through the payment.
    pub async fn pay(
        &self,
        prompt: &mut dyn Prompt,
        qr_code: &str,
        answers: &PayAnswers,
    ) -> Result<PayOutcome, WalletError> {
        let locale = self.locale;
        let scan = self
            .client
            .scan(&self.customer_id, qr_code.trim(), locale)
            .await?;
        if let Some(merchant) = &scan.merchant {
            prompt.say(&text::merchant(locale, merchant));
        }
        if scan.kind == QrCodeType::Refund {
            prompt.say(&text::refund_scanned(locale, scan.refund_id.as_deref()));
            return Ok(PayOutcome::Refund {
                refund_id: scan.refund_id,
            });
        }
        let payment_id = scan
            .payment_id
            .clone()
            .ok_or_else(|| WalletError::Protocol("a scan without paymentId".to_owned()))?;
        let decided = self.decide(prompt, &scan, &payment_id, answers).await;
        let view = match decided {
            Ok(Choice::Pay { amount }) => self
                .client
                .confirm(&self.customer_id, &payment_id, amount, locale)
                .await
                // A confirm without an answer may have paid: never "the bank is down, start it".
                // One that never made a connection sent nothing: that is what it says.
                .map_err(|e| match e {
                    WalletError::Interrupted { url, why } => {
                        WalletError::ConfirmUnanswered { url, why }
                    }
                    WalletError::Timeout { url } => WalletError::ConfirmUnanswered {
                        url,
                        why: format!(
                            "no answer within {} s",
                            super::client::REQUEST_TIMEOUT_MS / 1000
                        ),
                    },
                    // The MPP's own fault after it may have debited.
                    WalletError::Mpp { status, message } if status >= 500 => {
                        let url = self.client.base_url().trim_end_matches('/').to_owned();
                        WalletError::ConfirmUnanswered {
                            url,
                            why: format!("HTTP {status}: {message}"),
                        }
                    }
                    other => other,
                })?,
            Ok(Choice::Back) => {
                self.client
                    .back(&self.customer_id, &payment_id, locale)
                    .await?
            }
            Err(e) => {
                // The customer left before deciding: go Back so the cashier learns it now
                // rather than when the QR expires. The first error is the one to report.
                if let Err(back) = self
                    .client
                    .back(&self.customer_id, &payment_id, locale)
                    .await
                {
                    tracing::debug!(error = %back, "back after an unfinished dialogue failed");
                }
                return Err(e);
            }
        };
        show_result(prompt, locale, &view);
        Ok(PayOutcome::Finished(view))
    }

    /// Asks what the QR type needs, shows the amount, and asks to pay or go Back.
    async fn decide(
        &self,
        prompt: &mut dyn Prompt,
        scan: &ScanView,
        payment_id: &str,
        answers: &PayAnswers,
    ) -> Result<Choice, WalletError> {
        let locale = self.locale;
        if scan.kind != QrCodeType::Custom && !answers.parameters.is_empty() {
            return Err(WalletError::BadAnswer(text::no_form(locale)));
        }
        let (due, customer_amount) = match scan.kind {
            QrCodeType::Dynamic => {
                let amount = scan.amount.ok_or_else(|| {
                    WalletError::Protocol("a Dynamic QR without amount".to_owned())
                })?;
                (amount, None)
            }
            QrCodeType::Static => {
                let amount = match (answers.amount, answers.decision) {
                    (Some(amount), _) => check_static_amount(amount, locale)?,
                    // Back needs no amount.
                    (None, Some(Decision::Back)) => return Ok(Choice::Back),
                    (None, _) => ask_amount(prompt, locale)?,
                };
                (amount, Some(amount))
            }
            QrCodeType::Custom => {
                let service = scan.service.as_ref().ok_or_else(|| {
                    WalletError::Protocol("a Custom QR without paymentData".to_owned())
                })?;
                prompt.say(&text::service(locale, &service.service_name));
                let values = fill_form(prompt, locale, service, &answers.parameters)?;
                let amount = self
                    .client
                    .checkout(&self.customer_id, payment_id, values, locale)
                    .await?;
                (amount, None)
            }
            QrCodeType::Refund => {
                return Err(WalletError::Protocol("a refund QR to pay".to_owned()));
            }
        };
        // An amount given for a QR whose amount is set (Dynamic, or Custom once computed) is
        // what the script expects to pay: a different one is refused, not paid.
        if customer_amount.is_none()
            && let Some(expected) = answers.amount
            && expected != due
        {
            return Err(WalletError::BadAnswer(text::amount_differs(
                locale, expected, due,
            )));
        }
        prompt.say(&text::amount_due(locale, due));
        if let Some(until) = &scan.can_confirm_until {
            prompt.say(&text::confirm_until(locale, until));
        }
        let decision = match answers.decision {
            Some(decision) => decision,
            None => ask_decision(prompt, locale)?,
        };
        Ok(match decision {
            Decision::Pay => Choice::Pay {
                amount: customer_amount,
            },
            Decision::Back => Choice::Back,
        })
    }
}

/// What the customer chose after seeing the amount.
enum Choice {
    /// Pay; `amount` is the customer's own for a Static QR, `None` otherwise.
    Pay {
        amount: Option<Amount>,
    },
    Back,
}

fn show_result(prompt: &mut dyn Prompt, locale: Locale, view: &PaymentView) {
    match view.status.as_str() {
        "paid" => {
            prompt.say(&text::paid(locale, view.amount));
            prompt.say(&text::purchase(locale, &view.payment_id));
            if let Some(link) = &view.receipt {
                prompt.say(&text::receipt(locale, link));
            }
        }
        "cancelled" => prompt.say(&text::cancelled(locale)),
        "rejected" => prompt.say(&text::rejected(
            locale,
            view.ps_code.as_deref().unwrap_or("—"),
        )),
        "pending" => prompt.say(&text::pending(locale)),
        other => prompt.say(&text::other_status(locale, other)),
    }
}

/// Asks `question` until `parse` accepts the answer, at most [`ANSWER_TRIES_MAX`] times.
fn ask_until<T>(
    prompt: &mut dyn Prompt,
    (question, hint): (&str, &str),
    flag: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, WalletError> {
    for _ in 0..ANSWER_TRIES_MAX {
        let answer = prompt.ask(question).ok_or_else(|| WalletError::NoAnswer {
            question: question.to_owned(),
            flag,
        })?;
        if let Some(value) = parse(answer.trim()) {
            return Ok(value);
        }
        prompt.say(hint);
    }
    Err(WalletError::TooManyTries {
        question: question.to_owned(),
    })
}

fn ask_amount(prompt: &mut dyn Prompt, locale: Locale) -> Result<Amount, WalletError> {
    // Says what an amount must be, not only that it was not understood: `1,5` is clear enough.
    ask_until(
        prompt,
        (&text::ask_amount(locale), &text::bad_amount(locale)),
        "--amount",
        parse_tenge,
    )
}

/// Whole tenge as a customer types it: `500`, `1 500`, `500,00`, `500.00`.
pub fn parse_tenge(answer: &str) -> Option<Amount> {
    parse_typed(answer).filter(|a| a.is_whole_tenge())
}

/// An amount above zero as a person types it, tiyn allowed: `1 200,50`, `500`, `500.00 ₸`
/// ([`Amount::parse_typed`]).
pub fn parse_typed(answer: &str) -> Option<Amount> {
    Amount::parse_typed(answer).ok().filter(|a| !a.is_zero())
}

fn check_static_amount(amount: Amount, locale: Locale) -> Result<Amount, WalletError> {
    if amount.is_zero() || !amount.is_whole_tenge() {
        return Err(WalletError::BadAnswer(text::bad_static_amount(
            locale, amount,
        )));
    }
    Ok(amount)
}

fn ask_decision(prompt: &mut dyn Prompt, locale: Locale) -> Result<Decision, WalletError> {
    ask_until(
        prompt,
        (&text::ask_confirm(locale), &text::not_understood(locale)),
        "--yes / --back",
        parse_decision,
    )
}

/// Yes or Back in either language (and in English, for scripts).
pub fn parse_decision(answer: &str) -> Option<Decision> {
    match answer.to_lowercase().as_str() {
        "д" | "да" | "и" | "иә" | "y" | "yes" | "pay" | "оплатить" | "төлеу" => {
            Some(Decision::Pay)
        }
        "н" | "нет" | "ж" | "жоқ" | "n" | "no" | "b" | "back" | "назад" | "артқа" => {
            Some(Decision::Back)
        }
        _ => None,
    }
}

/// The values of a Custom form: those the PS filled are shown and sent back as they are; the
/// rest come from `given` or are asked, options as a numbered choice.
fn fill_form(
    prompt: &mut dyn Prompt,
    locale: Locale,
    service: &PaymentData,
    given: &BTreeMap<i64, String>,
) -> Result<Vec<ParameterValue>, WalletError> {
    let open: Vec<&ServiceParameter> = service
        .parameters
        .iter()
        .filter(|p| p.value.is_empty())
        .collect();
    if let Some(unknown) = given.keys().find(|id| !open.iter().any(|p| p.id == **id)) {
        let ids: Vec<String> = open.iter().map(|p| p.id.to_string()).collect();
        return Err(WalletError::BadAnswer(text::unknown_param(
            locale,
            *unknown,
            &ids.join(", "),
        )));
    }
    let mut values = Vec::with_capacity(service.parameters.len());
    for parameter in &service.parameters {
        let value = if !parameter.value.is_empty() {
            prompt.say(&text::prefilled(&parameter.name, &parameter.value));
            parameter.value.clone()
        } else if let Some(value) = given.get(&parameter.id) {
            check_given(parameter, value)?;
            value.clone()
        } else {
            ask_parameter(prompt, locale, parameter)?
        };
        values.push(ParameterValue {
            id: parameter.id,
            value: Some(value),
        });
    }
    Ok(values)
}

fn check_given(parameter: &ServiceParameter, value: &str) -> Result<(), WalletError> {
    let fits = match &parameter.options {
        Some(options) if !options.is_empty() => options.iter().any(|o| o.key == value),
        _ => !value.trim().is_empty(),
    };
    if fits {
        return Ok(());
    }
    let keys: Vec<&str> = parameter
        .options
        .iter()
        .flatten()
        .map(|o| o.key.as_str())
        .collect();
    Err(WalletError::BadAnswer(format!(
        "--param {}={value}: {} ({})",
        parameter.id,
        parameter.name,
        keys.join(", ")
    )))
}

fn ask_parameter(
    prompt: &mut dyn Prompt,
    locale: Locale,
    parameter: &ServiceParameter,
) -> Result<String, WalletError> {
    let options = match &parameter.options {
        Some(options) if !options.is_empty() => options,
        _ => {
            return ask_until(
                prompt,
                (
                    &text::ask_parameter(&parameter.name),
                    &text::not_understood(locale),
                ),
                "--param ID=VALUE",
                |answer| (!answer.is_empty()).then(|| answer.to_owned()),
            );
        }
    };
    for (i, option) in options.iter().enumerate() {
        prompt.say(&text::option_line(i + 1, option));
    }
    let question = text::ask_choice(locale, &parameter.name, options.len());
    let hint = text::not_understood(locale);
    ask_until(prompt, (&question, &hint), "--param ID=KEY", |answer| {
        let by_number = answer
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| options.get(i));
        by_number
            .or_else(|| options.iter().find(|o| o.key == answer))
            .map(|o| o.key.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_whole_tenge() {
        let tenge = |n| Amount::from_tenge(n);
        assert_eq!(parse_tenge("500"), tenge(500));
        assert_eq!(parse_tenge(" 1 500 "), tenge(1500));
        assert_eq!(parse_tenge("500,00"), tenge(500));
        assert_eq!(parse_tenge("500.00 ₸"), tenge(500));
        for bad in ["", "0", "500.50", "-5", "1e3", "abc", "5 0 0,5"] {
            assert_eq!(parse_tenge(bad), None, "{bad}");
        }
    }

    /// A prompt that must not be asked anything.
    struct Silent;

    impl Prompt for Silent {
        fn say(&mut self, _line: &str) {}
        fn ask(&mut self, question: &str) -> Option<String> {
            panic!("asked {question:?}")
        }
    }

    /// A prompt with answers ready, keeping what it was told.
    struct Scripted {
        answers: Vec<&'static str>,
        said: Vec<String>,
    }

    impl Prompt for Scripted {
        fn say(&mut self, line: &str) {
            self.said.push(line.to_owned());
        }
        fn ask(&mut self, _question: &str) -> Option<String> {
            (!self.answers.is_empty()).then(|| self.answers.remove(0).to_owned())
        }
    }

    #[test]
    fn a_static_amount_typed_with_tiyn_is_asked_again_saying_what_it_must_be() {
        let mut prompt = Scripted {
            answers: vec!["1,5", "500"],
            said: Vec::new(),
        };
        let amount = ask_amount(&mut prompt, Locale::Kk).expect("the second answer");
        assert_eq!(Some(amount), Amount::from_tenge(500));
        assert_eq!(
            prompt.said,
            ["Сома — нөлден үлкен бүтін теңге, мысалы 500 немесе 1 500."]
        );
    }

    #[test]
    fn a_param_the_form_does_not_ask_for_is_refused_in_one_language() {
        let parameter = |id| ServiceParameter {
            id,
            value: String::new(),
            name: format!("p{id}"),
            options: None,
        };
        let service = PaymentData {
            service_id: 1,
            service_name: "Тұрақ".to_owned(),
            parameters: vec![parameter(3932), parameter(3933)],
        };
        let given = BTreeMap::from([(9999, "x".to_owned())]);
        for (locale, want) in [
            (
                Locale::Ru,
                "Неверный параметр: --param 9999: в этой форме параметры 3932, 3933",
            ),
            (
                Locale::Kk,
                "Параметр дұрыс емес: --param 9999: бұл формадағы параметрлер: 3932, 3933",
            ),
        ] {
            let err = fill_form(&mut Silent, locale, &service, &given).expect_err("refused");
            assert_eq!(text::error(&err, locale), want);
        }
    }

    #[test]
    fn decisions_in_both_languages() {
        for yes in ["д", "Да", "и", "ИӘ", "y", "yes"] {
            assert_eq!(parse_decision(yes), Some(Decision::Pay), "{yes}");
        }
        for no in ["н", "нет", "ж", "жоқ", "n", "back", "Назад", "артқа"] {
            assert_eq!(parse_decision(no), Some(Decision::Back), "{no}");
        }
        assert_eq!(parse_decision("maybe"), None);
    }
}
