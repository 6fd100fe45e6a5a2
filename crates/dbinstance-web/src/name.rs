//! A database of a [`DatabaseManager`] named by a type, for the extractors that
//! take a database by name (`DbReadFrom<Postgres, Analytics>`): a string is not a
//! type parameter, so each name is a small type declared with
//! [`database_name!`](crate::database_name).

use crate::rejection::Rejection;
use dbinstance::{Backend, DatabaseInstance, DatabaseManager};

/// Names one database of the app's [`DatabaseManager`].
pub trait DatabaseName: Send + Sync + 'static {
    /// The name, as in the manager's configuration.
    const NAME: &'static str;
}

/// Declares a type that names a database of the manager:
///
/// ```
/// dbinstance_web::database_name!(pub Analytics = "analytics");
/// use dbinstance_web::DatabaseName;
/// assert_eq!(Analytics::NAME, "analytics");
/// ```
#[macro_export]
macro_rules! database_name {
    ($(#[$meta:meta])* $vis:vis $name:ident = $value:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::DatabaseName for $name {
            const NAME: &'static str = $value;
        }
    };
}

/// The database `N` of `manager`, typed `B`. A name the manager does not know, or
/// a database of another backend, is the service's own mistake: a 500 whose body
/// says no more than "internal database error" (the cause is in its log).
///
/// # Errors
/// [`RejectionKind::Database`](crate::RejectionKind::Database) for an unknown name
/// or another backend.
pub fn named_instance<B: Backend, N: DatabaseName>(
    manager: &DatabaseManager,
) -> Result<DatabaseInstance<B>, Rejection> {
    Ok(manager.get::<B>(N::NAME)?.clone())
}
