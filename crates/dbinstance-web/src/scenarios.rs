//! The behaviours every adapter must show, written once and driven over HTTP against a
//! running server (feature `scenarios`). Each adapter's tests serve the same small app
//! on its framework and call these functions; a difference between the adapters
//! fails a test here rather than in production.
//!
//! The app under test serves, on an [`instance`] (SQLite, the [`items`] table), with
//! the adapter's transaction layer:
//!
//! | route | what the handler does |
//! |---|---|
//! | `POST /ok` | `DbTx`: inserts `ok`, answers 201 |
//! | `POST /not-found` | `DbTx`: inserts, answers 404 |
//! | `POST /db-error` | `DbTx`: inserts, then a duplicate key, returned with `?` |
//! | `POST /panic` | `DbTx`: inserts, then panics |
//! | `POST /write/{commit}` | `DbWrite`: inserts `write`, commits when `commit` is `true`, answers 200 |
//! | `POST /tx-then-json` | `DbTx` and a JSON string body: inserts the string, answers 201 |
//! | `GET /count` | `DbRead`: the number of rows, as JSON |
//! | `GET /health` | the adapter's health handler |

use crate::{ErrorBody, RejectionKind};
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite, TableOptions};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use serde_json::Value;

mod edges;
pub use edges::{
    a_body_over_the_limit_is_a_413, a_slow_body_holds_no_writer, every_error_is_json, JsonBody,
    Route, SlowBodyReport,
};
mod shutdown;
pub use shutdown::{signal_during_a_burst, ShutdownReport};
pub mod named;
pub mod read_your_writes;

/// The table of the app under test.
pub mod schema {
    #![allow(missing_docs)]
    diesel::table! {
        items (id) {
            id -> Integer,
            name -> Text,
        }
    }
}
pub use schema::items;

/// An instance on `config` with the [`items`] table created.
///
/// # Panics
/// When the database cannot be opened (a test's setup).
pub async fn instance(config: DatabaseConfig) -> DatabaseInstance<Sqlite> {
    let db = DatabaseInstance::<Sqlite>::builder(config)
        .build_async()
        .await
        .expect("the test database opens");
    db.schema()
        .register::<items::table>(TableOptions::new().auto_increment("id"))
        .expect("items is registered once");
    db.async_create_tables()
        .await
        .expect("the items table is created");
    db
}

/// The names in [`items`], by id.
///
/// # Panics
/// When the database cannot be read.
pub async fn rows(db: &DatabaseInstance<Sqlite>) -> Vec<String> {
    let mut conn = db.async_get_db_cm_read().await.expect("a read session");
    items::table
        .select(items::name)
        .order(items::id)
        .load(&mut *conn)
        .await
        .expect("items can be read")
}

/// Asserts that `response` is a JSON error of `kind` with the one body shape, and
/// returns the body.
///
/// # Panics
/// When it is not.
pub async fn expect_error(
    response: reqwest::Response,
    status: StatusCode,
    kind: RejectionKind,
) -> ErrorBody {
    assert_eq!(response.status(), status, "{}", response.url());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{status} answered as {content_type:?}"
    );
    let text = response.text().await.expect("the body arrives");
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    let fields: Vec<&String> = value.as_object().map_or(vec![], |o| o.keys().collect());
    assert_eq!(fields, ["error", "message"], "{text}");
    let body: ErrorBody = serde_json::from_value(value).expect("the error shape");
    assert_eq!(body.error, kind.code(), "{text}");
    assert!(!body.message.is_empty(), "{text}");
    body
}

