//! System tests: the real PS on port 0 with a fresh database, driven over HTTP by the project's
//! own SDK (MPP side) and by raw requests (POS side, admin). Built twice: this binary, `system`,
//! puts every PS on a SQLite file; `system_postgres` (tests/system_postgres.rs, this file as a
//! module) on a PostgreSQL database (backend.rs).

// `pub(crate)`, so that system_postgres.rs can bring them to its crate's root, where the
// modules name each other (`crate::harness`).
pub(crate) mod backend;
pub(crate) mod cashier;
pub(crate) mod cli_errors;
pub(crate) mod client_identity;
pub(crate) mod console;
pub(crate) mod contract;
pub(crate) mod crash_loop;
pub(crate) mod doc_examples;
pub(crate) mod durability;
pub(crate) mod edges;
pub(crate) mod fault_proxy;
pub(crate) mod harness;
pub(crate) mod health;
pub(crate) mod ipsec_tunnel;
pub(crate) mod leases;
pub(crate) mod listeners;
pub(crate) mod merchant_api;
pub(crate) mod metrics;
pub(crate) mod mpp_api;
pub(crate) mod multi_node;
pub(crate) mod mutual_tls;
pub(crate) mod operator;
pub(crate) mod outgoing_tls;
pub(crate) mod rate_limit;
pub(crate) mod receipts;
pub(crate) mod receiver;
pub(crate) mod reference_mpp;
pub(crate) mod refund_answer;
pub(crate) mod refunds;
pub(crate) mod register_bench;
pub(crate) mod register_days;
pub(crate) mod register_mail;
pub(crate) mod registers;
pub(crate) mod retention;
pub(crate) mod sandbox;
pub(crate) mod slow_clients;
pub(crate) mod smtp;
pub(crate) mod strict;
pub(crate) mod wallet;
pub(crate) mod wallet_web;
