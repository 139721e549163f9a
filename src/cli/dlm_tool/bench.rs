//! `hydra dlm_tool bench`: how fast this node's lock manager grants and releases.
//!
//! - `bench [-c N] [--connections K] [-d SECS] [-r N] [-m MODE] [--prefix P] NAME`: N
//!   clients each lock and unlock its own resources `P<client>-<k>` (k < r) in turn,
//!   for SECS seconds, after one untimed pass over its names (so lookups and masters
//!   are settled). By default each client has its own connection to dlm_controld, as N
//!   processes would; with K < N they share K connections (client i uses connection
//!   i mod K), as the threads of one libdlm process share its lockspace device. Prints
//!   one line: `clients N connections K mode M pairs P secs S pairs/s X pair_p50_us A
//!   pair_p99_us B lock_p50_us C lock_p99_us D` — a pair is lock (request to grant
//!   completion) plus unlock (request to unlock completion).
//! - `bench --hold [-c N] [-r N] [--prefix P] NAME`: take NL on the same names and keep
//!   them until killed. Run on another node first, it makes that node the names'
//!   master, so a bench here measures remote-master locking (NL is compatible with
//!   every mode: the holder never blocks the bench).
//! - `bench --echo ADDR:PORT` serves TCP echo, `bench --rtt ADDR:PORT` measures the
//!   round trip to it (`tcp_rtt samples N p50_us A p99_us B`): the scale for the lock
//!   latencies, measured between the same hosts in the same run.
//!
//! A benchmark, not a test: scripts/bench-dlm.sh runs it on a namespace cluster and
//! prints the figures with their ratios.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hydra_dlm::client::{describe, Client};
use hydra_dlm::flags::{Flags, Status};
use hydra_dlm::mode::Mode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::super::args::Parsed;

/// Bytes per echo round trip: about a lock request's size on the wire.
const ECHO_BYTES: usize = 64;
const RTT_SAMPLES: usize = 2000;

#[derive(Debug, PartialEq)]
pub enum Args {
    Run {
        names: Names,
        /// Connections the clients share (at most one per client).
        connections: usize,
        mode: Mode,
        duration: Duration,
    },
    Hold(Names),
    Echo(String),
    Rtt(String),
    Ceiling {
        clients: usize,
        duration: Duration,
    },
}

/// The resources a bench uses: `prefix<client>-<k>` for each client and k < per_client.
#[derive(Clone, Debug, PartialEq)]
pub struct Names {
    pub ls: String,
    pub clients: usize,
    pub per_client: usize,
    pub prefix: String,
}

impl Names {
    fn name(&self, client: usize, k: usize) -> Vec<u8> {
        format!("{}{client}-{k}", self.prefix).into_bytes()
    }
}

fn number(p: &Parsed, long: &str, default: usize, max: usize) -> Result<usize, String> {
    match p.value(long) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "bench: --{long} '{v}' must be a number from 1 to {max}"
            )),
        },
    }
}

fn duration(p: &Parsed) -> Result<Duration, String> {
    match p.value("duration") {
        None => Ok(Duration::from_secs(5)),
        Some(d) => match d.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(format!(
                "bench: -d '{d}' must be seconds, above 0, at most 3600"
            )),
        },
    }
}

