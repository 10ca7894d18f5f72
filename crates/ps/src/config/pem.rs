//! How PEM files the configuration names (certificates, keys, CAs) are said to be wrong: at
//! the bottom, for the listeners, the outgoing calls and the operator data alike.

/// A PEM reader's error as the operator should read it: the marker or line it names as text
/// (`-----END CERTIFICATE-----`), where the error's own message lists its bytes.
pub(crate) fn pem_error(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim_end().to_owned();
    match error {
        // The reader names the section's label (`CERTIFICATE`), not the whole line.
        Error::MissingSectionEnd { end_marker } => format!(
            "missing section end marker `-----END {}-----` (is the file cut short?)",
            text(end_marker)
        ),
        Error::IllegalSectionStart { line } => {
            format!("illegal section start `{}`", text(line))
        }
        other => other.to_string(),
    }
}

/// Why a PEM file holds no private key the PS can use, for a file `from_pem_slice` found none in:
/// an encrypted key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a traditional one with `Proc-Type:
/// 4,ENCRYPTED`) is named as such, since the PS reads keys without a passphrase.
pub(crate) fn no_key(pem: &[u8], error: &rustls::pki_types::pem::Error) -> String {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        "the key is encrypted, and the PS reads keys without a passphrase: write it out plain \
         (`openssl pkey -in KEY -out KEY.plain`), readable by the service alone"
            .to_owned()
    } else {
        format!(
            "no private key (PEM: PKCS#8, PKCS#1 or SEC1) in it: {}",
            pem_error(error)
        )
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn an_encrypted_key_is_named_as_such() {
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let error = rustls::pki_types::PrivateKeyDer::from_pem_slice(encrypted)
            .expect_err("no key rustls reads");
        assert!(super::no_key(encrypted, &error).contains("the key is encrypted"));
        let empty = b"nothing";
        let error = rustls::pki_types::PrivateKeyDer::from_pem_slice(empty).expect_err("no key");
        assert!(super::no_key(empty, &error).starts_with("no private key (PEM"));
    }
}
