//! The rules of the payment system, free of HTTP and SQL: purchases and their state machine
//! (DECISIONS 11–19), refunds and their delivery (DECISIONS 20–23). Called by the use cases and by
//! the store, which loads a record, lets these rules change it and saves the result in one
//! transaction.

pub mod payment;
pub mod refund;

pub use payment::{Kind, MerchantState, Owner, Payment, Policy, Status};
pub use refund::{Refund, RefundKind, RefundStatus};
