//! A new user's first run: the README's first commands, built as a fresh clone
//! builds them (default features, a target directory of their own), need no server
//! and no client library of a server, and serve on SQLite.
//!
//! The build happens once, inside the first test that needs it; the other tests
//! of this file wait for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The packages a new user runs first, as the README names them.
const FIRST_RUN: [&str; 4] = ["axum-service", "actix-web-service", "quickstart", "worker"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo() -> Command {
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS");
    command
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("first-run")
}

fn checked(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `cargo build -p <each of FIRST_RUN>` with default features, once.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut build = cargo();
        build.args(["build", "--locked", "--quiet"]);
        for package in FIRST_RUN {
            build.args(["-p", package]);
        }
        checked(
            build.output().unwrap(),
            "cargo build of the first-run packages",
        );
        target_dir().join("debug")
    })
}

/// A scratch directory of its own for the SQLite files a binary creates in its
/// working directory (the tests run in parallel).
fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "first-run-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_default_build_links_no_server_client_library() {
    for package in FIRST_RUN {
        let tree = checked(
            cargo()
                .args(["tree", "--locked", "-p", package])
                .args(["-e", "normal,build", "--prefix", "none"])
                .output()
                .unwrap(),
            "cargo tree",
        );
        for library in ["mysqlclient-sys", "pq-sys", "sqlx"] {
            assert!(
                !tree.lines().any(|line| line.starts_with(library)),
                "`{package}` with default features depends on {library}"
            );
        }
        assert!(
            tree.lines().any(|line| line.starts_with("libsqlite3-sys")),
            "`{package}` should use SQLite by default"
        );
    }
}

#[test]
fn a_plain_build_at_the_root_leaves_out_the_benchmark_and_the_server_libraries() {
    // `cargo tree` with no package builds the tree of the default members, as a
    // plain `cargo build` at the root does.
    let tree = checked(
        cargo()
            .args(["tree", "--locked", "-e", "normal,build", "--prefix", "none"])
            .output()
            .unwrap(),
        "cargo tree",
    );
    for unwanted in ["compare ", "sqlx ", "mysqlclient-sys ", "pq-sys "] {
        assert!(
            !tree.lines().any(|line| line.starts_with(unwanted)),
            "a plain `cargo build` would build {unwanted}"
        );
    }
    assert!(tree.lines().any(|line| line.starts_with("axum-service ")));
}

/// Kills the child when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn each_service_serves_health_on_sqlite_with_no_configuration() {
    for (service, name) in [
        ("axum-service", "axum-service"),
        ("actix-web-service", "actix-web-service"),
    ] {
        let mut child = Running(
            Command::new(built().join(service))
                .current_dir(scratch(name))
                .env_remove("DATABASE_URL")
                .env_remove("DATABASE_READ_URL")
                .env("BIND", "127.0.0.1:0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut first_line = String::new();
        BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        let base = first_line
            .trim()
            .strip_prefix(&format!("{service}: "))
            .unwrap_or_else(|| panic!("{service} printed {first_line:?}"))
            .to_owned();
        let mut health = None;
        for _ in 0..100 {
            if let Ok(response) = reqwest::get(format!("{base}/health")).await {
                health = Some(response);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let health = health.unwrap_or_else(|| panic!("{service} never answered on {base}"));
        assert_eq!(health.status(), 200, "{service}");
        let report: serde_json::Value = health.json().await.unwrap();
        assert_eq!(report["status"], "healthy", "{service}: {report}");
    }
}

#[test]
fn a_server_url_without_its_feature_names_the_feature_and_exits_1() {
    for service in ["axum-service", "actix-web-service", "worker"] {
        for (url, feature) in [
            ("mysql://root@127.0.0.1:3306/test", "`mysql` feature"),
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "`postgres` feature",
            ),
        ] {
            let output = Command::new(built().join(service))
                .current_dir(scratch(service))
                .env("DATABASE_URL", url)
                .env("BIND", "127.0.0.1:0")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{service} {url}: {stderr}");
            assert!(stderr.contains(feature), "{service} {url}: {stderr}");
            assert!(
                String::from_utf8_lossy(&output.stdout).is_empty(),
                "{service} must refuse before it listens or works"
            );
        }
    }
}

#[test]
fn quickstart_runs_to_the_end() {
    let output = Command::new(built().join("quickstart"))
        .current_dir(scratch("quickstart"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
