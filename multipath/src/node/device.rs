//! The device stack of one map: what a user of the node sees of it.
//!
//! Built bottom-up from the map's [`BlockDevice`], torn down top-down:
//! 1. an NBD export on `<run dir>/nbd/<alias>.sock` (export name = alias), always;
//! 2. a FUSE mount at `<run dir>/fuse/<alias>/` holding one file `<alias>`, attached to a
//!    loop device with direct I/O ([`LoopDevice::attach`]): the kernel block device;
//! 3. its partitions, made by `partx` (the kernel here has no partition-table parsers,
//!    see [`crate::export::loopdev`]), the job kpartx does for a dm map;
//! 4. the names udev's multipath rules would make, as symlinks under the dev dir
//!    (`/dev` by default; tests pass a private directory), pointing at the loop nodes:
//!    `mapper/<alias>`, `mapper/<partition name>` (`partition_delimiter`, as kpartx
//!    names them), `disk/by-id/dm-uuid-mpath-<wwid>`, `disk/by-id/dm-name-<alias>`, and
//!    per partition `disk/by-id/dm-uuid-part<N>-mpath-<wwid>` and `dm-name-<part>`
//!    (11-dm-mpath.rules, 13-dm-disk.rules, kpartx.rules);
//! 5. a watch on the loop node: when a writer closes it (inotify `IN_CLOSE_WRITE`, what
//!    udev's `OPTIONS+="watch"` waits for after fdisk/sfdisk/parted), the partitions are
//!    read again and the links follow.
//!
//! A daemon killed before its teardown leaves its FUSE mount dead and its loop device
//! attached; the next daemon on the run directory removes both when it starts
//! ([`crate::export::stale`]).
//!
//! No kernel device possible (no /dev/fuse, no free loop device, not root): logged, and
//! the map stays served over NBD. The links point at `/dev/loopN` by absolute path, so a
//! private dev dir works without a private mount namespace; several node daemons on one
//! machine differ by run dir and dev dir.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::export::fuse::FuseExport;
use crate::export::loopdev::LoopDevice;
use crate::export::nbd::{bind_unix, NbdServer};
use crate::export::BlockDevice;
use crate::{Error, Result};

/// Where a node daemon puts its maps' devices, and how partitions are named.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The daemon's run directory (`nbd/`, `fuse/` under it).
    pub run_dir: PathBuf,
    /// Where `mapper/` and `disk/by-id/` are made (`/dev`, or a test's directory).
    pub dev_dir: PathBuf,
    /// `partition_delimiter` of `defaults` (None: kpartx's rule, "p" after a digit).
    pub partition_delimiter: Option<String>,
    /// Whether to make the kernel device at all (false: NBD only).
    pub kernel_device: bool,
}

impl Layout {
    /// kpartx's name for partition `n` of map `alias`.
    pub fn partition_name(&self, alias: &str, n: u32) -> String {
        let digit = alias.ends_with(|c: char| c.is_ascii_digit());
        let delim = self
            .partition_delimiter
            .as_deref()
            .unwrap_or(if digit { "p" } else { "" });
        format!("{alias}{delim}{n}")
    }

    pub fn nbd_socket(&self, alias: &str) -> PathBuf {
        self.run_dir.join("nbd").join(format!("{alias}.sock"))
    }

    fn fuse_dir(&self, alias: &str) -> PathBuf {
        fuse_root(&self.run_dir).join(alias)
    }
}

/// Where a daemon with run directory `run_dir` mounts its maps' FUSE files, one
/// directory per map.
pub fn fuse_root(run_dir: &Path) -> PathBuf {
    run_dir.join("fuse")
}

/// The kernel side: FUSE file, loop device, partitions, links, watch.
struct Kernel {
    fuse: Option<FuseExport>,
    lo: Arc<LoopDevice>,
    links: Arc<Mutex<Vec<PathBuf>>>,
    watch: JoinHandle<()>,
    /// Asks the watch to end after the partition re-read it may be running, so that its
    /// reference to the loop device is gone when teardown detaches it.
    stop_watch: Option<oneshot::Sender<()>>,
}

