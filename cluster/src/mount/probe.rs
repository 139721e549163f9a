//! What is on a device, from libblkid's superblock probe (libblkid(3):
//! `blkid_new_probe_from_filename`, `blkid_probe_set_superblocks_flags`,
//! `blkid_do_safeprobe`, `blkid_probe_lookup_value`) through the `libblkid-rs` binding:
//! TYPE, UUID, LABEL and USAGE. The safe probe refuses ambiguous results (two
//! signatures that disagree), as mount(8) does.

use std::path::Path;

use libblkid_rs::{BlkidProbe, BlkidSafeprobeRet, BlkidSublks, BlkidSublksFlags};

use crate::{Error, Result};

/// A filesystem found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// `TYPE` (`ext4`, `xfs`, ...).
    pub fstype: String,
    /// `UUID`: names the filesystem's lock.
    pub uuid: String,
    pub label: Option<String>,
}

/// The values of a signature libblkid found.
struct Found {
    fstype: String,
    uuid: Option<String>,
    label: Option<String>,
    usage: Option<String>,
}

/// What libblkid sees on `dev`: `Ok(None)` when it finds no signature at all.
fn values(dev: &Path) -> Result<Option<Found>> {
    let name = dev.display().to_string();
    let lib = |e: libblkid_rs::BlkidErr| Error::device(&name, format!("libblkid: {e}"));
    let mut p = BlkidProbe::new_from_filename(dev)
        .map_err(|e| Error::device(&name, format!("cannot open it for probing (libblkid: {e})")))?;
    p.enable_superblocks(true).map_err(lib)?;
    p.set_superblock_flags(BlkidSublksFlags::new(vec![
        BlkidSublks::Type,
        BlkidSublks::Uuid,
        BlkidSublks::Label,
        BlkidSublks::Usage,
    ]))
    .map_err(lib)?;
    p.enable_partitions(false).map_err(lib)?;
    match p.do_safeprobe().map_err(lib)? {
        BlkidSafeprobeRet::Success => {}
        BlkidSafeprobeRet::None => return Ok(None),
        BlkidSafeprobeRet::Ambiguous => {
            return Err(Error::Refused(format!(
                "{name}: ambiguous signatures (more than one filesystem found): wipefs(8) the stale one first"
            )))
        }
    }
    let get = |k: &str| {
        p.lookup_value(k)
            .ok()
            .map(|v| v.trim_end_matches('\0').to_string())
            .filter(|v| !v.is_empty())
    };
    Ok(get("TYPE").map(|fstype| Found {
        fstype,
        uuid: get("UUID"),
        label: get("LABEL"),
        usage: get("USAGE"),
    }))
}

/// Probe `dev` for a filesystem; refuses "no filesystem on DEV" (nothing there, or a
/// signature that is not a filesystem: LVM, RAID, LUKS) and a filesystem without UUID.
pub fn probe(dev: &Path) -> Result<Probed> {
    let name = dev.display();
    let Some(Found {
        fstype,
        uuid,
        label,
        usage,
    }) = values(dev)?
    else {
        return Err(Error::Refused(format!("no filesystem on {name}")));
    };
    if usage.as_deref().is_some_and(|u| u != "filesystem") {
        return Err(Error::Refused(format!(
            "no filesystem on {name} (it holds {fstype}, a {} signature)",
            usage.unwrap_or_default()
        )));
    }
    let uuid = uuid.ok_or_else(|| {
        Error::Refused(format!(
            "the {fstype} filesystem on {name} has no UUID: hydra mount names its lock after the UUID"
        ))
    })?;
    Ok(Probed {
        fstype,
        uuid,
        label,
    })
}

/// The filesystem on `dev`, or None (nothing, not a filesystem, cannot be opened): for
/// looking up `UUID=` and `LABEL=` among candidate devices.
pub fn try_probe(dev: &Path) -> Option<Probed> {
    probe(dev).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_has_no_filesystem() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("zeros.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let e = probe(&img).unwrap_err().to_string();
        assert!(e.contains("no filesystem on"), "{e}");
        let e = probe(&d.path().join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("cannot open"), "{e}");
    }

    #[test]
    fn mkfs_ext4_image_gives_type_and_uuid() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let st = std::process::Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "hydra-t",
                "-U",
                "0b0e6a43-7b1c-4a43-9d5e-3f3f1d2c8a11",
            ])
            .arg(&img)
            .status()
            .expect("mkfs.ext4 (e2fsprogs)");
        assert!(st.success());
        let p = probe(&img).unwrap();
        assert_eq!(p.fstype, "ext4");
        assert_eq!(p.uuid, "0b0e6a43-7b1c-4a43-9d5e-3f3f1d2c8a11");
        assert_eq!(p.label.as_deref(), Some("hydra-t"));
    }
}
