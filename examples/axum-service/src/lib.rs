//! A small users-and-posts API on axum and dbinstance.
//!
//! Reads go through read sessions ([`DbRead`]: a replica when there is one), writes
//! through the request's transaction ([`DbTx`]: committed when the handler answers
//! 2xx, rolled back otherwise) or an explicit write session ([`DbWrite`]). The tables
//! are created at boot from the diesel schema, `/health` reports on every pool and
//! `/metrics` gives the pools' metrics.
//!
//! | route | method | session |
//! |---|---|---|
//! | `/health` | GET | the health report: 200, or 503 when the database is down |
//! | `/metrics` | GET | none: the pools' metrics in Prometheus text format |
//! | `/users` | POST | `DbTx`: the user and their first `posts` in one transaction |
//! | `/users?limit=&offset=` | GET | `DbRead` |
//! | `/users/{id}` | GET, PATCH, DELETE | `DbRead`, `DbWrite`, `DbTx` |
//! | `/users/{id}/posts` | POST, GET | `DbTx`, `DbRead` |
//! | `/posts/{id}` | GET, PATCH, DELETE | `DbRead`, `DbTx`, `DbTx` |
//!
//! The binary (`cargo run -p axum-service`) picks the backend from `DATABASE_URL`;
//! tests build the app on their own instance with [`app`].

/// The data, shared with the other example service.
pub use blog_store as store;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dbinstance::{BackendKind, DatabaseConfig, DatabaseInstance};
use dbinstance_axum::{
    BufferBodyLayer, DbRead, DbRejection, DbTx, DbTxLayer, DbWrite, JsonErrorsLayer,
};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;
use store::{Listing, NewPost, NewUser, Page, Post, PostPatch, Store, User, UserPatch};
use tower_http::catch_panic::CatchPanicLayer;

/// The routes, on an instance whose tables exist (see [`open`]).
///
/// The instance is the router's state: a test passes its own.
pub fn app<B: Store>(db: DatabaseInstance<B>) -> Router {
    Router::new()
        .route("/health", get(dbinstance_axum::health::<B>))
        .route("/metrics", get(metrics::<B>))
        .route("/users", get(list_users::<B>).post(create_user::<B>))
        .route(
            "/users/{id}",
            get(get_user::<B>)
                .patch(update_user::<B>)
                .delete(delete_user::<B>),
        )
        .route(
            "/users/{id}/posts",
            get(list_posts::<B>).post(create_post::<B>),
        )
        .route(
            "/posts/{id}",
            get(get_post::<B>)
                .patch(update_post::<B>)
                .delete(delete_post::<B>),
        )
        .layer(DbTxLayer::<B>::new())
        // The body is read in full (64 KiB at most) before a session is opened.
        .layer(BufferBodyLayer::new())
        .layer(CatchPanicLayer::new())
        // Outermost: every 4xx and 5xx, axum's and the panic's included, is JSON.
        .layer(JsonErrorsLayer::new())
        .with_state(db)
}

/// Builds the instance, registers the tables and creates those that do not exist
/// (idempotent: safe at every boot).
///
/// # Errors
/// When the database cannot be reached or a table cannot be created.
pub async fn open<B: Store>(config: DatabaseConfig) -> dbinstance::Result<DatabaseInstance<B>> {
    let db = DatabaseInstance::<B>::builder(config).build_async().await?;
    prepare(&db).await?;
    Ok(db)
}

/// Registers the tables on `db` and creates those that do not exist.
///
/// # Errors
/// As [`open`].
pub async fn prepare<B: Store>(db: &DatabaseInstance<B>) -> dbinstance::Result<()> {
    store::register(db)?;
    db.async_create_tables().await
}

/// The configuration from the environment (`DATABASE_URL`, `DATABASE_READ_URL`,
/// `DATABASE_POOL_SIZE`, ...), or a SQLite file named `default_sqlite` when
/// `DATABASE_URL` is not set.
///
/// # Errors
/// When a variable does not parse.
pub fn config_from_env(default_sqlite: &str) -> dbinstance::Result<DatabaseConfig> {
    if std::env::var_os("DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        DatabaseConfig::from_env()
    } else {
        Ok(DatabaseConfig::from_url(default_sqlite))
    }
}

