//! `hydra multipath`, `hydra multipathd` and `hydra mpathpersist` as processes (also
//! through argv0 symlinks), against a stand-in for the node daemon's multipathd socket:
//! the real control socket and protocol with a small handler over fixed snapshots.
//! Outputs and exit codes are checked as a script sees them. `against_the_node_daemon`
//! runs them once more against the real node daemon (`hydra iscsid` over `hydra tgtd`
//! with two loopback portals, maps served over NBD only).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::node_daemon::{self, NodeDaemon};
use hydra_daemon::control;
use hydra_daemon::Shutdown;
use hydra_multipath::control::{
    pr_status, Multipathd, PrAnswer, PrInAction, PrOutAction, Request, Response,
};
use hydra_multipath::show::{self, DaemonFacts, MapSnapshot};

const SNAPSHOT: &str = r#"{"name":"mpatha","wwid":"360000000000000000e00000000010001",
    "sysfs":"loop3","dev_t":"7:3","size":1073741824,"vendor":"IET",
    "product":"VIRTUAL-DISK","revision":"0001","features":"1 queue_if_no_path",
    "hwhandler":"0","write_protect":false,"failback":"immediate","queueing":"on",
    "queued":0,"pending":0,"stats":{"path_faults":1,"switch_group":1,"queue_timeouts":0},
    "groups":[
     {"selector":"service-time 0","prio":1,"status":"active","paths":[
      {"id":4294967297,"wwid":"360000000000000000e00000000010001","multipath":"mpatha",
       "size":1073741824,"hcil":"1:0:0:1","dev":"s1l1","dev_t":"7:3","dm_state":"active",
       "checker":"ready","dev_state":"running","prio":1,"next_check":"XX........ 4/20",
       "vpr":"IET,VIRTUAL-DISK,0001","serial":"beaf11","target_name":"iqn.t",
       "portal":"10.200.1.1:3260","tpg":null,"sid":1,"failed_because":null,"in_flight":0}]},
     {"selector":"service-time 0","prio":0,"status":"enabled","paths":[
      {"id":8589934593,"wwid":"360000000000000000e00000000010001","multipath":"mpatha",
       "size":1073741824,"hcil":"12:0:0:1","dev":"s12l1","dev_t":"7:3","dm_state":"failed",
       "checker":"faulty","dev_state":"offline","prio":1,"next_check":"X......... 1/5",
       "vpr":"IET,VIRTUAL-DISK,0001","serial":"beaf11","target_name":"iqn.t",
       "portal":"10.200.2.1:3260","tpg":null,"sid":12,"failed_because":"session down",
       "in_flight":0}]}]}"#;

/// The stand-in daemon's answers.
async fn answer(req: Request, maps: Vec<MapSnapshot>) -> Response {
    match req {
        Request::Show(s) => Response::shown(show::answer(&s, &maps, &DaemonFacts::default())),
        Request::Snapshots { map: None } => Response::Snapshots(maps),
        Request::Snapshots { map: Some(m) } => {
            Response::Snapshots(show::find(&maps, &m).into_iter().cloned().collect())
        }
        Request::Flush { map: Some(m) } if m == "mpatha" => Response::Error {
            code: 1,
            message: "mpatha: map in use".into(),
        },
        Request::Flush { .. } | Request::Reconfigure => Response::Ok,
        Request::PrIn {
            action: PrInAction::ReadKeys,
            ..
        } => Response::Pr(PrAnswer::Keys {
            generation: 2,
            keys: vec![0x123abc, 0x123abc],
        }),
        Request::PrOut(o) if o.action == PrOutAction::Reserve => Response::Error {
            code: pr_status::RESERV_CONFLICT,
            message: "mpatha: RESERVATION CONFLICT".into(),
        },
        Request::PrOut(_) => Response::Pr(PrAnswer::Done),
        other => Response::Error {
            code: 1,
            message: format!("{other:?}: not in this test"),
        },
    }
}

