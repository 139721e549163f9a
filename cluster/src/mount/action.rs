//! The steps of `hydra mount`, `hydra umount`, `--status` and `-a` (see the module
//! documentation of [`super`] for the order and why).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hydra_dlm::client::Lock;
use hydra_dlm::mode::Mode;

use super::fstab::{self, Spec};
use super::lock::{Acquired, Dlm, Holder, Interrupt};
use super::options::MountOptions;
use super::probe::{self, Probed};
use super::state::{self, Record};
use super::sys::{self, MountEntry};
use super::{key, Paths};
use crate::fence::cmap::{self, ClusterInfo};
use crate::{Error, Result};

/// One `hydra mount DEVICE DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub device: PathBuf,
    pub dir: PathBuf,
    /// `-t TYPE`; None, `auto` or `hydra`: whatever the probe finds.
    pub fstype: Option<String>,
    pub options: MountOptions,
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Whether `r`'s mount is in `mounts`: its directory, with its device when known.
fn is_mounted(r: &Record, mounts: &[MountEntry]) -> bool {
    mounts
        .iter()
        .any(|m| m.dir == r.dir && (r.dev.is_none() || m.dev == r.dev))
}

/// The records that decode (the others are reported by `--status`).
fn records(paths: &Paths) -> Result<Vec<Record>> {
    Ok(state::read_all(&paths.state_dir)?
        .into_iter()
        .filter_map(|r| r.ok())
        .collect())
}

/// This node's name for the holder record: its corosync nodelist name (or ring0
/// address), else the host name.
async fn node_name(paths: &Paths, nodeid: u32) -> String {
    let from_corosync = ClusterInfo::read(&paths.corosync_cmap_path, Duration::from_secs(5))
        .await
        .ok()
        .and_then(|c| {
            cmap::find_by_nodeid(&c.nodes, nodeid)
                .and_then(|n| n.plug())
                .map(str::to_string)
        });
    from_corosync.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    })
}

/// "UUID is mounted by node 1 (name)", from what a refused requester read.
fn held_by(uuid: &str, want: Mode, holder: Option<&Holder>) -> String {
    match holder {
        Some(h) if h.mode == Mode::EX => format!("{uuid} is mounted by {h} (read-write)"),
        Some(h) => format!("{uuid} is mounted by {h}"),
        None if want == Mode::EX => format!(
            "{uuid} is mounted by another node (read-only: read-only holders write no holder record)"
        ),
        None => format!("{uuid} is held by another node (its holder record is not there)"),
    }
}

