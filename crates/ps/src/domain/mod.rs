//! The rules of the payment system, free of HTTP and SQL: purchases and their state machine
//! (DECISIONS 11–19), refunds and their delivery (DECISIONS 20–23), commission rates, and the
//! typed ids and names (`ids`, `names`). Called by the use cases (`payments`, `refunds`, the
//! outbox's senders), which load a record inside their transaction, let these rules change it and
//! save the result; the store only reads and writes the rows.

/// Text forms of a state enum as the database stores them: `as_str` and `parse`.
macro_rules! text_enum {
    ($ty:ident { $( $variant:ident = $text:literal ),* }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $( $ty::$variant => $text, )* }
            }
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $( $text => Some($ty::$variant), )* _ => None }
            }
        }
    };
}

pub mod commission;
pub mod ids;
pub mod names;
pub mod payment;
pub mod refund;
pub mod text;

pub use ids::{DeviceId, PaymentId, TradePointId};
pub(crate) use ids::{OutboxId, RefundId, ServiceId};
pub use names::CallerName;
pub use payment::Kind;
pub use payment::MerchantState;
pub use payment::Owner;
pub use payment::{Payment, Policy, Status};
pub use refund::RefundKind;
pub use refund::{Refund, RefundStatus};
