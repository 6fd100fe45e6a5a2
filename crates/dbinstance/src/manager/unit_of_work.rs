//! One unit of work over several databases: a write session on each, committed
//! all or rolled back all as far as the servers allow. Without two-phase commit
//! the sessions commit one after the other, in the order they were enlisted, and a
//! failure after the first commit leaves the earlier ones committed; the error
//! says which. With [`two_phase`](UnitOfWork::two_phase), on PostgreSQL only,
//! every session first prepares its transaction (`PREPARE TRANSACTION`), and only
//! when all did does any commit.

use crate::backend::{Backend, BackendKind};
use crate::error::{Error, Result};
use crate::session::{AsyncSession, Session};
use futures_util::future::BoxFuture;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};

/// A write session in a unit of work, whatever its backend.
trait Participant: Send {
    fn backend(&self) -> BackendKind;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn commit(self: Box<Self>) -> Result<()>;
    fn rollback(self: Box<Self>) -> Result<()>;
    fn prepare(&mut self, gid: &str) -> Result<()>;
    fn finish_prepared(self: Box<Self>, gid: &str, commit: bool) -> Result<()>;
}

impl<B: Backend> Participant for Session<B> {
    fn backend(&self) -> BackendKind {
        B::KIND
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn commit(self: Box<Self>) -> Result<()> {
        (*self).commit()
    }
    fn rollback(self: Box<Self>) -> Result<()> {
        (*self).rollback()
    }
    fn prepare(&mut self, gid: &str) -> Result<()> {
        self.prepare_transaction(gid)
    }
    fn finish_prepared(self: Box<Self>, gid: &str, commit: bool) -> Result<()> {
        (*self).finish_prepared(gid, commit)
    }
}

/// Write sessions on several databases that commit together: see the module's
/// documentation, and the guide's "A unit of work over several databases".
///
/// ```
/// use dbinstance::{DatabaseConfig, DatabaseManager, ManagerConfig, Sqlite};
/// use diesel::connection::SimpleConnection;
///
/// let manager = DatabaseManager::new(
///     ManagerConfig::new()
///         .database("orders", DatabaseConfig::from_url(":memory:"))
///         .database("ledger", DatabaseConfig::from_url(":memory:"))
///         .default_database("orders"),
/// )?;
/// let mut work = manager.unit_of_work(["orders", "ledger"])?;
/// work.session::<Sqlite>("orders")?
///     .batch_execute("CREATE TABLE orders (id INTEGER)")?;
/// work.session::<Sqlite>("ledger")?
///     .batch_execute("CREATE TABLE entries (id INTEGER)")?;
/// work.commit()?; // orders first, then ledger
/// # Ok::<(), dbinstance::Error>(())
/// ```
#[must_use = "a unit of work rolls back everything when dropped"]
pub struct UnitOfWork {
    participants: Vec<(String, Box<dyn Participant>)>,
    two_phase: bool,
}

impl std::fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("databases", &self.names())
            .field("two_phase", &self.two_phase)
            .finish()
    }
}

impl Default for UnitOfWork {
    fn default() -> Self {
        Self::new()
    }
}

impl UnitOfWork {
    /// An empty unit of work.
    pub fn new() -> Self {
        Self {
            participants: Vec::new(),
            two_phase: false,
        }
    }

    /// Adds the write session `session` under `name`; sessions commit in the
    /// order they are enlisted.
    ///
    /// # Errors
    /// [`Error::Config`] when `name` is enlisted already.
    pub fn enlist<B: Backend>(
        &mut self,
        name: impl Into<String>,
        session: Session<B>,
    ) -> Result<()> {
        let name = enlistable(&self.names(), name.into())?;
        self.participants.push((name, Box::new(session)));
        Ok(())
    }

    /// Commits through PostgreSQL's prepared transactions: every session prepares
    /// first, and none commits unless all prepared. Every database must be
    /// PostgreSQL with `max_prepared_transactions` above 0; otherwise
    /// [`commit`](Self::commit) fails and rolls everything back.
    pub fn two_phase(mut self) -> Self {
        self.two_phase = true;
        self
    }

