//! Who calls the merchant API (DECISIONS 28, 41). r1 is known by its `Api-Key`. r2 and r3 are
//! known by the client certificate: the TLS listener hands its fingerprint over in the request's
//! extensions ([`PeerCertificate`]), or a TLS-terminating proxy whose address is in
//! `client_identity.trusted_proxies` names it in `client_identity.fingerprint_header`. Only a
//! sandbox that can receive no certificate at all ([`certificates_required`] is false) lets r2
//! and r3 take the `Api-Key` as r1 does, so that a POS integrator can try them over plain HTTP.
//!
//! A certificate may be registered to several organizations: an r3 partner acting for each of
//! them (MERCHANT-API.md §1.1). Such a call acts for the organization its `OrganizationBin` (or
//! the BIN in the trade-point list's path) names; a call that names none (payment status, payment
//! details) acts for all of them, and sees what belongs to any of them. r2 names no organization,
//! so on r2 a certificate must be registered to exactly one.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{Extensions, HeaderMap};

use super::{PosError, Scheme};
use crate::catalog::{Catalog, Fingerprint, Organization};
use crate::config::{Config, SurfaceName};
use crate::connections::PeerCertificate;
use crate::state::AppState;

/// Whether r2 and r3 demand a client certificate (DECISIONS 41: they are known by it alone):
/// always outside the sandbox, and in the sandbox whenever it can receive one, through a
/// listener of the merchant API that asks for client certificates or through a trusted proxy.
/// A sandbox without either (its one plain listener) lets them take the `Api-Key`. A PS outside
/// the sandbox that can receive no certificate refuses every r2 and r3 call, and `tolem serve`
/// says so at start ([`receives_certificates`]).
pub fn certificates_required(config: &Config) -> bool {
    !config.sandbox || receives_certificates(config)
}

/// Whether a client certificate can reach the PS: a listener of the merchant API asks for them,
/// or a trusted proxy may name one.
pub fn receives_certificates(config: &Config) -> bool {
    let mutual_tls = config.listeners.iter().any(|listener| {
        listener.surfaces.contains(&SurfaceName::Merchant)
            && listener
                .tls
                .as_ref()
                .is_some_and(|tls| tls.client_ca.is_some())
    });
    mutual_tls || !config.client_identity.trusted_proxies.is_empty()
}

/// What the caller's connection says of its client certificate.
enum Presented {
    Nothing,
    Certificate(Fingerprint),
    /// A trusted proxy sent a header that is not a SHA-256 fingerprint.
    Unreadable(HeaderFault),
}

/// The certificate the TLS listener verified, else the one a trusted proxy names. The header is
/// read only from a listed proxy: from anyone else it is ignored, or any client could claim any
/// organization's certificate.
fn presented(
    config: &Config,
    headers: &HeaderMap,
    extensions: &Extensions,
    peer: Option<IpAddr>,
) -> Presented {
    if let Some(certificate) = extensions.get::<PeerCertificate>() {
        return Presented::Certificate(Fingerprint(certificate.sha256));
    }
    let identity = &config.client_identity;
    if !peer.is_some_and(|ip| identity.trusted_proxies.contains(&ip)) {
        return Presented::Nothing;
    }
    // Two that differ could be the client's own and the proxy's, added after it: neither is read.
    let Ok(value) = sent_once(headers, identity.fingerprint_header.as_str()) else {
        return Presented::Unreadable(HeaderFault::SentTwice);
    };
    let Some(value) = value else {
        return Presented::Nothing;
    };
    // An empty header is how proxies usually say that the client sent no certificate.
    if value.is_empty() {
        return Presented::Nothing;
    }
    let Ok(value) = value.to_str() else {
        return Presented::Unreadable(HeaderFault::NotAscii);
    };
    match Fingerprint::parse(value) {
        Ok(fingerprint) => Presented::Certificate(fingerprint),
        Err(why) => Presented::Unreadable(HeaderFault::Malformed(why)),
    }
}

