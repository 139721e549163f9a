//! A backing file that grows: `hydra tgtadm --mode logicalunit --op update` and
//! `hydra tgt-admin --update` pick up the new size, while a session stays logged in and
//! is told with CAPACITY DATA HAS CHANGED.

mod common;

use std::process::Command;
use std::time::Duration;

use common::client::Session;
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
fn growth_is_picked_up_without_dropping_the_session() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 64 << 20));
    let url = h.url(IQN, 1);
    assert_eq!(capacity(&url), "Total size:67108864");

    // A session that stays logged in across both resizes.
    let mut s = Session::login(
        h.port,
        IQN,
        "iqn.2026-11.org.hydra:grow-watch",
        [0x40, 0, 0, 0, 0, 9],
    )
    .unwrap();
    let rc16: [u8; 16] = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    let blocks =
        |r: &common::client::Reply| u64::from_be_bytes(r.data[0..8].try_into().unwrap()) + 1;
    let r = s.command_past_ua(1, &rc16, &[], 32).unwrap();
    assert_eq!(blocks(&r), 131072);

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
    // The live session learns of it (SBC-3 §4.10), then sees the new capacity.
    let r = s.command(1, &rc16, &[], 32).unwrap();
    assert_eq!(
        (r.status, r.sense_triplet()),
        (0x02, (0x06, 0x2a, 0x09)),
        "{r:?}"
    );
    let r = s.command(1, &rc16, &[], 32).unwrap();
    assert_eq!((r.status, blocks(&r)), (0, 262144));

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
    let r = s.command_past_ua(1, &rc16, &[], 32).unwrap();
    assert_eq!((r.status, blocks(&r)), (0, 393216));
    s.logout().unwrap();
}