/// The stand-in daemon on `<run_dir>/multipathd.sock`, in a thread of its own, until
/// the returned guard is dropped.
struct Daemon {
    shutdown: Option<Shutdown>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let (Some(rt), Some(shutdown)) = (self.runtime.take(), self.shutdown.take()) {
            rt.block_on(shutdown.drain(Duration::from_secs(5)));
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn daemon(run_dir: &Path) -> Daemon {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = Shutdown::new();
    let path = hydra_multipath::control::socket_path(run_dir);
    let listener = rt
        .block_on(async { control::bind(&path, Some(0o600)) })
        .unwrap();
    let snap: MapSnapshot = serde_json::from_str(SNAPSHOT).unwrap();
    let stop = shutdown.subscribe();
    rt.spawn(control::serve::<Multipathd, _, _>(
        listener,
        stop,
        move |req: Request| answer(req, vec![snap.clone()]),
    ));
    Daemon {
        shutdown: Some(shutdown),
        runtime: Some(rt),
    }
}

fn hydra() -> &'static str {
    env!("CARGO_BIN_EXE_hydra")
}

fn run(cmd: &mut Command) -> (String, String, i32) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
        status.code().unwrap(),
    )
}

fn tool(run_dir: &Path, args: &[&str]) -> (String, String, i32) {
    run(Command::new(hydra())
        .args(args)
        .env("HYDRA_ISCSID_RUN_DIR", run_dir))
}

#[test]
fn multipath_lists_flushes_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let _d = daemon(dir.path());
    let ll = "\
mpatha (360000000000000000e00000000010001) loop3 IET,VIRTUAL-DISK
size=1.0G features='1 queue_if_no_path' hwhandler='0' wp=rw
|-+- policy='service-time 0' prio=1 status=active
| `- 1:0:0:1  s1l1  7:3 active ready  running
`-+- policy='service-time 0' prio=0 status=enabled
  `- 12:0:0:1 s12l1 7:3 failed faulty offline
";
    assert_eq!(
        tool(dir.path(), &["multipath", "-ll"]),
        (ll.into(), "".into(), 0)
    );
    // The map by name or by its device; --run-dir beats the environment.
    let (out, _, rc) = run(Command::new(hydra())
        .args(["multipath", "-ll", "/dev/mapper/mpatha", "--run-dir"])
        .arg(dir.path())
        .env("HYDRA_ISCSID_RUN_DIR", "/nonexistent"));
    assert_eq!((out.as_str(), rc), (ll, 0));
    let (l, _, rc) = tool(dir.path(), &["multipath", "-l", "loop3"]);
    assert_eq!(rc, 0);
    assert!(
        l.contains("prio=0 status=active\n| `- 1:0:0:1  s1l1  7:3 active undef running\n"),
        "{l}"
    );
    assert_eq!(
        tool(dir.path(), &["multipath", "-v1", "-ll"]),
        ("mpatha\n".into(), "".into(), 0)
    );
    assert_eq!(tool(dir.path(), &["multipath", "-v0", "-ll"]).0, "");
    assert_eq!(tool(dir.path(), &["multipath", "-ll", "nosuchmap"]).0, "");

    assert_eq!(
        tool(dir.path(), &["multipath", "-F"]),
        ("".into(), "".into(), 0)
    );
    assert_eq!(
        tool(dir.path(), &["multipath", "-r"]),
        ("".into(), "".into(), 0)
    );
    assert_eq!(
        tool(dir.path(), &["multipath", "-f", "mpatha"]),
        ("".into(), "multipath: mpatha: map in use\n".into(), 1)
    );
    let (_, err, rc) = tool(dir.path(), &["multipath", "-l", "-f", "x"]);
    assert_eq!(rc, 1);
    assert!(
        err.starts_with("multipath: conflicting actions: -l and -f\n"),
        "{err}"
    );
}

#[test]
fn multipath_t_needs_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("multipath.conf");
    std::fs::write(&conf, "defaults {\n\tuser_friendly_names yes\n}\n").unwrap();
    let (out, err, rc) = tool(
        &dir.path().join("no-daemon"),
        &[
            "multipath",
            "-t",
            "--config",
            conf.to_str().unwrap(),
            "--config-dir",
            dir.path().join("conf.d").to_str().unwrap(),
        ],
    );
    assert_eq!((rc, err.as_str()), (0, ""));
    assert!(out.starts_with("defaults {\n"), "{out}");
    assert!(out.contains("\tuser_friendly_names \"yes\"\n"), "{out}");

    std::fs::write(&conf, "defaults {\n\tno_path_retry sometimes\n}\n").unwrap();
    let (_, err, rc) = tool(
        dir.path(),
        &["multipath", "-t", "--config", conf.to_str().unwrap()],
    );
    assert_eq!(rc, 1);
    assert!(
        err.contains("line 2, invalid value for no_path_retry"),
        "{err}"
    );
}

