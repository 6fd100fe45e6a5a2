//! A blocking batch worker on dbinstance's sync sessions.
//!
//! Each batch is one write session (a transaction on the primary): claim up to
//! `batch` pending rows, process them, mark them done, commit. A failure anywhere in
//! a batch rolls the whole batch back, so no row is half processed. On PostgreSQL
//! and MariaDB the claim locks its rows with `FOR UPDATE SKIP LOCKED`, so several
//! workers can run at once without taking the same rows; SQLite has one writer at a
//! time anyway. The final report is read through a read session (a replica when
//! there is one).

use dbinstance::{Backend, DatabaseInstance, TableOptions};
use diesel::prelude::*;
use std::time::{Duration, Instant};

/// The diesel schema.
pub mod schema {
    #![allow(missing_docs)]
    diesel::table! {
        tasks (id) {
            id -> Integer,
            payload -> Text,
            result -> Nullable<Text>,
            done -> Bool,
        }
    }
}
use schema::tasks;

/// A row to process.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = tasks)]
pub struct Task {
    /// Given by the database.
    pub id: i32,
    /// The input.
    pub payload: String,
    /// The output, once done.
    pub result: Option<String>,
    /// Whether it was processed.
    pub done: bool,
}

/// Registers `tasks` and creates it if it does not exist.
///
/// # Errors
/// When the table cannot be registered or created.
pub fn prepare<B: Backend>(db: &DatabaseInstance<B>) -> dbinstance::Result<()> {
    db.schema()
        .register::<tasks::table>(TableOptions::new().auto_increment("id").index(["done"]))?;
    db.create_tables()
}

/// The backend's blocking diesel connection.
pub type Conn<B> = <B as Backend>::Connection;

/// The queries, for each backend; implemented below by the `tasks!` macro from one
/// body, with the row lock each backend supports.
pub trait Tasks: Backend {
    /// Inserts one pending task per payload.
    fn seed(conn: &mut Conn<Self>, payloads: &[String]) -> QueryResult<usize>;
    /// Up to `limit` pending tasks, oldest first, locked for this transaction where
    /// the backend can.
    fn claim(conn: &mut Conn<Self>, limit: i64) -> QueryResult<Vec<Task>>;
    /// Marks a task done with its result.
    fn finish(conn: &mut Conn<Self>, id: i32, result: &str) -> QueryResult<usize>;
    /// How many tasks are done and how many are pending.
    fn counts(conn: &mut Conn<Self>) -> QueryResult<(i64, i64)>;
}

macro_rules! tasks {
    ($backend:ty $(, $lock:ident)*) => {
        impl Tasks for $backend {
            fn seed(conn: &mut Conn<Self>, payloads: &[String]) -> QueryResult<usize> {
                let rows: Vec<_> = payloads
                    .iter()
                    .map(|p| (tasks::payload.eq(p), tasks::done.eq(false)))
                    .collect();
                diesel::insert_into(tasks::table).values(&rows).execute(conn)
            }

            fn claim(conn: &mut Conn<Self>, limit: i64) -> QueryResult<Vec<Task>> {
                tasks::table
                    .filter(tasks::done.eq(false))
                    .order(tasks::id)
                    .limit(limit)
                    $(.$lock())*
                    .select(Task::as_select())
                    .load(conn)
            }

            fn finish(conn: &mut Conn<Self>, id: i32, result: &str) -> QueryResult<usize> {
                diesel::update(tasks::table.find(id))
                    .set((tasks::result.eq(result), tasks::done.eq(true)))
                    .execute(conn)
            }

            fn counts(conn: &mut Conn<Self>) -> QueryResult<(i64, i64)> {
                let done = tasks::table.filter(tasks::done.eq(true)).count().get_result(conn)?;
                let pending = tasks::table.filter(tasks::done.eq(false)).count().get_result(conn)?;
                Ok((done, pending))
            }
        }
    };
}

tasks!(dbinstance::Sqlite);
#[cfg(feature = "postgres")]
tasks!(dbinstance::Postgres, for_update, skip_locked);
#[cfg(feature = "mysql")]
tasks!(dbinstance::Mysql, for_update, skip_locked);

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rows processed by this run.
    pub processed: usize,
    /// Batches committed.
    pub batches: usize,
    /// Rows done in the table afterwards (read through a read session).
    pub done: i64,
    /// Rows still pending afterwards.
    pub pending: i64,
}

/// The work done on one row: here, a word and character count of the payload.
pub fn process(payload: &str) -> String {
    format!(
        "{} words, {} chars",
        payload.split_whitespace().count(),
        payload.chars().count()
    )
}

/// Adds `count` pending tasks in one write session.
///
/// # Errors
/// When no session can be had or the insert fails; nothing is inserted then.
pub fn seed<B: Tasks>(db: &DatabaseInstance<B>, count: usize) -> dbinstance::Result<usize> {
    let payloads: Vec<String> = (1..=count)
        .map(|i| format!("task {i}: {}", "lorem ipsum ".repeat(i % 7 + 1).trim_end()))
        .collect();
    let mut session = db.get_db_cm_write()?;
    let mut inserted = 0;
    // A few hundred rows per INSERT keeps every backend under its bind-parameter limit.
    for chunk in payloads.chunks(500) {
        inserted += B::seed(&mut session, chunk)?;
    }
    session.commit()?;
    Ok(inserted)
}

/// Processes pending tasks in batches of `batch` until none is left: one write
/// session per batch, committed once the whole batch is done.
///
/// # Errors
/// The first error; the batch it happened in is rolled back, earlier batches stay
/// committed.
pub fn run<B: Tasks>(db: &DatabaseInstance<B>, batch: i64) -> dbinstance::Result<Summary> {
    let started = Instant::now();
    let (mut processed, mut batches) = (0, 0);
    loop {
        let mut session = db.get_db_cm_write()?;
        let claimed = B::claim(&mut session, batch)?;
        if claimed.is_empty() {
            break; // dropping the session ends its empty transaction
        }
        for task in &claimed {
            B::finish(&mut session, task.id, &process(&task.payload))?;
        }
        session.commit()?;
        processed += claimed.len();
        batches += 1;
        tracing::info!(
            batch = batches,
            rows = claimed.len(),
            total = processed,
            "worker: batch committed"
        );
    }
    let (done, pending) = {
        let mut session = db.get_db_cm_read()?;
        B::counts(&mut session)?
    };
    let elapsed: Duration = started.elapsed();
    tracing::info!(
        processed,
        batches,
        done,
        pending,
        ?elapsed,
        "worker: finished"
    );
    Ok(Summary {
        processed,
        batches,
        done,
        pending,
    })
}
