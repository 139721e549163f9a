//! The run directory (`/run/hydra-tgtd`, `/run/hydra-iscsid`, `/run/dlm_controld`):
//! pid file, control socket and, in the background, the log file.

use std::path::Path;

use crate::{Error, Result};

/// Make the run directory (and its parents) if missing.
pub fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("run directory {}", dir.display()), e))
}
