//! Loading a [`DatabaseConfig`] from the environment (`DATABASE_URL` and friends,
//! optionally prefixed) or from a TOML or JSON file.

use super::{AsyncPoolKind, DatabaseConfig};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::target::SqliteSynchronous;
use crate::target::SslMode;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

impl DatabaseConfig {
    /// Reads `DATABASE_URL`, `DATABASE_READ_URL` (comma-separated for several replicas),
    /// `DATABASE_READ_WEIGHTS` (comma-separated, one per replica: `read_weights`)
    /// and the pool settings `DATABASE_POOL_SIZE`, `DATABASE_MAX_OVERFLOW`,
    /// `DATABASE_MIN_IDLE`, `DATABASE_POOL_TIMEOUT`, `DATABASE_POOL_RECYCLE`,
    /// `DATABASE_POOL_PRE_PING`, `DATABASE_CONNECT_TIMEOUT`, `DATABASE_ASYNC_POOL`,
    /// `DATABASE_APPLICATION_NAME`, `DATABASE_BREAKER_BACKOFF`,
    /// `DATABASE_MAX_REPLICA_LAG`, `DATABASE_REPLICA_LAG_INTERVAL`,
    /// `DATABASE_READ_YOUR_WRITES_WAIT`, `DATABASE_STATEMENT_TIMEOUT`,
    /// `DATABASE_LOCK_TIMEOUT`, `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT`,
    /// `DATABASE_TRANSACTION_POOLING`, `DATABASE_SHARED_READ_CONNECTIONS`,
    /// `DATABASE_SQLITE_SYNCHRONOUS`,
    /// `DATABASE_SQLITE_WAL_AUTOCHECKPOINT`, and TLS: `DATABASE_SSL_MODE`,
    /// `DATABASE_SSL_ROOT_CERT`, `DATABASE_SSL_CERT`, `DATABASE_SSL_KEY`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when `DATABASE_URL` is missing or a value
    /// does not parse.
    pub fn from_env() -> Result<Self> {
        Self::from_env_prefixed("")
    }

