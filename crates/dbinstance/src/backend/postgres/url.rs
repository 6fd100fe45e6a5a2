//! PostgreSQL connection strings: the application name, libpq's connect timeout,
//! the TLS mode, for read pools read-only mode as a startup parameter, which
//! costs no round trip, and the hosts of a primary that may move.

use super::tls;
use crate::backend::query::Query;
use crate::id::{PoolKind, Role};
use crate::secret::Secret;
use crate::target::ConnectOptions;
use url::Url;

/// The string libpq (`Sync`) or tokio-postgres (`Async`) gets for a pool of `role`.
/// `more_hosts` follow the URL's host; a write pool then asks for the first host
/// that accepts writes (`target_session_attrs=read-write`), so that after a
/// failover its new connections find the new primary.
pub(super) fn connection_string(
    url: &Url,
    more_hosts: &[String],
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
    if !more_hosts.is_empty() && role == Role::Write && !query.has("target_session_attrs") {
        query
            .extra
            .push(("target_session_attrs", "read-write".to_owned()));
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
    let single = String::from(query.apply(url.clone()));
    Secret::new(with_hosts(single, more_hosts))
}

/// `scheme://user@host:port/...` with `,more` after `host:port`.
fn with_hosts(single: String, more_hosts: &[String]) -> String {
    if more_hosts.is_empty() {
        return single;
    }
    let start = single.find("://").map_or(0, |i| i + 3);
    let end = single[start..]
        .find(['/', '?', '#'])
        .map_or(single.len(), |i| start + i);
    format!(
        "{},{}{}",
        &single[..end],
        more_hosts.join(","),
        &single[end..]
    )
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
        let read = connection_string(&url, &[], Role::Read, PoolKind::Async, &options());
        assert!(
            read.expose()
                .contains("-c%20default_transaction_read_only%3Don"),
            "{}",
            read.expose()
        );
        assert!(read.expose().contains("search_path"), "{}", read.expose());
        let write = connection_string(&url, &[], Role::Write, PoolKind::Async, &options());
        assert!(!write.expose().contains("read_only"));
        assert!(!write.expose().contains("target_session_attrs"));
    }

    #[test]
    fn several_hosts_follow_the_first_and_writes_ask_for_the_primary() {
        let url = Url::parse("postgres://u:p@a:5432/db").unwrap();
        let more = ["b:5433".to_owned()];
        let write = connection_string(&url, &more, Role::Write, PoolKind::Sync, &options());
        let write = write.expose();
        assert!(
            write.starts_with("postgres://u:p@a:5432,b:5433/db?"),
            "{write}"
        );
        assert!(write.contains("target_session_attrs=read-write"), "{write}");
        let read = connection_string(&url, &more, Role::Read, PoolKind::Sync, &options());
        assert!(
            !read.expose().contains("target_session_attrs"),
            "{}",
            read.expose()
        );
    }
}
