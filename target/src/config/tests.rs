//! Unit tests of targets.conf meaning: numbering, levels, refusals. The fixture-driven
//! compatibility tests live in `target/tests/config_*.rs`.

use super::*;
use crate::acl::AddrPattern;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new(files: &[&str]) -> Dir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![0u8; 4096]).unwrap();
        }
        Dir { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn conf(&self) -> PathBuf {
        self.path().join("targets.conf")
    }
    fn parse(&self, text: &str) -> Result<Config> {
        let text = text.replace("@D@", &self.path().display().to_string());
        parse_str(&text, &self.conf())
    }
    /// The error text with the temp dir replaced by `@D@`.
    fn err(&self, text: &str) -> String {
        let e = self.parse(text).expect_err("must fail").to_string();
        e.replace(&self.path().display().to_string(), "@D@")
    }
}

fn luns(t: &TargetConfig) -> Vec<(u64, String)> {
    t.luns
        .iter()
        .map(|l| {
            (
                l.lun,
                l.settings
                    .path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .collect()
}

fn target<'a>(c: &'a Config, iqn: &str) -> &'a TargetConfig {
    c.targets.iter().find(|t| t.iqn == iqn).unwrap()
}

/// The numbering real tgt-admin produced for the same config (see
/// target/tests/fixtures/conf/numbering.conf and its golden `show`).
#[test]
fn tids_and_luns_like_tgt_admin() {
    let d = Dir::new(&[
        "zz.img",
        "aa.img",
        "mm.img",
        "d1.img",
        "d2.img",
        "c1.img",
        "c2.img",
        "c3.img",
        "small.img",
        "five.img",
    ]);
    let c = d
        .parse(
            "<target iqn.2020-01.test:zeta>
    backing-store @D@/zz.img
    backing-store @D@/aa.img
    direct-store @D@/d2.img
    direct-store @D@/d1.img
    backing-store @D@/mm.img
</target>
<target iqn.2020-01.test:alpha>
    <backing-store @D@/c3.img>
       lun 2
    </backing-store>
    <backing-store @D@/c1.img>
    </backing-store>
    <backing-store @D@/c2.img>
    </backing-store>
    controller_tid 5
</target>
<target iqn.2020-01.test:Beta>
    backing-store @D@/small.img
    initiator-name iqn.1994-05.com.redhat:x
</target>
<target iqn.2020-01.test:gamma>
    backing-store @D@/five.img
</target>
",
        )
        .unwrap();
    let tids: Vec<(&str, u32)> = c.targets.iter().map(|t| (t.iqn.as_str(), t.tid)).collect();
    assert_eq!(
        tids,
        vec![
            ("iqn.2020-01.test:zeta", 7),
            ("iqn.2020-01.test:alpha", 5),
            ("iqn.2020-01.test:Beta", 1),
            ("iqn.2020-01.test:gamma", 6)
        ]
    );
    let zeta = target(&c, "iqn.2020-01.test:zeta");
    assert_eq!(
        luns(zeta),
        vec![
            (1, "aa.img".into()),
            (2, "mm.img".into()),
            (3, "zz.img".into()),
            (4, "d1.img".into()),
            (5, "d2.img".into())
        ]
    );
    assert!(
        zeta.warnings
            .iter()
            .any(|w| w.contains("numbered in path order")),
        "{:?}",
        zeta.warnings
    );
    assert!(zeta.luns[3].direct_store && !zeta.luns[2].direct_store);
    assert_eq!(
        luns(target(&c, "iqn.2020-01.test:alpha")),
        vec![
            (1, "c1.img".into()),
            (2, "c3.img".into()),
            (3, "c2.img".into())
        ]
    );
    let beta = target(&c, "iqn.2020-01.test:Beta");
    assert_eq!(
        beta.acl.addresses,
        vec![AddrPattern::All],
        "tgt-admin binds ALL without initiator-address"
    );
    assert_eq!(beta.acl.names, vec!["iqn.1994-05.com.redhat:x".to_string()]);
}

#[test]
fn explicit_luns_reserve_numbers_across_kinds() {
    let d = Dir::new(&["zz.img", "aa.img", "d1.img", "d2.img", "mm.img"]);
    let c = d
        .parse(
            "<target iqn.2020-01.test:mix>
  <direct-store @D@/d1.img>
     lun 1
  </direct-store>
  <backing-store @D@/zz.img>
  </backing-store>
  <backing-store @D@/aa.img>
     lun 3
  </backing-store>
  <direct-store @D@/d2.img>
  </direct-store>
</target>
<target iqn.2020-01.test:single>
  backing-store @D@/mm.img
  lun 10
  allow-in-use yes
</target>
",
        )
        .unwrap();
    // As real tgt-admin: aa 3, zz 2, d1 1, d2 4; the single store gets LUN 10.
    assert_eq!(
        luns(&c.targets[0]),
        vec![
            (1, "d1.img".into()),
            (2, "zz.img".into()),
            (3, "aa.img".into()),
            (4, "d2.img".into())
        ]
    );
    assert_eq!(luns(&c.targets[1]), vec![(10, "mm.img".into())]);
    assert_eq!((c.targets[0].tid, c.targets[1].tid), (1, 2));
}

#[test]
fn lun_level_directives_at_both_levels() {
    let d = Dir::new(&["a.img", "b.img"]);
    let c = d
        .parse(
            "<target iqn.2020-01.test:levels>
    readonly 1
    write-cache off
    vendor_id MyCompany Inc.
    params thin_provisioning=1,rotation_rate=1
    bsoflags direct
    <backing-store @D@/a.img>
        readonly 0
        params rotation_rate=7200
        block-size 4096
        scsi_id disk-a
    </backing-store>
    backing-store @D@/b.img
</target>
",
        )
        .unwrap();
    let t = &c.targets[0];
    let (a, b) = (&t.luns[0].settings, &t.luns[1].settings);
    assert!(!a.readonly && b.readonly, "the container wins");
    assert!(!a.write_cache && !b.write_cache);
    assert_eq!(
        (a.vendor_id.as_str(), b.vendor_id.as_str()),
        ("MyCompan", "MyCompan")
    );
    assert_eq!(
        (a.rotation_rate, b.rotation_rate),
        (7200, 1),
        "container params win per key"
    );
    assert!(a.thin_provisioning && b.thin_provisioning);
    assert_eq!((a.block_size, b.block_size), (4096, 512));
    assert!(a.o_direct && b.o_direct && !a.o_sync);
    assert_eq!(a.scsi_id.as_deref(), Some("disk-a"));
    assert_eq!(b.scsi_id, None);
    // The vendor warning is given once, not once per LUN.
    assert_eq!(
        t.warnings
            .iter()
            .filter(|w| w.contains("MyCompany"))
            .count(),
        1,
        "{:?}",
        t.warnings
    );
}

#[test]
fn target_level_settings() {
    let d = Dir::new(&["a.img"]);
    let c = d
        .parse(
            "default-driver iscsi
ignore-errors yes
control-port 7
incomingdiscoveryuser disc secretsecret12
outgoingdiscoveryuser dout secretsecret34
outgoingdiscoveryuser dout2 secretsecret56
<target iqn.2020-01.test:t>
    backing-store @D@/a.img
    driver iscsi
    initiator-address 10.0.0.0/8
    initiator-address [::1]
    initiator-name iqn.a
    initiator-name iqn.b
    incominguser u1 secretsecret1
    incominguser u2 secretsecret2
    outgoinguser o1 secretsecret3
    outgoinguser o2 secretsecret4
    MaxRecvDataSegmentLength 65536
    MaxRecvDataSegmentLength 8192
    HeaderDigest CRC32C,None
    IFMarker No
    OFMarkInt Reject
    MaxXmitDataSegmentLength 65536
    state offline
    controller_tid 3
</target>
",
        )
        .unwrap();
    assert!(c.ignore_errors);
    assert_eq!(c.control_port, Some(7));
    assert_eq!(
        c.incoming_discovery_users,
        vec![Account {
            user: "disc".into(),
            password: "secretsecret12".into()
        }]
    );
    assert_eq!(c.outgoing_discovery_user.as_ref().unwrap().user, "dout");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let t = &c.targets[0];
    assert_eq!(t.tid, 3);
    assert!(t.offline);
    assert_eq!(
        t.acl.addresses,
        vec![
            AddrPattern::parse("10.0.0.0/8").unwrap(),
            AddrPattern::parse("::1").unwrap()
        ]
    );
    assert_eq!(t.acl.names, vec!["iqn.a".to_string(), "iqn.b".to_string()]);
    assert_eq!(
        t.incoming_users
            .iter()
            .map(|a| a.user.as_str())
            .collect::<Vec<_>>(),
        vec!["u1", "u2"]
    );
    assert_eq!(t.outgoing_user.as_ref().unwrap().user, "o1");
    assert_eq!(
        t.params,
        vec![
            ("MaxRecvDataSegmentLength".to_string(), "65536".to_string()),
            ("HeaderDigest".to_string(), "CRC32C,None".to_string())
        ]
    );
    let w = t.warnings.join("\n");
    assert!(w.contains("outgoinguser: only one is allowed"), "{w}");
    assert!(
        w.contains("MaxRecvDataSegmentLength: only one is allowed"),
        "{w}"
    );
    assert!(w.contains("OFMarkInt is ignored"), "{w}");
    assert!(
        w.contains("MaxXmitDataSegmentLength (a tgt-only key) is ignored"),
        "{w}"
    );
}

#[test]
fn refusals_name_file_line_directive() {
    let d = Dir::new(&["a.img", "b.img", "sub/c.img"]);
    std::fs::create_dir(d.path().join("adir")).unwrap();
    let t = |body: &str| format!("<target iqn.2020-01.test:t>\n{body}\n</target>\n");
    let cases: Vec<(String, &str)> = vec![
        (t("backing-store @D@/a.img\nblock-size 1000"), "@D@/targets.conf:3: block-size: 1000 is not a supported logical block size (512 or 4096)"),
        (t("backing-store @D@/missing.img"), "@D@/targets.conf:2: backing-store: @D@/missing.img does not exist"),
        (t("backing-store @D@/adir"), "@D@/targets.conf:2: backing-store: @D@/adir is a directory (a LUN needs a file or a block device)"),
        (t("device-type tape\nbacking-store @D@/a.img"), "@D@/targets.conf:2: device-type: device-type tape is not supported by hydra (only disk)"),
        (t("<backing-store @D@/a.img>\nbs-type rbd\n</backing-store>"), "@D@/targets.conf:3: bs-type: bs-type rbd is not supported by hydra (only rdwr; aio is taken as rdwr)"),
        (t("backing-store @D@/a.img\nlun 0"), "@D@/targets.conf:3: lun: LUN 0 is the target's controller (tgt creates it in every target): use 1 or more"),
        (
            t("<backing-store @D@/a.img>\nlun 2\n</backing-store>\n<backing-store @D@/b.img>\nlun 2\n</backing-store>"),
            "@D@/targets.conf:6: lun: LUN 2 is already taken (at @D@/targets.conf:3)",
        ),
        (t("backing-store @D@/a.img\nfrobnicate 1"), "@D@/targets.conf:3: frobnicate: unknown directive"),
        (t("maxrecvdatasegmentlength 8192"), "@D@/targets.conf:2: maxrecvdatasegmentlength: unknown directive (directive names are exact: did you mean MaxRecvDataSegmentLength?)"),
        ("<target iqn.2020-01.test:t>\nbacking-store @D@/a.img\n".into(), "@D@/targets.conf:1: <target>: <target iqn.2020-01.test:t> is not closed by </target>"),
        (t("<backing-store @D@/a.img>\n</target>"), "@D@/targets.conf:3: </target>: does not close <backing-store @D@/a.img> opened at @D@/targets.conf:2"),
        ("</target>\n".into(), "@D@/targets.conf:1: </target>: no <target> block is open"),
        ("default-driver iser\n".into(), "@D@/targets.conf:1: default-driver: iser is not supported by hydra (no RDMA): use iscsi"),
        ("iSNS On\n".into(), "@D@/targets.conf:1: iSNS: iSNS is not supported by hydra (no iSNS client): remove `iSNS On`; initiators discover targets with SendTargets"),
        ("readonly 1\n".into(), "@D@/targets.conf:1: readonly: is only allowed inside a <target> block (for all its LUNs) or a <backing-store> container"),
        (t("default-driver iscsi"), "@D@/targets.conf:2: default-driver: is a global directive: it goes outside <target> blocks"),
        (t("<backing-store @D@/a.img>\nincominguser u p\n</backing-store>"), "@D@/targets.conf:3: incominguser: is a target-level directive: it cannot be inside <backing-store>"),
        (t("incominguser onlyuser"), "@D@/targets.conf:2: incominguser: needs a user name and a password: <user> <password>"),
        (t("scsi_id"), "@D@/targets.conf:2: scsi_id: needs a value"),
        (t("backing-store @D@/a.img\nbacking-store @D@/b.img\nlun 3"), "@D@/targets.conf:4: lun: at target level, lun numbers the target's only store, but this target has 2: give `lun` inside each <backing-store> container"),
        (t("backing-store @D@/a.img\nbacking-store @D@/a.img"), "@D@/targets.conf:3: backing-store: @D@/a.img is already a store of this target (at @D@/targets.conf:2)"),
        (t("initiator-address 10.0.0.300"), "@D@/targets.conf:2: initiator-address: '10.0.0.300' is not an IP address, a CIDR network or ALL"),
        (t("ErrorRecoveryLevel 1"), "@D@/targets.conf:2: ErrorRecoveryLevel: ErrorRecoveryLevel 1 is not supported by hydra (only 0)"),
        (t("FirstBurstLength 524288"), "@D@/targets.conf:2: FirstBurstLength: 524288 exceeds MaxBurstLength 262144 (RFC 7143 §13.14)"),
        (t("readonly 1\nreadonly 0"), "@D@/targets.conf:3: readonly: given twice (first at @D@/targets.conf:2)"),
        (t("mode_page 0x1c:0:10:0:0"), "@D@/targets.conf:2: mode_page: mode_page 0x1c/0x00 is not supported by hydra (only page 8's WCE bit; use write-cache)"),
        (t("<Backing-store @D@/a.img>\n</Backing-store>"), "@D@/targets.conf:2: <Backing-store>: unknown block (block names are exact: target, backing-store, direct-store)"),
        (t("<target iqn.x>"), "@D@/targets.conf:2: <target>: <target> inside <target iqn.2020-01.test:t> (opened at @D@/targets.conf:1): is a </target> missing?"),
        ("<target>\n</target>\n".into(), "@D@/targets.conf:1: <target>: needs the target's name: <target iqn.yyyy-mm.domain:name>"),
        ("backing-store @D@/a.img\n".into(), "@D@/targets.conf:1: backing-store: must be inside a <target> block"),
    ];
    for (text, want) in cases {
        assert_eq!(d.err(&text), want, "config:\n{text}");
    }
}

#[test]
fn cross_target_checks() {
    let d = Dir::new(&["a.img", "b.img"]);
    assert_eq!(
        d.err("<target iqn.x:a>\nbacking-store @D@/a.img\n</target>\n<target IQN.X:A>\n</target>\n"),
        "@D@/targets.conf:4: <target>: target IQN.X:A is defined twice (first at @D@/targets.conf:1); tgt-admin would merge the two blocks: merge them"
    );
    // a -> tid 1 (IQN order), then b's controller_tid 1 collides: tgt-admin fails too.
    assert_eq!(
        d.err("<target iqn.x:b>\ncontroller_tid 1\n</target>\n<target iqn.x:a>\n</target>\n"),
        "@D@/targets.conf:2: controller_tid: controller_tid 1 is the tid tgt-admin gives iqn.x:a (at @D@/targets.conf:4): targets without controller_tid are numbered in IQN order after the previous tid; give iqn.x:a a controller_tid too"
    );
    assert_eq!(
        d.err("<target iqn.x:a>\ncontroller_tid 2\n</target>\n<target iqn.x:b>\ncontroller_tid 2\n</target>\n"),
        "@D@/targets.conf:5: controller_tid: controller_tid 2 is also the controller_tid of iqn.x:a (at @D@/targets.conf:2)"
    );
    // a: controller_tid 2; b (no tid) -> 3; c: controller_tid 3 collides.
    assert_eq!(
        d.err("<target iqn.x:c>\ncontroller_tid 3\n</target>\n<target iqn.x:a>\ncontroller_tid 2\n</target>\n<target iqn.x:b>\n</target>\n"),
        "@D@/targets.conf:2: controller_tid: controller_tid 3 is the tid tgt-admin gives iqn.x:b (at @D@/targets.conf:7): targets without controller_tid are numbered in IQN order after the previous tid; give iqn.x:b a controller_tid too"
    );
    // One file in two targets needs allow-in-use on the later one (IQN order).
    assert_eq!(
        d.err("<target iqn.x:b>\nbacking-store @D@/a.img\n</target>\n<target iqn.x:a>\nbacking-store @D@/a.img\n</target>\n"),
        "@D@/targets.conf:2: backing-store: @D@/a.img is already exported by iqn.x:a LUN 1; tgt-admin refuses a device in use: add `allow-in-use yes` to share it"
    );
    let ok = d.parse("<target iqn.x:b>\nbacking-store @D@/a.img\nallow-in-use yes\nscsi_id same\n</target>\n<target iqn.x:a>\nbacking-store @D@/a.img\nscsi_id same\n</target>\n");
    assert!(ok.is_ok(), "{ok:?}");
    assert!(d.parse("allow-in-use yes\n<target iqn.x:b>\nbacking-store @D@/a.img\n</target>\n<target iqn.x:a>\nbacking-store @D@/a.img\n</target>\n").is_ok());
    // One SCSI ID on two different files.
    assert_eq!(
        d.err("<target iqn.x:a>\nbacking-store @D@/a.img\nbacking-store @D@/b.img\nscsi_id same\n</target>\n"),
        "@D@/targets.conf:3: backing-store: scsi_id 'same' is also the SCSI ID of iqn.x:a LUN 1 (@D@/a.img): two disks with one SCSI ID get one WWID and multipath would merge them (a target-level scsi_id applies to every LUN: give it per LUN)"
    );
    // One user name, two passwords.
    assert_eq!(
        d.err("incomingdiscoveryuser u secretsecret1\n<target iqn.x:a>\nincominguser u secretsecret2\n</target>\n"),
        "@D@/targets.conf:3: incominguser: user u already has another password (at @D@/targets.conf:1); tgt keeps one account per user name and would use the first password everywhere"
    );
}

#[test]
fn includes_and_relative_paths() {
    let d = Dir::new(&["conf.d/disk1.img", "disk2.img"]);
    std::fs::write(
        d.path().join("conf.d/b.conf"),
        "<target iqn.x:b>\n  backing-store disk1.img\n</target>\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("conf.d/a.conf"),
        "<target iqn.x:a>\n  backing-store ../disk2.img\n</target>\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("conf.d/c.conf"),
        "<target iqn.x:c>\n  bogus 1\n</target>\n",
    )
    .unwrap();
    let c = d.parse("include conf.d/[ab].conf\n").unwrap();
    assert_eq!(
        c.targets.iter().map(|t| t.iqn.as_str()).collect::<Vec<_>>(),
        vec!["iqn.x:a", "iqn.x:b"]
    );
    assert_eq!(
        c.targets[1].luns[0].settings.path,
        d.path().join("conf.d/disk1.img")
    );
    assert_eq!(
        c.targets[1].location,
        Location {
            file: d.path().join("conf.d/b.conf"),
            line: 1
        }
    );
    // An error inside an included file names that file.
    assert_eq!(
        d.err("include conf.d/*.conf\n"),
        "@D@/conf.d/c.conf:2: bogus: unknown directive"
    );
    assert_eq!(
        d.err("include nothere.conf\n"),
        "@D@/targets.conf:1: include: @D@/nothere.conf: No such file or directory (os error 2)"
    );
    assert!(d
        .parse("include nothere/*.conf\nincludeoptional nothere.conf\n")
        .unwrap()
        .targets
        .is_empty());
    std::fs::write(d.path().join("loop.conf"), "include loop.conf\n").unwrap();
    assert_eq!(
        d.err("include loop.conf\n"),
        "@D@/loop.conf:1: include: @D@/loop.conf includes itself (loop)"
    );
    // A block may span an include (Config::General splices text).
    std::fs::write(d.path().join("body.conf"), "backing-store disk2.img\n").unwrap();
    let c = d
        .parse("<target iqn.x:span>\ninclude body.conf\n</target>\n")
        .unwrap();
    assert_eq!(c.targets[0].luns.len(), 1);
}

#[test]
fn same_target_ignores_locations() {
    let d = Dir::new(&["a.img"]);
    let a = d
        .parse("<target iqn.x:a>\nbacking-store @D@/a.img\n</target>\n")
        .unwrap();
    let b = d
        .parse("\n\n<target iqn.x:a>\n  # moved\n  backing-store @D@/a.img\n</target>\n")
        .unwrap();
    assert!(same_target(&a.targets[0], &b.targets[0]));
    let c = d
        .parse("<target iqn.x:a>\nbacking-store @D@/a.img\nreadonly 1\n</target>\n")
        .unwrap();
    assert!(!same_target(&a.targets[0], &c.targets[0]));
}

#[test]
fn load_reads_the_file() {
    let d = Dir::new(&["a.img"]);
    std::fs::write(
        d.conf(),
        format!(
            "<target iqn.x:a>\nbacking-store {}/a.img\n</target>\n",
            d.path().display()
        ),
    )
    .unwrap();
    assert_eq!(load(&d.conf()).unwrap().targets.len(), 1);
    let e = load(&d.path().join("none.conf")).unwrap_err().to_string();
    assert!(
        e.ends_with(
            "none.conf:0: file: cannot read the config: No such file or directory (os error 2)"
        ),
        "{e}"
    );
}

#[test]
fn apply_lun_param_for_tgtadm() {
    let mut s = LunSettings::new("/x");
    assert_eq!(apply_lun_param(&mut s, "readonly", "1"), Ok(None));
    assert!(s.readonly);
    assert!(apply_lun_param(&mut s, "bs-type", "aio").unwrap().is_some());
    assert!(apply_lun_param(&mut s, "nonsense", "1").is_err());
}

#[test]
fn include_refuses_special_files() {
    let d = Dir::new(&[]);
    assert_eq!(
        d.err("include /dev/zero\n"),
        "@D@/targets.conf:1: include: cannot read /dev/zero: not a regular file"
    );
}

/// Random edits of a config never panic (the fuzz target's property, cheaply).
#[test]
fn mutations_never_panic() {
    let d = Dir::new(&["a.img", "b.img"]);
    let seed = "default-driver iscsi\n<target iqn.x:a>\n  backing-store @D@/a.img\n  <backing-store @D@/b.img>\n    lun 3\n    params thin_provisioning=1\n    mode_page 8:0:18:0x14\n  </backing-store>\n  initiator-address [::1]/128\n  incominguser u secretsecret12\n  MaxBurstLength 65536\n  vendor_id \"a\\\"b\" # c\n</target>\n"
        .replace("@D@", &d.path().display().to_string());
    let alphabet = b"<>/\\\"#= \n\tabcdeilmnoprstuxyz0123456789:.-_[]{}*?";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut b = seed.clone().into_bytes();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % b.len();
            match next() % 3 {
                0 => b[i] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        if let Ok(text) = String::from_utf8(b) {
            let _ = parse_str(&text, &d.conf()).map_err(|e| e.to_string());
        }
    }
}
