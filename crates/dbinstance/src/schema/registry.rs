//! `SchemaRegistry`: one instance's own tables, checked when registered and put in
//! foreign-key order when created.

use super::def::{Registered, TableDef};
use super::dialect;
use super::options::TableOptions;
use super::order;
use super::table::SchemaTable;
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

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
