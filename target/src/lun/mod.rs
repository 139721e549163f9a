//! SCSI emulation of one logical unit: tgt's LUN 0 controller or a disk (SPC-4, SBC-3).
//!
//! [`Lun::execute`] is synchronous and does no I/O of its own besides the backing store;
//! with [`IoMode::NoWait`] it never blocks (page-cache hits only) and returns
//! [`WouldBlock`] — before any side effect — when it would, so the connection driver can
//! rerun the command on its blocking pool. Before a command runs, [`Lun::execute`]
//! checks, in SAM-5's order, unit attentions (`ua`), the ALUA state of the port it
//! came through ([`crate::alua`]) and reservation conflicts ([`pr`]); COMPARE AND WRITE
//! (`caw`), thin provisioning ([`thin`]) and EXTENDED COPY (`xcopy`) are SBC-3/SPC-4
//! commands dispatched from there.

mod caw;
mod mode;
pub mod opcodes;
pub mod pr;
mod range_lock;
mod sbc;
pub mod settings;
mod spc;
pub mod thin;
mod ua;
mod xcopy;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock, RwLock, Weak};

use bytes::Bytes;
use hydra_proto::scsi::vpd::{Identity, TYPE_CONTROLLER, TYPE_DISK};
use hydra_proto::scsi::{op, status, Sense};

pub use settings::{LunSettings, SenseFormat};

use crate::alua::{self, Alua};
use crate::backing::Backing;
use crate::nexus::ItNexus;
use crate::Result;

/// Largest transfer one command may ask for (VPD 0xB0 MAXIMUM TRANSFER LENGTH): bounds the
/// memory one command can make the daemon allocate.
pub const MAX_TRANSFER_BYTES: u64 = 32 << 20;

/// Whether the caller may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// On the network task: page-cache hits only.
    NoWait,
    /// On the blocking pool.
    Blocking,
}

/// The command needs I/O that could block; nothing was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldBlock;

/// One command as the LUN sees it.
pub struct ScsiRequest<'a> {
    pub cdb: &'a [u8],
    pub nexus: &'a ItNexus,
    /// All Data-Out the initiator sent (its Expected Data Transfer Length for writes).
    pub data_out: &'a [u8],
    /// The initiator's Expected Data Transfer Length for reads.
    pub expected_in: u32,
    /// Every LUN number of the target (REPORT LUNS).
    pub luns: &'a [u64],
}

/// The result of one command.
#[derive(Debug, Clone)]
pub struct ScsiOutcome {
    pub status: u8,
    /// Encoded sense data, empty when there is none.
    pub sense: Vec<u8>,
    /// Data the command produced (at most its allocation/transfer length; the driver
    /// truncates to the Expected Data Transfer Length and computes residuals).
    pub data_in: Bytes,
    /// How many Data-Out bytes the command needed, when it takes any (for the driver's
    /// residual counts, RFC 7143 §11.4.5).
    pub data_out_len: Option<u32>,
}

impl ScsiOutcome {
    fn good(data: impl Into<Bytes>) -> ScsiOutcome {
        ScsiOutcome {
            status: status::GOOD,
            sense: Vec::new(),
            data_in: data.into(),
            data_out_len: None,
        }
    }
    fn check(sense: &Sense, format: SenseFormat) -> ScsiOutcome {
        let sense = match format {
            SenseFormat::Fixed => sense.fixed(),
            SenseFormat::Descriptor => sense.descriptor(),
        };
        ScsiOutcome {
            status: status::CHECK_CONDITION,
            sense,
            data_in: Bytes::new(),
            data_out_len: None,
        }
    }
    fn with_data_out(mut self, n: u32) -> ScsiOutcome {
        self.data_out_len = Some(n);
        self
    }
}

/// What sits behind a LUN number.
enum Kind {
    Controller,
    Disk(Box<Disk>),
}

struct Disk {
    backing: Backing,
    settings: LunSettings,
    block_size: u32,
    /// Write cache enabled (MODE SELECT can change it).
    wce: AtomicBool,
    /// Stopped by START STOP UNIT.
    stopped: AtomicBool,
    /// Ranges in use: shared by ordinary reads and writes, exclusive for the commands
    /// that must be atomic against them (COMPARE AND WRITE, ORWRITE, WRITE ATOMIC).
    ranges: range_lock::RangeLock,
}

/// One logical unit.
pub struct Lun {
    number: u64,
    identity: Identity,
    kind: Kind,
    ua: ua::UnitAttentions,
    sense_format: SenseFormat,
    /// The daemon's target port groups (see [`Lun::with_alua`]).
    alua: Arc<Alua>,
    /// Persistent reservations and RESERVE/RELEASE.
    pr: pr::Reservations,
    /// EXTENDED COPY status held for RECEIVE COPY RESULTS.
    copies: xcopy::Held,
    /// The LUNs of the target this LUN belongs to (EXTENDED COPY between them).
    peers: OnceLock<Weak<LunMap>>,
}

