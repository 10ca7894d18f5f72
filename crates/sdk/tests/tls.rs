//! TLS: a PS behind `https://` with a private CA is reached with that CA trusted beside the
//! system's roots, an untrusted certificate is a final TLS error, and a client certificate is
//! presented to a PS that requires one. The CA and certificates are made here with rcgen; the
//! stand-in PS is axum over tokio-rustls.

mod common;
use common::request;

use std::sync::Arc;

use axum::routing::post;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};
use tolem_sdk::{MppClient, Outcome, SdkError, TransportErrorKind};

struct Pki {
    ca_pem: String,
    ca_der: pki_types::CertificateDer<'static>,
    server_chain: Vec<pki_types::CertificateDer<'static>>,
    server_key: pki_types::PrivateKeyDer<'static>,
    /// A client certificate and its key, in one PEM, signed by the same CA.
    client_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("a CA");
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&server_key, &ca)
        .expect("a server certificate");
    let client_key = KeyPair::generate().expect("key");
    let client = CertificateParams::new(vec!["demobank".to_owned()])
        .expect("params")
        .signed_by(&client_key, &ca)
        .expect("a client certificate");
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_chain: vec![server.der().clone()],
        server_key: pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        client_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}

/// A listener that speaks TLS; a failed handshake is dropped and the next connection taken.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A stand-in PS over TLS answering notifyPayment with SUCCESS; `client_ca` makes it require a
/// client certificate from that CA.
async fn tls_ps(pki: &Pki, client_ca: bool) -> String {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = if client_ca {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).expect("the CA");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .expect("the server certificate");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = tcp.local_addr().expect("addr").port();
    let app = axum::Router::new().route(
        "/api/v1/qr/notifyPayment",
        post(|| async {
            axum::Json(json!({"result": {"resultCode": "SUCCESS", "resultMessage": "success"}, "linkReceipt": "https://r"}))
        }),
    );
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("https://localhost:{port}")
}

#[tokio::test]
async fn an_https_ps_with_a_test_ca_works_and_an_untrusted_one_fails_final() {
    let pki = pki();
    let url = tls_ps(&pki, false).await;
    let trusted = MppClient::builder(&url, "demobank")
        .ca_pem(pki.ca_pem.clone())
        .build()
        .expect("client");
    let reply = trusted.notify_payment(&request()).await.expect("answered");
    assert!(matches!(reply.outcome, Outcome::Done(_)), "{reply:?}");
    // Without the CA the certificate is not trusted: final, not retried forever.
    let e = MppClient::new(&url, "demobank")
        .expect("client")
        .notify_payment(&request())
        .await
        .expect_err("untrusted");
    match &e {
        SdkError::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::Tls, "{t}"),
        other => panic!("a TLS failure expected: {other:?}"),
    }
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_a_ps_that_requires_one() {
    let pki = pki();
    let url = tls_ps(&pki, true).await;
    let with_cert = MppClient::builder(&url, "demobank")
        .ca_pem(pki.ca_pem.clone())
        .client_identity_pem(pki.client_pem.clone())
        .build()
        .expect("client");
    let reply = with_cert
        .notify_payment(&request())
        .await
        .expect("answered");
    assert!(matches!(reply.outcome, Outcome::Done(_)), "{reply:?}");
}
