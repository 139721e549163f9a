//! Full feature phase of one connection (RFC 7143 §4.2, §11): the CmdSN window, SCSI
//! commands and their data, task management, NOP, Text (SendTargets) and Logout. Sans-IO:
//! frames go in, PDUs come out in an [`OutQueue`], and commands that would block on disk
//! come out as [`BlockingJob`]s for the driver to run on its blocking pool and feed back
//! through [`Session::complete`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hydra_proto::bhs::{Bhs, BHS_LEN};
use hydra_proto::negotiate::{SessionParams, SessionType};
use hydra_proto::pdu::*;
use hydra_proto::scsi::{decode_lun, status, Sense};
use hydra_proto::text;

use super::discovery;
use super::framing::{Digests, Frame, OutQueue};
use super::task::{Limits, WriteData};
use crate::lun::{self, IoMode, Lun, ScsiOutcome, ScsiRequest};
use crate::nexus::ItNexus;
use crate::registry::{Registry, Target};

/// SAM status codes used by the session itself.
const CHECK_CONDITION: u8 = 0x02;

/// Largest write hydra accepts in one command; bigger ones are refused with sense data
/// before any buffer is allocated (VPD 0xB0 advertises the same limit).
pub const MAX_WRITE: u32 = 32 << 20;

/// A command to run off the network task.
pub struct BlockingJob {
    pub itt: u32,
    pub lun: Arc<Lun>,
    pub cdb: [u8; 16],
    pub cdb_len: usize,
    pub nexus: Arc<ItNexus>,
    pub data_out: Bytes,
    pub expected_in: u32,
    pub luns: Vec<u64>,
}

impl BlockingJob {
    /// Run it (on a blocking thread). A bug that panics fails this one command with
    /// HARDWARE ERROR / INTERNAL TARGET FAILURE instead of leaving it hanging.
    pub fn run(&self) -> ScsiOutcome {
        let req = ScsiRequest {
            cdb: &self.cdb[..self.cdb_len],
            nexus: &self.nexus,
            data_out: &self.data_out,
            expected_in: self.expected_in,
            luns: &self.luns,
        };
        guarded(&self.lun, || self.lun.execute(&req, IoMode::Blocking))
            .unwrap_or_else(|_| internal_failure(&self.lun))
    }
}

/// Why the connection must close.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error("{0}")]
    Protocol(String),
    #[error("logout")]
    Logout,
}

enum TaskState {
    /// Waiting for Data-Out.
    Collecting(Box<WriteData>),
    /// Running on the blocking pool.
    Running,
}

struct Task {
    cmd: ScsiCommand,
    lun: Option<Arc<Lun>>,
    state: TaskState,
    /// Aborted by a TMF: its result is dropped; the TMF response waits for it.
    aborted: bool,
    /// The LUN's PREEMPT AND ABORT epoch when the task was handed to the blocking pool:
    /// a preemption of this nexus after that aborts it ([`Lun::preempted_since`]).
    abort_epoch: u64,
}

/// A TMF response held back until the tasks it aborted have stopped (SAM-5 §7.3: the
/// function completes only when the tasks are gone).
struct PendingTmf {
    itt: u32,
    waiting_for: Vec<u32>,
}

/// Full-feature state of one connection (hydra runs one connection per session).
pub struct Session {
    pub registry: Arc<Registry>,
    pub target: Option<Arc<Target>>,
    pub session_type: SessionType,
    pub params: SessionParams,
    pub nexus: Arc<ItNexus>,
    pub peer: std::net::SocketAddr,
    pub local: std::net::SocketAddr,
    pub digests: Digests,
    pub out: OutQueue,
    stat_sn: u32,
    exp_cmd_sn: u32,
    depth: u32,
    in_flight: u32,
    tasks: HashMap<u32, Task>,
    jobs: Vec<BlockingJob>,
    pending_tmfs: Vec<PendingTmf>,
    next_ttt: u32,
    /// A SendTargets answer too long for one PDU: (ttt, remaining bytes).
    text_rest: Option<(u32, Vec<u8>)>,
    text_partial: Vec<u8>,
    /// Pending target-initiated ping (ttt), for the keepalive.
    pub nop_outstanding: u32,
}

