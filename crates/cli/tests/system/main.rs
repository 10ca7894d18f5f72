//! System tests: the real PS on port 0 with a fresh SQLite file, driven over HTTP by the
//! project's own SDK (MPP side) and by raw requests (POS side, admin).

mod cli_errors;
mod client_identity;
mod contract;
mod crash_loop;
mod doc_examples;
mod durability;
mod edges;
mod fault_proxy;
mod harness;
mod ipsec_tunnel;
mod leases;
mod listeners;
mod merchant_api;
mod mpp_api;
mod mutual_tls;
mod operator;
mod outgoing_tls;
mod rate_limit;
mod receipts;
mod receiver;
mod reference_mpp;
mod refund_answer;
mod refunds;
mod register_bench;
mod register_days;
mod register_mail;
mod registers;
mod retention;
mod sandbox;
mod slow_clients;
mod smtp;
mod strict;
mod wallet;
