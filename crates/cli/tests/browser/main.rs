//! Browser tests: the console's screens (issue 14) driven in Debian's headless Chromium through
//! WebDriver (chromedriver), against the real `tolem sandbox` process — the PS and its demo MPPs
//! on free ports. One test binary for all of them (`cargo test -p tolem --test browser`); the
//! machinery is in harness.rs, what it needs and how to run it in docs/testing.md.

mod cabinet_tokens;
mod flows;
mod harness;
mod receipt;

// The system suite's in-process PS on a moved clock, for books of a day that has ended
// (flows.rs, the register); brought in whole, so most of it is unused here.
#[allow(unused)]
#[path = "../system/backend.rs"]
mod backend;
#[allow(unused)]
#[path = "../system/harness.rs"]
mod system;
