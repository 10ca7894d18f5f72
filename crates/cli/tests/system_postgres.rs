//! The system suite (tests/system/) a second time, with every PS on PostgreSQL: the same
//! sources, built into a binary whose crate name tells the harness its backend
//! (tests/system/backend.rs). `cargo test -p tolem --test system_postgres <filter>`.

#[path = "system/main.rs"]
mod system;

// The suite's modules name each other from the crate's root (`crate::harness`), as in `system`.
pub(crate) use system::*;
