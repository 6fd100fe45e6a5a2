//! Reading a table's name, columns and primary key from its diesel `table!`
//! definition, so the DDL cannot drift from the queries.

use super::types::{ColumnType, SchemaType};
// diesel's `internal` module is what `table!` expands to: public, hidden, and
// outside diesel's semver promise. The workspace pins diesel 2.3; an upgrade that
// moves these fails to compile here, not at run time.
use diesel::internal::operators_macro::FieldAliasMapper;
use diesel::internal::table_macro::{Identifier, StaticQueryFragment};
use diesel::query_source::{AliasSource, AliasedField};
use diesel::{Column, Table};

/// One column as diesel declares it; opaque outside the crate.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct DieselColumn {
    pub(crate) name: &'static str,
    pub(crate) ty: ColumnType,
    pub(crate) nullable: bool,
}

/// A diesel `table!` the schema registry can create: its name, and the name, SQL
/// type and nullability of each column and of its primary key.
///
/// Implemented for every table declared with `diesel::table!` whose column types
/// implement [`SchemaType`] (all of diesel's own do). Schema-qualified tables
/// (`table! { app.users ... }`) are not supported: point the connection at the
/// schema instead (PostgreSQL `search_path`, a MySQL database).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be registered in a schema registry",
    note = "register the `table` type of a `diesel::table!` without a schema prefix, whose column types all implement `dbinstance::SchemaType`"
)]
pub trait SchemaTable: Table + 'static {
    /// The table's SQL name.
    #[doc(hidden)]
    fn sql_name() -> &'static str;

    /// Every column, in declaration order.
    #[doc(hidden)]
    fn column_defs() -> Vec<DieselColumn>;

    /// The names of the primary-key columns, in key order.
    #[doc(hidden)]
    fn primary_key_names() -> Vec<&'static str>;
}

impl<T> SchemaTable for T
where
    T: Table + StaticQueryFragment<Component = Identifier<'static>> + Clone + 'static,
    T::AllColumns: FieldAliasMapper<Probe<T>>,
    <T::AllColumns as FieldAliasMapper<Probe<T>>>::Out: ColumnSet,
    T::PrimaryKey: FieldAliasMapper<Probe<T>>,
    <T::PrimaryKey as FieldAliasMapper<Probe<T>>>::Out: ColumnSet,
{
    fn sql_name() -> &'static str {
        T::STATIC_COMPONENT.0
    }

    fn column_defs() -> Vec<DieselColumn> {
        let mut out = Vec::new();
        <<T::AllColumns as FieldAliasMapper<Probe<T>>>::Out as ColumnSet>::collect(&mut out);
        out
    }

    fn primary_key_names() -> Vec<&'static str> {
        let mut out = Vec::new();
        <<T::PrimaryKey as FieldAliasMapper<Probe<T>>>::Out as ColumnSet>::collect(&mut out);
        out.into_iter().map(|c| c.name).collect()
    }
}

/// A type-level alias of table `T`, never built. diesel maps a column of `T`, or a
/// tuple of them, to `AliasedField<Probe<T>, C>` (or a tuple of those), which lets
/// [`ColumnSet`] treat a single-column primary key and a composite one alike.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Probe<T>(T);

impl<T: Table> AliasSource for Probe<T> {
    const NAME: &'static str = "dbinstance_schema_probe";
    type Target = T;

    fn target(&self) -> &T {
        &self.0
    }
}

/// Columns of one table, as diesel's alias mapping hands them over.
#[doc(hidden)]
pub trait ColumnSet {
    /// Appends each column, in order.
    fn collect(out: &mut Vec<DieselColumn>);
}

impl<S, C> ColumnSet for AliasedField<S, C>
where
    C: Column,
    C::SqlType: SchemaType,
{
    fn collect(out: &mut Vec<DieselColumn>) {
        out.push(DieselColumn {
            name: C::NAME,
            ty: <C::SqlType as SchemaType>::column_type(),
            nullable: <C::SqlType as SchemaType>::NULLABLE,
        });
    }
}

macro_rules! column_set_tuple {
    ($($T:ident),+) => {
        impl<$($T: ColumnSet),+> ColumnSet for ($($T,)+) {
            fn collect(out: &mut Vec<DieselColumn>) {
                $($T::collect(out);)+
            }
        }
    };
}

/// Implements [`ColumnSet`] for every tuple length from the list's down to one.
macro_rules! column_set_tuples {
    ($head:ident $(, $tail:ident)*) => {
        column_set_tuple!($head $(, $tail)*);
        column_set_tuples!($($tail),*);
    };
    () => {};
}

// diesel's `table!` has at most 32 columns unless its `64-column-tables` feature is on.
column_set_tuples!(
    C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17, C18, C19, C20,
    C21, C22, C23, C24, C25, C26, C27, C28, C29, C30, C31
);
