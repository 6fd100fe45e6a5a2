//! `compare`: dbinstance side by side with the pools it builds on, and with sqlx, in
//! one process and one run.
//!
//! Every stack runs the same typed, cacheable query with one bound parameter
//! (`SELECT $1` / `SELECT ?`) from 64 tokio tasks (or 64 threads for the sync
//! stacks) sharing a pool of 16, for a fixed time, after a short warm-up on a fresh
//! pool. The stacks take turns within each round and the rounds repeat, so that the
//! machine's drift hits them all alike; the report gives medians over the rounds
//! and the ratios between stacks, which are what carry over from one machine to
//! another. Progress goes to stderr, the report (Markdown) to stdout.
//!
//! ```text
//! eval "$(scripts/testbed.sh env)"
//! cargo run --release -p compare -- --backend pg [--secs 5] [--rounds 3] [--trap]
//! ```
//! See `docs/benchmarks.md`.

mod measure;
mod memory;
mod noise;
mod stacks;
mod statement_text;
mod writes;

use measure::{BoxError, Sample};
use stacks::{Ctx, Kind, Stack};
use std::time::Duration;

const USAGE: &str = "\
usage: compare [--backend pg|mysql|sqlite] [--secs N] [--rounds N] [--warmup-ms N]
               [--tasks N] [--pool N] [--url URL] [--only a,b,...] [--trap]
               [--writes] [--scaling N,N,...] [--memory STACK] [--max-noise CORES]
               [--retries N]

  --backend   pg (default: $DBI_PG_URL), mysql ($DBI_MYSQL_URL) or sqlite (a temp file, WAL)
  --secs      timed seconds per stack per round (default 5)
  --rounds    rounds; the stacks take turns in each (default 3)
  --warmup-ms unmeasured load on each fresh pool first (default 500)
  --tasks     tasks (async) and threads (sync) (default 64)
  --pool      connections per pool (default 16)
  --url       the server, instead of the environment variable; on pg, a URL
              without sslmode gets sslmode=disable, so that every stack speaks
              plain text (diesel-async's pools and sqlx here have no TLS, while
              libpq and dbinstance would negotiate it under the default `prefer`)
  --only      run only these stacks (names as in the report; also raw-sql, the
              diagnostic deadpool-fast-timeouts: deadpool Fast with dbinstance's timeouts,
              deadpool-fast-same-work: also printing every statement's SQL, as
              dbinstance's read guard does,
              and on pg (where the stacks pipelined and ours-shared run too)
              ours-shared-2 (the shared session over two connections),
              the routing stacks ours-on-replica, ours-routed, ours-ryw,
              which read from $DBI_PG_REPLICA_URL, and the transaction_pooling
              stacks ours-tp, ours-sync-tp, and ours-pgbouncer, ours-sync-pgbouncer
              through $DBI_PGBOUNCER_BENCH_URL)
  --trap      add the raw-SQL stack (diesel::sql_query through deadpool Fast)
  --writes    the write stacks instead: a typed INSERT and its commit per operation
              (deadpool-fast-tx, ours-write, r2d2-tx, ours-sync-write); one
              connection per pool on SQLite
  --scaling   the whole run once per task count given (1,4,16,64,256, say), then
              one table of every stack's ops/s and p99 at each count
  --memory    instead of a run: the resident memory one pooled PostgreSQL connection
              of STACK (r2d2, ours-sync, deadpool-fast, ours, sqlx) costs this
              process, with --pool connections held at once; one stack per process
  --max-noise a run during which other programs took more CPU than this (in cores)
              is repeated (default 0.25; Linux only)
  --retries   how often a noisy run is repeated before its quietest try is kept (default 2)";

