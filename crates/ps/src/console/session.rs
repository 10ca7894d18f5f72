//! The console's session: a cookie the PS signs and keeps nothing of, so that every node with the
//! same configuration accepts it (DECISIONS 45: nodes share the database and the configuration,
//! nothing else).
//!
//! The cookie is `hex(role|expires|id).hex(HMAC-SHA256)`. The key is derived from the token that
//! opened the session — the admin token for the operator, the MPP's cabinet token for its cabinet
//! — so a session ends when its token changes or is removed, with no list of sessions to keep:
//! the operator changing `admin_token` ends every operator session and no configured cabinet
//! token's; removing an MPP's cabinet token ends that MPP's. A cabinet token the admin API issued
//! keys its sessions to its hash, which the catalog keeps while the token is valid, and to the
//! admin token (the hash alone is no secret): revoking it, or changing `admin_token`, ends them.
//! The CSRF token of a form is an HMAC of the session's id under the same key, so it is valid for
//! that session only.

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::config::Config;

/// How long a session lasts from sign-in: a working day, then the token again.
pub(super) const SESSION_LIFETIME_S: i64 = 8 * 3600;
/// The cookie's name; `Path=/console` keeps it off every other route of the PS.
pub(super) const COOKIE: &str = "tolem_console";
/// Longest cookie value read; a longer one is not a session of ours.
const COOKIE_BYTES_MAX: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// Who a session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Operator,
    Mpp(String),
}

/// What let a session in: its role's token in the configuration, or a cabinet token the admin
/// API issued, by the token's SHA-256 (hex), which the catalog keeps while the token is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Through {
    Configured,
    Issued(String),
}

impl Role {
    fn text(&self, through: &Through) -> String {
        match (self, through) {
            (Role::Operator, _) => "operator".to_owned(),
            (Role::Mpp(name), Through::Configured) => format!("mpp:{name}"),
            (Role::Mpp(name), Through::Issued(hash)) => format!("mpp:{name}:{hash}"),
        }
    }

    fn parse(text: &str) -> Option<(Role, Through)> {
        if text == "operator" {
            return Some((Role::Operator, Through::Configured));
        }
        let name = text.strip_prefix("mpp:")?;
        let (name, through) = match name.split_once(':') {
            Some((name, hash)) => (name, Through::Issued(hash.to_owned())),
            None => (name, Through::Configured),
        };
        (!name.is_empty()).then(|| (Role::Mpp(name.to_owned()), through))
    }

    /// [`Role::key`] of a session `through` what let it in: an issued token's sessions are
    /// signed with a key of the admin token and the token's hash, valid while the catalog holds
    /// that hash for this MPP (revoking the token ends them; the hash alone, which the admin API
    /// shows, signs nothing).
    fn key_through(
        &self,
        through: &Through,
        config: &Config,
        catalog: &Catalog,
    ) -> Option<[u8; 32]> {
        let (Role::Mpp(name), Through::Issued(hash)) = (self, through) else {
            return self.key(config);
        };
        if catalog.mpp_by_cabinet_token_hash(hash)?.as_str() != name.as_str()
            || config.admin_token.is_empty()
        {
            return None;
        }
        let mut digest = Sha256::new();
        digest.update(b"tolem console session v1 issued\0");
        digest.update(name.as_bytes());
        digest.update(b"\0");
        digest.update(hash.as_bytes());
        digest.update(b"\0");
        digest.update(config.admin_token.as_bytes());
        Some(digest.finalize().into())
    }

    /// The signing key of this role's sessions; none when its token is not configured (then no
    /// session of it is valid).
    fn key(&self, config: &Config) -> Option<[u8; 32]> {
        let (label, token) = match self {
            Role::Operator => ("operator", config.admin_token.as_str()),
            Role::Mpp(name) => (
                name.as_str(),
                config.registers.cabinet_tokens.get(name)?.as_str(),
            ),
        };
        if token.is_empty() {
            return None;
        }
        let mut digest = Sha256::new();
        digest.update(b"tolem console session v1\0");
        digest.update(label.as_bytes());
        digest.update(b"\0");
        digest.update(token.as_bytes());
        Some(digest.finalize().into())
    }
}

/// A valid session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Session {
    pub role: Role,
    through: Through,
    pub expires: Timestamp,
    /// Random, so that two sessions of one role have different CSRF tokens.
    pub id: String,
    key: [u8; 32],
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes a key of any length; 32 bytes cannot be refused.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

impl Session {
    /// A new session of `role` from now, let in by its configured token; none when that is not
    /// configured.
    #[cfg(test)]
    pub(super) fn start(config: &Config, role: Role, now: Timestamp) -> Option<Session> {
        Session::start_through(config, &Catalog::default(), role, Through::Configured, now)
    }

