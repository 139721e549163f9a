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
}
