//! A TCP relay in front of a real server whose behaviour a test switches: pass the
//! bytes through, close every connection at once (a server that is down), or
//! accept and never answer (a hung server). Switching to `Close` or `Hang` also
//! cuts the connections already relayed; switching to `Stall` keeps them open but
//! passes nothing more either way (a server that stopped answering on its open
//! connections, as one stopped with SIGSTOP does) and hangs new ones.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Forward = 0,
    Close = 1,
    Hang = 2,
    Stall = 3,
}

pub struct Relay {
    pub port: u16,
    mode: Arc<AtomicU8>,
    /// Bumped on every switch, so relayed connections notice and end.
    generation: Arc<AtomicU8>,
}

impl Relay {
    /// A relay on a fresh port of 127.0.0.1 to `url`'s server, in `mode`.
    pub fn to(url: &str, mode: Mode) -> Self {
        let parsed = url::Url::parse(url).unwrap();
        let target: SocketAddr = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port_or_known_default().unwrap()
        )
        .parse()
        .unwrap();
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let generation = Arc::new(AtomicU8::new(0));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (m, g) = (mode.clone(), generation.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(target, m, g, port_tx));
        });
        Self {
            port: port_rx.recv().unwrap(),
            mode,
            generation,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// `url` with its host and port moved to the relay.
    pub fn url(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).unwrap();
        parsed.set_host(Some("127.0.0.1")).unwrap();
        parsed.set_port(Some(self.port)).unwrap();
        parsed.into()
    }
}

async fn serve(
    target: SocketAddr,
    mode: Arc<AtomicU8>,
    generation: Arc<AtomicU8>,
    port_tx: std::sync::mpsc::Sender<u16>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    port_tx.send(listener.local_addr().unwrap().port()).unwrap();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let started_in = generation.load(Ordering::SeqCst);
        let switched = {
            let generation = generation.clone();
            async move {
                while generation.load(Ordering::SeqCst) == started_in {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        };
        match mode.load(Ordering::SeqCst) {
            0 => {
                let (mode, generation) = (mode.clone(), generation.clone());
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            () = switched => {}
                        }
                        if mode.load(Ordering::SeqCst) == Mode::Stall as u8 {
                            // Both sockets stay open, and silent, until the next switch.
                            let stalled_in = generation.load(Ordering::SeqCst);
                            while generation.load(Ordering::SeqCst) == stalled_in {
                                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            }
                        }
                        drop((inbound, outbound));
                    }
                });
            }
            1 => drop(inbound),
            _ => {
                tokio::spawn(async move {
                    switched.await;
                    drop(inbound);
                });
            }
        }
    }
}
