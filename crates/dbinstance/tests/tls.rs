//! TLS against the test bed's servers that accept only TLS (PostgreSQL 5436,
//! MariaDB 3309, certificates from the test bed's own CA, naming 127.0.0.1 but
//! not 127.0.0.2) and servers without TLS (the PostgreSQL cluster on 5435, the
//! system MariaDB), for the blocking and the async drivers of both backends:
//! verify-full passes with the right host name and fails with a wrong one, with
//! an unknown CA and against a server without TLS; `require` refuses plain text;
//! a client certificate is accepted where the server demands one, and its lack
//! refused. Failures are typed and carry no password. Blocking MySQL links
//! libmariadb here, which cannot be trusted with a mode that promises TLS: those
//! are refused with `Error::Config` before anything connects.

mod common;

use common::server_url;
use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Mysql, Postgres, Role, SslMode};
use diesel::sql_types::Text;
use std::time::Duration;

/// The TLS servers' users' password, which no error may show.
const PASSWORD: &str = "dbi-tls-pw";

/// `tls <user>` or `plain <user>`: whether the session runs over TLS, and as whom.
const PG_SESSION: &str = "(SELECT CASE WHEN ssl THEN 'tls ' ELSE 'plain ' END || current_user \
                          FROM pg_stat_ssl WHERE pid = pg_backend_pid())";
const MYSQL_SESSION: &str =
    "CONCAT(IF((SELECT variable_value FROM information_schema.session_status \
                             WHERE variable_name = 'Ssl_cipher') <> '', 'tls ', 'plain '), \
                             SUBSTRING_INDEX(CURRENT_USER(), '@', 1))";

/// Builds an instance as each family would (connecting once) and reports its session.
macro_rules! session {
    ($blocking:ident, $async_fn:ident, $backend:ty, $sql:expr) => {
        fn $blocking(config: DatabaseConfig) -> Result<String, Error> {
            let db = DatabaseInstance::<$backend>::builder(config).build()?;
            let mut session = db.get_db_cm(Role::Write)?;
            diesel::RunQueryDsl::get_result(
                diesel::select(diesel::dsl::sql::<Text>($sql)),
                &mut *session,
            )
            .map_err(Error::from)
        }

        fn $async_fn(config: DatabaseConfig) -> Result<String, Error> {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let db = DatabaseInstance::<$backend>::builder(config)
                    .build_async()
                    .await?;
                let mut session = db.async_get_db_cm(Role::Write).await?;
                diesel_async::RunQueryDsl::get_result(
                    diesel::select(diesel::dsl::sql::<Text>($sql)),
                    &mut *session,
                )
                .await
                .map_err(Error::from)
            })
        }
    };
}

session!(pg_blocking, pg_async, Postgres, PG_SESSION);
session!(mysql_blocking, mysql_async, Mysql, MYSQL_SESSION);

type Probe = fn(DatabaseConfig) -> Result<String, Error>;

/// Paths the test bed exports: the CA, another CA, the client certificate and key.
struct Files {
    ca: String,
    wrong_ca: String,
    cert: String,
    key: String,
}

fn files() -> Option<Files> {
    Some(Files {
        ca: server_url("DBI_TLS_CA")?,
        wrong_ca: server_url("DBI_TLS_WRONG_CA")?,
        cert: server_url("DBI_TLS_CLIENT_CERT")?,
        key: server_url("DBI_TLS_CLIENT_KEY")?,
    })
}

/// Short waits: every failure here is immediate.
fn config(url: &str) -> DatabaseConfig {
    DatabaseConfig::from_url(url)
        .connect_timeout(Duration::from_secs(3))
        .pool_timeout(Duration::from_secs(5))
        .min_idle(0)
}

/// The same server under a name its certificate does not list.
fn wrong_host(url: &str) -> String {
    url.replace("127.0.0.1", "127.0.0.2")
}

/// A connect failure naming the pool, with no password anywhere in it.
fn assert_connect_error(result: Result<String, Error>, what: &str) {
    let err = match result {
        Err(err) => err,
        Ok(session) => panic!("{what}: connected ({session})"),
    };
    assert!(matches!(err, Error::Connect { .. }), "{what}: {err:?}");
    assert_no_password(&err, what);
}

