//! PostgreSQL connection strings: the application name, libpq's connect timeout,
//! the TLS mode, the hosts of a primary that may move, and as startup parameters,
//! which cost no round trip, read-only mode for read pools and the session
//! timeouts. Behind a transaction pooler there are no such parameters: read
//! sessions begin read-only transactions instead, and the plan refuses timeouts.

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
    // The plan took the URL's own TLS parameters out into `options.tls`.
    let tls = &options.tls;
    query
        .extra
        .push(("sslmode", tls::url_mode(tls.mode, kind).to_owned()));
    if kind == PoolKind::Sync {
        if let Some(cert) = &tls.root_cert {
            query.extra.push(("sslrootcert", cert.clone()));
        }
        if let Some(client) = &tls.client {
            query.extra.push(("sslcert", client.cert.clone()));
            query.extra.push(("sslkey", client.key.clone()));
        }
    }
    if !more_hosts.is_empty() && role == Role::Write && !query.has("target_session_attrs") {
        query
            .extra
            .push(("target_session_attrs", "read-write".to_owned()));
    }
    let mut settings = Vec::new();
    if role == Role::Read && !options.transaction_pooling {
        settings.push("default_transaction_read_only=on".to_owned());
    }
    let timeouts = &options.session_timeouts;
    for (name, value) in [
        ("statement_timeout", timeouts.statement),
        ("lock_timeout", timeouts.lock),
        (
            "idle_in_transaction_session_timeout",
            timeouts.idle_in_transaction,
        ),
    ] {
        if let Some(value) = value {
            // Milliseconds, rounded up: a bound of 1.5 ms must not become none (0).
            let ms = value.as_micros().div_ceil(1000);
            settings.push(format!("{name}={ms}"));
        }
    }
    if !settings.is_empty() {
        let mut all: Vec<String> = query
            .get("options")
            .map(str::to_owned)
            .into_iter()
            .collect();
        all.extend(settings.iter().map(|setting| format!("-c {setting}")));
        query.replace("options", all.join(" "));
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
    use crate::target::{SessionTimeouts, SslMode, TlsOptions};
    use std::time::Duration;

    fn options() -> ConnectOptions {
        ConnectOptions {
            application_name: "dbinstance".into(),
            connect_timeout: Duration::from_secs(5),
            transaction_pooling: false,
            #[cfg(feature = "sqlite")]
            sqlite_busy_timeout_ms: 5000,
            #[cfg(feature = "sqlite")]
            sqlite_synchronous: crate::target::SqliteSynchronous::Normal,
            #[cfg(feature = "sqlite")]
            sqlite_wal_autocheckpoint: None,
            tls: TlsOptions {
                mode: SslMode::Prefer,
                root_cert: None,
                client: None,
            },
            session_timeouts: SessionTimeouts::default(),
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
    fn session_timeouts_are_startup_parameters_in_milliseconds() {
        let url = Url::parse("postgres://u@h:5432/db?options=-c%20search_path%3Dapp").unwrap();
        let mut options = options();
        options.session_timeouts = SessionTimeouts {
            statement: Some(Duration::from_millis(1500)),
            lock: Some(Duration::from_micros(1)),
            idle_in_transaction: None,
        };
        let write = connection_string(&url, &[], Role::Write, PoolKind::Sync, &options);
        let write = write.expose();
        for part in [
            "search_path",
            "statement_timeout%3D1500",
            "lock_timeout%3D1",
        ] {
            assert!(write.contains(part), "{part} in {write}");
        }
        assert!(!write.contains("idle_in_transaction"), "{write}");
        assert!(!write.contains("read_only"), "{write}");
    }

    #[test]
    fn behind_a_transaction_pooler_reads_send_no_startup_option() {
        let url = Url::parse("postgres://u@h:6432/db").unwrap();
        let options = ConnectOptions {
            transaction_pooling: true,
            ..options()
        };
        let read = connection_string(&url, &[], Role::Read, PoolKind::Sync, &options);
        assert!(!read.expose().contains("options"), "{}", read.expose());
        assert!(
            read.expose().contains("application_name"),
            "{}",
            read.expose()
        );
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
