//! Goldens: the texts of initiator-multipath.md §2.3/§2.4 (real multipath-tools output
//! quoted there) printed from snapshots holding the same facts, and a snapshot of a
//! real core [`Map`].

use std::time::{Duration, Instant};

use super::*;
use crate::config::{Failback, NoPathRetry, PgPolicy, RrWeight, SelectorKind};
use crate::map::{CheckResult, Map, MapConfig, PathId, PathInfo};

fn path(hcil: &str, dev: &str, dev_t: &str, dm: &str, chk: &str) -> PathSnapshot {
    PathSnapshot {
        id: 0,
        wwid: String::new(),
        multipath: Some("mpatha".into()),
        size: 0,
        hcil: hcil.into(),
        dev: dev.into(),
        dev_t: Some(dev_t.into()),
        dm_state: dm.into(),
        checker: chk.into(),
        dev_state: "running".into(),
        prio: 1,
        next_check: "orphan".into(),
        vpr: String::new(),
        serial: String::new(),
        target_name: String::new(),
        portal: String::new(),
        tpg: None,
        sid: 0,
        failed_because: None,
        in_flight: 0,
    }
}

fn group(selector: &str, prio: i32, status: &str, paths: Vec<PathSnapshot>) -> GroupSnapshot {
    GroupSnapshot {
        selector: selector.into(),
        prio,
        status: status.into(),
        paths,
    }
}

#[allow(clippy::too_many_arguments)]
fn map(
    name: &str,
    wwid: &str,
    sysfs: &str,
    vendor: &str,
    product: &str,
    size: u64,
    features: &str,
    hwhandler: &str,
    groups: Vec<GroupSnapshot>,
) -> MapSnapshot {
    MapSnapshot {
        name: name.into(),
        wwid: wwid.into(),
        sysfs: Some(sysfs.into()),
        dev_t: None,
        size,
        vendor: vendor.into(),
        product: product.into(),
        revision: "0001".into(),
        features: features.into(),
        hwhandler: hwhandler.into(),
        write_protect: Some(false),
        failback: "-".into(),
        queueing: "off".into(),
        queued: 0,
        pending: 0,
        stats: StatsSnapshot::default(),
        groups,
    }
}

#[test]
fn ll_with_alias_one_group_two_paths() {
    let m = map(
        "mpatha",
        "36001405d618a8d33eae5caeba25c278c",
        "dm-1",
        "LIO-ORG",
        "disk01",
        20 << 30,
        "1 queue_if_no_path",
        "1 alua",
        vec![group(
            "round-robin 0",
            50,
            "active",
            vec![
                path("16:0:0:1", "sdb", "8:16", "active", "ready"),
                path("17:0:0:1", "sdc", "8:32", "active", "ready"),
            ],
        )],
    );
    assert_eq!(
        topology(&[m], 2, false),
        "\
mpatha (36001405d618a8d33eae5caeba25c278c) dm-1 LIO-ORG,disk01
size=20G features='1 queue_if_no_path' hwhandler='1 alua' wp=rw
`-+- policy='round-robin 0' prio=50 status=active
  |- 16:0:0:1 sdb 8:16 active ready running
  `- 17:0:0:1 sdc 8:32 active ready running
"
    );
}

#[test]
fn ll_without_alias_pads_columns() {
    let wwid = "360000000000000000e00000000010001";
    let m = map(
        wwid,
        wwid,
        "dm-0",
        "IET",
        "VIRTUAL-DISK",
        10 << 30,
        "0",
        "0",
        vec![group(
            "queue-length 0",
            1,
            "enabled",
            vec![
                path("2:0:0:1", "sda", "8:0", "active", "ready"),
                path("3:0:0:1", "sdb", "8:16", "active", "ready"),
            ],
        )],
    );
    assert_eq!(
        topology(&[m], 2, false),
        "\
360000000000000000e00000000010001 dm-0 IET,VIRTUAL-DISK
size=10G features='0' hwhandler='0' wp=rw
`-+- policy='queue-length 0' prio=1 status=enabled
  |- 2:0:0:1 sda 8:0  active ready running
  `- 3:0:0:1 sdb 8:16 active ready running
"
    );
}