fn assert_no_password(err: &Error, what: &str) {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(" {cause}"));
        source = cause.source();
    }
    assert!(!text.contains(PASSWORD), "{what}: {text}");
}

fn assert_session(result: Result<String, Error>, expected: &str, what: &str) {
    match result {
        Ok(session) => assert_eq!(session, expected, "{what}"),
        Err(err) => panic!("{what}: {err:?} ({})", chain(&err)),
    }
}

fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The families that honour every mode: both PostgreSQL drivers, async MySQL.
fn verifying_drivers() -> Vec<(&'static str, Probe, Option<String>)> {
    vec![
        (
            "blocking PostgreSQL",
            pg_blocking,
            server_url("DBI_PG_TLS_URL"),
        ),
        ("async PostgreSQL", pg_async, server_url("DBI_PG_TLS_URL")),
        ("async MySQL", mysql_async, server_url("DBI_MYSQL_TLS_URL")),
    ]
}

#[test]
fn verify_full_passes_with_the_right_host_name() {
    let Some(f) = files() else { return };
    for (driver, probe, url) in verifying_drivers() {
        let Some(url) = url else { return };
        let tls = config(&url)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(&f.ca);
        assert_session(probe(tls), "tls dbi_tls", driver);
    }
}

#[test]
fn verify_full_fails_with_a_wrong_host_name_but_verify_ca_does_not_check_it() {
    let Some(f) = files() else { return };
    for (driver, probe, url) in verifying_drivers() {
        let Some(url) = url else { return };
        let full = config(&wrong_host(&url))
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(&f.ca);
        assert_connect_error(probe(full), driver);
        let ca = config(&wrong_host(&url))
            .ssl_mode(SslMode::VerifyCa)
            .ssl_root_cert(&f.ca);
        assert_session(probe(ca), "tls dbi_tls", driver);
    }
}

#[test]
fn verify_full_fails_with_an_unknown_ca() {
    let Some(f) = files() else { return };
    for (driver, probe, url) in verifying_drivers() {
        let Some(url) = url else { return };
        for mode in [SslMode::VerifyFull, SslMode::VerifyCa, SslMode::Require] {
            let tls = config(&url).ssl_mode(mode).ssl_root_cert(&f.wrong_ca);
            assert_connect_error(probe(tls), &format!("{driver}, {mode}"));
        }
    }
}

/// The servers without TLS: the PostgreSQL cluster on 5435 and the system MariaDB.
fn plain_servers() -> Vec<(&'static str, Probe, Option<String>, &'static str)> {
    vec![
        (
            "blocking PostgreSQL",
            pg_blocking,
            server_url("DBI_PG_VICTIM_URL"),
            "plain postgres",
        ),
        (
            "async PostgreSQL",
            pg_async,
            server_url("DBI_PG_VICTIM_URL"),
            "plain postgres",
        ),
        (
            "async MySQL",
            mysql_async,
            server_url("DBI_MYSQL_URL"),
            "plain root",
        ),
    ]
}

#[test]
fn verify_full_and_require_refuse_a_server_without_tls_which_prefer_accepts() {
    let Some(f) = files() else { return };
    for (driver, probe, url, plain) in plain_servers() {
        let Some(url) = url else { return };
        let full = config(&url)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(&f.ca);
        assert_connect_error(probe(full), &format!("{driver}, verify-full"));
        let require = config(&url).ssl_mode(SslMode::Require);
        assert_connect_error(probe(require), &format!("{driver}, require"));
        let prefer = config(&url).ssl_mode(SslMode::Prefer);
        assert_session(probe(prefer), plain, &format!("{driver}, prefer"));
    }
}

#[test]
fn require_and_prefer_use_tls_without_checking_the_certificate() {
    if files().is_none() {
        return;
    }
    for (driver, probe, url) in verifying_drivers() {
        let Some(url) = url else { return };
        for mode in [SslMode::Require, SslMode::Prefer] {
            let tls = config(&wrong_host(&url)).ssl_mode(mode);
            assert_session(probe(tls), "tls dbi_tls", &format!("{driver}, {mode}"));
        }
    }
}

