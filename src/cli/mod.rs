//! Argument parsing for each classic tool hydra stands in for.

mod args;
mod dlm_controld;
mod dlm_tool;
mod fence_scsi;
mod iscsi_perf;
mod iscsiadm;
mod iscsid;
mod mount;
mod mpathpersist;
mod multipath;
mod multipathd;
mod tgt_admin;
mod tgtadm;
mod tgtd;

use std::process::ExitCode;

/// The tool names hydra answers to (as subcommands and as `argv[0]`).
pub const TOOLS: &[&str] = &[
    "tgtd",
    "tgtadm",
    "tgt-admin",
    "iscsi-perf",
    "iscsiadm",
    "iscsid",
    "dlm_controld",
    "dlm_tool",
    "multipath",
    "multipathd",
    "mpathpersist",
    "fence_scsi",
    "fence_scsi_check",
    "mount",
    "umount",
    "mount.hydra",
    "umount.hydra",
];

pub const USAGE: &str = "usage: hydra <command> [options]

commands (each also runs when hydra is invoked through a symlink of that name):
  tgtd       the iSCSI target daemon (tgtd's options)
  tgtadm     runtime target administration over the control socket (tgtadm's options)
  tgt-admin  apply /etc/tgt/targets.conf to a running daemon (tgt-admin's options)
  iscsid     the initiator daemon: holds this node's sessions (open-iscsi's iscsid)
  iscsiadm   open-iscsi's iscsiadm: discovery, node records, login/logout, sessions
  iscsi-perf load a LUN with reads or writes through hydra's initiator (libiscsi's iscsi-perf options)
  dlm_controld the lock manager daemon on corosync (dlm_controld's options, dlm.conf)
  dlm_tool   lock manager administration and locking from the shell (dlm_tool's commands)
  multipath  list, flush and reload the node's multipath maps (multipath's options)
  multipathd multipathd's commands to the node daemon (show paths, show topology, ...)
  mpathpersist persistent reservations on a multipath map (mpathpersist's options)
  fence_scsi the fence_scsi fence agent: SCSI-3 PR fencing of maps and iSCSI LUNs
  fence_scsi_check fence_scsi's watchdog check (exit 2 when this node's key is gone)
  mount      mount a shared filesystem under its cluster lock (checks this node's PR key)
  umount     unmount it and release the lock (mount.hydra, umount.hydra: helper names)

run 'hydra <command> --help' for a command's options";

/// Run one tool with its arguments (`argv[0]` already removed).
pub fn run(tool: &str, args: Vec<String>) -> ExitCode {
    let r = match tool {
        "tgtd" => tgtd::main(args),
        "tgtadm" => tgtadm::main(args),
        "tgt-admin" => tgt_admin::main(args),
        "iscsi-perf" => iscsi_perf::main(args),
        "iscsiadm" => iscsiadm::main(args),
        "iscsid" => iscsid::main(args),
        "dlm_controld" => dlm_controld::main(args),
        "dlm_tool" => dlm_tool::main(args),
        "multipath" => multipath::main(args),
        "multipathd" => multipathd::main(args),
        "mpathpersist" => mpathpersist::main(args),
        "fence_scsi" => fence_scsi::main(args),
        "fence_scsi_check" => fence_scsi::check(args),
        "mount" | "mount.hydra" => Ok(mount::main(tool, args)),
        "umount" | "umount.hydra" => Ok(mount::umount(tool, args)),
        _ => unreachable!("TOOLS lists every tool"),
    };
    match r {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{tool}: {msg}");
            ExitCode::from(22) // tgtadm exits with errno values; EINVAL for usage errors
        }
    }
}

/// A current-thread runtime for the short-lived admin tools.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Log to stderr, level from RUST_LOG, else `default` ("info", "debug"). Colours only
/// in the foreground on a terminal: a log redirected to a file (`hydra iscsid -f
/// 2>log`, a test's captured output, journald) gets plain text.
pub fn init_logging(default: &str, foreground: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(foreground && std::io::stderr().is_terminal())
        .init();
}

/// Every READ gets a fresh buffer of its transfer length. glibc serves allocations above
/// its (dynamic) mmap threshold with mmap and gives freed heap tops back to the kernel,
/// so at 1 MiB per command the daemon spent a third of its time in page faults and
/// munmap, and sequential throughput halved depending on the threshold's history.
/// Fixing both thresholds keeps freed buffers in the allocator for the next command.
pub fn keep_io_buffers() {
    // 32 MiB is glibc's largest mmap threshold on 64-bit (HEAP_MAX_SIZE / 2): larger
    // than any data transfer (MaxBurstLength is at most 16 MiB).
    // SAFETY: mallopt only changes allocator tunables; it is called before any thread
    // of ours exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
