//! Read-your-writes over HTTP, on PostgreSQL with its streaming replica made to
//! lag on purpose (WAL replay paused). The app under test serves, on
//! [`notes_instance`], with the adapter's transaction layer and its position layer:
//!
//! | route | what the handler does |
//! |---|---|
//! | `POST /notes/{id}` | `DbTx`: [`insert_note`], answers 201 |
//! | `POST /notes/{id}/write` | `DbWrite`: [`insert_note`], commits, answers 201 |
//! | `POST /notes/{id}/then-read` | `Db`: [`insert_note`] in `async_write`, then [`has_note`] in `async_read`: 200 when seen, 404 when not |
//! | `GET /notes/{id}` | `DbRead`: [`has_note`]: 200 when seen, 404 when not |
//!
//! The same app runs on [`notes_instance_through_pgbouncer`] too: the test bed's
//! PgBouncer in transaction mode, with `transaction_pooling`.

use crate::{RejectionKind, POSITION_HEADER};
use dbinstance::testing::PgSchema;
use dbinstance::{DatabaseConfig, DatabaseInstance, Postgres};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Bool};
use diesel::Connection;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use reqwest::StatusCode;
use std::time::Duration;

/// The URL in `var`; `None` (said loudly) when it is unset outside CI, a panic
/// under `CI=true`, where a missing server is a failure.
///
/// # Panics
/// Under `CI=true` when `var` is unset.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set and CI=true: run `eval \"$(scripts/testbed.sh up)\"` first")
        }
        _ => {
            eprintln!("\n!!! SKIPPED: {var} is not set; run `eval \"$(scripts/testbed.sh up)\"` to test against the real server\n");
            None
        }
    }
}

/// Inserts note `id`.
///
/// # Errors
/// The query's.
pub async fn insert_note(conn: &mut AsyncPgConnection, id: i64) -> diesel::QueryResult<()> {
    diesel::sql_query("INSERT INTO notes (id) VALUES ($1)")
        .bind::<BigInt, _>(id)
        .execute(conn)
        .await
        .map(drop)
}

/// Whether note `id` is visible to `conn`.
///
/// # Errors
/// The query's.
pub async fn has_note(conn: &mut AsyncPgConnection, id: i64) -> diesel::QueryResult<bool> {
    diesel::select(
        diesel::dsl::sql::<Bool>("EXISTS (SELECT 1 FROM notes WHERE id = ")
            .bind::<BigInt, _>(id)
            .sql(")"),
    )
    .get_result(conn)
    .await
}

/// A schema of its own on the PostgreSQL server of `DBI_PG_URL`, with its replica
/// (`DBI_PG_REPLICA_URL`), holding the `notes` table once the replica has it; and
/// an instance on it whose reads after a write wait at most 20 ms for the replica.
/// `None` when the servers are not configured (outside CI).
///
/// # Panics
/// When the servers cannot be used.
pub async fn notes_instance() -> Option<(PgSchema, DatabaseInstance<Postgres>, String)> {
    let primary = server_url("DBI_PG_URL")?;
    let replica = server_url("DBI_PG_REPLICA_URL")?;
    let schema = PgSchema::create(&primary)
        .expect("a schema of its own")
        .with_replica(&replica);
    let db = DatabaseInstance::builder(
        schema
            .config()
            .read_your_writes_wait(Duration::from_millis(20)),
    )
    .build_async()
    .await
    .expect("the instance builds");
    db.async_write(async |conn: &mut AsyncPgConnection| {
        diesel_async::SimpleAsyncConnection::batch_execute(
            conn,
            "CREATE TABLE notes (id BIGINT PRIMARY KEY)",
        )
        .await
        .map_err(dbinstance::Error::from)
    })
    .await
    .expect("the notes table is created");
    Some((schema, db, replica))
}

/// The schema the test bed's PgBouncer entries `web` and `web_replica` put first
/// on the `search_path` of their server connections (`connect_query`): behind a
/// transaction pooler a client cannot set it for itself.
pub const PGBOUNCER_SCHEMA: &str = "dbi_web";

