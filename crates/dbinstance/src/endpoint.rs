//! Endpoints: where each pool connects, built from a config, with the
//! per-driver connection strings and a printable label that never holds a secret.

use crate::config::{BackendKind, DatabaseConfig, PoolSettings, SslMode};
use crate::error::{Error, Result};
use crate::id::{PoolKind, Role};
use crate::secret::Secret;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use url::Url;

/// Everything but unreserved characters is escaped in query values.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One server (or SQLite file) a pool connects to.
#[derive(Clone)]
pub struct Endpoint {
    /// `host:port/database` or the SQLite path: safe to print.
    pub(crate) label: String,
    address: Address,
    /// True for the primary, also when it serves reads because no replica is configured.
    pub(crate) is_primary: bool,
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<String>,
    application_name: String,
}

#[derive(Clone)]
enum Address {
    Server(Url),
    Sqlite { path: String, memory: bool },
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("label", &self.label)
            .field("is_primary", &self.is_primary)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// True for an in-memory SQLite database, which lives only while a connection is open.
    pub(crate) fn is_sqlite_memory(&self) -> bool {
        matches!(self.address, Address::Sqlite { memory: true, .. })
    }

    /// The string the driver of `kind` gets for a session of `role`.
    ///
    /// Read sessions on PostgreSQL are made read-only by a startup parameter, which
    /// costs no round trip; other backends do it in their connection setup.
    pub(crate) fn connection_string(
        &self,
        role: Role,
        kind: PoolKind,
        pool: &PoolSettings,
    ) -> Secret {
        match &self.address {
            Address::Sqlite { path, .. } => Secret::new(path.clone()),
            Address::Server(url) => {
                let mut url = url.clone();
                let existing: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let has = |key: &str| existing.iter().any(|(k, _)| k == key);
                let mut extra: Vec<(&str, String)> = Vec::new();
                match url.scheme() {
                    "postgres" | "postgresql" => {
                        if !has("application_name") {
                            extra.push(("application_name", self.application_name.clone()));
                        }
                        if !has("connect_timeout") {
                            // libpq takes whole seconds and treats 1 as 2.
                            let secs = pool.connect_timeout.as_secs_f64().ceil().max(2.0);
                            extra.push(("connect_timeout", format!("{secs}")));
                        }
                        if let (Some(mode), false) = (self.ssl_mode, has("sslmode")) {
                            extra.push(("sslmode", pg_ssl_mode(mode, kind).to_owned()));
                        }
                        if let (Some(cert), PoolKind::Sync) = (&self.ssl_root_cert, kind) {
                            extra.push(("sslrootcert", cert.clone()));
                        }
                        if role == Role::Read {
                            let options = existing
                                .iter()
                                .find(|(k, _)| k == "options")
                                .map(|(_, v)| format!("{v} "))
                                .unwrap_or_default();
                            extra.push((
                                "options",
                                format!("{options}-c default_transaction_read_only=on"),
                            ));
                        }
                    }
                    _ => {
                        if let (Some(mode), PoolKind::Sync, false) =
                            (self.ssl_mode, kind, has("ssl_mode"))
                        {
                            extra.push(("ssl_mode", mysql_ssl_mode(mode).to_owned()));
                            if let Some(cert) = &self.ssl_root_cert {
                                extra.push(("ssl_ca", cert.clone()));
                            }
                        }
                    }
                }
                if !extra.is_empty() {
                    // Encoded by hand: `url` writes spaces as `+`, which libpq reads literally.
                    let encode = |v: &str| utf8_percent_encode(v, QUERY_VALUE).to_string();
                    let query: Vec<String> = existing
                        .iter()
                        .filter(|(k, _)| k != "options" || role != Role::Read)
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
                        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                        .collect();
                    url.set_query(Some(&query.join("&")));
                }
                Secret::new(String::from(url))
            }
        }
    }

    /// OpenTelemetry's `server.address`, `server.port` and `db.namespace`.
    pub(crate) fn trace_attributes(&self) -> (String, u16, String) {
        match &self.address {
            Address::Server(url) => {
                let port = port_of(url);
                let database = url.path().trim_start_matches('/').to_owned();
                (
                    url.host_str().unwrap_or("localhost").to_owned(),
                    port,
                    database,
                )
            }
            Address::Sqlite { .. } => (String::new(), 0, self.label.clone()),
        }
    }

    /// The password as it stands in the URL and decoded, to scrub from driver messages.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let Address::Server(url) = &self.address else {
            return Vec::new();
        };
        url.password()
            .filter(|p| !p.is_empty())
            .map(|p| {
                let decoded = percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned();
                vec![p.to_owned(), decoded]
            })
            .unwrap_or_default()
    }

    /// The server's TLS mode, for the async PostgreSQL connector.
    #[cfg(feature = "postgres")]
    pub(crate) fn ssl(&self) -> (Option<SslMode>, Option<&str>) {
        (self.ssl_mode, self.ssl_root_cert.as_deref())
    }
}

