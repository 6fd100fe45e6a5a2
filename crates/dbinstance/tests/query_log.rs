//! The statement log (`echo`), the slow-statement log, and instrumentation of the
//! user's own that composes with the pools' broken-connection detection instead of
//! replacing it.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, PoolKind, Postgres, Role, Sqlite};
use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn lines_with<'a>(logs: &'a str, target: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|line| line.contains(&format!(" {target}: ")))
        .collect()
}

/// Writes a row whose value must never reach a log, then reads it back.
fn write_and_read_a_secret(db: &DatabaseInstance<Sqlite>) {
    db.write(|conn| {
        conn.batch_execute("CREATE TABLE IF NOT EXISTS notes (body TEXT NOT NULL)")?;
        diesel::sql_query("INSERT INTO notes (body) VALUES (?)")
            .bind::<Text, _>("s3cret-value")
            .execute(conn)?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let mut session = db.get_db_cm_read().unwrap();
    let found = diesel::sql_query("SELECT count(*) AS n FROM notes WHERE body = ?")
        .bind::<Text, _>("s3cret-value")
        .get_result::<Count>(&mut *session)
        .unwrap()
        .n;
    assert_eq!(found, 1);
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn echo_logs_every_statement_with_its_pool_and_without_its_bind_values() {
    let file = common::TempDb::new("echo");
    let db =
        DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url()).echo(true)).unwrap();
    let logs = common::logs_of(|| write_and_read_a_secret(&db));
    let echoed = lines_with(&logs, "dbinstance::sql");
    assert!(
        echoed
            .iter()
            .any(|l| l.contains("INSERT INTO notes (body) VALUES (?)") && l.contains("write")),
        "{logs}"
    );
    assert!(
        echoed
            .iter()
            .any(|l| l.contains("SELECT count(*) AS n FROM notes WHERE body = ?")),
        "{logs}"
    );
    assert!(!logs.contains("s3cret-value"), "{logs}");
}

#[test]
fn bind_values_are_logged_only_when_asked_for() {
    let file = common::TempDb::new("echo-binds");
    let config = DatabaseConfig::from_url(file.url())
        .echo(true)
        .echo_bind_values(true);
    let db = DatabaseInstance::<Sqlite>::new(config).unwrap();
    let logs = common::logs_of(|| write_and_read_a_secret(&db));
    assert!(
        lines_with(&logs, "dbinstance::sql")
            .iter()
            .any(|l| l.contains("INSERT INTO notes") && l.contains("s3cret-value")),
        "{logs}"
    );
}

#[test]
fn no_statement_is_logged_by_default() {
    let file = common::TempDb::new("echo-off");
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url())).unwrap();
    let logs = common::logs_of(|| write_and_read_a_secret(&db));
    assert!(lines_with(&logs, "dbinstance::sql").is_empty(), "{logs}");
    assert!(
        lines_with(&logs, "dbinstance::sql::slow").is_empty(),
        "{logs}"
    );
}

#[test]
fn a_statement_slower_than_the_threshold_is_logged_with_its_time_and_no_bind_values() {
    let Some(url) = common::pg() else { return };
    let config = DatabaseConfig::from_url(url)
        .slow_statement_threshold(Duration::from_millis(200))
        .pool_size(1);
    let db = DatabaseInstance::<Postgres>::new(config).unwrap();
    let logs = common::logs_of(|| {
        let mut session = db.get_db_cm_read().unwrap();
        diesel::sql_query("SELECT pg_sleep(0.4), $1 AS label")
            .bind::<Text, _>("s3cret-value")
            .execute(&mut *session)
            .unwrap();
    });
    let slow = lines_with(&logs, "dbinstance::sql::slow");
    let line = slow
        .iter()
        .find(|l| l.contains("slow statement: SELECT pg_sleep(0.4), $1 AS label"))
        .unwrap_or_else(|| panic!("no slow line in {logs}"));
    let elapsed_ms: u64 = line
        .split("elapsed_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no elapsed_ms in {line}"));
    assert!(elapsed_ms >= 400, "{line}");
    assert!(!logs.contains("s3cret-value"), "{logs}");
    // Echo is off: only the slow statement is logged.
    assert!(lines_with(&logs, "dbinstance::sql").is_empty(), "{logs}");
}

