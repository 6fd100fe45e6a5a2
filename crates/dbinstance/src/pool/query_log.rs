//! The statement log (the config's `echo`) and the slow-statement log, read from
//! diesel's instrumentation beside the broken-connection watch, so that logging
//! never switches that watch off. The SQL text is logged without its bind values
//! unless `echo_bind_values` asks for them: they may hold personal data or secrets.

use super::statements::SqlOnly;
use crate::config::QueryLogOptions;
use crate::id::PoolId;
use diesel::connection::{DebugQuery, InstrumentationEvent};
use std::fmt::Write as _;
use std::time::Instant;

/// The `tracing` target of every statement logged by `echo`.
pub(crate) const ECHO_TARGET: &str = "dbinstance::sql";
/// The `tracing` target of every statement slower than `slow_statement_threshold`.
pub(crate) const SLOW_TARGET: &str = "dbinstance::sql::slow";

/// One connection's statement log.
#[derive(Debug)]
pub(super) struct QueryLog {
    options: QueryLogOptions,
    pool: PoolId,
    /// When the statement under way started; only kept with a slow threshold.
    started: Option<Instant>,
}

impl QueryLog {
    /// The log of a connection of `pool`, or `None` when nothing is to be logged,
    /// so that a connection without a log pays nothing per statement.
    pub(super) fn new(options: QueryLogOptions, pool: &PoolId) -> Option<Self> {
        (options.echo || options.slow_threshold.is_some()).then(|| Self {
            options,
            pool: pool.clone(),
            started: None,
        })
    }

    pub(super) fn on_event(&mut self, event: &InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                if self.options.echo {
                    let sql = self.text(*query);
                    tracing::info!(target: ECHO_TARGET, pool = %self.pool, "{sql}");
                }
                if self.options.slow_threshold.is_some() {
                    self.started = Some(Instant::now());
                }
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let (Some(threshold), Some(started)) =
                    (self.options.slow_threshold, self.started.take())
                else {
                    return;
                };
                let elapsed = started.elapsed();
                if elapsed >= threshold {
                    let sql = self.text(*query);
                    #[allow(clippy::cast_possible_truncation)]
                    let elapsed_ms = elapsed.as_millis() as u64;
                    tracing::warn!(
                        target: SLOW_TARGET,
                        pool = %self.pool,
                        elapsed_ms,
                        failed = error.is_some(),
                        "slow statement: {sql}"
                    );
                }
            }
            _ => {}
        }
    }

    /// The statement as it is logged: its SQL, and its bind values only when asked.
    fn text(&self, query: &dyn DebugQuery) -> String {
        let mut text = String::new();
        if self.options.bind_values {
            let _ = write!(text, "{query}");
        } else {
            // Stops at the bind values on purpose: the error is the sink's.
            let _ = write!(SqlOnly(&mut text), "{query}");
        }
        text
    }
}
