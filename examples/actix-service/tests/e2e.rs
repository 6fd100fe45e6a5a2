//! The service over real HTTP: started in-process on an ephemeral port, driven with
//! an HTTP client. SQLite always; PostgreSQL with its streaming replica when
//! `DBI_PG_URL` and `DBI_PG_REPLICA_URL` are set, MariaDB with its replica when
//! `DBI_MYSQL_PRIMARY_URL` and `DBI_MYSQL_REPLICA_URL` are (required under `CI=true`).

use actix_web::dev::ServerHandle;
use actix_web_service::store::Store;
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use dbinstance_actix::testing::sqlite_memory;
#[cfg(feature = "mysql")]
use dbinstance_actix::testing::MysqlDatabase;
#[cfg(feature = "postgres")]
use dbinstance_actix::testing::PgSchema;
use dbinstance_web::scenarios;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

#[cfg(any(feature = "postgres", feature = "mysql"))]
/// The URL in `var`, or `None` (after saying so loudly) when it is unset outside CI.
fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set and CI=true: run `eval \"$(scripts/testbed.sh up)\"` first")
        }
        _ => {
            eprintln!("\n!!! SKIPPED: {var} is not set; run `eval \"$(scripts/testbed.sh up)\"` to test against the real server\n");
            None
        }
    }
}

#[cfg(feature = "postgres")]
/// A fresh schema on the PostgreSQL primary, read through its replica.
fn pg_schema() -> Option<PgSchema> {
    let primary = server_url("DBI_PG_URL")?;
    let replica = server_url("DBI_PG_REPLICA_URL")?;
    Some(PgSchema::create(&primary).unwrap().with_replica(&replica))
}

#[cfg(feature = "mysql")]
/// A fresh database on the MariaDB primary, read through its replica.
fn mysql_database() -> Option<MysqlDatabase> {
    let primary = server_url("DBI_MYSQL_PRIMARY_URL")?;
    let replica = server_url("DBI_MYSQL_REPLICA_URL")?;
    Some(
        MysqlDatabase::create(&primary)
            .unwrap()
            .with_replica(&replica),
    )
}

struct Server {
    base: String,
    http: reqwest::Client,
    handle: ServerHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Sends the stop command at once; nothing needs to wait for it.
        drop(self.handle.stop(false));
    }
}

/// Serves `actix_web_service::app` on `db` on a free port, from an actix system on a
/// thread of its own (two workers sharing the pools).
fn start<B: Store>(db: DatabaseInstance<B>) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web_service::app(db.clone()))
                .workers(2)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        });
    });
    Server {
        base,
        http: reqwest::Client::new(),
        handle: receiver.recv().unwrap(),
    }
}

