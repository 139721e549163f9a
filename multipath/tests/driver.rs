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
use hydra_multipath::config::{Failback, NoPathRetry, PgPolicy, RrWeight, SelectorKind};
use hydra_multipath::driver::{path_id, Geometry, MapHandle, PrIn, PrOutcome};
use hydra_multipath::export::DeviceError;
use hydra_multipath::map::{MapConfig, PathInfo, MAX_RETRIES};
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
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img).unwrap().set_len(SIZE).unwrap();
        let conf = dir.path().join("targets.conf");
        std::fs::write(
            &conf,
            format!(
                "<target {IQN}>\n    backing-store {}\n    params thin_provisioning=1\n</target>\n",
                img.display()
            ),
        )
        .unwrap();
        let control_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = hydra_target::daemon::DaemonOpts {
            portals: vec!["127.0.0.1:0".parse().unwrap(); 2],
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

    fn image(&self) -> PathBuf {
        self.dir.path().join("disk.img")
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let (run, port) = (self.dir.path().join("run"), self.control_port);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(hydra_target::control::call(
            &run,
            port,
            hydra_target::control::Request::SysDelete,
        ));
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
    let cfg = LoginConfig {
        initiator_name: name.into(),
        target_name: Some(IQN.into()),
        isid: [0x40, 0, 0x12, 0x34, 0, isid_tail],
        tsih: 0,
        chap: None,
        params: LocalParams::default(),
    };
    Arc::new(
        Session::login_with(addr, cfg, timeouts())
            .await
            .expect("login"),
    )
}

fn map_config(no_path_retry: NoPathRetry) -> MapConfig {
    MapConfig {
        wwid: "mp-driver-test".into(),
        alias: "mpatha".into(),
        pg_policy: PgPolicy::Multibus,
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
async fn until(
    map: &MapHandle,
    what: &str,
    f: impl Fn(&hydra_multipath::map::Map) -> bool + Clone + Send + 'static,
) {
    let start = Instant::now();
    loop {
        let f = f.clone();
        if map.view(move |m, _| f(m)).await.unwrap() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "map never reached: {what}"
        );
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
        let start = Instant::now();
        let r = dev.write(0, pattern(3, 4096), false).await;
        assert_eq!(r, Err(DeviceError::ReservationConflict));
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
        map.shutdown().await;
        s1.close().await.unwrap();
        s2.close().await.unwrap();
    });
}
