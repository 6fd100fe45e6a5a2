//! One pool's metrics under OpenTelemetry's names for database client connection
//! pools, emitted through the `metrics` facade (the `metrics` feature): the library
//! records, the application installs a recorder (a Prometheus exporter, an
//! OpenTelemetry bridge), and without one every call is a no-op.
//!
//! Every handle is registered once, when the pool is built, against the recorder
//! installed then: the checkout path only calls `record` on a handle it holds,
//! with no key to build, no lookup and no allocation. The gauges are set from the
//! pool's own state when the application asks
//! ([`DatabaseInstance::record_metrics`](crate::DatabaseInstance::record_metrics)),
//! so that a checkout does not pay for them.
//!
//! Without the feature the handles are gone and every method is empty.

#[cfg(feature = "metrics")]
use super::metrics::PoolState;
use std::time::Instant;

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, Histogram, Unit};

/// The attribute naming the pool on every metric.
#[cfg(feature = "metrics")]
const POOL_NAME: &str = "db.client.connection.pool.name";
/// The attribute telling idle from used connections on `db.client.connection.count`.
#[cfg(feature = "metrics")]
const STATE: &str = "db.client.connection.state";

#[cfg(feature = "metrics")]
const COUNT: &str = "db.client.connection.count";
#[cfg(feature = "metrics")]
const MAX: &str = "db.client.connection.max";
#[cfg(feature = "metrics")]
const IDLE_MAX: &str = "db.client.connection.idle.max";
#[cfg(feature = "metrics")]
const IDLE_MIN: &str = "db.client.connection.idle.min";
#[cfg(feature = "metrics")]
const PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
#[cfg(feature = "metrics")]
const TIMEOUTS: &str = "db.client.connection.timeouts";
#[cfg(feature = "metrics")]
const CREATE_TIME: &str = "db.client.connection.create_time";
#[cfg(feature = "metrics")]
const WAIT_TIME: &str = "db.client.connection.wait_time";
#[cfg(feature = "metrics")]
const USE_TIME: &str = "db.client.connection.use_time";

/// A reading of the clock for a metric, taken only when the metrics are compiled
/// in: without them a checkout reads no clock on their account.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moment {
    #[cfg(feature = "metrics")]
    at: Instant,
}

impl Moment {
    pub(crate) fn now() -> Self {
        Self::at(Instant::now())
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn at(instant: Instant) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            at: instant,
        }
    }
}

/// The handles of one pool's metrics.
#[derive(Debug)]
pub(crate) struct Instruments {
    #[cfg(feature = "metrics")]
    handles: Handles,
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct Handles {
    idle: Gauge,
    used: Gauge,
    max: Gauge,
    idle_max: Gauge,
    idle_min: Gauge,
    pending_requests: Gauge,
    timeouts: Counter,
    create_time: Histogram,
    wait_time: Histogram,
    use_time: Histogram,
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
impl Instruments {
    /// Registers the metrics of the pool called `name` with the recorder installed
    /// now.
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            describe();
            let name = name.to_owned();
            let count = |state: &'static str| metrics::gauge!(COUNT, POOL_NAME => name.clone(), STATE => state);
            Self {
                handles: Handles {
                    idle: count("idle"),
                    used: count("used"),
                    max: metrics::gauge!(MAX, POOL_NAME => name.clone()),
                    idle_max: metrics::gauge!(IDLE_MAX, POOL_NAME => name.clone()),
                    idle_min: metrics::gauge!(IDLE_MIN, POOL_NAME => name.clone()),
                    pending_requests: metrics::gauge!(PENDING_REQUESTS, POOL_NAME => name.clone()),
                    timeouts: metrics::counter!(TIMEOUTS, POOL_NAME => name.clone()),
                    create_time: metrics::histogram!(CREATE_TIME, POOL_NAME => name.clone()),
                    wait_time: metrics::histogram!(WAIT_TIME, POOL_NAME => name.clone()),
                    use_time: metrics::histogram!(USE_TIME, POOL_NAME => name),
                },
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self {}
    }

    /// A connect begun at `started` has opened a connection.
    pub(crate) fn connection_created(&self, started: Moment) {
        #[cfg(feature = "metrics")]
        self.handles.create_time.record(started.at.elapsed());
    }

    /// A checkout begun at `started` has its connection; returns the moment it
    /// was handed out.
    pub(crate) fn checked_out(&self, started: Moment, out: Moment) {
        #[cfg(feature = "metrics")]
        self.handles
            .wait_time
            .record(out.at.saturating_duration_since(started.at));
    }

    /// A session gave back at `back` the connection handed out at `out`.
    pub(crate) fn checked_in(&self, out: Moment, back: Instant) {
        #[cfg(feature = "metrics")]
        self.handles
            .use_time
            .record(back.saturating_duration_since(out.at));
    }

    /// A checkout gave up waiting for a free connection.
    pub(crate) fn timed_out(&self) {
        #[cfg(feature = "metrics")]
        self.handles.timeouts.increment(1);
    }

    /// Sets the gauges from the pool's state; `idle_min` is the number of idle
    /// connections the pool library keeps open (0 where it keeps none).
    #[cfg(feature = "metrics")]
    pub(crate) fn observe(&self, state: &PoolState, idle_min: u32) {
        let h = &self.handles;
        h.idle.set(state.idle);
        h.used.set(state.in_use);
        h.max.set(state.max);
        // No pool library caps idle connections below the pool's own maximum.
        h.idle_max.set(state.max);
        h.idle_min.set(idle_min);
        h.pending_requests.set(state.waiting);
    }
}

/// Units and descriptions, as OpenTelemetry gives them; a recorder keeps the last
/// it was told, so telling it again for every pool is harmless.
#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        COUNT,
        Unit::Count,
        "The number of connections that are currently in the state described by the state attribute."
    );
    describe_gauge!(
        MAX,
        Unit::Count,
        "The maximum number of open connections allowed."
    );
    describe_gauge!(
        IDLE_MAX,
        Unit::Count,
        "The maximum number of idle open connections allowed."
    );
    describe_gauge!(
        IDLE_MIN,
        Unit::Count,
        "The minimum number of idle open connections allowed."
    );
    describe_gauge!(
        PENDING_REQUESTS,
        Unit::Count,
        "The number of current pending requests for an open connection."
    );
    describe_counter!(
        TIMEOUTS,
        Unit::Count,
        "The number of connection timeouts that have occurred trying to obtain a connection from the pool."
    );
    describe_histogram!(
        CREATE_TIME,
        Unit::Seconds,
        "The time it took to create a new connection."
    );
    describe_histogram!(
        WAIT_TIME,
        Unit::Seconds,
        "The time it took to obtain an open connection from the pool."
    );
    describe_histogram!(
        USE_TIME,
        Unit::Seconds,
        "The time between borrowing a connection and returning it to the pool."
    );
}
