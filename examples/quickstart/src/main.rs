//! dbinstance in one page: a SQLite file with no server, a write session that
//! commits, and a read session (read-only on the database) that sees the rows.
//!
//! Run it with `cargo run -p quickstart`; set `DATABASE_URL` to use another file.

use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// The diesel schema: the same definition checks every query at compile time.
mod schema {
    #![allow(missing_docs)]
    diesel::table! {
        notes (id) {
            id -> Integer,
            body -> Text,
        }
    }
}
use schema::notes;

#[derive(Queryable, Debug)]
struct Note {
    id: i32,
    body: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "quickstart.sqlite3".to_owned());
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(url))?;
    println!("opened {}", db.name());

    // A write session is a transaction: commit() keeps its work, dropping it rolls back.
    let mut session = db.get_db_cm_write()?;
    session.batch_execute(
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
    )?;
    let body = format!("written at unix time {}", unix_now());
    diesel::insert_into(notes::table)
        .values(notes::body.eq(&body))
        .execute(&mut *session)?;
    session.commit()?;
    println!("wrote a note through a write session: {body:?}");

    // Read sessions come from the read pool; on SQLite they are `query_only` connections.
    let mut session = db.get_db_cm_read()?;
    let all: Vec<Note> = notes::table.order(notes::id).load(&mut *session)?;
    println!("read {} note(s) through a read session:", all.len());
    for note in &all {
        println!("  #{} {}", note.id, note.body);
    }
    let refused = diesel::delete(notes::table).execute(&mut *session);
    println!(
        "a delete through the read session was refused: {}",
        refused
            .as_ref()
            .is_err_and(dbinstance::is_read_only_violation)
    );
    println!("healthy: {}", db.check_database_health());
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
