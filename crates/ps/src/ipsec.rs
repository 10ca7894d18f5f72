//! The IPSec link between the PS and each MPP (DECISIONS 42, SPEC 1.10): the strongSwan
//! `swanctl.conf` of both sides, generated from the configuration (`[ipsec]` for the PS,
//! `[mpps.ipsec]` for each MPP) with exactly the regulation's proposals, so that nobody types
//! them by hand. This module is pure text: `tolem ipsec` (crates/cli/src/ipsec.rs) keeps the
//! pre-shared keys and writes the files, and `docs/ipsec.md` tells both operators what to do
//! with them.
//!
//! Called by the CLI. The tables it reads, and their checks at configuration load, are
//! `crate::config::ipsec`'s (re-exported here).

use std::fmt;
use std::net::IpAddr;

use crate::catalog::Mpp;
use crate::config::Config;
pub use crate::config::ipsec::IpsecAuth;
use crate::config::ipsec::mpp_listen_addresses;
pub(crate) use crate::config::ipsec::{Subnet, mpp_inner};

// The regulation's table (SPEC 1.10) in strongSwan's words. IKE: AES-256 (CBC), HMAC-SHA-256
// integrity, PRF SHA-256, DH group 19 (ECP-256). ESP: AES-256, HMAC-SHA-256, and group 19 again,
// which makes strongSwan do a fresh Diffie-Hellman exchange at every rekeying (PFS).
pub(crate) const IKE_PROPOSAL: &str = "aes256-sha256-prfsha256-ecp256";
pub(crate) const ESP_PROPOSAL: &str = "aes256-sha256-ecp256";
/// Phase 1 lifetime: an IKE SA never lives longer.
pub(crate) const IKE_LIFETIME_S: u32 = 86_400;
/// Phase 2 lifetime: a CHILD SA never lives longer; there is no volume limit.
pub(crate) const ESP_LIFETIME_S: u32 = 28_800;

/// When rekeying starts: at 90 % of the lifetime, strongSwan's own margin (its hard limit is
/// 10 % past the rekey time by default). So the regulation's lifetime is the hard limit, and a
/// rekeying that fails now and then still has a tenth of the lifetime to succeed in.
pub const fn rekey_s(lifetime_s: u32) -> u32 {
    lifetime_s / 10 * 9
}

/// A pre-shared key we make is this long: 256 bits, the strength of the AES-256 it protects.
pub(crate) const PSK_BYTES: usize = 32;
/// A key brought from elsewhere (one the MPP chose) must have at least 128 bits …
const PSK_BYTES_MIN: usize = 16;
/// … and, to keep the file a key and not a document, at most 1024.
const PSK_BYTES_MAX: usize = 128;

/// A pre-shared key. Its `Debug` does not show it: it must reach no log and no terminal.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(Vec<u8>);

impl Psk {
    /// A new key from the operating system's generator (through `rand`'s thread generator, a
    /// CSPRNG seeded from it).
    pub fn generate() -> Psk {
        let bytes: [u8; PSK_BYTES] = rand::random();
        Psk(bytes.to_vec())
    }

    /// A key as [`Psk::to_text`] writes it: `0x` and hexadecimal digits, surrounding
    /// whitespace ignored.
    pub fn parse(text: &str) -> Result<Psk, IpsecError> {
        let bad = || {
            IpsecError::BadPsk(format!(
                "a key is 0x followed by {}-{} bytes in hexadecimal",
                PSK_BYTES_MIN, PSK_BYTES_MAX
            ))
        };
        let digits = text.trim().strip_prefix("0x").ok_or_else(bad)?;
        let bytes = hex::decode(digits).map_err(|_| bad())?;
        if !(PSK_BYTES_MIN..=PSK_BYTES_MAX).contains(&bytes.len()) {
            return Err(bad());
        }
        Ok(Psk(bytes))
    }

