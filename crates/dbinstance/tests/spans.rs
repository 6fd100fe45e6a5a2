//! The checkout and session spans: built only when a subscriber wants DEBUG (a
//! disabled span still costs every checkout under tracing's `log` feature), and then
//! carrying the pool's name and role. One test per process: tracing's global level
//! filter is shared by every thread.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};

#[test]
fn a_sessions_events_carry_its_span_naming_the_pool_on_both_sides() {
    let file = common::TempDb::new("spans");
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url())).unwrap();
    let logs = common::logs_of(|| {
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
