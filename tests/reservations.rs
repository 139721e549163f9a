//! Persistent reservations over real iSCSI sessions to the daemon: the fence_scsi
//! pattern (register, reserve Write Exclusive Registrants Only, PREEMPT AND ABORT the
//! other node's key), registrations surviving a re-login of the same initiator port but
//! not another ISID, and APTPL state surviving `kill -9` of the daemon.

mod common;

use common::client::{Reply, Session};
use common::*;

const IQN: &str = "iqn.2026-11.org.hydra:pr";
const WERO: u8 = 5;
const CONFLICT: u8 = 0x18;

fn node(h: &Hydra, name: &str, isid: u8) -> Session {
    let mut s = Session::login(
        h.port,
        IQN,
        &format!("iqn.2026-11.org.hydra:{name}"),
        [0x40, 0, 0, 0, 0x10, isid],
    )
    .unwrap_or_else(|e| panic!("{name}: {e}\n{}", h.log()));
    // Clear POWER ON / RESET.
    s.command_past_ua(1, &[0, 0, 0, 0, 0, 0], &[], 0).unwrap();
    s
}

fn prout(s: &mut Session, sa: u8, rtype: u8, key: u64, sa_key: u64, aptpl: bool) -> Reply {
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = aptpl as u8;
    s.command(1, &[0x5f, sa, rtype, 0, 0, 0, 0, 0, 24, 0], &p, 0)
        .unwrap()
}

fn prin(s: &mut Session, sa: u8) -> Vec<u8> {
    let r = s
        .command(1, &[0x5e, sa, 0, 0, 0, 0, 0, 0x10, 0, 0], &[], 4096)
        .unwrap();
    assert_eq!(r.status, 0, "{r:?}");
    r.data
}

fn keys(s: &mut Session) -> Vec<u64> {
    let d = prin(s, 0);
    d[8..]
        .chunks(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
        .collect()
}

fn write(s: &mut Session, lba: u32) -> Reply {
    let l = lba.to_be_bytes();
    s.command(
        1,
        &[0x2a, 0, l[0], l[1], l[2], l[3], 0, 0, 1, 0],
        &[0x5a; 512],
        0,
    )
    .unwrap()
}

fn start() -> Hydra {
    let conf = format!("<target {IQN}>\n    backing-store @DIR@/disk.img\n</target>\n");
    Hydra::start(&conf, |d| sparse(&d.join("disk.img"), 16 << 20))
}

#[test]
fn preempt_and_abort_fences_the_other_node() {
    let h = start();
    let mut a = node(&h, "node-a", 1);
    let mut b = node(&h, "node-b", 1);
    assert_eq!(prout(&mut a, 6, 0, 0, 0xaaaa, false).status, 0);
    assert_eq!(prout(&mut b, 6, 0, 0, 0xbbbb, false).status, 0);
    assert_eq!(prout(&mut a, 1, WERO, 0xaaaa, 0, false).status, 0);
    // Both registered: both may write under WERO.
    assert_eq!(write(&mut a, 0).status, 0);
    assert_eq!(write(&mut b, 1).status, 0);
    // Node a fences node b.
    assert_eq!(prout(&mut a, 5, WERO, 0xaaaa, 0xbbbb, false).status, 0);
    let first = write(&mut b, 1);
    assert_eq!(
        (first.status, first.sense_triplet()),
        (0x02, (0x06, 0x2a, 0x05)),
        "b is told its registration was preempted"
    );
    for lba in 0..4 {
        assert_eq!(write(&mut b, lba).status, CONFLICT);
        assert_eq!(write(&mut a, lba).status, 0, "the holder keeps writing");
    }
    assert_eq!(keys(&mut a), vec![0xaaaa]);
    a.logout().unwrap();
    b.logout().unwrap();
}

#[test]
fn registration_survives_relogin_of_the_same_initiator_port_only() {
    let h = start();
    let mut a = node(&h, "node-a", 1);
    assert_eq!(prout(&mut a, 6, 0, 0, 0x1234, false).status, 0);
    assert_eq!(prout(&mut a, 1, WERO, 0x1234, 0, false).status, 0);
    a.logout().unwrap();
    // Same name, same ISID: the same I_T nexus, still registered and holding.
    let mut again = node(&h, "node-a", 1);
    assert_eq!(keys(&mut again), vec![0x1234]);
    assert_eq!(write(&mut again, 0).status, 0);
    // Same name, another ISID: another initiator port, not registered.
    let mut other = node(&h, "node-a", 2);
    assert_eq!(write(&mut other, 0).status, CONFLICT);
    // Its REGISTER with the first port's key is refused (it has no registration).
    assert_eq!(
        prout(&mut other, 0, 0, 0x1234, 0x9999, false).status,
        CONFLICT
    );
    again.logout().unwrap();
    other.logout().unwrap();
}

#[test]
fn aptpl_state_survives_kill_9() {
    let mut h = start();
    let mut a = node(&h, "node-a", 1);
    let mut b = node(&h, "node-b", 1);
    assert_eq!(prout(&mut a, 6, 0, 0, 0xa1, true).status, 0);
    assert_eq!(prout(&mut b, 6, 0, 0, 0xb2, true).status, 0);
    assert_eq!(prout(&mut a, 1, WERO, 0xa1, 0, false).status, 0);
    let before = prin(&mut a, 3);
    drop(a);
    drop(b);
    h.crash_and_restart();
    let mut c = node(&h, "node-c", 1);
    let after = prin(&mut c, 3);
    assert_eq!(after, before, "READ FULL STATUS after kill -9 and restart");
    let rr = prin(&mut c, 1);
    assert_eq!(&rr[8..16], &0xa1u64.to_be_bytes());
    assert_eq!(rr[21], WERO);
    // And it is enforced: c is not registered.
    assert_eq!(write(&mut c, 0).status, CONFLICT);
    let mut a = node(&h, "node-a", 1);
    assert_eq!(write(&mut a, 0).status, 0);
    c.logout().unwrap();
    a.logout().unwrap();
}
