//! Embedded diesel migrations, run on a connection of the blocking write pool.

use super::DatabaseInstance;
use crate::backend::{Backend, Driver};
use crate::error::{Error, Result};
use crate::schema::{MigrationInfo, MigrationSet, MigrationStatus};
use std::time::{Duration, Instant};

/// How long a runner waits for another process's migrations to finish.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(600);

impl<B: Backend> DatabaseInstance<B> {
    /// Runs the migrations of `migrations` that the primary has not applied yet, in
    /// version order, and returns them (empty when none was pending). Each runs in
    /// its own transaction (unless its `metadata.toml` sets `run_in_transaction =
    /// false`), on a connection of the blocking write pool, and is recorded in
    /// diesel's `__diesel_schema_migrations` table. Meant for boot, from every
    /// process: on PostgreSQL and MySQL the run holds a server lock (an advisory
    /// lock, `GET_LOCK`), so one process runs the migrations while the others wait
    /// (up to 10 minutes) and then find nothing pending.
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
    pub fn run_pending_migrations<'a>(
        &self,
        migrations: impl Into<MigrationSet<'a>>,
    ) -> Result<Vec<MigrationInfo>> {
        self.with_migration_connection(&migrations.into(), true)
    }

    /// The migrations of `migrations` not applied yet, in the order
    /// [`run_pending_migrations`](Self::run_pending_migrations) would run them.
    ///
    /// # Errors
    /// [`Error::Migration`] when the applied migrations cannot be read.
    pub fn pending_migrations<'a>(
        &self,
        migrations: impl Into<MigrationSet<'a>>,
    ) -> Result<Vec<MigrationInfo>> {
        self.with_migration_connection(&migrations.into(), false)
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
        migrations: impl Into<MigrationSet<'static>>,
    ) -> Result<Vec<MigrationInfo>> {
        self.blocking_migrations(migrations.into(), true).await
    }

    /// The async twin of [`pending_migrations`](Self::pending_migrations).
    ///
    /// # Errors
    /// As [`pending_migrations`](Self::pending_migrations).
    pub async fn async_pending_migrations(
        &self,
        migrations: impl Into<MigrationSet<'static>>,
    ) -> Result<Vec<MigrationInfo>> {
        self.blocking_migrations(migrations.into(), false).await
    }

    /// Every migration of `migrations` in version order, and whether the primary
    /// has applied it.
    ///
    /// # Errors
    /// [`Error::Migration`] when the applied migrations cannot be read.
    pub fn migration_status<'a>(
        &self,
        migrations: impl Into<MigrationSet<'a>>,
    ) -> Result<Vec<MigrationStatus>> {
        let migrations = migrations.into();
        self.with_migration_lock(|conn| B::Driver::migration_status(conn, &migrations))
    }

    /// Reverts the last migration the primary applied (its `down.sql`) and returns
    /// it; `None` when none was applied.
    ///
    /// # Errors
    /// [`Error::Migration`] when the revert fails.
    pub fn revert_last_migration<'a>(
        &self,
        migrations: impl Into<MigrationSet<'a>>,
    ) -> Result<Option<MigrationInfo>> {
        let migrations = migrations.into();
        self.with_migration_lock(|conn| B::Driver::revert_last_migration(conn, &migrations))
    }

    fn with_migration_connection(
        &self,
        migrations: &MigrationSet<'_>,
        apply: bool,
    ) -> Result<Vec<MigrationInfo>> {
        self.with_migration_lock(|conn| B::Driver::migrations(conn, migrations, apply))
    }

    /// Runs `work` on a connection of the primary's own, not a pooled one (the
    /// harness opens one transaction per migration, and some migrations must run
    /// outside one), holding the server's migration lock: several processes may
    /// migrate at boot, one runs the migrations and the others, once it is done,
    /// find nothing pending. The connection is closed afterwards, which releases
    /// the lock even if `work` panicked.
    fn with_migration_lock<T>(
        &self,
        work: impl FnOnce(&mut B::Connection) -> Result<T>,
    ) -> Result<T> {
        let pools = self.pools()?;
        let recipe = pools.write_sync.recipe();
        recipe.check_honoured()?;
        let mut conn = recipe
            .unpooled_sync()
            .map_err(|e| e.into_error(&pools.write_sync.id))?;
        let (Some(lock), Some(unlock)) = (B::Driver::MIGRATION_LOCK, B::Driver::MIGRATION_UNLOCK)
        else {
            return work(&mut conn);
        };
        let lock_error = |source: diesel::result::Error| Error::Migration {
            migration: None,
            source: Box::new(source),
        };
        let started = Instant::now();
        while !B::Driver::migration_lock(&mut conn, lock).map_err(lock_error)? {
            if started.elapsed() >= MIGRATION_LOCK_WAIT {
                return Err(Error::Migration {
                    migration: None,
                    source: format!(
                        "another process held the migration lock for {MIGRATION_LOCK_WAIT:?}"
                    )
                    .into(),
                });
            }
            tracing::debug!("dbinstance: another process is migrating; waiting for its lock");
            std::thread::sleep(Duration::from_millis(100));
        }
        let outcome = work(&mut conn);
        // Closing the connection releases the lock anyway; unlocking first lets the
        // next runner in without waiting for the server to notice the close.
        let _ = B::Driver::migration_lock(&mut conn, unlock);
        outcome
    }

    async fn blocking_migrations(
        &self,
        migrations: MigrationSet<'static>,
        apply: bool,
    ) -> Result<Vec<MigrationInfo>> {
        let db = self.clone();
        let task =
            tokio::task::spawn_blocking(move || db.with_migration_connection(&migrations, apply));
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Runtime(
                "the migration task was cancelled by a runtime shutdown",
            )),
        }
    }
}
