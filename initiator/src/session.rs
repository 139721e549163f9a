//! The initiator's full feature phase, sans-IO (RFC 7143 §3, §11): commands go out in
//! CmdSN order as the target's window (ExpCmdSN..MaxCmdSN) allows; writes carry
//! immediate data and unsolicited Data-Out as negotiated and the rest on R2T; Data-In is
//! assembled at its buffer offsets; a SCSI Response (or Data-In with status) completes
//! the command. Anything the target sends that does not fit (unknown ITT, data past the
//! buffer, a bad header) is a protocol error: at ErrorRecoveryLevel 0 the connection is
//! dropped and the driver reconnects.
//!
//! Task management (RFC 7143 §11.5, §11.6): the driver may ABORT TASK a command or LUN
//! RESET a LUN; the answers come back as [`TmfOutcome`]s. The core keeps no clock: when
//! to ask is the driver's business.

use std::collections::{HashMap, VecDeque};
use std::mem;

use bytes::{Bytes, BytesMut};
use hydra_proto::framing::{Digests, Frame, OutQueue};
use hydra_proto::negotiate::SessionParams;
use hydra_proto::pdu::{
    DataIn, DataOut, LogoutRequest, NopIn, NopOut, Pdu, R2t, Repr, ScsiCommand, ScsiResponse,
    TaskAttr, TaskMgmtRequest, TaskMgmtResponse, TmfFunction, TmfResponse, RESERVED_TAG,
};
use hydra_proto::scsi::encode_lun;
use hydra_proto::scsi::sense::{self, Sense};
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
    /// Its sense data, decoded (fixed or descriptor format); None without any, or
    /// when it cannot be read.
    pub fn sense(&self) -> Option<Sense> {
        Sense::parse(&self.sense).ok()
    }

    /// (sense key, ASC, ASCQ) of its sense data.
    pub fn sense_key(&self) -> Option<(u8, u8, u8)> {
        sense_key(&self.sense)
    }

    /// Done, retry here, another path, or the caller's error: [`crate::path::classify`].
    pub fn verdict(&self) -> crate::path::Verdict {
        crate::path::classify(self.status, self.sense_key())
    }
}

/// (sense key, ASC, ASCQ) of fixed or descriptor format sense data (SPC-4 §4.5).
pub fn sense_key(s: &[u8]) -> Option<(u8, u8, u8)> {
    Sense::parse(s).ok().map(|s| (s.key, s.asc, s.ascq))
}

struct Task {
    cmd: Command,
    /// Its CmdSN: ABORT TASK names it as RefCmdSN (RFC 7143 §11.5.5).
    cmd_sn: u32,
    data_in: BytesMut,
}

/// What a Task Management Function Request asked for (RFC 7143 §11.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tmf {
    /// ABORT TASK of the command with this ITT, on its LUN.
    AbortTask { itt: u32, lun: u64 },
    /// LOGICAL UNIT RESET of this LUN.
    LunReset { lun: u64 },
}

/// A Task Management Function Response, matched to its request by ITT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmfOutcome {
    /// The request's own ITT (what [`Core::abort_task`] / [`Core::lun_reset`] returned).
    pub itt: u32,
    pub function: Tmf,
    /// The Response code (RFC 7143 §11.6.1, [`TmfResponse`]).
    pub response: u8,
    /// Commands the function ended, now gone from the core: their waiters get no reply
    /// from the target and must be failed by the driver.
    pub ended: Vec<u32>,
}

impl TmfOutcome {
    /// Whether the function did its job. For ABORT TASK "Task does not exist" counts:
    /// the target never had the task or has forgotten it, so it will not run it any more
    /// (RFC 7143 §11.5.1, RefCmdSN rules; open-iscsi's iscsi_eh_abort takes both).
    pub fn succeeded(&self) -> bool {
        match self.function {
            Tmf::AbortTask { .. } => matches!(
                self.response,
                TmfResponse::COMPLETE | TmfResponse::NO_SUCH_TASK
            ),
            Tmf::LunReset { .. } => self.response == TmfResponse::COMPLETE,
        }
    }
}