#[test]
fn ll_two_groups_after_path_loss() {
    let m = map(
        "mpatha",
        "23446d5dc97d4401f",
        "dm-3",
        "Bigtera ",
        "VirtualStor_Conv",
        100 << 30,
        "0",
        "0",
        vec![
            group(
                "service-time 0",
                0,
                "enabled",
                vec![path("10:0:0:1", "sdc", "8:32", "failed", "faulty")],
            ),
            group(
                "service-time 0",
                1,
                "active",
                vec![path("9:0:0:1", "sde", "8:64", "active", "ready")],
            ),
        ],
    );
    let golden = "\
mpatha (23446d5dc97d4401f) dm-3 Bigtera ,VirtualStor_Conv
size=100G features='0' hwhandler='0' wp=rw
|-+- policy='service-time 0' prio=0 status=enabled
| `- 10:0:0:1 sdc 8:32 failed faulty running
`-+- policy='service-time 0' prio=1 status=active
  `- 9:0:0:1  sde 8:64 active ready  running
";
    assert_eq!(topology(std::slice::from_ref(&m), 2, false), golden);
    // -v1: names only; -v0: nothing; bold on a terminal.
    assert_eq!(topology(std::slice::from_ref(&m), 1, false), "mpatha\n");
    assert_eq!(topology(std::slice::from_ref(&m), 0, false), "");
    assert!(topology(std::slice::from_ref(&m), 2, true).starts_with(
        "\x1b[1mmpatha (23446d5dc97d4401f) dm-3 Bigtera ,VirtualStor_Conv\x1b[0m\nsize=100G"
    ));
    // -l: no checker run.
    let l = topology(&[without_checkers(&m)], 2, false);
    assert!(
        l.contains("| `- 10:0:0:1 sdc 8:32 failed undef running\n"),
        "{l}"
    );
    assert!(l.contains("prio=0 status=active\n"), "{l}");
}

#[test]
fn show_paths_and_maps_default_layouts() {
    let mut orphan = path("2:0:0:0", "sda", "8:0", "undef", "ready");
    orphan.multipath = None;
    let mut a = path("4:0:0:10", "sdc", "8:32", "active", "ready");
    a.next_check = "XXXX...... 9/20".into();
    let mut b = path("4:0:0:0", "sdb", "8:16", "failed", "faulty");
    b.next_check = "X......... 2/20".into();
    assert_eq!(
        paths(PATHS_FORMAT, &[&orphan, &a, &b]),
        "\
hcil     dev dev_t pri dm_st  chk_st dev_st  next_check
2:0:0:0  sda 8:0   1   undef  ready  running orphan
4:0:0:10 sdc 8:32  1   active ready  running XXXX...... 9/20
4:0:0:0  sdb 8:16  1   failed faulty running X......... 2/20
"
    );
    assert_eq!(paths(PATHS_FORMAT, &[]), "");

    let m = map(
        "mpathc",
        "271092d0f9c9ba322",
        "dm-2",
        "",
        "",
        1 << 30,
        "0",
        "0",
        vec![],
    );
    assert_eq!(
        maps(MAPS_FORMAT, std::slice::from_ref(&m)),
        "name   sysfs uuid\nmpathc dm-2  271092d0f9c9ba322\n"
    );
    assert_eq!(
        maps(MAPS_STATUS_FORMAT, std::slice::from_ref(&m)),
        "name   failback queueing paths dm-st  write_prot\nmpathc -        off      0     active rw\n"
    );
    assert_eq!(
        maps(MAPS_STATS_FORMAT, std::slice::from_ref(&m)),
        "name   path_faults switch_grp map_loads total_q_time q_timeouts\nmpathc 0           0          0         0            0\n"
    );
    // A stale map with no path prints ##,##.
    assert!(topology(&[m], 2, false).starts_with("mpathc (271092d0f9c9ba322) dm-2 ##,##\n"));
}