impl Args {
    pub fn parse(p: &Parsed, rest: &[String]) -> Result<Args, String> {
        for (opt, make) in [
            ("echo", Args::Echo as fn(String) -> Args),
            ("rtt", Args::Rtt),
        ] {
            if let Some(addr) = p.value(opt) {
                if p.opts.len() > 1 + usize::from(p.has("run-dir")) || !rest.is_empty() {
                    return Err(format!("bench: --{opt} takes no other options or names"));
                }
                return Ok(make(addr.to_string()));
            }
        }
        if p.has("socket-ceiling") {
            let own = ["socket-ceiling", "clients", "duration", "run-dir"];
            if p.opts.iter().any(|(o, _)| !own.contains(o)) || !rest.is_empty() {
                return Err("bench: --socket-ceiling takes -c and -d only".into());
            }
            return Ok(Args::Ceiling {
                clients: number(p, "clients", 1, 1024)?,
                duration: duration(p)?,
            });
        }
        let ls = match rest {
            [ls] => ls.clone(),
            [] => return Err("bench: lockspace name needed".into()),
            _ => {
                return Err(format!(
                    "bench: one lockspace name only, got {}",
                    rest.join(" ")
                ))
            }
        };
        let prefix = p.value("prefix").unwrap_or("bench").to_string();
        let names = Names {
            ls,
            clients: number(p, "clients", 1, 1024)?,
            per_client: number(p, "resources", 1, 100_000)?,
            // The longest name must fit: prefix, two numbers and a dash.
            prefix,
        };
        let longest = names.name(names.clients - 1, names.per_client - 1).len();
        if longest > hydra_dlm::RESNAME_MAXLEN {
            return Err(format!(
                "bench: --prefix too long: names would be {longest} bytes (at most {})",
                hydra_dlm::RESNAME_MAXLEN
            ));
        }
        if p.has("hold") {
            if p.has("duration") || p.has("mode") || p.has("connections") {
                return Err(
                    "bench: --hold holds NL until killed: no -d, -m or --connections".into(),
                );
            }
            return Ok(Args::Hold(names));
        }
        let mode = match p.value("mode") {
            None => Mode::EX,
            Some(m) => Mode::parse(m).ok_or_else(|| format!("bench: -m '{m}' is not a mode"))?,
        };
        let duration = duration(p)?;
        let connections = number(p, "connections", names.clients, names.clients)?;
        Ok(Args::Run {
            names,
            connections,
            mode,
            duration,
        })
    }
}

pub async fn run(run_dir: &Path, args: Args) -> Result<ExitCode, String> {
    match args {
        Args::Echo(addr) => echo(&addr).await,
        Args::Rtt(addr) => rtt(&addr).await,
        Args::Ceiling { clients, duration } => ceiling(clients, duration).await,
        Args::Hold(names) => hold(run_dir, &names).await,
        Args::Run {
            names,
            connections,
            mode,
            duration,
        } => bench(run_dir, &names, connections, mode, duration).await,
    }
}

async fn joined(run_dir: &Path, ls: &str) -> Result<Client, String> {
    let c = super::connect(run_dir).await?;
    c.join(ls)
        .await
        .map_err(|e| format!("bench: join \"{ls}\": {}", describe(&e)))?;
    Ok(c)
}

/// Lock `name` in `mode` and wait for the grant; anything else is an error.
async fn grant(
    c: &Client,
    ls: &str,
    name: &[u8],
    mode: Mode,
) -> Result<hydra_dlm::client::Lock, String> {
    let what = || format!("{mode} on \"{}\"", String::from_utf8_lossy(name));
    let (lock, done) = c
        .lock_wait(ls, name, mode, Flags(0), None, None)
        .await
        .map_err(|e| format!("bench: {}: {}", what(), describe(&e)))?;
    if done.status != Status::Granted {
        return Err(format!("bench: {}: {:?}", what(), done.status));
    }
    Ok(lock)
}

async fn hold(run_dir: &Path, names: &Names) -> Result<ExitCode, String> {
    let c = joined(run_dir, &names.ls).await?;
    let mut held = 0;
    for i in 0..names.clients {
        for k in 0..names.per_client {
            grant(&c, &names.ls, &names.name(i, k), Mode::NL)
                .await?
                .detach();
            held += 1;
        }
    }
    println!("holding {held} NL locks in \"{}\" until killed", names.ls);
    let why = c.closed().await;
    Err(format!("bench --hold: {}", describe(&why)))
}

