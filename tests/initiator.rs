//! hydra's initiator library against real targets — `hydra tgtd` and Debian's tgtd:
//! login (plain and CHAP), READ CAPACITY, REPORT LUNS, and a pattern written with many
//! commands in flight, read back and verified.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hydra_initiator::login::{Chap, LoginConfig};
use hydra_initiator::{Error, Session};
use hydra_proto::negotiate::LocalParams;
use hydra_proto::scsi::alua::AccessState;
use hydra_proto::scsi::pr::PrType;

use common::*;

const IQN: &str = "iqn.2026-11.org.hydra:init";
const NAME: &str = "iqn.2026-11.org.hydra:node1";

fn cfg(target: &str, chap: Option<Chap>) -> LoginConfig {
    LoginConfig {
        initiator_name: NAME.into(),
        target_name: Some(target.into()),
        isid: [0x40, 0, 0x12, 0x34, 0, 1],
        tsih: 0,
        chap,
        params: LocalParams {
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1 << 20,
            first_burst_length: 65_536,
            ..LocalParams::default()
        },
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Write 256 blocks of a pattern per command, 64 commands in flight, read all back.
async fn write_read_verify(s: Arc<Session>, lun: u64) {
    assert!(s.test_unit_ready(lun).await.unwrap().is_ok());
    let (blocks, bs) = s.read_capacity(lun).await.unwrap().unwrap();
    assert_eq!(bs, 512);
    assert!(blocks >= 64 * 256);
    let pattern = |i: u64| -> Bytes {
        (0..256 * 512)
            .map(|b| (i as usize * 7 + b / 512 * 3 + b) as u8)
            .collect::<Vec<u8>>()
            .into()
    };
    let writes: Vec<_> = (0..64u64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.write16(lun, i * 256, pattern(i), 512, i % 5 == 0).await })
        })
        .collect();
    for w in writes {
        w.await.unwrap().unwrap().unwrap();
    }
    let reads: Vec<_> = (0..64u64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { (i, s.read16(lun, i * 256, 256, 512).await) })
        })
        .collect();
    for r in reads {
        let (i, data) = r.await.unwrap();
        assert_eq!(data.unwrap().unwrap(), pattern(i), "chunk {i}");
    }
}

