//! The write stacks (`--writes`): one typed `INSERT` and its commit per operation,
//! through each pool's own transaction: diesel-async + deadpool `Fast`'s
//! `transaction()`, r2d2 with diesel's `transaction()`, and dbinstance's write
//! sessions. On SQLite every stack has one connection, as dbinstance's write pool
//! does: a file has one writer at a time, and more writers only queue on its lock.
//! There dbinstance runs with `synchronous = FULL`, the peers' (SQLite's) default,
//! so that every stack waits for the disk the same way; `ours-write-default` and
//! `ours-sync-write-default` (run only when `--only` names them) keep dbinstance's
//! default, `NORMAL`.

use crate::measure::{AsyncOp, BoxError, Sample, SyncOp};
use crate::stacks::{Ctx, Kind, Stack};

diesel::table! {
    compare_writes (id) {
        id -> BigInt,
        v -> Integer,
    }
}

/// The same stacks for each diesel backend.
macro_rules! write_stacks {
    ($module:ident, $backend:ty, $async_conn:ty, $sync_conn:ty, $create:literal, $one_writer:literal, $as_peers:expr) => {
        /// The write stacks for one backend.
        pub mod $module {
            use super::*;
            use dbinstance::DatabaseInstance;
            use diesel::{Connection as _, ExpressionMethods as _};
            use diesel_async::pooled_connection::{
                deadpool, AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
            };
            use diesel_async::{AsyncConnection as _, RunQueryDsl as _};

            type AsyncConn = $async_conn;
            type SyncConn = $sync_conn;
            type Db = DatabaseInstance<$backend>;

            /// An empty table, and the connections a stack may hold.
            pub(crate) fn prepare(ctx: &Ctx) -> Result<u32, BoxError> {
                let mut conn = SyncConn::establish(&ctx.url)?;
                diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    concat!($create, "; DELETE FROM compare_writes"),
                )?;
                Ok(if $one_writer { 1 } else { ctx.pool_size })
            }

            #[derive(Clone)]
            struct Deadpool(deadpool::Pool<AsyncConn>);

            impl AsyncOp for Deadpool {
                async fn run(&self) -> Result<(), BoxError> {
                    let mut conn = self.0.get().await?;
                    conn.transaction(async |conn| {
                        diesel::insert_into(compare_writes::table)
                            .values(compare_writes::v.eq(1))
                            .execute(conn)
                            .await
                    })
                    .await?;
                    Ok(())
                }
            }

            /// diesel-async + deadpool `Fast`, `transaction()`.
            pub fn deadpool_fast(ctx: &Ctx) -> Result<Sample, BoxError> {
                let size = prepare(ctx)?;
                let mut config = ManagerConfig::default();
                config.recycling_method = RecyclingMethod::Fast;
                let manager = AsyncDieselConnectionManager::<AsyncConn>::new_with_config(
                    ctx.url.as_str(),
                    config,
                );
                let pool = ctx.rt.block_on(async {
                    deadpool::Pool::builder(manager)
                        .max_size(size as usize)
                        .build()
                })?;
                ctx.rt.block_on(async {
                    let sample = ctx.measure_async(&Deadpool(pool.clone())).await;
                    pool.close();
                    sample
                })
            }

            #[derive(Clone)]
            struct Ours(Db);

            impl AsyncOp for Ours {
                async fn run(&self) -> Result<(), BoxError> {
                    let mut session = self.0.async_get_db_cm_write().await?;
                    diesel::insert_into(compare_writes::table)
                        .values(compare_writes::v.eq(1))
                        .execute(&mut *session)
                        .await?;
                    session.commit().await?;
                    Ok(())
                }
            }

            /// The config of dbinstance's stacks: as the peers wait for the disk, or
            /// with dbinstance's defaults.
            fn config(ctx: &Ctx, as_peers: bool) -> dbinstance::DatabaseConfig {
                let as_peers_config: fn(dbinstance::DatabaseConfig) -> dbinstance::DatabaseConfig =
                    $as_peers;
                if as_peers {
                    as_peers_config(ctx.ours_config())
                } else {
                    ctx.ours_config()
                }
            }

            fn ours_with(ctx: &Ctx, as_peers: bool) -> Result<Sample, BoxError> {
                prepare(ctx)?;
                ctx.rt.block_on(async {
                    let db = Db::builder(config(ctx, as_peers)).build_async().await?;
                    let sample = ctx.measure_async(&Ours(db.clone())).await;
                    db.close_all_connections();
                    sample
                })
            }

            type R2d2Pool = diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<SyncConn>>;

            struct R2d2(R2d2Pool);

            impl SyncOp for R2d2 {
                fn run(&self) -> Result<(), BoxError> {
                    let mut conn = self.0.get()?;
                    conn.transaction(|conn| {
                        diesel::RunQueryDsl::execute(
                            diesel::insert_into(compare_writes::table)
                                .values(compare_writes::v.eq(1)),
                            conn,
                        )
                    })?;
                    Ok(())
                }
            }

            /// dbinstance's async write session.
            pub fn ours(ctx: &Ctx) -> Result<Sample, BoxError> {
                ours_with(ctx, true)
            }

            /// The same with dbinstance's defaults.
            pub fn ours_default(ctx: &Ctx) -> Result<Sample, BoxError> {
                ours_with(ctx, false)
            }

            /// diesel + r2d2, default settings, `transaction()`.
            pub fn r2d2(ctx: &Ctx) -> Result<Sample, BoxError> {
                let size = prepare(ctx)?;
                let manager = diesel::r2d2::ConnectionManager::<SyncConn>::new(ctx.url.as_str());
                let pool = diesel::r2d2::Pool::builder()
                    .max_size(size)
                    .build(manager)?;
                ctx.measure_sync(&R2d2(pool))
            }

            struct OursSync(Db);

            impl SyncOp for OursSync {
                fn run(&self) -> Result<(), BoxError> {
                    let mut session = self.0.get_db_cm_write()?;
                    diesel::RunQueryDsl::execute(
                        diesel::insert_into(compare_writes::table).values(compare_writes::v.eq(1)),
                        &mut *session,
                    )?;
                    session.commit()?;
                    Ok(())
                }
            }

            fn ours_sync_with(ctx: &Ctx, as_peers: bool) -> Result<Sample, BoxError> {
                prepare(ctx)?;
                let db = Db::new(config(ctx, as_peers))?;
                let sample = ctx.measure_sync(&OursSync(db.clone()));
                db.close_all_connections();
                sample
            }

            /// dbinstance's sync write session.
            pub fn ours_sync(ctx: &Ctx) -> Result<Sample, BoxError> {
                ours_sync_with(ctx, true)
            }

            /// The same with dbinstance's defaults.
            pub fn ours_sync_default(ctx: &Ctx) -> Result<Sample, BoxError> {
                ours_sync_with(ctx, false)
            }

            /// Run only when `--only` names them.
            pub fn diagnostic() -> Vec<Stack> {
                vec![
                    Stack {
                        name: "ours-write-default",
                        description: "dbinstance async write session, its default settings",
                        kind: Kind::Async,
                        run: ours_default,
                    },
                    Stack {
                        name: "ours-sync-write-default",
                        description: "dbinstance sync write session, its default settings",
                        kind: Kind::Sync,
                        run: ours_sync_default,
                    },
                ]
            }

            /// The stacks, in the order they run within a round.
            pub fn stacks() -> Vec<Stack> {
                vec![
                    Stack {
                        name: "deadpool-fast-tx",
                        description: "diesel-async + deadpool Fast, transaction()",
                        kind: Kind::Async,
                        run: deadpool_fast,
                    },
                    Stack {
                        name: "ours-write",
                        description: "dbinstance async write session, commit",
                        kind: Kind::Async,
                        run: ours,
                    },
                    Stack {
                        name: "r2d2-tx",
                        description: "diesel + r2d2, transaction()",
                        kind: Kind::Sync,
                        run: r2d2,
                    },
                    Stack {
                        name: "ours-sync-write",
                        description: "dbinstance sync write session, commit",
                        kind: Kind::Sync,
                        run: ours_sync,
                    },
                ]
            }
        }
    };
}

