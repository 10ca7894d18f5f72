//! The PS's outgoing calls over TLS (DECISIONS 41): refunds to an `https://` MPP, a Custom
//! service's callback and register e-mails over STARTTLS or implicit TLS with a login, each
//! trusting a test CA given as `outgoing.ca_file`. A certificate the PS does not trust leaves the
//! delivery undelivered and retried, with `last_error` saying TLS and why, in the admin API and
//! the metrics; once trust is fixed (a restart with the CA) it is delivered, once.
//!
//! The CA and certificates are made here with rcgen. The MPP's `/refund` is the tests' own
//! receiver (`receiver.rs`, which credits each refundId once) behind a TLS front made with
//! tokio-rustls: a bank terminates TLS in front of its application in the same way, and the front
//! keeps the receiver's script and records untouched. The SMTP server is `smtp.rs`, which speaks
//! STARTTLS, implicit TLS and AUTH itself.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use futures::future::join_all;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};
use tolem_ps::registers::config::{Secret, SmtpTls as PsSmtpTls};

use crate::harness::*;
use crate::receiver::Receiver;
use crate::refunds::{refund_r3, refund_status};
use crate::register_mail::{expect_mails, scheduler_has_run};
use crate::registers::Scene;
use crate::smtp::{SmtpLogin, SmtpServer, SmtpTls};

/// A test CA, a server certificate it signed for 127.0.0.1 and localhost, and the CA's PEM in a
/// file for `outgoing.ca_file`.
struct Pki {
    server: Arc<rustls::ServerConfig>,
    ca_file: PathBuf,
    /// A client certificate for the PS that the CA signed, and its key (PEM files).
    client: (PathBuf, PathBuf),
    _dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki::made(false)
    }

    /// A PKI whose server asks every client for a certificate the CA signed: an MPP's `/refund`
    /// that admits the PS alone.
    fn asking_for_client_certificates() -> Pki {
        Pki::made(true)
    }

    fn made(client_auth: bool) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key"))
            .expect("a CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("a server certificate");
        let client_key = KeyPair::generate().expect("key");
        let mut client_params =
            CertificateParams::new(vec!["ps.tolem.example".to_owned()]).expect("params");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &ca)
            .expect("a client certificate");
        // The provider named, so that no process-wide default is needed.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der().clone()).expect("the CA");
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("a verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let server = builder
            .with_single_cert(
                vec![cert.der().clone()],
                pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("the server certificate");
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca_file = dir.path().join("operator-ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("the CA file");
        let client_files = (
            dir.path().join("ps-client.crt"),
            dir.path().join("ps-client.key"),
        );
        std::fs::write(&client_files.0, client.pem()).expect("the certificate");
        std::fs::write(&client_files.1, client_key.serialize_pem()).expect("the key");
        Pki {
            server: Arc::new(server),
            ca_file,
            client: client_files,
            _dir: dir,
        }
    }
}

/// A TLS front on a port of its own, passing each connection's plain bytes to `backend` (a
/// `host:port`); returns the port. A failed handshake is counted and the connection dropped.
async fn tls_front(pki: &Pki, backend: String) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let acceptor = TlsAcceptor::from(pki.server.clone());
    let failed = Arc::new(AtomicUsize::new(0));
    let counted = failed.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend, failed) = (acceptor.clone(), backend.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                if let Ok(mut plain) = TcpStream::connect(&backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (port, failed)
}

/// `host:port` of an `http://host:port/...` URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .expect("an authority")
        .to_owned()
}

/// A counter's value in `/admin/v1/metrics`, by its full name with labels.
async fn metric(ps: &TestPs, name: &str) -> u64 {
    let (status, text) = ps.admin("GET", "/admin/v1/metrics", &Value::Null).await;
    assert_eq!(status, 200);
    let text = text.as_str().expect("Prometheus text").to_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
}

const UNTRUSTED: &str = "TLS: invalid peer certificate: UnknownIssuer";
const REFUND_TLS_FAILURES: &str = "tolem_refund_attempt_failures_total{kind=\"tls\"}";
const MAIL_TLS_FAILURES: &str = "tolem_register_email_failures_total{kind=\"tls\"}";

