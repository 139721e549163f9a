//! Typed SCSI commands over a [`Session`] (SPC-4, SBC-3): what multipath, fencing and the
//! tools need, each checking its status and decoding its data. CDBs and data formats
//! come from `hydra_proto::scsi`, the same types the target answers with.
//!
//! Every call returns `Result<Result<T, Failed>>`: the outer error is the transport (or a
//! target answer that does not parse), the inner one a SCSI status other than GOOD.
//!
//! Persistent reservations, as fence_scsi uses them (SPC-4 §5.13): each node registers
//! its key ([`Session::pr_register`] or [`Session::pr_register_and_ignore`]), one holds a
//! Write Exclusive - Registrants Only reservation ([`Session::pr_reserve`]), and fencing a
//! node is [`Session::pr_preempt`] with abort of its key; [`Session::read_keys`],
//! [`Session::read_reservation`] and [`Session::read_full_status`] show the state.

use bytes::Bytes;
use hydra_proto::scsi::alua::{RtpgCdb, TargetPortGroups};
use hydra_proto::scsi::capacity::Capacity16;
use hydra_proto::scsi::cdb::{self, BlockCdb};
use hydra_proto::scsi::pr::{
    FullStatus, InAction, InCdb, OutAction, OutCdb, OutParams, PrType, ReadKeys, ReadReservation,
    ReportCapabilities, ReservationDescriptor,
};
use hydra_proto::scsi::report_luns::ReportLuns;
use hydra_proto::scsi::sense::key;
use hydra_proto::scsi::{status, unmap, vpd, Opcode, Sense};

use crate::conn::Session;
use crate::session::{Command, Reply};
use crate::{Error, Result};

/// A command that did not end GOOD.
#[derive(Debug, Clone)]
pub struct Failed {
    pub status: u8,
    /// Its sense data, when it came with readable sense data.
    pub sense: Option<Sense>,
}

impl Failed {
    /// (sense key, ASC, ASCQ), if there was sense data.
    pub fn sense_key(&self) -> Option<(u8, u8, u8)> {
        self.sense.as_ref().map(|s| (s.key, s.asc, s.ascq))
    }

    /// RESERVATION CONFLICT: another node holds the reservation (or this one was
    /// preempted).
    pub fn is_reservation_conflict(&self) -> bool {
        self.status == status::RESERVATION_CONFLICT
    }
}

/// GOOD, or the status and sense as an error.
fn good(r: Reply) -> Result<Reply, Failed> {
    if r.status == status::GOOD {
        Ok(r)
    } else {
        Err(Failed {
            status: r.status,
            sense: r.sense(),
        })
    }
}

fn cmd(lun: u64, cdb: &[u8], data_out: Bytes, read_len: u32) -> Command {
    Command {
        lun,
        cdb: cdb.to_vec(),
        data_out,
        read_len,
    }
}

/// Largest PERSISTENT RESERVE IN allocation length (the field is 16 bits).
const PRIN_ALLOC: u16 = u16::MAX;
/// Allocation length for REPORT LUNS and REPORT TARGET PORT GROUPS answers.
const LIST_ALLOC: u32 = 64 * 1024;

impl Session {
    /// Run a command; transport errors are `Err`, SCSI errors `Ok(Err(..))`.
    pub async fn scsi(
        &self,
        lun: u64,
        cdb: &[u8],
        data_out: Bytes,
        read_len: u32,
    ) -> Result<Result<Reply, Failed>> {
        Ok(good(self.execute(cmd(lun, cdb, data_out, read_len)).await?))
    }

    /// Run a command that returns data and decode it with `parse`; data that does not
    /// parse is the target's fault (an `Err`).
    async fn read_data<T>(
        &self,
        lun: u64,
        cdb: &[u8],
        read_len: u32,
        parse: impl FnOnce(&[u8]) -> hydra_proto::Result<T>,
    ) -> Result<Result<T, Failed>> {
        match self.scsi(lun, cdb, Bytes::new(), read_len).await? {
            Ok(r) => Ok(Ok(parse(&r.data)?)),
            Err(f) => Ok(Err(f)),
        }
    }

