//! The orphanage: connects that outlive the checkout that started them.

use super::conn::Pooled;
use super::connector::Recipe;
use super::failure::ConnectFailure;
use crate::backend::Backend;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Connects on a task of its own, so that a checkout cancelled mid-connect does not
/// waste the connection: it is kept here for the next one. deadpool connects inside
/// the caller's future; without this a storm of short timeouts throws every new
/// connection away, the pool never grows, and each retry pays a fresh connect.
pub(crate) struct Orphanage<C> {
    ready: Mutex<Vec<Pooled<C>>>,
    /// Connects still running whose caller has gone.
    unclaimed: AtomicUsize,
    arrived: tokio::sync::Notify,
    /// The pool's size: more orphans than that would never be used.
    max: usize,
}

type ConnectResult<C> = Result<Pooled<C>, ConnectFailure>;

/// Hands a connect over to the orphanage when the checkout waiting for it is dropped.
struct Claim<'a, C> {
    orphanage: &'a Orphanage<C>,
    receiver: Option<tokio::sync::oneshot::Receiver<ConnectResult<C>>>,
}

impl<C> Drop for Claim<'_, C> {
    fn drop(&mut self) {
        let Some(mut receiver) = self.receiver.take() else {
            return;
        };
        // Counted first: once closed, the connect task's send fails and it
        // delivers to the orphanage, uncounting it.
        self.orphanage.unclaimed.fetch_add(1, Ordering::AcqRel);
        receiver.close();
        if let Ok(result) = receiver.try_recv() {
            // Sent before the close: the task will not deliver it.
            self.orphanage.unclaimed.fetch_sub(1, Ordering::AcqRel);
            if let Ok(conn) = result {
                self.orphanage.keep(conn);
            }
        }
    }
}

impl<C> Orphanage<C> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            ready: Mutex::new(Vec::new()),
            unclaimed: AtomicUsize::new(0),
            arrived: tokio::sync::Notify::new(),
            max,
        }
    }

    fn take(&self) -> Option<Pooled<C>> {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn keep(&self, conn: Pooled<C>) {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        if ready.len() < self.max {
            ready.push(conn);
        }
        drop(ready);
        self.arrived.notify_one();
    }
}

impl<C: Send + 'static> Orphanage<C> {
    pub(crate) async fn create<B>(self: &Arc<Self>, recipe: &Arc<Recipe<B>>) -> ConnectResult<C>
    where
        B: Backend<AsyncConnection = C>,
    {
        let deadline = tokio::time::Instant::now() + recipe.options.connect_timeout;
        // A connect someone else abandoned is already on its way: wait for it
        // rather than open one more.
        loop {
            let arrived = self.arrived.notified();
            if let Some(conn) = self.take() {
                return Ok(conn);
            }
            if self.unclaimed.load(Ordering::Acquire) == 0
                || tokio::time::timeout_at(deadline, arrived).await.is_err()
            {
                break;
            }
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (recipe, orphanage) = (recipe.clone(), self.clone());
        tokio::spawn(async move {
            let result = recipe.connect_async().await;
            if let Err(unclaimed) = sender.send(result) {
                orphanage.unclaimed.fetch_sub(1, Ordering::AcqRel);
                match unclaimed {
                    Ok(conn) => orphanage.keep(conn),
                    Err(_) => orphanage.arrived.notify_one(),
                }
            }
        });
        let mut claim = Claim {
            orphanage: self,
            receiver: Some(receiver),
        };
        let result = match claim.receiver.as_mut() {
            Some(receiver) => receiver.await,
            None => unreachable!("the receiver is taken only on drop"),
        };
        claim.receiver = None;
        result.unwrap_or_else(|_| Err(ConnectFailure::new("the connect task stopped")))
    }
}
