//! TLS terminated by the PS on a listener (DECISIONS 41): the rustls server configuration built
//! from the PEM files of `listeners[].tls`, read again on demand ([`TlsFiles::reload`]: on SIGHUP
//! and when the files change) without a restart, and the client certificate a connection
//! presented, as the application sees it ([`PeerCertificate`]).
//!
//! A reload that fails keeps the configuration in force: a certificate renewed with a key not yet
//! written, or a file caught half-written, must not take the merchant API down. New connections
//! take the configuration in force when they open; open ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, ServerConnection, SignatureScheme,
};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::PeerCertificate;
use crate::config::ListenerTls;
use crate::config::pem::pem_error;

/// Why a listener's TLS configuration could not be made; every case names the file to look at.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Pem { path: PathBuf, why: String },
    #[error(
        "the private key {} does not belong to the certificate {}",
        key.display(),
        certificate.display()
    )]
    KeyMismatch { certificate: PathBuf, key: PathBuf },
    #[error("{}: refused by TLS: {why}", path.display())]
    Refused { path: PathBuf, why: String },
}

/// The only application protocol the PS speaks: its connection layer is HTTP/1.1.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// The cryptography of every TLS listener: aws-lc-rs, named here rather than installed as the
/// process's default, the same provider reqwest uses for the PS's outgoing calls.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The files' contents as last read, to tell a change from a file merely looked at again.
#[derive(Clone, PartialEq, Eq)]
struct Contents {
    certificate: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Contents {
    fn read(files: &ListenerTls) -> Result<Contents, TlsError> {
        Ok(Contents {
            certificate: read(&files.certificate)?,
            key: read(&files.key)?,
            client_ca: files.client_ca.as_deref().map(read).transpose()?,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The server configuration the files describe, and the certificate it serves.
fn server_config(
    files: &ListenerTls,
    contents: &Contents,
) -> Result<(ServerConfig, CertificateDer<'static>), TlsError> {
    let chain = certificates(&files.certificate, &contents.certificate)?;
    // `certificates` finds one at least.
    let leaf = chain[0].clone();
    let key = PrivateKeyDer::from_pem_slice(&contents.key).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        why: crate::config::pem::no_key(&contents.key, &e),
    })?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Refused {
            path: files.certificate.clone(),
            why: e.to_string(),
        })?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(path, pem)? {
                roots.add(ca).map_err(|e| TlsError::Refused {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            }
            // A client without a certificate is still let in: r1 calls come with an Api-Key
            // only, and a certificate-only scheme without one is the merchant API's to refuse
            // ("-10000"), not the handshake's. One that is sent must chain to these CAs.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Refused {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            builder.with_client_cert_verifier(Arc::new(ShortChains(verifier)))
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            certificate: files.certificate.clone(),
            key: files.key.clone(),
        },
        other => TlsError::Refused {
            path: files.key.clone(),
            why: other.to_string(),
        },
    })?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok((config, leaf))
}

/// The most certificates a client may send besides its own: an operator's CA issues client
/// certificates itself or through an intermediate or two. A longer chain is refused before it is
/// looked at, since finding a path through one costs the PS a signature check per candidate
/// issuer: 150 forged intermediates named as the CA made each handshake cost 30 times the CPU of
/// a plain one, and anyone who can reach the listener may send them.
const CLIENT_INTERMEDIATES_MAX: usize = 4;

/// A client certificate verifier that refuses a chain of more than
/// [`CLIENT_INTERMEDIATES_MAX`] intermediates, and asks the one it wraps about the rest.
#[derive(Debug)]
struct ShortChains(Arc<dyn ClientCertVerifier>);

/// Why a client's chain was refused unread. rustls shows it with `Debug`, in the log's line of
/// the failed handshake, so that says it in words too.
#[derive(thiserror::Error)]
#[error("{0} intermediate certificates, more than {CLIENT_INTERMEDIATES_MAX}")]
struct ChainTooLong(usize);

impl std::fmt::Debug for ChainTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl ClientCertVerifier for ShortChains {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.len() > CLIENT_INTERMEDIATES_MAX {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(ChainTooLong(intermediates.len()))),
            )));
        }
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.0.requires_raw_public_keys()
    }
}

