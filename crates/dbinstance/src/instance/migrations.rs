//! Embedded diesel migrations, run on a connection of the blocking write pool.

use super::DatabaseInstance;
use crate::backend::{Backend, Driver};
use crate::error::{Error, Result};
use crate::schema::MigrationInfo;
use diesel_migrations::EmbeddedMigrations;

impl<B: Backend> DatabaseInstance<B> {
    /// Runs the migrations of `migrations` that the primary has not applied yet, in
    /// version order, and returns them (empty when none was pending). Each runs in
    /// its own transaction (unless its `metadata.toml` sets `run_in_transaction =
    /// false`), on a connection of the blocking write pool, and is recorded in
    /// diesel's `__diesel_schema_migrations` table. Meant for boot: run it from one
    /// process at a time, as concurrent runners race on the same migration.
    ///
    /// `migrations` comes from `diesel_migrations::embed_migrations!`, which needs
    /// `diesel_migrations` among the application's own dependencies:
    ///
    /// ```
    /// use diesel_migrations::{embed_migrations, EmbeddedMigrations};
    /// // Usually `embed_migrations!()`: the `migrations` directory next to Cargo.toml.
    /// const MIGRATIONS: EmbeddedMigrations = embed_migrations!("tests/migrations");
    ///
    /// # fn main() -> Result<(), dbinstance::Error> {
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
    /// for migration in db.run_pending_migrations(&MIGRATIONS)? {
    ///     println!("applied {}", migration.name);
    /// }
    /// assert!(db.run_pending_migrations(&MIGRATIONS)?.is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Migration`] naming the migration that failed (those before it stay
    /// applied); the errors of [`get_db_cm_write`](Self::get_db_cm_write).
    pub fn run_pending_migrations(
        &self,
        migrations: &EmbeddedMigrations,
    ) -> Result<Vec<MigrationInfo>> {
        self.with_migration_connection(migrations, true)
    }

    /// The migrations of `migrations` not applied yet, in the order
    /// [`run_pending_migrations`](Self::run_pending_migrations) would run them.
    ///
    /// # Errors
    /// [`Error::Migration`] when the applied migrations cannot be read.
    pub fn pending_migrations(
        &self,
        migrations: &EmbeddedMigrations,
    ) -> Result<Vec<MigrationInfo>> {
        self.with_migration_connection(migrations, false)
    }

    /// The async twin of [`run_pending_migrations`](Self::run_pending_migrations):
    /// the migrations run on tokio's blocking pool, so any runtime flavour works.
    /// Dropping the future does not stop a migration already under way; it runs
    /// to its end.
    ///
    /// # Errors
    /// As [`run_pending_migrations`](Self::run_pending_migrations).
    pub async fn async_run_pending_migrations(
        &self,
        migrations: &'static EmbeddedMigrations,
    ) -> Result<Vec<MigrationInfo>> {
        self.blocking_migrations(migrations, true).await
    }

    /// The async twin of [`pending_migrations`](Self::pending_migrations).
    ///
    /// # Errors
    /// As [`pending_migrations`](Self::pending_migrations).
    pub async fn async_pending_migrations(
        &self,
        migrations: &'static EmbeddedMigrations,
    ) -> Result<Vec<MigrationInfo>> {
        self.blocking_migrations(migrations, false).await
    }

    fn with_migration_connection(
        &self,
        migrations: &EmbeddedMigrations,
        apply: bool,
    ) -> Result<Vec<MigrationInfo>> {
        // A plain pooled connection, not a write session: the harness opens one
        // transaction per migration, and some migrations must run outside one.
        let pools = self.pools()?;
        let mut conn = pools.write_sync.get()?;
        B::Driver::migrations(&mut conn, migrations, apply)
    }

    async fn blocking_migrations(
        &self,
        migrations: &'static EmbeddedMigrations,
        apply: bool,
    ) -> Result<Vec<MigrationInfo>> {
        let db = self.clone();
        let task =
            tokio::task::spawn_blocking(move || db.with_migration_connection(migrations, apply));
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Runtime(
                "the migration task was cancelled by a runtime shutdown",
            )),
        }
    }
}
