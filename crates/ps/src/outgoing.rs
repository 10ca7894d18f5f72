//! TLS of the PS's own outgoing calls (DECISIONS 41) — refund delivery to the MPPs, Custom
//! services' amount callbacks, SMTP — and the one place that says why such a call failed.
//!
//! The trusted roots are loaded once at start: the system's, as `rustls-native-certs` finds them
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else the distribution's bundle), plus the operator's CA
//! certificates from `outgoing.ca_file`. Every outgoing client is built from that one set, so a
//! refund, a callback and an e-mail trust the same servers. A machine without system roots still
//! starts: plain `http://` MPPs inside the IPSec tunnel need none, and an `https://` call then fails
//! with an unknown issuer, recorded as the delivery's last error.
//!
//! Used by `App::start` (the callback client), `refund_dispatch` and `registers::mail`.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::OutgoingConfig;
use crate::config::pem::pem_error;

/// Largest operator CA file read; a CA bundle is a few hundred kilobytes at most.
const CA_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The roots every outgoing TLS connection trusts, and the client certificate HTTPS calls
/// present when their server asks for one.
#[derive(Clone)]
pub struct OutgoingTls {
    roots: Arc<[CertificateDer<'static>]>,
    /// `outgoing.client_certificate` and `client_key` in one PEM, as reqwest takes them.
    identity_pem: Option<Arc<[u8]>>,
    /// The first certificate of `outgoing.client_certificate`: its dates are watched.
    client_leaf: Option<CertificateDer<'static>>,
}

/// Why the outgoing TLS setup cannot be made: a start-up error naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum OutgoingError {
    #[error("outgoing.ca_file {}: {why}", path.display())]
    CaFile { path: PathBuf, why: String },
    /// `outgoing.client_certificate` or `client_key` (`setting`) cannot be used.
    #[error("outgoing.{setting} {}: {why}", path.display())]
    Identity {
        setting: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("cannot set up outgoing TLS: {0}")]
    Client(String),
}

impl OutgoingError {
    /// What is wrong, without the setting's name (the database URL's `sslrootcert` reads CA files
    /// the same way).
    pub(crate) fn why(&self) -> String {
        match self {
            OutgoingError::CaFile { why, .. } | OutgoingError::Identity { why, .. } => why.clone(),
            OutgoingError::Client(why) => why.clone(),
        }
    }
}

impl OutgoingTls {
    /// The system's roots plus the operator's CA file; a CA file that cannot be read, holds no
    /// certificate or holds one that cannot be a trust anchor stops the start.
    pub fn load(config: &OutgoingConfig) -> Result<OutgoingTls, OutgoingError> {
        let mut roots = system_roots();
        let system = roots.len();
        let operator = match &config.ca_file {
            Some(path) => operator_roots(path)?,
            None => Vec::new(),
        };
        tracing::info!(
            system,
            operator = operator.len(),
            "outgoing TLS: trusted roots loaded"
        );
        if system == 0 && operator.is_empty() {
            tracing::warn!(
                "outgoing TLS: no CA certificate in the system and no outgoing.ca_file; \
                 https:// refund URLs, callbacks and SMTP over TLS will fail"
            );
        }
        roots.extend(operator);
        let (identity_pem, client_leaf) = match (&config.client_certificate, &config.client_key) {
            (None, None) => (None, None),
            (Some(certificate), Some(key)) => {
                let (pem, leaf) = client_identity(certificate, key)?;
                (Some(pem.into()), Some(leaf))
            }
            (certificate, _) => {
                let (setting, missing) = if certificate.is_some() {
                    ("client_certificate", "client_key")
                } else {
                    ("client_key", "client_certificate")
                };
                let path = config
                    .client_certificate
                    .clone()
                    .or_else(|| config.client_key.clone())
                    .unwrap_or_default();
                return Err(OutgoingError::Identity {
                    setting,
                    path,
                    why: format!("needs outgoing.{missing} beside it"),
                });
            }
        };
        Ok(OutgoingTls {
            roots: roots.into(),
            identity_pem,
            client_leaf,
        })
    }