/// How long a client has to send a request's headers, counted from when the
/// connection is ready for them: a new connection, or one idle between requests.
/// Past it the connection is closed, so slow or silent clients cannot pile up.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before accepting again after `accept` failed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves the app on `listener`, with the backend `config` names, until `shutdown`
/// resolves (the binary passes [`dbinstance_web::shutdown_signal`]: SIGTERM or
/// Ctrl-C). Then it stops accepting, lets the requests in flight finish for up to
/// `shutdown_timeout`, and closes the instance's pools.
///
/// # Errors
/// When the database cannot be opened or the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: DatabaseConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    // backend_kind() refuses a backend this build lacks, naming its feature.
    match config.backend_kind()? {
        BackendKind::Sqlite => {
            run::<dbinstance::Sqlite>(listener, config, shutdown, shutdown_timeout).await
        }
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            run::<dbinstance::Postgres>(listener, config, shutdown, shutdown_timeout).await
        }
        #[cfg(feature = "mysql")]
        BackendKind::Mysql => {
            run::<dbinstance::Mysql>(listener, config, shutdown, shutdown_timeout).await
        }
        #[allow(unreachable_patterns)]
        other => Err(format!("{other} is not compiled in").into()),
    }
}

async fn run<B: Store>(
    listener: tokio::net::TcpListener,
    config: DatabaseConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = open::<B>(config).await?;
    tracing::info!(database = %db.name(), backend = %B::KIND, address = %listener.local_addr()?, "axum-service: listening");
    let app = app(db.clone());
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most often: the connections that
                    // hold them close within the header deadline.
                    tracing::warn!(%error, "axum-service: cannot accept; retrying shortly");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "axum-service: connection ended with an error");
            }
        });
    }
    // Stop accepting, close the idle connections, let each other one finish its
    // request; the deadline starts now.
    drop(listener);
    if tokio::time::timeout(shutdown_timeout, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?shutdown_timeout,
            "axum-service: requests still in flight at the shutdown deadline are cut"
        );
    }
    db.close_all_connections();
    tracing::info!("axum-service: stopped");
    Ok(())
}

/// What a handler answers when it cannot do what was asked.
#[derive(Debug)]
pub enum ApiError {
    /// 404: no such user or post.
    NotFound,
    /// 422: the body is not acceptable.
    Invalid(String),
    /// 409: the email is taken.
    Conflict,
    /// 503 or 500: the database failed (the body hides the details).
    Db(DbRejection),
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            ApiError::Db(rejection) => return rejection.into_response(),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such resource".into(),
            ),
            ApiError::Invalid(why) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", why),
            ApiError::Conflict => (
                StatusCode::CONFLICT,
                "conflict",
                "a user with this email exists".into(),
            ),
        };
        (status, Json(ErrorBody { error, message })).into_response()
    }
}

impl From<DieselError> for ApiError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => ApiError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => ApiError::Conflict,
            other => ApiError::Db(other.into()),
        }
    }
}

impl From<dbinstance::Error> for ApiError {
    fn from(error: dbinstance::Error) -> Self {
        ApiError::Db(error.into())
    }
}

impl From<DbRejection> for ApiError {
    fn from(rejection: DbRejection) -> Self {
        ApiError::Db(rejection)
    }
}

fn check(invalid: Option<String>) -> Result<(), ApiError> {
    invalid.map_or(Ok(()), |why| Err(ApiError::Invalid(why)))
}

/// A user with the posts created along with them.
#[derive(Debug, Serialize)]
pub struct UserWithPosts {
    /// The user.
    #[serde(flatten)]
    pub user: User,
    /// Their posts.
    pub posts: Vec<Post>,
}

