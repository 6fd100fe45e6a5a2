//! The checkout and session spans: built only when a subscriber wants DEBUG (a
//! disabled span still costs every checkout under tracing's `log` feature), and then
//! carrying the pool's name and role. One test per process: tracing's global level
//! filter is shared by every thread.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use std::io;
use std::sync::{Arc, Mutex};

/// Everything `tracing` writes while `f` runs on this thread.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("dbinstance=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_sessions_events_carry_its_span_naming_the_pool_on_both_sides() {
    let file = common::TempDb::new("spans");
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url())).unwrap();
    let logs = logs_of(|| {
        db.get_db_cm_write().unwrap().commit().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let session = db.async_get_db_cm_write().await.unwrap();
            session.commit().await.unwrap();
        });
    });
    let committed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("dbinstance: committed"))
        .collect();
    assert_eq!(committed.len(), 2, "{logs}");
    for line in committed {
        assert!(
            line.contains("dbinstance.session{") && line.contains("db.pool.role=write"),
            "{line}"
        );
    }
}
