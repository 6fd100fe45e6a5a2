//! `GET /metrics` against `pool_stats()`: scraped while requests run and once they
//! are done, read back from the Prometheus text format.

use super::Client;
use dbinstance::{Backend, DatabaseInstance, PoolStats};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

/// One scrape: each sample by metric name and labels, as the exporter names them
/// (dots become underscores).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    async fn of(s: &Client) -> Self {
        let response = s
            .http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = &response.headers()["content-type"];
        assert!(content_type.to_str().unwrap().starts_with("text/plain"));
        let text = response.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse().unwrap())
            })
            .collect();
        Scrape(samples)
    }

    /// The sample of `metric` for `pool` (and `state`), if the exporter has one.
    fn get(&self, metric: &str, pool: &str, state: Option<&str>) -> Option<f64> {
        let mut labels = format!("db_client_connection_pool_name=\"{pool}\"");
        if let Some(state) = state {
            labels.push_str(&format!(",db_client_connection_state=\"{state}\""));
        }
        self.0.get(&format!("{metric}{{{labels}}}")).copied()
    }

    fn gauge(&self, metric: &str, pool: &str, state: Option<&str>) -> f64 {
        self.get(metric, pool, state)
            .unwrap_or_else(|| panic!("no {metric} for {pool} {state:?}"))
    }

    /// How many samples a histogram of `pool` holds (none when never recorded).
    fn samples(&self, histogram: &str, pool: &str) -> f64 {
        self.get(&format!("{histogram}_count"), pool, None)
            .unwrap_or(0.0)
    }
}

/// The figures that hold at any moment: the pool's bounds.
fn check_bounds(scrape: &Scrape, stats: &PoolStats) {
    let pool = stats.name.as_str();
    let max = f64::from(stats.state.max);
    assert_eq!(scrape.gauge("db_client_connection_max", pool, None), max);
    assert_eq!(
        scrape.gauge("db_client_connection_idle_max", pool, None),
        max
    );
    let idle = scrape.gauge("db_client_connection_count", pool, Some("idle"));
    let used = scrape.gauge("db_client_connection_count", pool, Some("used"));
    assert!(idle >= 0.0 && used >= 0.0 && idle + used <= max, "{pool}");
    let min = scrape.gauge("db_client_connection_idle_min", pool, None);
    assert!(min <= max, "{pool}");
}

/// The figures that hold once nothing moves: those of `pool_stats()`.
fn check_figures(scrape: &Scrape, stats: &PoolStats) {
    check_bounds(scrape, stats);
    let pool = stats.name.as_str();
    let state = &stats.state;
    let idle = scrape.gauge("db_client_connection_count", pool, Some("idle"));
    let used = scrape.gauge("db_client_connection_count", pool, Some("used"));
    assert_eq!(idle, f64::from(state.idle), "{pool}");
    assert_eq!(used, f64::from(state.in_use), "{pool}");
    assert_eq!(idle + used, f64::from(state.size), "{pool}");
    let pending = scrape.gauge("db_client_connection_pending_requests", pool, None);
    assert_eq!(pending, f64::from(state.waiting), "{pool}");
    let timeouts = scrape
        .get("db_client_connection_timeouts", pool, None)
        .unwrap_or(0.0);
    assert_eq!(timeouts, stats.counts.checkout_timeouts as f64, "{pool}");
    let created = scrape.samples("db_client_connection_create_time", pool);
    assert_eq!(created, stats.counts.opened as f64, "{pool}");
    // A checkout that is not a session (a health ping) has no use time.
    let waited = scrape.samples("db_client_connection_wait_time", pool);
    let used_time = scrape.samples("db_client_connection_use_time", pool);
    assert!(waited >= used_time, "{pool}");
}

/// Waits until the pools hold still: a checkout that gave up may have left a
/// connect on its way.
async fn settle<B: Backend>(db: &DatabaseInstance<B>) {
    let reading = || {
        db.pool_stats()
            .into_iter()
            .map(|s| (s.state, s.counts))
            .collect::<Vec<_>>()
    };
    for _ in 0..50 {
        let before = reading();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if before == reading() {
            return;
        }
    }
    panic!("the pools kept changing");
}

/// Scrapes `/metrics` while concurrent requests create and list users: every pool
/// of `db` is there, within its bounds. Once the requests are done, the figures of
/// every pool are those of `pool_stats()`: connections idle and used, callers
/// waiting, timeouts, connections opened (`create_time`'s count), and a wait time
/// for every use time. The service must have been built after
/// [`crate::metrics::prometheus`] was installed, on `db`, whose pool names no other
/// instance of the process shares.
pub async fn metrics_agree_with_pool_stats<B: Backend>(s: &Client, db: &DatabaseInstance<B>) {
    // A replica may not have replayed the new tables yet.
    let (status, body) = s
        .get_until("/users", |status, _| status == StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let load: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                for j in 0..6 {
                    if j % 2 == 0 {
                        let email = format!("load-{i}-{j}@example.com");
                        let (status, body) = s
                            .post("/users", json!({"name": "Load", "email": email}))
                            .await;
                        assert_eq!(status, StatusCode::CREATED, "{body}");
                    } else {
                        let (status, body) = s.get("/users?limit=5").await;
                        assert_eq!(status, StatusCode::OK, "{body}");
                    }
                }
            })
        })
        .collect();
    loop {
        let scrape = Scrape::of(s).await;
        for stats in db.pool_stats() {
            check_bounds(&scrape, &stats);
        }
        if load.iter().all(|task| task.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for task in load {
        task.await.unwrap();
    }

    settle(db).await;
    let scrape = Scrape::of(s).await;
    let all = db.pool_stats();
    for stats in &all {
        check_figures(&scrape, stats);
    }
    let waited: f64 = all
        .iter()
        .map(|p| scrape.samples("db_client_connection_wait_time", &p.name))
        .sum();
    assert!(waited >= 96.0, "every request checked out a connection");
}
