//! The pool metrics: OpenTelemetry's names, units and attributes, one pool name per
//! pool, and figures that agree with `pool_stats()`, on SQLite and PostgreSQL.
//! Each test records into a recorder of its own, installed only while its
//! instance is built: the handles a pool registers then keep recording into it.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, PoolStats};
use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const POOL_NAME: &str = "db.client.connection.pool.name";
const STATE: &str = "db.client.connection.state";

const GAUGES: [&str; 5] = [
    "db.client.connection.count",
    "db.client.connection.max",
    "db.client.connection.idle.max",
    "db.client.connection.idle.min",
    "db.client.connection.pending_requests",
];
const HISTOGRAMS: [&str; 3] = [
    "db.client.connection.create_time",
    "db.client.connection.wait_time",
    "db.client.connection.use_time",
];
const TIMEOUTS: &str = "db.client.connection.timeouts";

/// What a recorder holds, by metric name, pool name and connection state.
struct Figures {
    values: HashMap<(String, String, Option<String>), DebugValue>,
    units: HashMap<String, Option<Unit>>,
    kinds: HashMap<String, MetricKind>,
}

impl Figures {
    /// Empties the recorder (a snapshot swaps its values out).
    fn take(recorder: &DebuggingRecorder) -> Self {
        let mut figures = Figures {
            values: HashMap::new(),
            units: HashMap::new(),
            kinds: HashMap::new(),
        };
        for (key, unit, _description, value) in recorder.snapshotter().snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let mut pool = None;
            let mut state = None;
            for label in key.labels() {
                match label.key() {
                    POOL_NAME => pool = Some(label.value().to_owned()),
                    STATE => state = Some(label.value().to_owned()),
                    other => panic!("{}: unexpected attribute {other}", key.name()),
                }
            }
            let name = key.name().to_owned();
            let pool = pool.unwrap_or_else(|| panic!("{name} has no {POOL_NAME}"));
            assert_eq!(
                state.is_some(),
                name == "db.client.connection.count",
                "{name}: {STATE}"
            );
            figures.units.insert(name.clone(), unit);
            figures.kinds.insert(name.clone(), kind);
            figures.values.insert((name, pool, state), value);
        }
        figures
    }

    fn value(&self, name: &str, pool: &str, state: Option<&str>) -> &DebugValue {
        self.values
            .get(&(name.into(), pool.into(), state.map(Into::into)))
            .unwrap_or_else(|| panic!("no {name} for {pool} {state:?}"))
    }

    fn gauge(&self, name: &str, pool: &str, state: Option<&str>) -> f64 {
        match self.value(name, pool, state) {
            DebugValue::Gauge(v) => v.0,
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn counter(&self, name: &str, pool: &str) -> u64 {
        match self.value(name, pool, None) {
            DebugValue::Counter(v) => *v,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn samples(&self, name: &str, pool: &str) -> Vec<f64> {
        match self.value(name, pool, None) {
            DebugValue::Histogram(v) => v.iter().map(|x| x.0).collect(),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn pools(&self) -> BTreeSet<String> {
        self.values
            .keys()
            .map(|(_, pool, _)| pool.clone())
            .collect()
    }

    /// Every name with its kind and unit, every pool of `stats` and no other, and
    /// each pool's figures as `stats` has them.
    fn check(&self, stats: &[PoolStats], idle_min: impl Fn(&PoolStats) -> u32) {
        for name in GAUGES {
            assert_eq!(self.kinds.get(name), Some(&MetricKind::Gauge), "{name}");
            assert_eq!(self.units.get(name), Some(&Some(Unit::Count)), "{name}");
        }
        for name in HISTOGRAMS {
            assert_eq!(self.kinds.get(name), Some(&MetricKind::Histogram), "{name}");
            assert_eq!(self.units.get(name), Some(&Some(Unit::Seconds)), "{name}");
        }
        assert_eq!(self.kinds.get(TIMEOUTS), Some(&MetricKind::Counter));
        let names: BTreeSet<String> = stats.iter().map(|s| s.name.clone()).collect();
        assert_eq!(names.len(), stats.len(), "pool names are unique: {names:?}");
        assert_eq!(self.pools(), names);
        for s in stats {
            let pool = s.name.as_str();
            let count = "db.client.connection.count";
            let f = |v: u32| f64::from(v);
            assert_eq!(
                self.gauge(count, pool, Some("idle")),
                f(s.state.idle),
                "{pool}"
            );
            assert_eq!(
                self.gauge(count, pool, Some("used")),
                f(s.state.in_use),
                "{pool}"
            );
            let max = self.gauge("db.client.connection.max", pool, None);
            assert_eq!(max, f(s.state.max), "{pool}");
            let idle_max = self.gauge("db.client.connection.idle.max", pool, None);
            assert_eq!(idle_max, f(s.state.max), "{pool}");
            let min = self.gauge("db.client.connection.idle.min", pool, None);
            assert_eq!(min, f(idle_min(s)), "{pool}");
            let pending = self.gauge("db.client.connection.pending_requests", pool, None);
            assert_eq!(pending, f(s.state.waiting), "{pool}");
            let timeouts = self.counter(TIMEOUTS, pool);
            assert_eq!(timeouts, s.counts.checkout_timeouts, "{pool}");
            let created = self.samples("db.client.connection.create_time", pool);
            assert_eq!(created.len() as u64, s.counts.opened, "{pool}");
            // Every checkout here became a session, which has handed its
            // connection back or is still out.
            let waited = self.samples("db.client.connection.wait_time", pool);
            let used = self.samples("db.client.connection.use_time", pool);
            let out = s.state.in_use as usize;
            assert_eq!(waited.len(), used.len() + out, "{pool}");
            for x in created.iter().chain(&waited).chain(&used) {
                assert!(x.is_finite() && *x >= 0.0, "{pool}: {x}");
            }
        }
    }
}

/// Waits until no connect is on its way: a checkout that gave up may have left
/// one going, and its connection would land between two readings.
fn settle<B: dbinstance::Backend>(db: &DatabaseInstance<B>) {
    let reading = || {
        db.pool_stats()
            .into_iter()
            .map(|s| (s.state, s.counts))
            .collect::<Vec<_>>()
    };
    let settled = common::eventually(Duration::from_secs(10), || {
        let before = reading();
        std::thread::sleep(Duration::from_millis(200));
        before == reading()
    });
    assert!(settled, "the pools kept changing");
}

fn stats_of<'a>(stats: &'a [PoolStats], name: &str) -> &'a PoolStats {
    stats.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pools_report_their_figures_under_opentelemetry_names() {
    let file = common::TempDb::new("metrics");
    let recorder = DebuggingRecorder::new();
    let config = DatabaseConfig::from_url(file.url())
        .min_idle(0)
        .pool_timeout(Duration::from_millis(200));
    let db = metrics::with_local_recorder(&recorder, || {
        DatabaseInstance::<dbinstance::Sqlite>::builder(config)
            .pool_name_prefix("app")
            .build()
    })
    .unwrap();

    for _ in 0..3 {
        db.get_db_cm_write().unwrap().commit().unwrap();
        drop(db.get_db_cm_read().unwrap());
        db.async_get_db_cm_write()
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        drop(db.async_get_db_cm_read().await.unwrap());
    }
    // The SQLite write pools hold one connection: a second checkout times out.
    let held = db.get_db_cm_write().unwrap();
    assert!(matches!(db.get_db_cm_write(), Err(Error::Timeout { .. })));
    let held_async = db.async_get_db_cm_write().await.unwrap();
    let second = db.async_get_db_cm_write().await;
    assert!(matches!(second, Err(Error::Timeout { .. })));

    db.record_metrics();
    let stats = db.pool_stats();
    let figures = Figures::take(&recorder);
    let names: BTreeSet<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "app/write/sync",
            "app/write/async",
            "app/read/primary/sync",
            "app/read/primary/async",
        ])
    );
    figures.check(&stats, |_| 0);
    for pool in ["app/write/sync", "app/write/async"] {
        let s = stats_of(&stats, pool);
        assert_eq!(s.counts.checkout_timeouts, 1, "{pool}");
        assert_eq!(s.state.in_use, 1, "{pool}: the held session");
        // Three sessions handed back; the held one is not back yet.
        let used = figures.samples("db.client.connection.use_time", pool);
        assert_eq!(used.len(), 3, "{pool}");
    }
    drop(held);
    held_async.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pools_under_load_report_what_pool_stats_reports() {
    let Some(url) = common::pg() else { return };
    let mut config = DatabaseConfig::from_url(&url)
        .pool_size(2)
        .min_idle(1)
        .pool_timeout(Duration::from_millis(100));
    let replica = common::pg_replica();
    if let Some(replica) = &replica {
        config = config.read_url(replica);
    }
    let recorder = DebuggingRecorder::new();
    let db = metrics::with_local_recorder(&recorder, || {
        DatabaseInstance::<dbinstance::Postgres>::builder(config)
            .pool_name_prefix("pg")
            .build()
    })
    .unwrap();

    // Many more tasks than connections, each holding its connection for a
    // while: checkouts wait, and some give up.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (db, blocking_db) = (db.clone(), db.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let session = if i % 2 == 0 {
                    db.async_get_db_cm_write().await
                } else {
                    db.async_get_db_cm_read().await
                };
                if let Ok(mut session) = session {
                    use diesel_async::SimpleAsyncConnection;
                    session
                        .batch_execute("SELECT pg_sleep(0.03)")
                        .await
                        .unwrap();
                    session.commit().await.unwrap();
                }
            }
        }));
        tasks.push(tokio::task::spawn_blocking(move || {
            for _ in 0..5 {
                if let Ok(mut session) = blocking_db.get_db_cm_read() {
                    use diesel::connection::SimpleConnection;
                    session.batch_execute("SELECT pg_sleep(0.03)").unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    settle(&db);

    db.record_metrics();
    let stats = db.pool_stats();
    let figures = Figures::take(&recorder);
    let mut expected = vec!["pg/write/sync", "pg/write/async"];
    if replica.is_some() {
        expected.extend(["pg/read/replica0/sync", "pg/read/replica0/async"]);
    }
    expected.extend(["pg/read/primary/sync", "pg/read/primary/async"]);
    let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, expected);
    // deadpool keeps no idle minimum; r2d2 keeps `min_idle`.
    figures.check(&stats, |s| match s.pool.kind {
        dbinstance::PoolKind::Sync => 1,
        dbinstance::PoolKind::Async => 0,
    });
    let waited = figures.samples("db.client.connection.wait_time", "pg/write/async");
    assert!(!waited.is_empty());
}
