//! Runs a parsed command against the databases the configuration names.

use crate::args::{Action, Command, MigrationAction, USAGE};
use dbinstance::{
    AnyInstance, DatabaseConfig, DatabaseManager, Error, HealthStatus, ManagerConfig, MigrationSet,
};
use std::path::Path;

/// The command line was wrong.
pub(crate) const USAGE_ERROR: u8 = 64;
/// A database call failed.
pub(crate) const FAILED: u8 = 70;

/// Registers a service's tables on the databases of its manager.
pub(crate) type Registry = dyn Fn(&DatabaseManager) -> Result<(), Error>;

/// Runs `command`; the process's exit code.
pub(crate) fn run(command: &Command, registry: Option<&Registry>) -> Result<u8, Error> {
    if command.action == Action::Help {
        println!("{USAGE}");
        return Ok(0);
    }
    let manager = DatabaseManager::new_lazy(config(command.config.as_deref())?)?;
    let names: Vec<String> = match &command.database {
        Some(name) => {
            manager.database(name)?;
            vec![name.clone()]
        }
        None => manager.names().map(str::to_owned).collect(),
    };
    match &command.action {
        Action::Help => Ok(0),
        Action::Health => health(&manager, &names, command.json),
        Action::Stats => {
            let stats: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|name| {
                    let stats = manager.database(name).map(AnyInstance::pool_stats)?;
                    Ok((name.clone(), to_json(&stats)))
                })
                .collect::<Result<_, Error>>()?;
            print(command.json, &serde_json::Value::Object(stats));
            Ok(0)
        }
        Action::CreateTables => {
            let Some(register) = registry else {
                eprintln!("dbinstance: this binary knows no tables: a service builds its own with dbinstance_cli::Cli::tables");
                return Ok(USAGE_ERROR);
            };
            register(&manager)?;
            let mut created = serde_json::Map::new();
            for name in &names {
                let database = manager.database(name)?;
                database.create_tables()?;
                created.insert(
                    name.clone(),
                    serde_json::Value::from(database.schema().table_names()),
                );
            }
            print(command.json, &serde_json::Value::Object(created));
            Ok(0)
        }
        Action::Migrations(action, dir) => {
            let name = command
                .database
                .clone()
                .unwrap_or_else(|| manager.default_name().to_owned());
            migrations(manager.database(&name)?, *action, dir, command.json)
        }
    }
}

/// The configuration as the service reads it: a manager file, a file of one
/// database, `DATABASES` and its variables, or `DATABASE_URL` and its.
fn config(file: Option<&Path>) -> Result<ManagerConfig, Error> {
    match file {
        Some(file) => ManagerConfig::from_file(file).or_else(|manager_error| {
            // A file of one database's fields is a manager of one, named `default`.
            DatabaseConfig::from_file(file)
                .map(|one| ManagerConfig::new().database("default", one))
                .map_err(|_| manager_error)
        }),
        None if std::env::var_os("DATABASES").is_some() => ManagerConfig::from_env(),
        None => Ok(ManagerConfig::new().database("default", DatabaseConfig::from_env()?)),
    }
}

fn health(manager: &DatabaseManager, names: &[String], json: bool) -> Result<u8, Error> {
    let mut worst = 0;
    let mut reports = serde_json::Map::new();
    for name in names {
        let report = manager.database(name)?.health_report();
        worst = worst.max(match report.status {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            _ => 2,
        });
        if !json {
            println!(
                "{name}: {}",
                to_json(&report.status).as_str().unwrap_or("?")
            );
            for pool in &report.pools {
                let state = if pool.reachable { "up" } else { "DOWN" };
                println!("  {} {:?} {}: {state}", pool.role, pool.kind, pool.target);
            }
        }
        reports.insert(name.clone(), to_json(&report));
    }
    if json {
        print(true, &serde_json::Value::Object(reports));
    }
    Ok(worst)
}

fn migrations(
    database: &AnyInstance,
    action: MigrationAction,
    dir: &Path,
    json: bool,
) -> Result<u8, Error> {
    let set = MigrationSet::from_directory(dir)?;
    let out = match action {
        MigrationAction::Status => to_json(&typed(database, |db| db.migration_status(set))?),
        MigrationAction::Pending => to_json(&typed(database, |db| db.pending_migrations(set))?),
        MigrationAction::Run => to_json(&typed(database, |db| db.run_pending_migrations(set))?),
        MigrationAction::Revert => to_json(&typed(database, |db| db.revert_last_migration(set))?),
    };
    print(json, &out);
    Ok(0)
}

/// Runs `f` on the instance, whatever its backend.
fn typed<T>(
    database: &AnyInstance,
    f: impl FnOnce(&dyn Migrator) -> Result<T, Error>,
) -> Result<T, Error> {
    match database {
        #[cfg(feature = "postgres")]
        AnyInstance::Postgres(db) => f(db),
        #[cfg(feature = "mysql")]
        AnyInstance::Mysql(db) => f(db),
        AnyInstance::Sqlite(db) => f(db),
        _ => Err(Error::Runtime("this build does not include that backend")),
    }
}

/// The migration calls, for any backend.
trait Migrator {
    fn migration_status(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Vec<dbinstance::MigrationStatus>, Error>;
    fn pending_migrations(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Vec<dbinstance::MigrationInfo>, Error>;
    fn run_pending_migrations(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Vec<dbinstance::MigrationInfo>, Error>;
    fn revert_last_migration(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Option<dbinstance::MigrationInfo>, Error>;
}

impl<B: dbinstance::Backend> Migrator for dbinstance::DatabaseInstance<B> {
    fn migration_status(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Vec<dbinstance::MigrationStatus>, Error> {
        dbinstance::DatabaseInstance::migration_status(self, set)
    }
    fn pending_migrations(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Vec<dbinstance::MigrationInfo>, Error> {
        dbinstance::DatabaseInstance::pending_migrations(self, set)
    }
    fn run_pending_migrations(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Vec<dbinstance::MigrationInfo>, Error> {
        dbinstance::DatabaseInstance::run_pending_migrations(self, set)
    }
    fn revert_last_migration(
        &self,
        set: MigrationSet<'static>,
    ) -> Result<Option<dbinstance::MigrationInfo>, Error> {
        dbinstance::DatabaseInstance::revert_last_migration(self, set)
    }
}

fn to_json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn print(json: bool, value: &serde_json::Value) {
    if json {
        println!("{value}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}
