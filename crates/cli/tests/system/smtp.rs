//! A real SMTP server for tests (RFC 5321 over TCP, the commands a client needs): it keeps every
//! message it accepts and can refuse the next ones with a temporary failure. It can also speak
//! TLS — STARTTLS (RFC 3207) or from the first byte (implicit, RFC 8314) — and require a login
//! (AUTH PLAIN or LOGIN, RFC 4954), offered only once the connection is encrypted, as real servers
//! do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mail_parser::MimeHeaders;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA (headers and body), dot-unstuffed.
    pub data: Vec<u8>,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The user that logged in before sending it, if any.
    pub login: Option<String>,
}

impl Mail {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parsable message")
    }

    pub fn message_id(&self) -> String {
        self.parsed().message_id().expect("a Message-ID").to_owned()
    }

    /// The first attachment: (file name, bytes).
    pub fn attachment(&self) -> (String, Vec<u8>) {
        let message = self.parsed();
        let part = message.attachments().next().expect("an attachment");
        (
            part.attachment_name().expect("a file name").to_owned(),
            part.contents().to_vec(),
        )
    }
}

/// How the server protects its connections.
#[derive(Clone)]
pub enum SmtpTls {
    None,
    /// Offers STARTTLS after EHLO with this server configuration.
    Starttls(Arc<tokio_rustls::rustls::ServerConfig>),
    /// TLS from the first byte.
    Implicit(Arc<tokio_rustls::rustls::ServerConfig>),
}

/// A login the server requires before MAIL, and the mechanisms it offers (`"PLAIN LOGIN"`).
#[derive(Clone)]
pub struct SmtpLogin {
    pub user: String,
    pub password: String,
    pub mechanisms: &'static str,
}

#[derive(Default)]
struct Inner {
    mails: Mutex<Vec<Mail>>,
    refuse_next: AtomicUsize,
    refused: AtomicUsize,
    /// TLS handshakes that failed (the client did not trust the certificate, say).
    handshakes_failed: AtomicUsize,
    /// Logins refused (a wrong user or password).
    logins_refused: AtomicUsize,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    inner: Arc<Inner>,
}

/// What a session knows besides its stream.
#[derive(Clone)]
struct Setup {
    tls: SmtpTls,
    login: Option<SmtpLogin>,
    inner: Arc<Inner>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        SmtpServer::start_with(SmtpTls::None, None).await
    }

    /// A server protected by `tls`, requiring `login` when given.
    pub async fn start_with(tls: SmtpTls, login: Option<SmtpLogin>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let inner: Arc<Inner> = Arc::default();
        let setup = Setup {
            tls,
            login,
            inner: inner.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, setup.clone()));
            }
        });
        SmtpServer { port, inner }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.inner.mails.lock().expect("lock").clone()
    }

    /// The next `n` messages get `451` after DATA (a temporary failure: the client must retry).
    pub fn refuse_next(&self, n: usize) {
        self.inner.refuse_next.store(n, Ordering::SeqCst);
    }

    pub fn refused(&self) -> usize {
        self.inner.refused.load(Ordering::SeqCst)
    }

    pub fn handshakes_failed(&self) -> usize {
        self.inner.handshakes_failed.load(Ordering::SeqCst)
    }

    pub fn logins_refused(&self) -> usize {
        self.inner.logins_refused.load(Ordering::SeqCst)
    }
}

async fn connection(stream: TcpStream, setup: Setup) -> std::io::Result<()> {
    match &setup.tls {
        SmtpTls::Implicit(config) => {
            let Ok(tls) = TlsAcceptor::from(config.clone()).accept(stream).await else {
                setup.inner.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            };
            session(BufReader::new(tls), &setup, true, true).await?;
        }
        SmtpTls::Starttls(config) => {
            let mut plain = BufReader::new(stream);
            if session(&mut plain, &setup, false, true).await? == Ended::Starttls {
                // Nothing may follow STARTTLS before the handshake (RFC 3207), so the buffer is
                // empty and the bare stream goes on.
                let Ok(tls) = TlsAcceptor::from(config.clone())
                    .accept(plain.into_inner())
                    .await
                else {
                    setup.inner.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                };
                // A new session: the client greets again with EHLO, without a new banner.
                session(BufReader::new(tls), &setup, true, false).await?;
            }
        }
        SmtpTls::None => {
            session(BufReader::new(stream), &setup, false, true).await?;
        }
    }
    Ok(())
}

#[derive(PartialEq, Eq)]
enum Ended {
    Quit,
    Starttls,
}

