//! The map driver against a real hydra tgtd (in-process, one target behind two
//! portals on 127.0.0.1): two sessions, one per portal, are the map's two paths.
//! Every I/O is checked against the backing file; paths are lost under load; the
//! no-path policies, RESERVATION CONFLICT and PR REGISTER on every I_T nexus.

#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hydra_initiator::conn::Timeouts;
use hydra_initiator::login::LoginConfig;
use hydra_initiator::Session;
use hydra_multipath::config::{Checker, Prio};
use hydra_multipath::config::{Failback, NoPathRetry, PgPolicy, RrWeight, SelectorKind};
use hydra_multipath::driver::{path_id, CheckerOptions, Geometry, MapHandle, PrIn, PrOutcome};
use hydra_multipath::export::DeviceError;
use hydra_multipath::map::{
    AluaState, CheckerState, Map, MapConfig, PathId, PathInfo, MAX_RETRIES,
};
use hydra_proto::negotiate::LocalParams;
use hydra_proto::scsi::pr::{InAction, OutAction, OutParams, PrType};

const IQN: &str = "iqn.2026-12.org.hydra:mp-driver";
const NODE: &str = "iqn.2026-12.org.hydra:mp-driver-node";
const SIZE: u64 = 32 << 20;
const LUN: u64 = 1;

/// hydra tgtd in-process on its own runtime thread, stopped over its control socket.
struct Target {
    dir: tempfile::TempDir,
    portals: Vec<SocketAddr>,
    thread: Option<std::thread::JoinHandle<()>>,
    control_port: u16,
}

impl Target {
    fn start() -> Target {
        Target::start_with("")
    }

    /// Start with `head` before the target (`portal-group` lines; `@PORT1@` and
    /// `@PORT2@` are the two portals' ports).
    fn start_with(head: &str) -> Target {
        Target::start_conf(head, "")
    }

    /// Start with `head` before the target and `body` lines inside it.
    fn start_conf(head: &str, body: &str) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img).unwrap().set_len(SIZE).unwrap();
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (p1, p2) = (free(), free());
        let head = head
            .replace("@PORT1@", &p1.port().to_string())
            .replace("@PORT2@", &p2.port().to_string());
        let conf = dir.path().join("targets.conf");
        std::fs::write(
            &conf,
            format!(
                "{head}<target {IQN}>\n    backing-store {}\n    params thin_provisioning=1\n{body}</target>\n",
                img.display()
            ),
        )
        .unwrap();
        let control_port = free().port();
        let opts = hydra_target::daemon::DaemonOpts {
            portals: vec![p1, p2],
            control_port,
            conf: Some(conf),
            run_dir: dir.path().join("run"),
            state_dir: dir.path().join("state"),
            conn: Default::default(),
            conn_threads: 1,
            io_threads: 1,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let bound = hydra_target::daemon::bind(opts)
                    .await
                    .expect("bind hydra tgtd");
                tx.send(bound.portals()).unwrap();
                bound.serve().await.expect("hydra tgtd");
            });
        });
        let portals = rx.recv().expect("hydra tgtd started");
        Target {
            dir,
            portals,
            thread: Some(thread),
            control_port,
        }
    }

    /// `tgtadm --mode portal --op update`: portal group `tpgt`'s ALUA state.
    async fn set_alua(&self, tpgt: u16, state: &str) {
        let r = hydra_target::control::call(
            &self.dir.path().join("run"),
            self.control_port,
            hydra_target::control::Request::PortalUpdate {
                tpgt,
                state: state.into(),
            },
        )
        .await
        .unwrap();
        assert!(r.ok, "{}", r.text);
    }

    fn image(&self) -> PathBuf {
        self.dir.path().join("disk.img")
    }
}

