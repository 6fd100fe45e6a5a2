//! The behaviours of the users-and-posts API that both example services must show,
//! driven over HTTP (feature `scenarios`): their end-to-end tests call these on each
//! backend, so the axum and the actix-web service are checked by the same list.

pub mod metrics;

use crate::ROUTES;
use dbinstance::{Backend, DatabaseInstance};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// An HTTP client for a running service.
#[derive(Debug, Clone)]
pub struct Client {
    /// `http://ADDR`.
    pub base: String,
    /// The client.
    pub http: reqwest::Client,
}

impl Client {
    /// A client for the service at `base` (`http://ADDR`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    #[allow(missing_docs)]
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
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

    #[allow(missing_docs)]
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    #[allow(missing_docs)]
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    #[allow(missing_docs)]
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    #[allow(missing_docs)]
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// GETs `path` until `done` holds (reads may go to a replica that is a moment
    /// behind the primary), for at most 10 s; returns the last answer.
    pub async fn get_until(
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
pub async fn crud(s: &Client) {
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
pub async fn unavailable<B: Backend>(base: &str, db: &DatabaseInstance<B>) {
    let s = Client::new(base);
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

/// Creates user 1 with post 1, then checks the edges on every route: the errors the
/// framework answers by itself are JSON, text with a NUL is a 422 naming the field,
/// a body over 64 KiB is a 413.
pub async fn edges(s: &Client) {
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
    dbinstance_web::scenarios::every_error_is_json(&s.base, ROUTES, 1).await;
    dbinstance_web::scenarios::a_body_over_the_limit_is_a_413(
        &s.base,
        "/users",
        dbinstance_web::DEFAULT_BODY_LIMIT,
    )
    .await;
    head_answers_where_get_does(s).await;
    a_long_mistyped_input_is_quoted_in_part(s).await;
}

/// serde's message for a mistyped field quotes the value whole: the answer keeps
/// the message's first KiB, so it still says what was wrong, but never echoes a
/// long input back.
async fn a_long_mistyped_input_is_quoted_in_part(s: &Client) {
    let (status, body) = s
        .post(
            "/users",
            json!({"name": "Bo", "email": "bo@example.com", "posts": "A".repeat(2000)}),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("AAAA"), "{body}");
    assert!(message.len() < 1100, "{} bytes: {message}", message.len());
}

/// HTTP asks every resource that answers GET to answer HEAD too, and load
/// balancers' health checks often use it: 200 and no body, on every such route
/// (`{id}` is 1, which [`edges`] created).
async fn head_answers_where_get_does(s: &Client) {
    for route in ROUTES.iter().filter(|r| r.methods.contains(&"GET")) {
        let url = format!("{}{}", s.base, route.path.replace("{id}", "1"));
        let response = s.http.head(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "HEAD {url}");
        let body = response.bytes().await.unwrap();
        assert!(
            body.is_empty(),
            "HEAD {url} sent a body of {} bytes",
            body.len()
        );
    }
}

/// How many clients send a burst at once in [`shutdown_lets_a_burst_finish`].
const SHUTDOWN_CLIENTS: usize = 8;

/// A user with 300 posts: one transaction of some 900 statements, so that the
/// burst queues on SQLite's single writer for a while.
fn burst(http: &reqwest::Client, base: &str, i: usize) -> reqwest::RequestBuilder {
    let posts: Vec<_> = (0..300)
        .map(|n| json!({"title": format!("post {n}"), "body": "shutdown test"}))
        .collect();
    http.post(format!("{base}/users")).json(
        &json!({"name": format!("user {i}"), "email": format!("u{i}@example.com"), "posts": posts}),
    )
}

/// Starts the service `binary` (which prints `<name>: http://ADDR` first) in
/// `scratch`, sends `signal` (`TERM` or `INT`) during a burst of writes, and checks
/// that every request in flight was answered, the listener closed and the process
/// exited 0.
pub async fn shutdown_lets_a_burst_finish(
    binary: &std::path::Path,
    name: &str,
    scratch: &std::path::Path,
    signal: &str,
) {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    let report = dbinstance_web::scenarios::signal_during_a_burst(
        binary,
        name,
        scratch,
        &[("SHUTDOWN_TIMEOUT_SECS", "30")],
        SHUTDOWN_CLIENTS,
        burst,
        signal,
    )
    .await;
    eprintln!("{name} SIG{signal}: {report:?}");
    assert_eq!(report.cut, 0, "requests cut: {report:#?}");
    assert_eq!(report.completed, SHUTDOWN_CLIENTS, "{report:#?}");
    assert!(
        report.answered_after_signal > 0,
        "the burst was over before the signal, the test shows nothing: {report:#?}"
    );
    assert_eq!(report.exit_code, Some(0), "{report:#?}");
    assert!(report.listener_closed, "{report:#?}");
}
