//! Operator data: MPP participants, organizations, trade points, static QR stickers and Custom
//! services. It is loaded from the configuration file, kept in the database (so admin changes
//! survive restarts) and served from an in-memory snapshot on the request path.
//!
//! Called by the HTTP edges (lookups), the admin API (changes) and start-up (seeding).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tolem_wire::mpp::{AUTHOR_TYPE_LEN_MAX, MERCHANT_MCC_LEN_MAX, MERCHANT_NAME_LEN_MAX};
use tolem_wire::{Amount, Localized};

use crate::registers::commission::Rate;

/// The operator data as written in the configuration file and in admin API bodies.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogFile {
    pub mpps: Vec<Mpp>,
    pub organizations: Vec<Organization>,
    pub trade_points: Vec<TradePoint>,
    pub services: Vec<Service>,
}

/// A Mobile Payment Provider taking part in the PS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mpp {
    /// Its `X-Caller-Name`, at most 12 characters.
    pub caller_name: String,
    pub name: String,
    /// Where the PS delivers refunds (`POST {refund_url}`).
    pub refund_url: String,
    /// Commission for the payment service (SPEC 5.1, the daily register), in basis points of each
    /// confirmed payment, at most [`COMMISSION_BPS_MAX`].
    #[serde(default)]
    pub commission_bps: u32,
    #[serde(default)]
    pub commission_min: Option<Amount>,
    /// Commission for the «Сервис» service (SPEC 5.2, the monthly register; DECISIONS 38), in
    /// basis points; with neither field set it equals the payment commission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_commission_bps: Option<u32>,
    /// The «Сервис» commission's minimum per payment; only with `service_commission_bps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_commission_min: Option<Amount>,
    /// Where registers are e-mailed.
    #[serde(default)]
    pub register_email: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    /// Its side of the IPSec link (DECISIONS 42): its gateway and inner addresses, read by
    /// `tolem ipsec` (`crate::ipsec`, docs/ipsec.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipsec: Option<crate::ipsec::MppIpsec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganizationStatus {
    #[default]
    Active,
    /// Payments answer PAYMENTS_SUSPENDED (DECISIONS 19).
    Suspended,
    /// Payments answer INVALID_MERCHANT.
    Blocked,
}

/// A merchant: a legal entity with trade points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    /// Business identification number, 12 digits.
    pub bin: String,
    pub name: String,
    #[serde(default)]
    pub status: OrganizationStatus,
    /// Merchant API keys in clear (configuration file only; the database keeps their hashes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<String>,
    /// SHA-256 (hex) of each API key.
    #[serde(default)]
    pub api_key_hashes: Vec<String>,
    /// Addresses the enhanced scheme (r3) may be called from (DECISIONS 28); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r3_allowed_ips: Vec<std::net::IpAddr>,
    /// Client certificates that are this organization's identity on r2 and r3 (DECISIONS 41):
    /// the SHA-256 of each leaf certificate's DER, stored as 64 lowercase hex digits (the file
    /// may write them in capitals or with colons). One certificate may be registered to several
    /// organizations: an r3 partner acting for each of them (MERCHANT-API.md §1.1).
    #[serde(default)]
    pub client_certificates: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradePoint {
    pub id: i64,
    pub organization_bin: String,
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub city: String,
    /// Merchant category code.
    pub mcc: String,
    /// The MPP API's `authorType`, at most 5 characters.
    #[serde(default)]
    pub terminal_type: String,
    #[serde(default = "yes")]
    pub accepts_qr: bool,
    #[serde(default = "yes")]
    pub active: bool,
    /// The token of this trade point's printed static QR, if it has one.
    #[serde(default)]
    pub static_qr: Option<String>,
}

/// A Custom-QR service (parking, utilities, ...): parameters the buyer fills, and how the amount
/// is computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: i64,
    /// The trade point that receives the money (its merchant data is shown to the buyer).
    pub trade_point_id: i64,
    /// The Custom QR token, at most 128 characters.
    pub token: String,
    pub name: Localized,
    #[serde(default = "yes")]
    pub active: bool,
    pub parameters: Vec<Parameter>,
    pub amount: AmountRule,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub id: i64,
    pub name: Localized,
    /// Pre-filled value; the buyer cannot change it.
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub options: Vec<ParameterOption>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterOption {
    pub key: String,
    pub label: Localized,
    #[serde(default)]
    pub description: Option<Localized>,
}

