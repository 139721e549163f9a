//! EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 §6.3/§6.18 in their LID1 form,
//! as SPC-3 §6.3/§6.17 define them): the copy manager VMware's XCOPY uses to clone blocks
//! without moving them through the initiator. hydra copies between LUNs of the target
//! the command was sent to: identification descriptor target descriptors (0xE4) naming
//! a LUN by one of its VPD 0x83 logical unit designators, and block-to-block segment
//! descriptors (0x02). Everything is validated before the first block moves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hydra_proto::scsi::cdb::be32;
use hydra_proto::scsi::sense::key;
use hydra_proto::scsi::{op, vpd, Sense};

use super::{Kind, Lun, ScsiOutcome, ScsiRequest};
use crate::backing::IoError;
use crate::nexus::ItNexus;

pub const MAX_TARGET_DESCRIPTORS: u16 = 2;
pub const MAX_SEGMENT_DESCRIPTORS: u16 = 8;
/// Longest descriptor list (target plus segment descriptors) accepted.
pub const MAX_DESCRIPTOR_LIST: u32 =
    32 * MAX_TARGET_DESCRIPTORS as u32 + 28 * MAX_SEGMENT_DESCRIPTORS as u32;
/// Largest segment, in bytes (MAXIMUM SEGMENT LENGTH).
pub const MAX_SEGMENT_BYTES: u32 = 64 << 20;
const CHUNK: u64 = 1 << 20;
/// At most this many copy statuses are held per LUN.
const MAX_HELD: usize = 1024;

const TGT_IDENT: u8 = 0xe4;
const SEG_BLOCK_TO_BLOCK: u8 = 0x02;

/// How a held copy ended: (completed without error, segments processed, bytes moved).
type CopyStatus = (bool, u16, u64);

/// Copy status held for RECEIVE COPY RESULTS, per I_T nexus and list identifier.
#[derive(Default)]
pub struct Held {
    map: Mutex<HashMap<(ItNexus, u8), CopyStatus>>,
}

