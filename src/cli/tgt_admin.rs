//! `hydra tgt-admin` — tgt-admin's flags over targets.conf: -e/--execute, -c/--conf,
//! -s/--show, --update/--delete/--offline/--ready <tid|ALL>, -f/--force, -C, -p/--pretend.
//! The daemon applies a file all-or-nothing (see `hydra_target::admin`).

use std::path::PathBuf;
use std::process::ExitCode;

use hydra_target::control::{self, ApplyMode, Request};

use super::args::{parse, Spec};

const SPECS: &[Spec] = &[
    Spec {
        short: 'e',
        long: "execute",
        value: false,
    },
    Spec {
        short: 'c',
        long: "conf",
        value: true,
    },
    Spec {
        short: 's',
        long: "show",
        value: false,
    },
    Spec {
        short: ' ',
        long: "update",
        value: true,
    },
    Spec {
        short: ' ',
        long: "delete",
        value: true,
    },
    Spec {
        short: ' ',
        long: "offline",
        value: true,
    },
    Spec {
        short: ' ',
        long: "ready",
        value: true,
    },
    Spec {
        short: 'f',
        long: "force",
        value: false,
    },
    Spec {
        short: 'C',
        long: "control-port",
        value: true,
    },
    Spec {
        short: 'p',
        long: "pretend",
        value: false,
    },
    Spec {
        short: 'v',
        long: "verbose",
        value: false,
    },
    Spec {
        short: ' ',
        long: "ignore-errors",
        value: false,
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

const HELP: &str =
    "usage: hydra tgt-admin [-C N] [-c FILE] (-e | -s | --update <tid|ALL> | --delete <tid|ALL>
                       | --offline <tid|ALL> | --ready <tid|ALL>) [-f|--force] [-p|--pretend]
  -c FILE defaults to /etc/tgt/targets.conf; a file with any error is not applied at all";

fn scope(v: &str, opt: &str) -> Result<Option<u32>, String> {
    if v.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let v = v.strip_prefix("tid=").unwrap_or(v);
    v.parse()
        .map(Some)
        .map_err(|_| format!("--{opt} {v}: expected a tid or ALL"))
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let p = parse(&args, SPECS)?;
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let conf = p.value("conf").unwrap_or("/etc/tgt/targets.conf");
    let path = std::path::absolute(conf).map_err(|e| format!("{conf}: {e}"))?;
    let force = p.has("force");
    let req = if p.has("show") {
        Request::TargetShow
    } else {
        let mode = if p.has("execute") {
            ApplyMode::Execute
        } else if let Some(v) = p.value("update") {
            ApplyMode::Update {
                tid: scope(v, "update")?,
                force,
            }
        } else if let Some(v) = p.value("delete") {
            ApplyMode::Delete {
                tid: scope(v, "delete")?,
                force,
            }
        } else if let Some(v) = p.value("offline") {
            ApplyMode::Offline {
                tid: scope(v, "offline")?,
            }
        } else if let Some(v) = p.value("ready") {
            ApplyMode::Ready {
                tid: scope(v, "ready")?,
            }
        } else {
            return Err(format!("nothing to do\n{HELP}"));
        };
        Request::ApplyConfig {
            path,
            mode,
            pretend: p.has("pretend"),
        }
    };
    let port: u16 = match p.value("control-port") {
        Some(v) => v
            .parse()
            .map_err(|_| format!("-C {v}: not a port number"))?,
        None => 0,
    };
    let run_dir = p
        .value("run-dir")
        .map(PathBuf::from)
        .unwrap_or_else(hydra_target::admin::default_run_dir);
    let resp = super::block_on(control::call(&run_dir, port, req)).map_err(|e| e.to_string())?;
    if resp.ok {
        print!("{}", resp.text);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("tgt-admin: {}", resp.text);
        Ok(ExitCode::from(1))
    }
}