/// `hydra mount`: see [`super`] for the steps. Returns the record of the new mount.
pub async fn mount(req: &Request, paths: &Paths) -> Result<Record> {
    let mut intr = Interrupt::catch()?;
    let device = absolute(&req.device);
    let dname = device.display().to_string();
    let dir = std::fs::canonicalize(&req.dir)
        .map_err(|e| Error::Refused(format!("mount point {}: {e}", req.dir.display())))?;
    if !dir.is_dir() {
        return Err(Error::Refused(format!(
            "mount point {} is not a directory",
            dir.display()
        )));
    }
    let devt = sys::block_dev(&device)?;
    sys::flush_buffers(&device)?;
    let Probed { fstype, uuid, .. } = probe::probe(&device)?;
    if let Some(t) = req
        .fstype
        .as_deref()
        .filter(|t| !matches!(*t, "auto" | "hydra"))
    {
        if t != fstype {
            return Err(Error::Refused(format!("{dname} holds {fstype}, not {t}")));
        }
    }
    let mounts = sys::mounts()?;
    for r in records(paths)? {
        if r.uuid == uuid {
            return Err(Error::Refused(if is_mounted(&r, &mounts) {
                format!(
                    "{uuid} is already mounted on this node, at {} ({})",
                    r.dir.display(),
                    r.device.display()
                )
            } else {
                format!(
                    "{uuid}: a record says this node still holds its lock for {}, which is not mounted: `hydra umount {}` releases it",
                    r.dir.display(),
                    r.dir.display()
                )
            }));
        }
    }
    if mounts.iter().any(|m| m.dir == dir) {
        // Not an error for mount(8), but a second mount on the same point would hide
        // the first one and its record: refuse.
        return Err(Error::Refused(format!(
            "{} is a mount point already",
            dir.display()
        )));
    }
    let dlm = Dlm::connect(&paths.dlm_run_dir, paths.dlm_timeout).await?;
    dlm.join().await?;
    let mode = if req.options.read_only() {
        Mode::PR
    } else {
        Mode::EX
    };
    let mut lock = match dlm
        .acquire(&uuid, mode, req.options.lockwait, &mut intr)
        .await?
    {
        Acquired::Granted(l) => l,
        Acquired::Busy(h) => {
            return Err(Error::Refused(format!(
                "{}; wait for it with -o lockwait[=SECS]",
                held_by(&uuid, mode, h.as_ref())
            )))
        }
        Acquired::TimedOut(t, h) => {
            return Err(Error::Refused(format!(
                "{}: {mode} not granted within {} s (lockwait)",
                held_by(&uuid, mode, h.as_ref()),
                t.as_secs_f64()
            )))
        }
    };
    let rec = Record {
        device,
        dir,
        fstype,
        uuid,
        mode,
        dev: Some(devt),
    };
    // Recorded as soon as it is granted: the lock is PERSISTENT, so if a later step
    // fails and the lock manager does not answer the unlock either (stuck in
    // recovery), the lock outlives this command as an orphan, and only a record lets
    // `hydra umount` release it. Without one it was held for good and every later
    // mount refused (seen in the fault-injection run, seed 14).
    let recorded = state::write(&paths.state_dir, &rec);
    let held = match recorded {
        Ok(()) => holding(&dlm, &mut lock, &rec, req, paths).await,
        Err(e) => Err(e),
    };
    match held {
        Ok(()) => {
            // The command exits; the PERSISTENT lock stays as this node's orphan.
            lock.detach();
            Ok(rec)
        }
        Err(e) => {
            if let Err(u) = dlm.release(lock).await {
                return Err(Error::Failed(format!(
                    "{e}; and the lock was not released: {u}; `hydra umount {}` releases it",
                    rec.dir.display()
                )));
            }
            let _ = state::remove(&paths.state_dir, &rec.uuid);
            Err(e)
        }
    }
}

/// The steps under the lock (the record is written); an error here releases the lock
/// and removes the record.
async fn holding(
    dlm: &Dlm,
    lock: &mut Lock,
    rec: &Record,
    req: &Request,
    paths: &Paths,
) -> Result<()> {
    if rec.mode == Mode::EX {
        let nodeid = dlm.our_nodeid().await?;
        let h = Holder {
            nodeid,
            mode: Mode::EX,
            name: node_name(paths, nodeid).await,
        };
        dlm.write_holder(lock, &h).await?;
    }
    if !req.options.nofence {
        key::check(&rec.device, paths).await?;
    }
    // The lock may have taken long (lockwait), and DEVICE may be a link that moved
    // meanwhile: a restarted node daemon makes its map again on a new loop device.
    // mount(2) must mount the device that was recorded (else `hydra umount` finds the
    // record's device not mounted and releases the lock of a mounted filesystem, and
    // another node mounts it too: seen in the fault-injection run), so it mounts the
    // device node DEVICE names now, checked to be that one.
    let node = std::fs::canonicalize(&rec.device)
        .map_err(|e| Error::device(&rec.device.display().to_string(), e))?;
    let dev = sys::block_dev(&node)?;
    if Some(dev) != rec.dev {
        return Err(Error::Refused(format!(
            "{} is now {} ({dev}), not the device probed before the lock was granted ({}): the map was made again meanwhile; mount again",
            rec.device.display(),
            node.display(),
            rec.dev.map(|d| d.to_string()).unwrap_or_default()
        )));
    }
    // The probe ran before the lock, perhaps long before (lockwait) while another node
    // wrote: drop what it and anyone else cached, and check the filesystem is still
    // the one the lock is named after before mount(2) reads it.
    sys::flush_buffers(&node)?;
    let now = probe::probe(&node)?;
    if now.uuid != rec.uuid || now.fstype != rec.fstype {
        return Err(Error::Refused(format!(
            "{} changed while waiting for its lock: it now holds {} {} (was {} {})",
            rec.device.display(),
            now.fstype,
            now.uuid,
            rec.fstype,
            rec.uuid
        )));
    }
    sys::mount(
        &node,
        &rec.dir,
        &rec.fstype,
        req.options.flags,
        &req.options.data,
    )
}