/// The one value of the header `name`, if sent: the same value sent again (a client's default
/// header and its own) is that value; two that differ are `Err`, to be read as neither.
pub(super) fn sent_once<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a axum::http::HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    match first {
        Some(first) if values.any(|other| other != first) => Err(()),
        _ => Ok(first),
    }
}

/// What authentication found missing or wrong, said after `-10000`'s message in the caller's
/// language (DECISIONS 44); the names of headers and fields stay as the API spells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unauthenticated {
    /// A credential missing, unknown or another organization's: `Api-Key`, `OrganizationBin`.
    Named(&'static str),
    /// `Api-Key` sent twice with two different values.
    ApiKeyTwice,
    /// No client certificate, or one no organization has registered.
    Certificate,
    /// A trusted proxy's fingerprint header that cannot be read.
    CertificateHeader(HeaderFault),
    /// An r2 call with a certificate registered to several organizations.
    SeveralOrganizations,
    /// r3 from an address the organization does not list.
    SourceAddress,
    /// r3 for an organization that lists no address.
    NoSourceAddressListed,
    /// A browser's request sent by a page of another site (its `Origin`), which the browser
    /// would give the cashier's client certificate: refused, so that no site can act with it.
    ForeignOrigin,
}

/// Why a trusted proxy's fingerprint header cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderFault {
    SentTwice,
    NotAscii,
    /// Not a SHA-256 fingerprint: `Fingerprint::parse`'s own words, technical.
    Malformed(String),
}

impl Unauthenticated {
    pub(crate) fn text(&self, locale: tolem_wire::Locale) -> String {
        let pick = |ru: &str, kk: &str| match locale {
            tolem_wire::Locale::Ru => ru.to_owned(),
            tolem_wire::Locale::Kk => kk.to_owned(),
        };
        match self {
            Unauthenticated::Named(name) => (*name).to_owned(),
            Unauthenticated::ApiKeyTwice => pick(
                "Api-Key передан дважды с разными значениями",
                "Api-Key екі рет әртүрлі мәнмен жіберілген",
            ),
            Unauthenticated::Certificate => pick("сертификат клиента", "клиент сертификаты"),
            Unauthenticated::CertificateHeader(fault) => {
                let why = match fault {
                    HeaderFault::SentTwice => pick(
                        "заголовок с отпечатком передан дважды",
                        "таңбасы бар тақырып екі рет жіберілген",
                    ),
                    HeaderFault::NotAscii => pick(
                        "заголовок с отпечатком не в ASCII",
                        "таңбасы бар тақырып ASCII емес",
                    ),
                    HeaderFault::Malformed(why) => why.clone(),
                };
                format!("{}: {why}", Unauthenticated::Certificate.text(locale))
            }
            Unauthenticated::SeveralOrganizations => pick(
                "сертификат клиента зарегистрирован за несколькими организациями; r2 действует \
                 за одну (r3 называет организацию в OrganizationBin)",
                "клиент сертификаты бірнеше ұйымға тіркелген; r2 бір ұйым үшін әрекет етеді \
                 (r3 ұйымды OrganizationBin-да атайды)",
            ),
            Unauthenticated::SourceAddress => pick("адрес отправителя", "жіберушінің мекенжайы"),
            Unauthenticated::NoSourceAddressListed => pick(
                "адрес отправителя: организация не указала адресов для r3",
                "жіберушінің мекенжайы: ұйым r3 үшін мекенжай көрсетпеген",
            ),
            Unauthenticated::ForeignOrigin => pick(
                "запрос отправлен страницей другого сайта (Origin)",
                "сұрауды басқа сайттың беті жіберген (Origin)",
            ),
        }
    }
}

fn refused(why: Unauthenticated) -> PosError {
    PosError::Unauthenticated(why)
}

