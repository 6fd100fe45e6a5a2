//! The load generators: N tokio tasks or N threads running one operation in a loop
//! until a deadline, each recording its latencies in a log-linear histogram.

use std::future::Future;
use std::time::{Duration, Instant};

/// Any error a stack can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One checkout plus one query, done by an async task.
pub trait AsyncOp: Clone + Send + Sync + 'static {
    /// Checks a connection out, runs the query, returns the connection.
    fn run(&self) -> impl Future<Output = Result<(), BoxError>> + Send + '_;
}

/// One checkout plus one query, done by a thread.
pub trait SyncOp: Sync {
    /// Checks a connection out, runs the query, returns the connection.
    fn run(&self) -> Result<(), BoxError>;
}

/// Sub-buckets per power of two: 64 gives about 1.5% resolution.
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Latencies in nanoseconds, log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
        }
    }
}

impl Histogram {
    fn index(ns: u64) -> usize {
        if ns < SUB as u64 {
            return ns as usize;
        }
        let msb = 63 - ns.leading_zeros();
        let shift = msb - SUB_BITS;
        let top = (ns >> shift) as usize; // in SUB..2*SUB
        (shift as usize + 1) * SUB + (top - SUB)
    }

    /// The middle of bucket `i`, in nanoseconds.
    fn value(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let shift = (i / SUB - 1) as u32;
        let top = (SUB + i % SUB) as u64;
        (top << shift) + ((1u64 << shift) >> 1)
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(Self::value(i));
            }
        }
        Duration::from_nanos(Self::value(BUCKETS - 1))
    }
}

/// What one timed run of one stack gave.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Operations per second over the whole run.
    pub ops_per_sec: f64,
    /// Median latency of one checkout plus query.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// CPU other programs took meanwhile, when known.
    pub noise: Option<crate::noise::Noise>,
}

impl Sample {
    /// CPU µs per operation of this process and of the servers, when known.
    pub fn cpu_per_op(&self) -> Option<(f64, f64)> {
        let per_op = |cores: f64| cores / self.ops_per_sec * 1e6;
        self.noise.map(|n| (per_op(n.client), per_op(n.server)))
    }

    fn new(histogram: &Histogram, elapsed: Duration) -> Self {
        Self {
            ops_per_sec: histogram.count() as f64 / elapsed.as_secs_f64(),
            p50: histogram.quantile(0.50),
            p99: histogram.quantile(0.99),
            noise: None,
        }
    }
}

/// Runs `op` on `tasks` tokio tasks until `duration` has passed. Each task stops
/// after the operation that crosses the deadline; the rate counts them all over the
/// time until the last one stopped.
pub async fn run_async<O: AsyncOp>(
    op: &O,
    tasks: usize,
    duration: Duration,
) -> Result<Sample, BoxError> {
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut histogram = Histogram::default();
                let mut now = Instant::now();
                while now < deadline {
                    op.run().await?;
                    let done = Instant::now();
                    histogram.record(done - now);
                    now = done;
                }
                Ok::<_, BoxError>(histogram)
            })
        })
        .collect();
    let mut total = Histogram::default();
    let mut first_error = None;
    for handle in handles {
        match handle.await? {
            Ok(histogram) => total.merge(&histogram),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Sample::new(&total, start.elapsed())),
    }
}

/// Runs `op` on `threads` threads until `duration` has passed, like [`run_async`].
pub fn run_sync<O: SyncOp>(op: &O, threads: usize, duration: Duration) -> Result<Sample, BoxError> {
    let start = Instant::now();
    let deadline = start + duration;
    let results: Vec<Result<Histogram, BoxError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut histogram = Histogram::default();
                    let mut now = Instant::now();
                    while now < deadline {
                        op.run()?;
                        let done = Instant::now();
                        histogram.record(done - now);
                        now = done;
                    }
                    Ok(histogram)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a load thread panicked".into()))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let mut total = Histogram::default();
    for result in results {
        total.merge(&result?);
    }
    Ok(Sample::new(&total, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_two_percent() {
        for ns in [
            0u64,
            1,
            63,
            64,
            65,
            100,
            1_000,
            12_345,
            999_999,
            40_000_000,
            u64::MAX / 2,
        ] {
            let back = Histogram::value(Histogram::index(ns));
            let err = back.abs_diff(ns) as f64 / ns.max(1) as f64;
            assert!(err <= 0.02, "{ns} -> {back}");
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut h = Histogram::default();
        for us in 1..=1000 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 - 500.0).abs() < 10.0, "{p50}");
        assert!((p99 - 990.0).abs() < 20.0, "{p99}");
    }
}
