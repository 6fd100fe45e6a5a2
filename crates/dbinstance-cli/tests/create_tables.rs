//! `create-tables` from a service's own binary: the tables its registry names are
//! created on each configured database (or the one `--database` names), and the
//! crate's own binary, which knows no tables, says so with a usage error.

use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite, TableOptions};
use dbinstance_cli::Cli;
use diesel::RunQueryDsl;

mod tables {
    diesel::table! { users (id) { id -> Integer, name -> Text } }
    diesel::table! { events (id) { id -> Integer, kind -> Text } }
}
use tables::{events, users};

/// The service's command line: `users` on `main`, `events` on `audit`.
fn service_cli() -> Cli {
    Cli::new().tables(|manager| {
        manager
            .get::<Sqlite>("main")?
            .schema()
            .register::<users::table>(TableOptions::new().auto_increment("id"))?;
        manager
            .get::<Sqlite>("audit")?
            .schema()
            .register::<events::table>(TableOptions::new().auto_increment("id"))?;
        Ok(())
    })
}

fn tables_in(path: &std::path::Path) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let db =
        DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(path.to_str().unwrap())).unwrap();
    let mut conn = db.get_db_cm_read().unwrap();
    diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .load::<Name>(&mut *conn)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

#[test]
fn a_service_binary_creates_its_registered_tables() {
    let dir = std::env::temp_dir().join(format!("dbinstance-cli-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (main, audit) = (dir.join("main.sqlite3"), dir.join("audit.sqlite3"));
    let config = dir.join("databases.toml");
    std::fs::write(
        &config,
        format!(
            "default = \"main\"\n[databases.main]\nurl = \"{}\"\n[databases.audit]\nurl = \"{}\"\n",
            main.display(),
            audit.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let args = |extra: &[&str]| {
        let mut args = vec!["--config".to_owned(), config.clone()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };

    // Only `audit`, then all of them (again: creating is idempotent).
    assert_eq!(
        service_cli().run(args(&["--database", "audit", "create-tables"])),
        0
    );
    assert_eq!(tables_in(&audit), ["events"]);
    assert!(tables_in(&main).is_empty());
    assert_eq!(service_cli().run(args(&["create-tables"])), 0);
    assert_eq!(service_cli().run(args(&["create-tables"])), 0);
    assert_eq!(tables_in(&main), ["users"]);
    assert_eq!(tables_in(&audit), ["events"]);

    // A registry that fails (a database of another name) is a failed call.
    let broken = Cli::new().tables(|manager| manager.get::<Sqlite>("billing").map(drop));
    assert_eq!(broken.run(args(&["create-tables"])), 70);
    // The crate's own command line knows no tables.
    assert_eq!(Cli::new().run(args(&["create-tables"])), 64);
    std::fs::remove_dir_all(&dir).unwrap();
}