#[test]
fn against_hydra_tgtd() {
    let conf = format!(
        "<target {IQN}>\n    backing-store @DIR@/a.img\n    backing-store @DIR@/b.img\n</target>\n<target {IQN}-chap>\n    backing-store @DIR@/c.img\n    incominguser node1 secretsecret12\n    outgoinguser array1 arraysecret12\n</target>\n"
    );
    let h = Hydra::start(&conf, |d| {
        for f in ["a.img", "b.img", "c.img"] {
            sparse(&d.join(f), 32 << 20);
        }
    });
    let addr: SocketAddr = format!("127.0.0.1:{}", h.port).parse().unwrap();
    rt().block_on(async {
        let s = Arc::new(Session::login(addr, cfg(IQN, None)).await.unwrap());
        assert_eq!(s.established.target_portal_group_tag, Some(1));
        assert_eq!(s.report_luns().await.unwrap().unwrap(), vec![0, 1, 2]);
        assert!(s.test_unit_ready(1).await.unwrap().is_ok());
        // Same WWID as Debian's tgtd gives for tid 1 / LUN 1 (hydra keeps tgt's identity).
        assert_eq!(
            s.wwid(1).await.unwrap().unwrap().as_deref(),
            Some("360000000000000000e00000000010001")
        );
        write_read_verify(s.clone(), 2).await;
        Arc::try_unwrap(s).ok().unwrap().logout().await.unwrap();

        // CHAP: the right secret logs in, a wrong one is refused as authentication failure.
        let good = Chap {
            user: "node1".into(),
            secret: "secretsecret12".into(),
            mutual: None,
        };
        let chap_iqn = format!("{IQN}-chap");
        let s = Session::login(addr, cfg(&chap_iqn, Some(good.clone())))
            .await
            .unwrap();
        // The first command of a new I_T nexus meets POWER ON; then it works.
        let first = s.read_capacity(1).await.unwrap().unwrap_err();
        assert_eq!(first.sense_key().map(|k| k.0), Some(0x06));
        assert_eq!(s.read_capacity(1).await.unwrap().unwrap(), (65536, 512));
        s.logout().await.unwrap();
        // Mutual CHAP: the target proves itself with the outgoing account.
        let mutual = Chap {
            mutual: Some(("array1".into(), "arraysecret12".into())),
            ..good.clone()
        };
        let s = Session::login(addr, cfg(&chap_iqn, Some(mutual.clone())))
            .await
            .unwrap();
        assert!(s.test_unit_ready(1).await.unwrap().is_ok());
        s.logout().await.unwrap();
        let impostor = Chap {
            mutual: Some(("array1".into(), "notthesecret".into())),
            ..good.clone()
        };
        match Session::login(addr, cfg(&chap_iqn, Some(impostor))).await {
            Err(Error::Auth(m)) => assert!(m.contains("mutual"), "{m}"),
            Err(e) => panic!("expected a mutual CHAP failure, got {e}"),
            Ok(_) => panic!("a target with the wrong secret was accepted"),
        }
        let bad = Chap {
            secret: "wrongwrongwrong".into(),
            ..good
        };
        match Session::login(addr, cfg(&chap_iqn, Some(bad))).await {
            Err(Error::LoginRefused(s)) => assert_eq!((s.0, s.1), (2, 1)),
            Err(e) => panic!("expected an authentication failure, got {e}"),
            Ok(_) => panic!("a wrong CHAP secret logged in"),
        }
    });
}

#[test]
fn against_debian_tgtd() {
    let (t, _dir) = Tgtd::with_disk(IQN, 32 << 20);
    let addr: SocketAddr = format!("127.0.0.1:{}", t.port).parse().unwrap();
    rt().block_on(async {
        let s = Arc::new(Session::login(addr, cfg(IQN, None)).await.unwrap());
        write_read_verify(s.clone(), 1).await;
        // The WWID Linux derives for tgt's tid 1 / LUN 1.
        assert_eq!(
            s.wwid(1).await.unwrap().unwrap().as_deref(),
            Some("360000000000000000e00000000010001")
        );
        Arc::try_unwrap(s).ok().unwrap().logout().await.unwrap();
    });
}

/// Header and data digests (CRC32C, RFC 7143 §13.1) on the whole data path — login,
/// 64 writes in flight, reads, verify — against hydra tgtd and Debian's tgtd.
#[test]
fn crc32c_digests_on_the_data_path() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 32 << 20));
    let (t, _dir) = Tgtd::with_disk(IQN, 32 << 20);
    // tgtd offers no digests unless told to (and then answers None to a CRC32C-only
    // offer, which hydra's initiator refuses as RFC 7143 §6.2 requires).
    for key in ["HeaderDigest", "DataDigest"] {
        t.tgtadm(&[
            "--mode",
            "target",
            "--op",
            "update",
            "--tid",
            "1",
            "--name",
            key,
            "--value",
            "CRC32C,None",
        ]);
    }
    for port in [h.port, t.port] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut c = cfg(IQN, None);
        c.params.header_digest = vec![hydra_proto::negotiate::Digest::Crc32c];
        c.params.data_digest = vec![hydra_proto::negotiate::Digest::Crc32c];
        rt().block_on(async {
            let s = Arc::new(Session::login(addr, c).await.unwrap());
            let p = &s.established.params;
            assert!(
                p.header_digest && p.data_digest,
                "digests not negotiated on {port}"
            );
            write_read_verify(s.clone(), 1).await;
            s.close().await.unwrap();
        });
    }
}

