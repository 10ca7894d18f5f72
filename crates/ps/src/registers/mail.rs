//! E-mail of registers over SMTP: plain to a relay beside the PS, or over STARTTLS or implicit
//! TLS with an optional login (`RegistersConfig::smtp_tls`), trusting the roots of
//! [`crate::outgoing`].
//!
//! Every e-mail of one sending of a register carries the same `Message-ID`, made from the MPP, the
//! kind and the period (and the sending, for one the operator asked again): if a crash between the
//! relay's acceptance and the record of it makes the PS send a register again, the receiver can
//! tell it is the same e-mail.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::RegisterError;
use super::config::{RegistersConfig, SmtpTls};
use super::period::Period;
use super::sheet::Totals;
use crate::outgoing::{Failure, FailureKind, OutgoingTls};
use tolem_wire::Locale;

/// One register e-mail.
pub(crate) struct Letter {
    pub to: String,
    pub mpp: String,
    pub mpp_name: String,
    pub period: Period,
    pub totals: Totals,
    /// The register file (name, content type, bytes), or `None` when it is too large to mail and
    /// the e-mail points at the cabinet instead.
    pub attachment: Option<(String, &'static str, Vec<u8>)>,
    /// Where the MPP downloads the register from, when the PS publishes its cabinet to MPPs
    /// (`registers.cabinet_url`) and this MPP has a token for it.
    pub cabinet_link: Option<String>,
    /// Which sending of the register this is (1: the scheduled one).
    pub sending: u32,
}

pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The bound of one conversation's replies (`registers.smtp_timeout_ms`), to which the time
    /// to send the message at [`SEND_BYTES_PER_S_MIN`] is added: the transport's own timeout
    /// holds the connection's opening only, so a server that stops answering after it would
    /// hold the one sender for ever.
    timeout: std::time::Duration,
}

impl Mailer {
    pub(crate) fn new(
        config: &RegistersConfig,
        outgoing: &OutgoingTls,
    ) -> Result<Mailer, RegisterError> {
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| RegisterError::Send(format!("registers.from: {e}")))?;
        // `builder_dangerous` only means "no TLS unless asked": TLS is asked for just below.
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
                .port(config.smtp_port)
                .hello_name(ClientId::Domain(config.smtp_hello_name.clone()))
                .timeout(Some(config.smtp_timeout()));
        let tls = |host: &str| {
            outgoing
                .smtp(host)
                .map_err(|e| RegisterError::Send(e.to_string()))
        };
        builder = match config.smtp_tls {
            SmtpTls::None => builder.tls(Tls::None),
            // Required, not opportunistic: a server (or someone between) that does not offer
            // STARTTLS gets nothing in clear.
            SmtpTls::Starttls => builder.tls(Tls::Required(tls(&config.smtp_host)?)),
            SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls(&config.smtp_host)?)),
        };
        // The configuration refuses a login without TLS (`RegistersConfig::validate`).
        if !config.smtp_username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.smtp_username.clone(),
                config.smtp_password.0.clone(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            timeout: config.smtp_timeout(),
        })
    }

    /// The Message-ID of a register's e-mail: the same on every attempt of one sending; a sending
    /// the operator asked again has its own (`.2`, `.3`…), or the receiver would drop it as a
    /// copy of the first.
    pub(crate) fn message_id(&self, letter: &Letter) -> String {
        let again = if letter.sending > 1 {
            format!(".{}", letter.sending)
        } else {
            String::new()
        };
        format!(
            "<register.{}.{}.{}{again}@{}>",
            letter.mpp,
            letter.period.kind().as_str(),
            letter.period,
            self.from.email.domain()
        )
    }

    /// Hands the e-mail to the relay; returns its Message-ID once the relay has accepted it.
    pub(crate) async fn send(&self, letter: Letter) -> Result<String, RegisterError> {
        let to = letter
            .to
            .parse::<Mailbox>()
            .map_err(|e| RegisterError::Send(format!("register_email {}: {e}", letter.to)))?;
        let message_id = self.message_id(&letter);
        let text = SinglePart::plain(body(&letter));
        let parts = match letter.attachment {
            Some((name, content_type, bytes)) => {
                let content_type = ContentType::parse(content_type)
                    .map_err(|e| RegisterError::Send(e.to_string()))?;
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new(name).body(bytes, content_type))
            }
            None => MultiPart::mixed().singlepart(text),
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!(
                "Реестр операций / Операциялар тізілімі: {}, {}",
                letter.mpp_name,
                letter.period.human()
            ))
            .message_id(Some(message_id.clone()))
            .multipart(parts)
            .map_err(|e| RegisterError::Send(e.to_string()))?;
        let bound = conversation_bound(self.timeout, message.formatted().len());
        tokio::time::timeout(bound, self.transport.send(message))
            .await
            .map_err(|_| {
                RegisterError::Mail(Failure::new(
                    FailureKind::Timeout,
                    format!(
                        "timeout: the SMTP server did not finish the conversation within {} ms",
                        bound.as_millis()
                    ),
                ))
            })?
            .map_err(|e| RegisterError::Mail(smtp_failure(&e)))?;
        Ok(message_id)
    }
}

