//! LUN emulation against a real temporary file.

use super::*;
use hydra_proto::scsi::sense::key;
use std::collections::BTreeMap;

fn nexus(n: u8) -> ItNexus {
    ItNexus {
        initiator: format!("iqn.2026-11.test:i{n}"),
        isid: [0, 2, 0x3d, 0, 0, n],
        target_port: 1,
    }
}

struct Fixture {
    _f: tempfile::NamedTempFile,
    lun: Lun,
}

fn disk(size: u64, tweak: impl FnOnce(&mut LunSettings)) -> Fixture {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(size).unwrap();
    let mut s = LunSettings::new(f.path());
    tweak(&mut s);
    let lun = Lun::disk(1, 1, s).unwrap();
    Fixture { _f: f, lun }
}

fn run(l: &Lun, n: &ItNexus, cdb: &[u8], data_out: &[u8]) -> ScsiOutcome {
    let req = ScsiRequest {
        cdb,
        nexus: n,
        data_out,
        expected_in: 1 << 20,
        luns: &[0, 1],
    };
    l.execute(&req, IoMode::Blocking).unwrap()
}

fn sense_of(o: &ScsiOutcome) -> (u8, u8, u8) {
    assert_eq!(
        o.status,
        status::CHECK_CONDITION,
        "expected CHECK CONDITION"
    );
    (o.sense[2] & 0x0f, o.sense[12], o.sense[13])
}

