//! `hydra iscsiadm -m discovery`: open-iscsi's output lines and exit codes, against hydra
//! tgtd (two portals, ACLs) and Debian's tgtd.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// `hydra iscsiadm` with a node database of its own (discovery stores records there)
/// and no daemon.
fn iscsiadm(args: &[&str]) -> std::process::Output {
    let root = tempfile::tempdir().unwrap();
    run(
        Command::new(hydra())
            .arg("iscsiadm")
            .args(args)
            .env("HYDRA_ISCSI_ROOT", root.path())
            .env("HYDRA_ISCSID_RUN_DIR", root.path().join("run")),
        Duration::from_secs(30),
    )
}

#[test]
fn discovery_lines_as_open_iscsi_prints_them() {
    let conf = "<target iqn.2026-11.org.hydra:a>\n    backing-store @DIR@/a.img\n</target>\n<target iqn.2026-11.org.hydra:hidden>\n    backing-store @DIR@/b.img\n    initiator-name iqn.2026-11.org.hydra:someone-else\n</target>\n";
    let h = Hydra::start_portals(conf, 2, &[], |d| {
        sparse(&d.join("a.img"), 8 << 20);
        sparse(&d.join("b.img"), 8 << 20);
    });
    let portal = format!("127.0.0.1:{}", h.ports[0]);
    let o = iscsiadm(&["-m", "discovery", "-t", "st", "-p", &portal]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "127.0.0.1:{},1 iqn.2026-11.org.hydra:a\n127.0.0.1:{},2 iqn.2026-11.org.hydra:a\n",
            h.ports[0], h.ports[1]
        )
    );
    let o = iscsiadm(&[
        "-m",
        "discoverydb",
        "-t",
        "sendtargets",
        "-p",
        &portal,
        "--discover",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Nothing for us behind a portal: open-iscsi's message and exit code 21.
    let only_hidden = "<target iqn.2026-11.org.hydra:hidden>\n    backing-store @DIR@/b.img\n    initiator-name iqn.2026-11.org.hydra:someone-else\n</target>\n";
    let h2 = Hydra::start(only_hidden, |d| sparse(&d.join("b.img"), 8 << 20));
    let o = iscsiadm(&[
        "-m",
        "discovery",
        "-t",
        "st",
        "-p",
        &format!("127.0.0.1:{}", h2.port),
    ]);
    assert_eq!(o.status.code(), Some(21), "{}", text(&o));
    assert!(
        text(&o).contains("iscsiadm: No portals found"),
        "{}",
        text(&o)
    );
}

#[test]
fn discovery_against_debian_tgtd_and_failures() {
    let (t, _dir) = Tgtd::with_disk("iqn.2026-11.org.hydra:tgt", 8 << 20);
    let o = iscsiadm(&[
        "-m",
        "discovery",
        "-t",
        "st",
        "-p",
        &format!("127.0.0.1:{}", t.port),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("127.0.0.1:{},1 iqn.2026-11.org.hydra:tgt\n", t.port)
    );
    // Nobody listening: connection failure, exit 4.
    let o = iscsiadm(&[
        "-m",
        "discovery",
        "-t",
        "st",
        "-p",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("cannot make connection to 127.0.0.1: Connection refused"),
        "{}",
        text(&o)
    );
    // Bad parameters: exit 7.
    let o = iscsiadm(&["-m", "discovery", "-t", "isns", "-p", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    // No records: open-iscsi's exit 21.
    let o = iscsiadm(&["-m", "node", "-L", "all"]);
    assert_eq!(o.status.code(), Some(21), "{}", text(&o));
    assert!(text(&o).contains("No records found"), "{}", text(&o));
}
