//! The pool gauges, set when the application asks (the `metrics` feature): the
//! histograms and the timeout counter are recorded as things happen, but a gauge
//! set on every checkout would cost every checkout, so they are set from the
//! pools' state when a scrape or an export is due.

use super::DatabaseInstance;
use crate::backend::Backend;

impl<B: Backend> DatabaseInstance<B> {
    /// Sets the gauges of every pool from its state now, as
    /// [`pool_stats`](Self::pool_stats) reads it: `db.client.connection.count`
    /// (`db.client.connection.state` = `idle` / `used`), `.max`, `.idle.max`,
    /// `.idle.min` and `.pending_requests`. Call it before rendering a scrape (or
    /// on the exporter's interval); the histograms and the `.timeouts` counter are
    /// recorded as connections are opened, checked out and returned. The metrics go
    /// to the recorder that was installed when this instance was built: install it
    /// first. docs/guide.md lists every metric.
    ///
    /// ```
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
    /// db.record_metrics(); // without a recorder: nothing happens
    /// # Ok::<(), dbinstance::Error>(())
    /// ```
    pub fn record_metrics(&self) {
        if let Ok(pools) = self.pools() {
            pools.record_gauges();
        }
    }
}