#[derive(Debug)]
struct Args {
    backend: String,
    secs: f64,
    rounds: usize,
    warmup_ms: u64,
    tasks: usize,
    pool: u32,
    url: Option<String>,
    only: Option<Vec<String>>,
    trap: bool,
    writes: bool,
    scaling: Option<Vec<usize>>,
    memory: Option<String>,
    max_noise: f64,
    retries: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backend: "pg".into(),
        secs: 5.0,
        rounds: 3,
        warmup_ms: 500,
        tasks: 64,
        pool: 16,
        url: None,
        only: None,
        trap: false,
        writes: false,
        scaling: None,
        memory: None,
        max_noise: 0.25,
        retries: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        }
        match flag.as_str() {
            "--backend" => args.backend = value()?,
            "--secs" => args.secs = num(&flag, value()?)?,
            "--rounds" => args.rounds = num(&flag, value()?)?,
            "--warmup-ms" => args.warmup_ms = num(&flag, value()?)?,
            "--tasks" => args.tasks = num(&flag, value()?)?,
            "--pool" => args.pool = num(&flag, value()?)?,
            "--url" => args.url = Some(value()?),
            "--only" => args.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--trap" => args.trap = true,
            "--writes" => args.writes = true,
            "--memory" => args.memory = Some(value()?),
            "--scaling" => {
                let list = value()?;
                args.scaling = Some(
                    list.split(',')
                        .map(|n| num("--scaling", n.trim().to_owned()))
                        .collect::<Result<_, _>>()?,
                );
            }
            "--max-noise" => args.max_noise = num(&flag, value()?)?,
            "--retries" => args.retries = num(&flag, value()?)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if !matches!(args.backend.as_str(), "pg" | "mysql" | "sqlite") {
        return Err(format!("unknown backend `{}`", args.backend));
    }
    if args.rounds == 0 || args.tasks == 0 || args.pool == 0 || args.secs <= 0.0 {
        return Err("--rounds, --tasks, --pool and --secs must be positive".into());
    }
    Ok(args)
}

/// A SQLite file in WAL mode, removed on drop.
#[derive(Debug)]
struct TempDb(std::path::PathBuf);