/// Counts the statements started and the ones that failed.
#[derive(Debug, Default)]
struct Counted {
    started: AtomicU64,
    failed: AtomicU64,
}

fn counting(counted: &Arc<Counted>) -> impl Fn(&dbinstance::PoolId) -> Box<dyn Instrumentation> {
    let counted = counted.clone();
    move |_pool| {
        let counted = counted.clone();
        Box::new(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { .. } => {
                counted.started.fetch_add(1, Ordering::Relaxed);
            }
            InstrumentationEvent::FinishQuery { error: Some(_), .. } => {
                counted.failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        })
    }
}

fn state_discarded(stats: &[dbinstance::PoolStats], role: Role, kind: PoolKind) -> u64 {
    stats
        .iter()
        .filter(|s| s.pool.role == role && s.pool.kind == kind)
        .map(|s| s.counts.state_discarded)
        .sum()
}

#[test]
fn user_instrumentation_sees_every_statement_and_session_state_is_still_watched() {
    let file = common::TempDb::new("user-instrumentation");
    let counted = Arc::new(Counted::default());
    let db = DatabaseInstance::<Sqlite>::builder(DatabaseConfig::from_url(file.url()))
        .instrumentation(counting(&counted))
        .build()
        .unwrap();
    let mut session = db.get_db_cm_read().unwrap();
    let one: i32 = diesel::select(1.into_sql::<Integer>())
        .get_result(&mut *session)
        .unwrap();
    assert_eq!(one, 1);
    assert!(counted.started.load(Ordering::Relaxed) >= 1);
    // A read session that switches its read-only mode off: its connection must not
    // serve another session, instrumentation or not.
    session.batch_execute("PRAGMA query_only = 0").unwrap();
    drop(session);
    assert_eq!(
        state_discarded(&db.pool_stats(), Role::Read, PoolKind::Sync),
        1
    );
}

#[test]
fn user_instrumentation_keeps_dead_connection_detection_on() {
    let Some(url) = common::pg() else { return };
    let app = common::unique_table("instrumented_dead");
    let counted = Arc::new(Counted::default());
    let config = DatabaseConfig::from_url(url.clone())
        .pool_size(1)
        .application_name(&app)
        // No checkout pings first: only the watch can tell the connection died.
        .pre_ping_after(Duration::from_secs(60));
    let db = DatabaseInstance::<Postgres>::builder(config)
        .instrumentation(counting(&counted))
        .build()
        .unwrap();
    drop(db.get_db_cm_write().unwrap());
    let mut admin = PgConnection::establish(&url).unwrap();
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
    ))
    .execute(&mut admin)
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let mut errors = 0;
    for _ in 0..10 {
        // A killed connection fails at BEGIN, or at the session's first query.
        let answered = db.get_db_cm_write().is_ok_and(|mut session| {
            diesel::select(1.into_sql::<Integer>())
                .get_result::<i32>(&mut *session)
                .is_ok()
        });
        if !answered {
            errors += 1;
        }
    }
    assert!(errors <= 1, "{errors} errors for one killed connection");
    assert!(counted.failed.load(Ordering::Relaxed) >= errors);
}

