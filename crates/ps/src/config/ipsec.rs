//! The configuration's side of the IPSec link to each MPP (DECISIONS 42): the `[ipsec]` and
//! `[mpps.ipsec]` tables, the address values they are made of, and their checks at load and on
//! admin changes. The strongSwan files generated from them are the `ipsec` module's.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::catalog::Mpp;
use super::{Config, SurfaceName};

/// How the gateways prove who they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpsecAuth {
    /// A pre-shared key per MPP, made by `tolem ipsec` (the regulation's way).
    #[default]
    Psk,
    /// Certificates: each side's own, under its swanctl `x509/` folder, and the CA that signed
    /// the other's under `x509ca/`.
    Pubkey,
}

/// The IPSec table of an MPP in the operator data (`[mpps.ipsec]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MppIpsec {
    /// The MPP gateway's outer (public) address: where IKE and ESP reach it.
    #[serde(deserialize_with = "gateway_address")]
    pub gateway: IpAddr,
    /// Its IKE identity; absent: its gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The MPP's inner addresses or networks, the ones the tunnel carries (its encryption
    /// domain). Empty: the refund URL's host, which must then be an address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner: Vec<Subnet>,
    /// With `ipsec.auth = "pubkey"`: the MPP's certificate, a file name in its swanctl `x509/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// An MPP's gateway, read with an error that names it: the operator data is read flattened
/// into the configuration, where serde's own error would name neither the key nor the MPP.
fn gateway_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!("ipsec gateway {text:?} is not an IP address"))
    })
}

/// An address or a network, `198.51.100.7` (one host) or `198.51.100.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    address: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// The one address.
    pub fn host(address: IpAddr) -> Subnet {
        Subnet {
            address,
            prefix: max_prefix(address),
        }
    }

    /// Whether the two share an address (one network holds the other).
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.address) || other.contains(self.address)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // `address` is the network itself: parsing refuses host bits.
        ip.is_ipv4() == self.address.is_ipv4()
            && Subnet {
                address: ip,
                prefix: self.prefix,
            }
            .network()
                == self.address
    }

    /// The address with the bits past the prefix cleared.
    fn network(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

fn max_prefix(address: IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(text: &str) -> Result<Subnet, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or a network like 198.51.100.0/24"))?;
        let max = max_prefix(address);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0-{max}"))?,
        };
        let subnet = Subnet { address, prefix };
        // `198.51.100.7/24` is most likely a typo for one of two things; say which it is not.
        let network = subnet.network();
        if network != address {
            return Err(format!(
                "{text:?} has host bits set: the network is {network}/{prefix}, the host {address}"
            ));
        }
        Ok(subnet)
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;
    fn try_from(text: String) -> Result<Subnet, String> {
        text.parse()
    }
}

impl From<Subnet> for String {
    fn from(subnet: Subnet) -> String {
        subnet.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// Where the MPP API listens: the listeners serving it, or `listen` when there are none.
pub(crate) fn mpp_listen_addresses(config: &Config) -> Vec<IpAddr> {
    if config.listeners.is_empty() {
        return vec![config.listen.ip()];
    }
    config
        .listeners
        .iter()
        .filter(|l| l.surfaces.contains(&SurfaceName::Mpp))
        .map(|l| l.address.ip())
        .collect()
}

/// The MPP's inner addresses: its table's, else the refund URL's host; the refund URL's host,
/// when it is an address, must be among them, or the PS's refunds would not take the tunnel.
pub(crate) fn mpp_inner(mpp: &Mpp, table: &MppIpsec) -> Result<Vec<Subnet>, String> {
    let host = refund_host(&mpp.refund_url)?;
    if table.inner.is_empty() {
        return match host {
            Some(address) => Ok(vec![Subnet::host(address)]),
            None => Err(format!(
                "inner: the refund URL {} names a host, not an address; give the MPP's inner addresses",
                mpp.refund_url
            )),
        };
    }
    if let Some(address) = host
        && !table.inner.iter().any(|s| s.contains(address))
    {
        return Err(format!(
            "inner: the refund URL's address {address} is outside it, so refunds would not take the tunnel"
        ));
    }
    Ok(table.inner.clone())
}

/// The refund URL's host when it is an IP address; `None` for a name.
fn refund_host(url: &str) -> Result<Option<IpAddr>, String> {
    let url = reqwest::Url::parse(url).map_err(|e| format!("refund_url: {e}"))?;
    // An IPv6 host comes in brackets, as in the URL.
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(host.parse().ok())
}

/// Checks `[ipsec]` as far as it can be checked without an MPP: at configuration load.
pub(crate) fn validate_config(config: &Config) -> Result<(), String> {
    let ipsec = &config.ipsec;
    check_text("ipsec.id", ipsec.id.as_deref())?;
    check_text("ipsec.certificate", ipsec.certificate.as_deref())?;
    if ipsec.auth == IpsecAuth::Pubkey && ipsec.certificate.is_none() {
        return Err("ipsec.certificate: needed with ipsec.auth = \"pubkey\"".to_owned());
    }
    if ipsec.gateway.is_some() && !ipsec.inner.is_empty() {
        // A listener outside the encryption domain would never see an MPP's request.
        for address in mpp_listen_addresses(config) {
            if !address.is_unspecified() && !ipsec.inner.iter().any(|s| s.contains(address)) {
                return Err(format!(
                    "ipsec.inner: the MPP API listens on {address}, outside it, so the MPPs could not reach it through the tunnel"
                ));
            }
        }
    }
    Ok(())
}

/// Checks an MPP's `[mpps.ipsec]`: at configuration load and on admin changes.
pub(crate) fn validate_mpp(mpp: &Mpp, table: &MppIpsec) -> Result<(), String> {
    check_text("id", table.id.as_deref())?;
    check_text("certificate", table.certificate.as_deref())?;
    mpp_inner(mpp, table).map(drop)
}

/// An identity or a file name goes into `swanctl.conf` between quotes: nothing may end them.
fn check_text(key: &str, text: Option<&str>) -> Result<(), String> {
    match text {
        Some(t) if t.is_empty() || t.chars().any(|c| c.is_control() || c == '"' || c == '\\') => {
            Err(format!(
                "{key}: must be non-empty, without quotes, backslashes or control characters"
            ))
        }
        _ => Ok(()),
    }
}
