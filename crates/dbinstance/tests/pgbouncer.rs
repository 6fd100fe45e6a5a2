//! PostgreSQL behind PgBouncer in transaction pooling mode (the test bed's, the
//! distribution's 1.18, four server connections per database): with
//! `transaction_pooling` the instance builds, typed queries with binds run from
//! many more blocking and async clients than there are server connections, read
//! sessions refuse writes, write sessions commit and roll back, cancelled async
//! sessions leave nothing behind, and replicas behind a second database entry
//! serve reads, read-your-writes included. Without the setting the build fails
//! with PgBouncer's refusal; the settings it cannot keep are refused at build.

mod common;

use dbinstance::{
    is_read_only_violation, DatabaseConfig, DatabaseInstance, Error, Postgres, ReadYourWrites,
    Sqlite,
};
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{IntoSql, QueryableByName};
use std::sync::Arc;
use std::time::Duration;

/// Clients per test: well above PgBouncer's four server connections.
const CLIENTS: i64 = 24;
const ROUNDS: i64 = 10;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    note: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Recovery {
    #[diesel(sql_type = Bool)]
    replica: bool,
}

fn config(url: &str) -> DatabaseConfig {
    DatabaseConfig::from_url(url)
        .transaction_pooling(true)
        .pool_size(CLIENTS as u32)
        .pool_timeout(Duration::from_secs(20))
}

/// A table of its own, created through PgBouncer, dropped on drop.
struct Table {
    db: DatabaseInstance<Postgres>,
    name: String,
}

impl Table {
    fn create(db: &DatabaseInstance<Postgres>) -> Self {
        let name = common::unique_table("pgb");
        let mut session = db.get_db_cm_write().unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            &mut *session,
            &format!("CREATE TABLE {name} (id BIGINT PRIMARY KEY, note TEXT NOT NULL)"),
        )
        .unwrap();
        session.commit().unwrap();
        Self {
            db: db.clone(),
            name,
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Ok(mut session) = self.db.get_db_cm_write() {
            let _ = diesel::connection::SimpleConnection::batch_execute(
                &mut *session,
                &format!("DROP TABLE IF EXISTS {}", self.name),
            );
            let _ = session.commit();
        }
    }
}

/// A query diesel would keep as a named prepared statement, were its cache on.
fn echo(conn: &mut diesel::PgConnection, id: i64) -> i64 {
    let query = diesel::select(id.into_sql::<BigInt>());
    diesel::RunQueryDsl::get_result(query, conn).unwrap()
}

async fn async_echo(conn: &mut diesel_async::AsyncPgConnection, id: i64) -> i64 {
    let query = diesel::select(id.into_sql::<BigInt>());
    diesel_async::RunQueryDsl::get_result(query, conn)
        .await
        .unwrap()
}

fn count(conn: &mut diesel::PgConnection, table: &str, id: i64) -> i64 {
    let query = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table} WHERE id = $1"))
        .bind::<BigInt, _>(id);
    diesel::RunQueryDsl::get_result::<Count>(query, conn)
        .unwrap()
        .n
}

async fn async_count(conn: &mut diesel_async::AsyncPgConnection, table: &str, id: i64) -> i64 {
    let query = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table} WHERE id = $1"))
        .bind::<BigInt, _>(id);
    diesel_async::RunQueryDsl::get_result::<Count>(query, conn)
        .await
        .unwrap()
        .n
}

#[test]
fn without_the_setting_pgbouncer_refuses_the_read_pools() {
    let Some(url) = common::server_url("DBI_PGBOUNCER_URL") else {
        return;
    };
    let err = DatabaseInstance::<Postgres>::new(DatabaseConfig::from_url(&url))
        .expect_err("PgBouncer 1.18 refuses the read-only startup parameter");
    assert!(
        err.chain()
            .contains("unsupported startup parameter: options"),
        "{}",
        err.chain()
    );
}