    /// Run a command without data in.
    async fn no_data(&self, lun: u64, cdb: &[u8], data_out: Bytes) -> Result<Result<(), Failed>> {
        Ok(self.scsi(lun, cdb, data_out, 0).await?.map(|_| ()))
    }

    /// TEST UNIT READY until no unit attention is pending (at most 8 tries).
    pub async fn test_unit_ready(&self, lun: u64) -> Result<Result<(), Failed>> {
        let mut last = None;
        for _ in 0..8 {
            match self
                .scsi(lun, &cdb::TEST_UNIT_READY, Bytes::new(), 0)
                .await?
            {
                Ok(_) => return Ok(Ok(())),
                Err(f) if f.sense_key().is_some_and(|s| s.0 == key::UNIT_ATTENTION) => {
                    last = Some(f)
                }
                Err(f) => return Ok(Err(f)),
            }
        }
        Ok(Err(last.expect("eight unit attentions")))
    }

    /// READ CAPACITY(16): (number of blocks, block size).
    pub async fn read_capacity(&self, lun: u64) -> Result<Result<(u64, u32), Failed>> {
        let len = Capacity16::LEN as u32;
        self.read_data(lun, &cdb::read_capacity16(len), len, |d| {
            Capacity16::parse(d).map(|c| (c.blocks(), c.block_size))
        })
        .await
    }

    /// READ(16) of `blocks` blocks of `block_size` bytes.
    pub async fn read16(
        &self,
        lun: u64,
        lba: u64,
        blocks: u32,
        block_size: u32,
    ) -> Result<Result<Bytes, Failed>> {
        let c = BlockCdb::new(lba, blocks).emit16(Opcode::Read16);
        Ok(self
            .scsi(lun, &c, Bytes::new(), blocks * block_size)
            .await?
            .map(|r| r.data))
    }

    /// WRITE(16) of `data` (whole blocks), with FUA if asked.
    pub async fn write16(
        &self,
        lun: u64,
        lba: u64,
        data: Bytes,
        block_size: u32,
        fua: bool,
    ) -> Result<Result<(), Failed>> {
        if !data.len().is_multiple_of(block_size as usize) {
            return Err(Error::Protocol(format!(
                "write of {} bytes is not whole {block_size}-byte blocks",
                data.len()
            )));
        }
        let blocks = (data.len() / block_size as usize) as u32;
        let c = BlockCdb {
            fua,
            ..BlockCdb::new(lba, blocks)
        }
        .emit16(Opcode::Write16);
        self.no_data(lun, &c, data).await
    }

    /// REPORT LUNS: the LUN numbers (peripheral and flat addressing).
    pub async fn report_luns(&self) -> Result<Result<Vec<u64>, Failed>> {
        let c = cdb::report_luns(0, LIST_ALLOC);
        self.read_data(0, &c, LIST_ALLOC, |d| ReportLuns::parse(d).map(|r| r.luns))
            .await
    }

    /// SYNCHRONIZE CACHE (16) of the whole LUN (SBC-3 §5.23): the target writes back
    /// what it cached before answering.
    pub async fn synchronize_cache(&self, lun: u64) -> Result<Result<(), Failed>> {
        let c = BlockCdb::new(0, 0).emit16(Opcode::SynchronizeCache16);
        self.no_data(lun, &c, Bytes::new()).await
    }

    /// INQUIRY (standard data, or the VPD page `page`).
    pub async fn inquiry(&self, lun: u64, page: Option<u8>) -> Result<Result<Bytes, Failed>> {
        let c = vpd::inquiry_cdb(page, 256);
        Ok(self.scsi(lun, &c, Bytes::new(), 256).await?.map(|r| r.data))
    }

    /// The Device Identification VPD page (SPC-4 §7.8.6): the LUN's designators, and
    /// with ALUA the target port's.
    pub async fn device_identification(
        &self,
        lun: u64,
    ) -> Result<Result<vpd::DeviceIdPage, Failed>> {
        let c = vpd::inquiry_cdb(Some(vpd::page::DEVICE_ID), 256);
        self.read_data(lun, &c, 256, vpd::DeviceIdPage::parse).await
    }