/// A Task Management Function Request sent and not yet answered.
struct PendingTmf {
    function: Tmf,
    /// The tasks it covers, fixed when it was sent: an immediate TMF carries the next
    /// CmdSN, and acts only on commands with a lower one (RFC 7143 §11.5.1), i.e. those
    /// already sent.
    covers: Vec<u32>,
}

/// How many ITTs of aborted tasks are remembered, so that their stragglers are dropped
/// quietly rather than taken for a protocol error. Only looked at for a PDU whose ITT has
/// no task, so an ITT reused after the 32-bit tag space wraps still reaches its task.
const ABORTED_MEMORY: usize = 1024;

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
    /// Task management requests awaiting their response, by the request's ITT.
    tmfs: HashMap<u32, PendingTmf>,
    /// Responses received, for the driver to take.
    tmf_done: Vec<TmfOutcome>,
    /// ITTs of tasks ended by task management, newest last.
    aborted: VecDeque<u32>,
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
            tmfs: HashMap::new(),
            tmf_done: Vec::new(),
            aborted: VecDeque::new(),
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

    /// Whether the command with this ITT is on the wire (sent, not yet answered), as
    /// opposed to waiting for the CmdSN window or finished.
    pub fn is_sent(&self, itt: u32) -> bool {
        self.tasks.contains_key(&itt)
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
                cmd_sn: pdu.cmd_sn,
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

    /// Follow the target's StatSN (RFC 7143 §4.2.2.2): status comes in StatSN order on a
    /// connection. A jump past anything that can be outstanding means statuses were
    /// lost or the target is confused; at ErrorRecoveryLevel 0 only a new connection
    /// recovers, so it is a protocol error. A small step ahead is allowed: a NOP-In
    /// answering a ping advances StatSN (§11.19.3) and not every target does so.
    fn status_sn(&mut self, stat_sn: u32) -> Result<()> {
        let ahead = stat_sn.wrapping_sub(self.exp_stat_sn);
        if ahead >= 1 << 31 {
            return Ok(()); // behind: a repeat of a number already seen
        }
        let slack = (self.tasks.len() + self.tmfs.len() + 2) as u32;
        if ahead > slack {
            return Err(Error::Protocol(format!(
                "StatSN jumped to {stat_sn} where {} was expected (statuses lost)",
                self.exp_stat_sn
            )));
        }
        self.exp_stat_sn = stat_sn.wrapping_add(1);
        Ok(())
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
            Pdu::TaskMgmtResponse(r) => self.tmf_response(r)?,
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
        let Some(task) = self.tasks.get_mut(&d.itt) else {
            return self.not_ours("Data-In", d.itt, d.exp_cmd_sn, d.max_cmd_sn);
        };
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
            self.status_sn(d.stat_sn)?;
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
            self.status_sn(d.stat_sn)?;
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
        let Some(task) = self.tasks.remove(&r.itt) else {
            return self.not_ours("SCSI Response", r.itt, r.exp_cmd_sn, r.max_cmd_sn);
        };
        self.update_window(r.exp_cmd_sn, r.max_cmd_sn);
        self.status_sn(r.stat_sn)?;
        let sense = sense::from_segment(&data).to_vec();
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
        let Some(task) = self.tasks.get(&r.itt) else {
            return self.not_ours("R2T", r.itt, r.exp_cmd_sn, r.max_cmd_sn);
        };
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
        // Its StatSN (RFC 7143 §11.19.3): a NOP-In answering our ping carries a status
        // number of its own and the connection's StatSN advances past it; one with the
        // reserved ITT carries the next StatSN without advancing it. Follow it as "the
        // next is at least this" — a connection idle for many pings would otherwise
        // take the next response for a jump, and a target that does not advance
        // StatSN for NOP-In stays in step as well.
        if n.stat_sn.wrapping_sub(self.exp_stat_sn) < 1 << 31 {
            self.exp_stat_sn = n.stat_sn;
        }
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

    /// Send ABORT TASK for the command with ITT `itt` (RFC 7143 §11.5): immediate, with
    /// the current CmdSN, which it does not advance (§4.2.2.1), RefCmdSN the task's CmdSN
    /// (§11.5.5). Returns the request's own ITT, or `None` when the command is not on
    /// the wire (already answered, or still waiting for the CmdSN window).
    pub fn abort_task(&mut self, itt: u32) -> Option<u32> {
        let task = self.tasks.get(&itt)?;
        let (lun, ref_cmd_sn) = (task.cmd.lun, task.cmd_sn);
        let tmf = self.alloc_itt();
        let req = TaskMgmtRequest {
            immediate: true,
            function: TmfFunction::AbortTask,
            lun: encode_lun(lun),
            itt: tmf,
            rtt: itt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn,
            exp_data_sn: 0,
        };
        self.out.push(&req.emit(0), Bytes::new(), self.digests);
        self.tmfs.insert(
            tmf,
            PendingTmf {
                function: Tmf::AbortTask { itt, lun },
                covers: vec![itt],
            },
        );
        Some(tmf)
    }

    /// Send LOGICAL UNIT RESET for `lun` (RFC 7143 §11.5.1), immediate like every TMF
    /// here. It covers the commands of that LUN already sent; those still waiting for
    /// the CmdSN window go out later and are not affected. Returns the request's ITT.
    pub fn lun_reset(&mut self, lun: u64) -> u32 {
        let tmf = self.alloc_itt();
        let mut covers: Vec<u32> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.cmd.lun == lun)
            .map(|(i, _)| *i)
            .collect();
        covers.sort_unstable();
        let req = TaskMgmtRequest {
            immediate: true,
            function: TmfFunction::LogicalUnitReset,
            lun: encode_lun(lun),
            itt: tmf,
            // Reserved for this function (§11.5.4, §11.5.5).
            rtt: RESERVED_TAG,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            ref_cmd_sn: 0,
            exp_data_sn: 0,
        };
        self.out.push(&req.emit(0), Bytes::new(), self.digests);
        self.tmfs.insert(
            tmf,
            PendingTmf {
                function: Tmf::LunReset { lun },
                covers,
            },
        );
        tmf
    }

    /// Task Management Function Responses received since the last call.
    pub fn take_tmf_outcomes(&mut self) -> Vec<TmfOutcome> {
        mem::take(&mut self.tmf_done)
    }

    /// A Task Management Function Response (RFC 7143 §11.6): matched to its request by
    /// ITT; a successful function ends the tasks it covered. Responses for them that came
    /// first were valid and completed them as usual; this one concludes the rest
    /// (§11.6.2), so their state can go.
    fn tmf_response(&mut self, r: TaskMgmtResponse) -> Result<()> {
        let pending = self.tmfs.remove(&r.itt).ok_or_else(|| {
            Error::Protocol(format!(
                "Task Management Function Response for unknown ITT 0x{:08x}",
                r.itt
            ))
        })?;
        self.update_window(r.exp_cmd_sn, r.max_cmd_sn);
        self.status_sn(r.stat_sn)?;
        let mut outcome = TmfOutcome {
            itt: r.itt,
            function: pending.function,
            response: r.response,
            ended: Vec::new(),
        };
        if outcome.succeeded() {
            for itt in pending.covers {
                // Gone already when its own response came first (it crossed the TMF).
                if self.tasks.remove(&itt).is_some() {
                    self.remember_aborted(itt);
                    outcome.ended.push(itt);
                }
            }
        }
        self.tmf_done.push(outcome);
        Ok(())
    }

    fn remember_aborted(&mut self, itt: u32) {
        if self.aborted.len() >= ABORTED_MEMORY {
            self.aborted.pop_front();
        }
        self.aborted.push_back(itt);
    }

    /// A `what` PDU for an ITT with no task. If task management ended that task, it is a
    /// straggler and is dropped, its window update kept. What a target sent before its
    /// TMF response arrives before it on the one TCP stream and completes the task as
    /// usual (RFC 7143 §11.6.2); this is a Data-In, SCSI Response or R2T the target let
    /// go after answering the abort, which is not worth the whole connection. An ITT
    /// never used is still a protocol error.
    fn not_ours(&mut self, what: &str, itt: u32, exp_cmd_sn: u32, max_cmd_sn: u32) -> Result<()> {
        if !self.aborted.contains(&itt) {
            return Err(Error::Protocol(format!(
                "{what} for unknown ITT 0x{itt:08x}"
            )));
        }
        tracing::debug!("dropping a late {what} for aborted ITT 0x{itt:08x}");
        self.update_window(exp_cmd_sn, max_cmd_sn);
        Ok(())
    }

    /// The commands not yet answered (to retry after a reconnect or fail).
    pub fn drain(&mut self) -> Vec<(u32, Command)> {
        let mut v: Vec<(u32, Command)> = self.tasks.drain().map(|(i, t)| (i, t.cmd)).collect();
        v.sort_by_key(|(i, _)| *i);
        v.extend(self.queued.drain(..));
        v
    }
}

