//! The binary under SIGTERM and Ctrl-C during a burst of writes: every request in
//! flight is answered, the pools are closed, the listener too, and it exits 0.

use blog_store::scenarios::shutdown_lets_a_burst_finish;
use std::path::Path;

async fn signalled(signal: &str) {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "axum-service-shutdown-{signal}-{}",
        std::process::id()
    ));
    let binary = Path::new(env!("CARGO_BIN_EXE_axum-service"));
    shutdown_lets_a_burst_finish(binary, "axum-service", &scratch, signal).await;
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    signalled("TERM").await;
}

#[tokio::test]
async fn ctrl_c_lets_requests_in_flight_finish_then_exits_0() {
    signalled("INT").await;
}
