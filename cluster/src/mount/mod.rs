//! `hydra mount` / `hydra umount`: mount a shared filesystem only while this node holds
//! its cluster lock, and only while this node is not fenced (MOUNT-PLAN.md; issue 15
//! §2; the role HA-LVM's or pacemaker's Filesystem agent plays for ext4, dlm.md §4).
//!
//! `hydra mount DEVICE DIR`, in this order:
//! 1. BLKFLSBUF on DEVICE: blocks this node cached may be stale (another node wrote).
//! 2. libblkid probe ([`probe`]): TYPE and UUID; refuse "no filesystem on DEVICE".
//! 3. connect to hydra dlm_controld; refuse "the lock manager is not running".
//! 4. the DLM lock ([`lock`]): lockspace `hydra_mount`, resource = the UUID, EX for
//!    read-write, PR for `-o ro`, PERSISTENT, NOQUEUE unless `-o lockwait[=SECS]`;
//!    refused: name the holder from the value block record.
//! 5. the record ([`state`]), written as soon as the lock is granted, so that a crash
//!    or a lock manager that stops answering leaves something `hydra umount` can
//!    release (the lock is PERSISTENT: it outlives this command).
//! 6. the holder record in the value block (EX); the PR key check ([`key`]): this
//!    node's fence_scsi key is registered on the map; refuse "this node is fenced"
//!    (`-o nofence` skips it); BLKFLSBUF and the probe again on the device node
//!    DEVICE names, which must be the one probed; mount(2) ([`sys`]) of that node.
//! 7. the lock is detached: the command exits, the PERSISTENT lock stays as an orphan
//!    owned by this node.
//!
//! Any failure after the lock unlocks it and removes the record: nothing is left; if
//! the unlock fails too, the record stays and the message says `hydra umount`.
//! `hydra umount DIR|DEVICE`: umount(2), then adopt the orphan (LKF_ORPHAN) and unlock
//! it, remove the record. Every DLM step has a time limit, so a lock manager stuck in
//! recovery makes umount say so rather than hang (the unmount itself has happened).
//!
//! - [`options`]: `-o` → mount(2) flags, data and hydra's options (sans-IO).
//! - [`fstab`]: `-a`'s fstab entries marked `x-hydra` (sans-IO).
//! - [`probe`]: TYPE and UUID from libblkid.
//! - [`lock`]: the DLM lock and the holder record.
//! - [`key`]: the PR key check.
//! - [`state`]: the records in the state directory.
//! - [`sys`]: mount(2), umount2(2), BLKFLSBUF, mountinfo.
//! - [`action`]: the steps above.

pub mod action;
pub mod fstab;
pub mod key;
pub mod lock;
pub mod options;
pub mod probe;
pub mod state;
pub mod sys;

use std::path::PathBuf;
use std::time::Duration;

pub use action::{mount, mount_all, status, umount, Request};
pub use options::{LockWait, MountOptions};
pub use state::Record;

/// Where the other parts of the node are (MOUNT-PLAN.md's PATH OPTIONS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// hydra dlm_controld's run directory (its client socket).
    pub dlm_run_dir: PathBuf,
    /// The node daemon's run directory (multipathd.sock); None: its default.
    pub run_dir: Option<PathBuf>,
    /// Where the node daemon makes `mapper/NAME`.
    pub dev_dir: PathBuf,
    /// fence_scsi's store path: this node's key is in `<store_path>.key`.
    pub store_path: PathBuf,
    /// hydra mount's records.
    pub state_dir: PathBuf,
    /// How long each lock manager or node daemon step may take.
    pub dlm_timeout: Duration,
    /// corosync-cmapctl, for this node's name in the holder record.
    pub corosync_cmap_path: PathBuf,
}

/// The default state directory.
pub const STATE_DIR: &str = "/run/hydra/mount";

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            dlm_run_dir: PathBuf::from(hydra_dlm::api::DEFAULT_RUN_DIR),
            run_dir: None,
            dev_dir: PathBuf::from("/dev"),
            store_path: PathBuf::from(crate::fence::options::STORE_PATH),
            state_dir: PathBuf::from(STATE_DIR),
            dlm_timeout: Duration::from_secs(30),
            corosync_cmap_path: PathBuf::from("/usr/sbin/corosync-cmapctl"),
        }
    }
}
