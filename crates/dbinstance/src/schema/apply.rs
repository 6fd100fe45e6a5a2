//! Creating and dropping the registered tables: the statements in foreign-key order,
//! run on a write connection the caller opens and commits. (Whether a table exists
//! is each backend's catalog query, in its driver.)

use super::def::Registered;
use super::dialect;
use super::registry::SchemaRegistry;
use super::table::SchemaTable;
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use diesel::connection::SimpleConnection;
use diesel_async::SimpleAsyncConnection;
use std::sync::Arc;

/// One DDL statement and the table it is for.
#[derive(Debug)]
pub(crate) struct Step {
    table: String,
    action: &'static str,
    statement: String,
}

impl Step {
    fn error(&self, source: diesel::result::Error) -> Error {
        Error::Ddl {
            table: self.table.clone(),
            action: self.action,
            statement: self.statement.clone(),
            source,
        }
    }
}

fn create_steps(tables: &[Arc<Registered>]) -> Vec<Step> {
    tables
        .iter()
        .flat_map(|t| {
            t.create.iter().map(|statement| Step {
                table: t.def.name.clone(),
                action: "create",
                statement: statement.clone(),
            })
        })
        .collect()
}

fn drop_steps(kind: BackendKind, names: impl IntoIterator<Item = String>) -> Vec<Step> {
    names
        .into_iter()
        .map(|table| Step {
            statement: dialect::drop_statement(kind, &table),
            table,
            action: "drop",
        })
        .collect()
}

/// A failed `table_exists` catalog query; `prefix` is the backend's query up to the
/// bound name.
pub(crate) fn lookup_error(prefix: &str, name: &str, source: diesel::result::Error) -> Error {
    Error::Ddl {
        table: name.to_owned(),
        action: "look up",
        statement: format!("SELECT {prefix}?)"),
        source,
    }
}

fn not_registered(name: &str) -> Error {
    Error::schema(
        name,
        None,
        "the table is not registered in this instance's schema registry",
    )
}

/// Every registered table's statements, each table after those it references, and
/// how many tables that is.
pub(crate) fn create_all(registry: &SchemaRegistry) -> Result<(Vec<Step>, usize)> {
    let tables = registry.ordered()?;
    Ok((create_steps(&tables), tables.len()))
}

/// The registered table `T`'s statements.
pub(crate) fn create_one<T: SchemaTable>(registry: &SchemaRegistry) -> Result<Vec<Step>> {
    let table = registry
        .get(T::sql_name())
        .ok_or_else(|| not_registered(T::sql_name()))?;
    Ok(create_steps(&[table]))
}

/// Every registered table's `DROP`, in reverse foreign-key order.
pub(crate) fn drop_all(registry: &SchemaRegistry) -> Result<Vec<Step>> {
    let tables = registry.ordered()?;
    Ok(drop_steps(
        registry.backend(),
        tables.iter().rev().map(|t| t.def.name.clone()),
    ))
}

/// The `DROP` of table `T`, registered or not.
pub(crate) fn drop_one<T: SchemaTable>(kind: BackendKind) -> Vec<Step> {
    drop_steps(kind, [T::sql_name().to_owned()])
}

/// Runs `steps` in order on a write session's connection: one transaction where DDL
/// is transactional; on MySQL each statement commits itself.
pub(crate) fn run(conn: &mut impl SimpleConnection, steps: &[Step]) -> Result<()> {
    for step in steps {
        tracing::debug!(statement = %step.statement, "dbinstance: schema");
        conn.batch_execute(&step.statement)
            .map_err(|e| step.error(e))?;
    }
    Ok(())
}

/// [`run`] on an async connection.
pub(crate) async fn async_run<C>(conn: &mut C, steps: &[Step]) -> Result<()>
where
    C: SimpleAsyncConnection + Send,
{
    for step in steps {
        tracing::debug!(statement = %step.statement, "dbinstance: schema");
        conn.batch_execute(&step.statement)
            .await
            .map_err(|e| step.error(e))?;
    }
    Ok(())
}