/// `hydra iscsi-perf` runs writes and reads and ends with iscsi-perf's summary line.
#[test]
fn iscsi_perf_cli() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 32 << 20));
    for extra in [
        &["-w"][..],
        &["-r"][..],
        &[][..],
        &["-w", "--verify", "-r"][..],
    ] {
        let o = run(
            std::process::Command::new(hydra())
                .args(["iscsi-perf", "-t", "1", "-m", "8", "-b", "16"])
                .args(extra)
                .arg(h.url(IQN, 1)),
            std::time::Duration::from_secs(30),
        );
        let out = text(&o);
        assert!(o.status.success(), "{extra:?}: {out}");
        let last = out.lines().last().unwrap_or_default().to_string();
        let iops: u64 = last
            .strip_prefix("iops average ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{extra:?}: last line {last:?}"));
        assert!(iops > 0, "{out}");
    }
    // FUA is a write flag; asked without -w it is refused.
    let o = run(
        std::process::Command::new(hydra())
            .args(["iscsi-perf", "--fua", "-t", "1"])
            .arg(h.url(IQN, 1)),
        std::time::Duration::from_secs(10),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("use it with -w"), "{}", text(&o));
    // A bad URL is refused with a message, not a panic.
    let o = run(
        std::process::Command::new(hydra()).args(["iscsi-perf", "iscsi://nohost"]),
        std::time::Duration::from_secs(10),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("bad iSCSI URL"), "{}", text(&o));
}

/// `hydra iscsi-perf --verify` checks what it reads, not only what it writes: after
/// `--fill` every block carries its LBA; a block changed in the backing file behind the
/// target fails the next read run, which names that block's LBA.
#[test]
fn iscsi_perf_verify_catches_corrupt_reads() {
    use std::os::unix::fs::FileExt;
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 4 << 20));
    let perf = |extra: &[&str]| {
        run(
            std::process::Command::new(hydra())
                .args(["iscsi-perf", "-t", "2", "-m", "8", "-b", "16", "--verify"])
                .args(extra)
                .arg(h.url(IQN, 1)),
            std::time::Duration::from_secs(60),
        )
    };
    for extra in [
        &["--fill"][..],
        &[][..],
        &["-r"][..],
        &["-w", "--fua", "-r"][..],
    ] {
        let o = perf(extra);
        assert!(o.status.success(), "{extra:?}: {}", text(&o));
    }
    // One block (LBA 777, inside the first transfers of a sequential run) gets another
    // block's data, as a misdirected write would leave it.
    let img = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(h.path("a.img"))
        .unwrap();
    let mut other = vec![0u8; 512];
    img.read_exact_at(&mut other, 5 * 512).unwrap();
    img.write_all_at(&other, 777 * 512).unwrap();
    let o = perf(&[]);
    let out = text(&o);
    assert!(
        !o.status.success(),
        "a corrupt block passed --verify: {out}"
    );
    assert!(
        out.contains("verify failed: the block at LBA 777 does not hold its LBA stamp"),
        "{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("iops average")),
        "a failed run printed a figure: {out}"
    );
}

fn quick() -> hydra_initiator::conn::Timeouts {
    hydra_initiator::conn::Timeouts {
        replacement: std::time::Duration::from_secs(20),
        noop_interval: std::time::Duration::from_secs(1),
        noop_timeout: std::time::Duration::from_secs(1),
        login: std::time::Duration::from_secs(5),
        command: std::time::Duration::from_secs(30),
        abort: std::time::Duration::from_secs(15),
        lu_reset: std::time::Duration::from_secs(30),
        fail_fast: false,
    }
}