/// How checkout computes a Custom payment's amount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AmountRule {
    /// One price for the service.
    Fixed { amount: Amount },
    /// A price per option of one parameter.
    PerOption {
        parameter_id: i64,
        tariffs: BTreeMap<String, Amount>,
    },
    /// Ask the service provider's system (`docs/configuration.md`, Custom services).
    Callback {
        url: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
}

fn yes() -> bool {
    true
}

/// A commission is at most the whole payment: 10,000 basis points.
pub const COMMISSION_BPS_MAX: u32 = 10_000;

impl Mpp {
    /// The commission for the payment service (the daily register).
    pub fn payment_rate(&self) -> Rate {
        Rate {
            bps: self.commission_bps,
            min: self.commission_min,
        }
    }

    /// The commission for the «Сервис» service (the monthly register, DECISIONS 38): its own
    /// setting, else the payment commission.
    pub fn service_rate(&self) -> Rate {
        match self.service_commission_bps {
            Some(bps) => Rate {
                bps,
                min: self.service_commission_min,
            },
            None => self.payment_rate(),
        }
    }

    fn validate_commission(&self) -> Result<(), String> {
        let name = &self.caller_name;
        if self.commission_bps > COMMISSION_BPS_MAX {
            return Err(format!(
                "mpps.{name}: commission_bps must be at most {COMMISSION_BPS_MAX} (100 %)"
            ));
        }
        if self
            .service_commission_bps
            .is_some_and(|bps| bps > COMMISSION_BPS_MAX)
        {
            return Err(format!(
                "mpps.{name}: service_commission_bps must be at most {COMMISSION_BPS_MAX} (100 %)"
            ));
        }
        if self.service_commission_min.is_some() && self.service_commission_bps.is_none() {
            return Err(format!(
                "mpps.{name}: service_commission_min needs service_commission_bps \
                 (without both, the «Сервис» commission is the payment commission)"
            ));
        }
        Ok(())
    }
}

pub fn api_key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl CatalogFile {
    /// Checks references, uniqueness and the regulation's lengths; the error names the item.
    pub fn validate(&self) -> Result<(), String> {
        let mut callers = HashSet::new();
        for m in &self.mpps {
            let len = m.caller_name.chars().count();
            if len == 0 || len > tolem_wire::mpp::CALLER_NAME_LEN_MAX {
                return Err(format!(
                    "mpps.{}: caller_name must be 1-12 characters",
                    m.caller_name
                ));
            }
            if !callers.insert(&m.caller_name) {
                return Err(format!("mpps.{}: duplicate caller_name", m.caller_name));
            }
            crate::outgoing::check_call_url(&m.refund_url)
                .map_err(|why| format!("mpps.{}: refund_url {why}", m.caller_name))?;
            m.validate_commission()?;
            if let Some(ipsec) = &m.ipsec {
                crate::ipsec::validate_mpp(m, ipsec)
                    .map_err(|e| format!("mpps.{}.ipsec: {e}", m.caller_name))?;
            }
        }
        let mut bins = HashSet::new();
        for o in &self.organizations {
            if o.bin.len() != 12 || !o.bin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("organizations.{}: bin must be 12 digits", o.bin));
            }
            if !bins.insert(o.bin.as_str()) {
                return Err(format!("organizations.{}: duplicate bin", o.bin));
            }
            for text in &o.client_certificates {
                Fingerprint::parse(text).map_err(|why| {
                    format!("organizations.{}: client_certificates: {why}", o.bin)
                })?;
            }
        }
        let mut tokens = HashSet::new();
        let mut points = HashSet::new();
        for t in &self.trade_points {
            if !bins.contains(t.organization_bin.as_str()) {
                return Err(format!("trade_points.{}: unknown organization_bin", t.id));
            }
            if !points.insert(t.id) {
                return Err(format!("trade_points.{}: duplicate id", t.id));
            }
            // The trade point is the `merchant` of scan and checkout: SPEC 4.1's lengths.
            let name_len = t.name.chars().count();
            if name_len == 0 || name_len > MERCHANT_NAME_LEN_MAX {
                return Err(format!(
                    "trade_points.{}: name must be 1-{MERCHANT_NAME_LEN_MAX} characters \
                     (SPEC 4.1 merchantName), got {name_len}",
                    t.id
                ));
            }
            if t.mcc.is_empty() || t.mcc.chars().count() > MERCHANT_MCC_LEN_MAX {
                return Err(format!(
                    "trade_points.{}: mcc must be 1-{MERCHANT_MCC_LEN_MAX} characters \
                     (SPEC 4.1 merchantMCC)",
                    t.id
                ));
            }
            if t.terminal_type.chars().count() > AUTHOR_TYPE_LEN_MAX {
                return Err(format!(
                    "trade_points.{}: terminal_type must be at most {AUTHOR_TYPE_LEN_MAX} \
                     characters (SPEC 4.1 authorType)",
                    t.id
                ));
            }
            if let Some(token) = &t.static_qr {
                check_token(token, &mut tokens)
                    .map_err(|e| format!("trade_points.{}: {e}", t.id))?;
            }
        }
        let mut services = HashSet::new();
        for s in &self.services {
            if !services.insert(s.id) {
                return Err(format!("services.{}: duplicate id", s.id));
            }
            if !points.contains(&s.trade_point_id) {
                return Err(format!("services.{}: unknown trade_point_id", s.id));
            }
            check_token(&s.token, &mut tokens).map_err(|e| format!("services.{}: {e}", s.id))?;
            s.validate()
                .map_err(|e| format!("services.{}: {e}", s.id))?;
        }
        Ok(())
    }
}

