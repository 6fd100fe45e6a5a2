//! PostgreSQL connection strings: the application name, libpq's connect timeout,
//! the TLS mode and, for read pools, read-only mode as a startup parameter, which
//! costs no round trip.

use super::tls;
use crate::backend::query::Query;
use crate::id::{PoolKind, Role};
use crate::secret::Secret;
use crate::target::ConnectOptions;
use url::Url;

/// The string libpq (`Sync`) or tokio-postgres (`Async`) gets for a pool of `role`.
pub(super) fn connection_string(
    url: &Url,
    role: Role,
    kind: PoolKind,
    options: &ConnectOptions,
) -> Secret {
    let mut query = Query::of(url);
    if !query.has("application_name") {
        query
            .extra
            .push(("application_name", options.application_name.clone()));
    }
    if !query.has("connect_timeout") {
        // libpq takes whole seconds and treats 1 as 2.
        let secs = options.connect_timeout.as_secs_f64().ceil().max(2.0);
        query.extra.push(("connect_timeout", format!("{secs}")));
    }
    if let (Some(mode), false) = (options.tls.mode, query.has("sslmode")) {
        query
            .extra
            .push(("sslmode", tls::url_mode(mode, kind).to_owned()));
    }
    if let (Some(cert), PoolKind::Sync) = (&options.tls.root_cert, kind) {
        query.extra.push(("sslrootcert", cert.clone()));
    }
    match role {
        Role::Read => {
            let options = query
                .get("options")
                .map(|v| format!("{v} "))
                .unwrap_or_default();
            query.replace(
                "options",
                format!("{options}-c default_transaction_read_only=on"),
            );
        }
        Role::Write => {}
    }
    Secret::new(String::from(query.apply(url.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::TlsOptions;
    use std::time::Duration;

    fn options() -> ConnectOptions {
        ConnectOptions {
            application_name: "dbinstance".into(),
            connect_timeout: Duration::from_secs(5),
            #[cfg(feature = "sqlite")]
            sqlite_busy_timeout_ms: 5000,
            tls: TlsOptions::default(),
        }
    }

    #[test]
    fn read_role_gets_read_only_startup_option() {
        let url = Url::parse("postgres://u:p@h:5432/db?options=-c%20search_path%3Dapp").unwrap();
        let read = connection_string(&url, Role::Read, PoolKind::Async, &options());
        assert!(
            read.expose()
                .contains("-c%20default_transaction_read_only%3Don"),
            "{}",
            read.expose()
        );
        assert!(read.expose().contains("search_path"), "{}", read.expose());
        let write = connection_string(&url, Role::Write, PoolKind::Async, &options());
        assert!(!write.expose().contains("read_only"));
    }
}
