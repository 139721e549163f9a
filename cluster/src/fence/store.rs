//! This node's key and devices, where fence_scsi keeps them (`<STORE_PATH>.key`: the
//! key as lowercase hex and a newline; `<STORE_PATH>.dev`: one device a line), so that
//! `off` knows our own key and the watchdog check (`status` with no key) knows what to
//! look at.

use std::path::{Path, PathBuf};

use super::key::Key;
use crate::{Error, Result};

fn with_ext(store: &Path, ext: &str) -> PathBuf {
    let mut s = store.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

pub fn key_file(store: &Path) -> PathBuf {
    with_ext(store, ".key")
}

pub fn dev_file(store: &Path) -> PathBuf {
    with_ext(store, ".dev")
}

fn make_parent(p: &Path) -> Result<()> {
    if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)
            .map_err(|e| Error::io(format!("Failed: cannot create {}", d.display()), e))?;
    }
    Ok(())
}

/// Record this node's key (`on`).
pub fn write_key(store: &Path, key: Key) -> Result<()> {
    let p = key_file(store);
    make_parent(&p)?;
    std::fs::write(&p, format!("{key}\n"))
        .map_err(|e| Error::io(format!("Failed: Cannot open file \"{}\"", p.display()), e))
}

/// This node's key, as `on` recorded it.
pub fn read_key(store: &Path) -> Result<Key> {
    let p = key_file(store);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| Error::io(format!("Failed: Cannot open file \"{}\"", p.display()), e))?;
    let line = text.lines().next().unwrap_or("").trim();
    Key::parse(line).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))
}

/// Add `dev` to the device list unless it is there.
pub fn add_device(store: &Path, dev: &str) -> Result<()> {
    let p = dev_file(store);
    make_parent(&p)?;
    let mut devs = read_devices(store).unwrap_or_default();
    if !devs.iter().any(|d| d == dev) {
        devs.push(dev.to_string());
        let text: String = devs.iter().map(|d| format!("{d}\n")).collect();
        std::fs::write(&p, text)
            .map_err(|e| Error::io(format!("Failed: Cannot open file \"{}\"", p.display()), e))?;
    }
    Ok(())
}

/// The recorded devices (non-empty lines).
pub fn read_devices(store: &Path) -> Result<Vec<String>> {
    let p = dev_file(store);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| Error::io(format!("Failed: Cannot open file \"{}\"", p.display()), e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_next_to_the_store_path() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("cluster/fence_scsi");
        assert!(read_key(&store).is_err());
        write_key(&store, Key(0x5e2a0001)).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("cluster/fence_scsi.key")).unwrap(),
            "5e2a0001\n"
        );
        assert_eq!(read_key(&store).unwrap(), Key(0x5e2a0001));
        add_device(&store, "/dev/mapper/a").unwrap();
        add_device(&store, "iscsi://h/iqn.x:y/1").unwrap();
        add_device(&store, "/dev/mapper/a").unwrap();
        assert_eq!(
            read_devices(&store).unwrap(),
            ["/dev/mapper/a", "iscsi://h/iqn.x:y/1"]
        );
    }
}
