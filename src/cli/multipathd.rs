//! `hydra multipathd` — the command side of multipath-tools' `multipathd`
//! (multipathd.8): `multipathd show paths`, `multipathd -k"show paths"`, or `multipathd
//! -k` for a `multipathd>` prompt. The daemon side is `hydra iscsid` (the node daemon
//! holds the sessions and the maps); commands go to its multipathd socket
//! (`<run dir>/multipathd.sock`; `--run-dir`, $HYDRA_ISCSID_RUN_DIR, default
//! /run/hydra-iscsid).
//!
//! Answers print as multipathd's: the text of a `show`, `ok` for a command done, `fail`
//! for one refused (the reason on stderr, where multipathd logs it); the exit status is
//! 1 after `fail` or when the daemon cannot be reached (`multipathd/uxclnt.c`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use hydra_multipath::control::{Request, Response, COMMANDS};

const HELP: &str = "usage: hydra multipathd [--run-dir D] [-v level] COMMAND...
       hydra multipathd -k\"COMMAND\"
       hydra multipathd -k            (interactive; quit or exit to leave)

commands:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mode {
    /// One command.
    Command(Request),
    /// `-k` alone: a prompt.
    Interactive,
    Help,
}

pub(super) fn parse_args(args: &[String]) -> Result<(Mode, Option<PathBuf>), String> {
    let mut run_dir = None;
    let mut words: Vec<String> = Vec::new();
    let mut interactive = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        // --run-dir anywhere (no multipathd command has such a word).
        if let Some(d) = a.strip_prefix("--run-dir=") {
            run_dir = Some(d.into());
        } else if a == "--run-dir" {
            i += 1;
            let d = args
                .get(i)
                .ok_or("option '--run-dir' requires an argument")?;
            run_dir = Some(d.into());
        } else if !words.is_empty() {
            // Everything else after the first command word belongs to the command
            // (`show paths format "%d %w"`).
            words.push(a.clone());
        } else if a == "-h" || a == "--help" {
            return Ok((Mode::Help, run_dir));
        } else if let Some(cmd) = a.strip_prefix("-k") {
            if cmd.is_empty() {
                interactive = true;
            } else {
                words.extend(split_words(cmd));
                if words.is_empty() {
                    interactive = true;
                }
            }
        } else if a == "-v" || a.starts_with("-v") {
            // The verbosity of the daemon's log: accepted and ignored (the node daemon
            // logs by RUST_LOG).
            if a == "-v" {
                i += 1;
            }
        } else if a.starts_with('-') {
            return Err(match a.as_str() {
                "-d" | "-s" | "-B" | "-n" | "-w" => format!(
                    "option '{a}' runs the daemon: hydra's multipathd is part of `hydra iscsid`"
                ),
                _ => format!("invalid option '{a}'"),
            });
        } else {
            words.push(a.clone());
        }
        i += 1;
    }
    if words.is_empty() {
        if interactive {
            return Ok((Mode::Interactive, run_dir));
        }
        return Err(
            "no command; the daemon itself is `hydra iscsid` (it serves multipathd's commands)"
                .into(),
        );
    }
    // A command given in one argument after -k or on its own ("show paths").
    let split: Vec<String> = if words.len() == 1 {
        split_words(&words[0])
    } else {
        words
    };
    let refs: Vec<&str> = split.iter().map(String::as_str).collect();
    Request::parse_command(&refs).map(|r| (Mode::Command(r), run_dir))
}