    /// The session enlisted as `name`.
    ///
    /// # Errors
    /// [`Error::UnknownDatabase`] when nothing is enlisted as `name`,
    /// [`Error::DatabaseBackend`] when its backend is not `B`.
    pub fn session<B: Backend>(&mut self, name: &str) -> Result<&mut Session<B>> {
        let known = self.names();
        let Some((_, participant)) = self.participants.iter_mut().find(|(n, _)| n == name) else {
            return Err(unknown(name, known));
        };
        let configured = participant.backend();
        participant
            .as_any_mut()
            .downcast_mut()
            .ok_or_else(|| wrong_backend(name, configured, B::KIND))
    }

    /// The names enlisted, in commit order.
    pub fn names(&self) -> Vec<String> {
        self.participants.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Commits every session, in the order they were enlisted (see
    /// [`two_phase`](Self::two_phase) for the other way).
    ///
    /// # Errors
    /// [`Error::UnitOfWork`] naming what committed, what failed and what was
    /// rolled back.
    pub fn commit(self) -> Result<()> {
        if self.two_phase {
            return self.commit_two_phase();
        }
        let mut committed = Vec::new();
        let mut rest = self.participants.into_iter();
        while let Some((name, participant)) = rest.next() {
            if let Err(source) = participant.commit() {
                return Err(Error::UnitOfWork {
                    committed,
                    failed: name,
                    rolled_back: roll_back(rest),
                    source: Box::new(source),
                });
            }
            committed.push(name);
        }
        Ok(())
    }

    fn commit_two_phase(self) -> Result<()> {
        let gid = transaction_id();
        let mut participants = self.participants;
        if let Some(i) = participants
            .iter()
            .position(|(_, p)| p.backend() != BackendKind::Postgres)
        {
            let (failed, participant) = participants.remove(i);
            let source = not_postgres(&failed, participant.backend());
            drop(participant);
            return Err(Error::UnitOfWork {
                committed: Vec::new(),
                failed,
                rolled_back: roll_back(participants.into_iter()),
                source: Box::new(source),
            });
        }
        for i in 0..participants.len() {
            let Err(source) = participants[i].1.prepare(&format!("{gid}-{i}")) else {
                continue;
            };
            let failed = participants[i].0.clone();
            let mut rolled_back = Vec::new();
            for (j, (name, participant)) in participants.into_iter().enumerate() {
                let ended = match j.cmp(&i) {
                    // A prepared transaction outlives its session: ended by its id.
                    std::cmp::Ordering::Less => {
                        participant.finish_prepared(&format!("{gid}-{j}"), false)
                    }
                    // Its failed PREPARE rolled it back.
                    std::cmp::Ordering::Equal => continue,
                    std::cmp::Ordering::Greater => participant.rollback(),
                };
                if let Err(error) = ended {
                    tracing::warn!(database = %name, %error, "dbinstance: unit of work: rollback failed");
                }
                rolled_back.push(name);
            }
            return Err(Error::UnitOfWork {
                committed: Vec::new(),
                failed,
                rolled_back,
                source: Box::new(source),
            });
        }
        let mut committed = Vec::new();
        let mut first_failure = None;
        for (i, (name, participant)) in participants.into_iter().enumerate() {
            // Every session prepared: the outcome is commit. A failed COMMIT
            // PREPARED leaves that transaction prepared on its server, under its
            // id, for `COMMIT PREPARED` once the server is back.
            match participant.finish_prepared(&format!("{gid}-{i}"), true) {
                Ok(()) => committed.push(name),
                Err(source) => {
                    first_failure.get_or_insert((name, source));
                }
            }
        }
        match first_failure {
            None => Ok(()),
            Some((failed, source)) => Err(Error::UnitOfWork {
                committed,
                failed,
                rolled_back: Vec::new(),
                source: Box::new(source),
            }),
        }
    }

    /// Rolls every session back now, reporting the first error (dropping the unit
    /// does the same silently).
    ///
    /// # Errors
    /// The first session's rollback error.
    pub fn rollback(self) -> Result<()> {
        let mut first = Ok(());
        for (_, participant) in self.participants {
            if let Err(e) = participant.rollback() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

/// Rolls back what is left, and names it.
fn roll_back(rest: impl Iterator<Item = (String, Box<dyn Participant>)>) -> Vec<String> {
    rest.map(|(name, participant)| {
        if let Err(error) = participant.rollback() {
            tracing::warn!(database = %name, %error, "dbinstance: unit of work: rollback failed; the connection is discarded");
        }
        name
    })
    .collect()
}

fn enlistable(known: &[String], name: String) -> Result<String> {
    if known.contains(&name) {
        return Err(Error::config(
            "unit_of_work",
            format!("`{name}` is enlisted already"),
        ));
    }
    Ok(name)
}

fn unknown(name: &str, known: Vec<String>) -> Error {
    Error::UnknownDatabase {
        name: name.to_owned(),
        known,
    }
}

fn wrong_backend(name: &str, configured: BackendKind, requested: BackendKind) -> Error {
    Error::DatabaseBackend {
        name: name.to_owned(),
        configured,
        requested,
    }
}

/// A transaction id no other unit of work on the server shares: the process, a
/// counter and a random key, in the `dbinstance-` namespace an operator can look
/// for in `pg_prepared_xacts`.
fn transaction_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    format!(
        "dbinstance-{}-{}-{:016x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        hasher.finish()
    )
}

/// An async write session in a unit of work, whatever its backend.
trait AsyncParticipant: Send {
    fn backend(&self) -> BackendKind;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
    fn prepare<'a>(&'a mut self, gid: &'a str) -> BoxFuture<'a, Result<()>>;
    fn finish_prepared(
        self: Box<Self>,
        gid: String,
        commit: bool,
    ) -> BoxFuture<'static, Result<()>>;
}

impl<B: Backend> AsyncParticipant for AsyncSession<B> {
    fn backend(&self) -> BackendKind {
        B::KIND
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin((*self).commit())
    }
    fn rollback(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin((*self).rollback())
    }
    fn prepare<'a>(&'a mut self, gid: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.prepare_transaction(gid))
    }
    fn finish_prepared(
        self: Box<Self>,
        gid: String,
        commit: bool,
    ) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { (*self).finish_prepared(&gid, commit).await })
    }
}

