//! fstab(5) for `hydra mount -a`: the entries whose options hold `x-hydra`.
//!
//! A line is `SPEC FILE VFSTYPE [MNTOPTS [FREQ [PASSNO]]]` separated by blanks; `#`
//! starts a comment line; fields escape blanks as `\040` (and `\011`, `\012`, `\134`).
//! SPEC is `UUID=`, `LABEL=` (optionally double-quoted) or a device path; VFSTYPE may
//! be `auto` or `hydra` (the type is then what the probe finds). Sans-IO.

use std::path::PathBuf;

use super::options::{self, MountOptions};
use super::sys::unescape;
use crate::{Error, Result};

/// Which device an entry means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Uuid(String),
    Label(String),
    Path(PathBuf),
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Uuid(u) => write!(f, "UUID={u}"),
            Spec::Label(l) => write!(f, "LABEL={l}"),
            Spec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Spec {
    /// `UUID=…`, `LABEL=…`, or an absolute path.
    pub fn parse(s: &str) -> std::result::Result<Spec, String> {
        let unquote = |v: &str| {
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            v.to_string()
        };
        let spec = if let Some(u) = s.strip_prefix("UUID=") {
            Spec::Uuid(unquote(u))
        } else if let Some(l) = s.strip_prefix("LABEL=") {
            Spec::Label(unquote(l))
        } else if s.starts_with('/') {
            Spec::Path(PathBuf::from(s))
        } else {
            return Err(format!(
                "'{s}' is not UUID=, LABEL= or a device path (PARTUUID=, PARTLABEL= and ID= are not supported)"
            ));
        };
        match &spec {
            Spec::Uuid(v) | Spec::Label(v) if v.is_empty() => Err(format!("'{s}' is empty")),
            _ => Ok(spec),
        }
    }
}

/// One fstab line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    pub spec: Spec,
    pub dir: PathBuf,
    /// As written; `auto` and `hydra` mean "what the probe finds".
    pub fstype: String,
    /// As written (`defaults` when absent).
    pub options: String,
}

impl Entry {
    /// Whether the entry is hydra's (`x-hydra` among its options).
    pub fn is_hydra(&self) -> bool {
        self.options.split(',').any(|o| o == "x-hydra")
    }

    /// Its options parsed as `-o`; errors name the line.
    pub fn mount_options(&self) -> Result<MountOptions> {
        options::parse(&[&self.options])
            .map_err(|e| Error::Usage(format!("fstab line {}: {e}", self.line)))
    }

    /// The type to insist on: None for `auto` and `hydra`.
    pub fn fixed_type(&self) -> Option<&str> {
        match self.fstype.as_str() {
            "auto" | "hydra" => None,
            t => Some(t),
        }
    }
}

/// Every entry of `text`; a malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let f: Vec<String> = t.split_whitespace().map(unescape).collect();
        let bad = |m: String| Error::Usage(format!("fstab line {line}: {m}"));
        if f.len() < 3 {
            return Err(bad(format!(
                "'{t}' has {} field(s), at least SPEC FILE VFSTYPE needed",
                f.len()
            )));
        }
        if f.len() > 6 {
            return Err(bad(format!("'{t}' has {} fields, at most 6", f.len())));
        }
        for (k, what) in [(4, "FREQ"), (5, "PASSNO")] {
            if let Some(v) = f.get(k) {
                if v.parse::<u32>().is_err() {
                    return Err(bad(format!("{what} '{v}' is not a number")));
                }
            }
        }
        let spec = Spec::parse(&f[0]).map_err(bad)?;
        if !f[1].starts_with('/') {
            return Err(bad(format!(
                "mount point '{}' is not an absolute path",
                f[1]
            )));
        }
        out.push(Entry {
            line,
            spec,
            dir: PathBuf::from(&f[1]),
            fstype: f[2].clone(),
            options: f.get(3).cloned().unwrap_or_else(|| "defaults".into()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_hydra_ones() {
        let text = "# /etc/fstab\n\
            UUID=0b0e6a43-7b1c-4a43-9d5e-3f3f1d2c8a11 /srv/data ext4 defaults,x-hydra,noatime 0 2\n\
            \n  LABEL=\"shared\\040logs\" /srv/my\\040logs hydra x-hydra,ro\n\
            /dev/mapper/mpathb /srv/b auto x-hydra,noauto 0 0\n\
            /dev/sda1 / ext4 errors=remount-ro 0 1\n";
        let e = parse(text).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].line, 2);
        assert_eq!(
            e[0].spec,
            Spec::Uuid("0b0e6a43-7b1c-4a43-9d5e-3f3f1d2c8a11".into())
        );
        assert_eq!(e[0].fixed_type(), Some("ext4"));
        assert!(e[0].is_hydra());
        assert_eq!(e[1].spec, Spec::Label("shared logs".into()));
        assert_eq!(e[1].dir, PathBuf::from("/srv/my logs"));
        assert_eq!(e[1].fixed_type(), None);
        assert!(e[1].mount_options().unwrap().read_only());
        assert!(e[2].mount_options().unwrap().noauto);
        assert_eq!(e[2].spec, Spec::Path("/dev/mapper/mpathb".into()));
        assert!(!e[3].is_hydra());
        let e = parse("/dev/x /mnt ext4").unwrap();
        assert_eq!(e[0].options, "defaults");
    }

    #[test]
    fn bad_lines_say_which() {
        for (text, want) in [
            ("/dev/x /mnt", "line 1: '/dev/x /mnt' has 2 field(s)"),
            (
                "#c\nPARTUUID=1 /mnt ext4",
                "line 2: 'PARTUUID=1' is not UUID=",
            ),
            ("UUID= /mnt ext4", "'UUID=' is empty"),
            ("/dev/x mnt ext4", "mount point 'mnt'"),
            ("/dev/x /mnt ext4 defaults zero", "FREQ 'zero'"),
            ("/dev/x /mnt ext4 defaults 0 0 7", "at most 6"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = parse("/dev/x /mnt ext4 x-hydra,lockwait=no").unwrap()[0]
            .mount_options()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fstab line 1") && e.contains("lockwait='no'"),
            "{e}"
        );
    }
}
