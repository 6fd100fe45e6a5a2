//! The health route: the instance's async health report as JSON, with a status
//! code a load balancer understands.

use crate::rejection::json_response;
use crate::session::Db;
use axum_core::response::{IntoResponse, Response};
use dbinstance::{Backend, HealthReport};
use http::StatusCode;

/// A [`HealthReport`] as a response: **200** with the report as JSON when the
/// database is healthy or degraded (a replica is down but reads still have somewhere
/// to go), **503** when it is unhealthy.
///
/// ```
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_axum::HealthResponse;
///
/// async fn ready(db: DatabaseInstance<Sqlite>) -> HealthResponse {
///     HealthResponse(db.async_health_report().await)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct HealthResponse(pub HealthReport);

impl HealthResponse {
    /// 200 when the report says the database is available, 503 when not.
    pub fn status(&self) -> StatusCode {
        if self.0.is_available() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl IntoResponse for HealthResponse {
    fn into_response(self) -> Response {
        let status = self.status();
        if status != StatusCode::OK {
            tracing::warn!(status = ?self.0.status, database = %self.0.database, "dbinstance-axum: health check failed");
        }
        json_response(status, serde_json::to_vec(&self.0).unwrap_or_default())
    }
}

/// The health handler: pings the primary and every replica through the async pools
/// (all at once, within the config's `health_timeout`) and answers with a
/// [`HealthResponse`].
///
/// Mount it on any router whose state gives the instance
/// (`DatabaseInstance<B>: FromRef<S>`):
///
/// ```
/// use axum::{routing::get, Router};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app: Router = Router::new()
///     .route("/health", get(dbinstance_axum::health::<Sqlite>))
///     .with_state(db);
/// # Ok(()) }
/// ```
///
/// The body is the report: `{"status":"healthy","database":"...","pools":[...]}`,
/// one line per pool with its reachability, latency, occupancy and counters (never a
/// password).
pub async fn health<B: Backend>(Db(db): Db<B>) -> HealthResponse {
    HealthResponse(db.async_health_report().await)
}
