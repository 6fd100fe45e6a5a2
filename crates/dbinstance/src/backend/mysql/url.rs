//! MySQL connection strings: the TLS parameters of the blocking driver, and the
//! modes it cannot be trusted with.

use crate::backend::query::Query;
use crate::id::PoolKind;
use crate::secret::Secret;
use crate::target::{ConnectOptions, SslMode, TlsOptions};
use url::Url;

/// The string libmysqlclient or libmariadb (`Sync`) or mysql_async (`Async`,
/// whose TLS is set on its options instead) gets.
pub(super) fn connection_string(url: &Url, kind: PoolKind, options: &ConnectOptions) -> Secret {
    let mut query = Query::of(url);
    if kind == PoolKind::Sync {
        query.extra.extend(blocking_tls(&options.tls));
    }
    Secret::new(String::from(query.apply(url.clone())))
}

/// diesel's TLS parameters. libmysqlclient applies `ssl_mode` as MySQL documents
/// it (and its default is `PREFERRED`, so `DISABLED` is sent too). libmariadb has
/// no such option: diesel's bindings would hand the value over as
/// `MYSQL_SERVER_PUBLIC_KEY`, so it is not sent there. libmariadb starts TLS when
/// given a certificate file, checking the chain against `ssl_ca` but not the host
/// name, and stays in clear text with a server without TLS (measured):
/// [`blocking_refusal`] keeps the modes that would need more from it.
fn blocking_tls(tls: &TlsOptions) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    if mysqlclient_sys::SUPPORTS_MYSQL_SSL_MODE {
        params.push(("ssl_mode", ssl_mode(tls).to_owned()));
    }
    if tls.mode == SslMode::Disable {
        return params;
    }
    if let Some(root) = &tls.root_cert {
        params.push(("ssl_ca", root.clone()));
    }
    if let Some(client) = &tls.client {
        params.push(("ssl_cert", client.cert.clone()));
        params.push(("ssl_key", client.key.clone()));
    }
    params
}

/// libmysqlclient's name for the mode; `require` with a root certificate is
/// checked as `verify-ca`, as on every other driver.
fn ssl_mode(tls: &TlsOptions) -> &'static str {
    match tls.mode {
        SslMode::Disable => "DISABLED",
        SslMode::Prefer => "PREFERRED",
        SslMode::Require if tls.verifies_chain() => "VERIFY_CA",
        SslMode::Require => "REQUIRED",
        SslMode::VerifyCa => "VERIFY_CA",
        SslMode::VerifyFull => "VERIFY_IDENTITY",
    }
}

/// Why the blocking pools must not connect with `tls`: with libmariadb, every
/// mode that promises TLS, and `prefer` without a certificate to start it with.
pub(super) fn blocking_refusal(tls: &TlsOptions) -> Option<String> {
    if mysqlclient_sys::SUPPORTS_MYSQL_SSL_MODE {
        return None;
    }
    const DRIVER: &str = "the blocking MySQL driver (diesel on libmariadb)";
    match tls.mode {
        SslMode::Disable => None,
        SslMode::Prefer if tls.root_cert.is_some() || tls.client.is_some() => None,
        SslMode::Prefer => Some(format!(
            "`prefer` cannot be honoured by {DRIVER}, which starts TLS only when given \
             ssl_root_cert or a client certificate"
        )),
        mode => Some(format!(
            "`{mode}` cannot be honoured by {DRIVER}, which connects in clear text to a \
             server without TLS and does not check the host name; the async pools honour it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::ClientCert;

    fn tls(mode: SslMode, root: bool) -> TlsOptions {
        TlsOptions {
            mode,
            root_cert: root.then(|| "/ca.pem".to_owned()),
            client: Some(ClientCert {
                cert: "/c.pem".into(),
                key: "/k.pem".into(),
            }),
        }
    }

    #[test]
    fn the_blocking_driver_gets_the_files_unless_tls_is_off() {
        let params = blocking_tls(&tls(SslMode::VerifyCa, true));
        for name in ["ssl_ca", "ssl_cert", "ssl_key"] {
            assert!(
                params.iter().any(|(k, _)| *k == name),
                "{name} in {params:?}"
            );
        }
        let off = blocking_tls(&tls(SslMode::Disable, true));
        assert!(off.iter().all(|(k, _)| *k == "ssl_mode"), "{off:?}");
        assert_eq!(ssl_mode(&tls(SslMode::Require, true)), "VERIFY_CA");
        assert_eq!(ssl_mode(&tls(SslMode::Require, false)), "REQUIRED");
    }

    #[test]
    fn libmariadb_is_not_trusted_with_a_mode_that_promises_tls() {
        if mysqlclient_sys::SUPPORTS_MYSQL_SSL_MODE {
            return;
        }
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let reason = blocking_refusal(&tls(mode, true)).unwrap();
            assert!(reason.contains(mode.as_str()), "{reason}");
        }
        assert!(blocking_refusal(&tls(SslMode::Prefer, true)).is_none());
        let mut bare = tls(SslMode::Prefer, false);
        bare.client = None;
        assert!(blocking_refusal(&bare).is_some());
        assert!(blocking_refusal(&tls(SslMode::Disable, false)).is_none());
    }
}