/// A target's LUNs by number.
pub type LunMap = RwLock<BTreeMap<u64, Arc<Lun>>>;

/// ALUA off: what a LUN sees until the daemon gives it its port groups.
static NO_ALUA: LazyLock<Arc<Alua>> = LazyLock::new(Default::default);

impl Lun {
    /// LUN 0 of every target: tgt's storage array controller (SCC-2), no medium.
    pub fn controller(tid: u32) -> Lun {
        Lun {
            number: 0,
            identity: Identity {
                device_type: TYPE_CONTROLLER,
                removable: false,
                vendor: "IET".into(),
                product: "Controller".into(),
                revision: "0001".into(),
                scsi_id: Identity::tgt_scsi_id(tid, 0),
                serial: Identity::tgt_serial(tid, 0),
                tid,
                lun: 0,
            },
            kind: Kind::Controller,
            ua: Default::default(),
            sense_format: SenseFormat::Fixed,
            alua: NO_ALUA.clone(),
            pr: Default::default(),
            copies: Default::default(),
            peers: OnceLock::new(),
        }
    }

    /// A disk LUN backed by `settings.path`.
    pub fn disk(tid: u32, lun: u64, settings: LunSettings) -> Result<Lun> {
        let backing = Backing::open(
            &settings.path,
            settings.o_direct,
            settings.o_sync,
            settings.readonly,
        )?;
        let identity = Identity {
            device_type: TYPE_DISK,
            removable: settings.removable,
            vendor: settings.vendor_id.clone(),
            product: settings.product_id.clone(),
            revision: settings.product_rev.clone(),
            scsi_id: settings
                .scsi_id
                .clone()
                .unwrap_or_else(|| Identity::tgt_scsi_id(tid, lun)),
            serial: settings
                .scsi_sn
                .clone()
                .unwrap_or_else(|| Identity::tgt_serial(tid, lun)),
            tid,
            lun,
        };
        Ok(Lun {
            number: lun,
            identity,
            sense_format: settings.sense_format,
            kind: Kind::Disk(Box::new(Disk {
                backing,
                block_size: settings.block_size,
                wce: AtomicBool::new(settings.write_cache),
                stopped: AtomicBool::new(false),
                ranges: Default::default(),
                settings,
            })),
            ua: Default::default(),
            alua: NO_ALUA.clone(),
            pr: Default::default(),
            copies: Default::default(),
            peers: OnceLock::new(),
        })
    }

    /// Answer ALUA commands and enforce access states from the daemon's port groups.
    pub fn with_alua(mut self, alua: Arc<Alua>) -> Lun {
        self.alua = alua;
        self
    }

    /// Keep persistent reservations with APTPL in `file` (and restore them from it).
    pub fn with_reservations_file(mut self, file: std::path::PathBuf) -> Lun {
        self.pr = pr::Reservations::with_file(file);
        self
    }

    /// This LUN belongs to the target whose LUNs are `luns` (EXTENDED COPY may copy
    /// between them). Set once, when the LUN is added to its target.
    pub fn join_target(&self, luns: &Arc<LunMap>) {
        let _ = self.peers.set(Arc::downgrade(luns));
    }

