//! The schema registry and migrations against real servers: create_tables twice,
//! typed inserts and loads through sync and async sessions, foreign keys enforced,
//! drop_tables leaving nothing behind, separate registries per instance, and an
//! embedded migration set that runs once.
//!
//! Every test works in its own sandbox (a PostgreSQL schema on the `search_path`, a
//! MySQL database, a SQLite file), dropped at the end, so tests and test binaries
//! can run in parallel against the same servers.
#![cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "sqlite",
    feature = "migrations"
))]

mod common;

use dbinstance::{Backend, DatabaseConfig, DatabaseInstance, Error, OnDelete, TableOptions};
use diesel::connection::SimpleConnection;
// No `diesel::prelude::*`: each test imports the sync or the async `RunQueryDsl`.
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{
    Connection, ExpressionMethods, Insertable, MysqlConnection, PgConnection, QueryDsl, Queryable,
    QueryableByName, SqliteConnection,
};
use time::{Date, Month, PrimitiveDateTime, Time};

mod tables {
    diesel::table! {
        users (id) {
            id -> Integer,
            email -> Text,
            name -> Text,
        }
    }

    diesel::table! {
        posts (id) {
            id -> BigInt,
            user_id -> Integer,
            title -> Text,
            body -> Nullable<Text>,
            created_at -> Timestamp,
        }
    }

    // Every column type supported on all three backends, and nullable columns.
    diesel::table! {
        all_types (id) {
            id -> Integer,
            flag -> Bool,
            small -> SmallInt,
            whole -> Integer,
            big -> BigInt,
            single -> Float,
            double -> Double,
            label -> Text,
            bytes -> Binary,
            day -> Date,
            clock -> Time,
            stamp -> Timestamp,
            note -> Nullable<Text>,
            maybe_big -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        widgets (id) {
            id -> Integer,
            name -> Text,
        }
    }

    // Created by the embedded migrations.
    diesel::table! {
        gadgets (id) {
            id -> Integer,
            name -> Text,
        }
    }

    diesel::joinable!(posts -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(users, posts, all_types, widgets);
}

use tables::{all_types, posts, users, widgets};

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = all_types)]
struct AllTypes {
    id: i32,
    flag: bool,
    small: i16,
    whole: i32,
    big: i64,
    single: f32,
    double: f64,
    label: String,
    bytes: Vec<u8>,
    day: Date,
    clock: Time,
    stamp: PrimitiveDateTime,
    note: Option<String>,
    maybe_big: Option<i64>,
}

fn sample(id: i32, note: Option<&str>) -> AllTypes {
    let day = Date::from_calendar_date(2024, Month::February, 29).unwrap();
    let clock = Time::from_hms(12, 34, 56).unwrap();
    // diesel writes a MySQL `Time` without its fraction; a timestamp keeps it.
    let instant = Time::from_hms_micro(12, 34, 56, 789_012).unwrap();
    AllTypes {
        id,
        flag: id % 2 == 0,
        small: -12,
        whole: 1_234_567,
        big: 9_007_199_254_740_993,
        single: 1.5,
        double: -2.25,
        label: format!("row {id} — ünïcode"),
        bytes: vec![0, 1, 2, 254, 255],
        day,
        clock,
        stamp: PrimitiveDateTime::new(day, instant),
        note: note.map(str::to_owned),
        maybe_big: None,
    }
}

const TABLES: [&str; 3] = ["users", "posts", "all_types"];

fn register_blog<B: Backend>(db: &DatabaseInstance<B>) {
    db.schema()
        // Registered before the table it references: create_tables orders them.
        .register::<posts::table>(
            TableOptions::new()
                .auto_increment("id")
                .references::<posts::user_id, users::id>(OnDelete::Cascade)
                .default("created_at", "CURRENT_TIMESTAMP")
                .index(["title"]),
        )
        .and_then(|s| {
            s.register::<users::table>(TableOptions::new().auto_increment("id").unique(["email"]))
        })
        .and_then(|s| s.register::<all_types::table>(TableOptions::new().index(["label", "day"])))
        .expect("the test schema is valid");
    assert_eq!(
        db.schema().create_order().unwrap(),
        ["users", "posts", "all_types"]
    );
}