fn check_token<'a>(token: &'a str, seen: &mut HashSet<&'a str>) -> Result<(), String> {
    if token.is_empty() || token.chars().count() > tolem_wire::mpp::QR_CODE_LEN_MAX {
        return Err("a QR token must be 1-128 characters".to_owned());
    }
    if !seen.insert(token) {
        return Err(format!("QR token {token} is used twice"));
    }
    Ok(())
}

impl Service {
    fn validate(&self) -> Result<(), String> {
        let mut ids = HashSet::new();
        for p in &self.parameters {
            if !ids.insert(p.id) {
                return Err(format!("parameter {} appears twice", p.id));
            }
            let value_len = p.value.as_deref().map_or(0, |v| v.chars().count());
            if value_len > tolem_wire::mpp::PARAMETER_VALUE_LEN_MAX {
                return Err(format!("parameter {}: value longer than 64", p.id));
            }
        }
        match &self.amount {
            AmountRule::Fixed { amount } => check_tariff(*amount),
            AmountRule::PerOption {
                parameter_id,
                tariffs,
            } => {
                let parameter = self
                    .parameters
                    .iter()
                    .find(|p| p.id == *parameter_id)
                    .ok_or(format!(
                        "amount.parameter_id {parameter_id} is not a parameter"
                    ))?;
                for option in &parameter.options {
                    let tariff = tariffs
                        .get(&option.key)
                        .ok_or(format!("option {} has no tariff", option.key))?;
                    check_tariff(*tariff)?;
                }
                if parameter.options.is_empty() {
                    return Err(format!("parameter {parameter_id} has no options to price"));
                }
                Ok(())
            }
            AmountRule::Callback { url, .. } => {
                crate::outgoing::check_call_url(url).map_err(|why| format!("amount.url {why}"))
            }
        }
    }
}

/// notifyPayment carries whole tenge only (SPEC 4.3), so a tariff must be whole tenge.
fn check_tariff(amount: Amount) -> Result<(), String> {
    if amount.is_zero() || !amount.is_whole_tenge() {
        return Err(format!("tariff {amount} must be positive whole tenge"));
    }
    Ok(())
}

/// The snapshot the request path reads: indexed for the lookups the APIs make.
#[derive(Debug, Default)]
pub struct Catalog {
    pub mpps: HashMap<String, Arc<Mpp>>,
    pub organizations: HashMap<String, Arc<Organization>>,
    pub trade_points: HashMap<i64, Arc<TradePoint>>,
    pub services: HashMap<i64, Arc<Service>>,
    api_keys: HashMap<String, String>,
    /// Each registered client certificate and the BINs it acts for, in BIN order.
    certificates: HashMap<Fingerprint, Vec<String>>,
    tokens: HashMap<String, CatalogToken>,
}

/// A QR token the catalog knows (dynamic tokens live with their payments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogToken {
    Static { trade_point_id: i64 },
    Custom { service_id: i64 },
}

