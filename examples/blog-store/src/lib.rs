//! The data: users and their posts, the tables the instance creates at boot, and
//! the queries, written once as typed diesel queries and compiled for each backend.
//!
//! The handlers are generic over the backend `B: Store`, so one binary serves
//! SQLite, PostgreSQL or MariaDB, chosen at run time from `DATABASE_URL`. diesel
//! checks each query against each backend at compile time; the only difference
//! between them is how the id of a new row is read back.

pub mod metrics;

use dbinstance::{Backend, DatabaseInstance, OnDelete, TableOptions};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use std::future::Future;

/// The diesel schema: the same definitions type the queries and create the tables.
pub mod schema {
    #![allow(missing_docs)]
    diesel::table! {
        users (id) {
            id -> Integer,
            name -> Text,
            email -> Text,
        }
    }
    diesel::table! {
        posts (id) {
            id -> Integer,
            user_id -> Integer,
            title -> Text,
            body -> Text,
        }
    }
    diesel::joinable!(posts -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(users, posts);
}
use schema::{posts, users};

#[cfg(feature = "scenarios")]
pub mod scenarios;

/// The id the last insert on this connection generated, one function per backend.
mod last_id {
    #[diesel::declare_sql_function]
    extern "SQL" {
        /// SQLite.
        fn last_insert_rowid() -> BigInt;
    }

    #[cfg(feature = "postgres")]
    #[diesel::declare_sql_function]
    extern "SQL" {
        /// PostgreSQL: the last value any sequence (an identity column's too) gave out.
        fn lastval() -> BigInt;
    }

    #[cfg(feature = "mysql")]
    #[diesel::declare_sql_function]
    extern "SQL" {
        /// MySQL and MariaDB.
        fn last_insert_id() -> Unsigned<BigInt>;
    }
}

/// Registers the tables in the instance's schema registry; `create_tables` (or
/// `async_create_tables`) then creates those that do not exist.
///
/// # Errors
/// [`dbinstance::Error::Schema`] when a table is already registered.
pub fn register<B: Backend>(db: &DatabaseInstance<B>) -> dbinstance::Result<()> {
    db.schema()
        .register::<users::table>(TableOptions::new().auto_increment("id").unique(["email"]))?
        .register::<posts::table>(
            TableOptions::new()
                .auto_increment("id")
                .references::<posts::user_id, users::id>(OnDelete::Cascade)
                .index(["user_id"]),
        )?;
    Ok(())
}

/// A user.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = users)]
pub struct User {
    /// Given by the database.
    pub id: i32,
    /// Display name.
    pub name: String,
    /// Unique.
    pub email: String,
}

/// A post, written by a user.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = posts)]
pub struct Post {
    /// Given by the database.
    pub id: i32,
    /// The author; deleting the user deletes the posts.
    pub user_id: i32,
    /// Not empty.
    pub title: String,
    /// The text.
    pub body: String,
}

/// The body of `POST /users`: a user, and optionally their first posts, created in
/// one transaction.
#[derive(Debug, Clone, Deserialize)]
pub struct NewUser {
    /// Not empty.
    pub name: String,
    /// Must contain `@`; unique.
    pub email: String,
    /// Posts created with the user.
    #[serde(default)]
    pub posts: Vec<NewPost>,
}

/// The body of `POST /users/{id}/posts`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewPost {
    /// Not empty.
    pub title: String,
    /// The text.
    #[serde(default)]
    pub body: String,
}

/// The body of `PATCH /users/{id}`: the fields to change.
#[derive(Debug, Clone, Default, Deserialize, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserPatch {
    /// A new name.
    pub name: Option<String>,
    /// A new email.
    pub email: Option<String>,
}

/// The body of `PATCH /posts/{id}`: the fields to change.
#[derive(Debug, Clone, Default, Deserialize, AsChangeset)]
#[diesel(table_name = posts)]
pub struct PostPatch {
    /// A new title.
    pub title: Option<String>,
    /// A new body.
    pub body: Option<String>,
}