/// One map's exports. [`MapDevice::teardown`] removes them; dropping it without does
/// the same on a best-effort basis (blocking).
pub struct MapDevice {
    alias: String,
    wwid: String,
    layout: Layout,
    nbd_socket: PathBuf,
    nbd: JoinHandle<()>,
    kernel: Option<Kernel>,
    /// Why there is no kernel device, when there is none.
    no_kernel: Option<String>,
}

impl MapDevice {
    /// Export `device` as map `alias` (WWID `wwid`). Only the NBD socket is required;
    /// a kernel device that cannot be made is logged and left out
    /// ([`MapDevice::no_kernel_device`] says why).
    pub async fn create(
        device: Arc<dyn BlockDevice>,
        alias: &str,
        wwid: &str,
        layout: &Layout,
    ) -> Result<MapDevice> {
        if alias.is_empty() || alias.contains('/') || alias.starts_with('.') {
            return Err(Error::Unstorable {
                what: "map name",
                value: alias.into(),
                reason: "empty, starts with '.' or contains '/'",
            });
        }
        let nbd_dir = layout.run_dir.join("nbd");
        mkdir(&nbd_dir)?;
        let nbd_socket = layout.nbd_socket(alias);
        let listener = bind_unix(&nbd_socket)
            .map_err(|e| Error::io(&nbd_socket, "cannot bind the NBD socket", e))?;
        let server = NbdServer::new();
        server.add_export(alias, device.clone());
        let nbd = tokio::spawn(async move {
            if let Err(e) = server.serve_unix(listener).await {
                tracing::error!("NBD server stopped: {e}");
            }
        });
        let mut me = MapDevice {
            alias: alias.into(),
            wwid: wwid.into(),
            layout: layout.clone(),
            nbd_socket,
            nbd,
            kernel: None,
            no_kernel: None,
        };
        if !layout.kernel_device {
            me.no_kernel = Some("disabled".into());
            return Ok(me);
        }
        match me.make_kernel(device).await {
            Ok(k) => me.kernel = Some(k),
            Err(why) => {
                tracing::error!(
                    "{alias}: no kernel block device ({why}); the map is served over NBD only, on {}",
                    me.nbd_socket.display()
                );
                me.no_kernel = Some(why);
            }
        }
        Ok(me)
    }