/// Every certificate of a PEM file, in order; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let found = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            why: format!("not a PEM certificate file: {}", pem_error(&e)),
        })?;
    if found.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            why: "no certificate (PEM `BEGIN CERTIFICATE`) in it".to_owned(),
        });
    }
    Ok(found)
}

/// How long before its end a certificate is worth a warning at each load.
const EXPIRY_WARNING_DAYS: i64 = 14;

/// What is wrong with the validity of the chain's first certificate at `now` (Unix seconds):
/// expired, not valid yet, or ending within [`EXPIRY_WARNING_DAYS`]. A certificate rustls took is
/// served whatever its dates (clients decide); the operator should know before they do.
pub(crate) fn validity_warning(leaf: &CertificateDer<'_>, now: i64) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let validity = cert.validity();
    let (from, until) = (validity.not_before, validity.not_after);
    let days_left = (until.timestamp() - now).div_euclid(86_400);
    if until.timestamp() < now {
        Some(format!(
            "the certificate expired on {until}: whoever it is shown to will refuse it"
        ))
    } else if from.timestamp() > now {
        Some(format!(
            "the certificate is not valid before {from}: whoever it is shown to will refuse it"
        ))
    } else if days_left < EXPIRY_WARNING_DAYS {
        let within = match days_left {
            0 => "within a day".to_owned(),
            1 => "in 1 day".to_owned(),
            days => format!("in {days} days"),
        };
        Some(format!(
            "the certificate expires on {until}, {within}: renew it"
        ))
    } else {
        None
    }
}

/// When a certificate stops being valid (its `notAfter`, Unix seconds); `None` for one that does
/// not parse.
pub(crate) fn not_after(certificate: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What in a client CA file would let no client certificate in: a certificate that is neither a
/// CA (`basicConstraints CA:TRUE`) nor self-signed — a client's own certificate, given where
/// its issuer belongs — is the issuer of no certificate a client sends. (A self-signed one
/// given as its own anchor does let that one client in.)
fn client_ca_warnings(pem: &[u8]) -> Vec<String> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let ca = cert
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|constraints| constraints.value.ca);
            let self_signed = cert.subject() == cert.issuer();
            (!ca && !self_signed).then(|| {
                format!(
                    "client_ca: `{}` is not a CA certificate (no basicConstraints CA:TRUE), so \
                     no client certificate chains to it and r2 and r3 refuse every one: give the \
                     CA that signed the clients' certificates",
                    cert.subject()
                )
            })
        })
        .collect()
}

/// Why `leaf` would not be taken for `host` (a DNS name or an IP address): the names it is for
/// (its subject alternative names), by the same rules a client applies (rustls' webpki), or
/// `None` when it would be (or `host` is no name a client could check).
fn name_warning(leaf: &CertificateDer<'_>, host: &str) -> Option<String> {
    let name = rustls::pki_types::ServerName::try_from(host).ok()?;
    let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
    if cert.verify_is_valid_for_subject_name(&name).is_ok() {
        return None;
    }
    let names = x509_parser::parse_x509_certificate(leaf.as_ref())
        .ok()
        .and_then(|(_, cert)| {
            let san = cert.subject_alternative_name().ok()??;
            let names: Vec<String> = san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip)
                            .ok()
                            .map(|a| std::net::Ipv4Addr::from(a).to_string()),
                        16 => <[u8; 16]>::try_from(*ip)
                            .ok()
                            .map(|a| std::net::Ipv6Addr::from(a).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            Some(names)
        })
        .filter(|names| !names.is_empty())
        .map_or_else(|| "no host name".to_owned(), |names| names.join(", "));
    Some(format!(
        "the certificate is for {names}, not for {host}, the host of public_url: browsers and POS \
         software will refuse the receipt and payment links on it"
    ))
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The files were read and are in force for new connections.
    Yes,
    /// The files are what was read last time (a check, not a SIGHUP): nothing to do.
    Unchanged,
    /// The files are broken; the configuration in force stays. Reported once per change of the
    /// files (or per SIGHUP), not at every check.
    Failed(TlsError),
    /// Broken as at the last check, already reported.
    StillFailed,
}

