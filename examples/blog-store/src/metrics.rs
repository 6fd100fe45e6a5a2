//! `GET /metrics` for both services: the process's Prometheus recorder, and the
//! scrape body (the pools' gauges refreshed, then every metric in Prometheus text
//! format).

use dbinstance::{Backend, DatabaseInstance};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// The bucket bounds OpenTelemetry advises for database durations, in seconds.
const BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// How often the recorder folds the histogram samples it has gathered into its
/// buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The Prometheus recorder of the process, installed on the first call, with a
/// thread that keeps it up. Call it before the instance is built: each pool
/// registers its metrics with the recorder installed when it is built.
///
/// # Panics
/// When another recorder was installed first, or no thread can be started.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            // Real histograms rather than summaries, so that a server can add them
            // up across instances.
            .set_buckets_for_metric(Matcher::Prefix("db.client.connection".into()), &BUCKETS)
            .and_then(PrometheusBuilder::install_recorder)
            .expect("no other metrics recorder is installed");
        // The recorder keeps every histogram sample (one per checkout) until
        // upkeep or a scrape folds it in: unscraped, the process would grow.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("prometheus-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            })
            .expect("a thread for the metrics' upkeep can be started");
        handle
    })
}

/// The body of a scrape: sets the pools' gauges from their state now, then renders
/// every metric of the process.
pub fn render<B: Backend>(db: &DatabaseInstance<B>) -> String {
    db.record_metrics();
    prometheus().render()
}

/// The content type of [`render`]'s body.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
