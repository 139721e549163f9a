//! `<run dir>/dlm_controld.pid`, held locked for the daemon's life: a second daemon on
//! the same run directory finds it locked and refuses to start, as dlm_controld's
//! `lockfile()` does (main.c: an exclusive lock on its pid file, "is already running").
//! The lock itself is [`hydra_daemon::PidFile`], the one every hydra daemon uses.

use std::path::Path;

use crate::error::{Error, Result};

/// The pid file's name in the run directory.
pub const PID_FILE: &str = "dlm_controld.pid";

/// The locked pid file; removed when dropped (the daemon is ending).
pub struct PidFile {
    _held: hydra_daemon::PidFile,
}

impl PidFile {
    /// Create the run directory and (or take over a stale) `<run_dir>/dlm_controld.pid`,
    /// lock it and write our pid into it. Fails if a live daemon holds it.
    pub fn acquire(run_dir: &Path) -> Result<PidFile> {
        hydra_daemon::run_dir::create(run_dir)?;
        match hydra_daemon::PidFile::acquire(&run_dir.join(PID_FILE), "dlm_controld") {
            Ok(held) => Ok(PidFile { _held: held }),
            // flock(2)'s EWOULDBLOCK, as dlm_controld reports it.
            Err(e @ hydra_daemon::Error::AlreadyRunning { .. }) => Err(Error::io(
                e.to_string(),
                std::io::Error::from_raw_os_error(libc::EWOULDBLOCK),
            )),
            Err(e) => Err(e.into()),
        }
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
