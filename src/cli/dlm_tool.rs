//! `hydra dlm_tool COMMAND [OPTIONS] [NAME]` — dlm_tool's commands against this node's
//! `hydra dlm_controld` (its client socket in the run directory):
//!
//! - `ls [-n] [NAME]`, `status [-v]`, `dump`, `dump_config`, `lockdump [-M] NAME`,
//!   `lockdebug NAME`: the daemon's reports, in dlm_tool's layouts (the daemon renders
//!   them; this prints them);
//! - `join NAME`, `leave NAME`: create or release a lockspace on this node (it stays
//!   joined after dlm_tool exits, as a kernel lockspace does);
//! - `fence_ack NODEID`: record that node as fenced by hand (recovery waiting for its
//!   fencing goes on — only safe when the node is really down);
//! - `lock [-m MODE] [-n] [-t SECS] NAME RESOURCE -- COMMAND...`: hydra's addition, run
//!   COMMAND holding the lock, flock(1) style (lock.rs);
//! - `bench ...`: hydra's lock manager benchmark (bench.rs).
//!
//! Every command takes `--run-dir DIR` (default /run/dlm_controld) to reach a daemon
//! started with the same option. Errors name the errno and what the daemon said.

mod bench;
mod lock;

use std::path::PathBuf;
use std::process::ExitCode;

use hydra_dlm::api::{Query, DEFAULT_RUN_DIR};
use hydra_dlm::client::{describe, Client};

use super::args::{parse, Parsed, Spec};

const fn opt(short: char, long: &'static str, value: bool) -> Spec {
    Spec { short, long, value }
}

/// Options every command shares; each command checks it got only its own.
const SPECS: &[Spec] = &[
    opt(' ', "run-dir", true),
    opt('h', "help", false),
    opt('n', "nodes", false),
    opt('v', "verbose", false),
    opt('M', "mstcpy", false),
    opt('m', "mode", true),
    opt('t', "timeout", true),
    opt('c', "clients", true),
    opt(' ', "connections", true),
    opt('d', "duration", true),
    opt('r', "resources", true),
    opt(' ', "prefix", true),
    opt(' ', "hold", false),
    opt(' ', "rtt", true),
    opt(' ', "echo", true),
    opt(' ', "socket-ceiling", false),
];

const HELP: &str = "usage: hydra dlm_tool [--run-dir DIR] COMMAND [OPTIONS] [NAME]
Commands (dlm_tool's):
  ls [-n] [NAME]          lockspaces, their members and recovery state (-n: per node)
  status [-v]             the daemon, its nodes and their fencing state
  dump                    the daemon's debug log
  dump_config             the settings in effect (dlm.conf and defaults)
  lockdump [-M] NAME      the locks of lockspace NAME on this node (-M: master copies too)
  lockdebug NAME          the resources of NAME with their queues
  join NAME               join (create) lockspace NAME on this node
  leave NAME              leave lockspace NAME (refused while this node holds locks in it)
  fence_ack NODEID        record NODEID as fenced by hand: only when it is really down
hydra's:
  lock [-m MODE] [-n] [-t SECS] NAME RESOURCE -- COMMAND...
                          run COMMAND holding RESOURCE in lockspace NAME (mode EX by
                          default); -n: fail at once if not granted; -t: give up after
                          SECS; exits with COMMAND's status, 1 if the lock was not had
  bench [-c N] [--connections K] [-d SECS] [-r N] [-m MODE] [--prefix P] NAME
                          lock+unlock pairs per second and latency (see the README);
                          N clients over K connections (default: one each)
  bench --hold [-c N] [-r N] [--prefix P] NAME
                          hold NL on the names a bench would use, until killed (makes
                          this node their master)
  bench --echo ADDR:PORT | --rtt ADDR:PORT
                          TCP round-trip time between two hosts, for scale
  bench --socket-ceiling [-c N] [-d SECS]
                          round trips/s of an echo server over N unix sockets: the
                          best a daemon answering each call on its socket can do
Options:
  --run-dir DIR           the daemon's run directory (default /run/dlm_controld)";

/// Options and names, then what follows `--` (`lock`'s command, untouched by option
/// parsing).
fn split_command(args: &[String]) -> (&[String], Option<Vec<String>>) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], Some(args[i + 1..].to_vec())),
        None => (args, None),
    }
}