#[test]
fn a_session_that_replaces_its_instrumentation_has_its_connection_closed() {
    let file = common::TempDb::new("replaced-instrumentation");
    // No background top-up to `min_idle`: only the checkouts below connect.
    let config = DatabaseConfig::from_url(file.url())
        .pool_size(1)
        .min_idle(0);
    let db = DatabaseInstance::<Sqlite>::new(config).unwrap();
    let opened = |db: &DatabaseInstance<Sqlite>| -> u64 {
        db.pool_stats()
            .iter()
            .filter(|s| s.pool.role == Role::Read && s.pool.kind == PoolKind::Sync)
            .map(|s| s.counts.opened)
            .sum()
    };
    drop(db.get_db_cm_read().unwrap());
    let before = opened(&db);
    let mut session = db.get_db_cm_read().unwrap();
    session.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    drop(session);
    assert_eq!(
        state_discarded(&db.pool_stats(), Role::Read, PoolKind::Sync),
        1
    );
    // The next session gets a connection that is watched again.
    let mut session = db.get_db_cm_read().unwrap();
    session.batch_execute("PRAGMA query_only = 0").unwrap();
    drop(session);
    assert_eq!(opened(&db), before + 1);
    assert_eq!(
        state_discarded(&db.pool_stats(), Role::Read, PoolKind::Sync),
        2
    );
}

#[test]
fn an_async_session_that_replaces_its_instrumentation_has_its_connection_closed() {
    let Some(url) = common::pg() else { return };
    for kind in [
        dbinstance::AsyncPoolKind::Deadpool,
        dbinstance::AsyncPoolKind::Bb8,
    ] {
        let config = DatabaseConfig::from_url(url.clone())
            .pool_size(1)
            .async_pool(kind);
        let db = DatabaseInstance::<Postgres>::new(config).unwrap();
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            use diesel_async::AsyncConnection;
            let mut session = db.async_get_db_cm_read().await.unwrap();
            session.set_instrumentation(|_: InstrumentationEvent<'_>| {});
            drop(session);
            // deadpool looks at a connection at its next checkout; bb8 when it is
            // returned, on a task of its own.
            drop(db.async_get_db_cm_read().await.unwrap());
            assert!(
                common::eventually(Duration::from_secs(5), || {
                    state_discarded(&db.pool_stats(), Role::Read, PoolKind::Async) == 1
                }),
                "{kind:?}: {:?}",
                db.pool_stats()
            );
        });
    }
}

/// Counts the statements of connections that got diesel's default instrumentation.
static DEFAULT_SEEN: AtomicU64 = AtomicU64::new(0);

fn default_instrumentation() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { .. } = event {
            DEFAULT_SEEN.fetch_add(1, Ordering::Relaxed);
        }
    }))
}

#[test]
fn diesels_default_instrumentation_still_sees_the_statements() {
    // Process-wide: the other tests here do not look at it.
    diesel::connection::set_default_instrumentation(default_instrumentation).unwrap();
    let file = common::TempDb::new("default-instrumentation");
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url())).unwrap();
    let before = DEFAULT_SEEN.load(Ordering::Relaxed);
    let mut session = db.get_db_cm_read().unwrap();
    diesel::select(1.into_sql::<Integer>())
        .get_result::<i32>(&mut *session)
        .unwrap();
    assert!(DEFAULT_SEEN.load(Ordering::Relaxed) > before);
}

#[test]
fn the_log_settings_come_from_the_environment_and_are_checked() {
    let vars = |threshold: &'static str| {
        [
            ("QLOG_DATABASE_URL", "postgres://h/db"),
            ("QLOG_DATABASE_ECHO", "true"),
            ("QLOG_DATABASE_ECHO_BIND_VALUES", "false"),
            ("QLOG_DATABASE_SLOW_STATEMENT_THRESHOLD", threshold),
        ]
    };
    let config = DatabaseConfig::from_vars("QLOG", vars("0.25")).unwrap();
    assert_eq!(config.echo, Some(true));
    assert_eq!(config.echo_bind_values, Some(false));
    assert_eq!(
        config.slow_statement_threshold,
        Some(Duration::from_millis(250))
    );

    let err = DatabaseConfig::from_vars("QLOG", vars("soon")).unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "QLOG_DATABASE_SLOW_STATEMENT_THRESHOLD"),
        "{err}"
    );
    let too_long = DatabaseConfig::from_url("postgres://h/db")
        .slow_statement_threshold(Duration::from_secs(100_000));
    let err = DatabaseInstance::<Postgres>::builder(too_long)
        .build_lazy()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "slow_statement_threshold"),
        "{err}"
    );
}
