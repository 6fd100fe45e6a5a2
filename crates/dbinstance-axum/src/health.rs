//! The health route: the instance's async health report as JSON, with a status
//! code a load balancer understands ([`dbinstance_web::health_answer`]).

use crate::rejection::json_response;
use crate::session::Db;
use axum_core::response::{IntoResponse, Response};
use dbinstance::{Backend, HealthReport};

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

impl IntoResponse for HealthResponse {
    fn into_response(self) -> Response {
        let (status, body) = dbinstance_web::health_answer(&self.0);
        json_response(status, body)
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
pub async fn health<B: Backend>(Db(db): Db<B>) -> HealthResponse {
    HealthResponse(db.async_health_report().await)
}
