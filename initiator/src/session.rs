//! The initiator's full feature phase, sans-IO (RFC 7143 §3, §11): commands go out in
//! CmdSN order as the target's window (ExpCmdSN..MaxCmdSN) allows; writes carry
//! immediate data and unsolicited Data-Out as negotiated and the rest on R2T; Data-In is
//! assembled at its buffer offsets; a SCSI Response (or Data-In with status) completes
//! the command. Anything the target sends that does not fit (unknown ITT, data past the
//! buffer, a bad header) is a protocol error: at ErrorRecoveryLevel 0 the connection is
//! dropped and the driver reconnects.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use hydra_proto::framing::{Digests, Frame, OutQueue};
use hydra_proto::negotiate::SessionParams;
use hydra_proto::pdu::{
    DataIn, DataOut, LogoutRequest, NopIn, NopOut, Pdu, R2t, Repr, ScsiCommand, ScsiResponse,
    TaskAttr, RESERVED_TAG,
};
use hydra_proto::scsi::encode_lun;
use hydra_proto::serial::Sn;

use crate::{Error, Result};

/// One SCSI command.
#[derive(Debug, Clone)]
pub struct Command {
    pub lun: u64,
    pub cdb: Vec<u8>,
    /// Data to write (empty for none).
    pub data_out: Bytes,
    /// Most bytes to read (0 for none).
    pub read_len: u32,
}

/// How a command ended.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u8,
    /// Sense data (without its 2-byte length), empty when none.
    pub sense: Vec<u8>,
    pub data: Bytes,
    /// Residual underflow/overflow count (RFC 7143 §11.4.5).
    pub residual: u32,
}

impl Reply {
    /// (sense key, ASC, ASCQ) of its sense data.
    pub fn sense_key(&self) -> Option<(u8, u8, u8)> {
        sense_key(&self.sense)
    }
}

/// (sense key, ASC, ASCQ) of fixed or descriptor format sense data (SPC-4 §4.5).
pub fn sense_key(s: &[u8]) -> Option<(u8, u8, u8)> {
    match s.first().map(|b| b & 0x7f) {
        Some(0x70 | 0x71) if s.len() >= 14 => Some((s[2] & 0x0f, s[12], s[13])),
        Some(0x72 | 0x73) if s.len() >= 4 => Some((s[1] & 0x0f, s[2], s[3])),
        _ => None,
    }
}

struct Task {
    cmd: Command,
    data_in: BytesMut,
}

pub struct Core {
    params: SessionParams,
    digests: Digests,
    cmd_sn: u32,
    exp_cmd_sn: u32,
    max_cmd_sn: u32,
    exp_stat_sn: u32,
    next_itt: u32,
    /// Waiting for the CmdSN window.
    queued: VecDeque<(u32, Command)>,
    tasks: HashMap<u32, Task>,
    out: OutQueue,
}

impl Core {
    pub fn new(params: SessionParams, exp_stat_sn: u32, exp_cmd_sn: u32, max_cmd_sn: u32) -> Core {
        let digests = Digests {
            header: params.header_digest,
            data: params.data_digest,
        };
        Core {
            params,
            digests,
            cmd_sn: exp_cmd_sn,
            exp_cmd_sn,
            max_cmd_sn,
            exp_stat_sn,
            next_itt: 1,
            queued: VecDeque::new(),
            tasks: HashMap::new(),
            out: OutQueue::default(),
        }
    }

    pub fn digests(&self) -> Digests {
        self.digests
    }

    /// The most the target may send us in one PDU.
    pub fn max_recv(&self) -> usize {
        self.params.max_recv_data_segment_length as usize
    }

    /// Queue a command; returns its ITT.
    pub fn submit(&mut self, cmd: Command) -> u32 {
        let itt = self.alloc_itt();
        self.queued.push_back((itt, cmd));
        self.issue();
        itt
    }

    /// A fresh Initiator Task Tag (never the reserved 0xffffffff).
    fn alloc_itt(&mut self) -> u32 {
        let itt = self.next_itt;
        self.next_itt = self.next_itt.wrapping_add(1);
        if self.next_itt == RESERVED_TAG {
            self.next_itt = 1;
        }
        itt
    }

