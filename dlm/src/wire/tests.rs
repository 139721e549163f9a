//! Round trips of every variant, framing edge cases, and refusals that name the field.

use super::*;
use crate::flags::{Flags, Status};
use crate::mode::Mode;
use crate::resource::{Lvb, Queue};

fn lvb(seed: u8) -> Lvb {
    std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
}

/// A resource name that is not UTF-8 and has a NUL: names are bytes.
fn name() -> Vec<u8> {
    vec![b'r', 0, 0xff, 0xfe, b'x']
}

fn msgs() -> Vec<Msg> {
    let ls = || "öl-space".to_string();
    let flags = Flags(Flags::VALBLK | Flags::CONVERT | Flags::QUECVT);
    vec![
        Msg::Lookup {
            ls: ls(),
            gen: 7,
            name: name(),
            id: u64::MAX - 3,
        },
        Msg::LookupReply {
            ls: ls(),
            gen: 8,
            name: vec![b'a'; crate::RESNAME_MAXLEN],
            id: 0x0102_0304_0506_0708,
            master: 3,
        },
        Msg::Remove {
            ls: ls(),
            gen: u32::MAX,
            name: vec![],
        },
        Msg::Request {
            ls: ls(),
            name: name(),
            lkid: 0x1_0001,
            mode: Mode::PR,
            flags: Flags(Flags::NOQUEUE | Flags::TIMEOUT),
            bast: true,
            lvb: Some(lvb(1)),
        },
        Msg::Convert {
            ls: ls(),
            name: name(),
            lkid: 9,
            mode: Mode::EX,
            flags,
            lvb: None,
            reply: true,
        },
        Msg::Unlock {
            ls: ls(),
            name: name(),
            lkid: 10,
            flags: Flags(Flags::IVVALBLK | Flags::FORCEUNLOCK),
            lvb: Some(lvb(2)),
        },
        Msg::Cancel {
            ls: ls(),
            name: name(),
            lkid: 11,
        },
        Msg::NotMaster {
            ls: ls(),
            name: name(),
            lkid: 12,
        },
        Msg::Cast {
            ls: ls(),
            lkid: 13,
            status: Status::Deadlock,
            mode: Some(Mode::CW),
            sbflags: 0x05,
            lvb: Some((lvb(3), 0xdead_beef)),
        },
        Msg::Cast {
            ls: ls(),
            lkid: 14,
            status: Status::Unlock,
            mode: None,
            sbflags: 0,
            lvb: None,
        },
        Msg::Queued { ls: ls(), lkid: 15 },
        Msg::Bast {
            ls: ls(),
            lkid: 16,
            mode: Mode::NL,
        },
        Msg::CancelNoop {
            ls: "x".repeat(crate::LOCKSPACE_LEN),
            lkid: 17,
        },
    ]
}

fn peer_frames() -> Vec<PeerFrame> {
    let mut v = vec![PeerFrame::Hello {
        node: 0x0a00_0001,
        protocol: PROTOCOL,
    }];
    v.extend(msgs().into_iter().map(PeerFrame::Msg));
    v
}

fn recover_lock(seed: u8) -> RecoverLock {
    RecoverLock {
        name: vec![seed; seed as usize % 65],
        lkid: 1000 + seed as u32,
        grmode: Some(Mode::PR),
        rqmode: [Some(Mode::CW), None][seed as usize % 2],
        queue: [Queue::Grant, Queue::Convert, Queue::Wait][seed as usize % 3],
        flags: Flags(Flags::PERSISTENT | Flags::VALBLK),
        bast: seed % 2 == 1,
        lvb: [None, Some(lvb(seed))][(seed as usize % 3).min(1)],
        lvbseq: 77 * seed as u32,
    }
}

fn ls_cpgs() -> Vec<LsCpg> {
    vec![
        LsCpg::Start { gen: 42 },
        LsCpg::Masters {
            mastered: vec![name(), vec![], b"b".to_vec()],
            orphaned: vec![vec![0xaa; 64]],
            last: false,
        },
        LsCpg::Masters {
            mastered: vec![],
            orphaned: vec![],
            last: true,
        },
        LsCpg::Locks {
            locks: (0..5).map(recover_lock).collect(),
            last: false,
        },
        LsCpg::Locks {
            locks: vec![],
            last: true,
        },
        LsCpg::Done,
    ]
}