/// A TLS listener's files and the configuration in force.
pub struct TlsFiles {
    files: ListenerTls,
    current: RwLock<Arc<ServerConfig>>,
    /// The certificate the configuration in force serves.
    leaf: RwLock<CertificateDer<'static>>,
    /// The contents last tried, in force or refused (`None` after a read failed).
    seen: Mutex<Option<Contents>>,
    /// The last reload's failure, reported already.
    failed: Mutex<Option<String>>,
    /// The host the certificate must name (`public_url`'s, on a listener of the merchant
    /// surface), checked with each certificate taken: a warning, not a refusal.
    public_host: Option<String>,
}

impl TlsFiles {
    /// Reads the files; an error names the file that is wrong.
    pub fn load(files: &ListenerTls) -> Result<TlsFiles, TlsError> {
        let contents = Contents::read(files)?;
        let (config, leaf) = server_config(files, &contents)?;
        Ok(TlsFiles {
            files: files.clone(),
            current: RwLock::new(Arc::new(config)),
            leaf: RwLock::new(leaf),
            seen: Mutex::new(Some(contents)),
            failed: Mutex::new(None),
            public_host: None,
        })
    }

    /// The same listener, its certificate expected to name `host` (`public_url`'s host, which
    /// receipt and payment links point to): [`TlsFiles::warnings`] says when it does not.
    pub fn expecting_host(mut self, host: String) -> TlsFiles {
        self.public_host = Some(host);
        self
    }

    /// The files this listener reads.
    pub fn files(&self) -> &ListenerTls {
        &self.files
    }

    /// What is wrong with the certificate in force, now: its dates (expired, not valid yet, or
    /// ending within two weeks), and a certificate that does not name the host expected of it
    /// ([`TlsFiles::expecting_host`]). Empty: nothing.
    pub fn warnings(&self) -> Vec<String> {
        let now = unix_now();
        let leaf = self.leaf.read().unwrap_or_else(PoisonError::into_inner);
        let dates = validity_warning(&leaf, now);
        let name = self
            .public_host
            .as_deref()
            .and_then(|host| name_warning(&leaf, host));
        let client_ca = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|contents| contents.client_ca.as_deref())
            .map(client_ca_warnings)
            .unwrap_or_default();
        dates.into_iter().chain(name).chain(client_ca).collect()
    }

    /// What is wrong with the dates of the certificate in force now, if anything.
    fn date_warning(&self) -> Option<String> {
        validity_warning(
            &self.leaf.read().unwrap_or_else(PoisonError::into_inner),
            unix_now(),
        )
    }

    /// When the certificate in force stops being valid (Unix seconds), for the metrics.
    pub fn expires_at(&self) -> Option<i64> {
        not_after(&self.leaf.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the files' last reading failed, so that an older certificate is still in force.
    pub fn reload_failing(&self) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Whether the listener asks for client certificates.
    pub fn asks_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The acceptor of a new connection: the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        // A panic while the lock was held cannot leave half an `Arc` behind.
        let config = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        TlsAcceptor::from(config)
    }

    /// Reads the files again. `forced` (SIGHUP) rebuilds even if they look unchanged and
    /// reports a failure again; a periodic check rebuilds only when their contents changed.
    pub fn reload(&self, forced: bool) -> Reloaded {
        let contents = match Contents::read(&self.files) {
            Ok(contents) => contents,
            Err(e) => {
                *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = None;
                return self.failure(e, forced);
            }
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !forced && seen.as_ref() == Some(&contents) {
                return if self
                    .failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
                {
                    Reloaded::StillFailed
                } else {
                    Reloaded::Unchanged
                };
            }
            *seen = Some(contents.clone());
        }
        match server_config(&self.files, &contents) {
            Ok((config, leaf)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
                *self.leaf.write().unwrap_or_else(PoisonError::into_inner) = leaf;
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Reloaded::Yes
            }
            Err(e) => self.failure(e, forced),
        }
    }

    fn failure(&self, error: TlsError, forced: bool) -> Reloaded {
        let text = error.to_string();
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if !forced && failed.as_deref() == Some(text.as_str()) {
            return Reloaded::StillFailed;
        }
        *failed = Some(text);
        Reloaded::Failed(error)
    }
}