#[test]
fn a_client_certificate_is_accepted_where_the_server_demands_one() {
    let Some(f) = files() else { return };
    for (driver, probe, url) in [
        (
            "blocking PostgreSQL",
            pg_blocking as Probe,
            server_url("DBI_PG_TLS_CERT_URL"),
        ),
        (
            "async PostgreSQL",
            pg_async,
            server_url("DBI_PG_TLS_CERT_URL"),
        ),
        (
            "async MySQL",
            mysql_async,
            server_url("DBI_MYSQL_TLS_CERT_URL"),
        ),
    ] {
        let Some(url) = url else { return };
        let verified = config(&url)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(&f.ca);
        let with_cert = verified.clone().ssl_client_cert(&f.cert, &f.key);
        assert_session(probe(with_cert), "tls dbi_cert", driver);
        assert_connect_error(probe(verified), &format!("{driver}, no certificate"));
    }
}

#[test]
fn the_urls_usual_parameters_set_tls_and_never_reach_a_driver_that_cannot_parse_them() {
    let Some(f) = files() else { return };
    let (Some(pg), Some(my)) = (
        server_url("DBI_PG_TLS_URL"),
        server_url("DBI_MYSQL_TLS_URL"),
    ) else {
        return;
    };
    // tokio-postgres alone refuses `sslrootcert`, `sslcert` and `verify-full`.
    let pg_cert = server_url("DBI_PG_TLS_CERT_URL").unwrap();
    let pg_url = format!(
        "{pg_cert}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        f.ca, f.cert, f.key
    );
    assert_session(pg_blocking(config(&pg_url)), "tls dbi_cert", "blocking");
    assert_session(pg_async(config(&pg_url)), "tls dbi_cert", "async");
    let required = format!("{pg}?sslmode=require");
    assert_session(pg_async(config(&required)), "tls dbi_tls", "async require");
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        wrong_host(&pg),
        f.ca
    );
    assert_connect_error(pg_async(config(&wrong)), "async, wrong host from the URL");

    let my_url = format!("{my}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}", f.ca);
    assert_session(mysql_async(config(&my_url)), "tls dbi_tls", "async MySQL");
    let my_wrong = format!(
        "{}?ssl_mode=verify_identity&ssl_ca={}",
        wrong_host(&my),
        f.ca
    );
    assert_connect_error(mysql_async(config(&my_wrong)), "async MySQL, wrong host");
}

#[test]
fn a_url_and_the_setting_that_disagree_are_refused_by_name() {
    let err = DatabaseInstance::<Postgres>::builder(
        DatabaseConfig::from_url(format!("postgres://u:{PASSWORD}@h/db?sslmode=require"))
            .ssl_mode(SslMode::VerifyFull),
    )
    .build_lazy()
    .err()
    .unwrap();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "ssl_mode"),
        "{err}"
    );
    assert_no_password(&err, "conflict");
}

