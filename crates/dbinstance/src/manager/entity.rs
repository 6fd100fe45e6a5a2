//! Routing by entity: the database a table's (or any type's) reads and writes go
//! to, as [`ManagerConfig::route`](super::ManagerConfig::route) set it. A type
//! mapped nowhere is an error, never the default by accident.

use super::{AnyInstance, DatabaseManager};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::id::Role;
use crate::instance::DatabaseInstance;
use crate::session::{AsyncSession, Session};
use std::any::TypeId;

impl DatabaseManager {
    /// The database the entity `T`'s reads (`Role::Read`) or writes go to.
    ///
    /// # Errors
    /// [`Error::UnroutedEntity`] when no route names `T` for `role`.
    pub fn database_for<T: ?Sized + 'static>(&self, role: Role) -> Result<&AnyInstance> {
        let route = self
            .inner
            .routes
            .get(&(TypeId::of::<T>(), role))
            .ok_or_else(|| Error::UnroutedEntity {
                entity: std::any::type_name::<T>(),
                role,
            })?;
        self.database(&route.database)
    }

    /// The database the entity `T`'s reads or writes go to, typed by its backend.
    ///
    /// # Errors
    /// [`Error::UnroutedEntity`], or [`Error::DatabaseBackend`] when that
    /// database is of another backend than `B`.
    pub fn get_for<B: Backend, T: ?Sized + 'static>(
        &self,
        role: Role,
    ) -> Result<&DatabaseInstance<B>> {
        let database = self.database_for::<T>(role)?;
        database.typed().ok_or_else(|| Error::DatabaseBackend {
            name: self.inner.routes[&(TypeId::of::<T>(), role)]
                .database
                .clone(),
            configured: database.backend(),
            requested: B::KIND,
        })
    }

    /// A blocking read session of the database the entity `T`'s reads go to:
    /// `manager.get_db_cm_read_for::<Postgres, users::table>()`.
    ///
    /// # Errors
    /// Those of [`get_for`](Self::get_for) and of
    /// [`DatabaseInstance::get_db_cm_read`].
    pub fn get_db_cm_read_for<B: Backend, T: ?Sized + 'static>(&self) -> Result<Session<B>> {
        self.get_for::<B, T>(Role::Read)?.get_db_cm_read()
    }

    /// A blocking write session of the database the entity `T`'s writes go to.
    ///
    /// # Errors
    /// Those of [`get_for`](Self::get_for) and of
    /// [`DatabaseInstance::get_db_cm_write`].
    pub fn get_db_cm_write_for<B: Backend, T: ?Sized + 'static>(&self) -> Result<Session<B>> {
        self.get_for::<B, T>(Role::Write)?.get_db_cm_write()
    }

    /// The async twin of [`get_db_cm_read_for`](Self::get_db_cm_read_for).
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm_read_for<B: Backend, T: ?Sized + 'static>(
        &self,
    ) -> Result<AsyncSession<B>> {
        self.get_for::<B, T>(Role::Read)?
            .async_get_db_cm_read()
            .await
    }

    /// The async twin of [`get_db_cm_write_for`](Self::get_db_cm_write_for).
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm_write_for<B: Backend, T: ?Sized + 'static>(
        &self,
    ) -> Result<AsyncSession<B>> {
        self.get_for::<B, T>(Role::Write)?
            .async_get_db_cm_write()
            .await
    }
}
