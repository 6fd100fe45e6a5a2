//! The configuration of several databases: one TOML or JSON file, or the
//! environment, naming each database and which one is the default.

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::id::Role;
use serde::Deserialize;
use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;

/// Several named databases and the default one, for a
/// [`DatabaseManager`](crate::DatabaseManager).
///
/// From a file, each database is a table of [`DatabaseConfig`]'s fields:
///
/// ```toml
/// default = "main"
///
/// [databases.main]
/// url = "postgres://app@db/app"
/// pool_size = 20
///
/// [databases.analytics]
/// url = "mysql://reporter@warehouse/analytics"
/// ```
///
/// The default is `default` when set, else a database named `default`, else the
/// only one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// The name of the default database.
    pub default: Option<String>,
    /// Each database's config, by name (letters, digits and `_`).
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Which database each entity's reads and writes go to; set in code with
    /// [`route`](Self::route), since it is keyed by type.
    #[serde(skip)]
    pub(crate) routes: HashMap<(TypeId, Role), EntityRoute>,
}

/// Where one entity's reads or writes go.
#[derive(Debug, Clone)]
pub(crate) struct EntityRoute {
    pub(crate) database: String,
    /// The entity's type name, for errors.
    pub(crate) entity: &'static str,
}

impl ManagerConfig {
    /// An empty configuration, filled with [`database`](Self::database).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the database `name`.
    #[must_use]
    pub fn database(mut self, name: impl Into<String>, config: DatabaseConfig) -> Self {
        self.databases.insert(name.into(), config);
        self
    }

    /// Makes `name` the default database.
    #[must_use]
    pub fn default_database(mut self, name: impl Into<String>) -> Self {
        self.default = Some(name.into());
        self
    }

    /// Sends the reads and the writes of the entity `T` (a diesel table such as
    /// `users::table`, or any type of yours) to the database `name`: see
    /// [`DatabaseManager::get_db_cm_read_for`](crate::DatabaseManager::get_db_cm_read_for).
    #[must_use]
    pub fn route<T: ?Sized + 'static>(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.route_reads::<T>(name.clone()).route_writes::<T>(name)
    }

    /// Sends the reads of the entity `T` to the database `name`.
    #[must_use]
    pub fn route_reads<T: ?Sized + 'static>(self, name: impl Into<String>) -> Self {
        self.route_role::<T>(Role::Read, name.into())
    }

    /// Sends the writes of the entity `T` to the database `name`.
    #[must_use]
    pub fn route_writes<T: ?Sized + 'static>(self, name: impl Into<String>) -> Self {
        self.route_role::<T>(Role::Write, name.into())
    }

    fn route_role<T: ?Sized + 'static>(mut self, role: Role, database: String) -> Self {
        let route = EntityRoute {
            database,
            entity: std::any::type_name::<T>(),
        };
        self.routes.insert((TypeId::of::<T>(), role), route);
        self
    }

    /// Reads a `.toml` or `.json` file of the shape above.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read or parsed.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        crate::config::read_file(path.as_ref())
    }

    /// Reads `DATABASES` (the names, comma-separated) and `DEFAULT_DATABASE`, then
    /// each database's variables with its name in capitals as the prefix of
    /// [`DatabaseConfig::from_env_prefixed`]: `DATABASES=main,analytics` reads
    /// `MAIN_DATABASE_URL`, `ANALYTICS_DATABASE_URL` and so on.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is missing or wrong.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// [`from_env`](Self::from_env) from a map of variables instead of the
    /// process environment.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let vars: Vec<(OsString, OsString)> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self> {
        let text = |name: &str| -> Result<Option<String>> {
            lookup(name)
                .map(|v| {
                    v.into_string()
                        .map_err(|_| Error::config(name, "is set but is not valid UTF-8"))
                })
                .transpose()
        };
        let names = text("DATABASES")?.ok_or_else(|| Error::config("DATABASES", "is not set"))?;
        let mut config = Self::new();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let prefix = name.to_ascii_uppercase();
            config.databases.insert(
                name.to_owned(),
                DatabaseConfig::from_lookup(&prefix, &lookup)?,
            );
        }
        config.default = text("DEFAULT_DATABASE")?;
        Ok(config)
    }

    /// Checks the names and settles the default.
    pub(crate) fn default_name(&self) -> Result<String> {
        if self.databases.is_empty() {
            return Err(Error::config("databases", "names no database"));
        }
        for name in self.databases.keys() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::config(
                    format!("databases.{name}"),
                    "a name is letters, digits and `_`",
                ));
            }
        }
        for route in self.routes.values() {
            if !self.databases.contains_key(&route.database) {
                return Err(Error::config(
                    format!("routes.{}", route.entity),
                    format!("`{}` is not one of the databases", route.database),
                ));
            }
        }
        match &self.default {
            Some(name) if self.databases.contains_key(name) => Ok(name.clone()),
            Some(name) => Err(Error::config(
                "default",
                format!("`{name}` is not one of the databases"),
            )),
            None if self.databases.contains_key("default") => Ok("default".to_owned()),
            None if self.databases.len() == 1 => {
                Ok(self.databases.keys().next().cloned().unwrap_or_default())
            }
            None => Err(Error::config(
                "default",
                "is not set and no database is named `default`",
            )),
        }
    }
}
