//! The TLS setting: one mode, root certificate and client certificate for every
//! driver, from the config's fields and from the URLs' usual parameters. The
//! URLs' parameters are taken out here, so that no driver sees a name it cannot
//! parse (tokio-postgres refuses `sslrootcert` and `verify-full`) or would apply
//! on its own, and each backend applies the one merged setting.

use super::DatabaseConfig;
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::target::SslMode;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::target::{ClientCert, TlsOptions};
use url::Url;

/// The TLS parameters one URL carried.
#[derive(Debug, Default)]
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(dead_code, reason = "read by the server backends only")
)]
pub(super) struct UrlTls {
    /// The URL's field: `url` or `read_urls[i]`.
    field: String,
    mode: Option<SslMode>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// mysql_async's own TLS parameters: only the async pools would read them.
const MYSQL_ASYNC_ONLY: [&str; 4] = [
    "require_ssl",
    "verify_ca",
    "verify_identity",
    "built_in_roots",
];

/// Takes the TLS parameters of `backend` out of `url` (named `field`), leaving the
/// rest of its query as it was written.
pub(super) fn take_from_url(url: &mut Url, backend: BackendKind, field: &str) -> Result<UrlTls> {
    let mut found = UrlTls {
        field: field.to_owned(),
        ..UrlTls::default()
    };
    let Some(query) = url.query() else {
        return Ok(found);
    };
    let mut kept = Vec::new();
    for raw in query.split('&') {
        let (k, v) = raw.split_once('=').unwrap_or((raw, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let (name, value) = (decode(k), decode(v));
        if backend == BackendKind::Mysql && MYSQL_ASYNC_ONLY.contains(&name.as_str()) {
            return Err(Error::config(
                field,
                format!(
                    "`{name}` is mysql_async's own parameter, which the blocking pools would not \
                     see: use `ssl-mode`, `ssl-ca`, `ssl-cert` and `ssl-key`, or the `ssl_*` settings"
                ),
            ));
        }
        let slot = match (backend, name.replace('-', "_").as_str()) {
            (BackendKind::Postgres, "sslmode") | (BackendKind::Mysql, "ssl_mode") => {
                found.mode = Some(SslMode::parse(&value).ok_or_else(|| {
                    Error::config(
                        field,
                        format!(
                            "`{name}={value}` is not a TLS mode this crate applies: use disable, \
                             prefer, require, verify-ca or verify-full"
                        ),
                    )
                })?);
                continue;
            }
            (BackendKind::Postgres, "sslrootcert") | (BackendKind::Mysql, "ssl_ca") => {
                &mut found.root_cert
            }
            (BackendKind::Postgres, "sslcert") | (BackendKind::Mysql, "ssl_cert") => {
                &mut found.cert
            }
            (BackendKind::Postgres, "sslkey") | (BackendKind::Mysql, "ssl_key") => &mut found.key,
            _ => {
                kept.push(raw);
                continue;
            }
        };
        *slot = Some(value);
    }
    let kept = kept.join("&");
    url.set_query(Some(kept.as_str()).filter(|q| !q.is_empty()));
    Ok(found)
}

/// SQLite has no connection to encrypt: a TLS setting there is a mistake.
pub(super) fn refuse_for_sqlite(config: &DatabaseConfig) -> Result<()> {
    let set = [
        ("ssl_mode", config.ssl_mode.is_some()),
        ("ssl_root_cert", config.ssl_root_cert.is_some()),
        ("ssl_cert", config.ssl_cert.is_some()),
        ("ssl_key", config.ssl_key.is_some()),
    ];
    match set.into_iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(Error::config(
            field,
            "SQLite opens a file, with no connection to encrypt",
        )),
        None => Ok(()),
    }
}

/// The one TLS setting: the config's fields and every URL's parameters, which
/// must agree, with the backend's default mode, and its files readable.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(super) fn tls_options(
    config: &DatabaseConfig,
    backend: BackendKind,
    urls: &[UrlTls],
) -> Result<TlsOptions> {
    let path =
        |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
    let mode = merge(
        "ssl_mode",
        config.ssl_mode,
        urls.iter().map(|u| (&u.field, u.mode)),
    )?;
    let root_cert = merge(
        "ssl_root_cert",
        path(&config.ssl_root_cert),
        urls.iter().map(|u| (&u.field, u.root_cert.clone())),
    )?;
    let cert = merge(
        "ssl_cert",
        path(&config.ssl_cert),
        urls.iter().map(|u| (&u.field, u.cert.clone())),
    )?;
    let key = merge(
        "ssl_key",
        path(&config.ssl_key),
        urls.iter().map(|u| (&u.field, u.key.clone())),
    )?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::config(
                "ssl_key",
                "not set, but ssl_cert is: give both",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::config(
                "ssl_cert",
                "not set, but ssl_key is: give both",
            ))
        }
    };
    for (field, file) in [
        ("ssl_root_cert", root_cert.as_deref()),
        ("ssl_cert", client.as_ref().map(|c| c.cert.as_str())),
        ("ssl_key", client.as_ref().map(|c| c.key.as_str())),
    ] {
        if let Some(file) = file {
            check_pem(field, file)?;
        }
    }
    if let Some(client) = &client {
        crate::backend::client_cert::pkcs12(client)
            .map_err(|bad| Error::config(bad.field, bad.reason))?;
    }
    let mode = match (mode, backend) {
        (Some(mode), _) => mode,
        (None, BackendKind::Postgres) => SslMode::Prefer,
        // MySQL drivers start no TLS by default: certificates without a mode
        // would be silently unused.
        (None, _) if root_cert.is_some() || client.is_some() => return Err(Error::config(
            "ssl_mode",
            "not set, but a certificate is: on MySQL no TLS is used unless ssl_mode asks for it",
        )),
        (None, _) => SslMode::Disable,
    };
    Ok(TlsOptions {
        mode,
        root_cert,
        client,
    })
}

