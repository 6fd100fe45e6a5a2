//! Turns for checkouts: callers that wait for a connection are served in the
//! order they came. r2d2 and bb8 wake one waiter when a connection returns, but a
//! caller arriving at that moment can take it first, and a woken waiter that loses
//! waits again: under load most checkouts are quick and a few wait many times over
//! (a p99 of 20 ms and more at 64 threads on 16 connections). A caller must hold a
//! turn, one of the pool's `max_size`, to check out; tokio's semaphore hands a
//! returned turn to the longest waiter and lets no newcomer take it first.
//! Blocking checkouts on a network server take turns, and bb8's (see `bb8`);
//! deadpool's own wait is already in order.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A checkout's turn: given back when dropped.
pub(crate) type Turn = OwnedSemaphorePermit;

/// A pool library's checked-out connection `C`, with the turn its checkout took
/// (none where the pool keeps no turns).
pub(crate) struct InTurn<C> {
    conn: C,
    /// Dropped after `conn` (fields drop in order): the connection is back in its
    /// pool before the next waiter's turn begins.
    _turn: Option<Turn>,
}

impl<C> InTurn<C> {
    pub(crate) fn new(conn: C, turn: Option<Turn>) -> Self {
        Self { conn, _turn: turn }
    }
}

impl<C: Deref> Deref for InTurn<C> {
    type Target = C::Target;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<C: DerefMut> DerefMut for InTurn<C> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

#[derive(Debug)]
pub(crate) struct Turns(Arc<Semaphore>);

impl Turns {
    /// `count` turns: as many as the pool has connections.
    pub(crate) fn new(count: u32) -> Self {
        Self(Arc::new(Semaphore::new(count as usize)))
    }

    /// A turn if one is free and nobody waits for one.
    pub(crate) fn now(&self) -> Option<Turn> {
        Arc::clone(&self.0).try_acquire_owned().ok()
    }

    /// The next turn for a task, behind the tasks and threads that came first;
    /// `None` only if the turns were closed, which they never are.
    #[cfg(feature = "bb8")]
    pub(crate) async fn next(&self) -> Option<Turn> {
        Arc::clone(&self.0).acquire_owned().await.ok()
    }

    /// The next turn, waiting behind the threads that came first, for at most
    /// `limit`.
    pub(crate) fn wait(&self, limit: Duration) -> Option<Turn> {
        block_within(Arc::clone(&self.0).acquire_owned(), limit)?.ok()
    }
}

/// Wakes a thread parked in [`block_within`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread until it completes or `limit` has passed; on the
/// limit the future is dropped, which for a semaphore's acquire leaves the queue.
fn block_within<F: Future>(future: F, limit: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + limit;
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // A wake-up may come early or spuriously: the poll above tells.
        std::thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_given_back_goes_to_the_thread_waiting_for_it() {
        let turns = Arc::new(Turns::new(1));
        let held = turns.now().unwrap();
        let waiter = {
            let turns = Arc::clone(&turns);
            std::thread::spawn(move || turns.wait(Duration::from_secs(30)).is_some())
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_wait_ends_at_its_limit_and_leaves_the_queue() {
        let turns = Turns::new(1);
        let held = turns.now().unwrap();
        assert!(turns.wait(Duration::from_millis(30)).is_none());
        drop(held);
        assert!(
            turns.now().is_some(),
            "the timed-out waiter still held its place"
        );
    }
}
