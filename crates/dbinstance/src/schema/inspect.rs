//! `table_exists`: asking the primary's catalog whether a table is there.
//!
//! The query reads a typed result, which generic code over [`Backend`] cannot
//! express without naming each diesel backend's bounds; the connection is
//! downcast to its concrete type instead, one arm per enabled backend.

use super::dialect;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::instance::DatabaseInstance;
use diesel::dsl::sql;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Text};
use std::any::Any;

/// The count query: `SELECT (SELECT COUNT(*) ... AND name = <name>)`.
macro_rules! count_query {
    ($kind:expr, $name:expr) => {
        diesel::select(
            sql::<BigInt>(dialect::count_tables_prefix($kind))
                .bind::<Text, _>($name)
                .sql(")"),
        )
    };
}

fn no_backend() -> DieselError {
    DieselError::QueryBuilderError(
        "dbinstance: no schema support compiled in for this backend".into(),
    )
}

fn exists_sync<B: Backend>(conn: &mut B::Connection, name: &str) -> diesel::QueryResult<bool> {
    use diesel::RunQueryDsl;
    let any: &mut dyn Any = conn;
    #[cfg(feature = "postgres")]
    if let Some(conn) = any.downcast_mut::<diesel::PgConnection>() {
        return count_query!(B::KIND, name)
            .get_result::<i64>(conn)
            .map(|n| n > 0);
    }
    #[cfg(feature = "mysql")]
    if let Some(conn) = any.downcast_mut::<diesel::MysqlConnection>() {
        return count_query!(B::KIND, name)
            .get_result::<i64>(conn)
            .map(|n| n > 0);
    }
    #[cfg(feature = "sqlite")]
    if let Some(conn) = any.downcast_mut::<diesel::SqliteConnection>() {
        return count_query!(B::KIND, name)
            .get_result::<i64>(conn)
            .map(|n| n > 0);
    }
    let _ = (any, name);
    Err(no_backend())
}

async fn exists_async<B: Backend>(
    conn: &mut B::AsyncConnection,
    name: &str,
) -> diesel::QueryResult<bool> {
    use diesel_async::RunQueryDsl;
    let any: &mut (dyn Any + Send) = conn;
    #[cfg(feature = "postgres")]
    if let Some(conn) = any.downcast_mut::<diesel_async::AsyncPgConnection>() {
        return count_query!(B::KIND, name)
            .get_result::<i64>(conn)
            .await
            .map(|n| n > 0);
    }
    #[cfg(feature = "mysql")]
    if let Some(conn) = any.downcast_mut::<diesel_async::AsyncMysqlConnection>() {
        return count_query!(B::KIND, name)
            .get_result::<i64>(conn)
            .await
            .map(|n| n > 0);
    }
    #[cfg(feature = "sqlite")]
    if let Some(conn) = any.downcast_mut::<
        diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>,
    >() {
        return count_query!(B::KIND, name.to_owned()).get_result::<i64>(conn).await.map(|n| n > 0);
    }
    let _ = (any, name);
    Err(no_backend())
}

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
            exists_sync::<B>(&mut session, name).map_err(|e| lookup_error(B::KIND, name, e))?;
        session.commit()?;
        Ok(found)
    }

    /// The async twin of [`table_exists`](Self::table_exists).
    ///
    /// # Errors
    /// As [`table_exists`](Self::table_exists).
    pub async fn async_table_exists(&self, name: &str) -> Result<bool> {
        let mut session = self.async_get_db_cm_write().await?;
        let found = exists_async::<B>(&mut session, name)
            .await
            .map_err(|e| lookup_error(B::KIND, name, e))?;
        session.commit().await?;
        Ok(found)
    }
}
