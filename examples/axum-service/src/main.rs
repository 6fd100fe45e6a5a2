//! `cargo run -p axum-service`: the users-and-posts API on 127.0.0.1:3000.
//!
//! With no configuration it uses the SQLite file `axum-service.sqlite3` (no server
//! needed). `DATABASE_URL` (and `DATABASE_READ_URL` for replicas) switch it to
//! PostgreSQL or MariaDB; `BIND` changes the address; `RUST_LOG` the log level.
//! `GET /metrics` serves the pools' metrics in Prometheus text format.
//!
//! SIGTERM or Ctrl-C stop it cleanly: it stops accepting, lets the requests in
//! flight finish for up to `SHUTDOWN_TIMEOUT_SECS` seconds (10 by default), closes
//! the pools and exits 0.

use axum_service::{config_from_env, serve};

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Say what is wrong in a sentence, not as a debug dump.
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // With its causes: "connect failed" alone does not say why.
            let message = error
                .downcast_ref::<dbinstance::Error>()
                .map_or_else(|| error.to_string(), dbinstance::Error::chain);
            eprintln!("axum-service: {message}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn start() -> Result<(), Box<dyn std::error::Error>> {
    let config = config_from_env("axum-service.sqlite3")?;
    // A backend this build lacks is refused before anything listens.
    config.backend_kind()?;
    // Before the instance is built: its pools register their metrics with it.
    axum_service::store::metrics::prometheus();
    let shutdown_timeout = dbinstance_web::shutdown_timeout_from_env("SHUTDOWN_TIMEOUT_SECS")?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("axum-service: http://{}", listener.local_addr()?);
    serve(
        listener,
        config,
        dbinstance_web::shutdown_signal(),
        shutdown_timeout,
    )
    .await
}