#[test]
fn multipathd_commands_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let _d = daemon(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["multipathd", "mpathpersist"] {
        std::os::unix::fs::symlink(hydra(), bin.join(name)).unwrap();
    }
    let mpd = |args: &[&str]| {
        run(Command::new(bin.join("multipathd"))
            .args(args)
            .env("HYDRA_ISCSID_RUN_DIR", dir.path()))
    };
    let paths = "\
hcil     dev   dev_t pri dm_st  chk_st dev_st  next_check
1:0:0:1  s1l1  7:3   1   active ready  running XX........ 4/20
12:0:0:1 s12l1 7:3   1   failed faulty offline X......... 1/5
";
    assert_eq!(mpd(&["show", "paths"]), (paths.into(), "".into(), 0));
    assert_eq!(mpd(&["-kshow paths"]).0, paths);
    assert_eq!(mpd(&["-k", "list", "paths"]).0, paths);
    assert_eq!(
        mpd(&["-kshow maps format \"%n %Q %N %F\""]).0,
        "name   queueing paths failback\nmpatha on       1     immediate\n"
    );
    assert_eq!(
        mpd(&["show", "maps"]).0,
        "name   sysfs uuid\nmpatha loop3 360000000000000000e00000000010001\n"
    );
    assert!(mpd(&["show", "topology"]).0.starts_with("mpatha (3600"));
    assert_eq!(mpd(&["reconfigure"]), ("ok\n".into(), "".into(), 0));
    let (out, err, rc) = mpd(&["fail", "path", "s1l1"]);
    assert_eq!((out.as_str(), rc), ("fail\n", 1));
    assert!(err.contains("not in this test"), "{err}");
    let (out, err, rc) = mpd(&["show", "bogus"]);
    assert_eq!((out.as_str(), rc), ("", 1));
    assert!(
        err.starts_with("multipathd: unknown command 'show bogus'"),
        "{err}"
    );
    // Interactive: commands from stdin until quit.
    let child = Command::new(bin.join("multipathd"))
        .arg("-k")
        .env("HYDRA_ISCSID_RUN_DIR", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .as_ref()
        .unwrap()
        .write_all(b"show maps\nreconfigure\nquit\nshow paths\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "name   sysfs uuid\nmpatha loop3 360000000000000000e00000000010001\nok\n"
    );

    let pr = |args: &[&str]| {
        run(Command::new(bin.join("mpathpersist"))
            .args(args)
            .env("HYDRA_ISCSID_RUN_DIR", dir.path()))
    };
    assert_eq!(
        pr(&["-i", "-k", "/dev/mapper/mpatha"]),
        (
            "  PR generation=0x2, \t2 registered reservation keys follow:\n    0x123abc\n    0x123abc\n"
                .into(),
            "".into(),
            0
        )
    );
    assert_eq!(
        pr(&["--out", "--register", "--param-sark=123abc", "mpatha"]),
        ("".into(), "".into(), 0)
    );
    let (out, err, rc) = pr(&["-o", "-R", "-K", "123abc", "-T", "5", "mpatha"]);
    assert_eq!(
        (out.as_str(), rc),
        (
            "persistent reserve out: scsi status: Reservation Conflict\nPR out: command failed\n",
            11
        )
    );
    assert!(err.contains("RESERVATION CONFLICT"), "{err}");
    let (_, err, rc) = pr(&["-o", "-R", "mpatha"]);
    assert_eq!(rc, 11);
    assert!(
        err.starts_with("Warning: --prout-type probably needs to be given\n"),
        "{err}"
    );
    let (_, err, rc) = pr(&["-i", "mpatha"]);
    assert_eq!(rc, 1);
    assert!(
        err.starts_with("No service action given for Persistent Reserve IN\nUsage: mpathpersist"),
        "{err}"
    );
}

#[test]
fn no_daemon_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err, rc) = tool(dir.path(), &["multipathd", "show", "maps"]);
    assert_eq!((out.as_str(), rc), ("", 1));
    assert!(
        err.starts_with(
            "ERROR: failed to connect to multipathd: can't connect to hydra multipathd ("
        ),
        "{err}"
    );
    assert!(err.contains("multipathd.sock"), "{err}");
    let (_, err, rc) = tool(dir.path(), &["mpathpersist", "-i", "-k", "mpatha"]);
    assert_eq!(rc, 13);
    assert!(err.contains("is `hydra iscsid` running"), "{err}");
    let (_, _, rc) = tool(dir.path(), &["multipath", "-ll"]);
    assert_eq!(rc, 1);
}

const IQN: &str = "iqn.2026-12.org.hydra:mp-cli";