fn is_violation(error: &DieselError, kind: DatabaseErrorKind) -> bool {
    matches!(error, DieselError::DatabaseError(k, _) if std::mem::discriminant(k) == std::mem::discriminant(&kind))
}

/// Where one test's tables live, removed (with everything in it) on drop.
enum Sandbox {
    Pg {
        admin: String,
        schema: String,
        url: String,
    },
    Mysql {
        admin: String,
        database: String,
        url: String,
    },
    Sqlite(common::TempDb),
}

impl Sandbox {
    /// A fresh PostgreSQL schema, first on the `search_path` of `url`.
    fn pg() -> Option<Self> {
        let admin = common::pg()?;
        let schema = common::unique_table("dbi_schema");
        PgConnection::establish(&admin)
            .expect("connect to PostgreSQL")
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create the test schema");
        let separator = if admin.contains('?') { '&' } else { '?' };
        Some(Sandbox::Pg {
            url: format!("{admin}{separator}options=-c%20search_path%3D{schema}"),
            admin,
            schema,
        })
    }

    /// A fresh MySQL database.
    fn mysql() -> Option<Self> {
        let admin = common::mysql()?;
        let database = common::unique_table("dbi_schema");
        MysqlConnection::establish(&admin)
            .expect("connect to MySQL")
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .expect("create the test database");
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&database);
        Some(Sandbox::Mysql {
            url: url.into(),
            admin,
            database,
        })
    }

    fn sqlite() -> Option<Self> {
        Some(Sandbox::Sqlite(common::TempDb::new("schema")))
    }

    fn url(&self) -> String {
        match self {
            Sandbox::Pg { url, .. } | Sandbox::Mysql { url, .. } => url.clone(),
            Sandbox::Sqlite(file) => file.url(),
        }
    }

    /// How many tables, indexes and sequences are left in the sandbox.
    fn objects_left(&self) -> i64 {
        use diesel::dsl::sql;
        use diesel::sql_types::BigInt;
        use diesel::RunQueryDsl;
        match self {
            Sandbox::Pg { admin, schema, .. } => diesel::select(sql::<BigInt>(&format!(
                "(SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{schema}')"
            )))
            .get_result(&mut PgConnection::establish(admin).unwrap())
            .unwrap(),
            Sandbox::Mysql {
                admin, database, ..
            } => diesel::select(sql::<BigInt>(&format!(
                "(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{database}')"
            )))
            .get_result(&mut MysqlConnection::establish(admin).unwrap())
            .unwrap(),
            Sandbox::Sqlite(file) => {
                diesel::select(sql::<BigInt>("(SELECT COUNT(*) FROM sqlite_master)"))
                    .get_result(&mut SqliteConnection::establish(&file.url()).unwrap())
                    .unwrap()
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let result = match self {
            Sandbox::Pg { admin, schema, .. } => PgConnection::establish(admin)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .map_err(|e| e.to_string())
                }),
            Sandbox::Mysql {
                admin, database, ..
            } => MysqlConnection::establish(admin)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS {database}"))
                        .map_err(|e| e.to_string())
                }),
            Sandbox::Sqlite(_) => Ok(()),
        };
        if let Err(error) = result {
            eprintln!("schema test: cleaning up the sandbox failed: {error}");
        }
    }
}

const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("tests/migrations");

fn check_migration_report(ran: &[dbinstance::MigrationInfo]) {
    let names: Vec<_> = ran.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "2024-01-01-000000_create_gadgets",
            "2024-01-02-000000_seed_gadgets"
        ]
    );
    assert_eq!(ran[0].version, "20240101000000");
}