/// A runtime for one command: one conversation with the daemon (the benchmark starts
/// threads of its own for its clients, bench.rs).
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let (ours, command) = split_command(&args);
    let p = parse(ours, SPECS)?;
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some((cmd, rest)) = p.positional.split_first() else {
        return Err(format!("no command\n{HELP}"));
    };
    let run_dir = match p.value("run-dir") {
        Some("") => return Err("--run-dir: empty path".into()),
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(DEFAULT_RUN_DIR),
    };
    if command.is_some() && cmd != "lock" {
        return Err(format!("{cmd}: unexpected '--' (only lock runs a command)"));
    }
    match cmd.as_str() {
        "lock" => {
            allow(&p, cmd, &["run-dir", "mode", "nodes", "timeout"])?;
            let args = lock::Args::parse(&p, rest, command)?;
            runtime()?.block_on(lock::run(&run_dir, args))
        }
        "bench" => {
            let allowed = [
                "run-dir",
                "mode",
                "clients",
                "connections",
                "duration",
                "resources",
                "prefix",
                "hold",
                "rtt",
                "echo",
                "socket-ceiling",
            ];
            allow(&p, cmd, &allowed)?;
            let args = bench::Args::parse(&p, rest)?;
            runtime()?.block_on(bench::run(&run_dir, args))
        }
        _ => {
            let request = admin(&p, cmd, rest)?;
            runtime()?.block_on(run_admin(&run_dir, request))
        }
    }
}

/// One of dlm_tool's own commands, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Admin {
    Query(Query),
    Join(String),
    Leave(String),
    FenceAck(u32),
}

/// Refuse options that `cmd` does not take.
fn allow(p: &Parsed, cmd: &str, ok: &[&str]) -> Result<(), String> {
    match p.opts.iter().find(|(k, _)| !ok.contains(k)) {
        Some((k, _)) => Err(format!("{cmd}: option --{k} does not apply")),
        None => Ok(()),
    }
}

/// Exactly one name after the command.
fn one_name<'a>(cmd: &str, rest: &'a [String], what: &str) -> Result<&'a str, String> {
    match rest {
        [n] if !n.is_empty() => Ok(n),
        [] => Err(format!("{cmd}: {what} needed")),
        _ => Err(format!("{cmd}: one {what} only, got {}", rest.join(" "))),
    }
}

fn admin(p: &Parsed, cmd: &str, rest: &[String]) -> Result<Admin, String> {
    let name = |what| one_name(cmd, rest, what).map(str::to_string);
    let none = || match rest.first() {
        Some(x) => Err(format!("{cmd}: unexpected argument '{x}'")),
        None => Ok(()),
    };
    Ok(match cmd {
        "ls" => {
            allow(p, cmd, &["run-dir", "nodes"])?;
            if rest.len() > 1 {
                return Err(format!(
                    "ls: one lockspace name only, got {}",
                    rest.join(" ")
                ));
            }
            Admin::Query(Query::Ls {
                name: rest.first().cloned(),
                nodes: p.has("nodes"),
            })
        }
        "status" => {
            allow(p, cmd, &["run-dir", "verbose"])?;
            none()?;
            Admin::Query(Query::Status {
                verbose: p.has("verbose"),
            })
        }
        "dump" | "dump_config" => {
            allow(p, cmd, &["run-dir"])?;
            none()?;
            Admin::Query(if cmd == "dump" {
                Query::Dump
            } else {
                Query::DumpConfig
            })
        }
        "lockdump" => {
            allow(p, cmd, &["run-dir", "mstcpy"])?;
            Admin::Query(Query::Lockdump {
                ls: name("lockspace name")?,
                master_copies: p.has("mstcpy"),
            })
        }
        "lockdebug" => {
            allow(p, cmd, &["run-dir"])?;
            Admin::Query(Query::Lockdebug {
                ls: name("lockspace name")?,
            })
        }
        "join" | "leave" => {
            allow(p, cmd, &["run-dir"])?;
            let ls = name("lockspace name")?;
            if cmd == "join" {
                Admin::Join(ls)
            } else {
                Admin::Leave(ls)
            }
        }
        "fence_ack" => {
            allow(p, cmd, &["run-dir"])?;
            let n = name("node id")?;
            match n.parse::<u32>() {
                Ok(id) if id > 0 => Admin::FenceAck(id),
                _ => return Err(format!("fence_ack: '{n}' is not a node id")),
            }
        }
        _ => return Err(format!("unknown command '{cmd}'\n{HELP}")),
    })
}

