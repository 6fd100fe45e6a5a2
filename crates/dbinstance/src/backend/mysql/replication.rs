//! Where a MySQL or MariaDB replica stands: `Seconds_Behind_Master`.

use crate::backend::ReplicaLag;

pub(super) const LAG: &str = "SHOW SLAVE STATUS";

#[derive(diesel::QueryableByName)]
pub(super) struct SlaveStatus {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    #[diesel(column_name = "Seconds_Behind_Master")]
    seconds_behind: Option<i64>,
}

impl SlaveStatus {
    pub(super) fn into_lag(self) -> ReplicaLag {
        ReplicaLag {
            bytes: None,
            #[allow(clippy::cast_precision_loss)]
            seconds: self.seconds_behind.map(|s| s as f64),
        }
    }
}
