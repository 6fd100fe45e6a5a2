//! The command line as a value: what a binary runs, with the service's tables.

use crate::args::{Command, USAGE};
use crate::run::{self, Registry};
use dbinstance::{DatabaseManager, Error};
use std::process::ExitCode;

/// The `dbinstance` command line, optionally knowing the service's tables.
#[derive(Default)]
pub struct Cli {
    registry: Option<Box<Registry>>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("tables", &self.registry.is_some())
            .finish()
    }
}

impl Cli {
    /// The command line without tables: every command but `create-tables`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the service's tables on the manager's databases (through
    /// [`DatabaseManager::get`] and [`schema`](dbinstance::DatabaseInstance::schema)),
    /// before `create-tables` creates them.
    pub fn tables(
        mut self,
        register: impl Fn(&DatabaseManager) -> Result<(), Error> + 'static,
    ) -> Self {
        self.registry = Some(Box::new(register));
        self
    }

    /// Runs the process's own arguments; its exit code: 0 done (or healthy), 1
    /// degraded, 2 unhealthy, 64 a wrong command line, 70 a failed call.
    pub fn main(self) -> ExitCode {
        ExitCode::from(self.run(std::env::args().skip(1)))
    }

    /// Runs `args` (without the program's name), printing as the binary does; the
    /// exit code.
    pub fn run(&self, args: impl IntoIterator<Item = String>) -> u8 {
        let command = match Command::parse(args) {
            Ok(command) => command,
            Err(message) => {
                eprintln!("dbinstance: {message}\n\n{USAGE}");
                return run::USAGE_ERROR;
            }
        };
        match run::run(&command, self.registry.as_deref()) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("dbinstance: {}", error.chain());
                run::FAILED
            }
        }
    }
}
