//! A small users-and-posts API on actix-web and dbinstance.
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
//! The binary (`cargo run -p actix-web-service`) picks the backend from `DATABASE_URL`;
//! tests build the app on their own instance with [`app`].

/// The data, shared with the other example service.
pub use blog_store as store;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use dbinstance::{BackendKind, DatabaseConfig, DatabaseInstance};
use dbinstance_actix::{BufferBody, DbRead, DbRejection, DbTx, DbTxMiddleware, DbWrite};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use store::{NewPost, NewUser, Page, PostPatch, Store, User, UserPatch};

/// The app on `db`, whose tables exist (see [`open`]): the instance as
/// `web::Data`, the transaction middleware and the routes. A test passes its own
/// instance.
pub fn app<B: Store>(
    db: DatabaseInstance<B>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(db))
        .configure(dbinstance_actix::extractor_errors)
        .wrap(DbTxMiddleware::<B>::new())
        // The body is read in full (64 KiB at most) before a session is opened.
        .wrap(BufferBody::new())
        // Outermost: every 4xx and 5xx, actix-web's own included, is JSON.
        .wrap(dbinstance_actix::json_errors())
        .configure(routes::<B>)
}

/// The routes, for an app with a `web::Data<DatabaseInstance<B>>` and a
/// `DbTxMiddleware<B>`.
///
/// The app's [`BufferBody`] has read the body in full before these run, so a
/// session is never opened while a client is still sending.
pub fn routes<B: Store>(cfg: &mut web::ServiceConfig) {
    // Resources, not bare routes: a resource answers a method it does not serve with
    // 405, a bare route with 404.
    cfg.service(readable(
        web::resource("/health"),
        dbinstance_actix::health::<B>,
    ))
    .service(readable(web::resource("/metrics"), metrics::<B>))
    .service(readable(web::resource("/users"), list_users::<B>).post(create_user::<B>))
    .service(
        readable(web::resource("/users/{id}"), get_user::<B>)
            .patch(update_user::<B>)
            .delete(delete_user::<B>),
    )
    .service(readable(web::resource("/users/{id}/posts"), list_posts::<B>).post(create_post::<B>))
    .service(
        readable(web::resource("/posts/{id}"), get_post::<B>)
            .patch(update_post::<B>)
            .delete(delete_post::<B>),
    );
}

/// `resource` answering GET, and HEAD with the same status and headers (actix
/// leaves the body out): HTTP asks for HEAD wherever GET is served, and health
/// checkers use it.
fn readable<F, Args>(resource: actix_web::Resource, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource.get(handler.clone()).route(web::head().to(handler))
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

/// Serves the app on `listener`, with the backend `config` names, until SIGTERM or
/// Ctrl-C ([`dbinstance_web::shutdown_signal`]). Then it stops accepting, lets the
/// requests in flight finish for up to `shutdown_timeout`, and closes the instance's
/// pools. Runs inside an actix system (`actix_web::rt::System`).
///
/// # Errors
/// When the database cannot be opened or the server fails.
pub async fn serve(
    listener: std::net::TcpListener,
    config: DatabaseConfig,
    shutdown_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    // backend_kind() refuses a backend this build lacks, naming its feature.
    match config.backend_kind()? {
        BackendKind::Sqlite => run::<dbinstance::Sqlite>(listener, config, shutdown_timeout).await,
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            run::<dbinstance::Postgres>(listener, config, shutdown_timeout).await
        }
        #[cfg(feature = "mysql")]
        BackendKind::Mysql => run::<dbinstance::Mysql>(listener, config, shutdown_timeout).await,
        #[allow(unreachable_patterns)]
        other => Err(format!("{other} is not compiled in").into()),
    }
}

async fn run<B: Store>(
    listener: std::net::TcpListener,
    config: DatabaseConfig,
    shutdown_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = open::<B>(config).await?;
    tracing::info!(database = %db.name(), backend = %B::KIND, address = %listener.local_addr()?, "actix-web-service: listening");
    let server = server(listener, db.clone(), shutdown_timeout)?;
    let handle = server.handle();
    // actix-web's own signal handling cuts requests on SIGINT; here both signals
    // stop gracefully.
    actix_web::rt::spawn(async move {
        dbinstance_web::shutdown_signal().await;
        handle.stop(true).await;
    });
    server.await?;
    db.close_all_connections();
    tracing::info!("actix-web-service: stopped");
    Ok(())
}

