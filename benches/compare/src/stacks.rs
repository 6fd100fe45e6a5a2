//! The stacks under comparison. Each one builds its pool, warms it up, measures one
//! timed run and closes the pool again, so that no two pools hold server
//! connections at the same time.
//!
//! Every stack runs the same query: a typed, cacheable `SELECT $1` (`SELECT ?`)
//! with the integer 1 bound, checked to come back as 1.

use crate::measure::{run_async, run_sync, AsyncOp, BoxError, Sample, SyncOp};
use std::time::Duration;

/// What every stack is run with.
#[derive(Debug)]
pub struct Ctx {
    /// The runtime the async stacks share.
    pub rt: tokio::runtime::Runtime,
    /// The server's URL, or the SQLite file's path.
    pub url: String,
    /// Connections per pool.
    pub pool_size: u32,
    /// Concurrent tasks (async) or threads (sync).
    pub workers: usize,
    /// Unmeasured load on a fresh pool before the timed run.
    pub warmup: Duration,
    /// The timed run.
    pub duration: Duration,
}

impl Ctx {
    pub(crate) async fn measure_async<O: AsyncOp>(&self, op: &O) -> Result<Sample, BoxError> {
        run_async(op, self.workers, self.warmup).await?;
        let before = crate::noise::mark();
        let sample = run_async(op, self.workers, self.duration).await?;
        Ok(Sample {
            noise: crate::noise::since(&before),
            ..sample
        })
    }

    pub(crate) fn measure_sync<O: SyncOp>(&self, op: &O) -> Result<Sample, BoxError> {
        run_sync(op, self.workers, self.warmup)?;
        let before = crate::noise::mark();
        let sample = run_sync(op, self.workers, self.duration)?;
        Ok(Sample {
            noise: crate::noise::since(&before),
            ..sample
        })
    }

    pub(crate) fn ours_config(&self) -> dbinstance::DatabaseConfig {
        dbinstance::DatabaseConfig::from_url(self.url.as_str()).pool_size(self.pool_size)
    }
}

/// Whether a stack is driven by tasks or by threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Tokio tasks on the shared multi-threaded runtime.
    Async,
    /// OS threads.
    Sync,
}

/// One contestant.
#[derive(Debug, Clone, Copy)]
pub struct Stack {
    /// Short name, used by `--only` and in the tables.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// Tasks or threads.
    pub kind: Kind,
    /// Builds, warms, measures and closes.
    pub run: fn(&Ctx) -> Result<Sample, BoxError>,
}

fn check(value: i32) -> Result<(), BoxError> {
    if value == 1 {
        Ok(())
    } else {
        Err(format!("the query returned {value}, not 1").into())
    }
}

