-- Portable across PostgreSQL, MySQL/MariaDB and SQLite.
CREATE TABLE gadgets (
    id INTEGER PRIMARY KEY,
    name VARCHAR(100) NOT NULL
);