impl Drop for Target {
    /// Stop the daemon over its control socket; wait for it a bounded time (a test that
    /// failed may have left sessions that keep reconnecting).
    fn drop(&mut self) {
        let (run, port) = (self.dir.path().join("run"), self.control_port);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                hydra_target::control::call(&run, port, hydra_target::control::Request::SysDelete),
            )
            .await
        });
        let start = Instant::now();
        while self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            if start.elapsed() > Duration::from_secs(15) {
                eprintln!("hydra tgtd did not stop within 15 s; leaving its thread");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fail-fast, with a silent loss known after 1 s + 1 s (as a session under
/// multipath is set up).
fn timeouts() -> Timeouts {
    Timeouts {
        replacement: Duration::from_secs(600),
        noop_interval: Duration::from_secs(1),
        noop_timeout: Duration::from_secs(1),
        login: Duration::from_secs(5),
        fail_fast: true,
        ..Timeouts::default()
    }
}

async fn login(addr: SocketAddr, name: &str, isid_tail: u8) -> Arc<Session> {
    login_with(addr, name, isid_tail, timeouts()).await
}

async fn login_with(addr: SocketAddr, name: &str, isid_tail: u8, t: Timeouts) -> Arc<Session> {
    let cfg = LoginConfig {
        initiator_name: name.into(),
        target_name: Some(IQN.into()),
        isid: [0x40, 0, 0x12, 0x34, 0, isid_tail],
        tsih: 0,
        chap: None,
        params: LocalParams::default(),
    };
    Arc::new(Session::login_with(addr, cfg, t).await.expect("login"))
}

fn map_config(no_path_retry: NoPathRetry) -> MapConfig {
    map_config_with(no_path_retry, PgPolicy::Multibus)
}

fn map_config_with(no_path_retry: NoPathRetry, pg_policy: PgPolicy) -> MapConfig {
    MapConfig {
        wwid: "mp-driver-test".into(),
        alias: "mpatha".into(),
        pg_policy,
        selector: SelectorKind::RoundRobin,
        selector_text: "round-robin 0".into(),
        rr_min_io_rq: 1,
        rr_weight: RrWeight::Uniform,
        failback: Failback::Immediate,
        no_path_retry,
        polling_interval: Duration::from_secs(1),
        max_polling_interval: Duration::from_secs(4),
        max_retries: MAX_RETRIES,
    }
}

fn info(sid: u32) -> PathInfo {
    PathInfo::new(&format!("s{sid}l{LUN}"), "beaf10", IQN)
}

/// A map over the sessions given, paths `s1l1`, `s2l1`, ...
async fn map_over(sessions: &[Arc<Session>], npr: NoPathRetry) -> MapHandle {
    let g = Geometry::probe(&sessions[0], LUN).await.expect("probe");
    assert_eq!(g.size, SIZE);
    let map = MapHandle::spawn(map_config(npr), g);
    for (i, s) in sessions.iter().enumerate() {
        let sid = i as u32 + 1;
        map.add_path(path_id(sid, LUN), info(sid), s.clone(), LUN)
            .await
            .unwrap();
    }
    map
}

/// A map over sessions 1 and 2 to the target's first two portals (paths
/// `path_id(1|2, LUN)`), with the TUR checker, prio alua and group_by_prio, and
/// no_path_retry queue.
async fn alua_map(t: &Target) -> (Arc<Session>, Arc<Session>, MapHandle) {
    let s1 = login(t.portals[0], NODE, 1).await;
    let s2 = login(t.portals[1], NODE, 2).await;
    let g = Geometry::probe(&s1, LUN).await.unwrap();
    let checker = CheckerOptions {
        checker: Checker::Tur,
        prio: Prio::Alua,
        ..CheckerOptions::default()
    };
    let cfg = map_config_with(NoPathRetry::Queue, PgPolicy::GroupByPrio);
    let map = MapHandle::spawn_with(cfg, g, checker);
    map.add_path(path_id(1, LUN), info(1), s1.clone(), LUN)
        .await
        .unwrap();
    map.add_path(path_id(2, LUN), info(2), s2.clone(), LUN)
        .await
        .unwrap();
    (s1, s2, map)
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
fn pattern(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v.into()
}

fn file_range(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

fn usable(map: &MapHandle, rt: &tokio::runtime::Runtime) -> usize {
    rt.block_on(map.view(|m, _| m.usable_paths())).unwrap()
}

/// Wait (bounded) until `f` holds for the map.
async fn until(map: &MapHandle, what: &str, f: impl Fn(&Map) -> bool + Clone + Send + 'static) {
    let start = Instant::now();
    loop {
        let f = f.clone();
        if map.view(move |m, _| f(m)).await.unwrap() {
            return;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let state = map
                .view(|m, _| format!("paths {:?}\ngroups {:?}", m.paths(), m.groups()))
                .await
                .unwrap();
            panic!("map never reached: {what}\n{state}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads, writes (FUA and not), flush, trim and write_zeroes through the map's
/// device, each checked against the backing file; a write larger than one command
/// may carry is split.
#[test]
fn io_through_the_map_matches_the_backing_file() {
    let t = Target::start();
    let rt = common::runtime();
    let (s1, s2) = rt.block_on(async {
        (
            login(t.portals[0], NODE, 1).await,
            login(t.portals[1], NODE, 2).await,
        )
    });
    let map = rt.block_on(map_over(&[s1.clone(), s2.clone()], NoPathRetry::Fail));
    let dev = map.device();
    assert_eq!(
        (dev.size(), dev.block_size(), dev.read_only()),
        (SIZE, 512, false)
    );
    assert_eq!(usable(&map, &rt), 2);
    let img = t.image();
    rt.block_on(async {
        // Writes at several places, FUA on every other; both paths take some.
        for i in 0..16u64 {
            let data = pattern(i, 64 << 10);
            dev.write(i * (1 << 20), data, i % 2 == 0).await.unwrap();
        }
        // One write of 8 MiB (several commands if the LUN limits transfers).
        let big = pattern(99, 8 << 20);
        dev.write(16 << 20, big.clone(), false).await.unwrap();
        dev.flush().await.unwrap();
        for i in 0..16u64 {
            let want = pattern(i, 64 << 10);
            let got = dev.read(i * (1 << 20), 64 << 10).await.unwrap();
            assert_eq!(got, want, "read back write {i}");
            assert_eq!(
                file_range(&img, i * (1 << 20), 64 << 10),
                want[..],
                "file at write {i}"
            );
        }
        assert_eq!(dev.read(16 << 20, 8 << 20).await.unwrap(), big);
        assert_eq!(file_range(&img, 16 << 20, 8 << 20), big[..]);
        // write_zeroes with and without deallocation, and trim: zeros read back.
        dev.write_zeroes(1 << 20, 8192, false).await.unwrap();
        dev.write_zeroes(3 << 20, 64 << 10, true).await.unwrap();
        dev.trim(5 << 20, 64 << 10).await.unwrap();
        dev.flush().await.unwrap();
        for (off, len) in [(1u64 << 20, 8192usize), (3 << 20, 64 << 10)] {
            assert!(dev
                .read(off, len as u32)
                .await
                .unwrap()
                .iter()
                .all(|b| *b == 0));
            assert!(
                file_range(&img, off, len).iter().all(|b| *b == 0),
                "file zeroed at {off}"
            );
        }
        // The rest of write 1 is untouched by the zeroing of its first 8 KiB.
        let rest = dev.read((1 << 20) + 8192, (64 << 10) - 8192).await.unwrap();
        assert_eq!(rest, pattern(1, 64 << 10).slice(8192..));
        // Requests the device refuses without sending anything.
        assert!(matches!(
            dev.read(SIZE, 512).await,
            Err(DeviceError::Invalid(_))
        ));
        assert!(matches!(
            dev.write(100, Bytes::from(vec![0; 512]), false).await,
            Err(DeviceError::Invalid(_))
        ));
        let faults = map.view(|m, _| m.stats().path_faults).await.unwrap();
        assert_eq!(faults, 0, "no path failed on a healthy target");
        map.shutdown().await;
        assert_eq!(dev.flush().await, Err(DeviceError::Shutdown));
        s1.close().await.unwrap();
        s2.close().await.unwrap();
    });
}

/// 256 writes in flight 32 at a time while one path's connection is dropped under
/// them (commands withdrawn on the wire) and then its session logged out: no write
/// fails, every one is on the disk.
#[test]
fn a_path_lost_mid_load_loses_no_io() {
    let t = Target::start();
    let rt = common::runtime();
    let (s1, s2) = rt.block_on(async {
        (
            login(t.portals[0], NODE, 1).await,
            login(t.portals[1], NODE, 2).await,
        )
    });
    let map = rt.block_on(map_over(&[s1.clone(), s2.clone()], NoPathRetry::Fail));
    let dev = map.device();
    const N: u64 = 256;
    const LEN: usize = 32 << 10;
    rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(32));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let (dev, sem) = (dev.clone(), sem.clone());
            let permit = sem.acquire_owned().await.unwrap();
            tasks.spawn(async move {
                let r = dev
                    .write(i * LEN as u64, pattern(1000 + i, LEN), false)
                    .await;
                drop(permit);
                (i, r)
            });
            if i == N / 4 {
                // The connection goes, with commands on the wire.
                let n = s1.withdraw_all().await.unwrap();
                eprintln!("withdrew {n} command(s)");
            }
            if i == N / 2 {
                s1.close().await.unwrap();
            }
        }
        while let Some(r) = tasks.join_next().await {
            let (i, r) = r.unwrap();
            r.unwrap_or_else(|e| panic!("write {i} failed: {e}"));
        }
        dev.flush().await.unwrap();
        let stats = map.view(|m, _| m.stats()).await.unwrap();
        assert!(stats.path_faults >= 1, "{stats:?}");
        assert_eq!(map.view(|m, _| m.usable_paths()).await.unwrap(), 1);
        for i in 0..N {
            let want = pattern(1000 + i, LEN);
            assert_eq!(
                dev.read(i * LEN as u64, LEN as u32).await.unwrap(),
                want,
                "write {i}"
            );
        }
        assert_eq!(file_range(&t.image(), 0, N as usize * LEN), {
            let mut v = Vec::new();
            for i in 0..N {
                v.extend_from_slice(&pattern(1000 + i, LEN));
            }
            v
        });
        // The dead path goes; the map serves on.
        map.remove_path(path_id(1, LUN)).await.unwrap();
        assert_eq!(map.view(|m, _| m.paths().len()).await.unwrap(), 1);
        dev.read(0, 4096).await.unwrap();
        map.shutdown().await;
        s2.close().await.unwrap();
    });
}

/// `no_path_retry queue`: with its only path removed, the map holds a write until a
/// path is added back, then the write lands.
#[test]
fn no_path_queue_holds_io_until_a_path_returns() {
    let t = Target::start();
    let rt = common::runtime();
    let s1 = rt.block_on(login(t.portals[0], NODE, 1));
    let map = rt.block_on(map_over(std::slice::from_ref(&s1), NoPathRetry::Queue));
    let dev = map.device();
    rt.block_on(async {
        map.remove_path(path_id(1, LUN)).await.unwrap();
        s1.close().await.unwrap();
        let d = dev.clone();
        let held = tokio::spawn(async move { d.write(1 << 20, pattern(7, 4096), true).await });
        until(&map, "one I/O queued", |m| m.queued() == 1).await;
        assert!(!held.is_finished());
        let s2 = login(t.portals[1], NODE, 2).await;
        map.add_path(path_id(2, LUN), info(2), s2.clone(), LUN)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), held)
            .await
            .expect("the held write went out once a path was back")
            .unwrap()
            .unwrap();
        assert_eq!(file_range(&t.image(), 1 << 20, 4096), pattern(7, 4096)[..]);
        map.shutdown().await;
        s2.close().await.unwrap();
    });
}

/// `no_path_retry 2` with polling_interval 1: a read held without a path fails with
/// an I/O error after the two checker intervals, not before.
#[test]
fn no_path_retry_n_fails_after_n_intervals() {
    let t = Target::start();
    let rt = common::runtime();
    let s1 = rt.block_on(login(t.portals[0], NODE, 1));
    let map = rt.block_on(map_over(std::slice::from_ref(&s1), NoPathRetry::Retries(2)));
    let dev = map.device();
    rt.block_on(async {
        let lost = Instant::now();
        s1.close().await.unwrap();
        until(&map, "the path failed", |m| m.usable_paths() == 0).await;
        let r = tokio::time::timeout(Duration::from_secs(12), dev.read(0, 4096))
            .await
            .expect("the held read failed in time");
        let waited = lost.elapsed();
        assert!(matches!(r, Err(DeviceError::Io(_))), "{r:?}");
        assert!(
            waited >= Duration::from_millis(1500),
            "failed after {waited:?}"
        );
        // Queueing is off now: the next I/O fails at once.
        assert!(matches!(dev.read(0, 4096).await, Err(DeviceError::Io(_))));
        let q = map.view(|m, _| m.stats().queue_timeouts).await.unwrap();
        assert_eq!(q, 1);
        map.shutdown().await;
    });
}

/// Another node holds Write Exclusive - Registrants Only: the map's (unregistered)
/// write fails with ReservationConflict at once, no path is failed, reads still
/// work.
#[test]
fn reservation_conflict_returns_at_once() {
    let t = Target::start();
    let rt = common::runtime();
    rt.block_on(async {
        let other = login(t.portals[0], "iqn.2026-12.org.hydra:other-node", 9).await;
        // Its first command meets the power-on unit attention.
        let _ = other.test_unit_ready(LUN).await.unwrap();
        other
            .pr_register(LUN, 0, 0xabc, false)
            .await
            .unwrap()
            .unwrap();
        other
            .pr_reserve(LUN, 0xabc, PrType::WriteExclusiveRegistrantsOnly)
            .await
            .unwrap()
            .unwrap();
        let s1 = login(t.portals[0], NODE, 1).await;
        let s2 = login(t.portals[1], NODE, 2).await;
        let map = map_over(&[s1.clone(), s2.clone()], NoPathRetry::Queue).await;
        let dev = map.device();
        // Nothing written yet: a flush (every close(2) of the loop device fsyncs) has
        // nothing to make durable and sends no SYNCHRONIZE CACHE, which this nexus
        // would be refused (SPC-4 Table 65).
        dev.flush().await.unwrap();
        let start = Instant::now();
        let r = dev.write(0, pattern(3, 4096), false).await;
        assert_eq!(r, Err(DeviceError::ReservationConflict));
        // After a write the flush goes to the LUN, and is refused the same way.
        assert_eq!(dev.flush().await, Err(DeviceError::ReservationConflict));
        assert_eq!(dev.flush().await, Err(DeviceError::ReservationConflict));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        let (faults, usable) = map
            .view(|m, _| (m.stats().path_faults, m.usable_paths()))
            .await
            .unwrap();
        assert_eq!((faults, usable), (0, 2));
        dev.read(0, 4096).await.unwrap();
        map.shutdown().await;
        for s in [s1, s2, other] {
            s.close().await.unwrap();
        }
    });
}

/// REGISTER through the map lands on both I_T nexuses (READ FULL STATUS shows the
/// key twice, through two target ports); RESERVE goes once; the reservation holder's
/// writes pass while a node outside is refused.
#[test]
fn pr_register_lands_on_every_nexus() {
    let t = Target::start();
    let rt = common::runtime();
    rt.block_on(async {
        let s1 = login(t.portals[0], NODE, 1).await;
        let s2 = login(t.portals[1], NODE, 2).await;
        let map = map_over(&[s1.clone(), s2.clone()], NoPathRetry::Fail).await;
        let key = 0x1234_5678;
        let reg = OutParams {
            sa_key: key,
            ..OutParams::default()
        };
        let r = map
            .pr_out(OutAction::Register, PrType::Unknown(0), reg)
            .await
            .unwrap();
        assert_eq!(r, PrOutcome::Good);
        let Ok(PrIn::FullStatus(fs)) = map.pr_in(InAction::ReadFullStatus).await.unwrap() else {
            panic!("READ FULL STATUS");
        };
        assert_eq!(fs.descriptors.len(), 2, "{fs:?}");
        assert!(fs.descriptors.iter().all(|d| d.key == key));
        let mut ports: Vec<u16> = fs
            .descriptors
            .iter()
            .map(|d| d.relative_target_port)
            .collect();
        ports.dedup();
        assert_eq!(ports.len(), 2, "two target ports: {fs:?}");
        let rsv = OutParams {
            key,
            ..OutParams::default()
        };
        let r = map
            .pr_out(
                OutAction::Reserve,
                PrType::WriteExclusiveRegistrantsOnly,
                rsv,
            )
            .await
            .unwrap();
        assert_eq!(r, PrOutcome::Good);
        let Ok(PrIn::Reservation(Some(res))) = map.pr_in(InAction::ReadReservation).await.unwrap()
        else {
            panic!("READ RESERVATION");
        };
        assert_eq!(res.key, key);
        // Both nexuses are registered: writes pass on both paths (round-robin).
        let dev = map.device();
        for i in 0..4u64 {
            dev.write(i * 4096, pattern(i, 4096), false).await.unwrap();
        }
        // A second REGISTER with a wrong old key is refused on every path and
        // changes nothing.
        let wrong = OutParams {
            key: 0x999,
            sa_key: 0x777,
            ..OutParams::default()
        };
        let r = map
            .pr_out(OutAction::Register, PrType::Unknown(0), wrong)
            .await
            .unwrap();
        assert_eq!(r, PrOutcome::ReservationConflict);
        let Ok(PrIn::Keys(keys)) = map.pr_in(InAction::ReadKeys).await.unwrap() else {
            panic!("READ KEYS");
        };
        assert_eq!(keys.keys, vec![key, key]);
        // A third path (a new I_T nexus) gets the map's key when it is added.
        let s3 = login(t.portals[1], NODE, 3).await;
        map.add_path(path_id(3, LUN), info(3), s3.clone(), LUN)
            .await
            .unwrap();
        let start = Instant::now();
        loop {
            let Ok(PrIn::FullStatus(fs)) = map.pr_in(InAction::ReadFullStatus).await.unwrap()
            else {
                panic!("READ FULL STATUS");
            };
            if fs.descriptors.len() == 3 {
                assert!(fs.descriptors.iter().all(|d| d.key == key), "{fs:?}");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{fs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        map.shutdown().await;
        for s in [s1, s2, s3] {
            s.close().await.unwrap();
        }
    });
}

/// The checker: prio alua groups the paths (portal group 2 in standby is a ghost in a
/// group of its own) and I/O goes to the optimized one; when the target swaps the
/// states, the checker sees it and the map fails over. A path failed by the operator
/// is reinstated by the checker.
#[test]
fn alua_prio_groups_paths_and_follows_a_takeover() {
    let t = Target::start_with(
        "portal-group 1 127.0.0.1:@PORT1@\nportal-group 2 127.0.0.1:@PORT2@ standby\n",
    );
    let rt = common::runtime();
    rt.block_on(async {
        let (s1, s2, map) = alua_map(&t).await;
        let (p1, p2) = (path_id(1, LUN), path_id(2, LUN));
        let active_is = |p: PathId| {
            move |m: &Map| {
                m.groups().len() == 2
                    && m.active_group()
                        .is_some_and(|g| m.groups()[g].paths == vec![p])
            }
        };
        until(&map, "both paths checked", |m| {
            m.paths().iter().all(|p| p.alua.is_some())
        })
        .await;
        // The group of the first I/O is the best one.
        let dev = map.device();
        dev.write(0, pattern(5, 8192), false).await.unwrap();
        until(&map, "two groups, the optimized one active", active_is(p1)).await;
        let (c1, c2) = map
            .view(move |m, _| {
                let c = |p| m.path(p).map(|p| (p.checker, p.prio, p.alua));
                (c(p1), c(p2))
            })
            .await
            .unwrap();
        assert_eq!(
            c1,
            Some((CheckerState::Ready, 50, Some(AluaState::ActiveOptimized)))
        );
        assert_eq!(c2, Some((CheckerState::Ghost, 1, Some(AluaState::Standby))));
        // The target swaps the groups: the map follows within a few checks.
        t.set_alua(2, "active/optimized").await;
        t.set_alua(1, "standby").await;
        until(&map, "failed over to portal group 2", active_is(p2)).await;
        assert_eq!(dev.read(0, 8192).await.unwrap(), pattern(5, 8192));
        dev.write(8192, pattern(6, 8192), true).await.unwrap();
        assert_eq!(file_range(&t.image(), 8192, 8192), pattern(6, 8192)[..]);
        // fail path / reinstate by the checker.
        map.fail_path(p2).await.unwrap();
        assert_eq!(map.view(|m, _| m.usable_paths()).await.unwrap(), 1);
        until(&map, "the checker reinstated the path", |m| {
            m.usable_paths() == 2
        })
        .await;
        map.shutdown().await;
        s1.close().await.unwrap();
        s2.close().await.unwrap();
    });
}

/// A map left idle: the checker's TEST UNIT READY and REPORT TARGET PORT GROUPS every
/// 1, 2, 4 s between the sessions' 1 s pings keep both paths up (a session that did
/// not follow the StatSN of NOP-In answers took the first check after a few idle
/// pings for lost statuses and dropped the connection).
#[test]
fn an_idle_map_keeps_its_paths() {
    let t = Target::start_with(
        "portal-group 1 127.0.0.1:@PORT1@\nportal-group 2 127.0.0.1:@PORT2@ active/non-optimized\n",
    );
    let rt = common::runtime();
    rt.block_on(async {
        let (s1, s2, map) = alua_map(&t).await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        let (faults, prios) = map
            .view(|m, _| {
                let prios: Vec<i32> = m.paths().iter().map(|p| p.prio).collect();
                (m.stats().path_faults, prios)
            })
            .await
            .unwrap();
        assert_eq!((faults, prios), (0, vec![50, 10]));
        assert!(s1.path_state().is_up() && s2.path_state().is_up());
        map.shutdown().await;
        s1.close().await.unwrap();
        s2.close().await.unwrap();
    });
}

/// A TCP relay to a portal that can be cut silently: the connections it carries stop
/// moving bytes (no FIN, no RST, as a pulled cable) and new ones are dropped.
struct Relay {
    addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (cut, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = l.accept().await {
                if *rx.borrow() {
                    continue;
                }
                let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                    continue;
                };
                let mut cut = rx.clone();
                tokio::spawn(async move {
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = async { let _ = cut.wait_for(|c| *c).await; } => {
                            // Silent: hold both sockets open, move nothing.
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        Relay { addr, cut }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }
}

/// Sessions that are not fail-fast (replacement_timeout 600 s, the commands of a lost
/// connection are held for it): path 1 goes through a relay that is cut silently
/// under 128 writes. The NOP-Out timeout takes the path down, the driver withdraws
/// what the session holds, and every write lands through path 2.
#[test]
fn a_silent_loss_on_a_session_that_holds_commands_loses_no_io() {
    let t = Target::start();
    let rt = common::runtime();
    let holding = Timeouts {
        fail_fast: false,
        ..timeouts()
    };
    rt.block_on(async {
        let relay = Relay::start(t.portals[0]).await;
        let s1 = login_with(relay.addr, NODE, 1, holding).await;
        let s2 = login_with(t.portals[1], NODE, 2, holding).await;
        let map = map_over(&[s1.clone(), s2.clone()], NoPathRetry::Queue).await;
        let dev = map.device();
        const N: u64 = 128;
        const LEN: usize = 16 << 10;
        let mut tasks = tokio::task::JoinSet::new();
        let sem = Arc::new(tokio::sync::Semaphore::new(16));
        for i in 0..N {
            let (dev, sem) = (dev.clone(), sem.clone());
            let permit = sem.acquire_owned().await.unwrap();
            tasks.spawn(async move {
                let r = dev
                    .write(i * LEN as u64, pattern(2000 + i, LEN), false)
                    .await;
                drop(permit);
                (i, r)
            });
            if i == N / 4 {
                relay.cut();
            }
        }
        while let Some(r) = tasks.join_next().await {
            let (i, r) = r.unwrap();
            r.unwrap_or_else(|e| panic!("write {i} failed: {e}"));
        }
        let (faults, usable) = map
            .view(|m, _| (m.stats().path_faults, m.usable_paths()))
            .await
            .unwrap();
        assert!(faults >= 1 && usable == 1, "{faults} {usable}");
        dev.flush().await.unwrap();
        let mut want = Vec::new();
        for i in 0..N {
            want.extend_from_slice(&pattern(2000 + i, LEN));
        }
        assert_eq!(file_range(&t.image(), 0, want.len()), want);
        map.shutdown().await;
        s2.close().await.unwrap();
        // s1 never comes back; dropping it ends its reconnect attempts.
        drop(s1);
    });
}

/// A write-protected LUN (`readonly 1`): the probed geometry says so, the device
/// refuses writes without sending them, reads pass.
#[test]
fn a_read_only_lun_refuses_writes() {
    let t = Target::start_conf("", "    readonly 1\n");
    let rt = common::runtime();
    rt.block_on(async {
        let s1 = login(t.portals[0], NODE, 1).await;
        let map = map_over(std::slice::from_ref(&s1), NoPathRetry::Fail).await;
        let dev = map.device();
        assert!(dev.read_only());
        let w = dev.write(0, pattern(1, 4096), false).await;
        assert_eq!(w, Err(DeviceError::ReadOnly));
        assert_eq!(dev.read(0, 4096).await.unwrap(), vec![0u8; 4096]);
        map.shutdown().await;
        s1.close().await.unwrap();
    });
}
