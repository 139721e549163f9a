//! The tokio driver of one session over one TCP connection: runs the login, then owns
//! the socket and the sans-IO [`Core`]; callers submit commands through a channel and
//! await their replies, so any number of commands can be in flight from any number of
//! tasks (the target's CmdSN window decides how many are on the wire).
//!
//! A command the target leaves unanswered is ended the way Linux's SCSI error handler
//! and open-iscsi do it: ABORT TASK, then LUN RESET, then dropping the connection
//! (RFC 7143 §11.5; session reinstatement at ErrorRecoveryLevel 0 ends whatever the
//! target still holds, §6.3.5).
//!
//! For a multipath layer above: [`Session::state`] reports every loss and return of
//! the connection with its [`DownReason`], [`Timeouts::fail_fast`] hands the commands
//! of a dead connection back at once, and [`Session::withdraw_all`] takes back those
//! stuck on a live but hopeless one.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hydra_proto::framing::{consume, encode, front_len, try_frame, Digests};
use hydra_proto::pdu::{Pdu, Repr, LOGIN_MAX_DATA};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::error::tmf_response_text;
use crate::login::{Established, Login, LoginConfig, Step};
use crate::path::{DownReason, PathState};
use crate::session::{Command, Core, Reply, Tmf, TmfOutcome};
use crate::{Error, Result};

enum Request {
    Command(Command, oneshot::Sender<Result<Reply>>),
    Logout(oneshot::Sender<Result<()>>),
    /// Fail every outstanding command with a path error and drop the connection; the
    /// answer is how many were withdrawn.
    Withdraw(oneshot::Sender<usize>),
}

/// A logged-in session.
pub struct Session {
    tx: mpsc::Sender<Request>,
    pub established: Established,
    pub peer: SocketAddr,
    link: Arc<Link>,
}

/// The state of the session's connection, as `iscsiadm -m session -P 1` shows it.
#[derive(Debug)]
struct Link {
    /// Our end of the current connection; `None` while reconnecting.
    local: Mutex<Option<SocketAddr>>,
    /// Up, down (and why), logged out: what [`Session::state`] watches.
    state: watch::Sender<PathState>,
}

impl Link {
    fn set(&self, local: Option<SocketAddr>, state: PathState) {
        *self.local.lock().expect("lock") = local;
        self.state.send_replace(state);
    }
}

pub(crate) async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    digests: Digests,
    max: usize,
) -> Result<hydra_proto::framing::Frame> {
    loop {
        if let Some(f) = try_frame(buf, digests, max).map_err(|e| Error::Protocol(e.to_string()))? {
            return Ok(f);
        }
        if stream
            .read_buf(buf)
            .await
            .map_err(|e| Error::io("read", e))?
            == 0
        {
            return Err(Error::Closed);
        }
    }
}

/// Read more of the stream. Small PDUs are read many at a time; the rest of a large one
/// (a big Data-In) is read exactly, so that it is cut off the buffer with nothing behind
/// it. Room for the largest PDU is reserved before its header arrives, so the buffer is
/// never regrown (and copied) in the middle of a PDU.
async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    digests: Digests,
    max_pdu: usize,
    lowat: &mut usize,
) -> std::io::Result<usize> {
    const SMALL: usize = 64 * 1024;
    let want = match front_len(buf, digests) {
        Some(total) if total > SMALL => total.saturating_sub(buf.len()).max(1),
        _ => SMALL,
    };
    buf.reserve(want.max(max_pdu.saturating_sub(buf.len())));
    // Wake when a good part of a large PDU's rest has arrived, not for every segment:
    // one wake-up per 256 KiB instead of per 64 KiB (socket(7) SO_RCVLOWAT; epoll
    // honours it for TCP).
    let wanted = if want > SMALL {
        want.min(256 * 1024)
    } else {
        1
    };
    if wanted != *lowat {
        set_rcvlowat(stream, wanted);
        *lowat = wanted;
    }
    stream.read_buf(&mut (&mut *buf).limit(want)).await
}

fn set_rcvlowat(stream: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: a valid socket descriptor and a c_int option value of the stated size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Write every chunk in order, as many per system call as the socket takes. When the
/// socket is full, wait for room — but no longer than `limit`: a target that stops
/// reading would otherwise hold this task in a write where neither the NOP-Out nor the
/// command timeouts can fire. (The usual case needs no timer: the socket has room.)
async fn write_all(stream: &mut TcpStream, mut chunks: Vec<Bytes>, limit: Duration) -> Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(64)
            .map(|c| IoSlice::new(c))
            .collect();
        match stream.try_write_vectored(&slices) {
            Ok(0) => return Err(Error::io("write", std::io::ErrorKind::WriteZero.into())),
            Ok(n) => consume(&mut chunks, &mut first, n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::timeout(limit, stream.writable())
                    .await
                    .map_err(|_| {
                        Error::Protocol(format!(
                            "the target took no data for {} s (it stopped reading)",
                            limit.as_secs()
                        ))
                    })?
                    .map_err(|e| Error::io("write", e))?;
            }
            Err(e) => return Err(Error::io("write", e)),
        }
    }
    Ok(())
}