    /// The form swanctl reads: `0x` and hexadecimal digits.
    pub fn to_text(&self) -> String {
        format!("0x{}", hex::encode(&self.0))
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk({} bytes)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IpsecError {
    #[error(
        "ipsec.gateway: set the PS's outer address (where the MPPs' gateways reach it) to generate the IPSec link (docs/ipsec.md)"
    )]
    NoGateway,
    #[error("ipsec.inner: give the PS's inner addresses (where the MPPs reach its MPP API): {0}")]
    NoPsInner(String),
    #[error("no MPP with caller_name {0:?} in the configuration")]
    UnknownMpp(String),
    #[error(
        "mpps.{0}: no [mpps.ipsec] table; give at least its gateway's outer address (docs/ipsec.md)"
    )]
    NotConfigured(String),
    #[error("mpps.{0}.ipsec: {1}")]
    Mpp(String, String),
    #[error("pre-shared key: {0}")]
    BadPsk(String),
}

/// The files of one link: what each side loads.
#[derive(Debug)]
pub struct Link {
    /// The MPP's caller name as it can name a file or a swanctl section ([`section_name`]).
    pub name: String,
    /// The PS's side.
    pub ps: Side,
    /// The MPP's side.
    pub mpp: Side,
}

/// One side's files.
#[derive(Debug)]
pub struct Side {
    /// `swanctl.conf`: the connection. Holds no secret.
    pub swanctl: String,
    /// `secrets.conf`: the pre-shared key, with PSK authentication only.
    pub secrets: Option<String>,
}

/// One end of the tunnel, as a `swanctl.conf` names it.
struct Peer {
    /// "the PS" or "the MPP", for the files' comments.
    role: &'static str,
    /// "ps" or "mpp": the other side names its connection to this one `<kind>-<name>`, so that
    /// it meets no other connection of the same gateway.
    kind: &'static str,
    /// Its caller name, escaped.
    name: String,
    gateway: IpAddr,
    id: String,
    inner: Vec<Subnet>,
    certificate: Option<String>,
}

/// The link to `mpp`. With PSK authentication (the default) `psk` is its key.
pub fn link(config: &Config, mpp: &Mpp, psk: Option<&Psk>) -> Result<Link, IpsecError> {
    let ipsec = &config.ipsec;
    let gateway = ipsec.gateway.ok_or(IpsecError::NoGateway)?;
    let name = section_name(mpp.caller_name.as_str());
    let table = mpp
        .ipsec
        .as_ref()
        .ok_or_else(|| IpsecError::NotConfigured(name.clone()))?;
    let ps = Peer {
        role: "the PS",
        kind: "ps",
        name: section_name(&config.caller_name),
        gateway,
        id: ipsec.id.clone().unwrap_or_else(|| gateway.to_string()),
        inner: ps_inner(config)?,
        certificate: ipsec.certificate.clone(),
    };
    let them = Peer {
        role: "the MPP",
        kind: "mpp",
        name: name.clone(),
        gateway: table.gateway,
        id: table
            .id
            .clone()
            .unwrap_or_else(|| table.gateway.to_string()),
        inner: mpp_inner(mpp, table).map_err(|e| IpsecError::Mpp(name.clone(), e))?,
        certificate: table.certificate.clone(),
    };
    if ps.gateway.is_ipv4() != them.gateway.is_ipv4() {
        return Err(IpsecError::Mpp(
            name,
            format!(
                "its gateway {} and the PS's (ipsec.gateway) {} must both be IPv4 or both IPv6",
                them.gateway, ps.gateway
            ),
        ));
    }
    let secret = match ipsec.auth {
        IpsecAuth::Psk => Some(psk.ok_or_else(|| {
            IpsecError::BadPsk("PSK authentication needs the link's key".to_owned())
        })?),
        IpsecAuth::Pubkey => {
            if them.certificate.is_none() {
                return Err(IpsecError::Mpp(
                    name,
                    "certificate: needed with ipsec.auth = \"pubkey\"".to_owned(),
                ));
            }
            None
        }
    };
    let secrets =
        |local: &Peer, remote: &Peer| secret.map(|key| render_secrets(local, remote, key));
    Ok(Link {
        ps: Side {
            swanctl: render(&ps, &them, ipsec.auth),
            secrets: secrets(&ps, &them),
        },
        mpp: Side {
            swanctl: render(&them, &ps, ipsec.auth),
            secrets: secrets(&them, &ps),
        },
        name,
    })
}

