//! The primary commands every LUN answers (SPC-4): INQUIRY (§6.6), REPORT LUNS (§6.33),
//! REQUEST SENSE (§6.39) and REPORT SUPPORTED OPERATION CODES (§6.35).

use bytes::Bytes;
use hydra_proto::scsi::alua::RtpgCdb;
use hydra_proto::scsi::cdb::{be16, be32};
use hydra_proto::scsi::report_luns::ReportLuns;
use hydra_proto::scsi::vpd::{self, page};
use hydra_proto::scsi::Sense;

use super::opcodes::CmdInfo;
use super::{caw, thin, xcopy, Kind, Lun, ScsiOutcome, ScsiRequest, MAX_TRANSFER_BYTES};
use crate::alua;

fn truncated(mut v: Vec<u8>, alloc: usize) -> ScsiOutcome {
    v.truncate(alloc);
    ScsiOutcome::good(v)
}

/// VPD pages every LUN lists (tgt lists the block pages on LUN 0 too).
const PAGES: &[u8] = &[
    page::SUPPORTED,
    page::UNIT_SERIAL,
    page::DEVICE_ID,
    page::BLOCK_LIMITS,
    page::BLOCK_CHARACTERISTICS,
    page::PROVISIONING,
];

pub(super) fn inquiry(lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let cdb = req.cdb;
    let evpd = cdb[1] & 1 != 0;
    let code = cdb[2];
    let alloc = be16(cdb, 3) as usize;
    let id = &lun.identity;
    if !evpd {
        if code != 0 {
            return lun.check(&Sense::invalid_cdb_field(2, None));
        }
        let mut d = vpd::standard_inquiry(id);
        if lun.alua.enabled() {
            d[5] |= 0x10; // TPGS 01b: implicit asymmetric access only (SPC-4 §6.6.2)
        }
        return truncated(d, alloc);
    }
    let (bs, rotation) = match &lun.kind {
        Kind::Disk(d) => (d.block_size, d.settings.rotation_rate),
        Kind::Controller => (512, 0),
    };
    let data = match code {
        page::SUPPORTED => match lun.kind {
            // Disks also have the Third-party Copy page (EXTENDED COPY), after 0x83.
            Kind::Disk(_) => {
                let mut p = PAGES.to_vec();
                p.insert(3, 0x8f);
                vpd::supported_pages(id, &p)
            }
            Kind::Controller => vpd::supported_pages(id, PAGES),
        },
        0x8f if matches!(lun.kind, Kind::Disk(_)) => xcopy::third_party_copy_page(id.device_type),
        page::UNIT_SERIAL => vpd::unit_serial(id),
        page::DEVICE_ID => {
            let mut designators = vpd::tgt_designators(id);
            if lun.alua.enabled() {
                designators.extend(vpd::target_port_designators(req.nexus.target_port));
            }
            vpd::DeviceIdPage {
                peripheral: id.device_type & 0x1f,
                designators,
            }
            .emit()
        }
        page::BLOCK_LIMITS => {
            let mut p = vpd::block_limits(id, (MAX_TRANSFER_BYTES / bs as u64) as u32, 0);
            if matches!(lun.kind, Kind::Disk(_)) {
                thin::fill_block_limits(&mut p, bs, lun.thin());
                p[5] = caw::MAX_BLOCKS;
            }
            p
        }
        page::BLOCK_CHARACTERISTICS => vpd::block_characteristics(id, rotation),
        page::PROVISIONING => {
            let mut p = vpd::provisioning(id);
            if lun.thin() {
                thin::fill_provisioning(&mut p);
            }
            p
        }
        _ => return lun.check(&Sense::invalid_cdb_field(2, None)),
    };
    truncated(data, alloc)
}

/// REPORT TARGET PORT GROUPS (SPC-4 §6.37), only offered with ALUA on.
pub(super) fn report_target_port_groups(lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let Ok(cdb) = RtpgCdb::parse(req.cdb) else {
        return lun.check(&Sense::illegal_request_invalid_opcode());
    };
    truncated(
        alua::report_target_port_groups(&lun.alua.groups(), cdb.extended),
        cdb.alloc_len as usize,
    )
}

