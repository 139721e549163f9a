//! `hydra fence_scsi` — fence-agents' `fence_scsi` (dlm.md §3.1, §3.2): options as
//! flags, or as `name=value` lines on stdin when there are no arguments (how
//! dlm_controld and pacemaker run agents). Exit 0 success, 1 failure, 2 "off" for
//! status. `hydra fence_scsi_check` (argv0 `fence_scsi_check`) is the watchdog check:
//! this node's recorded key on its recorded devices, exit 2 when it is gone.
//! The agent itself is `hydra_cluster::fence`.

use std::io::{Read, Write};
use std::process::ExitCode;

use hydra_cluster::fence::{self, store, Action, Options, Outcome};

fn emit(opts: Option<&Options>, out: &Outcome) {
    if let Some(path) = opts.and_then(|o| o.logfile.as_ref()) {
        // fence_scsi's `--logfile`: stdout and stderr go to the file.
        match std::fs::File::create(path) {
            Ok(mut f) => {
                for l in out.stdout.iter().chain(&out.stderr) {
                    let _ = writeln!(f, "{l}");
                }
                return;
            }
            Err(e) => eprintln!("Failed: Unable to create file {}: {e}", path.display()),
        }
    }
    for l in &out.stdout {
        println!("{l}");
    }
    for l in &out.stderr {
        eprintln!("{l}");
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    if args.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("Failed: reading options from stdin: {e}"))?;
        fence::parse_stdin(&text).map_err(|e| e.to_string())
    } else {
        fence::parse_args(args).map_err(|e| e.to_string())
    }
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let out = super::block_on(fence::run(&opts));
    emit(Some(&opts), &out);
    Ok(ExitCode::from(out.code as u8))
}

/// fence_scsi_check: 0 while this node's key is registered (or nothing is set up yet:
/// no key or device file), 2 when it is gone or cannot be read; `repair N` exits N.
pub fn check(args: Vec<String>) -> Result<ExitCode, String> {
    if args.first().map(String::as_str) == Some("repair") {
        let n = args.get(1).and_then(|n| n.parse::<u8>().ok()).unwrap_or(0);
        return Ok(ExitCode::from(n));
    }
    let mut opts = match fence::parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    opts.action = Action::Status;
    opts.key = None;
    opts.plug = None;
    if store::read_key(&opts.store_path).is_err() {
        eprintln!("Key not found");
        return Ok(ExitCode::SUCCESS);
    }
    if store::read_devices(&opts.store_path).map_or(true, |d| d.is_empty()) {
        eprintln!("No devices found");
        return Ok(ExitCode::SUCCESS);
    }
    let out = super::block_on(fence::run(&opts));
    emit(Some(&opts), &out);
    Ok(ExitCode::from(if out.code == 0 { 0 } else { 2 }))
}
