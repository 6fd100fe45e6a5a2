//! The schema registry's actions and embedded migrations, forwarded to
//! [`crate::schema`] through write sessions and the write pool.

use super::DatabaseInstance;
use crate::backend::Backend;
use crate::backend::Driver;
use crate::error::Result;
use crate::schema::{apply, SchemaTable};

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
    /// [`Error::Schema`](crate::Error::Schema) when the registered foreign keys form a cycle or name a
    /// column their target lacks; [`Error::Ddl`](crate::Error::Ddl) naming the table whose statement
    /// failed; the errors of [`get_db_cm_write`](Self::get_db_cm_write).
    pub fn create_tables(&self) -> Result<()> {
        let (steps, tables) = apply::create_all(self.schema())?;
        self.run_steps(&steps)?;
        tracing::info!(database = %self.name(), tables, "dbinstance: tables created");
        Ok(())
    }

    /// The async twin of [`create_tables`](Self::create_tables), through the async
    /// write pool.
    ///
    /// # Errors
    /// As [`create_tables`](Self::create_tables).
    pub async fn async_create_tables(&self) -> Result<()> {
        let (steps, tables) = apply::create_all(self.schema())?;
        self.async_run_steps(&steps).await?;
        tracing::info!(database = %self.name(), tables, "dbinstance: tables created");
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
        let steps = apply::drop_all(self.schema())?;
        self.run_steps(&steps)?;
        tracing::info!(database = %self.name(), tables = steps.len(), "dbinstance: tables dropped");
        Ok(())
    }

    /// The async twin of [`drop_tables`](Self::drop_tables).
    ///
    /// # Errors
    /// As [`drop_tables`](Self::drop_tables).
    pub async fn async_drop_tables(&self) -> Result<()> {
        let steps = apply::drop_all(self.schema())?;
        self.async_run_steps(&steps).await?;
        tracing::info!(database = %self.name(), tables = steps.len(), "dbinstance: tables dropped");
        Ok(())
    }

    /// Creates the registered table `T` (and its indexes) if it does not exist,
    /// without the tables it references.
    ///
    /// # Errors
    /// [`Error::Schema`](crate::Error::Schema) when `T` is not registered in this instance;
    /// otherwise as [`create_tables`](Self::create_tables).
    pub fn create_table<T: SchemaTable>(&self) -> Result<()> {
        self.run_steps(&apply::create_one::<T>(self.schema())?)
    }

    /// The async twin of [`create_table`](Self::create_table).
    ///
    /// # Errors
    /// As [`create_table`](Self::create_table).
    pub async fn async_create_table<T: SchemaTable>(&self) -> Result<()> {
        self.async_run_steps(&apply::create_one::<T>(self.schema())?)
            .await
    }

    /// Drops the table `T` if it exists, registered or not.
    ///
    /// # Errors
    /// [`Error::Ddl`](crate::Error::Ddl) when the drop fails (for example, another table references
    /// it); the errors of [`get_db_cm_write`](Self::get_db_cm_write).
    pub fn drop_table<T: SchemaTable>(&self) -> Result<()> {
        self.run_steps(&apply::drop_one::<T>(B::KIND))
    }

    /// The async twin of [`drop_table`](Self::drop_table).
    ///
    /// # Errors
    /// As [`drop_table`](Self::drop_table).
    pub async fn async_drop_table<T: SchemaTable>(&self) -> Result<()> {
        self.async_run_steps(&apply::drop_one::<T>(B::KIND)).await
    }

    /// Runs `steps` in a write session and commits.
    fn run_steps(&self, steps: &[apply::Step]) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut session = self.get_db_cm_write()?;
        apply::run(&mut *session, steps)?;
        session.commit()
    }

    /// [`run_steps`](Self::run_steps) through the async write pool; cancelling it
    /// rolls the transaction back like any async write session.
    async fn async_run_steps(&self, steps: &[apply::Step]) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut session = self.async_get_db_cm_write().await?;
        apply::async_run(&mut *session, steps).await?;
        session.commit().await
    }

    /// Whether a table named `name` exists on the primary, in the schema new tables
    /// go to: PostgreSQL's `current_schema()` (the first of the `search_path`), the
    /// MySQL connection's database, SQLite's main database. Views do not count.
    /// Any table counts, registered or not.
    ///
    /// # Errors
    /// [`Error::Ddl`](crate::Error::Ddl) when the catalog query fails; the errors of
    /// [`get_db_cm_write`](Self::get_db_cm_write).
    pub fn table_exists(&self, name: &str) -> Result<bool> {
        let mut session = self.get_db_cm_write()?;
        let found = B::Driver::table_exists(&mut session, name)
            .map_err(|e| apply::lookup_error(B::Driver::COUNT_TABLES_PREFIX, name, e))?;
        session.commit()?;
        Ok(found)
    }

    /// The async twin of [`table_exists`](Self::table_exists).
    ///
    /// # Errors
    /// As [`table_exists`](Self::table_exists).
    pub async fn async_table_exists(&self, name: &str) -> Result<bool> {
        let mut session = self.async_get_db_cm_write().await?;
        let found = B::Driver::async_table_exists(&mut session, name)
            .await
            .map_err(|e| apply::lookup_error(B::Driver::COUNT_TABLES_PREFIX, name, e))?;
        session.commit().await?;
        Ok(found)
    }
}
