//! `hydra fence_scsi` against a real hydra tgtd LUN over iSCSI URLs: two nodes (two
//! initiator names, so two I_T nexuses and two keys) unfence, one fences the other,
//! the victim's writes then fail with RESERVATION CONFLICT at the target and its
//! status says off (exit 2), while the survivor's says on; fencing oneself is refused,
//! an unreachable device fails the action naming it, and the victim unfences again.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::client::Session;
use common::node_daemon::{write_multipath_conf, NodeDaemon};
use common::*;
use hydra_multipath::control::{PrAnswer, PrInAction, Request, Response};

const IQN: &str = "iqn.2026-11.org.hydra:fence";
const CONFLICT: u8 = 0x18;
/// The agent's fixed ISID (hydra_cluster::fence::options::DEFAULT_ISID).
const AGENT_ISID: [u8; 6] = [0x40, 0x00, 0x68, 0x79, 0x66, 0x73];

fn start() -> Hydra {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/disk.img\n</target>\n");
    Hydra::start(&conf, |d| sparse(&d.join("disk.img"), 16 << 20))
}

fn initiator(node: &str) -> String {
    format!("iqn.2026-11.org.hydra:fence-{node}")
}

/// `hydra fence_scsi ARGS` as node `node` (its initiator name and store path).
fn agent(dir: &Path, node: &str, args: &[&str]) -> Output {
    let store = dir.join(node).join("fence_scsi");
    let mut c = Command::new(hydra());
    c.arg("fence_scsi")
        .args(["--initiator-name", &initiator(node), "--store-path"])
        .arg(&store)
        .args(["--power-timeout", "10"])
        .args(args);
    run(&mut c, Duration::from_secs(60))
}

