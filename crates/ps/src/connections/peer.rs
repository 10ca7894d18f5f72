//! What the TLS layer learnt about the client of a connection, handed to the application in each
//! request's extensions.

/// The client certificate a TLS listener verified against its `client_ca` (DECISIONS 41): the
/// SHA-256 of the leaf certificate's DER. Present only when the client sent one and it chained
/// to the listener's client CA; the merchant API takes it as the r2 and r3 identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PeerCertificate {
    pub sha256: [u8; 32],
}

/// Present in every request that came over a TLS listener: the console marks its session cookie
/// `Secure` then (a cookie set over plain HTTP with `Secure` would be dropped by the browser).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OverTls;