/// The first text field that no backend can store (a NUL character: PostgreSQL
/// refuses it), as a message naming the field. Checked at the input so that every
/// backend answers it alike, with a 422.
fn unstorable<'a>(
    fields: impl IntoIterator<Item = (&'static str, Option<&'a str>)>,
) -> Option<String> {
    fields.into_iter().find_map(|(field, value)| {
        value
            .and_then(|v| dbinstance_web::storable_text(field, v).err())
            .map(|rejection| rejection.message().to_owned())
    })
}

impl NewUser {
    /// Why the user cannot be created, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        if let Some(why) = unstorable([("name", Some(&*self.name)), ("email", Some(&*self.email))])
        {
            Some(why)
        } else if self.name.trim().is_empty() {
            Some("name must not be empty".into())
        } else if !self.email.contains('@') {
            Some("email must contain @".into())
        } else {
            None
        }
    }
}

impl NewPost {
    /// Why the post cannot be created, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        unstorable([("title", Some(&*self.title)), ("body", Some(&*self.body))]).or_else(|| {
            self.title
                .trim()
                .is_empty()
                .then(|| "title must not be empty".into())
        })
    }
}

impl UserPatch {
    /// Why the change cannot be made, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        if let Some(why) = unstorable([
            ("name", self.name.as_deref()),
            ("email", self.email.as_deref()),
        ]) {
            Some(why)
        } else if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            Some("name must not be empty".into())
        } else if self.email.as_deref().is_some_and(|e| !e.contains('@')) {
            Some("email must contain @".into())
        } else {
            None
        }
    }
}

impl PostPatch {
    /// Why the change cannot be made, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        unstorable([
            ("title", self.title.as_deref()),
            ("body", self.body.as_deref()),
        ])
        .or_else(|| {
            self.title
                .as_deref()
                .is_some_and(|t| t.trim().is_empty())
                .then(|| "title must not be empty".into())
        })
    }
}

/// `?limit=&offset=` of the list routes: at most 100 items, 20 by default.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Page {
    /// How many items (1 to 100, default 20).
    pub limit: Option<i64>,
    /// How many to skip (default 0).
    pub offset: Option<i64>,
}

impl Page {
    /// The limit, clamped to 1..=100.
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(20).clamp(1, 100)
    }

    /// The offset, at least 0.
    pub fn offset(&self) -> i64 {
        self.offset.unwrap_or(0).max(0)
    }

    /// One page of `items` as the list routes answer it.
    pub fn of<T>(&self, items: Vec<T>) -> Listing<T> {
        let full = i64::try_from(items.len()).is_ok_and(|n| n == self.limit());
        Listing {
            next_offset: full.then(|| self.offset() + self.limit()),
            limit: self.limit(),
            offset: self.offset(),
            items,
        }
    }
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing<T> {
    /// The items, by id.
    pub items: Vec<T>,
    /// The limit used.
    pub limit: i64,
    /// The offset used.
    pub offset: i64,
    /// The offset of the next page, when this one was full.
    pub next_offset: Option<i64>,
}

/// The backend's diesel-async connection.
pub type Conn<B> = <B as Backend>::AsyncConnection;

