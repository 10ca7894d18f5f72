//! The operator data as the configuration file and the admin API write it: MPP participants,
//! organizations, trade points, static QR stickers and Custom services, their checks, and the
//! values they are made of (client certificate fingerprints, hashed API keys, call URLs).
//! Plain data below everything else: the `catalog` module builds the request path's snapshot from it,
//! the store keeps it, and the admin API changes it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::domain::{CallerName, ServiceId, TradePointId};
use sha2::{Digest, Sha256};
use tolem_wire::mpp::{AUTHOR_TYPE_LEN_MAX, MERCHANT_MCC_LEN_MAX, MERCHANT_NAME_LEN_MAX};
use tolem_wire::{Amount, Localized};

use crate::domain::commission::Rate;

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
    pub caller_name: CallerName,
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
    /// `tolem ipsec` (the `ipsec` module, docs/ipsec.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipsec: Option<super::ipsec::MppIpsec>,
    /// The SHA-256 (hex) of each cabinet token the admin API issued it (`POST
    /// /admin/v1/mpps/{caller_name}/cabinet-tokens`): each lets the MPP into its registers and
    /// cabinet pages, as one of `registers.cabinet_tokens` does, with no restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cabinet_token_hashes: Vec<String>,
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
    pub id: TradePointId,
    pub organization_bin: String,
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub city: String,
    /// Merchant category code.
    pub mcc: String,
    /// The MPP API's `authorType`, 1 to 5 characters: required of every trade point the
    /// configuration names or the admin API stores ([`TradePoint::check_terminal_type`]).
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

impl TradePoint {
    /// SPEC 4.1 requires `authorType` in every `merchant` the MPP API answers: a trade point the
    /// configuration names or the admin API stores has a type. (One stored before the rule keeps
    /// loading, so that it blocks no other change.)
    pub fn check_terminal_type(&self) -> Result<(), String> {
        let len = self.terminal_type.chars().count();
        if len == 0 || len > AUTHOR_TYPE_LEN_MAX {
            return Err(self.terminal_type_error());
        }
        Ok(())
    }

    fn terminal_type_error(&self) -> String {
        format!(
            "trade_points.{}: terminal_type must be 1-{AUTHOR_TYPE_LEN_MAX} characters \
             (SPEC 4.1 authorType, which every scan answers), e.g. \"POS\"",
            self.id
        )
    }
}