    async fn make_kernel(
        &self,
        device: Arc<dyn BlockDevice>,
    ) -> std::result::Result<Kernel, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("no /dev/fuse".into());
        }
        let dir = self.layout.fuse_dir(&self.alias);
        mkdir(&dir).map_err(|e| e.to_string())?;
        let (alias, rt) = (self.alias.clone(), tokio::runtime::Handle::current());
        // mount(2) and losetup make the kernel call into the FUSE file, whose I/O runs on
        // this runtime: both wait on the blocking pool, never on a runtime thread.
        let (fuse, lo) = tokio::task::spawn_blocking(move || {
            let fuse = FuseExport::mount(device, &dir, &alias, rt)?;
            match LoopDevice::attach(fuse.file()) {
                Ok(lo) => Ok((fuse, lo)),
                Err(e) => {
                    drop(fuse);
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| format!("attach task: {e}"))?
        .map_err(|e| e.to_string())?;
        let lo = Arc::new(lo);
        let links = Arc::new(Mutex::new(Vec::new()));
        let names = Names {
            alias: self.alias.clone(),
            wwid: self.wwid.clone(),
            layout: self.layout.clone(),
        };
        // The watch first, so that no close is missed between the first scan and it.
        let (stop_watch, stop) = oneshot::channel();
        let watch = match watch_closes(lo.path()) {
            Ok(fd) => tokio::spawn(watch_loop(
                fd,
                lo.clone(),
                names.clone(),
                links.clone(),
                stop,
            )),
            Err(e) => {
                tracing::warn!(
                    "{}: no inotify watch on {} ({e}); partitions are read again only on reconfigure",
                    self.alias,
                    lo.path().display()
                );
                tokio::spawn(async {})
            }
        };
        refresh(&lo, &names, &links).await;
        tracing::info!(
            "{}: {} on {}, NBD {}",
            self.alias,
            names
                .layout
                .dev_dir
                .join("mapper")
                .join(&self.alias)
                .display(),
            lo.path().display(),
            self.nbd_socket.display()
        );
        Ok(Kernel {
            fuse: Some(fuse),
            lo,
            links,
            watch,
            stop_watch: Some(stop_watch),
        })
    }

    pub fn alias(&self) -> &str {
        &self.alias
    }

    pub fn nbd_socket(&self) -> &Path {
        &self.nbd_socket
    }

    /// The kernel block device (`/dev/loopN`), when there is one.
    pub fn kernel_device(&self) -> Option<&Path> {
        self.kernel.as_ref().map(|k| k.lo.path())
    }

    /// Why there is no kernel device.
    pub fn no_kernel_device(&self) -> Option<&str> {
        self.no_kernel.as_deref()
    }

    /// The links made under the dev dir, sorted.
    pub fn links(&self) -> Vec<PathBuf> {
        self.kernel
            .as_ref()
            .map(|k| k.links.lock().expect("lock").clone())
            .unwrap_or_default()
    }

    /// Read the partition table again and make the partitions and links match
    /// (`multipathd reconfigure`, `multipath -r`).
    pub async fn refresh(&self) {
        if let Some(k) = &self.kernel {
            refresh(&k.lo, &self.names(), &k.links).await;
        }
    }

    fn names(&self) -> Names {
        Names {
            alias: self.alias.clone(),
            wwid: self.wwid.clone(),
            layout: self.layout.clone(),
        }
    }

    /// Remove everything, top-down: links, watch, partitions and loop device, FUSE
    /// mount, NBD socket. A device still in use (a mounted filesystem) cannot go at
    /// once: the loop device is then cleared when its last user closes it (the kernel's
    /// autoclear) and the FUSE mount is detached lazily; what happened is in the
    /// returned lines (empty: all gone).
    pub async fn teardown(mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(k) = self.kernel.take() {
            teardown_kernel(k, &self.alias, &mut notes).await;
        }
        self.nbd.abort();
        let _ = std::fs::remove_file(&self.nbd_socket);
        let _ = std::fs::remove_dir(self.layout.fuse_dir(&self.alias));
        for n in &notes {
            tracing::warn!("{}: {n}", self.alias);
        }
        notes
    }
}

async fn teardown_kernel(mut k: Kernel, alias: &str, notes: &mut Vec<String>) {
    for l in k.links.lock().expect("lock").drain(..) {
        let _ = std::fs::remove_file(&l);
    }
    // Not abort: a partition re-read the watch started runs on the blocking pool with
    // its own reference to the loop device, and aborting the watch would not stop it.
    // Asked to stop, the watch ends once that re-read is done.
    if let Some(stop) = k.stop_watch.take() {
        let _ = stop.send(());
    }
    let _ = (&mut k.watch).await;
    let fuse = k.fuse.take();
    let lo = match Arc::try_unwrap(k.lo) {
        Ok(lo) => lo,
        Err(_) => {
            notes.push("loop device still referenced; left attached".into());
            return;
        }
    };
    let dev = lo.path().to_owned();
    let alias = alias.to_owned();
    let r = tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        if let Err(e) = lo.detach() {
            notes.push(format!(
                "{}: not detached at once ({e}); it goes when its last user closes it",
                dev.display()
            ));
        } else if loop_attached(&dev) {
            notes.push(format!(
                "{} is in use (a mounted filesystem?); the kernel detaches it when its last user closes it",
                dev.display()
            ));
        }
        if let Some(f) = fuse {
            if let Err(e) = f.unmount() {
                notes.push(format!("FUSE file of {alias}: {e}"));
            }
        }
        notes
    })
    .await;
    match r {
        Ok(n) => notes.extend(n),
        Err(e) => notes.push(format!("teardown task: {e}")),
    }
}