/// The queries, for each backend. Implemented below for `Sqlite`, `Postgres` and
/// `Mysql` by the `store!` macro, from one body.
pub trait Store: Backend {
    /// Inserts a user and returns it with its id.
    fn insert_user(
        conn: &mut Conn<Self>,
        name: &str,
        email: &str,
    ) -> impl Future<Output = QueryResult<User>> + Send;
    /// The user `id`.
    fn get_user(
        conn: &mut Conn<Self>,
        id: i32,
    ) -> impl Future<Output = QueryResult<Option<User>>> + Send;
    /// A page of users, by id.
    fn list_users(
        conn: &mut Conn<Self>,
        page: Page,
    ) -> impl Future<Output = QueryResult<Vec<User>>> + Send;
    /// Changes the user `id`; `None` when there is none.
    fn update_user(
        conn: &mut Conn<Self>,
        id: i32,
        patch: &UserPatch,
    ) -> impl Future<Output = QueryResult<Option<User>>> + Send;
    /// Deletes the user `id` (and their posts); false when there is none.
    fn delete_user(
        conn: &mut Conn<Self>,
        id: i32,
    ) -> impl Future<Output = QueryResult<bool>> + Send;
    /// Inserts a post by `user_id` and returns it with its id; `NotFound` when
    /// there is no such user.
    fn insert_post(
        conn: &mut Conn<Self>,
        user_id: i32,
        post: &NewPost,
    ) -> impl Future<Output = QueryResult<Post>> + Send;
    /// The post `id`.
    fn get_post(
        conn: &mut Conn<Self>,
        id: i32,
    ) -> impl Future<Output = QueryResult<Option<Post>>> + Send;
    /// A page of the posts of `user_id`, by id.
    fn list_posts(
        conn: &mut Conn<Self>,
        user_id: i32,
        page: Page,
    ) -> impl Future<Output = QueryResult<Vec<Post>>> + Send;
    /// Changes the post `id`; `None` when there is none.
    fn update_post(
        conn: &mut Conn<Self>,
        id: i32,
        patch: &PostPatch,
    ) -> impl Future<Output = QueryResult<Option<Post>>> + Send;
    /// Deletes the post `id`; false when there is none.
    fn delete_post(
        conn: &mut Conn<Self>,
        id: i32,
    ) -> impl Future<Output = QueryResult<bool>> + Send;
}

/// A generated id that does not fit the `Integer` column type.
fn id_out_of_range(error: std::num::TryFromIntError) -> DieselError {
    DieselError::DeserializationError(Box::new(error))
}

/// A post's user was deleted between the handler's look and the insert, by a
/// request that committed first: the user is not found, as if looked up after.
fn user_gone(error: DieselError) -> DieselError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            DieselError::NotFound
        }
        other => other,
    }
}

macro_rules! store {
    ($backend:ty, $last_id:ident, $id:ty) => {
        impl Store for $backend {
            async fn insert_user(
                conn: &mut Conn<Self>,
                name: &str,
                email: &str,
            ) -> QueryResult<User> {
                diesel::insert_into(users::table)
                    .values((users::name.eq(name), users::email.eq(email)))
                    .execute(conn)
                    .await?;
                let id: $id = diesel::select(last_id::$last_id()).get_result(conn).await?;
                let id = i32::try_from(id).map_err(id_out_of_range)?;
                users::table
                    .find(id)
                    .select(User::as_select())
                    .first(conn)
                    .await
            }

            async fn get_user(conn: &mut Conn<Self>, id: i32) -> QueryResult<Option<User>> {
                users::table
                    .find(id)
                    .select(User::as_select())
                    .first(conn)
                    .await
                    .optional()
            }

            async fn list_users(conn: &mut Conn<Self>, page: Page) -> QueryResult<Vec<User>> {
                users::table
                    .order(users::id)
                    .limit(page.limit())
                    .offset(page.offset())
                    .select(User::as_select())
                    .load(conn)
                    .await
            }

            async fn update_user(
                conn: &mut Conn<Self>,
                id: i32,
                patch: &UserPatch,
            ) -> QueryResult<Option<User>> {
                // Without a field to set there is no UPDATE to run. (MySQL counts
                // changed rows, not matched ones, so the count says nothing here.)
                if patch.name.is_some() || patch.email.is_some() {
                    diesel::update(users::table.find(id))
                        .set(patch)
                        .execute(conn)
                        .await?;
                }
                Self::get_user(conn, id).await
            }

            async fn delete_user(conn: &mut Conn<Self>, id: i32) -> QueryResult<bool> {
                let n = diesel::delete(users::table.find(id)).execute(conn).await?;
                Ok(n > 0)
            }

            async fn insert_post(
                conn: &mut Conn<Self>,
                user_id: i32,
                post: &NewPost,
            ) -> QueryResult<Post> {
                diesel::insert_into(posts::table)
                    .values((
                        posts::user_id.eq(user_id),
                        posts::title.eq(&post.title),
                        posts::body.eq(&post.body),
                    ))
                    .execute(conn)
                    .await
                    .map_err(user_gone)?;
                let id: $id = diesel::select(last_id::$last_id()).get_result(conn).await?;
                let id = i32::try_from(id).map_err(id_out_of_range)?;
                posts::table
                    .find(id)
                    .select(Post::as_select())
                    .first(conn)
                    .await
            }

            async fn get_post(conn: &mut Conn<Self>, id: i32) -> QueryResult<Option<Post>> {
                posts::table
                    .find(id)
                    .select(Post::as_select())
                    .first(conn)
                    .await
                    .optional()
            }

            async fn list_posts(
                conn: &mut Conn<Self>,
                user_id: i32,
                page: Page,
            ) -> QueryResult<Vec<Post>> {
                posts::table
                    .filter(posts::user_id.eq(user_id))
                    .order(posts::id)
                    .limit(page.limit())
                    .offset(page.offset())
                    .select(Post::as_select())
                    .load(conn)
                    .await
            }

            async fn update_post(
                conn: &mut Conn<Self>,
                id: i32,
                patch: &PostPatch,
            ) -> QueryResult<Option<Post>> {
                // Without a field to set there is no UPDATE to run. (MySQL counts
                // changed rows, not matched ones, so the count says nothing here.)
                if patch.title.is_some() || patch.body.is_some() {
                    diesel::update(posts::table.find(id))
                        .set(patch)
                        .execute(conn)
                        .await?;
                }
                Self::get_post(conn, id).await
            }

            async fn delete_post(conn: &mut Conn<Self>, id: i32) -> QueryResult<bool> {
                let n = diesel::delete(posts::table.find(id)).execute(conn).await?;
                Ok(n > 0)
            }
        }
    };
}

