//! `table_exists`: asking the primary's catalog whether a table is there.
//!
//! The query reads a typed result, which generic code over [`Backend`] cannot
//! express without naming each diesel backend's bounds, so each backend runs it
//! on its own connection type (`Backend::table_exists`) with [`count_tables!`].

use super::dialect;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::instance::DatabaseInstance;
use diesel::result::Error as DieselError;

/// The count query: `SELECT (SELECT COUNT(*) ... AND name = <name>)`.
macro_rules! count_tables {
    ($kind:expr, $name:expr) => {
        diesel::select(
            diesel::dsl::sql::<diesel::sql_types::BigInt>(
                $crate::schema::dialect::count_tables_prefix($kind),
            )
            .bind::<diesel::sql_types::Text, _>($name)
            .sql(")"),
        )
    };
}
pub(crate) use count_tables;

fn lookup_error(kind: crate::BackendKind, name: &str, source: DieselError) -> Error {
    Error::Ddl {
        table: name.to_owned(),
        action: "look up",
        statement: format!("SELECT {}?)", dialect::count_tables_prefix(kind)),
        source,
    }
}

impl<B: Backend> DatabaseInstance<B> {
    /// Whether a table named `name` exists on the primary, in the schema new tables
    /// go to: PostgreSQL's `current_schema()` (the first of the `search_path`), the
    /// MySQL connection's database, SQLite's main database. Views do not count.
    /// Any table counts, registered or not.
    ///
    /// # Errors
    /// [`Error::Ddl`] when the catalog query fails; the errors of
    /// [`get_db_cm_write`](Self::get_db_cm_write).
    pub fn table_exists(&self, name: &str) -> Result<bool> {
        let mut session = self.get_db_cm_write()?;
        let found =
            B::table_exists(&mut session, name).map_err(|e| lookup_error(B::KIND, name, e))?;
        session.commit()?;
        Ok(found)
    }

    /// The async twin of [`table_exists`](Self::table_exists).
    ///
    /// # Errors
    /// As [`table_exists`](Self::table_exists).
    pub async fn async_table_exists(&self, name: &str) -> Result<bool> {
        let mut session = self.async_get_db_cm_write().await?;
        let found = B::async_table_exists(&mut session, name)
            .await
            .map_err(|e| lookup_error(B::KIND, name, e))?;
        session.commit().await?;
        Ok(found)
    }
}