/// Whether a loop device still has a backing file (it stays attached while open when
/// detaching was deferred by the kernel's autoclear).
fn loop_attached(dev: &Path) -> bool {
    let Some(name) = dev.file_name() else {
        return false;
    };
    Path::new("/sys/block")
        .join(name)
        .join("loop/backing_file")
        .exists()
}

impl Drop for MapDevice {
    fn drop(&mut self) {
        self.nbd.abort();
        if let Some(k) = self.kernel.take() {
            for l in k.links.lock().expect("lock").drain(..) {
                let _ = std::fs::remove_file(&l);
            }
            k.watch.abort();
            // The loop device and FUSE mount go with their own Drops (blocking).
        }
        let _ = std::fs::remove_file(&self.nbd_socket);
    }
}

#[derive(Clone)]
struct Names {
    alias: String,
    wwid: String,
    layout: Layout,
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "cannot create the directory", e))
}

/// `partx`, then the links made again to match (old ones first removed).
async fn refresh(lo: &Arc<LoopDevice>, names: &Names, links: &Arc<Mutex<Vec<PathBuf>>>) {
    let l = lo.clone();
    let parts = match tokio::task::spawn_blocking(move || l.update_partitions()).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::warn!("{}: partitions not read: {e}", names.alias);
            lo.partitions().unwrap_or_default()
        }
        Err(e) => {
            tracing::warn!("{}: partition task: {e}", names.alias);
            return;
        }
    };
    let want = wanted_links(names, lo.path(), &parts);
    let mut held = links.lock().expect("lock");
    for old in held.drain(..) {
        if !want.iter().any(|(l, _)| *l == old) {
            let _ = std::fs::remove_file(&old);
        }
    }
    for (link, target) in want {
        match symlink(&link, &target) {
            Ok(()) => held.push(link),
            Err(e) => tracing::warn!("{}: {e}", names.alias),
        }
    }
    held.sort();
}

/// (link, target) for the disk and its partitions (`/dev/loopNpM`, numbered M).
fn wanted_links(n: &Names, disk: &Path, parts: &[PathBuf]) -> Vec<(PathBuf, PathBuf)> {
    let mapper = n.layout.dev_dir.join("mapper");
    let by_id = n.layout.dev_dir.join("disk/by-id");
    let mut v = vec![
        (mapper.join(&n.alias), disk.to_owned()),
        (
            by_id.join(format!("dm-uuid-mpath-{}", n.wwid)),
            disk.to_owned(),
        ),
        (by_id.join(format!("dm-name-{}", n.alias)), disk.to_owned()),
    ];
    let disk_name = disk.file_name().unwrap_or_default().to_string_lossy();
    for p in parts {
        let Some(num) = p
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix(&*disk_name))
            .and_then(|f| f.strip_prefix('p'))
            .and_then(|f| f.parse::<u32>().ok())
        else {
            continue;
        };
        let name = n.layout.partition_name(&n.alias, num);
        v.push((mapper.join(&name), p.clone()));
        v.push((
            by_id.join(format!("dm-uuid-part{num}-mpath-{}", n.wwid)),
            p.clone(),
        ));
        v.push((by_id.join(format!("dm-name-{name}")), p.clone()));
    }
    v
}

/// Make `link` point at `target`, replacing a symlink there (not anything else).
fn symlink(link: &Path, target: &Path) -> std::result::Result<(), String> {
    if let Some(dir) = link.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(link).ok().as_deref() == Some(target) {
                return Ok(());
            }
            std::fs::remove_file(link).map_err(|e| format!("{}: {e}", link.display()))?;
        }
        Ok(_) => {
            return Err(format!(
                "{}: exists and is not a symlink; left alone",
                link.display()
            ))
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("{}: {e}", link.display()))
}