write_stacks!(
    pg,
    dbinstance::Postgres,
    diesel_async::AsyncPgConnection,
    diesel::PgConnection,
    "CREATE TABLE IF NOT EXISTS compare_writes (id BIGSERIAL PRIMARY KEY, v INTEGER NOT NULL)",
    false,
    |config| config
);
write_stacks!(
    mysql,
    dbinstance::Mysql,
    diesel_async::AsyncMysqlConnection,
    diesel::MysqlConnection,
    "CREATE TABLE IF NOT EXISTS compare_writes (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INTEGER NOT NULL)",
    false,
    |config| config
);
write_stacks!(
    sqlite,
    dbinstance::Sqlite,
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>,
    diesel::SqliteConnection,
    "CREATE TABLE IF NOT EXISTS compare_writes (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
    true,
    |config| config.sqlite_synchronous(dbinstance::SqliteSynchronous::Full)
);

/// The one-round-trip ceiling on PostgreSQL (run only when `--only` names it):
/// `BEGIN`, the `INSERT` and `COMMIT` sent together over a deadpool `Fast`
/// connection, pipelined through `&AsyncPgConnection`, and their answers awaited
/// together.
pub mod pg_pipelined {
    use super::*;
    use diesel::ExpressionMethods as _;
    use diesel_async::pooled_connection::{
        deadpool, AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
    };
    use diesel_async::{AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _};

    #[derive(Clone)]
    struct Pipelined(deadpool::Pool<AsyncPgConnection>);

    impl AsyncOp for Pipelined {
        async fn run(&self) -> Result<(), BoxError> {
            let conn = self.0.get().await?;
            let shared: &AsyncPgConnection = &conn;
            let (mut begin, mut insert, mut commit) = (shared, shared, shared);
            tokio::try_join!(
                begin.batch_execute("BEGIN"),
                diesel::insert_into(compare_writes::table)
                    .values(compare_writes::v.eq(1))
                    .execute(&mut insert),
                commit.batch_execute("COMMIT"),
            )?;
            Ok(())
        }
    }

    /// `BEGIN`, `INSERT`, `COMMIT` in one round trip.
    pub fn pipelined(ctx: &Ctx) -> Result<Sample, BoxError> {
        let size = pg::prepare(ctx)?;
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            ctx.url.as_str(),
            config,
        );
        let pool = deadpool::Pool::builder(manager)
            .max_size(size as usize)
            .build()?;
        ctx.rt.block_on(async {
            let sample = ctx.measure_async(&Pipelined(pool.clone())).await;
            pool.close();
            sample
        })
    }

    /// The diagnostic stack.
    pub fn diagnostic() -> Vec<Stack> {
        vec![Stack {
            name: "pipelined-tx",
            description: "deadpool Fast, BEGIN + INSERT + COMMIT pipelined (the ceiling)",
            kind: Kind::Async,
            run: pipelined,
        }]
    }
}
