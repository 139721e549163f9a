//! Fixture-driven targets.conf tests: every accepted directive (fixtures/conf/
//! every_directive.conf), includes with globs (fixtures/conf/include/), and one fixture
//! per refused config (fixtures/conf/bad/*.conf, whose first line says the exact error).
//! `@DIR@` in a fixture is a temp dir holding disk1.img..disk3.img; `@FILE@` is the
//! config's own path.

use std::path::{Path, PathBuf};

use hydra_target::acl::AddrPattern;
use hydra_target::config::{self, Account};
use hydra_target::lun::SenseFormat;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conf")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        for f in ["disk1.img", "disk2.img", "disk3.img"] {
            std::fs::File::create(dir.path().join(f))
                .unwrap()
                .set_len(64 << 20)
                .unwrap();
        }
        Env { dir }
    }
    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }
    /// Copy fixture `name` into the temp dir (as targets.conf), with @DIR@ replaced.
    fn install(&self, name: &str) -> (PathBuf, String) {
        let text = std::fs::read_to_string(fixtures().join(name))
            .unwrap()
            .replace("@DIR@", &self.dir());
        let path = self.dir.path().join("targets.conf");
        std::fs::write(&path, &text).unwrap();
        (path, text)
    }
}

#[test]
fn every_directive() {
    let env = Env::new();
    std::fs::create_dir(env.dir.path().join("extra")).unwrap();
    let (path, _) = env.install("every_directive.conf");
    let c = config::load(&path).unwrap();
    assert_eq!(c.default_driver, "iscsi");
    assert!(c.ignore_errors);
    assert_eq!(c.control_port, Some(7));
    assert!(!c.allow_in_use);
    assert_eq!(
        c.incoming_discovery_users,
        vec![Account {
            user: "discuser".into(),
            password: "discsecret1234".into()
        }]
    );
    assert_eq!(
        c.outgoing_discovery_user,
        Some(Account {
            user: "discout".into(),
            password: "discoutsecret12".into()
        })
    );
    assert_eq!(
        c.warnings.len(),
        3,
        "the three iSNS settings are ignored: {:?}",
        c.warnings
    );

    let t = &c.targets[0];
    assert_eq!((t.iqn.as_str(), t.tid), ("iqn.2026-11.org.hydra:every", 4));
    assert!(t.offline && t.allow_in_use);
    assert_eq!(t.location.line, 13);
    assert_eq!(
        t.acl.addresses,
        vec![
            AddrPattern::parse("192.168.4.0/24").unwrap(),
            AddrPattern::parse("fd00::1").unwrap(),
            AddrPattern::All
        ]
    );
    assert_eq!(
        t.acl.names,
        vec![
            "iqn.1994-05.com.redhat:node1",
            "iqn.1994-05.com.redhat:node2"
        ]
    );
    assert_eq!(
        t.incoming_users
            .iter()
            .map(|a| a.user.as_str())
            .collect::<Vec<_>>(),
        vec!["user1", "user2"]
    );
    assert_eq!(t.outgoing_user.as_ref().unwrap().password, "secretpassA12");
    let keys: Vec<(&str, &str)> = t
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("MaxRecvDataSegmentLength", "262144"),
            ("HeaderDigest", "CRC32C,None"),
            ("DataDigest", "None"),
            ("InitialR2T", "No"),
            ("MaxOutstandingR2T", "4"),
            ("ImmediateData", "Yes"),
            ("FirstBurstLength", "131072"),
            ("MaxBurstLength", "1048576"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
            ("ErrorRecoveryLevel", "0"),
            ("DefaultTime2Wait", "5"),
            ("DefaultTime2Retain", "30"),
            ("MaxConnections", "2"),
        ]
    );

    // LUNs: disk1 has `lun 3`, disk2 (backing) takes 1, disk3 (direct) takes 2.
    let luns: Vec<(u64, &str, bool)> = t
        .luns
        .iter()
        .map(|l| {
            (
                l.lun,
                l.settings.path.file_name().unwrap().to_str().unwrap(),
                l.direct_store,
            )
        })
        .collect();
    assert_eq!(
        luns,
        vec![
            (1, "disk2.img", false),
            (2, "disk3.img", true),
            (3, "disk1.img", false)
        ]
    );
    let (d2, d3, d1) = (
        &t.luns[0].settings,
        &t.luns[1].settings,
        &t.luns[2].settings,
    );
    for s in [d1, d2, d3] {
        assert_eq!(
            (
                s.vendor_id.as_str(),
                s.product_id.as_str(),
                s.product_rev.as_str()
            ),
            ("HYDRA", "SHARED-DISK", "0002")
        );
        assert_eq!(s.sense_format, SenseFormat::Descriptor);
        assert!(!s.removable && s.online);
    }
    // Target level for disk2 and disk3.
    assert!(!d2.write_cache && d2.o_sync && !d2.o_direct && d2.thin_provisioning && !d2.readonly);
    assert_eq!(
        (d2.block_size, d2.scsi_id.as_deref(), d2.scsi_sn.as_deref()),
        (512, None, None)
    );
    assert!(d3.readonly && d3.thin_provisioning);
    // The container wins for disk1.
    // `write-cache on`, then tgt-admin's write-cache-off mode page 8 (WCE=0): the last
    // one in the container counts (tgt ends with WCE=0 too: `on` sends no command).
    assert!(!d1.write_cache);
    assert_eq!(
        (d1.block_size, d1.scsi_id.as_deref(), d1.scsi_sn.as_deref()),
        (4096, Some("hydra-disk-1"), Some("HY0001"))
    );
    assert!(d1.o_direct && d1.o_sync && !d1.thin_provisioning && d1.rotation_rate == 1);
    let w = t.warnings.join("\n");
    for needle in [
        "OFMarkInt is ignored",
        "IFMarkInt is ignored",
        "MaxXmitDataSegmentLength (a tgt-only key) is ignored",
        "lbppbe is accepted but has no effect",
        "optimal_xfer_len is accepted but has no effect",
        "bs-type aio: hydra has one I/O path",
        "direct-store: hydra does not copy the device's INQUIRY data",
    ] {
        assert!(w.contains(needle), "missing warning {needle:?} in:\n{w}");
    }
}