/// What `hydra umount` did besides unmounting.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unmounted {
    pub record: Option<Record>,
    /// Things to tell (not failures): the filesystem was not mounted any more, the lock
    /// was already gone.
    pub notes: Vec<String>,
}

/// The record `target` (a mount point or a device) names.
fn find_record(target: &Path, paths: &Paths) -> Result<Record> {
    let abs = absolute(target);
    let canon = std::fs::canonicalize(&abs).ok();
    let devt = sys::block_dev(&abs).ok();
    records(paths)?
        .into_iter()
        .find(|r| {
            Some(&r.dir) == canon.as_ref()
                || r.dir == abs
                || r.device == abs
                || (devt.is_some() && r.dev == devt)
        })
        .ok_or_else(|| {
            Error::Refused(format!(
                "{} is not a hydra mount (no record in {}){}",
                target.display(),
                paths.state_dir.display(),
                if canon.is_some() {
                    ": use umount(8)"
                } else {
                    ""
                }
            ))
        })
}

/// `hydra umount DIR|DEVICE`: umount(2), then adopt the orphan lock and unlock it, then
/// remove the record. When the lock manager does not answer in time the unmount has
/// happened and the record stays, so that running `hydra umount` again releases it.
pub async fn umount(target: &Path, paths: &Paths) -> Result<Unmounted> {
    let r = find_record(target, paths)?;
    let mut out = Unmounted::default();
    let mounts = sys::mounts()?;
    if let Some(m) = mounts
        .iter()
        .find(|m| m.dir == r.dir && !is_mounted(&r, std::slice::from_ref(m)))
    {
        // Not the recorded device, yet a filesystem there: the lock must stay until
        // it is gone (releasing it would let another node mount under a writer).
        return Err(Error::Refused(format!(
            "{} has {} mounted, not the recorded {} ({}): the {} lock stays held; unmount it first",
            r.dir.display(),
            m.source,
            r.device.display(),
            r.dev.map(|d| d.to_string()).unwrap_or_default(),
            r.mode
        )));
    }
    if is_mounted(&r, &mounts) {
        sys::umount(&r.dir).map_err(|e| {
            Error::Failed(format!(
                "{e}: the filesystem stays mounted and its {} lock held",
                r.mode
            ))
        })?;
    } else {
        out.notes.push(format!(
            "{} was not mounted any more: releasing its lock",
            r.dir.display()
        ));
    }
    let release = async {
        let dlm = match Dlm::connect(&paths.dlm_run_dir, paths.dlm_timeout).await {
            Ok(d) => d,
            // No lock manager: its locks, orphans included, went with it.
            Err(Error::Refused(why)) => return Ok(Some(why)),
            Err(e) => return Err(e),
        };
        dlm.join().await?;
        match dlm.adopt(&r.uuid, r.mode).await? {
            Some(lock) => {
                dlm.release(lock).await?;
                Ok(None)
            }
            None => Ok(Some(format!(
                "this node held no {} lock on {} any more (the lock manager restarted?)",
                r.mode, r.uuid
            ))),
        }
    };
    let released = match tokio::time::timeout(paths.dlm_timeout, release).await {
        Ok(r) => r,
        Err(_) => Err(Error::Failed(format!(
            "the lock manager did not answer in {} s (is it stuck in recovery?)",
            paths.dlm_timeout.as_secs_f64()
        ))),
    };
    match released {
        Ok(note) => out.notes.extend(note),
        Err(e) => {
            return Err(Error::Failed(format!(
                "{} is unmounted, but its {} lock on {} was not released: {e}; run `hydra umount {}` again to release it",
                r.dir.display(),
                r.mode,
                r.uuid,
                r.dir.display()
            )))
        }
    }
    state::remove(&paths.state_dir, &r.uuid)?;
    out.record = Some(r);
    Ok(out)
}

