//! A backing file that grows: `hydra tgtadm --mode logicalunit --op update` and
//! `hydra tgt-admin --update` pick up the new size (CAPACITY DATA HAS CHANGED itself is
//! checked in the LUN's unit tests).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);
const IQN: &str = "iqn.2026-11.org.hydra:grow";

fn capacity(url: &str) -> String {
    let o = run(Command::new("iscsi-readcapacity16").arg(url), T);
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
        .lines()
        .find(|l| l.starts_with("Total size:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn growth_is_picked_up_by_tgtadm_and_tgt_admin() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 64 << 20));
    let url = h.url(IQN, 1);
    assert_eq!(capacity(&url), "Total size:67108864");

    std::fs::OpenOptions::new()
        .write(true)
        .open(h.path("a.img"))
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    let up = h.admin(
        "tgtadm",
        &[
            "--mode",
            "logicalunit",
            "--op",
            "update",
            "--tid",
            "1",
            "--lun",
            "1",
        ],
    );
    assert!(up.status.success(), "{}", text(&up));
    assert!(text(&up).contains("67108864 -> 134217728"), "{}", text(&up));
    assert_eq!(capacity(&url), "Total size:134217728");

    std::fs::OpenOptions::new()
        .write(true)
        .open(h.path("a.img"))
        .unwrap()
        .set_len(192 << 20)
        .unwrap();
    let conf_path = h.path("targets.conf");
    let up = h.admin(
        "tgt-admin",
        &["-c", conf_path.to_str().unwrap(), "--update", "ALL"],
    );
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("134217728 -> 201326592"),
        "{}",
        text(&up)
    );
    assert_eq!(capacity(&url), "Total size:201326592");
}
