//! tolem-sdk's public API against `crates/sdk/public-api.txt`, the API of the version it names,
//! so that a change that would break a bank's build cannot ship without a version bump.
//!
//! The rule (Cargo's semver, kept small):
//! - identical: pass;
//! - a line removed or changed (an item gone, a signature changed, a derive or auto trait lost)
//!   while `version` in Cargo.toml is still the snapshot's: fail. 0.x: a breaking change takes
//!   the next minor (0.1.3 → 0.2.0); from 1.0, the next major;
//! - only lines added: fail too, asking to regenerate. An addition is fine in the next patch or
//!   minor, but the snapshot must say what was published;
//! - after a version bump, a differing snapshot is regenerated.
//!
//! Regenerate (writes the snapshot and passes): `TOLEM_BLESS_API=1 cargo test -p tolem-sdk --test
//! public_api`, then commit the file. Bless a breaking change at the same version only while that
//! version is unpublished.
//!
//! The same rustdoc run is the docs build check: `-D warnings` fails on a broken intra-doc link,
//! and the crate denies `missing_docs`. This is a line-level check of what rustdoc shows; the
//! fuller one, `cargo semver-checks -p tolem-sdk --baseline-rev <the last release's tag>`, runs
//! by hand before a release (docs/testing.md says why it is not in CI).

// Beside this file, not at the top of tests/, so that cargo does not take them for test targets.
#[path = "public_api/compare.rs"]
mod compare;
#[path = "public_api/render.rs"]
mod render;

use std::path::Path;
use std::process::Command;

use compare::{Verdict, compare, message, snapshot_text};
use serde_json::{Value, json};

#[test]
fn the_public_api_matches_its_snapshot_for_this_version() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("crates/sdk sits two levels below the workspace");
    // A target directory of its own, since the `cargo test` that runs this holds the workspace's,
    // kept between runs (under target/tmp) so that only a changed SDK is documented again: cold,
    // the dependencies' metadata takes minutes; warm, the run takes seconds.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-check");
    // rustdoc's JSON output is unstable (`-Z unstable-options`) and the project builds on the
    // stable toolchain: RUSTC_BOOTSTRAP=1 lets this one rustdoc run take the flag, pinned to the
    // toolchain in use (the JSON's format_version), rather than requiring a nightly in CI.
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args(["rustdoc", "-p", "tolem-sdk", "--lib", "--locked", "--"])
        .args([
            "-Z",
            "unstable-options",
            "--output-format",
            "json",
            "-D",
            "warnings",
        ])
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the docs of tolem-sdk do not build:\n{stderr}"
    );

    let json = std::fs::read_to_string(target.join("doc").join("tolem_sdk.json"))
        .expect("rustdoc wrote its JSON");
    let doc: Value = serde_json::from_str(&json).expect("rustdoc's JSON parses");
    let lines = render::public_api(&doc);
    let version = env!("CARGO_PKG_VERSION");
    let snapshot_path = manifest_dir.join("public-api.txt");

    if std::env::var_os("TOLEM_BLESS_API").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&snapshot_path, snapshot_text(version, &lines)).expect("snapshot written");
        return;
    }
    let snapshot = std::fs::read_to_string(&snapshot_path).unwrap_or_default();
    if let Some(failure) = message(&compare(&snapshot, version, &lines), version) {
        panic!("{failure}");
    }
}

fn lines(rows: &[&str]) -> Vec<String> {
    rows.iter().map(|row| row.to_string()).collect()
}

const SNAPSHOT: &str = "tolem-sdk 0.1.0\npub fn tolem_sdk::a()\npub fn tolem_sdk::b(x: u8)\n";

#[test]
fn the_same_api_at_the_same_version_passes() {
    let verdict = compare(
        SNAPSHOT,
        "0.1.0",
        &lines(&["pub fn tolem_sdk::a()", "pub fn tolem_sdk::b(x: u8)"]),
    );
    assert_eq!(verdict, Verdict::Same);
    assert_eq!(message(&verdict, "0.1.0"), None);
}

#[test]
fn a_removed_item_without_a_bump_is_breaking() {
    let verdict = compare(SNAPSHOT, "0.1.0", &lines(&["pub fn tolem_sdk::b(x: u8)"]));
    let failure = message(&verdict, "0.1.0").expect("fails");
    assert!(
        failure.starts_with(
            "breaking change to the public API of tolem-sdk 0.1.0 without a version bump:"
        ),
        "{failure}"
    );
    assert!(failure.contains("\n  - pub fn tolem_sdk::a()"), "{failure}");
    assert!(
        failure.contains("bump the version (0.x: the minor) or undo"),
        "{failure}"
    );
}