/// What one client measured: microseconds per pair and per lock.
#[derive(Default)]
struct Samples {
    pair: Vec<u32>,
    lock: Vec<u32>,
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// One client: an untimed pass over its names, then `ready` and the wait for `start`,
/// then pairs until `duration` has passed.
async fn client(
    c: Client,
    names: Arc<Names>,
    i: usize,
    mode: Mode,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    mut start: tokio::sync::watch::Receiver<bool>,
    duration: Duration,
) -> Result<Samples, String> {
    let ls = &names.ls;
    let list: Vec<Vec<u8>> = (0..names.per_client).map(|k| names.name(i, k)).collect();
    for name in &list {
        if let Err(e) = pair(&c, ls, name, mode).await {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    }
    let _ = ready.send(Ok(()));
    // The sender only goes (without a start) when the bench gives up.
    start
        .wait_for(|s| *s)
        .await
        .map_err(|_| "bench: not started".to_string())?;
    let end = Instant::now() + duration;
    let mut s = Samples::default();
    for name in list.iter().cycle() {
        let (lock, both) = pair(&c, ls, name, mode).await?;
        s.lock.push(micros(lock));
        s.pair.push(micros(both));
        if Instant::now() >= end {
            break;
        }
    }
    Ok(s)
}

/// One lock (until its grant) and its unlock (until the unlock completion): the lock's
/// time and the pair's.
async fn pair(
    c: &Client,
    ls: &str,
    name: &[u8],
    mode: Mode,
) -> Result<(Duration, Duration), String> {
    let t0 = Instant::now();
    let mut l = grant(c, ls, name, mode).await?;
    let locked = t0.elapsed();
    l.unlock_wait(None)
        .await
        .map_err(|e| format!("bench: unlock: {}", describe(&e)))?;
    Ok((locked, t0.elapsed()))
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The clients run on as many threads as the machine has cores (at most one per
/// connection), each a single-threaded runtime with its share of the connections: a
/// connection and its clients stay on one thread, so the calls they make in one turn
/// share the connection's writes, and no task is handed between threads (work stealing
/// cost a third of the rate with one shared connection).
async fn bench(
    run_dir: &Path,
    names: &Names,
    connections: usize,
    mode: Mode,
    duration: Duration,
) -> Result<ExitCode, String> {
    let names = Arc::new(names.clone());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (start_tx, start) = tokio::sync::watch::channel(false);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads_n = connections.min(cores);
    let mut threads = Vec::new();
    for t in 0..threads_n {
        let (names, ready_tx, start) = (names.clone(), ready_tx.clone(), start.clone());
        let run_dir = run_dir.to_path_buf();
        // Connection k carries clients k, k + K, …; thread t serves connections t, t + T, ….
        let conns: Vec<Vec<usize>> = (t..connections)
            .step_by(threads_n)
            .map(|k| (k..names.clients).step_by(connections).collect())
            .collect();
        let thread = runtime_thread(format!("bench-{t}"), move || async move {
            let mut tasks = Vec::new();
            for clients in conns {
                let c = match joined(&run_dir, &names.ls).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                for i in clients {
                    tasks.push(tokio::spawn(client(
                        c.clone(),
                        names.clone(),
                        i,
                        mode,
                        ready_tx.clone(),
                        start.clone(),
                        duration,
                    )));
                }
            }
            drop(ready_tx);
            let mut all = Vec::new();
            for t in tasks {
                all.push(t.await.map_err(|e| format!("bench: client task: {e}"))??);
            }
            Ok(all)
        })?;
        threads.push(thread);
    }
    drop(ready_tx);
    // Every client through its untimed pass; a failure ends the bench at once (the
    // process exits, with the clients that wait for a start that does not come).
    let clients = names.clients;
    tokio::task::spawn_blocking(move || {
        for _ in 0..clients {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("bench: every client ended before the start".to_string()),
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("bench: waiting for the clients: {e}"))??;
    let t = Instant::now();
    start_tx.send_replace(true);
    let mut all = Samples::default();
    for thread in threads {
        for s in finished(thread).await? {
            all.pair.extend(s.pair);
            all.lock.extend(s.lock);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    all.pair.sort_unstable();
    all.lock.sort_unstable();
    let n = all.pair.len();
    println!(
        "clients {} connections {connections} mode {mode} pairs {n} secs {secs:.2} pairs/s {:.0} pair_p50_us {} pair_p99_us {} lock_p50_us {} lock_p99_us {}",
        names.clients,
        n as f64 / secs,
        percentile(&all.pair, 0.5),
        percentile(&all.pair, 0.99),
        percentile(&all.lock, 0.5),
        percentile(&all.lock, 0.99),
    );
    Ok(ExitCode::SUCCESS)
}

async fn echo(addr: &str) -> Result<ExitCode, String> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bench --echo {addr}: {e}"))?;
    println!("echo on {addr}");
    loop {
        let (s, _) = l
            .accept()
            .await
            .map_err(|e| format!("bench --echo: accept: {e}"))?;
        let _ = s.set_nodelay(true);
        tokio::spawn(echo_stream(s));
    }
}

/// Send back what comes, [`ECHO_BYTES`] at a time, until the peer goes.
async fn echo_stream<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut b = [0u8; ECHO_BYTES];
    while s.read_exact(&mut b).await.is_ok() {
        if s.write_all(&b).await.is_err() {
            break;
        }
    }
}

/// A thread running `work` on a single-threaded runtime of its own.
fn runtime_thread<T, F, Fut>(
    name: String,
    work: F,
) -> Result<std::thread::JoinHandle<Result<T, String>>, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("bench: tokio runtime: {e}"))?
                .block_on(work())
        })
        .map_err(|e| format!("bench: thread: {e}"))
}

/// What a [`runtime_thread`] returned, waited for off this runtime's thread.
async fn finished<T: Send + 'static>(
    thread: std::thread::JoinHandle<Result<T, String>>,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| format!("bench: joining a thread: {e}"))?
        .map_err(|_| "bench: a thread panicked".to_string())?
}