#[test]
fn what_a_transaction_pooler_cannot_keep_is_refused_at_build() {
    let pg = |url: &str| DatabaseConfig::from_url(url).transaction_pooling(true);
    let field_of = |config: DatabaseConfig| match DatabaseInstance::<Postgres>::new(config) {
        Err(Error::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    let url = "postgres://app@127.0.0.1:1/app";
    assert_eq!(
        field_of(pg(url).statement_timeout(Duration::from_secs(1))),
        "statement_timeout"
    );
    assert_eq!(
        field_of(pg(url).idle_in_transaction_timeout(Duration::from_secs(1))),
        "idle_in_transaction_timeout"
    );
    assert_eq!(
        field_of(pg(&format!("{url}?options=-c%20search_path%3Dx"))),
        "url"
    );
    assert_eq!(
        field_of(pg(url).read_url(format!("{url}?options=-c%20search_path%3Dx"))),
        "read_urls[0]"
    );
    match DatabaseInstance::<Sqlite>::new(
        DatabaseConfig::from_url(":memory:").transaction_pooling(true),
    ) {
        Err(Error::Config { field, .. }) => assert_eq!(field, "transaction_pooling"),
        other => panic!("expected a config error, got {other:?}"),
    }
    let from_env = DatabaseConfig::from_vars(
        "",
        [
            ("DATABASE_URL", url),
            ("DATABASE_TRANSACTION_POOLING", "true"),
        ],
    )
    .unwrap();
    assert_eq!(from_env.transaction_pooling, Some(true));
    let from_toml: DatabaseConfig =
        toml::from_str("url = \"postgres://app@127.0.0.1:6432/app\"\ntransaction_pooling = true")
            .unwrap();
    assert_eq!(from_toml.transaction_pooling, Some(true));
}

#[test]
fn blocking_sessions_share_the_server_connections() {
    let Some(url) = common::server_url("DBI_PGBOUNCER_URL") else {
        return;
    };
    let db = DatabaseInstance::<Postgres>::new(config(&url)).unwrap();
    let table = Arc::new(Table::create(&db));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (db, table) = (db.clone(), table.clone());
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let id = client * 1000 + round;
                    let mut write = db.get_db_cm_write().unwrap();
                    let insert = diesel::sql_query(format!(
                        "INSERT INTO {} (id, note) VALUES ($1, $2)",
                        table.name
                    ))
                    .bind::<BigInt, _>(id)
                    .bind::<Text, _>(format!("client {client}"));
                    diesel::RunQueryDsl::execute(insert, &mut *write).unwrap();
                    assert_eq!(echo(&mut write, id), id);
                    // Every other write is rolled back, by the call or by the drop.
                    match round % 4 {
                        0 | 1 => write.commit().unwrap(),
                        2 => write.rollback().unwrap(),
                        _ => drop(write),
                    }
                    let mut read = db.get_db_cm_read().unwrap();
                    let expected = i64::from(round % 4 < 2);
                    assert_eq!(count(&mut read, &table.name, id), expected, "id {id}");
                    assert_eq!(echo(&mut read, id), id);
                    let query = diesel::sql_query(format!(
                        "SELECT id, note FROM {} WHERE id = $1",
                        table.name
                    ))
                    .bind::<BigInt, _>(id);
                    let rows: Vec<Row> = diesel::RunQueryDsl::load(query, &mut *read).unwrap();
                    assert!(rows
                        .iter()
                        .all(|r| r.id == id && r.note == format!("client {client}")));
                    if round % 2 == 0 {
                        read.commit().unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_read_connections_kept(&db);
}

/// Read sessions that end their transaction, by commit or drop, hand back a
/// connection fit for the next one: none was closed as changed or broken.
fn assert_read_connections_kept(db: &DatabaseInstance<Postgres>) {
    for stats in db.pool_stats() {
        if stats.pool.role == dbinstance::Role::Read {
            let counts = stats.counts;
            assert_eq!(
                (
                    counts.state_discarded,
                    counts.broken_discarded,
                    counts.aborted_transactions
                ),
                (0, 0, 0),
                "{}",
                stats.pool
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_sessions_share_the_server_connections() {
    let Some(url) = common::server_url("DBI_PGBOUNCER_URL") else {
        return;
    };
    for pool in [
        dbinstance::AsyncPoolKind::Deadpool,
        dbinstance::AsyncPoolKind::Bb8,
    ] {
        let db = DatabaseInstance::<Postgres>::builder(config(&url).async_pool(pool))
            .build_async()
            .await
            .unwrap();
        let table = Arc::new(tokio::task::block_in_place(|| Table::create(&db)));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (db, table) = (db.clone(), table.clone());
                tokio::spawn(async move {
                    for round in 0..ROUNDS {
                        let id = client * 1000 + round;
                        let mut write = db.async_get_db_cm_write().await.unwrap();
                        let insert = diesel::sql_query(format!(
                            "INSERT INTO {} (id, note) VALUES ($1, $2)",
                            table.name
                        ))
                        .bind::<BigInt, _>(id)
                        .bind::<Text, _>(format!("client {client}"));
                        diesel_async::RunQueryDsl::execute(insert, &mut *write)
                            .await
                            .unwrap();
                        assert_eq!(async_echo(&mut write, id).await, id);
                        match round % 4 {
                            0 | 1 => write.commit().await.unwrap(),
                            2 => write.rollback().await.unwrap(),
                            _ => drop(write),
                        }
                        let mut read = db.async_get_db_cm_read().await.unwrap();
                        let expected = i64::from(round % 4 < 2);
                        assert_eq!(
                            async_count(&mut read, &table.name, id).await,
                            expected,
                            "id {id}"
                        );
                        assert_eq!(async_echo(&mut read, id).await, id);
                        if round % 2 == 0 {
                            read.commit().await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // The ROLLBACKs of the dropped read sessions run on the runtime.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_read_connections_kept(&db);
        tokio::task::block_in_place(|| drop(table));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_sessions_refuse_writes() {
    let Some(url) = common::server_url("DBI_PGBOUNCER_URL") else {
        return;
    };
    let db = DatabaseInstance::<Postgres>::builder(config(&url))
        .build_async()
        .await
        .unwrap();
    let table = tokio::task::block_in_place(|| Table::create(&db));
    let insert = format!("INSERT INTO {} (id, note) VALUES (1, 'x')", table.name);
    for _ in 0..CLIENTS {
        let mut read = db.async_get_db_cm_read().await.unwrap();
        let err = diesel_async::RunQueryDsl::execute(diesel::sql_query(&insert), &mut *read)
            .await
            .unwrap_err();
        assert!(is_read_only_violation(&err), "{err}");
    }
    tokio::task::block_in_place(|| {
        for _ in 0..CLIENTS {
            let mut read = db.get_db_cm_read().unwrap();
            let err =
                diesel::RunQueryDsl::execute(diesel::sql_query(&insert), &mut *read).unwrap_err();
            assert!(is_read_only_violation(&err), "{err}");
        }
        let mut read = db.get_db_cm_read().unwrap();
        assert_eq!(count(&mut read, &table.name, 1), 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_async_sessions_leave_nothing_behind() {
    let Some(url) = common::server_url("DBI_PGBOUNCER_URL") else {
        return;
    };
    // Its own name, which PgBouncer hands on to the server connection it lends.
    let name = common::unique_table("pgb_cut");
    let db = DatabaseInstance::<Postgres>::builder(config(&url).application_name(&name))
        .build_async()
        .await
        .unwrap();
    let table = Arc::new(tokio::task::block_in_place(|| Table::create(&db)));
    let cut: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (db, table) = (db.clone(), table.clone());
            tokio::spawn(async move {
                let work = async {
                    let mut write = db.async_get_db_cm_write().await.unwrap();
                    let insert = diesel::sql_query(format!(
                        "INSERT INTO {} (id, note) SELECT $1, 'cut' FROM pg_sleep(0.2)",
                        table.name
                    ))
                    .bind::<BigInt, _>(client);
                    diesel_async::RunQueryDsl::execute(insert, &mut *write)
                        .await
                        .unwrap();
                    write.commit().await.unwrap();
                };
                // Cut mid-statement for some, while waiting for a connection for others.
                let _ = tokio::time::timeout(Duration::from_millis(50), work).await;
            })
        })
        .collect();
    for task in cut {
        task.await.unwrap();
    }
    // Every connection comes back clean: the next sessions see no row and no
    // transaction left open on PgBouncer's server connections.
    assert!(
        common::eventually(Duration::from_secs(10), || {
            tokio::task::block_in_place(|| {
                let mut read = db.get_db_cm_read().unwrap();
                (0..CLIENTS).all(|id| count(&mut read, &table.name, id) == 0)
            })
        }),
        "a cut write was committed"
    );
    for client in 0..CLIENTS {
        let mut read = db.async_get_db_cm_read().await.unwrap();
        assert_eq!(async_count(&mut read, &table.name, client).await, 0);
    }
    // A connection whose statement was cut is closed, not rolled back and reused:
    // its cut prepare may have left a named statement on PgBouncer's server
    // connection. With one connection in the pool, the next session opens another.
    let single = DatabaseInstance::<Postgres>::builder(config(&url).pool_size(1).min_idle(0))
        .build_async()
        .await
        .unwrap();
    let cut = async {
        let mut write = single.async_get_db_cm_write().await.unwrap();
        diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT pg_sleep(1)"), &mut *write)
            .await
            .unwrap();
    };
    assert!(tokio::time::timeout(Duration::from_millis(200), cut)
        .await
        .is_err());
    single
        .async_get_db_cm_write()
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    let opened: Vec<u64> = single
        .pool_stats()
        .into_iter()
        .filter(|s| s.pool.role == dbinstance::Role::Write)
        .map(|s| s.counts.opened)
        .collect();
    assert!(opened.contains(&2), "opened {opened:?}");
    let direct = common::pg().expect("the primary behind PgBouncer");
    tokio::task::block_in_place(|| {
        let mut admin = <diesel::PgConnection as diesel::Connection>::establish(&direct).unwrap();
        let idle_in_transaction = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM pg_stat_activity \
             WHERE state LIKE 'idle in transaction%' AND application_name = $1",
        )
        .bind::<Text, _>(name);
        assert!(common::eventually(Duration::from_secs(10), || {
            diesel::RunQueryDsl::get_result::<Count>(idle_in_transaction.clone(), &mut admin)
                .unwrap()
                .n
                == 0
        }));
        drop(table);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_a_second_database_entry_serve_reads() {
    let (Some(url), Some(replica)) = (
        common::server_url("DBI_PGBOUNCER_URL"),
        common::server_url("DBI_PGBOUNCER_REPLICA_URL"),
    ) else {
        return;
    };
    let db = DatabaseInstance::<Postgres>::builder(config(&url).read_url(&replica))
        .build_async()
        .await
        .unwrap();
    let table = tokio::task::block_in_place(|| Table::create(&db));
    let recovery = diesel::sql_query("SELECT pg_is_in_recovery() AS replica");
    let mut read = db.async_get_db_cm_read().await.unwrap();
    let on: Recovery = diesel_async::RunQueryDsl::get_result(recovery.clone(), &mut *read)
        .await
        .unwrap();
    assert!(on.replica);
    drop(read);

    // Read-your-writes: the commit's position and the replica's replay position
    // are read through PgBouncer too, blocking and async.
    let seen = ReadYourWrites::new();
    let db = db.with_read_your_writes(&seen);
    for id in 0..ROUNDS {
        let mut write = db.async_get_db_cm_write().await.unwrap();
        let insert = diesel::sql_query(format!(
            "INSERT INTO {} (id, note) VALUES ($1, 'seen')",
            table.name
        ))
        .bind::<BigInt, _>(id);
        diesel_async::RunQueryDsl::execute(insert, &mut *write)
            .await
            .unwrap();
        write.commit().await.unwrap();
        assert!(seen.position().is_some(), "the commit's position was read");
        let mut read = db.async_get_db_cm_read().await.unwrap();
        assert_eq!(async_count(&mut read, &table.name, id).await, 1);
    }
    tokio::task::block_in_place(|| {
        for id in ROUNDS..2 * ROUNDS {
            let mut write = db.get_db_cm_write().unwrap();
            let insert = diesel::sql_query(format!(
                "INSERT INTO {} (id, note) VALUES ($1, 'seen')",
                table.name
            ))
            .bind::<BigInt, _>(id);
            diesel::RunQueryDsl::execute(insert, &mut *write).unwrap();
            write.commit().unwrap();
            let mut read = db.get_db_cm_read().unwrap();
            assert_eq!(count(&mut read, &table.name, id), 1);
        }
    });
    // The replica's lag, read on an async connection outside any session.
    let health = db.async_health_report().await;
    assert_eq!(
        health.status,
        dbinstance::HealthStatus::Healthy,
        "{health:?}"
    );
    assert!(health
        .pools
        .iter()
        .any(|pool| !pool.primary && pool.replica_lag.is_some()));
    tokio::task::block_in_place(|| drop(table));
}