/// A request a browser sent for a page of another site: its `Origin` is not this PS's own, as
/// the request reached it (its scheme, `Host` and port) or as the operator publishes it
/// (`public_url`, for a proxy in front). POS software sends no `Origin`; the cashier's page
/// (`/pos/`) is the PS's own. Browsers give such a request the client certificate installed for
/// the cashier and need no permission to send a form-like POST, so without this any site a
/// cashier opens could act as the merchant (a QR, a device) over r2. The scheme counts: a page
/// served in plain HTTP under the PS's name is not the PS's TLS listener.
pub(super) fn check_origin(
    headers: &HeaderMap,
    over_tls: bool,
    public_url: &str,
) -> Result<(), PosError> {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return Ok(());
    };
    // (scheme, host, port), the port given or the scheme's own.
    let site = |url: &str| {
        let url = reqwest::Url::parse(url).ok()?;
        Some((
            url.scheme().to_owned(),
            url.host_str()?.to_ascii_lowercase(),
            url.port_or_known_default()?,
        ))
    };
    let Some(origin) = origin.to_str().ok().and_then(site) else {
        return Err(refused(Unauthenticated::ForeignOrigin));
    };
    let scheme = if over_tls { "https" } else { "http" };
    let reached = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|host| site(&format!("{scheme}://{host}")));
    if reached.as_ref() == Some(&origin) || site(public_url).as_ref() == Some(&origin) {
        Ok(())
    } else {
        Err(refused(Unauthenticated::ForeignOrigin))
    }
}

/// The organizations the caller may act for (at least one), or `-10000`.
pub(super) fn organizations(
    app: &AppState,
    scheme: Scheme,
    headers: &HeaderMap,
    extensions: &Extensions,
    peer: Option<IpAddr>,
) -> Result<Vec<Arc<Organization>>, PosError> {
    let catalog = app.catalog.get();
    // Two keys that differ name no one organization: neither is read.
    let key = sent_once(headers, "api-key").map_err(|_| refused(Unauthenticated::ApiKeyTwice))?;
    // An empty header is no key (a POS set up for certificates may still send one); a key that
    // is not text is a key no organization has.
    let key = key
        .filter(|v| !v.is_empty())
        .map(|v| v.to_str().unwrap_or_default());
    let by_key = |key: Option<&str>| {
        key.and_then(|k| catalog.organization_by_api_key(k))
            .cloned()
            .ok_or_else(|| refused(Unauthenticated::Named("Api-Key")))
    };
    if scheme == Scheme::R1 {
        return Ok(vec![by_key(key)?]);
    }
    let fingerprint = match presented(&app.config, headers, extensions, peer) {
        Presented::Certificate(fingerprint) => fingerprint,
        Presented::Unreadable(why) => {
            if let Some(left_out) = sparse(app) {
                tracing::info!(?why, left_out, "client certificate header refused");
            }
            return Err(refused(Unauthenticated::CertificateHeader(why)));
        }
        Presented::Nothing if certificates_required(&app.config) => {
            return Err(refused(Unauthenticated::Certificate));
        }
        Presented::Nothing => return Ok(vec![by_key(key)?]),
    };
    let key_organization = match key {
        Some(_) => Some(by_key(key)?),
        None => None,
    };
    by_certificate(app, &catalog, scheme, &fingerprint, key_organization)
}

/// Whether a certificate's refusal is logged now, and how many were left out since the last
/// (`certificate_refusal_log`).
fn sparse(app: &AppState) -> Option<u64> {
    app.metrics.certificate_refusal_log.due()
}

/// The organizations a certificate acts for, narrowed to the `Api-Key`'s when one was sent.
fn by_certificate(
    app: &AppState,
    catalog: &Catalog,
    scheme: Scheme,
    fingerprint: &Fingerprint,
    key_organization: Option<Arc<Organization>>,
) -> Result<Vec<Arc<Organization>>, PosError> {
    let mut organizations = catalog.organizations_by_certificate(fingerprint);
    if organizations.is_empty() {
        if let Some(left_out) = sparse(app) {
            tracing::info!(%fingerprint, left_out, "client certificate not registered");
        }
        return Err(refused(Unauthenticated::Certificate));
    }
    if scheme == Scheme::R2 && organizations.len() > 1 {
        if let Some(left_out) = sparse(app) {
            tracing::info!(%fingerprint, count = organizations.len(), left_out, "r2 certificate of several organizations");
        }
        return Err(refused(Unauthenticated::SeveralOrganizations));
    }
    // A key sent beside the certificate must be one of the certificate's organizations.
    if let Some(key_organization) = key_organization {
        organizations.retain(|o| o.bin == key_organization.bin);
        if organizations.is_empty() {
            return Err(refused(Unauthenticated::Named("Api-Key")));
        }
    }
    Ok(organizations)
}

