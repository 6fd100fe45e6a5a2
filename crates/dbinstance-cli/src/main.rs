//! `dbinstance`: health, pool statistics and migrations of the databases a service
//! configures, for operators. Run `dbinstance help`.

mod args;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match args::Command::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("dbinstance: {message}\n\n{}", args::USAGE);
            return ExitCode::from(run::USAGE_ERROR);
        }
    };
    match run::run(&command) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("dbinstance: {}", error.chain());
            ExitCode::from(run::FAILED)
        }
    }
}
