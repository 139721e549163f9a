//! `hydra multipath` — multipath-tools' `multipath` (multipath.8): list maps (`-ll`,
//! `-l`), flush them (`-f MAP`, `-F`), reload them (`-r`), print the effective
//! configuration (`-t`, without the daemon). hydra's node daemon (`hydra iscsid`) builds
//! the maps by itself as sessions log in, so the listing and flushing ask it over its
//! multipathd socket (`<run dir>/multipathd.sock`; run directory `--run-dir`,
//! $HYDRA_ISCSID_RUN_DIR, default /run/hydra-iscsid). A bare `multipath` asks the node
//! to re-evaluate its paths (as `multipathd reconfigure`).
//!
//! Exit status as multipath's: 0, or 1 on any failure (`RTVL_FAIL`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hydra_multipath::config::{self, Config};
use hydra_multipath::control::{Multipathd, Request, Response};
use hydra_multipath::show;

const HELP: &str = "usage: hydra multipath [-v level] [-l|-ll] [-f map] [-F] [-r] [-t] [map]
       hydra multipath -a|-w device
       hydra multipath -W

  -l        show the maps, without running the path checkers
  -ll       show the maps with the checkers' and prioritizers' view
  -f map    flush a map that is not in use
  -F        flush every map that is not in use
  -r        reload the maps (re-read partitions, re-evaluate paths)
  -t        print the effective configuration (built-in defaults, multipath.conf,
            conf.d), without the daemon
  -a dev    add the device's WWID to the wwids file (with find_multipaths strict,
            the default, only listed WWIDs become maps: then run multipath)
  -w dev    remove the device's WWID from the wwids file
  -W        reset the wwids file to the WWIDs of the current maps
            (dev: a path s1l0 or H:C:T:L, a map or alias, or a WWID)
  -v level  0 nothing, 1 map names, 2 topology (default), 3 more
  --run-dir D      the node daemon's run directory ($HYDRA_ISCSID_RUN_DIR,
                   default /run/hydra-iscsid)
  --config F       multipath.conf for -t (default /etc/multipath.conf)
  --config-dir D   drop-ins for -t (default /etc/multipath/conf.d)";

/// What one invocation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// `-l` (false) / `-ll` (true), optionally of one map.
    List {
        checkers: bool,
        map: Option<String>,
    },
    /// `-f MAP` (Some) / `-F` (None).
    Flush(Option<String>),
    /// `-r`, or no action at all.
    Reload,
    /// `-t`.
    PrintConfig,
    /// `-a DEV` (true) / `-w DEV` (false); the device is the positional argument.
    EditWwid {
        add: bool,
        dev: Option<String>,
    },
    /// `-W`.
    ResetWwids,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Opts {
    pub action: Action,
    pub verbosity: u32,
    pub run_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
}

/// The value of an option given as `-xVALUE`, `-x VALUE`, `--long=VALUE` or `--long
/// VALUE`.
fn value(
    args: &[String],
    i: &mut usize,
    inline: Option<&str>,
    name: &str,
) -> Result<String, String> {
    if let Some(v) = inline.filter(|v| !v.is_empty()) {
        return Ok(v.to_string());
    }
    *i += 1;
    args.get(*i)
        .cloned()
        .ok_or_else(|| format!("option '{name}' requires an argument"))
}