    /// When the PS's own client certificate stops being valid (Unix seconds), if it has one.
    pub fn client_certificate_expires_at(&self) -> Option<i64> {
        self.client_leaf
            .as_ref()
            .and_then(crate::connections::tls::not_after)
    }

    /// What is wrong with the PS's client certificate now: its dates (expired, not valid yet,
    /// ending within two weeks), as a listener's certificate is warned of, and a use that is not
    /// a client's.
    pub fn warnings(&self) -> Vec<String> {
        let Some(leaf) = self.client_leaf.as_ref() else {
            return Vec::new();
        };
        let dates =
            crate::connections::tls::validity_warning(leaf, crate::connections::tls::unix_now());
        dates
            .into_iter()
            .chain(not_a_client(leaf))
            .map(|warning| format!("outgoing.client_certificate: {warning}"))
            .collect()
    }

    /// Roots given outright, for tests of this module.
    #[cfg(test)]
    fn of(roots: Vec<CertificateDer<'static>>) -> OutgoingTls {
        OutgoingTls {
            roots: roots.into(),
            identity_pem: None,
            client_leaf: None,
        }
    }

    /// Builds an HTTP client from `builder` (its timeouts and redirect policy) that speaks TLS
    /// trusting exactly these roots.
    pub fn http_client(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::Client, OutgoingError> {
        let certs = self
            .roots
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OutgoingError::Client(e.to_string()))?;
        // Straight to the peer, never through a proxy the environment names (`http_proxy`,
        // `HTTPS_PROXY`): a refund would leave the tunnel, and the proxy's answer would be
        // taken for the MPP's.
        let mut builder = builder.tls_certs_only(certs).no_proxy();
        if let Some(pem) = &self.identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| OutgoingError::Client(e.to_string()))?;
            builder = builder.identity(identity);
        }
        builder
            .build()
            .map_err(|e| OutgoingError::Client(e.to_string()))
    }

    /// TLS parameters for an SMTP server named `domain` (a name or an address its certificate
    /// must carry), trusting exactly these roots.
    pub fn smtp(&self, domain: &str) -> Result<TlsParameters, OutgoingError> {
        let mut builder =
            TlsParameters::builder(domain.to_owned()).certificate_store(CertificateStore::None);
        for der in self.roots.iter() {
            let cert = Certificate::from_der(der.to_vec())
                .map_err(|e| OutgoingError::Client(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build_rustls()
            .map_err(|e| OutgoingError::Client(e.to_string()))
    }
}

/// The system's roots, each one checked to be a usable trust anchor (a broken certificate in the
/// system store is passed over, as browsers do) and each once (the bundle and the hashed folder
/// hold the same certificates). Read once per process: reading and checking them takes tens of
/// milliseconds, and a process that starts the PS more than once (the tests, the sandbox) gains
/// nothing from reading them again, since a change of the system's roots is taken at a restart
/// anyway.
pub(crate) fn system_roots() -> Vec<CertificateDer<'static>> {
    static SYSTEM_ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    SYSTEM_ROOTS.get_or_init(read_system_roots).clone()
}

fn read_system_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "outgoing TLS: a system CA certificate cannot be read");
    }
    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    for cert in found.certs {
        if anchor(&cert).is_ok() && !roots.contains(&cert) {
            roots.push(cert);
        }
    }
    roots
}

/// The operator's CA certificates (PEM); every one must be usable, since the operator named them.
pub(crate) fn operator_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, OutgoingError> {
    let bad = |why: String| OutgoingError::CaFile {
        path: path.to_owned(),
        why,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| bad(format!("cannot read it: {e}")))?
        .len();
    if size > CA_FILE_BYTES_MAX {
        return Err(bad(format!(
            "larger than {CA_FILE_BYTES_MAX} bytes: not a CA file"
        )));
    }
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {}", pem_error(&e))))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    for (i, cert) in certs.iter().enumerate() {
        anchor(cert).map_err(|e| bad(format!("certificate {}: {e}", i + 1)))?;
    }
    Ok(certs)
}

