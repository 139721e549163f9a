//! Every file under `examples/` is read by the program that reads it on a real machine,
//! so the documented configurations cannot drift from what hydra (and corosync, and
//! systemd) accept:
//!
//! - `targets.conf` with hydra tgtd's parser (backing stores pointed at a temporary
//!   sparse file: the parser checks that they exist);
//! - `iscsid.conf` with the initiator's (what every node record starts with);
//! - `multipath.conf` with the node daemon's, which must not warn;
//! - `dlm.conf` with dlm_controld's, and its fencing plan for each node;
//! - `fstab` with `hydra mount -a`'s, every line an `x-hydra` entry whose options parse;
//! - `corosync.conf` with `corosync -t` (a copy with a fresh authkey and node 1's address
//!   made this machine's 127.0.0.1, as corosync insists on finding itself in the
//!   nodelist);
//! - `*.service` with `systemd-analyze verify`, all at once (copies whose
//!   `/usr/local/sbin/hydra` is the hydra cargo built), which must say nothing.
//!
//! A file with no check fails the test, so a new example gets one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{hydra, run, sparse, text};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file's path relative to the repository, for messages.
fn name(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn check_targets_conf(path: &Path, tmp: &Path) {
    // Backing stores name the real machine's disk (or scripts/run.sh's @STATE@): the
    // parser checks the file exists, so each becomes a sparse file here.
    let img = tmp.join("lun.img");
    sparse(&img, 16 << 20);
    let text: String = read(path)
        .lines()
        .map(|l| match l.trim_start().strip_prefix("backing-store") {
            Some(_) => format!("    backing-store {}\n", img.display()),
            None => format!("{l}\n"),
        })
        .collect();
    let conf = hydra_target::config::parse_str(&text, path)
        .unwrap_or_else(|e| panic!("{}: {e}", name(path)));
    assert!(!conf.targets.is_empty(), "{}: no target", name(path));
    let warnings: Vec<&String> = conf
        .warnings
        .iter()
        .chain(conf.targets.iter().flat_map(|t| &t.warnings))
        .collect();
    assert!(warnings.is_empty(), "{}: {warnings:?}", name(path));
    if path.parent().is_some_and(|d| d.ends_with("cluster")) {
        // The classic shape: one target, one LUN, both nodes on both networks, CHAP
        // for discovery and for the sessions.
        let t = &conf.targets[0];
        assert_eq!((conf.targets.len(), t.luns.len()), (1, 1), "{}", name(path));
        assert_eq!(t.acl.addresses.len(), 4, "{}", name(path));
        assert_eq!(t.incoming_users.len(), 1, "{}", name(path));
        assert_eq!(conf.incoming_discovery_users.len(), 1, "{}", name(path));
    }
}

fn check_iscsid_conf(path: &Path) {
    let (node, disc) = hydra_initiator::record::parse_iscsid_conf(&name(path), &read(path))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(node.get("node.startup"), "automatic", "{}", name(path));
    assert!(
        node.chap().is_some(),
        "{}: no CHAP for sessions",
        name(path)
    );
    assert_eq!(
        disc.get("discovery.sendtargets.auth.authmethod"),
        "CHAP",
        "{}",
        name(path)
    );
}

fn check_multipath_conf(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let loaded = hydra_multipath::config::Config::parse(Some((path, &bytes)), &[])
        .unwrap_or_else(|e| panic!("{}: {e}", name(path)));
    assert!(
        loaded.warnings.is_empty(),
        "{}: {:?}",
        name(path),
        loaded.warnings
    );
}

fn check_dlm_conf(path: &Path) {
    let conf =
        hydra_dlm::config::Config::parse(path, &read(path)).unwrap_or_else(|e| panic!("{e}"));
    for node in [1, 2] {
        let plan = conf.fence_plan(node);
        assert!(
            !plan.is_default && !plan.steps.is_empty(),
            "{}: nothing fences node {node}",
            name(path)
        );
        let unfence = conf.unfence_plan(node);
        assert!(
            unfence.iter().any(|c| c.agent == "fence_scsi"),
            "{}: node {node} does not unfence with fence_scsi",
            name(path)
        );
    }
    // Node 2 wins a split: node 1's agent waits before it fences node 2, not the
    // other way round.
    let delay = |node| {
        conf.fence_plan(node)
            .steps
            .iter()
            .flatten()
            .any(|c| c.args.iter().any(|(k, _)| k == "delay"))
    };
    assert!(
        delay(2) && !delay(1),
        "{}: the delay is on fencing node 2",
        name(path)
    );
}

fn check_fstab(path: &Path) {
    let entries = hydra_cluster::mount::fstab::parse(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", name(path)));
    assert!(!entries.is_empty(), "{}: no entry", name(path));
    for e in &entries {
        assert!(
            e.is_hydra(),
            "{}: line {} is not marked x-hydra",
            name(path),
            e.line
        );
        let o = e
            .mount_options()
            .unwrap_or_else(|err| panic!("{}: {err}", name(path)));
        assert!(
            !o.noauto,
            "{}: line {}: hydra mount -a skips noauto",
            name(path),
            e.line
        );
    }
}

fn check_corosync_conf(path: &Path, tmp: &Path) {
    let key = tmp.join("authkey");
    let o = run(
        Command::new("corosync-keygen").arg("-k").arg(&key),
        Duration::from_secs(30),
    );
    assert!(
        o.status.success(),
        "corosync-keygen (scripts/setup.sh installs corosync): {}",
        text(&o)
    );
    let node1 = read(path)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("ring0_addr:")
                .map(|a| a.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{}: no ring0_addr", name(path)));
    let copy: String = read(path)
        .lines()
        .map(|l| {
            if l.trim() == "totem {" {
                format!("{l}\n    keyfile: {}\n", key.display())
            } else if l.trim() == format!("ring0_addr: {node1}") {
                format!("{}\n", l.replace(&node1, "127.0.0.1"))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let conf = tmp.join("corosync.conf");
    std::fs::write(&conf, copy).unwrap();
    let o = run(
        Command::new("corosync").arg("-t").arg("-c").arg(&conf),
        Duration::from_secs(30),
    );
    assert!(
        o.status.success(),
        "{}: corosync -t on a copy (keyfile added after `totem {{`, node 1 at 127.0.0.1) says: {}",
        name(path),
        text(&o)
    );
}

/// A copy of the unit in `dir`, running the hydra cargo built.
fn copy_unit(path: &Path, dir: &Path) {
    let body = read(path);
    assert!(
        body.contains("/usr/local/sbin/hydra "),
        "{}: runs no hydra command",
        name(path)
    );
    std::fs::write(
        dir.join(path.file_name().unwrap()),
        body.replace("/usr/local/sbin/hydra", hydra().to_str().unwrap()),
    )
    .unwrap();
}

/// `systemd-analyze verify` on every unit at once (they name each other).
fn verify_units(dir: &Path) {
    let mut units: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    units.sort();
    let o = run(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .args(&units),
        Duration::from_secs(60),
    );
    assert!(
        o.status.success() && text(&o).trim().is_empty(),
        "systemd-analyze verify {units:?} says: {}",
        text(&o)
    );
}

#[test]
fn every_example_is_read_by_what_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let mut checked = Vec::new();
    for path in files(&examples()) {
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let scratch = tmp.path().join(checked.len().to_string());
        std::fs::create_dir_all(&scratch).unwrap();
        match file.as_str() {
            "targets.conf" => check_targets_conf(&path, &scratch),
            "iscsid.conf" => check_iscsid_conf(&path),
            "multipath.conf" => check_multipath_conf(&path),
            "dlm.conf" => check_dlm_conf(&path),
            "fstab" => check_fstab(&path),
            "corosync.conf" => check_corosync_conf(&path, &scratch),
            f if f.ends_with(".service") => copy_unit(&path, &units),
            f if f.ends_with(".md") => continue,
            _ => panic!("{}: no check reads this file: add one", name(&path)),
        }
        checked.push(name(&path));
    }
    verify_units(&units);
    // The real-machine set, all there.
    for f in [
        "targets.conf",
        "iscsid.conf",
        "multipath.conf",
        "corosync.conf",
        "dlm.conf",
        "fstab",
        "systemd/hydra-tgtd.service",
        "systemd/hydra-iscsid.service",
        "systemd/hydra-dlm_controld.service",
        "systemd/hydra-mount.service",
    ] {
        let want = format!("examples/cluster/{f}");
        assert!(checked.contains(&want), "{want} is missing: {checked:?}");
    }
}
