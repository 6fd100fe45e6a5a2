//! Several replicas: reads spread over them by weight (`read_weights`), and a
//! replica whose pool is exhausted spills reads to another instead of making them
//! wait for `pool_timeout`; only when every replica's pool is exhausted does a read
//! wait, on its first choice. Blocking and async (deadpool and bb8), PostgreSQL and
//! MariaDB.
//!
//! The server that served a read is told by its port. PostgreSQL has two streaming
//! replicas; MariaDB has one, so its primary stands in for the second (to the router
//! a read URL is a replica, whatever the server behind it).

mod common;

use dbinstance::{
    AsyncPoolKind, Backend, DatabaseConfig, DatabaseInstance, Error, Mysql, Postgres,
};
use diesel::sql_types::BigInt;
use std::collections::HashMap;
use std::time::Duration;

/// A port nothing listens on.
const DEAD_PG: &str = "postgres://postgres@127.0.0.1:1/test";

/// Reads per spread, a multiple of every weight sum used here.
const READS: usize = 400;

const ASYNC_POOLS: [AsyncPoolKind; 2] = [AsyncPoolKind::Deadpool, AsyncPoolKind::Bb8];

/// The port of the server a connection is on.
trait Served: Backend {
    fn port(conn: &mut Self::Connection) -> u16;
    async fn async_port(conn: &mut Self::AsyncConnection) -> u16;
}

fn to_port(port: i64) -> u16 {
    u16::try_from(port).unwrap()
}

const PG_PORT: &str = "CAST(inet_server_port() AS BIGINT)";
const MYSQL_PORT: &str = "CAST(@@port AS SIGNED)";

impl Served for Postgres {
    fn port(conn: &mut diesel::PgConnection) -> u16 {
        let query = diesel::select(diesel::dsl::sql::<BigInt>(PG_PORT));
        to_port(diesel::RunQueryDsl::get_result(query, conn).unwrap())
    }
    async fn async_port(conn: &mut diesel_async::AsyncPgConnection) -> u16 {
        let query = diesel::select(diesel::dsl::sql::<BigInt>(PG_PORT));
        to_port(
            diesel_async::RunQueryDsl::get_result(query, conn)
                .await
                .unwrap(),
        )
    }
}

impl Served for Mysql {
    fn port(conn: &mut diesel::MysqlConnection) -> u16 {
        let query = diesel::select(diesel::dsl::sql::<BigInt>(MYSQL_PORT));
        to_port(diesel::RunQueryDsl::get_result(query, conn).unwrap())
    }
    async fn async_port(conn: &mut diesel_async::AsyncMysqlConnection) -> u16 {
        let query = diesel::select(diesel::dsl::sql::<BigInt>(MYSQL_PORT));
        to_port(
            diesel_async::RunQueryDsl::get_result(query, conn)
                .await
                .unwrap(),
        )
    }
}

/// A primary and two read URLs.
type Servers = (String, [String; 2]);

/// The PostgreSQL primary and its two replicas.
fn pg_servers() -> Option<Servers> {
    Some((
        common::pg()?,
        [common::pg_replica()?, common::pg_replica2()?],
    ))
}

/// The MariaDB primary, and as read URLs its replica and the primary itself.
fn mysql_servers() -> Option<Servers> {
    let primary = common::mysql_primary()?;
    Some((primary.clone(), [common::mysql_replica()?, primary]))
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap()
}

fn config((primary, reads): &Servers) -> DatabaseConfig {
    DatabaseConfig::from_url(primary)
        .read_url(&reads[0])
        .read_url(&reads[1])
}

/// Pools of two connections: holding two sessions exhausts one.
fn small_pools(servers: &Servers, weights: [u32; 2], pool_timeout: Duration) -> DatabaseConfig {
    config(servers)
        .read_weights(weights)
        .pool_size(2)
        .min_idle(1)
        .pool_timeout(pool_timeout)
}

/// Reads served per port, out of `READS`.
fn spread<B: Served>(db: &DatabaseInstance<B>) -> HashMap<u16, usize> {
    let mut served = HashMap::new();
    for _ in 0..READS {
        let mut read = db.get_db_cm_read().unwrap();
        *served.entry(B::port(&mut read)).or_insert(0) += 1;
    }
    served
}

async fn async_spread<B: Served>(db: &DatabaseInstance<B>) -> HashMap<u16, usize> {
    let mut served = HashMap::new();
    for _ in 0..READS {
        let mut read = db.async_get_db_cm_read().await.unwrap();
        *served.entry(B::async_port(&mut read).await).or_insert(0) += 1;
    }
    served
}