pub(super) fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut action: Option<Action> = None;
    let set = |a: Action, action: &mut Option<Action>| -> Result<(), String> {
        match action {
            Some(old) if *old != a => Err(format!(
                "conflicting actions: {} and {}",
                name(old),
                name(&a)
            )),
            _ => {
                *action = Some(a);
                Ok(())
            }
        }
    };
    let mut o = Opts {
        action: Action::Reload,
        verbosity: 2,
        run_dir: None,
        config: None,
        config_dir: None,
    };
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (a, None),
        };
        match name {
            "-h" | "--help" => set(Action::Help, &mut action)?,
            "-l" => set(
                Action::List {
                    checkers: false,
                    map: None,
                },
                &mut action,
            )?,
            "-ll" => set(
                Action::List {
                    checkers: true,
                    map: None,
                },
                &mut action,
            )?,
            "-F" => set(Action::Flush(None), &mut action)?,
            "-r" => set(Action::Reload, &mut action)?,
            "-t" => set(Action::PrintConfig, &mut action)?,
            "-a" | "-w" => set(
                Action::EditWwid {
                    add: name == "-a",
                    dev: None,
                },
                &mut action,
            )?,
            "-W" => set(Action::ResetWwids, &mut action)?,
            "-f" => {
                let m = value(args, &mut i, None, "-f")?;
                set(Action::Flush(Some(m)), &mut action)?
            }
            "--run-dir" => o.run_dir = Some(value(args, &mut i, inline, name)?.into()),
            "--config" => o.config = Some(value(args, &mut i, inline, name)?.into()),
            "--config-dir" => o.config_dir = Some(value(args, &mut i, inline, name)?.into()),
            v if v.starts_with("-v") => {
                let text = value(args, &mut i, Some(&v[2..]), "-v")?;
                o.verbosity = text
                    .parse()
                    .ok()
                    .filter(|n| *n <= 6)
                    .ok_or_else(|| format!("invalid verbosity '{text}' (0 to 6)"))?;
            }
            f if f.starts_with("-f") => set(Action::Flush(Some(f[2..].to_string())), &mut action)?,
            "-T" | "-c" | "-C" | "-q" | "-i" | "-u" | "-U" | "-d" | "-b" | "-p" | "-B" | "-R"
            | "-e" => {
                return Err(format!(
                    "option '{name}' is not supported by hydra multipath"
                ))
            }
            o if o.starts_with('-') && o.len() > 1 => return Err(format!("invalid option '{o}'")),
            _ => positional.push(args[i].clone()),
        }
        i += 1;
    }
    o.action = action.unwrap_or(Action::Reload);
    match positional.as_slice() {
        [] => {
            if let Action::EditWwid { add, .. } = o.action {
                let flag = if add { "-a" } else { "-w" };
                return Err(format!("{flag} needs a device (a path, a map or a WWID)"));
            }
        }
        [m] => match &mut o.action {
            Action::List { map, .. } => *map = Some(m.clone()),
            Action::EditWwid { dev, .. } => *dev = Some(m.clone()),
            Action::Reload => {}
            a => return Err(format!("unexpected argument '{m}' with {}", name(a))),
        },
        [_, extra, ..] => return Err(format!("unexpected argument '{extra}'")),
    }
    Ok(o)
}

fn name(a: &Action) -> &'static str {
    match a {
        Action::List {
            checkers: false, ..
        } => "-l",
        Action::List { checkers: true, .. } => "-ll",
        Action::Flush(Some(_)) => "-f",
        Action::Flush(None) => "-F",
        Action::Reload => "-r",
        Action::PrintConfig => "-t",
        Action::EditWwid { add: true, .. } => "-a",
        Action::EditWwid { add: false, .. } => "-w",
        Action::ResetWwids => "-W",
        Action::Help => "-h",
    }
}

/// The node daemon's run directory: `--run-dir`, else $HYDRA_ISCSID_RUN_DIR, else
/// /run/hydra-iscsid (as `hydra iscsiadm`).
pub(super) fn run_dir(opt: Option<&Path>) -> PathBuf {
    opt.map(Path::to_path_buf)
        .unwrap_or_else(hydra_initiator::iscsid::default_run_dir)
}

/// One request to the node's multipathd socket; `Err` is the message to print.
pub(super) fn call(run_dir: &Path, req: Request) -> Result<Response, String> {
    let path = hydra_multipath::control::socket_path(run_dir);
    super::block_on(hydra_daemon::control::call::<Multipathd>(&path, req)).map_err(|e| {
        format!(
            "{e} (is `hydra iscsid` running with run directory {}?)",
            run_dir.display()
        )
    })
}

