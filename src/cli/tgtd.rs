//! `hydra tgtd [-f|--foreground] [--iscsi portal=IP:PORT[,portal=...][,nop_interval=S]
//! [,nop_count=N]] [-C|--control-port N] [--conf FILE] [-t|--nr_iothreads N]
//! [--run-dir DIR]` — tgtd's command line. Without -f it detaches, like tgtd, but only
//! after its portals are bound: a start that fails says why and exits non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hydra_target::daemon::{self, DaemonOpts};
use hydra_target::iscsi::conn::ConnOpts;

use super::args::{parse, Spec};

const SPECS: &[Spec] = &[
    Spec {
        short: 'f',
        long: "foreground",
        value: false,
    },
    Spec {
        short: ' ',
        long: "iscsi",
        value: true,
    },
    Spec {
        short: 'C',
        long: "control-port",
        value: true,
    },
    Spec {
        short: ' ',
        long: "conf",
        value: true,
    },
    Spec {
        short: 't',
        long: "nr_iothreads",
        value: true,
    },
    Spec {
        short: ' ',
        long: "run-dir",
        value: true,
    },
    Spec {
        short: ' ',
        long: "state-dir",
        value: true,
    },
    Spec {
        short: 'd',
        long: "debug",
        value: true,
    },
    Spec {
        short: 'h',
        long: "help",
        value: false,
    },
];

const HELP: &str = "usage: hydra tgtd [-f|--foreground] [--iscsi portal=IP:PORT[,portal=IP:PORT...][,nop_interval=SECS][,nop_count=N][,MaxQueueCmd=N]]
                  [-C|--control-port N] [--conf FILE] [-t|--nr_iothreads N] [--run-dir DIR]
                  [--state-dir DIR]   (persistent reservations with APTPL; default /var/lib/hydra-tgtd)
  default portal 0.0.0.0:3260 (and [::]:3260 when IPv6 is up), control port 0, run dir /run/hydra-tgtd";

fn parse_iscsi(v: &str, portals: &mut Vec<SocketAddr>, conn: &mut ConnOpts) -> Result<(), String> {
    for item in v.split(',').filter(|s| !s.is_empty()) {
        let (k, val) = item
            .split_once('=')
            .ok_or_else(|| format!("--iscsi: '{item}' is not key=value"))?;
        match k {
            "portal" => {
                let addr = if val.parse::<SocketAddr>().is_ok() {
                    val.parse().expect("checked")
                } else if let Ok(ip) = val.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>() {
                    SocketAddr::new(ip, 3260)
                } else {
                    return Err(format!("--iscsi portal={val}: not an IP:PORT address"));
                };
                portals.push(addr);
            }
            "nop_interval" => {
                conn.nop_interval = Duration::from_secs(val.parse().map_err(|_| format!("--iscsi nop_interval={val}: not a number of seconds"))?)
            }
            "nop_count" => conn.nop_count = val.parse().map_err(|_| format!("--iscsi nop_count={val}: not a number"))?,
            "MaxQueueCmd" => {
                let n: u32 = val.parse().map_err(|_| format!("--iscsi MaxQueueCmd={val}: not a number"))?;
                if !(1..=512).contains(&n) {
                    return Err(format!("--iscsi MaxQueueCmd={val}: must be 1..512"));
                }
                conn.queue_depth = n;
            }
            other => return Err(format!("--iscsi: unknown parameter '{other}' (portal, nop_interval, nop_count, MaxQueueCmd)")),
        }
    }
    Ok(())
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let p = parse(&args, SPECS)?;
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(x) = p.positional.first() {
        return Err(format!("unexpected argument '{x}'\n{HELP}"));
    }
    let mut portals = Vec::new();
    let mut conn = ConnOpts::default();
    for v in p.values("iscsi") {
        parse_iscsi(v, &mut portals, &mut conn)?;
    }
    if portals.is_empty() {
        portals.push("0.0.0.0:3260".parse().expect("literal"));
    }
    let control_port = match p.value("control-port") {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--control-port {v}: not a port number"))?,
        None => 0,
    };
    let threads: usize = match p.value("nr_iothreads") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("--nr_iothreads {v}: must be a number >= 1"))?,
        None => 16, // tgt's default number of backing-store threads per LUN
    };
    let opts = DaemonOpts {
        portals,
        control_port,
        conf: p.value("conf").map(PathBuf::from),
        run_dir: p
            .value("run-dir")
            .map(PathBuf::from)
            .unwrap_or_else(hydra_target::admin::default_run_dir),
        state_dir: p
            .value("state-dir")
            .map(PathBuf::from)
            .unwrap_or_else(hydra_target::admin::default_state_dir),
        conn,
        conn_threads: 0,
        io_threads: threads,
    };
    let foreground = p.has("foreground");
    if !foreground {
        hydra_daemon::detach::detach(&opts.run_dir, &format!("tgtd.{control_port}.log"), "tgtd")?;
    }
    super::init_logging("info", foreground);
    super::keep_io_buffers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let bound = daemon::bind(opts).await.map_err(|e| e.to_string());
        hydra_daemon::detach::report_ready(bound.as_ref().map(|_| ()).map_err(|e| e.clone()));
        bound?.serve().await.map_err(|e| e.to_string())
    })?;
    Ok(ExitCode::SUCCESS)
}