    /// Like [`from_env`](Self::from_env) with every variable name prefixed, for
    /// several databases in one process: `from_env_prefixed("ANALYTICS")` reads
    /// `ANALYTICS_DATABASE_URL` and so on.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_env_prefixed(prefix: &str) -> Result<Self> {
        Self::from_lookup(prefix, |name| std::env::var_os(name))
    }

    /// Like [`from_env_prefixed`](Self::from_env_prefixed), reading the variables
    /// from `vars` instead of the process environment: the pairs of a `.env` file,
    /// of a secret store, of a test (which then needs no `set_var`, whose use
    /// beside threads that read the environment, as libpq's do, is undefined).
    ///
    /// ```
    /// use dbinstance::DatabaseConfig;
    /// let config = DatabaseConfig::from_vars("", [
    ///     ("DATABASE_URL", "postgres://app@db/app"),
    ///     ("DATABASE_POOL_SIZE", "8"),
    /// ])?;
    /// assert_eq!(config.pool_size, Some(8));
    /// # Ok::<(), dbinstance::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_vars<K, V>(prefix: &str, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let vars: HashMap<OsString, OsString> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::from_lookup(prefix, |name| vars.get(OsStr::new(name)).cloned())
    }

    pub(crate) fn from_lookup(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self> {
        let name = |suffix: &str| {
            if prefix.is_empty() {
                format!("DATABASE_{suffix}")
            } else {
                format!("{prefix}_DATABASE_{suffix}")
            }
        };
        let var = |suffix: &str| -> Result<Option<String>> {
            match lookup(&name(suffix)).map(OsString::into_string) {
                Some(Ok(value)) => Ok(Some(value).filter(|v| !v.is_empty())),
                None => Ok(None),
                Some(Err(_)) => Err(Error::config(name(suffix), "is set but is not valid UTF-8")),
            }
        };
        let url = var("URL")?.ok_or_else(|| Error::config(name("URL"), "is not set"))?;
        let mut config = Self::from_url(url);
        if let Some(reads) = var("READ_URL")? {
            config.read_urls = reads
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(Secret::from)
                .collect();
        }
        if let Some(weights) = var("READ_WEIGHTS")? {
            config.read_weights = weights
                .split(',')
                .map(|w| {
                    w.trim().parse().map_err(|_| {
                        Error::config(
                            name("READ_WEIGHTS"),
                            format!("`{w}` is not a whole number (one weight per replica)"),
                        )
                    })
                })
                .collect::<Result<_>>()?;
        }
        config.pool_size = parse_var(&name("POOL_SIZE"), var("POOL_SIZE")?)?;
        config.max_overflow = parse_var(&name("MAX_OVERFLOW"), var("MAX_OVERFLOW")?)?;
        config.min_idle = parse_var(&name("MIN_IDLE"), var("MIN_IDLE")?)?;
        config.pool_timeout = parse_secs(&name("POOL_TIMEOUT"), var("POOL_TIMEOUT")?)?;
        config.pool_recycle = parse_secs(&name("POOL_RECYCLE"), var("POOL_RECYCLE")?)?;
        config.connect_timeout = parse_secs(&name("CONNECT_TIMEOUT"), var("CONNECT_TIMEOUT")?)?;
        config.breaker_backoff = parse_secs(&name("BREAKER_BACKOFF"), var("BREAKER_BACKOFF")?)?;
        config.max_replica_lag = parse_secs(&name("MAX_REPLICA_LAG"), var("MAX_REPLICA_LAG")?)?;
        config.replica_lag_interval =
            parse_secs(&name("REPLICA_LAG_INTERVAL"), var("REPLICA_LAG_INTERVAL")?)?;
        config.read_your_writes_wait = parse_secs(
            &name("READ_YOUR_WRITES_WAIT"),
            var("READ_YOUR_WRITES_WAIT")?,
        )?;
        config.statement_timeout =
            parse_secs(&name("STATEMENT_TIMEOUT"), var("STATEMENT_TIMEOUT")?)?;
        config.lock_timeout = parse_secs(&name("LOCK_TIMEOUT"), var("LOCK_TIMEOUT")?)?;
        config.idle_in_transaction_timeout = parse_secs(
            &name("IDLE_IN_TRANSACTION_TIMEOUT"),
            var("IDLE_IN_TRANSACTION_TIMEOUT")?,
        )?;
        config.pool_pre_ping = parse_var(&name("POOL_PRE_PING"), var("POOL_PRE_PING")?)?;
        config.transaction_pooling =
            parse_var(&name("TRANSACTION_POOLING"), var("TRANSACTION_POOLING")?)?;
        config.shared_read_connections = parse_var(
            &name("SHARED_READ_CONNECTIONS"),
            var("SHARED_READ_CONNECTIONS")?,
        )?;
        config.echo = parse_var(&name("ECHO"), var("ECHO")?)?;
        config.echo_bind_values = parse_var(&name("ECHO_BIND_VALUES"), var("ECHO_BIND_VALUES")?)?;
        config.slow_statement_threshold = parse_secs(
            &name("SLOW_STATEMENT_THRESHOLD"),
            var("SLOW_STATEMENT_THRESHOLD")?,
        )?;
        config.sqlite_synchronous = var("SQLITE_SYNCHRONOUS")?
            .map(|value| {
                SqliteSynchronous::parse(&value).ok_or_else(|| {
                    Error::config(
                        name("SQLITE_SYNCHRONOUS"),
                        format!("expected off, normal, full or extra, got `{value}`"),
                    )
                })
            })
            .transpose()?;
        config.sqlite_wal_autocheckpoint = parse_var(
            &name("SQLITE_WAL_AUTOCHECKPOINT"),
            var("SQLITE_WAL_AUTOCHECKPOINT")?,
        )?;
        config.application_name = var("APPLICATION_NAME")?;
        config.ssl_mode = var("SSL_MODE")?
            .map(|mode| {
                SslMode::parse(&mode).ok_or_else(|| {
                    Error::config(
                        name("SSL_MODE"),
                        format!(
                            "expected disable, prefer, require, verify-ca or verify-full, got `{mode}`"
                        ),
                    )
                })
            })
            .transpose()?;
        config.ssl_root_cert = var("SSL_ROOT_CERT")?.map(PathBuf::from);
        config.ssl_cert = var("SSL_CERT")?.map(PathBuf::from);
        config.ssl_key = var("SSL_KEY")?.map(PathBuf::from);
        config.async_pool = match var("ASYNC_POOL")?.as_deref() {
            None => None,
            Some("deadpool") => Some(AsyncPoolKind::Deadpool),
            Some("bb8") => Some(AsyncPoolKind::Bb8),
            Some(other) => {
                return Err(Error::config(
                    name("ASYNC_POOL"),
                    format!("expected `deadpool` or `bb8`, got `{other}`"),
                ))
            }
        };
        Ok(config)
    }

    /// Reads a config from a `.toml` or `.json` file (the field names of this struct).
    ///
    /// # Errors
    /// [`Error::Config`] naming the file when it cannot be read, has another
    /// extension, or does not parse (the parser's message names the bad key).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        read_file(path.as_ref())
    }
}

/// A `.toml` or `.json` file deserialised, every failure an [`Error::Config`]
/// naming the file.
pub(crate) fn read_file<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let field = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(&field, format!("cannot be read: {e}")))?;
    match path.extension().and_then(|e| e.to_str()) {
        // The message and the line only: toml's own Display quotes the line,
        // which may hold a password.
        Some("toml") => toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1);
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            Error::config(&field, format!("{}{at}", e.message().trim_end()))
        }),
        Some("json") => {
            serde_json::from_str(&text).map_err(|e| Error::config(&field, e.to_string()))
        }
        _ => Err(Error::config(&field, "expected a .toml or .json file")),
    }
}

fn parse_var<T: std::str::FromStr>(name: &str, value: Option<String>) -> Result<Option<T>> {
    value
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| Error::config(name, format!("`{v}` does not parse")))
        })
        .transpose()
}

fn parse_secs(name: &str, value: Option<String>) -> Result<Option<Duration>> {
    parse_var::<f64>(name, value)?
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .map_err(|_| Error::config(name, "must be a non-negative number of seconds"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_weights_come_from_a_comma_separated_variable() {
        let vars = |weights| {
            [
                ("UNIT_WEIGHTS_DATABASE_URL", "postgres://h/db"),
                ("UNIT_WEIGHTS_DATABASE_READ_WEIGHTS", weights),
            ]
        };
        let config = DatabaseConfig::from_vars("UNIT_WEIGHTS", vars("3, 1")).unwrap();
        assert_eq!(config.read_weights, [3, 1]);

        let err = DatabaseConfig::from_vars("UNIT_WEIGHTS", vars("3,,1")).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "UNIT_WEIGHTS_DATABASE_READ_WEIGHTS"),
            "{err}"
        );
    }
}
