//! The names every layer shares: which side of the database (`Role`), which pool
//! family (`PoolKind`), which pool (`PoolId`) and which stage of a session (`Stage`).
//! They sit at the bottom so that errors, pools, routing and health can all name a
//! pool without importing each other.

use std::fmt;

/// The side of the database a pool or session talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The primary: writes, and reads that must see them.
    Write,
    /// A replica, or the primary when no replica is configured; read-only sessions.
    Read,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Write => "write",
            Role::Read => "read",
        })
    }
}

/// Whether a pool serves blocking code or async tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// r2d2 + diesel, for blocking code.
    Sync,
    /// deadpool or bb8 + diesel-async, for tokio.
    Async,
}

impl PoolKind {
    /// `sync` or `async`, as serialised.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            PoolKind::Sync => "sync",
            PoolKind::Async => "async",
        }
    }
}

/// Names one pool: its role, its kind and the server it talks to (never a password).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PoolId {
    /// Write (primary) or read (replica).
    pub role: Role,
    /// Sync or async.
    pub kind: PoolKind,
    /// `host:port/database`, or the SQLite path.
    pub target: String,
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} pool ({})",
            self.kind.as_str(),
            self.role,
            self.target
        )
    }
}

/// What a session was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Opening a new connection.
    Connect,
    /// Running the per-connection setup (read-only mode, pragmas, hooks).
    Setup,
    /// Checking a pooled connection before handing it out.
    Checkout,
    /// `BEGIN`.
    Begin,
    /// `COMMIT`.
    Commit,
    /// `ROLLBACK`.
    Rollback,
    /// Pinging the server for a health check.
    Ping,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Setup => "connection setup",
            Stage::Checkout => "checkout",
            Stage::Begin => "begin transaction",
            Stage::Commit => "commit",
            Stage::Rollback => "rollback",
            Stage::Ping => "ping",
        })
    }
}
