//! Persistent reservations and RESERVE(6) on a real LUN (temporary file).

use super::*;
use crate::lun::{IoMode, LunSettings, ScsiRequest};
use hydra_proto::scsi::pr::TransportId;
use hydra_proto::scsi::sense::key;

// Wire values, written out so that these tests check the bytes, not the enums
// (SPC-4 Tables 168 and 170).
const TYPE_WE: u8 = 1;
const TYPE_EA: u8 = 3;
const TYPE_WERO: u8 = 5;
const TYPE_EARO: u8 = 6;
const TYPE_WEAR: u8 = 7;
const TYPE_EAAR: u8 = 8;
const SA_REGISTER: u8 = 0;
const SA_RESERVE: u8 = 1;
const SA_RELEASE: u8 = 2;
const SA_CLEAR: u8 = 3;
const SA_PREEMPT: u8 = 4;
const SA_PREEMPT_AND_ABORT: u8 = 5;
const SA_REGISTER_AND_IGNORE: u8 = 6;

fn nexus(name: &str, isid: u8, port: u16) -> ItNexus {
    ItNexus {
        initiator: format!("iqn.2026-11.org.hydra:{name}"),
        isid: [0x40, 0, 0, 0, 0, isid],
        target_port: port,
    }
}

struct Fx {
    _f: tempfile::NamedTempFile,
    lun: Lun,
}

fn lun_with(file: Option<PathBuf>) -> Fx {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(1 << 20).unwrap();
    let mut lun = Lun::disk(1, 1, LunSettings::new(f.path())).unwrap();
    if let Some(p) = file {
        lun = lun.with_reservations_file(p);
    }
    Fx { _f: f, lun }
}

fn exec(l: &Lun, n: &ItNexus, cdb: &[u8], data: &[u8]) -> ScsiOutcome {
    l.execute(
        &ScsiRequest {
            cdb,
            nexus: n,
            data_out: data,
            expected_in: 8192,
            luns: &[0, 1],
        },
        IoMode::Blocking,
    )
    .unwrap()
}

fn prout(l: &Lun, n: &ItNexus, sa: u8, rtype: u8, key: u64, sa_key: u64, flags: u8) -> ScsiOutcome {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = flags;
    let cdb = [op::PERSISTENT_RESERVE_OUT, sa, rtype, 0, 0, 0, 0, 0, 24, 0];
    exec(l, n, &cdb, &p)
}

fn prin(l: &Lun, n: &ItNexus, sa: u8) -> Vec<u8> {
    let o = exec(
        l,
        n,
        &[op::PERSISTENT_RESERVE_IN, sa, 0, 0, 0, 0, 0, 0x10, 0, 0],
        &[],
    );
    assert_eq!(o.status, status::GOOD);
    o.data_in.to_vec()
}

fn write1(l: &Lun, n: &ItNexus) -> u8 {
    exec(l, n, &[op::WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0], &[7; 512]).status
}

fn read1(l: &Lun, n: &ItNexus) -> u8 {
    exec(l, n, &[op::READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0], &[]).status
}

fn sense(o: &ScsiOutcome) -> (u8, u8, u8) {
    assert_eq!(o.status, status::CHECK_CONDITION);
    (o.sense[2] & 0x0f, o.sense[12], o.sense[13])
}

const OK: u8 = status::GOOD;
const RC: u8 = status::RESERVATION_CONFLICT;

#[test]
fn access_matrix_for_every_type() {
    // (type, registered other can read, can write, unregistered can read, can write)
    for (t, rr, rw, ur, uw) in [
        (TYPE_WE, OK, RC, OK, RC),
        (TYPE_EA, RC, RC, RC, RC),
        (TYPE_WERO, OK, OK, OK, RC),
        (TYPE_EARO, OK, OK, RC, RC),
        (TYPE_WEAR, OK, OK, OK, RC),
        (TYPE_EAAR, OK, OK, RC, RC),
    ] {
        let fx = lun_with(None);
        let l = &fx.lun;
        let (a, b, c) = (nexus("a", 1, 1), nexus("b", 1, 1), nexus("c", 1, 1));
        assert_eq!(prout(l, &a, SA_REGISTER, 0, 0, 0xa, 0).status, OK);
        assert_eq!(prout(l, &b, SA_REGISTER, 0, 0, 0xb, 0).status, OK);
        assert_eq!(prout(l, &a, SA_RESERVE, t, 0xa, 0, 0).status, OK);
        assert_eq!((read1(l, &a), write1(l, &a)), (OK, OK), "type {t} holder");
        assert_eq!(
            (read1(l, &b), write1(l, &b)),
            (rr, rw),
            "type {t} registered"
        );
        assert_eq!(
            (read1(l, &c), write1(l, &c)),
            (ur, uw),
            "type {t} unregistered"
        );
        // INQUIRY and PR IN are never refused.
        assert_eq!(exec(l, &c, &[op::INQUIRY, 0, 0, 0, 36, 0], &[]).status, OK);
        prin(l, &c, 0);
    }
}

