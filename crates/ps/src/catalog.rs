//! Operator data on the request path: the in-memory snapshot of MPP participants,
//! organizations, trade points, static QR stickers and Custom services, indexed for the lookups
//! the APIs make, and the sandbox's own MPP. The data as written (the file's tables, their checks)
//! is `crate::config::catalog`, re-exported here; it is loaded from the configuration file and
//! kept in the database (so admin changes survive restarts).
//!
//! Called by the HTTP edges (lookups), the admin API (changes) and start-up (seeding).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::domain::{CallerName, ServiceId, TradePointId};

pub(crate) use crate::config::catalog::{
    AmountRule, CatalogFile, Organization, OrganizationStatus, TradePoint, api_key_hash,
};
pub use crate::config::catalog::{Fingerprint, Mpp, ParameterOption, Service};

/// The MPP the sandbox's emulators act as (`test/payment/*`), and whose refunds the sandbox
/// completes itself instead of calling anyone.
pub(crate) const SANDBOX_MPP: &str = "sandbox";

/// The snapshot the request path reads: indexed for the lookups the APIs make.
#[derive(Debug, Default)]
pub struct Catalog {
    pub mpps: HashMap<CallerName, Arc<Mpp>>,
    pub organizations: HashMap<String, Arc<Organization>>,
    pub trade_points: HashMap<TradePointId, Arc<TradePoint>>,
    pub services: HashMap<ServiceId, Arc<Service>>,
    api_keys: HashMap<String, String>,
    /// Each cabinet token's SHA-256 (lowercase hex) the admin API issued, and its MPP.
    cabinet_tokens: HashMap<String, CallerName>,
    /// Each registered client certificate and the BINs it acts for, in BIN order.
    certificates: HashMap<Fingerprint, Vec<String>>,
    tokens: HashMap<String, CatalogToken>,
    /// The inner addresses of each MPP with a tunnel: where its requests come from.
    mpp_sources: HashMap<CallerName, Vec<crate::config::ipsec::Subnet>>,
}

/// A QR token the catalog knows (dynamic tokens live with their payments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogToken {
    Static { trade_point_id: TradePointId },
    Custom { service_id: ServiceId },
}

impl Catalog {
    pub fn build(file: &CatalogFile) -> Catalog {
        let mut catalog = Catalog::default();
        for m in &file.mpps {
            // Validated items: an MPP's tunnel always names its inner addresses. Were it not to,
            // none would do (closed, not open).
            if let Some(table) = &m.ipsec {
                let inner = crate::config::ipsec::mpp_inner(m, table).unwrap_or_default();
                catalog.mpp_sources.insert(m.caller_name.clone(), inner);
            }
            for hash in &m.cabinet_token_hashes {
                catalog
                    .cabinet_tokens
                    .insert(hash.to_ascii_lowercase(), m.caller_name.clone());
            }
            catalog
                .mpps
                .insert(m.caller_name.clone(), Arc::new(m.clone()));
        }
        for o in &file.organizations {
            for hash in &o.api_key_hashes {
                // As a key is hashed at sign-in: one stored in capitals by an earlier build
                // still lets its organization in.
                catalog
                    .api_keys
                    .insert(hash.to_ascii_lowercase(), o.bin.clone());
            }
            // Stored items were validated, so every fingerprint parses.
            for fingerprint in o.fingerprints() {
                let bins = catalog.certificates.entry(fingerprint).or_default();
                if !bins.contains(&o.bin) {
                    bins.push(o.bin.clone());
                    bins.sort();
                }
            }
            catalog
                .organizations
                .insert(o.bin.clone(), Arc::new(o.clone()));
        }
        for t in &file.trade_points {
            if let Some(token) = &t.static_qr {
                catalog.tokens.insert(
                    token.clone(),
                    CatalogToken::Static {
                        trade_point_id: t.id,
                    },
                );
            }
            catalog.trade_points.insert(t.id, Arc::new(t.clone()));
        }
        for s in &file.services {
            catalog
                .tokens
                .insert(s.token.clone(), CatalogToken::Custom { service_id: s.id });
            catalog.services.insert(s.id, Arc::new(s.clone()));
        }
        catalog
    }

    pub(crate) fn active_mpp(&self, caller_name: &str) -> Option<&Arc<Mpp>> {
        self.mpps.get(caller_name).filter(|m| m.active)
    }

    /// Whether a request from `peer` may speak as `mpp`: with a tunnel (`[mpps.ipsec]`), only
    /// from the MPP's inner addresses, which no other MPP's tunnel carries; without one, from
    /// anywhere but another MPP's tunnel (the operator's network is what keeps strangers out), so
    /// that an MPP with a tunnel cannot speak through it as an MPP that has none.
    pub(crate) fn mpp_source_allowed(&self, mpp: &CallerName, peer: Option<IpAddr>) -> bool {
        let peer = peer.map(|ip| ip.to_canonical());
        let inside = |inner: &[crate::config::ipsec::Subnet]| {
            peer.is_some_and(|ip| inner.iter().any(|s| s.contains(ip)))
        };
        match self.mpp_sources.get(mpp) {
            Some(inner) => inside(inner),
            None => !self.mpp_sources.values().any(|inner| inside(inner)),
        }
    }

