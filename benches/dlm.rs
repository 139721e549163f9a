//! The lock manager benchmark (issue 5), run by scripts/bench-dlm.sh: a benchmark, not a
//! test — it prints figures and ratios, and fails only when something does not work.
//!
//! Three namespace hosts (tests/common/cluster.rs), each with its own corosync and
//! `hydra dlm_controld`. In one run it measures:
//! 1. the TCP round trip between host 1 and host 2 (`dlm_tool bench --echo/--rtt`), the
//!    scale for everything else;
//! 2. lock+unlock pairs with the master on host 1 itself, 1 and 16 clients, the 16
//!    with a connection each and sharing one (`dlm_tool bench` on host 1, SHAPES), and
//!    the ceiling of the 16-connection shape: an echo server on 16 unix sockets
//!    (`bench --socket-ceiling`; a pair is two of its round trips);
//! 3. the same with the master on host 2 (host 2 holds NL on the names first,
//!    `bench --hold`), so every request and unlock crosses the network;
//! 4. recovery: host 1 holds EX, host 2 waits for it; host 1's link is cut; the time to
//!    host 2's grant, split into corosync detection (cut → the daemon's confchg without
//!    node 1), fencing (→ `fence result 1 success`; the test agent kills host 1's daemon),
//!    DLM recovery (→ `dlm_recover … done`) and the grant itself. The daemon's debug-log
//!    stamps are put on this process's clock by a calibration join just before the cut.
//!
//! Besides its readable lines, a run prints each figure as `figure <key> <value>`;
//! scripts/bench-dlm.sh runs it several times and prints each figure's median and
//! spread from those lines.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::dlm::DlmDaemon;
use common::{hydra, run, text};
use hydra_dlm::api::Query;
use hydra_dlm::client::Client;
use hydra_dlm::flags::{Flags, Status};
use hydra_dlm::mode::Mode;

const LS: &str = "bench";
/// (clients, connections) of each lock measurement: one client; 16 clients with a
/// connection each, as 16 processes; 16 clients sharing one connection, as the threads
/// of one process share libdlm's lockspace device.
const SHAPES: [(&str, &str); 3] = [("1", "1"), ("16", "16"), ("16", "1")];
const LIMIT: Duration = Duration::from_secs(120);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this without it,
    // as a smoke run (short phases) that keeps the benchmark working.
    let bench = std::env::args().any(|a| a == "--bench");
    let secs: f64 = match std::env::var("HYDRA_BENCH_SECS") {
        Ok(s) => s.parse().expect("HYDRA_BENCH_SECS: seconds"),
        Err(_) if bench => 5.0,
        Err(_) => 0.2,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = Cluster::start(3);
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("dlm.conf");
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fence_test");
    let pid1 = cluster.dir(1).join("run/dlm_controld.pid");
    std::fs::write(
        &conf,
        format!(
            "device t {}\nconnect t node=1 pidfile={}\nconnect t node=2\nconnect t node=3\n",
            agent.display(),
            pid1.display()
        ),
    )
    .unwrap();
    let daemons: Vec<DlmDaemon> = (1..=3)
        .map(|i| DlmDaemon::start(&cluster, i, &conf))
        .collect();
    let run1 = daemons[0].run_dir().to_path_buf();
    let run2 = daemons[1].run_dir().to_path_buf();
    for d in &daemons {
        tool_ok(d.run_dir(), &["join", LS]);
    }

    // 1. TCP round trip host 1 → host 2.
    let echo_addr = format!("{}:7777", cluster.addr(2));
    let mut echo = Background::start(
        cluster
            .command(2, hydra())
            .args(["dlm_tool", "bench", "--echo", &echo_addr]),
        "echo on",
    );
    let rtt_line = String::from_utf8_lossy(
        &run(
            cluster
                .command(1, hydra())
                .args(["dlm_tool", "bench", "--rtt", &echo_addr]),
            LIMIT,
        )
        .stdout,
    )
    .trim()
    .to_string();
    echo.stop();
    let rtt = field(&rtt_line, "p50_us");
    println!("{rtt_line}");
    figure("tcp_rtt_p50_us", rtt);

    // 2. Master local.
    let d = format!("{secs}");
    let bench = |c: &str, k: &str, prefix: &str| {
        tool_ok(
            &run1,
            &[
                "bench",
                "-c",
                c,
                "--connections",
                k,
                "-d",
                &d,
                "--prefix",
                prefix,
                LS,
            ],
        )
    };
    let mut table = Vec::new();
    for (c, k) in SHAPES {
        let line = bench(c, k, &format!("local{c}-"));
        println!("master local:  {}", line.trim());
        table.push(("local", c, k, line));
    }
    // The ceiling of the 16-connection shape: the same sockets with nothing but echo.
    let line = tool_ok(&run1, &["bench", "--socket-ceiling", "-c", "16", "-d", &d]);
    println!("{}", line.trim());
    let round_trips = field(&line, "round_trips/s");
    figure("socket16_round_trips_per_s", round_trips);
    figure("socket16_ceiling_pairs_per_s", round_trips / 2.0);
    // 3. Master on host 2: it takes NL on the names first.
    for (c, k) in SHAPES {
        let prefix = format!("remote{c}-");
        let mut holder = Background::start(
            Command::new(hydra())
                .arg("dlm_tool")
                .arg("--run-dir")
                .arg(&run2)
                .args(["bench", "--hold", "-c", c, "--prefix", &prefix, LS]),
            "holding",
        );
        let line = bench(c, k, &prefix);
        holder.stop();
        println!("master remote: {}", line.trim());
        table.push(("remote", c, k, line));
    }
    println!();
    println!("tcp_rtt p50 {rtt} us (host 1 -> host 2)");
    for (master, c, k, line) in &table {
        let p50 = field(line, "pair_p50_us");
        let lock = field(line, "lock_p50_us");
        let rate = field(line, "pairs/s");
        println!(
            "master {master:6} clients {c:>2} connections {k:>2}: {rate:>7.0} pairs/s, pair p50 {p50} us = {:.2} RTT, lock p50 {lock} us = {:.2} RTT",
            p50 / rtt,
            lock / rtt,
        );
        let key = if c == k {
            format!("{master}{c}")
        } else {
            format!("{master}{c}on{k}")
        };
        figure(&format!("{key}_pairs_per_s"), rate);
        figure(&format!("{key}_pair_p50_us"), p50);
        figure(&format!("{key}_lock_p50_us"), lock);
        figure(&format!("{key}_lock_p50_rtt"), lock / rtt);
    }

    // 4. Recovery after node loss.
    let (c1, c2) = rt.block_on(async {
        (
            Client::connect(&run1).await.unwrap(),
            Client::connect(&run2).await.unwrap(),
        )
    });
    let (held, first) = rt
        .block_on(c1.lock_wait(LS, b"rec", Mode::EX, Flags(0), None, None))
        .unwrap();
    assert_eq!(first.status, Status::Granted);
    let mut waiter = rt
        .block_on(c2.lock(LS, b"rec", Mode::EX, Flags(0), None, None))
        .unwrap();
    // Calibration: the daemon logs `cpg_join dlm:ls:<name>` as it takes the join.
    let before = Instant::now();
    rt.block_on(c2.join("bench-clock")).unwrap();
    let dump = rt.block_on(c2.query(Query::Dump)).unwrap();
    let joined_at = stamp_of(&dump, "cpg_join dlm:ls:bench-clock").expect("calibration line");
    // daemon stamp s ↔ this process's `before + (s - joined_at)`, within the socket's
    // latency.
    let cut = Instant::now();
    cluster.cut(1);
    let done = rt
        .block_on(async { tokio::time::timeout(LIMIT, waiter.completion()).await })
        .expect("host 2 granted within the limit")
        .unwrap();
    let granted = cut.elapsed();
    assert_eq!(done.status, Status::Granted);
    held.detach(); // its daemon is gone: nothing to release
    let dump = rt.block_on(c2.query(Query::Dump)).unwrap();
    let since_cut = |s: f64| (before + Duration::from_secs_f64(s - joined_at)).duration_since(cut);
    let after = |needle: &str| {
        stamp_after(&dump, joined_at, needle)
            .map(since_cut)
            .unwrap_or_else(|| panic!("no '{needle}' in host 2's dump:\n{dump}"))
    };
    let seen = after("left [1 nodedown]");
    let fenced = after("fence result 1 success");
    let recovered = after(&format!("{LS}: dlm_recover generation"));
    println!();
    println!(
        "recovery: node 1 cut -> host 2 granted in {} ms: corosync detection {} ms, fencing {} ms, DLM recovery {} ms, grant {} ms",
        granted.as_millis(),
        seen.as_millis(),
        (fenced - seen).as_millis(),
        (recovered.saturating_sub(fenced)).as_millis(),
        granted.saturating_sub(recovered).as_millis(),
    );
    figure("recovery_ms", ms(granted));
    figure("recovery_detection_ms", ms(seen));
    figure("recovery_fencing_ms", ms(fenced.saturating_sub(seen)));
    figure("recovery_dlm_ms", ms(recovered.saturating_sub(fenced)));
    figure("recovery_grant_ms", ms(granted.saturating_sub(recovered)));
    drop(daemons);
}

