//! The health handler: the instance's async health report as JSON, with a status
//! code a load balancer understands.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use dbinstance::{Backend, DatabaseInstance, HealthReport};

/// A [`HealthReport`] as a response: **200** with the report as JSON when the
/// database is healthy or degraded (a replica is down but reads still have somewhere
/// to go), **503** when it is unhealthy.
///
/// ```
/// use actix_web::web;
/// use dbinstance::{DatabaseInstance, Sqlite};
/// use dbinstance_actix::HealthResponse;
///
/// async fn ready(db: web::Data<DatabaseInstance<Sqlite>>) -> HealthResponse {
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

impl Responder for HealthResponse {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        let status = self.status();
        if status != StatusCode::OK {
            tracing::warn!(status = ?self.0.status, database = %self.0.database, "dbinstance-actix: health check failed");
        }
        HttpResponse::build(status).json(&self.0)
    }
}

/// The health handler: pings the primary and every replica through the async pools
/// (all at once, within the config's `health_timeout`) and answers with a
/// [`HealthResponse`]. The instance is the app's `web::Data<DatabaseInstance<B>>`.
///
/// ```
/// use actix_web::{web, App};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app = App::new()
///     .app_data(web::Data::new(db))
///     .route("/health", web::get().to(dbinstance_actix::health::<Sqlite>));
/// # Ok(()) }
/// ```
///
/// The body is the report: `{"status":"healthy","database":"...","pools":[...]}`,
/// one line per pool with its reachability, latency, occupancy and counters (never a
/// password).
pub async fn health<B: Backend>(db: web::Data<DatabaseInstance<B>>) -> HealthResponse {
    HealthResponse(db.async_health_report().await)
}