/// The PS's inner addresses: `ipsec.inner`, else the addresses its MPP API listens on.
pub(crate) fn ps_inner(config: &Config) -> Result<Vec<Subnet>, IpsecError> {
    if !config.ipsec.inner.is_empty() {
        return Ok(config.ipsec.inner.clone());
    }
    let mut inner = Vec::new();
    for address in mpp_listen_addresses(config) {
        // A wildcard or loopback address says nothing of where the tunnel delivers.
        if address.is_unspecified() || address.is_loopback() {
            return Err(IpsecError::NoPsInner(format!(
                "the MPP API listens on {address}, which does not say where the tunnel arrives"
            )));
        }
        let host = Subnet::host(address);
        if !inner.contains(&host) {
            inner.push(host);
        }
    }
    if inner.is_empty() {
        return Err(IpsecError::NoPsInner("no listener serves `mpp`".to_owned()));
    }
    Ok(inner)
}

/// A caller name as a swanctl section and a file name: letters, digits and `-` stay; every
/// other byte becomes `_` and two hex digits (`_` too, so that no two names meet): `a.b` is
/// `a_2eb`. A dot would split a swanctl section, a slash a path.
pub fn section_name(caller_name: &str) -> String {
    let mut name = String::with_capacity(caller_name.len());
    for byte in caller_name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("_{byte:02x}"));
        }
    }
    name
}

fn join(subnets: &[Subnet]) -> String {
    subnets
        .iter()
        .map(Subnet::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn header(local: &Peer, remote: &Peer, what: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "# {what} of {} ({}) for its IPSec link with {} ({}), DECISIONS 42.\n\
         # Made by `tolem ipsec` (Tolem {version}) from the PS's configuration: change that and\n\
         # run it again rather than editing this file. Loading and checking: docs/ipsec.md.\n",
        local.role, local.name, remote.role, remote.name
    )
}

/// The regulation's table (SPEC 1.10), for the person who reads the file.
const TABLE: &str = "\
#
# The regulation's proposals (SPEC 1.10), the same on both sides:
#                  phase 1 (IKE SA)           phase 2 (CHILD SA)
#   scheme         IKEv2                      ESP, tunnel mode
#   encryption     AES-256                    AES-256
#   integrity      HMAC-SHA-256               HMAC-SHA-256
#   PRF            SHA-256                    -
#   Diffie-Hellman group 19 (ECP-256)         group 19 (ECP-256): PFS
#   lifetime       86400 s                    28800 s, no volume limit
";

fn render(local: &Peer, remote: &Peer, auth: IpsecAuth) -> String {
    let conn = connection(remote);
    let auth_word = match auth {
        IpsecAuth::Psk => "psk",
        IpsecAuth::Pubkey => "pubkey",
    };
    let certs = |peer: &Peer| match (auth, &peer.certificate) {
        (IpsecAuth::Pubkey, Some(file)) => format!("            certs = \"{file}\"\n"),
        _ => String::new(),
    };
    let ike_rekey = rekey_s(IKE_LIFETIME_S);
    let esp_rekey = rekey_s(ESP_LIFETIME_S);
    let mut text = header(local, remote, "swanctl.conf");
    text.push_str(TABLE);
    text.push_str(&format!(
        "#   authentication {}\n\n",
        match auth {
            IpsecAuth::Psk => "pre-shared key (in secrets.conf beside this file)",
            IpsecAuth::Pubkey => "certificates",
        }
    ));
    text.push_str(&format!(
        "connections {{
    {conn} {{
        version = 2
        local_addrs = {local_gw}
        remote_addrs = {remote_gw}
        proposals = {IKE_PROPOSAL}
        # Rekeyed by {ike_rekey} s (less a random part, so that both sides do not start at
        # once); {IKE_LIFETIME_S} s, the regulation's lifetime, is the hard end of an IKE SA.
        rekey_time = {ike_rekey}s
        over_time = {ike_over}s
        dpd_delay = 30s
        local {{
            auth = {auth_word}
            id = \"{local_id}\"
{local_certs}        }}
        remote {{
            auth = {auth_word}
            id = \"{remote_id}\"
        }}
        children {{
            {conn} {{
                mode = tunnel
                local_ts = {local_ts}
                remote_ts = {remote_ts}
                esp_proposals = {ESP_PROPOSAL}
                # Rekeyed by {esp_rekey} s, less a random part; {ESP_LIFETIME_S} s, the regulation's
                # lifetime, is the hard end of a CHILD SA.
                rekey_time = {esp_rekey}s
                life_time = {ESP_LIFETIME_S}s
                # No volume limit.
                rekey_bytes = 0
                life_bytes = 0
                rekey_packets = 0
                life_packets = 0
                # Either side's first packet brings the tunnel up.
                start_action = trap
            }}
        }}
    }}
}}
",
        local_gw = local.gateway,
        remote_gw = remote.gateway,
        ike_over = IKE_LIFETIME_S - ike_rekey,
        local_id = local.id,
        local_certs = certs(local),
        remote_id = remote.id,
        local_ts = join(&local.inner),
        remote_ts = join(&remote.inner),
    ));
    text
}

