//! The node daemon (`hydra iscsid`): iSCSI sessions, the multipath maps over them, and
//! each map's exports, in one process (DESIGN.md: no IPC hop per I/O).
//!
//! [`start`] opens everything that can fail (the iSCSI database, the run directory and
//! its pid file, both control sockets, multipath.conf, the bindings and wwids files);
//! [`Started::serve`] then runs:
//! - initiator's iscsid ([`hydra_initiator::iscsid::Daemon`]) on `<run dir>/iscsid.sock`
//!   (`hydra iscsiadm`), with its automatic logins;
//! - the map builder ([`maps`]), woken by every change of the session registry
//!   ([`hydra_initiator::registry::Registry::changed`]);
//! - multipathd's control socket on `<run dir>/multipathd.sock` ([`control`],
//!   `hydra multipathd`, `hydra multipath`, `hydra mpathpersist`).
//!
//! On SIGTERM/SIGINT (or `multipathd shutdown`): both sockets stop taking requests and
//! let the ones in progress finish, every map is flushed (its devices removed, held I/O
//! failed), then every session is logged out. A multipathd keeps its dm maps in the
//! kernel when it stops; hydra's maps live in this process, so they go with it.
//!
//! Modules: [`device`] (one map's exports and `/dev/mapper` names), [`maps`] (which
//! session LUNs become which maps), [`control`] (the multipathd commands).

pub mod control;
pub mod device;
pub mod maps;
mod wwids_edit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hydra_daemon::{control as ctl, PidFile, Shutdown, Signals};
use hydra_initiator::ipc::Iscsid;
use hydra_initiator::iscsid::{self, Daemon};

use crate::control::Multipathd;
use crate::{Error, Result};

pub use maps::Node;

/// multipath-tools' configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/multipath.conf";
/// And its drop-in directory (`config_dir`, fixed at build time since 0.9).
pub const DEFAULT_CONFIG_DIR: &str = "/etc/multipath/conf.d";

/// How long control clients get to finish a request once the daemon stops.
const DRAIN: Duration = Duration::from_secs(10);

/// What a node daemon runs with.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The iSCSI database (node records, iscsid.conf, initiatorname.iscsi).
    pub root: PathBuf,
    /// Pid file, control sockets, NBD sockets (`nbd/`), FUSE mounts (`fuse/`).
    pub run_dir: PathBuf,
    /// multipath.conf (a missing file is the built-in configuration).
    pub config_file: PathBuf,
    /// Its drop-ins, `*.conf` (a missing directory is none).
    pub config_dir: PathBuf,
    /// Where `mapper/` and `disk/by-id/` names are made (`/dev`).
    pub dev_dir: PathBuf,
    /// Make kernel block devices (FUSE + loop); false serves maps over NBD only.
    pub kernel_devices: bool,
}

impl NodeOptions {
    /// The defaults: /etc/multipath.conf, /etc/multipath/conf.d, /dev.
    pub fn new(root: &Path, run_dir: &Path) -> NodeOptions {
        NodeOptions {
            root: root.into(),
            run_dir: run_dir.into(),
            config_file: DEFAULT_CONFIG.into(),
            config_dir: DEFAULT_CONFIG_DIR.into(),
            dev_dir: "/dev".into(),
            kernel_devices: true,
        }
    }
}

/// A node daemon whose database and configuration are read, pid file locked and
/// sockets bound.
pub struct Started {
    node: Arc<Node>,
    iscsid_listener: ctl::Listener,
    multipathd_listener: ctl::Listener,
    signals: Signals,
    /// Last, so that it is removed after the sockets.
    _pid_file: PidFile,
}

fn start_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Node {
        what: what.into(),
        reason: e.to_string(),
    }
}

/// Everything that can fail at start-up, each error naming what failed.
pub async fn start(opts: NodeOptions) -> Result<Started> {
    let daemon = Daemon::open(&opts.root).map_err(|e| start_err("iSCSI database", e))?;
    hydra_daemon::run_dir::create(&opts.run_dir).map_err(|e| start_err("run directory", e))?;
    let pid_file = PidFile::acquire(&opts.run_dir.join(iscsid::PID_FILE), "hydra iscsid")
        .map_err(|e| start_err("pid file", e))?;
    if opts.kernel_devices {
        // Only now, with the pid file held: a FUSE mount under fuse/ is a dead
        // predecessor's, and so are the loop devices on it.
        let fuse_root = device::fuse_root(&opts.run_dir);
        let _ = tokio::task::spawn_blocking(move || crate::export::stale::sweep(&fuse_root)).await;
    }
    let node = Node::new(daemon, opts.clone())?;
    let signals = Signals::new().map_err(|e| start_err("signals", e))?;
    // Owner-only: iscsid's hands out CHAP secrets, multipathd's changes the maps.
    let iscsid_listener = ctl::bind(&opts.run_dir.join(iscsid::SOCKET), Some(0o600))
        .map_err(|e| start_err("iscsid control socket", e))?;
    let multipathd_listener = ctl::bind(&crate::control::socket_path(&opts.run_dir), Some(0o600))
        .map_err(|e| start_err("multipathd control socket", e))?;
    Ok(Started {
        node,
        iscsid_listener,
        multipathd_listener,
        signals,
        _pid_file: pid_file,
    })
}

impl Started {
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Serve until SIGTERM/SIGINT or `multipathd shutdown`; then drain the sockets,
    /// flush every map, log every session out.
    pub async fn serve(self) {
        let Started {
            node,
            iscsid_listener,
            multipathd_listener,
            mut signals,
            _pid_file,
        } = self;
        let daemon = node.iscsid().clone();
        tracing::info!(
            "iscsid: initiator {}, records under {}, control sockets {} and {}",
            daemon.initiator_name(),
            node.options().root.display(),
            iscsid_listener.path().display(),
            multipathd_listener.path().display()
        );
        let shutdown = Shutdown::new();
        // The builder first, so that it sees the automatic logins.
        let builder = tokio::spawn(node.clone().build_maps(shutdown.subscribe()));
        tokio::spawn(daemon.clone().login_automatic());
        let d = daemon.clone();
        tokio::spawn(ctl::serve::<Iscsid, _, _>(
            iscsid_listener,
            shutdown.subscribe(),
            move |req| {
                let d = d.clone();
                async move { d.handle(req).await }
            },
        ));
        let n = node.clone();
        tokio::spawn(ctl::serve::<Multipathd, _, _>(
            multipathd_listener,
            shutdown.subscribe(),
            move |req| {
                let n = n.clone();
                async move { n.handle(req).await }
            },
        ));
        let why = tokio::select! {
            sig = signals.recv() => sig,
            _ = node.shutdown_requested() => "multipathd shutdown",
        };
        tracing::info!("iscsid: {why}: stopping; flushing maps, then logging out every session");
        if !shutdown.drain(DRAIN).await {
            tracing::warn!("iscsid: requests still running after {DRAIN:?}; stopping anyway");
        }
        let _ = builder.await;
        node.flush_all_for_shutdown().await;
        daemon.logout_all().await;
    }
}
