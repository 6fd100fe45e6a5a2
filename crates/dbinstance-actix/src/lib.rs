#![doc = include_str!("../README.md")]

mod health;
mod rejection;
mod session;
/// Test support, from the core crate (feature `testing`).
#[cfg(feature = "testing")]
pub use dbinstance::testing;
mod tx;

pub use health::{health, HealthResponse};
pub use rejection::DbRejection;
pub use session::{DbRead, DbWrite};
pub use tx::{DbTx, DbTxMiddleware, DbTxService};
