//! `cargo package` accepts the four crates a bank uses: tolem-wire (the wire types), tolem-sdk
//! (the MPP kit), tolem-ps (the server) and tolem-testkit (the sandbox PS in a bank's tests):
//! metadata, readmes, every internal dependency versioned, no file from outside its package.
//!
//! They are packaged together because none is on crates.io yet. `cargo package -p tolem-sdk`
//! alone fails: a packaged crate's dependency is its `version`, resolved from the registry (the
//! `path` is dropped, and `[patch]` is not applied by `cargo package`), and crates.io has no
//! tolem-wire 0.1.0. Packaged in one command, cargo resolves each dependency to the package just
//! made. The first publication therefore goes in dependency order: wire, ps, sdk, testkit.
//!
//! The packages' compilation is not verified here (`--no-verify`): the workspace's own build
//! already compiles the same sources, and a second build of every dependency would add minutes
//! to each run. Before a release, run the same command without it.
//!
//! Here, in a package that is not published, because it packages the workspace's other crates.

use std::path::Path;
use std::process::Command;

/// The published crates, in the order they must reach crates.io.
const PUBLISHED: [&str; 4] = ["tolem-wire", "tolem-ps", "tolem-sdk", "tolem-testkit"];

#[test]
fn cargo_package_accepts_the_published_crates() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/cli sits two levels below the workspace");
    // A target directory of its own: the `cargo test` that runs this holds the workspace's.
    let target = tempfile::tempdir().expect("a temporary directory");
    let mut args = vec!["package"];
    for package in PUBLISHED {
        args.extend(["-p", package]);
    }
    args.extend(["--no-verify", "--allow-dirty", "--locked"]);
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args(&args)
        .env("CARGO_TARGET_DIR", target.path())
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "cargo package warns: {stderr}");
    for package in PUBLISHED {
        let file = format!("{package}-{}.crate", env!("CARGO_PKG_VERSION"));
        assert!(
            target.path().join("package").join(&file).exists(),
            "{file} not made: {stderr}"
        );
    }
}