fn pg_ssl_mode(mode: SslMode, kind: PoolKind) -> &'static str {
    match (mode, kind) {
        (SslMode::Disable, _) => "disable",
        (SslMode::Prefer, _) => "prefer",
        (SslMode::Require, _) => "require",
        // tokio-postgres knows only disable/prefer/require; verification is the connector's job.
        (SslMode::VerifyCa | SslMode::VerifyFull, PoolKind::Async) => "require",
        (SslMode::VerifyCa, PoolKind::Sync) => "verify-ca",
        (SslMode::VerifyFull, PoolKind::Sync) => "verify-full",
    }
}

fn mysql_ssl_mode(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "DISABLED",
        SslMode::Prefer => "PREFERRED",
        SslMode::Require => "REQUIRED",
        SslMode::VerifyCa => "VERIFY_CA",
        SslMode::VerifyFull => "VERIFY_IDENTITY",
    }
}

/// The backend a URL's scheme names.
pub(crate) fn scheme_backend(url: &str, field: &str) -> Result<BackendKind> {
    let scheme = match url.split_once("://") {
        Some((scheme, _)) => scheme,
        None if url.starts_with("sqlite:") || url.starts_with("file:") => "sqlite",
        // A bare path or `:memory:`.
        None => return Ok(BackendKind::Sqlite),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Ok(BackendKind::Postgres),
        "mysql" | "mariadb" => Ok(BackendKind::Mysql),
        "sqlite" | "file" => Ok(BackendKind::Sqlite),
        other => Err(Error::config(
            field,
            format!(
                "unknown scheme `{other}`: expected postgres://, mysql://, mariadb:// or sqlite://"
            ),
        )),
    }
}

/// A URL fit for a log line: the password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        Ok(parsed) => parsed.into(),
        Err(_) if !url.contains('@') => url.to_owned(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// The primary's endpoint and the read endpoints (the primary itself when no replica is set).
pub(crate) fn resolve(
    config: &DatabaseConfig,
    backend: BackendKind,
) -> Result<(Endpoint, Vec<Endpoint>)> {
    let base = Endpoint {
        label: String::new(),
        address: Address::Sqlite {
            path: String::new(),
            memory: false,
        },
        is_primary: true,
        ssl_mode: config.ssl_mode,
        ssl_root_cert: config
            .ssl_root_cert
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        application_name: config
            .application_name
            .clone()
            .unwrap_or_else(|| "dbinstance".to_owned()),
    };
    if backend == BackendKind::Sqlite {
        if !config.read_urls.is_empty() || !config.read_hosts.is_empty() {
            return Err(Error::config(
                "read_urls",
                "SQLite reads use read-only connections to the same file; replicas are not supported",
            ));
        }
        let raw = match (&config.url, &config.name) {
            (Some(url), _) => url.expose().to_owned(),
            (None, Some(name)) => name.clone(),
            (None, None) => return Err(Error::config("name", "the SQLite file path is not set")),
        };
        let (path, memory) = sqlite_path(&raw)?;
        let write = Endpoint {
            label: if memory {
                ":memory:".to_owned()
            } else {
                path.clone()
            },
            address: Address::Sqlite { path, memory },
            ..base
        };
        let read = Endpoint {
            is_primary: true,
            ..write.clone()
        };
        return Ok((write, vec![read]));
    }

    let primary_url = match &config.url {
        Some(url) => parse_server_url(url.expose(), "url", backend)?,
        None => url_from_parts(config, backend)?,
    };
    let write = server_endpoint(&base, primary_url.clone(), true)?;
    let mut reads = Vec::new();
    for (i, read) in config.read_urls.iter().enumerate() {
        let field = format!("read_urls[{i}]");
        let url = parse_server_url(read.expose(), &field, backend)?;
        reads.push(server_endpoint(&base, url, false)?);
    }
    for (i, host) in config.read_hosts.iter().enumerate() {
        let field = format!("read_hosts[{i}]");
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| Error::config(&field, format!("`{port}` is not a port")))?;
                (name, Some(port))
            }
            None => (host.as_str(), config.read_port),
        };
        if name.is_empty() {
            return Err(Error::config(&field, "the host is empty"));
        }
        let mut url = primary_url.clone();
        url.set_host(Some(name))
            .map_err(|e| Error::config(&field, format!("`{name}` is not a host: {e}")))?;
        if let Some(port) = port.or(primary_url.port()) {
            let _ = url.set_port(Some(port));
        }
        reads.push(server_endpoint(&base, url, false)?);
    }
    if reads.is_empty() {
        reads.push(write.clone());
    }
    Ok((write, reads))
}

/// The URL's port, or its backend's default.
fn port_of(url: &Url) -> u16 {
    let default = if url.scheme().starts_with("postgres") {
        5432
    } else {
        3306
    };
    url.port().unwrap_or(default)
}

