//! The command line, parsed by hand: a handful of commands and flags.

use std::path::PathBuf;

pub(crate) const USAGE: &str = "\
usage: dbinstance [--config FILE] [--database NAME] [--json] COMMAND

commands:
  health                      ping every database (or --database); exit 0 healthy,
                              1 degraded, 2 unhealthy
  stats                       pool statistics
  migrations status DIR       each migration of DIR and whether it was applied
  migrations pending DIR      the migrations of DIR not applied yet
  migrations run DIR          apply them (one process at a time: a server lock)
  migrations revert DIR       revert the last one applied
  create-tables               create the tables the service registers (a binary
                              built with dbinstance_cli::Cli::tables; not this one)
  help                        this text

configuration, as the service reads it:
  --config FILE               a .toml or .json file: one database's fields, or
                              `default` and `[databases.NAME]` tables
  otherwise the environment:  DATABASES=a,b (then A_DATABASE_URL, ...) or DATABASE_URL
  --database NAME             only that database (migrations: default database)
  --json                      JSON on standard output";

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Help,
    Health,
    Stats,
    CreateTables,
    Migrations(MigrationAction, PathBuf),
}

/// What to do with a migrations directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MigrationAction {
    Status,
    Pending,
    Run,
    Revert,
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) action: Action,
    pub(crate) config: Option<PathBuf>,
    pub(crate) database: Option<String>,
    pub(crate) json: bool,
}

impl Command {
    /// Parses the arguments after the program's name.
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut args = args.into_iter();
        let mut words = Vec::new();
        let (mut config, mut database, mut json) = (None, None, false);
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
            match arg.as_str() {
                "--config" => config = Some(PathBuf::from(value("--config")?)),
                "--database" => database = Some(value("--database")?),
                "--json" => json = true,
                "-h" | "--help" => words.push("help".to_owned()),
                flag if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`")),
                _ => words.push(arg),
            }
        }
        let action = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] | ["help"] => Action::Help,
            ["health"] => Action::Health,
            ["stats"] => Action::Stats,
            ["create-tables"] => Action::CreateTables,
            ["migrations", what, dir] => {
                let action = match what {
                    "status" => MigrationAction::Status,
                    "pending" => MigrationAction::Pending,
                    "run" => MigrationAction::Run,
                    "revert" => MigrationAction::Revert,
                    other => return Err(format!("unknown migrations command `{other}`")),
                };
                Action::Migrations(action, PathBuf::from(dir))
            }
            ["migrations", ..] => {
                return Err("migrations needs a command and a directory".to_owned())
            }
            [other, ..] => return Err(format!("unknown command `{other}`")),
        };
        Ok(Self {
            action,
            config,
            database,
            json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, String> {
        Command::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn commands_and_flags_in_any_order() {
        let command = parse("--json migrations run db/migrations --database main").unwrap();
        assert_eq!(
            command.action,
            Action::Migrations(MigrationAction::Run, PathBuf::from("db/migrations"))
        );
        assert_eq!(command.database.as_deref(), Some("main"));
        assert!(command.json);
        assert_eq!(parse("").unwrap().action, Action::Help);
        assert_eq!(
            parse("health --config a.toml").unwrap().config,
            Some("a.toml".into())
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(parse("wipe").unwrap_err(), "unknown command `wipe`");
        assert_eq!(
            parse("health --force").unwrap_err(),
            "unknown flag `--force`"
        );
        assert_eq!(
            parse("health --config").unwrap_err(),
            "--config needs a value"
        );
        assert_eq!(
            parse("migrations drop dir").unwrap_err(),
            "unknown migrations command `drop`"
        );
        assert!(parse("migrations run").is_err());
    }
}
