//! `dbinstance`: health, pool statistics and migrations of the databases a service
//! configures, for operators. Run `dbinstance help`.

fn main() -> std::process::ExitCode {
    dbinstance_cli::Cli::new().main()
}
