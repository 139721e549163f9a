//! libiscsi's conformance suite against `hydra tgtd`, in two shapes, so that a regression
//! in either shows:
//! - `iscsi-test-cu -d -v -t ALL URL1 URL2` on a thin LUN, URL2 reaching it through a
//!   second portal (so the MultipathIO suite runs), with two initiator names (the
//!   reservation suites log in as both);
//! - the same with one portal and a fully provisioned LUN.
//!
//! Each run must exit 0 and say so in its own summary (`Run Summary` and `Tests completed
//! with return value`), run the same 230 tests as the captured logs in
//! tests/fixtures/iscsi-test-cu/ (libiscsi 1.19.0, Debian 12), skip exactly the tests
//! listed below for exactly the reason listed, and pass every other one. A test that
//! starts to skip, stops skipping, disappears or fails is a failure, not a changed count.
//! The parser is checked on those captured logs too.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// Skipped, with libiscsi's note (`[SKIPPED] ...`).
    Skip(String),
    Fail,
}

/// Parse CUnit's verbose output into ("Suite.Test", verdict).
fn classify(out: &str) -> Vec<(String, Verdict)> {
    let mut res = Vec::new();
    let mut suite = String::new();
    // The test whose verdict is pending, and its skip note if one came.
    let mut test: Option<(String, Option<String>)> = None;
    let note = |s: &str| s.trim().to_string();
    for line in out.lines() {
        if let Some(s) = line.strip_prefix("Suite: ") {
            suite = s.trim().to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("  Test: ") {
            let (name, tail) = rest.split_once(" ...").unwrap_or((rest, ""));
            let name = format!("{suite}.{name}");
            let tail = tail.trim_start();
            if tail.starts_with("passed") {
                res.push((name, Verdict::Pass));
                test = None;
            } else if tail.starts_with("FAILED") {
                res.push((name, Verdict::Fail));
                test = None;
            } else {
                test = Some((name, tail.contains("[SKIPPED]").then(|| note(tail))));
            }
            continue;
        }
        let Some((name, skipped)) = test.as_mut() else {
            continue;
        };
        // A verdict line may carry a late note ("passed    [SKIPPED] ..." from the suite
        // teardown): the verdict is the first word, and that note is not about this test.
        let t = line.trim();
        if line.contains("[SKIPPED]") && !t.starts_with("passed") && !t.starts_with("FAILED") {
            skipped.get_or_insert_with(|| note(t));
        }
        match t.split_whitespace().next().unwrap_or("") {
            "passed" => {
                let v = match skipped.take() {
                    Some(n) => Verdict::Skip(n),
                    None => Verdict::Pass,
                };
                res.push((std::mem::take(name), v));
                test = None;
            }
            "FAILED" => {
                res.push((std::mem::take(name), Verdict::Fail));
                test = None;
            }
            _ => {}
        }
    }
    res
}

/// CUnit's own count of tests (`Run Summary` table, row `tests`): total, ran, passed
/// (CUnit counts a skipped test as passed), failed; and libiscsi's last line, `Tests
/// completed with return value: N`.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    total: usize,
    ran: usize,
    passed: usize,
    failed: usize,
    return_value: i32,
}

fn summary(out: &str) -> Option<Summary> {
    let row = out
        .lines()
        .skip_while(|l| !l.starts_with("Run Summary:"))
        .find(|l| l.split_whitespace().next() == Some("tests"))?;
    let n: Vec<usize> = row
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let return_value = out
        .lines()
        .find_map(|l| l.strip_prefix("Tests completed with return value: "))?
        .trim()
        .parse()
        .ok()?;
    match n.as_slice() {
        [total, ran, passed, failed, _inactive] => Some(Summary {
            total: *total,
            ran: *ran,
            passed: *passed,
            failed: *failed,
            return_value,
        }),
        _ => None,
    }
}

