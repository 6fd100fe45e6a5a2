//! Careless and hostile configuration: every value outside its documented bound is an
//! `Error::Config` naming the field, nothing panics or aborts, and a password is
//! redacted wherever the URL carries it.

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Sqlite};
use std::time::Duration;

/// The field an `Error::Config` names, or a panic that shows what came instead.
fn config_field<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Config { field, .. }) => field,
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

fn pg() -> DatabaseConfig {
    DatabaseConfig::from_url("postgres://app:pw@127.0.0.1:5432/app")
}

fn validate(config: DatabaseConfig) -> Result<(), Error> {
    DatabaseInstance::<dbinstance::Postgres>::builder(config)
        .build_lazy()
        .map(drop)
}

#[test]
fn an_enormous_max_overflow_is_refused_not_an_abort() {
    assert_eq!(
        config_field(validate(pg().max_overflow(u32::MAX))),
        "max_overflow"
    );
    assert_eq!(
        config_field(validate(pg().pool_size(u32::MAX))),
        "pool_size"
    );
    let sqlite = DatabaseConfig::from_url(":memory:").max_overflow(4_000_000_000);
    assert_eq!(
        config_field(DatabaseInstance::<Sqlite>::builder(sqlite).build_lazy()),
        "max_overflow"
    );
}

#[test]
fn every_numeric_setting_outside_its_bound_names_its_field() {
    let huge = Duration::from_secs(365 * 24 * 3600);
    let cases: Vec<(&str, DatabaseConfig)> = vec![
        ("pool_size", pg().pool_size(0)),
        ("pool_size", pg().pool_size(10_001)),
        ("max_overflow", pg().pool_size(10).max_overflow(10_000)),
        ("min_idle", pg().pool_size(2).min_idle(3)),
        ("connect_timeout", pg().connect_timeout(Duration::ZERO)),
        ("connect_timeout", pg().connect_timeout(huge)),
        ("pool_timeout", pg().pool_timeout(Duration::ZERO)),
        ("pool_timeout", pg().pool_timeout(huge)),
        ("pool_recycle", pg().pool_recycle(Duration::ZERO)),
        ("idle_timeout", pg().idle_timeout(Duration::ZERO)),
        ("health_timeout", pg().health_timeout(Duration::ZERO)),
        ("health_timeout", pg().health_timeout(huge)),
        ("pre_ping_after", pg().pre_ping_after(huge)),
        (
            "utilization_warning",
            with(pg(), |c| c.utilization_warning = Some(0.0)),
        ),
        (
            "utilization_warning",
            with(pg(), |c| c.utilization_warning = Some(f64::NAN)),
        ),
        (
            "utilization_critical",
            with(pg(), |c| c.utilization_critical = Some(1.5)),
        ),
        (
            "utilization_critical",
            with(pg(), |c| {
                c.utilization_warning = Some(0.9);
                c.utilization_critical = Some(0.5);
            }),
        ),
        (
            "port",
            with(DatabaseConfig::new(), |c| {
                c.backend = Some(dbinstance::BackendKind::Postgres);
                c.port = Some(0);
            }),
        ),
        (
            "read_port",
            with(pg(), |c| {
                c.read_hosts = vec!["replica".into()];
                c.read_port = Some(0);
            }),
        ),
    ];
    for (field, config) in cases {
        assert_eq!(config_field(validate(config)), field);
    }
    let sqlite = with(DatabaseConfig::from_url(":memory:"), |c| {
        c.sqlite_busy_timeout_ms = Some(u32::MAX);
    });
    assert_eq!(
        config_field(DatabaseInstance::<Sqlite>::builder(sqlite).build_lazy()),
        "sqlite_busy_timeout_ms"
    );
}

fn with(mut config: DatabaseConfig, change: impl FnOnce(&mut DatabaseConfig)) -> DatabaseConfig {
    change(&mut config);
    config
}

#[test]
fn the_bounds_themselves_are_accepted() {
    let config = pg()
        .pool_size(10_000)
        .max_overflow(0)
        .connect_timeout(Duration::from_secs(3600))
        .pool_timeout(Duration::from_millis(1))
        .health_timeout(Duration::from_secs(3600));
    validate(config).unwrap();
}