/// One value from the config and the URLs, which must not disagree.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn merge<'a, T: PartialEq + std::fmt::Display>(
    field: &str,
    from_config: Option<T>,
    from_urls: impl Iterator<Item = (&'a String, Option<T>)>,
) -> Result<Option<T>> {
    let mut chosen = from_config.map(|v| (field.to_owned(), v));
    for (source, value) in from_urls {
        let Some(value) = value else { continue };
        match &chosen {
            Some((by, v)) if *v != value => {
                return Err(Error::config(
                    field,
                    format!(
                    "`{source}` says `{value}` but `{by}` says `{v}`: give it once, or the same \
                         everywhere"
                ),
                ))
            }
            Some(_) => {}
            None => chosen = Some((source.clone(), value)),
        }
    }
    Ok(chosen.map(|(_, v)| v))
}

/// A certificate or key file must be readable PEM now, not at the first connect.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn check_pem(field: &str, file: &str) -> Result<()> {
    let text = std::fs::read(file)
        .map_err(|e| Error::config(field, format!("`{file}` cannot be read: {e}")))?;
    if text.windows(11).any(|w| w == b"-----BEGIN ") {
        Ok(())
    } else {
        Err(Error::config(field, format!("`{file}` is not a PEM file")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(raw: &str, backend: BackendKind) -> (String, UrlTls) {
        let mut url = Url::parse(raw).unwrap();
        let found = take_from_url(&mut url, backend, "url").unwrap();
        (url.to_string(), found)
    }

    #[test]
    fn postgres_parameters_leave_the_url() {
        let (url, found) = take(
            "postgres://u:p@h/db?application_name=a%20b&sslmode=verify-full&sslrootcert=%2Fca.pem\
             &sslcert=c.pem&sslkey=k.pem",
            BackendKind::Postgres,
        );
        assert_eq!(url, "postgres://u:p@h/db?application_name=a%20b");
        assert_eq!(found.mode, Some(SslMode::VerifyFull));
        assert_eq!(found.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(found.cert.as_deref(), Some("c.pem"));
        assert_eq!(found.key.as_deref(), Some("k.pem"));
    }

    #[test]
    fn mysql_parameters_take_either_spelling() {
        let (url, found) = take(
            "mysql://u@h/db?ssl-mode=VERIFY_IDENTITY&ssl_ca=ca.pem&ssl-cert=c.pem&ssl_key=k.pem",
            BackendKind::Mysql,
        );
        assert_eq!(url, "mysql://u@h/db");
        assert_eq!(found.mode, Some(SslMode::VerifyFull));
        assert_eq!(found.root_cert.as_deref(), Some("ca.pem"));
        assert_eq!(found.cert.as_deref(), Some("c.pem"));
        assert_eq!(found.key.as_deref(), Some("k.pem"));
    }

    #[test]
    fn a_bad_mode_and_mysql_async_parameters_are_refused() {
        for (raw, backend) in [
            ("postgres://h/db?sslmode=allow", BackendKind::Postgres),
            ("mysql://h/db?require_ssl=true", BackendKind::Mysql),
        ] {
            let err = take_from_url(&mut Url::parse(raw).unwrap(), backend, "url").unwrap_err();
            assert!(
                matches!(err, Error::Config { ref field, .. } if field == "url"),
                "{err}"
            );
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_url_and_the_field_must_agree() {
        let (_, found) = take("postgres://h/db?sslmode=require", BackendKind::Postgres);
        let config = DatabaseConfig::new().ssl_mode(SslMode::VerifyFull);
        let err = tls_options(&config, BackendKind::Postgres, &[found]).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, ref reason }
                if field == "ssl_mode" && reason.contains("`url` says `require`")),
            "{err}"
        );
        let (_, found) = take("postgres://h/db?sslmode=require", BackendKind::Postgres);
        let config = DatabaseConfig::new().ssl_mode(SslMode::Require);
        let tls = tls_options(&config, BackendKind::Postgres, &[found]).unwrap();
        assert_eq!(tls.mode, SslMode::Require);
    }

    #[test]
    fn sqlite_refuses_tls_settings_by_name() {
        let err = refuse_for_sqlite(&DatabaseConfig::new().ssl_root_cert("ca.pem")).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "ssl_root_cert"),
            "{err}"
        );
        assert!(refuse_for_sqlite(&DatabaseConfig::new()).is_ok());
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_defaults_to_no_tls_and_refuses_a_certificate_without_a_mode() {
        let tls = tls_options(&DatabaseConfig::new(), BackendKind::Mysql, &[]).unwrap();
        assert_eq!(tls.mode, SslMode::Disable);
        // Any readable PEM file will do: the check is on the missing mode.
        let pem = std::env::temp_dir().join(format!("dbinstance-tls-{}.pem", std::process::id()));
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let config = DatabaseConfig::new().ssl_root_cert(&pem);
        let err = tls_options(&config, BackendKind::Mysql, &[]).unwrap_err();
        std::fs::remove_file(&pem).unwrap();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "ssl_mode"),
            "{err}"
        );
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_client_certificate_needs_its_key_and_files_must_be_pem() {
        let mut config = DatabaseConfig::new();
        config.ssl_cert = Some("cert.pem".into());
        let err = tls_options(&config, BackendKind::Postgres, &[]).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "ssl_key"),
            "{err}"
        );
        let config = DatabaseConfig::new().ssl_root_cert("/nonexistent/ca.pem");
        let err = tls_options(&config, BackendKind::Postgres, &[]).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "ssl_root_cert"),
            "{err}"
        );
    }
}