    /// The LUNs of this LUN's target, itself included (empty before `join_target`).
    fn peer_luns(&self) -> Vec<Arc<Lun>> {
        self.peers
            .get()
            .and_then(Weak::upgrade)
            .map(|m| {
                m.read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Counter of PREEMPT AND ABORTs on this LUN (see [`Lun::preempted_since`]).
    pub fn abort_epoch(&self) -> u64 {
        self.pr.abort_epoch()
    }

    /// Whether a PREEMPT AND ABORT since `epoch` preempted nexus `n`: its tasks that
    /// were running then are aborted.
    pub fn preempted_since(&self, n: &ItNexus, epoch: u64) -> bool {
        self.pr.preempted_since(n, epoch)
    }

    /// The persistent reservation state (for tests and show).
    pub fn reservations(&self) -> pr::State {
        self.pr.snapshot()
    }

    /// Whether the command is offered: REPORT TARGET PORT GROUPS only with ALUA on
    /// (SPC-4 §6.37: supported when TPGS is not 00b), the thin provisioning commands
    /// only on thin LUNs.
    fn offers(&self, c: &opcodes::CmdInfo) -> bool {
        match (c.opcode, c.sa) {
            (op::MAINTENANCE_IN, Some(op::MI_REPORT_TARGET_PORT_GROUPS)) => self.alua.enabled(),
            // UNMAP and GET LBA STATUS only on thin LUNs (SBC-3 §4.7.3: LBPME).
            (op::UNMAP, _) | (op::SERVICE_ACTION_IN_16, Some(op::SAI_GET_LBA_STATUS)) => {
                self.thin()
            }
            _ => true,
        }
    }

    /// Thin provisioned (`params thin_provisioning=1`).
    fn thin(&self) -> bool {
        self.settings().is_some_and(|s| s.thin_provisioning)
    }

    /// Re-read the size of the backing store after it grew (or shrank); when the
    /// capacity changed, every nexus gets CAPACITY DATA HAS CHANGED (2A/09, SBC-3
    /// §4.10). Returns the old and new size in bytes.
    pub fn refresh_capacity(&self) -> std::io::Result<(u64, u64)> {
        let Kind::Disk(d) = &self.kind else {
            return Ok((0, 0));
        };
        let old = self.size_bytes();
        d.backing.refresh_size()?;
        let new = self.size_bytes();
        if new != old {
            self.ua.raise(None, Sense::unit_attention(0x2a, 0x09));
        }
        Ok((old, new))
    }

    pub fn number(&self) -> u64 {
        self.number
    }
    /// None for the controller.
    pub fn settings(&self) -> Option<&LunSettings> {
        match &self.kind {
            Kind::Disk(d) => Some(&d.settings),
            Kind::Controller => None,
        }
    }
    pub fn size_bytes(&self) -> u64 {
        match &self.kind {
            Kind::Disk(d) => d.backing.size() / d.block_size as u64 * d.block_size as u64,
            Kind::Controller => 0,
        }
    }
    pub fn scsi_id(&self) -> String {
        self.identity.scsi_id.clone()
    }
    pub fn scsi_sn(&self) -> String {
        self.identity.serial.clone()
    }

    /// A new I_T nexus: it starts with POWER ON, RESET OCCURRED.
    pub fn nexus_added(&self, n: &ItNexus) {
        self.ua.register(n);
    }
    pub fn nexus_removed(&self, n: &ItNexus) {
        self.ua.unregister(n);
        self.pr.drop_reserve(Some(n));
    }
    /// LOGICAL UNIT RESET (SAM-5 §6.4): 29/03 for every I_T nexus — the one that asked
    /// for it included (libiscsi's MultipathIO.Reset checks each path).
    pub fn lun_reset(&self, _by: &ItNexus) {
        if let Kind::Disk(d) = &self.kind {
            d.stopped.store(false, Ordering::Relaxed);
        }
        self.ua.raise(None, Sense::unit_attention(0x29, 0x03));
        self.pr.drop_reserve(None);
    }
    /// TARGET WARM RESET: 29/02 (SCSI BUS RESET OCCURRED) for every other nexus.
    pub fn target_reset(&self, by: &ItNexus) {
        self.pr.drop_reserve(None);
        self.ua.raise(Some(by), Sense::unit_attention(0x29, 0x02));
    }
    /// Raise a unit attention for every nexus.
    pub fn unit_attention_all(&self, asc: u8, ascq: u8) {
        self.ua.raise(None, Sense::unit_attention(asc, ascq));
    }

    fn check(&self, s: &Sense) -> ScsiOutcome {
        ScsiOutcome::check(s, self.sense_format)
    }

    /// Execute one command (see the module doc for `mode`).
    pub fn execute(&self, req: &ScsiRequest<'_>, mode: IoMode) -> Result<ScsiOutcome, WouldBlock> {
        let cdb = req.cdb;
        let Some(&opcode) = cdb.first() else {
            return Ok(self.check(&Sense::illegal_request_invalid_opcode()));
        };
        let table = match self.kind {
            Kind::Disk(_) => opcodes::DISK,
            Kind::Controller => opcodes::CONTROLLER,
        };
        let sa = match opcode {
            op::SERVICE_ACTION_IN_16 | op::MAINTENANCE_IN => cdb.get(1).map(|b| b & 0x1f),
            _ => None,
        };
        // Commands that report or clear unit attentions run before the UA check
        // (SAM-5 §5.14: INQUIRY, REPORT LUNS and REQUEST SENSE are not refused).
        let Some(info) = opcodes::find(table, opcode, sa).filter(|c| self.offers(c)) else {
            if let Some(ua) = self.ua.take(req.nexus) {
                return Ok(self.check(&ua));
            }
            return Ok(self.check(
                &if sa.is_some() && table.iter().any(|c| c.opcode == opcode) {
                    Sense::invalid_cdb_field(1, Some(4))
                } else {
                    Sense::illegal_request_invalid_opcode()
                },
            ));
        };
        if cdb.len() < info.usage.len() {
            return Ok(self.check(&Sense::illegal_request_invalid_opcode()));
        }
        let cdb = &cdb[..info.usage.len()];
        let control = cdb[cdb.len() - 1];
        if !matches!(opcode, op::INQUIRY | op::REPORT_LUNS | op::REQUEST_SENSE) {
            if let Some(ua) = self.ua.take(req.nexus) {
                return Ok(self.check(&ua));
            }
        }
        if self.alua.enabled() {
            let state = self.alua.state(req.nexus.target_port);
            if let Some(s) = alua::check(state, opcode, sa) {
                return Ok(self.check(&s));
            }
        }
        if let Some(conflict) = self.pr.check(req.nexus, opcode) {
            return Ok(conflict);
        }
        // NACA (SAM-5 §5.10) is not supported; LINK is obsolete.
        if control & 0x05 != 0 {
            return Ok(self.check(&Sense::invalid_cdb_field(
                cdb.len() as u16 - 1,
                Some(if control & 4 != 0 { 2 } else { 0 }),
            )));
        }
        if let Some((byte, bit)) = opcodes::reserved_bit(info, cdb) {
            return Ok(self.check(&Sense::invalid_cdb_field(byte, Some(bit))));
        }
        let req = ScsiRequest { cdb, ..*req };
        match opcode {
            op::INQUIRY => Ok(spc::inquiry(self, &req)),
            op::REPORT_LUNS => Ok(spc::report_luns(self, &req)),
            op::REQUEST_SENSE => Ok(spc::request_sense(self, &req)),
            op::TEST_UNIT_READY => Ok(self
                .ready()
                .map(|_| ScsiOutcome::good(Bytes::new()))
                .unwrap_or_else(|s| self.check(&s))),
            op::PERSISTENT_RESERVE_IN => Ok(self.pr.prin(self, &req)),
            op::PERSISTENT_RESERVE_OUT => Ok(self.pr.prout(self, &req)),
            op::RESERVE_6 | op::RELEASE_6 | op::RESERVE_10 | op::RELEASE_10 => {
                Ok(self.pr.reserve_release(self, &req))
            }
            op::MAINTENANCE_IN if sa == Some(op::MI_REPORT_TARGET_PORT_GROUPS) => {
                Ok(spc::report_target_port_groups(self, &req))
            }
            op::MAINTENANCE_IN => Ok(spc::report_supported_opcodes(self, table, &req)),
            _ => match &self.kind {
                Kind::Disk(d) => sbc::execute(self, d, &req, mode),
                Kind::Controller => Ok(self.check(&Sense::illegal_request_invalid_opcode())),
            },
        }
    }

    /// NOT READY conditions: offline LUN (`online 0`) or stopped unit.
    fn ready(&self) -> std::result::Result<(), Sense> {
        if let Kind::Disk(d) = &self.kind {
            if !d.settings.online {
                return Err(Sense::not_ready_offline());
            }
            if d.stopped.load(Ordering::Relaxed) {
                return Err(Sense::not_ready_stopped());
            }
        }
        Ok(())
    }
}

/// The answer for a LUN number the target does not have (SPC-4 §4.6.20, SAM-5 §5.9.8):
/// INQUIRY says "not connected" (qualifier 011b, type 1Fh), REPORT LUNS and REQUEST
/// SENSE work, everything else is LOGICAL UNIT NOT SUPPORTED.
pub fn no_such_lun(req: &ScsiRequest<'_>) -> ScsiOutcome {
    let cdb = req.cdb;
    match cdb.first().copied() {
        Some(op::INQUIRY) if cdb.len() >= 6 && cdb[1] & 1 == 0 => {
            let mut b = vec![0u8; 36];
            b[0] = 0x7f;
            b[2] = 0x05;
            b[3] = 0x12;
            b[4] = 31;
            let alloc = hydra_proto::scsi::cdb::be16(cdb, 3) as usize;
            b.truncate(alloc);
            ScsiOutcome::good(b)
        }
        Some(op::REPORT_LUNS) if cdb.len() >= 12 => spc::report_luns_data(req),
        Some(op::REQUEST_SENSE) if cdb.len() >= 6 => {
            let s = Sense::lun_not_supported();
            let mut d = if cdb[1] & 1 != 0 {
                s.descriptor()
            } else {
                s.fixed()
            };
            d.truncate(cdb[4] as usize);
            ScsiOutcome::good(d)
        }
        _ => ScsiOutcome::check(&Sense::lun_not_supported(), SenseFormat::Fixed),
    }
}

#[cfg(test)]
mod tests;
