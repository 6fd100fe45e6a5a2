//! The binary under SIGTERM and Ctrl-C during a burst of writes: every request in
//! flight is answered, the pools are closed, the listener too, and it exits 0.

use dbinstance_web::scenarios::{signal_during_a_burst, ShutdownReport};
use serde_json::json;
use std::path::{Path, PathBuf};

const CLIENTS: usize = 8;

/// A user with 300 posts: one transaction of some 900 statements, so that the
/// burst queues on SQLite's single writer for a while.
fn burst(http: &reqwest::Client, base: &str, i: usize) -> reqwest::RequestBuilder {
    let posts: Vec<_> = (0..300)
        .map(|n| json!({"title": format!("post {n}"), "body": "shutdown test"}))
        .collect();
    http.post(format!("{base}/users")).json(
        &json!({"name": format!("user {i}"), "email": format!("u{i}@example.com"), "posts": posts}),
    )
}

fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("axum-shutdown-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn signalled(signal: &str) -> ShutdownReport {
    let report = signal_during_a_burst(
        Path::new(env!("CARGO_BIN_EXE_axum-service")),
        "axum-service",
        &scratch(signal),
        &[("SHUTDOWN_TIMEOUT_SECS", "30")],
        CLIENTS,
        burst,
        signal,
    )
    .await;
    eprintln!("SIG{signal}: {report:?}");
    assert_eq!(report.cut, 0, "requests cut: {report:#?}");
    assert_eq!(report.completed, CLIENTS, "{report:#?}");
    assert!(
        report.answered_after_signal > 0,
        "the burst was over before the signal, the test shows nothing: {report:#?}"
    );
    assert_eq!(report.exit_code, Some(0), "{report:#?}");
    assert!(report.listener_closed, "{report:#?}");
    report
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    signalled("TERM").await;
}

#[tokio::test]
async fn ctrl_c_lets_requests_in_flight_finish_then_exits_0() {
    signalled("INT").await;
}
