#![doc = include_str!("../README.md")]

mod body;
mod health;
mod position;
mod rejection;
mod session;
/// Test support, from the core crate (feature `testing`).
#[cfg(feature = "testing")]
pub use dbinstance::testing;
mod tx;

pub use body::{extractor_errors, json_errors, BufferBody, BufferBodyService};
/// The neutral layer's rejection and its kinds, to match on.
pub use dbinstance_web::{database_name, DatabaseName, Rejection, RejectionKind};
pub use health::{health, HealthResponse};
pub use position::{DbPosition, DbPositionService};
pub use rejection::DbRejection;
pub use session::{Db, DbNamed, DbRead, DbReadFrom, DbWrite, DbWriteTo};
pub use tx::{DbTx, DbTxMiddleware, DbTxService};
