//! `SchemaRegistry`: one instance's own tables, checked when registered and put in
//! foreign-key order when created.

use super::dialect::{self, check_name, check_sql};
use super::options::{ForeignKey, TableOptions};
use super::order;
use super::table::SchemaTable;
use super::types::ColumnType;
use crate::config::BackendKind;
use crate::error::{Error, Result};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

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
    fn new<T: SchemaTable>(options: TableOptions) -> Result<Self> {
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

/// The tables one [`DatabaseInstance`](crate::DatabaseInstance) creates: its own,
/// never shared with another instance (there is nothing global), from
/// [`DatabaseInstance::schema`](crate::DatabaseInstance::schema).
///
/// Tables are registered from their diesel `table!` definitions with
/// [`register`](Self::register), at any time after the instance is built, and
/// created with [`create_tables`](crate::DatabaseInstance::create_tables).
pub struct SchemaRegistry {
    backend: BackendKind,
    tables: RwLock<Vec<Arc<Registered>>>,
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("backend", &self.backend)
            .field("tables", &self.table_names())
            .finish()
    }
}

impl SchemaRegistry {
    pub(crate) fn new(backend: BackendKind) -> Self {
        Self {
            backend,
            tables: RwLock::new(Vec::new()),
        }
    }

    /// The backend whose SQL this registry writes.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// Registers the diesel table `T` with `options`; returns the registry so that
    /// calls chain. Its columns, their SQL types, nullability and the primary key
    /// come from `T`'s `table!` definition.
    ///
    /// ```
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite, TableOptions};
    /// diesel::table! { tags (id) { id -> Integer, label -> Text } }
    /// # let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
    /// db.schema().register::<tags::table>(TableOptions::new().unique(["label"]))?;
    /// assert_eq!(db.schema().table_names(), ["tags"]);
    /// # Ok::<(), dbinstance::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Schema`] naming the table (and the column, where one is at fault)
    /// when a name is empty, holds a NUL or passes 63 bytes, when the options name
    /// a column the table lacks or contradict it, when a column's type has no SQL
    /// on this backend, or when a table of that name is already registered.
    pub fn register<T: SchemaTable>(&self, options: TableOptions) -> Result<&Self> {
        let def = TableDef::new::<T>(options)?;
        let create = dialect::create_statements(self.backend, &def)?;
        let drop = dialect::drop_statement(self.backend, &def.name);
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        if tables.iter().any(|t| t.def.name == def.name) {
            return Err(Error::schema(
                &def.name,
                None,
                "the table is already registered",
            ));
        }
        tables.push(Arc::new(Registered { def, create, drop }));
        Ok(self)
    }

    /// The registered tables' names, in registration order.
    pub fn table_names(&self) -> Vec<String> {
        self.snapshot().iter().map(|t| t.def.name.clone()).collect()
    }

    /// Whether a table named `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.snapshot().iter().any(|t| t.def.name == name)
    }

    /// How many tables are registered.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether no table is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The statements [`create_tables`](crate::DatabaseInstance::create_tables)
    /// runs, in order: each table's `CREATE TABLE IF NOT EXISTS`, then its indexes.
    ///
    /// # Errors
    /// As [`create_order`](Self::create_order).
    pub fn create_statements(&self) -> Result<Vec<String>> {
        Ok(self
            .ordered()?
            .iter()
            .flat_map(|t| t.create.iter().cloned())
            .collect())
    }

    /// The statements [`drop_tables`](crate::DatabaseInstance::drop_tables) runs:
    /// `DROP TABLE IF EXISTS` in reverse foreign-key order.
    ///
    /// # Errors
    /// As [`create_order`](Self::create_order).
    pub fn drop_statements(&self) -> Result<Vec<String>> {
        Ok(self
            .ordered()?
            .iter()
            .rev()
            .map(|t| t.drop.clone())
            .collect())
    }

    /// The registered tables' names with every table after the registered tables
    /// its foreign keys reference (registration order otherwise).
    ///
    /// # Errors
    /// [`Error::Schema`] when the foreign keys form a cycle (naming its tables), or
    /// when a foreign key names a column that its registered target table lacks.
    pub fn create_order(&self) -> Result<Vec<String>> {
        Ok(self.ordered()?.iter().map(|t| t.def.name.clone()).collect())
    }

    pub(crate) fn snapshot(&self) -> Vec<Arc<Registered>> {
        self.tables
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The registered table named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Registered>> {
        self.snapshot().into_iter().find(|t| t.def.name == name)
    }

    /// Every registered table, each after the registered tables it references.
    pub(crate) fn ordered(&self) -> Result<Vec<Arc<Registered>>> {
        order::order(self.snapshot())
    }
}
