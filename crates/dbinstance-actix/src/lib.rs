#![doc = include_str!("../README.md")]

mod health;
mod rejection;
mod session;
#[cfg(feature = "testing")]
pub mod testing;
mod tx;

pub use health::{health, HealthResponse};
pub use rejection::DbRejection;
pub use session::{DbRead, DbWrite};
pub use tx::{DbTx, DbTxMiddleware, DbTxService};
