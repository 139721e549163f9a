//! MODE SENSE and MODE SELECT, 6 and 10 byte forms (SPC-4 §6.11-6.14, SBC-3 §6.4):
//! disconnect-reconnect (02h), caching (08h, WCE changeable), control (0Ah: D_SENSE, TAS) and
//! informational exceptions (1Ch) pages, short and long block descriptors.

use std::sync::atomic::Ordering;

use hydra_proto::scsi::cdb::be16;
use hydra_proto::scsi::Sense;

use super::{Disk, Lun, ScsiOutcome, ScsiRequest, SenseFormat};

const PAGES: [u8; 4] = [0x02, 0x08, 0x0a, 0x1c];

/// Page control (SPC-4 §6.13 Table 147).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pc {
    Current,
    Changeable,
    Default,
}

fn page(lun: &Lun, d: &Disk, code: u8, pc: Pc) -> Vec<u8> {
    match code {
        0x02 => {
            let mut p = vec![0u8; 16];
            p[0] = 0x02;
            p[1] = 14;
            p
        }
        0x08 => {
            let mut p = vec![0u8; 20];
            p[0] = 0x08;
            p[1] = 18;
            p[2] = match pc {
                Pc::Changeable => 0x04,
                Pc::Current => (d.wce.load(Ordering::Relaxed) as u8) << 2,
                Pc::Default => (d.settings.write_cache as u8) << 2,
            };
            p
        }
        0x0a => {
            let mut p = vec![0u8; 12];
            p[0] = 0x0a;
            p[1] = 10;
            if pc != Pc::Changeable && lun.sense_format == SenseFormat::Descriptor {
                p[2] = 0x04; // D_SENSE
            }
            if pc != Pc::Changeable {
                // TAS (SPC-4 §7.5.8): commands aborted by another I_T nexus end with
                // TASK ABORTED status (iscsi/session.rs, PREEMPT AND ABORT).
                p[5] = 0x40;
            }
            p
        }
        _ => {
            let mut p = vec![0u8; 12];
            p[0] = 0x1c;
            p[1] = 10;
            p
        }
    }
}

pub(super) fn sense(lun: &Lun, d: &Disk, req: &ScsiRequest<'_>, ten: bool) -> ScsiOutcome {
    let cdb = req.cdb;
    let dbd = cdb[1] & 0x08 != 0;
    let llbaa = ten && cdb[1] & 0x10 != 0;
    let pc = match cdb[2] >> 6 {
        0 => Pc::Current,
        1 => Pc::Changeable,
        2 => Pc::Default,
        _ => return lun.check(&Sense::saving_not_supported()),
    };
    let code = cdb[2] & 0x3f;
    let subpage = cdb[3];
    let alloc = if ten {
        be16(cdb, 7) as usize
    } else {
        cdb[4] as usize
    };
    let codes: Vec<u8> = if code == 0x3f && (subpage == 0 || subpage == 0xff) {
        PAGES.to_vec()
    } else if PAGES.contains(&code) && (subpage == 0 || subpage == 0xff) {
        vec![code]
    } else if PAGES.contains(&code) || code == 0x3f {
        return lun.check(&Sense::invalid_cdb_field(3, None));
    } else {
        return lun.check(&Sense::invalid_cdb_field(2, Some(5)));
    };
    let bs = d.block_size as u64;
    let blocks = d.backing.size() / bs;
    let mut desc = Vec::new();
    if !dbd {
        if llbaa {
            desc.extend_from_slice(&blocks.to_be_bytes());
            desc.extend_from_slice(&[0; 4]);
            desc.extend_from_slice(&(bs as u32).to_be_bytes());
        } else {
            desc.extend_from_slice(&(blocks.min(0xff_ffff) as u32).to_be_bytes());
            desc[0] = 0; // density code
            desc.extend_from_slice(&(bs as u32).to_be_bytes());
            desc[4] = 0;
        }
    }
    let dev_specific = if d.settings.readonly { 0x80 } else { 0 } | 0x10; // WP, DPOFUA
    let mut body = desc.clone();
    for c in codes {
        body.extend(page(lun, d, c, pc));
    }
    let mut v = Vec::new();
    if ten {
        let len = (6 + body.len()) as u16;
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0, dev_specific, llbaa as u8, 0]);
        v.extend_from_slice(&(desc.len() as u16).to_be_bytes());
    } else {
        v.extend_from_slice(&[
            (3 + body.len()).min(255) as u8,
            0,
            dev_specific,
            desc.len() as u8,
        ]);
    }
    v.extend(body);
    v.truncate(alloc);
    ScsiOutcome::good(v)
}