impl TempDb {
    fn create() -> Result<Self, BoxError> {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let path =
            std::env::temp_dir().join(format!("dbinstance-compare-{}.db", std::process::id()));
        let db = TempDb(path);
        db.remove();
        let mut conn = diesel::SqliteConnection::establish(db.path())?;
        conn.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")?;
        Ok(db)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

fn stacks_for(args: &Args) -> Vec<Stack> {
    if args.writes {
        let (mut list, diagnostic) = match args.backend.as_str() {
            "pg" => (
                writes::pg::stacks(),
                [writes::pg::diagnostic(), writes::pg_pipelined::diagnostic()].concat(),
            ),
            "mysql" => (writes::mysql::stacks(), writes::mysql::diagnostic()),
            _ => (writes::sqlite::stacks(), writes::sqlite::diagnostic()),
        };
        if let Some(only) = &args.only {
            list.extend(diagnostic);
            list.retain(|s| only.iter().any(|o| o == s.name));
        }
        return list;
    }
    let (mut list, trap, diagnostic) = match args.backend.as_str() {
        "pg" => (
            stacks::pg::stacks(),
            stacks::pg::trap(),
            stacks::pg::diagnostic(),
        ),
        "mysql" => (
            stacks::mysql::stacks(),
            stacks::mysql::trap(),
            stacks::mysql::diagnostic(),
        ),
        _ => (
            stacks::sqlite::stacks(),
            stacks::sqlite::trap(),
            stacks::sqlite::diagnostic(),
        ),
    };
    if let Some(sqlx) = stacks::sqlx_stacks::stack(&args.backend) {
        list.insert(2, sqlx);
    }
    if args.backend == "pg" {
        // After `ours`, before the blocking stacks.
        let at = list
            .iter()
            .position(|s| s.name == "ours-bb8")
            .map_or(list.len(), |i| i + 1);
        list.splice(at..at, stacks::pipelined::stacks());
    }
    if args.trap {
        list.insert(2, trap);
    }
    if let Some(only) = &args.only {
        if !args.trap {
            list.push(trap);
        }
        list.extend(diagnostic);
        if args.backend == "pg" {
            list.extend(stacks::pipelined::diagnostic());
            list.extend(stacks::routed::stacks());
            list.extend(stacks::pooled::stacks());
        }
        list.retain(|s| only.iter().any(|o| o == s.name));
    }
    list
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Thousands separators, for the tables.
fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug)]
struct Summary {
    stack: Stack,
    ops: f64,
    ops_min: f64,
    ops_max: f64,
    p50: f64,
    p99: f64,
    /// The most CPU other programs took during a kept run, in cores.
    noise: Option<f64>,
    /// CPU time per operation in this process and in the servers, in µs
    /// (medians over the rounds), when known.
    cpu_per_op: Option<(f64, f64)>,
    /// ops/s in each round, in round order.
    per_round: Vec<f64>,
}

fn summarize(stack: Stack, samples: &[Sample]) -> Summary {
    let ops: Vec<f64> = samples.iter().map(|s| s.ops_per_sec).collect();
    Summary {
        stack,
        ops_min: ops.iter().copied().fold(f64::INFINITY, f64::min),
        ops_max: ops.iter().copied().fold(0.0, f64::max),
        ops: median(ops),
        p50: median(samples.iter().map(|s| micros(s.p50)).collect()),
        p99: median(samples.iter().map(|s| micros(s.p99)).collect()),
        noise: samples
            .iter()
            .filter_map(|s| s.noise.map(|n| n.foreign))
            .reduce(f64::max),
        cpu_per_op: cpu_per_op(samples),
        per_round: samples.iter().map(|s| s.ops_per_sec).collect(),
    }
}

/// The median over the rounds of `a`'s ops/s ÷ `b`'s in the same round: a slow
/// spell of the machine that spans a round slows both, and cancels out.
fn paired_ratio(a: &Summary, b: &Summary) -> f64 {
    median(
        a.per_round
            .iter()
            .zip(&b.per_round)
            .map(|(a, b)| a / b)
            .collect(),
    )
}

/// Median CPU µs per operation, in this process and in the servers: a cost that
/// the machine's noise moves less than throughput.
fn cpu_per_op(samples: &[Sample]) -> Option<(f64, f64)> {
    let known: Vec<(f64, f64)> = samples.iter().filter_map(Sample::cpu_per_op).collect();
    if known.is_empty() {
        return None;
    }
    Some((
        median(known.iter().map(|k| k.0).collect()),
        median(known.iter().map(|k| k.1).collect()),
    ))
}

/// A table of `ratio(row, column)` for every pair of stacks.
fn ratio_matrix(title: &str, summaries: &[Summary], ratio: impl Fn(&Summary, &Summary) -> f64) {
    println!("\n{title} (row ÷ column):\n");
    print!("| |");
    for s in summaries {
        print!(" `{}` |", s.stack.name);
    }
    println!();
    println!("|---|{}", "--:|".repeat(summaries.len()));
    for row in summaries {
        print!("| `{}` |", row.stack.name);
        for col in summaries {
            print!(" {:.2} |", ratio(row, col));
        }
        println!();
    }
}

fn report(args: &Args, summaries: &[Summary]) {
    let find = |name: &str| summaries.iter().find(|s| s.stack.name == name);
    println!(
        "## {} — {} rounds × {} s, {} tasks/threads, pool {}\n",
        args.backend, args.rounds, args.secs, args.tasks, args.pool
    );
    println!("| stack | what | ops/s (median) | range | p50 µs | p99 µs | CPU µs/op: client, server | other CPU |");
    println!("|---|---|--:|--:|--:|--:|--:|--:|");
    for s in summaries {
        println!(
            "| `{}` | {} | {} | {}–{} | {:.0} | {:.0} | {} | {} |",
            s.stack.name,
            s.stack.description,
            group(s.ops),
            group(s.ops_min),
            group(s.ops_max),
            s.p50,
            s.p99,
            s.cpu_per_op.map_or("?".into(), |(client, server)| format!(
                "{client:.1}, {server:.1}"
            )),
            s.noise.map_or("?".into(), |n| format!("≤ {n:.2}"))
        );
    }
    println!(
        "\nMedians over the rounds; range: slowest and fastest round; CPU µs/op: CPU time \
         per operation of this process (the stack) and of the database servers; other CPU: \
         the most that other programs took during a kept run, in cores."
    );
    ratio_matrix("Ratios of median ops/s", summaries, |a, b| a.ops / b.ops);
    if args.rounds > 1 {
        ratio_matrix(
            "Paired: the median of the rounds' own ratios",
            summaries,
            paired_ratio,
        );
    }
    let targets = [
        ("ours", "sqlx", 1.0),
        ("ours", "deadpool", 1.4),
        ("ours", "deadpool-fast", 1.0),
        ("ours-bb8", "sqlx", 1.0),
        ("ours-bb8", "deadpool", 1.4),
        ("ours-sync", "r2d2", 1.0),
        ("ours-write", "deadpool-fast-tx", 1.0),
        ("ours-sync-write", "r2d2-tx", 1.0),
    ];
    let mut lines = Vec::new();
    for (ours, theirs, floor) in targets {
        if let (Some(a), Some(b)) = (find(ours), find(theirs)) {
            let ratio = a.ops / b.ops;
            let paired = paired_ratio(a, b);
            let verdict = if ratio >= floor { "met" } else { "NOT met" };
            lines.push(format!(
                "| `{ours}` ÷ `{theirs}` | ≥ {floor:.2} | {ratio:.2} | {paired:.2} | {verdict} |"
            ));
        }
    }
    if !lines.is_empty() {
        println!(
            "\nTargets (measured: the ratio of the medians; paired: the median of the \
             rounds' own ratios, which a slow spell of the machine moves less):\n\n\
             | ratio | target | measured | paired | |\n|---|--:|--:|--:|---|"
        );
        for line in lines {
            println!("{line}");
        }
    }
    if let (Some(a), Some(b)) = (find("ours-sync"), find("r2d2")) {
        println!("\nSync p99: ours {:.0} µs vs r2d2 {:.0} µs.", a.p99, b.p99);
    }
}

fn foreign(sample: &Sample) -> f64 {
    sample.noise.map_or(0.0, |n| n.foreign)
}

/// Runs one stack once, again when other programs took more than `--max-noise`
/// cores meanwhile; keeps the quietest try.
fn run_quietly(ctx: &Ctx, args: &Args, stack: Stack, round: usize) -> Result<Sample, BoxError> {
    let mut best: Option<Sample> = None;
    for attempt in 0..=args.retries {
        let sample = (stack.run)(ctx).map_err(|e| format!("{}: {e}", stack.name))?;
        let noise = sample
            .noise
            .zip(sample.cpu_per_op())
            .map(|(n, (client, server))| {
                format!(
                    "  CPU/op {client:.1} + {server:.1} µs  other CPU {:.2} cores, steal {:.2}",
                    n.foreign, n.steal
                )
            })
            .unwrap_or_default();
        eprintln!(
            "round {}/{}  {:<14} {:>10} ops/s  p50 {:>7.0} µs  p99 {:>8.0} µs{}{}",
            round + 1,
            args.rounds,
            stack.name,
            group(sample.ops_per_sec),
            micros(sample.p50),
            micros(sample.p99),
            if stack.kind == Kind::Sync {
                "  (threads)"
            } else {
                ""
            },
            noise,
        );
        // Let the server reap the pool's connections before the next one opens.
        std::thread::sleep(Duration::from_millis(300));
        let quiet = foreign(&sample) <= args.max_noise;
        if best.is_none_or(|b| foreign(&sample) < foreign(&b)) {
            best = Some(sample);
        }
        if quiet {
            break;
        }
        if attempt < args.retries {
            eprintln!("  (noisy: other programs were busy; running it again)");
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    best.ok_or_else(|| "no run".into())
}

fn main() -> Result<(), BoxError> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("compare: {message}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let mut temp = None;
    let url = match (&args.url, args.backend.as_str()) {
        (Some(url), _) => url.clone(),
        (None, "sqlite") => temp.insert(TempDb::create()?).path().to_owned(),
        (None, backend) => {
            let var = if backend == "pg" {
                "DBI_PG_URL"
            } else {
                "DBI_MYSQL_URL"
            };
            std::env::var(var).map_err(|_| {
                format!("{var} is not set: run `eval \"$(scripts/testbed.sh env)\"` or pass --url")
            })?
        }
    };
    let url = plain_text_unless_asked(&args.backend, url);
    if let Some(stack) = &args.memory {
        let bytes = memory::per_connection(stack, &url, args.pool)?;
        println!(
            "`{stack}`: {} KiB per connection ({} held)",
            group(bytes as f64 / 1024.0),
            args.pool
        );
        return Ok(());
    }
    let list = stacks_for(&args);
    if list.is_empty() {
        return Err("--only matched no stack".into());
    }
    let mut ctx = Ctx {
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        url,
        pool_size: args.pool,
        workers: args.tasks,
        warmup: Duration::from_millis(args.warmup_ms),
        duration: Duration::from_secs_f64(args.secs),
    };
    eprintln!(
        "compare: {} on {}, {} worker threads, stacks: {}",
        args.backend,
        if temp.is_some() {
            "a temp SQLite file (WAL)"
        } else {
            "the server"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        list.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
    );
    if let Some(counts) = args.scaling.clone() {
        let mut columns = Vec::new();
        for tasks in counts {
            ctx.workers = tasks;
            eprintln!("compare: {tasks} tasks/threads");
            columns.push((tasks, run_rounds(&ctx, &args, &list)?));
        }
        scaling_report(&args, &list, &columns);
    } else {
        let summaries = run_rounds(&ctx, &args, &list)?;
        report(&args, &summaries);
    }
    drop(temp);
    Ok(())
}

/// Every stack `--rounds` times, taking turns; a summary per stack.
fn run_rounds(ctx: &Ctx, args: &Args, list: &[Stack]) -> Result<Vec<Summary>, BoxError> {
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); list.len()];
    for round in 0..args.rounds {
        // Rotate the order so that no stack always runs first or after the same one.
        for k in 0..list.len() {
            let i = (k + round) % list.len();
            let sample = run_quietly(ctx, args, list[i], round)?;
            samples[i].push(sample);
        }
    }
    Ok(list
        .iter()
        .zip(&samples)
        .map(|(stack, s)| summarize(*stack, s))
        .collect())
}

/// One row per stack, one column per task count: median ops/s, and p99 in µs.
fn scaling_report(args: &Args, list: &[Stack], columns: &[(usize, Vec<Summary>)]) {
    println!(
        "## {} — how cost grows: {} rounds × {} s per count, pool {}\n",
        args.backend, args.rounds, args.secs, args.pool
    );
    print!("| stack |");
    for (tasks, _) in columns {
        print!(" {tasks} |");
    }
    println!("\n|---|{}", "--:|".repeat(columns.len()));
    for (i, stack) in list.iter().enumerate() {
        print!("| `{}` |", stack.name);
        for (_, summaries) in columns {
            let s = &summaries[i];
            print!(" {} ({:.0} µs) |", group(s.ops), s.p99);
        }
        println!();
    }
    println!(
        "\nEach cell: median ops/s over the rounds (p99 latency of one operation). \
         Async stacks run that many tasks, sync stacks that many threads."
    );
}

/// On PostgreSQL, `url` with `sslmode=disable` added unless it names a mode: the
/// peers built here cannot negotiate TLS, so a default `prefer` would measure the
/// encryption of some stacks against the plain text of others.
fn plain_text_unless_asked(backend: &str, url: String) -> String {
    if backend != "pg" || url.contains("sslmode=") {
        return url;
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    eprintln!(
        "compare: every stack in plain text (sslmode=disable); put sslmode in --url to change it"
    );
    format!("{url}{separator}sslmode=disable")
}
