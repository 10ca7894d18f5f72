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