#[test]
fn answer_show_commands() {
    let m = map(
        "mpatha",
        "3600",
        "loop3",
        "IET",
        "VIRTUAL-DISK",
        1 << 30,
        "0",
        "0",
        vec![group(
            "service-time 0",
            1,
            "active",
            vec![
                path("1:0:0:1", "s1l1", "7:3", "active", "ready"),
                path("2:0:0:1", "s2l1", "7:3", "failed", "faulty"),
            ],
        )],
    );
    let maps = [m];
    let d = DaemonFacts {
        config: "defaults {\n}\n".into(),
        orphans: vec![],
    };
    let text = |s: Show| answer(&s, &maps, &d).unwrap();
    assert_eq!(
        text(Show::Status),
        "path checker states:\ndown                1\nup                  1\n\npaths: 2\nbusy: False\n"
    );
    assert_eq!(text(Show::Config), "defaults {\n}\n");
    assert_eq!(
        text(Show::Paths {
            format: Some("%w %d %t %T %m".into())
        }),
        "uuid dev  dm_st  chk_st multipath\n     s1l1 active ready  mpatha\n     s2l1 failed faulty mpatha\n"
    );
    assert_eq!(
        text(Show::PathsRaw {
            format: "%d %t %m".into()
        }),
        "s1l1 active mpatha\ns2l1 failed mpatha\n"
    );
    assert_eq!(
        text(Show::MapsRaw {
            format: "%n %d".into()
        }),
        "mpatha loop3\n"
    );
    let topo = text(Show::Topology {
        map: Some("/dev/mapper/mpatha".into()),
    });
    assert!(
        topo.starts_with("mpatha (3600) loop3 IET,VIRTUAL-DISK\n"),
        "{topo}"
    );
    assert_eq!(
        text(Show::Topology {
            map: Some("loop3".into())
        }),
        topo
    );
    assert_eq!(
        answer(
            &Show::Topology {
                map: Some("nope".into())
            },
            &maps,
            &d
        ),
        Err("nope: invalid map name".to_string())
    );
    let (m, p) = find_path(&maps, "2:0:0:1").unwrap();
    assert_eq!((m.name.as_str(), p.dev.as_str()), ("mpatha", "s2l1"));
    assert_eq!(find_path(&maps, "/dev/s1l1").unwrap().1.hcil, "1:0:0:1");
    assert!(find_path(&maps, "s9l9").is_none());
    assert!(text(Show::Wildcards).contains("\npath format wildcards:\n%w  uuid\n%i  hcil\n"));
}

/// A snapshot of a real core: hydra's identifiers in the columns, checker states and
/// the features string following queueing.
#[test]
fn snapshot_of_a_core_map() {
    let now = Instant::now();
    let cfg = MapConfig {
        wwid: "360000000000000000e00000000010001".into(),
        alias: "mpatha".into(),
        pg_policy: PgPolicy::Failover,
        selector: SelectorKind::ServiceTime,
        selector_text: "service-time 0".into(),
        rr_min_io_rq: 1,
        rr_weight: RrWeight::Uniform,
        failback: Failback::Immediate,
        no_path_retry: NoPathRetry::Queue,
        polling_interval: Duration::from_secs(5),
        max_polling_interval: Duration::from_secs(20),
        max_retries: 5,
    };
    let mut core = Map::new(cfg);
    let p1 = PathId((1 << 32) | 1);
    let p2 = PathId((2 << 32) | 1);
    core.add_path(now, p1, PathInfo::new("s1l1", "beaf11", "iqn.t"))
        .unwrap();
    core.add_path(now, p2, PathInfo::new("s2l1", "beaf11", "iqn.t"))
        .unwrap();
    core.handle_timeout(now);
    let up = CheckResult::Up {
        prio: 1,
        alua: None,
    };
    core.handle_check(now, p1, up.clone()).unwrap();
    let facts = DeviceFacts {
        kernel_name: Some("loop3".into()),
        dev_t: Some("7:3".into()),
        size: 1 << 30,
        vendor: "IET".into(),
        product: "VIRTUAL-DISK".into(),
        revision: "0001".into(),
        write_protect: Some(false),
        features: "0".into(),
        hwhandler: "0".into(),
        paths: Default::default(),
    };
    let snap = MapSnapshot::of(&core, now, &facts);
    let json = serde_json::to_string(&snap).unwrap();
    assert_eq!(serde_json::from_str::<MapSnapshot>(&json).unwrap(), snap);
    assert_eq!(snap.failback, "immediate");
    assert_eq!(snap.active_paths(), 2);
    let text = topology(std::slice::from_ref(&snap), 2, false);
    assert!(
        text.starts_with(
            "mpatha (360000000000000000e00000000010001) loop3 IET,VIRTUAL-DISK\n\
             size=1.0G features='1 queue_if_no_path' hwhandler='0' wp=rw\n\
             |-+- policy='service-time 0' prio=1 status="
        ),
        "{text}"
    );
    assert!(
        text.contains("| `- 1:0:0:1 s1l1 7:3 active ready running\n"),
        "{text}"
    );
    assert!(
        text.contains("  `- 2:0:0:1 s2l1 7:3 active undef running\n"),
        "{text}"
    );
}