/// Skipped in both shapes, and why hydra cannot or will not run them.
const SKIPS_ALWAYS: &[(&str, &str)] = &[
    // The LUN is a fixed disk: PREVENT ALLOW MEDIUM REMOVAL and START STOP UNIT's
    // eject/load are for removable media (SBC-3 §5.11, §5.25).
    (
        "PreventAllow.Simple",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    (
        "PreventAllow.Eject",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    (
        "PreventAllow.ITNexusLoss",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    (
        "PreventAllow.Logout",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    (
        "PreventAllow.WarmReset",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    (
        "PreventAllow.ColdReset",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    (
        "PreventAllow.LUNReset",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    (
        "PreventAllow.2ITNexuses",
        "[SKIPPED] Logical unit is not removable. Skipping test.",
    ),
    ("StartStopUnit.Simple", "[SKIPPED] Media is not removable."),
    // Needs a write-protected LUN; these runs use a writable one.
    (
        "ReadOnly.ReadOnlySBC",
        "[SKIPPED] Logical unit is not write-protected. Skipping test.",
    ),
    // SANITIZE destroys the LUN: iscsi-test-cu runs it only with --allow-sanitize, and
    // hydra does not implement it.
    ("Sanitize.BlockErase", SANITIZE),
    ("Sanitize.BlockEraseReserved", SANITIZE),
    ("Sanitize.CryptoErase", SANITIZE),
    ("Sanitize.CryptoEraseReserved", SANITIZE),
    ("Sanitize.ExitFailureMode", SANITIZE),
    ("Sanitize.InvalidServiceAction", SANITIZE),
    ("Sanitize.Overwrite", SANITIZE),
    ("Sanitize.OverwriteReserved", SANITIZE),
    ("Sanitize.Readonly", SANITIZE),
    ("Sanitize.Reservations", SANITIZE),
    ("Sanitize.Reset", SANITIZE),
];
const SANITIZE: &str = "[SKIPPED] --allow-sanitize flag is not set. Skipping test.";

/// Skipped on the thin LUN: hydra reports one logical block per physical block (LBPPB 1,
/// as tgt does), and these need several.
const SKIPS_THIN: &[(&str, &str)] = &[
    ("CompareAndWrite.InvalidDataOutSize", LBPPB),
    ("WriteSame10.UnmapUnaligned", LBPPB),
    ("WriteSame10.InvalidDataOutSize", LBPPB),
    ("WriteSame16.UnmapUnaligned", LBPPB),
    ("WriteSame16.InvalidDataOutSize", LBPPB),
];
const LBPPB: &str = "[SKIPPED] LBPPB < 2. Skipping test";

/// Skipped on the fully provisioned LUN through one portal: thin provisioning is off, so
/// the LUN reports neither UNMAP nor GET LBA STATUS (SBC-3 §4.7), and with one URL the
/// MultipathIO suite has no second path.
const SKIPS_THICK_ONE_PORTAL: &[(&str, &str)] = &[
    ("CompareAndWrite.InvalidDataOutSize", FULL),
    (
        "GetLBAStatus.Simple",
        "[SKIPPED] GET_LBA_STATUS is not implemented.",
    ),
    (
        "GetLBAStatus.BeyondEol",
        "[SKIPPED] GET_LBA_STATUS is not implemented.",
    ),
    ("GetLBAStatus.UnmapSingle", FULL),
    ("Inquiry.BlockLimits", FULL),
    ("Unmap.Simple", FULL),
    ("Unmap.VPD", "[SKIPPED] UNMAP is not implemented."),
    ("Unmap.ZeroBlocks", FULL),
    ("WriteSame10.Unmap", FULL),
    ("WriteSame10.UnmapUnaligned", FULL),
    ("WriteSame10.UnmapUntilEnd", FULL),
    ("WriteSame10.InvalidDataOutSize", FULL),
    ("WriteSame16.Unmap", FULL),
    ("WriteSame16.UnmapUnaligned", FULL),
    ("WriteSame16.UnmapUntilEnd", FULL),
    ("WriteSame16.InvalidDataOutSize", FULL),
    ("MultipathIO.Simple", NO_MPIO),
    ("MultipathIO.Reset", NO_MPIO),
    ("MultipathIO.CompareAndWrite", NO_MPIO),
    ("MultipathIO.CompareAndWriteAsync", NO_MPIO),
];
const FULL: &str = "[SKIPPED] Logical unit is fully provisioned. Skipping test";
const NO_MPIO: &str = "[SKIPPED] Multipath unavailable. Skipping test";

/// One shape of the run: the captured log of it and the tests it skips.
struct Shape {
    fixture: &'static str,
    skips: &'static [(&'static str, &'static str)],
}

const TWO_PORTALS_THIN: Shape = Shape {
    fixture: include_str!("fixtures/iscsi-test-cu/two-portals-thin.log"),
    skips: SKIPS_THIN,
};
const ONE_PORTAL_THICK: Shape = Shape {
    fixture: include_str!("fixtures/iscsi-test-cu/one-portal-thick.log"),
    skips: SKIPS_THICK_ONE_PORTAL,
};

impl Shape {
    /// The verdict every test must get in this shape.
    fn expected(&self) -> BTreeMap<String, Verdict> {
        let skips: BTreeMap<&str, &str> = SKIPS_ALWAYS.iter().chain(self.skips).copied().collect();
        classify(self.fixture)
            .into_iter()
            .map(|(name, _)| {
                let v = match skips.get(name.as_str()) {
                    Some(why) => Verdict::Skip(why.to_string()),
                    None => Verdict::Pass,
                };
                (name, v)
            })
            .collect()
    }

    /// Checks a run's output and exit status against this shape; the differences, named.
    fn check(&self, out: &str, status: Option<i32>) -> Vec<String> {
        let mut bad = Vec::new();
        if status != Some(0) {
            bad.push(format!("iscsi-test-cu exited with {status:?}"));
        }
        let got = classify(out);
        let want = self.expected();
        match summary(out) {
            None => bad.push("no Run Summary / return value line".into()),
            Some(s) => {
                let skips = got.iter().filter(|(_, v)| matches!(v, Verdict::Skip(_)));
                let passed = got.iter().filter(|(_, v)| *v == Verdict::Pass).count();
                let seen = Summary {
                    total: want.len(),
                    ran: got.len(),
                    passed: passed + skips.count(),
                    failed: 0,
                    return_value: 0,
                };
                if s != seen {
                    bad.push(format!("CUnit's summary {s:?}, expected {seen:?}"));
                }
            }
        }
        let got: BTreeMap<String, Verdict> = got.into_iter().collect();
        for (name, v) in &want {
            match got.get(name) {
                None => bad.push(format!("{name}: did not run")),
                Some(g) if g != v => bad.push(format!("{name}: {g:?}, expected {v:?}")),
                Some(_) => {}
            }
        }
        for name in got.keys().filter(|n| !want.contains_key(*n)) {
            bad.push(format!("{name}: not in the captured log (a new test?)"));
        }
        bad
    }
}

#[test]
fn classify_reads_cunit_verbose_output() {
    let out = "Suite: A\n  Test: One ...passed\n  Test: Two ...    [SKIPPED] nope\npassed\n  Test: Six ...passed\npassed    [SKIPPED] teardown note\n  Test: Three ...FAILED\n    1. x.c:1\nSuite: B\n  Test: Four ...\n    [FAILED] note\nFAILED\n  Test: Five ...passed    [FAILED] late note\n";
    assert_eq!(
        classify(out),
        vec![
            ("A.One".into(), Verdict::Pass),
            ("A.Two".into(), Verdict::Skip("[SKIPPED] nope".into())),
            ("A.Six".into(), Verdict::Pass),
            ("A.Three".into(), Verdict::Fail),
            ("B.Four".into(), Verdict::Fail),
            ("B.Five".into(), Verdict::Pass),
        ]
    );
}

/// The parser and the skip lists against real logs: each captured run passes its own
/// check; the other shape's log does not; a failure, a lost test and a bad exit are seen.
#[test]
fn checks_read_captured_logs() {
    for (shape, other) in [
        (&TWO_PORTALS_THIN, &ONE_PORTAL_THICK),
        (&ONE_PORTAL_THICK, &TWO_PORTALS_THIN),
    ] {
        assert_eq!(classify(shape.fixture).len(), 230);
        assert_eq!(shape.check(shape.fixture, Some(0)), Vec::<String>::new());
        assert!(!other.check(shape.fixture, Some(0)).is_empty());
        assert!(!shape.check(shape.fixture, Some(1)).is_empty());
    }
    let log = TWO_PORTALS_THIN.fixture;
    assert_eq!(
        summary(log),
        Some(Summary {
            total: 230,
            ran: 230,
            passed: 230,
            failed: 0,
            return_value: 0
        })
    );
    // One test failing, as CUnit prints it (and counts it).
    let failed = log
        .replacen(
            "  Test: Simple ...passed",
            "  Test: Simple ...FAILED\n    1. x.c:1",
            1,
        )
        .replace("230    230    230      0", "230    230    229      1");
    let bad = TWO_PORTALS_THIN.check(&failed, Some(0));
    assert!(
        bad.iter()
            .any(|b| b.starts_with("CompareAndWrite.Simple: Fail")),
        "{bad:?}"
    );
    assert!(
        bad.iter().any(|b| b.starts_with("CUnit's summary")),
        "{bad:?}"
    );
    // A test that no longer skips, and one that is gone.
    let unskipped = log.replacen(
        "  Test: InvalidDataOutSize ...    [SKIPPED] LBPPB < 2. Skipping test\npassed",
        "  Test: InvalidDataOutSize ...passed",
        1,
    );
    let bad = TWO_PORTALS_THIN.check(&unskipped, Some(0));
    assert!(
        bad.iter()
            .any(|b| b.starts_with("CompareAndWrite.InvalidDataOutSize: Pass")),
        "{bad:?}"
    );
    let lost = log.replacen("  Test: DpoFua ...passed\n", "", 1);
    let bad = TWO_PORTALS_THIN.check(&lost, Some(0));
    assert!(
        bad.contains(&"CompareAndWrite.DpoFua: did not run".to_string()),
        "{bad:?}"
    );
}

fn run_suite(shape: &Shape, conf: &str, portals: usize) {
    assert!(
        std::path::Path::new("/usr/bin/iscsi-test-cu").exists(),
        "iscsi-test-cu is missing: run scripts/setup.sh (installs libiscsi-bin)"
    );
    let iqn = "iqn.2026-11.org.hydra:conformance";
    let conf = format!("<target {iqn}>\n    backing-store @DIR@/lun1.img\n{conf}</target>\n");
    let h = Hydra::start_portals(&conf, portals, &[], |dir| {
        sparse(&dir.join("lun1.img"), 256 << 20)
    });
    let mut cmd = Command::new("iscsi-test-cu");
    cmd.args(["-d", "-v", "-t", "ALL"])
        .args(["-i", "iqn.2026-11.org.hydra:conformance-1"])
        .args(["-I", "iqn.2026-11.org.hydra:conformance-2"]);
    for i in 0..portals {
        cmd.arg(h.url_via(i, iqn, 1));
    }
    let o = run(&mut cmd, Duration::from_secs(900));
    let out = text(&o);
    let bad = shape.check(&out, o.status.code());
    assert!(
        bad.is_empty(),
        "conformance changed:\n{}\n\nfull output:\n{out}\n\ndaemon log:\n{}",
        bad.join("\n"),
        h.log()
    );
}

#[test]
fn iscsi_test_cu_two_portals_thin_lun() {
    // A thin LUN, so the UNMAP / WRITE SAME / GET LBA STATUS suites run too.
    run_suite(&TWO_PORTALS_THIN, "    params thin_provisioning=1\n", 2);
}

#[test]
fn iscsi_test_cu_one_portal_fully_provisioned_lun() {
    run_suite(&ONE_PORTAL_THICK, "", 1);
}
