//! A read session cannot hand a writable connection to the next one: whatever SQL
//! it runs to turn read-only mode off, the next read session on the same pool (one
//! connection, so the same one unless it was closed) still refuses writes. On every
//! backend, blocking and async; PostgreSQL and MariaDB without a replica, so the
//! read pools are the primary's read-only pools, where turning it off would work.

mod common;

use dbinstance::{
    AsyncPoolKind, DatabaseConfig, DatabaseInstance, Error, PoolCounts, PoolKind, Role,
};

/// A statement that turns read-only mode off, and whether it also works as a
/// prepared statement (several statements in one text only run as a batch).
struct Escape {
    sql: &'static str,
    prepared_too: bool,
}

const fn batch(sql: &'static str) -> Escape {
    Escape {
        sql,
        prepared_too: false,
    }
}

const fn both(sql: &'static str) -> Escape {
    Escape {
        sql,
        prepared_too: true,
    }
}

const PG: &[Escape] = &[
    both("SET default_transaction_read_only = off"),
    both("set session default_transaction_read_only to false"),
    both("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),
    both("SELECT set_config('default_transaction_read_only', 'off', false)"),
    both("select pg_catalog.set_config('default_transaction_read_only', 'off', false)"),
    both("WITH x AS (SELECT set_config('default_transaction_read_only', 'off', false)) SELECT * FROM x"),
    both("/* hidden */ SET default_transaction_read_only = off"),
    batch("SELECT 1; SET default_transaction_read_only = off"),
];

const MYSQL: &[Escape] = &[
    both("SET SESSION TRANSACTION READ WRITE"),
    both("set session tx_read_only = 0"),
    both("SET @@session.tx_read_only = OFF"),
    // Only the next transaction, which is the next user's first statement.
    both("SET TRANSACTION READ WRITE"),
    both("/* hidden */ SET SESSION TRANSACTION READ WRITE"),
    batch("SELECT 1; SET SESSION TRANSACTION READ WRITE"),
];

const SQLITE: &[Escape] = &[
    both("PRAGMA query_only = 0"),
    both("pragma QUERY_ONLY=false"),
    both("/* hidden */ PRAGMA query_only = OFF"),
    batch("SELECT 1; PRAGMA query_only = 0"),
];

macro_rules! read_only_tests {
    ($module:ident, $backend:ty, $temp:ident => $url:expr, $pool:expr, $escapes:expr) => {
        mod $module {
            use super::*;
            use diesel::connection::SimpleConnection;
            use diesel::IntoSql;
            use diesel_async::SimpleAsyncConnection;

            type B = $backend;

            /// One connection per pool, so the next read session gets the same
            /// connection unless it was closed; and a fresh table.
            fn setup(url: String) -> (DatabaseInstance<B>, String) {
                let config = DatabaseConfig::from_url(url).pool_size(1).async_pool($pool);
                let db = DatabaseInstance::<B>::new(config).expect("instance builds");
                let table = common::unique_table("ro");
                db.write(|conn| {
                    conn.batch_execute(&format!("CREATE TABLE {table} (id INTEGER)"))
                        .map_err(Error::from)
                })
                .expect("create table");
                (db, table)
            }

            fn teardown(db: &DatabaseInstance<B>, table: &str) {
                db.write(|conn| {
                    conn.batch_execute(&format!("DROP TABLE {table}"))
                        .map_err(Error::from)
                })
                .expect("drop table");
            }

            /// Notes in `leaks` a write that was not refused as a read-only violation.
            fn refused(
                leaks: &mut Vec<String>,
                escape: &str,
                how: &str,
                result: diesel::QueryResult<()>,
            ) {
                match result.map_err(Error::from) {
                    Err(Error::ReadOnly { .. }) => {}
                    other => leaks.push(format!("`{escape}` ({how}): {other:?}")),
                }
            }

            /// The counts of the one read pool of `kind` (there is no replica).
            fn read_pool(db: &DatabaseInstance<B>, kind: PoolKind) -> PoolCounts {
                let stats = db.pool_stats();
                let mut reads = stats
                    .iter()
                    .filter(|s| s.pool.role == Role::Read && s.pool.kind == kind);
                let pool = reads.next().expect("a read pool");
                assert!(reads.next().is_none(), "one read pool per family");
                pool.counts
            }

            /// The sessions that ran an escape, each of which closes its connection
            /// (so do those whose write was refused, a write being no plain read;
            /// deadpool closes the last one only at the next checkout).
            fn sessions_run(escapes: &[Escape]) -> u64 {
                escapes.iter().map(|e| 1 + u64::from(e.prepared_too)).sum()
            }

            #[test]
            fn a_read_session_cannot_make_the_next_one_writable() {
                let $temp = common::TempDb::new("ro");
                let Some(url) = $url else { return };
                let (db, table) = setup(url);
                let insert = format!("INSERT INTO {table} VALUES (1)");
                let mut leaks = Vec::new();
                for escape in $escapes {
                    let mut session = db.get_db_cm_read().unwrap();
                    session.batch_execute(escape.sql).expect(escape.sql);
                    drop(session);
                    let mut next = db.get_db_cm_read().unwrap();
                    refused(&mut leaks, escape.sql, "batch", next.batch_execute(&insert));
                    drop(next);
                    if escape.prepared_too {
                        db.read(|conn| {
                            diesel::RunQueryDsl::execute(diesel::sql_query(escape.sql), conn)
                                .map_err(Error::from)
                        })
                        .expect(escape.sql);
                        let mut next = db.get_db_cm_read().unwrap();
                        refused(
                            &mut leaks,
                            escape.sql,
                            "prepared",
                            next.batch_execute(&insert),
                        );
                    }
                }
                teardown(&db, &table);
                assert!(
                    leaks.is_empty(),
                    "the next read session could write after {leaks:#?}"
                );
                let discarded = read_pool(&db, PoolKind::Sync).state_discarded;
                assert!(discarded >= sessions_run($escapes), "{discarded}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_async_read_session_cannot_make_the_next_one_writable() {
                let $temp = common::TempDb::new("ro");
                let Some(url) = $url else { return };
                let (db, table) = tokio::task::spawn_blocking(move || setup(url))
                    .await
                    .unwrap();
                let insert = format!("INSERT INTO {table} VALUES (1)");
                let mut leaks = Vec::new();
                for escape in $escapes {
                    let mut session = db.async_get_db_cm_read().await.unwrap();
                    session.batch_execute(escape.sql).await.expect(escape.sql);
                    drop(session);
                    let mut next = db.async_get_db_cm_read().await.unwrap();
                    refused(
                        &mut leaks,
                        escape.sql,
                        "async batch",
                        next.batch_execute(&insert).await,
                    );
                    drop(next);
                    if escape.prepared_too {
                        db.async_read(async |conn| {
                            diesel_async::RunQueryDsl::execute(diesel::sql_query(escape.sql), conn)
                                .await
                                .map_err(Error::from)
                        })
                        .await
                        .expect(escape.sql);
                        let mut next = db.async_get_db_cm_read().await.unwrap();
                        refused(
                            &mut leaks,
                            escape.sql,
                            "async prepared",
                            next.batch_execute(&insert).await,
                        );
                    }
                }
                assert!(
                    leaks.is_empty(),
                    "the next read session could write after {leaks:#?}"
                );
                let discarded = read_pool(&db, PoolKind::Async).state_discarded;
                assert!(discarded >= sessions_run($escapes), "{discarded}");
                tokio::task::spawn_blocking(move || teardown(&db, &table))
                    .await
                    .unwrap();
            }

            /// Typed queries, plain `SELECT`s and diesel's own transactions leave the
            /// connection as it was: it is kept, not reopened.
            #[test]
            fn plain_reads_keep_their_connection() {
                let $temp = common::TempDb::new("ro");
                let Some(url) = $url else { return };
                let (db, table) = setup(url);
                drop(db.get_db_cm_read().unwrap());
                let before = read_pool(&db, PoolKind::Sync);
                for _ in 0..3 {
                    let mut session = db.get_db_cm_read().unwrap();
                    let one: i32 = diesel::RunQueryDsl::get_result(
                        diesel::select(1.into_sql::<diesel::sql_types::Integer>()),
                        &mut *session,
                    )
                    .unwrap();
                    assert_eq!(one, 1);
                    session
                        .batch_execute(&format!("SELECT COUNT(*) FROM {table}"))
                        .unwrap();
                    diesel::Connection::transaction(&mut *session, |conn| {
                        conn.batch_execute(&format!("select id from {table}"))
                    })
                    .unwrap();
                }
                let after = read_pool(&db, PoolKind::Sync);
                assert_eq!((after.opened, after.state_discarded), (before.opened, 0));
                teardown(&db, &table);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn async_plain_reads_keep_their_connection() {
                let $temp = common::TempDb::new("ro");
                let Some(url) = $url else { return };
                let (db, table) = tokio::task::spawn_blocking(move || setup(url))
                    .await
                    .unwrap();
                drop(db.async_get_db_cm_read().await.unwrap());
                let before = read_pool(&db, PoolKind::Async);
                for _ in 0..3 {
                    let mut session = db.async_get_db_cm_read().await.unwrap();
                    let one: i32 = diesel_async::RunQueryDsl::get_result(
                        diesel::select(1.into_sql::<diesel::sql_types::Integer>()),
                        &mut *session,
                    )
                    .await
                    .unwrap();
                    assert_eq!(one, 1);
                    session
                        .batch_execute(&format!("SELECT COUNT(*) FROM {table}"))
                        .await
                        .unwrap();
                    let select = format!("select id from {table}");
                    diesel_async::AsyncConnection::transaction(
                        &mut *session,
                        async |conn| -> diesel::QueryResult<()> {
                            conn.batch_execute(&select).await
                        },
                    )
                    .await
                    .unwrap();
                }
                let after = read_pool(&db, PoolKind::Async);
                assert_eq!((after.opened, after.state_discarded), (before.opened, 0));
                tokio::task::spawn_blocking(move || teardown(&db, &table))
                    .await
                    .unwrap();
            }
        }
    };
}

read_only_tests!(
    postgres_deadpool,
    dbinstance::Postgres,
    _db => common::pg(),
    AsyncPoolKind::Deadpool,
    PG
);
read_only_tests!(
    postgres_bb8,
    dbinstance::Postgres,
    _db => common::pg(),
    AsyncPoolKind::Bb8,
    PG
);
read_only_tests!(
    mysql_deadpool,
    dbinstance::Mysql,
    _db => common::mysql(),
    AsyncPoolKind::Deadpool,
    MYSQL
);
read_only_tests!(
    mysql_bb8,
    dbinstance::Mysql,
    _db => common::mysql(),
    AsyncPoolKind::Bb8,
    MYSQL
);
read_only_tests!(
    sqlite_deadpool,
    dbinstance::Sqlite,
    file => Some(file.url()),
    AsyncPoolKind::Deadpool,
    SQLITE
);
read_only_tests!(
    sqlite_bb8,
    dbinstance::Sqlite,
    file => Some(file.url()),
    AsyncPoolKind::Bb8,
    SQLITE
);