fn copy_aborted(asc: u8, ascq: u8) -> Sense {
    Sense::new(key::COPY_ABORTED, asc, ascq)
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// One validated block-to-block segment: (source, destination, blocks, src LBA, dst LBA).
struct Segment {
    src: Arc<Lun>,
    dst: Arc<Lun>,
    blocks: u64,
    src_lba: u64,
    dst_lba: u64,
}

/// Whether the designation descriptor `want` (header and designator, as a target
/// descriptor carries it) names one of `l`'s logical unit designators in VPD 0x83.
fn names(l: &Lun, want: &[u8]) -> bool {
    let (code_set, association, kind, value) = (
        vpd::CodeSet::from(want[0]),
        vpd::Association::from(want[1] >> 4),
        vpd::DesignatorType::from(want[1]),
        &want[4..],
    );
    vpd::tgt_designators(&l.identity).iter().any(|d| {
        d.association == vpd::Association::LogicalUnit
            && association == vpd::Association::LogicalUnit
            && d.code_set == code_set
            && d.kind == kind
            && d.value == value
    })
}

/// EXTENDED COPY (LID1): validate the whole parameter list, check reservations, copy
/// segment by segment, hold the status for RECEIVE COPY RESULTS.
pub(super) fn extended_copy(lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let c = req.cdb;
    let len = be32(c, 10) as usize;
    let done = |o: ScsiOutcome| o.with_data_out(len as u32);
    if c[1] & 0x1f != 0 {
        return done(lun.check(&Sense::invalid_cdb_field(1, Some(4))));
    }
    // §6.3.1: a zero-length parameter list is not an error and copies nothing.
    if len == 0 {
        return done(ScsiOutcome::good(Bytes::new()));
    }
    if len < 16 || req.data_out.len() < len {
        return done(lun.check(&Sense::parameter_list_length()));
    }
    let p = &req.data_out[..len];
    let parsed = header(p).and_then(|h| {
        let targets = target_descriptors(lun, &p[16..16 + h.tdl])?;
        let segs = segment_descriptors(p, 16 + h.tdl, 16 + h.tdl + h.sdl, &targets)?;
        Ok((h, segs))
    });
    let (h, segs) = match parsed {
        Ok(v) => v,
        Err(sense) => return done(lun.check(&sense)),
    };
    // Reservations on the LUNs read and written apply to this nexus as for READ/WRITE.
    for s in &segs {
        if let Some(c) = s.src.pr.check(req.nexus, op::READ_16) {
            return done(c);
        }
        if let Some(c) = s.dst.pr.check(req.nexus, op::WRITE_16) {
            return done(c);
        }
    }
    let (result, processed, moved) = match copy(lun, &segs) {
        Ok((processed, moved)) => (ScsiOutcome::good(Bytes::new()), processed, moved),
        Err((sense, processed, moved)) => (lun.check(&sense), processed, moved),
    };
    // LIST ID USAGE 00b/10b: hold the status for RECEIVE COPY RESULTS.
    if h.usage == 0 || h.usage == 2 {
        let status = (result.status == 0, processed, moved);
        hold(lun, req.nexus, h.list_id, status);
    }
    done(result)
}

/// The parameter list header (SPC-3 §6.3.1 table 32) with its lengths checked.
struct Header {
    list_id: u8,
    /// LIST ID USAGE.
    usage: u8,
    /// Target descriptor list length.
    tdl: usize,
    /// Segment descriptor list length.
    sdl: usize,
}

fn header(p: &[u8]) -> Result<Header, Sense> {
    let h = Header {
        list_id: p[0],
        usage: (p[1] >> 3) & 3,
        tdl: u16::from_be_bytes([p[2], p[3]]) as usize,
        sdl: be32(p, 8) as usize,
    };
    let inline = be32(p, 12);
    if !h.tdl.is_multiple_of(32) {
        return Err(Sense::invalid_param_field(2));
    }
    if inline != 0 {
        return Err(Sense::invalid_param_field(12));
    }
    // Over MAXIMUM DESCRIPTOR LIST LENGTH: a parameter list length error (§6.3.1),
    // checked before the descriptor counts.
    if (h.tdl + h.sdl) as u64 > MAX_DESCRIPTOR_LIST as u64 {
        return Err(Sense::parameter_list_length());
    }
    if h.tdl / 32 > MAX_TARGET_DESCRIPTORS as usize {
        return Err(Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x06));
    }
    if 16 + h.tdl + h.sdl > p.len() {
        return Err(Sense::parameter_list_length());
    }
    Ok(h)
}

/// Target descriptors (identification descriptor, 0xE4): each must name a disk LUN of
/// this target, with its block length.
fn target_descriptors(lun: &Lun, list: &[u8]) -> Result<Vec<Arc<Lun>>, Sense> {
    let peers = lun.peer_luns();
    let mut targets: Vec<Arc<Lun>> = Vec::new();
    for (i, d) in list.chunks_exact(32).enumerate() {
        let at = 16 + 32 * i;
        if d[0] != TGT_IDENT {
            return Err(Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x07));
        }
        // LU ID TYPE other than LUN (00b) is not supported.
        if d[1] >> 6 != 0 {
            return Err(Sense::invalid_param_field(at as u16 + 1));
        }
        // NUL (0x20): a null device target, which hydra does not provide; the rest of
        // the byte is reserved.
        if d[1] & 0x3f != 0 {
            return Err(copy_aborted(0x08, 0x04));
        }
        let dlen = d[7] as usize;
        if dlen > 20 {
            return Err(Sense::invalid_param_field(at as u16 + 7));
        }
        let want = &d[4..8 + dlen];
        let found = peers
            .iter()
            .find(|l| matches!(l.kind, Kind::Disk(_)) && names(l, want));
        let Some(t) = found else {
            return Err(copy_aborted(0x08, 0x04));
        };
        // DISK BLOCK LENGTH must be the LUN's.
        let bl = u32::from_be_bytes([0, d[29], d[30], d[31]]);
        if t.settings().map(|s| s.block_size) != Some(bl) {
            return Err(copy_aborted(0x08, 0x04));
        }
        targets.push(t.clone());
    }
    Ok(targets)
}