/// The same tests for each backend; `$sandbox` makes the place they run in.
macro_rules! schema_tests {
    ($module:ident, $backend:ty, $sandbox:expr) => {
        mod $module {
            use super::*;

            type Db = DatabaseInstance<$backend>;

            fn open(sandbox: &Sandbox) -> Db {
                Db::new(DatabaseConfig::from_url(sandbox.url())).expect("connect")
            }

            #[test]
            fn create_use_and_drop_sync() {
                use diesel::RunQueryDsl;
                let Some(sandbox) = $sandbox else { return };
                let db = open(&sandbox);
                register_blog(&db);
                for table in TABLES {
                    assert!(!db.table_exists(table).unwrap(), "{table} exists too early");
                }

                db.create_tables().unwrap();
                for table in TABLES {
                    assert!(db.table_exists(table).unwrap(), "{table} was not created");
                }
                let mut session = db.get_db_cm_write().unwrap();
                // No id: the database assigns it.
                diesel::insert_into(users::table)
                    .values((users::email.eq("ada@example.com"), users::name.eq("Ada")))
                    .execute(&mut *session)
                    .unwrap();
                session.commit().unwrap();

                // The second run is a no-op: the row survives.
                db.create_tables().unwrap();
                let mut session = db.get_db_cm_write().unwrap();
                let ada: i32 = users::table
                    .filter(users::email.eq("ada@example.com"))
                    .select(users::id)
                    .first(&mut *session)
                    .unwrap();
                diesel::insert_into(posts::table)
                    .values((posts::user_id.eq(ada), posts::title.eq("hello")))
                    .execute(&mut *session)
                    .unwrap();
                let rows = [sample(1, Some("first")), sample(2, None)];
                diesel::insert_into(all_types::table)
                    .values(&rows[..])
                    .execute(&mut *session)
                    .unwrap();
                session.commit().unwrap();

                let mut session = db.get_db_cm_read().unwrap();
                let loaded: Vec<AllTypes> = all_types::table
                    .order(all_types::id)
                    .load(&mut *session)
                    .unwrap();
                assert_eq!(loaded, rows);
                let titles: Vec<(String, String, Option<String>)> = posts::table
                    .inner_join(users::table)
                    .select((users::name, posts::title, posts::body))
                    .load(&mut *session)
                    .unwrap();
                assert_eq!(titles, [("Ada".to_owned(), "hello".to_owned(), None)]);
                // The CURRENT_TIMESTAMP default reads back as a timestamp.
                let created: PrimitiveDateTime = posts::table
                    .select(posts::created_at)
                    .first(&mut *session)
                    .unwrap();
                assert!(created.year() >= 2024, "{created}");
                drop(session);

                // A post for a user that does not exist is refused.
                let mut session = db.get_db_cm_write().unwrap();
                let error = diesel::insert_into(posts::table)
                    .values((posts::user_id.eq(ada + 1000), posts::title.eq("orphan")))
                    .execute(&mut *session)
                    .unwrap_err();
                assert!(
                    is_violation(&error, DatabaseErrorKind::ForeignKeyViolation),
                    "{error:?}"
                );
                drop(session);
                // So is a second user with the same email.
                let mut session = db.get_db_cm_write().unwrap();
                let error = diesel::insert_into(users::table)
                    .values((users::email.eq("ada@example.com"), users::name.eq("Again")))
                    .execute(&mut *session)
                    .unwrap_err();
                assert!(
                    is_violation(&error, DatabaseErrorKind::UniqueViolation),
                    "{error:?}"
                );
                drop(session);
                // ON DELETE CASCADE.
                db.write(|conn| {
                    diesel::delete(users::table).execute(conn)?;
                    Ok::<_, Error>(())
                })
                .unwrap();
                let posts_left: i64 = db
                    .read(|conn| Ok::<_, Error>(posts::table.count().get_result(conn)?))
                    .unwrap();
                assert_eq!(posts_left, 0);

                db.drop_tables().unwrap();
                for table in TABLES {
                    assert!(!db.table_exists(table).unwrap(), "{table} was not dropped");
                }
                assert_eq!(
                    sandbox.objects_left(),
                    0,
                    "drop_tables left something behind"
                );
                db.drop_tables().unwrap();
            }

            #[tokio::test]
            async fn create_use_and_drop_async() {
                use diesel_async::RunQueryDsl;
                let Some(sandbox) = $sandbox else { return };
                let db = Db::builder(DatabaseConfig::from_url(sandbox.url()))
                    .build_async()
                    .await
                    .expect("connect");
                register_blog(&db);

                db.async_create_tables().await.unwrap();
                db.async_create_tables().await.unwrap();
                for table in TABLES {
                    assert!(
                        db.async_table_exists(table).await.unwrap(),
                        "{table} was not created"
                    );
                }

                let mut session = db.async_get_db_cm_write().await.unwrap();
                diesel::insert_into(users::table)
                    .values((
                        users::id.eq(7),
                        users::email.eq("grace@example.com"),
                        users::name.eq("Grace"),
                    ))
                    .execute(&mut *session)
                    .await
                    .unwrap();
                diesel::insert_into(posts::table)
                    .values((
                        posts::user_id.eq(7),
                        posts::title.eq("async"),
                        posts::body.eq(Some("body")),
                    ))
                    .execute(&mut *session)
                    .await
                    .unwrap();
                let rows = vec![sample(10, None), sample(11, Some("eleven"))];
                // One by one: diesel-async's SQLite wrapper has no batch insert.
                for row in &rows {
                    diesel::insert_into(all_types::table)
                        .values(row)
                        .execute(&mut *session)
                        .await
                        .unwrap();
                }
                session.commit().await.unwrap();

                let mut session = db.async_get_db_cm_read().await.unwrap();
                let loaded: Vec<AllTypes> = all_types::table
                    .order(all_types::id)
                    .load(&mut *session)
                    .await
                    .unwrap();
                assert_eq!(loaded, rows);
                let bodies: Vec<Option<String>> = posts::table
                    .select(posts::body)
                    .load(&mut *session)
                    .await
                    .unwrap();
                assert_eq!(bodies, [Some("body".to_owned())]);
                drop(session);

                let mut session = db.async_get_db_cm_write().await.unwrap();
                let error = diesel::insert_into(posts::table)
                    .values((posts::user_id.eq(8), posts::title.eq("orphan")))
                    .execute(&mut *session)
                    .await
                    .unwrap_err();
                assert!(
                    is_violation(&error, DatabaseErrorKind::ForeignKeyViolation),
                    "{error:?}"
                );
                session.rollback().await.unwrap();

                db.async_drop_tables().await.unwrap();
                for table in TABLES {
                    assert!(
                        !db.async_table_exists(table).await.unwrap(),
                        "{table} was not dropped"
                    );
                }
                assert_eq!(
                    sandbox.objects_left(),
                    0,
                    "async_drop_tables left something behind"
                );
            }

            #[test]
            fn one_table_at_a_time() {
                let Some(sandbox) = $sandbox else { return };
                let db = open(&sandbox);
                register_blog(&db);
                db.create_table::<users::table>().unwrap();
                assert!(db.table_exists("users").unwrap());
                assert!(!db.table_exists("posts").unwrap());
                db.create_table::<posts::table>().unwrap();
                db.create_table::<posts::table>().unwrap();
                assert!(db.table_exists("posts").unwrap());
                match db.create_table::<widgets::table>() {
                    Err(Error::Schema { table, .. }) => assert_eq!(table, "widgets"),
                    other => panic!("expected Error::Schema, got {other:?}"),
                }
                db.drop_table::<posts::table>().unwrap();
                assert!(!db.table_exists("posts").unwrap());
                assert!(db.table_exists("users").unwrap());
                db.drop_tables().unwrap();
                assert_eq!(sandbox.objects_left(), 0);
            }

            #[test]
            fn instances_keep_their_own_registries() {
                let Some(sandbox) = $sandbox else { return };
                let blog = open(&sandbox);
                let shop = open(&sandbox);
                register_blog(&blog);
                shop.schema()
                    .register::<widgets::table>(TableOptions::new().unique(["name"]))
                    .unwrap();
                assert_eq!(shop.schema().table_names(), ["widgets"]);
                // A clone shares its instance's registry.
                assert_eq!(blog.clone().schema().len(), 3);

                blog.create_tables().unwrap();
                assert!(blog.table_exists("users").unwrap());
                assert!(!blog.table_exists("widgets").unwrap());
                shop.create_tables().unwrap();
                assert!(shop.table_exists("widgets").unwrap());

                blog.drop_tables().unwrap();
                assert!(!shop.table_exists("users").unwrap());
                assert!(
                    shop.table_exists("widgets").unwrap(),
                    "dropping one registry's tables touched the other's"
                );
                shop.drop_tables().unwrap();
                assert_eq!(sandbox.objects_left(), 0);
            }

            #[test]
            fn migrations_run_once() {
                use diesel::RunQueryDsl;
                let Some(sandbox) = $sandbox else { return };
                let db = open(&sandbox);
                assert_eq!(db.pending_migrations(&MIGRATIONS).unwrap().len(), 2);
                let ran = db.run_pending_migrations(&MIGRATIONS).unwrap();
                check_migration_report(&ran);
                assert!(db.run_pending_migrations(&MIGRATIONS).unwrap().is_empty());
                assert!(db.pending_migrations(&MIGRATIONS).unwrap().is_empty());
                assert!(db.table_exists("gadgets").unwrap());
                let names: Vec<String> = db
                    .read(|conn| {
                        Ok::<_, Error>(
                            tables::gadgets::table
                                .select(tables::gadgets::name)
                                .load(conn)?,
                        )
                    })
                    .unwrap();
                assert_eq!(names, ["sprocket"]);
            }

            #[tokio::test]
            async fn async_migrations_run_once() {
                let Some(sandbox) = $sandbox else { return };
                let db = Db::builder(DatabaseConfig::from_url(sandbox.url()))
                    .build_async()
                    .await
                    .expect("connect");
                let ran = db.async_run_pending_migrations(&MIGRATIONS).await.unwrap();
                check_migration_report(&ran);
                assert!(db
                    .async_run_pending_migrations(&MIGRATIONS)
                    .await
                    .unwrap()
                    .is_empty());
                assert!(db
                    .async_pending_migrations(&MIGRATIONS)
                    .await
                    .unwrap()
                    .is_empty());
                assert!(db.async_table_exists("gadgets").await.unwrap());
            }
        }
    };
}