/// The same stacks for each diesel backend, with concrete types so that no trait
/// bounds stand between the benchmark and the query.
macro_rules! diesel_stacks {
    ($module:ident, $backend:ty, $async_conn:ty, $sync_conn:ty, $raw_sql:literal) => {
        /// The diesel-based stacks for one backend.
        pub mod $module {
            use super::*;
            use dbinstance::{AsyncPoolKind, DatabaseInstance};
            use diesel::sql_types::Integer;
            use diesel::IntoSql;
            use diesel_async::pooled_connection::{
                bb8, deadpool, AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
            };
            use diesel_async::RunQueryDsl as _;

            type AsyncConn = $async_conn;
            type SyncConn = $sync_conn;
            type Db = DatabaseInstance<$backend>;

            /// With `print_statements`, every connection also does what
            /// dbinstance's read connections do per statement: print its SQL
            /// through diesel's instrumentation.
            fn manager(
                url: &str,
                recycling: RecyclingMethod<AsyncConn>,
                print_statements: bool,
            ) -> AsyncDieselConnectionManager<AsyncConn> {
                let mut config = ManagerConfig::default();
                config.recycling_method = recycling;
                if print_statements {
                    config.custom_setup = Box::new(|url| {
                        let url = url.to_owned();
                        Box::pin(async move {
                            use diesel_async::AsyncConnection as _;
                            let mut conn = AsyncConn::establish(&url).await?;
                            conn.set_instrumentation(
                                crate::statement_text::PrintEveryStatement::default(),
                            );
                            Ok(conn)
                        })
                    });
                }
                AsyncDieselConnectionManager::new_with_config(url, config)
            }

            #[derive(Clone)]
            struct Deadpool(deadpool::Pool<AsyncConn>);

            impl AsyncOp for Deadpool {
                async fn run(&self) -> Result<(), BoxError> {
                    let mut conn = self.0.get().await?;
                    let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                        .get_result(&mut conn)
                        .await?;
                    check(value)
                }
            }

            fn deadpool_with(
                ctx: &Ctx,
                recycling: RecyclingMethod<AsyncConn>,
                timeouts: bool,
                print_statements: bool,
            ) -> Result<Sample, BoxError> {
                ctx.rt.block_on(async {
                    let manager = manager(&ctx.url, recycling, print_statements);
                    let mut builder =
                        deadpool::Pool::builder(manager).max_size(ctx.pool_size as usize);
                    if timeouts {
                        // What dbinstance configures: pool_timeout and connect_timeout.
                        builder = builder
                            .wait_timeout(Some(Duration::from_secs(30)))
                            .recycle_timeout(Some(Duration::from_secs(5)))
                            .runtime(::deadpool::Runtime::Tokio1);
                    }
                    let pool = builder.build()?;
                    let op = Deadpool(pool.clone());
                    let sample = ctx.measure_async(&op).await;
                    pool.close();
                    sample
                })
            }

            /// diesel-async + deadpool, default `Verified` recycling.
            pub fn deadpool_verified(ctx: &Ctx) -> Result<Sample, BoxError> {
                deadpool_with(ctx, RecyclingMethod::Verified, false, false)
            }

            /// diesel-async + deadpool, `Fast` recycling.
            pub fn deadpool_fast(ctx: &Ctx) -> Result<Sample, BoxError> {
                deadpool_with(ctx, RecyclingMethod::Fast, false, false)
            }

            /// diesel-async + deadpool `Fast` with dbinstance's wait and recycle
            /// timeouts: tells the pool's share of dbinstance's cost from its own.
            pub fn deadpool_fast_timeouts(ctx: &Ctx) -> Result<Sample, BoxError> {
                deadpool_with(ctx, RecyclingMethod::Fast, true, false)
            }

            /// deadpool `Fast` doing dbinstance's per-read work too: its wait and
            /// recycle timeouts, and its read guard's printing of every statement.
            pub fn deadpool_fast_same_work(ctx: &Ctx) -> Result<Sample, BoxError> {
                deadpool_with(ctx, RecyclingMethod::Fast, true, true)
            }

            #[derive(Clone)]
            struct Bb8(bb8::Pool<AsyncConn>);

            impl AsyncOp for Bb8 {
                async fn run(&self) -> Result<(), BoxError> {
                    let mut conn = self.0.get().await?;
                    let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                        .get_result(&mut *conn)
                        .await?;
                    check(value)
                }
            }

            /// diesel-async + bb8, default settings.
            pub fn diesel_bb8(ctx: &Ctx) -> Result<Sample, BoxError> {
                ctx.rt.block_on(async {
                    let manager = AsyncDieselConnectionManager::<AsyncConn>::new(&ctx.url);
                    let pool = bb8::Pool::builder()
                        .max_size(ctx.pool_size)
                        .build(manager)
                        .await?;
                    ctx.measure_async(&Bb8(pool)).await
                })
            }

            #[derive(Clone)]
            struct Ours(Db);

            impl AsyncOp for Ours {
                async fn run(&self) -> Result<(), BoxError> {
                    let mut session = self.0.async_get_db_cm_read().await?;
                    let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                        .get_result(&mut *session)
                        .await?;
                    check(value)
                }
            }

            fn ours_with(ctx: &Ctx, kind: AsyncPoolKind) -> Result<Sample, BoxError> {
                ctx.rt.block_on(async {
                    let db = Db::builder(ctx.ours_config().async_pool(kind))
                        .build_async()
                        .await?;
                    let sample = ctx.measure_async(&Ours(db.clone())).await;
                    db.close_all_connections();
                    sample
                })
            }

            /// dbinstance's async read session, deadpool flavour.
            pub fn ours_deadpool(ctx: &Ctx) -> Result<Sample, BoxError> {
                ours_with(ctx, AsyncPoolKind::Deadpool)
            }

            /// dbinstance's async read session, bb8 flavour.
            pub fn ours_bb8(ctx: &Ctx) -> Result<Sample, BoxError> {
                ours_with(ctx, AsyncPoolKind::Bb8)
            }

            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = Integer)]
                v: i32,
            }

            #[derive(Clone)]
            struct RawSql(deadpool::Pool<AsyncConn>);

            impl AsyncOp for RawSql {
                async fn run(&self) -> Result<(), BoxError> {
                    let mut conn = self.0.get().await?;
                    let row: Row = diesel::sql_query($raw_sql)
                        .bind::<Integer, _>(1_i32)
                        .get_result(&mut conn)
                        .await?;
                    check(row.v)
                }
            }

            /// The trap: deadpool `Fast` running the same query as raw SQL
            /// (`sql_query`), which diesel-async prepares again on every call.
            pub fn deadpool_fast_raw_sql(ctx: &Ctx) -> Result<Sample, BoxError> {
                ctx.rt.block_on(async {
                    let pool =
                        deadpool::Pool::builder(manager(&ctx.url, RecyclingMethod::Fast, false))
                            .max_size(ctx.pool_size as usize)
                            .build()?;
                    let sample = ctx.measure_async(&RawSql(pool.clone())).await;
                    pool.close();
                    sample
                })
            }

            type R2d2Pool = diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<SyncConn>>;

            struct R2d2(R2d2Pool);

            impl SyncOp for R2d2 {
                fn run(&self) -> Result<(), BoxError> {
                    let mut conn = self.0.get()?;
                    let value: i32 = diesel::RunQueryDsl::get_result(
                        diesel::select(1_i32.into_sql::<Integer>()),
                        &mut conn,
                    )?;
                    check(value)
                }
            }

            /// diesel + r2d2, default settings.
            pub fn r2d2(ctx: &Ctx) -> Result<Sample, BoxError> {
                let manager = diesel::r2d2::ConnectionManager::<SyncConn>::new(ctx.url.as_str());
                let pool = diesel::r2d2::Pool::builder()
                    .max_size(ctx.pool_size)
                    .build(manager)?;
                ctx.measure_sync(&R2d2(pool))
            }

            struct OursSync(Db);

            impl SyncOp for OursSync {
                fn run(&self) -> Result<(), BoxError> {
                    let mut session = self.0.get_db_cm_read()?;
                    let value: i32 = diesel::RunQueryDsl::get_result(
                        diesel::select(1_i32.into_sql::<Integer>()),
                        &mut *session,
                    )?;
                    check(value)
                }
            }

            /// dbinstance's sync read session.
            pub fn ours_sync(ctx: &Ctx) -> Result<Sample, BoxError> {
                let db = Db::new(ctx.ours_config())?;
                let sample = ctx.measure_sync(&OursSync(db.clone()));
                db.close_all_connections();
                sample
            }

            /// The stacks, in the order they run within a round.
            pub fn stacks() -> Vec<Stack> {
                vec![
                    Stack {
                        name: "deadpool",
                        description: "diesel-async + deadpool, default Verified recycling",
                        kind: Kind::Async,
                        run: deadpool_verified,
                    },
                    Stack {
                        name: "deadpool-fast",
                        description: "diesel-async + deadpool, Fast recycling",
                        kind: Kind::Async,
                        run: deadpool_fast,
                    },
                    Stack {
                        name: "bb8",
                        description: "diesel-async + bb8, default",
                        kind: Kind::Async,
                        run: diesel_bb8,
                    },
                    Stack {
                        name: "ours",
                        description: "dbinstance async read session (deadpool)",
                        kind: Kind::Async,
                        run: ours_deadpool,
                    },
                    Stack {
                        name: "ours-bb8",
                        description: "dbinstance async read session (bb8)",
                        kind: Kind::Async,
                        run: ours_bb8,
                    },
                    Stack {
                        name: "r2d2",
                        description: "diesel + r2d2, default (64 threads)",
                        kind: Kind::Sync,
                        run: r2d2,
                    },
                    Stack {
                        name: "ours-sync",
                        description: "dbinstance sync read session (64 threads)",
                        kind: Kind::Sync,
                        run: ours_sync,
                    },
                ]
            }

            /// Diagnostic stacks, run only when `--only` names them.
            pub fn diagnostic() -> Vec<Stack> {
                vec![
                    Stack {
                        name: "deadpool-fast-timeouts",
                        description: "diesel-async + deadpool Fast, with dbinstance's timeouts",
                        kind: Kind::Async,
                        run: deadpool_fast_timeouts,
                    },
                    Stack {
                        name: "deadpool-fast-same-work",
                        description:
                            "deadpool Fast, with dbinstance's timeouts and statement printing",
                        kind: Kind::Async,
                        run: deadpool_fast_same_work,
                    },
                ]
            }

            /// The raw-SQL trap, run only with `--trap`.
            pub fn trap() -> Stack {
                Stack {
                    name: "raw-sql",
                    description: "diesel-async + deadpool Fast, diesel::sql_query (the trap)",
                    kind: Kind::Async,
                    run: deadpool_fast_raw_sql,
                }
            }
        }
    };
}

