//! `<run dir>/<name>.pid`, held locked for the daemon's life: a second daemon on the
//! same file finds it locked and refuses to start, as dlm_controld's `lockfile()` does
//! (main.c: an exclusive lock on its pid file, "is already running"). flock(2) is used:
//! the lock goes away with the process however it ends, so a stale file left by a crash
//! never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The locked pid file; removed when dropped (the daemon is ending).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    /// Holds the lock.
    _file: File,
}

impl PidFile {
    /// Create (or take over a stale) pid file at `path`, lock it and write our pid into
    /// it. A live `daemon` holding it is [`Error::AlreadyRunning`].
    pub fn acquire(path: &Path, daemon: &str) -> Result<PidFile> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                return Err(Error::AlreadyRunning {
                    daemon: daemon.into(),
                    path: path.into(),
                    pid: owner.trim().parse().ok(),
                });
            }
            return Err(Error::io(format!("locking {}", path.display()), err));
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(PidFile {
            path: path.into(),
            _file: file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        // A file left by a daemon that crashed: not locked, so taken over.
        std::fs::write(&path, "999999\n").unwrap();
        let held = PidFile::acquire(&path, "d").unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, format!("{}\n", std::process::id()));
        // flock locks belong to the open file: a second open in this process conflicts,
        // as a second daemon would.
        let err = PidFile::acquire(&path, "d").expect_err("refused");
        assert!(
            matches!(err, Error::AlreadyRunning { pid: Some(p), .. } if p == std::process::id()),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "d is already running (pid {})",
                std::process::id()
            )) && text.ends_with(&format!("{} is locked", path.display())),
            "{text}"
        );
        drop(held);
        assert!(!path.exists());
        drop(PidFile::acquire(&path, "d").unwrap());
    }
}
