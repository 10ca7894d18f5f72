//! The rule that holds the public API against the committed snapshot (see the test's doc comment).

use std::collections::BTreeSet;

/// The crate the snapshot describes; its first line is `tolem-sdk <version>`.
pub const CRATE: &str = "tolem-sdk";
/// The command that regenerates the snapshot.
pub const BLESS: &str = "TOLEM_BLESS_API=1 cargo test -p tolem-sdk --test public_api";

/// The snapshot's text for `version` with these (sorted) lines.
pub fn snapshot_text(version: &str, lines: &[String]) -> String {
    let mut text = format!("{CRATE} {version}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// What the code's API is, against what the snapshot says was published.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// The snapshot describes this version and this API.
    Same,
    /// Lines removed or changed without a version bump that allows it.
    Breaking {
        published: String,
        removed: Vec<String>,
        added: Vec<String>,
    },
    /// Only new lines, at the snapshot's version: fine to release, but the snapshot must say so.
    Additions { added: Vec<String> },
    /// The version moved on (far enough for any removals): the snapshot is to be regenerated.
    Regenerate { published: String },
}

/// Compares the snapshot's text with the API `lines` of the crate at `version`.
pub fn compare(snapshot: &str, version: &str, lines: &[String]) -> Verdict {
    let mut rows = snapshot.lines();
    let header = rows.next().unwrap_or_default();
    let published = header
        .strip_prefix(CRATE)
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let old: BTreeSet<&str> = rows.filter(|row| !row.is_empty()).collect();
    let new: BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    let removed: Vec<String> = old.difference(&new).map(|row| row.to_string()).collect();
    let added: Vec<String> = new.difference(&old).map(|row| row.to_string()).collect();
    if published == version {
        if !removed.is_empty() {
            Verdict::Breaking {
                published,
                removed,
                added,
            }
        } else if !added.is_empty() {
            Verdict::Additions { added }
        } else {
            Verdict::Same
        }
    } else if !removed.is_empty() && !allows_breaking(&published, version) {
        Verdict::Breaking {
            published,
            removed,
            added,
        }
    } else {
        Verdict::Regenerate { published }
    }
}

/// What a failing verdict tells the developer; `None` passes.
pub fn message(verdict: &Verdict, version: &str) -> Option<String> {
    match verdict {
        Verdict::Same => None,
        Verdict::Breaking {
            published,
            removed,
            added,
        } => {
            let mut diff = String::new();
            for row in removed {
                diff.push_str(&format!("\n  - {row}"));
            }
            for row in added {
                diff.push_str(&format!("\n  + {row}"));
            }
            let bump = if published == version {
                "without a version bump".to_string()
            } else {
                format!("with only a compatible version bump to {version}")
            };
            Some(format!(
                "breaking change to the public API of {CRATE} {published} {bump}:{diff}\n\
                 bump the version (0.x: the minor) or undo; then regenerate the snapshot: {BLESS}"
            ))
        }
        Verdict::Additions { added } => {
            let diff: String = added.iter().map(|row| format!("\n  + {row}")).collect();
            Some(format!(
                "the public API of {CRATE} {version} has items crates/sdk/public-api.txt does not \
                 list:{diff}\nan addition is fine in a patch or minor release, but the snapshot \
                 must say what is published: regenerate it with {BLESS} and commit it"
            ))
        }
        Verdict::Regenerate { published } if published.is_empty() => Some(format!(
            "crates/sdk/public-api.txt is missing or does not begin with `{CRATE} <version>`: \
             generate it with {BLESS} and commit it"
        )),
        Verdict::Regenerate { published } => Some(format!(
            "crates/sdk/public-api.txt describes {CRATE} {published}, the crate is now {version}: \
             regenerate it with {BLESS} and commit it"
        )),
    }
}

/// Whether going from `old` to `new` may break users, as Cargo reads versions: 0.0.x → any
/// other, 0.x → another minor, x.y → another major. An unreadable version allows nothing.
fn allows_breaking(old: &str, new: &str) -> bool {
    let (Some(old), Some(new)) = (parse(old), parse(new)) else {
        return false;
    };
    if new <= old {
        return false;
    }
    match old {
        (0, 0, _) => true,
        (0, minor, _) => new.0 > 0 || new.1 > minor,
        (major, _, _) => new.0 > major,
    }
}

/// `major.minor.patch`, any pre-release or build suffix ignored.
fn parse(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|part| part.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}