schema_tests!(postgres, dbinstance::Postgres, Sandbox::pg());
schema_tests!(mysql, dbinstance::Mysql, Sandbox::mysql());
schema_tests!(sqlite, dbinstance::Sqlite, Sandbox::sqlite());

/// Every SQLite connection, sync or async, read or write, enforces foreign keys.
#[tokio::test]
async fn sqlite_connections_enforce_foreign_keys() {
    use diesel::sql_types::Integer;

    #[derive(QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = Integer)]
        foreign_keys: i32,
    }
    let query = || diesel::sql_query("PRAGMA foreign_keys");
    let file = common::TempDb::new("schema-fk");
    let db =
        DatabaseInstance::<dbinstance::Sqlite>::new(DatabaseConfig::from_url(file.url())).unwrap();

    let sync_write: Pragma =
        diesel::RunQueryDsl::get_result(query(), &mut *db.get_db_cm_write().unwrap()).unwrap();
    let sync_read: Pragma =
        diesel::RunQueryDsl::get_result(query(), &mut *db.get_db_cm_read().unwrap()).unwrap();
    let mut session = db.async_get_db_cm_write().await.unwrap();
    let async_write: Pragma = diesel_async::RunQueryDsl::get_result(query(), &mut *session)
        .await
        .unwrap();
    drop(session);
    let mut session = db.async_get_db_cm_read().await.unwrap();
    let async_read: Pragma = diesel_async::RunQueryDsl::get_result(query(), &mut *session)
        .await
        .unwrap();
    drop(session);
    for (pool, pragma) in [
        ("sync write", sync_write),
        ("sync read", sync_read),
        ("async write", async_write),
        ("async read", async_read),
    ] {
        assert_eq!(
            pragma.foreign_keys, 1,
            "{pool} connection does not enforce foreign keys"
        );
    }
}

/// A column type a backend cannot hold fails at registration, naming the column.
#[test]
fn unsupported_type_names_table_and_column() {
    diesel::table! {
        spans (id) {
            id -> Integer,
            length -> Interval,
        }
    }
    let db =
        DatabaseInstance::<dbinstance::Sqlite>::new(DatabaseConfig::from_url(":memory:")).unwrap();
    match db.schema().register::<spans::table>(TableOptions::new()) {
        Err(error @ Error::Schema { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("`spans`") && message.contains("`length`"),
                "{message}"
            );
        }
        other => panic!("expected Error::Schema, got {other:?}"),
    }
    assert!(db.schema().is_empty());
}
