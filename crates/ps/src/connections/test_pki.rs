//! Certificates made at test time (rcgen): a CA, server certificates and client certificates it
//! signs, as PEM text, for the TLS tests of the connection layer.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub(super) struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub(super) fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("a key");
        Pki {
            ca: CertifiedIssuer::self_signed(params, key).expect("a CA"),
        }
    }

    pub(super) fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A certificate for `name` signed by this CA, and its key: (certificate PEM, key PEM).
    pub(super) fn server(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &self.ca)
            .expect("a certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate signed by this CA: (certificate DER, certificate PEM, key PEM).
    pub(super) fn client(&self, name: &str) -> (Vec<u8>, String, String) {
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &self.ca)
            .expect("a certificate");
        (cert.der().to_vec(), cert.pem(), key.serialize_pem())
    }
}

pub(super) fn write(path: impl AsRef<Path>, text: &str) {
    std::fs::write(path, text).expect("written");
}