fn fail(msg: &str) -> Result<ExitCode, String> {
    eprintln!("multipath: {msg}");
    Ok(ExitCode::from(1))
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("multipath: {e}\n{HELP}");
            return Ok(ExitCode::from(1));
        }
    };
    let run_dir = run_dir(o.run_dir.as_deref());
    match o.action {
        Action::Help => {
            println!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Action::PrintConfig => {
            let main = o
                .config
                .unwrap_or_else(|| config::DEFAULT_CONFIG_FILE.into());
            let dir = o
                .config_dir
                .unwrap_or_else(|| config::DEFAULT_CONFIG_DIR.into());
            match Config::load(&main, &dir) {
                Ok(loaded) => {
                    for w in &loaded.warnings {
                        eprintln!("{w}");
                    }
                    print!("{}", config::print::print_config(&loaded.config));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Action::List { checkers, map } => {
            let maps = match call(&run_dir, Request::Snapshots { map: map.clone() }) {
                Ok(Response::Snapshots(maps)) => maps,
                Ok(Response::Error { message, .. }) => return fail(&message),
                Ok(other) => return fail(&format!("unexpected answer {other:?}")),
                Err(e) => return fail(&e),
            };
            let mut maps: Vec<_> = match &map {
                Some(m) => show::find(&maps, m).into_iter().cloned().collect(),
                None => maps,
            };
            if !checkers {
                maps = maps.iter().map(show::without_checkers).collect();
            }
            let bold = std::io::stdout().is_terminal();
            print!("{}", show::topology(&maps, o.verbosity, bold));
            Ok(ExitCode::SUCCESS)
        }
        Action::Flush(map) => answer_ok(call(&run_dir, Request::Flush { map })),
        Action::Reload => answer_ok(call(&run_dir, Request::Reconfigure)),
        Action::EditWwid { add, dev } => {
            let dev = dev.unwrap_or_default(); // parse_args made sure there is one
            answer_ok(call(&run_dir, Request::EditWwid { dev, add }))
        }
        Action::ResetWwids => answer_ok(call(&run_dir, Request::ResetWwids)),
    }
}

/// An action's answer: nothing printed on success, the reason on failure.
fn answer_ok(r: Result<Response, String>) -> Result<ExitCode, String> {
    match r {
        Ok(Response::Ok) => Ok(ExitCode::SUCCESS),
        Ok(Response::Text(t)) => {
            print!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Response::Error { message, .. }) => fail(&message),
        Ok(other) => fail(&format!("unexpected answer {other:?}")),
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Opts, String> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags() {
        let o = p(&["-ll"]).unwrap();
        assert_eq!(
            o.action,
            Action::List {
                checkers: true,
                map: None
            }
        );
        assert_eq!(o.verbosity, 2);
        let o = p(&["-v1", "-l", "mpatha", "--run-dir", "/tmp/r"]).unwrap();
        assert_eq!(
            o.action,
            Action::List {
                checkers: false,
                map: Some("mpatha".into())
            }
        );
        assert_eq!(o.verbosity, 1);
        assert_eq!(o.run_dir, Some("/tmp/r".into()));
        assert_eq!(p(&["-v", "3", "-ll"]).unwrap().verbosity, 3);
        assert_eq!(
            p(&["-f", "mpathb"]).unwrap().action,
            Action::Flush(Some("mpathb".into()))
        );
        assert_eq!(
            p(&["-fmpathb"]).unwrap().action,
            Action::Flush(Some("mpathb".into()))
        );
        assert_eq!(p(&["-F"]).unwrap().action, Action::Flush(None));
        assert_eq!(p(&[]).unwrap().action, Action::Reload);
        assert_eq!(p(&["-r"]).unwrap().action, Action::Reload);
        let o = p(&["-t", "--config=/x/m.conf", "--config-dir", "/x/d"]).unwrap();
        assert_eq!(o.action, Action::PrintConfig);
        assert_eq!(o.config, Some("/x/m.conf".into()));
        assert_eq!(o.config_dir, Some("/x/d".into()));
        assert_eq!(
            p(&["-a", "s1l1"]).unwrap().action,
            Action::EditWwid {
                add: true,
                dev: Some("s1l1".into())
            }
        );
        assert_eq!(
            p(&["-w", "360000000000000000e00000000010001"])
                .unwrap()
                .action,
            Action::EditWwid {
                add: false,
                dev: Some("360000000000000000e00000000010001".into())
            }
        );
        assert_eq!(p(&["-W"]).unwrap().action, Action::ResetWwids);
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(p(&["-f"]).unwrap_err(), "option '-f' requires an argument");
        assert_eq!(p(&["-v9"]).unwrap_err(), "invalid verbosity '9' (0 to 6)");
        assert_eq!(p(&["-vx"]).unwrap_err(), "invalid verbosity 'x' (0 to 6)");
        assert_eq!(
            p(&["-l", "-F"]).unwrap_err(),
            "conflicting actions: -l and -F"
        );
        assert_eq!(p(&["-x"]).unwrap_err(), "invalid option '-x'");
        assert_eq!(
            p(&["-u"]).unwrap_err(),
            "option '-u' is not supported by hydra multipath"
        );
        assert_eq!(
            p(&["-a"]).unwrap_err(),
            "-a needs a device (a path, a map or a WWID)"
        );
        assert_eq!(
            p(&["-w", "-W"]).unwrap_err(),
            "conflicting actions: -w and -W"
        );
        assert_eq!(
            p(&["-t", "mpatha"]).unwrap_err(),
            "unexpected argument 'mpatha' with -t"
        );
        assert_eq!(
            p(&["-ll", "a", "b"]).unwrap_err(),
            "unexpected argument 'b'"
        );
        assert_eq!(
            p(&["--run-dir"]).unwrap_err(),
            "option '--run-dir' requires an argument"
        );
    }

    /// No daemon: a clear message naming the socket, exit 1.
    #[test]
    fn no_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let e = call(dir.path(), Request::Reconfigure).unwrap_err();
        assert!(e.contains("multipathd.sock"), "{e}");
        assert!(e.contains("is `hydra iscsid` running"), "{e}");
    }
}
