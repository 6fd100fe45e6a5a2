//! The connections shared read sessions use at once. On PostgreSQL, diesel-async
//! sends a statement as soon as its future is polled and matches the answers in
//! order, so the reads of many tasks are pipelined over one connection: a few such
//! connections serve what would take a pool of many, one round trip at a time.
//!
//! Each slot holds one connection, opened on first use by the recipe of the read
//! pool it stands beside (so with its TLS, read-only setting, hooks and watch),
//! and replaced once its watch says it must not serve again: broken, past
//! `pool_recycle`, or its session state changed. After a failure that may mean the
//! server is gone, the next session pings it first. Sessions still running on the
//! old connection keep it until they end.

use super::conn::Pooled;
use super::failure::ConnectFailure;
use super::Recipe;
use crate::error::Result;
use crate::Postgres;
use arc_swap::ArcSwapOption;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One connection many sessions use.
pub(crate) type SharedConnection = Arc<Pooled<AsyncPgConnection>>;

pub(crate) struct SharedConnections {
    recipe: Arc<Recipe<Postgres>>,
    slots: Box<[Slot]>,
    /// Round robin over the slots.
    next: AtomicUsize,
}

struct Slot {
    conn: ArcSwapOption<Pooled<AsyncPgConnection>>,
    /// Held while the slot's connection is opened, so that one task opens it and
    /// the others wait for it rather than open their own.
    opening: tokio::sync::Mutex<()>,
}

impl Slot {
    /// The slot's connection, if it may serve without a ping first.
    fn serving(&self) -> Option<SharedConnection> {
        self.conn
            .load_full()
            .filter(|conn| conn.closing(false).is_none() && !conn.is_suspect())
    }
}

impl std::fmt::Debug for SharedConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConnections")
            .field("pool", &self.recipe.id)
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl SharedConnections {
    /// `count` slots beside the read pool `recipe` belongs to; none opened yet.
    pub(crate) fn new(recipe: Arc<Recipe<Postgres>>, count: u32) -> Self {
        Self {
            recipe,
            slots: (0..count.max(1))
                .map(|_| Slot {
                    conn: ArcSwapOption::empty(),
                    opening: tokio::sync::Mutex::new(()),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn recipe(&self) -> &Arc<Recipe<Postgres>> {
        &self.recipe
    }

    /// The next slot's connection, opened (or replaced) first when it cannot serve.
    pub(crate) async fn get(&self) -> Result<SharedConnection> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        if let Some(conn) = slot.serving() {
            return Ok(conn);
        }
        self.recipe.check_honoured()?;
        self.recipe.admit(|| false)?;
        let _opening = slot.opening.lock().await;
        if let Some(old) = slot.conn.load_full() {
            if old.is_suspect() && !self.answers(&old).await {
                old.mark_broken();
            }
            if !old.must_close(false, &self.recipe.counters, &self.recipe.id) {
                return Ok(old);
            }
            slot.conn.store(None);
        }
        let conn = Arc::new(
            self.recipe
                .connect_async()
                .await
                .map_err(|e| e.into_error(&self.recipe.id))?,
        );
        slot.conn.store(Some(Arc::clone(&conn)));
        Ok(conn)
    }

    /// Whether a suspect connection still answers a ping within `connect_timeout`.
    async fn answers(&self, conn: &SharedConnection) -> bool {
        let limit = self.recipe.options.connect_timeout;
        let mut shared: &AsyncPgConnection = conn;
        let ping = shared.batch_execute("SELECT 1");
        let failure = match tokio::time::timeout(limit, ping).await {
            Ok(Ok(())) => {
                conn.clear_suspect();
                return true;
            }
            Ok(Err(e)) => self.recipe.failure(&e),
            Err(_) => ConnectFailure::unanswered("a ping", limit),
        };
        tracing::debug!(pool = %self.recipe.id, %failure, "dbinstance: shared read connection replaced");
        false
    }

    /// Empties every slot: sessions running keep their connection until they end.
    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            slot.conn.store(None);
        }
    }
}