impl Server {
    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// GETs `path` until `done` holds (reads may go to a replica that is a moment
    /// behind the primary), for at most 10 s; returns the last answer.
    async fn get_until(
        &self,
        path: &str,
        done: impl Fn(StatusCode, &Value) -> bool,
    ) -> (StatusCode, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.get(path).await;
            if done(status, &body) || tokio::time::Instant::now() > deadline {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn names(listing: &Value) -> Vec<String> {
    listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Create, read, list with pagination, update and delete users and posts, the
/// health route, and the rollback of a request that fails half way.
async fn crud(s: &Server) {
    let (status, report) = s.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "healthy", "{report}");

    // Create a user with a first post, in one transaction.
    let (status, ada) = s
        .post(
            "/users",
            json!({"name": "Ada", "email": "ada@example.com",
                   "posts": [{"title": "Notes", "body": "on the engine"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    let ada_id = ada["id"].as_i64().unwrap();
    assert_eq!(ada["posts"][0]["user_id"], ada_id);
    let first_post = ada["posts"][0]["id"].as_i64().unwrap();

    let (status, body) = s
        .post(
            "/users",
            json!({"name": "Ada 2", "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = s
        .post("/users", json!({"name": "", "email": "x@example.com"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A failure after the user was inserted rolls the user back: the email is free.
    let bob = json!({"name": "Bob", "email": "bob@example.com",
                     "posts": [{"title": "fine"}, {"title": ""}]});
    let (status, body) = s.post("/users", bob).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for name in ["Bob", "Carol", "Dan", "Eve"] {
        let email = format!("{}@example.com", name.to_lowercase());
        let (status, body) = s
            .post("/users", json!({"name": name, "email": email}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }

    // Read and list, through the read side.
    let (status, body) = s
        .get_until(&format!("/users/{ada_id}"), |s, _| s == StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "ada@example.com");
    let (_, page1) = s
        .get_until("/users?limit=2", |_, b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    assert_eq!(names(&page1), ["Ada", "Bob"]);
    assert_eq!(page1["next_offset"], 2);
    let (_, page3) = s
        .get_until("/users?limit=2&offset=4", |_, b| {
            b["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    assert_eq!(names(&page3), ["Eve"]);
    assert_eq!(page3["next_offset"], Value::Null);
    let (status, _) = s.get("/users/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Update.
    let (status, body) = s
        .patch(&format!("/users/{ada_id}"), json!({"name": "Ada L."}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Ada L.");
    assert_eq!(body["email"], "ada@example.com");
    let (status, _) = s
        .patch(&format!("/users/{ada_id}"), json!({"email": "nope"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = s.patch("/users/999999", json!({"name": "Nobody"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s
        .patch(
            &format!("/users/{ada_id}"),
            json!({"email": "bob@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, body) = s
        .get_until(&format!("/users/{ada_id}"), |_, b| b["name"] == "Ada L.")
        .await;
    assert_eq!(body["name"], "Ada L.");

    // Posts.
    let (status, post) = s
        .post(
            &format!("/users/{ada_id}/posts"),
            json!({"title": "Second", "body": "more notes"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{post}");
    let post_id = post["id"].as_i64().unwrap();
    let (status, _) = s
        .post("/users/999999/posts", json!({"title": "orphan"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, posts) = s
        .get_until(&format!("/users/{ada_id}/posts"), |_, b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
    assert_eq!(posts["items"][1]["title"], "Second", "{posts}");
    let (_, posts) = s
        .get(&format!("/users/{ada_id}/posts?limit=1&offset=1"))
        .await;
    assert_eq!(posts["items"][0]["id"], post_id, "{posts}");
    let (status, body) = s
        .patch(
            &format!("/posts/{post_id}"),
            json!({"title": "Second, revised"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["body"], "more notes");
    let (_, body) = s
        .get_until(&format!("/posts/{post_id}"), |_, b| {
            b["title"] == "Second, revised"
        })
        .await;
    assert_eq!(body["title"], "Second, revised");
    let (status, _) = s.delete(&format!("/posts/{post_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.delete(&format!("/posts/{post_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .get_until(&format!("/posts/{post_id}"), |s, _| {
            s == StatusCode::NOT_FOUND
        })
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete the user: their posts go with them.
    let (status, _) = s.delete(&format!("/users/{ada_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s
        .get_until(&format!("/users/{ada_id}"), |s, _| {
            s == StatusCode::NOT_FOUND
        })
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .get_until(&format!("/posts/{first_post}"), |s, _| {
            s == StatusCode::NOT_FOUND
        })
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.delete(&format!("/users/{ada_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// With every connection of a pool of one held by the test, requests wait
/// `pool_timeout` and get a 503 with the JSON body; nothing is written.
async fn unavailable<B: Store>(db: DatabaseInstance<B>) {
    let s = start(db.clone());
    let expected = json!({
        "error": "service_unavailable",
        "message": "the database is unavailable, try again later",
    });

    let held = db.async_get_db_cm_write().await.unwrap();
    let response = s
        .http
        .post(format!("{}/users", s.base))
        .json(&json!({"name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.json::<Value>().await.unwrap(), expected);
    drop(held);

    let held = db.async_get_db_cm_read().await.unwrap();
    let (status, body) = s.get("/users").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, expected);
    drop(held);

    let (status, body) = s
        .post("/users", json!({"name": "Ada", "email": "ada@example.com"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, listing) = s
        .get_until("/users", |_, b| {
            b["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    assert_eq!(names(&listing), ["Ada"]);
}

/// A directory of its own for a test's SQLite file, removed with it on drop. A
/// whole directory, so that a pool connection still opening in the background when
/// the instance is dropped cannot re-create the file: it finds no directory.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "actix-web-service-e2e-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn sqlite_url(&self) -> String {
        self.0
            .join("service.sqlite3")
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary's path: `open` on a SQLite file creates the tables, `server` serves.
#[tokio::test]
async fn sqlite_file_crud_through_server() {
    let dir = TempDir::new();
    let config = DatabaseConfig::from_url(dir.sqlite_url());
    let db = actix_web_service::open::<Sqlite>(config).await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web_service::server(listener, db, Duration::from_secs(1)).unwrap();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        });
    });
    let s = Server {
        base,
        http: reqwest::Client::new(),
        handle: receiver.recv().unwrap(),
    };
    crud(&s).await;
    s.handle.stop(true).await;
    drop(s);
    drop(dir);
}

#[tokio::test]
async fn sqlite_memory_crud() {
    let db = sqlite_memory().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    crud(&start(db)).await;
}

#[tokio::test]
async fn sqlite_pool_timeout_is_503() {
    let config = DatabaseConfig::from_url(":memory:")
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200));
    let db = actix_web_service::open::<Sqlite>(config).await.unwrap();
    unavailable(db).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_with_replica_crud() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    crud(&start(db.clone())).await;
    db.close_all_connections();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_pool_timeout_is_503() {
    let Some(schema) = pg_schema() else { return };
    let config = schema
        .config()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(300));
    let db = actix_web_service::open::<dbinstance::Postgres>(config)
        .await
        .unwrap();
    unavailable(db.clone()).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_with_replica_crud() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = database.instance().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    crud(&start(db.clone())).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_pool_timeout_is_503() {
    let Some(database) = mysql_database() else {
        return;
    };
    let config = database
        .config()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(300));
    let db = actix_web_service::open::<dbinstance::Mysql>(config)
        .await
        .unwrap();
    unavailable(db.clone()).await;
    db.close_all_connections();
}

/// Creates user 1 with post 1, then checks the edges on every route: the errors the
/// framework answers by itself are JSON, text with a NUL is a 422 naming the field,
/// a body over 64 KiB is a 413.
async fn edges(s: &Server) {
    let (status, user) = s
        .post(
            "/users",
            json!({"name": "Ada", "email": "ada@example.com", "posts": [{"title": "Notes"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(
        (user["id"].as_i64(), user["posts"][0]["id"].as_i64()),
        (Some(1), Some(1))
    );
    scenarios::every_error_is_json(&s.base, actix_web_service::store::ROUTES, 1).await;
    scenarios::a_body_over_the_limit_is_a_413(
        &s.base,
        "/users",
        dbinstance_web::DEFAULT_BODY_LIMIT,
    )
    .await;
}

#[tokio::test]
async fn sqlite_every_error_is_json() {
    let db = sqlite_memory().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    edges(&start(db)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_every_error_is_json() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    edges(&start(db.clone())).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_every_error_is_json() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = database.instance().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    edges(&start(db.clone())).await;
    db.close_all_connections();
}

/// On SQLite with one write connection, a client that takes two seconds to send its
/// body does not hold the writer: other writes go through meanwhile.
#[tokio::test]
async fn sqlite_a_slow_body_holds_no_writer() {
    let dir = TempDir::new();
    let config = DatabaseConfig::from_url(dir.sqlite_url())
        .pool_size(1)
        .pool_timeout(Duration::from_secs(5));
    let db = actix_web_service::open::<Sqlite>(config).await.unwrap();
    let s = start(db.clone());
    let base = s.base.clone();
    let report = scenarios::a_slow_body_holds_no_writer(
        &s.base,
        "/users",
        json!({"name": "Slow", "email": "slow@example.com"}),
        |http, i| {
            http.post(format!("{base}/users")).json(
                &json!({"name": format!("Fast {i}"), "email": format!("fast{i}@example.com")}),
            )
        },
    )
    .await;
    eprintln!("slow client: {report:?}");
    drop(s);
    db.close_all_connections();
}