diesel_stacks!(
    pg,
    dbinstance::Postgres,
    diesel_async::AsyncPgConnection,
    diesel::PgConnection,
    "SELECT $1 AS v"
);
diesel_stacks!(
    mysql,
    dbinstance::Mysql,
    diesel_async::AsyncMysqlConnection,
    diesel::MysqlConnection,
    "SELECT ? AS v"
);
diesel_stacks!(
    sqlite,
    dbinstance::Sqlite,
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>,
    diesel::SqliteConnection,
    "SELECT ? AS v"
);

/// sqlx's own pools.
pub mod sqlx_stacks {
    use super::*;

    #[derive(Clone)]
    struct Pg(sqlx::PgPool);

    impl AsyncOp for Pg {
        async fn run(&self) -> Result<(), BoxError> {
            let value = sqlx::query_scalar::<_, i32>("SELECT $1")
                .bind(1_i32)
                .fetch_one(&self.0)
                .await?;
            check(value)
        }
    }

    /// sqlx `PgPool`, default options but the size.
    pub fn pg(ctx: &Ctx) -> Result<Sample, BoxError> {
        ctx.rt.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(ctx.pool_size)
                .connect(&ctx.url)
                .await?;
            let sample = ctx.measure_async(&Pg(pool.clone())).await;
            pool.close().await;
            sample
        })
    }

    #[derive(Clone)]
    struct My(sqlx::MySqlPool);

    impl AsyncOp for My {
        async fn run(&self) -> Result<(), BoxError> {
            let value = sqlx::query_scalar::<_, i32>("SELECT ?")
                .bind(1_i32)
                .fetch_one(&self.0)
                .await?;
            check(value)
        }
    }

    /// sqlx `MySqlPool`, default options but the size.
    pub fn mysql(ctx: &Ctx) -> Result<Sample, BoxError> {
        ctx.rt.block_on(async {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(ctx.pool_size)
                .connect(&ctx.url)
                .await?;
            let sample = ctx.measure_async(&My(pool.clone())).await;
            pool.close().await;
            sample
        })
    }

    /// The sqlx stack for `backend`, if there is one.
    pub fn stack(backend: &str) -> Option<Stack> {
        let run: fn(&Ctx) -> Result<Sample, BoxError> = match backend {
            "pg" => pg,
            "mysql" => mysql,
            _ => return None,
        };
        Some(Stack {
            name: "sqlx",
            description: "sqlx pool, default options",
            kind: Kind::Async,
            run,
        })
    }
}

