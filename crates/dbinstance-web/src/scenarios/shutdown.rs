//! Shutdown of a service binary under load: started for real, signalled while a
//! burst of requests is in flight, watched until it exits.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the service did with the burst when it was signalled.
#[derive(Debug)]
pub struct ShutdownReport {
    /// Requests of the burst answered with a 2xx.
    pub completed: usize,
    /// Requests of the burst sent on an accepted connection but cut: no answer, or a
    /// 5xx. The goal is 0.
    pub cut: usize,
    /// Requests of the burst answered after the signal was sent (the test means
    /// something only when some were still in flight).
    pub answered_after_signal: usize,
    /// The exit code.
    pub exit_code: Option<i32>,
    /// From the signal to the exit.
    pub shutdown_took: Duration,
    /// True when a connection to the service's address was refused after it exited.
    pub listener_closed: bool,
    /// What the service wrote on stderr, for a failing assertion.
    pub stderr: String,
}

/// Kills the child when the scenario ends early (a failed assertion).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `binary` (in `dir`, with `env`, `BIND=127.0.0.1:0`), reads its address from
/// its first stdout line (`<name>: http://ADDR`), waits for `/health`, opens one
/// connection per client and sends on each the request `request` builds, then sends
/// `signal` (`"TERM"` or `"INT"`) while they are in flight, and reports.
///
/// Every request is sent on a connection the service has already answered on, so
/// each was accepted: a request that then gets no answer was cut.
///
/// # Panics
/// When the binary does not start, print its address or answer `/health`.
pub async fn signal_during_a_burst(
    binary: &Path,
    name: &str,
    dir: &Path,
    env: &[(&str, &str)],
    clients: usize,
    request: impl Fn(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder,
    signal: &str,
) -> ShutdownReport {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_READ_URL")
        .env("BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = Running(command.spawn().expect("the service starts"));
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout is piped"));
    let mut first_line = String::new();
    stdout
        .read_line(&mut first_line)
        .expect("stdout is readable");
    // Keep reading, so that the service never writes into a full or closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let mut stderr_pipe = child.0.stderr.take().expect("stderr is piped");
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let base = first_line
        .trim()
        .strip_prefix(&format!("{name}: "))
        .unwrap_or_else(|| panic!("{name} printed {first_line:?}"))
        .to_owned();
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|_| panic!("{name} printed {first_line:?}"));

    // One client (one connection) each, opened and answered on before the burst.
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("an HTTP client");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match http.get(format!("{base}/health")).send().await {
                Ok(response) if response.status().is_success() => break,
                _ if Instant::now() > deadline => panic!("{name} never answered /health"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        connections.push(http);
    }

    let signal_sent = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut burst = Vec::with_capacity(clients);
    for (i, http) in connections.into_iter().enumerate() {
        let sent = request(&http, &base, i).send();
        let signal_sent = signal_sent.clone();
        burst.push(tokio::spawn(async move {
            let outcome = sent.await;
            let after_signal = signal_sent.get().is_some();
            drop(http);
            (outcome.map(|r| r.status()), after_signal)
        }));
    }
    // Let the requests reach the service, then signal it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled_at = Instant::now();
    let _ = signal_sent.set(signalled_at);
    let pid = child.0.id().to_string();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");

    let (mut completed, mut cut, mut answered_after_signal) = (0, 0, 0);
    for request in burst {
        let (outcome, after_signal) = request.await.expect("the client task ends");
        match outcome {
            Ok(status) if status.is_success() => completed += 1,
            _ => cut += 1,
        }
        if after_signal {
            answered_after_signal += 1;
        }
    }

    let exit_deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(status) = child.0.try_wait().expect("the child can be waited on") {
            break status;
        }
        assert!(Instant::now() < exit_deadline, "{name} did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let shutdown_took = signalled_at.elapsed();
    let listener_closed =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err();
    ShutdownReport {
        completed,
        cut,
        answered_after_signal,
        exit_code: exit.code(),
        shutdown_took,
        listener_closed,
        stderr: stderr_thread.join().unwrap_or_default(),
    }
}