/// The target is killed (-9) and restarted in the middle of a write+verify run: the
/// session reconnects, resends what was in flight, and every block verifies.
#[test]
fn reconnect_after_target_restart() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 32 << 20));
    let addr: SocketAddr = format!("127.0.0.1:{}", h.port).parse().unwrap();
    rt().block_on(async move {
        let s = Arc::new(
            Session::login_with(addr, cfg(IQN, None), quick())
                .await
                .unwrap(),
        );
        assert!(s.test_unit_ready(1).await.unwrap().is_ok());
        let chunk = |i: u64| -> Bytes { vec![(i % 251) as u8 ^ 0x5a; 64 * 1024].into() };
        // The last write to each slot that was answered GOOD (a write answered with a unit
        // attention after the restart was not done).
        let last_good = Arc::new(std::sync::Mutex::new(vec![None::<u64>; 256]));
        let writer = {
            let (s, last_good) = (s.clone(), last_good.clone());
            tokio::spawn(async move {
                for round in 0..40u64 {
                    let ws: Vec<_> = (0..16u64)
                        .map(|k| {
                            let s = s.clone();
                            let i = round * 16 + k;
                            tokio::spawn(async move {
                                (i, s.write16(1, (i % 256) * 128, chunk(i), 512, false).await)
                            })
                        })
                        .collect();
                    for w in ws {
                        // No transport error may reach the caller: the outage is hidden.
                        let (i, r) = w.await.unwrap();
                        match r.unwrap() {
                            Ok(()) => last_good.lock().unwrap()[(i % 256) as usize] = Some(i),
                            Err(f) => assert_eq!(f.sense_key().map(|k| k.0), Some(0x06), "{f:?}"),
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // The outage must fall inside the run, or nothing here tests a reconnect.
        assert!(
            !writer.is_finished(),
            "the writer finished before the target was killed"
        );
        let h = tokio::task::spawn_blocking(move || {
            let mut h = h;
            h.crash_and_restart();
            h
        })
        .await
        .unwrap();
        writer.await.unwrap();
        let _ = s.test_unit_ready(1).await.unwrap();
        let last_good = last_good.lock().unwrap().clone();
        for (slot, i) in last_good.iter().enumerate() {
            let got = s
                .read16(1, slot as u64 * 128, 128, 512)
                .await
                .unwrap()
                .unwrap();
            let want = i.map(chunk).unwrap_or_else(|| vec![0u8; 64 * 1024].into());
            assert_eq!(got, want, "slot {slot}");
        }
        // It really was restarted: two daemon starts in the log.
        assert_eq!(h.log().matches("iSCSI portal").count(), 2, "{}", h.log());
    });
}

/// With the target gone for longer than replacement_timeout, commands fail with a
/// clear error instead of hanging.
#[test]
fn commands_fail_after_replacement_timeout() {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let mut h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 32 << 20));
    let addr: SocketAddr = format!("127.0.0.1:{}", h.port).parse().unwrap();
    let t = hydra_initiator::conn::Timeouts {
        replacement: std::time::Duration::from_secs(2),
        ..quick()
    };
    let rt = rt();
    let s = rt.block_on(async { Session::login_with(addr, cfg(IQN, None), t).await.unwrap() });
    rt.block_on(async { assert!(s.test_unit_ready(1).await.unwrap().is_ok()) });
    let _ = h.child.kill();
    let _ = h.child.wait();
    let started = std::time::Instant::now();
    let r = rt.block_on(async { s.read16(1, 0, 8, 512).await });
    match r {
        Err(Error::Unreachable { secs, .. }) => assert!(secs >= 2, "{secs}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

/// A target that stops answering (SIGSTOP: the connection stays up, nothing comes
/// back) gets the Linux error handling ladder: ABORT TASK, LUN RESET, then the
/// connection is dropped. The command fails with `TimedOut` after about
/// command + abort + lu_reset, is not sent again, and once the target runs again the
/// session reconnects and serves new commands.
#[test]
fn unanswered_command_is_aborted_reset_then_connection_dropped() {
    use std::time::{Duration, Instant};
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 32 << 20));
    let addr: SocketAddr = format!("127.0.0.1:{}", h.port).parse().unwrap();
    let t = hydra_initiator::conn::Timeouts {
        command: Duration::from_secs(2),
        abort: Duration::from_secs(2),
        lu_reset: Duration::from_secs(2),
        replacement: Duration::from_secs(60),
        // Long enough that the NOP-Out ping does not end the connection first.
        noop_interval: Duration::from_secs(30),
        noop_timeout: Duration::from_secs(30),
        login: Duration::from_secs(5),
        fail_fast: false,
    };
    let rt = rt();
    let s = rt.block_on(async { Session::login_with(addr, cfg(IQN, None), t).await.unwrap() });
    rt.block_on(async { assert!(s.test_unit_ready(1).await.unwrap().is_ok()) });
    let frozen = h.freeze();
    let started = Instant::now();
    let r = rt.block_on(async { s.read16(1, 0, 8, 512).await });
    let took = started.elapsed();
    match &r {
        Err(Error::TimedOut { recovered, .. }) => {
            assert_eq!(*recovered, "dropping the connection", "{r:?}")
        }
        other => panic!("expected TimedOut, got {other:?}"),
    }
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("may or may not"), "{msg}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(30),
        "failed after {took:?}"
    );
    frozen.thaw();
    rt.block_on(async {
        // The first commands may meet the unit attention of the reset / reinstatement.
        assert!(s.test_unit_ready(1).await.unwrap().is_ok());
        let data = s.read16(1, 0, 8, 512).await.unwrap().unwrap();
        assert_eq!(data.len(), 8 * 512);
    });
}

/// A target that stops reading (frozen with SIGSTOP while 64 MiB of unsolicited writes
/// are sent)
/// fills the socket: the driver must not sit in that write forever. The stalled write
/// ends the connection after noop_interval + noop_timeout, reconnecting fails while
/// the target is frozen, and every write fails with `Unreachable` after
/// replacement_timeout.
#[test]
fn a_target_that_stops_reading_does_not_hang_the_session() {
    use std::time::{Duration, Instant};
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/a.img\n</target>\n");
    let h = Hydra::start(&conf, |d| sparse(&d.join("a.img"), 64 << 20));
    let addr: SocketAddr = format!("127.0.0.1:{}", h.port).parse().unwrap();
    let t = hydra_initiator::conn::Timeouts {
        command: Duration::ZERO,
        abort: Duration::from_secs(2),
        lu_reset: Duration::from_secs(2),
        replacement: Duration::from_secs(3),
        noop_interval: Duration::from_secs(1),
        noop_timeout: Duration::from_secs(1),
        login: Duration::from_secs(2),
        fail_fast: false,
    };
    // Each write goes whole as immediate data (no R2T needed), so the data fills the
    // socket.
    let mut c = cfg(IQN, None);
    c.params.first_burst_length = 262_144;
    let rt = rt();
    let s = Arc::new(rt.block_on(async { Session::login_with(addr, c, t).await.unwrap() }));
    assert!(s.established.params.immediate_data);
    assert_eq!(s.established.params.first_burst_length, 262_144);
    rt.block_on(async { assert!(s.test_unit_ready(1).await.unwrap().is_ok()) });
    let frozen = h.freeze();
    let started = Instant::now();
    // Bounded, so that a regression fails here instead of hanging the test run.
    let results = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let writes: Vec<_> = (0..256u64)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        s.write16(1, i * 512, Bytes::from(vec![7u8; 256 << 10]), 512, false)
                            .await
                    })
                })
                .collect();
            let mut v = Vec::new();
            for w in writes {
                v.push(w.await.unwrap());
            }
            v
        })
        .await
        .expect("the session hung in a write to a target that stopped reading")
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "writes took {took:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(Error::Unreachable { .. }))),
        "{results:?}"
    );
    assert!(
        results.iter().all(|r| !matches!(r, Ok(Err(_)))),
        "{results:?}"
    );
    frozen.thaw();
}