/// The name of the connection to `remote`: `mpp-bank` on the PS, `ps-tolem` on the MPP.
fn connection(remote: &Peer) -> String {
    format!("{}-{}", remote.kind, remote.name)
}

fn render_secrets(local: &Peer, remote: &Peer, psk: &Psk) -> String {
    let conn = connection(remote);
    let mut text = header(local, remote, "secrets.conf");
    text.push_str(
        "# The pre-shared key: keep this file 0600, and carry the MPP's by a separate channel.\n\n",
    );
    text.push_str(&format!(
        "secrets {{
    ike-{conn} {{
        id-local = \"{}\"
        id-remote = \"{}\"
        secret = {}
    }}
}}
",
        local.id,
        remote.id,
        psk.to_text()
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS_TOML: &str = r#"
caller_name = "tolem"
listen = "198.51.100.1:8080"

[ipsec]
gateway = "192.0.2.1"

[[mpps]]
caller_name = "bank"
name = "Bank"
refund_url = "http://203.0.113.7:8091/refund"

[mpps.ipsec]
gateway = "192.0.2.2"
"#;

    fn config(text: &str) -> Config {
        Config::from_toml(text).expect("a valid configuration")
    }

    fn psk() -> Psk {
        Psk::parse(&format!("0x{}", "ab".repeat(32))).expect("a key")
    }

    fn bank_link(config: &Config) -> Result<Link, IpsecError> {
        link(config, &config.catalog.mpps[0], Some(&psk()))
    }

    /// The value of `key = …` lines in `text`, in order.
    fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix('='))
            .map(str::trim)
            .collect()
    }

    #[test]
    fn both_sides_carry_exactly_the_regulations_proposals() {
        let link = bank_link(&config(PS_TOML)).expect("a link");
        for side in [&link.ps.swanctl, &link.mpp.swanctl] {
            assert_eq!(values(side, "version"), ["2"]);
            assert_eq!(
                values(side, "proposals"),
                ["aes256-sha256-prfsha256-ecp256"]
            );
            assert_eq!(values(side, "esp_proposals"), ["aes256-sha256-ecp256"]);
            assert_eq!(values(side, "mode"), ["tunnel"]);
            // IKE: rekeyed at 90 %, hard end at 86400 s; ESP: the same at 28800 s.
            assert_eq!(values(side, "rekey_time"), ["77760s", "25920s"]);
            assert_eq!(values(side, "over_time"), ["8640s"]);
            assert_eq!(values(side, "life_time"), ["28800s"]);
            for volume in ["rekey_bytes", "life_bytes", "rekey_packets", "life_packets"] {
                assert_eq!(values(side, volume), ["0"], "{volume}");
            }
            assert_eq!(values(side, "auth"), ["psk", "psk"]);
            assert!(side.contains("IKEv2"), "the table is in the header");
            assert!(values(side, "secret").is_empty(), "no key in swanctl.conf");
        }
    }

    #[test]
    fn the_sides_mirror_each_other() {
        let link = bank_link(&config(PS_TOML)).expect("a link");
        let (ps, mpp) = (&link.ps.swanctl, &link.mpp.swanctl);
        assert_eq!(link.name, "bank");
        assert!(ps.contains("    mpp-bank {"), "{ps}");
        assert!(mpp.contains("    ps-tolem {"), "{mpp}");
        assert_eq!(values(ps, "local_addrs"), ["192.0.2.1"]);
        assert_eq!(values(ps, "remote_addrs"), ["192.0.2.2"]);
        assert_eq!(values(mpp, "local_addrs"), ["192.0.2.2"]);
        assert_eq!(values(mpp, "remote_addrs"), ["192.0.2.1"]);
        assert_eq!(values(ps, "id"), ["\"192.0.2.1\"", "\"192.0.2.2\""]);
        assert_eq!(values(mpp, "id"), ["\"192.0.2.2\"", "\"192.0.2.1\""]);
        // The PS's inner address comes from `listen`, the MPP's from its refund URL.
        assert_eq!(values(ps, "local_ts"), ["198.51.100.1/32"]);
        assert_eq!(values(ps, "remote_ts"), ["203.0.113.7/32"]);
        assert_eq!(values(mpp, "local_ts"), ["203.0.113.7/32"]);
        assert_eq!(values(mpp, "remote_ts"), ["198.51.100.1/32"]);
        let secret = format!("0x{}", "ab".repeat(32));
        for secrets in [&link.ps.secrets, &link.mpp.secrets] {
            let secrets = secrets.as_deref().expect("PSK secrets");
            assert_eq!(values(secrets, "secret"), [secret.as_str()]);
        }
        let ps_secrets = link.ps.secrets.as_deref().unwrap_or_default();
        assert_eq!(values(ps_secrets, "id-local"), ["\"192.0.2.1\""]);
        assert!(ps_secrets.contains("ike-mpp-bank {"), "{ps_secrets}");
    }

    #[test]
    fn the_same_input_makes_the_same_files() {
        let config = config(PS_TOML);
        let (a, b) = (
            bank_link(&config).expect("a"),
            bank_link(&config).expect("b"),
        );
        assert_eq!(a.ps.swanctl, b.ps.swanctl);
        assert_eq!(a.mpp.secrets, b.mpp.secrets);
    }

    #[test]
    fn inner_networks_and_identities_are_taken_as_given() {
        let text = PS_TOML
            .replace(
                "gateway = \"192.0.2.1\"",
                "gateway = \"192.0.2.1\"\nid = \"ps.example\"\ninner = [\"198.51.100.0/28\", \"198.51.100.64/26\"]",
            )
            .replace(
                "gateway = \"192.0.2.2\"",
                "gateway = \"192.0.2.2\"\nid = \"C=KZ, O=Bank, CN=gw\"\ninner = [\"203.0.113.0/24\"]",
            );
        let link = bank_link(&config(&text)).expect("a link");
        assert_eq!(
            values(&link.ps.swanctl, "local_ts"),
            ["198.51.100.0/28,198.51.100.64/26"]
        );
        assert_eq!(values(&link.ps.swanctl, "remote_ts"), ["203.0.113.0/24"]);
        assert_eq!(
            values(&link.mpp.swanctl, "id"),
            ["\"C=KZ, O=Bank, CN=gw\"", "\"ps.example\""]
        );
    }

    #[test]
    fn the_ps_inner_address_comes_from_its_mpp_listeners() {
        let text = PS_TOML
            .replace("listen = \"198.51.100.1:8080\"\n", "")
            .replace(
                "[ipsec]",
                "[[listeners]]\naddress = \"198.51.100.9:8080\"\nsurfaces = [\"mpp\"]\n\
             [[listeners]]\naddress = \"0.0.0.0:443\"\nsurfaces = [\"merchant\", \"admin\"]\n[ipsec]",
            );
        let link = bank_link(&config(&text)).expect("a link");
        assert_eq!(values(&link.ps.swanctl, "local_ts"), ["198.51.100.9/32"]);
        // Without a listener for the MPP API there is no configuration to make a link of.
        let text = text.replace("surfaces = [\"mpp\"]", "surfaces = [\"admin\"]");
        let err = Config::from_toml(&text).expect_err("no MPP listener");
        assert!(err.to_string().contains("mpp"), "{err}");
    }

    #[test]
    fn a_wildcard_listener_needs_inner_addresses() {
        let text = PS_TOML.replace("198.51.100.1:8080", "0.0.0.0:8080");
        let err = bank_link(&config(&text)).expect_err("no inner address");
        assert!(err.to_string().starts_with("ipsec.inner:"), "{err}");
        let text = PS_TOML.replace("198.51.100.1:8080", "127.0.0.1:8080");
        assert!(matches!(
            bank_link(&config(&text)),
            Err(IpsecError::NoPsInner(_))
        ));
    }

    #[test]
    fn a_listener_outside_the_inner_networks_is_refused_at_load() {
        let text = PS_TOML.replace(
            "gateway = \"192.0.2.1\"",
            "gateway = \"192.0.2.1\"\ninner = [\"198.51.100.128/25\"]",
        );
        let err = Config::from_toml(&text).expect_err("outside");
        assert!(err.to_string().contains("ipsec.inner"), "{err}");
        assert!(err.to_string().contains("198.51.100.1"), "{err}");
    }

    #[test]
    fn the_refund_address_must_be_inside_the_mpps_inner_networks() {
        let text = PS_TOML.replace(
            "gateway = \"192.0.2.2\"",
            "gateway = \"192.0.2.2\"\ninner = [\"203.0.113.128/25\"]",
        );
        let err = Config::from_toml(&text).expect_err("outside");
        assert!(err.to_string().contains("mpps.bank"), "{err}");
        assert!(err.to_string().contains("203.0.113.7"), "{err}");
        // A host name cannot give the inner address.
        let text = PS_TOML.replace("203.0.113.7:8091", "bank.example:8091");
        let err = Config::from_toml(&text).expect_err("a name");
        assert!(err.to_string().contains("inner"), "{err}");
        let text = text.replace(
            "gateway = \"192.0.2.2\"",
            "gateway = \"192.0.2.2\"\ninner = [\"203.0.113.0/24\"]",
        );
        Config::from_toml(&text).expect("a name with inner networks");
    }

    #[test]
    fn unknown_and_bad_keys_are_errors() {
        for (from, to, names) in [
            ("[ipsec]\n", "[ipsec]\ngatway = \"x\"\n", "gatway"),
            ("[mpps.ipsec]\n", "[mpps.ipsec]\npsk = \"x\"\n", "psk"),
            ("\"192.0.2.2\"", "\"192.0.2\"", "gateway"),
            (
                "[mpps.ipsec]\n",
                "[mpps.ipsec]\ninner = [\"203.0.113.7/24\"]\n",
                "host bits",
            ),
            (
                "[mpps.ipsec]\n",
                "[mpps.ipsec]\ninner = [\"203.0.113.7/33\"]\n",
                "0-32",
            ),
            (
                "[ipsec]\n",
                "[ipsec]\nauth = \"pubkey\"\n",
                "ipsec.certificate",
            ),
            ("[ipsec]\n", "[ipsec]\nauth = \"cert\"\n", "cert"),
            ("[ipsec]\n", "[ipsec]\nid = \"a\\\"b\"\n", "ipsec.id"),
        ] {
            let text = PS_TOML.replacen(from, to, 1);
            let err = Config::from_toml(&text).expect_err(to);
            assert!(err.to_string().contains(names), "{to}: {err}");
        }
    }

    #[test]
    fn the_link_needs_the_gateways_and_a_key() {
        let text = PS_TOML.replace("[ipsec]\ngateway = \"192.0.2.1\"\n", "");
        assert!(matches!(
            bank_link(&config(&text)),
            Err(IpsecError::NoGateway)
        ));
        let text = PS_TOML.replace("[mpps.ipsec]\ngateway = \"192.0.2.2\"\n", "");
        let err = bank_link(&config(&text)).expect_err("no table");
        assert!(err.to_string().contains("mpps.bank"), "{err}");
        let config = config(PS_TOML);
        assert!(matches!(
            link(&config, &config.catalog.mpps[0], None),
            Err(IpsecError::BadPsk(_))
        ));
        let text = PS_TOML.replace("\"192.0.2.2\"", "\"2001:db8::2\"");
        let err = bank_link(&self::config(&text)).expect_err("mixed families");
        assert!(err.to_string().contains("IPv4"), "{err}");
    }

    #[test]
    fn certificates_are_named_and_no_key_is_made() {
        let text = PS_TOML
            .replace(
                "[ipsec]\n",
                "[ipsec]\nauth = \"pubkey\"\ncertificate = \"ps-gw.pem\"\n",
            )
            .replace(
                "[mpps.ipsec]\n",
                "[mpps.ipsec]\ncertificate = \"bank-gw.pem\"\n",
            );
        let config = config(&text);
        let link = link(&config, &config.catalog.mpps[0], None).expect("a link");
        assert_eq!(values(&link.ps.swanctl, "auth"), ["pubkey", "pubkey"]);
        assert_eq!(values(&link.ps.swanctl, "certs"), ["\"ps-gw.pem\""]);
        assert_eq!(values(&link.mpp.swanctl, "certs"), ["\"bank-gw.pem\""]);
        assert!(link.ps.secrets.is_none() && link.mpp.secrets.is_none());
        let text = text.replace("certificate = \"bank-gw.pem\"\n", "");
        let config = self::config(&text);
        let err = self::link(&config, &config.catalog.mpps[0], None).expect_err("no cert");
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[test]
    fn ipv6_links_work_alike() {
        let text = PS_TOML
            .replace("198.51.100.1:8080", "[2001:db8:1::1]:8080")
            .replace("\"192.0.2.1\"", "\"2001:db8::1\"")
            .replace("\"192.0.2.2\"", "\"2001:db8::2\"")
            .replace("203.0.113.7:8091", "[2001:db8:2::7]:8091");
        let link = bank_link(&config(&text)).expect("a link");
        assert_eq!(values(&link.ps.swanctl, "local_ts"), ["2001:db8:1::1/128"]);
        assert_eq!(values(&link.ps.swanctl, "remote_ts"), ["2001:db8:2::7/128"]);
    }

    #[test]
    fn subnets_parse_strictly_and_contain_their_hosts() {
        let net: Subnet = "198.51.100.0/24".parse().expect("a network");
        assert!(net.contains("198.51.100.255".parse().expect("ip")));
        assert!(!net.contains("198.51.101.0".parse().expect("ip")));
        assert!(!net.contains("::1".parse().expect("ip")));
        let all: Subnet = "0.0.0.0/0".parse().expect("everything");
        assert!(all.contains("203.0.113.7".parse().expect("ip")));
        assert_eq!(
            "198.51.100.7".parse::<Subnet>().map(|s| s.to_string()),
            Ok("198.51.100.7/32".to_owned())
        );
        for bad in [
            "",
            "x",
            "198.51.100.0/",
            "198.51.100.0/x",
            "1.2.3.4/-1",
            "::1/129",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_escaped_one_to_one() {
        assert_eq!(section_name("demo-bank1"), "demo-bank1");
        assert_eq!(section_name("kaspi.kz"), "kaspi_2ekz");
        assert_eq!(section_name("a_2e"), "a_5f2e");
        assert_ne!(section_name("a.b"), section_name("a_2eb"));
        assert_eq!(section_name("x/../y\n"), "x_2f_2e_2e_2fy_0a");
    }

    #[test]
    fn a_key_is_hex_and_never_shown() {
        let key = Psk::generate();
        assert_ne!(key, Psk::generate());
        let text = key.to_text();
        assert_eq!(text.len(), 2 + 2 * PSK_BYTES);
        assert_eq!(Psk::parse(&format!(" {text}\n")).expect("round trip"), key);
        assert_eq!(format!("{key:?}"), "Psk(32 bytes)");
        for bad in ["", "0x", "abab", "0xzz", &format!("0x{}", "ab".repeat(15))] {
            assert!(Psk::parse(bad).is_err(), "{bad}");
        }
    }
}