/// How long to wait for things (open-iscsi's iscsid.conf names and defaults).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// `node.session.timeo.replacement_timeout`: how long commands wait for a lost
    /// connection to come back before they fail.
    pub replacement: Duration,
    /// `node.conn[0].timeo.noop_out_interval`: ping an idle connection this often.
    pub noop_interval: Duration,
    /// `node.conn[0].timeo.noop_out_timeout`: a ping unanswered this long means the
    /// connection is dead.
    pub noop_timeout: Duration,
    /// `node.conn[0].timeo.login_timeout`.
    pub login: Duration,
    /// The SCSI command timeout (Linux sd's `/sys/block/sdX/device/timeout`, 30 s): a
    /// command on the wire this long without an answer is aborted. `Duration::ZERO`
    /// means no timeout.
    pub command: Duration,
    /// `node.session.err_timeo.abort_timeout`: how long an ABORT TASK may go
    /// unanswered before the LUN is reset.
    pub abort: Duration,
    /// `node.session.err_timeo.lu_reset_timeout`: how long a LUN RESET may go
    /// unanswered before the connection is dropped.
    pub lu_reset: Duration,
    /// Hand commands back with [`Error::PathFailed`] as soon as the connection is
    /// declared dead (a reset or EOF at once, a silent loss after `noop_interval +
    /// noop_timeout`), and fail new ones while it is down, instead of holding them for
    /// `replacement` and resending them on the new connection. For a session under
    /// multipath, which retries on another path and queues itself when none is left
    /// (open-iscsi's advice for dm-multipath: a short replacement_timeout, queueing in
    /// dm). The session still reconnects in the background and [`Session::state`] says
    /// Up when it is back. Not an open-iscsi setting: node records leave it off, and
    /// `replacement` keeps its meaning for sessions without it. A command handed back
    /// that had been sent may still be executed by the target until the session is
    /// reinstated: see [`Session::withdraw_all`] for that hazard.
    pub fail_fast: bool,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            replacement: Duration::from_secs(120),
            noop_interval: Duration::from_secs(5),
            noop_timeout: Duration::from_secs(5),
            login: Duration::from_secs(15),
            command: Duration::from_secs(30),
            abort: Duration::from_secs(15),
            lu_reset: Duration::from_secs(30),
            fail_fast: false,
        }
    }
}

/// Connect and run the login; the connection and what the login settled.
pub(crate) async fn connect(
    addr: SocketAddr,
    cfg: &LoginConfig,
    timeout: Duration,
) -> Result<(TcpStream, BytesMut, Established)> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io(format!("connect to {addr}"), e))?;
        let _ = stream.set_nodelay(true);
        // Every close resets (RST) and drops unsent bytes, also the kernel's close
        // when this process dies: what was not delivered before a connection is given
        // up must never arrive later (see `drive`). A logout ends with nothing unsent.
        stream
            .set_zero_linger()
            .map_err(|e| Error::io(format!("SO_LINGER on the connection to {addr}"), e))?;
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| Error::Auth(format!("random: {e}")))?;
        let mut login = Login::new(cfg.clone(), random);
        let (req, data) = login.start();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut req_data = (req, data);
        let established = loop {
            let (req, data) = &req_data;
            stream
                .write_all(&encode(&req.emit(data.len()), data, Digests::default()))
                .await
                .map_err(|e| Error::io("login write", e))?;
            let f = read_frame(&mut stream, &mut buf, Digests::default(), LOGIN_MAX_DATA).await?;
            let Pdu::LoginResponse(r) = Pdu::parse(&f.bhs)? else {
                return Err(Error::Protocol("expected a Login Response".into()));
            };
            match login.receive(&r, &f.data)? {
                Step::Send(req, data) => req_data = (req, data),
                Step::Done(est) => break est,
            }
        };
        Ok((stream, buf, established))
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| {
        Error::io(
            format!("login to {addr}"),
            std::io::ErrorKind::TimedOut.into(),
        )
    })?
}

fn new_core(e: &Established) -> Core {
    Core::new(e.params.clone(), e.exp_stat_sn, e.exp_cmd_sn, e.max_cmd_sn)
}

impl Session {
    /// Connect to `addr` and log in, with open-iscsi's default timeouts.
    pub async fn login(addr: SocketAddr, cfg: LoginConfig) -> Result<Session> {
        Self::login_with(addr, cfg, Timeouts::default()).await
    }

    /// Connect and log in. The first login must succeed; afterwards a lost connection
    /// is re-established (same ISID: the target reinstates the session) and the
    /// commands in flight are sent again, or failed once `t.replacement` has passed.
    pub async fn login_with(addr: SocketAddr, cfg: LoginConfig, t: Timeouts) -> Result<Session> {
        let (stream, buf, established) = connect(addr, &cfg, t.login).await?;
        let (tx, rx) = mpsc::channel(1024);
        let core = new_core(&established);
        let link = Arc::new(Link {
            local: Mutex::new(stream.local_addr().ok()),
            state: watch::Sender::new(PathState::Up {
                since: Instant::now(),
            }),
        });
        tokio::spawn(drive(addr, cfg, t, (stream, buf), core, rx, link.clone()));
        Ok(Session {
            tx,
            established,
            peer: addr,
            link,
        })
    }

