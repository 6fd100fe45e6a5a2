//! dbinstance's command line for operators, as a library: the `dbinstance` binary
//! of this crate is `Cli::new().main()`, and a service that wants `create-tables`
//! builds its own binary that registers its tables first, since a table registry
//! is code, not configuration:
//!
//! ```no_run
//! // src/bin/dbctl.rs of a service
//! use dbinstance::{Sqlite, TableOptions};
//!
//! diesel::table! { users (id) { id -> Integer, name -> Text } }
//!
//! fn main() -> std::process::ExitCode {
//!     dbinstance_cli::Cli::new()
//!         .tables(|manager| {
//!             manager
//!                 .get::<Sqlite>("main")?
//!                 .schema()
//!                 .register::<users::table>(TableOptions::new().auto_increment("id"))?;
//!             Ok(())
//!         })
//!         .main()
//! }
//! ```
//!
//! Every command reads the configuration as the service does; `help` lists them.

mod args;
mod cli;
mod run;

pub use cli::Cli;