impl Catalog {
    pub fn build(file: &CatalogFile) -> Catalog {
        let mut catalog = Catalog::default();
        for m in &file.mpps {
            catalog
                .mpps
                .insert(m.caller_name.clone(), Arc::new(m.clone()));
        }
        for o in &file.organizations {
            for hash in &o.api_key_hashes {
                catalog.api_keys.insert(hash.clone(), o.bin.clone());
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

    pub fn active_mpp(&self, caller_name: &str) -> Option<&Arc<Mpp>> {
        self.mpps.get(caller_name).filter(|m| m.active)
    }

    pub fn organization_by_api_key(&self, key: &str) -> Option<&Arc<Organization>> {
        self.api_keys
            .get(&api_key_hash(key))
            .and_then(|bin| self.organizations.get(bin))
    }

    /// The organizations a client certificate is registered to, in BIN order; none when it is
    /// unknown or was revoked.
    pub fn organizations_by_certificate(
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
    pub fn merchant(&self, trade_point_id: i64) -> Option<(&Arc<TradePoint>, &Arc<Organization>)> {
        let point = self.trade_points.get(&trade_point_id)?;
        let organization = self.organizations.get(&point.organization_bin)?;
        Some((point, organization))
    }

    pub fn trade_points_of(&self, bin: &str) -> Vec<&Arc<TradePoint>> {
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

impl Organization {
    /// Moves clear-text keys to hashes, so that only hashes are stored, and writes each client
    /// certificate's fingerprint one way (lowercase, no colons, once).
    pub fn hash_keys(&mut self) {
        for key in self.api_keys.drain(..) {
            let hash = api_key_hash(&key);
            if !self.api_key_hashes.contains(&hash) {
                self.api_key_hashes.push(hash);
            }
        }
        let mut certificates: Vec<String> = Vec::with_capacity(self.client_certificates.len());
        for text in self.client_certificates.drain(..) {
            // One that does not parse is kept as written, for `CatalogFile::validate` to name.
            let text = Fingerprint::parse(&text).map_or(text, |f| f.to_string());
            if !certificates.contains(&text) {
                certificates.push(text);
            }
        }
        self.client_certificates = certificates;
    }

    /// Its client certificates that parse (all of them, once validated).
    pub fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        self.client_certificates
            .iter()
            .filter_map(|text| Fingerprint::parse(text).ok())
    }
}

/// The SHA-256 of a client certificate's DER (DECISIONS 41): how the operator data names an
/// organization's certificate, and how a TLS listener or a trusted proxy names the caller's.
/// Shown as 64 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

/// Hex digits of a fingerprint written without colons.
const FINGERPRINT_HEX_LEN: usize = 64;

impl Fingerprint {
    /// Reads 64 hex digits in either case, or 32 pairs joined by colons as
    /// `openssl x509 -fingerprint -sha256` prints them (`AB:CD:…`); spaces around are ignored.
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let text = text.trim();
        let digits: String = if text.contains(':') {
            let pairs: Vec<&str> = text.split(':').collect();
            if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
                return Err(format!(
                    "a fingerprint with colons must be 32 pairs of hex digits (AB:CD:…), got {text:?}"
                ));
            }
            pairs.concat()
        } else {
            text.to_owned()
        };
        if digits.len() != FINGERPRINT_HEX_LEN || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "a fingerprint is the SHA-256 of the certificate: 64 hex digits, colons allowed, \
                 got {text:?}"
            ));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes)
            .map_err(|e| format!("a fingerprint must be hex digits: {e}"))?;
        Ok(Fingerprint(bytes))
    }

    /// The fingerprint of a certificate given as DER.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The fingerprint of the leaf (the first certificate) of a PEM text. The certificate must
    /// parse as X.509 the way the TLS listener parses client certificates, so that nothing is
    /// registered that could never be presented.
    pub fn of_pem(pem: &str) -> Result<Fingerprint, String> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let leaf = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .ok_or("no PEM certificate (-----BEGIN CERTIFICATE-----) found")?
            .map_err(|e| format!("the PEM certificate does not parse: {e}"))?;
        webpki::EndEntityCert::try_from(&leaf)
            .map_err(|e| format!("the PEM block is not an X.509 certificate: {e}"))?;
        Ok(Fingerprint::of_der(&leaf))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Answers "may this trade point take payments now?" from one catalog snapshot.
pub struct MerchantCheck(pub Arc<Catalog>);

impl MerchantCheck {
    pub fn state(&self, trade_point_id: i64) -> crate::domain::MerchantState {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
