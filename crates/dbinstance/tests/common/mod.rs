//! Shared by the integration tests: server URLs from the environment, and the rule
//! that a missing server skips a test locally but fails it under `CI=true`.
#![allow(dead_code)]

pub mod relay;

use std::time::Duration;

/// The URL in `var`, or `None` (after saying so loudly) when it is unset outside CI.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set and CI=true: run `eval \"$(scripts/testbed.sh up)\"` first")
        }
        _ => {
            eprintln!("\n!!! SKIPPED: {var} is not set; run `eval \"$(scripts/testbed.sh up)\"` to test against the real server\n");
            None
        }
    }
}

pub fn pg() -> Option<String> {
    server_url("DBI_PG_URL")
}
pub fn pg_replica() -> Option<String> {
    server_url("DBI_PG_REPLICA_URL")
}
/// A second streaming replica of `pg()`.
pub fn pg_replica2() -> Option<String> {
    server_url("DBI_PG_REPLICA2_URL")
}
pub fn mysql() -> Option<String> {
    server_url("DBI_MYSQL_URL")
}
pub fn mysql_primary() -> Option<String> {
    server_url("DBI_MYSQL_PRIMARY_URL")
}
pub fn mysql_replica() -> Option<String> {
    server_url("DBI_MYSQL_REPLICA_URL")
}

/// A table name no other test (or concurrent test binary) uses.
pub fn unique_table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// A temporary SQLite file path, removed with its WAL files on drop.
pub struct TempDb(pub std::path::PathBuf);

impl TempDb {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "dbinstance-{}-{}.sqlite3",
            name,
            unique_table("db")
        ));
        TempDb(path)
    }
    pub fn url(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// Runs the test bed's script with `args` (stopping, killing or starting one of
/// its own servers); fails the test if it fails.
pub fn testbed(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/testbed.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("testbed script runs");
    assert!(status.success(), "testbed.sh {args:?} failed");
}

/// Everything `tracing` writes while `f` runs on this thread.
pub fn logs_of(f: impl FnOnce()) -> String {
    use std::io;
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("dbinstance=trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}