#[test]
fn against_the_node_daemon() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/lun.img\n</target>\n");
    let h = common::Hydra::start_portals(&conf, 2, &[], |d| {
        common::sparse(&d.join("lun.img"), 64 << 20)
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run_dir = dir.join("run");
    std::fs::create_dir_all(dir.join("iscsi")).unwrap();
    node_daemon::write_multipath_conf(dir, "\tpolling_interval 1\n", "");
    let adm = |args: &[&str]| {
        let o = node_daemon::adm(dir, args);
        assert!(o.status.success(), "{}", common::text(&o));
    };
    let portals = [
        format!("127.0.0.1:{}", h.ports[0]),
        format!("127.0.0.1:{}", h.ports[1]),
    ];
    for p in &portals {
        adm(&["-m", "discovery", "-t", "st", "-p", p]);
    }
    let node = NodeDaemon::start(dir, &["--no-kernel-devices"]);
    for p in &portals {
        adm(&["-m", "node", "-T", IQN, "-p", p, "--login"]);
    }
    let ll = || tool(&run_dir, &["multipath", "-ll"]);
    node.wait_for("mpatha with two ready paths", || {
        ll().0.matches(" active ready running").count() == 2
    });

    let (out, err, rc) = ll();
    assert_eq!((rc, err.as_str()), (0, ""), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    // No kernel device: `undef` where multipath prints dm-N, and `wp=undef`.
    assert!(lines[0].starts_with("mpatha (3"), "{out}");
    assert!(lines[0].ends_with(" undef IET,VIRTUAL-DISK"), "{out}");
    assert!(lines[1].starts_with("size=64M features='"), "{out}");
    assert!(lines[1].ends_with("' hwhandler='0' wp=undef"), "{out}");
    let paths: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(" active ready running"))
        .collect();
    assert_eq!(paths.len(), 2, "{out}");
    for p in paths {
        // `{sid}:0:0:{lun}` and `s{sid}l{lun}`; no kernel device, so `#:#`.
        let f: Vec<&str> = p
            .trim_start_matches(['|', ' ', '`', '-'])
            .split_whitespace()
            .collect();
        let (sid, lun) = f[0].split_once(":0:0:").unwrap();
        assert_eq!(f[1], format!("s{sid}l{lun}"), "{out}");
        assert_eq!(f[2], "#:#", "{out}");
    }

    // The daemon's topology is multipath -ll's (no terminal: no bold).
    assert_eq!(tool(&run_dir, &["multipathd", "show", "topology"]).0, out);
    let (config, _, rc) = tool(&run_dir, &["multipathd", "show", "config"]);
    assert_eq!(rc, 0);
    assert!(config.starts_with("defaults {\n"), "{config}");
    assert!(
        config.contains("\tuser_friendly_names \"yes\"\n"),
        "{config}"
    );
    let (maps, _, rc) = tool(&run_dir, &["multipathd", "show", "maps"]);
    assert_eq!(rc, 0);
    assert!(
        maps.starts_with("name   sysfs uuid\nmpatha undef 3"),
        "{maps}"
    );
    let (paths, _, rc) = tool(&run_dir, &["multipathd", "-kshow paths"]);
    assert_eq!(rc, 0);
    assert!(
        paths.starts_with("hcil    dev  dev_t pri dm_st  chk_st dev_st  next_check\n"),
        "{paths}"
    );
    // The two paths of mpatha. LUN 0 of each session (tgt's controller LUN, peripheral
    // type 0x0c) is no path: multipathd only sees disks (it has no sd device either).
    assert_eq!(
        paths.matches(" active ready  running ").count(),
        2,
        "{paths}"
    );
    assert_eq!(paths.matches(" orphan\n").count(), 0, "{paths}");
    let (status, _, _) = tool(&run_dir, &["multipathd", "show", "status"]);
    assert!(status.contains("\nup                  2\n"), "{status}");
    assert!(status.ends_with("\npaths: 2\nbusy: False\n"), "{status}");

    // Fail one path by its dev name, then it comes back (the checker reinstates it).
    let victim = paths
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        tool(&run_dir, &["multipathd", "fail", "path", &victim]),
        ("ok\n".into(), "".into(), 0)
    );
    let (out, _, _) = tool(
        &run_dir,
        &["multipathd", "show", "paths", "format", "%d %t"],
    );
    assert!(out.contains(&format!("{victim} failed")), "{out}");
    assert_eq!(
        tool(&run_dir, &["multipathd", "reinstate", "path", &victim]).0,
        "ok\n"
    );

    // Persistent reservations: REGISTER goes to both I_T nexuses.
    let pr = |args: &[&str]| tool(&run_dir, &[&["mpathpersist"], args].concat());
    assert_eq!(
        pr(&[
            "--out",
            "--register",
            "--param-sark=123abc",
            "/dev/mapper/mpatha"
        ]),
        ("".into(), "".into(), 0)
    );
    let (keys, err, rc) = pr(&["-i", "-k", "mpatha"]);
    assert_eq!((rc, err.as_str()), (0, ""), "{keys}");
    assert!(
        keys.ends_with("\t2 registered reservation keys follow:\n    0x123abc\n    0x123abc\n"),
        "{keys}"
    );
    assert_eq!(pr(&["-o", "-R", "-K", "123abc", "-T", "5", "mpatha"]).2, 0);
    let (resv, _, _) = pr(&["-i", "-r", "mpatha"]);
    assert!(
        resv.contains(
            "   Key = 0x123abc\n  scope = LU_SCOPE, type = Write Exclusive, registrants only\n"
        ),
        "{resv}"
    );
    let (full, _, _) = pr(&["-i", "-s", "mpatha"]);
    assert_eq!(full.matches("   Key = 0x123abc\n").count(), 2, "{full}");
    // A registrants-only reservation is held by the nexus that reserved (SPC-4
    // §5.13.10); the other one is registered.
    assert_eq!(
        full.matches("<< Reservation holder >>").count(),
        1,
        "{full}"
    );
    assert_eq!(full.matches("not reservation holder").count(), 1, "{full}");
    // Another key cannot reserve: RESERVATION CONFLICT, exit 11.
    let (out, _, rc) = pr(&["-o", "-R", "-K", "abc", "-T", "5", "mpatha"]);
    assert_eq!(rc, 11, "{out}");
    assert!(out.contains("Reservation Conflict"), "{out}");
    assert_eq!(pr(&["-o", "-C", "-K", "123abc", "mpatha"]).2, 0);

    // Flush: the map goes (nothing holds it open over NBD).
    assert_eq!(
        tool(&run_dir, &["multipath", "-f", "mpatha"]).2,
        0,
        "{}",
        node.log()
    );
    assert_eq!(tool(&run_dir, &["multipath", "-ll"]).0, "");

    // The wwids file under find_multipaths strict (multipath-tools' default): only a
    // listed WWID becomes a map; -W, -a and -w edit the list with multipath's answers.
    let wwid = lines[0]
        .split(['(', ')'])
        .nth(1)
        .expect("the WWID in the map line")
        .to_string();
    let conf = dir.join("multipath.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("find_multipaths yes", "find_multipaths strict"),
    )
    .unwrap();
    let wwids_file = || std::fs::read_to_string(dir.join("multipath/wwids")).unwrap();
    assert!(wwids_file().contains(&format!("\n/{wwid}/\n")));
    assert_eq!(
        tool(&run_dir, &["multipath", "-W"]),
        ("successfully reset wwids\n".into(), "".into(), 0)
    );
    assert!(!wwids_file().contains(&wwid), "{}", wwids_file());
    assert_eq!(tool(&run_dir, &["multipath", "-r"]).2, 0);
    assert_eq!(
        tool(&run_dir, &["multipath", "-ll"]).0,
        "",
        "strict: no map"
    );
    assert_eq!(
        tool(&run_dir, &["multipath", "-a", &victim]),
        (format!("wwid '{wwid}' added\n"), "".into(), 0)
    );
    assert!(wwids_file().ends_with(&format!("\n/{wwid}/\n")));
    assert_eq!(tool(&run_dir, &["multipath"]).2, 0);
    node.wait_for("mpatha back once its WWID is listed", || {
        ll().0.matches(" active ready running").count() == 2
    });
    assert_eq!(
        tool(&run_dir, &["multipath", "-w", "/dev/mapper/mpatha"]),
        (format!("wwid '{wwid}' removed\n"), "".into(), 0)
    );
    assert!(wwids_file().contains(&format!("\n#{wwid}/\n")));
    assert_eq!(
        tool(&run_dir, &["multipath", "-w", &wwid]),
        (format!("wwid '{wwid}' not in wwids file\n"), "".into(), 0)
    );
    assert!(
        ll().0.starts_with("mpatha ("),
        "the map stays until flushed"
    );
    for p in &portals {
        adm(&["-m", "node", "-T", IQN, "-p", p, "--logout"]);
    }
}
