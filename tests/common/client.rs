//! A small blocking iSCSI initiator for integration tests: one normal session over one
//! connection, no authentication, no digests, one command at a time. It talks to the
//! real daemon (it is a test driver, not a stand-in for a target) where libiscsi's
//! command-line tools cannot: commands they do not send (COMPARE AND WRITE, PERSISTENT
//! RESERVE) and several commands on one session across admin changes.
//!
//! Built on hydra-proto's PDU types, so it also exercises them from the initiator side.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hydra_proto::pdu::{
    DataIn, DataOut, LoginRequest, LoginStage, LoginStatus, LogoutRequest, Pdu, R2t, Repr,
    ScsiCommand, TaskAttr,
};

/// What a command came back with.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u8,
    /// Sense data (without the 2-byte SenseLength).
    pub sense: Vec<u8>,
    pub data: Vec<u8>,
}

impl Reply {
    /// (sense key, ASC, ASCQ) of fixed-format sense, or zeros.
    pub fn sense_triplet(&self) -> (u8, u8, u8) {
        if self.sense.len() >= 14 {
            (self.sense[2] & 0x0f, self.sense[12], self.sense[13])
        } else {
            (0, 0, 0)
        }
    }
}

pub struct Session {
    stream: TcpStream,
    itt: u32,
    cmd_sn: u32,
    exp_stat_sn: u32,
    /// The target's MaxRecvDataSegmentLength (our Data-Out PDU limit).
    target_mrdsl: usize,
    pub tsih: u16,
}

fn read_pdu(s: &mut TcpStream) -> std::io::Result<(Pdu, Vec<u8>)> {
    let mut bhs = [0u8; 48];
    s.read_exact(&mut bhs)?;
    let ahs = bhs[4] as usize * 4;
    let dlen = (bhs[5] as usize) << 16 | (bhs[6] as usize) << 8 | bhs[7] as usize;
    let mut rest = vec![0u8; ahs + dlen.div_ceil(4) * 4];
    s.read_exact(&mut rest)?;
    let pdu = Pdu::parse(&bhs)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    Ok((pdu, rest[ahs..ahs + dlen].to_vec()))
}

fn write_pdu(s: &mut TcpStream, bhs: [u8; 48], data: &[u8]) -> std::io::Result<()> {
    let mut buf = bhs.to_vec();
    buf.extend_from_slice(data);
    buf.resize(48 + data.len().div_ceil(4) * 4, 0);
    s.write_all(&buf)
}

fn keys(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    hydra_proto::text::emit(pairs, &mut v);
    v
}

