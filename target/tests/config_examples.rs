//! tgt's own example configs (Debian package `tgt`, /usr/share/doc/tgt/examples/). They
//! are read from the installed package rather than copied here (they are tgt's GPL
//! documentation); scripts/setup.sh installs the package, and a missing file fails the
//! test with that hint (a skipped check is not a pass).
//!
//! targets.conf.example names devices that do not exist and has things hydra refuses
//! (device-type cd, a duplicated target, a shared controller_tid, a device exported
//! twice): each step fixes one thing and checks the next error, exactly. The last step
//! parses, and its tids and LUN numbers are those that real tgt-admin 1.0.85 printed for
//! the same file (`tgt-admin -p -f -e -c FILE` on a fresh tgtd).

use std::path::{Path, PathBuf};

use hydra_target::config;

const EXAMPLES: &str = "/usr/share/doc/tgt/examples";

/// (target name suffix, tid, [(LUN, path)]).
type Numbering = (String, u32, Vec<(u64, String)>);

fn example(name: &str) -> String {
    let path = Path::new(EXAMPLES).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: tgt's example configs are missing: run scripts/setup.sh (installs \
             Debian's tgt, which ships them; a dpkg path-exclude of /usr/share/doc drops them)",
            path.display()
        )
    })
}

#[test]
fn vtl_examples_are_refused_by_name() {
    for (name, line) in [
        ("targets.conf.vtl.L700", 29),
        ("targets.conf.vtl.MSL2024", 26),
    ] {
        let text = example(name);
        let file = Path::new(EXAMPLES).join(name);
        let e = config::parse_str(&text, &file).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:{line}: device-type: device-type tape is not supported by hydra (only disk)",
                file.display()
            )
        );
    }
}

/// Replace line `n` (1-based) of `text`.
fn edit(text: &str, n: usize, f: impl Fn(&str) -> String) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { f(l) } else { l.to_string() } + "\n")
        .collect()
}