/// Connect to the daemon, saying which socket could not be reached.
async fn connect(run_dir: &std::path::Path) -> Result<Client, String> {
    Client::connect(run_dir).await.map_err(|e| {
        format!(
            "{e} (is hydra dlm_controld running with --run-dir {}?)",
            run_dir.display()
        )
    })
}

async fn run_admin(run_dir: &std::path::Path, a: Admin) -> Result<ExitCode, String> {
    let c = connect(run_dir).await?;
    match a {
        Admin::Query(q) => {
            let text = c.query(q).await.map_err(|e| describe(&e))?;
            print!("{text}");
        }
        Admin::Join(ls) => {
            println!("Joining lockspace \"{ls}\"");
            c.join(&ls)
                .await
                .map_err(|e| format!("join \"{ls}\": {}", describe(&e)))?;
            println!("done");
        }
        Admin::Leave(ls) => {
            println!("Leaving lockspace \"{ls}\"");
            c.leave(&ls, false)
                .await
                .map_err(|e| format!("leave \"{ls}\": {}", describe(&e)))?;
            println!("done");
        }
        Admin::FenceAck(n) => c
            .fence_ack(n)
            .await
            .map_err(|e| format!("fence_ack {n}: {}", describe(&e)))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A command line as `main` parses it: the options and names, and `--`'s command.
#[cfg(test)]
fn parse_line(line: &[&str]) -> Result<(Parsed, Option<Vec<String>>), String> {
    let args: Vec<String> = line.iter().map(|s| s.to_string()).collect();
    let (ours, command) = split_command(&args);
    Ok((parse(ours, SPECS)?, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin_of(a: &[&str]) -> Result<Admin, String> {
        let (p, _) = parse_line(a)?;
        let (cmd, rest) = p.positional.split_first().unwrap();
        admin(&p, cmd, rest)
    }

    #[test]
    fn commands_parse_as_dlm_tool_spells_them() {
        assert_eq!(
            admin_of(&["ls", "-n"]).unwrap(),
            Admin::Query(Query::Ls {
                name: None,
                nodes: true
            })
        );
        assert_eq!(
            admin_of(&["lockdump", "-M", "gfs"]).unwrap(),
            Admin::Query(Query::Lockdump {
                ls: "gfs".into(),
                master_copies: true
            })
        );
        assert_eq!(
            admin_of(&["--run-dir", "/tmp/r", "fence_ack", "3"]).unwrap(),
            Admin::FenceAck(3)
        );
        assert_eq!(admin_of(&["join", "a"]).unwrap(), Admin::Join("a".into()));
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let e = admin_of(&["fence_ack", "node3"]).unwrap_err();
        assert!(e.contains("'node3' is not a node id"), "{e}");
        let e = admin_of(&["fence_ack", "0"]).unwrap_err();
        assert!(e.contains("not a node id"), "{e}");
        let e = admin_of(&["lockdump"]).unwrap_err();
        assert_eq!(e, "lockdump: lockspace name needed");
        let e = admin_of(&["join", "a", "b"]).unwrap_err();
        assert!(e.contains("one lockspace name only"), "{e}");
        let e = admin_of(&["status", "-M"]).unwrap_err();
        assert_eq!(e, "status: option --mstcpy does not apply");
        let e = admin_of(&["frobnicate"]).unwrap_err();
        assert!(e.starts_with("unknown command 'frobnicate'"), "{e}");
    }
}
