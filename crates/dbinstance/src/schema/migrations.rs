//! Embedded diesel migrations, run from the instance at boot.
//!
//! diesel_migrations' harness is implemented per concrete connection type, so each
//! backend calls [`pending`] with its own (`Backend::migrations`). The async twins
//! run the blocking harness on tokio's blocking pool: diesel-async's own harness
//! uses `block_in_place`, which panics on a current-thread runtime.

use crate::error::{Error, Result};
use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{EmbeddedMigrations, FileBasedMigrations, MigrationHarness};

/// One migration of an embedded set: from
/// [`run_pending_migrations`](crate::DatabaseInstance::run_pending_migrations) (it ran) or
/// [`pending_migrations`](crate::DatabaseInstance::pending_migrations) (it would run).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MigrationInfo {
    /// The version diesel records in `__diesel_schema_migrations`, such as
    /// `20240101000000` for the directory `2024-01-01-000000_create_users`.
    pub version: String,
    /// The migration's directory name, `<version>_<name>`.
    pub name: String,
}

impl MigrationInfo {
    fn of<DB: diesel::backend::Backend>(migration: &dyn Migration<DB>) -> Self {
        Self {
            version: migration.name().version().to_string(),
            name: migration.name().to_string(),
        }
    }
}

/// One migration of an embedded set and whether the database has applied it, from
/// [`migration_status`](crate::DatabaseInstance::migration_status).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationInfo,
    /// Whether `__diesel_schema_migrations` records it.
    pub applied: bool,
}

/// A set of migrations: embedded in the binary by `embed_migrations!` (a
/// service), or read from a directory when it runs (an operator's tool). Every
/// migration method takes either: `&MIGRATIONS` converts.
#[derive(Clone)]
#[non_exhaustive]
pub enum MigrationSet<'a> {
    /// Embedded at compile time.
    Embedded(&'a EmbeddedMigrations),
    /// A diesel migrations directory (`<version>_<name>/up.sql`, `down.sql`).
    Directory(FileBasedMigrations),
}

impl std::fmt::Debug for MigrationSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationSet::Embedded(_) => f.write_str("MigrationSet::Embedded"),
            MigrationSet::Directory(_) => f.write_str("MigrationSet::Directory"),
        }
    }
}

impl<'a> From<&'a EmbeddedMigrations> for MigrationSet<'a> {
    fn from(migrations: &'a EmbeddedMigrations) -> Self {
        MigrationSet::Embedded(migrations)
    }
}

impl MigrationSet<'static> {
    /// The migrations in the directory `path`.
    ///
    /// # Errors
    /// [`Error::Migration`] when `path` is not a migrations directory.
    pub fn from_directory(path: impl AsRef<std::path::Path>) -> Result<Self> {
        FileBasedMigrations::from_path(path)
            .map(MigrationSet::Directory)
            .map_err(|e| harness_error(Box::new(e)))
    }
}

/// Lends a [`MigrationSet`] to the harness, which takes its source by value.
struct Borrowed<'s, 'a>(&'s MigrationSet<'a>);

impl<DB: diesel::backend::Backend> MigrationSource<DB> for Borrowed<'_, '_> {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        match self.0 {
            MigrationSet::Embedded(embedded) => MigrationSource::<DB>::migrations(*embedded),
            MigrationSet::Directory(directory) => MigrationSource::<DB>::migrations(directory),
        }
    }
}

/// Lists the pending migrations of `source` and, when `apply`, runs them in version
/// order, each in its own transaction unless its metadata says otherwise.
pub(crate) fn pending<DB, C>(
    conn: &mut C,
    source: &MigrationSet<'_>,
    apply: bool,
) -> Result<Vec<MigrationInfo>>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
{
    let pending = conn
        .pending_migrations(Borrowed(source))
        .map_err(|source| Error::Migration {
            migration: None,
            source,
        })?;
    let mut out = Vec::with_capacity(pending.len());
    for migration in &pending {
        let info = MigrationInfo::of(&**migration);
        if apply {
            conn.run_migration(&**migration)
                .map_err(|source| Error::Migration {
                    migration: Some(info.name.clone()),
                    source,
                })?;
            tracing::info!(migration = %info.name, "dbinstance: migration applied");
        }
        out.push(info);
    }
    Ok(out)
}

fn harness_error(source: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::Migration {
        migration: None,
        source,
    }
}

/// Every migration of `source` in version order, and whether it was applied.
pub(crate) fn status<DB, C>(conn: &mut C, source: &MigrationSet<'_>) -> Result<Vec<MigrationStatus>>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
{
    let applied = conn.applied_migrations().map_err(harness_error)?;
    let mut all = MigrationSource::<DB>::migrations(&Borrowed(source)).map_err(harness_error)?;
    all.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
    Ok(all
        .iter()
        .map(|migration| MigrationStatus {
            applied: applied.contains(&migration.name().version()),
            migration: MigrationInfo::of(&**migration),
        })
        .collect())
}

/// Reverts the last applied migration; `None` when none is applied.
pub(crate) fn revert_last<DB, C>(
    conn: &mut C,
    source: &MigrationSet<'_>,
) -> Result<Option<MigrationInfo>>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
{
    if conn.applied_migrations().map_err(harness_error)?.is_empty() {
        return Ok(None);
    }
    let version = conn
        .revert_last_migration(Borrowed(source))
        .map_err(harness_error)?;
    let all = MigrationSource::<DB>::migrations(&Borrowed(source)).map_err(harness_error)?;
    let info = all
        .iter()
        .find(|m| m.name().version() == version)
        .map_or_else(
            || MigrationInfo {
                version: version.to_string(),
                name: version.to_string(),
            },
            |m| MigrationInfo::of(&**m),
        );
    tracing::info!(migration = %info.name, "dbinstance: migration reverted");
    Ok(Some(info))
}