#[test]
fn targets_conf_example_step_by_step() {
    let orig = example("targets.conf.example");
    let real = Path::new(EXAMPLES).join("targets.conf.example");
    // As shipped: the first target's device does not exist.
    let e = config::parse_str(&orig, &real).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:29: backing-store: /dev/LVM/somedevice does not exist",
            real.display()
        )
    );

    // Put the devices in a temp dir (files of 1 MiB).
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().display().to_string();
    std::fs::create_dir(d.path().join("LVM")).unwrap();
    for f in [
        "LVM/somedevice",
        "LVM/somedevice1",
        "LVM/somedevice2",
        "LVM/somedevice3",
        "sda",
        "sdb",
        "sdc",
        "sdd",
        "sde",
        "sdb1",
        "sdd1",
    ] {
        std::fs::File::create(d.path().join(f))
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
    }
    let file: PathBuf = d.path().join("targets.conf");
    let mut text = orig
        .replace("/dev/LVM/", &format!("{dir}/LVM/"))
        .replace("/dev/sd", &format!("{dir}/sd"))
        .replace("/etc/tgt/temp/", &format!("{dir}/temp/"));
    let err = |text: &str| {
        config::parse_str(text, &file)
            .unwrap_err()
            .to_string()
            .replace(&dir, "@D@")
    };

    assert_eq!(
        err(&text),
        "@D@/targets.conf:103: device-type: device-type cd is not supported by hydra (only disk)"
    );
    text = edit(&text, 103, |_| "\t# device-type cd (refused)".into());
    assert_eq!(
        err(&text),
        "@D@/targets.conf:79: <target>: target iqn.2008-09.com.example:server.target4 is defined twice (first at @D@/targets.conf:65); tgt-admin would merge the two blocks: merge them"
    );
    text = edit(&text, 79, |l| {
        l.replace("server.target4>", "server.target4b>")
    });
    assert_eq!(
        err(&text),
        "@D@/targets.conf:223: controller_tid: controller_tid 10 is also the controller_tid of iqn.2008-09.com.example:server.target5 (at @D@/targets.conf:185)"
    );
    text = edit(&text, 185, |_| "    controller_tid 20".into());
    text = edit(&text, 223, |_| "    controller_tid 30".into());
    assert_eq!(
        err(&text),
        "@D@/targets.conf:68: direct-store: @D@/sdd is already exported by iqn.2008-09.com.example:server.target2 LUN 1; tgt-admin refuses a device in use: add `allow-in-use yes` to share it"
    );
    // tgt-admin -f; in hydra, `allow-in-use yes` outside the targets.
    text = format!("allow-in-use yes\n{text}");
    let c = config::parse_str(&text, &file).unwrap();
    let got: Vec<Numbering> = c
        .targets
        .iter()
        .map(|t| {
            let luns = t
                .luns
                .iter()
                .map(|l| {
                    (
                        l.lun,
                        l.settings.path.display().to_string().replace(&dir, ""),
                    )
                })
                .collect();
            (
                t.iqn
                    .trim_start_matches("iqn.2008-09.com.example:server.")
                    .to_string(),
                t.tid,
                luns,
            )
        })
        .collect();
    let want = |t: &str, tid: u32, luns: &[(u64, &str)]| {
        (
            t.to_string(),
            tid,
            luns.iter()
                .map(|(n, p)| (*n, p.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        got,
        vec![
            want("target1", 1, &[(1, "/LVM/somedevice")]),
            want("target2", 2, &[(1, "/sdd")]),
            want(
                "target3",
                3,
                &[
                    (1, "/LVM/somedevice1"),
                    (2, "/LVM/somedevice2"),
                    (3, "/LVM/somedevice3")
                ]
            ),
            want("target4", 4, &[(1, "/sdb"), (2, "/sdc"), (3, "/sdd")]),
            want(
                "target4b",
                5,
                &[(1, "/sdc"), (2, "/sde"), (3, "/sdb"), (4, "/sdd")]
            ),
            want(
                "target5",
                20,
                &[(1, "/sdd"), (2, "/sda"), (3, "/sdb1"), (15, "/sdd1")]
            ),
            want("target6", 21, &[(10, "/LVM/somedevice")]),
            want("target7", 22, &[(1, "/LVM/somedevice")]),
            want(
                "target8",
                23,
                &[(1, "/LVM/somedevice"), (2, "/LVM/somedevice2")]
            ),
            want("target9", 30, &[(1, "/LVM/somedevice")]),
        ]
    );
    // target5: write-cache off and scsi_sn at target level reach every LUN but sdb1,
    // whose container says otherwise (the container wins); the ACL is the two
    // addresses; one outgoing user.
    let t5 = &c.targets[5];
    let wc: Vec<(bool, Option<&str>)> = t5
        .luns
        .iter()
        .map(|l| (l.settings.write_cache, l.settings.scsi_sn.as_deref()))
        .collect();
    assert_eq!(
        wc,
        vec![
            (false, Some("multipath-10")),
            (false, Some("multipath-10")),
            (true, Some("SERIAL")),
            (false, Some("multipath-10"))
        ]
    );
    let vendors: Vec<&str> = t5
        .luns
        .iter()
        .map(|l| l.settings.vendor_id.as_str())
        .collect();
    assert_eq!(vendors, vec!["VENDOR1", "VENDOR2", "back1", "back2"]);
    assert!(t5.luns[0].settings.removable);
    assert_eq!(
        t5.acl
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        vec!["192.168.100.1", "192.168.200.5"]
    );
    assert_eq!(t5.incoming_users.len(), 2);
    assert_eq!(
        t5.outgoing_user.as_ref().map(|a| a.user.as_str()),
        Some("userA")
    );
    // target3: `vendor_id MyCompany Inc.` is cut to 8 characters, as tgt does.
    assert!(c.targets[2]
        .luns
        .iter()
        .all(|l| l.settings.vendor_id == "MyCompan"));
    assert!(c.targets[2]
        .warnings
        .iter()
        .any(|w| w.contains("cut to 'MyCompan'")));
    // Open targets get ALL, as tgt-admin binds it.
    assert_eq!(
        c.targets[0]
            .acl
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        vec!["ALL"]
    );
}

/// Debian's shipped /etc/tgt/targets.conf: only `include /etc/tgt/conf.d/*.conf`.
#[test]
fn debian_default_config_shape() {
    let d = tempfile::tempdir().unwrap();
    let text = "# Empty targets configuration file -- please see the package\n# documentation directory for an example.\n#\n# You can drop individual config snippets into /etc/tgt/conf.d\ninclude conf.d/*.conf\n";
    let c = config::parse_str(text, &d.path().join("targets.conf")).unwrap();
    assert!(c.targets.is_empty() && c.warnings.is_empty());
    assert_eq!(c.default_driver, "iscsi");
}