/// The async twin of [`UnitOfWork`]: the same order, the same errors.
#[must_use = "a unit of work rolls back everything when dropped"]
pub struct AsyncUnitOfWork {
    participants: Vec<(String, Box<dyn AsyncParticipant>)>,
    two_phase: bool,
}

impl std::fmt::Debug for AsyncUnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncUnitOfWork")
            .field("databases", &self.names())
            .field("two_phase", &self.two_phase)
            .finish()
    }
}

impl Default for AsyncUnitOfWork {
    fn default() -> Self {
        Self::new()
    }
}

impl AsyncUnitOfWork {
    /// An empty unit of work.
    pub fn new() -> Self {
        Self {
            participants: Vec::new(),
            two_phase: false,
        }
    }

    /// As [`UnitOfWork::enlist`].
    ///
    /// # Errors
    /// As [`UnitOfWork::enlist`].
    pub fn enlist<B: Backend>(
        &mut self,
        name: impl Into<String>,
        session: AsyncSession<B>,
    ) -> Result<()> {
        let name = enlistable(&self.names(), name.into())?;
        self.participants.push((name, Box::new(session)));
        Ok(())
    }

    /// As [`UnitOfWork::two_phase`].
    pub fn two_phase(mut self) -> Self {
        self.two_phase = true;
        self
    }

    /// As [`UnitOfWork::session`].
    ///
    /// # Errors
    /// As [`UnitOfWork::session`].
    pub fn session<B: Backend>(&mut self, name: &str) -> Result<&mut AsyncSession<B>> {
        let known = self.names();
        let Some((_, participant)) = self.participants.iter_mut().find(|(n, _)| n == name) else {
            return Err(unknown(name, known));
        };
        let configured = participant.backend();
        participant
            .as_any_mut()
            .downcast_mut()
            .ok_or_else(|| wrong_backend(name, configured, B::KIND))
    }

