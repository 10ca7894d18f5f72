//! The kit's database files are the bank's books: customers' ids, amounts and receipt links.

use std::path::Path;

/// Makes the SQLite file at `path`, when there is none yet, readable by its owner and group only
/// (0640, or less if the process's umask takes more away); SQLite gives its log (`-wal`) and index (`-shm`) the
/// database's permissions. A file that is there keeps the permissions its operator gave it; one
/// that cannot be made is left to SQLite's open, whose error says why. The kit's stores call it
/// before they open their file; a bank opening its own ledger can call it first too.
pub fn create_private_database(path: &Path) {
    // SQLite's names that are no file of that name: an in-memory database, a URI.
    let text = path.to_string_lossy();
    if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
        return;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    let _ = options.open(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_new_file_is_the_owners_and_groups_only_and_an_old_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let new = dir.path().join("new.db");
        create_private_database(&new);
        let mode = |p: &Path| std::fs::metadata(p).expect("made").permissions().mode() & 0o777;
        // 0640 at most: a umask may take more away, never give.
        assert_eq!(mode(&new) & !0o640, 0, "{:o}", mode(&new));
        assert_eq!(mode(&new) & 0o600, 0o600, "{:o}", mode(&new));
        let old = dir.path().join("old.db");
        std::fs::write(&old, b"").expect("written");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).expect("set");
        create_private_database(&old);
        assert_eq!(mode(&old), 0o600);
        create_private_database(Path::new(":memory:"));
        assert!(!Path::new(":memory:").exists());
    }
}
