//! `hydra tgtd` with real initiators (libiscsi's iscsi-ls, iscsi-inq) and side by side
//! with Debian's tgtd: discovery, identity (the WWIDs clusters have stored), ACLs, CHAP,
//! and tgt-admin's config handling.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

fn inq(args: &[&str]) -> std::process::Output {
    run(Command::new("iscsi-inq").args(args), T)
}

#[test]
fn discovery_lists_target_portal_and_luns() {
    let conf = "<target iqn.2026-11.org.hydra:disc>\n    backing-store @DIR@/a.img\n    backing-store @DIR@/b.img\n</target>\n";
    let h = Hydra::start(conf, |d| {
        sparse(&d.join("a.img"), 64 << 20);
        sparse(&d.join("b.img"), 32 << 20);
    });
    let o = run(
        Command::new("iscsi-ls").args(["-s", &format!("iscsi://127.0.0.1:{}", h.port)]),
        T,
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}\n{}", h.log());
    assert!(
        out.contains(&format!(
            "Target:iqn.2026-11.org.hydra:disc Portal:127.0.0.1:{},1",
            h.port
        )),
        "{out}"
    );
    assert!(
        out.contains("Lun:0    Type:STORAGE_ARRAY_CONTROLLER"),
        "{out}"
    );
    // iscsi-ls prints the last LBA in MiB, as it does for tgtd (256 MiB shows 255M).
    assert!(
        out.contains("Lun:1    Type:DIRECT_ACCESS (Size:63M)"),
        "{out}"
    );
    assert!(
        out.contains("Lun:2    Type:DIRECT_ACCESS (Size:31M)"),
        "{out}"
    );
}

/// The same targets.conf served by Debian's tgtd and by hydra must give byte-identical
/// identity: standard INQUIRY, unit serial (VPD 0x80) and device identification (VPD
/// 0x83, from which multipath derives the WWID).
#[test]
fn identity_matches_debian_tgtd() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    sparse(&img, 64 << 20);
    let conf = format!(
        "<target iqn.2026-11.org.hydra:one>\n    backing-store {p}\n</target>\n<target iqn.2026-11.org.hydra:two>\n    backing-store {p}\n    scsi_id multipath-10\n    scsi_sn SERIAL-42\n    allow-in-use yes\n</target>\n",
        p = img.display()
    );
    let conf_path = dir.path().join("targets.conf");
    std::fs::write(&conf_path, &conf).unwrap();
    let tgt = Tgtd::start();
    tgt.tgt_admin_execute(&conf_path);
    let h = Hydra::start(&conf, |_| {});
    for (iqn, lun) in [
        ("iqn.2026-11.org.hydra:one", 1),
        ("iqn.2026-11.org.hydra:two", 1),
        ("iqn.2026-11.org.hydra:one", 0),
    ] {
        // iscsi-inq reads the page code as a decimal number ("0x80" would be page 0).
        for page in [None, Some("128"), Some("131")] {
            let mut a: Vec<String> = Vec::new();
            if let Some(p) = page {
                a.extend(["-e".into(), "1".into(), "-c".into(), p.into()]);
            }
            let ours = inq(&a
                .iter()
                .map(String::as_str)
                .chain([h.url(iqn, lun).as_str()])
                .collect::<Vec<_>>());
            let theirs = inq(&a
                .iter()
                .map(String::as_str)
                .chain([tgt.url(iqn, lun).as_str()])
                .collect::<Vec<_>>());
            assert!(theirs.status.success(), "tgtd: {}", text(&theirs));
            assert!(ours.status.success(), "hydra: {}\n{}", text(&ours), h.log());
            assert_eq!(
                text(&ours),
                text(&theirs),
                "{iqn} LUN {lun} page {page:?} differs from tgtd"
            );
        }
    }
}