fn daemon_cpgs() -> Vec<DaemonCpg> {
    vec![
        DaemonCpg::FenceStart { node: 2 },
        DaemonCpg::FenceResult { node: 3, ok: true },
        DaemonCpg::FenceResult { node: 4, ok: false },
        DaemonCpg::FenceAck { node: u32::MAX },
        DaemonCpg::Hello {
            stateful: false,
            side: 1,
        },
        DaemonCpg::Hello {
            stateful: true,
            side: u32::MAX,
        },
    ]
}

fn requests() -> Vec<Request> {
    vec![
        Request::Join { ls: "alpha".into() },
        Request::Leave {
            ls: "alpha".into(),
            force: true,
        },
        Request::Lock {
            ls: "alpha".into(),
            name: name(),
            mode: Mode::PW,
            flags: Flags(Flags::VALBLK | Flags::ORPHAN),
            lvb: Some(lvb(9)),
            bast: true,
            lkid: 0,
        },
        Request::Unlock {
            ls: "alpha".into(),
            lkid: 0x0001_0002,
            flags: Flags(Flags::CANCEL),
            lvb: None,
        },
        Request::FenceAck { node: 5 },
    ]
}

fn queries() -> Vec<Query> {
    vec![
        Query::Ls {
            name: Some("beta".into()),
            nodes: true,
        },
        Query::Ls {
            name: None,
            nodes: false,
        },
        Query::Status { verbose: true },
        Query::Dump,
        Query::DumpConfig,
        Query::Lockdump {
            ls: "beta".into(),
            master_copies: true,
        },
        Query::Lockdebug { ls: "beta".into() },
    ]
}

fn client_frames() -> Vec<ClientFrame> {
    let mut v = vec![ClientFrame::Hello {
        protocol: CLIENT_PROTOCOL,
    }];
    v.extend(
        requests()
            .into_iter()
            .enumerate()
            .map(|(i, request)| ClientFrame::Call {
                req: i as u64 + 1,
                request,
            }),
    );
    v.extend(queries().into_iter().map(|query| ClientFrame::Query {
        req: u64::MAX,
        query,
    }));
    v
}

fn callbacks() -> Vec<Callback> {
    vec![
        Callback::Completion {
            lkid: 3,
            status: Status::Granted,
            mode: Some(Mode::EX),
            sbflags: 0x02,
            lvb: Some(lvb(4)),
        },
        Callback::Completion {
            lkid: 4,
            status: Status::Again,
            mode: None,
            sbflags: 0,
            lvb: None,
        },
        Callback::Completion {
            lkid: 5,
            status: Status::Cancel,
            mode: Some(Mode::NL),
            sbflags: 0,
            lvb: None,
        },
        Callback::Blocking {
            lkid: 6,
            mode: Mode::CR,
        },
    ]
}

fn daemon_frames() -> Vec<DaemonFrame> {
    let mut v = vec![
        DaemonFrame::Hello { protocol: 7 },
        DaemonFrame::Reply {
            req: 1,
            result: Ok(0x0001_0003),
        },
        DaemonFrame::Reply {
            req: 2,
            result: Err(Errno::new(16, "lockspace \"alpha\" has 3 locks")),
        },
        DaemonFrame::Text {
            req: 3,
            result: Ok("dlm lockspaces\nname          alpha\n".into()),
        },
        DaemonFrame::Text {
            req: 4,
            result: Err(Errno::new(2, "")),
        },
    ];
    v.extend(callbacks().into_iter().map(|cb| DaemonFrame::Callback {
        ls: "gamma".into(),
        cb,
    }));
    v
}

fn bytes<T: Wire>(x: &T) -> Vec<u8> {
    let mut out = Vec::new();
    x.encode(&mut out);
    out
}

/// decode(encode(x)) == x, and every proper prefix of the encoding is refused (without a
/// panic) while the encoding plus a byte is refused as trailing.
fn check<T: Wire + PartialEq + std::fmt::Debug>(xs: &[T]) {
    for x in xs {
        let b = bytes(x);
        assert_eq!(&T::decode(&b).unwrap(), x);
        for n in 0..b.len() {
            let e = T::decode(&b[..n]).unwrap_err().to_string();
            assert!(e.contains(" at offset "), "{n}: {e}");
        }
        let mut long = b.clone();
        long.push(0);
        let e = T::decode(&long).unwrap_err().to_string();
        assert!(
            e.contains(&format!("1 trailing bytes at offset {}", b.len())),
            "{e}"
        );
    }
}

