//! Detaching a daemon the classic way (fork, setsid, stdio to /dev/null and a log file),
//! with one improvement over tgtd: the parent waits on a pipe until the child has bound
//! its portals or sockets ([`report_ready`]), so `hydra tgtd`, `hydra iscsid` and
//! `hydra dlm_controld` exit 0 only for a daemon that is really serving, and print the
//! child's error otherwise.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

static READY_FD: AtomicI32 = AtomicI32::new(-1);

/// Fork into the background, logging to `<run_dir>/<log_name>`. Call it before any
/// thread exists (before the tokio runtime). Returns in the child only; the parent exits
/// with the child's start-up verdict, printing `<tool>: <error>` for a failed start.
pub fn detach(run_dir: &Path, log_name: &str, tool: &str) -> Result<(), String> {
    std::fs::create_dir_all(run_dir)
        .map_err(|e| format!("run directory {}: {e}", run_dir.display()))?;
    let log_path = run_dir.join(log_name);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("log file {}: {e}", log_path.display()))?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) writes two descriptors into the array we own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: no other thread exists yet (the tokio runtime is built after this call), so
    // the child may go on running arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid > 0 {
        // SAFETY: fds[0] is the read end we own; fds[1] belongs to the child now.
        let mut r = unsafe { File::from_raw_fd(fds[0]) };
        unsafe { libc::close(fds[1]) };
        let mut msg = String::new();
        let _ = r.read_to_string(&mut msg);
        if msg.starts_with("ok") {
            std::process::exit(0);
        }
        let msg = msg.trim();
        eprintln!(
            "{tool}: {}",
            if msg.is_empty() {
                format!("daemon exited during start-up (see {})", log_path.display())
            } else {
                msg.to_string()
            }
        );
        std::process::exit(1);
    }
    // SAFETY: the child closes the read end it does not use, starts a new session, and
    // points stdio at /dev/null and the log file; all descriptors are valid here.
    unsafe {
        libc::close(fds[0]);
        libc::setsid();
        let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    READY_FD.store(fds[1], Ordering::SeqCst);
    let _ = log.into_raw_fd();
    Ok(())
}

/// Tell the waiting parent (if any) whether start-up worked.
pub fn report_ready(r: Result<(), String>) {
    let fd = READY_FD.swap(-1, Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    // SAFETY: fd is the pipe's write end, stored by `detach` and taken exactly once.
    let mut w = unsafe { File::from_raw_fd(fd) };
    let _ = match r {
        Ok(()) => w.write_all(b"ok\n"),
        Err(e) => w.write_all(e.as_bytes()),
    };
}