pub(super) fn select(lun: &Lun, d: &Disk, req: &ScsiRequest<'_>, ten: bool) -> ScsiOutcome {
    let cdb = req.cdb;
    let len = if ten {
        be16(cdb, 7) as usize
    } else {
        cdb[4] as usize
    };
    if cdb[1] & 0x01 != 0 {
        return lun
            .check(&Sense::invalid_cdb_field(1, Some(0)))
            .with_data_out(len as u32);
    }
    if len == 0 {
        return ScsiOutcome::good(Vec::new()).with_data_out(0);
    }
    if cdb[1] & 0x10 == 0 {
        return lun
            .check(&Sense::invalid_cdb_field(1, Some(4)))
            .with_data_out(len as u32);
    }
    if req.data_out.len() < len {
        return lun
            .check(&Sense::parameter_list_length())
            .with_data_out(len as u32);
    }
    let p = &req.data_out[..len];
    let hdr = if ten { 8 } else { 4 };
    if p.len() < hdr {
        return lun
            .check(&Sense::parameter_list_length())
            .with_data_out(len as u32);
    }
    let bdl = if ten {
        be16(p, 6) as usize
    } else {
        p[3] as usize
    };
    let mut off = hdr;
    if off + bdl > p.len() {
        return lun
            .check(&Sense::parameter_list_length())
            .with_data_out(len as u32);
    }
    // A block descriptor may only restate the block length (it cannot be changed).
    let step = if ten && p[4] & 1 != 0 { 16 } else { 8 };
    let mut i = off;
    while i + step <= off + bdl {
        let bl = hydra_proto::scsi::cdb::be32(p, i + step - 4) & 0x00ff_ffff;
        if bl != 0 && bl != d.block_size {
            return lun
                .check(&Sense::invalid_param_field((i + step - 3) as u16))
                .with_data_out(len as u32);
        }
        i += step;
    }
    off += bdl;
    let mut new_wce = None;
    while off < p.len() {
        if off + 2 > p.len() {
            return lun
                .check(&Sense::parameter_list_length())
                .with_data_out(len as u32);
        }
        let code = p[off] & 0x3f;
        if p[off] & 0x40 != 0 || !PAGES.contains(&code) {
            return lun
                .check(&Sense::invalid_param_field(off as u16))
                .with_data_out(len as u32);
        }
        let cur = page(lun, d, code, Pc::Current);
        let changeable = page(lun, d, code, Pc::Changeable);
        let plen = p[off + 1] as usize + 2;
        if plen != cur.len() {
            return lun
                .check(&Sense::invalid_param_field(off as u16 + 1))
                .with_data_out(len as u32);
        }
        if off + plen > p.len() {
            return lun
                .check(&Sense::parameter_list_length())
                .with_data_out(len as u32);
        }
        let given = &p[off..off + plen];
        for j in 2..plen {
            if (given[j] ^ cur[j]) & !changeable[j] != 0 {
                return lun
                    .check(&Sense::invalid_param_field((off + j) as u16))
                    .with_data_out(len as u32);
            }
        }
        if code == 0x08 {
            new_wce = Some(given[2] & 0x04 != 0);
        }
        off += plen;
    }
    if let Some(w) = new_wce {
        if d.wce.swap(w, Ordering::Relaxed) != w {
            // SPC-4 §6.11: other nexuses learn that mode parameters changed.
            lun.ua
                .raise(Some(req.nexus), Sense::unit_attention(0x2a, 0x01));
        }
    }
    ScsiOutcome::good(Vec::new()).with_data_out(len as u32)
}