/// Segment descriptors in `p[at..end]`: block-to-block (0x02) only, between the
/// `targets`, within both LUNs, the destination writable.
fn segment_descriptors(
    p: &[u8],
    mut at: usize,
    end: usize,
    targets: &[Arc<Lun>],
) -> Result<Vec<Segment>, Sense> {
    let mut segs: Vec<Segment> = Vec::new();
    while at < end {
        if segs.len() >= MAX_SEGMENT_DESCRIPTORS as usize {
            return Err(Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x08));
        }
        if at + 4 > end {
            return Err(Sense::parameter_list_length());
        }
        let s = &p[at..end];
        let dlen = u16::from_be_bytes([s[2], s[3]]) as usize + 4;
        if s[0] != SEG_BLOCK_TO_BLOCK {
            return Err(Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x09));
        }
        if dlen != 28 || s.len() < 28 {
            return Err(Sense::parameter_list_length());
        }
        segs.push(segment(s, at, targets)?);
        at += dlen;
    }
    Ok(segs)
}

/// One block-to-block segment descriptor `s` (at offset `at` of the list).
fn segment(s: &[u8], at: usize, targets: &[Arc<Lun>]) -> Result<Segment, Sense> {
    let (si, di) = (
        u16::from_be_bytes([s[4], s[5]]) as usize,
        u16::from_be_bytes([s[6], s[7]]) as usize,
    );
    let (Some(src), Some(dst)) = (targets.get(si), targets.get(di)) else {
        return Err(copy_aborted(0x08, 0x04));
    };
    let blocks = u16::from_be_bytes([s[10], s[11]]) as u64;
    let (src_lba, dst_lba) = (be64(s, 12), be64(s, 20));
    let cap = |l: &Lun| l.size_bytes() / block_size(l);
    let fits = |l: &Lun, lba: u64| lba.checked_add(blocks).is_some_and(|e| e <= cap(l));
    if !fits(src, src_lba) || !fits(dst, dst_lba) {
        return Err(copy_aborted(0x00, 0x00));
    }
    if blocks * block_size(src) > MAX_SEGMENT_BYTES as u64 {
        return Err(Sense::invalid_param_field(at as u16 + 10));
    }
    if dst.settings().is_some_and(|s| s.readonly) {
        return Err(Sense::write_protected());
    }
    Ok(Segment {
        src: src.clone(),
        dst: dst.clone(),
        blocks,
        src_lba,
        dst_lba,
    })
}

fn block_size(l: &Lun) -> u64 {
    l.settings().map_or(512, |s| s.block_size) as u64
}

/// Move the segments in order, [`CHUNK`] bytes at a time. Ok: (segments processed,
/// bytes moved); Err also says how far the copy got.
fn copy(lun: &Lun, segs: &[Segment]) -> Result<(u16, u64), (Sense, u16, u64)> {
    let mut moved: u64 = 0;
    let mut processed: u16 = 0;
    for s in segs {
        let bs = block_size(&s.src);
        let (Kind::Disk(sd), Kind::Disk(dd)) = (&s.src.kind, &s.dst.kind) else {
            return Err((copy_aborted(0x08, 0x04), processed, moved));
        };
        let mut done_bytes = 0;
        let total = s.blocks * bs;
        while done_bytes < total {
            let n = CHUNK.min(total - done_bytes);
            let (so, doff) = (s.src_lba * bs + done_bytes, s.dst_lba * bs + done_bytes);
            let data = {
                let _r = sd.ranges.shared(so, n);
                sd.backing.read(so, n as usize, false)
            };
            let wrote = data.and_then(|d| {
                let _w = dd.ranges.shared(doff, n);
                dd.backing.write(doff, &d, false, false)
            });
            if let Err(e) = wrote {
                let e = match e {
                    IoError::Io(e) => e.to_string(),
                    IoError::WouldBlock => "would block".into(),
                };
                tracing::error!("LUN {}: extended copy failed: {e}", lun.number);
                return Err((copy_aborted(0x0d, 0x02), processed, moved));
            }
            done_bytes += n;
            moved += n;
        }
        processed += 1;
    }
    Ok((processed, moved))
}