/// An inotify descriptor watching `dev` for a writer's close.
fn watch_closes(dev: &Path) -> io::Result<AsyncFd<OwnedFd>> {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
    inotify::add_watch(&fd, dev, inotify::WatchFlags::CLOSE_WRITE)?;
    // Deprecated for descriptors that may be closed behind tokio's back; this one is
    // owned by the AsyncFd until it is dropped.
    #[allow(deprecated)]
    AsyncFd::new(fd)
}

/// Each batch of closes → one refresh (an sfdisk run closes the device more than once).
async fn watch_loop(
    fd: AsyncFd<OwnedFd>,
    lo: Arc<LoopDevice>,
    names: Names,
    links: Arc<Mutex<Vec<PathBuf>>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
    loop {
        let readable = tokio::select! {
            r = fd.readable() => r,
            _ = &mut stop => return,
        };
        let Ok(mut ready) = readable else {
            return;
        };
        let mut closes = 0;
        let mut reader = rustix::fs::inotify::Reader::new(fd.get_ref(), &mut buf);
        loop {
            match reader.next() {
                Ok(_) => closes += 1,
                Err(rustix::io::Errno::AGAIN) => {
                    ready.clear_ready();
                    break;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::warn!("{}: inotify: {e}", names.alias);
                    return;
                }
            }
        }
        if closes > 0 {
            tracing::debug!("{}: closed after writing; reading partitions", names.alias);
            refresh(&lo, &names, &links).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(delim: Option<&str>, alias: &str) -> Names {
        Names {
            alias: alias.into(),
            wwid: "3600wwid".into(),
            layout: Layout {
                run_dir: "/run/x".into(),
                dev_dir: "/d".into(),
                partition_delimiter: delim.map(Into::into),
                kernel_device: true,
            },
        }
    }

    #[test]
    fn partitions_are_named_as_kpartx_names_them() {
        let l = names(None, "x").layout;
        assert_eq!(l.partition_name("mpatha", 1), "mpatha1");
        assert_eq!(l.partition_name("mpath0", 2), "mpath0p2");
        let l = names(Some("p"), "x").layout;
        assert_eq!(l.partition_name("mpatha", 1), "mpathap1");
        assert_eq!(l.nbd_socket("mpatha"), Path::new("/run/x/nbd/mpatha.sock"));
    }

    #[test]
    fn links_of_a_disk_and_its_partitions() {
        let n = names(Some("p"), "mpatha");
        let parts = [PathBuf::from("/dev/loop7p1"), PathBuf::from("/dev/loop7p2")];
        let got = wanted_links(&n, Path::new("/dev/loop7"), &parts);
        let want: Vec<(PathBuf, PathBuf)> = [
            ("/d/mapper/mpatha", "/dev/loop7"),
            ("/d/disk/by-id/dm-uuid-mpath-3600wwid", "/dev/loop7"),
            ("/d/disk/by-id/dm-name-mpatha", "/dev/loop7"),
            ("/d/mapper/mpathap1", "/dev/loop7p1"),
            ("/d/disk/by-id/dm-uuid-part1-mpath-3600wwid", "/dev/loop7p1"),
            ("/d/disk/by-id/dm-name-mpathap1", "/dev/loop7p1"),
            ("/d/mapper/mpathap2", "/dev/loop7p2"),
            ("/d/disk/by-id/dm-uuid-part2-mpath-3600wwid", "/dev/loop7p2"),
            ("/d/disk/by-id/dm-name-mpathap2", "/dev/loop7p2"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_link_never_replaces_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("mapper/mpatha");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"not ours").unwrap();
        assert!(symlink(&f, Path::new("/dev/loop7")).is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"not ours");
        let l = tmp.path().join("mapper/mpathb");
        symlink(&l, Path::new("/dev/loop7")).unwrap();
        symlink(&l, Path::new("/dev/loop8")).unwrap();
        assert_eq!(std::fs::read_link(&l).unwrap(), Path::new("/dev/loop8"));
    }
}
