//! The pools: r2d2 for blocking code, deadpool or bb8 for async, over one shared
//! notion of a pooled connection and how to tell that it is broken.
//!
//! - `conn`: the pooled connection and its cheap health flags.
//! - `statements`: which statements of a read connection may change its session
//!   state, so that it is closed rather than reused.
//! - `breaker`: the circuit breaker each server's pools share.
//! - `demotion`: the write connections' generation, raised when a primary is
//!   found read-only after a failover.
//! - `server`: what the pools on one server share: its breaker and generation.
//! - `failure`: why a connect failed, scrubbed of secrets.
//! - `connector`: one pool's recipe: connect, name, count, trace, scrub secrets.
//! - `hooks`, `metrics`: the lifecycle hooks, and what a pool counts.
//! - `instruments`: the pool's OpenTelemetry metrics (the `metrics` feature).
//! - `r2d2`: the blocking pools, whose waiting threads take `turns` in order.
//! - `shared`: the connections shared read sessions pipeline their reads over.
//! - `async_pool`: the async facade over `deadpool` and `bb8` (each a feature), which
//!   share the `manager`; deadpool's connects go through the `orphanage`.

pub(crate) mod async_pool;
#[cfg(feature = "bb8")]
mod bb8;
mod breaker;
mod conn;
mod connector;
#[cfg(feature = "deadpool")]
mod deadpool;
mod demotion;
mod failure;
pub(crate) mod hooks;
mod instruments;
mod manager;
pub(crate) mod metrics;
#[cfg(feature = "deadpool")]
mod orphanage;
mod query_log;
pub(crate) mod r2d2;
mod server;
#[cfg(feature = "postgres")]
pub(crate) mod shared;
mod statements;
mod turns;

pub(crate) use breaker::Breaker;
pub(crate) use conn::Pooled;
pub(crate) use connector::Recipe;
pub use hooks::{ConnectionInfo, HookError};
pub use metrics::{PoolCounts, PoolState, PoolStats, Utilization};
pub(crate) use server::ServerState;