/// `hydra fence_scsi` with `lines` on stdin and no arguments (how dlm_controld runs it).
fn agent_stdin(lines: &str) -> Output {
    let mut child = Command::new(hydra())
        .arg("fence_scsi")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn write(s: &mut Session, lba: u32) -> u8 {
    let l = lba.to_be_bytes();
    s.command(
        1,
        &[0x2a, 0, l[0], l[1], l[2], l[3], 0, 0, 1, 0],
        &[0x5a; 512],
        0,
    )
    .unwrap()
    .status
}

#[test]
fn on_on_off_fences_the_victim() {
    let h = start();
    let dir = tempfile::tempdir().unwrap();
    let url = h.url(IQN, 1);

    // Both nodes unfence: keys registered, one WERO reservation.
    for (node, key) in [("a", "aaaa"), ("b", "bbbb")] {
        let o = agent(dir.path(), node, &["-o", "on", "-k", key, "-d", &url]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "on {node}: {}{}",
            text(&o),
            h.log()
        );
        assert!(text(&o).contains("Success: Powered ON"), "{}", text(&o));
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b/fence_scsi.key")).unwrap(),
        "bbbb\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b/fence_scsi.dev")).unwrap(),
        format!("{url}\n")
    );

    // monitor: key and device files there, devices answer; a node never unfenced fails.
    let o = agent(dir.path(), "a", &["-o", "monitor"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = agent(dir.path(), "c", &["-o", "monitor", "-d", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("fence_scsi.key"), "{}", text(&o));

    // Node b writes through the I_T nexus it registered: allowed under WERO.
    let mut b = Session::login(h.port, IQN, &initiator("b"), AGENT_ISID).unwrap();
    b.command_past_ua(1, &[0, 0, 0, 0, 0, 0], &[], 0).unwrap();
    assert_eq!(write(&mut b, 0), 0);

    // Fencing oneself is refused.
    let o = agent(dir.path(), "a", &["-o", "off", "-k", "aaaa", "-d", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("You can not fence yourself"),
        "{}",
        text(&o)
    );

    // Node a fences node b.
    let o = agent(dir.path(), "a", &["-o", "off", "-k", "bbbb", "-d", &url]);
    assert_eq!(o.status.code(), Some(0), "off: {}{}", text(&o), h.log());
    assert!(text(&o).contains("Success: Powered OFF"), "{}", text(&o));
    // The preempted nexus first hears of it as a unit attention (SPC-4 §5.13.11.2.6:
    // REGISTRATIONS PREEMPTED, 06h/2Ah/05h), then every write is refused.
    let l = 1u32.to_be_bytes();
    let w = [0x2a, 0, l[0], l[1], l[2], l[3], 0, 0, 1, 0];
    let r = b.command(1, &w, &[0x5a; 512], 0).unwrap();
    assert_eq!((r.status, r.sense_triplet()), (2, (6, 0x2a, 5)), "{r:?}");
    let r = b.command_past_ua(1, &w, &[0x5a; 512], 0).unwrap();
    assert_eq!(r.status, CONFLICT, "the fenced node's write: {r:?}");
    assert_eq!(write(&mut b, 1), CONFLICT, "and the next one");
    drop(b);

    // Again: nothing left to do.
    let o = agent(dir.path(), "a", &["-o", "off", "-k", "bbbb", "-d", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Already OFF"), "{}", text(&o));

    // The fenced node may not fence back: its key is gone and it does not put it back
    // (fence_scsi.py registers its own key first, which would undo the fence).
    let o = agent(dir.path(), "b", &["-o", "off", "-k", "aaaa", "-d", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("this node has been fenced"),
        "{}",
        text(&o)
    );

    // A survivor whose agent speaks through a new nexus (another ISID, as after a
    // re-login) registers its key there, then fences.
    let o = agent(dir.path(), "c", &["-o", "on", "-k", "cccc", "-d", &url]);
    assert_eq!(o.status.code(), Some(0), "on c: {}", text(&o));
    let o = agent(
        dir.path(),
        "a",
        &[
            "-o",
            "off",
            "-k",
            "cccc",
            "-d",
            &url,
            "--isid",
            "400068796674",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "off c: {}{}", text(&o), h.log());
    let o = agent(dir.path(), "c", &["-o", "status"]);
    assert_eq!(o.status.code(), Some(2), "c fenced: {}", text(&o));

    // Status with the recorded key and devices (stdin, as the watchdog check has it).
    let store_b = dir.path().join("b/fence_scsi");
    let o = agent_stdin(&format!(
        "# status of node b\naction=status\nstore_path={}\ninitiator_name={}\n",
        store_b.display(),
        initiator("b")
    ));
    assert_eq!(o.status.code(), Some(2), "victim status: {}", text(&o));
    assert!(text(&o).contains("Status: OFF"), "{}", text(&o));
    let mut c = Command::new(hydra());
    c.arg("fence_scsi_check")
        .args(["--initiator-name", &initiator("b"), "--store-path"])
        .arg(&store_b);
    assert_eq!(run(&mut c, Duration::from_secs(60)).status.code(), Some(2));
    let o = agent(dir.path(), "a", &["-o", "status"]);
    assert_eq!(o.status.code(), Some(0), "survivor status: {}", text(&o));
    assert!(text(&o).contains("Status: ON"), "{}", text(&o));

    // The victim comes back: it unfences before writing again.
    let o = agent(dir.path(), "b", &["-o", "on", "-k", "bbbb"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = agent(dir.path(), "b", &["-o", "status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut b = Session::login(h.port, IQN, &initiator("b"), AGENT_ISID).unwrap();
    b.command_past_ua(1, &[0, 0, 0, 0, 0, 0], &[], 0).unwrap();
    assert_eq!(write(&mut b, 2), 0);
}

#[test]
fn unreachable_device_fails_naming_it() {
    let h = start();
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("iscsi://127.0.0.1:{}/{IQN}/1", free_port());
    let devs = format!("{},{dead}", h.url(IQN, 1));
    let o = agent(dir.path(), "a", &["-o", "on", "-k", "aaaa", "-d", &devs]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&dead), "{}", text(&o));
    let o = agent(
        dir.path(),
        "a",
        &["-o", "status", "-k", "aaaa", "-d", "/dev/sdz"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("/dev/sdz"), "{}", text(&o));
    // A map with no node daemon behind it.
    let run_dir = dir.path().join("run");
    let o = agent(
        dir.path(),
        "a",
        &[
            "-o",
            "status",
            "-k",
            "aaaa",
            "-d",
            "/dev/mapper/mpatha",
            "--run-dir",
            run_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("/dev/mapper/mpatha"), "{}", text(&o));
}

#[test]
fn metadata_and_validate_all() {
    let o = agent_stdin("action=metadata\n");
    assert_eq!(o.status.code(), Some(0));
    let xml = String::from_utf8(o.stdout).unwrap();
    assert!(xml.starts_with("<?xml") && xml.contains("<resource-agent name=\"fence_scsi\""));
    assert_eq!(
        agent_stdin("action=validate-all\nport=n1\n").status.code(),
        Some(0)
    );
    assert_eq!(agent_stdin("action=validate-all\n").status.code(), Some(1));
    assert_eq!(
        agent_stdin("action=validate-all\nkey=0\n").status.code(),
        Some(1)
    );
    let o = Command::new(hydra())
        .args(["fence_scsi", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

/// The registrations of `key` on the map, one per I_T nexus (READ FULL STATUS).
fn nexuses(node: &NodeDaemon, key: u64) -> usize {
    match node.ask(Request::PrIn {
        map: "mpatha".into(),
        action: PrInAction::ReadFullStatus,
    }) {
        Response::Pr(PrAnswer::FullStatus { descriptors, .. }) => {
            descriptors.iter().filter(|d| d.key == key).count()
        }
        other => panic!("read full status: {other:?}\n{}", node.log()),
    }
}

/// A node daemon's map over two portals as one node (key registered on both paths),
/// an iSCSI URL as the other: each fences the other through its kind of device.
#[test]
fn map_of_the_node_daemon_registers_every_path() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/disk.img\n</target>\n");
    let h = Hydra::start_portals(&conf, 2, &[], |d| sparse(&d.join("disk.img"), 16 << 20));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("iscsi")).unwrap();
    write_multipath_conf(dir, "", "");
    let portals = [
        format!("127.0.0.1:{}", h.ports[0]),
        format!("127.0.0.1:{}", h.ports[1]),
    ];
    let node = NodeDaemon::start(dir, &["--no-kernel-devices"]);
    for p in &portals {
        node.adm(&["-m", "discovery", "-t", "st", "-p", p]);
        node.adm(&["-m", "node", "-T", IQN, "-p", p, "--login"]);
    }
    node.wait_for("map mpatha with two paths", || {
        match node.ask(Request::Snapshots { map: None }) {
            Response::Snapshots(m) => m.len() == 1 && m[0].paths().count() == 2,
            _ => false,
        }
    });
    let map = dir.join("dev/mapper/mpatha");
    let map = map.to_str().unwrap();
    let (run_dir, dev_dir) = (dir.join("run"), dir.join("dev"));
    let via_map = |args: &[&str]| {
        let mut a = vec![
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--dev-dir",
            dev_dir.to_str().unwrap(),
            "-d",
            map,
        ];
        a.extend_from_slice(args);
        agent(dir, "m", &a)
    };
    let url = h.url(IQN, 1);

    // Unfence through the map: the key on both paths (two I_T nexuses).
    let o = via_map(&["-o", "on", "-k", "a1"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o), node.log());
    assert_eq!(nexuses(&node, 0xa1), 2);
    let o = agent(dir, "u", &["-o", "on", "-k", "b2", "-d", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The URL node fences the map node: gone from both paths.
    let o = agent(dir, "u", &["-o", "off", "-k", "a1", "-d", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(nexuses(&node, 0xa1), 0);
    let o = via_map(&["-o", "status"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // The map node unfences again and fences the URL node through the map.
    let o = via_map(&["-o", "on", "-k", "a1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = via_map(&["-o", "off", "-k", "b2"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o), node.log());
    let o = agent(dir, "u", &["-o", "status"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(nexuses(&node, 0xa1), 2);
    let o = via_map(&["-o", "status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A map the daemon does not have is named.
    let other = dir.join("dev/mapper/mpathq");
    let o = agent(
        dir,
        "m",
        &[
            "-o",
            "status",
            "-k",
            "a1",
            "-d",
            other.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--dev-dir",
            dev_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("mpathq"), "{}", text(&o));
    drop(node);
}
