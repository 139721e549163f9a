//! `hydra iscsid [-f] [--root DIR] [--run-dir DIR] [--dev-dir DIR] [--multipath-config F]`:
//! the node daemon. open-iscsi's iscsid and multipathd in one process
//! (`hydra_multipath::node`): it reads the node database under the root (default
//! /etc/iscsi, or $HYDRA_ISCSI_ROOT), generates initiatorname.iscsi when missing, logs in
//! the `node.startup = automatic` records, serves `hydra iscsiadm` on
//! `<run-dir>/iscsid.sock` (default /run/hydra-iscsid, or $HYDRA_ISCSID_RUN_DIR), builds
//! a multipath map per WWID over the sessions' LUNs as multipath.conf says, exports
//! each as `<dev-dir>/mapper/<alias>` and `<run-dir>/nbd/<alias>.sock`, and serves
//! `hydra multipathd`/`multipath`/`mpathpersist` on `<run-dir>/multipathd.sock`.
//! Without -f it detaches once the sockets are bound; SIGTERM/SIGINT flush every map
//! and log every session out before it exits.

use std::path::PathBuf;
use std::process::ExitCode;

use hydra_initiator::iscsid;
use hydra_multipath::node::{self, NodeOptions};

use super::args::{parse, Spec};

const SPECS: &[Spec] = &[
    Spec {
        short: 'f',
        long: "foreground",
        value: false,
    },
    Spec {
        short: ' ',
        long: "root",
        value: true,
    },
    Spec {
        short: ' ',
        long: "run-dir",
        value: true,
    },
    Spec {
        short: ' ',
        long: "dev-dir",
        value: true,
    },
    Spec {
        short: ' ',
        long: "multipath-config",
        value: true,
    },
    Spec {
        short: ' ',
        long: "multipath-config-dir",
        value: true,
    },
    Spec {
        short: ' ',
        long: "no-kernel-devices",
        value: false,
    },
    Spec {
        short: 'd',
        long: "debug",
        value: true,
    },
    Spec {
        short: 'h',
        long: "help",
        value: false,
    },
];

const HELP: &str = "usage: hydra iscsid [-f] [--root DIR] [--run-dir DIR] [--dev-dir DIR]
                    [--multipath-config FILE] [--multipath-config-dir DIR]
  -f, --foreground        stay in the foreground, log to stderr
  --root DIR              node database, iscsid.conf, initiatorname.iscsi (default /etc/iscsi)
  --run-dir DIR           control sockets iscsid.sock and multipathd.sock, the maps' NBD
                          sockets nbd/<alias>.sock and FUSE files fuse/<alias>/
                          (default /run/hydra-iscsid)
  --dev-dir DIR           where mapper/<alias>, its partitions and disk/by-id/dm-uuid-mpath-<wwid>
                          are made, as links to the loop devices serving the maps (default /dev;
                          a second daemon on one machine uses its own)
  --multipath-config FILE multipath.conf (default /etc/multipath.conf; missing: built-in defaults)
  --multipath-config-dir DIR
                          its *.conf drop-ins (default /etc/multipath/conf.d)
  --no-kernel-devices     serve maps over NBD only (no FUSE, loop or dev-dir links)
  -d, --debug N           accepted for open-iscsi compatibility; use RUST_LOG=debug

Maps: each WWID seen on the sessions' LUNs becomes one map when multipath.conf's blacklist
and find_multipaths allow it (the bindings and wwids files are multipath.conf's
bindings_file and wwids_file, default /etc/multipath/bindings and /etc/multipath/wwids).
Partitions appear as mapper/<alias><partition_delimiter>N when a writer closes the device
(sfdisk, parted) and on `hydra multipathd reconfigure`. A map goes on `hydra multipath -f`,
or when its last session logs out and its device is not in use.";

pub fn main(args: Vec<String>) -> Result<ExitCode, String> {
    let p = parse(&args, SPECS)?;
    if p.has("help") {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(x) = p.positional.first() {
        return Err(format!("unexpected argument '{x}'\n{HELP}"));
    }
    let root = p
        .value("root")
        .map(PathBuf::from)
        .unwrap_or_else(iscsid::default_root);
    let run_dir = p
        .value("run-dir")
        .map(PathBuf::from)
        .unwrap_or_else(iscsid::default_run_dir);
    let mut opts = NodeOptions::new(&root, &run_dir);
    if let Some(d) = p.value("dev-dir") {
        opts.dev_dir = d.into();
    }
    if let Some(f) = p.value("multipath-config") {
        opts.config_file = f.into();
    }
    if let Some(d) = p.value("multipath-config-dir") {
        opts.config_dir = d.into();
    }
    opts.kernel_devices = !p.has("no-kernel-devices");
    let foreground = p.has("foreground");
    if !foreground {
        hydra_daemon::detach::detach(&run_dir, "iscsid.log", "iscsid")?;
    }
    super::init_logging("info", foreground);
    super::keep_io_buffers();
    // Two workers: a map's FUSE file is served on this runtime while the kernel waits
    // on it (loop attach, partx, mkfs), and the sessions' I/O runs here too.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let started = node::start(opts).await.map_err(|e| e.to_string());
        hydra_daemon::detach::report_ready(started.as_ref().map(|_| ()).map_err(|e| e.clone()));
        started?.serve().await;
        Ok::<(), String>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
