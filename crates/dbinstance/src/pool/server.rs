//! What every pool on one server shares, blocking and async, write and read.

use super::breaker::Breaker;
use super::demotion::Demotion;
use std::sync::Arc;

/// One server's shared state.
#[derive(Debug, Clone)]
pub(crate) struct ServerState {
    /// Whether it answers.
    pub(crate) breaker: Arc<Breaker>,
    /// Whether it is still the primary its write connections were opened to.
    pub(crate) demotion: Arc<Demotion>,
}