#[test]
fn keys_generation_and_wrong_keys() {
    let fx = lun_with(None);
    let l = &fx.lun;
    let a = nexus("a", 1, 1);
    // REGISTER with a non-zero key while unregistered: conflict.
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 5, 6, 0).status, RC);
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 0, 0x1111, 0).status, OK);
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 0x9999, 0x2222, 0).status, RC);
    assert_eq!(
        prout(l, &a, SA_REGISTER_AND_IGNORE, 0, 0, 0x3333, 0).status,
        OK
    );
    let k = prin(l, &a, 0);
    assert_eq!(&k[0..4], &2u32.to_be_bytes(), "generation");
    assert_eq!(&k[4..8], &8u32.to_be_bytes());
    assert_eq!(&k[8..16], &0x3333u64.to_be_bytes());
    // RESERVE with the wrong key: conflict; scope other than LU: refused.
    assert_eq!(prout(l, &a, SA_RESERVE, TYPE_WE, 0x1, 0, 0).status, RC);
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&0x3333u64.to_be_bytes());
    let o = exec(
        l,
        &a,
        &[op::PERSISTENT_RESERVE_OUT, 1, 0x21, 0, 0, 0, 0, 0, 24, 0],
        &p,
    );
    assert_eq!(sense(&o).0, key::ILLEGAL_REQUEST);
    // A parameter list that is not 24 bytes.
    let o = exec(
        l,
        &a,
        &[op::PERSISTENT_RESERVE_OUT, 0, 0, 0, 0, 0, 0, 0, 20, 0],
        &[0; 20],
    );
    assert_eq!(sense(&o), (key::ILLEGAL_REQUEST, 0x1a, 0));
    // Unknown PR IN service action.
    let o = exec(
        l,
        &a,
        &[op::PERSISTENT_RESERVE_IN, 4, 0, 0, 0, 0, 0, 0x10, 0, 0],
        &[],
    );
    assert_eq!(sense(&o).0, key::ILLEGAL_REQUEST);
}

#[test]
fn registration_follows_the_initiator_port_not_the_session() {
    let fx = lun_with(None);
    let l = &fx.lun;
    let a = nexus("a", 1, 1);
    l.nexus_added(&a);
    assert_eq!(
        prout(l, &a, SA_REGISTER_AND_IGNORE, 0, 0, 0xa, 0).status,
        status::CHECK_CONDITION
    );
    assert_eq!(
        prout(l, &a, SA_REGISTER_AND_IGNORE, 0, 0, 0xa, 0).status,
        OK
    );
    // Logout and login again with the same name and ISID: still registered.
    l.nexus_removed(&a);
    l.nexus_added(&a);
    let _ = read1(l, &a); // POWER ON
    assert_eq!(prout(l, &a, SA_RESERVE, TYPE_WERO, 0xa, 0, 0).status, OK);
    // Another ISID of the same initiator is another I_T nexus, not registered.
    let a2 = nexus("a", 2, 1);
    assert_eq!(write1(l, &a2), RC);
    // So is the same initiator port through another target port, unless ALL_TG_PT.
    let a_port2 = nexus("a", 1, 2);
    assert_eq!(write1(l, &a_port2), RC);
    let b = nexus("b", 1, 1);
    assert_eq!(
        prout(l, &b, SA_REGISTER_AND_IGNORE, 0, 0, 0xb, 0x04).status,
        OK
    );
    assert_eq!(
        write1(l, &nexus("b", 1, 7)),
        OK,
        "ALL_TG_PT registrant on another port"
    );
}

