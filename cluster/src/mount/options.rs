//! `-o OPTIONS` as mount(8) takes them, split three ways: the generic options the
//! kernel takes as mount(2) flags (mount(8) "FILESYSTEM-INDEPENDENT MOUNT OPTIONS",
//! libmount's `linux_flags` map), the options only userspace reads (`defaults`,
//! `noauto`, `nofail`, `_netdev`, `user`, `x-*`, `comment=`: not passed on), and the
//! rest, which is the filesystem's data string (`errors=remount-ro`, `data=ordered`,
//! `discard`, ...). hydra's own: `lockwait[=SECS]`, `nofence`, `x-hydra`.
//!
//! As mount(8): items are comma separated, a double-quoted value may hold commas
//! (`context="a,b"`), empty items are skipped, and a later flag option overrides an
//! earlier one (`ro,rw` mounts read-write). Sans-IO: text in, [`MountOptions`] out.

use std::time::Duration;

use crate::{Error, Result};

/// How long `hydra mount` may queue for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// `lockwait`: until granted.
    Forever,
    /// `lockwait=SECS`: cancel the request at the deadline.
    For(Duration),
}

/// The parsed `-o` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// mount(2)'s `mountflags` (MS_*).
    pub flags: libc::c_ulong,
    /// mount(2)'s `data`: the filesystem's own options, comma separated.
    pub data: String,
    /// None: refuse at once when another node holds the lock (NOQUEUE).
    pub lockwait: Option<LockWait>,
    /// Skip the PR key check (devices that are not node-daemon maps). Unsafe on a
    /// shared disk: nothing then stops a fenced node from mounting.
    pub nofence: bool,
    /// `noauto`: `mount -a` skips the entry.
    pub noauto: bool,
    /// `x-hydra`: the fstab marker for `mount -a`.
    pub x_hydra: bool,
}

impl MountOptions {
    /// `ro` (MS_RDONLY): the lock is then taken in PR, else in EX.
    pub fn read_only(&self) -> bool {
        self.flags & libc::MS_RDONLY != 0
    }
}

/// A generic option: its name, the flag, and whether the option sets it (`noexec`) or
/// clears it (`exec`).
struct Flag {
    name: &'static str,
    flag: libc::c_ulong,
    set: bool,
}

const fn f(name: &'static str, flag: libc::c_ulong, set: bool) -> Flag {
    Flag { name, flag, set }
}

/// libmount's `linux_flags` (libmount/src/optmap.c), the flags mount(2) takes.
const FLAGS: &[Flag] = &[
    f("ro", libc::MS_RDONLY, true),
    f("rw", libc::MS_RDONLY, false),
    f("exec", libc::MS_NOEXEC, false),
    f("noexec", libc::MS_NOEXEC, true),
    f("suid", libc::MS_NOSUID, false),
    f("nosuid", libc::MS_NOSUID, true),
    f("dev", libc::MS_NODEV, false),
    f("nodev", libc::MS_NODEV, true),
    f("sync", libc::MS_SYNCHRONOUS, true),
    f("async", libc::MS_SYNCHRONOUS, false),
    f("dirsync", libc::MS_DIRSYNC, true),
    f("mand", libc::MS_MANDLOCK, true),
    f("nomand", libc::MS_MANDLOCK, false),
    f("atime", libc::MS_NOATIME, false),
    f("noatime", libc::MS_NOATIME, true),
    f("iversion", libc::MS_I_VERSION, true),
    f("noiversion", libc::MS_I_VERSION, false),
    f("diratime", libc::MS_NODIRATIME, false),
    f("nodiratime", libc::MS_NODIRATIME, true),
    f("relatime", libc::MS_RELATIME, true),
    f("norelatime", libc::MS_RELATIME, false),
    f("strictatime", libc::MS_STRICTATIME, true),
    f("nostrictatime", libc::MS_STRICTATIME, false),
    f("lazytime", libc::MS_LAZYTIME, true),
    f("nolazytime", libc::MS_LAZYTIME, false),
    f("silent", libc::MS_SILENT, true),
    f("loud", libc::MS_SILENT, false),
    f("symfollow", libc::MS_NOSYMFOLLOW, false),
    f("nosymfollow", libc::MS_NOSYMFOLLOW, true),
];

/// Options only userspace reads (libmount's `userspace_opts_map`): not passed on.
const USERSPACE: &[&str] = &[
    "defaults", "auto", "user", "nouser", "users", "owner", "noowner", "group", "nogroup",
    "_netdev", "nofail",
];