fn write10(lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    [op::WRITE_10, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

fn read10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = write10(lba, blocks);
    c[0] = op::READ_10;
    c
}

#[test]
fn unit_attention_after_login_then_gone() {
    let f = disk(1 << 20, |_| {});
    let n = nexus(1);
    f.lun.nexus_added(&n);
    // INQUIRY is not refused by a pending UA (SAM-5 §5.14).
    assert_eq!(
        run(&f.lun, &n, &[op::INQUIRY, 0, 0, 0, 36, 0], &[]).status,
        0
    );
    let tur = [op::TEST_UNIT_READY, 0, 0, 0, 0, 0];
    assert_eq!(
        sense_of(&run(&f.lun, &n, &tur, &[])),
        (key::UNIT_ATTENTION, 0x29, 0x00)
    );
    assert_eq!(run(&f.lun, &n, &tur, &[]).status, 0);
}

#[test]
fn write_then_read_back_and_range_checks() {
    let f = disk(1 << 20, |_| {});
    let n = nexus(1);
    let data: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
    assert_eq!(run(&f.lun, &n, &write10(7, 2), &data).status, 0);
    let r = run(&f.lun, &n, &read10(7, 2), &[]);
    assert_eq!(&r.data_in[..], &data[..]);
    // Last block is readable, one past it is not (and nothing is touched).
    assert_eq!(run(&f.lun, &n, &read10(2047, 1), &[]).status, 0);
    assert_eq!(
        sense_of(&run(&f.lun, &n, &read10(2047, 2), &[])),
        (key::ILLEGAL_REQUEST, 0x21, 0)
    );
    assert_eq!(
        sense_of(&run(&f.lun, &n, &write10(2048, 1), &[0; 512])),
        (key::ILLEGAL_REQUEST, 0x21, 0)
    );
    let mut r16 = [0u8; 16];
    r16[0] = op::READ_16;
    r16[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
    r16[13] = 1;
    assert_eq!(
        sense_of(&run(&f.lun, &n, &r16, &[])),
        (key::ILLEGAL_REQUEST, 0x21, 0)
    );
    assert_eq!(f.lun.size_bytes(), 1 << 20, "the backing file did not grow");
}

#[test]
fn short_data_out_writes_only_whole_blocks_sent() {
    let f = disk(1 << 20, |_| {});
    let n = nexus(1);
    run(&f.lun, &n, &write10(0, 2), &[b'a'; 1024]);
    let o = run(&f.lun, &n, &write10(0, 2), &[b'b'; 512]);
    assert_eq!((o.status, o.data_out_len), (0, Some(1024)));
    let r = run(&f.lun, &n, &read10(0, 2), &[]);
    assert!(r.data_in[..512].iter().all(|b| *b == b'b'));
    assert!(r.data_in[512..].iter().all(|b| *b == b'a'));
}

#[test]
fn readonly_refuses_writes() {
    let f = disk(1 << 20, |s| s.readonly = true);
    assert_eq!(
        sense_of(&run(&f.lun, &nexus(1), &write10(0, 1), &[0; 512])),
        (key::DATA_PROTECT, 0x27, 0)
    );
}

#[test]
fn mode_select_changes_wce_and_tells_other_nexuses() {
    let f = disk(1 << 20, |_| {});
    let (a, b) = (nexus(1), nexus(2));
    f.lun.nexus_added(&a);
    f.lun.nexus_added(&b);
    let _ = f.lun.ua.take(&a);
    let _ = f.lun.ua.take(&b);
    let sense_caching = [op::MODE_SENSE_6, 0x08, 0x08, 0, 255, 0];
    let cur = run(&f.lun, &a, &sense_caching, &[]);
    assert_eq!(cur.data_in[4] & 0x3f, 0x08);
    assert_eq!(
        cur.data_in[6] & 0x04,
        0x04,
        "write-cache on by default, as in tgt"
    );
    let mut page = cur.data_in[4..].to_vec();
    page[2] &= !0x04;
    let mut param = vec![0, 0, 0, 0];
    param.extend(&page);
    let sel = [op::MODE_SELECT_6, 0x10, 0, 0, param.len() as u8, 0];
    assert_eq!(run(&f.lun, &a, &sel, &param).status, 0);
    assert_eq!(run(&f.lun, &a, &sense_caching, &[]).data_in[6] & 0x04, 0);
    assert_eq!(
        sense_of(&run(&f.lun, &b, &[0; 6], &[])),
        (key::UNIT_ATTENTION, 0x2a, 0x01)
    );
    // A non-changeable bit is refused with the parameter's position.
    param[6] |= 0x01;
    assert_eq!(
        sense_of(&run(&f.lun, &a, &sel, &param)),
        (key::ILLEGAL_REQUEST, 0x26, 0)
    );
}

#[test]
fn reserved_bits_and_unknown_opcodes() {
    let f = disk(1 << 20, |_| {});
    let n = nexus(1);
    let mut c = read10(0, 1);
    c[1] = 0x20; // RDPROTECT without protection information
    let o = run(&f.lun, &n, &c, &[]);
    assert_eq!(sense_of(&o), (key::ILLEGAL_REQUEST, 0x24, 0));
    assert_eq!(
        (o.sense[15], o.sense[16], o.sense[17]),
        (0xc8 | 5, 0, 1),
        "field pointer: byte 1 bit 5"
    );
    assert_eq!(
        sense_of(&run(&f.lun, &n, &[0xff, 0, 0, 0, 0, 0], &[])),
        (key::ILLEGAL_REQUEST, 0x20, 0)
    );
}

#[test]
fn verify_miscompare_reports_offset() {
    let f = disk(1 << 20, |_| {});
    let n = nexus(1);
    run(&f.lun, &n, &write10(3, 1), &[9; 512]);
    let mut expect = vec![9u8; 512];
    expect[100] = 8;
    let v = [op::VERIFY_10, 0x02, 0, 0, 0, 3, 0, 0, 1, 0];
    let o = run(&f.lun, &n, &v, &expect);
    assert_eq!(sense_of(&o), (key::MISCOMPARE, 0x1d, 0));
    assert_eq!(
        u32::from_be_bytes([o.sense[3], o.sense[4], o.sense[5], o.sense[6]]),
        100
    );
    assert_eq!(run(&f.lun, &n, &v, &[9; 512]).status, 0);
}

#[test]
fn nowait_miss_has_no_side_effect() {
    // A write with write-cache off must be durable, so the network task may not do it:
    // WouldBlock, and the file is unchanged.
    let f = disk(1 << 20, |s| s.write_cache = false);
    let n = nexus(1);
    let c = write10(1, 1);
    let req = ScsiRequest {
        cdb: &c,
        nexus: &n,
        data_out: &[7; 512],
        expected_in: 0,
        luns: &[0, 1],
    };
    assert_eq!(f.lun.execute(&req, IoMode::NoWait).unwrap_err(), WouldBlock);
    assert!(run(&f.lun, &n, &read10(1, 1), &[])
        .data_in
        .iter()
        .all(|b| *b == 0));
    assert_eq!(f.lun.execute(&req, IoMode::Blocking).unwrap().status, 0);
    assert!(run(&f.lun, &n, &read10(1, 1), &[])
        .data_in
        .iter()
        .all(|b| *b == 7));
}

#[test]
fn controller_and_missing_lun() {
    let c = Lun::controller(3);
    let n = nexus(1);
    let inq = run(&c, &n, &[op::INQUIRY, 0, 0, 0, 96, 0], &[]);
    assert_eq!(inq.data_in[0], 0x0c);
    assert_eq!(&inq.data_in[16..26], b"Controller");
    assert_eq!(c.scsi_id(), "IET     00030000");
    let req = ScsiRequest {
        cdb: &[op::TEST_UNIT_READY, 0, 0, 0, 0, 0],
        nexus: &n,
        data_out: &[],
        expected_in: 0,
        luns: &[0],
    };
    assert_eq!(
        sense_of(&no_such_lun(&req)),
        (key::ILLEGAL_REQUEST, 0x25, 0)
    );
    let req = ScsiRequest {
        cdb: &[op::INQUIRY, 0, 0, 0, 36, 0],
        nexus: &n,
        data_out: &[],
        expected_in: 36,
        luns: &[0],
    };
    assert_eq!(no_such_lun(&req).data_in[0], 0x7f);
}

fn read_capacity16() -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op::SERVICE_ACTION_IN_16;
    c[1] = op::SAI_READ_CAPACITY_16;
    c[13] = 32;
    c
}

#[test]
fn growth_raises_capacity_data_has_changed() {
    let f = disk(1 << 20, |_| {});
    let (a, b) = (nexus(1), nexus(2));
    f.lun.nexus_added(&a);
    f.lun.nexus_added(&b);
    // Clear POWER ON.
    for n in [&a, &b] {
        assert_eq!(
            sense_of(&run(&f.lun, n, &read10(0, 1), &[])).0,
            key::UNIT_ATTENTION
        );
    }
    assert_eq!(f.lun.refresh_capacity().unwrap(), (1 << 20, 1 << 20));
    assert_eq!(run(&f.lun, &a, &read10(0, 1), &[]).status, status::GOOD);
    f._f.as_file().set_len(2 << 20).unwrap();
    assert_eq!(f.lun.refresh_capacity().unwrap(), (1 << 20, 2 << 20));
    for n in [&a, &b] {
        assert_eq!(
            sense_of(&run(&f.lun, n, &read10(0, 1), &[])),
            (key::UNIT_ATTENTION, 0x2a, 0x09)
        );
        let rc = run(&f.lun, n, &read_capacity16(), &[]);
        assert_eq!(
            u64::from_be_bytes(rc.data_in[0..8].try_into().unwrap()),
            4095
        );
    }
    // The new blocks are usable.
    assert_eq!(run(&f.lun, &a, &read10(4095, 1), &[]).status, status::GOOD);
}

fn alua_disk(groups: &[(u16, crate::alua::AccessState)]) -> (Fixture, Arc<Alua>) {
    let alua = Arc::new(Alua::default());
    alua.configure(groups);
    let f = disk(1 << 20, |_| {});
    let Fixture { _f, lun } = f;
    let lun = lun.with_alua(alua.clone());
    (Fixture { _f, lun }, alua)
}

#[test]
fn alua_states_gate_media_access_per_target_port() {
    use crate::alua::AccessState::*;
    let (f, alua) = alua_disk(&[(1, ActiveOptimized), (2, Standby)]);
    let mut via2 = nexus(1);
    via2.target_port = 2;
    let via1 = nexus(1);
    assert_eq!(run(&f.lun, &via1, &read10(0, 1), &[]).status, status::GOOD);
    assert_eq!(
        sense_of(&run(&f.lun, &via2, &read10(0, 1), &[])),
        (key::NOT_READY, 0x04, 0x0b)
    );
    // INQUIRY answers through a standby port, with TPGS = implicit.
    let inq = run(&f.lun, &via2, &[op::INQUIRY, 0, 0, 0, 96, 0], &[]);
    assert_eq!(inq.data_in[5] & 0x30, 0x10);
    // VPD 0x83 names the port the command came through.
    let vpd = run(&f.lun, &via2, &[op::INQUIRY, 1, 0x83, 0, 255, 0], &[]);
    let d = &vpd.data_in;
    assert_eq!(u16::from_be_bytes([d[2], d[3]]) as usize, d.len() - 4);
    assert_eq!(
        &d[d.len() - 16..],
        &[0x51, 0x94, 0, 4, 0, 0, 0, 2, 0x51, 0x95, 0, 4, 0, 0, 0, 2]
    );
    // REPORT TARGET PORT GROUPS through the standby port.
    let rtpg = run(
        &f.lun,
        &via2,
        &[op::MAINTENANCE_IN, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[],
    );
    assert_eq!(rtpg.status, status::GOOD);
    assert_eq!(rtpg.data_in.len(), 4 + 2 * 12);
    assert_eq!((rtpg.data_in[4], rtpg.data_in[16]), (0, 2));
    alua.set_state(2, ActiveNonOptimized).unwrap();
    assert_eq!(run(&f.lun, &via2, &read10(0, 1), &[]).status, status::GOOD);
    alua.set_state(1, Unavailable).unwrap();
    assert_eq!(
        sense_of(&run(
            &f.lun,
            &via1,
            &[op::MODE_SENSE_6, 0, 0x3f, 0, 255, 0],
            &[]
        )),
        (key::NOT_READY, 0x04, 0x0c)
    );
}

/// REPORT SUPPORTED OPERATION CODES for MAINTENANCE IN / REPORT TARGET PORT GROUPS.
const RSOC_RTPG: [u8; 12] = [
    op::MAINTENANCE_IN,
    0x0c,
    0x02,
    op::MAINTENANCE_IN,
    0,
    0x0a,
    0,
    0,
    1,
    0,
    0,
    0,
];

#[test]
fn without_alua_rtpg_is_not_offered() {
    let f = disk(1 << 20, |_| {});
    let n = nexus(1);
    let rtpg = run(
        &f.lun,
        &n,
        &[op::MAINTENANCE_IN, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        &[],
    );
    assert_eq!(sense_of(&rtpg).0, key::ILLEGAL_REQUEST);
    let inq = run(&f.lun, &n, &[op::INQUIRY, 0, 0, 0, 96, 0], &[]);
    assert_eq!(inq.data_in[5] & 0x30, 0);
    // REPORT SUPPORTED OPERATION CODES, one command: MAINTENANCE IN / 0x0a not supported.
    let one = run(&f.lun, &n, &RSOC_RTPG, &[]);
    assert_eq!(one.data_in[1] & 0x07, 0x01);
    let (f, _) = alua_disk(&[(1, crate::alua::AccessState::ActiveOptimized)]);
    let one = run(&f.lun, &n, &RSOC_RTPG, &[]);
    assert_eq!(one.data_in[1] & 0x07, 0x03);
}

fn thin_disk() -> Fixture {
    disk(4 << 20, |s| s.thin_provisioning = true)
}

fn unmap_cdb(param_len: u16) -> [u8; 10] {
    let l = param_len.to_be_bytes();
    [op::UNMAP, 0, 0, 0, 0, 0, 0, l[0], l[1], 0]
}

fn lba_status(l: &Lun, n: &ItNexus, lba: u64) -> Vec<(u64, u32, u8)> {
    let mut c = [0u8; 16];
    c[0] = op::SERVICE_ACTION_IN_16;
    c[1] = op::SAI_GET_LBA_STATUS;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&1024u32.to_be_bytes());
    let o = run(l, n, &c, &[]);
    assert_eq!(o.status, status::GOOD);
    o.data_in[8..]
        .chunks(16)
        .map(|d| {
            (
                u64::from_be_bytes(d[0..8].try_into().unwrap()),
                u32::from_be_bytes(d[8..12].try_into().unwrap()),
                d[12],
            )
        })
        .collect()
}

#[test]
fn unmap_deallocates_and_reads_zero() {
    let f = thin_disk();
    let n = nexus(1);
    let data = vec![0xabu8; 64 * 512];
    assert_eq!(run(&f.lun, &n, &write10(0, 64), &data).status, status::GOOD);
    let list = hydra_proto::scsi::unmap::parameter_list(&[(8, 16), (40, 8)]);
    let o = run(&f.lun, &n, &unmap_cdb(list.len() as u16), &list);
    assert_eq!(o.status, status::GOOD);
    let back = run(&f.lun, &n, &read10(0, 64), &[]).data_in;
    for (i, b) in back.chunks(512).enumerate() {
        let zero = (8..24).contains(&i) || (40..48).contains(&i);
        assert!(
            b.iter().all(|&x| x == if zero { 0 } else { 0xab }),
            "block {i}"
        );
    }
    // The filesystem reports the holes (4 KiB aligned here).
    let st = lba_status(&f.lun, &n, 0);
    assert_eq!(st[0], (0, 8, 0));
    assert_eq!(st[1], (8, 16, 1));
    assert_eq!(st[2], (24, 16, 0));
    assert_eq!(st[3], (40, 8, 1));
}

#[test]
fn bad_unmap_lists_change_nothing() {
    let f = thin_disk();
    let n = nexus(1);
    let data = vec![0x11u8; 16 * 512];
    assert_eq!(run(&f.lun, &n, &write10(0, 16), &data).status, status::GOOD);
    let capacity = (4 << 20) / 512;
    // Second range past the end: LBA OUT OF RANGE, and the first is not unmapped.
    let list = hydra_proto::scsi::unmap::parameter_list(&[(0, 8), (capacity - 1, 2)]);
    let o = run(&f.lun, &n, &unmap_cdb(list.len() as u16), &list);
    assert_eq!(sense_of(&o), (key::ILLEGAL_REQUEST, 0x21, 0));
    // Parameter list shorter than its header.
    let o = run(&f.lun, &n, &unmap_cdb(4), &[0; 4]);
    assert_eq!(sense_of(&o), (key::ILLEGAL_REQUEST, 0x1a, 0));
    // Too many descriptors.
    let many: Vec<(u64, u32)> = (0..300).map(|i| (i, 1)).collect();
    let list = hydra_proto::scsi::unmap::parameter_list(&many);
    let o = run(&f.lun, &n, &unmap_cdb(list.len() as u16), &list);
    assert_eq!(sense_of(&o), (key::ILLEGAL_REQUEST, 0x26, 0));
    // ANCHOR is not supported.
    let mut c = unmap_cdb(0);
    c[1] = 1;
    assert_eq!(sense_of(&run(&f.lun, &n, &c, &[])).0, key::ILLEGAL_REQUEST);
    let back = run(&f.lun, &n, &read10(0, 16), &[]).data_in;
    assert!(back.iter().all(|&b| b == 0x11));
    // A LUN that is not thin does not offer UNMAP at all.
    let full = disk(1 << 20, |_| {});
    let list = hydra_proto::scsi::unmap::parameter_list(&[(0, 1)]);
    assert_eq!(
        sense_of(&run(&full.lun, &n, &unmap_cdb(list.len() as u16), &list)),
        (key::ILLEGAL_REQUEST, 0x20, 0)
    );
}

#[test]
fn write_same_writes_the_pattern_or_unmaps() {
    let f = thin_disk();
    let n = nexus(1);
    let block: Vec<u8> = (0..512).map(|i| i as u8).collect();
    let ws10 = |lba: u32, blocks: u16, unmap: bool| {
        let l = lba.to_be_bytes();
        let b = blocks.to_be_bytes();
        [
            op::WRITE_SAME_10,
            if unmap { 0x08 } else { 0 },
            l[0],
            l[1],
            l[2],
            l[3],
            0,
            b[0],
            b[1],
            0,
        ]
    };
    assert_eq!(
        run(&f.lun, &n, &ws10(10, 20, false), &block).status,
        status::GOOD
    );
    let back = run(&f.lun, &n, &read10(10, 20), &[]).data_in;
    assert!(back.chunks(512).all(|b| b == &block[..]));
    assert!(run(&f.lun, &n, &read10(9, 1), &[])
        .data_in
        .iter()
        .all(|&b| b == 0));
    // UNMAP bit: deallocated, reads zero.
    assert_eq!(
        run(&f.lun, &n, &ws10(8, 16, true), &block).status,
        status::GOOD
    );
    assert!(run(&f.lun, &n, &read10(8, 16), &[])
        .data_in
        .iter()
        .all(|&b| b == 0));
    // Data-Out that is not exactly one block, and past-the-end ranges, are refused.
    assert_eq!(
        sense_of(&run(&f.lun, &n, &ws10(0, 1, false), &block[..256])).0,
        key::ILLEGAL_REQUEST
    );
    let capacity = ((4 << 20) / 512) as u32;
    assert_eq!(
        sense_of(&run(&f.lun, &n, &ws10(capacity - 1, 2, false), &block)),
        (key::ILLEGAL_REQUEST, 0x21, 0)
    );
    // 0 blocks: to the end of the LUN.
    assert_eq!(
        run(&f.lun, &n, &ws10(capacity - 3, 0, false), &block).status,
        status::GOOD
    );
    let back = run(&f.lun, &n, &read10(capacity - 3, 3), &[]).data_in;
    assert!(back.chunks(512).all(|b| b == &block[..]));
    // The UNMAP bit needs a thin LUN.
    let full = disk(1 << 20, |_| {});
    assert_eq!(
        sense_of(&run(&full.lun, &n, &ws10(0, 1, true), &block)).0,
        key::ILLEGAL_REQUEST
    );
    assert_eq!(
        run(&full.lun, &n, &ws10(0, 1, false), &block).status,
        status::GOOD
    );
}

fn caw(lba: u64, blocks: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op::COMPARE_AND_WRITE;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[13] = blocks;
    c
}

#[test]
fn compare_and_write_swaps_only_on_match() {
    let f = disk(1 << 20, |_| {});
    let n = nexus(1);
    let a = vec![b'A'; 1024];
    assert_eq!(run(&f.lun, &n, &write10(4, 2), &a).status, status::GOOD);
    let mut buf = a.clone();
    buf.extend(vec![b'B'; 1024]);
    assert_eq!(run(&f.lun, &n, &caw(4, 2), &buf).status, status::GOOD);
    assert!(run(&f.lun, &n, &read10(4, 2), &[])
        .data_in
        .iter()
        .all(|&b| b == b'B'));
    // Same request again: the medium is 'B' now, first difference at byte 0.
    let o = run(&f.lun, &n, &caw(4, 2), &buf);
    assert_eq!(sense_of(&o), (key::MISCOMPARE, 0x1d, 0));
    assert_eq!(&o.sense[3..7], &0u32.to_be_bytes());
    // One differing byte late in the second block: its offset is reported.
    let mut v = vec![b'B'; 1024];
    v[1000] = b'x';
    v.extend(vec![b'C'; 1024]);
    let o = run(&f.lun, &n, &caw(4, 2), &v);
    assert_eq!(sense_of(&o), (key::MISCOMPARE, 0x1d, 0));
    assert_eq!(o.sense[0] & 0x80, 0x80, "INFORMATION is valid");
    assert_eq!(&o.sense[3..7], &1000u32.to_be_bytes());
    assert!(run(&f.lun, &n, &read10(4, 2), &[])
        .data_in
        .iter()
        .all(|&b| b == b'B'));
    // Wrong Data-Out size, too many blocks, past the end.
    assert_eq!(
        sense_of(&run(&f.lun, &n, &caw(4, 2), &buf[..1024])).0,
        key::ILLEGAL_REQUEST
    );
    assert_eq!(
        sense_of(&run(&f.lun, &n, &caw(4, 0), &buf)).0,
        key::ILLEGAL_REQUEST
    );
    assert_eq!(run(&f.lun, &n, &caw(4, 0), &[]).status, status::GOOD);
    assert_eq!(
        sense_of(&run(&f.lun, &n, &caw(2047, 2), &vec![0; 2048])),
        (key::ILLEGAL_REQUEST, 0x21, 0)
    );
}

/// An XCOPY parameter list: one identification target descriptor per LUN, one
/// block-to-block segment from target 0 to target `dst`.
fn xcopy_list(luns: &[&Lun], dst: u16, blocks: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
    let mut p = vec![0u8; 16];
    p[0] = 7; // list id
    p[2..4].copy_from_slice(&((32 * luns.len()) as u16).to_be_bytes());
    p[8..12].copy_from_slice(&28u32.to_be_bytes());
    for l in luns {
        // The NAA-3 designator of VPD 0x83 (code set 1, type 3, 8 bytes).
        let page = hydra_proto::scsi::vpd::device_identification(&l.identity);
        let at = 4 + 4 + 36; // after the T10 vendor designator
        let mut d = vec![0xe4, 0, 0, 0];
        d.extend_from_slice(&page[at..at + 12]);
        d.resize(28, 0);
        d.extend_from_slice(&[0, 0, 0x02, 0x00]); // 512-byte blocks
        p.extend(d);
    }
    let mut s = vec![0x02, 0, 0, 24, 0, 0];
    s.extend_from_slice(&dst.to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&blocks.to_be_bytes());
    s.extend_from_slice(&src_lba.to_be_bytes());
    s.extend_from_slice(&dst_lba.to_be_bytes());
    p.extend(s);
    p
}

fn xcopy_cdb(len: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op::EXTENDED_COPY;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

#[test]
fn extended_copy_between_luns_of_a_target() {
    let fa = tempfile::NamedTempFile::new().unwrap();
    let fb = tempfile::NamedTempFile::new().unwrap();
    fa.as_file().set_len(1 << 20).unwrap();
    fb.as_file().set_len(1 << 20).unwrap();
    let a = Arc::new(Lun::disk(1, 1, LunSettings::new(fa.path())).unwrap());
    let b = Arc::new(Lun::disk(1, 2, LunSettings::new(fb.path())).unwrap());
    let map: Arc<LunMap> = Arc::new(RwLock::new(BTreeMap::from([
        (1, a.clone()),
        (2, b.clone()),
    ])));
    a.join_target(&map);
    b.join_target(&map);
    let n = nexus(1);
    let data: Vec<u8> = (0..16 * 512).map(|i| (i % 251) as u8).collect();
    assert_eq!(run(&a, &n, &write10(10, 16), &data).status, status::GOOD);
    let list = xcopy_list(&[&a, &b], 1, 16, 10, 100);
    assert_eq!(
        run(&a, &n, &xcopy_cdb(list.len()), &list).status,
        status::GOOD
    );
    assert_eq!(run(&b, &n, &read10(100, 16), &[]).data_in[..], data[..]);
    // Status held for list id 7 (LIST ID USAGE 00b), then gone once read.
    let rcr = |l: &Lun| {
        let mut c = [0u8; 16];
        c[0] = op::RECEIVE_COPY_RESULTS;
        c[2] = 7;
        c[13] = 64;
        run(l, &n, &c, &[])
    };
    let st = rcr(&a);
    assert_eq!((st.status, st.data_in[4]), (status::GOOD, 1));
    assert_eq!(sense_of(&rcr(&a)).0, key::ILLEGAL_REQUEST);
    // Past the end of the destination: COPY ABORTED, nothing written.
    let list = xcopy_list(&[&a, &b], 1, 16, 10, 2047);
    assert_eq!(
        sense_of(&run(&a, &n, &xcopy_cdb(list.len()), &list)).0,
        0x0a
    );
    // Segment naming a target descriptor that is not there.
    let list = xcopy_list(&[&a], 1, 16, 10, 100);
    assert_eq!(
        sense_of(&run(&a, &n, &xcopy_cdb(list.len()), &list)).0,
        0x0a
    );
    // Truncated parameter list.
    let list = xcopy_list(&[&a, &b], 1, 16, 10, 100);
    assert_eq!(
        sense_of(&run(
            &a,
            &n,
            &xcopy_cdb(list.len()),
            &list[..list.len() - 1]
        )),
        (key::ILLEGAL_REQUEST, 0x1a, 0)
    );
    // A LUN of another target (not joined) cannot be named.
    let fc = tempfile::NamedTempFile::new().unwrap();
    fc.as_file().set_len(1 << 20).unwrap();
    let other = Lun::disk(2, 1, LunSettings::new(fc.path())).unwrap();
    let list = xcopy_list(&[&a, &other], 1, 16, 10, 100);
    assert_eq!(
        sense_of(&run(&a, &n, &xcopy_cdb(list.len()), &list)).0,
        0x0a
    );
}

#[test]
fn direct_lun_never_runs_io_inline() {
    // `bsoflags direct`: every read and write goes to the device, so the connection's
    // thread hands them all to the blocking pool (WouldBlock in NoWait mode, no side
    // effect), even a plain write with the write cache on.
    let f = tempfile::NamedTempFile::new_in("/var/tmp").unwrap();
    f.as_file().set_len(1 << 20).unwrap();
    let mut s = LunSettings::new(f.path());
    s.o_direct = true;
    let lun = Lun::disk(1, 1, s).unwrap();
    let n = nexus(1);
    let read = read10(8, 8);
    let write = write10(8, 8);
    for (cdb, data_out) in [(&read[..], &[][..]), (&write[..], &[5u8; 4096][..])] {
        let req = ScsiRequest {
            cdb,
            nexus: &n,
            data_out,
            expected_in: 4096,
            luns: &[0, 1],
        };
        assert_eq!(lun.execute(&req, IoMode::NoWait).unwrap_err(), WouldBlock);
    }
    assert!(run(&lun, &n, &read, &[]).data_in.iter().all(|b| *b == 0));
    assert_eq!(run(&lun, &n, &write, &[5u8; 4096]).status, 0);
    assert!(run(&lun, &n, &read, &[]).data_in.iter().all(|b| *b == 5));
}
