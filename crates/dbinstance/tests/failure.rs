//! Failures are fast, typed and name the pool; no password reaches an error, a
//! `Debug` or a log line.

mod common;

use dbinstance::{
    BackendKind, DatabaseConfig, DatabaseInstance, Error, PoolKind, Postgres, Role, Sqlite,
};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "Sup3r-Secret_pw";

#[test]
fn a_server_that_is_down_fails_the_build_at_once() {
    let config = DatabaseConfig::from_url(format!("postgres://app:{SECRET}@127.0.0.1:1/app"))
        .connect_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let err = DatabaseInstance::<Postgres>::new(config).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match &err {
        Error::Connect { pool, .. } => {
            assert_eq!((pool.role, pool.kind), (Role::Write, PoolKind::Sync));
            assert_eq!(pool.target, "127.0.0.1:1/app");
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    let text = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn a_checkout_from_a_server_that_is_down_fails_within_the_connect_timeout() {
    let config = DatabaseConfig::from_url(format!("postgres://app:{SECRET}@127.0.0.1:1/app"))
        .connect_timeout(Duration::from_secs(2))
        .pool_timeout(Duration::from_secs(30));
    let db = DatabaseInstance::<Postgres>::builder(config)
        .build_lazy()
        .unwrap();
    let started = Instant::now();
    let err = db.get_db_cm_write().unwrap_err();
    // A connect error, or the breaker's `Unavailable` when the pool's background
    // connect failed first.
    assert!(
        matches!(err, Error::Connect { .. } | Error::Unavailable { .. }),
        "{err:?}"
    );
    assert!(err.is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The server's breaker is open now: the async pools on the same server turn
    // the call away without another connect, keeping the failure as the cause.
    let err = rt.block_on(db.async_get_db_cm_write()).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_unavailable());
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("127.0.0.1"), "{cause}");
    assert!(!format!("{err} {err:?} {cause}").contains(SECRET));
}

#[test]
fn bad_settings_name_the_field() {
    let cases: Vec<(DatabaseConfig, &str)> = vec![
        (DatabaseConfig::from_url("oracle://h/db"), "url"),
        (DatabaseConfig::from_url("postgres://h:0/db"), "url"),
        (DatabaseConfig::from_url("postgres://h/db").port(0), "port"),
        (
            DatabaseConfig::from_url("postgres://h/db").pool_size(0),
            "pool_size",
        ),
        (
            DatabaseConfig::from_url("postgres://h/db").read_url("mysql://h/db"),
            "read_urls[0]",
        ),
        (
            DatabaseConfig::from_url("postgres://h/db").read_host("replica:x"),
            "read_hosts[0]",
        ),
        (
            DatabaseConfig::from_url("postgres://h/db").pool_timeout(Duration::ZERO),
            "pool_timeout",
        ),
        (
            DatabaseConfig::from_url("postgres://h/db").min_idle(20),
            "min_idle",
        ),
        (DatabaseConfig::new().backend(BackendKind::Postgres), "name"),
        (DatabaseConfig::from_url("mysql://h/db"), "url"),
    ];
    for (config, field) in cases {
        match DatabaseInstance::<Postgres>::builder(config.clone()).build_lazy() {
            Err(Error::Config { field: got, reason }) => assert_eq!(got, field, "{reason}"),
            other => panic!("{config:?}: expected a config error on {field}, got {other:?}"),
        }
    }
}

#[test]
fn passwords_stay_out_of_debug_display_and_errors() {
    let config = DatabaseConfig::new()
        .backend(BackendKind::Postgres)
        .user("app")
        .password(SECRET)
        .host("127.0.0.1")
        .port(1)
        .name("app")
        .read_url(format!("postgres://app:{SECRET}@127.0.0.1:1/app"))
        .connect_timeout(Duration::from_secs(1));
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    let json = serde_json_like(&config);
    assert!(!json.contains(SECRET), "{json}");
    let db = DatabaseInstance::<Postgres>::builder(config)
        .build_lazy()
        .unwrap();
    assert!(!format!("{db:?}").contains(SECRET));
    let err = db.get_db_cm_read().unwrap_err();
    assert!(!format!("{err} {err:?}").contains(SECRET));
    let report = db.health_report_with_timeout(Duration::from_millis(500));
    assert!(!format!("{report:?}").contains(SECRET));
}

fn serde_json_like(config: &DatabaseConfig) -> String {
    toml::to_string(config).unwrap()
}

/// Captures everything the crate logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn passwords_stay_out_of_tracing_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // Global: r2d2 connects on threads of its own.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    {
        let url = format!("postgres://app:{SECRET}@127.0.0.1:1/app");
        let db = DatabaseInstance::<Postgres>::builder(
            DatabaseConfig::from_url(url)
                .connect_timeout(Duration::from_secs(2))
                .min_idle(1),
        )
        .build_lazy()
        .unwrap();
        let _ = db.get_db_cm_write();
        let _ = db.health_report_with_timeout(Duration::from_millis(300));
        db.close_all_connections();
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("connection failed"),
        "nothing was logged: {text}"
    );
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn config_loads_from_json_and_env_names() {
    let config: DatabaseConfig =
        serde_json::from_str(r#"{"url": "sqlite::memory:", "pool_size": 3, "pool_timeout": 1.5}"#)
            .unwrap();
    let db = DatabaseInstance::<Sqlite>::new(config).unwrap();
    assert_eq!(db.name(), ":memory:");
    let err = DatabaseConfig::from_env_prefixed("DBI_TEST_UNSET_PREFIX").unwrap_err();
    assert!(
        err.to_string()
            .contains("DBI_TEST_UNSET_PREFIX_DATABASE_URL"),
        "{err}"
    );
}
