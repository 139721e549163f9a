//! `hydra dlm_controld [-f] [-D] [--config FILE] [--run-dir DIR]` — the lock manager
//! daemon (hydra_dlm::daemon). Without -f it detaches, and the parent exits 0 only once
//! the daemon is connected to corosync and its sockets are bound; a start that fails
//! says why and exits non-zero.
//!
//! Differences from dlm_controld's command line: `-f` means foreground here (as for
//! hydra's other daemons; dlm_controld spells it `--foreground` and uses `-f 0|1` for
//! enable_fencing, which hydra takes from dlm.conf only), and `--config` names dlm.conf
//! (dlm_controld always reads /etc/dlm/dlm.conf).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hydra_dlm::api::DEFAULT_RUN_DIR;
use hydra_dlm::config::{Config, CONF_FILE_PATH};
use hydra_dlm::daemon::{Daemon, Options};

use super::args::{parse, Spec};
use hydra_daemon::detach as daemonize;

const SPECS: &[Spec] = &[
    Spec {
        short: 'f',
        long: "foreground",
        value: false,
    },
    Spec {
        short: 'D',
        long: "debug",
        value: false,
    },
    Spec {
        short: ' ',
        long: "config",
        value: true,
    },
    Spec {
        short: ' ',
        long: "run-dir",
        value: true,
    },
    Spec {
        short: 'h',
        long: "help",
        value: false,
    },
];

const HELP: &str = "usage: hydra dlm_controld [-f|--foreground] [-D] [--config FILE] [--run-dir DIR]
  -f, --foreground  do not fork (also dlm.conf foreground=1)
  -D                debug logging to stderr; implies -f (also dlm.conf daemon_debug=1 for the level)
  --config FILE     dlm.conf to read (default /etc/dlm/dlm.conf; a missing default file means defaults)
  --run-dir DIR     pid file and client socket (default /run/dlm_controld)
The daemon needs corosync running on this node (CPG and votequorum).";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    foreground: bool,
    debug: bool,
    /// `None`: the default file, which may be missing.
    config: Option<PathBuf>,
    run_dir: PathBuf,
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let p = parse(args, SPECS)?;
    if p.has("help") {
        return Ok(None);
    }
    if let Some(x) = p.positional.first() {
        return Err(format!("unexpected argument '{x}'\n{HELP}"));
    }
    let debug = p.has("debug");
    let run_dir = match p.value("run-dir") {
        Some("") => return Err("--run-dir: empty path".into()),
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(DEFAULT_RUN_DIR),
    };
    let config = match p.value("config") {
        Some("") => return Err("--config: empty path".into()),
        Some(c) => Some(PathBuf::from(c)),
        None => None,
    };
    Ok(Some(Args {
        foreground: p.has("foreground") || debug,
        debug,
        config,
        run_dir,
    }))
}

/// dlm.conf: a missing default file is the defaults (as for dlm_controld), a missing
/// file named with --config is an error.
fn load_config(path: Option<&Path>) -> Result<(Config, PathBuf), String> {
    match path {
        None => Config::load(CONF_FILE_PATH)
            .map(|c| (c, PathBuf::from(CONF_FILE_PATH)))
            .map_err(|e| e.to_string()),
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("--config {}: {e}", p.display()))?;
            Config::parse_bytes(p, &bytes)
                .map(|c| (c, p.to_path_buf()))
                .map_err(|e| e.to_string())
        }
    }
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let Some(args) = parse_args(&args)? else {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    // A bad dlm.conf stops everything before the daemon exists.
    let (config, config_path) = load_config(args.config.as_deref())?;
    let foreground = args.foreground || config.options.foreground;
    let debug = args.debug || config.options.daemon_debug;
    if !foreground {
        daemonize::detach(&args.run_dir, "dlm_controld.log", "dlm_controld")?;
    }
    // stderr logging: RUST_LOG if set, else debug with -D (or daemon_debug=1), else info.
    super::init_logging(if debug { "debug" } else { "info" }, foreground);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let opts = Options {
        run_dir: args.run_dir,
        config,
        config_path,
    };
    let result = runtime.block_on(async {
        let daemon = match Daemon::start(opts).await {
            Ok(d) => d,
            Err(e) => {
                daemonize::report_ready(Err(e.to_string()));
                return Err(e);
            }
        };
        daemonize::report_ready(Ok(()));
        daemon.serve().await
    });
    // Connection tasks and agent runs end with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // In the background stderr is the log file, where tracing's line goes.
            if foreground {
                eprintln!("dlm_controld: {e}");
            } else {
                tracing::error!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Option<Args>, String> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_options() {
        assert_eq!(
            args(&[]).unwrap(),
            Some(Args {
                foreground: false,
                debug: false,
                config: None,
                run_dir: PathBuf::from("/run/dlm_controld"),
            })
        );
        assert_eq!(
            args(&["-f", "--config", "/tmp/d.conf", "--run-dir=/tmp/r"]).unwrap(),
            Some(Args {
                foreground: true,
                debug: false,
                config: Some(PathBuf::from("/tmp/d.conf")),
                run_dir: PathBuf::from("/tmp/r"),
            })
        );
        let d = args(&["-D"]).unwrap().unwrap();
        assert!(d.debug && d.foreground, "-D implies foreground");
        assert!(args(&["--foreground"]).unwrap().unwrap().foreground);
        assert_eq!(args(&["-h"]).unwrap(), None);
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(args(&["-x"]).unwrap_err(), "invalid option -- 'x'");
        assert_eq!(
            args(&["--config"]).unwrap_err(),
            "option '--config' requires an argument"
        );
        assert!(args(&["extra"])
            .unwrap_err()
            .starts_with("unexpected argument 'extra'"));
        assert_eq!(args(&["--run-dir="]).unwrap_err(), "--run-dir: empty path");
    }

    #[test]
    fn config_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.conf");
        let e = load_config(Some(&missing)).unwrap_err();
        assert!(
            e.starts_with(&format!("--config {}: ", missing.display())),
            "{e}"
        );
        let bad = dir.path().join("bad.conf");
        std::fs::write(&bad, "port=21064\nenable_fencing=yes\n").unwrap();
        let e = load_config(Some(&bad)).unwrap_err();
        assert!(
            e.starts_with(&format!("{}:2: enable_fencing", bad.display())),
            "{e}"
        );
        let good = dir.path().join("good.conf");
        std::fs::write(&good, "port=21100\n").unwrap();
        let (c, p) = load_config(Some(&good)).unwrap();
        assert_eq!((c.options.port, p), (21100, good));
    }
}
