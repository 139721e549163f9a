//! `show` layouts against text captured from Debian's tgtd 1.0.85 (fixtures/show/*.txt),
//! and tid/LUN numbering against what real tgt-admin assigned for the same configs:
//! fixtures/conf/numbering*.conf were applied with `tgt-admin -C 7 -e -c FILE` on a fresh
//! tgtd (files under /tmp/cfgx) and `tgtadm --op show` captured into
//! fixtures/show/numbering*.txt. Here hydra parses the same configs over files of the
//! same sizes, and the views built from its Config must print the same text.

use std::path::Path;

use hydra_target::acl::AddrPattern;
use hydra_target::config::{self, Config};
use hydra_target::show::{self, ConnView, LunView, NexusView, SysView, TargetView};

fn fixture(p: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The captures used these paths.
const CAPTURE_DIR: &str = "/tmp/cfgx";

fn controller(tid: u32) -> LunView {
    LunView {
        lun: 0,
        type_: "controller".into(),
        scsi_id: format!("IET     {tid:04x}0000"),
        scsi_sn: format!("beaf{tid}0"),
        size_bytes: 0,
        block_size: 1,
        online: true,
        removable: false,
        prevent_removal: false,
        readonly: false,
        swp: false,
        thin_provisioning: false,
        backing_type: "null".into(),
        backing_path: "None".into(),
        backing_flags: String::new(),
    }
}

fn disk(tid: u32, lun: u64, size: u64, path: &str) -> LunView {
    LunView {
        lun,
        type_: "disk".into(),
        scsi_id: format!("IET     {tid:04x}{lun:04x}"),
        scsi_sn: format!("beaf{tid}{lun}"),
        size_bytes: size / 512 * 512,
        block_size: 512,
        online: true,
        removable: false,
        prevent_removal: false,
        readonly: false,
        swp: false,
        thin_provisioning: false,
        backing_type: "rdwr".into(),
        backing_path: path.into(),
        backing_flags: String::new(),
    }
}

/// What the daemon would show for a freshly applied config (no sessions), with the
/// temp dir printed as the capture's directory.
fn views(cfg: &Config, dir: &Path) -> Vec<TargetView> {
    let mut targets: Vec<_> = cfg.targets.iter().collect();
    targets.sort_by_key(|t| t.tid);
    targets
        .into_iter()
        .map(|t| {
            let mut luns = vec![controller(t.tid)];
            for l in &t.luns {
                let s = &l.settings;
                let size = std::fs::metadata(&s.path).unwrap().len() / s.block_size as u64
                    * s.block_size as u64;
                let shown = s
                    .path
                    .display()
                    .to_string()
                    .replace(&dir.display().to_string(), CAPTURE_DIR);
                let mut v = disk(t.tid, l.lun, size, &shown);
                v.scsi_id = s.scsi_id.clone().unwrap_or(v.scsi_id);
                v.scsi_sn = s.scsi_sn.clone().unwrap_or(v.scsi_sn);
                v.block_size = s.block_size;
                v.online = s.online;
                v.removable = s.removable;
                v.readonly = s.readonly;
                v.thin_provisioning = s.thin_provisioning;
                v.backing_flags = show::backing_flags(s.o_direct, s.o_sync);
                luns.push(v);
            }
            TargetView {
                tid: t.tid,
                iqn: t.iqn.clone(),
                driver: "iscsi".into(),
                state: if t.offline { "offline" } else { "ready" }.into(),
                nexuses: vec![],
                luns,
                accounts: t.incoming_users.iter().map(|a| a.user.clone()).collect(),
                outgoing_account: t.outgoing_user.as_ref().map(|a| a.user.clone()),
                acl_addresses: t.acl.addresses.iter().map(|a| a.to_string()).collect(),
                acl_names: t.acl.names.clone(),
            }
        })
        .collect()
}

fn files(dir: &Path, list: &[(&str, u64)]) {
    for (name, size) in list {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        f.set_len(*size).unwrap();
    }
}

fn parse_fixture(conf: &str, dir: &Path) -> Config {
    let text = fixture(conf).replace("@DIR@", &dir.display().to_string());
    config::parse_str(&text, &dir.join("targets.conf")).unwrap()
}

#[test]
fn numbering_matches_real_tgt_admin() {
    let d = tempfile::tempdir().unwrap();
    const GIB: u64 = 1 << 30;
    files(
        d.path(),
        &[
            ("zz.img", GIB),
            ("aa.img", GIB),
            ("mm.img", GIB),
            ("d1.img", GIB),
            ("d2.img", GIB),
            ("c1.img", GIB),
            ("c2.img", GIB),
            ("c3.img", GIB),
            ("small.img", 1_000_000),
            ("five.img", 5_242_880),
        ],
    );
    let cfg = parse_fixture("conf/numbering.conf", d.path());
    assert_eq!(
        show::format_targets(&views(&cfg, d.path())),
        fixture("show/numbering.txt")
    );
    let cfg = parse_fixture("conf/numbering_explicit.conf", d.path());
    assert_eq!(
        show::format_targets(&views(&cfg, d.path())),
        fixture("show/numbering_explicit.txt")
    );
}

/// fixtures/show/mixed.txt: flags, offline state, accounts, ACLs, two sessions (set up
/// with tgtadm; see the capture notes in the file names' test).
#[test]
fn mixed_layout_byte_for_byte() {
    const GIB: u64 = 1 << 30;
    let mut flags = vec![controller(1)];
    let mut l1 = disk(1, 1, GIB, "/tmp/cfgx/aa.img");
    l1.readonly = true;
    l1.backing_flags = show::backing_flags(true, false);
    let mut l2 = disk(1, 2, GIB, "/tmp/cfgx/c1.img");
    l2.online = false;
    l2.removable = true;
    l2.backing_flags = show::backing_flags(false, true);
    let mut l3 = disk(1, 3, GIB, "/tmp/cfgx/c2.img");
    l3.backing_flags = show::backing_flags(true, true);
    let mut l4 = disk(1, 4, GIB, "/tmp/cfgx/c3.img");
    l4.thin_provisioning = true;
    l4.backing_type = "aio".into();
    let mut l5 = disk(1, 5, 5_242_880 / 4096 * 4096, "/tmp/cfgx/five.img");
    l5.block_size = 4096;
    l5.scsi_id = "my-disk-5".into();
    l5.scsi_sn = "SN0005".into();
    flags.extend([l1, l2, l3, l4, l5]);
    let t1 = TargetView {
        tid: 1,
        iqn: "iqn.2020-01.test:flags".into(),
        driver: "iscsi".into(),
        state: "offline".into(),
        nexuses: vec![],
        luns: flags,
        accounts: vec!["u2".into(), "u1".into()],
        outgoing_account: Some("o1".into()),
        // tgt prints addresses as they were bound: `[::1]` keeps its brackets there.
        acl_addresses: vec!["127.0.0.1".into(), "[::1]".into(), "fe80::/10".into()],
        acl_names: vec![
            "iqn.1994-05.com.redhat:a".into(),
            "iqn.1994-05.com.redhat:b".into(),
        ],
    };
    let conn = |id, name: &str| NexusView {
        id,
        initiator: name.into(),
        alias: None,
        connections: vec![ConnView {
            cid: 0,
            ip: "127.0.0.1".into(),
        }],
    };
    let t2 = TargetView {
        tid: 2,
        iqn: "iqn.2020-01.test:open".into(),
        driver: "iscsi".into(),
        state: "ready".into(),
        nexuses: vec![
            conn(6, "iqn.2020-01.other:host2"),
            conn(7, "iqn.2010-11.libiscsi:iscsi-perf"),
        ],
        luns: vec![controller(2), disk(2, 1, GIB, "/tmp/cfgx/mm.img")],
        accounts: vec![],
        outgoing_account: None,
        acl_addresses: vec![AddrPattern::All.to_string()],
        acl_names: vec![],
    };
    assert_eq!(show::format_targets(&[t1, t2]), fixture("show/mixed.txt"));

    // `--mode conn --op show --tid 2`: newest session first.
    let sessions = [
        conn(16, "iqn.2010-11.libiscsi:iscsi-perf"),
        conn(15, "iqn.2020-01.other:host2"),
    ];
    assert_eq!(show::format_sessions(&sessions), fixture("show/conn.txt"));
}

#[test]
fn sys_layout_byte_for_byte() {
    // Debian's tgtd has every LLD, backing store and device type built in.
    let mut v = SysView::hydra("ready");
    v.llds = vec![
        ("iscsi".into(), "ready".into()),
        ("iser".into(), "error".into()),
    ];
    let sd = show::backing_flags(true, true);
    v.backing_stores = [
        "sheepdog", "bsg", "sg", "null", "ssc", "smc", "mmc", "rdwr", "aio",
    ]
    .iter()
    .map(|b| {
        (
            b.to_string(),
            if matches!(*b, "smc" | "mmc" | "rdwr") {
                sd.clone()
            } else {
                String::new()
            },
        )
    })
    .collect();
    v.device_types = [
        "disk",
        "cd/dvd",
        "osd",
        "controller",
        "changer",
        "tape",
        "passthrough",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(show::format_sys(&v), fixture("show/sys.txt"));
    v.discovery_accounts = vec!["u1".into()];
    v.discovery_outgoing = Some("o1".into());
    assert_eq!(
        show::format_sys(&v),
        fixture("show/sys_discovery_accounts.txt")
    );
}

#[test]
fn hydra_sys_view() {
    let s = show::format_sys(&SysView::hydra("offline"));
    assert!(s.starts_with("System:\n    State: offline\n    debug: off\nLLDs:\n    iscsi: ready\nBacking stores:\n    rdwr (bsoflags sync:direct)\n"));
}
