//! Where the async SQLite wrapper runs its calls: on tokio's blocking threads, as
//! diesel-async's own spawner does. A call whose future is dropped before it ends
//! (a cancelled request, a timeout) must still end before the connection is used
//! again: the wrapper shares the connection with the running call and panics if it
//! is touched meanwhile. diesel-async's spawner waits in `block_in_place`, which
//! itself panics on a current-thread runtime, and every actix-web worker is one.
//! This one waits until the connection has no call under way: under
//! `block_in_place` on a multi-thread runtime, so other tasks go on, and plainly
//! elsewhere, which stalls that thread only while one SQLite call finishes.

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::future::BoxFuture;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;

/// Runs an async SQLite connection's calls; see the module's documentation.
#[derive(Debug)]
pub struct SqliteSpawner {
    runtime: Runtime,
    /// Shared with every call of the connection under way.
    calls: Arc<Calls>,
}

#[derive(Debug)]
enum Runtime {
    /// The runtime the connection was opened on.
    Handle(Handle),
    /// A runtime of its own, for a connection opened outside any runtime.
    Own(tokio::runtime::Runtime),
}

impl SqliteSpawner {
    /// Runs the calls of a connection on `handle`'s blocking threads.
    pub(crate) fn new(handle: Handle) -> Self {
        Self {
            runtime: Runtime::Handle(handle),
            calls: Arc::default(),
        }
    }
}

impl SpawnBlocking for SqliteSpawner {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        let handle = match &self.runtime {
            Runtime::Handle(handle) => handle,
            Runtime::Own(runtime) => runtime.handle(),
        };
        self.calls.in_flight.fetch_add(1, Ordering::SeqCst);
        let calls = self.calls.clone();
        let join = handle.spawn_blocking(move || {
            // `task` owns the call's share of the connection and gives it up
            // when it returns, before the call counts as ended.
            let output = task();
            calls.ended();
            output
        });
        Box::pin(Call {
            join,
            calls: self.calls.clone(),
        })
    }

    fn get_runtime() -> Self {
        let runtime = match Handle::try_current() {
            Ok(handle) => Runtime::Handle(handle),
            Err(_) => Runtime::Own(
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a current-thread tokio runtime can be built"),
            ),
        };
        Self {
            runtime,
            calls: Arc::default(),
        }
    }
}

/// The calls of one connection that have not ended.
#[derive(Debug, Default)]
struct Calls {
    in_flight: AtomicUsize,
    /// Drops waiting for the calls to end: only then is there anyone to wake,
    /// which spares every call a futex system call.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Calls {
    fn ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        // Without the lock: a waiter that misses this looks again within 10 ms.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.changed.notify_all();
        }
    }

    /// Waits until no call of the connection is under way, or `gone` says the
    /// one awaited never will end (the runtime dropped it before it started).
    fn wait_idle(&self, gone: impl Fn() -> bool) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.in_flight.load(Ordering::SeqCst) > 0 && !gone() {
            guard = self
                .changed
                .wait_timeout(guard, Duration::from_millis(10))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One call under way.
struct Call<R> {
    join: JoinHandle<R>,
    calls: Arc<Calls>,
}

impl<R> Future for Call<R> {
    type Output = Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.join).poll(cx).map_err(Box::from)
    }
}

impl<R> Drop for Call<R> {
    fn drop(&mut self) {
        if self.join.is_finished() {
            return;
        }
        let wait = || self.calls.wait_idle(|| self.join.is_finished());
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}
