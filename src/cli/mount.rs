//! `hydra mount` / `hydra umount` (and `mount.hydra` / `umount.hydra` as argv0, the
//! names mount(8) and umount(8) run helpers by): a filesystem mounted only while this
//! node holds its DLM lock and its PR key is registered. The work is
//! `hydra_cluster::mount`; this parses arguments and prints.
//!
//! Exit codes: 0 ok, 1 refused or failed (the message names the step), 2 usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hydra_cluster::mount::{self, options, Paths, Record, Request};
use hydra_cluster::Error;

use super::args::{parse, Parsed, Spec};

const fn opt(short: char, long: &'static str, value: bool) -> Spec {
    Spec { short, long, value }
}

/// The path options both commands take, after their own.
macro_rules! with_paths {
    ($($s:expr),* $(,)?) => {
        &[
            $($s,)*
            opt(' ', "dlm-run-dir", true),
            opt(' ', "run-dir", true),
            opt(' ', "dev-dir", true),
            opt(' ', "store-path", true),
            opt(' ', "state-dir", true),
            opt(' ', "dlm-timeout", true),
            opt(' ', "corosync-cmap-path", true),
        ]
    };
}

const MOUNT_SPECS: &[Spec] = with_paths![
    opt('t', "types", true),
    opt('o', "options", true),
    opt('a', "all", false),
    opt(' ', "fstab", true),
    opt(' ', "status", false),
    opt('r', "read-only", false),
    opt('w', "rw", false),
    // mount(8) passes these to helpers: sloppy, no mtab, verbose.
    opt('s', "sloppy", false),
    opt('n', "no-mtab", false),
    opt('v', "verbose", false),
    opt('h', "help", false),
];

const UMOUNT_SPECS: &[Spec] = with_paths![
    opt('n', "no-mtab", false),
    opt('v', "verbose", false),
    opt('h', "help", false),
];

const PATH_HELP: &str = "Paths (defaults are the real machine's):
  --dlm-run-dir DIR     hydra dlm_controld's run dir (default /run/dlm_controld)
  --run-dir DIR         the node daemon's run dir (its multipathd.sock)
  --dev-dir DIR         where the node daemon makes mapper/NAME (default /dev)
  --store-path PATH     fence_scsi's store: this node's key is PATH.key
                        (default /var/run/cluster/fence_scsi)
  --state-dir DIR       hydra mount's records (default /run/hydra/mount)
  --dlm-timeout SECS    how long each lock manager step may take (default 30)
  --corosync-cmap-path PATH
                        corosync-cmapctl, for this node's name (default /usr/sbin/corosync-cmapctl)";

const MOUNT_HELP: &str = "usage: hydra mount [-t TYPE] [-o OPTIONS] [PATHS] DEVICE DIR
       hydra mount -a [--fstab FILE] [-o OPTIONS] [PATHS]   fstab entries with x-hydra
       hydra mount [--status] [PATHS]                         what this node holds
       mount.hydra DEVICE DIR [-o OPTIONS]                    as mount(8)'s helper
Mount DEVICE's filesystem on DIR while this node holds its cluster lock: lockspace
hydra_mount, resource = the filesystem UUID, EX read-write or PR with -o ro. The lock
outlives the command (a PERSISTENT orphan of this node); hydra umount releases it.
Refused, leaving nothing behind: another node holds the lock (named), no filesystem
on DEVICE, the lock manager not running, this node fenced (its fence_scsi key is not
registered on DEVICE's map).
  -t TYPE               insist on TYPE (auto, hydra: whatever libblkid finds)
  -o OPTIONS            mount(8)'s options (ro, rw, noatime, nodev, ..., the rest
                        goes to the filesystem), and hydra's:
                          lockwait[=SECS] queue for the lock (SECS: then give up)
                          nofence         skip the PR key check: UNSAFE on a shared
                                          disk, for devices that are not node maps
                          x-hydra         the fstab marker for -a
  -r, -w                -o ro, -o rw
  -a                    mount every fstab entry with x-hydra (not noauto)
  --fstab FILE          instead of /etc/fstab
  --status              list DEVICE DIR TYPE UUID MODE of this node's mounts";