    /// Whether the MPP `mpp` is bound to its tunnel's inner addresses.
    pub(crate) fn has_tunnel(&self, mpp: &CallerName) -> bool {
        self.mpp_sources.contains_key(mpp)
    }

    /// The MPPs whose `X-Caller-Name` is taken from any address (no `[mpps.ipsec]`), in name
    /// order, the sandbox's own left out.
    pub fn mpps_without_tunnel(&self) -> Vec<&CallerName> {
        let mut names: Vec<&CallerName> = self
            .mpps
            .keys()
            .filter(|name| !self.mpp_sources.contains_key(*name) && name.as_str() != SANDBOX_MPP)
            .collect();
        names.sort();
        names
    }

    /// The catalog of a configuration file as a start would first store it: its keys in clear
    /// taken as their hashes (`tolem serve --check`, which opens no database).
    pub fn of_file(file: &CatalogFile) -> Catalog {
        let mut file = file.clone();
        for org in &mut file.organizations {
            org.hash_keys();
        }
        Catalog::build(&file)
    }

    /// The credentials `docs/sandbox.md` publishes that `config` and this catalog (the keys the
    /// PS takes) would take outside the sandbox: the admin token, MPPs' cabinet tokens and
    /// organizations' API keys, each named by its setting.
    pub fn sandbox_credentials(&self, config: &crate::Config) -> Vec<String> {
        let Ok(sandbox) = crate::Config::from_toml(crate::SANDBOX_TOML) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        if !config.admin_token.is_empty() && config.admin_token == sandbox.admin_token {
            found.push("admin_token".to_owned());
        }
        for (mpp, token) in &config.registers.cabinet_tokens {
            if sandbox
                .registers
                .cabinet_tokens
                .values()
                .any(|t| t == token)
            {
                found.push(format!("registers.cabinet_tokens.{mpp}"));
            }
        }
        for key in sandbox
            .catalog
            .organizations
            .iter()
            .flat_map(|o| &o.api_keys)
        {
            if let Some(bin) = self.api_keys.get(&api_key_hash(key)) {
                found.push(format!("organizations.{bin}: the API key {key}"));
            }
        }
        found
    }

    /// The MPP a cabinet token the admin API issued lets in, by the token's SHA-256 in hex.
    pub(crate) fn mpp_by_cabinet_token_hash(&self, hash: &str) -> Option<&CallerName> {
        self.cabinet_tokens.get(hash)
    }

    pub(crate) fn organization_by_api_key(&self, key: &str) -> Option<&Arc<Organization>> {
        self.api_keys
            .get(&api_key_hash(key))
            .and_then(|bin| self.organizations.get(bin))
    }

    /// The organizations a client certificate is registered to, in BIN order; none when it is
    /// unknown or was revoked.
    pub(crate) fn organizations_by_certificate(
        &self,
        fingerprint: &Fingerprint,
    ) -> Vec<Arc<Organization>> {
        self.certificates
            .get(fingerprint)
            .into_iter()
            .flatten()
            .filter_map(|bin| self.organizations.get(bin).cloned())
            .collect()
    }

    pub fn token(&self, token: &str) -> Option<CatalogToken> {
        self.tokens.get(token).copied()
    }

    /// The trade point and its organization.
    pub fn merchant(
        &self,
        trade_point_id: TradePointId,
    ) -> Option<(&Arc<TradePoint>, &Arc<Organization>)> {
        let point = self.trade_points.get(&trade_point_id)?;
        let organization = self.organizations.get(&point.organization_bin)?;
        Some((point, organization))
    }

    pub(crate) fn trade_points_of(&self, bin: &str) -> Vec<&Arc<TradePoint>> {
        let mut points: Vec<_> = self
            .trade_points
            .values()
            .filter(|t| t.organization_bin == bin)
            .collect();
        points.sort_by_key(|t| t.id);
        points
    }
}

/// The shared, swappable snapshot.
#[derive(Clone, Default)]
pub struct CatalogHandle(Arc<RwLock<Arc<Catalog>>>);

impl CatalogHandle {
    pub fn get(&self) -> Arc<Catalog> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace(&self, catalog: Catalog) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(catalog);
    }
}

/// Answers "may this trade point take payments now?" from one catalog snapshot.
pub(crate) struct MerchantCheck(pub Arc<Catalog>);