#[test]
fn a_changed_signature_without_a_bump_is_breaking_and_shows_both_lines() {
    let verdict = compare(
        SNAPSHOT,
        "0.1.0",
        &lines(&["pub fn tolem_sdk::a()", "pub fn tolem_sdk::b(x: u16)"]),
    );
    assert_eq!(
        verdict,
        Verdict::Breaking {
            published: "0.1.0".into(),
            removed: lines(&["pub fn tolem_sdk::b(x: u8)"]),
            added: lines(&["pub fn tolem_sdk::b(x: u16)"]),
        }
    );
}

#[test]
fn additions_only_ask_for_the_snapshot_to_be_regenerated() {
    let now = lines(&[
        "pub fn tolem_sdk::a()",
        "pub fn tolem_sdk::b(x: u8)",
        "pub fn tolem_sdk::c()",
    ]);
    let verdict = compare(SNAPSHOT, "0.1.0", &now);
    assert_eq!(
        verdict,
        Verdict::Additions {
            added: lines(&["pub fn tolem_sdk::c()"])
        }
    );
    let failure = message(&verdict, "0.1.0").expect("fails");
    assert!(failure.contains("\n  + pub fn tolem_sdk::c()"), "{failure}");
    assert!(failure.contains("TOLEM_BLESS_API=1"), "{failure}");
}

#[test]
fn a_breaking_change_needs_the_next_minor_in_0_x() {
    let now = lines(&["pub fn tolem_sdk::b(x: u8)"]);
    // A patch bump does not allow a removal.
    let verdict = compare(SNAPSHOT, "0.1.1", &now);
    assert!(matches!(verdict, Verdict::Breaking { .. }), "{verdict:?}");
    let failure = message(&verdict, "0.1.1").expect("fails");
    assert!(
        failure.contains("with only a compatible version bump to 0.1.1"),
        "{failure}"
    );
    // The next minor does; the snapshot is then regenerated for it.
    for bumped in ["0.2.0", "1.0.0"] {
        let verdict = compare(SNAPSHOT, bumped, &now);
        assert_eq!(
            verdict,
            Verdict::Regenerate {
                published: "0.1.0".into()
            }
        );
        assert!(
            message(&verdict, bumped)
                .expect("fails")
                .contains("TOLEM_BLESS_API=1")
        );
    }
    // From 1.0 a breaking change takes the next major.
    let one = SNAPSHOT.replace("0.1.0", "1.2.0");
    assert!(matches!(
        compare(&one, "1.3.0", &now),
        Verdict::Breaking { .. }
    ));
    assert!(matches!(
        compare(&one, "2.0.0", &now),
        Verdict::Regenerate { .. }
    ));
}

#[test]
fn a_bump_with_an_unchanged_api_still_renames_the_snapshot() {
    let same = lines(&["pub fn tolem_sdk::a()", "pub fn tolem_sdk::b(x: u8)"]);
    assert_eq!(
        compare(SNAPSHOT, "0.1.1", &same),
        Verdict::Regenerate {
            published: "0.1.0".into()
        }
    );
}

#[test]
fn a_missing_snapshot_fails() {
    let verdict = compare("", "0.1.0", &lines(&["pub fn tolem_sdk::a()"]));
    assert!(message(&verdict, "0.1.0").is_some(), "{verdict:?}");
}

#[test]
fn json_shapes_the_renderer_does_not_know_render_as_stable_markers() {
    // A module with a struct whose field has a type of a kind rustdoc may add one day, an item
    // of an unknown kind, and a dangling id: lines, no panic, no id printed.
    let doc = json!({
        "root": 0,
        "index": {
            "0": {"id": 0, "crate_id": 0, "name": "k", "visibility": "public", "attrs": [],
                  "inner": {"module": {"items": [1, 2, 99]}}},
            "1": {"id": 1, "crate_id": 0, "name": "S", "visibility": "public", "attrs": [],
                  "inner": {"struct": {"kind": {"plain": {"fields": [3], "has_stripped_fields": false}},
                            "generics": {"params": [], "where_predicates": []}, "impls": []}}},
            "2": {"id": 2, "crate_id": 0, "name": "m", "visibility": "public", "attrs": [],
                  "inner": {"macro_2": {"id": 1234}}},
            "3": {"id": 3, "crate_id": 0, "name": "f", "visibility": "public", "attrs": [],
                  "inner": {"struct_field": {"new_kind_of_type": {"id": 5678}}}}
        },
        "paths": {}
    });
    assert_eq!(
        render::public_api(&doc),
        lines(&[
            "<macro_2> k::m",
            "pub k::S::f: <new_kind_of_type>",
            "pub mod k",
            "pub struct k::S { f }"
        ])
    );
}