/// The scenario's instance behind PgBouncer in transaction mode
/// (`DBI_PGBOUNCER_WEB_URL`, `DBI_PGBOUNCER_WEB_REPLICA_URL`), on a fresh `notes`
/// table in [`PGBOUNCER_SCHEMA`], created straight on the primary; and the
/// replica's own URL, for the scenario to pause it. `None` when the servers are not
/// configured (outside CI).
///
/// # Panics
/// When the servers cannot be used.
pub async fn notes_instance_through_pgbouncer() -> Option<(DatabaseInstance<Postgres>, String)> {
    let primary = server_url("DBI_PG_URL")?;
    let replica = server_url("DBI_PG_REPLICA_URL")?;
    let web = server_url("DBI_PGBOUNCER_WEB_URL")?;
    let web_replica = server_url("DBI_PGBOUNCER_WEB_REPLICA_URL")?;
    let mut admin = diesel::PgConnection::establish(&primary).expect("the primary answers");
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {PGBOUNCER_SCHEMA} CASCADE; CREATE SCHEMA {PGBOUNCER_SCHEMA}; \
             CREATE TABLE {PGBOUNCER_SCHEMA}.notes (id BIGINT PRIMARY KEY)"
        ))
        .expect("the notes table is created");
    let db = DatabaseInstance::builder(
        DatabaseConfig::from_url(web)
            .read_url(web_replica)
            .transaction_pooling(true)
            .read_your_writes_wait(Duration::from_millis(20)),
    )
    .build_async()
    .await
    .expect("the instance builds behind PgBouncer");
    Some((db, replica))
}

/// Held while a scenario pauses the replica: two at once would resume each other's.
static REPLAY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Pauses WAL replay on the replica of `replica_url` once it has the `notes`
/// table of `schema`, and resumes it when dropped.
struct Paused(diesel::PgConnection);

impl Paused {
    fn start(replica_url: &str, schema: &str) -> Self {
        let mut conn = diesel::PgConnection::establish(replica_url).expect("the replica answers");
        let has_table = format!("to_regclass('\"{schema}\".notes') IS NOT NULL");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let replayed: bool = diesel::RunQueryDsl::get_result(
                diesel::select(diesel::dsl::sql::<Bool>(&has_table)),
                &mut conn,
            )
            .expect("the replica answers");
            if replayed {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the replica never got the table"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        conn.batch_execute("SELECT pg_wal_replay_pause()")
            .expect("replay pauses");
        Self(conn)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("SELECT pg_wal_replay_resume()");
    }
}

/// With the replica's replay paused: a client that sends back the position
/// header of its write reads it (from the primary), in 50 of 50 cycles, through
/// `DbTx` and through `DbWrite`; without the header it reads stale (404), which
/// shows the replica was serving; a handler that writes then reads through `Db`
/// sees its write within one request; a header that is not a position is a 400.
///
/// # Panics
/// When the app does not behave so.
pub async fn a_client_reads_its_writes_across_requests(
    base: &str,
    schema: &str,
    replica_url: &str,
) {
    let http = reqwest::Client::new();
    let _alone = REPLAY.lock().await;
    let paused = Paused::start(replica_url, schema);
    for id in 0..50 {
        let route = if id % 2 == 0 { "" } else { "/write" };
        let created = http
            .post(format!("{base}/notes/{id}{route}"))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let position = created
            .headers()
            .get(POSITION_HEADER)
            .unwrap_or_else(|| panic!("no {POSITION_HEADER} on the answer to a write"))
            .clone();

        let read = http
            .get(format!("{base}/notes/{id}"))
            .header(POSITION_HEADER, position.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK, "note {id} with its position");
        assert_eq!(read.headers().get(POSITION_HEADER), Some(&position));

        let stale = http.get(format!("{base}/notes/{id}")).send().await.unwrap();
        assert_eq!(
            stale.status(),
            StatusCode::NOT_FOUND,
            "the paused replica served note {id}"
        );
    }

    let within = http
        .post(format!("{base}/notes/1000/then-read"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        within.status(),
        StatusCode::OK,
        "a write then a read in one request"
    );

    let bad = http
        .get(format!("{base}/notes/0"))
        .header(POSITION_HEADER, "not a position")
        .send()
        .await
        .unwrap();
    let body = super::expect_error(bad, StatusCode::BAD_REQUEST, RejectionKind::BadRequest).await;
    assert!(body.message.contains(POSITION_HEADER), "{}", body.message);
    drop(paused);
}