/// Operations that are not a mount of a filesystem: hydra mount does not do them.
const OPERATIONS: &[&str] = &[
    "remount",
    "bind",
    "rbind",
    "move",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
    "loop",
];

/// Split at commas outside double quotes; empty items are dropped.
fn items(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn seconds(v: &str) -> Result<Duration> {
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 && s <= u32::MAX as f64 => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(Error::Usage(format!(
            "-o lockwait='{v}': not a number of seconds"
        ))),
    }
}

/// Parse `-o` option strings (several `-o` are as one joined by commas).
pub fn parse(opts: &[&str]) -> Result<MountOptions> {
    let mut m = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for text in opts {
        if text.contains('\0') {
            return Err(Error::Usage("-o: options contain a NUL byte".into()));
        }
        if text.matches('"').count() % 2 == 1 {
            return Err(Error::Usage(format!(
                "-o '{text}': unbalanced double quote"
            )));
        }
        for item in items(text) {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (item, None),
            };
            let no_value = |what: &str| -> Result<()> {
                match value {
                    None => Ok(()),
                    Some(_) => Err(Error::Usage(format!("-o {item}: {what} takes no value"))),
                }
            };
            if let Some(fl) = FLAGS.iter().find(|fl| fl.name == name) {
                no_value(name)?;
                if fl.set {
                    m.flags |= fl.flag;
                } else {
                    m.flags &= !fl.flag;
                }
                continue;
            }
            match name {
                "lockwait" => {
                    m.lockwait = Some(match value {
                        None => LockWait::Forever,
                        Some(v) => LockWait::For(seconds(v)?),
                    })
                }
                "nofence" => {
                    no_value(name)?;
                    m.nofence = true;
                }
                "noauto" => {
                    no_value(name)?;
                    m.noauto = true;
                }
                "x-hydra" => m.x_hydra = true,
                n if USERSPACE.contains(&n) => {}
                n if n.starts_with("x-") || n.starts_with("X-") || n == "comment" => {}
                n if OPERATIONS.contains(&n) || n.starts_with("make-") => {
                    return Err(Error::Usage(format!(
                        "-o {n}: hydra mount mounts a filesystem under its lock; use mount(8) for {n}"
                    )))
                }
                _ => data.push(item),
            }
        }
    }
    m.data = data.join(",");
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_data_and_hydra_options() {
        let m = parse(&["ro,noatime,nodev,errors=remount-ro,x-hydra", "lockwait=2.5"]).unwrap();
        assert_eq!(m.flags, libc::MS_RDONLY | libc::MS_NOATIME | libc::MS_NODEV);
        assert!(m.read_only());
        assert_eq!(m.data, "errors=remount-ro");
        assert_eq!(m.lockwait, Some(LockWait::For(Duration::from_millis(2500))));
        assert!(m.x_hydra && !m.nofence && !m.noauto);
    }

    #[test]
    fn later_options_win_and_userspace_ones_are_dropped() {
        let m = parse(&["ro,exec,noexec,rw,defaults,_netdev,nofail,x-systemd.after=a,,lockwait"])
            .unwrap();
        assert_eq!(m.flags, libc::MS_NOEXEC);
        assert!(!m.read_only());
        assert_eq!(m.data, "");
        assert_eq!(m.lockwait, Some(LockWait::Forever));
        let m = parse(&["sync,dirsync,strictatime,nofence,noauto"]).unwrap();
        assert_eq!(
            m.flags,
            libc::MS_SYNCHRONOUS | libc::MS_DIRSYNC | libc::MS_STRICTATIME
        );
        assert!(m.nofence && m.noauto);
        assert_eq!(parse(&[]).unwrap(), MountOptions::default());
    }

    #[test]
    fn quoted_values_keep_their_commas() {
        let m = parse(&["context=\"system_u:object_r:a,b\",data=ordered"]).unwrap();
        assert_eq!(m.data, "context=\"system_u:object_r:a,b\",data=ordered");
    }

    #[test]
    fn bad_options_say_what() {
        for (o, want) in [
            ("lockwait=soon", "lockwait='soon'"),
            ("lockwait=-1", "lockwait='-1'"),
            ("ro=1", "ro takes no value"),
            ("nofence=yes", "nofence takes no value"),
            ("remount", "use mount(8) for remount"),
            ("bind", "use mount(8) for bind"),
            ("make-private", "make-private"),
            ("context=\"a", "unbalanced double quote"),
        ] {
            let e = parse(&[o]).unwrap_err().to_string();
            assert!(e.contains(want), "{o}: {e}");
        }
    }
}