#[test]
fn an_empty_host_is_refused_naming_host() {
    let config = DatabaseConfig::new()
        .backend(dbinstance::BackendKind::Postgres)
        .host("")
        .name("app");
    assert_eq!(config_field(validate(config)), "host");
    let config = DatabaseConfig::new()
        .backend(dbinstance::BackendKind::Postgres)
        .host("   ")
        .name("app");
    assert_eq!(config_field(validate(config)), "host");
    assert_eq!(
        config_field(validate(DatabaseConfig::from_url("postgres:///app"))),
        "url"
    );
}

#[test]
fn durations_that_cannot_be_durations_are_config_errors_from_every_source() {
    for text in ["-1", "NaN", "inf", "1e300"] {
        let toml = format!("url = \"postgres://h/db\"\npool_timeout = {text}\n");
        // TOML has no bare NaN/inf spelled that way for every value; what parses
        // must be refused, what does not parse must be a typed error too.
        let parsed = toml::from_str::<DatabaseConfig>(&toml);
        if let Ok(config) = parsed {
            assert_eq!(config_field(validate(config)), "pool_timeout", "{text}");
        }
        let json = format!("{{\"url\": \"postgres://h/db\", \"pool_timeout\": {text}}}");
        if let Ok(config) = serde_json::from_str::<DatabaseConfig>(&json) {
            assert_eq!(config_field(validate(config)), "pool_timeout", "{text}");
        }
    }
}

#[test]
fn a_variable_that_is_set_but_not_utf8_says_so() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let vars = [
        ("EDGES_DATABASE_URL", OsString::from("postgres://h/db")),
        (
            "EDGES_DATABASE_POOL_SIZE",
            OsString::from_vec(vec![0x31, 0xff, 0x32]),
        ),
    ];
    let err = DatabaseConfig::from_vars("EDGES", vars).unwrap_err();
    match &err {
        Error::Config { field, reason } => {
            assert_eq!(field, "EDGES_DATABASE_POOL_SIZE");
            assert!(reason.contains("UTF-8"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let vars = [(
        "EDGES_DATABASE_URL",
        OsString::from_vec(b"postgres://h/\xffdb".to_vec()),
    )];
    let err = DatabaseConfig::from_vars("EDGES", vars).unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, reason }
            if field == "EDGES_DATABASE_URL" && reason.contains("UTF-8")),
        "{err:?}"
    );
}

#[test]
fn a_password_in_the_query_string_is_redacted_everywhere() {
    let secret = "Qs3cr3tQ";
    let url = format!("postgres://app@127.0.0.1:1/app?password={secret}&connect_timeout=2");
    let config = DatabaseConfig::from_url(&url)
        .read_url(format!(
            "postgres://app@127.0.0.1:1/app?sslpassword={secret}"
        ))
        .connect_timeout(Duration::from_millis(300));
    assert!(!format!("{config:?}").contains(secret));
    // A server that refuses: the connect error names the pool, never the password.
    let err = DatabaseInstance::<dbinstance::Postgres>::builder(config.clone())
        .build()
        .unwrap_err();
    let mut texts = vec![format!("{err}"), format!("{err:?}")];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        texts.push(cause.to_string());
        source = cause.source();
    }
    for text in texts {
        assert!(!text.contains(secret), "leaked in: {text}");
    }
    let db = DatabaseInstance::<dbinstance::Postgres>::builder(config)
        .build_lazy()
        .unwrap();
    let report =
        serde_json::to_string(&db.health_report_with_timeout(Duration::from_millis(300))).unwrap();
    assert!(!report.contains(secret), "{report}");
    assert!(!format!("{db:?}").contains(secret));
}

#[test]
fn ipv6_read_hosts_are_understood() {
    for host in ["::1", "[::1]", "[::1]:5433"] {
        let config = pg().read_host(host);
        validate(config).unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    assert_eq!(
        config_field(validate(pg().read_host("[::1]:0"))),
        "read_hosts[0]"
    );
    assert_eq!(
        config_field(validate(pg().read_host("[::1"))),
        "read_hosts[0]"
    );
}

#[test]
fn sqlite_settings_on_a_server_are_refused_by_name() {
    assert_eq!(
        config_field(validate(
            pg().sqlite_synchronous(dbinstance::SqliteSynchronous::Full)
        )),
        "sqlite_synchronous"
    );
    assert_eq!(
        config_field(validate(pg().sqlite_wal_autocheckpoint(100))),
        "sqlite_wal_autocheckpoint"
    );
}