/// libmariadb (the blocking MySQL driver on Debian) ignores diesel's `ssl_mode`,
/// connects in clear text to a server without TLS even when given a CA, and does
/// not check the host name: modes that promise TLS are refused before any connect.
#[test]
fn blocking_mysql_on_libmariadb_refuses_what_it_cannot_honour() {
    let Some(f) = files() else { return };
    let Some(url) = server_url("DBI_MYSQL_TLS_URL") else {
        return;
    };
    if mysqlclient_sys::SUPPORTS_MYSQL_SSL_MODE {
        // libmysqlclient applies every mode itself.
        let tls = config(&url)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(&f.ca);
        assert_session(mysql_blocking(tls), "tls dbi_tls", "libmysqlclient");
        return;
    }
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let tls = config(&url).ssl_mode(mode).ssl_root_cert(&f.ca);
        match mysql_blocking(tls) {
            Err(Error::Config { field, reason }) => {
                assert_eq!(field, "ssl_mode");
                assert!(reason.contains("libmariadb"), "{reason}");
                assert!(reason.contains(mode.as_str()), "{reason}");
            }
            other => panic!("{mode}: {other:?}"),
        }
        // The async pools of the same instance honour it.
        let tls = config(&url).ssl_mode(mode).ssl_root_cert(&f.ca);
        assert_session(mysql_async(tls), "tls dbi_tls", &format!("async, {mode}"));
    }
    let bare = mysql_blocking(config(&url).ssl_mode(SslMode::Prefer));
    assert!(
        matches!(bare, Err(Error::Config { ref field, .. }) if field == "ssl_mode"),
        "{bare:?}"
    );
    // `prefer` with a certificate: TLS where offered, its chain checked.
    let prefer = config(&url).ssl_mode(SslMode::Prefer).ssl_root_cert(&f.ca);
    assert_session(mysql_blocking(prefer), "tls dbi_tls", "blocking prefer");
    let unknown = config(&url)
        .ssl_mode(SslMode::Prefer)
        .ssl_root_cert(&f.wrong_ca);
    assert_connect_error(mysql_blocking(unknown), "blocking prefer, unknown CA");
    let cert_url = server_url("DBI_MYSQL_TLS_CERT_URL").unwrap();
    let client = config(&cert_url)
        .ssl_mode(SslMode::Prefer)
        .ssl_root_cert(&f.ca)
        .ssl_client_cert(&f.cert, &f.key);
    assert_session(
        mysql_blocking(client),
        "tls dbi_cert",
        "blocking client cert",
    );
}

#[test]
fn tls_settings_come_from_the_environment_by_name() {
    let config = DatabaseConfig::from_vars(
        "",
        [
            ("DATABASE_URL", "mysql://u@h/db"),
            ("DATABASE_SSL_MODE", "VERIFY_IDENTITY"),
            ("DATABASE_SSL_ROOT_CERT", "/ca.pem"),
            ("DATABASE_SSL_CERT", "/c.pem"),
            ("DATABASE_SSL_KEY", "/k.pem"),
        ],
    )
    .unwrap();
    assert_eq!(config.ssl_mode, Some(SslMode::VerifyFull));
    assert_eq!(config.ssl_root_cert.as_deref(), Some("/ca.pem".as_ref()));
    assert_eq!(config.ssl_cert.as_deref(), Some("/c.pem".as_ref()));
    assert_eq!(config.ssl_key.as_deref(), Some("/k.pem".as_ref()));
    let err = DatabaseConfig::from_vars(
        "",
        [
            ("DATABASE_URL", "mysql://u@h/db"),
            ("DATABASE_SSL_MODE", "allow"),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "DATABASE_SSL_MODE"),
        "{err}"
    );
    let toml: DatabaseConfig = toml::from_str(
        r#"
        url = "postgres://h/db"
        ssl_mode = "verify-full"
        ssl_root_cert = "/ca.pem"
        ssl_cert = "/c.pem"
        ssl_key = "/k.pem"
        "#,
    )
    .unwrap();
    assert_eq!(toml.ssl_key.as_deref(), Some("/k.pem".as_ref()));
}

#[test]
fn a_client_key_that_is_not_the_certificates_is_refused_at_build_by_name() {
    let Some(f) = files() else { return };
    for (cert, key, field) in [
        (&f.cert, &f.ca, "ssl_key"),
        (&f.ca, &f.key, "ssl_key"),
        (&f.key, &f.key, "ssl_cert"),
    ] {
        let config = DatabaseConfig::from_url(format!("postgres://u:{PASSWORD}@h/db"))
            .ssl_mode(SslMode::VerifyFull)
            .ssl_client_cert(cert, key);
        match DatabaseInstance::<Postgres>::builder(config).build_lazy() {
            Err(err @ Error::Config { .. }) => {
                assert!(
                    matches!(err, Error::Config { field: ref got, .. } if got == field),
                    "{cert} + {key}: {err}"
                );
                assert_no_password(&err, field);
            }
            other => panic!("{cert} + {key}: {:?}", other.map(drop)),
        }
    }
}
