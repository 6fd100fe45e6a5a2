//! The health handler: the instance's async health report as JSON, with a status
//! code a load balancer understands ([`dbinstance_web::health_answer`]).

use actix_web::body::BoxBody;
use actix_web::http::{header, StatusCode};
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

impl Responder for HealthResponse {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        let (status, body) = dbinstance_web::health_answer(&self.0);
        let status =
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(body)
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
pub async fn health<B: Backend>(db: web::Data<DatabaseInstance<B>>) -> HealthResponse {
    HealthResponse(db.async_health_report().await)
}
