//! Each backend's SQL for the schema registry: quoting, column types, `CREATE
//! TABLE`, indexes and `DROP TABLE`.

use super::def::{ColumnDef, TableDef, MAX_NAME_BYTES};
use super::options::OnDelete;
use super::types::ColumnType;
use crate::backend::BackendKind;
use crate::error::{Error, Result};

/// `name` as a quoted identifier: `"name"` on PostgreSQL and SQLite, `` `name` `` on
/// MySQL, with the quote character doubled inside.
pub(crate) fn quote(kind: BackendKind, name: &str) -> String {
    let q = match kind {
        BackendKind::Mysql => '`',
        BackendKind::Postgres | BackendKind::Sqlite => '"',
    };
    let mut out = String::with_capacity(name.len() + 2);
    out.push(q);
    for c in name.chars() {
        if c == q {
            out.push(q);
        }
        out.push(c);
    }
    out.push(q);
    out
}

fn quote_list(kind: BackendKind, names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(kind, n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<prefix>_<table>_<columns>`, shortened with a hash when it would pass
/// [`MAX_NAME_BYTES`] (index and constraint names share a namespace per schema on
/// PostgreSQL and per database on SQLite, hence the table in the name).
pub(crate) fn constraint_name(prefix: &str, table: &str, columns: &[String]) -> String {
    let full = format!("{prefix}_{table}_{}", columns.join("_"));
    if full.len() <= MAX_NAME_BYTES {
        return full;
    }
    // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut cut = MAX_NAME_BYTES - 17;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:016x}", &full[..cut], hash)
}

fn unsupported(kind: BackendKind, table: &str, column: &str, ty: &ColumnType) -> Error {
    Error::schema(
        table,
        Some(column),
        format!("the column type {ty:?} is not supported on {kind}; give the column an explicit TableOptions::sql_type"),
    )
}

/// The SQL type of `column`. `keyed`: the column is part of a key or index (MySQL
/// cannot index `TEXT`/`BLOB` without a prefix length).
fn column_type_sql(
    kind: BackendKind,
    table: &str,
    column: &ColumnDef,
    keyed: bool,
) -> Result<String> {
    if let Some(sql) = &column.sql_type {
        return Ok(sql.clone());
    }
    type_sql(kind, table, &column.name, &column.ty, keyed)
}

fn type_sql(
    kind: BackendKind,
    table: &str,
    column: &str,
    ty: &ColumnType,
    keyed: bool,
) -> Result<String> {
    use BackendKind::{Mysql, Postgres, Sqlite};
    let sql = match (ty, kind) {
        (ColumnType::Bool, _) => "BOOLEAN",
        (ColumnType::TinyInt, Mysql | Sqlite) => "TINYINT",
        (ColumnType::SmallInt, _) => "SMALLINT",
        (ColumnType::Integer, _) => "INTEGER",
        (ColumnType::BigInt, _) => "BIGINT",
        (ColumnType::Float, Postgres | Sqlite) => "REAL",
        (ColumnType::Float, Mysql) => "FLOAT",
        (ColumnType::Double, Postgres) => "DOUBLE PRECISION",
        (ColumnType::Double, Mysql | Sqlite) => "DOUBLE",
        (ColumnType::Numeric, Postgres | Sqlite) => "NUMERIC",
        (ColumnType::Text, Postgres | Sqlite) => "TEXT",
        (ColumnType::Text, Mysql) if keyed => "VARCHAR(255)",
        (ColumnType::Text, Mysql) => "LONGTEXT",
        (ColumnType::Binary, Postgres) => "BYTEA",
        (ColumnType::Binary, Sqlite) => "BLOB",
        (ColumnType::Binary, Mysql) if keyed => "VARBINARY(255)",
        (ColumnType::Binary, Mysql) => "LONGBLOB",
        (ColumnType::Date, _) => "DATE",
        (ColumnType::Time, Postgres | Sqlite) => "TIME",
        (ColumnType::Time, Mysql) => "TIME(6)",
        (ColumnType::Timestamp, Postgres | Sqlite) => "TIMESTAMP",
        (ColumnType::Timestamp, Mysql) => "DATETIME(6)",
        (ColumnType::Timestamptz, Postgres | Sqlite) => "TIMESTAMPTZ",
        (ColumnType::Interval, Postgres) => "INTERVAL",
        (ColumnType::Json, _) => "JSON",
        (ColumnType::Jsonb, Postgres | Sqlite) => "JSONB",
        (ColumnType::Uuid, Postgres) => "UUID",
        (ColumnType::Unsigned(inner), Mysql) if inner.is_integer() => {
            return Ok(format!(
                "{} UNSIGNED",
                type_sql(kind, table, column, inner, keyed)?
            ));
        }
        (ColumnType::Custom(sql), _) => sql,
        _ => return Err(unsupported(kind, table, column, ty)),
    };
    Ok(sql.to_owned())
}

/// `default` as the backend needs it: MySQL's `DATETIME(6)`/`TIME(6)` columns only
/// take `CURRENT_TIMESTAMP` with the same precision.
fn default_sql(kind: BackendKind, column: &ColumnDef, default: &str) -> String {
    let fractional =
        matches!(column.ty, ColumnType::Timestamp | ColumnType::Time) && column.sql_type.is_none();
    let now = default.trim().eq_ignore_ascii_case("CURRENT_TIMESTAMP")
        || default.trim().eq_ignore_ascii_case("CURRENT_TIMESTAMP()");
    if kind == BackendKind::Mysql && fractional && now {
        "CURRENT_TIMESTAMP(6)".to_owned()
    } else {
        default.to_owned()
    }
}

/// The statements that create `table` and its indexes, each idempotent
/// (`IF NOT EXISTS`).
pub(crate) fn create_statements(kind: BackendKind, table: &TableDef) -> Result<Vec<String>> {
    let name = &table.name;
    let keyed = |column: &str| {
        let named = |cols: &Vec<String>| cols.iter().any(|c| c == column);
        table.primary_key.iter().any(|c| c == column)
            || table.uniques.iter().any(named)
            || table.indexes.iter().any(named)
            || table.foreign_keys.iter().any(|fk| fk.column == column)
    };
    let auto = table.auto_increment.as_deref();
    // SQLite makes a column auto-increment only as the rowid: `INTEGER PRIMARY KEY`.
    let sqlite_rowid = kind == BackendKind::Sqlite && auto.is_some();

    let mut lines = Vec::new();
    for column in &table.columns {
        let is_auto = auto == Some(column.name.as_str());
        let ty = if is_auto && kind == BackendKind::Sqlite {
            "INTEGER".to_owned()
        } else {
            column_type_sql(kind, name, column, keyed(&column.name))?
        };
        let mut line = format!("{} {ty}", quote(kind, &column.name));
        if is_auto {
            line.push_str(match kind {
                BackendKind::Postgres => " NOT NULL GENERATED BY DEFAULT AS IDENTITY",
                BackendKind::Mysql => " NOT NULL AUTO_INCREMENT",
                BackendKind::Sqlite => " PRIMARY KEY",
            });
        } else {
            if !column.nullable {
                line.push_str(" NOT NULL");
            }
            if let Some(default) = &column.default {
                line.push_str(" DEFAULT ");
                line.push_str(&default_sql(kind, column, default));
            }
        }
        lines.push(line);
    }
    if !sqlite_rowid {
        lines.push(format!(
            "PRIMARY KEY ({})",
            quote_list(kind, &table.primary_key)
        ));
    }
    for columns in &table.uniques {
        let constraint = quote(kind, &constraint_name("uq", name, columns));
        lines.push(match kind {
            BackendKind::Mysql => {
                format!("UNIQUE KEY {constraint} ({})", quote_list(kind, columns))
            }
            BackendKind::Postgres | BackendKind::Sqlite => format!(
                "CONSTRAINT {constraint} UNIQUE ({})",
                quote_list(kind, columns)
            ),
        });
    }
    for fk in &table.foreign_keys {
        if kind == BackendKind::Mysql && fk.on_delete == OnDelete::SetDefault {
            return Err(Error::schema(
                name,
                Some(&fk.column),
                "ON DELETE SET DEFAULT is refused by MySQL's InnoDB engine",
            ));
        }
        lines.push(format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
            quote(
                kind,
                &constraint_name("fk", name, std::slice::from_ref(&fk.column))
            ),
            quote(kind, &fk.column),
            quote(kind, &fk.table),
            quote(kind, &fk.references),
            fk.on_delete.sql(),
        ));
    }
    // MySQL has no `CREATE INDEX IF NOT EXISTS`: its indexes go inside the table.
    if kind == BackendKind::Mysql {
        for columns in &table.indexes {
            lines.push(format!(
                "INDEX {} ({})",
                quote(kind, &constraint_name("ix", name, columns)),
                quote_list(kind, columns)
            ));
        }
    }

    let mut create = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    {}\n)",
        quote(kind, name),
        lines.join(",\n    ")
    );
    if kind == BackendKind::Mysql {
        // Foreign keys need InnoDB; say so rather than trust the server's default.
        create.push_str(" ENGINE=InnoDB");
    }
    let mut statements = vec![create];
    if kind != BackendKind::Mysql {
        for columns in &table.indexes {
            statements.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                quote(kind, &constraint_name("ix", name, columns)),
                quote(kind, name),
                quote_list(kind, columns)
            ));
        }
    }
    Ok(statements)
}

/// `DROP TABLE IF EXISTS`; its indexes go with it.
pub(crate) fn drop_statement(kind: BackendKind, table: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", quote(kind, table))
}
