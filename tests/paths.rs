//! A session as a multipath path, against real targets: the state stream reports a
//! lost connection with its reason and its return, and a fail-fast session hands the
//! commands in flight back with a path error instead of holding them for
//! replacement_timeout. A reset (kill -9 of the target) is known at once; a silent
//! loss (a link cut in a namespace bed, no RST) after noop_out_interval +
//! noop_out_timeout.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hydra_initiator::conn::Timeouts;
use hydra_initiator::login::LoginConfig;
use hydra_initiator::session::Reply;
use hydra_initiator::{DownReason, Error, PathState, Session};
use hydra_proto::negotiate::LocalParams;
use tokio::sync::watch;
use tokio::time::Instant;

use common::cluster::{enter_net, Cluster};
use common::*;

const IQN: &str = "iqn.2026-11.org.hydra:paths";

fn cfg() -> LoginConfig {
    LoginConfig {
        initiator_name: "iqn.2026-11.org.hydra:node1".into(),
        target_name: Some(IQN.into()),
        isid: [0x40, 0, 0x12, 0x34, 0, 2],
        tsih: 0,
        chap: None,
        params: LocalParams::default(),
    }
}

/// noop 1 s + 1 s, fail-fast, and a replacement_timeout far longer than any wait here:
/// a command handed back early can only have been failed fast.
fn fail_fast() -> Timeouts {
    Timeouts {
        replacement: Duration::from_secs(600),
        noop_interval: Duration::from_secs(1),
        noop_timeout: Duration::from_secs(1),
        login: Duration::from_secs(3),
        command: Duration::from_secs(60),
        fail_fast: true,
        ..Timeouts::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// READ(10) of 8 blocks at LBA 0.
fn read_cmd() -> hydra_initiator::session::Command {
    hydra_initiator::session::Command {
        lun: 1,
        cdb: vec![0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0],
        data_out: bytes::Bytes::new(),
        read_len: 4096,
    }
}

/// `n` READs submitted now, each resolving to its result.
fn reads(
    s: &Arc<Session>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<hydra_initiator::Result<Reply>>> {
    (0..n)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.execute(read_cmd()).await })
        })
        .collect()
}

/// Every command came back with a path error of this reason, having been sent.
async fn all_path_failed(
    v: Vec<tokio::task::JoinHandle<hydra_initiator::Result<Reply>>>,
    want: DownReason,
) {
    for h in v {
        let r = tokio::time::timeout(Duration::from_secs(20), h)
            .await
            .expect("a command was held, not failed fast")
            .unwrap();
        match &r {
            Err(e @ Error::PathFailed { reason, sent, .. }) => {
                assert_eq!(*reason, want, "{e}");
                assert!(*sent, "{e}");
                assert!(e.is_path_error());
            }
            other => panic!("expected PathFailed({want:?}), got {other:?}"),
        }
    }
}

/// Wait (bounded) for a state matching `f`.
async fn wait_state(
    st: &mut watch::Receiver<PathState>,
    limit: Duration,
    f: impl FnMut(&PathState) -> bool,
) -> PathState {
    let r = tokio::time::timeout(limit, st.wait_for(f))
        .await
        .map(|state| state.expect("session task ended").clone());
    r.unwrap_or_else(|_| panic!("state stayed {:?}", *st.borrow()))
}

/// TEST UNIT READY until GOOD (the first may meet the unit attention of the
/// reinstatement).
async fn ready(s: &Session) {
    for _ in 0..5 {
        let tur = hydra_initiator::session::Command {
            lun: 1,
            cdb: vec![0; 6],
            data_out: bytes::Bytes::new(),
            read_len: 0,
        };
        let r = s.execute(tur).await.expect("TEST UNIT READY");
        if r.status == 0 {
            return;
        }
        assert_eq!(r.verdict(), hydra_initiator::Verdict::Retry, "{r:?}");
    }
    panic!("the LUN did not become ready");
}

