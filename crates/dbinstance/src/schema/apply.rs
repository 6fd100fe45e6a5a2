//! Creating and dropping the registered tables through the instance's write pool.

use super::dialect;
use super::registry::Registered;
use super::table::SchemaTable;
use crate::backend::Backend;
use crate::config::BackendKind;
use crate::error::{Error, Result};
use crate::instance::DatabaseInstance;
use diesel::connection::SimpleConnection;
use diesel_async::SimpleAsyncConnection;
use std::sync::Arc;

/// One DDL statement and the table it is for.
#[derive(Debug)]
struct Step {
    table: String,
    action: &'static str,
    statement: String,
}

impl Step {
    fn error(&self, source: diesel::result::Error) -> Error {
        Error::Ddl {
            table: self.table.clone(),
            action: self.action,
            statement: self.statement.clone(),
            source,
        }
    }
}

fn create_steps(tables: &[Arc<Registered>]) -> Vec<Step> {
    tables
        .iter()
        .flat_map(|t| {
            t.create.iter().map(|statement| Step {
                table: t.def.name.clone(),
                action: "create",
                statement: statement.clone(),
            })
        })
        .collect()
}

fn drop_steps(kind: BackendKind, names: impl IntoIterator<Item = String>) -> Vec<Step> {
    names
        .into_iter()
        .map(|table| Step {
            statement: dialect::drop_statement(kind, &table),
            table,
            action: "drop",
        })
        .collect()
}

fn not_registered(name: &str) -> Error {
    Error::schema(
        name,
        None,
        "the table is not registered in this instance's schema registry",
    )
}

impl<B: Backend> DatabaseInstance<B> {
    /// Creates every table registered in [`schema`](Self::schema) that does not
    /// exist yet, with its constraints and indexes, each after the tables its
    /// foreign keys reference. Idempotent: every statement is `IF NOT EXISTS`, so
    /// a table that exists is left as it is (not altered), and it is safe to run at
    /// every boot.
    ///
    /// On PostgreSQL and SQLite it all runs in one transaction: either every table
    /// is created or none is. MySQL and MariaDB commit each DDL statement on its
    /// own, so there a failure leaves the tables created before it.
    ///
    /// ```
    /// use dbinstance::{DatabaseConfig, DatabaseInstance, OnDelete, Sqlite, TableOptions};
    /// use diesel::prelude::*;
    ///
    /// diesel::table! { users (id) { id -> Integer, email -> Text } }
    /// diesel::table! { posts (id) { id -> Integer, user_id -> Integer, title -> Text } }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
    /// db.schema()
    ///     // Registration order does not matter: posts is created after users.
    ///     .register::<posts::table>(
    ///         TableOptions::new()
    ///             .auto_increment("id")
    ///             .foreign_key("user_id", "users", "id", OnDelete::Cascade),
    ///     )?
    ///     .register::<users::table>(TableOptions::new().auto_increment("id").unique(["email"]))?;
    /// db.create_tables()?;
    /// db.create_tables()?; // a no-op the second time
    /// assert!(db.table_exists("posts")?);
    ///
    /// db.write(|conn| {
    ///     diesel::insert_into(users::table).values(users::email.eq("ada@example.com")).execute(conn)?;
    ///     Ok::<_, dbinstance::Error>(())
    /// })?;
    /// let emails: Vec<String> =
    ///     db.read(|conn| Ok::<_, dbinstance::Error>(users::table.select(users::email).load(conn)?))?;
    /// assert_eq!(emails, ["ada@example.com"]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Schema`] when the registered foreign keys form a cycle or name a
    /// column their target lacks; [`Error::Ddl`] naming the table whose statement
    /// failed; the errors of [`get_db_cm_write`](Self::get_db_cm_write).
    pub fn create_tables(&self) -> Result<()> {
        let tables = self.schema().ordered()?;
        self.run_steps(&create_steps(&tables))?;
        tracing::info!(database = %self.name(), tables = tables.len(), "dbinstance: tables created");
        Ok(())
    }

    /// The async twin of [`create_tables`](Self::create_tables), through the async
    /// write pool.
    ///
    /// # Errors
    /// As [`create_tables`](Self::create_tables).
    pub async fn async_create_tables(&self) -> Result<()> {
        let tables = self.schema().ordered()?;
        self.async_run_steps(create_steps(&tables)).await?;
        tracing::info!(database = %self.name(), tables = tables.len(), "dbinstance: tables created");
        Ok(())
    }