/// One figure for scripts/bench-dlm.sh, which gathers them over several runs.
fn figure(key: &str, value: f64) {
    println!("figure {key} {value:.2}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run dlm_tool against the daemon in `run_dir`; its stdout. Any failure ends the run.
fn tool_ok(run_dir: &Path, args: &[&str]) -> String {
    let out = run(
        Command::new(hydra())
            .arg("dlm_tool")
            .arg("--run-dir")
            .arg(run_dir)
            .args(args),
        LIMIT,
    );
    assert!(out.status.success(), "dlm_tool {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `name` in a `name value name value` line.
fn field(line: &str, name: &str) -> f64 {
    let mut w = line.split_whitespace();
    while let Some(x) = w.next() {
        if x == name {
            if let Some(v) = w.next().and_then(|v| v.parse().ok()) {
                return v;
            }
        }
    }
    panic!("no {name} in '{line}'")
}

fn parse_stamp(line: &str) -> Option<(f64, &str)> {
    let (s, rest) = line.split_once(' ')?;
    Some((s.parse().ok()?, rest))
}

fn stamp_of(dump: &str, needle: &str) -> Option<f64> {
    dump.lines()
        .filter_map(parse_stamp)
        .find(|(_, l)| l.contains(needle))
        .map(|(s, _)| s)
}

/// The first line at or after `from` that holds `needle`.
fn stamp_after(dump: &str, from: f64, needle: &str) -> Option<f64> {
    dump.lines()
        .filter_map(parse_stamp)
        .find(|(s, l)| *s >= from && l.contains(needle))
        .map(|(s, _)| s)
}

/// A helper process that prints `ready` on stdout once it is set up; killed on drop.
struct Background {
    child: Child,
}

impl Background {
    fn start(cmd: &mut Command, ready: &str) -> Background {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        assert!(line.starts_with(ready), "expected '{ready}', got '{line}'");
        Background { child }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}