/// The REPORT LUNS parameter data for `req.luns` (SPC-4 §6.33.2), or the error.
pub(super) fn report_luns_data(req: &ScsiRequest<'_>) -> ScsiOutcome {
    let cdb = req.cdb;
    let alloc = be32(cdb, 6) as usize;
    let check = |s: Sense| ScsiOutcome::check(&s, super::SenseFormat::Fixed);
    // SPC-4: an allocation length below 16 is an error.
    if alloc < 16 {
        return check(Sense::invalid_cdb_field(6, None));
    }
    let luns: Vec<u64> = match cdb[2] {
        0x00 | 0x02 => req.luns.to_vec(),
        0x01 => Vec::new(), // well-known LUNs only: hydra has none
        _ => return check(Sense::invalid_cdb_field(2, None)),
    };
    truncated(ReportLuns { luns }.emit(), alloc)
}

pub(super) fn report_luns(lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let out = report_luns_data(req);
    if out.status == 0 {
        // SPC-4 §6.33: REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED for this nexus.
        lun.ua.clear(req.nexus, 0x3f, 0x0e);
        out
    } else {
        // Re-encode in this LUN's sense format.
        let s = Sense::invalid_cdb_field(if req.cdb[2] > 2 { 2 } else { 6 }, None);
        lun.check(&s)
    }
}

pub(super) fn request_sense(lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
    let desc = req.cdb[1] & 1 != 0;
    let alloc = req.cdb[4] as usize;
    let s = lun
        .ua
        .take(req.nexus)
        .or_else(|| lun.ready().err())
        .unwrap_or_else(|| Sense::new(hydra_proto::scsi::sense::key::NO_SENSE, 0, 0));
    truncated(if desc { s.descriptor() } else { s.fixed() }, alloc)
}

/// Command timeouts descriptor (SPC-4 §6.35.4): no timeouts advertised.
const TIMEOUTS: [u8; 12] = [0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

pub(super) fn report_supported_opcodes(
    lun: &Lun,
    table: &'static [CmdInfo],
    req: &ScsiRequest<'_>,
) -> ScsiOutcome {
    let cdb = req.cdb;
    if cdb[1] & 0x1f != hydra_proto::scsi::op::MI_REPORT_SUPPORTED_OPCODES {
        return lun.check(&Sense::invalid_cdb_field(1, Some(4)));
    }
    let rctd = cdb[2] & 0x80 != 0;
    let options = cdb[2] & 0x07;
    let opcode = cdb[3];
    let sa = be16(cdb, 4);
    let alloc = be32(cdb, 6) as usize;
    let mut v = Vec::new();
    match options {
        0 => {
            v.extend_from_slice(&[0; 4]);
            for c in table.iter().filter(|c| lun.offers(c)) {
                v.extend_from_slice(&[c.opcode, 0]);
                v.extend_from_slice(&(c.sa.unwrap_or(0) as u16).to_be_bytes());
                v.push(0);
                v.push(if rctd { 0x02 } else { 0 } | c.sa.is_some() as u8);
                v.extend_from_slice(&(c.usage.len() as u16).to_be_bytes());
                if rctd {
                    v.extend_from_slice(&TIMEOUTS);
                }
            }
            let len = (v.len() - 4) as u32;
            v[..4].copy_from_slice(&len.to_be_bytes());
        }
        1..=3 => {
            let has_sa = table.iter().any(|c| c.opcode == opcode && c.sa.is_some());
            // Option 1 names an opcode without service actions; option 2 one with them
            // (SPC-4 Table 214).
            if (options == 1 && has_sa)
                || (options == 2 && !has_sa && table.iter().any(|c| c.opcode == opcode))
            {
                return lun.check(&Sense::invalid_cdb_field(2, Some(0)));
            }
            let found = table.iter().filter(|c| lun.offers(c)).find(|c| {
                c.opcode == opcode && (c.sa.is_none() || c.sa.map(u16::from) == Some(sa))
            });
            match found {
                Some(c) => {
                    v.push(0);
                    v.push(if rctd { 0x80 } else { 0 } | 0x03);
                    v.extend_from_slice(&(c.usage.len() as u16).to_be_bytes());
                    v.extend_from_slice(c.usage);
                    if rctd {
                        v.extend_from_slice(&TIMEOUTS);
                    }
                }
                None => v.extend_from_slice(&[0, 0x01, 0, 0]),
            }
        }
        _ => return lun.check(&Sense::invalid_cdb_field(2, Some(2))),
    }
    truncated(v, alloc)
}

#[allow(dead_code)]
fn _bytes(_: Bytes) {}
