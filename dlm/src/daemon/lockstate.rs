//! `<run dir>/dlm_controld.locks`: present while this daemon has a lockspace that has
//! run, so while its clients may hold locks. hydra's lock state lives in the daemon, not
//! in a kernel that outlives it: a daemon that dies (kill -9, or corosync gone) drops
//! its clients' locks, and the clients hear of it at once, but may still be inside their
//! critical sections. The other nodes fence the node before handing its locks on; a
//! daemon started again on it before that would say Hello without state and count as
//! fenced. So a daemon that finds the file left by its predecessor refuses to start, as
//! dlm_controld refuses when it finds kernel lockspaces it does not control
//! (`check_uncontrolled_lockspaces`: "reboot required"). The run directory is on /run,
//! which a reboot (or a power fence) empties.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file's name in the run directory.
pub const LOCKS_FILE: &str = "dlm_controld.locks";

pub struct LockState {
    path: PathBuf,
    marked: bool,
}

impl LockState {
    /// Refuse to start over a predecessor's lock state; otherwise follow this daemon's.
    pub fn check(run_dir: &Path) -> Result<LockState> {
        let path = run_dir.join(LOCKS_FILE);
        if path.exists() {
            return Err(Error::Refused(format!(
                "the previous dlm_controld on this node ended while it held lockspaces \
                 ({} exists): its clients may still be inside their critical sections. \
                 Fence or reboot this node first; remove the file only if you know that \
                 none of them runs any more",
                path.display()
            )));
        }
        Ok(LockState {
            path,
            marked: false,
        })
    }

    /// Whether a lockspace of this daemon has run: the file exists exactly while it has.
    pub fn set(&mut self, held: bool) -> Result<()> {
        if held == self.marked {
            return Ok(());
        }
        let done = if held {
            std::fs::write(&self.path, format!("{}\n", std::process::id()))
        } else {
            std::fs::remove_file(&self.path)
        };
        done.map_err(|e| Error::io(format!("updating {}", self.path.display()), e))?;
        self.marked = held;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_predecessors_lock_state_refuses_the_start() {
        let dir = std::env::temp_dir().join(format!("hydra-lockstate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = LockState::check(&dir).unwrap();
        s.set(true).unwrap();
        assert!(dir.join(LOCKS_FILE).exists());
        // The daemon dies here: the next one refuses, naming the file.
        let err = LockState::check(&dir).err().unwrap().to_string();
        assert!(err.contains("ended while it held lockspaces"), "{err}");
        assert!(err.contains(LOCKS_FILE), "{err}");
        // Leaving the last lockspace removes it: a start is clean again.
        s.set(false).unwrap();
        assert!(LockState::check(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
