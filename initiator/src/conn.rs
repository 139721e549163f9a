//! The tokio driver of one session over one TCP connection: runs the login, then owns
//! the socket and the sans-IO [`Core`]; callers submit commands through a channel and
//! await their replies, so any number of commands can be in flight from any number of
//! tasks (the target's CmdSN window decides how many are on the wire).

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use hydra_proto::framing::{try_frame, Digests};
use hydra_proto::pdu::{LogoutRequest, Pdu, Repr};
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

async fn read_frame(
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

/// Read whatever is there, keeping room for a large Data-In PDU so that big reads
/// arrive in few system calls.
async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 256 * 1024 {
        buf.reserve(1024 * 1024);
    }
    stream.read_buf(buf).await
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

impl Session {
    /// Connect to `addr` and log in.
    pub async fn login(addr: SocketAddr, cfg: LoginConfig) -> Result<Session> {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io(format!("connect to {addr}"), e))?;
        let _ = stream.set_nodelay(true);
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| Error::Auth(format!("random: {e}")))?;
        let mut login = Login::new(cfg, random);
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
        let core = Core::new(
            established.params.clone(),
            established.exp_stat_sn,
            established.exp_cmd_sn,
            established.max_cmd_sn,
        );
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(drive(stream, buf, core, rx));
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

/// The connection's one task: commands in, PDUs out, replies back.
async fn drive(
    mut stream: TcpStream,
    mut buf: BytesMut,
    mut core: Core,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut waiting: HashMap<u32, oneshot::Sender<Result<Reply>>> = HashMap::new();
    let mut logout: Option<oneshot::Sender<Result<()>>> = None;
    let result: Result<()> = async {
        loop {
            tokio::select! {
                req = rx.recv(), if logout.is_none() => match req {
                    Some(Request::Command(c, reply)) => {
                        let itt = core.submit(c);
                        waiting.insert(itt, reply);
                    }
                    Some(Request::Logout(reply)) => {
                        let req = LogoutRequest {
                            immediate: true,
                            reason: 0,
                            itt: 0x7fff_fffe,
                            cid: 0,
                            cmd_sn: core.cmd_sn(),
                            exp_stat_sn: core.exp_stat_sn(),
                        };
                        write_all(&mut stream, vec![Bytes::copy_from_slice(&req.emit(0))]).await?;
                        logout = Some(reply);
                    }
                    None => return Ok(()),
                },
                n = read_more(&mut stream, &mut buf) => {
                    if n.map_err(|e| Error::io("read", e))? == 0 {
                        return Err(Error::Closed);
                    }
                    while let Some(f) = try_frame(&mut buf, core.digests(), core.max_recv())
                        .map_err(|e| Error::Protocol(e.to_string()))?
                    {
                        if f.bhs[0] & 0x3f == 0x26 {
                            // Logout Response.
                            if let Some(l) = logout.take() {
                                let _ = l.send(Ok(()));
                            }
                            return Ok(());
                        }
                        for (itt, reply) in core.receive(f)? {
                            if let Some(w) = waiting.remove(&itt) {
                                let _ = w.send(Ok(reply));
                            }
                        }
                    }
                }
            }
            let out = core.take_output();
            if !out.is_empty() {
                write_all(&mut stream, out).await?;
            }
        }
    }
    .await;
    if let Err(e) = &result {
        tracing::warn!("session connection ended: {e}");
    }
    for (_, w) in waiting.drain() {
        let _ = w.send(Err(Error::Closed));
    }
    if let Some(l) = logout {
        let _ = l.send(result);
    }
}
