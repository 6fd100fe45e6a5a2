#![doc = include_str!("../README.md")]

mod body;
mod health;
mod input;
mod name;
mod open;
mod position;
mod rejection;
#[cfg(feature = "scenarios")]
pub mod scenarios;
mod shutdown;
/// Test support, from the core crate (feature `testing`).
#[cfg(feature = "testing")]
pub use dbinstance::testing;
mod tx;

pub use body::{read_body, DEFAULT_BODY_LIMIT};
pub use health::{health_answer, health_status};
pub use input::storable_text;
pub use name::{named_instance, DatabaseName};
pub use open::open_session;
pub use position::{position_answer, request_tracker, POSITION_HEADER};
pub use rejection::{ErrorBody, Rejection, RejectionKind};
pub use shutdown::{shutdown_signal, shutdown_timeout_from_env, DEFAULT_SHUTDOWN_TIMEOUT};
pub use tx::{RequestTx, TxGuard};