#[test]
fn every_variant_round_trips() {
    check(&msgs());
    check(&peer_frames());
    check(&ls_cpgs());
    check(&daemon_cpgs());
    check(&client_frames());
    check(&daemon_frames());
    check(&requests());
    check(&queries());
    check(&callbacks());
    check(&(0..7).map(recover_lock).collect::<Vec<_>>());
    check(&[Errno::new(-5, "détail")]);
}

#[test]
fn msg_lookup_golden_bytes() {
    let m = Msg::Lookup {
        ls: "ls".into(),
        gen: 2,
        name: b"r1".to_vec(),
        id: 3,
    };
    let want = [
        1, // tag
        0, 2, b'l', b's', // lockspace
        0, 0, 0, 2, // gen
        0, 2, b'r', b'1', // name
        0, 0, 0, 0, 0, 0, 0, 3, // id
    ];
    assert_eq!(bytes(&m), want);
}

#[test]
fn take_frame_needs_the_whole_frame() {
    let f = PeerFrame::Msg(msgs().swap_remove(3));
    let mut buf = Vec::new();
    put_frame(&f, &mut buf);
    assert_eq!(buf.len(), 4 + bytes(&f).len());
    for n in 0..buf.len() {
        assert!(take_frame::<PeerFrame>(&buf[..n]).unwrap().is_none(), "{n}");
    }
    assert_eq!(take_frame::<PeerFrame>(&buf).unwrap(), Some((f, buf.len())));
}

#[test]
fn take_frame_two_back_to_back() {
    let (a, b) = (
        client_frames().swap_remove(2),
        client_frames().swap_remove(6),
    );
    let mut buf = Vec::new();
    put_frame(&a, &mut buf);
    let first = buf.len();
    put_frame(&b, &mut buf);
    let (got, used) = take_frame::<ClientFrame>(&buf).unwrap().unwrap();
    assert_eq!((got, used), (a, first));
    let (got, used) = take_frame::<ClientFrame>(&buf[first..]).unwrap().unwrap();
    assert_eq!((got, used), (b, buf.len() - first));
}

#[test]
fn take_frame_refuses_a_long_length_before_the_payload() {
    let len = (MAX_FRAME as u32 + 1).to_be_bytes();
    let e = take_frame::<PeerFrame>(&len).unwrap_err().to_string();
    assert!(
        e.contains("1048577 bytes") && e.contains("max 1048576"),
        "{e}"
    );
    let ok = (MAX_FRAME as u32).to_be_bytes();
    assert!(take_frame::<PeerFrame>(&ok).unwrap().is_none());
}

#[test]
fn take_frame_reports_a_bad_payload() {
    let buf = [0, 0, 0, 1, 0x63];
    let e = take_frame::<DaemonFrame>(&buf).unwrap_err().to_string();
    assert!(e.contains("DaemonFrame: unknown tag 99 at offset 0"), "{e}");
}

#[test]
fn long_resource_name_is_refused_naming_the_field() {
    let mut b = bytes(&Msg::Request {
        ls: "ls".into(),
        name: vec![b'n'; 70],
        lkid: 1,
        mode: Mode::EX,
        flags: Flags(0),
        bast: false,
        lvb: None,
    });
    let e = Msg::decode(&b).unwrap_err().to_string();
    assert_eq!(
        e,
        "peer protocol error: Msg::Request: resource name of 70 bytes at offset 5 (max 64)"
    );
    // The same inside a frame names the whole path.
    b.insert(0, 2);
    let e = PeerFrame::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("PeerFrame::Msg::Request: resource name of 70 bytes at offset 6"),
        "{e}"
    );
}

#[test]
fn long_or_non_utf8_lockspace_name_is_refused() {
    let b = bytes(&Request::Join { ls: "l".repeat(65) });
    let e = Request::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("Request::Join: lockspace name of 65 bytes at offset 1 (max 64)"),
        "{e}"
    );
    let b = [1, 0, 2, 0xc3, 0x28];
    let e = Request::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("Request::Join: lockspace name at offset 1 is not UTF-8"),
        "{e}"
    );
}

#[test]
fn unknown_tags_and_codes_are_refused() {
    for (b, want) in [
        (vec![0], "Msg: unknown tag 0 at offset 0"),
        (vec![13], "Msg: unknown tag 13 at offset 0"),
    ] {
        let e = Msg::decode(&b).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    assert!(LsCpg::decode(&[5]).is_err());
    assert!(DaemonCpg::decode(&[0]).is_err());
    assert!(Query::decode(&[7]).is_err());

    let bast = Msg::Bast {
        ls: String::new(),
        lkid: 1,
        mode: Mode::EX,
    };
    let mut b = bytes(&bast);
    *b.last_mut().unwrap() = 6;
    let e = Msg::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("Msg::Bast: mode has mode code 6 at offset 7"),
        "{e}"
    );

    let mut b = bytes(&DaemonCpg::FenceResult { node: 1, ok: true });
    *b.last_mut().unwrap() = 2;
    let e = DaemonCpg::decode(&b).unwrap_err().to_string();
    assert!(e.contains("ok is 2 at offset 5"), "{e}");
}

