//! `cargo package` accepts tolem-sdk: metadata, a readme, every dependency versioned. tolem-wire
//! is not on crates.io yet, so it is packaged together with the SDK (cargo then resolves the SDK's
//! dependency on it to the package just made). The packages' compilation is not verified here
//! (`--no-verify`): the workspace's own build already compiles the same sources, and a second
//! build of every dependency would add minutes to each run. Before a release, run
//! `cargo package -p tolem-wire -p tolem-sdk` without it.

use std::path::Path;
use std::process::Command;

#[test]
fn cargo_package_accepts_the_sdk_and_its_wire_types() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/sdk sits two levels below the workspace");
    // A target directory of its own: the `cargo test` that runs this holds the workspace's.
    let target = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args([
            "package",
            "-p",
            "tolem-wire",
            "-p",
            "tolem-sdk",
            "--no-verify",
            "--allow-dirty",
            "--locked",
        ])
        .env("CARGO_TARGET_DIR", target.path())
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "cargo package warns: {stderr}");
    for package in ["tolem-wire-0.1.0.crate", "tolem-sdk-0.1.0.crate"] {
        assert!(
            target.path().join("package").join(package).exists(),
            "{package} not made: {stderr}"
        );
    }
}
