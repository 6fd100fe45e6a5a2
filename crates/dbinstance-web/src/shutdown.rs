//! Shutdown for a service: the signals that start it and how long requests in flight
//! may take to finish.

use std::time::Duration;

/// How long requests in flight may take to finish once shutdown starts, when
/// `SHUTDOWN_TIMEOUT_SECS` is not set: 10 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The shutdown deadline from the environment variable `var` (whole seconds), or
/// [`DEFAULT_SHUTDOWN_TIMEOUT`] when it is unset or empty.
///
/// # Errors
/// A sentence naming `var` when it is not a number of seconds.
pub fn shutdown_timeout_from_env(var: &str) -> Result<Duration, String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{var}={value:?} is not a whole number of seconds")),
        _ => Ok(DEFAULT_SHUTDOWN_TIMEOUT),
    }
}

/// Resolves on the first SIGTERM (what a container runtime or systemd sends) or
/// Ctrl-C (SIGINT). Both mean the same: stop accepting, let requests in flight
/// finish, close the pools.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received; shutting down"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received; shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_read_in_seconds_and_a_bad_value_is_named() {
        std::env::set_var("DBI_TEST_SHUTDOWN_A", "3");
        assert_eq!(
            shutdown_timeout_from_env("DBI_TEST_SHUTDOWN_A"),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(
            shutdown_timeout_from_env("DBI_TEST_SHUTDOWN_UNSET"),
            Ok(DEFAULT_SHUTDOWN_TIMEOUT)
        );
        std::env::set_var("DBI_TEST_SHUTDOWN_B", "soon");
        let error = shutdown_timeout_from_env("DBI_TEST_SHUTDOWN_B").unwrap_err();
        assert!(error.contains("DBI_TEST_SHUTDOWN_B"), "{error}");
    }
}
