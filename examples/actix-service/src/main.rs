//! `cargo run -p actix-web-service`: the users-and-posts API on 127.0.0.1:3001.
//!
//! With no configuration it uses the SQLite file `actix-web-service.sqlite3` (no server
//! needed). `DATABASE_URL` (and `DATABASE_READ_URL` for replicas) switch it to
//! PostgreSQL or MariaDB; `BIND` changes the address; `RUST_LOG` the log level.

use actix_web_service::{config_from_env, serve};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = config_from_env("actix-web-service.sqlite3")?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let listener = std::net::TcpListener::bind(&bind)?;
    println!("actix-web-service: http://{}", listener.local_addr()?);
    actix_web::rt::System::new().block_on(serve(listener, config))
}
