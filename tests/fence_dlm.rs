//! `hydra dlm_controld` runs `hydra fence_scsi` by path (a `fence_scsi` symlink to
//! hydra, as fence-agents are installed) and unfences each node at start-up
//! (`fence_all … ` + `unfence_all` in dlm.conf): the agent, given only dlm_controld's
//! `action=on` and `node=<id>`, derives the node's key from the real corosync
//! (`key_value=id`: md5(cluster name)[:4] + nodelist position) and registers it on a
//! LUN of hydra tgtd on a third host. Then one node fences the other by its corosync
//! name (ring0 address), the victim's status says off (exit 2), and fencing oneself is
//! refused.
//!
//! Three corosync hosts in network namespaces (tests/common/cluster.rs): 1 and 2 run
//! dlm_controld, 3 runs the storage.

mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::dlm::DlmDaemon;
use common::*;
use hydra_cluster::fence::{cmap, Key};

const IQN: &str = "iqn.2026-12.org.hydra:fence-dlm";

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// `fence_scsi ARGS` on host `i` as that host's node (its initiator name and store).
fn agent(cluster: &Cluster, work: &Path, url: &str, i: usize, args: &[&str]) -> Output {
    let mut c = cluster.command(i, work.join("bin/fence_scsi"));
    c.args(["-d", url, "--initiator-name"])
        .arg(format!("iqn.2026-12.org.hydra:node{i}"))
        .arg("--store-path")
        .arg(work.join(format!("node{i}/fence_scsi")))
        .args(args);
    run(&mut c, Duration::from_secs(60))
}

#[test]
fn dlm_controld_unfences_through_fence_scsi_with_corosync_keys() {
    let cluster = Cluster::start(3);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // Storage on host 3.
    sparse(&w.join("disk.img"), 16 << 20);
    std::fs::write(
        w.join("targets.conf"),
        format!(
            "<target {IQN}>\n    backing-store {}\n</target>\n",
            w.join("disk.img").display()
        ),
    )
    .unwrap();
    let portal = format!("{}:3260", cluster.addr(3));
    let log = std::fs::File::create(w.join("tgtd.log")).unwrap();
    let tgtd = cluster
        .command(3, hydra())
        .args([
            "tgtd",
            "-f",
            "--iscsi",
            &format!("portal={portal}"),
            "-C",
            "3261",
        ])
        .arg("--run-dir")
        .arg(w.join("tgt-run"))
        .arg("--state-dir")
        .arg(w.join("tgt-state"))
        .arg("--conf")
        .arg(w.join("targets.conf"))
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _tgtd = Daemon(tgtd);
    let sock = w.join("tgt-run/socket.3261");
    let t = Instant::now();
    while !sock.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "hydra tgtd did not start:\n{}",
            std::fs::read_to_string(w.join("tgtd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("iscsi://{portal}/{IQN}/1");

    // The agent as fence-agents install it: a file named fence_scsi.
    std::fs::create_dir_all(w.join("bin")).unwrap();
    std::os::unix::fs::symlink(hydra(), w.join("bin/fence_scsi")).unwrap();

    let mut daemons = Vec::new();
    for i in 1..=2 {
        let conf = w.join(format!("dlm{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "fence_all {} devices={url} initiator_name=iqn.2026-12.org.hydra:node{i} store_path={}\nunfence_all\n",
                w.join("bin/fence_scsi").display(),
                w.join(format!("node{i}/fence_scsi")).display()
            ),
        )
        .unwrap();
        daemons.push(DlmDaemon::start(&cluster, i, &conf));
    }

    // The keys fence_scsi's formula gives, from corosync's own answer.
    let o = cluster.exec(1, &["corosync-cmapctl", "totem.cluster_name"]);
    let name = cmap::parse_cluster_name(&String::from_utf8_lossy(&o.stdout)).unwrap();
    for (i, d) in daemons.iter().enumerate() {
        let key = Key::from_id(&name, i as u32).unwrap();
        let file = w.join(format!("node{}/fence_scsi.key", i + 1));
        let t = Instant::now();
        while std::fs::read_to_string(&file).unwrap_or_default() != format!("{key}\n") {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "node {} not unfenced with key {key}:\n{}",
                i + 1,
                d.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for i in 1..=2 {
        let o = agent(&cluster, w, &url, i, &["-o", "status"]);
        assert_eq!(o.status.code(), Some(0), "node {i}: {}", text(&o));
    }
    let o = agent(&cluster, w, &url, 1, &["-o", "list-status"]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for (i, st) in [(1, "ON"), (2, "ON"), (3, "OFF")] {
        let line = format!("{},,{st}", cluster.addr(i));
        assert!(listing.lines().any(|l| l == line), "{line} in {listing}");
    }

    // Node 1 fences node 2 by its corosync name; not itself.
    let me = cluster.addr(1).to_string();
    let o = agent(&cluster, w, &url, 1, &["-o", "off", "-n", &me]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("You can not fence yourself"),
        "{}",
        text(&o)
    );
    let victim = cluster.addr(2).to_string();
    let o = agent(&cluster, w, &url, 1, &["-o", "off", "-n", &victim]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = agent(&cluster, w, &url, 2, &["-o", "status"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = agent(&cluster, w, &url, 1, &["-o", "status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    drop(daemons);
}