impl Session {
    /// Log in to `target` on 127.0.0.1:`port` as initiator port `name` + `isid`.
    pub fn login(port: u16, target: &str, name: &str, isid: [u8; 6]) -> Result<Session, String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let mut offer = keys(&[
            ("InitiatorName", name),
            ("TargetName", target),
            ("SessionType", "Normal"),
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("ImmediateData", "Yes"),
            ("InitialR2T", "Yes"),
            ("MaxRecvDataSegmentLength", "262144"),
            ("FirstBurstLength", "65536"),
            ("MaxBurstLength", "1048576"),
            ("ErrorRecoveryLevel", "0"),
        ]);
        let mut target_mrdsl = 8192;
        let mut exp_stat_sn = 0;
        for round in 0..8u32 {
            let req = LoginRequest {
                transit: true,
                cont: false,
                csg: LoginStage::Operational,
                nsg: LoginStage::FullFeature,
                version_max: 0,
                version_min: 0,
                isid,
                tsih: 0,
                itt: round,
                cid: 0,
                cmd_sn: 0,
                exp_stat_sn,
            };
            write_pdu(&mut stream, req.emit(offer.len()), &offer).map_err(|e| e.to_string())?;
            offer.clear();
            let (pdu, data) = read_pdu(&mut stream).map_err(|e| format!("login: {e}"))?;
            let Pdu::LoginResponse(r) = pdu else {
                return Err(format!("login: unexpected {:?}", pdu.opcode()));
            };
            if r.status != LoginStatus::SUCCESS {
                return Err(format!("login refused: {:?}", r.status));
            }
            exp_stat_sn = r.stat_sn.wrapping_add(1);
            for (k, v) in hydra_proto::text::parse(&data).map_err(|e| e.to_string())? {
                if k == "MaxRecvDataSegmentLength" {
                    target_mrdsl = v.parse().unwrap_or(8192);
                }
            }
            if r.transit && r.nsg == LoginStage::FullFeature {
                return Ok(Session {
                    stream,
                    itt: 0x100,
                    cmd_sn: 0,
                    exp_stat_sn,
                    target_mrdsl,
                    tsih: r.tsih,
                });
            }
        }
        Err("login did not reach full feature phase".into())
    }

    /// Run one command on `lun`: `data_out` is written (immediate data, then Data-Out on
    /// R2T), up to `read_len` bytes are read.
    pub fn command(
        &mut self,
        lun: u64,
        cdb: &[u8],
        data_out: &[u8],
        read_len: u32,
    ) -> Result<Reply, String> {
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        self.itt = self.itt.wrapping_add(1);
        let itt = self.itt;
        let lun_field = (lun & 0x3fff) << 48 | if lun > 255 { 1 << 62 } else { 0 };
        let immediate = data_out.len().min(self.target_mrdsl).min(65536);
        let cmd = ScsiCommand {
            immediate: false,
            final_: true,
            read: read_len > 0,
            write: !data_out.is_empty(),
            attr: TaskAttr::Simple,
            lun: lun_field,
            itt,
            edtl: if data_out.is_empty() {
                read_len
            } else {
                data_out.len() as u32
            },
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb: c,
        };
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        write_pdu(
            &mut self.stream,
            cmd.emit(immediate),
            &data_out[..immediate],
        )
        .map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        loop {
            let (pdu, seg) = read_pdu(&mut self.stream).map_err(|e| format!("reply: {e}"))?;
            match pdu {
                Pdu::R2t(R2t {
                    ttt,
                    buffer_offset,
                    desired_len,
                    ..
                }) => {
                    let (start, end) = (
                        buffer_offset as usize,
                        (buffer_offset + desired_len) as usize,
                    );
                    let mut at = start;
                    let mut data_sn = 0;
                    while at < end.min(data_out.len()) {
                        let n = (end - at).min(self.target_mrdsl);
                        let d = DataOut {
                            final_: at + n >= end,
                            lun: lun_field,
                            itt,
                            ttt,
                            exp_stat_sn: self.exp_stat_sn,
                            data_sn,
                            buffer_offset: at as u32,
                        };
                        write_pdu(&mut self.stream, d.emit(n), &data_out[at..at + n])
                            .map_err(|e| e.to_string())?;
                        at += n;
                        data_sn += 1;
                    }
                }
                Pdu::DataIn(DataIn {
                    buffer_offset,
                    status,
                    stat_sn,
                    ..
                }) => {
                    let at = buffer_offset as usize;
                    if data.len() < at + seg.len() {
                        data.resize(at + seg.len(), 0);
                    }
                    data[at..at + seg.len()].copy_from_slice(&seg);
                    if let Some(status) = status {
                        self.exp_stat_sn = stat_sn.wrapping_add(1);
                        return Ok(Reply {
                            status,
                            sense: Vec::new(),
                            data,
                        });
                    }
                }
                Pdu::ScsiResponse(r) => {
                    self.exp_stat_sn = r.stat_sn.wrapping_add(1);
                    let sense = if seg.len() >= 2 {
                        let n = (seg[0] as usize) << 8 | seg[1] as usize;
                        seg[2..(2 + n).min(seg.len())].to_vec()
                    } else {
                        Vec::new()
                    };
                    return Ok(Reply {
                        status: r.status,
                        sense,
                        data,
                    });
                }
                Pdu::NopIn(_) | Pdu::AsyncMessage(_) => {}
                other => return Err(format!("unexpected {:?}", other.opcode())),
            }
        }
    }

    /// Run `cdb` until it does not return a unit attention (at most 8 times).
    pub fn command_past_ua(
        &mut self,
        lun: u64,
        cdb: &[u8],
        data_out: &[u8],
        read_len: u32,
    ) -> Result<Reply, String> {
        for _ in 0..8 {
            let r = self.command(lun, cdb, data_out, read_len)?;
            if !(r.status == 0x02 && r.sense_triplet().0 == 0x06) {
                return Ok(r);
            }
        }
        Err("unit attentions did not stop".into())
    }

    /// Log out cleanly.
    pub fn logout(mut self) -> Result<(), String> {
        self.itt = self.itt.wrapping_add(1);
        let req = LogoutRequest {
            immediate: true,
            reason: 0,
            itt: self.itt,
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        write_pdu(&mut self.stream, req.emit(0), &[]).map_err(|e| e.to_string())?;
        match read_pdu(&mut self.stream).map_err(|e| e.to_string())? {
            (Pdu::LogoutResponse(_), _) => Ok(()),
            (p, _) => Err(format!("logout: unexpected {:?}", p.opcode())),
        }
    }
}
