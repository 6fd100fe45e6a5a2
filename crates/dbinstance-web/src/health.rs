//! The health route's answer: a [`HealthReport`] as a status a load balancer
//! understands and a JSON body.

use dbinstance::HealthReport;
use http::StatusCode;

/// **200** when the database is healthy or degraded (a replica is down but reads
/// still have somewhere to go), **503** when it is unhealthy.
pub fn health_status(report: &HealthReport) -> StatusCode {
    if report.is_available() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The status and the JSON body of the health answer; a failed check is logged.
///
/// The body is the report: `{"status":"healthy","database":"...","pools":[...]}`, one
/// line per pool with its reachability, latency, occupancy and counters (never a
/// password).
pub fn health_answer(report: &HealthReport) -> (StatusCode, Vec<u8>) {
    let status = health_status(report);
    if status != StatusCode::OK {
        tracing::warn!(status = ?report.status, database = %report.database, "dbinstance: health check failed");
    }
    (status, serde_json::to_vec(report).unwrap_or_default())
}
