//! Read-your-writes: where a committed write stands in the primary's log
//! ([`CommitPosition`]), and the tracker a handle carries so that its reads go only
//! to a replica that has replayed its writes ([`ReadYourWrites`]).

use crate::error::Error;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

/// Where a committed transaction stands in the primary's replication log: a
/// PostgreSQL WAL position (`16/B374D848`) or a MariaDB GTID position
/// (`0-1-42`, one per replication domain, comma-separated).
///
/// Its text form (`Display`, `FromStr`) is what travels between processes, for
/// example in a response header that the client sends back with its next request.
///
/// ```
/// use dbinstance::CommitPosition;
/// let write: CommitPosition = "0/3000178".parse()?;
/// let replayed: CommitPosition = "0/30001F0".parse()?;
/// assert!(replayed.covers(&write));
/// assert!(!write.covers(&replayed));
/// # Ok::<(), dbinstance::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CommitPosition(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// A PostgreSQL log sequence number.
    Lsn(u64),
    /// MariaDB GTIDs, at most one per domain, sorted by domain.
    Gtids(Vec<Gtid>),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Gtid {
    domain: u32,
    server: u32,
    sequence: u64,
}

/// Texts longer than this are refused before they are looked at: a position
/// comes from a client's header, and a real one is a few dozen bytes.
const MAX_TEXT: usize = 1024;

impl CommitPosition {
    /// Whether a server that has replayed up to `self` has replayed `other`: the
    /// same log and at least as far in it (for GTIDs, in every domain of `other`).
    /// Positions of different kinds never cover each other.
    pub fn covers(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Lsn(mine), Repr::Lsn(theirs)) => mine >= theirs,
            (Repr::Gtids(mine), Repr::Gtids(theirs)) => theirs.iter().all(|t| {
                mine.iter()
                    .any(|m| m.domain == t.domain && m.sequence >= t.sequence)
            }),
            _ => false,
        }
    }

    /// The position that covers both: the further of two LSNs, the furthest GTID
    /// per domain. A position of another kind replaces this one.
    pub(crate) fn merge(&mut self, other: &Self) {
        match (&mut self.0, &other.0) {
            (Repr::Lsn(mine), Repr::Lsn(theirs)) => *mine = (*mine).max(*theirs),
            (Repr::Gtids(mine), Repr::Gtids(theirs)) => {
                for t in theirs {
                    match mine.iter_mut().find(|m| m.domain == t.domain) {
                        Some(m) if m.sequence < t.sequence => *m = *t,
                        Some(_) => {}
                        None => mine.push(*t),
                    }
                }
                mine.sort_unstable_by_key(|g| g.domain);
            }
            _ => *self = other.clone(),
        }
    }

    /// PostgreSQL's text form of an LSN, `hi/lo` in hexadecimal.
    pub(crate) fn parse_lsn(text: &str) -> Option<Self> {
        let (hi, lo) = text.split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Self(Repr::Lsn(u64::from(hi) << 32 | u64::from(lo))))
    }

    /// MariaDB's text form of a GTID position, `domain-server-sequence` per domain,
    /// comma-separated. An empty position (nothing logged yet) is `None`.
    pub(crate) fn parse_gtids(text: &str) -> Option<Self> {
        let mut gtids: Vec<Gtid> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.splitn(3, '-');
            let gtid = Gtid {
                domain: fields.next()?.parse().ok()?,
                server: fields.next()?.parse().ok()?,
                sequence: fields.next()?.parse().ok()?,
            };
            if gtids.iter().any(|g| g.domain == gtid.domain) {
                return None;
            }
            gtids.push(gtid);
        }
        if gtids.is_empty() {
            return None;
        }
        gtids.sort_unstable_by_key(|g| g.domain);
        Some(Self(Repr::Gtids(gtids)))
    }
}

impl fmt::Display for CommitPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Lsn(lsn) => write!(f, "{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF),
            Repr::Gtids(gtids) => {
                for (i, g) in gtids.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma}{}-{}-{}", g.domain, g.server, g.sequence)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for CommitPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitPosition({self})")
    }
}

impl FromStr for CommitPosition {
    type Err = Error;

    /// Either form: `hi/lo` (PostgreSQL) or `domain-server-sequence[,...]` (MariaDB).
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidPosition {
            reason: reason.to_owned(),
        };
        if text.len() > MAX_TEXT {
            return Err(invalid("longer than 1024 bytes"));
        }
        let text = text.trim();
        let parsed = if text.contains('/') {
            Self::parse_lsn(text)
        } else {
            Self::parse_gtids(text)
        };
        parsed.ok_or_else(|| {
            invalid("expected a PostgreSQL LSN (`16/B374D848`) or MariaDB GTIDs (`0-1-42,1-2-7`)")
        })
    }
}

/// What a tracked handle's reads must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadAfter {
    /// A replica that has replayed this position, or the primary.
    Position(CommitPosition),
    /// The primary: a write committed whose position could not be read.
    Primary,
}

