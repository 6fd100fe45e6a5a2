//! The `dbinstance` binary as an operator runs it: exit codes, JSON, and the
//! migrations of a directory, on SQLite files and on the PostgreSQL server, where
//! processes started at once to migrate apply each migration once.

use std::process::{Command, Output};

fn dbinstance(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbinstance"))
        .args(args)
        .env_remove("DATABASES")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

const MIGRATIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../dbinstance/tests/migrations"
);

#[test]
fn health_stats_and_migrations_of_a_configured_sqlite_database() {
    let dir = std::env::temp_dir().join(format!("dbinstance-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("databases.toml");
    std::fs::write(
        &config,
        format!(
            "default = \"main\"\n[databases.main]\nurl = \"{}\"\n[databases.cache]\nurl = \"{}\"\n",
            dir.join("main.sqlite3").display(),
            dir.join("cache.sqlite3").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let health = dbinstance(&["--config", config, "health", "--json"], &[]);
    assert_eq!(health.status.code(), Some(0));
    let reports = json(&health);
    assert_eq!(reports["main"]["status"], "healthy");
    assert_eq!(reports["cache"]["status"], "healthy");

    let stats = json(&dbinstance(&["--config", config, "--json", "stats"], &[]));
    assert!(stats["main"]
        .as_array()
        .is_some_and(|pools| !pools.is_empty()));

    let status = json(&dbinstance(
        &[
            "--config",
            config,
            "--json",
            "migrations",
            "status",
            MIGRATIONS,
        ],
        &[],
    ));
    assert_eq!(status.as_array().unwrap().len(), 2);
    assert!(status
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["applied"] == false));
    let ran = dbinstance(
        &[
            "--config",
            config,
            "--json",
            "migrations",
            "run",
            MIGRATIONS,
        ],
        &[],
    );
    assert_eq!(ran.status.code(), Some(0));
    assert_eq!(json(&ran).as_array().unwrap().len(), 2);
    let pending = json(&dbinstance(
        &[
            "--config",
            config,
            "--json",
            "migrations",
            "pending",
            MIGRATIONS,
        ],
        &[],
    ));
    assert_eq!(pending, serde_json::json!([]));
    let reverted = json(&dbinstance(
        &[
            "--config",
            config,
            "--json",
            "migrations",
            "revert",
            MIGRATIONS,
        ],
        &[],
    ));
    assert_eq!(reverted["name"], "2024-01-02-000000_seed_gadgets");
    // Another database by name: nothing applied there.
    let cache = json(&dbinstance(
        &[
            "--config",
            config,
            "--database",
            "cache",
            "--json",
            "migrations",
            "pending",
            MIGRATIONS,
        ],
        &[],
    ));
    assert_eq!(cache.as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn health_reads_the_environment_and_exits_by_the_verdict() {
    if let Ok(url) = std::env::var("DBI_PG_URL") {
        let up = dbinstance(&["health"], &[("DATABASE_URL", &url)]);
        assert_eq!(
            up.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("DBI_PG_URL is not set and CI=true");
    } else {
        eprintln!("\n!!! SKIPPED: DBI_PG_URL is not set\n");
    }
    let down = dbinstance(
        &["health", "--json"],
        &[
            ("DATABASE_URL", "postgres://app:s3cret@127.0.0.1:1/app"),
            ("DATABASE_CONNECT_TIMEOUT", "2"),
        ],
    );
    assert_eq!(down.status.code(), Some(2));
    assert_eq!(json(&down)["default"]["status"], "unhealthy");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&down.stdout),
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!all.contains("s3cret"), "{all}");
}

#[test]
fn mistakes_are_named_with_their_own_exit_codes() {
    let wrong = dbinstance(&["wipe"], &[]);
    assert_eq!(wrong.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unknown command `wipe`"));
    let unknown = dbinstance(
        &["--database", "billing", "health"],
        &[("DATABASE_URL", ":memory:")],
    );
    assert_eq!(unknown.status.code(), Some(70));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no database named `billing`"));
    let unset = dbinstance(&["health"], &[]);
    assert_eq!(unset.status.code(), Some(70));
    assert!(String::from_utf8_lossy(&unset.stderr).contains("DATABASE_URL"));
    assert_eq!(dbinstance(&["help"], &[]).status.code(), Some(0));
}

/// Three processes run `migrations run` at the same moment on a fresh database, as
/// the replicas of a service would at boot: the server lock lets one apply both
/// migrations, and the others, once it is released, find none pending.
#[test]
fn processes_racing_to_migrate_apply_each_migration_once() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let Ok(admin) = std::env::var("DBI_PG_URL") else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "DBI_PG_URL is not set and CI=true"
        );
        eprintln!("\n!!! SKIPPED: DBI_PG_URL is not set\n");
        return;
    };
    let name = format!("dbinstance_cli_race_{}", std::process::id());
    let mut conn = diesel::PgConnection::establish(&admin).unwrap();
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (server, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{server}/{name}");

    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_dbinstance"))
                .args(["--json", "migrations", "run", MIGRATIONS])
                .env_remove("DATABASES")
                .env("DATABASE_URL", &url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied: Vec<usize> = runs
        .into_iter()
        .map(|run| {
            let output = run.wait_with_output().unwrap();
            assert_eq!(
                output.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            json(&output).as_array().unwrap().len()
        })
        .collect();
    applied.sort_unstable();
    assert_eq!(applied, [0, 0, 2], "one process applies both migrations");
    let pending = json(&dbinstance(
        &["--json", "migrations", "pending", MIGRATIONS],
        &[("DATABASE_URL", &url)],
    ));
    assert_eq!(pending, serde_json::json!([]));
    conn.batch_execute(&format!("DROP DATABASE {name}"))
        .unwrap();
}
