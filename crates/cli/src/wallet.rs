//! `tolem wallet`: a customer of the reference MPP on the command line. The wallet itself lives
//! in `tolem_mpp::wallet`; this is its terminal: flags, and a prompt on stdin/stdout.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use jiff::tz::TimeZone;
use tolem_mpp::wallet::{
    Decision, PayAnswers, PayOutcome, Prompt, Wallet, WalletError, account, qr, text,
};
use tolem_wire::{Amount, Locale};

#[derive(Args)]
pub struct WalletArgs {
    /// The reference MPP's address (its app API).
    #[arg(long, global = true, default_value = "http://127.0.0.1:8091")]
    mpp: String,
    /// Your customer id at the MPP (the sandbox's: C1 and C2 at demobank, W1 at demowallet).
    #[arg(long, global = true, default_value = "C1")]
    customer: String,
    /// The language of the wallet and of the merchant's texts.
    #[arg(long, global = true, value_enum, default_value_t = Language::Ru)]
    locale: Language,
    /// The operator's time zone (the PS's `time_zone`), in which `history` shows times.
    #[arg(long, global = true, default_value = account::OPERATOR_TIME_ZONE, value_parser = parse_zone)]
    time_zone: TimeZone,
    #[command(subcommand)]
    command: WalletCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum Language {
    /// Русский
    Ru,
    /// Қазақша
    Kk,
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Scan a QR code and pay it.
    Pay(PayArgs),
    /// Show the balance.
    Balance,
    /// Show the account's movements, newest first.
    History,
    /// Show the notifications (payments, refunds), newest first.
    Notifications,
}

#[derive(Args)]
struct PayArgs {
    /// The QR token as text (asked when neither it nor --image is given).
    token: Option<String>,
    /// A PNG or JPEG picture of the QR code.
    #[arg(long, conflicts_with = "token")]
    image: Option<PathBuf>,
    /// The amount of a Static QR, in whole tenge (otherwise asked); for a Dynamic QR or a
    /// computed Custom one, the amount expected (tiyn allowed): another is not paid.
    #[arg(long, value_parser = parse_amount)]
    amount: Option<Amount>,
    /// A Custom field as ID=VALUE (for a choice: the option's key), e.g. 3932=777ABC02.
    #[arg(long = "param", value_name = "ID=VALUE", value_parser = parse_param)]
    params: Vec<(i64, String)>,
    /// Pay without asking.
    #[arg(long, conflicts_with = "back")]
    yes: bool,
    /// Go Back (CANCELLED_BY_CLIENT) without asking.
    #[arg(long)]
    back: bool,
}

fn parse_zone(name: &str) -> Result<TimeZone, String> {
    tolem_wire::time::zone(name)
        .map_err(|_| format!("an IANA time zone such as Asia/Almaty, not {name:?}"))
}

/// Any amount above zero: a Static QR's must be whole tenge, which the dialogue checks (and
/// says in the customer's language) once it knows the QR's type.
fn parse_amount(text: &str) -> Result<Amount, String> {
    tolem_mpp::wallet::dialogue::parse_typed(text)
        .ok_or_else(|| "an amount above zero, e.g. 500 or 1200,50".to_owned())
}

fn parse_param(text: &str) -> Result<(i64, String), String> {
    let (id, value) = text
        .split_once('=')
        .ok_or_else(|| "ID=VALUE, e.g. 3932=777ABC02".to_owned())?;
    let id = id
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("the parameter id {id:?} is not a number"))?;
    Ok((id, value.to_owned()))
}

/// The terminal. Reading stdin blocks the thread, which is the runtime's own `block_on`
/// thread: the wallet does nothing else while it waits for the customer.
struct Terminal;

impl Prompt for Terminal {
    fn say(&mut self, line: &str) {
        // A closed stdout does not stop a payment under way; the MPP's books tell the rest.
        let _ = say(line);
    }