/// `POST /users`: the user and their first posts, all or nothing. An invalid post
/// answers 422 after the user was inserted; the 422 rolls the user back too.
async fn create_user<B: Store>(
    mut tx: DbTx<B>,
    Json(new): Json<NewUser>,
) -> Result<(StatusCode, Json<UserWithPosts>), ApiError> {
    check(new.invalid())?;
    let user = B::insert_user(&mut tx, &new.name, &new.email).await?;
    let mut posts = Vec::with_capacity(new.posts.len());
    for post in &new.posts {
        check(post.invalid())?;
        posts.push(B::insert_post(&mut tx, user.id, post).await?);
    }
    Ok((StatusCode::CREATED, Json(UserWithPosts { user, posts })))
}

/// `GET /metrics`: the pools' metrics in Prometheus text format.
async fn metrics<B: Store>(State(db): State<DatabaseInstance<B>>) -> impl IntoResponse {
    let body = store::metrics::render(&db);
    ([(header::CONTENT_TYPE, store::metrics::CONTENT_TYPE)], body)
}

/// `GET /users?limit=&offset=`.
async fn list_users<B: Store>(
    Query(page): Query<Page>,
    DbRead(mut conn): DbRead<B>,
) -> Result<Json<Listing<User>>, ApiError> {
    Ok(Json(page.of(B::list_users(&mut conn, page).await?)))
}

/// `GET /users/{id}`.
async fn get_user<B: Store>(
    Path(id): Path<i32>,
    DbRead(mut conn): DbRead<B>,
) -> Result<Json<User>, ApiError> {
    let user = B::get_user(&mut conn, id).await?;
    user.map(Json).ok_or(ApiError::NotFound)
}

/// `PATCH /users/{id}`: an explicit write session, committed by the handler.
async fn update_user<B: Store>(
    Path(id): Path<i32>,
    DbWrite(mut tx): DbWrite<B>,
    Json(patch): Json<UserPatch>,
) -> Result<Json<User>, ApiError> {
    check(patch.invalid())?;
    let user = B::update_user(&mut tx, id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(user))
}

/// `DELETE /users/{id}`: the user and their posts.
async fn delete_user<B: Store>(
    Path(id): Path<i32>,
    mut tx: DbTx<B>,
) -> Result<StatusCode, ApiError> {
    if B::delete_user(&mut tx, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `POST /users/{id}/posts`.
async fn create_post<B: Store>(
    Path(user_id): Path<i32>,
    mut tx: DbTx<B>,
    Json(post): Json<NewPost>,
) -> Result<(StatusCode, Json<Post>), ApiError> {
    check(post.invalid())?;
    B::get_user(&mut tx, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let post = B::insert_post(&mut tx, user_id, &post).await?;
    Ok((StatusCode::CREATED, Json(post)))
}

/// `GET /users/{id}/posts?limit=&offset=`.
async fn list_posts<B: Store>(
    Path(user_id): Path<i32>,
    Query(page): Query<Page>,
    DbRead(mut conn): DbRead<B>,
) -> Result<Json<Listing<Post>>, ApiError> {
    B::get_user(&mut conn, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(
        page.of(B::list_posts(&mut conn, user_id, page).await?),
    ))
}

/// `GET /posts/{id}`.
async fn get_post<B: Store>(
    Path(id): Path<i32>,
    DbRead(mut conn): DbRead<B>,
) -> Result<Json<Post>, ApiError> {
    let post = B::get_post(&mut conn, id).await?;
    post.map(Json).ok_or(ApiError::NotFound)
}

/// `PATCH /posts/{id}`.
async fn update_post<B: Store>(
    Path(id): Path<i32>,
    mut tx: DbTx<B>,
    Json(patch): Json<PostPatch>,
) -> Result<Json<Post>, ApiError> {
    check(patch.invalid())?;
    let post = B::update_post(&mut tx, id, &patch).await?;
    post.map(Json).ok_or(ApiError::NotFound)
}

/// `DELETE /posts/{id}`.
async fn delete_post<B: Store>(
    Path(id): Path<i32>,
    mut tx: DbTx<B>,
) -> Result<StatusCode, ApiError> {
    if B::delete_post(&mut tx, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
