//! Databases by name: a [`DatabaseManager`] with `main` and `audit`, each an
//! in-memory SQLite database with the [`items`](super::items) table, served with:
//!
//! | route | what the handler does |
//! |---|---|
//! | `POST /named/audit` | `DbWriteTo<Sqlite, Audit>`: inserts `audit`, commits, then reads it back through `DbNamed<Sqlite, Audit>` in the same request; answers 201 with that count |
//! | `GET /named/audit/count` | `DbReadFrom<Sqlite, Audit>`: the number of rows, as JSON |
//! | `GET /named/main/count` | `DbReadFrom<Sqlite, Main>`: the same on `main` |
//! | `GET /named/billing/count` | `DbReadFrom<Sqlite, Billing>`: a name the manager does not know |

use super::{expect_error, items};
use crate::RejectionKind;
use dbinstance::{DatabaseConfig, DatabaseManager, ManagerConfig, Sqlite, TableOptions};
use reqwest::StatusCode;

crate::database_name!(
    /// The manager's default database.
    pub Main = "main"
);
crate::database_name!(
    /// The manager's second database.
    pub Audit = "audit"
);
crate::database_name!(
    /// A name the manager does not know.
    pub Billing = "billing"
);

/// The manager the app serves.
///
/// # Panics
/// When a database cannot be opened (a test's setup).
pub async fn manager() -> DatabaseManager {
    let manager = DatabaseManager::new_async(
        ManagerConfig::new()
            .database("main", DatabaseConfig::from_url(":memory:"))
            .database("audit", DatabaseConfig::from_url(":memory:"))
            .default_database("main"),
    )
    .await
    .expect("the test databases open");
    for name in ["main", "audit"] {
        let db = manager.get::<Sqlite>(name).expect("a SQLite database");
        db.schema()
            .register::<items::table>(TableOptions::new().auto_increment("id"))
            .expect("items is registered once");
        db.async_create_tables()
            .await
            .expect("the items table is created");
    }
    manager
}

/// A write to `audit` lands there and only there, and a read of it later in the
/// same request sees it; an unknown name is a 500 in the one error shape.
///
/// # Panics
/// When the app does not behave so.
pub async fn databases_by_name(base: &str) {
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/named/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let read_in_request: i64 = response.json().await.unwrap();
    assert_eq!(read_in_request, 1, "the request reads its own write");
    for (name, expected) in [("audit", 1), ("main", 0)] {
        let count: i64 = http
            .get(format!("{base}/named/{name}/count"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(count, expected, "rows in {name}");
    }
    let response = http
        .get(format!("{base}/named/billing/count"))
        .send()
        .await
        .unwrap();
    let body = expect_error(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        RejectionKind::Database,
    )
    .await;
    assert!(!body.message.contains("billing"), "{}", body.message);
}
