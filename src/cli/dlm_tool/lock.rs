//! `hydra dlm_tool lock [-m MODE] [-n] [-t SECS] NAME RESOURCE -- COMMAND...`: run
//! COMMAND while this node holds RESOURCE in lockspace NAME, flock(1) style.
//!
//! - The lockspace is joined first if it is not (and stays joined, as `dlm_tool join`
//!   leaves it), as flock(1) creates its lock file.
//! - `-n` (flock's `-n`): NOQUEUE, exit 1 at once if the lock is not granted;
//!   `-t SECS` (flock's `-w`): cancel the request after SECS and exit 1 — unless the
//!   grant won the race with the cancel, in which case COMMAND runs.
//! - The exit status is COMMAND's (128+N when signal N ended it, 126/127 when it could
//!   not be started, as in a shell).
//!
//! The lock belongs to this process's connection to dlm_controld, not to COMMAND (flock's
//! lock lives in the inherited file descriptor). So this process stays until COMMAND
//! ends: SIGINT, SIGTERM and SIGHUP are passed on to COMMAND rather than ending us, and
//! if the connection is lost (the daemon stopped) the lock is gone and COMMAND is sent
//! SIGTERM — it must not go on as if it still held the lock.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use hydra_dlm::client::{describe, Client};
use hydra_dlm::flags::{Flags, Status};
use hydra_dlm::mode::Mode;
use tokio::signal::unix::{signal, SignalKind};

use super::super::args::Parsed;

#[derive(Debug, PartialEq)]
pub struct Args {
    pub mode: Mode,
    pub noqueue: bool,
    pub timeout: Option<Duration>,
    pub ls: String,
    pub resource: String,
    pub command: Vec<String>,
}

impl Args {
    pub fn parse(
        p: &Parsed,
        rest: &[String],
        command: Option<Vec<String>>,
    ) -> Result<Args, String> {
        let mode = match p.value("mode") {
            None => Mode::EX,
            Some(m) => Mode::parse(m)
                .ok_or_else(|| format!("lock: -m '{m}' is not a mode (NL, CR, CW, PR, PW, EX)"))?,
        };
        let timeout = match p.value("timeout") {
            None => None,
            Some(t) => match t.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
                _ => return Err(format!("lock: -t '{t}' is not a number of seconds")),
            },
        };
        let [ls, resource] = rest else {
            return Err(format!(
                "lock: NAME and RESOURCE needed before --, got {}",
                if rest.is_empty() {
                    "none".to_string()
                } else {
                    rest.join(" ")
                }
            ));
        };
        let command = match command {
            Some(c) if !c.is_empty() => c,
            _ => return Err("lock: no command (lock NAME RESOURCE -- COMMAND...)".into()),
        };
        if resource.is_empty() || resource.len() > hydra_dlm::RESNAME_MAXLEN {
            return Err(format!(
                "lock: resource name must be 1 to {} bytes, '{resource}' is {}",
                hydra_dlm::RESNAME_MAXLEN,
                resource.len()
            ));
        }
        Ok(Args {
            mode,
            noqueue: p.has("nodes"),
            timeout,
            ls: ls.clone(),
            resource: resource.clone(),
            command,
        })
    }
}

pub async fn run(run_dir: &Path, a: Args) -> Result<ExitCode, String> {
    let c = super::connect(run_dir).await?;
    c.join(&a.ls)
        .await
        .map_err(|e| format!("lock: join \"{}\": {}", a.ls, describe(&e)))?;
    let what = format!("{} on \"{}\" in \"{}\"", a.mode, a.resource, a.ls);
    let flags = Flags(if a.noqueue { Flags::NOQUEUE } else { 0 });
    let mut lock = c
        .lock(&a.ls, a.resource.as_bytes(), a.mode, flags, None, None)
        .await
        .map_err(|e| format!("lock: {what}: {}", describe(&e)))?;
    let first = match a.timeout {
        None => lock.completion().await,
        Some(t) => match tokio::time::timeout(t, lock.completion()).await {
            Ok(c) => c,
            Err(_) => {
                lock.cancel()
                    .await
                    .map_err(|e| format!("lock: cancelling {what}: {}", describe(&e)))?;
                lock.completion().await
            }
        },
    }
    .map_err(|e| format!("lock: {what}: {}", describe(&e)))?;
    match first.status {
        Status::Granted => {}
        Status::Again => {
            eprintln!("dlm_tool lock: {what} is not free (-n)");
            return Ok(ExitCode::from(1));
        }
        Status::Cancel => {
            let secs = a.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
            eprintln!("dlm_tool lock: {what} not granted within {secs} s");
            return Ok(ExitCode::from(1));
        }
        s => {
            eprintln!("dlm_tool lock: {what} not granted: {s:?}");
            return Ok(ExitCode::from(1));
        }
    }
    let status = run_holding(&c, &a.command, &what).await?;
    // Unlocking fails only when the connection is gone, and then the lock is too.
    if let Err(e) = lock.unlock_wait(None).await {
        eprintln!("dlm_tool lock: unlocking {what}: {}", describe(&e));
    }
    Ok(ExitCode::from(status))
}