/// kill -9 of hydra tgtd with commands in flight (the target frozen so they stay
/// there): Down(Reset) at once, the commands back with a path error long before
/// replacement_timeout, and Up again after the restart.
#[test]
fn reset_is_known_at_once_and_fails_commands_fast() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let mut h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 32 << 20));
    let addr: SocketAddr = format!("127.0.0.1:{}", h.port).parse().unwrap();
    let rt = rt();
    let s = Arc::new(
        rt.block_on(async { Session::login_with(addr, cfg(), fail_fast()).await.unwrap() }),
    );
    let mut st = s.state();
    assert!(s.path_state().is_up() && s.is_connected());
    kill_with_commands_in_flight(&rt, &s, &mut st, &mut h.child, "hydra tgtd");
    rt.block_on(async {
        // While down, a new command fails at once, unsent.
        match s.execute(read_cmd()).await {
            Err(Error::PathFailed { sent: false, .. }) => {}
            other => panic!("expected an unsent PathFailed, got {other:?}"),
        }
    });
    let h = rt.block_on(async {
        tokio::task::spawn_blocking(move || {
            let mut h = h;
            h.crash_and_restart();
            h
        })
        .await
        .unwrap()
    });
    rt.block_on(async {
        let up = wait_state(&mut st, Duration::from_secs(30), |s| s.is_up()).await;
        eprintln!("reset: {up:?}");
        ready(&s).await;
        assert!(s.execute(read_cmd()).await.unwrap().status == 0);
        s.close().await.unwrap();
        let end = wait_state(&mut st, Duration::from_secs(10), |s| {
            *s == PathState::LoggedOut
        })
        .await;
        assert_eq!(end, PathState::LoggedOut);
    });
    drop(h);
}

/// The same against Debian's tgtd: kill -9 with commands in flight.
#[test]
fn reset_of_debian_tgtd_fails_commands_fast() {
    let (mut t, _dir) = Tgtd::with_disk(IQN, 32 << 20);
    let addr: SocketAddr = format!("127.0.0.1:{}", t.port).parse().unwrap();
    let rt = rt();
    let s = Arc::new(
        rt.block_on(async { Session::login_with(addr, cfg(), fail_fast()).await.unwrap() }),
    );
    let mut st = s.state();
    kill_with_commands_in_flight(&rt, &s, &mut st, &mut t.child, "Debian tgtd");
}

/// Freeze the target so that 8 READs stay in flight, then kill -9 it: the path is
/// Down(Reset) at once and the READs come back as PathFailed(Reset).
fn kill_with_commands_in_flight(
    rt: &tokio::runtime::Runtime,
    s: &Arc<Session>,
    st: &mut watch::Receiver<PathState>,
    target: &mut std::process::Child,
    what: &str,
) {
    rt.block_on(ready(s));
    let frozen = freeze(target.id());
    let inflight = rt.block_on(async {
        let v = reads(s, 8);
        tokio::time::sleep(Duration::from_millis(300)).await;
        v
    });
    let killed = Instant::now();
    let _ = target.kill();
    let _ = target.wait();
    drop(frozen);
    rt.block_on(async {
        let down = wait_state(st, Duration::from_secs(10), |s| !s.is_up()).await;
        let took = killed.elapsed();
        eprintln!("{what} killed: Down after {took:?}: {down:?}");
        let reset = DownReason::Reset;
        assert!(
            matches!(down, PathState::Down { reason, .. } if reason == reset),
            "{down:?}"
        );
        // At once: well inside one NOP interval + timeout.
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(!s.is_connected());
        all_path_failed(inflight, reset).await;
    });
}

/// withdraw_all on a stuck path (target frozen: the connection is up, nothing is
/// answered): every command comes back at once with a path error, the connection is
/// dropped (Down(Withdrawn)), and once the target runs again the session is
/// reinstated and Up.
#[test]
fn withdraw_all_hands_back_stuck_commands() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 32 << 20));
    let addr: SocketAddr = format!("127.0.0.1:{}", h.port).parse().unwrap();
    // Pings off, so that only the withdrawal can end the connection; not fail-fast:
    // withdrawing works on any session.
    let t = Timeouts {
        noop_interval: Duration::ZERO,
        fail_fast: false,
        ..fail_fast()
    };
    let rt = rt();
    let s = Arc::new(rt.block_on(async { Session::login_with(addr, cfg(), t).await.unwrap() }));
    let mut st = s.state();
    rt.block_on(ready(&s));
    let frozen = h.freeze();
    rt.block_on(async {
        let inflight = reads(&s, 6);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            inflight.iter().all(|h| !h.is_finished()),
            "the target is frozen"
        );
        let n = s.withdraw_all().await.unwrap();
        assert_eq!(n, 6);
        all_path_failed(inflight, DownReason::Withdrawn).await;
        let down = wait_state(&mut st, Duration::from_secs(5), |s| !s.is_up()).await;
        assert!(
            matches!(
                down,
                PathState::Down {
                    reason: DownReason::Withdrawn,
                    ..
                }
            ),
            "{down:?}"
        );
        // Nothing outstanding: nothing to withdraw.
        assert_eq!(s.withdraw_all().await.unwrap(), 0);
    });
    frozen.thaw();
    rt.block_on(async {
        wait_state(&mut st, Duration::from_secs(30), |s| s.is_up()).await;
        ready(&s).await;
        assert_eq!(s.execute(read_cmd()).await.unwrap().status, 0);
    });
}