/// A Custom-QR service (parking, utilities, ...): parameters the buyer fills, and how the amount
/// is computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: ServiceId,
    /// The trade point that receives the money (its merchant data is shown to the buyer).
    pub trade_point_id: TradePointId,
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
pub(crate) const COMMISSION_BPS_MAX: u32 = 10_000;

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

    /// `register_email` is one address the registers' e-mail can be sent to, as the sender reads
    /// it (`reg@bank.kz`, or `Bank <reg@bank.kz>`): a list, an empty text or stray spaces would
    /// be taken here and fail every sending, and the MPP would never get its registers.
    pub fn check_register_email(&self) -> Result<(), String> {
        match &self.register_email {
            Some(to) if to.trim() != to || to.parse::<lettre::message::Mailbox>().is_err() => {
                Err(format!(
                    "mpps.{}: register_email must be one e-mail address, such as \
                 registers@bank.kz (leave it out for no e-mail), not {to:?}",
                    self.caller_name
                ))
            }
            _ => Ok(()),
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

pub(crate) fn api_key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A SHA-256 written in hex, either case (64 digits): an API key's hash.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

impl CatalogFile {
    /// Another organization than `org` that has one of `org`'s API keys: a key says which
    /// organization calls, so one of two would lock the other out. Checked on the file and on
    /// an organization PUT, not on the stored catalog (keys stored before the check block no
    /// other change).
    pub(crate) fn key_shared_with(&self, org: &Organization) -> Option<&str> {
        let keys = org.key_hashes();
        self.organizations
            .iter()
            .filter(|other| other.bin != org.bin)
            .find(|other| !other.key_hashes().is_disjoint(&keys))
            .map(|other| other.bin.as_str())
    }

    /// Each pair of organizations that share an API key (`"a and b"`), in one pass: stored data
    /// the checks above did not see (an earlier build, or the file seeding beside the admin
    /// API's), which the start warns of. The key lets in only one of them.
    pub(crate) fn shared_keys(&self) -> Vec<String> {
        let mut owners: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        let mut shared = std::collections::BTreeSet::new();
        for org in &self.organizations {
            for hash in org.key_hashes() {
                match owners.insert(hash, org.bin.as_str()) {
                    Some(other) if other != org.bin => {
                        shared.insert(format!("{other} and {}", org.bin));
                    }
                    _ => {}
                }
            }
        }
        shared.into_iter().collect()
    }

    /// The items of this file (the configuration's) that `stored` holds otherwise, each as its
    /// kind, its key and the settings that differ (`mpps demobank (refund_url)`). A start adds
    /// only what is missing, so for these the stored item is in force, not the file's.
    pub fn set_aside_by(&self, stored: &CatalogFile) -> Vec<String> {
        fn differing<T: Serialize>(
            kind: &str,
            file: &[T],
            stored: &[T],
            key: impl Fn(&T) -> String,
        ) -> Vec<String> {
            // Lists of plain values are sets here (API key hashes, certificates, addresses): the
            // same ones in another order are the same setting.
            let as_map = |item: &T| match serde_json::to_value(item) {
                Ok(serde_json::Value::Object(mut map)) => {
                    for value in map.values_mut() {
                        if let serde_json::Value::Array(list) = value
                            && list.iter().all(serde_json::Value::is_string)
                        {
                            list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                        }
                    }
                    map
                }
                _ => serde_json::Map::new(),
            };
            let stored: HashMap<String, &T> = stored.iter().map(|s| (key(s), s)).collect();
            file.iter()
                .filter_map(|item| {
                    let (ours, theirs) = (as_map(item), as_map(stored.get(&key(item))?));
                    let settings: std::collections::BTreeSet<&String> = ours
                        .keys()
                        .chain(theirs.keys())
                        .filter(|name| ours.get(*name) != theirs.get(*name))
                        .collect();
                    let settings: Vec<&str> = settings.into_iter().map(String::as_str).collect();
                    (!settings.is_empty())
                        .then(|| format!("{kind} {} ({})", key(item), settings.join(", ")))
                })
                .collect()
        }
        let organizations: Vec<Organization> = self
            .organizations
            .iter()
            .map(|org| {
                let mut org = org.clone();
                org.hash_keys();
                org
            })
            .collect();
        let mut found = differing("mpps", &self.mpps, &stored.mpps, |m| {
            m.caller_name.to_string()
        });
        found.extend(differing(
            "organizations",
            &organizations,
            &stored.organizations,
            |o| o.bin.clone(),
        ));
        found.extend(differing(
            "trade_points",
            &self.trade_points,
            &stored.trade_points,
            |t| t.id.to_string(),
        ));
        found.extend(differing(
            "services",
            &self.services,
            &stored.services,
            |s| s.id.to_string(),
        ));
        found
    }

    /// What a start and `--check` say of [`CatalogFile::set_aside_by`]'s items, if any.
    pub fn set_aside_warning(&self, stored: &CatalogFile) -> Option<String> {
        let items = self.set_aside_by(stored);
        (!items.is_empty()).then(|| {
            format!(
                "operator data in the configuration differs from the database's, and the \
                 database's is in force (a start adds only what is missing): {}; make the file \
                 say what the database does, or drop the item from it (a change made through \
                 the admin API or the console stays; docs/configuration.md, Operator data)",
                items.join("; ")
            )
        })
    }

    /// [`CatalogFile::key_shared_with`] as the refusal that names the other organization.
    pub(crate) fn check_keys_of(&self, org: &Organization) -> Result<(), String> {
        match self.key_shared_with(org) {
            Some(other) => Err(format!(
                "api_keys: a key of the organization {other} too; each key is one \
                 organization's, as it says who calls"
            )),
            None => Ok(()),
        }
    }

    /// Checks references, uniqueness and the regulation's lengths; the error names the item.
    pub fn validate(&self) -> Result<(), String> {
        let mut callers = HashSet::new();
        let mut cabinet_tokens = std::collections::HashMap::new();
        for m in &self.mpps {
            // The MPP sends it as X-Caller-Name (visible ASCII), and it names the MPP in paths,
            // file names and the tunnel's configuration: letters, digits and `.`, `_`, `-`.
            if !tolem_wire::mpp::is_caller_name(m.caller_name.as_str()) {
                return Err(format!(
                    "mpps.{}: caller_name must be 1-12 characters, each a Latin letter, a digit, \
                     '.', '_' or '-'",
                    m.caller_name
                ));
            }
            if !callers.insert(&m.caller_name) {
                return Err(format!("mpps.{}: duplicate caller_name", m.caller_name));
            }
            check_call_url(&m.refund_url)
                .map_err(|why| format!("mpps.{}: refund_url {why}", m.caller_name))?;
            m.validate_commission()?;
            if let Some(bad) = m.cabinet_token_hashes.iter().find(|h| !is_sha256_hex(h)) {
                return Err(format!(
                    "mpps.{}: cabinet_token_hashes: {bad:?} is not a SHA-256 in hex (64 digits)",
                    m.caller_name
                ));
            }
            // The token alone says which MPP signs in: one held by two would open either's
            // cabinet (an MPP's item copied to make another, say).
            for hash in &m.cabinet_token_hashes {
                let first = cabinet_tokens.entry(hash.to_ascii_lowercase());
                let first = first.or_insert(&m.caller_name);
                if *first != &m.caller_name {
                    return Err(format!(
                        "mpps.{}: cabinet_token_hashes: a token of the MPP {first} too; each \
                         cabinet token is one MPP's, as it says who signs in",
                        m.caller_name
                    ));
                }
            }
            if let Some(ipsec) = &m.ipsec {
                super::ipsec::validate_mpp(m, ipsec)
                    .map_err(|e| format!("mpps.{}.ipsec: {e}", m.caller_name))?;
            }
        }
        // The PS knows an MPP with a tunnel by the inner address its requests come from: no
        // address may belong to two MPPs' tunnels.
        let tunnels: Vec<_> = self
            .mpps
            .iter()
            .filter_map(|m| {
                let inner = super::ipsec::mpp_inner(m, m.ipsec.as_ref()?).ok()?;
                Some((&m.caller_name, inner))
            })
            .collect();
        for (i, (a, a_inner)) in tunnels.iter().enumerate() {
            for (b, b_inner) in &tunnels[i + 1..] {
                if let Some((x, y)) = a_inner
                    .iter()
                    .flat_map(|x| b_inner.iter().map(move |y| (x, y)))
                    .find(|(x, y)| x.overlaps(y))
                {
                    return Err(format!(
                        "mpps.{b}.ipsec: inner {y} overlaps {a}'s {x}: each MPP's tunnel \
                         carries addresses of its own"
                    ));
                }
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
            o.check_api_keys()
                .map_err(|why| format!("organizations.{}: api_keys: {why}", o.bin))?;
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
            // Empty only in a trade point stored before a type was required: it still loads,
            // so that it blocks no other change, and each new or changed one needs a type
            // (`TradePoint::check_terminal_type`).
            if t.terminal_type.chars().count() > AUTHOR_TYPE_LEN_MAX {
                return Err(t.terminal_type_error());
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
                check_call_url(url).map_err(|why| format!("amount.url {why}"))
            }
        }
    }
}

impl Service {
    /// A callback given no time (`timeout_ms = 0`) would end every checkout in a timeout.
    /// Checked on the file and on a service PUT, as [`Organization::check_key_hashes`].
    pub(crate) fn check_callback(&self) -> Result<(), String> {
        match &self.amount {
            AmountRule::Callback {
                timeout_ms: Some(0),
                ..
            } => Err("amount.timeout_ms must be positive".to_owned()),
            _ => Ok(()),
        }
    }
}

/// A tariff is any positive amount: the PS sets it, so the MPP echoes it in notifyPayment with
/// its tiyn and it is taken as it is (DECISIONS 4; SPEC 4.3's whole tenge binds the amounts an
/// MPP chooses).
fn check_tariff(amount: Amount) -> Result<(), String> {
    if amount.is_zero() {
        return Err(format!("tariff {amount} must be positive"));
    }
    Ok(())
}

/// The fewest characters an API key has after its prefix: the keys the PS makes have 32 hex
/// digits (128 random bits), and a key is all that r1 asks of a caller, guessed at the merchant
/// listener's rate if it is short.
pub(crate) const API_KEY_SECRET_LEN_MIN: usize = 24;

impl Organization {
    /// Its API keys in clear (the configuration file's, an admin PUT's) are keys DECISIONS 28
    /// names: `test_` or `prod_`, then at least [`API_KEY_SECRET_LEN_MIN`] Latin letters or
    /// digits. Hashes already stored are not known any more and are left as they are.
    pub fn check_api_keys(&self) -> Result<(), String> {
        for key in &self.api_keys {
            let secret = key
                .strip_prefix("test_")
                .or_else(|| key.strip_prefix("prod_"))
                .ok_or("a key starts with test_ or prod_ (DECISIONS 28)")?;
            if secret.len() < API_KEY_SECRET_LEN_MIN
                || !secret.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "a key has at least {API_KEY_SECRET_LEN_MIN} Latin letters or digits after \
                     its prefix (POST …/api-keys makes one with 32)"
                ));
            }
        }
        Ok(())
    }

    /// Each key hash is a SHA-256 in hex. Checked on the file and on an organization PUT, not on
    /// the stored catalog: one stored before the check blocks no other change.
    pub(crate) fn check_key_hashes(&self) -> Result<(), String> {
        match self.api_key_hashes.iter().find(|h| !is_sha256_hex(h)) {
            Some(bad) => Err(format!(
                "api_key_hashes: {bad:?} is not a SHA-256 in hex (64 digits)"
            )),
            None => Ok(()),
        }
    }

    /// The SHA-256 of every key, given in clear or as a hash.
    fn key_hashes(&self) -> std::collections::BTreeSet<String> {
        self.api_keys
            .iter()
            .map(|k| api_key_hash(k))
            .chain(self.api_key_hashes.iter().map(|h| h.to_ascii_lowercase()))
            .collect()
    }

    /// Moves clear-text keys to hashes, so that only hashes are stored, and writes each client
    /// certificate's fingerprint one way (lowercase, no colons, once).
    pub fn hash_keys(&mut self) {
        for hash in &mut self.api_key_hashes {
            hash.make_ascii_lowercase();
        }
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
            .map_err(|e| {
                format!(
                    "the PEM certificate does not parse: {}",
                    super::pem::pem_error(&e)
                )
            })?;
        webpki::EndEntityCert::try_from(&leaf)
            .map_err(|_| "the PEM block is not an X.509 certificate: it does not parse as one")?;
        Ok(Fingerprint::of_der(&leaf))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Checks a URL the PS will call (an MPP's `refund_url`, a Custom service's callback): `http://`
/// or `https://`, a host, no credentials (they would be logged with the URL) and no fragment.
/// The error says what is wrong, for the operator.
pub(crate) fn check_call_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (they would be logged)".to_owned());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a #fragment".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_the_database_holds_otherwise_are_named_with_their_settings() {
        let file = crate::Config::load_text(crate::SANDBOX_TOML, "sandbox.toml", Vec::new())
            .expect("the sandbox's configuration")
            .catalog;
        // As a start stores them: API keys as their digests.
        let mut stored = file.clone();
        for org in &mut stored.organizations {
            org.hash_keys();
        }
        assert_eq!(file.set_aside_by(&stored), Vec::<String>::new());
        assert!(file.set_aside_warning(&stored).is_none());
        // The same hashes in another order are the same keys.
        let mut reordered = stored.clone();
        reordered.organizations[0]
            .api_key_hashes
            .push("ab".repeat(32));
        let mut file_reordered = file.clone();
        file_reordered.organizations[0]
            .api_key_hashes
            .insert(0, "ab".repeat(32));
        assert_eq!(
            file_reordered.set_aside_by(&reordered),
            Vec::<String>::new()
        );
        stored.mpps[0].refund_url = "http://10.0.0.9/refund".to_owned();
        stored.mpps[0].commission_bps += 1;
        stored.trade_points[0].active = !stored.trade_points[0].active;
        // An item the database lacks is one a start adds, not one set aside.
        stored.services.clear();
        let (mpp, point) = (
            stored.mpps[0].caller_name.to_string(),
            stored.trade_points[0].id.to_string(),
        );
        assert_eq!(
            file.set_aside_by(&stored),
            [
                format!("mpps {mpp} (commission_bps, refund_url)"),
                format!("trade_points {point} (active)")
            ]
        );
        let said = file.set_aside_warning(&stored).expect("a warning");
        assert!(said.contains("the database's is in force"), "{said}");
    }

    #[test]
    fn api_keys_in_clear_have_a_prefix_and_enough_secret() {
        let org = |keys: &[&str]| Organization {
            bin: "990340001234".to_owned(),
            name: "Org".to_owned(),
            status: OrganizationStatus::Active,
            api_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            api_key_hashes: Vec::new(),
            r3_allowed_ips: Vec::new(),
            client_certificates: Vec::new(),
        };
        for good in [
            "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39",
            "prod_abcdefghijklmnopqrstuvwx",
        ] {
            assert_eq!(org(&[good]).check_api_keys(), Ok(()), "{good}");
        }
        for bad in [
            "a",
            "test_",
            "test_short",
            "live_5F3C2A9B8E7D4C1A0B9F8E7D6C5B4A39",
            "test_5F3C2A9B8E7D4C1A0B9F8E7D6C5B 39",
        ] {
            assert!(org(&[bad]).check_api_keys().is_err(), "{bad}");
        }
        let file = CatalogFile {
            organizations: vec![org(&["a"])],
            ..CatalogFile::default()
        };
        let why = file.validate().expect_err("a short key");
        assert!(
            why.starts_with("organizations.990340001234: api_keys: "),
            "{why}"
        );
    }

    #[test]
    fn a_key_is_one_organizations_and_a_hash_is_a_sha_256() {
        let key = "prod_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let org = |bin: &str, keys: &[&str], hashes: &[&str]| Organization {
            bin: bin.to_owned(),
            name: "Org".to_owned(),
            status: OrganizationStatus::Active,
            api_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            api_key_hashes: hashes.iter().map(|k| (*k).to_owned()).collect(),
            r3_allowed_ips: Vec::new(),
            client_certificates: Vec::new(),
        };
        let hash = api_key_hash(key);
        // In clear in one, hashed (in capitals) in the other: the same key.
        let theirs = org("990340001111", &[key], &[]);
        let ours = org("990340002222", &[], &[&hash.to_ascii_uppercase()]);
        let file = CatalogFile {
            organizations: vec![theirs.clone(), ours.clone()],
            ..CatalogFile::default()
        };
        assert_eq!(file.key_shared_with(&ours), Some("990340001111"));
        assert_eq!(file.key_shared_with(&theirs), Some("990340002222"));
        assert_eq!(file.shared_keys(), ["990340001111 and 990340002222"]);
        // Stored so, it blocks no other change of the catalog.
        assert_eq!(file.validate(), Ok(()));
        // Twice in one organization is no one else's.
        let alone = org("990340001111", &[key], &[&hash]);
        let file = CatalogFile {
            organizations: vec![alone.clone()],
            ..CatalogFile::default()
        };
        assert_eq!(file.key_shared_with(&alone), None);
        assert_eq!(alone.check_key_hashes(), Ok(()));
        assert_eq!(
            org("990340001111", &[], &["nothex"]).check_key_hashes(),
            Err("api_key_hashes: \"nothex\" is not a SHA-256 in hex (64 digits)".to_owned())
        );
    }

    #[test]
    fn call_urls_are_http_or_https_with_a_host() {
        for good in [
            "http://10.0.0.5/refund",
            "https://mpp.bank.example:8443/refund?x=1",
            "https://127.0.0.1:9/amount",
        ] {
            assert_eq!(check_call_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("ftp://bank.example/refund", "http:// or https://"),
            ("https://", "not a URL"),
            ("bank.example/refund", "not a URL"),
            ("https://user:pw@bank.example/refund", "credentials"),
            ("https://bank.example/refund#x", "fragment"),
        ] {
            let err = check_call_url(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