    /// Drops every registered table that exists, in reverse foreign-key order
    /// (`DROP TABLE IF EXISTS`; indexes go with their tables). In one transaction
    /// on PostgreSQL and SQLite, statement by statement on MySQL.
    ///
    /// # Errors
    /// As [`create_tables`](Self::create_tables); a table outside the registry that
    /// still references a registered one makes the drop fail.
    pub fn drop_tables(&self) -> Result<()> {
        let steps = self.drop_all_steps()?;
        self.run_steps(&steps)?;
        tracing::info!(database = %self.name(), tables = steps.len(), "dbinstance: tables dropped");
        Ok(())
    }

    /// The async twin of [`drop_tables`](Self::drop_tables).
    ///
    /// # Errors
    /// As [`drop_tables`](Self::drop_tables).
    pub async fn async_drop_tables(&self) -> Result<()> {
        let steps = self.drop_all_steps()?;
        let count = steps.len();
        self.async_run_steps(steps).await?;
        tracing::info!(database = %self.name(), tables = count, "dbinstance: tables dropped");
        Ok(())
    }

    /// Creates the registered table `T` (and its indexes) if it does not exist,
    /// without the tables it references.
    ///
    /// # Errors
    /// [`Error::Schema`] when `T` is not registered in this instance;
    /// otherwise as [`create_tables`](Self::create_tables).
    pub fn create_table<T: SchemaTable>(&self) -> Result<()> {
        let table = self.registered::<T>()?;
        self.run_steps(&create_steps(&[table]))
    }

    /// The async twin of [`create_table`](Self::create_table).
    ///
    /// # Errors
    /// As [`create_table`](Self::create_table).
    pub async fn async_create_table<T: SchemaTable>(&self) -> Result<()> {
        let table = self.registered::<T>()?;
        self.async_run_steps(create_steps(&[table])).await
    }

    /// Drops the table `T` if it exists, registered or not.
    ///
    /// # Errors
    /// [`Error::Ddl`] when the drop fails (for example, another table references
    /// it); the errors of [`get_db_cm_write`](Self::get_db_cm_write).
    pub fn drop_table<T: SchemaTable>(&self) -> Result<()> {
        self.run_steps(&drop_steps(B::KIND, [T::sql_name().to_owned()]))
    }

    /// The async twin of [`drop_table`](Self::drop_table).
    ///
    /// # Errors
    /// As [`drop_table`](Self::drop_table).
    pub async fn async_drop_table<T: SchemaTable>(&self) -> Result<()> {
        self.async_run_steps(drop_steps(B::KIND, [T::sql_name().to_owned()]))
            .await
    }

    fn registered<T: SchemaTable>(&self) -> Result<Arc<Registered>> {
        self.schema()
            .get(T::sql_name())
            .ok_or_else(|| not_registered(T::sql_name()))
    }

    fn drop_all_steps(&self) -> Result<Vec<Step>> {
        let tables = self.schema().ordered()?;
        Ok(drop_steps(
            B::KIND,
            tables.iter().rev().map(|t| t.def.name.clone()),
        ))
    }

    /// Runs `steps` in a write session: one transaction where DDL is transactional;
    /// on MySQL each statement commits itself and the session's transaction is empty.
    fn run_steps(&self, steps: &[Step]) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut session = self.get_db_cm_write()?;
        for step in steps {
            tracing::debug!(statement = %step.statement, "dbinstance: schema");
            session
                .batch_execute(&step.statement)
                .map_err(|e| step.error(e))?;
        }
        session.commit()
    }

    /// [`run_steps`](Self::run_steps) through the async write pool; cancelling it
    /// rolls the transaction back like any async write session.
    async fn async_run_steps(&self, steps: Vec<Step>) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut session = self.async_get_db_cm_write().await?;
        for step in &steps {
            tracing::debug!(statement = %step.statement, "dbinstance: schema");
            session
                .batch_execute(&step.statement)
                .await
                .map_err(|e| step.error(e))?;
        }
        session.commit().await
    }
}