/// The writes a caller has made or seen, so that its reads see them: give it to
/// [`DatabaseInstance::with_read_your_writes`](crate::DatabaseInstance::with_read_your_writes),
/// and every write session committed through that handle records its
/// [`CommitPosition`]; every read session from it then comes from a replica that
/// has replayed that position (waiting at most `read_your_writes_wait`), or from
/// the primary.
///
/// Clones share one position. Nothing is recorded, and reads are routed as
/// usual, while the instance has no replica.
///
/// ```
/// # fn main() -> Result<(), dbinstance::Error> {
/// use dbinstance::{DatabaseConfig, DatabaseInstance, ReadYourWrites, Sqlite};
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let seen = ReadYourWrites::new();
/// let db = db.with_read_your_writes(&seen);
/// db.write(|conn| diesel::connection::SimpleConnection::batch_execute(conn, "CREATE TABLE t (x INTEGER)").map_err(dbinstance::Error::from))?;
/// let n: i64 = db.read(|conn| {
///     use diesel::RunQueryDsl;
///     diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("COUNT(*) FROM t"))
///         .get_result(conn)
///         .map_err(dbinstance::Error::from)
/// })?;
/// assert_eq!(n, 0);
/// // Another process continues from where this one stands:
/// let _carried: Option<String> = seen.position().map(|p| p.to_string());
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct ReadYourWrites(Arc<Mutex<Option<ReadAfter>>>);

impl ReadYourWrites {
    /// A tracker that has seen no write yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker whose reads see at least `position`, for example one another
    /// process wrote and handed on.
    pub fn after(position: CommitPosition) -> Self {
        Self(Arc::new(Mutex::new(Some(ReadAfter::Position(position)))))
    }

    /// The furthest position this tracker's reads must see. `None` before any
    /// write, and after a write whose position could not be read (then reads go
    /// to the primary).
    pub fn position(&self) -> Option<CommitPosition> {
        match &*self.lock() {
            Some(ReadAfter::Position(position)) => Some(position.clone()),
            _ => None,
        }
    }

    /// Makes this tracker's reads see `position` too.
    pub fn observe(&self, position: &CommitPosition) {
        let mut state = self.lock();
        match &mut *state {
            Some(ReadAfter::Position(mine)) => mine.merge(position),
            Some(ReadAfter::Primary) => {}
            None => *state = Some(ReadAfter::Position(position.clone())),
        }
    }

    /// A write committed but its position is unknown: reads go to the primary.
    pub(crate) fn observe_unknown(&self) {
        *self.lock() = Some(ReadAfter::Primary);
    }

    pub(crate) fn read_after(&self) -> Option<ReadAfter> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ReadAfter>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ReadYourWrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadYourWrites")
            .field(&*self.lock())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str) -> CommitPosition {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn lsns_compare_as_numbers_and_print_as_postgres_does() {
        assert!(pos("1/0").covers(&pos("0/FFFFFFFF")));
        assert!(!pos("0/FFFFFFFF").covers(&pos("1/0")));
        assert_eq!(pos("16/b374d848").to_string(), "16/B374D848");
        assert_eq!(pos("0/3000178").to_string(), "0/3000178");
    }

    #[test]
    fn gtids_cover_per_domain() {
        let replica = pos("0-1-10,1-2-5");
        assert!(replica.covers(&pos("0-1-10")));
        assert!(replica.covers(&pos("1-9-5,0-1-3")));
        assert!(!replica.covers(&pos("0-1-11")));
        assert!(!replica.covers(&pos("2-1-1")));
        assert_eq!(pos("1-2-5, 0-1-10").to_string(), "0-1-10,1-2-5");
    }

    #[test]
    fn kinds_never_cover_each_other() {
        assert!(!pos("0/10").covers(&pos("0-1-1")));
        assert!(!pos("0-1-1").covers(&pos("0/10")));
    }

    #[test]
    fn merge_keeps_the_furthest() {
        let mut p = pos("0/10");
        p.merge(&pos("0/8"));
        assert_eq!(p, pos("0/10"));
        let mut g = pos("0-1-10");
        g.merge(&pos("0-2-12,3-1-1"));
        assert_eq!(g.to_string(), "0-2-12,3-1-1");
    }

    #[test]
    fn bad_text_is_a_typed_error() {
        for bad in [
            "",
            "x",
            "1/",
            "/1",
            "1/2/3",
            "0-1",
            "0-1-x",
            "0-1-1,0-1-2",
            "-1-1-1",
        ] {
            let err = bad.parse::<CommitPosition>().unwrap_err();
            assert!(matches!(err, Error::InvalidPosition { .. }), "{bad}: {err}");
        }
        assert!("9".repeat(2000).parse::<CommitPosition>().is_err());
    }

    #[test]
    fn a_tracker_keeps_the_furthest_position_and_clones_share_it() {
        let t = ReadYourWrites::new();
        assert_eq!(t.position(), None);
        let shared = t.clone();
        t.observe(&pos("0/20"));
        shared.observe(&pos("0/10"));
        assert_eq!(t.position(), Some(pos("0/20")));
        t.observe_unknown();
        assert_eq!(t.read_after(), Some(ReadAfter::Primary));
        assert_eq!(shared.position(), None);
    }
}
