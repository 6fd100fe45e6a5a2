//! A table's checked definition (columns, keys, foreign keys) and its rendered
//! DDL: what the registry stores, the dialects render and the ordering sorts.
//! At the bottom of the schema module so that those three only look down.

use super::options::{ForeignKey, TableOptions};
use super::table::SchemaTable;
use super::types::ColumnType;
use crate::error::{Error, Result};

/// The longest identifier accepted, in bytes: PostgreSQL's limit (it would silently
/// truncate a longer one), applied on every backend so that a schema tested on
/// SQLite also works on PostgreSQL.
pub(crate) const MAX_NAME_BYTES: usize = 63;

/// Rejects a name no backend can hold as given: empty, with a NUL, or too long.
pub(crate) fn check_name(name: &str, table: &str, column: Option<&str>, what: &str) -> Result<()> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.contains('\0') {
        "contains a NUL character"
    } else if name.len() > MAX_NAME_BYTES {
        "is longer than 63 bytes"
    } else {
        return Ok(());
    };
    Err(Error::schema(
        table,
        column,
        format!("{what} {name:?} {problem}"),
    ))
}

/// Rejects raw SQL (a default, an explicit type) that is empty or holds a NUL.
pub(crate) fn check_sql(sql: &str, table: &str, column: &str, what: &str) -> Result<()> {
    if sql.trim().is_empty() || sql.contains('\0') {
        return Err(Error::schema(
            table,
            Some(column),
            format!("{what} {sql:?} is empty or contains a NUL character"),
        ));
    }
    Ok(())
}

/// One column, resolved from diesel and the [`TableOptions`].
#[derive(Debug, Clone)]
pub(crate) struct ColumnDef {
    pub(crate) name: String,
    pub(crate) ty: ColumnType,
    pub(crate) nullable: bool,
    pub(crate) default: Option<String>,
    pub(crate) sql_type: Option<String>,
}

/// One table, checked and ready to render.
#[derive(Debug, Clone)]
pub(crate) struct TableDef {
    pub(crate) name: String,
    pub(crate) columns: Vec<ColumnDef>,
    pub(crate) primary_key: Vec<String>,
    pub(crate) uniques: Vec<Vec<String>>,
    pub(crate) indexes: Vec<Vec<String>>,
    pub(crate) foreign_keys: Vec<ForeignKey>,
    pub(crate) auto_increment: Option<String>,
}

impl TableDef {
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Builds the definition of `T` with `options`, rejecting anything that names
    /// a column the table does not have or that the options contradict.
    pub(crate) fn new<T: SchemaTable>(options: TableOptions) -> Result<Self> {
        let name = T::sql_name().to_owned();
        check_name(&name, &name, None, "the table name")?;
        let columns: Vec<ColumnDef> = T::column_defs()
            .into_iter()
            .map(|c| ColumnDef {
                name: c.name.to_owned(),
                ty: c.ty,
                nullable: c.nullable,
                default: None,
                sql_type: None,
            })
            .collect();
        for column in &columns {
            check_name(&column.name, &name, Some(&column.name), "the column name")?;
        }
        let mut def = TableDef {
            primary_key: T::primary_key_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            columns,
            uniques: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            auto_increment: None,
            name,
        };
        def.apply(options)?;
        Ok(def)
    }

    fn error(&self, column: Option<&str>, reason: impl Into<String>) -> Error {
        Error::schema(&self.name, column, reason)
    }

    fn require_column(&self, column: &str, role: &str) -> Result<()> {
        if self.column(column).is_some() {
            Ok(())
        } else {
            Err(self.error(
                Some(column),
                format!("{role} names a column the table does not have"),
            ))
        }
    }

    fn require_columns(&self, columns: &[String], role: &str) -> Result<()> {
        if columns.is_empty() {
            return Err(self.error(None, format!("{role} lists no columns")));
        }
        for (i, column) in columns.iter().enumerate() {
            self.require_column(column, role)?;
            if columns[..i].contains(column) {
                return Err(self.error(Some(column), format!("{role} lists the column twice")));
            }
        }
        Ok(())
    }

    fn column_mut(&mut self, name: &str) -> &mut ColumnDef {
        self.columns
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| unreachable!("checked by require_column"))
    }

    fn apply(&mut self, options: TableOptions) -> Result<()> {
        let TableOptions {
            uniques,
            indexes,
            foreign_keys,
            defaults,
            auto_increment,
            sql_types,
        } = options;
        for columns in &uniques {
            self.require_columns(columns, "a unique constraint")?;
        }
        for columns in &indexes {
            self.require_columns(columns, "an index")?;
        }
        for (column, sql) in sql_types {
            self.require_column(&column, "an explicit sql_type")?;
            check_sql(&sql, &self.name, &column, "the sql_type")?;
            self.column_mut(&column).sql_type = Some(sql);
        }
        for (column, sql) in defaults {
            self.require_column(&column, "a default")?;
            check_sql(&sql, &self.name, &column, "the default")?;
            self.column_mut(&column).default = Some(sql);
        }
        for (i, fk) in foreign_keys.iter().enumerate() {
            self.require_column(&fk.column, "a foreign key")?;
            let column = Some(fk.column.as_str());
            check_name(&fk.table, &self.name, column, "the referenced table name")?;
            check_name(
                &fk.references,
                &self.name,
                column,
                "the referenced column name",
            )?;
            if foreign_keys[..i]
                .iter()
                .any(|other| other.column == fk.column)
            {
                return Err(self.error(column, "the column has two foreign keys"));
            }
            if fk.on_delete == super::OnDelete::SetNull
                && !self.column(&fk.column).is_some_and(|c| c.nullable)
            {
                return Err(self.error(column, "ON DELETE SET NULL needs a Nullable column"));
            }
        }
        if let Some(column) = &auto_increment {
            self.require_column(column, "auto_increment")?;
            let def = self
                .column(column)
                .unwrap_or_else(|| unreachable!("checked"));
            let reason = if self.primary_key != [column.clone()] {
                Some("an auto-increment column must be the whole primary key")
            } else if !def.ty.is_integer() {
                Some("an auto-increment column must have an integer type")
            } else if def.nullable {
                Some("an auto-increment column cannot be Nullable")
            } else if def.default.is_some() || def.sql_type.is_some() {
                Some("an auto-increment column takes no default and no explicit sql_type")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(self.error(Some(column), reason));
            }
        }
        self.uniques = uniques;
        self.indexes = indexes;
        self.foreign_keys = foreign_keys;
        self.auto_increment = auto_increment;
        Ok(())
    }
}

/// A registered table with its DDL, rendered once for the registry's backend.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) def: TableDef,
    pub(crate) create: Vec<String>,
    pub(crate) drop: String,
}