fn server_endpoint(base: &Endpoint, url: Url, is_primary: bool) -> Result<Endpoint> {
    let host = url.host_str().unwrap_or("localhost");
    let port = port_of(&url);
    let label = format!("{host}:{port}{}", url.path());
    Ok(Endpoint {
        label,
        address: Address::Server(url),
        is_primary,
        ..base.clone()
    })
}

fn parse_server_url(raw: &str, field: &str, backend: BackendKind) -> Result<Url> {
    let kind = scheme_backend(raw, field)?;
    if kind != backend {
        return Err(Error::config(
            field,
            format!("is a {kind} URL but the primary is {backend}"),
        ));
    }
    let mut url =
        Url::parse(raw).map_err(|e| Error::config(field, format!("not a valid URL: {e}")))?;
    if url.port() == Some(0) {
        return Err(Error::config(field, "port must be between 1 and 65535"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::config(field, "has no host"));
    }
    if url.scheme() == "mariadb" {
        // Both MySQL drivers only know the `mysql` scheme.
        url = Url::parse(&format!("mysql{}", &raw[raw.find("://").unwrap_or(0)..]))
            .map_err(|e| Error::config(field, format!("not a valid URL: {e}")))?;
    }
    Ok(url)
}

fn url_from_parts(config: &DatabaseConfig, backend: BackendKind) -> Result<Url> {
    let (scheme, default_port) = match backend {
        BackendKind::Postgres => ("postgres", 5432),
        _ => ("mysql", 3306),
    };
    let host = config.host.as_deref().unwrap_or("127.0.0.1");
    let mut url = Url::parse(&format!("{scheme}://placeholder/"))
        .map_err(|e| Error::config("url", e.to_string()))?;
    url.set_host(Some(host))
        .map_err(|e| Error::config("host", format!("`{host}` is not a host: {e}")))?;
    let _ = url.set_port(Some(config.port.unwrap_or(default_port)));
    if let Some(user) = &config.user {
        url.set_username(user)
            .map_err(|()| Error::config("user", "cannot be set on this URL"))?;
    }
    if let Some(password) = &config.password {
        url.set_password(Some(password.expose()))
            .map_err(|()| Error::config("password", "cannot be set on this URL"))?;
    }
    let name = config
        .name
        .as_deref()
        .ok_or_else(|| Error::config("name", "the database name is not set"))?;
    url.path_segments_mut()
        .map_err(|()| Error::config("name", "cannot be set on this URL"))?
        .clear()
        .push(name);
    Ok(url)
}

/// The SQLite file (or in-memory database) a URL or path names, as diesel opens it.
fn sqlite_path(raw: &str) -> Result<(String, bool)> {
    let path = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite:"))
        .unwrap_or(raw);
    if path.is_empty() {
        return Err(Error::config("url", "the SQLite path is empty"));
    }
    if path == ":memory:" {
        // A shared `:memory:` needs a name; the memdb VFS (unlike a shared cache)
        // honours the busy timeout, and a unique name keeps instances apart.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        return Ok((
            format!("file:/dbinstance-{}-{n}?vfs=memdb", std::process::id()),
            true,
        ));
    }
    Ok((path.to_owned(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolSettings {
        crate::DatabaseConfig::from_url("postgres://h/db")
            .resolve(BackendKind::Postgres)
            .unwrap()
            .pool
    }

    #[test]
    fn read_role_gets_read_only_startup_option() {
        let config = crate::DatabaseConfig::from_url(
            "postgres://u:p@h:5432/db?options=-c%20search_path%3Dapp",
        );
        let (write, reads) = resolve(&config, BackendKind::Postgres).unwrap();
        let url = reads[0].connection_string(Role::Read, PoolKind::Async, &pool());
        assert!(
            url.expose()
                .contains("-c%20default_transaction_read_only%3Don"),
            "{}",
            url.expose()
        );
        assert!(url.expose().contains("search_path"), "{}", url.expose());
        let url = write.connection_string(Role::Write, PoolKind::Async, &pool());
        assert!(!url.expose().contains("read_only"));
        assert_eq!(write.label, "h:5432/db");
    }

    #[test]
    fn read_hosts_inherit_the_primary() {
        let config = crate::DatabaseConfig::new()
            .backend(BackendKind::Postgres)
            .user("u")
            .password("p@ss word")
            .name("db")
            .read_host("replica:5433")
            .read_host("replica2");
        let (write, reads) = resolve(&config, BackendKind::Postgres).unwrap();
        assert_eq!(write.label, "127.0.0.1:5432/db");
        assert_eq!(reads[0].label, "replica:5433/db");
        assert_eq!(reads[1].label, "replica2:5432/db");
        assert!(!reads[0].is_primary);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn a_replica_of_another_backend_is_refused() {
        let config = crate::DatabaseConfig::from_url("postgres://h/db").read_url("mysql://h/db");
        let err = resolve(&config, BackendKind::Postgres).unwrap_err();
        assert!(err.to_string().contains("read_urls[0]"), "{err}");
    }
}
