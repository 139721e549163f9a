//! What `hydra mount` records per mount in its state directory (default
//! `/run/hydra/mount`, a tmpfs: a reboot forgets the records, as it forgets the DLM's
//! orphan locks they describe). One file per filesystem, named after its UUID (a node
//! holds one lock per filesystem, so it mounts each filesystem once), `key=value` lines:
//!
//! ```text
//! hydra-mount 1
//! device=/dev/mapper/mpatha
//! dir=/srv/data
//! type=ext4
//! uuid=0b0e6a43-7b1c-4a43-9d5e-3f3f1d2c8a11
//! mode=EX
//! dev=7:3
//! ```
//!
//! `hydra umount` finds the lock's name and mode here; `hydra mount --status` lists the
//! records whose mount is still there. Values escape `\`, newlines and carriage returns
//! in mountinfo's octal way (`\134`, `\012`, `\015`). Encoding and decoding are sans-IO.

use std::path::{Path, PathBuf};

use hydra_dlm::mode::Mode;

use super::sys::{unescape, DevT};
use crate::{Error, Result};

const MAGIC: &str = "hydra-mount 1";

/// One mount this node made and holds the lock for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The device as given (made absolute).
    pub device: PathBuf,
    /// The mount point (canonical).
    pub dir: PathBuf,
    pub fstype: String,
    /// The lock's resource name.
    pub uuid: String,
    /// The lock's mode: EX (read-write) or PR (read-only).
    pub mode: Mode,
    /// The device's numbers when it was mounted, to match mountinfo.
    pub dev: Option<DevT>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\134")
        .replace('\n', "\\012")
        .replace('\r', "\\015")
}

impl Record {
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{MAGIC}\ndevice={}\ndir={}\ntype={}\nuuid={}\nmode={}\n",
            escape(&self.device.to_string_lossy()),
            escape(&self.dir.to_string_lossy()),
            escape(&self.fstype),
            escape(&self.uuid),
            self.mode
        );
        if let Some(d) = self.dev {
            s.push_str(&format!("dev={d}\n"));
        }
        s
    }

    /// Decode a record; `what` (its file) names it in errors.
    pub fn decode(text: &str, what: &str) -> Result<Record> {
        let bad = |m: String| Error::Failed(format!("{what}: {m}"));
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad(format!("not a hydra mount record (no '{MAGIC}' line)")));
        }
        let (mut device, mut dir, mut fstype, mut uuid, mut mode, mut dev) =
            (None, None, None, None, None, None);
        for (n, l) in lines.enumerate() {
            if l.is_empty() {
                continue;
            }
            let Some((k, v)) = l.split_once('=') else {
                return Err(bad(format!("line {}: no '=' in '{l}'", n + 2)));
            };
            let v = unescape(v);
            match k {
                "device" => device = Some(PathBuf::from(v)),
                "dir" => dir = Some(PathBuf::from(v)),
                "type" => fstype = Some(v),
                "uuid" => uuid = Some(v),
                "mode" => {
                    mode = Some(
                        Mode::parse(&v)
                            .filter(|m| matches!(m, Mode::EX | Mode::PR))
                            .ok_or_else(|| {
                                bad(format!("line {}: mode '{v}' is not EX or PR", n + 2))
                            })?,
                    )
                }
                "dev" => {
                    dev =
                        Some(DevT::parse(&v).ok_or_else(|| {
                            bad(format!("line {}: dev '{v}' is not MAJ:MIN", n + 2))
                        })?)
                }
                _ => {} // a later version's field
            }
        }
        fn need<T>(v: Option<T>, k: &str, what: &str) -> Result<T> {
            v.ok_or_else(|| Error::Failed(format!("{what}: no {k}= line")))
        }
        Ok(Record {
            device: need(device, "device", what)?,
            dir: need(dir, "dir", what)?,
            fstype: need(fstype, "type", what)?,
            uuid: need(uuid, "uuid", what)?,
            mode: need(mode, "mode", what)?,
            dev,
        })
    }
}