const UMOUNT_HELP: &str = "usage: hydra umount [PATHS] DIR|DEVICE
Unmount a filesystem hydra mount mounted, then release its cluster lock (adopt the
orphan and unlock it). A lock manager that does not answer in time (stuck in recovery)
is reported; the unmount has happened, and running hydra umount again releases the lock.";

fn paths(p: &Parsed) -> Result<Paths, String> {
    let mut paths = Paths::default();
    if let Some(v) = p.value("dlm-run-dir") {
        paths.dlm_run_dir = PathBuf::from(v);
    }
    if let Some(v) = p.value("run-dir") {
        paths.run_dir = Some(PathBuf::from(v));
    }
    if let Some(v) = p.value("dev-dir") {
        paths.dev_dir = PathBuf::from(v);
    }
    if let Some(v) = p.value("store-path") {
        paths.store_path = PathBuf::from(v);
    }
    if let Some(v) = p.value("state-dir") {
        paths.state_dir = PathBuf::from(v);
    }
    if let Some(v) = p.value("corosync-cmap-path") {
        paths.corosync_cmap_path = PathBuf::from(v);
    }
    if let Some(v) = p.value("dlm-timeout") {
        paths.dlm_timeout = match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Duration::from_secs_f64(s),
            _ => {
                return Err(format!(
                    "--dlm-timeout '{v}' is not a positive number of seconds"
                ))
            }
        };
    }
    Ok(paths)
}

fn usage(tool: &str, msg: &str, help: &str) -> ExitCode {
    eprintln!("{tool}: {msg}\n\n{help}");
    ExitCode::from(2)
}

fn fail(tool: &str, e: &Error) -> ExitCode {
    eprintln!("{tool}: {e}");
    ExitCode::from(if matches!(e, Error::Usage(_)) { 2 } else { 1 })
}

fn print_status(records: &[Record]) {
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|r| {
            [
                r.device.display().to_string(),
                r.dir.display().to_string(),
                r.fstype.clone(),
                r.uuid.clone(),
                r.mode.to_string(),
            ]
        })
        .collect();
    let head = ["DEVICE", "DIR", "TYPE", "UUID", "MODE"].map(String::from);
    let mut w = [0usize; 5];
    for row in std::iter::once(&head).chain(&rows) {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    for row in std::iter::once(&head).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<0$}", if i == 4 { 0 } else { w[i] }))
            .collect();
        println!("{}", line.join("  "));
    }
}

