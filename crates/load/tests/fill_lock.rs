//! `tolem-load fill` keeps to one writing process per SQLite file: it takes the lock a serving
//! PS takes (`tolem_ps::store::lock_database`), so it is refused while another holds the file.

use std::path::Path;
use std::process::{Command, Output};

fn fill(db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tolem-load"))
        .args(["fill", "--purchases", "10", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sandbox.toml"
        ))
        .arg("--db")
        .arg(db)
        .output()
        .expect("tolem-load runs")
}

#[test]
fn a_fill_is_refused_while_another_process_holds_the_file_and_runs_once_it_is_free() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("ps.db");
    // This test process stands for a PS serving the file.
    let held = tolem_ps::store::lock_database(&db).expect("the lock");
    let out = fill(&db);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "is in use by a Tolem PS or another fill (process {})",
            std::process::id()
        )),
        "{err}"
    );
    assert!(!db.exists(), "nothing was written");
    drop(held);
    let out = fill(&db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
}