/// For a certificate of several organizations: the one the request names, by its
/// `OrganizationBin` or the BIN in `/r3/v01/partner/tradepoints/{bin}`. A request that names none
/// keeps them all; one that names another organization is `-10000`, as `PosCall::check_bin` says.
pub(super) fn choose_named(
    organizations: &mut Vec<Arc<Organization>>,
    path: &str,
    body: &[u8],
) -> Result<(), PosError> {
    let Some(bin) = named_bin(path, body) else {
        return Ok(());
    };
    organizations.retain(|o| o.bin == bin);
    if organizations.is_empty() {
        return Err(refused(Unauthenticated::Named("OrganizationBin")));
    }
    Ok(())
}

/// The BIN a request names, read loosely: the handler reads the body strictly afterwards and
/// refuses it if it is malformed, before anything is done.
fn named_bin(path: &str, body: &[u8]) -> Option<String> {
    if let Some(bin) = path.strip_prefix("/r3/v01/partner/tradepoints/") {
        return Some(bin.trim_end_matches('/').to_owned());
    }
    let serde_json::Value::Object(fields) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    fields.into_iter().find_map(|(name, value)| match value {
        serde_json::Value::String(bin) if name.eq_ignore_ascii_case("organizationbin") => Some(bin),
        _ => None,
    })
}

