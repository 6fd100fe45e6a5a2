//! The worker on a SQLite file: seeded rows are processed in batches and committed.

use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use diesel::prelude::*;
use worker::schema::tasks;

/// A directory of its own for the test's SQLite file, removed with it on drop. A
/// whole directory, so that a pool connection still opening in the background when
/// the instance is dropped cannot re-create the file: it finds no directory.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("worker-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn sqlite_url(&self) -> String {
        self.0.join("tasks.sqlite3").to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn processes_every_row_in_batches() {
    let dir = TempDir::new();
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(dir.sqlite_url())).unwrap();
    worker::prepare(&db).unwrap();
    assert_eq!(worker::seed(&db, 25).unwrap(), 25);

    let summary = worker::run(&db, 10).unwrap();
    assert_eq!(
        summary,
        worker::Summary {
            processed: 25,
            batches: 3,
            done: 25,
            pending: 0
        }
    );
    let results: Vec<Option<String>> = db
        .read(|conn| {
            tasks::table
                .order(tasks::id)
                .select(tasks::result)
                .load(conn)
                .map_err(dbinstance::Error::from)
        })
        .unwrap();
    assert_eq!(results.len(), 25);
    assert_eq!(results[0].as_deref(), Some("6 words, 31 chars"));

    // Nothing left: a second run commits no batch.
    assert_eq!(worker::run(&db, 10).unwrap().batches, 0);
}