    /// The names enlisted, in commit order.
    pub fn names(&self) -> Vec<String> {
        self.participants.iter().map(|(n, _)| n.clone()).collect()
    }

    /// As [`UnitOfWork::commit`].
    ///
    /// # Errors
    /// As [`UnitOfWork::commit`].
    pub async fn commit(self) -> Result<()> {
        if self.two_phase {
            return self.commit_two_phase().await;
        }
        let mut committed = Vec::new();
        let mut rest = self.participants.into_iter();
        while let Some((name, participant)) = rest.next() {
            if let Err(source) = participant.commit().await {
                return Err(Error::UnitOfWork {
                    committed,
                    failed: name,
                    rolled_back: async_roll_back(rest).await,
                    source: Box::new(source),
                });
            }
            committed.push(name);
        }
        Ok(())
    }

    async fn commit_two_phase(self) -> Result<()> {
        let gid = transaction_id();
        let mut participants = self.participants;
        if let Some(i) = participants
            .iter()
            .position(|(_, p)| p.backend() != BackendKind::Postgres)
        {
            let (failed, participant) = participants.remove(i);
            let source = not_postgres(&failed, participant.backend());
            drop(participant);
            return Err(Error::UnitOfWork {
                committed: Vec::new(),
                failed,
                rolled_back: async_roll_back(participants.into_iter()).await,
                source: Box::new(source),
            });
        }
        for i in 0..participants.len() {
            let Err(source) = participants[i].1.prepare(&format!("{gid}-{i}")).await else {
                continue;
            };
            let failed = participants[i].0.clone();
            let mut rolled_back = Vec::new();
            for (j, (name, participant)) in participants.into_iter().enumerate() {
                let ended = match j.cmp(&i) {
                    std::cmp::Ordering::Less => {
                        participant
                            .finish_prepared(format!("{gid}-{j}"), false)
                            .await
                    }
                    std::cmp::Ordering::Equal => continue,
                    std::cmp::Ordering::Greater => participant.rollback().await,
                };
                if let Err(error) = ended {
                    tracing::warn!(database = %name, %error, "dbinstance: unit of work: rollback failed");
                }
                rolled_back.push(name);
            }
            return Err(Error::UnitOfWork {
                committed: Vec::new(),
                failed,
                rolled_back,
                source: Box::new(source),
            });
        }
        let mut committed = Vec::new();
        let mut first_failure = None;
        for (i, (name, participant)) in participants.into_iter().enumerate() {
            match participant
                .finish_prepared(format!("{gid}-{i}"), true)
                .await
            {
                Ok(()) => committed.push(name),
                Err(source) => {
                    first_failure.get_or_insert((name, source));
                }
            }
        }
        match first_failure {
            None => Ok(()),
            Some((failed, source)) => Err(Error::UnitOfWork {
                committed,
                failed,
                rolled_back: Vec::new(),
                source: Box::new(source),
            }),
        }
    }

    /// As [`UnitOfWork::rollback`].
    ///
    /// # Errors
    /// As [`UnitOfWork::rollback`].
    pub async fn rollback(self) -> Result<()> {
        let mut first = Ok(());
        for (_, participant) in self.participants {
            if let Err(e) = participant.rollback().await {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

async fn async_roll_back(
    rest: impl Iterator<Item = (String, Box<dyn AsyncParticipant>)>,
) -> Vec<String> {
    let mut names = Vec::new();
    for (name, participant) in rest {
        if let Err(error) = participant.rollback().await {
            tracing::warn!(database = %name, %error, "dbinstance: unit of work: rollback failed; the connection is discarded");
        }
        names.push(name);
    }
    names
}

fn not_postgres(name: &str, backend: BackendKind) -> Error {
    Error::config(
        "two_phase",
        format!("prepared transactions are PostgreSQL's; `{name}` is {backend}"),
    )
}