/// The PS's client certificate chain and its key in one PEM, each file checked: certificates
/// first, then a private key that rustls can read (PKCS#8, PKCS#1 or SEC1).
fn client_identity(
    certificate: &Path,
    key: &Path,
) -> Result<(Vec<u8>, CertificateDer<'static>), OutgoingError> {
    let bad = |setting: &'static str, path: &Path, why: String| OutgoingError::Identity {
        setting,
        path: path.to_owned(),
        why,
    };
    let read = |setting: &'static str, path: &Path| {
        let size = std::fs::metadata(path)
            .map_err(|e| bad(setting, path, format!("cannot read it: {e}")))?
            .len();
        if size > CA_FILE_BYTES_MAX {
            return Err(bad(setting, path, "too large for a PEM file".to_owned()));
        }
        std::fs::read(path).map_err(|e| bad(setting, path, format!("cannot read it: {e}")))
    };
    let chain = read("client_certificate", certificate)?;
    let certs = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(
                "client_certificate",
                certificate,
                format!("not PEM: {}", pem_error(&e)),
            )
        })?;
    if certs.is_empty() {
        return Err(bad(
            "client_certificate",
            certificate,
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    let leaf = certs[0].clone().into_owned();
    let key_pem = read("client_key", key)?;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad("client_key", key, crate::config::pem::no_key(&key_pem, &e)))?;
    let mut pem = chain;
    pem.push(b'\n');
    pem.extend_from_slice(&key_pem);
    // reqwest reads the same PEM again when each client is built: a client is built once here
    // (which also finds a key that is not the certificate's), so that a start names the files
    // rather than a client that cannot be built.
    reqwest::Identity::from_pem(&pem)
        .and_then(|identity| reqwest::Client::builder().identity(identity).build())
        .map_err(|e| {
            let mut causes = vec![e.to_string()];
            let mut source = e.source();
            while let Some(cause) = source {
                causes.push(cause.to_string());
                source = cause.source();
            }
            bad(
                "client_key",
                key,
                format!(
                    "not usable with outgoing.client_certificate: {}",
                    causes.join(": ")
                ),
            )
        })?;
    Ok((pem, leaf))
}

/// Whether rustls can use `cert` as a trust anchor.
fn anchor(cert: &CertificateDer<'static>) -> Result<(), rustls::Error> {
    rustls::RootCertStore::empty().add(cert.clone())
}

/// What kind of failure an outgoing attempt met: the label of the failure counters and the first
/// word of a delivery's `last_error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The TLS handshake failed: an untrusted or wrong certificate, or TLS spoken to a server
    /// that does not speak it. Needs a fix of the setup (trust, certificate), not of the network.
    Tls,
    /// No connection: refused, unreachable, the name not resolved.
    Connect,
    /// No answer within the timeout.
    Timeout,
    /// The connection broke or the answer was not the protocol's.
    Protocol,
    /// The MPP answered an HTTP status other than 2xx.
    Http,
    /// The MPP answered 2xx but not a final result (or an unreadable or oversized one).
    Answer,
    /// The SMTP server refused (a 4xx or 5xx reply).
    Smtp,
    /// Anything else: the PS's own data or setup (an MPP not configured, a register not made).
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 8] = [
        FailureKind::Tls,
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Protocol,
        FailureKind::Http,
        FailureKind::Answer,
        FailureKind::Smtp,
        FailureKind::Other,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Tls => "tls",
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol => "protocol",
            FailureKind::Http => "http",
            FailureKind::Answer => "answer",
            FailureKind::Smtp => "smtp",
            FailureKind::Other => "other",
        }
    }

    fn index(self) -> usize {
        FailureKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or(FailureKind::ALL.len() - 1)
    }
}

/// One failed outgoing attempt: its kind and the sentence kept as the delivery's `last_error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub text: String,
}