/// Many tasks' reads pipelined over shared PostgreSQL connections: the limit, one
/// diesel-async connection every task borrows (`&AsyncPgConnection`, no pool), and
/// dbinstance's shared read session.
pub mod pipelined {
    use super::*;
    use dbinstance::{DatabaseInstance, Postgres};
    use diesel::sql_types::Integer;
    use diesel::IntoSql;
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    use std::sync::Arc;

    #[derive(Clone)]
    struct OneConnection(Arc<AsyncPgConnection>);

    impl AsyncOp for OneConnection {
        async fn run(&self) -> Result<(), BoxError> {
            let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                .get_result(&mut &*self.0)
                .await?;
            check(value)
        }
    }

    /// One diesel-async connection shared by every task.
    pub fn one_connection(ctx: &Ctx) -> Result<Sample, BoxError> {
        ctx.rt.block_on(async {
            let conn = AsyncPgConnection::establish(&ctx.url).await?;
            ctx.measure_async(&OneConnection(Arc::new(conn))).await
        })
    }

    #[derive(Clone)]
    struct Shared(DatabaseInstance<Postgres>);

    impl AsyncOp for Shared {
        async fn run(&self) -> Result<(), BoxError> {
            let session = self.0.async_get_db_cm_read_shared().await?;
            let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                .get_result(&mut &*session)
                .await?;
            check(value)
        }
    }