/// Each read URL served about its share of the reads (give or take 5%: a read that
/// finds a replica unavailable for a moment goes to the other), and nothing else
/// served any.
fn assert_spread(served: &HashMap<u16, usize>, reads: &[String; 2], shares: [usize; 2]) {
    for (url, share) in reads.iter().zip(shares) {
        let got = served.get(&port_of(url)).copied().unwrap_or(0);
        assert!(
            got.abs_diff(share) <= READS / 20,
            "{url} served {got} reads, expected about {share}: {served:?}"
        );
    }
    assert_eq!(
        served.values().sum::<usize>(),
        READS,
        "a read went elsewhere: {served:?}"
    );
}

fn reads_spread_by_weight<B: Served>(servers: &Servers) {
    let weighted = DatabaseInstance::<B>::new(config(servers).read_weights([3, 1])).unwrap();
    assert_spread(&spread(&weighted), &servers.1, [300, 100]);
    // No weights: plain round robin.
    let even = DatabaseInstance::<B>::new(config(servers)).unwrap();
    assert_spread(&spread(&even), &servers.1, [200, 200]);
}

async fn async_reads_spread_by_weight<B: Served>(servers: &Servers) {
    for kind in ASYNC_POOLS {
        let weighted = config(servers).read_weights([1, 3]).async_pool(kind);
        let weighted = DatabaseInstance::<B>::builder(weighted)
            .build_async()
            .await
            .unwrap();
        let served = async_spread(&weighted).await;
        assert_spread(&served, &servers.1, [100, 300]);
        let even = config(servers).read_weights([2, 2]).async_pool(kind);
        let even = DatabaseInstance::<B>::builder(even)
            .build_async()
            .await
            .unwrap();
        assert_spread(&async_spread(&even).await, &servers.1, [200, 200]);
    }
}

/// With both of the first replica's connections held, reads go to the second at
/// once. Its weight of 0 keeps every read on the first while it has room, so the
/// held sessions are there; `pool_timeout` is long, so that a read that waited on
/// the exhausted pool would fail this test rather than pass it late.
fn exhausted_replica_spills<B: Served>(servers: &Servers) {
    let [first, second] = servers.1.each_ref().map(|url| port_of(url));
    let config = small_pools(servers, [1, 0], Duration::from_secs(20));
    let db = DatabaseInstance::<B>::new(config).unwrap();
    let mut held: Vec<_> = (0..2).map(|_| db.get_db_cm_read().unwrap()).collect();
    for read in &mut held {
        assert_eq!(B::port(read), first);
    }
    for _ in 0..3 {
        let mut read = db.get_db_cm_read().unwrap();
        assert_eq!(B::port(&mut read), second, "did not spill");
    }
    held.pop();
    let mut read = db.get_db_cm_read().unwrap();
    assert_eq!(
        B::port(&mut read),
        first,
        "back on the first once it has room"
    );
}

async fn async_exhausted_replica_spills<B: Served>(servers: &Servers) {
    let [first, second] = servers.1.each_ref().map(|url| port_of(url));
    for kind in ASYNC_POOLS {
        let config = small_pools(servers, [1, 0], Duration::from_secs(20)).async_pool(kind);
        let db = DatabaseInstance::<B>::builder(config)
            .build_async()
            .await
            .unwrap();
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut read = db.async_get_db_cm_read().await.unwrap();
            assert_eq!(B::async_port(&mut read).await, first, "{kind:?}");
            held.push(read);
        }
        for _ in 0..3 {
            let mut read = db.async_get_db_cm_read().await.unwrap();
            assert_eq!(B::async_port(&mut read).await, second, "{kind:?}: no spill");
        }
        held.pop();
        let mut read = db.async_get_db_cm_read().await.unwrap();
        assert_eq!(B::async_port(&mut read).await, first, "{kind:?}");
    }
}

/// The error of a read that waited on `port`'s exhausted pool.
fn assert_waited_on(result: dbinstance::Result<impl Sized>, port: u16) {
    match result {
        Err(Error::Timeout { pool, .. }) => assert!(
            pool.target.contains(&format!(":{port}/")),
            "waited on {pool}, not on the first choice"
        ),
        Err(other) => panic!("not a timeout: {other:?}"),
        Ok(_) => panic!("a read was served with every replica's pool exhausted"),
    }
}

/// With both pools exhausted a read waits on its first choice, and gets neither the
/// other replica nor the primary (fallback is on): it times out there.
fn every_replica_exhausted<B: Served>(servers: &Servers) {
    let [first, second] = servers.1.each_ref().map(|url| port_of(url));
    let config = small_pools(servers, [1, 0], Duration::from_secs(1));
    let db = DatabaseInstance::<B>::new(config).unwrap();
    let mut held: Vec<_> = (0..4).map(|_| db.get_db_cm_read().unwrap()).collect();
    let ports: Vec<_> = held.iter_mut().map(|read| B::port(read)).collect();
    assert_eq!(ports, [first, first, second, second]);
    assert_waited_on(db.get_db_cm_read(), first);
}