/// A silent loss: hydra tgtd on host 1 of a namespace bed, the session on host 2; host
/// 1's link is cut on the bridge (no RST, no FIN). The state goes Down(NopTimeout)
/// within noop_out_interval + noop_out_timeout of the cut (+ slack), the commands sent
/// into the cut come back with a path error, and after the heal the session logs in
/// again and reports Up.
#[test]
fn silent_loss_is_a_nop_timeout_and_heals() {
    silent_loss("hydra tgtd", |cluster, dir, portal| {
        hydra_tgtd_in_host1(cluster, dir, portal, "")
    });
}

/// hydra tgtd in host 1 on `portal`, control port 11, its files in `dir`, exporting
/// `dir/a.img` as LUN 1 of [`IQN`] with the `acl` lines (none: open to all).
fn hydra_tgtd_in_host1(
    cluster: &Cluster,
    dir: &std::path::Path,
    portal: SocketAddr,
    acl: &str,
) -> std::process::Child {
    std::fs::write(
        dir.join("targets.conf"),
        format!(
            "<target {IQN}>\n    backing-store {}\n{acl}</target>\n",
            dir.join("a.img").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("target.log")).unwrap();
    spawn_hydra_tgtd(
        cluster.command(1, hydra()),
        &format!("portal={portal}"),
        "11",
        dir,
        log,
    )
}

/// From a thread moved into a host's network namespace: run something in the
/// machine's own namespace (the cut and heal run `ip` there), then come back.
struct InRoot {
    root: String,
    host: String,
}

impl InRoot {
    fn run(&self, f: impl FnOnce()) {
        enter_net(&self.root);
        f();
        enter_net(&self.host);
    }
}

/// Run `body` on a thread in host 2's network namespace, with a session logged in to
/// `portal` (retried for 30 s while the target starts) and an [`InRoot`]. Then stop
/// `target` and, on a failure, show its log from `dir`.
fn in_host2<F>(
    cluster: &Cluster,
    what: &str,
    portal: SocketAddr,
    mut target: std::process::Child,
    dir: &std::path::Path,
    body: impl FnOnce(Arc<Session>, InRoot) -> F + Send,
) where
    F: std::future::Future<Output = ()>,
{
    let host2 = cluster.netns_path(2);
    // SAFETY: gettid(2) cannot fail and touches no memory.
    let root = format!("/proc/self/task/{}/ns/net", unsafe { libc::gettid() });
    let result = std::thread::scope(|sc| {
        sc.spawn(|| {
            enter_net(&host2);
            let in_root = InRoot {
                root,
                host: host2.clone(),
            };
            rt().block_on(async {
                let started = Instant::now();
                let s = loop {
                    match Session::login_with(portal, cfg(), fail_fast()).await {
                        Ok(s) => break Arc::new(s),
                        Err(e) if started.elapsed() < Duration::from_secs(30) => {
                            eprintln!("login: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => panic!("{what} in host 1 did not answer: {e}"),
                    }
                };
                body(s, in_root).await;
            });
        })
        .join()
    });
    let _ = target.kill();
    let _ = target.wait();
    if let Err(panic) = result {
        eprintln!(
            "--- {what} log ---\n{}",
            std::fs::read_to_string(dir.join("target.log")).unwrap_or_default()
        );
        std::panic::resume_unwind(panic);
    }
}

/// The same against Debian's tgtd in host 1 (its control socket in the host's own
/// /run, so tgtadm runs there too).
#[test]
fn silent_loss_with_debian_tgtd() {
    silent_loss("tgtd", |cluster, dir, portal| {
        assert!(
            Tgtd::available(),
            "Debian's tgtd is missing: run scripts/setup.sh"
        );
        let log = std::fs::File::create(dir.join("target.log")).unwrap();
        let mut child = cluster
            .command(1, "/usr/sbin/tgtd")
            .args(["-f", "--iscsi", &format!("portal={portal}"), "-C", "11"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn tgtd");
        for args in one_lun_target(IQN, &dir.join("a.img")) {
            let start = std::time::Instant::now();
            loop {
                let mut cmd = vec!["tgtadm", "-C", "11", "--lld", "iscsi"];
                cmd.extend(args.iter().map(String::as_str));
                let o = cluster.exec(1, &cmd);
                if o.status.success() {
                    break;
                }
                // The control socket appears a moment after start.
                if start.elapsed() > Duration::from_secs(20) || child.try_wait().unwrap().is_some()
                {
                    panic!("tgtadm {args:?}: {}", text(&o));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        child
    });
}

/// The bed of the silent loss tests: two hosts, the target that `start` runs in host
/// 1 (given the host's directory, holding a.img, and the portal), the session in host 2.
fn silent_loss(
    what: &str,
    start: impl FnOnce(&Cluster, &std::path::Path, SocketAddr) -> std::process::Child,
) {
    let cluster = Cluster::hosts(2);
    let dir = cluster.dir(1).to_path_buf();
    sparse(&dir.join("a.img"), 32 << 20);
    let portal = SocketAddr::from((cluster.addr(1), 3260));
    let tgtd = start(&cluster, &dir, portal);
    let c = &cluster;
    in_host2(c, what, portal, tgtd, &dir, |s, in_root| async move {
        let mut st = s.state();
        ready(&s).await;
        let before = match s.path_state() {
            PathState::Up { since } => since,
            other => panic!("{other:?}"),
        };
        in_root.run(|| c.cut(1));
        let cut = Instant::now();
        let inflight = reads(&s, 8);
        let down = wait_state(&mut st, Duration::from_secs(20), |s| !s.is_up()).await;
        let took = cut.elapsed();
        eprintln!("{what}, silent loss: Down {took:?} after the cut: {down:?}");
        assert!(
            matches!(
                down,
                PathState::Down {
                    reason: DownReason::NopTimeout,
                    ..
                }
            ),
            "{down:?}"
        );
        // Not before a ping went unanswered for noop_out_timeout; within
        // interval + timeout of the last answer (before the cut) + slack.
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert!(took < Duration::from_secs(2 + 3), "{took:?}");
        all_path_failed(inflight, DownReason::NopTimeout).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!s.path_state().is_up(), "up while cut");
        in_root.run(|| c.heal(1));
        let healed = Instant::now();
        let up = wait_state(&mut st, Duration::from_secs(30), |s| s.is_up()).await;
        eprintln!(
            "{what}, silent loss: Up {:?} after the heal: {up:?}",
            healed.elapsed()
        );
        match up {
            PathState::Up { since } => assert!(since > before),
            other => panic!("{other:?}"),
        }
        ready(&s).await;
        assert_eq!(s.execute(read_cmd()).await.unwrap().status, 0);
        s.close().await.unwrap();
    });
}

/// A login refused on reconnect is the reason the path stays down: Debian's tgtd drops
/// the connection (`tgtadm --mode conn --op delete`) after the initiator's access was
/// unbound, so the session's next logins are refused (tgt says "target not found",
/// RFC 7143 §11.13.5 0x0203); once bound again, the session comes back Up.
#[test]
fn login_refused_on_reconnect_is_reported() {
    let (t, _dir) = Tgtd::with_disk(IQN, 32 << 20);
    let addr: SocketAddr = format!("127.0.0.1:{}", t.port).parse().unwrap();
    let rt = rt();
    let s = rt.block_on(async { Session::login_with(addr, cfg(), fail_fast()).await.unwrap() });
    let mut st = s.state();
    rt.block_on(ready(&s));
    let show = run(
        std::process::Command::new("tgtadm")
            .args(["-C", &t.control_port.to_string(), "--lld", "iscsi"])
            .args(["--mode", "target", "--op", "show"]),
        Duration::from_secs(20),
    );
    let sid = text(&show)
        .lines()
        .find_map(|l| l.trim().strip_prefix("I_T nexus: "))
        .unwrap_or_else(|| panic!("no I_T nexus in {}", text(&show)))
        .trim()
        .to_string();
    t.tgtadm(&[
        "--mode", "target", "--op", "unbind", "--tid", "1", "-I", "ALL",
    ]);
    t.tgtadm(&[
        "--mode", "conn", "--op", "delete", "--tid", "1", "--sid", &sid, "--cid", "0",
    ]);
    rt.block_on(async {
        let refused = wait_state(&mut st, Duration::from_secs(20), |s| {
            matches!(
                s,
                PathState::Down {
                    reason: DownReason::LoginRefused(_),
                    ..
                }
            )
        })
        .await;
        eprintln!("{refused:?}");
        let PathState::Down {
            reason: DownReason::LoginRefused(status),
            ..
        } = refused
        else {
            unreachable!()
        };
        // tgt answers an initiator its ACL does not admit as if the target did not
        // exist: 0x0203 "target not found".
        assert_eq!((status.0, status.1), (2, 3), "target not found");
    });
    t.tgtadm(&[
        "--mode", "target", "--op", "bind", "--tid", "1", "-I", "ALL",
    ]);
    rt.block_on(async {
        wait_state(&mut st, Duration::from_secs(20), |s| s.is_up()).await;
        ready(&s).await;
    });
}

/// WRITE(10) of 8 blocks at LBA 0, every byte `fill`.
fn write_cmd(fill: u8) -> hydra_initiator::session::Command {
    hydra_initiator::session::Command {
        lun: 1,
        cdb: vec![0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0],
        data_out: bytes::Bytes::from(vec![fill; 4096]),
        read_len: 0,
    }
}

/// The first 4 KiB of a file.
fn head(path: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let mut b = vec![0; 4096];
    std::fs::File::open(path)
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b
}

/// A WRITE sent into a silent cut and handed back with a path error (for a multipath
/// layer to send on another path) must never reach the target later through the lost
/// connection: the connection is reset when it is declared dead, so the kernel does
/// not retransmit its unsent bytes once the link is back. Here the WRITE (0xAA) goes
/// into the cut; the block is then written with newer data (0xBB) as through another
/// path; the target refuses the session's logins while the link comes back (its
/// address unbound), so no reinstatement can end the old connection first. The block
/// must still hold 0xBB after the retransmission timer has fired for long enough.
/// Found by the fault run (seed 9 round 5: another node's acknowledged records were
/// overwritten by such a stale write).
#[test]
fn a_write_handed_back_never_reaches_the_target_later() {
    let cluster = Cluster::hosts(2);
    let dir = cluster.dir(1).to_path_buf();
    let img = dir.join("a.img");
    sparse(&img, 32 << 20);
    let portal = SocketAddr::from((cluster.addr(1), 3260));
    let node = cluster.addr(2);
    // A second address, never used, so that unbinding the node leaves a list that
    // admits nobody.
    let other = std::net::Ipv4Addr::new(10, 200, 255, 254);
    let acl = format!("    initiator-address {node}\n    initiator-address {other}\n");
    let tgtd = hydra_tgtd_in_host1(&cluster, &dir, portal, &acl);
    let tgtadm = |op: &str| {
        let o = run(
            std::process::Command::new(hydra())
                .args(["tgtadm", "-C", "11", "--run-dir"])
                .arg(dir.join("run"))
                .args(["--lld", "iscsi", "--mode", "target", "--op", op])
                .args(["--tid", "1", "--initiator-address", &node.to_string()]),
            Duration::from_secs(30),
        );
        assert!(o.status.success(), "tgtadm {op}: {}", text(&o));
    };
    let (c, img, tgtadm) = (&cluster, &img, &tgtadm);
    in_host2(
        c,
        "hydra tgtd",
        portal,
        tgtd,
        &dir,
        |s, in_root| async move {
            let mut st = s.state();
            ready(&s).await;
            in_root.run(|| c.cut(1));
            let stale = {
                let s = s.clone();
                tokio::spawn(async move { s.execute(write_cmd(0xaa)).await })
            };
            wait_state(&mut st, Duration::from_secs(20), |s| !s.is_up()).await;
            all_path_failed(vec![stale], DownReason::NopTimeout).await;
            // Nothing of the lost connection is left in the node to send later.
            let ss = run(
                std::process::Command::new("ss")
                    .args(["-tnH", "state", "established", "dst"])
                    .arg(portal.to_string()),
                Duration::from_secs(10),
            );
            let open = String::from_utf8_lossy(&ss.stdout);
            assert!(
                open.trim().is_empty(),
                "the lost connection is still open after its commands were handed back:\n{open}"
            );
            // The newer data, as written through another path; no login is let in.
            in_root.run(|| tgtadm("unbind"));
            {
                use std::io::{Seek, Write};
                let mut f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
                f.seek(std::io::SeekFrom::Start(0)).unwrap();
                f.write_all(&[0xbb; 4096]).unwrap();
                f.sync_all().unwrap();
            }
            in_root.run(|| c.heal(1));
            // TCP's retransmission timer doubles from 200 ms: a stale segment of the cut
            // connection would come within 0.2 + 0.4 + ... + 6.4 s.
            let healed = Instant::now();
            while healed.elapsed() < Duration::from_secs(14) {
                assert!(
                    head(img).iter().all(|b| *b == 0xbb),
                    "the WRITE handed back reached the target {:?} after the heal",
                    healed.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            in_root.run(|| tgtadm("bind"));
            wait_state(&mut st, Duration::from_secs(30), |s| s.is_up()).await;
            ready(&s).await;
            let r = s.execute(read_cmd()).await.unwrap();
            assert_eq!(r.status, 0);
            assert!(r.data.iter().all(|b| *b == 0xbb));
            s.close().await.unwrap();
        },
    );
}
