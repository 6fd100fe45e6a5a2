//! Write sessions commit or roll back, read sessions are read-only, on every backend,
//! through both the sync and the async guards and their closure forms.

mod common;

use dbinstance::{AsyncPoolKind, DatabaseConfig, DatabaseInstance, Error, Role};
use diesel::sql_types::BigInt;
use diesel::QueryableByName;

#[derive(QueryableByName, Debug)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

macro_rules! session_tests {
    ($module:ident, $backend:ty, $url:expr, $pool:expr) => {
        mod $module {
            use super::*;
            use diesel::connection::SimpleConnection;
            use diesel_async::SimpleAsyncConnection;

            type B = $backend;

            fn config() -> Option<DatabaseConfig> {
                let url: Option<String> = $url;
                Some(
                    DatabaseConfig::from_url(url?)
                        .pool_size(4)
                        .async_pool($pool),
                )
            }

            /// An instance with a fresh table `name (id INTEGER PRIMARY KEY, unit INTEGER NOT NULL)`.
            fn setup(prefix: &str) -> Option<(DatabaseInstance<B>, String)> {
                let db = DatabaseInstance::<B>::new(config()?).expect("instance builds");
                let table = common::unique_table(prefix);
                db.write(|conn| {
                    conn.batch_execute(&format!(
                        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, unit INTEGER NOT NULL)"
                    ))
                    .map_err(Error::from)
                })
                .expect("create table");
                Some((db, table))
            }

            fn count(db: &DatabaseInstance<B>, table: &str) -> i64 {
                // Through the primary: replicas may lag.
                let mut session = db.get_db_cm_write().expect("session");
                diesel::RunQueryDsl::get_result::<Count>(
                    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")),
                    &mut *session,
                )
                .expect("count")
                .n
            }

            fn teardown(db: &DatabaseInstance<B>, table: &str) {
                let mut session = db.get_db_cm_write().expect("session");
                session
                    .batch_execute(&format!("DROP TABLE {table}"))
                    .expect("drop");
                session.commit().expect("commit");
            }

            #[test]
            fn commit_keeps_and_drop_rolls_back() {
                let Some((db, table)) = setup("sess_commit") else {
                    return;
                };
                let mut session = db.get_db_cm_write().unwrap();
                assert_eq!(session.role(), Role::Write);
                session
                    .batch_execute(&format!("INSERT INTO {table} VALUES (1, 1)"))
                    .unwrap();
                session.commit().unwrap();

                let mut session = db.get_db_cm(Role::Write).unwrap();
                session
                    .batch_execute(&format!("INSERT INTO {table} VALUES (2, 2)"))
                    .unwrap();
                drop(session);
                assert_eq!(count(&db, &table), 1);

                let mut session = db.get_db_cm_write().unwrap();
                session
                    .batch_execute(&format!("INSERT INTO {table} VALUES (3, 3)"))
                    .unwrap();
                session.rollback().unwrap();
                assert_eq!(count(&db, &table), 1);
                teardown(&db, &table);
            }

            #[test]
            fn closures_commit_on_ok_and_roll_back_on_err_and_panic() {
                let Some((db, table)) = setup("sess_closure") else {
                    return;
                };
                db.write(|conn| {
                    conn.batch_execute(&format!("INSERT INTO {table} VALUES (1, 1)"))
                        .map_err(Error::from)
                })
                .unwrap();
                let failed: Result<(), Error> = db.write(|conn| {
                    conn.batch_execute(&format!("INSERT INTO {table} VALUES (2, 2)"))?;
                    conn.batch_execute(&format!("INSERT INTO {table} VALUES (1, 1)"))?; // duplicate key
                    Ok(())
                });
                assert!(matches!(failed, Err(Error::Query { .. })), "{failed:?}");
                let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = db.write(|conn| -> Result<(), Error> {
                        conn.batch_execute(&format!("INSERT INTO {table} VALUES (3, 3)"))?;
                        panic!("handler bug");
                    });
                }));
                assert!(panicked.is_err());
                assert_eq!(count(&db, &table), 1);
                teardown(&db, &table);
            }

            #[test]
            fn read_sessions_refuse_writes() {
                let Some((db, table)) = setup("sess_ro") else {
                    return;
                };
                let mut session = db.get_db_cm_read().unwrap();
                assert_eq!(session.role(), Role::Read);
                let err = session
                    .batch_execute(&format!("INSERT INTO {table} VALUES (1, 1)"))
                    .unwrap_err();
                assert!(dbinstance::is_read_only_violation(&err), "{err:?}");
                drop(session);
                let err = db
                    .read(|conn| {
                        conn.batch_execute(&format!("CREATE TABLE {table}_x (id INTEGER)"))
                            .map_err(Error::from)
                    })
                    .unwrap_err();
                assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
                assert_eq!(count(&db, &table), 0);
                teardown(&db, &table);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn async_sessions_commit_roll_back_and_stay_read_only() {
                let Some((db, table)) = setup("sess_async") else {
                    return;
                };
                let mut session = db.async_get_db_cm_write().await.unwrap();
                session
                    .batch_execute(&format!("INSERT INTO {table} VALUES (1, 1)"))
                    .await
                    .unwrap();
                session.commit().await.unwrap();

                let mut session = db.async_get_db_cm(Role::Write).await.unwrap();
                session
                    .batch_execute(&format!("INSERT INTO {table} VALUES (2, 2)"))
                    .await
                    .unwrap();
                drop(session);

                let result: Result<(), Error> = db
                    .async_write(async |conn| {
                        conn.batch_execute(&format!("INSERT INTO {table} VALUES (3, 3)"))
                            .await?;
                        Err(Error::Runtime("handler failed"))
                    })
                    .await;
                assert!(result.is_err());
                db.async_write(async |conn| {
                    conn.batch_execute(&format!("INSERT INTO {table} VALUES (4, 4)"))
                        .await
                        .map_err(Error::from)
                })
                .await
                .unwrap();

                let mut read = db.async_get_db_cm_read().await.unwrap();
                let err = read
                    .batch_execute(&format!("INSERT INTO {table} VALUES (5, 5)"))
                    .await
                    .unwrap_err();
                assert!(dbinstance::is_read_only_violation(&err), "{err:?}");
                drop(read);
                let n = db
                    .async_read(async |conn| {
                        diesel_async::RunQueryDsl::get_result::<Count>(
                            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")),
                            conn,
                        )
                        .await
                        .map_err(Error::from)
                    })
                    .await
                    .unwrap();
                // A replica may lag behind; the primary is exact.
                assert!(n.n <= 2);
                let db2 = db.clone();
                let table2 = table.clone();
                tokio::task::spawn_blocking(move || {
                    assert!(common::eventually(
                        std::time::Duration::from_secs(5),
                        || count(&db2, &table2) == 2
                    ));
                    teardown(&db2, &table2);
                })
                .await
                .unwrap();
            }

            /// diesel-async's `transaction()` inside a write session is a savepoint:
            /// its rollback keeps the session's earlier work, and the session's own
            /// end decides for all of it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_nested_transaction_is_a_savepoint_of_the_session() {
                use diesel_async::AsyncConnection;
                let Some((db, table)) = setup("sess_nested") else {
                    return;
                };
                let insert = |id: i32| format!("INSERT INTO {table} VALUES ({id}, {id})");
                let mut session = db.async_get_db_cm_write().await.unwrap();
                session.batch_execute(&insert(1)).await.unwrap();
                let failed: Result<(), Error> = session
                    .transaction(async |conn| {
                        conn.batch_execute(&insert(2)).await?;
                        Err(Error::Runtime("inner work failed"))
                    })
                    .await;
                assert!(failed.is_err());
                session
                    .transaction(async |conn| conn.batch_execute(&insert(3)).await)
                    .await
                    .unwrap();
                session.commit().await.unwrap();

                let mut session = db.async_get_db_cm_write().await.unwrap();
                session
                    .transaction(async |conn| conn.batch_execute(&insert(4)).await)
                    .await
                    .unwrap();
                drop(session);

                let db2 = db.clone();
                tokio::task::spawn_blocking(move || {
                    // 1 and 3: not the rolled-back savepoint, nor the dropped session.
                    assert_eq!(count(&db2, &table), 2);
                    teardown(&db2, &table);
                })
                .await
                .unwrap();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn async_panic_in_a_write_rolls_back() {
                let Some((db, table)) = setup("sess_panic") else {
                    return;
                };
                let db2 = db.clone();
                let t = table.clone();
                let joined = tokio::spawn(async move {
                    let mut session = db2.async_get_db_cm_write().await.unwrap();
                    session
                        .batch_execute(&format!("INSERT INTO {t} VALUES (1, 1)"))
                        .await
                        .unwrap();
                    panic!("handler bug");
                })
                .await;
                assert!(joined.is_err());
                let db2 = db.clone();
                tokio::task::spawn_blocking(move || {
                    assert_eq!(count(&db2, &table), 0);
                    teardown(&db2, &table);
                })
                .await
                .unwrap();
            }

            #[test]
            fn an_exhausted_pool_times_out_naming_the_pool() {
                let Some(config) = config() else { return };
                let config = config
                    .pool_size(1)
                    .min_idle(1)
                    .pool_timeout(std::time::Duration::from_millis(300));
                let db = DatabaseInstance::<B>::new(config).unwrap();
                let held = db.get_db_cm_write().unwrap();
                let started = std::time::Instant::now();
                let err = db.get_db_cm_write().unwrap_err();
                assert!(started.elapsed() < std::time::Duration::from_secs(3));
                match &err {
                    Error::Timeout { pool, .. } => {
                        assert_eq!(pool.role, Role::Write);
                        assert_eq!(pool.kind, dbinstance::PoolKind::Sync);
                    }
                    other => panic!("expected a timeout, got {other:?}"),
                }
                assert!(err.to_string().contains("sync write pool"), "{err}");
                drop(held);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let held = db.async_get_db_cm_write().await.unwrap();
                    let err = db.async_get_db_cm_write().await.unwrap_err();
                    assert!(err.to_string().contains("async write pool"), "{err}");
                    assert!(err.is_unavailable());
                    drop(held);
                });
            }

            #[tokio::test]
            async fn closed_instances_refuse_new_sessions() {
                let Some(config) = config() else { return };
                let db = DatabaseInstance::<B>::builder(config)
                    .build_async()
                    .await
                    .unwrap();
                db.close_all_connections();
                assert!(db.is_closed());
                assert!(matches!(
                    db.async_get_db_cm_read().await,
                    Err(Error::Closed { .. })
                ));
                assert!(matches!(db.get_db_cm_write(), Err(Error::Closed { .. })));
                assert!(!db.async_check_database_health().await);
            }
        }
    };
}

session_tests!(
    sqlite_deadpool,
    dbinstance::Sqlite,
    Some(":memory:".to_owned()),
    AsyncPoolKind::Deadpool
);
session_tests!(
    sqlite_bb8,
    dbinstance::Sqlite,
    Some(":memory:".to_owned()),
    AsyncPoolKind::Bb8
);
session_tests!(
    postgres_deadpool,
    dbinstance::Postgres,
    common::pg(),
    AsyncPoolKind::Deadpool
);
session_tests!(
    postgres_bb8,
    dbinstance::Postgres,
    common::pg(),
    AsyncPoolKind::Bb8
);
session_tests!(
    mysql_deadpool,
    dbinstance::Mysql,
    common::mysql(),
    AsyncPoolKind::Deadpool
);
session_tests!(
    mysql_bb8,
    dbinstance::Mysql,
    common::mysql(),
    AsyncPoolKind::Bb8
);
