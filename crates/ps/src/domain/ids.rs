//! Typed ids: each id the PS hands out or reads from its catalog is its own type, built once at
//! the edge (a parsed path or body, a database row, the catalog file) and trusted inside, so a
//! payment id can never be passed where a refund or trade point id is meant. They print and
//! serialize as the plain integers they wrap, so no answer changes. Payment and refund ids come
//! from one operation counter (DECISIONS 40, `store::ids`); the SQL conversions live in the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One id newtype over `i64`: printed, parsed and serialized as the bare integer.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            pub const fn new(id: i64) -> $name {
                $name(id)
            }
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(text: &str) -> Result<$name, Self::Err> {
                text.parse().map($name)
            }
        }
    };
}

id_type!(
    /// A purchase (`payments.id`), drawn from the operation counter.
    PaymentId
);
id_type!(
    /// A refund or return QR (`refunds.id`), drawn from the same counter as purchases.
    RefundId
);
id_type!(
    /// A trade point of the catalog.
    TradePointId
);
id_type!(
    /// A service (Custom QR) of the catalog.
    ServiceId
);
id_type!(
    /// A registered POS device.
    DeviceId
);
id_type!(
    /// A row of the outbox (a refund to deliver or a register e-mail to send).
    OutboxId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_serialize_as_plain_integers() {
        let id = PaymentId::new(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!(serde_json::to_string(&id).expect("json"), "42");
        assert_eq!(
            " 7".trim().parse::<RefundId>().expect("an id"),
            RefundId::new(7)
        );
        assert!("x".parse::<TradePointId>().is_err());
        assert_eq!(i64::from(DeviceId::from(3)), 3);
    }
}