    /// dbinstance's shared read session, default settings (one connection).
    pub fn ours_shared(ctx: &Ctx) -> Result<Sample, BoxError> {
        shared_over(ctx, ctx.ours_config())
    }

    /// The same over two connections, the default until 2026-12-05.
    pub fn ours_shared_two(ctx: &Ctx) -> Result<Sample, BoxError> {
        shared_over(ctx, ctx.ours_config().shared_read_connections(2))
    }

    fn shared_over(ctx: &Ctx, config: dbinstance::DatabaseConfig) -> Result<Sample, BoxError> {
        ctx.rt.block_on(async {
            let db = DatabaseInstance::<Postgres>::builder(config)
                .build_async()
                .await?;
            let sample = ctx.measure_async(&Shared(db.clone())).await;
            db.close_all_connections();
            sample
        })
    }

    /// The stacks, in the order they run within a round.
    pub fn stacks() -> Vec<Stack> {
        vec![
            Stack {
                name: "pipelined",
                description: "one diesel-async connection shared by every task (the limit)",
                kind: Kind::Async,
                run: one_connection,
            },
            Stack {
                name: "ours-shared",
                description: "dbinstance shared read session (1 connection)",
                kind: Kind::Async,
                run: ours_shared,
            },
        ]
    }

    /// Run only when `--only` names them.
    pub fn diagnostic() -> Vec<Stack> {
        vec![Stack {
            name: "ours-shared-2",
            description: "dbinstance shared read session over 2 connections",
            kind: Kind::Async,
            run: ours_shared_two,
        }]
    }
}

/// Read routing's cost on PostgreSQL: the read session through a replica with the
/// lag monitor on, and with read-your-writes, against the same session on the same
/// replica server without routing. Run only when `--only` names them; the replica
/// is `$DBI_PG_REPLICA_URL`.
pub mod routed {
    use super::*;
    use dbinstance::{DatabaseInstance, Postgres, ReadYourWrites};
    use diesel::sql_types::Integer;
    use diesel::IntoSql;
    use diesel_async::RunQueryDsl as _;

    fn replica_url() -> Result<String, BoxError> {
        std::env::var("DBI_PG_REPLICA_URL").map_err(|_| {
            "DBI_PG_REPLICA_URL is not set: run `eval \"$(scripts/testbed.sh env)\"`".into()
        })
    }

    #[derive(Clone)]
    struct Read(DatabaseInstance<Postgres>);

    impl AsyncOp for Read {
        async fn run(&self) -> Result<(), BoxError> {
            let mut session = self.0.async_get_db_cm_read().await?;
            let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                .get_result(&mut *session)
                .await?;
            check(value)
        }
    }

    fn measure(
        ctx: &Ctx,
        config: dbinstance::DatabaseConfig,
        after_write: bool,
    ) -> Result<Sample, BoxError> {
        ctx.rt.block_on(async {
            let db = DatabaseInstance::<Postgres>::builder(config.pool_size(ctx.pool_size))
                .build_async()
                .await?;
            let handle = if after_write {
                let tracked = db.with_read_your_writes(&ReadYourWrites::new());
                tracked.async_get_db_cm_write().await?.commit().await?;
                tracked
            } else {
                db.clone()
            };
            let sample = ctx.measure_async(&Read(handle)).await;
            db.close_all_connections();
            sample
        })
    }

    /// The read session on the replica's server, given as the primary: no routing.
    pub fn on_replica(ctx: &Ctx) -> Result<Sample, BoxError> {
        measure(
            ctx,
            dbinstance::DatabaseConfig::from_url(replica_url()?),
            false,
        )
    }

    fn routed_config(ctx: &Ctx) -> Result<dbinstance::DatabaseConfig, BoxError> {
        Ok(dbinstance::DatabaseConfig::from_url(ctx.url.as_str())
            .read_url(replica_url()?)
            .max_replica_lag(Duration::from_secs(5)))
    }

    /// The read session routed to the replica, lag monitor on.
    pub fn routed(ctx: &Ctx) -> Result<Sample, BoxError> {
        measure(ctx, routed_config(ctx)?, false)
    }

    /// The same through a handle that wrote once: every read must see that write.
    pub fn read_your_writes(ctx: &Ctx) -> Result<Sample, BoxError> {
        measure(ctx, routed_config(ctx)?, true)
    }