/// `hydra mount --status`: the records whose mount is still there, and a warning for
/// each record that is not (its lock is still held) or does not decode.
pub fn status(paths: &Paths) -> Result<(Vec<Record>, Vec<String>)> {
    let mounts = sys::mounts()?;
    let mut held = Vec::new();
    let mut warnings = Vec::new();
    for r in state::read_all(&paths.state_dir)? {
        match r {
            Ok(r) if is_mounted(&r, &mounts) => held.push(r),
            Ok(r) => warnings.push(format!(
                "{}: recorded for {} but not mounted; its {} lock is still held: `hydra umount {}` releases it",
                r.uuid,
                r.dir.display(),
                r.mode,
                r.dir.display()
            )),
            Err(e) => warnings.push(e.to_string()),
        }
    }
    Ok((held, warnings))
}

/// The device an fstab spec means: a path as is; `UUID=`/`LABEL=` by probing the node
/// daemon's maps (`DEV_DIR/mapper/*`) and then `/dev/disk/by-uuid` / `by-label`.
pub fn resolve(spec: &Spec, paths: &Paths) -> Result<PathBuf> {
    let (want, by) = match spec {
        Spec::Path(p) => return Ok(p.clone()),
        Spec::Uuid(u) => (u, "by-uuid"),
        Spec::Label(l) => (l, "by-label"),
    };
    let matches = |p: &Probed| match spec {
        Spec::Uuid(u) => p.uuid.eq_ignore_ascii_case(u),
        Spec::Label(l) => p.label.as_deref() == Some(l.as_str()),
        Spec::Path(_) => false,
    };
    let mapper = paths.dev_dir.join("mapper");
    let mut maps: Vec<PathBuf> = std::fs::read_dir(&mapper)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    maps.sort();
    for m in maps {
        if sys::block_dev(&m).is_ok() && probe::try_probe(&m).is_some_and(|p| matches(&p)) {
            return Ok(m);
        }
    }
    for root in [paths.dev_dir.as_path(), Path::new("/dev")] {
        let p = root.join("disk").join(by).join(want);
        if sys::block_dev(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(Error::Refused(format!(
        "{spec}: no such filesystem on {}/* nor in /dev/disk/{by}",
        mapper.display()
    )))
}

/// One `-a` entry's outcome.
#[derive(Debug)]
pub struct Entry {
    /// `line N: SPEC on DIR`.
    pub what: String,
    /// Ok(None): already mounted by hydra mount, skipped.
    pub result: Result<Option<Record>>,
}

/// `hydra mount -a`: every fstab entry with `x-hydra` and without `noauto`, with
/// `extra` (`-o` of the command line) after the entry's own options.
pub async fn mount_all(fstab_text: &str, extra: &[&str], paths: &Paths) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in fstab::parse(fstab_text)?
        .into_iter()
        .filter(|e| e.is_hydra())
    {
        let what = format!("line {}: {} on {}", e.line, e.spec, e.dir.display());
        let result = async {
            let mut opts: Vec<&str> = vec![&e.options];
            opts.extend_from_slice(extra);
            let options = super::options::parse(&opts)
                .map_err(|x| Error::Usage(format!("fstab line {}: {x}", e.line)))?;
            if options.noauto {
                return Ok(None);
            }
            let mounts = sys::mounts()?;
            if records(paths)?
                .iter()
                .any(|r| r.dir == e.dir && is_mounted(r, &mounts))
            {
                return Ok(None);
            }
            let device = resolve(&e.spec, paths)?;
            let req = Request {
                device,
                dir: e.dir.clone(),
                fstype: e.fixed_type().map(str::to_string),
                options,
            };
            mount(&req, paths).await.map(Some)
        }
        .await;
        out.push(Entry { what, result });
    }
    Ok(out)
}