impl Session {
    /// Enter full feature phase.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Arc<Registry>,
        target: Option<Arc<Target>>,
        session_type: SessionType,
        params: SessionParams,
        nexus: Arc<ItNexus>,
        peer: std::net::SocketAddr,
        local: std::net::SocketAddr,
        stat_sn: u32,
        exp_cmd_sn: u32,
        depth: u32,
    ) -> Session {
        let digests = Digests {
            header: params.header_digest,
            data: params.data_digest,
        };
        Session {
            registry,
            target,
            session_type,
            params,
            nexus,
            peer,
            local,
            digests,
            out: OutQueue::default(),
            stat_sn,
            exp_cmd_sn,
            depth,
            in_flight: 0,
            tasks: HashMap::new(),
            jobs: Vec::new(),
            pending_tmfs: Vec::new(),
            next_ttt: 1,
            text_rest: None,
            text_partial: Vec::new(),
            nop_outstanding: 0,
        }
    }

    /// Jobs to hand to the blocking pool.
    pub fn take_jobs(&mut self) -> Vec<BlockingJob> {
        std::mem::take(&mut self.jobs)
    }

    fn max_cmd_sn(&self) -> u32 {
        let room = self.depth.saturating_sub(self.in_flight).max(1);
        self.exp_cmd_sn.wrapping_add(room - 1)
    }

    /// StatSN for a status-bearing PDU (and advance).
    fn next_stat_sn(&mut self) -> u32 {
        let s = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        s
    }

    fn ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    fn push<R: Repr>(&mut self, r: &R, data: Bytes) {
        let hdr = r.emit(data.len());
        self.out.push(&hdr, data, self.digests);
    }

    fn reject(&mut self, reason: u8, bad_bhs: &[u8; BHS_LEN]) {
        let r = Reject {
            reason,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            data_sn: 0,
        };
        self.push(&r, Bytes::copy_from_slice(bad_bhs));
    }

    /// Check and advance the command window (RFC 7143 §4.2.2.1). Returns false when the
    /// command must be ignored (outside the window).
    fn accept_cmd_sn(&mut self, immediate: bool, cmd_sn: u32) -> bool {
        use hydra_proto::serial::Sn;
        if immediate {
            return true;
        }
        if Sn(cmd_sn) != Sn(self.exp_cmd_sn) {
            tracing::warn!(
                "{}: CmdSN {} outside the window (ExpCmdSN {}, MaxCmdSN {}): ignored",
                self.peer,
                cmd_sn,
                self.exp_cmd_sn,
                self.max_cmd_sn()
            );
            return false;
        }
        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
        true
    }

    /// Handle one received PDU.
    pub fn handle(&mut self, f: Frame) -> Result<(), Fatal> {
        let pdu = match Pdu::parse(&f.bhs) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("{}: rejecting PDU: {e}", self.peer);
                let reason = match e {
                    hydra_proto::Error::Unsupported { .. } => RejectReason::COMMAND_NOT_SUPPORTED,
                    _ => RejectReason::PROTOCOL_ERROR,
                };
                self.reject(reason, &f.bhs);
                return Ok(());
            }
        };
        let discovery = self.session_type == SessionType::Discovery;
        match pdu {
            Pdu::ScsiCommand(c) if !discovery => self.scsi_command(c, &f),
            Pdu::DataOut(d) if !discovery => self.data_out(d, f),
            Pdu::TaskMgmtRequest(t) if !discovery => self.tmf(t),
            Pdu::NopOut(n) => self.nop_out(n, f.data),
            Pdu::TextRequest(t) => self.text(t, &f.data),
            Pdu::LogoutRequest(l) => self.logout(l),
            Pdu::Snack(_) => {
                // ErrorRecoveryLevel 0: SNACK is not used (RFC 7143 §7.1.4).
                self.reject(RejectReason::PROTOCOL_ERROR, &f.bhs);
                Ok(())
            }
            Pdu::LoginRequest(_) => {
                tracing::warn!("{}: Login Request in full feature phase", self.peer);
                self.reject(RejectReason::PROTOCOL_ERROR, &f.bhs);
                Ok(())
            }
            other => {
                tracing::warn!(
                    "{}: {} not allowed here",
                    self.peer,
                    opcode_name(other.opcode())
                );
                self.reject(RejectReason::PROTOCOL_ERROR, &f.bhs);
                Ok(())
            }
        }
    }

    fn lun_of(&self, lun_field: u64) -> Option<Arc<Lun>> {
        let n = decode_lun(lun_field)?;
        self.target.as_ref()?.lun(n)
    }

    fn scsi_command(&mut self, c: ScsiCommand, f: &Frame) -> Result<(), Fatal> {
        if !self.accept_cmd_sn(c.immediate, c.cmd_sn) {
            return Ok(());
        }
        if self.tasks.contains_key(&c.itt) {
            tracing::warn!("{}: ITT 0x{:08x} already in use", self.peer, c.itt);
            self.reject(RejectReason::TASK_IN_PROGRESS, &f.bhs);
            return Ok(());
        }
        self.in_flight += 1;
        let lun = self.lun_of(c.lun);
        if !f.ahs.is_empty() {
            // Extended CDBs / bidirectional AHS: no command hydra implements uses them.
            let sense = Sense::illegal_request_invalid_opcode();
            self.finish(c, error_outcome(&sense, lun.as_deref()));
            return Ok(());
        }
        if c.write && c.edtl > 0 {
            if c.edtl > MAX_WRITE {
                let sense = Sense::invalid_field_in_cdb();
                self.finish(c, error_outcome(&sense, lun.as_deref()));
                return Ok(());
            }
            let imm = &f.data[..f.data.len().min(c.edtl as usize)];
            if !self.params.immediate_data && !imm.is_empty() {
                tracing::warn!("{}: immediate data sent with ImmediateData=No", self.peer);
                return Err(Fatal::Protocol(
                    "immediate data with ImmediateData=No".into(),
                ));
            }
            let limits = Limits {
                initial_r2t: self.params.initial_r2t,
                first_burst_length: self.params.first_burst_length,
                max_burst_length: self.params.max_burst_length,
                max_outstanding_r2t: self.params.max_outstanding_r2t,
            };
            let data = if imm.len() == c.edtl as usize {
                // The whole write came with the command: no copy at all.
                self.execute(c, lun, f.data.slice(..imm.len()));
                return Ok(());
            } else {
                WriteData::new(c.edtl, imm, limits)
                    .map_err(|e| Fatal::Protocol(format!("immediate data: {e}")))?
            };
            let itt = c.itt;
            self.tasks.insert(
                itt,
                Task {
                    cmd: c,
                    lun,
                    state: TaskState::Collecting(Box::new(data)),
                    aborted: false,
                    abort_epoch: 0,
                },
            );
            self.send_r2ts(itt);
            return Ok(());
        }
        self.execute(c, lun, Bytes::new());
        Ok(())
    }

    fn send_r2ts(&mut self, itt: u32) {
        let mut ttts = Vec::new();
        if let Some(Task {
            state: TaskState::Collecting(w),
            ..
        }) = self.tasks.get_mut(&itt)
        {
            let mut next = self.next_ttt;
            ttts = w.r2ts(|| {
                let t = next;
                next = next.wrapping_add(1).max(1);
                t
            });
            self.next_ttt = next;
        }
        let lun = self.tasks.get(&itt).map(|t| t.cmd.lun).unwrap_or(0);
        for r in ttts {
            let pdu = R2t {
                lun,
                itt,
                ttt: r.ttt,
                stat_sn: self.stat_sn,
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn(),
                r2t_sn: r.r2t_sn,
                buffer_offset: r.offset,
                desired_len: r.len,
            };
            self.push(&pdu, Bytes::new());
        }
    }

    fn data_out(&mut self, d: DataOut, f: Frame) -> Result<(), Fatal> {
        let Some(task) = self.tasks.get_mut(&d.itt) else {
            // The command may have ended early with a CHECK CONDITION; the initiator can
            // still have unsolicited data on the way (RFC 7143 §4.2.3). Drop it.
            tracing::debug!(
                "{}: Data-Out for unknown ITT 0x{:08x} dropped",
                self.peer,
                d.itt
            );
            return Ok(());
        };
        let TaskState::Collecting(w) = &mut task.state else {
            self.reject(RejectReason::PROTOCOL_ERROR, &f.bhs);
            return Ok(());
        };
        if let Err(e) = w.data_out(d.ttt, d.buffer_offset, d.data_sn, &f.data) {
            // At ErrorRecoveryLevel 0 a broken data sequence cannot be repaired: the task
            // ends with ABORTED COMMAND (RFC 7143 §7.1.4.2 via SAM-5) and the connection
            // carries on; later Data-Out for it is dropped as unknown.
            tracing::warn!("{}: ITT 0x{:08x}: {e}: task aborted", self.peer, d.itt);
            let ascq = match e {
                super::task::DataError::UnknownTtt(_) => 0x01,
                super::task::DataError::PastEnd { .. } => 0x02,
                super::task::DataError::OutsideR2t { .. } => 0x05,
                _ => 0x00,
            };
            let task = self.tasks.remove(&d.itt).expect("task");
            let sense = Sense::new(hydra_proto::scsi::sense::key::ABORTED_COMMAND, 0x4b, ascq);
            self.finish(task.cmd, error_outcome(&sense, task.lun.as_deref()));
            return Ok(());
        }
        if w.complete() {
            let task = self.tasks.remove(&d.itt).expect("task");
            let TaskState::Collecting(w) = task.state else {
                unreachable!()
            };
            self.execute(task.cmd, task.lun, w.into_bytes());
        } else if d.final_ {
            self.send_r2ts(d.itt);
        }
        Ok(())
    }

    fn execute(&mut self, c: ScsiCommand, lun: Option<Arc<Lun>>, data_out: Bytes) {
        let cdb_len = hydra_proto::scsi::cdb_len(c.cdb[0]).unwrap_or(16).min(16);
        let luns = self
            .target
            .as_ref()
            .map(|t| t.lun_numbers())
            .unwrap_or_default();
        let expected_in = if c.read { c.edtl } else { 0 };
        let result = {
            let req = ScsiRequest {
                cdb: &c.cdb[..cdb_len],
                nexus: &self.nexus,
                data_out: &data_out,
                expected_in,
                luns: &luns,
            };
            match &lun {
                None => Ok(lun::no_such_lun(&req)),
                Some(l) => guarded(l, || l.execute(&req, IoMode::NoWait)),
            }
        };
        match (result, lun) {
            (Ok(out), _) => self.finish(c, out),
            (Err(lun::WouldBlock), Some(lun)) => {
                let job = BlockingJob {
                    itt: c.itt,
                    lun: lun.clone(),
                    cdb: c.cdb,
                    cdb_len,
                    nexus: self.nexus.clone(),
                    data_out,
                    expected_in,
                    luns,
                };
                let abort_epoch = lun.abort_epoch();
                self.tasks.insert(
                    c.itt,
                    Task {
                        cmd: c,
                        lun: Some(lun),
                        state: TaskState::Running,
                        aborted: false,
                        abort_epoch,
                    },
                );
                self.jobs.push(job);
            }
            (Err(lun::WouldBlock), None) => unreachable!("no_such_lun never blocks"),
        }
    }

    /// A blocking job finished.
    pub fn complete(&mut self, itt: u32, out: ScsiOutcome) {
        let Some(task) = self.tasks.remove(&itt) else {
            return;
        };
        // Aborted by this nexus's own TMF: no status, the TMF response covers it.
        if task.aborted {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.tmf_task_gone(itt);
            return;
        }
        // Aborted by another nexus's PREEMPT AND ABORT while it ran (SPC-4
        // §5.13.11.2.5). The Control mode page says TAS = 1 (as LIO does), so the task
        // ends with TASK ABORTED (SAM-5 §5.6) rather than silently: the fenced initiator
        // learns at once, retries, and meets RESERVATION CONFLICT, instead of waiting
        // for its command timeout (30 s) and failing a healthy path.
        let preempted = task
            .lun
            .as_ref()
            .is_some_and(|l| l.preempted_since(&self.nexus, task.abort_epoch));
        if preempted {
            let aborted = ScsiOutcome {
                status: status::TASK_ABORTED,
                sense: Vec::new(),
                data_in: Bytes::new(),
                data_out_len: None,
            };
            self.finish(task.cmd, aborted);
            self.tmf_task_gone(itt);
            return;
        }
        self.finish(task.cmd, out);
    }

    /// Send the data and status of a finished command.
    fn finish(&mut self, c: ScsiCommand, out: ScsiOutcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let edtl = if c.read { c.edtl } else { 0 };
        let produced = out.data_in.len() as u32;
        let sent = produced.min(edtl);
        let (mut underflow, mut overflow, mut residual) = (false, false, 0);
        if c.read {
            if produced < edtl {
                underflow = true;
                residual = edtl - produced;
            } else if produced > edtl {
                overflow = true;
                residual = produced - edtl;
            }
        }
        if c.write && !c.read {
            // RFC 7143 §11.4.5: residuals of a write compare EDTL with what the command
            // needed.
            if let Some(need) = out.data_out_len {
                if need < c.edtl {
                    underflow = true;
                    residual = c.edtl - need;
                } else if need > c.edtl {
                    overflow = true;
                    residual = need - c.edtl;
                }
            }
        } else if !c.write && !c.read {
            if let Some(need) = out.data_out_len.filter(|n| *n > 0) {
                overflow = true;
                residual = need;
            }
        }
        let collapse = out.status == 0 && out.sense.is_empty() && sent > 0;
        if sent > 0 {
            let data = out.data_in.slice(..sent as usize);
            let seg = self.params.max_xmit_data_segment_length.max(512) as usize;
            let burst = self.params.max_burst_length.max(512) as usize;
            let mut off = 0usize;
            let mut data_sn = 0u32;
            while off < data.len() {
                let burst_end = (off / burst + 1) * burst;
                let end = (off + seg).min(data.len()).min(burst_end);
                let last = end == data.len();
                let mut d = DataIn {
                    final_: last || end == burst_end,
                    lun: c.lun,
                    itt: c.itt,
                    ttt: RESERVED_TAG,
                    stat_sn: self.stat_sn,
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                    data_sn,
                    buffer_offset: off as u32,
                    ..Default::default()
                };
                if last && collapse {
                    d.final_ = true;
                    d.status = Some(0);
                    d.stat_sn = self.next_stat_sn();
                    d.underflow = underflow;
                    d.overflow = overflow;
                    d.residual = residual;
                }
                self.push(&d, data.slice(off..end));
                off = end;
                data_sn += 1;
            }
            if collapse {
                return;
            }
        }
        let sense_data = hydra_proto::scsi::sense::to_segment(&out.sense);
        let r = ScsiResponse {
            underflow,
            overflow,
            response: 0,
            status: out.status,
            itt: c.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            exp_data_sn: 0,
            residual,
            ..Default::default()
        };
        self.push(&r, Bytes::from(sense_data));
    }

    fn nop_out(&mut self, n: NopOut, data: Bytes) -> Result<(), Fatal> {
        if n.itt == RESERVED_TAG {
            // The answer to our ping (RFC 7143 §11.18.3); no reply.
            if n.ttt == self.nop_outstanding {
                self.nop_outstanding = 0;
            }
            return Ok(());
        }
        if !self.accept_cmd_sn(n.immediate, n.cmd_sn) {
            return Ok(());
        }
        let r = NopIn {
            lun: n.lun,
            itt: n.itt,
            ttt: RESERVED_TAG,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        };
        let max = self.params.max_xmit_data_segment_length as usize;
        self.push(&r, data.slice(..data.len().min(max)));
        Ok(())
    }

    /// A target ping (keepalive, RFC 7143 §11.19.1). Returns false when the previous one
    /// is still unanswered.
    pub fn ping(&mut self) -> bool {
        if self.nop_outstanding != 0 {
            return false;
        }
        let ttt = self.ttt();
        self.nop_outstanding = ttt;
        let r = NopIn {
            lun: 0,
            itt: RESERVED_TAG,
            ttt,
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        };
        self.push(&r, Bytes::new());
        true
    }

    fn text(&mut self, t: TextRequest, data: &[u8]) -> Result<(), Fatal> {
        if !self.accept_cmd_sn(t.immediate, t.cmd_sn) {
            return Ok(());
        }
        let max = self.params.max_xmit_data_segment_length.max(512) as usize;
        let body = if t.ttt != RESERVED_TAG {
            // Continuation of a long answer (RFC 7143 §11.10.4).
            match self.text_rest.take() {
                Some((ttt, rest)) if ttt == t.ttt => rest,
                _ => {
                    let b = t.emit(data.len());
                    self.reject(RejectReason::INVALID_PDU_FIELD, &b);
                    return Ok(());
                }
            }
        } else {
            self.text_partial.extend_from_slice(data);
            if t.cont {
                let r = TextResponse {
                    final_: false,
                    cont: false,
                    lun: t.lun,
                    itt: t.itt,
                    ttt: self.ttt(),
                    stat_sn: self.next_stat_sn(),
                    exp_cmd_sn: self.exp_cmd_sn,
                    max_cmd_sn: self.max_cmd_sn(),
                };
                self.push(&r, Bytes::new());
                return Ok(());
            }
            let req = std::mem::take(&mut self.text_partial);
            match text::parse(&req) {
                Ok(keys) => self.text_answer(&keys),
                Err(e) => {
                    tracing::warn!("{}: text request: {e}", self.peer);
                    let b = t.emit(data.len());
                    self.reject(RejectReason::PROTOCOL_ERROR, &b);
                    return Ok(());
                }
            }
        };
        let (chunk, rest) = if body.len() > max {
            (body[..max].to_vec(), Some(body[max..].to_vec()))
        } else {
            (body, None)
        };
        let ttt = if let Some(rest) = rest {
            let ttt = self.ttt();
            self.text_rest = Some((ttt, rest));
            ttt
        } else {
            RESERVED_TAG
        };
        let r = TextResponse {
            final_: ttt == RESERVED_TAG,
            cont: ttt != RESERVED_TAG,
            lun: t.lun,
            itt: t.itt,
            ttt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        };
        self.push(&r, Bytes::from(chunk));
        Ok(())
    }

    fn text_answer(&self, keys: &[(String, String)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in keys {
            if k == "SendTargets" {
                let restrict = match (self.session_type, v.as_str()) {
                    (SessionType::Discovery, "All") => None,
                    (SessionType::Normal, "") | (SessionType::Normal, "All") => {
                        self.target.as_ref().map(|t| t.iqn.clone())
                    }
                    (_, name) => Some(name.to_string()),
                };
                out.extend(discovery::send_targets(
                    &self.registry,
                    &self.nexus.initiator,
                    self.peer.ip(),
                    self.local,
                    restrict.as_deref(),
                ));
            } else {
                text::emit(&[(k.as_str(), "NotUnderstood")], &mut out);
            }
        }
        out
    }

    fn logout(&mut self, l: LogoutRequest) -> Result<(), Fatal> {
        // Logout is accepted whatever its CmdSN (it is normally immediate).
        let _ = self.accept_cmd_sn(l.immediate, l.cmd_sn);
        let response = match l.reason {
            0 | 1 => 0,
            _ => 2, // connection recovery is not supported at ERL 0
        };
        let r = LogoutResponse {
            response,
            itt: l.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
            time2wait: self.params.default_time2wait,
            time2retain: self.params.default_time2retain,
        };
        self.push(&r, Bytes::new());
        if response == 0 {
            return Err(Fatal::Logout);
        }
        Ok(())
    }

    fn tmf(&mut self, t: TaskMgmtRequest) -> Result<(), Fatal> {
        if !self.accept_cmd_sn(t.immediate, t.cmd_sn) {
            return Ok(());
        }
        let lun_no = decode_lun(t.lun);
        let lun = self.lun_of(t.lun);
        let mut waiting = Vec::new();
        let response = match t.function {
            TmfFunction::AbortTask => {
                if let Some(task) = self.tasks.get_mut(&t.rtt) {
                    if task.cmd.lun != t.lun {
                        TmfResponse::NO_SUCH_TASK
                    } else {
                        waiting = self.abort_tasks(|id, _| id == t.rtt);
                        TmfResponse::COMPLETE
                    }
                } else {
                    // Already answered, or never arrived: either way nothing is running
                    // (RFC 7143 §11.5.1: respond Function Complete / Task Does Not Exist).
                    use hydra_proto::serial::Sn;
                    if Sn(t.ref_cmd_sn) < Sn(self.exp_cmd_sn) {
                        TmfResponse::COMPLETE
                    } else {
                        TmfResponse::NO_SUCH_TASK
                    }
                }
            }
            TmfFunction::AbortTaskSet | TmfFunction::ClearTaskSet => match &lun {
                Some(_) => {
                    waiting = self.abort_tasks(|_, task| task.cmd.lun == t.lun);
                    TmfResponse::COMPLETE
                }
                None => TmfResponse::NO_SUCH_LUN,
            },
            TmfFunction::LogicalUnitReset => match &lun {
                Some(l) => {
                    waiting = self.abort_tasks(|_, task| task.cmd.lun == t.lun);
                    l.lun_reset(&self.nexus);
                    TmfResponse::COMPLETE
                }
                None => TmfResponse::NO_SUCH_LUN,
            },
            TmfFunction::TargetWarmReset | TmfFunction::TargetColdReset => {
                waiting = self.abort_tasks(|_, _| true);
                if let Some(target) = &self.target {
                    for l in target.luns.read().expect("lock").values() {
                        l.target_reset(&self.nexus);
                    }
                }
                TmfResponse::COMPLETE
            }
            TmfFunction::TaskReassign => TmfResponse::REASSIGN_NOT_SUPPORTED,
            TmfFunction::ClearAca | TmfFunction::Unknown(_) => TmfResponse::NOT_SUPPORTED,
        };
        let _ = lun_no;
        if waiting.is_empty() {
            self.tmf_response(t.itt, response);
        } else {
            self.pending_tmfs.push(PendingTmf {
                itt: t.itt,
                waiting_for: waiting,
            });
        }
        Ok(())
    }

    /// Abort matching tasks. Those collecting data end at once; those running on the
    /// blocking pool cannot be interrupted, so their ITTs are returned to wait for.
    fn abort_tasks(&mut self, pred: impl Fn(u32, &Task) -> bool) -> Vec<u32> {
        let ids: Vec<u32> = self
            .tasks
            .iter()
            .filter(|(id, t)| pred(**id, t))
            .map(|(id, _)| *id)
            .collect();
        let mut running = Vec::new();
        for id in ids {
            let t = self.tasks.get_mut(&id).expect("task");
            match t.state {
                TaskState::Collecting(_) => {
                    self.tasks.remove(&id);
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                TaskState::Running => {
                    t.aborted = true;
                    running.push(id);
                }
            }
        }
        running
    }

    fn tmf_task_gone(&mut self, itt: u32) {
        let mut ready = Vec::new();
        for p in &mut self.pending_tmfs {
            p.waiting_for.retain(|i| *i != itt);
            if p.waiting_for.is_empty() {
                ready.push(p.itt);
            }
        }
        self.pending_tmfs.retain(|p| !p.waiting_for.is_empty());
        for itt in ready {
            self.tmf_response(itt, TmfResponse::COMPLETE);
        }
    }

    fn tmf_response(&mut self, itt: u32, response: u8) {
        let r = TaskMgmtResponse {
            response,
            itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn(),
        };
        self.push(&r, Bytes::new());
    }

    /// The LUN a PDU header addresses, for tests.
    pub fn bhs_lun(bhs: &[u8; BHS_LEN]) -> Option<u64> {
        decode_lun(Bhs::new_unchecked(&bhs[..]).lun())
    }
}

/// Run `f`, turning a panic into an internal target failure for this command only.
fn guarded(
    l: &Lun,
    f: impl FnOnce() -> Result<ScsiOutcome, lun::WouldBlock>,
) -> Result<ScsiOutcome, lun::WouldBlock> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("LUN {}: internal error while executing a command (bug): failed with HARDWARE ERROR", l.number());
            Ok(internal_failure(l))
        }
    }
}

fn internal_failure(l: &Lun) -> ScsiOutcome {
    error_outcome(
        &Sense::new(hydra_proto::scsi::sense::key::HARDWARE_ERROR, 0x44, 0x00),
        Some(l),
    )
}

fn error_outcome(sense: &Sense, lun: Option<&Lun>) -> ScsiOutcome {
    let descriptor = lun
        .and_then(|l| l.settings())
        .is_some_and(|s| s.sense_format == crate::lun::SenseFormat::Descriptor);
    ScsiOutcome {
        status: CHECK_CONDITION,
        sense: if descriptor {
            sense.descriptor()
        } else {
            sense.fixed()
        },
        data_in: Bytes::new(),
        data_out_len: None,
    }
}