/// Reads an answer's body, refusing one larger than `max` bytes (an MPP's `/refund`, a Custom
/// provider's amount): a peer that sends without end holds no memory.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| Failure::of_http(&e))? {
        if body.len() + chunk.len() > max {
            return Err(Failure::new(
                FailureKind::Answer,
                format!("an answer larger than {max} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Longest `last_error` kept.
const FAILURE_CHARS_MAX: usize = 300;

/// `text` (a server's reply) cut after `AUTH` and its mechanism: a server that echoes the
/// command it refuses (`535 … failed for AUTH PLAIN AHVzZXIAcGFzcw==`) would put the login, in
/// base64, in the kept error, the log and the console.
fn without_credentials(text: &str) -> String {
    let Some(at) = text.to_ascii_uppercase().find("AUTH ") else {
        return text.to_owned();
    };
    let rest = &text[at + "AUTH ".len()..];
    let mechanism = rest.split_whitespace().next().unwrap_or_default();
    if rest.trim_start().len() <= mechanism.len() {
        return text.to_owned();
    }
    format!("{}AUTH {mechanism} …", &text[..at])
}

impl Failure {
    /// The text kept as it reads, whoever wrote its words (an MPP's answer, an SMTP server's
    /// reply, a certificate's names): escaped and cut ([`crate::domain::text::kept`]).
    pub fn new(kind: FailureKind, text: impl Into<String>) -> Failure {
        let text: String = text.into();
        Failure {
            kind,
            text: crate::domain::text::kept(&text, FAILURE_CHARS_MAX),
        }
    }

    /// A failure of the HTTP client (sending, or reading the answer).
    pub fn of_http(error: &reqwest::Error) -> Failure {
        Failure::of_transport(error, error.is_timeout(), error.is_connect())
    }

    /// A failure of the SMTP client: a refusal is the server's word (kept without what a server
    /// may echo of the login), the rest is transport.
    pub fn of_smtp(error: &lettre::transport::smtp::Error) -> Failure {
        if error.is_transient() || error.is_permanent() {
            let said = without_credentials(&error.to_string());
            return Failure::new(FailureKind::Smtp, format!("SMTP: {said}"));
        }
        // lettre's failure to connect (a name that does not resolve, a refused connection) is
        // of a kind it does not expose; its text says it. Without this, a name that does not
        // resolve would be `protocol` here where a refund's is `connect`.
        let connect = error.to_string().starts_with("Connection error");
        Failure::of_transport(error, error.is_timeout(), connect)
    }

    /// Sorts a transport failure by walking its causes: a rustls error anywhere is TLS (also
    /// wrapped, as rustls hands handshake failures to the I/O layer as
    /// `io::Error(InvalidData, rustls::Error)`); then the client's own word on a timeout or a
    /// failed connection, or an I/O error's kind; the rest is a protocol failure. The text is
    /// the most specific cause: the rustls error, else the innermost one.
    pub fn of_transport(
        error: &(dyn StdError + 'static),
        timed_out: bool,
        connect: bool,
    ) -> Failure {
        let mut innermost = error.to_string();
        let mut io_kind = None;
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(tls) = find_rustls(e) {
                return Failure::new(FailureKind::Tls, format!("TLS: {tls}"));
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                io_kind.get_or_insert(io.kind());
            }
            innermost = e.to_string();
            cause = e.source();
        }
        use std::io::ErrorKind as Io;
        let kind = match io_kind {
            _ if timed_out => FailureKind::Timeout,
            Some(Io::TimedOut) => FailureKind::Timeout,
            Some(
                Io::ConnectionRefused
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                | Io::AddrNotAvailable,
            ) => FailureKind::Connect,
            _ if connect => FailureKind::Connect,
            _ => FailureKind::Protocol,
        };
        let label = match kind {
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            _ => "protocol",
        };
        Failure::new(kind, format!("{label}: {innermost}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The rustls error in `e`, if `e` is one or an I/O error carrying one.
fn find_rustls<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let io = e.downcast_ref::<std::io::Error>()?;
    find_rustls(io.get_ref()?)
}

/// Failed attempts by kind, for `/admin/v1/metrics`.
#[derive(Default)]
pub struct FailureCounts([AtomicU64; FailureKind::ALL.len()]);

impl FailureCounts {
    pub fn add(&self, kind: FailureKind) {
        self.0[kind.index()].fetch_add(1, Relaxed);
    }

    pub fn get(&self, kind: FailureKind) -> u64 {
        self.0[kind.index()].load(Relaxed)
    }

    /// The counter `name` in the Prometheus text format, one line per kind in `kinds`.
    pub fn prometheus(&self, name: &str, kinds: &[FailureKind]) -> String {
        let mut text = format!("# TYPE {name} counter\n");
        for kind in kinds {
            text.push_str(&format!(
                "{name}{{kind=\"{}\"}} {}\n",
                kind.as_str(),
                self.get(*kind)
            ));
        }
        text
    }
}

/// Why servers will refuse `leaf` as a client's certificate, if they will: an extended key
/// usage without `clientAuth` (a server's certificate used again), or an X.509 v1 certificate,
/// which has no extensions at all.
fn not_a_client(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    if cert.version() == x509_parser::x509::X509Version::V1 {
        return Some(
            "an X.509 v1 certificate (as `openssl x509 -req` makes without -extfile): servers \
             that check with rustls or webpki, and many others, refuse it; make it again with \
             extendedKeyUsage = clientAuth"
                .to_owned(),
        );
    }
    match cert.extended_key_usage() {
        Ok(Some(usage)) if !usage.value.client_auth && !usage.value.any => Some(
            "its extended key usage has no clientAuth (a server's certificate?): servers that \
             ask for a client certificate refuse it (UnsupportedCertificate); make one for \
             clientAuth"
                .to_owned(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_echo_of_the_login_is_not_kept() {
        assert_eq!(
            without_credentials("535 5.7.8 failed for AUTH PLAIN AHVzZXIAcGFzcw=="),
            "535 5.7.8 failed for AUTH PLAIN …"
        );
        assert_eq!(
            without_credentials("504 unknown AUTH LOGIN"),
            "504 unknown AUTH LOGIN"
        );
        assert_eq!(without_credentials("550 mailbox full"), "550 mailbox full");
    }

    fn io(
        kind: std::io::ErrorKind,
        inner: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> std::io::Error {
        std::io::Error::new(kind, inner)
    }

    #[test]
    fn a_rustls_error_anywhere_is_tls_and_says_why() {
        let handshake = io(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let failure = Failure::of_transport(&handshake, false, true);
        assert_eq!(failure.kind, FailureKind::Tls);
        assert_eq!(failure.text, "TLS: invalid peer certificate: UnknownIssuer");
    }

    #[test]
    fn io_kinds_and_the_clients_word_sort_the_rest() {
        let refused = io(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            Failure::of_transport(&refused, false, false),
            Failure::new(FailureKind::Connect, "connect: Connection refused")
        );
        let late = io(std::io::ErrorKind::TimedOut, "timed out");
        assert_eq!(
            Failure::of_transport(&late, false, false).kind,
            FailureKind::Timeout
        );
        let broken = io(std::io::ErrorKind::UnexpectedEof, "closed");
        assert_eq!(
            Failure::of_transport(&broken, false, false).kind,
            FailureKind::Protocol
        );
        assert_eq!(
            Failure::of_transport(&broken, true, false).kind,
            FailureKind::Timeout
        );
        let long = "x".repeat(1000);
        assert_eq!(
            Failure::new(FailureKind::Other, long).text.chars().count(),
            FAILURE_CHARS_MAX
        );
        // A server's words in an error (an SMTP reply, a certificate's names) are kept escaped:
        // PostgreSQL takes no U+0000, and the console shows what they say.
        let said = io(std::io::ErrorKind::Other, "250 ok\u{0}\r\n\u{202e}LIAF");
        assert_eq!(
            Failure::of_transport(&said, false, false).text,
            "protocol: 250 ok\\u{0}\\r\\n\\u{202e}LIAF"
        );
    }

    #[test]
    fn counts_are_kept_by_kind() {
        let counts = FailureCounts::default();
        counts.add(FailureKind::Tls);
        counts.add(FailureKind::Tls);
        counts.add(FailureKind::Other);
        let text = counts.prometheus("t", &[FailureKind::Tls, FailureKind::Connect]);
        assert_eq!(
            text,
            "# TYPE t counter\nt{kind=\"tls\"} 2\nt{kind=\"connect\"} 0\n"
        );
        assert_eq!(counts.get(FailureKind::Other), 1);
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let missing = dir.path().join("missing.pem");
        let err = operator_roots(&missing).expect_err("missing");
        assert!(err.to_string().starts_with("outgoing.ca_file "), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").expect("write");
        let err = operator_roots(&empty).expect_err("empty");
        assert!(err.to_string().contains("holds no certificate"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let err = operator_roots(&garbage).expect_err("not a certificate");
        assert!(err.to_string().contains("certificate 1"), "{err}");
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_each_file_is_named() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let issued = rcgen::generate_simple_self_signed(vec!["ps.tolem.example".to_owned()])
            .expect("a certificate");
        let (cert, key) = (dir.path().join("ps.crt"), dir.path().join("ps.key"));
        std::fs::write(&cert, issued.cert.pem()).expect("write");
        std::fs::write(&key, issued.signing_key.serialize_pem()).expect("write");
        let config = |c: Option<&Path>, k: Option<&Path>| OutgoingConfig {
            ca_file: None,
            client_certificate: c.map(Path::to_owned),
            client_key: k.map(Path::to_owned),
        };
        let refused = |c: &Path, k: Option<&Path>| {
            OutgoingTls::load(&config(Some(c), k))
                .err()
                .expect("refused")
                .to_string()
        };
        let err = refused(&cert, None);
        assert!(
            err.starts_with("outgoing.client_certificate ")
                && err.contains("needs outgoing.client_key"),
            "{err}"
        );
        // The key's file given as the certificate, and the certificate's as the key.
        let err = refused(&key, Some(&cert));
        assert!(err.contains("holds no certificate"), "{err}");
        let err = refused(&cert, Some(&cert));
        assert!(
            err.starts_with("outgoing.client_key ") && err.contains("no private key"),
            "{err}"
        );
        // Another certificate's key.
        let other = rcgen::generate_simple_self_signed(vec!["other.example".to_owned()])
            .expect("a certificate");
        let other_key = dir.path().join("other.key");
        std::fs::write(&other_key, other.signing_key.serialize_pem()).expect("write");
        let err = refused(&cert, Some(&other_key));
        assert!(
            err.starts_with("outgoing.client_key ") && err.contains("not usable with"),
            "{err}"
        );
        let tls = OutgoingTls::load(&config(Some(&cert), Some(&key))).expect("an identity");
        tls.http_client(reqwest::Client::builder())
            .expect("a client that shows it");
        // rcgen's certificates last until 4096: no warning, and their end for the metrics.
        assert!(tls.warnings().is_empty(), "{:?}", tls.warnings());
        assert!(tls.client_certificate_expires_at() > Some(crate::connections::tls::unix_now()));
        // One that has ended is warned of, named by its setting.
        let mut params =
            rcgen::CertificateParams::new(vec!["ps.tolem.example".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let old_key = rcgen::KeyPair::generate().expect("a key");
        let old = params.self_signed(&old_key).expect("a certificate");
        std::fs::write(&cert, old.pem()).expect("write");
        std::fs::write(&key, old_key.serialize_pem()).expect("write");
        let tls = OutgoingTls::load(&config(Some(&cert), Some(&key))).expect("still loads");
        let warnings = tls.warnings();
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with("outgoing.client_certificate: the certificate expired"),
            "{warnings:?}"
        );
        // A server's certificate shown as a client's: servers that ask for one refuse it.
        let usage = |purposes: Vec<rcgen::ExtendedKeyUsagePurpose>| {
            let mut params =
                rcgen::CertificateParams::new(vec!["ps.tolem.example".to_owned()]).expect("params");
            params.extended_key_usages = purposes;
            let key_pair = rcgen::KeyPair::generate().expect("a key");
            let made = params.self_signed(&key_pair).expect("a certificate");
            std::fs::write(&cert, made.pem()).expect("write");
            std::fs::write(&key, key_pair.serialize_pem()).expect("write");
            OutgoingTls::load(&config(Some(&cert), Some(&key)))
                .expect("loads")
                .warnings()
        };
        let server = usage(vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]);
        assert!(
            server.len() == 1
                && server[0].starts_with(
                    "outgoing.client_certificate: its extended key usage has no clientAuth"
                ),
            "{server:?}"
        );
        let both = usage(vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ]);
        assert!(both.is_empty(), "{both:?}");
    }

    #[test]
    fn clients_build_with_no_roots_at_all() {
        let tls = OutgoingTls::of(Vec::new());
        tls.http_client(reqwest::Client::builder())
            .expect("an HTTP client");
        tls.smtp("127.0.0.1").expect("SMTP parameters");
    }
}
