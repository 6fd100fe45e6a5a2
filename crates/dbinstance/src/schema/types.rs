//! Column types: which SQL type each diesel SQL type marker becomes.

use diesel::sql_types;

/// The portable type of a registered column, read from its diesel SQL type.
///
/// Each backend's dialect turns it into SQL (see [`TableOptions`](crate::TableOptions)
/// for the full table); a type a backend cannot hold (`Interval` on MySQL, `Uuid`
/// outside PostgreSQL, ...) fails [`register`](crate::SchemaRegistry::register)
/// with [`Error::Schema`](crate::Error::Schema) naming the table and column.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// `Bool`.
    Bool,
    /// `TinyInt` (MySQL and SQLite only).
    TinyInt,
    /// `SmallInt`.
    SmallInt,
    /// `Integer`.
    Integer,
    /// `BigInt`.
    BigInt,
    /// `Float`: 4-byte floating point.
    Float,
    /// `Double`: 8-byte floating point.
    Double,
    /// `Numeric`: PostgreSQL and SQLite only, unless the column gets an explicit
    /// [`sql_type`](crate::TableOptions::sql_type) such as `DECIMAL(12, 2)`.
    Numeric,
    /// `Text`.
    Text,
    /// `Binary`.
    Binary,
    /// `Date`.
    Date,
    /// `Time`.
    Time,
    /// `Timestamp` (and MySQL's `Datetime`): without time zone.
    Timestamp,
    /// `Timestamptz`: PostgreSQL's `TIMESTAMPTZ`, and SQLite's `TimestamptzSqlite`.
    Timestamptz,
    /// `Interval` (PostgreSQL only).
    Interval,
    /// `Json`.
    Json,
    /// `Jsonb` (PostgreSQL and SQLite).
    Jsonb,
    /// `Uuid` (PostgreSQL only).
    Uuid,
    /// `Unsigned<T>` (MySQL only) of an integer type.
    Unsigned(Box<ColumnType>),
    /// A type written into the DDL as is, on every backend: what an application's
    /// own [`SchemaType`] implementation returns for a custom diesel SQL type.
    Custom(&'static str),
}

impl ColumnType {
    /// Whether this is an integer type, the only kind that can auto-increment.
    pub(crate) fn is_integer(&self) -> bool {
        match self {
            ColumnType::TinyInt
            | ColumnType::SmallInt
            | ColumnType::Integer
            | ColumnType::BigInt => true,
            ColumnType::Unsigned(inner) => inner.is_integer(),
            _ => false,
        }
    }
}

/// A diesel SQL type the schema registry can create a column for.
///
/// Implemented for diesel's SQL types (`Integer`, `Text`, `Nullable<T>`, ...). For a
/// custom diesel SQL type, implement it returning [`ColumnType::Custom`]:
///
/// ```
/// #[derive(diesel::sql_types::SqlType)]
/// pub struct Mood;
///
/// impl dbinstance::SchemaType for Mood {
///     fn column_type() -> dbinstance::ColumnType {
///         dbinstance::ColumnType::Custom("mood")
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "the schema registry has no column type for the diesel SQL type `{Self}`",
    note = "implement `dbinstance::SchemaType` for it, returning `ColumnType::Custom(\"<sql type>\")`"
)]
pub trait SchemaType {
    /// Whether the column accepts NULL: true only for `Nullable<T>`.
    const NULLABLE: bool = false;

    /// The column's type.
    fn column_type() -> ColumnType;
}

impl<T> SchemaType for sql_types::Nullable<T>
where
    T: SchemaType + sql_types::SqlType<IsNull = sql_types::is_nullable::NotNull>,
{
    const NULLABLE: bool = true;

    fn column_type() -> ColumnType {
        T::column_type()
    }
}

macro_rules! schema_types {
    ($($(#[$meta:meta])* $ty:ty => $variant:ident,)*) => {$(
        $(#[$meta])*
        impl SchemaType for $ty {
            fn column_type() -> ColumnType {
                ColumnType::$variant
            }
        }
    )*};
}

schema_types! {
    sql_types::Bool => Bool,
    sql_types::TinyInt => TinyInt,
    sql_types::SmallInt => SmallInt,
    sql_types::Integer => Integer,
    sql_types::BigInt => BigInt,
    sql_types::Float => Float,
    sql_types::Double => Double,
    sql_types::Numeric => Numeric,
    sql_types::Text => Text,
    sql_types::Binary => Binary,
    sql_types::Date => Date,
    sql_types::Time => Time,
    sql_types::Timestamp => Timestamp,
    sql_types::Interval => Interval,
    sql_types::Json => Json,
    sql_types::Jsonb => Jsonb,
    #[cfg(feature = "postgres")]
    sql_types::Timestamptz => Timestamptz,
    #[cfg(feature = "postgres")]
    sql_types::Uuid => Uuid,
    #[cfg(feature = "mysql")]
    sql_types::Datetime => Timestamp,
    #[cfg(feature = "sqlite")]
    sql_types::TimestamptzSqlite => Timestamptz,
}

#[cfg(feature = "mysql")]
impl<T: SchemaType> SchemaType for sql_types::Unsigned<T> {
    fn column_type() -> ColumnType {
        ColumnType::Unsigned(Box::new(T::column_type()))
    }
}
