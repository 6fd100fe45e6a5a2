//! How much CPU other programs took while a stack was measured: the machine's busy
//! time less this process's and the database servers'. On a shared machine a
//! compile in the background halves a stack's figure; this says when it happened.
//! Linux only (`/proc`); elsewhere nothing is measured.

use std::collections::HashMap;
use std::time::Instant;

/// Processes that belong to the measurement: this one, the database servers and
/// the pooler in front of one.
const OURS: &[&str] = &["postgres", "mariadbd", "mysqld", "pgbouncer"];

/// A reading of the CPU counters.
#[derive(Debug)]
pub struct Mark {
    at: Instant,
    /// user + nice + system ticks of the whole machine.
    busy: u64,
    /// steal ticks: time the hypervisor gave to someone else.
    steal: u64,
    /// user + system ticks per process of ours.
    ours: HashMap<u32, u64>,
}

/// Foreign load over an interval, in cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noise {
    /// CPU used by other programs.
    pub foreign: f64,
    /// CPU the hypervisor took.
    pub steal: f64,
    /// CPU this process (the stack under measure) took.
    pub client: f64,
    /// CPU the database servers (and a pooler) took.
    pub server: f64,
}

fn ticks_per_sec() -> f64 {
    // USER_HZ is 100 on every Linux this runs on; sysconf would need libc.
    100.0
}

fn machine() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    Some((v.first()? + v.get(1)? + v.get(2)?, *v.get(7)?))
}

fn process_ticks(pid: u32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Reads the counters now.
pub fn mark() -> Option<Mark> {
    let (busy, steal) = machine()?;
    let me = std::process::id();
    let mut ours = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((comm, ticks)) = process_ticks(pid) {
            if pid == me || OURS.contains(&comm.as_str()) {
                ours.insert(pid, ticks);
            }
        }
    }
    Some(Mark {
        at: Instant::now(),
        busy,
        steal,
        ours,
    })
}

/// The foreign load between `before` and now.
pub fn since(before: &Option<Mark>) -> Option<Noise> {
    let before = before.as_ref()?;
    let after = mark()?;
    let secs = after.at.duration_since(before.at).as_secs_f64() * ticks_per_sec();
    let me = std::process::id();
    let (mut client, mut server) = (0, 0);
    for (pid, ticks) in &after.ours {
        let used = ticks.saturating_sub(before.ours.get(pid).copied().unwrap_or(0));
        if *pid == me {
            client += used;
        } else {
            server += used;
        }
    }
    let busy = after.busy.saturating_sub(before.busy);
    Some(Noise {
        foreign: busy.saturating_sub(client + server) as f64 / secs,
        steal: after.steal.saturating_sub(before.steal) as f64 / secs,
        client: client as f64 / secs,
        server: server as f64 / secs,
    })
}
