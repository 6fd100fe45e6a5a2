//! Where a PostgreSQL standby stands against its primary: replay lag in bytes and
//! seconds.

use crate::backend::ReplicaLag;

/// Replay lag on a standby; the seconds are 0 when everything received is replayed
/// (the replay timestamp alone grows while the primary is idle).
pub(super) const LAG: &str = "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8 AS lag_bytes, \
     CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
     ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag_seconds";

#[derive(diesel::QueryableByName)]
pub(super) struct PgLag {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    lag_bytes: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    lag_seconds: Option<f64>,
}

impl PgLag {
    pub(super) fn into_lag(self) -> ReplicaLag {
        ReplicaLag {
            bytes: self.lag_bytes,
            seconds: self.lag_seconds,
        }
    }
}
