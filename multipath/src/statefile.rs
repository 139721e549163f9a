//! Small state files (bindings, wwids) rewritten atomically: the new content goes to a
//! temporary file in the same directory, is synced, and renamed over the old one, so a
//! reader (or a crash) sees the old file or the new one, never half of one. Mode 0600
//! and parent directories 0700, as multipath-tools creates them
//! (`libmultipath/file.c`, `alias.c: update_bindings_file`).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::{Error, Result};

/// Reads a state file; a missing file reads as None.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, "cannot read", e)),
    }
}

/// Replaces `path` with `content` atomically.
pub(crate) fn write(path: &Path, content: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, "cannot create the directory", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u32;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(Error::io(tmp, "cannot create a temporary file", e)),
        }
    };
    let done = file
        .write_all(content)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, "cannot write", e));
    }
    // The rename is durable once the directory is synced.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `text` and clears the owner's "needs rewrite" flag once it is on disk.
pub(crate) fn save(path: &Path, text: &str, needs_rewrite: &mut bool) -> Result<()> {
    write(path, text.as_bytes())?;
    *needs_rewrite = false;
    Ok(())
}
