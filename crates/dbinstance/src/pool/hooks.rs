//! Lifecycle hooks: after a connection opens, before a checkout hands one out, after
//! a session gives one back. Named after the lifecycle as sqlx names its hooks;
//! unlike sqlx's, `before_checkout` and `after_checkin` get a [`ConnectionInfo`]
//! (which pool, the connection's age and idle time), not the connection.

use crate::backend::Backend;
use crate::id::PoolId;
use diesel::connection::Instrumentation;
use futures_util::future::BoxFuture;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a hook is told about the connection it runs for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionInfo<'a> {
    /// The pool the connection belongs to.
    pub pool: &'a PoolId,
    /// Time since the connection was opened.
    pub age: Duration,
    /// Time since the connection was last handed back (zero for a new one).
    pub idle: Duration,
}

/// A hook's refusal: the connection is dropped and the message logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

impl From<diesel::result::Error> for HookError {
    fn from(error: diesel::result::Error) -> Self {
        HookError(error.to_string())
    }
}

type SyncConnectHook<B> = dyn Fn(&mut <B as Backend>::Connection, &ConnectionInfo<'_>) -> Result<(), HookError>
    + Send
    + Sync;
type AsyncConnectHook<B> = dyn for<'c> Fn(
        &'c mut <B as Backend>::AsyncConnection,
        &'c ConnectionInfo<'c>,
    ) -> BoxFuture<'c, Result<(), HookError>>
    + Send
    + Sync;
type CheckoutHook = dyn Fn(&ConnectionInfo<'_>) -> bool + Send + Sync;
type CheckinHook = dyn Fn(&ConnectionInfo<'_>) + Send + Sync;
type InstrumentationFactory = dyn Fn(&PoolId) -> Box<dyn Instrumentation> + Send + Sync;

/// The hooks of one instance; set them on the
/// [`InstanceBuilder`](crate::InstanceBuilder).
pub(crate) struct Hooks<B: Backend> {
    pub(crate) after_connect: Option<Arc<SyncConnectHook<B>>>,
    pub(crate) async_after_connect: Option<Arc<AsyncConnectHook<B>>>,
    pub(crate) before_checkout: Option<Arc<CheckoutHook>>,
    pub(crate) after_checkin: Option<Arc<CheckinHook>>,
    /// Makes the user's instrumentation for each new connection.
    pub(crate) instrumentation: Option<Arc<InstrumentationFactory>>,
}

impl<B: Backend> Default for Hooks<B> {
    fn default() -> Self {
        Self {
            after_connect: None,
            async_after_connect: None,
            before_checkout: None,
            after_checkin: None,
            instrumentation: None,
        }
    }
}

impl<B: Backend> Clone for Hooks<B> {
    fn clone(&self) -> Self {
        Self {
            after_connect: self.after_connect.clone(),
            async_after_connect: self.async_after_connect.clone(),
            before_checkout: self.before_checkout.clone(),
            after_checkin: self.after_checkin.clone(),
            instrumentation: self.instrumentation.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Hooks<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("after_connect", &self.after_connect.is_some())
            .field("async_after_connect", &self.async_after_connect.is_some())
            .field("before_checkout", &self.before_checkout.is_some())
            .field("after_checkin", &self.after_checkin.is_some())
            .field("instrumentation", &self.instrumentation.is_some())
            .finish()
    }
}

impl<B: Backend> Hooks<B> {
    pub(crate) fn set_after_connect<F>(&mut self, hook: F)
    where
        F: Fn(&mut B::Connection, &ConnectionInfo<'_>) -> Result<(), HookError>
            + Send
            + Sync
            + 'static,
    {
        self.after_connect = Some(Arc::new(hook));
    }

    pub(crate) fn set_async_after_connect<F>(&mut self, hook: F)
    where
        F: for<'c> Fn(
                &'c mut B::AsyncConnection,
                &'c ConnectionInfo<'c>,
            ) -> BoxFuture<'c, Result<(), HookError>>
            + Send
            + Sync
            + 'static,
    {
        self.async_after_connect = Some(Arc::new(hook));
    }

    pub(crate) fn set_before_checkout<F>(&mut self, hook: F)
    where
        F: Fn(&ConnectionInfo<'_>) -> bool + Send + Sync + 'static,
    {
        self.before_checkout = Some(Arc::new(hook));
    }

    pub(crate) fn set_after_checkin<F>(&mut self, hook: F)
    where
        F: Fn(&ConnectionInfo<'_>) + Send + Sync + 'static,
    {
        self.after_checkin = Some(Arc::new(hook));
    }

    pub(crate) fn set_instrumentation<F, I>(&mut self, make: F)
    where
        F: Fn(&PoolId) -> I + Send + Sync + 'static,
        I: Instrumentation,
    {
        self.instrumentation = Some(Arc::new(move |pool: &PoolId| {
            Box::new(make(pool)) as Box<dyn Instrumentation>
        }));
    }

    /// The instrumentation a new connection of `pool` forwards its events to: the
    /// user's, or else diesel's default one, which the pool's own watch replaced.
    pub(crate) fn instrumentation_for(&self, pool: &PoolId) -> Option<Box<dyn Instrumentation>> {
        match &self.instrumentation {
            Some(make) => Some(make(pool)),
            None => diesel::connection::get_default_instrumentation(),
        }
    }
}
