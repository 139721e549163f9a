//! Typed SCSI commands over a [`Session`] (SPC-4, SBC-3): what multipath, fencing and the
//! tools need, each checking its status and decoding its data.

use bytes::Bytes;

use crate::conn::Session;
use crate::session::{Command, Reply};
use crate::{Error, Result};

/// A command that did not end GOOD.
#[derive(Debug, Clone)]
pub struct Failed {
    pub status: u8,
    pub sense: Option<(u8, u8, u8)>,
}

/// GOOD, or the status and sense as an error.
fn good(r: Reply) -> Result<Reply, Failed> {
    if r.status == 0 {
        Ok(r)
    } else {
        Err(Failed {
            status: r.status,
            sense: r.sense_key(),
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

    /// TEST UNIT READY until no unit attention is pending (at most 8 tries).
    pub async fn test_unit_ready(&self, lun: u64) -> Result<Result<(), Failed>> {
        let mut last = None;
        for _ in 0..8 {
            match self.scsi(lun, &[0; 6], Bytes::new(), 0).await? {
                Ok(_) => return Ok(Ok(())),
                Err(f) if f.sense.is_some_and(|s| s.0 == 0x06) => last = Some(f),
                Err(f) => return Ok(Err(f)),
            }
        }
        Ok(Err(last.expect("eight unit attentions")))
    }

    /// READ CAPACITY(16): (number of blocks, block size).
    pub async fn read_capacity(&self, lun: u64) -> Result<Result<(u64, u32), Failed>> {
        let mut c = [0u8; 16];
        c[0] = 0x9e;
        c[1] = 0x10;
        c[13] = 32;
        Ok(self.scsi(lun, &c, Bytes::new(), 32).await?.and_then(|r| {
            if r.data.len() < 12 {
                return Err(Failed {
                    status: 0,
                    sense: None,
                });
            }
            let last = u64::from_be_bytes(r.data[0..8].try_into().expect("8"));
            let bs = u32::from_be_bytes(r.data[8..12].try_into().expect("4"));
            Ok((last + 1, bs))
        }))
    }

    /// READ(16) of `blocks` blocks of `block_size` bytes.
    pub async fn read16(
        &self,
        lun: u64,
        lba: u64,
        blocks: u32,
        block_size: u32,
    ) -> Result<Result<Bytes, Failed>> {
        let mut c = [0u8; 16];
        c[0] = 0x88;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
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
        let mut c = [0u8; 16];
        c[0] = 0x8a;
        c[1] = if fua { 0x08 } else { 0 };
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&((data.len() / block_size as usize) as u32).to_be_bytes());
        Ok(self.scsi(lun, &c, data, 0).await?.map(|_| ()))
    }

    /// REPORT LUNS: the LUN numbers (peripheral and flat addressing decoded).
    pub async fn report_luns(&self) -> Result<Result<Vec<u64>, Failed>> {
        let mut c = [0u8; 12];
        c[0] = 0xa0;
        c[6..10].copy_from_slice(&4096u32.to_be_bytes());
        Ok(self.scsi(0, &c, Bytes::new(), 4096).await?.map(|r| {
            let n = r
                .data
                .get(0..4)
                .map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4")) as usize);
            r.data[8.min(r.data.len())..(8 + n).min(r.data.len())]
                .chunks_exact(8)
                .map(|e| (u16::from_be_bytes([e[0], e[1]]) & 0x3fff) as u64)
                .collect()
        }))
    }

    /// SYNCHRONIZE CACHE (16) of the whole LUN (SBC-3 §5.23): the target writes back
    /// what it cached before answering.
    pub async fn synchronize_cache(&self, lun: u64) -> Result<Result<(), Failed>> {
        let mut c = [0u8; 16];
        c[0] = 0x91;
        Ok(self.scsi(lun, &c, Bytes::new(), 0).await?.map(|_| ()))
    }

    /// INQUIRY (standard data, or the VPD page `page`).
    pub async fn inquiry(&self, lun: u64, page: Option<u8>) -> Result<Result<Bytes, Failed>> {
        let c = [0x12, page.is_some() as u8, page.unwrap_or(0), 0x01, 0x00, 0];
        Ok(self.scsi(lun, &c, Bytes::new(), 256).await?.map(|r| r.data))
    }

    /// The WWID Linux (udev's scsi_id) gives this LUN; see [`crate::wwid`].
    pub async fn wwid(&self, lun: u64) -> Result<Result<Option<String>, Failed>> {
        let std = match self.inquiry(lun, None).await? {
            Ok(d) => d,
            Err(f) => return Ok(Err(f)),
        };
        let p83 = self.inquiry(lun, Some(0x83)).await?.unwrap_or_default();
        let p80 = self.inquiry(lun, Some(0x80)).await?.ok();
        Ok(Ok(crate::wwid::wwid(&p83, p80.as_deref(), &std)))
    }

    /// PERSISTENT RESERVE OUT (SPC-4 §6.16) with the basic parameter list: service
    /// action `sa`, reservation type `rtype`, keys, and APTPL.
    pub async fn persistent_reserve_out(
        &self,
        lun: u64,
        sa: u8,
        rtype: u8,
        key: u64,
        sa_key: u64,
        aptpl: bool,
    ) -> Result<Result<(), Failed>> {
        let mut p = vec![0u8; 24];
        p[0..8].copy_from_slice(&key.to_be_bytes());
        p[8..16].copy_from_slice(&sa_key.to_be_bytes());
        p[20] = aptpl as u8;
        let c = [0x5f, sa & 0x1f, rtype & 0x0f, 0, 0, 0, 0, 0, 24, 0];
        Ok(self.scsi(lun, &c, p.into(), 0).await?.map(|_| ()))
    }

    /// PERSISTENT RESERVE IN, READ KEYS: (generation, registered keys).
    pub async fn read_keys(&self, lun: u64) -> Result<Result<(u32, Vec<u64>), Failed>> {
        let c = [0x5e, 0, 0, 0, 0, 0, 0, 0x20, 0, 0];
        Ok(self.scsi(lun, &c, Bytes::new(), 8192).await?.map(|r| {
            let d = &r.data;
            let gen = d
                .get(0..4)
                .map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4")));
            let n = d
                .get(4..8)
                .map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4")) as usize);
            let keys = d[8.min(d.len())..(8 + n).min(d.len())]
                .chunks_exact(8)
                .map(|k| u64::from_be_bytes(k.try_into().expect("8")))
                .collect();
            (gen, keys)
        }))
    }

    /// PERSISTENT RESERVE IN, READ RESERVATION: the holder's key and the type, if any.
    pub async fn read_reservation(&self, lun: u64) -> Result<Result<Option<(u64, u8)>, Failed>> {
        let c = [0x5e, 1, 0, 0, 0, 0, 0, 0, 64, 0];
        Ok(self.scsi(lun, &c, Bytes::new(), 64).await?.map(|r| {
            let d = &r.data;
            (d.len() >= 24 && d[4..8] != [0, 0, 0, 0]).then(|| {
                (
                    u64::from_be_bytes(d[8..16].try_into().expect("8")),
                    d[21] & 0x0f,
                )
            })
        }))
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
        let mut c = [0u8; 16];
        c[0] = 0x89;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[13] = blocks as u8;
        let mut data = verify.to_vec();
        data.extend_from_slice(write);
        Ok(self.scsi(lun, &c, data.into(), 0).await?.map(|_| ()))
    }

    /// UNMAP (SBC-3 §5.28) of `(lba, blocks)` ranges.
    pub async fn unmap(&self, lun: u64, ranges: &[(u64, u32)]) -> Result<Result<(), Failed>> {
        let p = hydra_proto::scsi::unmap::parameter_list(ranges);
        let l = (p.len() as u16).to_be_bytes();
        let c = [0x42, 0, 0, 0, 0, 0, 0, l[0], l[1], 0];
        Ok(self.scsi(lun, &c, p.into(), 0).await?.map(|_| ()))
    }

    /// REPORT TARGET PORT GROUPS (SPC-4 §6.37): (group id, asymmetric access state).
    pub async fn report_target_port_groups(
        &self,
        lun: u64,
    ) -> Result<Result<Vec<(u16, u8)>, Failed>> {
        let mut c = [0u8; 12];
        c[0] = 0xa3;
        c[1] = 0x0a;
        c[6..10].copy_from_slice(&4096u32.to_be_bytes());
        Ok(self.scsi(lun, &c, Bytes::new(), 4096).await?.map(|r| {
            let d = &r.data;
            let end = d
                .get(0..4)
                .map_or(0, |b| {
                    u32::from_be_bytes(b.try_into().expect("4")) as usize + 4
                })
                .min(d.len());
            let mut out = Vec::new();
            let mut at = 4;
            while at + 8 <= end {
                let ports = d[at + 7] as usize;
                out.push((u16::from_be_bytes([d[at + 2], d[at + 3]]), d[at] & 0x0f));
                at += 8 + 4 * ports;
            }
            out
        }))
    }
}
