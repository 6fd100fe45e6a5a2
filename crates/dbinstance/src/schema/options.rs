//! `TableOptions`: what a diesel `table!` does not say about a table.

use super::table::SchemaTable;
use diesel::Column;

/// What happens to referencing rows when the referenced row is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    /// Refuse the delete while rows still reference it, checked at the end of the
    /// statement (the SQL default).
    #[default]
    NoAction,
    /// Refuse the delete at once.
    Restrict,
    /// Delete the referencing rows too.
    Cascade,
    /// Set the referencing column to NULL; the column must be `Nullable`.
    SetNull,
    /// Set the referencing column to its default (not on MySQL/MariaDB, whose
    /// InnoDB engine refuses it).
    SetDefault,
}

impl OnDelete {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::SetDefault => "SET DEFAULT",
        }
    }
}

/// A foreign key from one column to a column of another (or the same) table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignKey {
    pub(crate) column: String,
    pub(crate) table: String,
    pub(crate) references: String,
    pub(crate) on_delete: OnDelete,
}

/// What a diesel `table!` does not know about a table, for
/// [`SchemaRegistry::register`](crate::SchemaRegistry::register): unique
/// constraints, indexes, foreign keys, defaults, an auto-increment key and explicit
/// column types. Column names, SQL types, nullability and the primary key come
/// from the `table!` itself.
///
/// Every column named here must be one of the table's; a typo fails `register`
/// with [`Error::Schema`](crate::Error::Schema) naming the table and column.
///
/// ```
/// use dbinstance::{OnDelete, TableOptions};
/// let options = TableOptions::new()
///     .auto_increment("id")
///     .foreign_key("user_id", "users", "id", OnDelete::Cascade)
///     .unique(["user_id", "slug"])
///     .index(["title"])
///     .default("created_at", "CURRENT_TIMESTAMP");
/// ```
///
/// # How each backend writes a column
///
/// | diesel type | PostgreSQL | MySQL / MariaDB | SQLite |
/// |---|---|---|---|
/// | `Bool` | `BOOLEAN` | `BOOLEAN` | `BOOLEAN` |
/// | `TinyInt` | unsupported | `TINYINT` | `TINYINT` |
/// | `SmallInt` / `Integer` / `BigInt` | `SMALLINT` / `INTEGER` / `BIGINT` | same | same |
/// | `Float` / `Double` | `REAL` / `DOUBLE PRECISION` | `FLOAT` / `DOUBLE` | `REAL` / `DOUBLE` |
/// | `Numeric` | `NUMERIC` | needs [`sql_type`](Self::sql_type) | `NUMERIC` |
/// | `Text` | `TEXT` | `LONGTEXT`, or `VARCHAR(255)` when keyed | `TEXT` |
/// | `Binary` | `BYTEA` | `LONGBLOB`, or `VARBINARY(255)` when keyed | `BLOB` |
/// | `Date` / `Time` | `DATE` / `TIME` | `DATE` / `TIME(6)` | `DATE` / `TIME` |
/// | `Timestamp` (`Datetime`) | `TIMESTAMP` | `DATETIME(6)` | `TIMESTAMP` |
/// | `Timestamptz` | `TIMESTAMPTZ` | unsupported | `TIMESTAMPTZ` |
/// | `Interval` / `Uuid` | `INTERVAL` / `UUID` | unsupported | unsupported |
/// | `Json` / `Jsonb` | `JSON` / `JSONB` | `JSON` / unsupported | `JSON` / `JSONB` |
/// | `Unsigned<T>` | unsupported | `T UNSIGNED` | unsupported |
///
/// MySQL cannot index a `TEXT` or `BLOB` column without a prefix length, so a
/// `Text` or `Binary` column that is part of the primary key, a unique constraint,
/// an index or a foreign key becomes `VARCHAR(255)` / `VARBINARY(255)` there. Use
/// [`sql_type`](Self::sql_type) for another length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "pass the options to SchemaRegistry::register"]
pub struct TableOptions {
    pub(crate) uniques: Vec<Vec<String>>,
    pub(crate) indexes: Vec<Vec<String>>,
    pub(crate) foreign_keys: Vec<ForeignKey>,
    pub(crate) defaults: Vec<(String, String)>,
    pub(crate) auto_increment: Option<String>,
    pub(crate) sql_types: Vec<(String, String)>,
}

impl TableOptions {
    /// No options: the table exactly as diesel declares it.
    pub fn new() -> Self {
        <Self as Default>::default()
    }

    /// A unique constraint over `columns` (one or more), named
    /// `uq_<table>_<columns>`.
    pub fn unique<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.uniques
            .push(columns.into_iter().map(Into::into).collect());
        self
    }

    /// A (non-unique) index over `columns`, named `ix_<table>_<columns>`.
    pub fn index<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.indexes
            .push(columns.into_iter().map(Into::into).collect());
        self
    }

    /// A foreign key from `column` to `references` in `table`, named
    /// `fk_<table>_<column>`. When `table` is registered in the same registry,
    /// [`create_tables`](crate::DatabaseInstance::create_tables) creates it first.
    pub fn foreign_key(
        mut self,
        column: impl Into<String>,
        table: impl Into<String>,
        references: impl Into<String>,
        on_delete: OnDelete,
    ) -> Self {
        self.foreign_keys.push(ForeignKey {
            column: column.into(),
            table: table.into(),
            references: references.into(),
            on_delete,
        });
        self
    }

    /// [`foreign_key`](Self::foreign_key) from diesel columns, so a renamed column
    /// or table is a compile error: `.references::<posts::user_id, users::id>(OnDelete::Cascade)`.
    pub fn references<C, R>(self, on_delete: OnDelete) -> Self
    where
        C: Column,
        R: Column,
        R::Table: SchemaTable,
    {
        self.foreign_key(
            C::NAME,
            <R::Table as SchemaTable>::sql_name(),
            R::NAME,
            on_delete,
        )
    }

    /// A default for `column`, as raw SQL written into the DDL unchanged
    /// (`"0"`, `"'draft'"`, `"CURRENT_TIMESTAMP"`): never pass user input.
    /// `CURRENT_TIMESTAMP` works on every backend (MySQL gets
    /// `CURRENT_TIMESTAMP(6)` to match its `DATETIME(6)` columns); other
    /// expressions may need MySQL's parentheses.
    pub fn default(mut self, column: impl Into<String>, sql: impl Into<String>) -> Self {
        self.defaults.push((column.into(), sql.into()));
        self
    }

    /// Makes `column`, which must be the table's whole primary key and an integer,
    /// take its value from the database when an insert leaves it out:
    /// `GENERATED BY DEFAULT AS IDENTITY` on PostgreSQL, `AUTO_INCREMENT` on MySQL,
    /// and on SQLite an `INTEGER PRIMARY KEY` (the rowid, even for a `BigInt`).
    pub fn auto_increment(mut self, column: impl Into<String>) -> Self {
        self.auto_increment = Some(column.into());
        self
    }

    /// Writes `column` with the SQL type `sql` (raw, for example `VARCHAR(64)` or
    /// `DECIMAL(12, 2)`) instead of the one its diesel type maps to. The SQL must
    /// still read and write as the diesel type.
    pub fn sql_type(mut self, column: impl Into<String>, sql: impl Into<String>) -> Self {
        self.sql_types.push((column.into(), sql.into()));
        self
    }
}
