//! The schema registry: each [`DatabaseInstance`](crate::DatabaseInstance) owns the
//! set of tables it creates, registered from the same diesel `table!` definitions
//! the queries use, and can run embedded diesel migrations at boot.
//!
//! - `def`: a table's checked definition and rendered DDL, at the bottom.
//! - `registry`: `SchemaRegistry`, one per instance, nothing global.
//! - `table`: reading a `table!`'s name, columns and primary key.
//! - `types`: diesel SQL types to `ColumnType`.
//! - `options`: `TableOptions`, what diesel does not know.
//! - `order`: foreign-key order and cycles.
//! - `dialect`: each backend's DDL.
//! - `apply`: the statements behind `create_tables` and `drop_tables`, run by the
//!   instance on its write sessions.
//! - `migrations`: embedded diesel migrations.

pub(crate) mod apply;
mod def;
pub(crate) mod dialect;
#[cfg(feature = "migrations")]
pub(crate) mod migrations;
mod options;
mod order;
mod registry;
mod table;
mod types;

#[cfg(feature = "migrations")]
pub use migrations::{MigrationInfo, MigrationSet, MigrationStatus};
pub use options::{OnDelete, TableOptions};
pub use registry::SchemaRegistry;
pub use table::SchemaTable;
pub use types::{ColumnType, SchemaType};

#[cfg(test)]
mod tests;