/// Reads the listeners' TLS files again on SIGHUP (always) and every `interval` (when they
/// changed), until `stop`; with no TLS listener it only holds SIGHUP, which then changes nothing; each outcome is logged with the listener's address. The files are a
/// few kilobytes on a local disk, read in the task.
pub(crate) async fn watch(
    listeners: Vec<(String, Arc<TlsFiles>)>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut hangup = hangup_signal();
    // A certificate's dates were said at the listener's opening; while they stay worth a warning
    // they are said again once a day, so that a certificate that comes within two weeks of its
    // end on a PS that runs for months is said too.
    let today = || unix_now().div_euclid(86_400);
    let mut dates_said = vec![today(); listeners.len()];
    loop {
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => false,
            () = next_hangup(&mut hangup) => true,
        };
        if forced && listeners.is_empty() {
            tracing::info!("SIGHUP: no TLS listener, nothing to read again");
        }
        for (listener, files) in &listeners {
            let certificate = files.files().certificate.display();
            match files.reload(forced) {
                Reloaded::Yes => {
                    tracing::info!(%listener, %certificate, forced, "TLS files read again; new connections use them");
                    for warning in files.warnings() {
                        tracing::warn!(%listener, %certificate, "{warning}");
                    }
                }
                Reloaded::Unchanged | Reloaded::StillFailed => {}
                Reloaded::Failed(error) => tracing::error!(
                    %listener,
                    %error,
                    "TLS files not reloaded; the certificate in force stays"
                ),
            }
        }
        // Looked at once a day, not at every tick: the certificate is parsed only then.
        for ((listener, files), said) in listeners.iter().zip(dates_said.iter_mut()) {
            if *said == today() {
                continue;
            }
            *said = today();
            if let Some(warning) = files.date_warning() {
                let certificate = files.files().certificate.display();
                tracing::warn!(%listener, %certificate, "{warning}");
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; TLS files are still checked for changes");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

/// The next SIGHUP; never, without the signal.
async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup
        && signal.recv().await.is_some()
    {
        return;
    }
    #[cfg(not(unix))]
    let _ = hangup;
    std::future::pending().await
}

/// The verified client certificate of a connection, if it presented one. With `client_ca` set,
/// rustls has refused the handshake of any certificate that does not chain to it, so one that
/// is here is verified.
pub(crate) fn peer_certificate(connection: &ServerConnection) -> Option<PeerCertificate> {
    let leaf = connection.peer_certificates()?.first()?;
    Some(PeerCertificate {
        sha256: Sha256::digest(leaf.as_ref()).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::test_pki::{Pki, write};

    #[test]
    fn a_client_ca_file_holding_a_clients_own_certificate_is_warned_of() {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let pki = Pki::new();
        assert!(
            client_ca_warnings(pki.ca_pem().as_bytes()).is_empty(),
            "a CA"
        );
        // A client's certificate, signed by the CA, given where the CA belongs.
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(vec!["pos.example".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "cafe-pos");
        let issuer = {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params
                .distinguished_name
                .push(DnType::CommonName, "Test CA");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            rcgen::CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key"))
                .expect("a CA")
        };
        let leaf = params.signed_by(&key, &issuer).expect("a certificate");
        let warned = client_ca_warnings(leaf.pem().as_bytes());
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("CN=cafe-pos") && warned[0].contains("not a CA"),
            "{warned:?}"
        );
        // Beside the CA in one file, only the leaf is named.
        let both = format!("{}{}", issuer.pem(), leaf.pem());
        assert_eq!(client_ca_warnings(both.as_bytes()).len(), 1);
        // A self-signed client certificate as its own anchor lets that client in: no warning.
        let mut params = CertificateParams::new(vec!["pos.example".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "pinned-pos");
        let pinned = params
            .self_signed(&KeyPair::generate().expect("a key"))
            .expect("self-signed");
        assert!(client_ca_warnings(pinned.pem().as_bytes()).is_empty());
    }

    fn files(dir: &Path, client_ca: bool) -> ListenerTls {
        ListenerTls {
            certificate: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: client_ca.then(|| dir.join("ca.pem")),
        }
    }

    #[test]
    fn a_certificate_out_of_its_dates_or_ending_soon_is_worth_a_warning() {
        let key = rcgen::KeyPair::generate().expect("a key");
        let dated = |from: (i32, u8, u8), until: (i32, u8, u8)| {
            let mut params =
                rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
            params
                .self_signed(&key)
                .expect("a certificate")
                .der()
                .clone()
        };
        // 2026-01-01T00:00:00Z.
        let now = 1_767_225_600;
        assert_eq!(
            validity_warning(&dated((2025, 1, 1), (2027, 1, 1)), now),
            None
        );
        for (from, until, words) in [
            ((2024, 1, 1), (2025, 1, 1), "expired on"),
            ((2026, 6, 1), (2027, 1, 1), "not valid before"),
            ((2025, 1, 1), (2026, 1, 10), "in 9 days"),
        ] {
            let warning = validity_warning(&dated(from, until), now).expect("a warning");
            assert!(warning.contains(words), "{warning}");
        }
    }

    #[test]
    fn a_certificate_for_another_host_than_public_urls_is_worth_a_warning() {
        let key = rcgen::KeyPair::generate().expect("a key");
        let for_names = |names: &[&str]| {
            let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
            rcgen::CertificateParams::new(names)
                .expect("params")
                .self_signed(&key)
                .expect("a certificate")
                .der()
                .clone()
        };
        let pay = for_names(&["pay.example.kz"]);
        assert_eq!(name_warning(&pay, "pay.example.kz"), None);
        let warning = name_warning(&pay, "qr.example.kz").expect("another host");
        assert!(
            warning.contains("for pay.example.kz, not for qr.example.kz"),
            "{warning}"
        );
        let wildcard = for_names(&["*.example.kz"]);
        assert_eq!(name_warning(&wildcard, "qr.example.kz"), None);
        assert!(name_warning(&wildcard, "example.kz").is_some());
        let addresses = for_names(&["127.0.0.1", "::1"]);
        assert_eq!(name_warning(&addresses, "127.0.0.1"), None);
        assert_eq!(name_warning(&addresses, "::1"), None);
        let warning = name_warning(&addresses, "10.0.0.1").expect("another address");
        assert!(warning.contains("for 127.0.0.1, ::1, not for"), "{warning}");
    }

    #[test]
    fn a_bad_file_is_named_and_a_good_one_loads() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::new();
        let f = files(dir.path(), true);
        let missing = TlsFiles::load(&f).err().expect("no files yet").to_string();
        assert!(missing.contains("cert.pem"), "{missing}");

        let (cert, key) = pki.server("localhost");
        write(&f.certificate, "not a certificate");
        write(&f.key, &key);
        write(dir.path().join("ca.pem"), &pki.ca_pem());
        let bad = TlsFiles::load(&f)
            .err()
            .expect("no certificate")
            .to_string();
        assert!(
            bad.contains("cert.pem") && bad.contains("no certificate"),
            "{bad}"
        );

        let (_, other_key) = pki.server("localhost");
        write(&f.certificate, &cert);
        write(&f.key, &other_key);
        let mismatch = TlsFiles::load(&f).err().expect("a foreign key").to_string();
        assert!(
            mismatch.contains("key.pem") && mismatch.contains("does not belong"),
            "{mismatch}"
        );

        write(
            &f.key,
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        );
        let no_key = TlsFiles::load(&f).err().expect("no key").to_string();
        assert!(no_key.contains("key.pem"), "{no_key}");

        // A certificate cut short (a copy caught half-way) names the marker it lacks as text.
        write(&f.certificate, &cert[..cert.len() / 2]);
        let cut = TlsFiles::load(&f)
            .err()
            .expect("half a certificate")
            .to_string();
        assert!(
            cut.contains("cert.pem")
                && cut.contains("missing section end marker `-----END CERTIFICATE-----`"),
            "{cut}"
        );
        write(&f.certificate, &cert);

        write(&f.key, &key);
        write(dir.path().join("ca.pem"), "garbage");
        let ca = TlsFiles::load(&f).err().expect("no CA").to_string();
        assert!(ca.contains("ca.pem"), "{ca}");

        write(dir.path().join("ca.pem"), &pki.ca_pem());
        let loaded = TlsFiles::load(&f).expect("valid files");
        assert!(loaded.asks_client_certificates());
    }

    #[test]
    fn a_failed_reload_keeps_the_configuration_and_is_reported_once() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::new();
        let f = files(dir.path(), false);
        let (cert, key) = pki.server("localhost");
        write(&f.certificate, &cert);
        write(&f.key, &key);
        let tls = TlsFiles::load(&f).expect("valid files");
        // Held, so that a new configuration cannot take its address.
        let first = tls.current.read().expect("lock").clone();
        assert!(matches!(tls.reload(false), Reloaded::Unchanged));

        // A renewed certificate whose key is not written yet.
        let (new_cert, new_key) = pki.server("localhost");
        write(&f.certificate, &new_cert);
        match tls.reload(false) {
            Reloaded::Failed(TlsError::KeyMismatch { .. }) => {}
            other => panic!("a key mismatch expected: {other:?}"),
        }
        assert!(matches!(tls.reload(false), Reloaded::StillFailed));
        assert!(
            matches!(tls.reload(true), Reloaded::Failed(_)),
            "SIGHUP says it again"
        );
        let kept = tls.current.read().expect("lock").clone();
        assert!(
            Arc::ptr_eq(&first, &kept),
            "the configuration in force stays"
        );

        write(&f.key, &new_key);
        assert!(matches!(tls.reload(false), Reloaded::Yes));
        assert!(matches!(tls.reload(false), Reloaded::Unchanged));
        assert!(matches!(tls.reload(true), Reloaded::Yes), "SIGHUP rebuilds");
        let now = tls.current.read().expect("lock").clone();
        assert!(!Arc::ptr_eq(&first, &now));

        std::fs::remove_file(&f.key).expect("removed");
        assert!(matches!(
            tls.reload(false),
            Reloaded::Failed(TlsError::Read { .. })
        ));
        assert!(matches!(tls.reload(false), Reloaded::StillFailed));
    }
}

/// A TLS listener of the connection layer driven over real sockets: the handshake, the client
/// certificate handed to the application, and what is refused or closed.
#[cfg(test)]
mod connection_tests {
    use std::convert::Infallible;
    use std::sync::atomic::Ordering;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use rustls::ClientConfig;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::connections::test_pki::{Pki, write};
    use crate::connections::{ConnectionLimits, ConnectionStats, serve};

    /// How long a test waits for anything before it fails.
    const BOUND: Duration = Duration::from_secs(30);

    struct Server {
        addr: std::net::SocketAddr,
        stats: Arc<ConnectionStats>,
        server_ca: Pki,
        client_ca: Pki,
        _dir: tempfile::TempDir,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    /// A TLS listener asking for client certificates of `client_ca`, whose service answers the
    /// hex SHA-256 of the request's [`PeerCertificate`], or `none`.
    async fn server() -> Server {
        let dir = tempfile::tempdir().expect("dir");
        let server_ca = Pki::new();
        let client_ca = Pki::new();
        let (cert, key) = server_ca.server("localhost");
        let files = ListenerTls {
            certificate: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: Some(dir.path().join("ca.pem")),
        };
        write(&files.certificate, &cert);
        write(&files.key, &key);
        write(dir.path().join("ca.pem"), &client_ca.ca_pem());
        let tls = Arc::new(TlsFiles::load(&files).expect("valid files"));
        let service = tower::service_fn(|req: Request| async move {
            let seen = req
                .extensions()
                .get::<PeerCertificate>()
                .map_or_else(|| "none".to_owned(), |c| hex::encode(c.sha256));
            Ok::<_, Infallible>(Response::new(Body::from(seen)))
        });
        let limits = ConnectionLimits {
            header_timeout: Duration::from_millis(500),
            body_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(5),
            header_timeout_at_cap: Duration::from_millis(500),
            connections_max: 64,
            open_files_reserved: 16,
            uri_bytes_max: 8192,
            header_bytes_max: 16384,
            body_bytes_max: 65536,
            listeners: 1,
        };
        let stats = Arc::new(ConnectionStats::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            Some(tls),
            service,
            limits,
            stats.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            stats,
            server_ca,
            client_ca,
            _dir: dir,
            _stop: stop,
        }
    }

    /// One GET over TLS with an optional client certificate: the answer's body, or why not.
    async fn get(server: &Server, client: Option<(&str, &str)>) -> Result<String, String> {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(server.server_ca.ca_pem().as_bytes()).expect("CA");
        roots.add(ca).expect("root");
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    certificates(Path::new("client"), cert.as_bytes()).expect("cert"),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
                )
                .expect("client auth"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let exchange = async {
            let tcp = TcpStream::connect(server.addr)
                .await
                .map_err(|e| e.to_string())?;
            let name = ServerName::try_from("localhost").expect("name");
            let mut tls = TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
            tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut answer = Vec::new();
            tls.read_to_end(&mut answer)
                .await
                .map_err(|e| format!("read: {e}"))?;
            let answer = String::from_utf8_lossy(&answer).into_owned();
            match answer.split_once("\r\n\r\n") {
                Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
                _ => Err(format!("no answer: {answer:?}")),
            }
        };
        tokio::time::timeout(BOUND, exchange)
            .await
            .expect("the exchange ends")
    }

    async fn counted(what: &str, counter: &std::sync::atomic::AtomicU64, at_least: u64) {
        let waited = async {
            while counter.load(Ordering::Relaxed) < at_least {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(BOUND, waited)
            .await
            .unwrap_or_else(|_| panic!("{what} not counted"));
    }

    #[tokio::test]
    async fn a_verified_client_certificate_reaches_every_request_as_an_extension() {
        let server = server().await;
        let (der, cert, key) = server.client_ca.client("pos-1");
        let seen = get(&server, Some((&cert, &key))).await.expect("served");
        assert_eq!(seen, hex::encode(Sha256::digest(&der)));
        // Without a certificate the handshake goes through and the application sees none: the
        // merchant API, not TLS, refuses a certificate-only scheme.
        assert_eq!(get(&server, None).await.expect("served"), "none");
        assert_eq!(
            server.stats.tls_handshakes_failed.load(Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn a_certificate_of_another_ca_fails_the_handshake_and_is_counted() {
        let server = server().await;
        let stranger = Pki::new();
        let (_, cert, key) = stranger.client("pos-1");
        let refused = get(&server, Some((&cert, &key))).await;
        assert!(refused.is_err(), "{refused:?}");
        counted(
            "the failed handshake",
            &server.stats.tls_handshakes_failed,
            1,
        )
        .await;
        // Plain HTTP on the TLS port is a failed handshake too, not a panic or a hang.
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("sent");
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(BOUND, tcp.read_to_end(&mut rest))
            .await
            .expect("closed");
        counted("plain HTTP", &server.stats.tls_handshakes_failed, 2).await;
    }

    #[tokio::test]
    async fn a_client_chain_longer_than_the_cap_is_refused_unread() {
        let server = server().await;
        let (_, cert, key) = server.client_ca.client("pos-1");
        // The client's own CA sent as an intermediate: harmless to a path, one more to check.
        let padded = |n: usize| format!("{cert}{}", server.client_ca.ca_pem().repeat(n));
        let at_cap = padded(CLIENT_INTERMEDIATES_MAX);
        assert!(get(&server, Some((&at_cap, &key))).await.is_ok());
        let over = padded(CLIENT_INTERMEDIATES_MAX + 1);
        let refused = get(&server, Some((&over, &key))).await;
        assert!(refused.is_err(), "{refused:?}");
        counted("the refused chain", &server.stats.tls_handshakes_failed, 1).await;
        let verifier = ShortChains(Arc::new(rustls::server::NoClientAuth));
        let der = CertificateDer::from(vec![0u8]);
        let chain = vec![der.clone(); CLIENT_INTERMEDIATES_MAX + 1];
        let why = verifier
            .verify_client_cert(&der, &chain, UnixTime::now())
            .expect_err("refused");
        assert_eq!(
            why.to_string(),
            "invalid peer certificate: Other(OtherError(5 intermediate certificates, more than 4))"
        );
    }

    #[tokio::test]
    async fn a_client_that_never_says_hello_is_closed_at_the_header_deadline() {
        let server = server().await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(BOUND, tcp.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the PS did not close a silent connection");
        counted("the late handshake", &server.stats.closed_headers_late, 1).await;
        assert_eq!(
            server.stats.open.load(Ordering::SeqCst),
            0,
            "its slot is free"
        );
    }
}
