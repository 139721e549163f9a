//! Portal groups and ALUA (`portal-group` in targets.conf, `hydra tgtadm --mode portal
//! --op update`), against a real daemon with two loopback portals, checked with
//! libiscsi's tools: the tag each portal reports, INQUIRY TPGS, the target port
//! designators of VPD 0x83, and a standby group refusing media access with NOT READY
//! 04/0B until it is made active.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);
const IQN: &str = "iqn.2026-11.org.hydra:alua";

fn tool(name: &str, args: &[&str]) -> std::process::Output {
    run(Command::new(name).args(args), T)
}

/// `hydra tgtadm --mode portal --op update --param PARAM` against `h`.
fn portal_update(h: &Hydra, param: &str) -> std::process::Output {
    h.admin(
        "tgtadm",
        &["--mode", "portal", "--op", "update", "--param", param],
    )
}

fn start() -> Hydra {
    let conf = format!(
        "portal-group 1 127.0.0.1:@PORT1@\nportal-group 2 127.0.0.1:@PORT2@ standby\n<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n"
    );
    Hydra::start_portals(&conf, 2, &[], |d| sparse(&d.join("a.img"), 64 << 20))
}

#[test]
fn portal_groups_report_tags_tpgs_and_designators() {
    let h = start();
    let ls = tool("iscsi-ls", &[&format!("iscsi://127.0.0.1:{}", h.ports[0])]);
    let out = text(&ls);
    assert!(
        out.contains(&format!("Portal:127.0.0.1:{},1", h.ports[0])),
        "{out}"
    );
    assert!(
        out.contains(&format!("Portal:127.0.0.1:{},2", h.ports[1])),
        "{out}"
    );

    let std_inq = tool("iscsi-inq", &[&h.url_via(0, IQN, 1)]);
    assert!(text(&std_inq).contains("TPGS:1"), "{}", text(&std_inq));
    let vpd = tool(
        "iscsi-inq",
        &["-e", "1", "-c", "131", &h.url_via(0, IQN, 1)],
    );
    let out = text(&vpd);
    assert!(vpd.status.success(), "{out}");
    assert!(out.contains("RELATIVE_TARGET_PORT"), "{out}");
    assert!(out.contains("TARGET_PORT_GROUP"), "{out}");
    // The LU designators, from which the WWID comes, are still there.
    assert!(out.contains("IET     00010001"), "{out}");
}

#[test]
fn standby_group_refuses_media_access_until_made_active() {
    let h = start();
    let via2 = h.url_via(1, IQN, 1);
    let refused = tool("iscsi-readcapacity16", &[&via2]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("0x040b"), "{}", text(&refused));
    let ok = tool("iscsi-readcapacity16", &[&h.url_via(0, IQN, 1)]);
    assert!(ok.status.success(), "{}", text(&ok));

    let show = text(&h.admin("tgtadm", &["--mode", "portal", "--op", "show"]));
    assert!(show.contains("ALUA state: standby"), "{show}");
    let up = portal_update(&h, "tpgt=2,state=active/non-optimized");
    assert!(up.status.success(), "{}", text(&up));
    let now = tool("iscsi-readcapacity16", &[&via2]);
    assert!(now.status.success(), "{}", text(&now));
    assert!(text(&now).contains("Total size:67108864"), "{}", text(&now));

    let bad = portal_update(&h, "tpgt=9,state=standby");
    assert!(!bad.status.success());
    assert!(text(&bad).contains("no portal group 9"), "{}", text(&bad));
}

#[test]
fn without_portal_groups_alua_stays_off() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start_portals(&conf, 2, &[], |d| sparse(&d.join("a.img"), 64 << 20));
    let std_inq = tool("iscsi-inq", &[&h.url_via(1, IQN, 1)]);
    assert!(text(&std_inq).contains("TPGS:0"), "{}", text(&std_inq));
    let up = portal_update(&h, "tpgt=1,state=standby");
    assert!(!up.status.success());
    assert!(text(&up).contains("ALUA is off"), "{}", text(&up));
}

#[test]
fn a_portal_group_naming_no_portal_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("targets.conf");
    std::fs::write(&conf, "portal-group 1 127.0.0.1:9\n").unwrap();
    let port = free_port();
    let out = run(
        Command::new(hydra())
            .args([
                "tgtd",
                "-f",
                "--iscsi",
                &format!("portal=127.0.0.1:{port}"),
                "-C",
            ])
            .arg((10_000 + port % 50_000).to_string())
            .arg("--run-dir")
            .arg(dir.path().join("run"))
            .arg("--conf")
            .arg(&conf),
        T,
    );
    assert!(!out.status.success());
    let e = text(&out);
    assert!(
        e.contains(&format!("{}:1", conf.display()))
            && e.contains("portal-group")
            && e.contains("127.0.0.1:9 is not a portal of this daemon"),
        "{e}"
    );
}