    /// A new session of `role` from now, let in `through` a token; none when that token is not
    /// configured or, issued, not in `catalog` for that role.
    pub(super) fn start_through(
        config: &Config,
        catalog: &Catalog,
        role: Role,
        through: Through,
        now: Timestamp,
    ) -> Option<Session> {
        let key = role.key_through(&through, config, catalog)?;
        let id: [u8; 16] = rand::random();
        let expires =
            Timestamp::from_second(now.as_second().saturating_add(SESSION_LIFETIME_S)).ok()?;
        Some(Session {
            role,
            through,
            expires,
            id: hex::encode(id),
            key,
        })
    }

    /// The cookie's value.
    pub(super) fn cookie_value(&self) -> String {
        let payload = format!(
            "{}|{}|{}",
            self.role.text(&self.through),
            self.expires.as_second(),
            self.id
        );
        let tag = mac(&self.key, &[payload.as_bytes()])
            .finalize()
            .into_bytes();
        format!("{}.{}", hex::encode(payload), hex::encode(tag))
    }

    /// [`Session::verify_in`] with no token issued through the admin API.
    #[cfg(test)]
    pub(super) fn verify(config: &Config, value: &str, now: Timestamp) -> Option<Session> {
        Session::verify_in(config, &Catalog::default(), value, now)
    }

    /// The session a cookie value carries, if it is ours, untouched, unexpired and its token is
    /// still the one configured, or still issued in `catalog`.
    pub(super) fn verify_in(
        config: &Config,
        catalog: &Catalog,
        value: &str,
        now: Timestamp,
    ) -> Option<Session> {
        if value.len() > COOKIE_BYTES_MAX {
            return None;
        }
        let (payload, tag) = value.split_once('.')?;
        let payload = String::from_utf8(hex::decode(payload).ok()?).ok()?;
        let tag = hex::decode(tag).ok()?;
        let mut fields = payload.split('|');
        let (role, expires, id) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let (role, through) = Role::parse(role)?;
        let key = role.key_through(&through, config, catalog)?;
        // `verify_slice` compares in constant time.
        mac(&key, &[payload.as_bytes()]).verify_slice(&tag).ok()?;
        let expires = Timestamp::from_second(expires.parse().ok()?).ok()?;
        if expires <= now {
            return None;
        }
        Some(Session {
            role,
            through,
            expires,
            id: id.to_owned(),
            key,
        })
    }

    /// The CSRF token of this session's forms.
    pub(super) fn csrf(&self) -> String {
        let tag = mac(&self.key, &[b"csrf\0", self.id.as_bytes()])
            .finalize()
            .into_bytes();
        hex::encode(tag)
    }

    /// Whether `sent` is this session's CSRF token (compared in constant time).
    pub(super) fn csrf_ok(&self, sent: &str) -> bool {
        let Ok(sent) = hex::decode(sent) else {
            return false;
        };
        mac(&self.key, &[b"csrf\0", self.id.as_bytes()])
            .verify_slice(&sent)
            .is_ok()
    }
}