/// The typed cluster commands through the library against hydra tgtd: fencing with
/// persistent reservations, COMPARE AND WRITE, UNMAP on a thin LUN, ALUA groups.
#[test]
fn cluster_commands_through_the_library() {
    let conf = format!(
        "portal-group 1 127.0.0.1:@PORT1@\nportal-group 2 127.0.0.1:@PORT2@ active/non-optimized\n<target {IQN}>\n    backing-store @DIR@/a.img\n    params thin_provisioning=1\n</target>\n"
    );
    let h = Hydra::start_portals(&conf, 2, &[], |d| sparse(&d.join("a.img"), 32 << 20));
    let addr: SocketAddr = format!("127.0.0.1:{}", h.ports[0]).parse().unwrap();
    rt().block_on(async {
        let a = Session::login(addr, cfg(IQN, None)).await.unwrap();
        let mut other = cfg(IQN, None);
        other.initiator_name = "iqn.2026-11.org.hydra:node2".into();
        let b = Session::login(addr, other).await.unwrap();
        for s in [&a, &b] {
            assert!(s.test_unit_ready(1).await.unwrap().is_ok());
        }
        // fence_scsi: both register, a reserves WERO, then preempts b.
        let wero = PrType::WriteExclusiveRegistrantsOnly;
        a.pr_register_and_ignore(1, 0xa, false)
            .await
            .unwrap()
            .unwrap();
        b.pr_register_and_ignore(1, 0xb, false)
            .await
            .unwrap()
            .unwrap();
        a.pr_reserve(1, 0xa, wero).await.unwrap().unwrap();
        let r = a.read_reservation(1).await.unwrap().unwrap().unwrap();
        assert_eq!((r.key, r.rtype), (0xa, wero));
        let full = b.read_full_status(1).await.unwrap().unwrap();
        let holders: Vec<_> = full
            .descriptors
            .iter()
            .map(|d| (d.key, d.holder, d.transport_id.name.as_str()))
            .collect();
        assert_eq!(
            holders,
            vec![
                (0xa, Some(wero), NAME),
                (0xb, None, "iqn.2026-11.org.hydra:node2")
            ]
        );
        a.pr_preempt(1, 0xa, 0xb, wero, true)
            .await
            .unwrap()
            .unwrap();
        let keys = a.read_keys(1).await.unwrap().unwrap();
        assert_eq!(keys.keys, vec![0xa]);
        let _ = b.test_unit_ready(1).await.unwrap(); // REGISTRATIONS PREEMPTED
        let w = b
            .write16(1, 0, vec![1u8; 512].into(), 512, false)
            .await
            .unwrap();
        assert!(w.unwrap_err().is_reservation_conflict(), "b is fenced");
        a.write16(1, 0, vec![b'A'; 512].into(), 512, false)
            .await
            .unwrap()
            .unwrap();
        // COMPARE AND WRITE: swaps on a match, MISCOMPARE otherwise.
        a.compare_and_write(1, 0, &[b'A'; 512], &[b'B'; 512], 512)
            .await
            .unwrap()
            .unwrap();
        let f = a
            .compare_and_write(1, 0, &[b'A'; 512], &[b'C'; 512], 512)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(f.sense_key().map(|k| (k.0, k.1)), Some((0x0e, 0x1d)));
        // UNMAP: the block reads back as zeros.
        a.unmap(1, &[(0, 8)]).await.unwrap().unwrap();
        let z = a.read16(1, 0, 1, 512).await.unwrap().unwrap();
        assert!(z.iter().all(|&x| x == 0));
        // ALUA: both groups and their states.
        let groups = a.report_target_port_groups(1).await.unwrap().unwrap();
        let states: Vec<_> = groups
            .groups
            .iter()
            .map(|g| (g.id, g.state, g.ports.clone()))
            .collect();
        assert_eq!(
            states,
            vec![
                (1, AccessState::ActiveOptimized, vec![1]),
                (2, AccessState::ActiveNonOptimized, vec![2])
            ]
        );
        a.pr_clear(1, 0xa).await.unwrap().unwrap();
        assert!(a.read_keys(1).await.unwrap().unwrap().keys.is_empty());
        a.logout().await.unwrap();
        b.logout().await.unwrap();
    });
}