store!(dbinstance::Sqlite, last_insert_rowid, i64);
#[cfg(feature = "postgres")]
store!(dbinstance::Postgres, lastval, i64);
#[cfg(feature = "mysql")]
store!(dbinstance::Mysql, last_insert_id, u64);

/// The HTTP API both services serve, route by route, for the edge scenarios of
/// `dbinstance_web::scenarios` (feature `scenarios`).
#[cfg(feature = "scenarios")]
pub const ROUTES: &[dbinstance_web::scenarios::Route] = {
    use dbinstance_web::scenarios::{JsonBody, Route};
    use serde_json::json;
    &[
        Route {
            path: "/users",
            methods: &["GET", "POST"],
            json: Some(JsonBody {
                method: "POST",
                valid: || json!({"name": "Nul", "email": "nul@example.com", "posts": []}),
                text_fields: &["name", "email"],
            }),
            paged: true,
        },
        Route {
            path: "/users/{id}",
            methods: &["GET", "PATCH", "DELETE"],
            json: Some(JsonBody {
                method: "PATCH",
                valid: || json!({"name": "Renamed", "email": "renamed@example.com"}),
                text_fields: &["name", "email"],
            }),
            paged: false,
        },
        Route {
            path: "/users/{id}/posts",
            methods: &["GET", "POST"],
            json: Some(JsonBody {
                method: "POST",
                valid: || json!({"title": "Title", "body": "Body"}),
                text_fields: &["title", "body"],
            }),
            paged: true,
        },
        Route {
            path: "/posts/{id}",
            methods: &["GET", "PATCH", "DELETE"],
            json: Some(JsonBody {
                method: "PATCH",
                valid: || json!({"title": "Title", "body": "Body"}),
                text_fields: &["title", "body"],
            }),
            paged: false,
        },
        Route {
            path: "/health",
            methods: &["GET"],
            json: None,
            paged: false,
        },
        Route {
            path: "/metrics",
            methods: &["GET"],
            json: None,
            paged: false,
        },
    ]
};