/// Run `command` to its end while the lock is held; its exit status as a shell gives it.
async fn run_holding(c: &Client, command: &[String], what: &str) -> Result<u8, String> {
    let mut child = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("dlm_tool lock: {}: {e}", command[0]);
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(code);
        }
    };
    let pid = child.id().map(|p| p as libc::pid_t);
    let forward = |sig| {
        if let Some(pid) = pid {
            // SAFETY: kill(2) on our own child's pid, which is not reaped before
            // `child.wait()` returns below.
            unsafe { libc::kill(pid, sig) };
        }
    };
    let signals = |k| signal(k).map_err(|e| format!("lock: signal handler: {e}"));
    let (mut int, mut term, mut hup) = (
        signals(SignalKind::interrupt())?,
        signals(SignalKind::terminate())?,
        signals(SignalKind::hangup())?,
    );
    let mut lost = false;
    let st = loop {
        tokio::select! {
            st = child.wait() => break st.map_err(|e| format!("lock: waiting for {}: {e}", command[0]))?,
            why = c.closed(), if !lost => {
                eprintln!(
                    "dlm_tool lock: {what} lost ({}): stopping {}",
                    describe(&why),
                    command[0]
                );
                forward(libc::SIGTERM);
                lost = true;
            }
            _ = int.recv() => forward(libc::SIGINT),
            _ = term.recv() => forward(libc::SIGTERM),
            _ = hup.recv() => forward(libc::SIGHUP),
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let code = match (st.code(), st.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => 128 + s as u8,
        (None, None) => 1,
    };
    Ok(if lost && code == 0 { 1 } else { code })
}

#[cfg(test)]
mod tests {
    use super::super::parse_line;
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        let (p, cmd) = parse_line(a)?;
        Args::parse(&p, &p.positional[1..], cmd)
    }

    #[test]
    fn flock_style_arguments() {
        let a = args(&[
            "lock", "-m", "pr", "-n", "-t", "2.5", "gfs", "res", "--", "sh", "-c", "x",
        ]);
        assert_eq!(
            a.unwrap(),
            Args {
                mode: Mode::PR,
                noqueue: true,
                timeout: Some(Duration::from_millis(2500)),
                ls: "gfs".into(),
                resource: "res".into(),
                command: vec!["sh".into(), "-c".into(), "x".into()],
            }
        );
        assert_eq!(
            args(&["lock", "a", "b", "--", "true"]).unwrap().mode,
            Mode::EX
        );
    }

    #[test]
    fn bad_arguments_say_what() {
        let e = args(&["lock", "-m", "XX", "a", "b", "--", "true"]).unwrap_err();
        assert!(e.contains("-m 'XX' is not a mode"), "{e}");
        let e = args(&["lock", "-t", "-1", "a", "b", "--", "true"]).unwrap_err();
        assert!(e.contains("-t '-1'"), "{e}");
        let e = args(&["lock", "a", "--", "true"]).unwrap_err();
        assert!(e.contains("NAME and RESOURCE needed"), "{e}");
        let e = args(&["lock", "a", "b"]).unwrap_err();
        assert!(e.contains("no command"), "{e}");
        let long = "r".repeat(65);
        let e = args(&["lock", "a", &long, "--", "true"]).unwrap_err();
        assert!(e.contains("1 to 64 bytes"), "{e}");
    }
}