    /// The WWID Linux (udev's scsi_id) gives this LUN; see [`crate::wwid`].
    pub async fn wwid(&self, lun: u64) -> Result<Result<Option<String>, Failed>> {
        let std = match self.inquiry(lun, None).await? {
            Ok(d) => d,
            Err(f) => return Ok(Err(f)),
        };
        let p83 = self
            .inquiry(lun, Some(vpd::page::DEVICE_ID))
            .await?
            .unwrap_or_default();
        let p80 = self.inquiry(lun, Some(vpd::page::UNIT_SERIAL)).await?.ok();
        Ok(Ok(crate::wwid::wwid(&p83, p80.as_deref(), &std)))
    }

    /// PERSISTENT RESERVE OUT (SPC-4 §6.16) of `action` with reservation type `rtype`
    /// (ignored by the actions that take none) and the basic parameter list `params`.
    pub async fn persistent_reserve_out(
        &self,
        lun: u64,
        action: OutAction,
        rtype: PrType,
        params: &OutParams,
    ) -> Result<Result<(), Failed>> {
        let p = params.emit();
        let c = OutCdb::new(action, rtype, p.len() as u32).emit();
        self.no_data(lun, &c, p.into()).await
    }

    /// REGISTER (SPC-4 §5.13.7): register `new_key` (the current key `old_key`, 0 when
    /// not registered), or with `new_key` 0 unregister. APTPL keeps the registrations
    /// across a target restart.
    pub async fn pr_register(
        &self,
        lun: u64,
        old_key: u64,
        new_key: u64,
        aptpl: bool,
    ) -> Result<Result<(), Failed>> {
        let p = OutParams {
            key: old_key,
            sa_key: new_key,
            aptpl,
            ..OutParams::default()
        };
        let t = PrType::Unknown(0);
        self.persistent_reserve_out(lun, OutAction::Register, t, &p)
            .await
    }

    /// REGISTER AND IGNORE EXISTING KEY: register `new_key` whatever this I_T nexus
    /// had (how fence_scsi registers, so that a restarted node needs no old key).
    pub async fn pr_register_and_ignore(
        &self,
        lun: u64,
        new_key: u64,
        aptpl: bool,
    ) -> Result<Result<(), Failed>> {
        let p = OutParams {
            sa_key: new_key,
            aptpl,
            ..OutParams::default()
        };
        let (a, t) = (OutAction::RegisterAndIgnoreExistingKey, PrType::Unknown(0));
        self.persistent_reserve_out(lun, a, t, &p).await
    }

    /// A PR OUT whose parameter list is only the sender's key and a second key.
    async fn pr_keys(
        &self,
        lun: u64,
        action: OutAction,
        rtype: PrType,
        key: u64,
        sa_key: u64,
    ) -> Result<Result<(), Failed>> {
        let p = OutParams {
            key,
            sa_key,
            ..OutParams::default()
        };
        self.persistent_reserve_out(lun, action, rtype, &p).await
    }

    /// RESERVE (SPC-4 §5.13.9): take a reservation of `rtype` with registered `key`.
    pub async fn pr_reserve(
        &self,
        lun: u64,
        key: u64,
        rtype: PrType,
    ) -> Result<Result<(), Failed>> {
        self.pr_keys(lun, OutAction::Reserve, rtype, key, 0).await
    }

    /// RELEASE (SPC-4 §5.13.11.2) of the reservation of `rtype` this nexus holds.
    pub async fn pr_release(
        &self,
        lun: u64,
        key: u64,
        rtype: PrType,
    ) -> Result<Result<(), Failed>> {
        self.pr_keys(lun, OutAction::Release, rtype, key, 0).await
    }

    /// CLEAR (SPC-4 §5.13.11.2.6): remove every registration and the reservation.
    pub async fn pr_clear(&self, lun: u64, key: u64) -> Result<Result<(), Failed>> {
        let t = PrType::Unknown(0);
        self.pr_keys(lun, OutAction::Clear, t, key, 0).await
    }