    /// Our address on the current connection; `None` while it is being re-established.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *self.link.local.lock().expect("lock")
    }

    /// Whether the connection is up (not lost and being re-established).
    pub fn is_connected(&self) -> bool {
        self.local_addr().is_some()
    }

    /// The path's state as events: a receiver that sees every change (Up, Down with
    /// its reason, LoggedOut), for `changed().await` or `wait_for(..)`.
    pub fn state(&self) -> watch::Receiver<PathState> {
        self.link.state.subscribe()
    }

    /// The path's state now.
    pub fn path_state(&self) -> PathState {
        self.link.state.borrow().clone()
    }

    /// Take back every command of this session that has not been answered: each
    /// fails at once with [`Error::PathFailed`] (reason [`DownReason::Withdrawn`]), so
    /// that a multipath layer can send it on another path. Returns how many.
    ///
    /// The connection is dropped, not cleaned up command by command with ABORT TASK:
    /// aborting each would wait a round trip (or `abort_timeout`, on a path that is
    /// stuck, which is why one withdraws), while a dropped connection at
    /// ErrorRecoveryLevel 0 fails the session, and the reconnect that follows logs in
    /// with the same ISID and TSIH 0, a session reinstatement, which makes the target
    /// terminate every task of the old session before the new one runs (RFC 7143
    /// §6.3.5).
    ///
    /// No command comes back before the connection is reset (RST, SO_LINGER 0): the
    /// bytes the target's TCP had not acknowledged are dropped by our kernel, so a
    /// withdrawn WRITE cannot arrive later, once a cut link heals, over what was
    /// written meanwhile through another path. What the target did receive
    /// it ran at once, unless it still waits for that command's data (R2T) or for an
    /// earlier CmdSN, neither of which can come now; the reinstatement at the next
    /// login, or the target's own cleanup when the failed connection's state times
    /// out (DefaultTime2Wait + DefaultTime2Retain, RFC 7143 §11.14.5 case b, transition
    /// M1 of §8.2.2), ends those. The one case left is a command the target holds in
    /// a stalled backing store. [`Error::PathFailed`]'s `sent` says which commands
    /// went on the wire.
    pub async fn withdraw_all(&self) -> Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Withdraw(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Run one command and wait for its reply.
    pub async fn execute(&self, cmd: Command) -> Result<Reply> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Command(cmd, tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Log out (closes the session).
    pub async fn logout(self) -> Result<()> {
        self.close().await
    }

    /// Log out through a shared handle (the daemon's registry holds sessions in `Arc`s);
    /// commands sent afterwards fail with [`Error::Closed`].
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Logout(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

type Waiter = oneshot::Sender<Result<Reply>>;

/// A command the driver waits on.
struct Waiting {
    reply: Waiter,
    lun: u64,
    /// When the core put it on the wire; `None` while it waits for the CmdSN window
    /// (like Linux, whose command timer does not run while the CmdSN window holds a
    /// command back in the block layer).
    sent: Option<Instant>,
}

/// Hand a command to the core and remember who waits for it.
fn submit(core: &mut Core, waiting: &mut HashMap<u32, Waiting>, cmd: Command, reply: Waiter) {
    let lun = cmd.lun;
    let itt = core.submit(cmd);
    let sent = core.is_sent(itt).then(Instant::now);
    waiting.insert(itt, Waiting { reply, lun, sent });
}

/// Fail a command that timed out, saying what ended it.
fn fail_timed_out(
    waiting: &mut HashMap<u32, Waiting>,
    itt: u32,
    recovered: &'static str,
    now: Instant,
) {
    if let Some(w) = waiting.remove(&itt) {
        let secs = w.sent.map_or(0, |s| (now - s).as_secs());
        tracing::warn!(
            "ITT 0x{itt:08x} LUN {}: failing the command after {secs} s, ended by {recovered}",
            w.lun
        );
        let _ = w.reply.send(Err(Error::TimedOut { secs, recovered }));
    }
}

/// Where a timed-out command is in the error handling ladder.
enum EhStep {
    /// ABORT TASK sent (its ITT) at this time.
    Aborting { tmf: u32, since: Instant },
    /// Waiting for a LUN RESET of its LUN.
    Resetting,
}

struct Overdue {
    lun: u64,
    step: EhStep,
}

/// The error handling of one connection's timed-out commands: open-iscsi's
/// iscsi_eh_abort (ABORT TASK, `abort_timeout`), then iscsi_eh_device_reset (LUN RESET,
/// `lu_reset_timeout`), then giving up on the connection. Task management requests die
/// with their connection, so this does too.
#[derive(Default)]
struct Recovery {
    /// Commands past the command timeout, by ITT.
    cmds: HashMap<u32, Overdue>,
    /// LUN RESETs sent and unanswered: LUN → (the request's ITT, when sent).
    resets: HashMap<u64, (u32, Instant)>,
}

impl Recovery {
    /// Start the clocks of commands the core has sent since, abort those past the
    /// command timeout, escalate unanswered aborts; an unanswered LUN RESET ends the
    /// connection.
    fn check(
        &mut self,
        core: &mut Core,
        waiting: &mut HashMap<u32, Waiting>,
        t: &Timeouts,
        now: Instant,
    ) -> Result<()> {
        let mut expired = Vec::new();
        for (itt, w) in waiting.iter_mut() {
            match w.sent {
                None if core.is_sent(*itt) => w.sent = Some(now),
                Some(s) if now - s >= t.command && !self.cmds.contains_key(itt) => {
                    expired.push((*itt, w.lun));
                }
                _ => {}
            }
        }
        expired.sort_unstable();
        for (itt, lun) in expired {
            // None: answered in the meantime, nothing to do.
            if let Some(tmf) = core.abort_task(itt) {
                tracing::warn!(
                    "ITT 0x{itt:08x} LUN {lun}: no answer in {} s; sending ABORT TASK (ITT 0x{tmf:08x})",
                    t.command.as_secs()
                );
                let step = EhStep::Aborting { tmf, since: now };
                self.cmds.insert(itt, Overdue { lun, step });
            }
        }
        let mut late: Vec<(u32, u64)> = self
            .cmds
            .iter()
            .filter(
                |(_, c)| matches!(c.step, EhStep::Aborting { since, .. } if now - since >= t.abort),
            )
            .map(|(itt, c)| (*itt, c.lun))
            .collect();
        late.sort_unstable();
        for (itt, lun) in late {
            tracing::warn!(
                "ITT 0x{itt:08x} LUN {lun}: ABORT TASK unanswered for {} s (abort_timeout)",
                t.abort.as_secs()
            );
            self.escalate(core, itt, lun, now);
        }
        if let Some((lun, (tmf, _))) = self
            .resets
            .iter()
            .find(|(_, (_, since))| now - *since >= t.lu_reset)
        {
            tracing::warn!(
                "LUN {lun}: LUN RESET (ITT 0x{tmf:08x}) unanswered for {} s (lu_reset_timeout); dropping the connection",
                t.lu_reset.as_secs()
            );
            return Err(Error::Protocol(format!(
                "task management unanswered: LUN RESET of LUN {lun} (ITT 0x{tmf:08x}) got no response in {} s",
                t.lu_reset.as_secs()
            )));
        }
        Ok(())
    }

    /// The abort of `itt` failed: reset its LUN (one LUN RESET serves every command of
    /// the LUN it covers).
    fn escalate(&mut self, core: &mut Core, itt: u32, lun: u64, now: Instant) {
        self.cmds.insert(
            itt,
            Overdue {
                lun,
                step: EhStep::Resetting,
            },
        );
        self.resets.entry(lun).or_insert_with(|| {
            let tmf = core.lun_reset(lun);
            tracing::warn!("ITT 0x{itt:08x} LUN {lun}: sending LUN RESET (ITT 0x{tmf:08x})");
            (tmf, now)
        });
    }

    /// A Task Management Function Response arrived.
    fn outcome(
        &mut self,
        core: &mut Core,
        waiting: &mut HashMap<u32, Waiting>,
        o: TmfOutcome,
        now: Instant,
    ) -> Result<()> {
        let answer = tmf_response_text(o.response);
        match o.function {
            Tmf::AbortTask { itt, lun } if o.succeeded() => {
                tracing::warn!("ITT 0x{itt:08x} LUN {lun}: ABORT TASK answered {answer}");
                // Nothing ended when its own response came first: its waiter has it.
                self.cmds.remove(&itt);
                for e in o.ended {
                    fail_timed_out(waiting, e, "ABORT TASK", now);
                }
            }
            Tmf::AbortTask { itt, lun } => {
                tracing::warn!("ITT 0x{itt:08x} LUN {lun}: ABORT TASK refused: {answer}");
                let current = matches!(
                    self.cmds.get(&itt),
                    Some(Overdue { step: EhStep::Aborting { tmf, .. }, .. }) if *tmf == o.itt
                );
                if current {
                    self.escalate(core, itt, lun, now);
                }
            }
            Tmf::LunReset { lun } => {
                self.resets.remove(&lun);
                if !o.succeeded() {
                    tracing::warn!(
                        "LUN {lun}: LUN RESET refused: {answer}; dropping the connection"
                    );
                    return Err(Error::Protocol(format!(
                        "task management failed: LUN RESET of LUN {lun} answered {answer}"
                    )));
                }
                tracing::warn!(
                    "LUN {lun}: LUN RESET answered {answer}; it ended {} command(s)",
                    o.ended.len()
                );
                for e in o.ended {
                    self.cmds.remove(&e);
                    fail_timed_out(waiting, e, "LUN RESET", now);
                }
                // Timed-out commands of this LUN sent after the reset went out were not
                // covered by it (RFC 7143 §11.5.1: lower CmdSNs only): they need their own.
                let mut left: Vec<u32> = self
                    .cmds
                    .iter()
                    .filter(|(_, c)| c.lun == lun && matches!(c.step, EhStep::Resetting))
                    .map(|(itt, _)| *itt)
                    .collect();
                left.sort_unstable();
                for itt in left {
                    if core.is_sent(itt) {
                        self.escalate(core, itt, lun, now);
                    } else {
                        self.cmds.remove(&itt);
                    }
                }
            }
        }
        Ok(())
    }
}

/// How one connection ended.
enum Ended {
    /// Logged out, or every handle to the session is gone.
    Done,
    Failed(Lost),
}

/// Why a connection was given up: what the path state reports, and the error.
struct Lost {
    reason: DownReason,
    error: Error,
    /// Commands to hand back only once the connection is reset (see [`drive`]):
    /// withdrawn ones that went on the wire, with their error...
    withdrawn: Vec<Held>,
    /// ... and the ITTs of commands past their timeout, which fail then.
    timed_out: Vec<u32>,
}

impl From<Error> for Lost {
    /// A socket error or EOF is the target resetting or closing the connection; any
    /// other error that ends it is a protocol error.
    fn from(error: Error) -> Lost {
        let reason = match error {
            Error::Io { .. } | Error::Closed => DownReason::Reset,
            _ => DownReason::Protocol,
        };
        Lost::because(reason)(error)
    }
}

impl Lost {
    fn because(reason: DownReason) -> impl FnOnce(Error) -> Lost {
        move |error| Lost {
            reason,
            error,
            withdrawn: Vec::new(),
            timed_out: Vec::new(),
        }
    }

    /// A write that failed: a socket error is a reset; a write that made no progress
    /// for a ping's time ([`write_all`]) is a silent loss.
    fn writing(error: Error) -> Lost {
        match error {
            Error::Io { .. } => Lost::from(error),
            _ => Lost::because(DownReason::NopTimeout)(error),
        }
    }
}

fn path_failed(addr: SocketAddr, reason: DownReason, sent: bool) -> Error {
    Error::PathFailed {
        addr: addr.to_string(),
        reason,
        sent,
    }
}

/// A command taken off a lost connection, to send again or to fail.
struct Held {
    cmd: Command,
    reply: Waiter,
    /// It had gone on the wire (see [`Error::PathFailed`]).
    sent: bool,
}

/// Take every unanswered command out of the core, with whoever waits for it.
fn take_outstanding(core: &mut Core, waiting: &mut HashMap<u32, Waiting>) -> Vec<Held> {
    let on_wire: Vec<u32> = waiting
        .keys()
        .copied()
        .filter(|itt| core.is_sent(*itt))
        .collect();
    core.drain()
        .into_iter()
        .filter_map(|(itt, cmd)| {
            waiting.remove(&itt).map(|w| Held {
                cmd,
                reply: w.reply,
                sent: on_wire.contains(&itt),
            })
        })
        .collect()
}

/// Fail commands with a path error.
fn fail_path(held: Vec<Held>, addr: SocketAddr, reason: DownReason) {
    for h in held {
        let _ = h.reply.send(Err(path_failed(addr, reason, h.sent)));
    }
}

/// The session's one task: runs a connection; when it fails, reconnects and resends
/// (or, fail-fast, hands the commands back at once).
async fn drive(
    addr: SocketAddr,
    cfg: LoginConfig,
    t: Timeouts,
    (mut stream, mut buf): (TcpStream, BytesMut),
    mut core: Core,
    mut rx: mpsc::Receiver<Request>,
    link: Arc<Link>,
) {
    let mut waiting: HashMap<u32, Waiting> = HashMap::new();
    loop {
        let run = run(
            &mut stream,
            &mut buf,
            &mut core,
            &mut rx,
            &mut waiting,
            t,
            addr,
        );
        let mut lost = match run.await {
            Ended::Done => {
                link.set(None, PathState::LoggedOut);
                return;
            }
            Ended::Failed(lost) => lost,
        };
        // Reset the connection before a single command goes back: with SO_LINGER 0
        // (see `connect`) the close sends RST and the kernel drops what the target has
        // not acknowledged. Closed normally, or kept until the reconnect, its unsent
        // bytes would be retransmitted once a silent cut heals and the target would
        // run a WRITE that the caller meanwhile sent on another path, over whatever
        // was written there since (the fault run's seed 9 lost records that way).
        drop(stream);
        let down = Instant::now();
        for itt in std::mem::take(&mut lost.timed_out) {
            fail_timed_out(&mut waiting, itt, "dropping the connection", down);
        }
        fail_path(
            std::mem::take(&mut lost.withdrawn),
            addr,
            DownReason::Withdrawn,
        );
        tracing::warn!(
            "connection to {addr} lost ({}): {}; reconnecting",
            lost.reason,
            lost.error
        );
        link.set(
            None,
            PathState::Down {
                reason: lost.reason,
                since: down,
            },
        );
        // Commands to send again on the new connection, with whoever waits for them.
        let mut resend = take_outstanding(&mut core, &mut waiting);
        if t.fail_fast {
            fail_path(std::mem::take(&mut resend), addr, lost.reason);
        }
        // One attempt after the other, a second apart, never cancelled by a request
        // arriving meanwhile. A refused login is reported as the reason the path stays
        // down; open-iscsi's session recovery keeps trying too.
        let reconnect = async {
            loop {
                match connect(addr, &cfg, t.login).await {
                    Ok(c) => return c,
                    Err(e) => {
                        tracing::info!("reconnect to {addr}: {e}");
                        if let Error::LoginRefused(status) = e {
                            let reason = DownReason::LoginRefused(status);
                            link.set(
                                None,
                                PathState::Down {
                                    reason,
                                    since: down,
                                },
                            );
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        };
        tokio::pin!(reconnect);
        let mut expired = false;
        let conn = loop {
            tokio::select! {
                c = &mut reconnect => break c,
                req = rx.recv() => match req {
                    Some(Request::Command(_, w)) if t.fail_fast => {
                        let reason = match *link.state.borrow() {
                            PathState::Down { reason, .. } => reason,
                            _ => lost.reason,
                        };
                        let _ = w.send(Err(path_failed(addr, reason, false)));
                    }
                    Some(Request::Command(_, w)) if expired => {
                        let _ = w.send(Err(unreachable(addr, down)));
                    }
                    Some(Request::Command(cmd, reply)) => {
                        resend.push(Held { cmd, reply, sent: false });
                    }
                    Some(Request::Withdraw(w)) => {
                        let _ = w.send(resend.len());
                        fail_path(std::mem::take(&mut resend), addr, DownReason::Withdrawn);
                    }
                    Some(Request::Logout(w)) => {
                        let _ = w.send(Ok(()));
                        fail_all(resend, addr, down);
                        link.set(None, PathState::LoggedOut);
                        return;
                    }
                    None => {
                        link.set(None, PathState::LoggedOut);
                        return;
                    }
                },
                _ = tokio::time::sleep_until(down + t.replacement), if !expired => {
                    tracing::warn!("{addr}: replacement_timeout ({} s) passed; failing commands", t.replacement.as_secs());
                    expired = true;
                    fail_all(std::mem::take(&mut resend), addr, down);
                }
            }
        };
        let (s, b, est) = conn;
        tracing::info!("reconnected to {addr} (tsih {})", est.tsih);
        link.set(
            s.local_addr().ok(),
            PathState::Up {
                since: Instant::now(),
            },
        );
        stream = s;
        buf = b;
        core = new_core(&est);
        for h in resend {
            submit(&mut core, &mut waiting, h.cmd, h.reply);
        }
    }
}

fn unreachable(addr: SocketAddr, since: tokio::time::Instant) -> Error {
    Error::Unreachable {
        addr: addr.to_string(),
        secs: since.elapsed().as_secs(),
    }
}

fn fail_all(v: Vec<Held>, addr: SocketAddr, since: tokio::time::Instant) {
    for h in v {
        let _ = h.reply.send(Err(unreachable(addr, since)));
    }
}

/// One connection's life: commands in, PDUs out, replies back, NOP-Out pings when idle,
/// task management for commands past their timeout.
/// Commands taken from the queue per write at most.
const BATCH: usize = 8;

#[allow(clippy::too_many_arguments)]
async fn run(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    core: &mut Core,
    rx: &mut mpsc::Receiver<Request>,
    waiting: &mut HashMap<u32, Waiting>,
    t: Timeouts,
    addr: SocketAddr,
) -> Ended {
    let mut logout: Option<oneshot::Sender<Result<()>>> = None;
    // A whole PDU of the largest size we accept: header, digests, padded data.
    let max_pdu = 48 + 8 + core.max_recv() + 3 + 4;
    let mut lowat = 1;
    let mut nop = Nop::new(&t, Instant::now());
    let mut period = Duration::from_secs(1);
    if !t.command.is_zero() {
        // Fine enough that the task management timeouts are kept to within a quarter.
        period = period.min(t.command.min(t.abort).min(t.lu_reset) / 4);
    }
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(100)));
    let mut recovery = Recovery::default();
    // How long a write may make no progress: what a ping would allow, else the command
    // timeout (open-iscsi's noop_out 0 turns pings off).
    let stall = if t.noop_timeout.is_zero() {
        t.command.max(Duration::from_secs(30))
    } else {
        t.noop_interval + t.noop_timeout
    };
    // Commands that were resent are already queued in the core.
    let first = core.take_output();
    if let Err(e) = write_all(stream, first, stall).await {
        return Ended::Failed(Lost::writing(e));
    }
    let result: Result<bool, Lost> = async {
        loop {
            nop.waiting(core.outstanding() > 0, Instant::now());
            tokio::select! {
                req = rx.recv(), if logout.is_none() => match req {
                    Some(mut req) => {
                        // Requests queued meanwhile go out in the same write, a few at a
                        // time: one syscall for several small PDUs, without holding back
                        // the first behind a long burst.
                        let mut taken = 1;
                        loop {
                            match req {
                                Request::Command(c, reply) => submit(core, waiting, c, reply),
                                Request::Logout(reply) => {
                                    core.logout();
                                    logout = Some(reply);
                                    break;
                                }
                                Request::Withdraw(reply) => {
                                    let held = take_outstanding(core, waiting);
                                    let (n, any_sent) = (held.len(), held.iter().any(|h| h.sent));
                                    let _ = reply.send(n);
                                    if any_sent {
                                        // Sent commands end with the connection, and go
                                        // back only once it is reset; see
                                        // Session::withdraw_all.
                                        let mut lost = Lost::because(DownReason::Withdrawn)(
                                            Error::Protocol(format!("{n} command(s) withdrawn")),
                                        );
                                        lost.withdrawn = held;
                                        return Err(lost);
                                    }
                                    // None reached the socket: nothing to take back.
                                    fail_path(held, addr, DownReason::Withdrawn);
                                    break;
                                }
                            }
                            if taken == BATCH {
                                break;
                            }
                            match rx.try_recv() {
                                Ok(next) => (req, taken) = (next, taken + 1),
                                Err(_) => break,
                            }
                        }
                    }
                    None => return Ok(true),
                },
                n = read_more(stream, buf, core.digests(), max_pdu, &mut lowat) => {
                    if n.map_err(|e| Error::io("read", e))? == 0 {
                        return Err(Error::Closed.into());
                    }
                    nop.received(Instant::now());
                    while let Some(f) = try_frame(buf, core.digests(), core.max_recv())
                        .map_err(|e| Error::Protocol(e.to_string()))?
                    {
                        if matches!(Pdu::parse(&f.bhs), Ok(Pdu::LogoutResponse(_))) {
                            if let Some(l) = logout.take() {
                                let _ = l.send(Ok(()));
                            }
                            return Ok(true);
                        }
                        for (itt, reply) in core.receive(f)? {
                            if let Some(w) = waiting.remove(&itt) {
                                let _ = w.reply.send(Ok(reply));
                            }
                        }
                        for o in core.take_tmf_outcomes() {
                            let now = Instant::now();
                            recovery
                                .outcome(core, waiting, o, now)
                                .map_err(Lost::because(DownReason::CommandTimeout))?;
                        }
                    }
                }
                _ = tokio::time::sleep_until(nop.deadline()), if nop.enabled() => {
                    nop.expired(core, Instant::now())
                        .map_err(Lost::because(DownReason::NopTimeout))?;
                }
                _ = tick.tick(), if !t.command.is_zero() => {
                    recovery
                        .check(core, waiting, &t, Instant::now())
                        .map_err(Lost::because(DownReason::CommandTimeout))?;
                }
            }
            let out = core.take_output();
            if !out.is_empty() {
                write_all(stream, out, stall).await.map_err(Lost::writing)?;
            }
        }
    }
    .await;
    match result {
        Ok(_) => {
            for (_, w) in waiting.drain() {
                let _ = w.reply.send(Err(Error::Closed));
            }
            Ended::Done
        }
        Err(mut lost) => {
            if let Some(l) = logout {
                // Logging out: the connection going away is the end either way.
                let _ = l.send(Ok(()));
                return Ended::Done;
            }
            // Commands already past their timeout are not sent again on the next
            // connection: they fail once it is reset (the target's reinstatement of
            // the session at login ends whatever it still holds, RFC 7143 §6.3.5).
            lost.timed_out = recovery.cmds.keys().copied().collect();
            lost.timed_out.sort_unstable();
            Ended::Failed(lost)
        }
    }
}

/// A silence this long while commands wait for their answers is already unusual on a
/// storage network: the ping goes out then instead of at the end of the idle interval
/// (never later than it). Only when the ping goes out changes; the connection is still
/// declared dead only when the ping is not answered within `noop_out_timeout`, so a
/// slow command on a live link costs one NOP-Out and nothing else.
const BUSY_PROBE: Duration = Duration::from_millis(250);

/// The NOP-Out ping (open-iscsi's `noop_out_interval`, `noop_out_timeout`; RFC 7143
/// §11.18): a ping once nothing came for the interval — or for [`BUSY_PROBE`] while
/// commands wait — and the connection declared dead when nothing came for the timeout
/// after it. Its deadline is exact, so a silent loss is known at most `noop_interval +
/// noop_timeout` after the last PDU received (under load, `BUSY_PROBE +
/// noop_timeout`), not a timer tick later. An interval or timeout of 0 turns it off.
struct Nop {
    interval: Duration,
    timeout: Duration,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    /// Since when commands have been waiting for answers without a pause.
    waiting_since: Option<Instant>,
}

impl Nop {
    fn new(t: &Timeouts, now: Instant) -> Nop {
        Nop {
            interval: t.noop_interval,
            timeout: t.noop_timeout,
            last_rx: now,
            ping_sent: None,
            waiting_since: None,
        }
    }

    fn enabled(&self) -> bool {
        !self.interval.is_zero() && !self.timeout.is_zero()
    }

    /// Anything from the target answers a ping: the link works.
    fn received(&mut self, now: Instant) {
        self.last_rx = now;
        self.ping_sent = None;
    }

    /// Whether commands wait for answers now.
    fn waiting(&mut self, commands: bool, now: Instant) {
        match (commands, self.waiting_since) {
            (true, None) => self.waiting_since = Some(now),
            (false, Some(_)) => self.waiting_since = None,
            _ => {}
        }
    }

    /// When the ping is due: the idle interval after the last PDU, or earlier while
    /// commands have waited through a [`BUSY_PROBE`] of silence.
    fn ping_due(&self) -> Instant {
        let idle = self.last_rx + self.interval;
        match self.waiting_since {
            Some(since) => idle.min(self.last_rx.max(since) + BUSY_PROBE),
            None => idle,
        }
    }

    /// When to look again: the ping's timeout, or when the ping is due.
    fn deadline(&self) -> Instant {
        match self.ping_sent {
            Some(at) => at + self.timeout,
            None => self.ping_due(),
        }
    }

    /// The deadline passed: ping, or give up on the connection.
    fn expired(&mut self, core: &mut Core, now: Instant) -> Result<()> {
        match self.ping_sent {
            Some(at) if now - at >= self.timeout => Err(Error::Protocol(format!(
                "no answer to a NOP-Out for {:.1} s (noop_out_timeout)",
                self.timeout.as_secs_f64()
            ))),
            Some(_) => Ok(()),
            None if now >= self.ping_due() => {
                core.ping();
                self.ping_sent = Some(now);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The error handling ladder, driven with a sans-IO core and chosen instants: no
    //! socket, no sleeping.

    use super::*;
    use crate::session::testing::{core, core_window, parse_tmf, read, sent, tmf_response};
    use hydra_proto::pdu::{TaskMgmtRequest, TmfFunction};

    fn t() -> Timeouts {
        Timeouts {
            command: Duration::from_secs(30),
            abort: Duration::from_secs(15),
            lu_reset: Duration::from_secs(30),
            ..Timeouts::default()
        }
    }

    type Rx = oneshot::Receiver<Result<Reply>>;

    /// Submit a READ on `lun` as if it had gone on the wire at `at`.
    fn issue(core: &mut Core, waiting: &mut HashMap<u32, Waiting>, lun: u64, at: Instant) -> Rx {
        let (tx, rx) = oneshot::channel();
        submit(core, waiting, read(lun), tx);
        // ITTs only grow here: the newest command has the largest.
        let itt = *waiting.keys().max().expect("submitted");
        waiting.get_mut(&itt).expect("waiting").sent = Some(at);
        rx
    }

    /// The task management requests the core wrote.
    fn tmfs_sent(core: &mut Core) -> Vec<TaskMgmtRequest> {
        sent(core)
            .iter()
            .filter(|f| matches!(Pdu::parse(&f.bhs), Ok(Pdu::TaskMgmtRequest(_))))
            .map(parse_tmf)
            .collect()
    }

    /// Feed the target's answer to a TMF through the core into the ladder.
    fn answer(
        rec: &mut Recovery,
        core: &mut Core,
        waiting: &mut HashMap<u32, Waiting>,
        itt: u32,
        response: u8,
        now: Instant,
    ) -> Result<()> {
        core.receive(tmf_response(itt, response, 1))?;
        for o in core.take_tmf_outcomes() {
            rec.outcome(core, waiting, o, now)?;
        }
        Ok(())
    }

    fn timed_out(rx: &mut Rx) -> &'static str {
        match rx.try_recv() {
            Ok(Err(Error::TimedOut { recovered, .. })) => recovered,
            other => panic!("expected TimedOut, got {other:?}"),
        }
    }

    #[test]
    fn abort_task_answered_fails_the_command_with_timed_out() {
        let (mut c, mut w, mut rec, t0) =
            (core(), HashMap::new(), Recovery::default(), Instant::now());
        let mut a = issue(&mut c, &mut w, 1, t0);
        let _ = c.take_output();
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(29))
            .unwrap();
        assert!(tmfs_sent(&mut c).is_empty(), "not yet due");
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(30))
            .unwrap();
        let sent = tmfs_sent(&mut c);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].function, TmfFunction::AbortTask);
        // Not aborted twice.
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(31))
            .unwrap();
        assert!(tmfs_sent(&mut c).is_empty());
        let now = t0 + Duration::from_secs(32);
        answer(&mut rec, &mut c, &mut w, sent[0].itt, 0, now).unwrap();
        assert_eq!(timed_out(&mut a), "ABORT TASK");
        assert!(w.is_empty() && rec.cmds.is_empty());
        assert_eq!(c.outstanding(), 0);
    }

    #[test]
    fn unanswered_abort_escalates_to_lun_reset_of_that_lun() {
        let (mut c, mut w, mut rec) = (core(), HashMap::new(), Recovery::default());
        let t0 = Instant::now();
        let mut a = issue(&mut c, &mut w, 1, t0);
        let mut b = issue(&mut c, &mut w, 1, t0 + Duration::from_secs(20));
        let mut other = issue(&mut c, &mut w, 2, t0 + Duration::from_secs(20));
        let _ = c.take_output();
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(30))
            .unwrap();
        let abort = tmfs_sent(&mut c);
        assert_eq!(abort.len(), 1);
        assert_eq!(abort[0].function, TmfFunction::AbortTask);
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(44))
            .unwrap();
        assert!(tmfs_sent(&mut c).is_empty(), "abort_timeout not passed yet");
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(45))
            .unwrap();
        let reset = tmfs_sent(&mut c);
        assert_eq!(reset.len(), 1, "{reset:?}");
        assert_eq!(reset[0].function, TmfFunction::LogicalUnitReset);
        assert_eq!(reset[0].lun, hydra_proto::scsi::encode_lun(1));
        let now = t0 + Duration::from_secs(46);
        answer(&mut rec, &mut c, &mut w, reset[0].itt, 0, now).unwrap();
        // Every command of LUN 1 was ended by the reset, not only the timed-out one.
        assert_eq!(timed_out(&mut a), "LUN RESET");
        assert_eq!(timed_out(&mut b), "LUN RESET");
        assert!(other.try_recv().is_err(), "LUN 2 untouched");
        assert_eq!(w.len(), 1);
        assert!(rec.cmds.is_empty() && rec.resets.is_empty());
        // The late answer to the abort changes nothing.
        answer(&mut rec, &mut c, &mut w, abort[0].itt, 1, now).unwrap();
        assert_eq!(w.len(), 1);
        assert!(tmfs_sent(&mut c).is_empty());
    }

    #[test]
    fn refused_abort_escalates_and_unanswered_reset_drops_the_connection() {
        let (mut c, mut w, mut rec, t0) =
            (core(), HashMap::new(), Recovery::default(), Instant::now());
        let _a = issue(&mut c, &mut w, 1, t0);
        let _ = c.take_output();
        let now = t0 + Duration::from_secs(30);
        rec.check(&mut c, &mut w, &t(), now).unwrap();
        let abort = tmfs_sent(&mut c);
        answer(&mut rec, &mut c, &mut w, abort[0].itt, 5, now).unwrap();
        let reset = tmfs_sent(&mut c);
        assert_eq!(reset.len(), 1);
        assert_eq!(reset[0].function, TmfFunction::LogicalUnitReset);
        rec.check(&mut c, &mut w, &t(), now + Duration::from_secs(29))
            .unwrap();
        match rec.check(&mut c, &mut w, &t(), now + Duration::from_secs(30)) {
            Err(Error::Protocol(m)) => assert!(m.contains("task management unanswered"), "{m}"),
            other => panic!("expected a dropped connection, got {other:?}"),
        }
        // The timed-out command is still known, for run() to fail it instead of resending.
        assert_eq!(rec.cmds.len(), 1);
    }

    #[test]
    fn refused_lun_reset_drops_the_connection() {
        let (mut c, mut w, mut rec, t0) =
            (core(), HashMap::new(), Recovery::default(), Instant::now());
        let _a = issue(&mut c, &mut w, 1, t0);
        let _ = c.take_output();
        let now = t0 + Duration::from_secs(45);
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(30))
            .unwrap();
        rec.check(&mut c, &mut w, &t(), now).unwrap();
        let reset: Vec<_> = tmfs_sent(&mut c)
            .into_iter()
            .filter(|r| r.function == TmfFunction::LogicalUnitReset)
            .collect();
        assert!(matches!(
            answer(&mut rec, &mut c, &mut w, reset[0].itt, 255, now),
            Err(Error::Protocol(_))
        ));
    }

    /// A silent loss is declared exactly noop_interval + noop_timeout after the last
    /// PDU, and anything received in between calls it off.
    #[test]
    fn nop_pings_when_idle_and_declares_a_silent_loss() {
        let t = Timeouts {
            noop_interval: Duration::from_secs(1),
            noop_timeout: Duration::from_secs(2),
            ..Timeouts::default()
        };
        let (mut c, t0) = (core(), Instant::now());
        let mut nop = Nop::new(&t, t0);
        assert!(nop.enabled());
        assert_eq!(nop.deadline(), t0 + Duration::from_secs(1));
        nop.expired(&mut c, t0 + Duration::from_secs(1)).unwrap();
        let ping = sent(&mut c);
        assert_eq!(ping.len(), 1);
        assert!(matches!(Pdu::parse(&ping[0].bhs), Ok(Pdu::NopOut(_))));
        assert_eq!(nop.deadline(), t0 + Duration::from_secs(3));
        // An early wake-up changes nothing.
        nop.expired(&mut c, t0 + Duration::from_secs(2)).unwrap();
        assert!(sent(&mut c).is_empty());
        let e = nop
            .expired(&mut c, t0 + Duration::from_secs(3))
            .unwrap_err();
        assert!(e.to_string().contains("noop_out_timeout"), "{e}");
        // An answer in time starts the interval again.
        let mut nop = Nop::new(&t, t0);
        nop.expired(&mut c, t0 + Duration::from_secs(1)).unwrap();
        nop.received(t0 + Duration::from_millis(2500));
        assert_eq!(nop.deadline(), t0 + Duration::from_millis(3500));
        // Zero turns it off (open-iscsi's noop_out_interval = 0).
        let off = Timeouts {
            noop_interval: Duration::ZERO,
            ..t
        };
        assert!(!Nop::new(&off, t0).enabled());
    }

    /// While commands wait, a BUSY_PROBE of silence is enough for the ping; the loss is
    /// still declared only noop_timeout after an unanswered ping. A command sent after
    /// an idle spell gets its own BUSY_PROBE, and the idle interval stays the latest.
    #[test]
    fn nop_pings_sooner_while_commands_wait() {
        let t = Timeouts {
            noop_interval: Duration::from_secs(1),
            noop_timeout: Duration::from_secs(1),
            ..Timeouts::default()
        };
        let (mut c, t0) = (core(), Instant::now());
        let mut nop = Nop::new(&t, t0);
        nop.waiting(true, t0);
        nop.received(t0 + Duration::from_millis(100));
        assert_eq!(nop.deadline(), t0 + Duration::from_millis(350));
        nop.expired(&mut c, t0 + Duration::from_millis(349))
            .unwrap();
        assert!(sent(&mut c).is_empty(), "not before the probe is due");
        nop.expired(&mut c, t0 + Duration::from_millis(350))
            .unwrap();
        assert!(matches!(
            Pdu::parse(&sent(&mut c)[0].bhs),
            Ok(Pdu::NopOut(_))
        ));
        assert_eq!(nop.deadline(), t0 + Duration::from_millis(1350));
        let e = nop
            .expired(&mut c, t0 + Duration::from_millis(1350))
            .unwrap_err();
        assert!(e.to_string().contains("noop_out_timeout"), "{e}");
        // Answers go on: nothing is due while they come.
        let mut nop = Nop::new(&t, t0);
        nop.waiting(true, t0);
        nop.received(t0 + Duration::from_millis(200));
        assert_eq!(nop.deadline(), t0 + Duration::from_millis(450));
        // Idle (nothing waits): the interval again.
        nop.waiting(false, t0 + Duration::from_millis(300));
        assert_eq!(nop.deadline(), t0 + Duration::from_millis(1200));
        // A command after 900 ms of quiet: its probe would come after the interval's
        // end, so the interval's end it is.
        nop.waiting(true, t0 + Duration::from_millis(1100));
        assert_eq!(nop.deadline(), t0 + Duration::from_millis(1200));
        nop.received(t0 + Duration::from_millis(1150));
        assert_eq!(nop.deadline(), t0 + Duration::from_millis(1400));
    }

    #[test]
    fn the_clock_starts_when_the_command_goes_on_the_wire() {
        // MaxCmdSN = ExpCmdSN - 1: the window is closed (RFC 7143 §4.2.2.1).
        let mut c = core_window(9);
        let (mut w, mut rec) = (HashMap::new(), Recovery::default());
        let (tx, _rx) = oneshot::channel();
        submit(&mut c, &mut w, read(1), tx);
        let t0 = Instant::now();
        assert!(w.values().all(|x| x.sent.is_none()));
        rec.check(&mut c, &mut w, &t(), t0 + Duration::from_secs(300))
            .unwrap();
        assert!(c.take_output().is_empty(), "nothing sent, nothing aborted");
        assert!(rec.cmds.is_empty());
    }
}