/// `hydra mount ...` (`tool` names it in messages: `mount`, `mount.hydra`).
pub fn main(tool: &str, args: Vec<String>) -> ExitCode {
    let p = match parse(&args, MOUNT_SPECS) {
        Ok(p) => p,
        Err(e) => return usage(tool, &e, MOUNT_HELP),
    };
    if p.has("help") {
        println!("{MOUNT_HELP}\n{PATH_HELP}");
        return ExitCode::SUCCESS;
    }
    let paths = match paths(&p) {
        Ok(x) => x,
        Err(e) => return usage(tool, &e, MOUNT_HELP),
    };
    let mut opts: Vec<&str> = p.values("options");
    // -r / -w as mount(8): the last of them wins over -o's ro/rw.
    if let Some((k, _)) = p
        .opts
        .iter()
        .rev()
        .find(|(k, _)| *k == "read-only" || *k == "rw")
    {
        opts.push(if *k == "read-only" { "ro" } else { "rw" });
    }
    if p.has("all") {
        if !p.positional.is_empty() {
            return usage(tool, "-a takes no DEVICE or DIR", MOUNT_HELP);
        }
        let fstab = p.value("fstab").unwrap_or("/etc/fstab");
        let text = match std::fs::read_to_string(fstab) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{tool}: {fstab}: {e}");
                return ExitCode::from(1);
            }
        };
        let entries = match super::block_on(mount::mount_all(&text, &opts, &paths)) {
            Ok(e) => e,
            Err(e) => return fail(tool, &Error::Usage(format!("{fstab}: {e}"))),
        };
        let mut code = 0;
        for e in entries {
            match e.result {
                Ok(Some(r)) => {
                    if p.has("verbose") {
                        println!("{}: mounted {} ({})", e.what, r.uuid, r.mode);
                    }
                }
                Ok(None) => {
                    if p.has("verbose") {
                        println!("{}: skipped (noauto, or mounted already)", e.what);
                    }
                }
                Err(x) => {
                    eprintln!("{tool}: {fstab} {}: {x}", e.what);
                    code = code.max(if matches!(x, Error::Usage(_)) { 2 } else { 1 });
                }
            }
        }
        return ExitCode::from(code);
    }
    if p.positional.is_empty() {
        if !opts.is_empty() || p.has("types") {
            return usage(tool, "DEVICE and DIR needed", MOUNT_HELP);
        }
        return match mount::status(&paths) {
            Ok((records, warnings)) => {
                for w in warnings {
                    eprintln!("{tool}: {w}");
                }
                print_status(&records);
                ExitCode::SUCCESS
            }
            Err(e) => fail(tool, &e),
        };
    }
    if p.has("status") {
        return usage(tool, "--status takes no DEVICE or DIR", MOUNT_HELP);
    }
    let [device, dir] = p.positional.as_slice() else {
        return usage(
            tool,
            &format!("DEVICE and DIR needed, got '{}'", p.positional.join(" ")),
            MOUNT_HELP,
        );
    };
    let options = match options::parse(&opts) {
        Ok(o) => o,
        Err(e) => return fail(tool, &e),
    };
    let req = Request {
        device: PathBuf::from(device),
        dir: PathBuf::from(dir),
        fstype: p.value("types").map(str::to_string),
        options,
    };
    match super::block_on(mount::mount(&req, &paths)) {
        Ok(r) => {
            if p.has("verbose") {
                println!(
                    "{tool}: {} mounted on {} ({}, {} lock on {})",
                    r.device.display(),
                    r.dir.display(),
                    r.fstype,
                    r.mode,
                    r.uuid
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(tool, &e),
    }
}

/// `hydra umount DIR|DEVICE`.
pub fn umount(tool: &str, args: Vec<String>) -> ExitCode {
    let p = match parse(&args, UMOUNT_SPECS) {
        Ok(p) => p,
        Err(e) => return usage(tool, &e, UMOUNT_HELP),
    };
    if p.has("help") {
        println!("{UMOUNT_HELP}\n{PATH_HELP}");
        return ExitCode::SUCCESS;
    }
    let paths = match paths(&p) {
        Ok(x) => x,
        Err(e) => return usage(tool, &e, UMOUNT_HELP),
    };
    let [target] = p.positional.as_slice() else {
        return usage(tool, "one DIR or DEVICE needed", UMOUNT_HELP);
    };
    match super::block_on(mount::umount(Path::new(target), &paths)) {
        Ok(u) => {
            for n in u.notes {
                eprintln!("{tool}: {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(tool, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(a: &[&str]) -> Parsed {
        let v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        parse(&v, MOUNT_SPECS).unwrap()
    }

    #[test]
    fn path_options() {
        let p = parsed(&[
            "--dlm-run-dir",
            "/r/dlm",
            "--run-dir=/r/node",
            "--dev-dir",
            "/d",
            "--store-path",
            "/s/fence",
            "--state-dir",
            "/st",
            "--dlm-timeout",
            "2.5",
            "/dev/x",
            "/mnt",
        ]);
        let x = paths(&p).unwrap();
        assert_eq!(x.dlm_run_dir, PathBuf::from("/r/dlm"));
        assert_eq!(x.run_dir, Some(PathBuf::from("/r/node")));
        assert_eq!(x.dev_dir, PathBuf::from("/d"));
        assert_eq!(x.store_path, PathBuf::from("/s/fence"));
        assert_eq!(x.state_dir, PathBuf::from("/st"));
        assert_eq!(x.dlm_timeout, Duration::from_millis(2500));
        assert_eq!(p.positional, ["/dev/x", "/mnt"]);
        assert_eq!(paths(&parsed(&[])).unwrap(), Paths::default());
        let e = paths(&parsed(&["--dlm-timeout", "0"])).unwrap_err();
        assert!(e.contains("--dlm-timeout '0'"), "{e}");
    }

    #[test]
    fn helper_form_options_after_the_names() {
        // mount(8) runs `mount.hydra SPEC DIR -n -o OPTS`.
        let p = parsed(&["/dev/mapper/a", "/mnt", "-n", "-o", "rw,noatime,x-hydra"]);
        assert_eq!(p.positional, ["/dev/mapper/a", "/mnt"]);
        assert_eq!(p.values("options"), ["rw,noatime,x-hydra"]);
    }
}
