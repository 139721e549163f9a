//! `hydra iscsid [-f] [--root DIR] [--run-dir DIR]`: open-iscsi's iscsid for hydra's
//! initiator. It reads the node database under the root (default /etc/iscsi, or
//! $HYDRA_ISCSI_ROOT), generates initiatorname.iscsi when missing, logs in the
//! `node.startup = automatic` records, and serves `hydra iscsiadm` on
//! `<run-dir>/iscsid.sock` (default /run/hydra-iscsid, or $HYDRA_ISCSID_RUN_DIR).
//! Without -f it detaches once the socket is bound; SIGTERM/SIGINT log every session
//! out before it exits.

use std::path::PathBuf;
use std::process::ExitCode;

use hydra_initiator::iscsid;

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

const HELP: &str = "usage: hydra iscsid [-f] [--root DIR] [--run-dir DIR]
  -f, --foreground  stay in the foreground, log to stderr
  --root DIR        node database, iscsid.conf, initiatorname.iscsi (default /etc/iscsi)
  --run-dir DIR     where the control socket iscsid.sock is made (default /run/hydra-iscsid)
  -d, --debug N     accepted for open-iscsi compatibility; use RUST_LOG=debug";

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
    let foreground = p.has("foreground");
    if !foreground {
        hydra_daemon::detach::detach(&run_dir, "iscsid.log", "iscsid")?;
    }
    super::init_logging(foreground);
    super::keep_io_buffers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let started = iscsid::start(&root, &run_dir)
            .await
            .map_err(|e| e.to_string());
        hydra_daemon::detach::report_ready(started.as_ref().map(|_| ()).map_err(|e| e.clone()));
        started?.serve().await;
        Ok::<(), String>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
