//! The reference MPP's settings (TOML): who it is at the PS, where it listens, its customers.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use tolem_wire::Amount;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MppConfig {
    /// Its `X-Caller-Name` at the PS.
    pub caller_name: String,
    /// The PS's base URL.
    pub ps_url: String,
    /// Where the app API and the wallet's pages listen (and `/refund`, without `refund_listen`).
    pub listen: SocketAddr,
    /// Where `/refund` listens on its own: an address only the PS reaches (the IPSec tunnel's,
    /// SPEC 1.10), so that nobody who reaches the app can credit a customer. Unset: `/refund` is
    /// served on `listen`, as the sandbox does on one machine.
    pub refund_listen: Option<SocketAddr>,
    /// Its SQLite file.
    pub database: PathBuf,
    /// Customers created (with an opening deposit) when missing.
    pub customers: Vec<CustomerSeed>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSeed {
    /// The `customerId` sent to the PS, at most 12 characters.
    pub id: String,
    pub name: String,
    pub deposit: Amount,
}

impl Default for MppConfig {
    fn default() -> MppConfig {
        MppConfig {
            caller_name: "demobank".to_owned(),
            ps_url: "http://127.0.0.1:8080".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8091)),
            refund_listen: None,
            database: PathBuf::from("tolem-mpp.db"),
            customers: vec![
                CustomerSeed {
                    id: "C1".to_owned(),
                    name: "Айгерим".to_owned(),
                    deposit: Amount::from_tiyn(5_000_000),
                },
                CustomerSeed {
                    id: "C2".to_owned(),
                    name: "Нурлан".to_owned(),
                    deposit: Amount::from_tiyn(1_000_000),
                },
            ],
        }
    }
}

impl MppConfig {
    pub fn from_toml(text: &str) -> Result<MppConfig, String> {
        let config: MppConfig = toml::from_str(text).map_err(|e| {
            // One line with the place, not toml's five-line drawing of it.
            let line = e.span().map_or(0, |s| {
                text.get(..s.start).unwrap_or(text).lines().count().max(1)
            });
            format!("line {line}: {}", e.message().trim())
        })?;
        // The PS knows the MPP by this name (its X-Caller-Name): as the PS's catalog takes it.
        let name = config.caller_name.as_str();
        if !tolem_wire::mpp::is_caller_name(name) {
            return Err(format!(
                "caller_name: {name:?} must be 1-12 characters, each a Latin letter, a digit, \
                 '.', '_' or '-' (the name the PS knows this MPP by)"
            ));
        }
        let url_ok = reqwest::Url::parse(&config.ps_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !url_ok {
            return Err(format!(
                "ps_url: {:?} is not the PS's address (http:// or https://, then its host)",
                config.ps_url
            ));
        }
        if config.refund_listen == Some(config.listen) {
            return Err(format!(
                "refund_listen: {} is listen's address too; give /refund a port of its own, or \
                 leave refund_listen out to serve it on listen",
                config.listen
            ));
        }
        for (i, c) in config.customers.iter().enumerate() {
            let len = c.id.chars().count();
            if len == 0 || len > tolem_wire::mpp::CUSTOMER_ID_LEN_MAX {
                return Err(format!("customers.{}: id must be 1-12 characters", c.id));
            }
            if config.customers[..i].iter().any(|other| other.id == c.id) {
                return Err(format!("customers.{}: the id is given twice", c.id));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistake_is_named_by_its_key_before_anything_runs() {
        let base = "caller_name = \"demobank\"\nps_url = \"http://127.0.0.1:8080\"\nlisten = \"127.0.0.1:8091\"\ndatabase = \"m.db\"\n";
        assert!(MppConfig::from_toml(base).is_ok(), "the base reads");
        for (change, said) in [
            ("caller_name = \"\"", "caller_name: \"\" must be 1-12"),
            ("caller_name = \"bank with spaces\"", "caller_name: "),
            ("ps_url = \"not a url\"", "ps_url: \"not a url\" is not"),
            ("ps_url = \"ftp://ps.example\"", "ps_url: "),
            (
                "refund_listen = \"127.0.0.1:8091\"",
                "refund_listen: 127.0.0.1:8091 is listen's address too",
            ),
            (
                "[[customers]]\nid = \"C1\"\nname = \"A\"\ndeposit = \"1\"\n[[customers]]\nid = \"C1\"\nname = \"B\"\ndeposit = \"1\"",
                "customers.C1: the id is given twice",
            ),
        ] {
            let key = change.split([' ', '\n']).next().unwrap_or_default();
            let text: String = base
                .lines()
                .filter(|line| !line.starts_with(key))
                .map(|line| format!("{line}\n"))
                .collect::<String>()
                + change;
            let err = MppConfig::from_toml(&text).expect_err(said);
            assert!(err.starts_with(said), "{change}: {err}");
        }
    }
}