#[test]
fn unknown_flag_bits_status_and_queue_are_refused() {
    let unlock = Msg::Unlock {
        ls: String::new(),
        name: vec![],
        lkid: 1,
        flags: Flags(0x0008_0000),
        lvb: None,
    };
    let e = Msg::decode(&bytes(&unlock)).unwrap_err().to_string();
    assert!(
        e.contains("Msg::Unlock: flags 0x00080000 at offset 9"),
        "{e}"
    );

    let cb = Callback::Blocking {
        lkid: 1,
        mode: Mode::NL,
    };
    let mut b = bytes(&Callback::Completion {
        lkid: 1,
        status: Status::Granted,
        mode: None,
        sbflags: 0,
        lvb: None,
    });
    b[5..9].copy_from_slice(&(-1i32).to_be_bytes());
    let e = Callback::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("Callback::Completion: status has unknown status -1"),
        "{e}"
    );
    assert!(Callback::decode(&bytes(&cb)).is_ok());

    let mut b = bytes(&recover_lock(1));
    // name (2 + 1), lkid 4, grmode 2, rqmode 1: the queue byte.
    assert_eq!(b[10], 3);
    b[10] = 0;
    let e = RecoverLock::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("RecoverLock: queue has queue code 0 at offset 10"),
        "{e}"
    );
}

#[test]
fn forged_counts_and_lengths_are_refused_before_allocating() {
    let b = [2, 0xff, 0xff, 0xff, 0xff];
    let e = LsCpg::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains(
            "LsCpg::Masters: mastered: count 4294967295 at offset 1 but only 0 bytes remain"
        ),
        "{e}"
    );
    // 19 bytes is the smallest lock: a count of 2 with 37 bytes left is refused up front.
    let mut b = vec![3, 0, 0, 0, 2];
    b.extend([0; 37]);
    let e = LsCpg::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("count 2 at offset 1 but only 37 bytes remain"),
        "{e}"
    );

    let mut b = vec![3];
    b.extend(0u64.to_be_bytes());
    b.push(0);
    b.extend((MAX_FRAME as u32 + 1).to_be_bytes());
    let e = DaemonFrame::decode(&b).unwrap_err().to_string();
    assert!(
        e.contains("DaemonFrame::Text: text of 1048577 bytes at offset 10 (max 1048576)"),
        "{e}"
    );
}

/// A full recovery chunk of the largest entries fits a corosync CPG message (about
/// 1 MiB, corosync's IPC request size) with room to spare.
#[test]
fn a_full_recovery_chunk_fits_a_cpg_message() {
    let chunk = crate::node::CoreConfig::default().recover_chunk;
    let locks = (0..chunk)
        .map(|i| RecoverLock {
            name: vec![b'n'; crate::RESNAME_MAXLEN],
            lvb: Some(lvb(i as u8)),
            rqmode: Some(Mode::CW),
            ..recover_lock(64)
        })
        .collect();
    let mut bytes = Vec::new();
    LsCpg::Locks { locks, last: true }.encode(&mut bytes);
    assert!(bytes.len() < 768 * 1024, "{} bytes", bytes.len());
    let names = vec![vec![b'n'; crate::RESNAME_MAXLEN]; chunk];
    let mut bytes = Vec::new();
    LsCpg::Masters {
        mastered: names.clone(),
        orphaned: names,
        last: true,
    }
    .encode(&mut bytes);
    assert!(bytes.len() < 768 * 1024, "{} bytes", bytes.len());
}

/// The Hello is tag 0 and a big-endian u16 in both directions, in every version: what
/// lets two versions tell each other which they speak.
#[test]
fn the_hellos_keep_their_bytes() {
    assert_eq!(
        bytes(&ClientFrame::Hello { protocol: 0x0102 }),
        bytes(&DaemonFrame::Hello { protocol: 0x0102 })
    );
    let b = bytes(&ClientFrame::Hello { protocol: 0x0102 });
    assert_eq!(&b[b.len() - 3..], &[0, 1, 2], "{b:?}");
}
