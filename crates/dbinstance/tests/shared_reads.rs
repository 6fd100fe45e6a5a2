//! Shared read sessions on PostgreSQL: many tasks' reads pipelined over a few
//! connections, each answer reaching the task that asked even when a thousand
//! reads are cut mid-flight; read-only; a connection whose session state changed
//! or whose server session was killed is replaced; routed to the replica, and to
//! the primary for a read that must see a write the paused replica has not
//! replayed; refused behind a transaction pooler.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Postgres, ReadYourWrites};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Integer, Text};
use diesel::{Connection, IntoSql, PgConnection};
use diesel_async::RunQueryDsl;
use std::collections::HashSet;
use std::time::Duration;

async fn instance(config: DatabaseConfig) -> DatabaseInstance<Postgres> {
    DatabaseInstance::<Postgres>::builder(config)
        .build_async()
        .await
        .unwrap()
}

/// The value the server echoes, and the server process that answered.
async fn echo(db: &DatabaseInstance<Postgres>, n: i32) -> Result<(i32, i32), Error> {
    let session = db.async_get_db_cm_read_shared().await?;
    let row = diesel::select((
        n.into_sql::<Integer>(),
        diesel::dsl::sql::<Integer>("pg_backend_pid()"),
    ))
    .get_result::<(i32, i32)>(&mut &*session)
    .await?;
    Ok(row)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_read_through_as_many_connections_as_configured() {
    let Some(url) = common::pg() else { return };
    // `None`: the default, one connection.
    for (setting, connections) in [(None, 1), (Some(3), 3)] {
        let mut config = DatabaseConfig::from_url(&url);
        config.shared_read_connections = setting;
        let db = instance(config).await;
        let reads = (0..256).map(|n| {
            let db = db.clone();
            tokio::spawn(async move { (n, echo(&db, n).await.unwrap()) })
        });
        let mut servers = HashSet::new();
        for read in futures_util::future::join_all(reads).await {
            let (asked, (answered, pid)) = read.unwrap();
            assert_eq!(asked, answered, "a read got another read's answer");
            servers.insert(pid);
        }
        assert_eq!(servers.len(), connections, "{servers:?}");
        db.close_all_connections();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cancelled_reads_leave_every_answer_with_its_asker() {
    let Some(url) = common::pg() else { return };
    let db = instance(DatabaseConfig::from_url(&url).shared_read_connections(1)).await;
    // Opened before the storm, so that the cuts fall on reads, not on the connect.
    echo(&db, -1).await.unwrap();
    let reads = (0..1000).map(|n: i32| {
        let db = db.clone();
        tokio::spawn(async move {
            let read = async {
                let session = db.async_get_db_cm_read_shared().await?;
                diesel::select((
                    n.into_sql::<Integer>(),
                    diesel::dsl::sql::<Text>("pg_sleep(0.0002)::text"),
                ))
                .get_result::<(i32, String)>(&mut &*session)
                .await
                .map(|(answer, _)| answer)
                .map_err(Error::from)
            };
            // Up to half a second (the 1,000 reads take at least 0.2 s one after
            // another); every tenth read is left to finish.
            let limit = if n % 10 == 0 {
                Duration::from_secs(30)
            } else {
                Duration::from_micros(500 * n as u64)
            };
            match tokio::time::timeout(limit, read).await {
                Ok(Ok(answer)) => {
                    assert_eq!(answer, n, "a read got another read's answer");
                    true
                }
                Ok(Err(e)) => panic!("read {n} failed: {e}"),
                Err(_) => false,
            }
        })
    });
    let finished = futures_util::future::join_all(reads)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|done| *done)
        .count();
    assert!(finished >= 100, "{finished} of 1000 finished");
    assert!(
        finished < 1000,
        "all 1000 finished: the timeouts did not cut reads mid-flight"
    );
    for n in 0..200 {
        assert_eq!(echo(&db, n).await.unwrap().0, n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_session_cannot_write() {
    let Some(url) = common::pg() else { return };
    let db = instance(DatabaseConfig::from_url(&url)).await;
    let table = common::unique_table("shared_ro");
    let session = db.async_get_db_cm_read_shared().await.unwrap();
    let refused = diesel::sql_query(format!("CREATE TABLE {table} (id INT)"))
        .execute(&mut &*session)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("read-only"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_session_state_changed_is_replaced() {
    let Some(url) = common::pg() else { return };
    let db = instance(DatabaseConfig::from_url(&url).shared_read_connections(1)).await;
    let (_, changed_pid) = echo(&db, 0).await.unwrap();
    let session = db.async_get_db_cm_read_shared().await.unwrap();
    diesel::sql_query("SET application_name = 'changed by one session'")
        .execute(&mut &*session)
        .await
        .unwrap();
    drop(session);
    let session = db.async_get_db_cm_read_shared().await.unwrap();
    let (name, pid) = diesel::select((
        diesel::dsl::sql::<Text>("current_setting('application_name')"),
        diesel::dsl::sql::<Integer>("pg_backend_pid()"),
    ))
    .get_result::<(String, i32)>(&mut &*session)
    .await
    .unwrap();
    assert_ne!(name, "changed by one session");
    assert_ne!(pid, changed_pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_replaced_after_at_most_two_failed_reads() {
    let Some(url) = common::pg() else { return };
    let db = instance(DatabaseConfig::from_url(&url).shared_read_connections(1)).await;
    let (_, killed) = echo(&db, 0).await.unwrap();
    let mut admin = PgConnection::establish(&url).unwrap();
    admin
        .batch_execute(&format!("SELECT pg_terminate_backend({killed})"))
        .unwrap();
    // The first read may get the server's farewell through the connection's
    // driver task, which diesel-async's instrumentation does not see; the next
    // then finds the connection closed, which marks it.
    let mut failures = 0;
    let replacement = loop {
        match echo(&db, 1).await {
            Ok((_, pid)) => break pid,
            Err(e) if failures < 2 => {
                eprintln!("a read on the killed connection: {e:?}");
                failures += 1;
            }
            Err(e) => panic!("a third read failed: {e:?}"),
        }
    };
    assert_ne!(replacement, killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_and_to_the_primary_for_a_write_not_yet_replayed() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    let db = instance(
        DatabaseConfig::from_url(&primary)
            .read_url(&replica)
            .read_your_writes_wait(Duration::from_millis(20)),
    )
    .await;
    let on_replica = "pg_is_in_recovery()::int4";
    let session = db.async_get_db_cm_read_shared().await.unwrap();
    let answered: i32 = diesel::select(diesel::dsl::sql::<Integer>(on_replica))
        .get_result(&mut &*session)
        .await
        .unwrap();
    assert_eq!(answered, 1, "the replica did not answer");
    drop(session);

    let table = common::unique_table("shared_ryw");
    let mut admin = PgConnection::establish(&primary).unwrap();
    admin
        .batch_execute(&format!("CREATE TABLE {table} (id INT PRIMARY KEY)"))
        .unwrap();
    let mut replica_admin = PgConnection::establish(&replica).unwrap();
    replica_admin
        .batch_execute("SELECT pg_wal_replay_pause()")
        .unwrap();
    let tracker = ReadYourWrites::new();
    let tracked = db.with_read_your_writes(&tracker);
    let insert = format!("INSERT INTO {table} VALUES (1)");
    let written = async {
        let mut write = tracked.async_get_db_cm_write().await?;
        diesel_async::SimpleAsyncConnection::batch_execute(&mut *write, &insert).await?;
        write.commit().await?;
        let session = tracked.async_get_db_cm_read_shared().await?;
        let seen: i32 = diesel::select(diesel::dsl::sql::<Integer>(&format!(
            "(SELECT COUNT(*)::int4 FROM {table}) * 10 + {on_replica}"
        )))
        .get_result(&mut &*session)
        .await?;
        Ok::<_, Error>(seen)
    }
    .await;
    let resumed = replica_admin.batch_execute("SELECT pg_wal_replay_resume()");
    let _ = admin.batch_execute(&format!("DROP TABLE {table}"));
    resumed.unwrap();
    assert_eq!(
        written.unwrap(),
        10,
        "the read did not see the write, or the paused replica served it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_transaction_pooler_shared_sessions_are_refused() {
    let Some(url) = common::pg() else { return };
    let db = instance(DatabaseConfig::from_url(&url).transaction_pooling(true)).await;
    match db.async_get_db_cm_read_shared().await {
        Err(Error::Config { field, .. }) => assert_eq!(field, "transaction_pooling"),
        other => panic!("expected a config error, got {other:?}"),
    }
}