#[test]
fn preempt_and_abort_takes_over_and_notifies() {
    let fx = lun_with(None);
    let l = &fx.lun;
    let (a, b) = (nexus("a", 1, 1), nexus("b", 1, 1));
    for n in [&a, &b] {
        l.nexus_added(n);
        let _ = read1(l, n);
    }
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 0, 0xa, 0).status, OK);
    assert_eq!(prout(l, &b, SA_REGISTER, 0, 0, 0xb, 0).status, OK);
    assert_eq!(prout(l, &a, SA_RESERVE, TYPE_WERO, 0xa, 0, 0).status, OK);
    assert_eq!(write1(l, &b), OK, "registrant may write under WERO");
    // b preempts a: b holds the reservation, a's registration is gone.
    assert_eq!(
        prout(l, &b, SA_PREEMPT_AND_ABORT, TYPE_WERO, 0xb, 0xa, 0).status,
        OK
    );
    assert_eq!(
        sense(&exec(l, &a, &[0, 0, 0, 0, 0, 0], &[])),
        (key::UNIT_ATTENTION, 0x2a, 0x05)
    );
    assert_eq!(write1(l, &a), RC);
    assert_eq!(write1(l, &b), OK);
    let rr = prin(l, &b, 1);
    assert_eq!(&rr[8..16], &0xbu64.to_be_bytes());
    assert_eq!(rr[21], TYPE_WERO);
    // PREEMPT of a key nobody has: conflict.
    assert_eq!(prout(l, &b, SA_PREEMPT, TYPE_WERO, 0xb, 0x77, 0).status, RC);
    // CLEAR: everything goes, everybody else is told.
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 0, 0xa, 0).status, OK);
    assert_eq!(prout(l, &b, SA_CLEAR, 0, 0xb, 0, 0).status, OK);
    assert_eq!(
        sense(&exec(l, &a, &[0, 0, 0, 0, 0, 0], &[])),
        (key::UNIT_ATTENTION, 0x2a, 0x03)
    );
    assert_eq!(&prin(l, &a, 0)[4..8], &0u32.to_be_bytes());
    assert_eq!(write1(l, &a), OK);
}

#[test]
fn release_rules_and_full_status() {
    let fx = lun_with(None);
    let l = &fx.lun;
    let (a, b) = (nexus("a", 1, 1), nexus("b", 1, 2));
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 0, 0xa, 0).status, OK);
    assert_eq!(prout(l, &b, SA_REGISTER, 0, 0, 0xb, 0).status, OK);
    assert_eq!(prout(l, &a, SA_RESERVE, TYPE_EA, 0xa, 0, 0).status, OK);
    // Another RESERVE by the holder with another type conflicts; the same type is fine.
    assert_eq!(prout(l, &a, SA_RESERVE, TYPE_WE, 0xa, 0, 0).status, RC);
    assert_eq!(prout(l, &a, SA_RESERVE, TYPE_EA, 0xa, 0, 0).status, OK);
    let fs = prin(l, &a, 3);
    assert_eq!(
        u32::from_be_bytes(fs[4..8].try_into().unwrap()) as usize,
        fs.len() - 8
    );
    // First descriptor: a, holder, type EA, relative port 1, its TransportID.
    assert_eq!(&fs[8..16], &0xau64.to_be_bytes());
    assert_eq!(fs[20], 0x01);
    assert_eq!(fs[21], TYPE_EA);
    assert_eq!(&fs[26..28], &1u16.to_be_bytes());
    let tid_len = u32::from_be_bytes(fs[28..32].try_into().unwrap()) as usize;
    let (r, _) = TransportId::parse(&fs[32..32 + tid_len], 0).unwrap();
    assert_eq!(r.name, "iqn.2026-11.org.hydra:a");
    assert_eq!(r.isid, Some([0x40, 0, 0, 0, 0, 1]));
    // A non-holder's RELEASE does nothing; the holder's with a wrong type is refused.
    assert_eq!(prout(l, &b, SA_RELEASE, TYPE_EA, 0xb, 0, 0).status, OK);
    assert_eq!(read1(l, &b), RC);
    assert_eq!(
        sense(&prout(l, &a, SA_RELEASE, TYPE_WE, 0xa, 0, 0)),
        (key::ILLEGAL_REQUEST, 0x26, 0x04)
    );
    assert_eq!(prout(l, &a, SA_RELEASE, TYPE_EA, 0xa, 0, 0).status, OK);
    assert_eq!(read1(l, &b), OK);
}

