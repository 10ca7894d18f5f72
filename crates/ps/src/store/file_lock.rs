//! One process per SQLite file. A serving PS (`tolem serve`, `tolem sandbox`) and a fill
//! (`tolem-load fill`) write through one writer thread of their own, so two processes on one
//! file would be two writers, each with caches the other's writes bypass. Each takes an
//! exclusive lock on `FILE.lock` beside the database, writes its process id into it and holds it
//! until it exits (the kernel lets the lock go however the process ends, SIGKILL included). The
//! lock is a file of its own, never the database: SQLite's locks are POSIX locks, which closing
//! any other descriptor of the database file would drop.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock of one SQLite file, held while this value lives.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseLockError {
    /// Another process holds the file; `holder` is the process id it wrote, when it did.
    #[error("the database is in use by another process")]
    InUse { holder: Option<String> },
    #[error("cannot lock the database with {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes the lock of the SQLite file `db` (`FILE.lock` beside it), without waiting.
pub fn lock_database(db: &Path) -> Result<DatabaseLock, DatabaseLockError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let io = |source| DatabaseLockError::Io {
        path: path.clone(),
        source,
    };
    // Made by this process, or there already. Either way never through a link: the folder
    // may be the service user's, and a link there would point whoever takes the lock (root
    // restoring by hand, say) at another file to truncate and, below, to give away.
    let open = |create: bool| {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if create {
            options.create_new(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW);
        }
        options.open(&path)
    };
    let (mut file, made) = match open(true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            (open(false).map_err(io)?, false)
        }
        Err(e) => return Err(io(e)),
    };
    one_plain_file(&file).map_err(io)?;
    if made {
        owned_as_the_database(&file, db);
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = Some(holder.trim().to_owned()).filter(|h| !h.is_empty());
            return Err(DatabaseLockError::InUse { holder });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // The holder's process id, for a second process's message; the lock holds without it.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(DatabaseLock { _file: file })
}

/// A lock file is a regular file with one name: not a device or a folder, and not a hard link to
/// a file elsewhere.
fn one_plain_file(file: &File) -> std::io::Result<()> {
    let meta = file.metadata()?;
    #[cfg(unix)]
    let links = {
        use std::os::unix::fs::MetadataExt;
        meta.nlink()
    };
    #[cfg(not(unix))]
    let links = 1;
    if meta.is_file() && links == 1 {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "not a plain file of its own (a folder, a device or a hard link): remove it",
        ))
    }
}

/// The lock file this process made belongs to whoever owns the database: one made by root
/// (`tolem restored` run by hand, say) would otherwise keep the service's user from taking the
/// lock at its next start. Only root can give a file away, and only a file that is not the
/// database's owner's needs it; a failure changes nothing the lock needs.
#[cfg(unix)]
fn owned_as_the_database(lock: &File, db: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (Ok(database), Ok(ours)) = (std::fs::metadata(db), lock.metadata()) else {
        return;
    };
    if (database.uid(), database.gid()) != (ours.uid(), ours.gid()) {
        let _ = std::os::unix::fs::fchown(lock, Some(database.uid()), Some(database.gid()));
    }
}

#[cfg(not(unix))]
fn owned_as_the_database(_lock: &File, _db: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_file_names_the_first_holder_and_is_free_once_it_is_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("ps.db");
        let first = lock_database(&db).expect("the first lock");
        match lock_database(&db) {
            Err(DatabaseLockError::InUse { holder }) => {
                assert_eq!(holder, Some(std::process::id().to_string()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        lock_database(&db).expect("free again");
        assert!(!db.exists(), "the lock never makes the database");
    }

    /// A link in the lock file's place (the folder may be the service user's) is refused, and
    /// the file it points to is left as it was: not truncated, not given away.
    #[cfg(unix)]
    #[test]
    fn a_link_in_the_lock_files_place_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("ps.db");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"keep me").expect("a file");
        std::os::unix::fs::symlink(&target, dir.path().join("ps.db.lock")).expect("a link");
        assert!(matches!(
            lock_database(&db),
            Err(DatabaseLockError::Io { .. })
        ));
        assert_eq!(std::fs::read(&target).expect("still there"), b"keep me");
        // A hard link to a file elsewhere: refused too.
        std::fs::remove_file(dir.path().join("ps.db.lock")).expect("removed");
        std::fs::hard_link(&target, dir.path().join("ps.db.lock")).expect("a hard link");
        assert!(matches!(
            lock_database(&db),
            Err(DatabaseLockError::Io { .. })
        ));
        assert_eq!(std::fs::read(&target).expect("still there"), b"keep me");
    }

    /// Taken by root (a restore run by hand), the lock file is still the database owner's, so
    /// that the service's user can take it at its next start. Only root can show it.
    #[cfg(unix)]
    #[test]
    fn a_lock_file_made_by_root_belongs_to_the_databases_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("ps.db");
        std::fs::write(&db, b"").expect("a database file");
        if std::os::unix::fs::chown(&db, Some(65534), Some(65534)).is_err() {
            return; // not root: nothing to give away
        }
        drop(lock_database(&db).expect("locked"));
        let lock = std::fs::metadata(dir.path().join("ps.db.lock")).expect("the lock file");
        assert_eq!((lock.uid(), lock.gid()), (65534, 65534));
    }
}
