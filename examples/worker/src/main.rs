//! `cargo run -p worker -- [--seed N] [--batch N]`: processes the pending rows of
//! the `tasks` table in batches on blocking sessions.
//!
//! With no configuration it uses the SQLite file `worker.sqlite3`; `DATABASE_URL`
//! (and `DATABASE_READ_URL`) switch it to PostgreSQL or MariaDB. `--seed N` first
//! adds N pending tasks (default: 100 when the table has none pending);
//! `--batch N` sets the batch size (default 25).

use dbinstance::{BackendKind, DatabaseConfig, DatabaseInstance};
use std::process::ExitCode;
use worker::Tasks;

struct Args {
    seed: Option<usize>,
    batch: i64,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        seed: None,
        batch: 25,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--seed" => args.seed = Some(number(&value)?),
            "--batch" => args.batch = i64::try_from(number(&value)?.max(1)).unwrap_or(25),
            other => return Err(format!("unknown argument {other}; use --seed N, --batch N")),
        }
    }
    Ok(args)
}

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
            eprintln!("worker: {message}");
            ExitCode::FAILURE
        }
    }
}

fn start() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let config = if std::env::var_os("DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        DatabaseConfig::from_env()?
    } else {
        DatabaseConfig::from_url("worker.sqlite3")
    };
    // backend_kind() refuses a backend this build lacks, naming its feature.
    match config.backend_kind()? {
        BackendKind::Sqlite => work::<dbinstance::Sqlite>(config, &args),
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => work::<dbinstance::Postgres>(config, &args),
        #[cfg(feature = "mysql")]
        BackendKind::Mysql => work::<dbinstance::Mysql>(config, &args),
        #[allow(unreachable_patterns)]
        other => Err(format!("{other} is not compiled in").into()),
    }
}

fn work<B: Tasks>(config: DatabaseConfig, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let db = DatabaseInstance::<B>::new(config)?;
    worker::prepare(&db)?;
    let seed = match args.seed {
        Some(n) => n,
        None => {
            let mut session = db.get_db_cm_write()?;
            let (_, pending) = B::counts(&mut session)?;
            if pending == 0 {
                100
            } else {
                0
            }
        }
    };
    if seed > 0 {
        println!("seeded {} task(s)", worker::seed(&db, seed)?);
    }
    let summary = worker::run(&db, args.batch)?;
    println!(
        "processed {} task(s) in {} batch(es); {} done, {} pending",
        summary.processed, summary.batches, summary.done, summary.pending
    );
    db.close_all_connections();
    Ok(())
}