/// r3 is bound to its partner's server addresses (DECISIONS 28): the organizations whose list
/// leaves out the TCP peer are dropped, and with none left the call is `-10000`. An organization
/// that lists no address takes no r3 call, except in the sandbox, where it takes them from
/// anywhere (`sandbox`: a POS integrator trying r3 from another machine). Behind a proxy the
/// peer is the proxy; a forwarded address is not believed.
pub(super) fn check_source(
    scheme: Scheme,
    organizations: &mut Vec<Arc<Organization>>,
    peer: Option<IpAddr>,
    sandbox: bool,
) -> Result<(), PosError> {
    if scheme != Scheme::R3 {
        return Ok(());
    }
    let none_listed = organizations.iter().all(|o| o.r3_allowed_ips.is_empty());
    organizations.retain(|o| {
        (sandbox && o.r3_allowed_ips.is_empty())
            || peer.is_some_and(|ip| o.r3_allowed_ips.contains(&ip))
    });
    if organizations.is_empty() {
        return Err(refused(if none_listed {
            Unauthenticated::NoSourceAddressListed
        } else {
            Unauthenticated::SourceAddress
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::OrganizationStatus;
    use crate::config::{ListenerConfig, ListenerTls};

    fn organization(bin: &str, r3_allowed_ips: &[&str]) -> Arc<Organization> {
        Arc::new(Organization {
            bin: bin.to_owned(),
            name: format!("org {bin}"),
            status: OrganizationStatus::Active,
            api_keys: Vec::new(),
            api_key_hashes: Vec::new(),
            r3_allowed_ips: r3_allowed_ips
                .iter()
                .map(|ip| ip.parse().expect("an address"))
                .collect(),
            client_certificates: Vec::new(),
        })
    }

    fn sources(
        scheme: Scheme,
        lists: &[&[&str]],
        peer: &str,
        sandbox: bool,
    ) -> Result<Vec<String>, PosError> {
        let mut organizations: Vec<_> = lists
            .iter()
            .enumerate()
            .map(|(i, list)| organization(&format!("99034000000{i}"), list))
            .collect();
        let peer = Some(peer.parse().expect("an address"));
        check_source(scheme, &mut organizations, peer, sandbox)?;
        Ok(organizations.iter().map(|o| o.bin.clone()).collect())
    }

    #[test]
    fn r3_is_taken_only_from_a_listed_address_and_from_anywhere_only_in_the_sandbox() {
        let listed: &[&str] = &["10.0.0.7"];
        let none: &[&str] = &[];
        let r3 = |lists: &[&[&str]], peer, sandbox| sources(Scheme::R3, lists, peer, sandbox);
        assert_eq!(
            r3(&[listed], "10.0.0.7", false).ok(),
            Some(vec!["990340000000".to_owned()])
        );
        let why = |e: PosError| match e {
            PosError::Unauthenticated(why) => Some(why),
            _ => None,
        };
        assert_eq!(
            r3(&[listed], "10.0.0.8", false).err().and_then(why),
            Some(Unauthenticated::SourceAddress)
        );
        let none_listed = r3(&[none], "10.0.0.8", false)
            .err()
            .and_then(why)
            .expect("refused");
        assert_eq!(
            none_listed.text(tolem_wire::Locale::Ru),
            "адрес отправителя: организация не указала адресов для r3"
        );
        assert_eq!(
            none_listed.text(tolem_wire::Locale::Kk),
            "жіберушінің мекенжайы: ұйым r3 үшін мекенжай көрсетпеген"
        );
        // In the sandbox an organization with no list takes r3 from anywhere; one with a list
        // still only from it.
        assert_eq!(r3(&[none], "10.0.0.8", true).ok().map(|o| o.len()), Some(1));
        assert!(r3(&[listed], "10.0.0.8", true).is_err());
        // Of a certificate's several organizations, those that list the peer are kept.
        assert_eq!(
            r3(&[none, listed], "10.0.0.7", false).ok(),
            Some(vec!["990340000001".to_owned()])
        );
        // r1 and r2 are not bound to addresses.
        for scheme in [Scheme::R1, Scheme::R2] {
            assert!(sources(scheme, &[none], "10.0.0.8", false).is_ok());
        }
    }

    fn listener(surfaces: &[SurfaceName], client_ca: Option<&str>) -> ListenerConfig {
        ListenerConfig {
            address: "127.0.0.1:8443".parse().expect("an address"),
            surfaces: surfaces.to_vec(),
            tls: Some(ListenerTls {
                certificate: "ps.pem".into(),
                key: "ps.key".into(),
                client_ca: client_ca.map(Into::into),
            }),
        }
    }

    #[test]
    fn certificates_are_required_outside_the_sandbox_and_where_the_ps_can_receive_them() {
        let mut config = Config::default();
        assert!(certificates_required(&config), "not a sandbox");
        assert!(!receives_certificates(&config), "one plain listener");
        config.sandbox = true;
        assert!(
            !certificates_required(&config),
            "a sandbox's plain listener"
        );
        config.listeners = vec![
            listener(&[SurfaceName::Merchant], None),
            listener(&[SurfaceName::Admin], Some("ca.pem")),
        ];
        assert!(
            !certificates_required(&config),
            "no client CA on the merchant API"
        );
        config.listeners.push(listener(
            &[SurfaceName::Mpp, SurfaceName::Merchant],
            Some("ca.pem"),
        ));
        assert!(
            certificates_required(&config),
            "mutual TLS on the merchant API"
        );
        let mut config = Config {
            sandbox: true,
            ..Config::default()
        };
        config.client_identity.trusted_proxies = vec!["10.0.0.2".parse().expect("an address")];
        assert!(certificates_required(&config), "a trusted proxy");
    }

    #[test]
    fn the_listeners_certificate_comes_first_and_the_header_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().expect("an address");
        let stranger: IpAddr = "10.0.0.9".parse().expect("an address");
        let mut config = Config::default();
        config.client_identity.trusted_proxies = vec![proxy];
        let named = Fingerprint([7; 32]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-client-cert-sha256",
            named.to_string().to_uppercase().parse().expect("a value"),
        );
        let fingerprint = |headers: &HeaderMap, extensions: &Extensions, peer| match presented(
            &config,
            headers,
            extensions,
            Some(peer),
        ) {
            Presented::Certificate(f) => Some(f),
            Presented::Nothing => None,
            Presented::Unreadable(why) => panic!("unreadable: {why:?}"),
        };
        let none = Extensions::new();
        assert_eq!(fingerprint(&headers, &none, proxy), Some(named));
        assert_eq!(
            fingerprint(&headers, &none, stranger),
            None,
            "a forged header"
        );
        let mut tls = Extensions::new();
        tls.insert(PeerCertificate { sha256: [9; 32] });
        assert_eq!(
            fingerprint(&headers, &tls, stranger),
            Some(Fingerprint([9; 32]))
        );
        assert_eq!(
            fingerprint(&headers, &tls, proxy),
            Some(Fingerprint([9; 32]))
        );
        headers.insert("x-client-cert-sha256", "".parse().expect("a value"));
        assert_eq!(fingerprint(&headers, &none, proxy), None, "no certificate");
        headers.insert("x-client-cert-sha256", "abc".parse().expect("a value"));
        assert!(matches!(
            presented(&config, &headers, &none, Some(proxy)),
            Presented::Unreadable(_)
        ));
    }

    #[test]
    fn the_bin_is_read_from_the_path_or_the_body_in_any_case() {
        assert_eq!(
            named_bin("/r3/v01/partner/tradepoints/990340001234", b""),
            Some("990340001234".to_owned())
        );
        assert_eq!(
            named_bin(
                "/r3/v01/qr/create",
                br#"{"organizationBIN": "990340005678", "Amount": 1}"#
            ),
            Some("990340005678".to_owned())
        );
        assert_eq!(named_bin("/r3/v01/qr/create", br#"{"Amount": 1}"#), None);
        assert_eq!(named_bin("/r3/v01/qr/create", b"[1, 2]"), None);
        assert_eq!(named_bin("/r3/v01/qr/create", b"not json"), None);
        assert_eq!(
            named_bin("/r3/v01/qr/create", br#"{"OrganizationBin": 990340005678}"#),
            None
        );
    }

    #[test]
    fn only_the_pss_own_pages_may_send_an_origin() {
        let allowed = |origin: &str, host: &str, over_tls: bool, public_url: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(axum::http::header::ORIGIN, origin.parse().expect("a value"));
            headers.insert(axum::http::header::HOST, host.parse().expect("a value"));
            check_origin(&headers, over_tls, public_url).is_ok()
        };
        let public = "https://ps.example.kz";
        // The PS's own page, however the port is written.
        assert!(allowed(
            "https://ps.example.kz",
            "ps.example.kz",
            true,
            public
        ));
        assert!(allowed(
            "https://ps.example.kz",
            "ps.example.kz:443",
            true,
            public
        ));
        assert!(allowed(
            "https://ps.example.kz:8443",
            "ps.example.kz:8443",
            true,
            "x"
        ));
        // Behind a TLS proxy that names the PS by its upstream address.
        assert!(allowed(
            "https://ps.example.kz",
            "10.0.0.5:8080",
            false,
            public
        ));
        assert!(allowed(
            "https://ps.example.kz",
            "10.0.0.5:8080",
            false,
            "https://ps.example.kz:443"
        ));
        // Another site, a plain-HTTP page under the PS's name, an opaque origin.
        assert!(!allowed(
            "https://evil.example",
            "ps.example.kz",
            true,
            public
        ));
        assert!(!allowed(
            "http://ps.example.kz",
            "ps.example.kz",
            true,
            public
        ));
        assert!(!allowed("null", "ps.example.kz", true, public));
        assert!(!allowed(
            "https://ps.example.kz:444",
            "ps.example.kz",
            true,
            public
        ));
    }
}