    fn ask(&mut self, question: &str) -> Option<String> {
        let mut out = std::io::stdout().lock();
        write!(out, "{question} ").ok()?;
        out.flush().ok()?;
        drop(out);
        let mut answer = String::new();
        match std::io::stdin().lock().read_line(&mut answer) {
            Ok(0) | Err(_) => {
                let _ = say("");
                None
            }
            Ok(_) => Some(answer.trim().to_owned()),
        }
    }
}

/// One line to stdout. Unlike `println!`, a stdout that was closed (`tolem wallet history |
/// head -1`) is an error to handle, not a panic.
fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Prints lines; a reader that went away ends the output quietly and successfully, as other
/// command-line tools do: what it did not read, it did not want.
fn print_lines(lines: Vec<String>) -> anyhow::Result<()> {
    for line in lines {
        match say(&line) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(anyhow::anyhow!("cannot write to the standard output: {e}")),
        }
    }
    Ok(())
}

/// A payment whose outcome the MPP does not know yet (its notifyPayment not answered within the
/// MPP's wait): neither paid nor refused, so a script must not take it for either. The wallet
/// exits with [`StillPending::EXIT_STATUS`].
#[derive(Debug)]
pub struct StillPending;

impl StillPending {
    pub const EXIT_STATUS: u8 = 3;
}

impl std::fmt::Display for StillPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the payment is still being processed")
    }
}

impl std::error::Error for StillPending {}

pub async fn run(args: WalletArgs) -> anyhow::Result<()> {
    let locale = match args.locale {
        Language::Ru => Locale::Ru,
        Language::Kk => Locale::Kk,
    };
    // The wallet's errors are already sentences for the customer, in their language.
    let explain = |e: WalletError| anyhow::anyhow!(e.message(locale));
    let wallet = Wallet::new(&args.mpp, &args.customer, locale).map_err(explain)?;
    match args.command {
        WalletCommand::Pay(pay) => {
            let mut terminal = Terminal;
            let token = match (&pay.token, &pay.image) {
                (Some(token), _) => token.clone(),
                (None, Some(path)) => {
                    let token = qr::read_file(path).map_err(explain)?;
                    terminal.say(&format!("QR: {token}"));
                    token
                }
                (None, None) => {
                    let question = text::ask_qr(locale);
                    let no_answer = WalletError::NoAnswer {
                        question: question.clone(),
                        flag: "TOKEN / --image FILE",
                    };
                    terminal
                        .ask(&question)
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| explain(no_answer))?
                }
            };
            let answers = PayAnswers {
                amount: pay.amount,
                parameters: pay.params.into_iter().collect::<BTreeMap<_, _>>(),
                decision: match (pay.yes, pay.back) {
                    (true, _) => Some(Decision::Pay),
                    (_, true) => Some(Decision::Back),
                    _ => None,
                },
            };
            let outcome = match wallet.pay(&mut terminal, &token, &answers).await {
                Ok(outcome) => outcome,
                // Sent, and not answered: as a payment still processing, never an error a
                // script may answer by paying again.
                Err(e @ WalletError::ConfirmUnanswered { .. }) => {
                    eprintln!("{}", e.message(locale));
                    return Err(StillPending.into());
                }
                Err(e) => return Err(explain(e)),
            };
            if let PayOutcome::Finished(view) = outcome {
                // Already explained on screen; the exit status tells scripts.
                match view.status.as_str() {
                    "rejected" => anyhow::bail!("{}", view.ps_code.unwrap_or(view.status)),
                    "pending" => return Err(StillPending.into()),
                    _ => {}
                }
            }
        }
        WalletCommand::Balance => {
            let account = wallet.account().await.map_err(explain)?;
            print_lines(account::balance_lines(locale, &account))?;
        }
        WalletCommand::History => {
            let account = wallet.account().await.map_err(explain)?;
            print_lines(account::history_lines(locale, &account, &args.time_zone))?;
        }
        WalletCommand::Notifications => {
            let account = wallet.account().await.map_err(explain)?;
            print_lines(account::notification_lines(locale, &account))?;
        }
    }
    Ok(())
}
