//! Property tests of every configuration source (URL, TOML, JSON, environment):
//! whatever the input, nothing panics, a rejection is an `Error::Config` naming a
//! field the user can find, and a password never reaches an error or a `Debug`.

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Mysql, Postgres, Sqlite};
use proptest::prelude::*;

/// Marks the password in every generated input; it must never come back out.
const SECRET: &str = "pw9Zq";

/// The keys `DatabaseConfig` takes (and a few it does not), for TOML and JSON.
const KEYS: &[&str] = &[
    "backend",
    "url",
    "read_urls",
    "user",
    "password",
    "host",
    "port",
    "name",
    "read_hosts",
    "read_port",
    "read_weights",
    "ssl_mode",
    "ssl_root_cert",
    "ssl_cert",
    "ssl_key",
    "application_name",
    "connect_timeout",
    "pool_size",
    "max_overflow",
    "min_idle",
    "pool_timeout",
    "pool_recycle",
    "idle_timeout",
    "pool_pre_ping",
    "pre_ping_after",
    "async_pool",
    "read_fallback",
    "sqlite_busy_timeout_ms",
    "health_timeout",
    "utilization_warning",
    "utilization_critical",
    "pool_sise",
    "database_url",
];

/// Builds the instance lazily for each backend and checks the outcome.
fn check(config: &DatabaseConfig) {
    in_scratch_dir();
    assert!(!format!("{config:?}").contains(SECRET), "{config:?}");
    for result in [
        DatabaseInstance::<Postgres>::builder(config.clone())
            .build_lazy()
            .map(drop),
        DatabaseInstance::<Mysql>::builder(config.clone())
            .build_lazy()
            .map(drop),
        DatabaseInstance::<Sqlite>::builder(config.clone())
            .build_lazy()
            .map(drop),
    ] {
        if let Err(error) = result {
            checked_error(&error);
        }
    }
}

fn checked_error(error: &Error) {
    let text = format!("{error} {error:?}");
    assert!(!text.contains(SECRET), "password leaked: {text}");
    match error {
        Error::Config { field, reason } => {
            assert!(!field.is_empty() && !reason.is_empty(), "{error:?}")
        }
        other => panic!("not a config error: {other:?}"),
    }
}

fn url_part() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9.:/@?&=%\\[\\]_-]{0,24}",
        Just(format!("u:{SECRET}@")),
        Just(format!("?password={SECRET}")),
        Just("[::1]".to_owned()),
        Just(":0".to_owned()),
        Just(":99999".to_owned()),
        Just("%zz".to_owned()),
        any::<String>(),
    ]
}

fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("postgres://"),
            Just("postgresql://"),
            Just("mysql://"),
            Just("mariadb://"),
            Just("sqlite://"),
            Just("sqlite:"),
            Just("redis://"),
            Just(""),
        ],
        prop::collection::vec(url_part(), 0..5),
    )
        .prop_map(|(scheme, parts)| format!("{scheme}{}", parts.concat()))
}

fn value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        prop_oneof![Just(-1.0), Just(0.0), Just(1e300), Just(0.5), Just(3.0)].prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        url().prop_map(Value::from),
        Just(json!([format!("postgres://u:{SECRET}@h/db")])),
        Just(json!(["::1", "[::1]:5433", "h:0", ""])),
        Just(json!([3, 0, 101])),
        Just(Value::Null),
    ]
}

/// A document of random keys and values; the marked password, when present, is
/// only where a password goes.
fn document() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    (
        prop::collection::vec((prop::sample::select(KEYS), value()), 0..8),
        any::<bool>(),
    )
        .prop_map(|(pairs, with_password)| {
            let mut doc: serde_json::Map<_, _> = pairs
                .into_iter()
                .filter(|(k, _)| *k != "password")
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            if with_password {
                doc.insert("password".into(), SECRET.into());
            }
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_url_is_accepted_or_refused_with_a_typed_error(primary in url(), read in url()) {
        check(&DatabaseConfig::from_url(&primary));
        check(&DatabaseConfig::from_url(&primary).read_url(&read));
        check(&DatabaseConfig::from_url(&primary).read_host(&read));
    }

    #[test]
    fn any_json_file_is_accepted_or_refused_with_a_typed_error(doc in document()) {
        let text = serde_json::Value::Object(doc).to_string();
        match load(&text, "json") {
            Ok(config) => check(&config),
            Err(error) => checked_error(&error),
        }
    }

    #[test]
    fn any_toml_file_is_accepted_or_refused_with_a_typed_error(doc in document(), garble in any::<bool>()) {
        let mut text = String::new();
        for (key, value) in doc {
            // TOML has no null; anything else is written as JSON writes it, which
            // TOML reads for numbers, strings, booleans and arrays of them.
            if !value.is_null() {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        if garble {
            text.push_str(&format!("url = \"postgres://u:{SECRET}@h/db\n"));
        }
        match load(&text, "toml") {
            Ok(config) => check(&config),
            Err(error) => checked_error(&error),
        }
    }

    #[test]
    fn any_environment_is_accepted_or_refused_naming_the_variable(
        url in url(),
        values in prop::collection::vec(("[A-Z_]{0,3}", any::<String>()), 0..4),
    ) {
        let prefix = "FUZZ";
        let name = |suffix: &str| format!("{prefix}_DATABASE_{suffix}");
        let suffixes = ["POOL_SIZE", "MAX_OVERFLOW", "MIN_IDLE", "POOL_TIMEOUT", "POOL_RECYCLE",
            "CONNECT_TIMEOUT", "POOL_PRE_PING", "ASYNC_POOL", "READ_URL", "READ_WEIGHTS",
            "READ_YOUR_WRITES_WAIT", "MAX_REPLICA_LAG", "STATEMENT_TIMEOUT", "LOCK_TIMEOUT",
            "IDLE_IN_TRANSACTION_TIMEOUT", "SSL_MODE", "SSL_ROOT_CERT", "SSL_CERT", "SSL_KEY"];
        // From a map: `set_var` beside the background connects of `check` is undefined.
        let mut vars = vec![(name("URL"), url)];
        for (i, (_, value)) in values.into_iter().enumerate() {
            vars.push((name(suffixes[i % suffixes.len()]), value));
        }
        match DatabaseConfig::from_vars(prefix, vars) {
            Ok(config) => check(&config),
            Err(Error::Config { field, .. }) => prop_assert!(field.starts_with(prefix), "{field}"),
            Err(other) => prop_assert!(false, "not a config error: {other:?}"),
        }
    }
}

/// Moves the process into a directory of its own under the build's temporary
/// directory: a generated URL is often a valid SQLite path, and the pools open the
/// file it names relative to the working directory.
fn in_scratch_dir() {
    static MOVED: std::sync::Once = std::sync::Once::new();
    MOVED.call_once(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("config-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_current_dir(&dir).unwrap();
    });
}

/// `DatabaseConfig::from_file` on `text` written to a file with `extension`.
fn load(text: &str, extension: &str) -> Result<DatabaseConfig, Error> {
    let dir = std::env::temp_dir().join(format!("dbi-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("c{}.{extension}", rand_suffix()));
    std::fs::write(&path, text).unwrap();
    let loaded = DatabaseConfig::from_file(&path);
    let _ = std::fs::remove_file(&path);
    loaded
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
