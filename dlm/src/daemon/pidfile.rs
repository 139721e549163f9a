//! `<run dir>/dlm_controld.pid`, held locked for the daemon's life: a second daemon on
//! the same run directory finds it locked and refuses to start, as dlm_controld's
//! `lockfile()` does (main.c: an exclusive lock on its pid file, "is already running").
//! flock(2) is used: the lock goes away with the process however it ends, so a stale
//! file left by a crash never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The pid file's name in the run directory.
pub const PID_FILE: &str = "dlm_controld.pid";

/// The locked pid file; removed when dropped (the daemon is ending).
pub struct PidFile {
    path: PathBuf,
    /// Holds the lock.
    _file: File,
}

impl PidFile {
    /// Create (or take over a stale) `<run_dir>/dlm_controld.pid`, lock it and write our
    /// pid into it. Fails if a live daemon holds it.
    pub fn acquire(run_dir: &Path) -> Result<PidFile> {
        std::fs::create_dir_all(run_dir)
            .map_err(|e| Error::io(format!("creating run directory {}", run_dir.display()), e))?;
        let path = run_dir.join(PID_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                let who = if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {owner})")
                };
                return Err(Error::io(
                    format!(
                        "dlm_controld is already running{who}: {} is locked",
                        path.display()
                    ),
                    err,
                ));
            }
            return Err(Error::io(format!("locking {}", path.display()), err));
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(PidFile { path, _file: file })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed while still locked, so no newer daemon's file is ever removed.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_daemon_is_refused_and_a_stale_file_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("hydra-pidfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A file left by a daemon that crashed: not locked, so taken over.
        std::fs::write(dir.join(PID_FILE), "999999\n").unwrap();
        let held = PidFile::acquire(&dir).unwrap();
        let written = std::fs::read_to_string(dir.join(PID_FILE)).unwrap();
        assert_eq!(written, format!("{}\n", std::process::id()));
        // flock locks belong to the open file: a second open in this process conflicts,
        // as a second daemon would.
        let err = PidFile::acquire(&dir).err().expect("refused").to_string();
        assert!(err.contains("already running"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(!dir.join(PID_FILE).exists());
        let again = PidFile::acquire(&dir).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