#[test]
fn acl_requires_every_configured_list() {
    let conf = "<target iqn.2026-11.org.hydra:acl>\n    backing-store @DIR@/a.img\n    initiator-name iqn.2026-11.org.hydra:allowed\n    initiator-address 127.0.0.1\n</target>\n<target iqn.2026-11.org.hydra:other-net>\n    backing-store @DIR@/a.img\n    initiator-address 10.200.9.9\n    allow-in-use yes\n</target>\n";
    let h = Hydra::start(conf, |d| sparse(&d.join("a.img"), 16 << 20));
    let url = h.url("iqn.2026-11.org.hydra:acl", 1);
    let ok = inq(&["-i", "iqn.2026-11.org.hydra:allowed", &url]);
    assert!(ok.status.success(), "{}", text(&ok));
    // Name not listed: refused (tgt >= 1.0.83 would admit it because the address matches).
    let no = inq(&["-i", "iqn.2026-11.org.hydra:stranger", &url]);
    assert!(!no.status.success());
    assert!(
        text(&no).contains("Authorization failure") || text(&no).contains("(514)"),
        "{}",
        text(&no)
    );
    // Address not listed: refused, and invisible in SendTargets.
    let no = inq(&[
        "-i",
        "iqn.2026-11.org.hydra:allowed",
        &h.url("iqn.2026-11.org.hydra:other-net", 1),
    ]);
    assert!(!no.status.success());
    let ls = run(
        Command::new("iscsi-ls").args([
            "-i",
            "iqn.2026-11.org.hydra:stranger",
            &format!("iscsi://127.0.0.1:{}", h.port),
        ]),
        T,
    );
    let out = text(&ls);
    assert!(
        !out.contains("hydra:acl") && !out.contains("other-net"),
        "{out}"
    );
    let ls = run(
        Command::new("iscsi-ls").args([
            "-i",
            "iqn.2026-11.org.hydra:allowed",
            &format!("iscsi://127.0.0.1:{}", h.port),
        ]),
        T,
    );
    let out = text(&ls);
    assert!(
        out.contains("hydra:acl") && !out.contains("other-net"),
        "{out}"
    );
}

#[test]
fn chap_one_way() {
    let conf = "<target iqn.2026-11.org.hydra:chap>\n    backing-store @DIR@/a.img\n    incominguser alice sesame-secret1\n</target>\n";
    let h = Hydra::start(conf, |d| sparse(&d.join("a.img"), 16 << 20));
    let good = format!(
        "iscsi://alice%sesame-secret1@127.0.0.1:{}/iqn.2026-11.org.hydra:chap/1",
        h.port
    );
    let o = inq(&[&good]);
    assert!(o.status.success(), "{}\n{}", text(&o), h.log());
    let bad = format!(
        "iscsi://alice%wrong-secret1@127.0.0.1:{}/iqn.2026-11.org.hydra:chap/1",
        h.port
    );
    let o = inq(&[&bad]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("Authentication failure") || text(&o).contains("(513)"),
        "{}",
        text(&o)
    );
    let o = inq(&[&h.url("iqn.2026-11.org.hydra:chap", 1)]);
    assert!(!o.status.success(), "login without CHAP must be refused");
}

#[test]
fn bad_config_names_file_line_directive_and_applies_nothing() {
    let conf = "<target iqn.2026-11.org.hydra:keep>\n    backing-store @DIR@/a.img\n</target>\n";
    let h = Hydra::start(conf, |d| sparse(&d.join("a.img"), 16 << 20));
    let bad = h.path("bad.conf");
    std::fs::write(
        &bad,
        format!(
            "<target iqn.2026-11.org.hydra:new>\n    backing-store {}\n</target>\n<target iqn.2026-11.org.hydra:broken>\n    backing-store {}\n    block-size 1000\n</target>\n",
            h.path("a.img").display(),
            h.path("a.img").display()
        ),
    )
    .unwrap();
    let before = text(&h.admin("tgt-admin", &["-s"]));
    let o = h.admin("tgt-admin", &["-e", "-c", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        msg.contains(&format!("{}:6", bad.display())) && msg.contains("block-size"),
        "{msg}"
    );
    assert_eq!(
        text(&h.admin("tgt-admin", &["-s"])),
        before,
        "nothing of a bad file may be applied"
    );
    assert!(before.contains("iqn.2026-11.org.hydra:keep") && !before.contains("hydra:new"));
}
