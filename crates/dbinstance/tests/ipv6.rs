//! IPv6 literals work on every driver: the blocking and async PostgreSQL and MySQL
//! connections reach a server at `[::1]`, as the primary and as a replica host.
//!
//! The test servers listen on 127.0.0.1 only, so each test puts a byte-for-byte
//! TCP relay on `[::1]` in front of the real server: what the drivers parse and
//! dial is the IPv6 address, and what answers is the real server.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance};
use std::net::SocketAddr;

/// A relay from a fresh port on `[::1]` to `target`, running on its own thread
/// for the rest of the test binary.
fn relay_to(target: SocketAddr) -> u16 {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    });
    port_rx.recv().unwrap()
}

/// `url`'s host and port as an address to relay to, and the URL moved to `[::1]:port`.
fn through_ipv6(url: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let target: SocketAddr = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap())
        .parse()
        .unwrap();
    let port = relay_to(target);
    parsed.set_host(Some("[::1]")).unwrap();
    parsed.set_port(Some(port)).unwrap();
    parsed.into()
}

/// Builds an instance whose primary and replica are `[::1]` (through the relay),
/// then has every pool, blocking and async, write and read, answer a ping: the
/// health checks ping each pool of the instance.
async fn every_pool_answers_at_an_ipv6_literal<B: dbinstance::Backend>(url: &str) {
    let v6 = through_ipv6(url);
    assert!(v6.contains("[::1]"), "{v6}");
    let port = url::Url::parse(&v6).unwrap().port().unwrap();
    let config = DatabaseConfig::from_url(&v6).read_host(format!("[::1]:{port}"));
    let db = DatabaseInstance::<B>::builder(config)
        .build_async()
        .await
        .unwrap();
    // Each report pings its own family's pools: both roles must be there and answer.
    let blocking = db.clone();
    let sync_report = tokio::task::spawn_blocking(move || blocking.health_report())
        .await
        .unwrap();
    let async_report = db.async_health_report().await;
    for (report, kind) in [
        (sync_report, dbinstance::PoolKind::Sync),
        (async_report, dbinstance::PoolKind::Async),
    ] {
        assert!(report.pools.iter().all(|p| p.reachable), "{report:?}");
        for role in [dbinstance::Role::Write, dbinstance::Role::Read] {
            assert!(
                report
                    .pools
                    .iter()
                    .any(|p| p.role == role && p.kind == kind),
                "no {role} {kind:?} pool in {report:?}"
            );
        }
    }
    db.close_all_connections();
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_at_an_ipv6_literal_serves_every_pool() {
    let Some(url) = common::pg() else { return };
    every_pool_answers_at_an_ipv6_literal::<dbinstance::Postgres>(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_at_an_ipv6_literal_serves_every_pool() {
    let Some(url) = common::mysql() else { return };
    every_pool_answers_at_an_ipv6_literal::<dbinstance::Mysql>(&url).await;
}
