//! The tokio driver of one session over one TCP connection: runs the login, then owns
//! the socket and the sans-IO [`Core`]; callers submit commands through a channel and
//! await their replies, so any number of commands can be in flight from any number of
//! tasks (the target's CmdSN window decides how many are on the wire).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hydra_proto::framing::{front_len, try_frame, Digests};
use hydra_proto::pdu::{Pdu, Repr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::login::{Established, Login, LoginConfig, Step};
use crate::session::{Command, Core, Reply};
use crate::{Error, Result};

/// Largest login PDU data we accept (RFC 7143 §6.1: 8192 during login).
const LOGIN_MAX_DATA: usize = 8192;

enum Request {
    Command(Command, oneshot::Sender<Result<Reply>>),
    Logout(oneshot::Sender<Result<()>>),
}

/// A logged-in session.
pub struct Session {
    tx: mpsc::Sender<Request>,
    pub established: Established,
    pub peer: SocketAddr,
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
) -> std::io::Result<usize> {
    const SMALL: usize = 64 * 1024;
    let want = match front_len(buf, digests) {
        Some(total) if total > SMALL => total.saturating_sub(buf.len()).max(1),
        _ => SMALL,
    };
    buf.reserve(want.max(max_pdu.saturating_sub(buf.len())));
    stream.read_buf(&mut (&mut *buf).limit(want)).await
}

async fn write_all(stream: &mut TcpStream, chunks: Vec<Bytes>) -> Result<()> {
    for c in chunks {
        stream
            .write_all(&c)
            .await
            .map_err(|e| Error::io("write", e))?;
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
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            replacement: Duration::from_secs(120),
            noop_interval: Duration::from_secs(5),
            noop_timeout: Duration::from_secs(5),
            login: Duration::from_secs(15),
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
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| Error::Auth(format!("random: {e}")))?;
        let mut login = Login::new(cfg.clone(), random);
        let (req, data) = login.start();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut req_data = (req, data);
        let established = loop {
            let (req, data) = &req_data;
            let mut out = req.emit(data.len()).to_vec();
            out.extend_from_slice(data);
            out.resize(48 + data.len().div_ceil(4) * 4, 0);
            stream
                .write_all(&out)
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
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| Error::Protocol(format!("login to {addr} timed out")))?
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
        tokio::spawn(drive(addr, cfg, t, stream, buf, core, rx));
        Ok(Session {
            tx,
            established,
            peer: addr,
        })
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
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Logout(tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

type Waiter = oneshot::Sender<Result<Reply>>;

/// How one connection ended.
enum Ended {
    /// Logged out, or every handle to the session is gone.
    Done,
    Failed(Error),
}

/// The session's one task: runs a connection; when it fails, reconnects and resends.
async fn drive(
    addr: SocketAddr,
    cfg: LoginConfig,
    t: Timeouts,
    mut stream: TcpStream,
    mut buf: BytesMut,
    mut core: Core,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut waiting: HashMap<u32, Waiter> = HashMap::new();
    loop {
        let e = match run(&mut stream, &mut buf, &mut core, &mut rx, &mut waiting, t).await {
            Ended::Done => return,
            Ended::Failed(e) => e,
        };
        tracing::warn!("connection to {addr} lost: {e}; reconnecting");
        // Commands to send again on the new connection, with whoever waits for them.
        let mut resend: Vec<(Command, Waiter)> = core
            .drain()
            .into_iter()
            .filter_map(|(itt, c)| waiting.remove(&itt).map(|w| (c, w)))
            .collect();
        let down = tokio::time::Instant::now();
        let mut expired = false;
        let conn = loop {
            tokio::select! {
                r = connect(addr, &cfg, t.login) => match r {
                    Ok(c) => break c,
                    Err(e) => {
                        tracing::info!("reconnect to {addr}: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                req = rx.recv() => match req {
                    Some(Request::Command(_, w)) if expired => {
                        let _ = w.send(Err(unreachable(addr, down)));
                    }
                    Some(Request::Command(c, w)) => resend.push((c, w)),
                    Some(Request::Logout(w)) => {
                        let _ = w.send(Ok(()));
                        fail_all(resend, addr, down);
                        return;
                    }
                    None => return,
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
        stream = s;
        buf = b;
        core = new_core(&est);
        for (c, w) in resend {
            let itt = core.submit(c);
            waiting.insert(itt, w);
        }
    }
}

fn unreachable(addr: SocketAddr, since: tokio::time::Instant) -> Error {
    Error::Unreachable {
        addr: addr.to_string(),
        secs: since.elapsed().as_secs(),
    }
}

fn fail_all(v: Vec<(Command, Waiter)>, addr: SocketAddr, since: tokio::time::Instant) {
    for (_, w) in v {
        let _ = w.send(Err(unreachable(addr, since)));
    }
}

/// One connection's life: commands in, PDUs out, replies back, NOP-Out pings when idle.
async fn run(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    core: &mut Core,
    rx: &mut mpsc::Receiver<Request>,
    waiting: &mut HashMap<u32, Waiter>,
    t: Timeouts,
) -> Ended {
    let mut logout: Option<oneshot::Sender<Result<()>>> = None;
    // A whole PDU of the largest size we accept: header, digests, padded data.
    let max_pdu = 48 + 8 + core.max_recv() + 3 + 4;
    let mut last_rx = tokio::time::Instant::now();
    let mut ping_sent: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(
        t.noop_interval
            .min(t.noop_timeout)
            .max(Duration::from_millis(100)),
    );
    // Commands that were resent are already queued in the core.
    let first = core.take_output();
    if let Err(e) = write_all(stream, first).await {
        return Ended::Failed(e);
    }
    let result: Result<bool> = async {
        loop {
            tokio::select! {
                req = rx.recv(), if logout.is_none() => match req {
                    Some(Request::Command(c, reply)) => {
                        let itt = core.submit(c);
                        waiting.insert(itt, reply);
                    }
                    Some(Request::Logout(reply)) => {
                        core.logout();
                        logout = Some(reply);
                    }
                    None => return Ok(true),
                },
                n = read_more(stream, buf, core.digests(), max_pdu) => {
                    if n.map_err(|e| Error::io("read", e))? == 0 {
                        return Err(Error::Closed);
                    }
                    last_rx = tokio::time::Instant::now();
                    ping_sent = None;
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
                                let _ = w.send(Ok(reply));
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = tokio::time::Instant::now();
                    if let Some(at) = ping_sent {
                        if now - at >= t.noop_timeout {
                            return Err(Error::Protocol(format!(
                                "no answer to a NOP-Out for {} s (noop_out_timeout)",
                                t.noop_timeout.as_secs()
                            )));
                        }
                    } else if now - last_rx >= t.noop_interval {
                        core.ping();
                        ping_sent = Some(now);
                    }
                }
            }
            let out = core.take_output();
            if !out.is_empty() {
                write_all(stream, out).await?;
            }
        }
    }
    .await;
    match result {
        Ok(_) => {
            for (_, w) in waiting.drain() {
                let _ = w.send(Err(Error::Closed));
            }
            Ended::Done
        }
        Err(e) => {
            if let Some(l) = logout {
                // Logging out: the connection going away is the end either way.
                let _ = l.send(Ok(()));
                return Ended::Done;
            }
            Ended::Failed(e)
        }
    }
}