/// Why the SMTP server did not take the e-mail. A server that does not offer STARTTLS when it
/// is required is a TLS failure (it may be someone in between removing the offer); lettre says so
/// only in its message.
/// The slowest sending a register e-mail is given time for: 100 kB/s, so that 27 MB (a 20 MiB
/// attachment, encoded) has four and a half minutes, within `registers.lease_ms`'s default.
pub(crate) const SEND_BYTES_PER_S_MIN: u64 = 100_000;

/// How long one conversation may take: `replies` (`smtp_timeout_ms`) for the server's answers,
/// and the message's `bytes` at [`SEND_BYTES_PER_S_MIN`].
fn conversation_bound(replies: std::time::Duration, bytes: usize) -> std::time::Duration {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    replies.saturating_add(std::time::Duration::from_millis(
        bytes.saturating_mul(1_000) / SEND_BYTES_PER_S_MIN,
    ))
}

fn smtp_failure(error: &lettre::transport::smtp::Error) -> Failure {
    let text = error.to_string();
    if error.is_client() && text.contains("STARTTLS is not supported") {
        return Failure::new(FailureKind::Tls, "TLS: the server does not offer STARTTLS");
    }
    Failure::of_smtp(error)
}

fn body(letter: &Letter) -> String {
    let (p, r) = (letter.totals.payments, letter.totals.refunds);
    let (what_ru, what_kk) = match letter.period {
        Period::Day(_) => (
            "Ежедневный реестр операций за",
            "Күнделікті операциялар тізілімі:",
        ),
        Period::Month(_) => (
            "Ежемесячный реестр операций за",
            "Айлық операциялар тізілімі:",
        ),
    };
    let mut text = format!(
        "{what_ru} {period}.\nОплаты: {pc}, сумма {pa}, комиссия {pm}.\nВозвраты: {rc}, сумма {ra}, возвращено комиссии {rm}.\n\n\
         {what_kk} {period}.\nТөлемдер: {pc}, сомасы {pa}, комиссия {pm}.\nҚайтарулар: {rc}, сомасы {ra}, қайтарылған комиссия {rm}.\n",
        period = letter.period.human(),
        pc = p.count,
        pa = p.amount.human(Locale::Ru),
        pm = p.commission.human(Locale::Ru),
        rc = r.count,
        ra = r.amount.human(Locale::Ru),
        rm = r.commission.human(Locale::Ru),
    );
    match (&letter.attachment, &letter.cabinet_link) {
        (Some(_), _) => {}
        (None, Some(link)) => text.push_str(&format!(
            "\nРеестр слишком велик для письма; скачайте его в кабинете (вход по токену \
             кабинета):\nТізілім хатқа сыймайды; оны кабинеттен жүктеп алыңыз (кабинет \
             токенімен кіру):\n{link}\n"
        )),
        (None, None) => text.push_str(
            "\nРеестр слишком велик для письма; запросите его у платёжной системы.\n\
             Тізілім хатқа сыймайды; оны төлем жүйесінен сұратыңыз.\n",
        ),
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_conversation_has_its_replies_time_and_the_message_s_at_the_slowest_rate() {
        let replies = Duration::from_secs(30);
        assert_eq!(conversation_bound(replies, 0), replies);
        // The largest attachment, encoded: four and a half minutes more.
        assert_eq!(
            conversation_bound(replies, 27_000_000),
            Duration::from_secs(30 + 270)
        );
        assert_eq!(conversation_bound(Duration::MAX, usize::MAX), Duration::MAX);
    }
}