/// Builders for driving a [`Core`] by hand in unit tests (here and in the driver's).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use hydra_proto::framing::try_frame;
    use hydra_proto::negotiate::{LocalParams, Negotiation, Role, SessionType};
    use hydra_proto::pdu::TaskMgmtRequest;

    /// A core whose next CmdSN is 10, with a window of 100.
    pub(crate) fn core() -> Core {
        core_window(110)
    }

    /// A core whose next CmdSN is 10 and whose MaxCmdSN is `max_cmd_sn`.
    pub(crate) fn core_window(max_cmd_sn: u32) -> Core {
        let params =
            Negotiation::new(Role::Initiator, SessionType::Normal, LocalParams::default()).params();
        Core::new(params, 1, 10, max_cmd_sn)
    }

    pub(crate) fn read(lun: u64) -> Command {
        Command {
            lun,
            cdb: vec![0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0],
            data_out: Bytes::new(),
            read_len: 4096,
        }
    }

    /// The PDUs the core wrote, cut back into frames.
    pub(crate) fn sent(core: &mut Core) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        for c in core.take_output() {
            buf.extend_from_slice(&c);
        }
        let mut v = Vec::new();
        while let Some(f) = try_frame(&mut buf, core.digests(), 1 << 20).unwrap() {
            v.push(f);
        }
        assert!(buf.is_empty());
        v
    }

    pub(crate) fn frame(bhs: [u8; 48], data: Bytes) -> Frame {
        Frame {
            bhs,
            ahs: Bytes::new(),
            data,
        }
    }

    pub(crate) fn tmf_response(itt: u32, response: u8, stat_sn: u32) -> Frame {
        let r = TaskMgmtResponse {
            response,
            itt,
            stat_sn,
            exp_cmd_sn: 12,
            max_cmd_sn: 120,
        };
        frame(r.emit(0), Bytes::new())
    }

    /// A Data-In with status, all of a 4096-byte read.
    pub(crate) fn data_in(itt: u32, stat_sn: u32) -> Frame {
        let d = DataIn {
            final_: true,
            status: Some(0),
            itt,
            ttt: RESERVED_TAG,
            stat_sn,
            exp_cmd_sn: 12,
            max_cmd_sn: 120,
            ..DataIn::default()
        };
        frame(d.emit(4096), Bytes::from(vec![0xab; 4096]))
    }

    pub(crate) fn scsi_response(itt: u32, stat_sn: u32) -> Frame {
        let r = ScsiResponse {
            itt,
            stat_sn,
            exp_cmd_sn: 12,
            max_cmd_sn: 120,
            ..ScsiResponse::default()
        };
        frame(r.emit(0), Bytes::new())
    }

    pub(crate) fn parse_tmf(f: &Frame) -> TaskMgmtRequest {
        match Pdu::parse(&f.bhs).unwrap() {
            Pdu::TaskMgmtRequest(t) => t,
            other => panic!("expected a TMF request, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The task management state machine, driven with hand-built target PDUs.

    use super::testing::*;
    use super::*;

    /// A connection idle for ten pings, each answered with the next StatSN (hydra tgtd
    /// and Linux LIO advance StatSN for NOP-In): the next response is no jump.
    #[test]
    fn nop_in_answers_advance_statsn() {
        let mut c = core();
        for sn in 1..=10 {
            let n = NopIn {
                lun: 0,
                itt: 0x100 + sn,
                ttt: RESERVED_TAG,
                stat_sn: sn,
                exp_cmd_sn: 10,
                max_cmd_sn: 110,
            };
            assert!(c
                .receive(frame(n.emit(0), Bytes::new()))
                .unwrap()
                .is_empty());
        }
        let a = c.submit(read(0));
        assert_eq!(c.receive(data_in(a, 11)).unwrap().len(), 1);
    }

    #[test]
    fn a_statsn_jump_is_a_protocol_error() {
        let mut c = core();
        let a = c.submit(read(0));
        let b = c.submit(read(0));
        assert_eq!(c.receive(data_in(a, 1)).unwrap().len(), 1);
        let e = c.receive(data_in(b, 1000)).unwrap_err();
        assert!(
            e.to_string()
                .contains("StatSN jumped to 1000 where 2 was expected"),
            "{e}"
        );
    }

    #[test]
    fn abort_task_pdu_fields() {
        let mut c = core();
        let a = c.submit(read(3));
        let b = c.submit(read(3));
        assert_eq!(sent(&mut c).len(), 2);
        let tmf = c.abort_task(b).expect("b is on the wire");
        assert!(tmf != a && tmf != b && tmf != RESERVED_TAG);
        let out = sent(&mut c);
        assert_eq!(out.len(), 1);
        // Opcode 0x02 with the I bit; F bit and function 1 (ABORT TASK).
        assert_eq!(out[0].bhs[0], 0x42);
        assert_eq!(out[0].bhs[1], 0x81);
        let t = parse_tmf(&out[0]);
        assert!(t.immediate);
        assert_eq!(t.function, TmfFunction::AbortTask);
        assert_eq!(t.itt, tmf);
        assert_eq!(t.rtt, b);
        assert_eq!(t.ref_cmd_sn, 11, "b went out with CmdSN 11");
        assert_eq!(t.lun, encode_lun(3));
        // Immediate: the current CmdSN, not advanced (RFC 7143 §4.2.2.1).
        assert_eq!(t.cmd_sn, 12);
        c.submit(read(3));
        match Pdu::parse(&sent(&mut c)[0].bhs).unwrap() {
            Pdu::ScsiCommand(s) => assert_eq!(s.cmd_sn, 12),
            other => panic!("{other:?}"),
        }
        // Nothing to abort: not on the wire.
        assert_eq!(c.abort_task(0x7777), None);
        assert!(sent(&mut c).is_empty());
    }

    #[test]
    fn abort_complete_removes_the_task_and_late_pdus_are_dropped() {
        let mut c = core();
        let a = c.submit(read(1));
        let b = c.submit(read(1));
        let _ = sent(&mut c);
        let tmf = c.abort_task(a).unwrap();
        let _ = sent(&mut c);
        assert!(c.receive(tmf_response(tmf, 0, 1)).unwrap().is_empty());
        let o = c.take_tmf_outcomes();
        assert_eq!(
            o,
            vec![TmfOutcome {
                itt: tmf,
                function: Tmf::AbortTask { itt: a, lun: 1 },
                response: 0,
                ended: vec![a],
            }]
        );
        assert!(o[0].succeeded());
        assert!(!c.is_sent(a));
        assert_eq!(c.outstanding(), 1);
        assert!(c.take_tmf_outcomes().is_empty());
        // Stragglers for the aborted ITT are dropped, not protocol errors.
        assert!(c.receive(data_in(a, 2)).unwrap().is_empty());
        assert!(c.receive(scsi_response(a, 3)).unwrap().is_empty());
        // The other command still completes.
        let done = c.receive(data_in(b, 4)).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, b);
        assert_eq!(c.outstanding(), 0);
        // An ITT never used is still a protocol error.
        assert!(matches!(
            c.receive(data_in(0x4242, 5)),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn abort_task_does_not_exist_also_ends_the_task() {
        let mut c = core();
        let a = c.submit(read(1));
        let tmf = c.abort_task(a).unwrap();
        let _ = sent(&mut c);
        c.receive(tmf_response(tmf, TmfResponse::NO_SUCH_TASK, 1))
            .unwrap();
        let o = c.take_tmf_outcomes();
        assert!(o[0].succeeded());
        assert_eq!(o[0].ended, vec![a]);
        assert_eq!(c.outstanding(), 0);
    }

    #[test]
    fn abort_refused_keeps_the_task() {
        let mut c = core();
        let a = c.submit(read(1));
        let tmf = c.abort_task(a).unwrap();
        let _ = sent(&mut c);
        c.receive(tmf_response(tmf, TmfResponse::NOT_SUPPORTED, 1))
            .unwrap();
        let o = c.take_tmf_outcomes();
        assert!(!o[0].succeeded());
        assert!(o[0].ended.is_empty());
        assert!(c.is_sent(a));
        // Its answer still completes it.
        assert_eq!(c.receive(data_in(a, 2)).unwrap().len(), 1);
    }

    #[test]
    fn response_crossing_the_abort_completes_the_command() {
        let mut c = core();
        let a = c.submit(read(1));
        let tmf = c.abort_task(a).unwrap();
        let _ = sent(&mut c);
        // The target answered the command before it saw the abort.
        assert_eq!(c.receive(data_in(a, 1)).unwrap().len(), 1);
        c.receive(tmf_response(tmf, TmfResponse::NO_SUCH_TASK, 2))
            .unwrap();
        let o = c.take_tmf_outcomes();
        assert!(o[0].succeeded());
        assert!(o[0].ended.is_empty(), "nothing left to end");
    }

    #[test]
    fn lun_reset_ends_the_tasks_of_that_lun_only() {
        let mut c = core();
        let a = c.submit(read(1));
        let b = c.submit(read(2));
        let d = c.submit(read(1));
        let _ = sent(&mut c);
        let tmf = c.lun_reset(1);
        let out = sent(&mut c);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bhs[0], 0x42);
        let t = parse_tmf(&out[0]);
        assert_eq!(t.function, TmfFunction::LogicalUnitReset);
        assert_eq!(t.lun, encode_lun(1));
        assert_eq!(t.rtt, RESERVED_TAG);
        assert_eq!(t.cmd_sn, 13);
        // Sent after the reset: not covered by it (RFC 7143 §11.5.1).
        let e = c.submit(read(1));
        let _ = sent(&mut c);
        c.receive(tmf_response(tmf, TmfResponse::COMPLETE, 1))
            .unwrap();
        let o = c.take_tmf_outcomes();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].function, Tmf::LunReset { lun: 1 });
        assert!(o[0].succeeded());
        assert_eq!(o[0].ended, vec![a, d]);
        assert!(!c.is_sent(a) && !c.is_sent(d));
        assert!(c.is_sent(b) && c.is_sent(e));
        assert_eq!(c.outstanding(), 2);
        // Stragglers of the reset tasks are dropped; the others complete.
        assert!(c.receive(scsi_response(d, 2)).unwrap().is_empty());
        assert_eq!(c.receive(data_in(b, 3)).unwrap()[0].0, b);
        assert_eq!(c.receive(data_in(e, 4)).unwrap()[0].0, e);
    }

    #[test]
    fn lun_reset_refused_ends_nothing() {
        let mut c = core();
        let a = c.submit(read(1));
        let tmf = c.lun_reset(1);
        let _ = sent(&mut c);
        c.receive(tmf_response(tmf, TmfResponse::REJECTED, 1))
            .unwrap();
        let o = c.take_tmf_outcomes();
        assert!(!o[0].succeeded());
        assert!(o[0].ended.is_empty());
        assert!(c.is_sent(a));
    }

    #[test]
    fn tmf_response_for_unknown_itt_is_a_protocol_error() {
        let mut c = core();
        let a = c.submit(read(1));
        let _ = sent(&mut c);
        // Neither a TMF of ours nor (for that matter) a command's ITT.
        assert!(matches!(
            c.receive(tmf_response(0x5555, 0, 1)),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            c.receive(tmf_response(a, 0, 1)),
            Err(Error::Protocol(_))
        ));
        // A TMF answered once is not answered twice.
        let tmf = c.abort_task(a).unwrap();
        c.receive(tmf_response(tmf, 0, 1)).unwrap();
        assert!(matches!(
            c.receive(tmf_response(tmf, 0, 2)),
            Err(Error::Protocol(_))
        ));
    }
}
