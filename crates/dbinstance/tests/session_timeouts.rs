//! Server-side session timeouts: `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_timeout` reach every connection of every pool, blocking
//! and async, write and read, on PostgreSQL and MariaDB; the server then cancels a
//! statement that runs too long and ends a transaction left idle; SQLite refuses
//! them by name.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Role, Sqlite};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use std::time::Duration;

fn timeouts(config: DatabaseConfig) -> DatabaseConfig {
    config
        .statement_timeout(Duration::from_millis(300))
        .lock_timeout(Duration::from_millis(1500))
        .idle_in_transaction_timeout(Duration::from_millis(600))
}

/// The scenario for one server backend, with its concrete types.
macro_rules! scenario {
    ($module:ident, $backend:ty, $url:expr, $settings:expr, $expected:expr, $slow:expr) => {
        mod $module {
            use super::*;

            fn settings_blocking(db: &DatabaseInstance<$backend>, role: Role) -> String {
                let mut session = db.get_db_cm(role).unwrap();
                diesel::RunQueryDsl::get_result(
                    diesel::select(diesel::dsl::sql::<Text>($settings)),
                    &mut *session,
                )
                .unwrap()
            }

            async fn settings_async(db: &DatabaseInstance<$backend>, role: Role) -> String {
                let mut session = db.async_get_db_cm(role).await.unwrap();
                diesel_async::RunQueryDsl::get_result(
                    diesel::select(diesel::dsl::sql::<Text>($settings)),
                    &mut *session,
                )
                .await
                .unwrap()
            }

            #[test]
            fn every_pool_gets_the_timeouts() {
                let Some(url) = $url else { return };
                let db =
                    DatabaseInstance::<$backend>::new(timeouts(DatabaseConfig::from_url(&url)))
                        .unwrap();
                let runtime = tokio::runtime::Runtime::new().unwrap();
                for role in [Role::Write, Role::Read] {
                    assert_eq!(settings_blocking(&db, role), $expected, "blocking {role:?}");
                    let got = runtime.block_on(settings_async(&db, role));
                    assert_eq!(got, $expected, "async {role:?}");
                }
                let plain =
                    DatabaseInstance::<$backend>::new(DatabaseConfig::from_url(&url)).unwrap();
                assert_ne!(settings_blocking(&plain, Role::Write), $expected);
            }

            #[test]
            fn a_statement_that_runs_too_long_is_cancelled_by_the_server() {
                let Some(url) = $url else { return };
                let db =
                    DatabaseInstance::<$backend>::new(timeouts(DatabaseConfig::from_url(&url)))
                        .unwrap();
                // A prepared statement: MySQL's `batch_execute` drops the error of a
                // statement that returns rows.
                let err = db
                    .read(|conn| {
                        diesel::RunQueryDsl::execute(diesel::sql_query($slow), conn)
                            .map_err(Error::from)
                    })
                    .unwrap_err();
                assert!(matches!(err, Error::Query { .. }), "{err:?}");
                let err = tokio::runtime::Runtime::new().unwrap().block_on(async {
                    db.async_read(async |conn| {
                        diesel_async::RunQueryDsl::execute(diesel::sql_query($slow), conn)
                            .await
                            .map_err(Error::from)
                    })
                    .await
                    .unwrap_err()
                });
                assert!(matches!(err, Error::Query { .. }), "{err:?}");
                // The pools go on serving.
                db.read(|conn| conn.batch_execute("SELECT 1").map_err(Error::from))
                    .unwrap();
            }

            #[test]
            fn a_transaction_left_idle_is_ended_by_the_server() {
                let Some(url) = $url else { return };
                let db =
                    DatabaseInstance::<$backend>::new(timeouts(DatabaseConfig::from_url(&url)))
                        .unwrap();
                let mut session = db.get_db_cm_write().unwrap();
                session.batch_execute("SELECT 1").unwrap();
                // Longer than the idle bound, rounded up to MariaDB's whole second.
                std::thread::sleep(Duration::from_millis(2500));
                assert!(session.batch_execute("SELECT 1").is_err());
                drop(session);
                // The connection the server ended is not handed out again.
                db.write(|conn| conn.batch_execute("SELECT 1").map_err(Error::from))
                    .unwrap();
            }
        }
    };
}

scenario!(
    postgres,
    dbinstance::Postgres,
    common::pg(),
    "current_setting('statement_timeout') || ' ' || current_setting('lock_timeout') || ' ' \
     || current_setting('idle_in_transaction_session_timeout')",
    "300ms 1500ms 600ms",
    "SELECT pg_sleep(2)"
);

scenario!(
    mariadb,
    dbinstance::Mysql,
    common::mysql(),
    "CONCAT(@@session.max_statement_time + 0, ' ', @@session.innodb_lock_wait_timeout, ' ', \
     @@session.idle_transaction_timeout)",
    "0.300000 2 1",
    // SLEEP() and BENCHMARK() answer a row when interrupted: a statement that
    // works until it is cancelled, before any row (the sequence engine is built in).
    "SELECT SUM(SHA2(seq, 256) = 'x') FROM seq_1_to_100000000"
);

#[test]
fn sqlite_refuses_server_timeouts_by_name() {
    for (field, config) in [
        (
            "statement_timeout",
            DatabaseConfig::from_url(":memory:").statement_timeout(Duration::from_secs(1)),
        ),
        (
            "lock_timeout",
            DatabaseConfig::from_url(":memory:").lock_timeout(Duration::from_secs(1)),
        ),
        (
            "idle_in_transaction_timeout",
            DatabaseConfig::from_url(":memory:")
                .idle_in_transaction_timeout(Duration::from_secs(1)),
        ),
    ] {
        let err = DatabaseInstance::<Sqlite>::new(config).unwrap_err();
        assert!(
            matches!(&err, Error::Config { field: f, .. } if f == field),
            "{err}"
        );
    }
}

#[test]
fn zero_and_unbounded_timeouts_are_refused_naming_the_field() {
    let zero = DatabaseConfig::from_url("postgres://h/db").statement_timeout(Duration::ZERO);
    let err = DatabaseInstance::<dbinstance::Postgres>::builder(zero)
        .build_lazy()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "statement_timeout"),
        "{err}"
    );
    let long = DatabaseConfig::from_url("postgres://h/db").lock_timeout(Duration::from_secs(7200));
    let err = DatabaseInstance::<dbinstance::Postgres>::builder(long)
        .build_lazy()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "lock_timeout"),
        "{err}"
    );
}