/// The HTTP server for [`app`] on `listener` (one worker per core, each sharing the
/// instance's pools). It does not listen for signals: stop it through its handle;
/// a graceful stop lets requests in flight finish for up to `shutdown_timeout`.
/// Await it inside an actix system.
///
/// # Errors
/// When the listener cannot be used.
pub fn server<B: Store>(
    listener: std::net::TcpListener,
    db: DatabaseInstance<B>,
    shutdown_timeout: Duration,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(move || app(db.clone()))
        // A client that goes away mid-request has its handler dropped, as hyper
        // does by default: otherwise every abandoned request still waits for its
        // connection and runs, and a storm of them queues on SQLite's one writer
        // until the process runs out of file descriptors.
        .h1_allow_half_closed(false)
        .disable_signals()
        .shutdown_timeout(shutdown_timeout.as_secs())
        .listen(listener)?
        .run())
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
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::NotFound => f.write_str("no such resource"),
            ApiError::Invalid(why) => f.write_str(why),
            ApiError::Conflict => f.write_str("a user with this email exists"),
            ApiError::Db(rejection) => rejection.fmt(f),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict => StatusCode::CONFLICT,
            ApiError::Db(rejection) => rejection.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let error = match self {
            ApiError::Db(rejection) => return rejection.error_response(),
            ApiError::NotFound => "not_found",
            ApiError::Invalid(_) => "invalid",
            ApiError::Conflict => "conflict",
        };
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error,
            message: &self.to_string(),
        })
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
    pub posts: Vec<store::Post>,
}

/// `POST /users`: the user and their first posts, all or nothing. An invalid post
/// answers 422 after the user was inserted; the 422 rolls the user back too.
async fn create_user<B: Store>(
    new: web::Json<NewUser>,
    mut tx: DbTx<B>,
) -> Result<HttpResponse, ApiError> {
    check(new.invalid())?;
    let user = B::insert_user(&mut tx, &new.name, &new.email).await?;
    let mut posts = Vec::with_capacity(new.posts.len());
    for post in &new.posts {
        check(post.invalid())?;
        posts.push(B::insert_post(&mut tx, user.id, post).await?);
    }
    Ok(HttpResponse::Created().json(UserWithPosts { user, posts }))
}

/// `GET /metrics`: the pools' metrics in Prometheus text format.
async fn metrics<B: Store>(db: web::Data<DatabaseInstance<B>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(store::metrics::CONTENT_TYPE)
        .body(store::metrics::render(&db))
}

/// `GET /users?limit=&offset=`.
async fn list_users<B: Store>(
    page: web::Query<Page>,
    DbRead(mut conn): DbRead<B>,
) -> Result<HttpResponse, ApiError> {
    let users = B::list_users(&mut conn, *page).await?;
    Ok(HttpResponse::Ok().json(page.of(users)))
}

/// `GET /users/{id}`.
async fn get_user<B: Store>(
    id: web::Path<i32>,
    DbRead(mut conn): DbRead<B>,
) -> Result<HttpResponse, ApiError> {
    let user = B::get_user(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(user))
}

/// `PATCH /users/{id}`: an explicit write session, committed by the handler.
async fn update_user<B: Store>(
    id: web::Path<i32>,
    patch: web::Json<UserPatch>,
    DbWrite(mut tx): DbWrite<B>,
) -> Result<HttpResponse, ApiError> {
    check(patch.invalid())?;
    let user = B::update_user(&mut tx, *id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(user))
}

/// `DELETE /users/{id}`: the user and their posts.
async fn delete_user<B: Store>(
    id: web::Path<i32>,
    mut tx: DbTx<B>,
) -> Result<HttpResponse, ApiError> {
    if B::delete_user(&mut tx, *id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `POST /users/{id}/posts`.
async fn create_post<B: Store>(
    user_id: web::Path<i32>,
    post: web::Json<NewPost>,
    mut tx: DbTx<B>,
) -> Result<HttpResponse, ApiError> {
    check(post.invalid())?;
    B::get_user(&mut tx, *user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let post = B::insert_post(&mut tx, *user_id, &post).await?;
    Ok(HttpResponse::Created().json(post))
}

/// `GET /users/{id}/posts?limit=&offset=`.
async fn list_posts<B: Store>(
    user_id: web::Path<i32>,
    page: web::Query<Page>,
    DbRead(mut conn): DbRead<B>,
) -> Result<HttpResponse, ApiError> {
    B::get_user(&mut conn, *user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let posts = B::list_posts(&mut conn, *user_id, *page).await?;
    Ok(HttpResponse::Ok().json(page.of(posts)))
}

/// `GET /posts/{id}`.
async fn get_post<B: Store>(
    id: web::Path<i32>,
    DbRead(mut conn): DbRead<B>,
) -> Result<HttpResponse, ApiError> {
    let post = B::get_post(&mut conn, *id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(post))
}

/// `PATCH /posts/{id}`.
async fn update_post<B: Store>(
    id: web::Path<i32>,
    patch: web::Json<PostPatch>,
    mut tx: DbTx<B>,
) -> Result<HttpResponse, ApiError> {
    check(patch.invalid())?;
    let post = B::update_post(&mut tx, *id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(post))
}

/// `DELETE /posts/{id}`.
async fn delete_post<B: Store>(
    id: web::Path<i32>,
    mut tx: DbTx<B>,
) -> Result<HttpResponse, ApiError> {
    if B::delete_post(&mut tx, *id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
