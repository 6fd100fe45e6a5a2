//! Reads go to the replica and writes to the primary; rows written on the primary
//! become visible through read sessions; reads fall back to the primary when every
//! replica is down.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, HealthStatus, Mysql, Postgres};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool};
use diesel::RunQueryDsl;
use std::time::Duration;

/// A port nothing listens on.
const DEAD_PG: &str = "postgres://postgres@127.0.0.1:1/test";
const DEAD_MYSQL: &str = "mysql://root@127.0.0.1:1/test";

fn in_recovery(conn: &mut diesel::PgConnection) -> bool {
    diesel::select(diesel::dsl::sql::<Bool>("pg_is_in_recovery()"))
        .get_result(conn)
        .unwrap()
}

fn server_id(conn: &mut diesel::MysqlConnection) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>("CAST(@@server_id AS SIGNED)"))
        .get_result(conn)
        .unwrap()
}

#[test]
fn postgres_reads_go_to_the_replica_and_see_the_primarys_writes() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    let db = DatabaseInstance::<Postgres>::new(DatabaseConfig::from_url(primary).read_url(replica))
        .unwrap();
    let table = common::unique_table("repl_pg");

    let mut write = db.get_db_cm_write().unwrap();
    assert!(!in_recovery(&mut write));
    write
        .batch_execute(&format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY)"))
        .unwrap();
    write
        .batch_execute(&format!("INSERT INTO {table} VALUES (7)"))
        .unwrap();
    write.commit().unwrap();

    let mut read = db.get_db_cm_read().unwrap();
    assert!(
        in_recovery(&mut read),
        "the read session is not on the replica"
    );
    drop(read);
    let visible = common::eventually(Duration::from_secs(5), || {
        let mut read = db.get_db_cm_read().unwrap();
        diesel::select(diesel::dsl::sql::<BigInt>(&format!(
            "(SELECT COUNT(*) FROM {table})"
        )))
        .get_result::<i64>(&mut *read)
        .is_ok_and(|n| n == 1)
    });
    assert!(visible, "the row never reached the replica");
    assert_eq!(db.health_report().status, HealthStatus::Healthy);
    db.write(|conn| {
        conn.batch_execute(&format!("DROP TABLE {table}"))
            .map_err(Error::from)
    })
    .unwrap();
}

#[tokio::test]
async fn postgres_async_reads_go_to_the_replica() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    let db =
        DatabaseInstance::<Postgres>::builder(DatabaseConfig::from_url(primary).read_url(replica))
            .build_async()
            .await
            .unwrap();
    let mut read = db.async_get_db_cm_read().await.unwrap();
    let recovery: bool = diesel_async::RunQueryDsl::get_result(
        diesel::select(diesel::dsl::sql::<Bool>("pg_is_in_recovery()")),
        &mut *read,
    )
    .await
    .unwrap();
    assert!(recovery);
    let mut write = db.async_get_db_cm_write().await.unwrap();
    let recovery: bool = diesel_async::RunQueryDsl::get_result(
        diesel::select(diesel::dsl::sql::<Bool>("pg_is_in_recovery()")),
        &mut *write,
    )
    .await
    .unwrap();
    assert!(!recovery);
    let report = db.async_health_report().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.pools.len(), 2);
}

#[test]
fn mysql_reads_go_to_the_replica_and_see_the_primarys_writes() {
    let (Some(primary), Some(replica)) = (common::mysql_primary(), common::mysql_replica()) else {
        return;
    };
    let db = DatabaseInstance::<Mysql>::new(DatabaseConfig::from_url(primary).read_url(replica))
        .unwrap();
    let table = common::unique_table("repl_my");

    let mut write = db.get_db_cm_write().unwrap();
    assert_eq!(server_id(&mut write), 1);
    write
        .batch_execute(&format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY)"))
        .unwrap();
    drop(write);
    db.write(|conn| {
        conn.batch_execute(&format!("INSERT INTO {table} VALUES (7)"))
            .map_err(Error::from)
    })
    .unwrap();

    let mut read = db.get_db_cm_read().unwrap();
    assert_eq!(
        server_id(&mut read),
        2,
        "the read session is not on the replica"
    );
    drop(read);
    let visible = common::eventually(Duration::from_secs(5), || {
        let mut read = db.get_db_cm_read().unwrap();
        diesel::select(diesel::dsl::sql::<BigInt>(&format!(
            "(SELECT COUNT(*) FROM {table})"
        )))
        .get_result::<i64>(&mut *read)
        .is_ok_and(|n| n == 1)
    });
    assert!(visible, "the row never reached the replica");
    db.write(|conn| {
        conn.batch_execute(&format!("DROP TABLE {table}"))
            .map_err(Error::from)
    })
    .unwrap();
}

#[test]
fn reads_fall_back_to_the_primary_when_every_replica_is_down() {
    let Some(primary) = common::pg() else { return };
    let config = DatabaseConfig::from_url(primary)
        .read_url(DEAD_PG)
        .connect_timeout(Duration::from_secs(2));
    let db = DatabaseInstance::<Postgres>::builder(config.clone())
        .build_lazy()
        .unwrap();
    let mut read = db.get_db_cm_read().unwrap();
    assert!(!in_recovery(&mut read));
    // Still read-only on the primary.
    assert!(read
        .batch_execute("CREATE TEMP TABLE t (x INTEGER)")
        .is_err());
    drop(read);
    assert_eq!(db.health_report().status, HealthStatus::Degraded);

    let strict = DatabaseInstance::<Postgres>::builder(config.read_fallback(false))
        .build_lazy()
        .unwrap();
    let started = std::time::Instant::now();
    let err = strict.get_db_cm_read().unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::Unavailable { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(strict.health_report().status, HealthStatus::Unhealthy);
}

#[tokio::test]
async fn async_reads_fall_back_to_the_primary_when_every_replica_is_down() {
    let Some(primary) = common::mysql() else {
        return;
    };
    let config = DatabaseConfig::from_url(primary).read_url(DEAD_MYSQL);
    let db = DatabaseInstance::<Mysql>::builder(config)
        .build_lazy()
        .unwrap();
    let mut read = db.async_get_db_cm_read().await.unwrap();
    let one: i64 = diesel_async::RunQueryDsl::get_result(
        diesel::select(diesel::dsl::sql::<BigInt>("1")),
        &mut *read,
    )
    .await
    .unwrap();
    assert_eq!(one, 1);
    let report = db.async_health_report().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    let replica = report.pools.iter().find(|p| !p.primary).unwrap();
    assert!(!replica.reachable);
    assert!(
        replica
            .error
            .as_deref()
            .is_some_and(|e| e.contains("127.0.0.1:1")),
        "{replica:?}"
    );
}
