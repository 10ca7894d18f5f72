//! `[registers]`: how registers are made, when and how they are e-mailed, and who may download
//! them from the cabinet.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::civil::{Date, Time};
use serde::Deserialize;

pub use crate::domain::commission::RefundCommission;

/// Excel's own limit is 1,048,576 rows a sheet; a sheet also holds two header rows and, on the
/// last sheet, a blank row and two totals rows.
pub const SHEET_ROWS_LIMIT: u32 = 1_048_576 - 5;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP: a relay on this host or in the private network. The default, so that a
    /// configuration written before TLS keeps working; a relay across any network needs one of
    /// the others.
    #[default]
    None,
    /// Plain SMTP upgraded by STARTTLS before anything else is said (usually port 587 or 25); a
    /// server that does not offer STARTTLS is a failure, never a fall back to plain text.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
}

/// A secret setting: read as a string, never shown by `Debug` (a configuration printed in a log
/// or a panic message must not carry it).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"…\"" })
    }
}

/// Settings of registers and their delivery (`[registers]` in the configuration).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistersConfig {
    /// The SMTP server registers are handed to. Empty turns e-mail delivery off; the cabinet and
    /// the CLI still make registers.
    pub smtp_host: String,
    pub smtp_port: u16,
    /// Plain, STARTTLS or implicit TLS; over TLS the server's certificate must be for
    /// `smtp_host` and signed by a system root or the operator's CA (`outgoing.ca_file`).
    pub smtp_tls: SmtpTls,
    /// The login (AUTH PLAIN or LOGIN, whichever the server offers first); empty: no login.
    /// Only over TLS: a password is never sent in clear.
    pub smtp_username: String,
    pub smtp_password: Secret,
    /// The name this server gives in EHLO.
    pub smtp_hello_name: String,
    /// Timeout of one SMTP conversation.
    pub smtp_timeout_ms: u64,
    /// The sender of register e-mails, e.g. `Tolem <registers@ps.example>`.
    pub from: String,
    /// A register file larger than this is not attached; the e-mail links to the cabinet.
    pub email_attachment_bytes_max: u64,
    /// The address at which MPPs reach the register cabinet (the admin surface's listener, or a
    /// TLS listener of its own), e.g. `https://cabinet.ps.example:8443`: the e-mail of a register
    /// too large to attach links there. Empty: such an e-mail tells the MPP to ask the PS.
    pub cabinet_url: String,
    /// Local time (the operator's zone) from which a working day's registers are sent.
    pub send_at: Time,
    pub refund_commission: RefundCommission,
    /// Days off beyond the shipped calendar (government transfers, Kurban Ait of later years).
    pub extra_holidays: Vec<Date>,
    /// Weekend days the government made working days (transfers).
    pub extra_working_days: Vec<Date>,
    /// After downtime, registers due on at most this many past working days are still sent.
    pub catch_up_working_days: u32,
    /// How often the scheduler looks at the clock and the queue.
    pub poll_interval_ms: u64,
    /// First retry delay of a failed e-mail; it doubles up to `retry_delay_ms_max`.
    pub retry_delay_ms_initial: u64,
    pub retry_delay_ms_max: u64,
    /// An e-mail still unsent this long after it was queued is flagged for the operator.
    pub alert_after_s: u64,
    /// A claimed e-mail whose outcome is not recorded within this (the PS crashed) is claimed
    /// again. Must exceed `smtp_timeout_ms` plus the time to make a large register.
    pub lease_ms: u64,
    /// E-mails claimed per transaction at most. One lease covers them all while they are made
    /// and sent one after another, so more than one risks a lease running out mid-batch.
    pub claim_batch_max: usize,
    /// Operations read from the database per page while a register is made.
    pub page_rows_max: usize,
    /// Operations per sheet; more go on to a further sheet.
    pub sheet_rows_max: u32,
    /// Registers made at the same time for cabinet downloads at most.
    pub cabinet_concurrency_max: usize,
    /// Cabinet bearer tokens by MPP caller name: `{ demobank = "…" }`.
    pub cabinet_tokens: BTreeMap<String, String>,
    /// Where registers are written while they are made (the system's temporary folder when
    /// unset). It should be on disk, not in memory, for large registers.
    pub temp_dir: Option<PathBuf>,
}