    /// Commands sent or queued and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.queued.len() + self.tasks.len()
    }

    /// Everything to write, as buffers for one vectored write.
    pub fn take_output(&mut self) -> Vec<Bytes> {
        self.out.take()
    }

    /// Send what the CmdSN window allows (RFC 7143 §4.2.2.1).
    fn issue(&mut self) {
        while !self.queued.is_empty()
            && Sn(self.cmd_sn).in_window(Sn(self.exp_cmd_sn), Sn(self.max_cmd_sn))
        {
            let (itt, cmd) = self.queued.pop_front().expect("non-empty");
            self.send_command(itt, cmd);
        }
    }

    fn send_command(&mut self, itt: u32, cmd: Command) {
        let mut cdb = [0u8; 16];
        let n = cmd.cdb.len().min(16);
        cdb[..n].copy_from_slice(&cmd.cdb[..n]);
        let write_len = cmd.data_out.len();
        let max_xmit = self.params.max_xmit_data_segment_length as usize;
        let first_burst = self.params.first_burst_length as usize;
        let immediate = if self.params.immediate_data {
            write_len.min(first_burst).min(max_xmit)
        } else {
            0
        };
        let unsolicited_end = if self.params.initial_r2t {
            immediate
        } else {
            write_len.min(first_burst)
        };
        let pdu = ScsiCommand {
            immediate: false,
            final_: unsolicited_end == immediate,
            read: cmd.read_len > 0,
            write: write_len > 0,
            attr: TaskAttr::Simple,
            lun: encode_lun(cmd.lun),
            itt,
            edtl: if write_len > 0 {
                write_len as u32
            } else {
                cmd.read_len
            },
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb,
        };
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        self.out.push(
            &pdu.emit(immediate),
            cmd.data_out.slice(..immediate),
            self.digests,
        );
        // Unsolicited Data-Out up to FirstBurstLength (InitialR2T=No).
        if unsolicited_end > immediate {
            self.data_out(&cmd, itt, RESERVED_TAG, immediate, unsolicited_end);
        }
        self.tasks.insert(
            itt,
            Task {
                // One allocation for the whole read; in-order Data-In appends to it.
                data_in: BytesMut::with_capacity(cmd.read_len as usize),
                cmd,
            },
        );
    }

    /// Data-Out PDUs for `[from, to)` of a command's data, each at most the target's
    /// MaxRecvDataSegmentLength, the last with F set.
    fn data_out(&mut self, cmd: &Command, itt: u32, ttt: u32, from: usize, to: usize) {
        let max = self.params.max_xmit_data_segment_length.max(512) as usize;
        let mut at = from;
        let mut data_sn = 0;
        while at < to {
            let n = (to - at).min(max);
            let d = DataOut {
                final_: at + n >= to,
                lun: encode_lun(cmd.lun),
                itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn,
                buffer_offset: at as u32,
            };
            self.out
                .push(&d.emit(n), cmd.data_out.slice(at..at + n), self.digests);
            at += n;
            data_sn += 1;
        }
    }

    fn update_window(&mut self, exp_cmd_sn: u32, max_cmd_sn: u32) {
        // RFC 7143 §4.2.2.1: ignore a MaxCmdSN below ExpCmdSN - 1.
        if Sn(max_cmd_sn).in_window(
            Sn(exp_cmd_sn.wrapping_sub(1)),
            Sn(exp_cmd_sn.wrapping_add(1 << 30)),
        ) {
            if Sn(exp_cmd_sn).in_window(
                Sn(self.exp_cmd_sn),
                Sn(self.exp_cmd_sn.wrapping_add(1 << 30)),
            ) {
                self.exp_cmd_sn = exp_cmd_sn;
            }
            self.max_cmd_sn = max_cmd_sn;
        }
    }

    fn status_sn(&mut self, stat_sn: u32) {
        self.exp_stat_sn = stat_sn.wrapping_add(1);
    }

    /// Handle one received PDU; returns the commands it completed.
    pub fn receive(&mut self, frame: Frame) -> Result<Vec<(u32, Reply)>> {
        let pdu = Pdu::parse(&frame.bhs)?;
        let mut done = Vec::new();
        match pdu {
            Pdu::DataIn(d) => self.data_in(d, frame.data, &mut done)?,
            Pdu::ScsiResponse(r) => self.response(r, frame.data, &mut done)?,
            Pdu::R2t(r) => self.r2t(r)?,
            Pdu::NopIn(n) => self.nop_in(n),
            Pdu::AsyncMessage(a) => {
                tracing::info!("asynchronous message from the target: {a:?}");
            }
            Pdu::Reject(r) => {
                return Err(Error::Protocol(format!("target rejected a PDU: {r:?}")));
            }
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected {:?} in full feature phase",
                    other.opcode()
                )))
            }
        }
        self.issue();
        Ok(done)
    }

    fn data_in(&mut self, d: DataIn, data: Bytes, done: &mut Vec<(u32, Reply)>) -> Result<()> {
        let task = self
            .tasks
            .get_mut(&d.itt)
            .ok_or_else(|| Error::Protocol(format!("Data-In for unknown ITT 0x{:08x}", d.itt)))?;
        let end = d.buffer_offset as usize + data.len();
        if end > task.cmd.read_len as usize {
            return Err(Error::Protocol(format!(
                "Data-In past the buffer (offset {} + {} > {})",
                d.buffer_offset,
                data.len(),
                task.cmd.read_len
            )));
        }
        if let (0, true, Some(status)) = (d.buffer_offset, task.data_in.is_empty(), d.status) {
            // All the data in one PDU: hand out the received buffer itself, no copy.
            self.update_window(d.exp_cmd_sn, d.max_cmd_sn);
            self.status_sn(d.stat_sn);
            self.tasks.remove(&d.itt);
            done.push((
                d.itt,
                Reply {
                    status,
                    sense: Vec::new(),
                    data,
                    residual: d.residual,
                },
            ));
            return Ok(());
        }
        if d.buffer_offset as usize == task.data_in.len() {
            // In order (DataPDUInOrder=Yes, the usual case): no zero-fill, one copy.
            task.data_in.extend_from_slice(&data);
        } else {
            if task.data_in.len() < end {
                task.data_in.resize(end, 0);
            }
            task.data_in[d.buffer_offset as usize..end].copy_from_slice(&data);
        }
        if let Some(status) = d.status {
            self.update_window(d.exp_cmd_sn, d.max_cmd_sn);
            self.status_sn(d.stat_sn);
            let task = self.tasks.remove(&d.itt).expect("task");
            done.push((
                d.itt,
                Reply {
                    status,
                    sense: Vec::new(),
                    data: task.data_in.freeze(),
                    residual: d.residual,
                },
            ));
        } else {
            self.update_window(d.exp_cmd_sn, d.max_cmd_sn);
        }
        Ok(())
    }

    fn response(
        &mut self,
        r: ScsiResponse,
        data: Bytes,
        done: &mut Vec<(u32, Reply)>,
    ) -> Result<()> {
        let task = self.tasks.remove(&r.itt).ok_or_else(|| {
            Error::Protocol(format!("SCSI Response for unknown ITT 0x{:08x}", r.itt))
        })?;
        self.update_window(r.exp_cmd_sn, r.max_cmd_sn);
        self.status_sn(r.stat_sn);
        let sense = if data.len() >= 2 {
            let n = (data[0] as usize) << 8 | data[1] as usize;
            data[2..(2 + n).min(data.len())].to_vec()
        } else {
            Vec::new()
        };
        if r.response != 0 {
            return Err(Error::Protocol(format!(
                "target failure (response 0x{:02x}) for ITT 0x{:08x}",
                r.response, r.itt
            )));
        }
        done.push((
            r.itt,
            Reply {
                status: r.status,
                sense,
                data: task.data_in.freeze(),
                residual: r.residual,
            },
        ));
        Ok(())
    }

    fn r2t(&mut self, r: R2t) -> Result<()> {
        self.update_window(r.exp_cmd_sn, r.max_cmd_sn);
        let task = self
            .tasks
            .get(&r.itt)
            .ok_or_else(|| Error::Protocol(format!("R2T for unknown ITT 0x{:08x}", r.itt)))?;
        let from = r.buffer_offset as usize;
        let to = from + r.desired_len as usize;
        if to > task.cmd.data_out.len()
            || r.desired_len as u64 > self.params.max_burst_length as u64
        {
            return Err(Error::Protocol(format!(
                "R2T asks for bytes {from}..{to} of a {}-byte write",
                task.cmd.data_out.len()
            )));
        }
        let cmd = task.cmd.clone();
        self.data_out(&cmd, r.itt, r.ttt, from, to);
        Ok(())
    }

    /// A target's NOP-In ping (TTT set) is answered; a reply to ours needs nothing.
    fn nop_in(&mut self, n: NopIn) {
        self.update_window(n.exp_cmd_sn, n.max_cmd_sn);
        if n.ttt != RESERVED_TAG {
            let out = NopOut {
                immediate: true,
                lun: n.lun,
                itt: RESERVED_TAG,
                ttt: n.ttt,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
            };
            self.out.push(&out.emit(0), Bytes::new(), self.digests);
        }
    }

    /// Send a NOP-Out ping (noop_out_interval); the target answers with a NOP-In.
    pub fn ping(&mut self) {
        let itt = self.alloc_itt();
        let out = NopOut {
            immediate: true,
            lun: 0,
            itt,
            ttt: RESERVED_TAG,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.out.push(&out.emit(0), Bytes::new(), self.digests);
    }

    /// Ask to close the session (RFC 7143 §11.14); the target answers with a Logout
    /// Response, which the driver watches for.
    pub fn logout(&mut self) {
        let req = LogoutRequest {
            immediate: true,
            reason: 0,
            itt: self.alloc_itt(),
            cid: 0,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
        };
        self.out.push(&req.emit(0), Bytes::new(), self.digests);
    }

    /// The commands not yet answered (to retry after a reconnect or fail).
    pub fn drain(&mut self) -> Vec<(u32, Command)> {
        let mut v: Vec<(u32, Command)> = self.tasks.drain().map(|(i, t)| (i, t.cmd)).collect();
        v.sort_by_key(|(i, _)| *i);
        v.extend(self.queued.drain(..));
        v
    }
}
