//! The rules of the payment system, free of HTTP and SQL: purchases and their state machine
//! (DECISIONS 11–19). Called by the use cases in [`crate::payments`] and by the store, which
//! loads a purchase, lets these rules change it and saves the result in one transaction.

pub mod payment;

pub use payment::{Kind, MerchantState, Owner, Payment, Policy, Status};