/// Commit on a 2xx answer; rollback on another status, a database error through
/// `?` (500, no SQL in the body), and a panic.
///
/// # Panics
/// When the app does not behave so.
pub async fn db_tx_commits_on_success_and_rolls_back_otherwise(
    base: &str,
    db: &DatabaseInstance<Sqlite>,
) {
    let http = reqwest::Client::new();
    let response = http.post(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(rows(db).await, ["ok"]);

    let response = http.post(format!("{base}/not-found")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = http.post(format!("{base}/db-error")).send().await.unwrap();
    let body = expect_error(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        RejectionKind::Database,
    )
    .await;
    assert_eq!(body.message, "internal database error");

    // A panic after an insert: a 500 where a layer catches panics, a dropped
    // connection where none does; rolled back either way.
    if let Ok(response) = http.post(format!("{base}/panic")).send().await {
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    assert_eq!(rows(db).await, ["ok"], "only the committed row is left");
    let count: i64 = http
        .get(format!("{base}/count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// A `DbWrite` keeps only what its handler committed.
///
/// # Panics
/// When the app does not behave so.
pub async fn db_write_keeps_only_what_is_committed(base: &str, db: &DatabaseInstance<Sqlite>) {
    let http = reqwest::Client::new();
    for commit in ["false", "true"] {
        let response = http
            .post(format!("{base}/write/{commit}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(rows(db).await, ["write"]);
}

/// A malformed body next to a `DbTx` is refused, and the transaction the extractor
/// may have opened meanwhile is not kept (nor its connection lost): the next request
/// gets the writer.
///
/// # Panics
/// When the app does not behave so.
pub async fn a_malformed_body_next_to_db_tx_keeps_nothing(
    base: &str,
    db: &DatabaseInstance<Sqlite>,
) {
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let response = http
            .post(format!("{base}/tx-then-json"))
            .header("content-type", "application/json")
            .body("not json")
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, RejectionKind::BadRequest).await;
    }
    let response = http
        .post(format!("{base}/tx-then-json"))
        .json("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(rows(db).await, ["kept"]);
}

/// With the only write and then the only read connection held by the test (a pool
/// of one, a short `pool_timeout`), requests get a 503 with `Retry-After: 1` and the
/// JSON body; then they succeed again.
///
/// # Panics
/// When the app does not behave so.
pub async fn a_pool_timeout_is_a_503_with_retry_after(base: &str, db: &DatabaseInstance<Sqlite>) {
    let http = reqwest::Client::new();
    let held = db.async_get_db_cm_write().await.unwrap();
    let response = http.post(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let body = expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        RejectionKind::Unavailable,
    )
    .await;
    assert_eq!(body.message, "the database is unavailable, try again later");
    drop(held);

    let held = db.async_get_db_cm_read().await.unwrap();
    let response = http.get(format!("{base}/count")).send().await.unwrap();
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        RejectionKind::Unavailable,
    )
    .await;
    drop(held);

    let response = http.post(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(rows(db).await, ["ok"]);
}

/// `/health` is 200 with the report, and 503 with it once the instance is closed;
/// the session extractors answer 503 then too. Closes `db`: run it last.
///
/// # Panics
/// When the app does not behave so.
pub async fn health_is_200_then_503_once_closed(base: &str, db: &DatabaseInstance<Sqlite>) {
    let http = reqwest::Client::new();
    let response = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["status"], "healthy", "{report}");
    assert!(report["pools"].as_array().is_some_and(|p| !p.is_empty()));

    db.close_all_connections();
    let response = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["status"], "unhealthy", "{report}");

    let response = http.get(format!("{base}/count")).send().await.unwrap();
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        RejectionKind::Unavailable,
    )
    .await;
}

/// On an app served without the transaction layer, `POST /ok` is a 500 with the
/// `internal_error` body and writes nothing. (The adapter's own test checks that the
/// rejection's kind is [`RejectionKind::MissingTxLayer`].)
///
/// # Panics
/// When the app does not behave so.
pub async fn db_tx_without_its_layer_is_a_500(base: &str, db: &DatabaseInstance<Sqlite>) {
    let response = reqwest::Client::new()
        .post(format!("{base}/ok"))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        RejectionKind::MissingTxLayer,
    )
    .await;
    assert!(rows(db).await.is_empty());
}