#[tokio::test]
async fn https_refunds_wait_for_trust_in_their_certificate_then_each_is_applied_once() {
    let pki = Pki::new();
    let receiver = Receiver::start().await;
    let (port, handshakes_failed) = tls_front(&pki, authority(&receiver.url)).await;
    // No CA yet: the MPP's certificate is signed by a CA the PS does not know.
    let mut scene = Scene::start("2026-11-26T10:00:00", |c| {
        // A TLS handshake on a loaded machine must not pass for a timeout.
        c.refunds.request_timeout_ms = 5_000;
    })
    .await;
    let ps = &scene.ps;
    ps.set_refund_url("demobank", &format!("https://127.0.0.1:{port}/refund"))
        .await;
    let device = ps.device("POS-1").await;
    let mut purchases = Vec::new();
    for customer in ["C1", "C2", "C3"] {
        purchases.push(ps.paid(&device, 100, customer).await);
    }
    // Three refunds placed at once.
    let answers = join_all(purchases.iter().map(|p| refund_r3(ps, &device, *p, 40.0))).await;
    let refunds: Vec<i64> = answers
        .iter()
        .map(|a| {
            a["Data"]["ReturnOperationId"]
                .as_i64()
                .unwrap_or_else(|| panic!("a refund id in {a}"))
        })
        .collect();
    // Retried, each attempt failing on the certificate, and the admin API says so.
    ps.wait_until("every refund failed twice on TLS", || {
        let refunds = refunds.clone();
        async move {
            for id in refunds {
                let r = refund_status(ps, id).await;
                if r["attempts"].as_i64().unwrap_or(0) < 2 || r["last_error"] != UNTRUSTED {
                    return false;
                }
            }
            true
        }
    })
    .await;
    for id in &refunds {
        let r = refund_status(ps, *id).await;
        assert_eq!(r["status"], "pending", "{r}");
    }
    assert!(metric(ps, REFUND_TLS_FAILURES).await >= 6);
    assert!(handshakes_failed.load(Ordering::SeqCst) >= 6);
    assert!(receiver.calls().is_empty(), "nothing reached the MPP");
    // Trust fixed: the operator gives the CA and restarts; every refund is delivered, once.
    scene.config.outgoing.ca_file = Some(pki.ca_file.clone());
    let scene = scene.restart().await;
    let ps = &scene.ps;
    ps.wait_until("every refund is completed", || {
        let refunds = refunds.clone();
        async move {
            for id in refunds {
                if refund_status(ps, id).await["status"] != "completed" {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let credited = receiver.credited();
    let want: BTreeSet<String> = refunds.iter().map(i64::to_string).collect();
    assert_eq!(credited.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(
        credited.values().all(|amount| amount == "40.00"),
        "{credited:?}"
    );
    // Every call the MPP saw was one of these refunds: nothing else, nothing twice credited.
    for call in receiver.calls() {
        assert!(want.contains(call["refundId"].as_str().unwrap_or_default()));
    }
    assert_eq!(
        metric(ps, REFUND_TLS_FAILURES).await,
        0,
        "a new run counts anew"
    );
}

#[tokio::test]
async fn an_mpp_that_asks_for_the_ps_certificate_gets_its_refunds_once_one_is_configured() {
    let pki = Pki::asking_for_client_certificates();
    let receiver = Receiver::start().await;
    let (port, handshakes_failed) = tls_front(&pki, authority(&receiver.url)).await;
    let ca_file = pki.ca_file.clone();
    let mut scene = Scene::start("2026-11-26T10:00:00", |c| {
        c.refunds.request_timeout_ms = 5_000;
        c.outgoing.ca_file = Some(ca_file);
    })
    .await;
    let ps = &scene.ps;
    ps.set_refund_url("demobank", &format!("https://127.0.0.1:{port}/refund"))
        .await;
    let device = ps.device("POS-1").await;
    let purchase = ps.paid(&device, 100, "C1").await;
    let answer = refund_r3(ps, &device, purchase, 40.0).await;
    let refund = answer["Data"]["ReturnOperationId"]
        .as_i64()
        .unwrap_or_else(|| panic!("a refund id in {answer}"));
    // The PS trusts the MPP but shows no certificate of its own: the MPP ends the handshake.
    ps.wait_until("the refund failed twice on TLS", || async {
        let r = refund_status(ps, refund).await;
        // The MPP's side may count its failed handshake a moment after the PS records it.
        r["attempts"].as_i64().unwrap_or(0) >= 2
            && r["last_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("TLS"))
            && handshakes_failed.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(receiver.calls().is_empty(), "nothing reached the MPP");
    // With the PS's certificate configured, the refund is delivered, once.
    scene.config.outgoing.client_certificate = Some(pki.client.0.clone());
    scene.config.outgoing.client_key = Some(pki.client.1.clone());
    let scene = scene.restart().await;
    let ps = &scene.ps;
    ps.wait_until("the refund is completed", || async {
        refund_status(ps, refund).await["status"] == "completed"
    })
    .await;
    let credited = receiver.credited();
    assert_eq!(credited.len(), 1, "{credited:?}");
    assert_eq!(credited[&refund.to_string()], "40.00");
}

#[tokio::test]
async fn a_custom_callback_over_https_is_called_once_its_ca_is_trusted() {
    let pki = Pki::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let provider = axum::Router::new().route(
        "/amount",
        post(move |Json(_): Json<Value>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Json(json!({"amount": "1500.00"})) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move { axum::serve(listener, provider).await });
    let (port, _) = tls_front(&pki, backend).await;
    let url = format!("https://127.0.0.1:{port}/amount");
    for trusted in [false, true] {
        let ca_file = trusted.then(|| pki.ca_file.clone());
        let ps = TestPs::start_configured(|c| c.outgoing.ca_file = ca_file).await;
        let (_, catalog) = ps.admin("GET", "/admin/v1/catalog", &Value::Null).await;
        let mut service = catalog["services"][0].clone();
        service["amount"] = json!({"kind": "callback", "url": url, "timeout_ms": 5000});
        let (status, answer) = ps.admin("PUT", "/admin/v1/services/2862", &service).await;
        assert_eq!(status, 200, "{answer}");
        let id = scan_id(&ps, "demobank", PARKING_QR, "C1").await;
        let body = json!({"paymentId": id, "serviceId": 2862, "parameters": [{"id": 3932, "value": "777ABC02"}, {"id": 3933, "value": "1h"}]});
        let (status, answer) = ps
            .mpp_call("/api/v1/qr/checkout", "demobank", "c", &body)
            .await;
        let v: Value = serde_json::from_str(&answer).expect("JSON");
        if trusted {
            assert_eq!(
                (status, v["paymentAmount"].as_str()),
                (200, Some("1500.00"))
            );
            assert_eq!(v["result"]["resultCode"], "SUCCESS");
        } else {
            // The provider cannot be reached safely: the MPP may retry, nothing is frozen.
            assert_eq!(
                (status, v["result"]["resultCode"].as_str()),
                (503, Some("UNKNOWN_EXCEPTION"))
            );
        }
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the trusted PS reached the provider"
    );
}

#[tokio::test]
async fn a_bad_ca_file_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let missing = dir.path().join("missing-ca.pem");
    for (file, why) in [
        (&not_pem, "holds no certificate"),
        (&missing, "cannot read it"),
    ] {
        let mut config = test_config(&fresh_database(dir.path()));
        config.outgoing.ca_file = Some(file.clone());
        let clock = Arc::new(tolem_ps::clock::ManualClock::new(jiff::Timestamp::now()));
        let err = match tolem_ps::App::start(config, clock).await {
            Ok(_) => panic!("started with {}", file.display()),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with("outgoing.ca_file "), "{err}");
        assert!(
            err.contains(&file.display().to_string()) && err.contains(why),
            "{err}"
        );
    }
    // The binary says it in one line, naming the file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tolem"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(fresh_database(dir.path()))
        .env("TOLEM_OUTGOING__CA_FILE", &missing)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("tolem runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("outgoing.ca_file") && err.contains("missing-ca.pem"),
        "{err}"
    );
}

// --- register e-mails over TLS -------------------------------------------------------------

/// A PS e-mailing registers through `smtp` with `tls` and `login`, trusting the test CA when
/// `ca` is given; its clock on Thursday 26 November 2026 after the send time, so Thursday's
/// register (demobank's only) is due at Friday 09:00.
async fn mail_scene(
    smtp: &SmtpServer,
    tls: PsSmtpTls,
    login: Option<(&str, &str)>,
    ca: Option<PathBuf>,
) -> Scene {
    let port = smtp.port;
    let login = login.map(|(u, p)| (u.to_owned(), p.to_owned()));
    let scene = Scene::start("2026-11-26T10:00:00", move |c| {
        let r = &mut c.registers;
        r.smtp_host = "127.0.0.1".to_owned();
        r.smtp_port = port;
        r.smtp_tls = tls;
        if let Some((user, password)) = login {
            r.smtp_username = user;
            r.smtp_password = Secret(password);
        }
        r.from = "Tolem PS <registers@ps.tolem.test>".to_owned();
        r.poll_interval_ms = 20;
        r.retry_delay_ms_initial = 1_000;
        r.retry_delay_ms_max = 4_000;
        r.smtp_timeout_ms = 5_000;
        c.outgoing.ca_file = ca;
    })
    .await;
    scheduler_has_run(&scene).await;
    scene
}

/// The register e-mails as the admin API lists them.
async fn register_list(ps: &TestPs) -> Vec<Value> {
    let (status, list) = ps.admin("GET", "/admin/v1/registers", &Value::Null).await;
    assert_eq!(status, 200, "{list}");
    list["registers"].as_array().expect("a list").clone()
}

/// Waits (in real time) until the only register e-mail's last error contains `want`.
async fn expect_last_error(ps: &TestPs, want: &str) -> Value {
    let started = std::time::Instant::now();
    while started.elapsed() < PATIENCE {
        let list = register_list(ps).await;
        if let [one] = list.as_slice()
            && one["last_error"].as_str().is_some_and(|e| e.contains(want))
        {
            return one.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no last error with {want}: {:?}", register_list(ps).await);
}

async fn login_server(tls: SmtpTls, mechanisms: &'static str) -> SmtpServer {
    let login = SmtpLogin {
        user: "ps".to_owned(),
        password: "s3cret".to_owned(),
        mechanisms,
    };
    SmtpServer::start_with(tls, Some(login)).await
}

#[tokio::test]
async fn registers_go_over_starttls_with_auth_plain_and_over_implicit_tls_with_auth_login() {
    let pki = Pki::new();
    let starttls = login_server(SmtpTls::Starttls(pki.server.clone()), "PLAIN LOGIN").await;
    let implicit = login_server(SmtpTls::Implicit(pki.server.clone()), "LOGIN").await;
    let ca = Some(pki.ca_file.clone());
    let login = Some(("ps", "s3cret"));
    let a = mail_scene(&starttls, PsSmtpTls::Starttls, login, ca.clone()).await;
    let b = mail_scene(&implicit, PsSmtpTls::Implicit, login, ca).await;
    a.set_clock("2026-11-27T09:00:00");
    b.set_clock("2026-11-27T09:00:00");
    for smtp in [&starttls, &implicit] {
        let mails = expect_mails(smtp, 1).await;
        let mail = &mails[0];
        assert!(mail.tls, "sent over TLS");
        assert_eq!(mail.login.as_deref(), Some("ps"));
        assert_eq!(mail.attachment().0, "demobank-daily-2026-11-26.xlsx");
        assert_eq!((smtp.handshakes_failed(), smtp.logins_refused()), (0, 0));
    }
    for scene in [&a, &b] {
        let list = register_list(&scene.ps).await;
        assert_eq!(list[0]["sent_to"], "registers@demobank.example", "{list:?}");
    }
}

#[tokio::test]
async fn an_untrusted_smtp_certificate_keeps_the_register_until_trust_is_fixed_then_sends_it_once()
{
    let pki = Pki::new();
    let smtp = login_server(SmtpTls::Starttls(pki.server.clone()), "PLAIN").await;
    let login = Some(("ps", "s3cret"));
    let mut scene = mail_scene(&smtp, PsSmtpTls::Starttls, login, None).await;
    scene.set_clock("2026-11-27T09:00:00");
    let failed = expect_last_error(&scene.ps, UNTRUSTED).await;
    assert_eq!(failed["sent_at"], Value::Null, "{failed}");
    assert!(failed["attempts"].as_i64().unwrap_or(0) >= 1, "{failed}");
    assert!(metric(&scene.ps, MAIL_TLS_FAILURES).await >= 1);
    assert!(smtp.handshakes_failed() >= 1);
    assert!(smtp.mails().is_empty());
    // Trust fixed: a restart with the CA, past the retry delay; the register goes out once.
    scene.config.outgoing.ca_file = Some(pki.ca_file.clone());
    let scene = scene.restart().await;
    scene.set_clock("2026-11-27T09:00:10");
    let mails = expect_mails(&smtp, 1).await;
    assert_eq!(mails[0].login.as_deref(), Some("ps"));
    let list = register_list(&scene.ps).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["sent_to"], "registers@demobank.example", "{list:?}");
}

#[tokio::test]
async fn a_server_without_starttls_gets_nothing_in_clear() {
    let pki = Pki::new();
    let plain = SmtpServer::start().await;
    let scene = mail_scene(&plain, PsSmtpTls::Starttls, None, Some(pki.ca_file.clone())).await;
    scene.set_clock("2026-11-27T09:00:00");
    expect_last_error(&scene.ps, "TLS: the server does not offer STARTTLS").await;
    assert!(plain.mails().is_empty());
}
