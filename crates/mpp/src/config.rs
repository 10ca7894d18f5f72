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
        for c in &config.customers {
            let len = c.id.chars().count();
            if len == 0 || len > tolem_wire::mpp::CUSTOMER_ID_LEN_MAX {
                return Err(format!("customers.{}: id must be 1-12 characters", c.id));
            }
        }
        Ok(config)
    }
}