    /// PREEMPT (SPC-4 §5.13.11.4): remove the registrations of `victim`, taking the
    /// reservation (as `rtype`) if the victim held it. With `abort`, PREEMPT AND ABORT:
    /// the victim's commands in flight are aborted too — how fence_scsi fences a node.
    pub async fn pr_preempt(
        &self,
        lun: u64,
        key: u64,
        victim: u64,
        rtype: PrType,
        abort: bool,
    ) -> Result<Result<(), Failed>> {
        let action = if abort {
            OutAction::PreemptAndAbort
        } else {
            OutAction::Preempt
        };
        self.pr_keys(lun, action, rtype, key, victim).await
    }

    /// PERSISTENT RESERVE IN of `action`, decoded with `parse`.
    async fn prin<T>(
        &self,
        lun: u64,
        action: InAction,
        parse: impl FnOnce(&[u8]) -> hydra_proto::Result<T>,
    ) -> Result<Result<T, Failed>> {
        let c = InCdb {
            action,
            alloc_len: PRIN_ALLOC,
        }
        .emit();
        self.read_data(lun, &c, PRIN_ALLOC as u32, parse).await
    }

    /// READ KEYS (SPC-4 §6.15.2): the generation and every registered key.
    pub async fn read_keys(&self, lun: u64) -> Result<Result<ReadKeys, Failed>> {
        self.prin(lun, InAction::ReadKeys, ReadKeys::parse).await
    }

    /// READ RESERVATION (SPC-4 §6.15.3): the reservation, if any (key 0 for the
    /// all-registrants types).
    pub async fn read_reservation(
        &self,
        lun: u64,
    ) -> Result<Result<Option<ReservationDescriptor>, Failed>> {
        self.prin(lun, InAction::ReadReservation, |d| {
            ReadReservation::parse(d).map(|r| r.reservation)
        })
        .await
    }

    /// REPORT CAPABILITIES (SPC-4 §6.15.4).
    pub async fn report_capabilities(
        &self,
        lun: u64,
    ) -> Result<Result<ReportCapabilities, Failed>> {
        self.prin(lun, InAction::ReportCapabilities, ReportCapabilities::parse)
            .await
    }

    /// READ FULL STATUS (SPC-4 §6.15.5): every registration with its initiator port
    /// and target port, and which one holds the reservation.
    pub async fn read_full_status(&self, lun: u64) -> Result<Result<FullStatus, Failed>> {
        self.prin(lun, InAction::ReadFullStatus, FullStatus::parse)
            .await
    }

    /// COMPARE AND WRITE (SBC-3 §5.2) of `verify.len()` bytes at `lba`.
    pub async fn compare_and_write(
        &self,
        lun: u64,
        lba: u64,
        verify: &[u8],
        write: &[u8],
        block_size: u32,
    ) -> Result<Result<(), Failed>> {
        let blocks = verify.len() / block_size as usize;
        if verify.len() != write.len()
            || blocks == 0
            || blocks > 255
            || !verify.len().is_multiple_of(block_size as usize)
        {
            return Err(Error::Protocol(
                "COMPARE AND WRITE needs equal verify and write buffers of 1 to 255 whole blocks"
                    .into(),
            ));
        }
        let c = cdb::compare_and_write(lba, blocks as u8, false);
        let mut data = verify.to_vec();
        data.extend_from_slice(write);
        self.no_data(lun, &c, data.into()).await
    }

    /// UNMAP (SBC-3 §5.28) of `(lba, blocks)` ranges.
    pub async fn unmap(&self, lun: u64, ranges: &[(u64, u32)]) -> Result<Result<(), Failed>> {
        let p = unmap::parameter_list(ranges);
        let c = cdb::unmap(p.len() as u16);
        self.no_data(lun, &c, p.into()).await
    }

    /// REPORT TARGET PORT GROUPS (SPC-4 §6.37): every target port group of the LUN with
    /// its access state and ports (length-only format).
    pub async fn report_target_port_groups(
        &self,
        lun: u64,
    ) -> Result<Result<TargetPortGroups, Failed>> {
        let c = RtpgCdb {
            extended: false,
            alloc_len: LIST_ALLOC,
        }
        .emit();
        self.read_data(lun, &c, LIST_ALLOC, |d| TargetPortGroups::parse(d, false))
            .await
    }
}