impl Default for RegistersConfig {
    fn default() -> RegistersConfig {
        RegistersConfig {
            smtp_host: String::new(),
            smtp_port: 25,
            smtp_tls: SmtpTls::None,
            smtp_username: String::new(),
            smtp_password: Secret::default(),
            smtp_hello_name: "localhost".to_owned(),
            smtp_timeout_ms: 30_000,
            from: String::new(),
            email_attachment_bytes_max: 20 * 1024 * 1024,
            cabinet_url: String::new(),
            send_at: Time::constant(9, 0, 0, 0),
            refund_commission: RefundCommission::None,
            extra_holidays: Vec::new(),
            extra_working_days: Vec::new(),
            catch_up_working_days: 10,
            poll_interval_ms: 5_000,
            retry_delay_ms_initial: 60_000,
            retry_delay_ms_max: 3_600_000,
            alert_after_s: 14_400,
            lease_ms: 900_000,
            claim_batch_max: 1,
            page_rows_max: 2_000,
            sheet_rows_max: SHEET_ROWS_LIMIT,
            cabinet_concurrency_max: 2,
            cabinet_tokens: BTreeMap::new(),
            temp_dir: None,
        }
    }
}

/// The shortest cabinet token accepted: long enough not to be guessed.
const CABINET_TOKEN_LEN_MIN: usize = 16;

impl RegistersConfig {
    /// Whether registers are e-mailed.
    pub fn email_enabled(&self) -> bool {
        !self.smtp_host.is_empty()
    }

    /// Whether registers can be written in `temp_dir` (a start and `tolem serve --check` ask):
    /// a folder that is not there, or that this user may not write, would fail every register
    /// the cabinet, the console and the e-mails ask for. The system's temporary folder is
    /// taken as it is.
    pub fn check_temp_dir(&self) -> Result<(), String> {
        let Some(dir) = &self.temp_dir else {
            return Ok(());
        };
        tempfile::tempfile_in(dir).map(drop).map_err(|e| {
            format!(
                "registers.temp_dir: cannot write a register in {}: {e}; create the folder, or \
                 give one this user may write",
                dir.display()
            )
        })
    }

    /// What a start (and `tolem serve --check`) warns of: registers sent in clear to a relay on
    /// another machine carry customers' ids and amounts across the network readable.
    pub fn warnings(&self) -> Vec<String> {
        let host = self.smtp_host.trim_start_matches('[').trim_end_matches(']');
        let this_machine = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if self.email_enabled() && self.smtp_tls == SmtpTls::None && !this_machine {
            vec![format!(
                "registers.smtp_tls is \"none\" while smtp_host {} is not this machine: the \
                 registers (customers' ids and amounts) cross the network in clear; set smtp_tls \
                 = \"starttls\" or \"implicit\"",
                self.smtp_host
            )]
        } else {
            Vec::new()
        }
    }