/// The record file of filesystem `uuid`: the UUID with anything but letters, digits,
/// `-`, `_` and `.` made `_` (blkid's UUIDs are hex and dashes; this keeps a strange
/// one inside the directory).
pub fn file_of(state_dir: &Path, uuid: &str) -> PathBuf {
    let name: String = uuid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.starts_with('.') || name.is_empty() {
        format!("_{name}")
    } else {
        name
    };
    state_dir.join(name)
}

/// Write the record (a temporary file renamed over the old one: never half a record).
pub fn write(state_dir: &Path, r: &Record) -> Result<()> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| Error::io(format!("creating {}", state_dir.display()), e))?;
    let file = file_of(state_dir, &r.uuid);
    let tmp = state_dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, r.encode())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &file).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(
            format!("renaming {} to {}", tmp.display(), file.display()),
            e,
        )
    })
}

/// Remove the record of `uuid` (gone already is fine).
pub fn remove(state_dir: &Path, uuid: &str) -> Result<()> {
    let file = file_of(state_dir, uuid);
    match std::fs::remove_file(&file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", file.display()), e))
        }
        _ => Ok(()),
    }
}

/// Every record, in file name order; a missing directory has none. Files that do not
/// decode are reported as errors next to the good ones.
pub fn read_all(state_dir: &Path) -> Result<Vec<Result<Record>>> {
    let rd = match std::fs::read_dir(state_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", state_dir.display()), e)),
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|f| {
            let what = f.display().to_string();
            std::fs::read_to_string(&f)
                .map_err(|e| Error::io(what.clone(), e))
                .and_then(|t| Record::decode(&t, &what))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            device: PathBuf::from("/dev/mapper/mpatha"),
            dir: PathBuf::from("/srv/a b\nc\\d"),
            fstype: "ext4".into(),
            uuid: "0b0e6a43-7b1c-4a43-9d5e-3f3f1d2c8a11".into(),
            mode: Mode::EX,
            dev: Some(DevT { major: 7, minor: 3 }),
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let r = rec();
        let text = r.encode();
        assert!(
            text.starts_with("hydra-mount 1\ndevice=/dev/mapper/mpatha\n"),
            "{text}"
        );
        assert!(text.contains("dir=/srv/a b\\012c\\134d\n"), "{text}");
        assert_eq!(Record::decode(&text, "f").unwrap(), r);
        let pr = Record {
            mode: Mode::PR,
            dev: None,
            ..rec()
        };
        assert_eq!(Record::decode(&pr.encode(), "f").unwrap(), pr);
    }

    #[test]
    fn bad_records_name_the_file_and_line() {
        for (text, want) in [
            ("", "not a hydra mount record"),
            ("hydra-mount 1\ndevice=/d\n", "f: no dir= line"),
            ("hydra-mount 1\nnonsense\n", "line 2: no '='"),
            ("hydra-mount 1\nmode=NL\n", "mode 'NL' is not EX or PR"),
            ("hydra-mount 1\ndev=x\n", "dev 'x' is not MAJ:MIN"),
        ] {
            let e = Record::decode(text, "f").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn files_in_the_state_dir() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        assert!(read_all(&dir).unwrap().is_empty());
        let r = rec();
        write(&dir, &r).unwrap();
        assert!(dir.join(&r.uuid).exists());
        std::fs::write(dir.join("junk"), "x").unwrap();
        let all = read_all(&dir).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].as_ref().unwrap(), &r);
        assert!(all[1].is_err());
        remove(&dir, &r.uuid).unwrap();
        remove(&dir, &r.uuid).unwrap();
        assert_eq!(read_all(&dir).unwrap().len(), 1);
        assert_eq!(file_of(&dir, "../x/y"), dir.join("_.._x_y"));
    }
}