impl MerchantCheck {
    pub(crate) fn state(&self, trade_point_id: TradePointId) -> crate::domain::MerchantState {
        use crate::domain::MerchantState;
        match self.0.merchant(trade_point_id) {
            Some((point, org)) if point.active && point.accepts_qr => match org.status {
                OrganizationStatus::Active => MerchantState::Open,
                OrganizationStatus::Suspended => MerchantState::Suspended,
                OrganizationStatus::Blocked => MerchantState::Blocked,
            },
            _ => MerchantState::Blocked,
        }
    }

    /// Whether the trade point may give money back through a return QR (DECISIONS 22): as
    /// `return/create` and `payment/return` allow, while it is active and its organization not
    /// blocked, even when it no longer takes QR payments or its organization is suspended.
    pub(crate) fn may_give_back(&self, trade_point_id: TradePointId) -> bool {
        self.0
            .merchant(trade_point_id)
            .is_some_and(|(point, org)| point.active && org.status != OrganizationStatus::Blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn organization(bin: &str, certificates: &[&str]) -> Organization {
        Organization {
            bin: bin.to_owned(),
            name: format!("org {bin}"),
            status: OrganizationStatus::Active,
            api_keys: Vec::new(),
            api_key_hashes: Vec::new(),
            r3_allowed_ips: Vec::new(),
            client_certificates: certificates.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn a_fingerprint_is_64_hex_digits_in_any_case_colons_allowed() {
        let plain = Fingerprint::parse(HEX).expect("lowercase");
        assert_eq!(plain.to_string(), HEX);
        assert_eq!(Fingerprint::parse(&HEX.to_uppercase()), Ok(plain));
        let pairs: Vec<String> = HEX
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).to_uppercase())
            .collect();
        assert_eq!(Fingerprint::parse(&pairs.join(":")), Ok(plain));
        assert_eq!(Fingerprint::parse(&format!("  {HEX}\n")), Ok(plain));
        let refused = [
            "",
            &HEX[..62],                              // 31 bytes
            &HEX[..40],                              // a SHA-1 fingerprint
            &format!("{HEX}00"),                     // 33 bytes
            &format!("{}zz", &HEX[..62]),            // not hex
            &format!(":{}", &pairs[1..].join(":")),  // 31 pairs and an empty one
            &format!("{}:{}", &HEX[..4], &HEX[4..]), // a colon out of place
            &format!("{}é", &HEX[..63]),             // not ASCII
        ];
        for text in refused {
            assert!(Fingerprint::parse(text).is_err(), "{text:?} was taken");
        }
    }

    #[test]
    fn the_fingerprint_of_a_pem_certificate_is_the_sha256_of_its_leafs_der() {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["pos.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        let expected = hex::encode(Sha256::digest(cert.der()));
        let pem = cert.pem();
        assert_eq!(
            Fingerprint::of_pem(&pem).map(|f| f.to_string()),
            Ok(expected.clone())
        );
        // With its key and a second certificate after it, the first certificate counts.
        let other = rcgen::CertificateParams::new(vec!["other.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        let chain = format!("{}{pem}{}", key.serialize_pem(), other.pem());
        assert_eq!(
            Fingerprint::of_pem(&chain).map(|f| f.to_string()),
            Ok(expected)
        );
        assert!(Fingerprint::of_pem("").is_err());
        assert!(
            Fingerprint::of_pem(&key.serialize_pem()).is_err(),
            "a key is no certificate"
        );
        let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let why = Fingerprint::of_pem(garbage).expect_err("not X.509");
        assert!(why.contains("not an X.509 certificate"), "{why}");
        let broken = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(Fingerprint::of_pem(broken).is_err());
    }

    #[test]
    fn the_snapshot_maps_a_certificate_to_each_organization_it_is_registered_to() {
        let shared = HEX.to_uppercase();
        let own = "ff".repeat(32);
        let file = CatalogFile {
            organizations: vec![
                organization("990340005678", &[&shared]),
                organization("990340001234", &[HEX, &own]),
            ],
            ..CatalogFile::default()
        };
        file.validate().expect("valid");
        let catalog = Catalog::build(&file);
        let bins = |text: &str| -> Vec<String> {
            let fingerprint = Fingerprint::parse(text).expect("a fingerprint");
            catalog
                .organizations_by_certificate(&fingerprint)
                .iter()
                .map(|o| o.bin.clone())
                .collect()
        };
        assert_eq!(bins(HEX), ["990340001234", "990340005678"]);
        assert_eq!(bins(&own), ["990340001234"]);
        assert!(bins(&"00".repeat(32)).is_empty());
    }

    #[test]
    fn certificates_are_stored_one_way_and_a_bad_one_is_named() {
        let mut org = organization("990340001234", &[&HEX.to_uppercase(), HEX, " AB "]);
        org.hash_keys();
        assert_eq!(org.client_certificates, [HEX, " AB "]);
        let file = CatalogFile {
            organizations: vec![org],
            ..CatalogFile::default()
        };
        let why = file.validate().expect_err("AB is no fingerprint");
        assert!(
            why.starts_with("organizations.990340001234: client_certificates: "),
            "{why}"
        );
    }
}