#[test]
fn includes_with_globs() {
    let main = fixtures().join("include/main.conf");
    let c = config::load(&main).unwrap();
    let names: Vec<&str> = c.targets.iter().map(|t| t.iqn.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "iqn.2026-11.org.hydra:a",
            "iqn.2026-11.org.hydra:b",
            "iqn.2026-11.org.hydra:spread"
        ]
    );
    // tids follow the IQN order, paths resolve against the including file's directory.
    assert_eq!(
        c.targets.iter().map(|t| t.tid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        c.targets[0].luns[0].settings.path,
        fixtures().join("include/conf.d/../disk-a.img")
    );
    assert_eq!(
        c.targets[0].location.file,
        fixtures().join("include/conf.d/10-a.conf")
    );
    let spread = &c.targets[2];
    assert_eq!(spread.location.file, main);
    assert!(!spread.luns[0].settings.write_cache);
    assert_eq!(
        spread.luns[0].location.file,
        fixtures().join("include/conf.d/body.inc")
    );
}

#[test]
fn bad_configs_name_file_line_directive() {
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(fixtures().join("bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for fixture in names {
        let env = Env::new();
        let name = format!("bad/{}", fixture.file_name().unwrap().to_str().unwrap());
        let (path, text) = env.install(&name);
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .unwrap_or_else(|| panic!("{name}: no '# error:' line"));
        let want = want.replace("@FILE@", &path.display().to_string());
        match config::load(&path) {
            Ok(_) => panic!("{name}: accepted, expected {want}"),
            Err(e) => assert_eq!(e.to_string(), want, "{name}"),
        }
        n += 1;
    }
    assert!(n >= 15, "only {n} bad fixtures");
}