#[test]
fn reserve6_against_other_nexuses_and_persistent_registrations() {
    let fx = lun_with(None);
    let l = &fx.lun;
    let (a, b) = (nexus("a", 1, 1), nexus("b", 1, 1));
    let reserve6 = [op::RESERVE_6, 0, 0, 0, 0, 0];
    let release6 = [op::RELEASE_6, 0, 0, 0, 0, 0];
    assert_eq!(exec(l, &a, &reserve6, &[]).status, OK);
    assert_eq!(exec(l, &a, &reserve6, &[]).status, OK);
    assert_eq!(exec(l, &b, &reserve6, &[]).status, RC);
    assert_eq!(
        exec(l, &b, &[op::MODE_SENSE_6, 0, 0x3f, 0, 255, 0], &[]).status,
        RC
    );
    assert_eq!(
        exec(l, &b, &release6, &[]).status,
        OK,
        "RELEASE by others is a no-op"
    );
    assert_eq!(read1(l, &b), RC);
    assert_eq!(exec(l, &b, &[op::INQUIRY, 0, 0, 0, 36, 0], &[]).status, OK);
    // Nexus loss releases it.
    l.nexus_removed(&a);
    assert_eq!(exec(l, &b, &reserve6, &[]).status, OK);
    l.lun_reset(&a);
    assert_eq!(read1(l, &a), OK, "LUN reset released it");
    // With persistent registrations, RESERVE(6) conflicts (CRH = 0).
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 0, 0xa, 0).status, OK);
    assert_eq!(exec(l, &b, &reserve6, &[]).status, RC);
}

#[test]
fn aptpl_state_is_restored_and_removed() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("pr/iqn.x/1.json");
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(1 << 20).unwrap();
    let a = nexus("a", 1, 1);
    {
        let l = Lun::disk(1, 1, LunSettings::new(f.path()))
            .unwrap()
            .with_reservations_file(file.clone());
        assert_eq!(prout(&l, &a, SA_REGISTER, 0, 0, 0xa, 0x01).status, OK);
        assert_eq!(prout(&l, &a, SA_RESERVE, TYPE_WE, 0xa, 0, 0).status, OK);
        assert!(file.exists());
    }
    let l = Lun::disk(1, 1, LunSettings::new(f.path()))
        .unwrap()
        .with_reservations_file(file.clone());
    let st = l.reservations();
    assert!(st.aptpl);
    assert_eq!(st.registrants[0].key, 0xa);
    assert_eq!(
        st.reservation.as_ref().map(|r| r.rtype),
        Some(PrType::WriteExclusive)
    );
    assert_eq!(
        write1(&l, &nexus("z", 1, 1)),
        RC,
        "restored reservation is enforced"
    );
    // Re-register with APTPL = 0: the file goes.
    assert_eq!(prout(&l, &a, SA_REGISTER, 0, 0xa, 0xa, 0).status, OK);
    assert!(!file.exists());
    // Without a state file, APTPL is refused rather than silently not persisted.
    let fx = lun_with(None);
    assert_eq!(
        sense(&prout(&fx.lun, &a, SA_REGISTER, 0, 0, 0xa, 0x01)).0,
        key::ILLEGAL_REQUEST
    );
}

#[test]
fn preempt_and_abort_marks_running_tasks_of_the_victims() {
    let fx = lun_with(None);
    let l = &fx.lun;
    let (a, b, c) = (nexus("a", 1, 1), nexus("b", 1, 1), nexus("c", 1, 1));
    assert_eq!(prout(l, &a, SA_REGISTER, 0, 0, 0xa, 0).status, OK);
    assert_eq!(prout(l, &b, SA_REGISTER, 0, 0, 0xb, 0).status, OK);
    assert_eq!(prout(l, &c, SA_REGISTER, 0, 0, 0xc, 0).status, OK);
    let before = l.abort_epoch();
    // A plain PREEMPT aborts nothing.
    assert_eq!(prout(l, &a, SA_PREEMPT, TYPE_WE, 0xa, 0xc, 0).status, OK);
    assert_eq!(l.abort_epoch(), before);
    assert!(!l.preempted_since(&c, before));
    assert_eq!(
        prout(l, &a, SA_PREEMPT_AND_ABORT, TYPE_WE, 0xa, 0xb, 0).status,
        OK
    );
    assert!(
        l.preempted_since(&b, before),
        "b's running tasks are aborted"
    );
    assert!(!l.preempted_since(&a, before));
    assert!(
        !l.preempted_since(&b, l.abort_epoch()),
        "tasks started later are not"
    );
}