/// `bench --socket-ceiling`: what a daemon that answers each call on its client's own
/// unix socket can do at best on this machine. An echo server that does nothing else
/// (one single-threaded runtime, as dlm_controld) and N connections with one
/// [`ECHO_BYTES`] message in flight each, the clients placed as `bench` places them.
/// A lock+unlock pair is two such round trips, so half the rate bounds the pairs/s of
/// N clients with a connection each.
async fn ceiling(clients: usize, duration: Duration) -> Result<ExitCode, String> {
    let path =
        std::env::temp_dir().join(format!("hydra-bench-ceiling-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let err = |e: std::io::Error| format!("bench --socket-ceiling {}: {e}", path.display());
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    // Never joined: it serves until the process exits.
    runtime_thread::<(), _, _>("bench-echo".into(), move || async move {
        let l = tokio::net::UnixListener::from_std(listener).map_err(|e| e.to_string())?;
        loop {
            let (s, _) = l.accept().await.map_err(|e| e.to_string())?;
            tokio::spawn(echo_stream(s));
        }
    })?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads_n = clients.min(cores);
    let t0 = Instant::now();
    let mut threads = Vec::new();
    for t in 0..threads_n {
        let (path, mine) = (path.clone(), (t..clients).step_by(threads_n).count());
        threads.push(runtime_thread(format!("bench-{t}"), move || async move {
            let mut tasks = Vec::new();
            for _ in 0..mine {
                let mut s = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|e| format!("bench --socket-ceiling: connect: {e}"))?;
                tasks.push(tokio::spawn(async move {
                    let end = Instant::now() + duration;
                    let mut b = [7u8; ECHO_BYTES];
                    let mut n = 0u64;
                    while Instant::now() < end {
                        s.write_all(&b).await?;
                        s.read_exact(&mut b).await?;
                        n += 1;
                    }
                    Ok::<u64, std::io::Error>(n)
                }));
            }
            let mut n = 0;
            for t in tasks {
                n += t
                    .await
                    .map_err(|e| format!("bench: client task: {e}"))?
                    .map_err(|e| format!("bench --socket-ceiling: {e}"))?;
            }
            Ok(n)
        })?);
    }
    let mut total = 0;
    for t in threads {
        total += finished(t).await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    println!(
        "socket_ceiling clients {clients} round_trips {total} secs {secs:.2} round_trips/s {:.0}",
        total as f64 / secs
    );
    Ok(ExitCode::SUCCESS)
}

async fn rtt(addr: &str) -> Result<ExitCode, String> {
    let err = |e: std::io::Error| format!("bench --rtt {addr}: {e}");
    let mut s = TcpStream::connect(addr).await.map_err(err)?;
    s.set_nodelay(true).map_err(err)?;
    let mut b = [7u8; ECHO_BYTES];
    let mut t = Vec::with_capacity(RTT_SAMPLES);
    for i in 0..RTT_SAMPLES + 100 {
        let t0 = Instant::now();
        s.write_all(&b).await.map_err(err)?;
        s.read_exact(&mut b).await.map_err(err)?;
        // The first round trips warm up the path; they are not counted.
        if i >= 100 {
            t.push(micros(t0.elapsed()));
        }
    }
    t.sort_unstable();
    println!(
        "tcp_rtt samples {} p50_us {} p99_us {}",
        t.len(),
        percentile(&t, 0.5),
        percentile(&t, 0.99)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::super::parse_line;
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        let (p, _) = parse_line(a)?;
        Args::parse(&p, &p.positional[1..])
    }

    #[test]
    fn bench_arguments() {
        assert_eq!(
            args(&["bench", "-c", "16", "-d", "2", "-m", "pr", "--prefix", "x", "ls"]).unwrap(),
            Args::Run {
                names: Names {
                    ls: "ls".into(),
                    clients: 16,
                    per_client: 1,
                    prefix: "x".into()
                },
                connections: 16,
                mode: Mode::PR,
                duration: Duration::from_secs(2),
            }
        );
        assert!(matches!(
            args(&["bench", "-c", "16", "--connections", "2", "ls"]).unwrap(),
            Args::Run { connections: 2, .. }
        ));
        assert!(matches!(
            args(&["bench", "--hold", "-r", "4", "ls"]).unwrap(),
            Args::Hold(Names { per_client: 4, .. })
        ));
        assert_eq!(
            args(&["bench", "--rtt", "10.200.0.2:7"]).unwrap(),
            Args::Rtt("10.200.0.2:7".into())
        );
        assert_eq!(
            args(&["bench", "--socket-ceiling", "-c", "16", "-d", "2"]).unwrap(),
            Args::Ceiling {
                clients: 16,
                duration: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn bad_bench_arguments_say_what() {
        let e = args(&["bench", "-c", "0", "ls"]).unwrap_err();
        assert!(e.contains("--clients '0'"), "{e}");
        let e = args(&["bench", "-c", "4", "--connections", "5", "ls"]).unwrap_err();
        assert!(
            e.contains("--connections '5' must be a number from 1 to 4"),
            "{e}"
        );
        let e = args(&["bench", "--hold", "-d", "3", "ls"]).unwrap_err();
        assert!(e.contains("no -d"), "{e}");
        let long = "p".repeat(62);
        let e = args(&["bench", "--prefix", &long, "ls"]).unwrap_err();
        assert!(e.contains("--prefix too long"), "{e}");
        let e = args(&["bench"]).unwrap_err();
        assert_eq!(e, "bench: lockspace name needed");
        let e = args(&["bench", "--rtt", "a:1", "ls"]).unwrap_err();
        assert!(e.contains("takes no other"), "{e}");
        let e = args(&["bench", "--socket-ceiling", "-m", "pr"]).unwrap_err();
        assert_eq!(e, "bench: --socket-ceiling takes -c and -d only");
        let e = args(&["bench", "--socket-ceiling", "ls"]).unwrap_err();
        assert_eq!(e, "bench: --socket-ceiling takes -c and -d only");
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