async fn async_every_replica_exhausted<B: Served>(servers: &Servers) {
    let [first, second] = servers.1.each_ref().map(|url| port_of(url));
    for kind in ASYNC_POOLS {
        let config = small_pools(servers, [1, 0], Duration::from_secs(1)).async_pool(kind);
        let db = DatabaseInstance::<B>::builder(config)
            .build_async()
            .await
            .unwrap();
        let mut ports = Vec::new();
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut read = db.async_get_db_cm_read().await.unwrap();
            ports.push(B::async_port(&mut read).await);
            held.push(read);
        }
        assert_eq!(ports, [first, first, second, second], "{kind:?}");
        assert_waited_on(db.async_get_db_cm_read().await, first);
    }
}

#[test]
fn postgres_reads_spread_over_two_replicas_by_weight() {
    let Some(servers) = pg_servers() else { return };
    reads_spread_by_weight::<Postgres>(&servers);
}

#[tokio::test]
async fn postgres_async_reads_spread_over_two_replicas_by_weight() {
    let Some(servers) = pg_servers() else { return };
    async_reads_spread_by_weight::<Postgres>(&servers).await;
}

#[test]
fn mariadb_reads_spread_over_two_read_servers_by_weight() {
    let Some(servers) = mysql_servers() else {
        return;
    };
    reads_spread_by_weight::<Mysql>(&servers);
}

#[tokio::test]
async fn mariadb_async_reads_spread_over_two_read_servers_by_weight() {
    let Some(servers) = mysql_servers() else {
        return;
    };
    async_reads_spread_by_weight::<Mysql>(&servers).await;
}

#[test]
fn postgres_a_replica_whose_pool_is_exhausted_spills_reads_to_the_other() {
    let Some(servers) = pg_servers() else { return };
    exhausted_replica_spills::<Postgres>(&servers);
}

#[tokio::test]
async fn postgres_async_a_replica_whose_pool_is_exhausted_spills_reads_to_the_other() {
    let Some(servers) = pg_servers() else { return };
    async_exhausted_replica_spills::<Postgres>(&servers).await;
}

#[test]
fn mariadb_a_replica_whose_pool_is_exhausted_spills_reads_to_the_other() {
    let Some(servers) = mysql_servers() else {
        return;
    };
    exhausted_replica_spills::<Mysql>(&servers);
}

#[tokio::test]
async fn mariadb_async_a_replica_whose_pool_is_exhausted_spills_reads_to_the_other() {
    let Some(servers) = mysql_servers() else {
        return;
    };
    async_exhausted_replica_spills::<Mysql>(&servers).await;
}

#[test]
fn postgres_with_every_replica_exhausted_a_read_waits_on_its_first_choice() {
    let Some(servers) = pg_servers() else { return };
    every_replica_exhausted::<Postgres>(&servers);
}

#[tokio::test]
async fn postgres_async_with_every_replica_exhausted_a_read_waits_on_its_first_choice() {
    let Some(servers) = pg_servers() else { return };
    async_every_replica_exhausted::<Postgres>(&servers).await;
}

#[test]
fn mariadb_with_every_replica_exhausted_a_read_waits_on_its_first_choice() {
    let Some(servers) = mysql_servers() else {
        return;
    };
    every_replica_exhausted::<Mysql>(&servers);
}

#[tokio::test]
async fn mariadb_async_with_every_replica_exhausted_a_read_waits_on_its_first_choice() {
    let Some(servers) = mysql_servers() else {
        return;
    };
    async_every_replica_exhausted::<Mysql>(&servers).await;
}

/// A standby (weight 0) serves the reads its weighted replica cannot: here the
/// weighted one is down.
#[tokio::test]
async fn a_standby_serves_when_the_weighted_replica_is_down() {
    let (Some(primary), Some(standby)) = (common::pg(), common::pg_replica2()) else {
        return;
    };
    let servers = (primary, [DEAD_PG.to_owned(), standby.clone()]);
    let config = config(&servers)
        .read_weights([1, 0])
        .connect_timeout(Duration::from_secs(2));
    let db = DatabaseInstance::<Postgres>::builder(config)
        .build_lazy()
        .unwrap();
    for _ in 0..3 {
        let mut read = db.get_db_cm_read().unwrap();
        assert_eq!(Postgres::port(&mut read), port_of(&standby));
        let mut read = db.async_get_db_cm_read().await.unwrap();
        assert_eq!(Postgres::async_port(&mut read).await, port_of(&standby));
    }
}