/// `Set-Cookie` for a session: HttpOnly, SameSite=Strict, Path=/console, Secure over TLS.
pub(super) fn set_cookie(session: &Session, secure: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/console; Max-Age={SESSION_LIFETIME_S}; HttpOnly; SameSite=Strict{}",
        session.cookie_value(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session.
pub(super) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name` in a `Cookie` header.
pub(super) fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut config = Config {
            admin_token: "admin-token-0123456789".to_owned(),
            ..Config::default()
        };
        config.registers.cabinet_tokens =
            [("demobank".to_owned(), "bank-token-0123456789".to_owned())].into();
        config
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("a time")
    }

    #[test]
    fn a_session_survives_its_cookie_until_it_expires() {
        let config = config();
        for role in [Role::Operator, Role::Mpp("demobank".to_owned())] {
            let session = Session::start(&config, role.clone(), now()).expect("configured");
            let value = session.cookie_value();
            let back = Session::verify(&config, &value, now()).expect("valid");
            assert_eq!(back, session);
            let late =
                Timestamp::from_second(now().as_second() + SESSION_LIFETIME_S - 1).expect("a time");
            assert!(Session::verify(&config, &value, late).is_some());
            let expired =
                Timestamp::from_second(now().as_second() + SESSION_LIFETIME_S).expect("a time");
            assert_eq!(Session::verify(&config, &value, expired), None);
        }
    }

    #[test]
    fn a_tampered_cookie_is_refused() {
        let config = config();
        let session =
            Session::start(&config, Role::Mpp("demobank".to_owned()), now()).expect("configured");
        let value = session.cookie_value();
        let (payload, tag) = value.split_once('.').expect("two parts");
        // The role changed to the operator, the signature kept.
        let forged = format!(
            "{}.{tag}",
            hex::encode(
                String::from_utf8(hex::decode(payload).expect("hex"))
                    .expect("text")
                    .replace("mpp:demobank", "operator")
            )
        );
        assert_eq!(Session::verify(&config, &forged, now()), None);
        // A later expiry, the signature kept.
        let text = String::from_utf8(hex::decode(payload).expect("hex")).expect("text");
        let later = text.replace(
            &session.expires.as_second().to_string(),
            &(session.expires.as_second() + 3600).to_string(),
        );
        assert_eq!(
            Session::verify(&config, &format!("{}.{tag}", hex::encode(later)), now()),
            None
        );
        // One bit of the signature flipped; garbage; empty.
        let mut bad = value.clone();
        let last = bad.pop().expect("a character");
        bad.push(if last == '0' { '1' } else { '0' });
        assert_eq!(Session::verify(&config, &bad, now()), None);
        for junk in ["", ".", "zz.zz", "6f70657261746f72", &"a".repeat(600)] {
            assert_eq!(Session::verify(&config, junk, now()), None);
        }
    }

    #[test]
    fn a_changed_or_removed_token_ends_its_sessions_only() {
        let config = config();
        let operator = Session::start(&config, Role::Operator, now()).expect("configured");
        let bank =
            Session::start(&config, Role::Mpp("demobank".to_owned()), now()).expect("configured");
        let mut changed = config.clone();
        changed.registers.cabinet_tokens.clear();
        assert_eq!(Session::verify(&changed, &bank.cookie_value(), now()), None);
        assert!(Session::verify(&changed, &operator.cookie_value(), now()).is_some());
        let mut changed = config.clone();
        changed.admin_token = "another-admin-token-0123".to_owned();
        assert_eq!(
            Session::verify(&changed, &operator.cookie_value(), now()),
            None
        );
        assert!(Session::verify(&changed, &bank.cookie_value(), now()).is_some());
        // Nothing configured, nothing starts.
        assert_eq!(
            Session::start(&Config::default(), Role::Operator, now()),
            None
        );
    }

    #[test]
    fn an_issued_token_s_session_lasts_while_the_catalog_holds_its_hash() {
        let config = config();
        let hash = "ab".repeat(32);
        let mut file = crate::config::catalog::CatalogFile::default();
        let mut mpp: crate::config::catalog::Mpp =
            toml::from_str("caller_name = \"newbank\"\nname = \"N\"\nrefund_url = \"http://n\"")
                .expect("an MPP");
        mpp.cabinet_token_hashes.push(hash.clone());
        file.mpps.push(mpp);
        let catalog = Catalog::build(&file);
        let role = Role::Mpp("newbank".to_owned());
        let issued = Through::Issued(hash.clone());
        let session =
            Session::start_through(&config, &catalog, role.clone(), issued, now()).expect("issued");
        let value = session.cookie_value();
        assert_eq!(
            Session::verify_in(&config, &catalog, &value, now()),
            Some(session)
        );
        // Revoked: the catalog no longer holds the hash.
        assert_eq!(
            Session::verify_in(&config, &Catalog::default(), &value, now()),
            None
        );
        // Another MPP's name with this hash, or no admin token to sign with: nothing.
        let other = Through::Issued(hash.clone());
        let bank = Role::Mpp("demobank".to_owned());
        assert_eq!(
            Session::start_through(&config, &catalog, bank, other, now()),
            None
        );
        let unsigned = Config::default();
        let issued = Through::Issued(hash);
        assert_eq!(
            Session::start_through(&unsigned, &catalog, role, issued, now()),
            None
        );
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let config = config();
        let one = Session::start(&config, Role::Operator, now()).expect("configured");
        let two = Session::start(&config, Role::Operator, now()).expect("configured");
        assert!(one.csrf_ok(&one.csrf()));
        assert!(!one.csrf_ok(&two.csrf()));
        assert!(!one.csrf_ok(""));
        assert!(!one.csrf_ok("not hex"));
        let bank =
            Session::start(&config, Role::Mpp("demobank".to_owned()), now()).expect("configured");
        assert!(!bank.csrf_ok(&one.csrf()));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let session = Session::start(&config(), Role::Operator, now()).expect("configured");
        let plain = set_cookie(&session, false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Path=/console") && !plain.contains("Secure"));
        assert!(set_cookie(&session, true).ends_with("; Secure"));
        assert_eq!(
            cookie(
                &format!("a=b; {}", &plain[..plain.find(';').expect("attrs")]),
                COOKIE
            ),
            Some(session.cookie_value().as_str())
        );
    }
}