    /// Checks the settings; the error starts with the offending key (below `registers.`).
    pub fn validate(&self) -> Result<(), String> {
        if self.email_enabled() && self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err("from: must be an e-mail address when smtp_host is set".to_owned());
        }
        if self.email_enabled() && self.smtp_port == 0 {
            return Err("smtp_port: must be a port (25, 465, 587, …), not 0".to_owned());
        }
        // The EHLO line's name: one word, nothing that would end or break the line.
        let hello = &self.smtp_hello_name;
        if self.email_enabled()
            && (hello.is_empty() || hello.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(format!(
                "smtp_hello_name: {hello:?} must be this machine's name, one word"
            ));
        }
        if self.email_enabled()
            && self.smtp_tls != SmtpTls::None
            && rustls::pki_types::ServerName::try_from(self.smtp_host.as_str()).is_err()
        {
            return Err(
                "smtp_host: must be a host name or an IP address (its certificate is checked against it)"
                    .to_owned(),
            );
        }
        if self.smtp_username.is_empty() != self.smtp_password.0.is_empty() {
            return Err(
                "smtp_username, smtp_password: give both or neither (the password is usually \
                 in the environment, TOLEM_REGISTERS__SMTP_PASSWORD: load the environment file \
                 first)"
                    .to_owned(),
            );
        }
        if !(self.cabinet_url.is_empty()
            || self.cabinet_url.starts_with("http://")
            || self.cabinet_url.starts_with("https://"))
        {
            return Err("cabinet_url: must start with http:// or https://, or be empty".to_owned());
        }
        if !self.smtp_username.is_empty() && self.smtp_tls == SmtpTls::None {
            return Err(
                "smtp_username: a login needs smtp_tls = \"starttls\" or \"implicit\" (a password is never sent in clear)"
                    .to_owned(),
            );
        }
        for (key, value) in [
            ("smtp_timeout_ms", self.smtp_timeout_ms),
            ("poll_interval_ms", self.poll_interval_ms),
            ("claim_batch_max", self.claim_batch_max as u64),
            ("page_rows_max", self.page_rows_max as u64),
            (
                "cabinet_concurrency_max",
                self.cabinet_concurrency_max as u64,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key}: must be positive"));
            }
        }
        if self.retry_delay_ms_initial == 0 || self.retry_delay_ms_max < self.retry_delay_ms_initial
        {
            return Err(
                "retry_delay_ms_max: must be at least retry_delay_ms_initial, which must be positive"
                    .to_owned(),
            );
        }
        if self.lease_ms <= self.smtp_timeout_ms {
            return Err("lease_ms: must exceed smtp_timeout_ms".to_owned());
        }
        if self.sheet_rows_max == 0 || self.sheet_rows_max > SHEET_ROWS_LIMIT {
            return Err(format!("sheet_rows_max: must be 1..={SHEET_ROWS_LIMIT}"));
        }
        if self.catch_up_working_days == 0 {
            return Err("catch_up_working_days: must be positive".to_owned());
        }
        // One day both: which the calendar took would be a guess.
        if let Some(day) = self
            .extra_holidays
            .iter()
            .find(|d| self.extra_working_days.contains(d))
        {
            return Err(format!(
                "extra_working_days: {day} is in extra_holidays too; a day is one or the other"
            ));
        }
        for (mpp, token) in &self.cabinet_tokens {
            if token.chars().count() < CABINET_TOKEN_LEN_MIN {
                return Err(format!(
                    "cabinet_tokens.{mpp}: must be at least {CABINET_TOKEN_LEN_MIN} characters"
                ));
            }
            // The token alone says which MPP signs in: shared, one MPP would read the other's
            // registers.
            if let Some((other, _)) = self
                .cabinet_tokens
                .iter()
                .find(|(other, t)| *other < mpp && *t == token)
            {
                return Err(format!(
                    "cabinet_tokens.{mpp}: the same token as cabinet_tokens.{other}; each MPP \
                     needs a token of its own, which says who signs in"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_dates_and_names_bad_keys() {
        let config: RegistersConfig = toml::from_str(
            "send_at = \"07:30\"\nextra_holidays = [\"2026-12-31\"]\nrefund_commission = \"reverse\"",
        )
        .expect("valid");
        assert_eq!(config.send_at, Time::constant(7, 30, 0, 0));
        assert_eq!(config.extra_holidays, vec![jiff::civil::date(2026, 12, 31)]);
        assert_eq!(config.refund_commission, RefundCommission::Reverse);
        config.validate().expect("valid");
        let no_sender = RegistersConfig {
            smtp_host: "127.0.0.1".to_owned(),
            ..RegistersConfig::default()
        };
        assert!(
            no_sender
                .validate()
                .expect_err("no from")
                .starts_with("from")
        );
        let short = RegistersConfig {
            cabinet_tokens: [("demobank".to_owned(), "short".to_owned())].into(),
            ..RegistersConfig::default()
        };
        assert!(
            short
                .validate()
                .expect_err("short token")
                .contains("cabinet_tokens.demobank")
        );
        let token = "a-long-enough-cabinet-token".to_owned();
        let shared = RegistersConfig {
            cabinet_tokens: [
                ("demobank".to_owned(), token.clone()),
                ("demowallet".to_owned(), token),
            ]
            .into(),
            ..RegistersConfig::default()
        };
        assert_eq!(
            shared.validate().expect_err("a shared token"),
            "cabinet_tokens.demowallet: the same token as cabinet_tokens.demobank; each MPP \
             needs a token of its own, which says who signs in"
        );
    }

    #[test]
    fn a_login_goes_only_over_tls_and_the_password_is_not_shown() {
        let config: RegistersConfig = toml::from_str(
            "smtp_host = \"mail.ps.example\"\nfrom = \"ps@ps.example\"\nsmtp_tls = \"starttls\"\n\
             smtp_username = \"ps\"\nsmtp_password = \"s3cret\"",
        )
        .expect("valid");
        config.validate().expect("valid");
        assert_eq!(config.smtp_tls, SmtpTls::Starttls);
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(RegistersConfig::default().smtp_tls, SmtpTls::None);
        let dir = tempfile::tempdir().expect("dir");
        let at = |path: std::path::PathBuf| RegistersConfig {
            temp_dir: Some(path),
            ..RegistersConfig::default()
        };
        assert_eq!(at(dir.path().to_owned()).check_temp_dir(), Ok(()));
        let missing = at(dir.path().join("missing")).check_temp_dir();
        assert!(
            missing
                .as_ref()
                .is_err_and(|e| e.starts_with("registers.temp_dir: cannot write a register in")),
            "{missing:?}"
        );
        assert_eq!(RegistersConfig::default().check_temp_dir(), Ok(()));
        let mail = |change: &dyn Fn(&mut RegistersConfig)| {
            let mut config = RegistersConfig {
                smtp_host: "127.0.0.1".to_owned(),
                from: "ps@ps.example".to_owned(),
                ..RegistersConfig::default()
            };
            change(&mut config);
            config.validate()
        };
        assert_eq!(mail(&|_| ()), Ok(()));
        assert!(mail(&|c| c.smtp_port = 0).is_err_and(|e| e.starts_with("smtp_port:")));
        for hello in ["", "bad name with spaces"] {
            assert!(
                mail(&|c| c.smtp_hello_name = hello.to_owned())
                    .is_err_and(|e| e.starts_with("smtp_hello_name:")),
                "{hello:?}"
            );
        }
        // Without a host, e-mail is off: its TLS mode asks for nothing.
        let off = RegistersConfig {
            smtp_tls: SmtpTls::Implicit,
            ..RegistersConfig::default()
        };
        assert_eq!(off.validate(), Ok(()));
        let relay = |host: &str, tls: SmtpTls| RegistersConfig {
            smtp_host: host.to_owned(),
            from: "ps@ps.example".to_owned(),
            smtp_tls: tls,
            ..RegistersConfig::default()
        };
        assert!(
            relay("mail.ps.example", SmtpTls::None).warnings()[0]
                .starts_with("registers.smtp_tls is \"none\" while smtp_host mail.ps.example")
        );
        for quiet in [
            relay("mail.ps.example", SmtpTls::Starttls),
            relay("127.0.0.1", SmtpTls::None),
            relay("localhost", SmtpTls::None),
            relay("::1", SmtpTls::None),
            RegistersConfig::default(),
        ] {
            assert!(quiet.warnings().is_empty(), "{}", quiet.smtp_host);
        }
        let in_clear = RegistersConfig {
            smtp_tls: SmtpTls::None,
            ..config.clone()
        };
        assert!(
            in_clear
                .validate()
                .expect_err("a password in clear")
                .starts_with("smtp_username")
        );
        let half = RegistersConfig {
            smtp_password: Secret::default(),
            ..config.clone()
        };
        assert!(half.validate().expect_err("half a login").contains("both"));
        let bad_host = RegistersConfig {
            smtp_host: "not a host".to_owned(),
            ..config
        };
        assert!(
            bad_host
                .validate()
                .expect_err("no name to check")
                .starts_with("smtp_host")
        );
        let unknown: Result<RegistersConfig, _> = toml::from_str("smtp_tls = \"ssl\"");
        assert!(unknown.is_err());
    }
}