    /// The routing stacks.
    pub fn stacks() -> Vec<Stack> {
        vec![
            Stack {
                name: "ours-on-replica",
                description: "dbinstance async read session on the replica's server, no routing",
                kind: Kind::Async,
                run: on_replica,
            },
            Stack {
                name: "ours-routed",
                description: "dbinstance async read session routed to the replica, lag monitor on",
                kind: Kind::Async,
                run: routed,
            },
            Stack {
                name: "ours-ryw",
                description: "the same, from a handle with read-your-writes after a write",
                kind: Kind::Async,
                run: read_your_writes,
            },
        ]
    }
}

/// The cost of `transaction_pooling` on PostgreSQL: the read sessions of `ours` and
/// `ours-sync` with the setting on, straight to the server (what the setting
/// costs by itself) and through the test bed's PgBouncer in transaction mode, 16
/// server connections (`$DBI_PGBOUNCER_BENCH_URL`). Run only when `--only` names
/// them.
pub mod pooled {
    use super::*;
    use dbinstance::{DatabaseConfig, DatabaseInstance, Postgres};
    use diesel::sql_types::Integer;
    use diesel::IntoSql;
    use diesel_async::RunQueryDsl as _;

    type Db = DatabaseInstance<Postgres>;

    fn bouncer_url() -> Result<String, BoxError> {
        std::env::var("DBI_PGBOUNCER_BENCH_URL").map_err(|_| {
            "DBI_PGBOUNCER_BENCH_URL is not set: run `eval \"$(scripts/testbed.sh env)\"`".into()
        })
    }

    fn config(ctx: &Ctx, through_bouncer: bool) -> Result<DatabaseConfig, BoxError> {
        let url = if through_bouncer {
            bouncer_url()?
        } else {
            ctx.url.clone()
        };
        Ok(DatabaseConfig::from_url(url)
            .pool_size(ctx.pool_size)
            .transaction_pooling(true))
    }

    #[derive(Clone)]
    struct Read(Db);

    impl AsyncOp for Read {
        async fn run(&self) -> Result<(), BoxError> {
            let mut session = self.0.async_get_db_cm_read().await?;
            let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                .get_result(&mut *session)
                .await?;
            check(value)?;
            // Ends the read-only transaction here rather than in a task of the drop.
            Ok(session.commit().await?)
        }
    }

    struct SyncRead(Db);

    impl SyncOp for SyncRead {
        fn run(&self) -> Result<(), BoxError> {
            let mut session = self.0.get_db_cm_read()?;
            let value: i32 = diesel::RunQueryDsl::get_result(
                diesel::select(1_i32.into_sql::<Integer>()),
                &mut *session,
            )?;
            check(value)?;
            Ok(session.commit()?)
        }
    }

    fn measure_async(ctx: &Ctx, through_bouncer: bool) -> Result<Sample, BoxError> {
        ctx.rt.block_on(async {
            let db = Db::builder(config(ctx, through_bouncer)?)
                .build_async()
                .await?;
            let sample = ctx.measure_async(&Read(db.clone())).await;
            db.close_all_connections();
            sample
        })
    }

    fn measure_sync(ctx: &Ctx, through_bouncer: bool) -> Result<Sample, BoxError> {
        let db = Db::new(config(ctx, through_bouncer)?)?;
        let sample = ctx.measure_sync(&SyncRead(db.clone()));
        db.close_all_connections();
        sample
    }

    /// The pooling stacks.
    pub fn stacks() -> Vec<Stack> {
        vec![
            Stack {
                name: "ours-tp",
                description:
                    "dbinstance async read session, transaction_pooling, straight to the server",
                kind: Kind::Async,
                run: |ctx| measure_async(ctx, false),
            },
            Stack {
                name: "ours-pgbouncer",
                description: "the same through PgBouncer in transaction mode",
                kind: Kind::Async,
                run: |ctx| measure_async(ctx, true),
            },
            Stack {
                name: "ours-sync-tp",
                description:
                    "dbinstance sync read session, transaction_pooling, straight to the server",
                kind: Kind::Sync,
                run: |ctx| measure_sync(ctx, false),
            },
            Stack {
                name: "ours-sync-pgbouncer",
                description: "the same through PgBouncer in transaction mode",
                kind: Kind::Sync,
                run: |ctx| measure_sync(ctx, true),
            },
        ]
    }
}