/// Keep a copy's status for RECEIVE COPY RESULTS, bounded: statuses nobody collects
/// must not grow without end.
fn hold(lun: &Lun, nexus: &ItNexus, list_id: u8, status: CopyStatus) {
    let mut held = lun.copies.map.lock().unwrap_or_else(|e| e.into_inner());
    if held.len() >= MAX_HELD {
        if let Some(k) = held.keys().next().cloned() {
            held.remove(&k);
        }
    }
    held.insert((nexus.clone(), list_id), status);
}

/// RECEIVE COPY RESULTS: COPY STATUS (SA 0) and OPERATING PARAMETERS (SA 3).
pub(super) fn receive_copy_results(lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let c = req.cdb;
    let alloc = be32(c, 10) as usize;
    let mut v = match c[1] & 0x1f {
        0 => {
            let held = lun
                .copies
                .map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(req.nexus.clone(), c[2]));
            let Some((ok, segs, bytes)) = held else {
                return lun.check(&Sense::invalid_cdb_field(2, None));
            };
            let mut v = vec![0, 0, 0, 8, if ok { 0x01 } else { 0x02 }];
            v.extend_from_slice(&segs.to_be_bytes());
            // TRANSFER COUNT in KiB (units 01h).
            v.push(0x01);
            v.extend_from_slice(&((bytes >> 10).min(u32::MAX as u64) as u32).to_be_bytes());
            v
        }
        3 => {
            let mut v = vec![0u8; 44];
            v[4] = 0x01; // SNLID: list identifiers are not kept unique across nexuses
            v[8..10].copy_from_slice(&MAX_TARGET_DESCRIPTORS.to_be_bytes());
            v[10..12].copy_from_slice(&MAX_SEGMENT_DESCRIPTORS.to_be_bytes());
            v[12..16].copy_from_slice(&MAX_DESCRIPTOR_LIST.to_be_bytes());
            v[16..20].copy_from_slice(&MAX_SEGMENT_BYTES.to_be_bytes());
            v[34..36].copy_from_slice(&1u16.to_be_bytes());
            v[36] = 1;
            v[37] = 9; // data segment granularity 512 bytes (log2)
            v[43] = 2;
            v.extend_from_slice(&[SEG_BLOCK_TO_BLOCK, TGT_IDENT]);
            let n = (v.len() - 4) as u32;
            v[0..4].copy_from_slice(&n.to_be_bytes());
            v
        }
        _ => return lun.check(&Sense::invalid_cdb_field(1, Some(4))),
    };
    v.truncate(alloc);
    ScsiOutcome::good(v)
}

/// VPD 0x8F Third-party Copy (SPC-4 §7.8.17): one Supported Commands descriptor naming
/// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (COPY STATUS, OPERATING PARAMETERS).
pub fn third_party_copy_page(device_type: u8) -> Vec<u8> {
    let list = [
        op::EXTENDED_COPY,
        1,
        0x00,
        op::RECEIVE_COPY_RESULTS,
        2,
        0x00,
        0x03,
    ];
    let mut body = vec![list.len() as u8];
    body.extend_from_slice(&list);
    body.resize(body.len().div_ceil(4) * 4, 0);
    let mut d = vec![0x00, 0x01];
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend(body);
    let mut page = vec![device_type & 0x1f, 0x8f];
    page.extend_from_slice(&(d.len() as u16).to_be_bytes());
    page.extend(d);
    page
}
