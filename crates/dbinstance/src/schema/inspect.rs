//! `table_exists`: asking the primary's catalog whether a table is there.
//!
//! The query reads a typed result, which generic code over [`Backend`] cannot
//! express without naming each diesel backend's bounds, so each backend runs it
//! on its own connection type (`Backend::table_exists`) with [`count_tables!`]; the
//! instance runs it in a write session.

use super::dialect;
use crate::error::Error;
use diesel::result::Error as DieselError;

/// The count query: `SELECT (SELECT COUNT(*) ... AND name = <name>)`.
macro_rules! count_tables {
    ($kind:expr, $name:expr) => {
        diesel::select(
            diesel::dsl::sql::<diesel::sql_types::BigInt>(
                $crate::schema::dialect::count_tables_prefix($kind),
            )
            .bind::<diesel::sql_types::Text, _>($name)
            .sql(")"),
        )
    };
}
pub(crate) use count_tables;

pub(crate) fn lookup_error(kind: crate::BackendKind, name: &str, source: DieselError) -> Error {
    Error::Ddl {
        table: name.to_owned(),
        action: "look up",
        statement: format!("SELECT {}?)", dialect::count_tables_prefix(kind)),
        source,
    }
}