/// A command line into words, as multipathd's parser splits it: on blanks, except
/// inside double or single quotes (`show paths format "%d %w"`).
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Print one answer as multipathd's client does; true when it was not a `fail`.
fn print_answer(r: Result<Response, String>) -> bool {
    match r {
        Ok(Response::Text(t)) => {
            print!("{t}");
            true
        }
        Ok(Response::Ok) => {
            println!("ok");
            true
        }
        Ok(Response::Error { message, .. }) => {
            println!("fail");
            eprintln!("multipathd: {message}");
            false
        }
        Ok(other) => {
            println!("fail");
            eprintln!("multipathd: unexpected answer {other:?}");
            false
        }
        Err(e) => {
            eprintln!("ERROR: failed to connect to multipathd: {e}");
            false
        }
    }
}

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let (mode, run_dir) = match parse_args(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("multipathd: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let run_dir = super::multipath::run_dir(run_dir.as_deref());
    let code = |ok: bool| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    };
    match mode {
        Mode::Help => {
            println!("{HELP}\n{COMMANDS}");
            Ok(ExitCode::SUCCESS)
        }
        Mode::Command(req) => Ok(code(print_answer(super::multipath::call(&run_dir, req)))),
        Mode::Interactive => {
            let prompt = std::io::stdin().is_terminal();
            let mut line = String::new();
            let stdin = std::io::stdin();
            loop {
                if prompt {
                    print!("multipathd> ");
                    let _ = std::io::stdout().flush();
                }
                line.clear();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) => return Ok(ExitCode::SUCCESS),
                    Ok(_) => {}
                    Err(e) => return Err(format!("stdin: {e}")),
                }
                let owned = split_words(&line);
                let words: Vec<&str> = owned.iter().map(String::as_str).collect();
                match words.as_slice() {
                    [] => continue,
                    ["quit"] | ["exit"] => return Ok(ExitCode::SUCCESS),
                    ["help"] => println!("{COMMANDS}"),
                    w => match Request::parse_command(w) {
                        Ok(req) => {
                            print_answer(super::multipath::call(&run_dir, req));
                        }
                        Err(e) => eprintln!("{e}"),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydra_multipath::control::Show;

    fn p(a: &[&str]) -> Result<Mode, String> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).map(|(m, _)| m)
    }

    #[test]
    fn commands_as_words_and_with_k() {
        let paths = Mode::Command(Request::Show(Show::Paths { format: None }));
        assert_eq!(p(&["show", "paths"]).unwrap(), paths);
        assert_eq!(p(&["-kshow paths"]).unwrap(), paths);
        assert_eq!(p(&["-k", "show", "paths"]).unwrap(), paths);
        assert_eq!(p(&["show paths"]).unwrap(), paths);
        assert_eq!(p(&["-k"]).unwrap(), Mode::Interactive);
        assert_eq!(
            p(&["-kshow maps format \"%n %w\""]).unwrap(),
            Mode::Command(Request::Show(Show::Maps {
                format: Some("%n %w".into())
            }))
        );
        assert_eq!(
            p(&["show", "paths", "format", "%d %w"]).unwrap(),
            Mode::Command(Request::Show(Show::Paths {
                format: Some("%d %w".into())
            }))
        );
        let (m, dir) = parse_args(&[
            "--run-dir".to_string(),
            "/r".to_string(),
            "reconfigure".to_string(),
        ])
        .unwrap();
        assert_eq!(m, Mode::Command(Request::Reconfigure));
        assert_eq!(dir, Some("/r".into()));
        let (m, dir) = parse_args(&[
            "show".to_string(),
            "maps".to_string(),
            "--run-dir=/s".to_string(),
        ])
        .unwrap();
        assert_eq!(m, Mode::Command(Request::Show(Show::Maps { format: None })));
        assert_eq!(dir, Some("/s".into()));
    }

    #[test]
    fn errors() {
        assert!(p(&[]).unwrap_err().starts_with("no command"));
        assert!(p(&["-d"]).unwrap_err().contains("part of `hydra iscsid`"));
        assert_eq!(p(&["-x"]).unwrap_err(), "invalid option '-x'");
        assert!(p(&["frobnicate"])
            .unwrap_err()
            .starts_with("unknown command 'frobnicate'"));
        assert_eq!(
            p(&["--run-dir"]).unwrap_err(),
            "option '--run-dir' requires an argument"
        );
    }
}
