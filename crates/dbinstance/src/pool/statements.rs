//! Which statements a read connection runs that may change its session state: its
//! read-only mode above all (`SET default_transaction_read_only = off`,
//! `SET SESSION TRANSACTION READ WRITE`, `PRAGMA query_only = 0`), but also any
//! setting, variable or session lock the next user would inherit. A connection that
//! ran one is closed instead of going back to its pool.
//!
//! The text is read from diesel's instrumentation, which sees every statement, typed
//! or raw. Only what is recognisably a plain read passes: a single `SELECT`, `WITH`,
//! `SHOW`, `VALUES` or `TABLE` statement that calls none of the built-in functions
//! that change session state. Everything else counts as a change, so a plain read
//! costs a look at its text and nothing on the server.

use diesel::connection::InstrumentationEvent;
use std::fmt::{self, Write as _};

/// The first words of the statements that only read.
const READS: &[&str] = &["select", "with", "show", "values", "table"];

/// The first words of the statements diesel's transaction manager sends.
const TRANSACTION_CONTROL: &[&str] = &["begin", "commit", "rollback", "savepoint", "release"];

/// Built-in functions that change session state when called from a read: settings
/// (PostgreSQL), session-level locks (PostgreSQL, MySQL), the random seed, MySQL's
/// last insert id, SQLite extensions, dblink connections. `INTO` writes variables
/// (MySQL) or creates tables (PostgreSQL).
const SESSION_WORDS: &[&str] = &[
    "set_config",
    "setseed",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "get_lock",
    "last_insert_id",
    "load_extension",
    "dblink_connect",
    "dblink_connect_u",
    "into",
];

/// Texts longer than this are not kept between statements.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Watches one read connection's statements.
#[derive(Debug, Default)]
pub(super) struct StatementWatch {
    /// diesel announced that its transaction manager's statement comes next.
    transaction_statement_next: bool,
    /// The statement's text, the buffer reused from one statement to the next.
    text: String,
    /// The last text found to be a plain read: a pool runs the same few
    /// statements over and over, and the same text gets the same answer.
    last_read: String,
}

impl StatementWatch {
    /// Whether the statement `event` starts may change the session state.
    pub(super) fn may_change_state(&mut self, event: &InstrumentationEvent<'_>) -> bool {
        match event {
            InstrumentationEvent::BeginTransaction { .. }
            | InstrumentationEvent::CommitTransaction { .. }
            | InstrumentationEvent::RollbackTransaction { .. } => {
                self.transaction_statement_next = true;
                false
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                let announced = std::mem::take(&mut self.transaction_statement_next);
                self.text.clear();
                // Stops at the bind values on purpose: the error is the sink's.
                let _ = write!(SqlOnly(&mut self.text), "{query}");
                if self.text == self.last_read {
                    return false;
                }
                let changes = !(announced && is_transaction_control(&self.text))
                    && may_change_session_state(&self.text);
                if !changes && !announced {
                    std::mem::swap(&mut self.text, &mut self.last_read);
                }
                for text in [&mut self.text, &mut self.last_read] {
                    if text.capacity() > KEEP_CAPACITY {
                        *text = String::new();
                    }
                }
                changes
            }
            _ => false,
        }
    }
}

/// Collects a statement's SQL and stops where diesel starts printing its bind
/// values, which are not needed and may be large.
pub(super) struct SqlOnly<'a>(pub(super) &'a mut String);

impl fmt::Write for SqlOnly<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s == " -- binds: " {
            return Err(fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

/// Whether `sql` may change the session state: anything but one plain read.
fn may_change_session_state(sql: &str) -> bool {
    let sql = single_statement(sql);
    !first_word_is(sql, READS)
        || sql.contains(';')
        || sql.contains(":=")
        || words(sql).any(|word| is_one_of(word, SESSION_WORDS))
}

/// Whether `sql` is one of the statements diesel's transaction manager sends.
fn is_transaction_control(sql: &str) -> bool {
    let sql = single_statement(sql);
    first_word_is(sql, TRANSACTION_CONTROL) && !sql.contains(';')
}

/// The text without surrounding blanks, one trailing `;`, and opening parentheses
/// (a parenthesised `SELECT` is still a read).
fn single_statement(sql: &str) -> &str {
    let sql = sql.trim();
    let sql = sql.strip_suffix(';').unwrap_or(sql).trim_end();
    sql.trim_start_matches(|c: char| c == '(' || c.is_whitespace())
}

fn first_word_is(sql: &str, list: &[&str]) -> bool {
    words(sql)
        .next()
        .is_some_and(|word| sql.starts_with(word) && is_one_of(word, list))
}

fn words(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
}

fn is_one_of(word: &str, list: &[&str]) -> bool {
    list.iter().any(|w| w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_reads_pass() {
        for sql in [
            "SELECT 1",
            "  select * from t where id = $1;  ",
            "SELECT \"t\".\"id\" FROM \"t\" WHERE \"t\".\"id\" = $1 -- binds: [1]",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "(SELECT 1) UNION (SELECT 2)",
            "SHOW default_transaction_read_only",
            "VALUES (1)",
            "TABLE t",
            "SELECT current_setting('default_transaction_read_only')",
            "SELECT selection FROM intonation",
        ] {
            assert!(!may_change_session_state(sql), "{sql}");
        }
    }

    #[test]
    fn anything_else_counts_as_a_change() {
        for sql in [
            "SET default_transaction_read_only = off",
            "set session characteristics as transaction read write",
            "RESET ALL",
            "DISCARD ALL",
            "PRAGMA query_only = 0",
            "SET SESSION TRANSACTION READ WRITE",
            "/* x */ SELECT 1",
            "-- x\nSELECT 1",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT PG_CATALOG.SET_CONFIG('x', 'y', false)",
            "WITH x AS (SELECT set_config('a', 'b', false)) SELECT * FROM x",
            "SELECT 1; SET default_transaction_read_only = off",
            "SELECT pg_advisory_lock(1)",
            "SELECT GET_LOCK('x', 1)",
            "SELECT @x := 1",
            "SELECT 1 INTO @x",
            "INSERT INTO t VALUES (1)",
            "BEGIN",
            "CALL p()",
            "DO GET_LOCK('x', 1)",
            "",
            "selectx 1",
        ] {
            assert!(may_change_session_state(sql), "{sql}");
        }
    }

    #[test]
    fn only_diesel_transaction_statements_are_control() {
        for sql in [
            "BEGIN",
            "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY",
            "BEGIN IMMEDIATE",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT diesel_savepoint_1",
            "RELEASE SAVEPOINT diesel_savepoint_1",
            "ROLLBACK TO SAVEPOINT diesel_savepoint_1",
        ] {
            assert!(is_transaction_control(sql), "{sql}");
        }
        for sql in ["COMMIT; SET a = 1", "SET a = 1", "SELECT 1"] {
            assert!(!is_transaction_control(sql), "{sql}");
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn the_text_stops_before_the_binds() {
        use diesel::IntoSql;
        let query = diesel::select(7.into_sql::<diesel::sql_types::Integer>());
        let mut text = String::new();
        let stopped = write!(
            SqlOnly(&mut text),
            "{}",
            diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query)
        );
        assert!(stopped.is_err());
        assert_eq!(text, "SELECT ?");
    }
}