/// One SMTP conversation on `conn` until QUIT, the end of the stream, or STARTTLS accepted.
async fn session<S>(mut conn: S, setup: &Setup, tls: bool, banner: bool) -> std::io::Result<Ended>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let inner = &setup.inner;
    if banner {
        conn.write_all(b"220 tolem-test ESMTP\r\n").await?;
    }
    let mut from = String::new();
    let mut to = Vec::new();
    let mut login: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(Ended::Quit);
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let needs_login = setup.login.is_some() && login.is_none();
        let reply: Vec<u8> = match verb.as_str() {
            "EHLO" => {
                let mut reply = String::from("250-tolem-test\r\n");
                if !tls && matches!(setup.tls, SmtpTls::Starttls(_)) {
                    reply.push_str("250-STARTTLS\r\n");
                }
                if let (true, Some(l)) = (tls, &setup.login) {
                    reply.push_str(&format!("250-AUTH {}\r\n", l.mechanisms));
                }
                reply.push_str("250 8BITMIME\r\n");
                reply.into_bytes()
            }
            "HELO" | "NOOP" => b"250 OK\r\n".to_vec(),
            "STARTTLS" if !tls && matches!(setup.tls, SmtpTls::Starttls(_)) => {
                conn.write_all(b"220 go ahead\r\n").await?;
                conn.flush().await?;
                return Ok(Ended::Starttls);
            }
            "AUTH" if tls && setup.login.is_some() => {
                match authenticate(&mut conn, setup, &command).await? {
                    Some(user) => {
                        login = Some(user);
                        b"235 2.7.0 Authentication successful\r\n".to_vec()
                    }
                    None => {
                        inner.logins_refused.fetch_add(1, Ordering::SeqCst);
                        b"535 5.7.8 Authentication credentials invalid\r\n".to_vec()
                    }
                }
            }
            "MAIL" if needs_login => b"530 5.7.0 Authentication required\r\n".to_vec(),
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n".to_vec()
            }
            "MAIL" => {
                from = command.clone();
                b"250 OK\r\n".to_vec()
            }
            "RCPT" => {
                to.push(command.clone());
                b"250 OK\r\n".to_vec()
            }
            "DATA" => {
                conn.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut conn).await?;
                let refuse = inner
                    .refuse_next
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refuse {
                    inner.refused.fetch_add(1, Ordering::SeqCst);
                    b"451 try again later\r\n".to_vec()
                } else {
                    let mail = Mail {
                        from: from.clone(),
                        to: std::mem::take(&mut to),
                        data,
                        tls,
                        login: login.clone(),
                    };
                    inner.mails.lock().expect("lock").push(mail);
                    b"250 OK queued\r\n".to_vec()
                }
            }
            "QUIT" => {
                conn.write_all(b"221 bye\r\n").await?;
                return Ok(Ended::Quit);
            }
            _ => b"502 not implemented\r\n".to_vec(),
        };
        conn.write_all(&reply).await?;
    }
}

/// AUTH PLAIN (with or without the initial response) or AUTH LOGIN; the user on success.
async fn authenticate<S>(
    conn: &mut S,
    setup: &Setup,
    command: &str,
) -> std::io::Result<Option<String>>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let Some(want) = &setup.login else {
        return Ok(None);
    };
    let mut words = command.split_whitespace().skip(1);
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    if !want.mechanisms.split(' ').any(|m| m == mechanism) {
        return Ok(None);
    }
    let initial = words.next().map(str::to_owned);
    let (user, password) = match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(response) => response,
                None => ask(conn, "").await?,
            };
            // authzid NUL authcid NUL password
            let decoded = base64_decode(&response).unwrap_or_default();
            let mut parts = decoded.split(|b| *b == 0).skip(1);
            let user = parts.next().unwrap_or_default().to_vec();
            let password = parts.next().unwrap_or_default().to_vec();
            (user, password)
        }
        "LOGIN" => {
            let user = match initial {
                Some(user) => user,
                None => ask(conn, "VXNlcm5hbWU6").await?, // "Username:"
            };
            let password = ask(conn, "UGFzc3dvcmQ6").await?; // "Password:"
            (
                base64_decode(&user).unwrap_or_default(),
                base64_decode(&password).unwrap_or_default(),
            )
        }
        _ => return Ok(None),
    };
    let ok = user == want.user.as_bytes() && password == want.password.as_bytes();
    Ok(ok.then(|| want.user.clone()))
}

/// Sends `334 <challenge>` and reads the client's line.
async fn ask<S>(conn: &mut S, challenge: &str) -> std::io::Result<String>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    conn.write_all(format!("334 {challenge}\r\n").as_bytes())
        .await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    Ok(line.trim_end().to_owned())
}

/// Standard base64 (RFC 4648, with padding), enough for SMTP AUTH.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut bits = 0u32;
    let mut count = 0;
    for byte in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|c| *c == byte)?;
        bits = (bits << 6) | u32::try_from(value).ok()?;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The message after DATA, up to the line with a single dot.
async fn read_data<S>(lines: &mut S) -> std::io::Result<Vec<u8>>
where
    S: AsyncBufRead + Unpin,
{
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(data);
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        let unstuffed = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
    }
}

#[test]
fn base64_reads_what_smtp_clients_send() {
    assert_eq!(
        base64_decode("VXNlcm5hbWU6").as_deref(),
        Some(&b"Username:"[..])
    );
    assert_eq!(
        base64_decode("AHBzAHMzY3JldA==").as_deref(),
        Some(&b"\0ps\0s3cret"[..])
    );
    assert_eq!(base64_decode("!!"), None);
}
