//! The tokio driver of the NBD server: accept connections, run the negotiation and the
//! transmission phase over the sans-IO pieces (`wire`, `negotiate`, `transmit`).
//!
//! One task per connection. In the transmission phase the connection's reader parses
//! requests and starts one task per I/O, so many requests are in flight at once and
//! replies go out in completion order (the cookie tells them apart); a writer task
//! sends them, batching what is ready. In-flight work is bounded per connection by two
//! semaphores (requests and payload bytes); the reader stops reading while they are
//! exhausted, so a client that floods requests or stops reading replies is slowed by
//! TCP/unix-socket backpressure, not by the server's memory. A connection that breaks
//! the protocol is closed alone: every connection is its own task and owns its state.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::negotiate::{self, ExportInfo, Exports, Next};
use super::transmit::{self, Command};
use super::wire::{self, Errno, Malformed};
use crate::export::{BlockDevice, DeviceError};

/// How long a client may take from connecting to choosing an export.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests in flight per connection (the kernel's nbd driver and qemu use up to 16
/// and 16..64; fio's iodepth is what the user sets).
const MAX_REQUESTS_IN_FLIGHT: usize = 128;
/// Payload bytes in flight per connection, in KiB: four maximal requests.
const MAX_KIB_IN_FLIGHT: u32 = 4 * (wire::MAX_PAYLOAD >> 10);
/// Replies up to this size are copied into the batch buffer; larger READ data is
/// written from its own buffer.
const COPY_LIMIT: usize = 64 << 10;

/// An NBD server: a set of named exports, served on any number of listeners.
///
/// ```no_run
/// # async fn f(map: std::sync::Arc<dyn hydra_multipath::export::BlockDevice>) -> std::io::Result<()> {
/// use hydra_multipath::export::nbd::{bind_unix, NbdServer};
/// let server = NbdServer::new();
/// server.add_export("mpatha", map);
/// let listener = bind_unix("/run/hydra/mpatha.nbd".as_ref())?;
/// // Serves until the future is dropped (which also closes its connections).
/// server.serve_unix(listener).await
/// # }
/// ```
#[derive(Default)]
pub struct NbdServer {
    exports: RwLock<BTreeMap<String, Arc<dyn BlockDevice>>>,
}

/// The exports of a server, as the negotiation sees them.
struct Catalog<'a>(&'a BTreeMap<String, Arc<dyn BlockDevice>>);

impl Catalog<'_> {
    /// The export called `name`; `""` (the protocol's default export) is the only
    /// export when there is exactly one.
    fn device(&self, name: &str) -> Option<(&str, &Arc<dyn BlockDevice>)> {
        if name.is_empty() && self.0.len() == 1 {
            return self.0.iter().next().map(|(n, d)| (n.as_str(), d));
        }
        self.0.get_key_value(name).map(|(n, d)| (n.as_str(), d))
    }
}

fn info_of(device: &dyn BlockDevice) -> ExportInfo {
    ExportInfo {
        size: device.size(),
        min_block: device.block_size(),
        preferred_block: device.preferred_block_size().max(device.block_size()),
        read_only: device.read_only(),
    }
}

impl Exports for Catalog<'_> {
    fn lookup(&self, name: &str) -> Option<ExportInfo> {
        self.device(name).map(|(_, d)| info_of(d.as_ref()))
    }

    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// Bind a unix socket at `path`, replacing a stale socket file left by a previous run
/// (but nothing else: a regular file there is an error).
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", path.display())))
}

fn invalid_data(m: Malformed) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

impl NbdServer {
    pub fn new() -> Arc<NbdServer> {
        Arc::new(NbdServer::default())
    }

    /// Serve `device` as `name` to new connections (replacing an export of that name;
    /// connections already on the old one keep it).
    pub fn add_export(&self, name: &str, device: Arc<dyn BlockDevice>) {
        self.exports
            .write()
            .expect("export table lock")
            .insert(name.to_owned(), device);
    }

    /// Stop offering `name` to new connections; false if there was no such export.
    pub fn remove_export(&self, name: &str) -> bool {
        self.exports
            .write()
            .expect("export table lock")
            .remove(name)
            .is_some()
    }

    /// Names of the exports, sorted.
    pub fn export_names(&self) -> Vec<String> {
        Catalog(&self.exports.read().expect("export table lock")).names()
    }

    /// Accept connections on a unix socket until the future is dropped; dropping it
    /// closes every connection it accepted.
    pub async fn serve_unix(self: Arc<Self>, listener: UnixListener) -> io::Result<()> {
        let mut conns = JoinSet::new();
        let mut n = 0u64;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        n += 1;
                        let peer = format!("unix client #{n}");
                        conns.spawn(self.clone().run_connection(stream, peer));
                    }
                    Err(e) => accept_failed(e).await,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }

    /// Accept connections on a TCP socket (meant for loopback: the protocol has no
    /// authentication here) until the future is dropped.
    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        conns.spawn(self.clone().run_connection(stream, addr.to_string()));
                    }
                    Err(e) => accept_failed(e).await,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }

    async fn run_connection<S>(self: Arc<Self>, stream: S, peer: String)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        tracing::debug!(%peer, "NBD client connected");
        match self.serve_stream(stream).await {
            Ok(()) => tracing::debug!(%peer, "NBD client done"),
            Err(e) => tracing::warn!(%peer, "NBD connection closed: {e}"),
        }
    }

    /// Serve one connection (any byte stream) from the greeting to its end. An error
    /// says why the server closed it; a client that disconnects is `Ok`.
    pub async fn serve_stream<S>(&self, stream: S) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut buf = BytesMut::with_capacity(64 << 10);
        let chosen = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            self.negotiate(&mut rd, &mut wr, &mut buf),
        )
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no export chosen within {HANDSHAKE_TIMEOUT:?}"),
            )
        })??;
        match chosen {
            Some((name, device)) => transmission(&name, device, rd, wr, buf).await,
            None => Ok(()),
        }
    }

    /// The handshake and option haggling. `Some` when the client chose an export.
    async fn negotiate<R, W>(
        &self,
        rd: &mut R,
        wr: &mut W,
        buf: &mut BytesMut,
    ) -> io::Result<Option<(String, Arc<dyn BlockDevice>)>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        wr.write_all(&wire::greeting()).await?;
        let flags = loop {
            if let Some(flags) = wire::parse_client_flags(buf).map_err(invalid_data)? {
                bytes::Buf::advance(buf, 4);
                break flags;
            }
            if rd.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        };
        let mut out = BytesMut::new();
        loop {
            let Some(opt) = wire::parse_option(buf).map_err(invalid_data)? else {
                if rd.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
                continue;
            };
            // The lock is held only while the answer is computed, never across I/O.
            let (next, device) = {
                let exports = self.exports.read().expect("export table lock");
                let catalog = Catalog(&exports);
                let next = negotiate::answer(&opt, flags.no_zeroes, &catalog, &mut out);
                let device = match &next {
                    Next::Transmit(name) => catalog
                        .device(name)
                        .map(|(name, d)| (name.to_owned(), d.clone())),
                    _ => None,
                };
                (next, device)
            };
            wr.write_all(&out).await?;
            out.clear();
            match next {
                Next::Options => {}
                Next::Transmit(_) => return Ok(device),
                Next::Close(why) => {
                    tracing::debug!("NBD negotiation ended: {why}");
                    return Ok(None);
                }
            }
        }
    }
}

async fn accept_failed(e: io::Error) {
    // EMFILE and friends: back off instead of spinning, keep serving the others.
    tracing::warn!("NBD accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One reply, holding its request's share of the in-flight budget until it is sent.
struct Reply {
    cookie: u64,
    result: Result<Option<Bytes>, Errno>,
    _slot: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// The transmission phase on `device` until `NBD_CMD_DISC`, the client's hang-up or a
/// protocol violation.
async fn transmission<R, W>(
    name: &str,
    device: Arc<dyn BlockDevice>,
    mut rd: R,
    wr: W,
    mut buf: BytesMut,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let info = info_of(device.as_ref());
    let name: Arc<str> = name.into();
    let requests = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
    let kib = Arc::new(Semaphore::new(MAX_KIB_IN_FLIGHT as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_replies(wr, rx));
    let mut tasks = JoinSet::new();
    let ended = loop {
        let req = match wire::parse_request(&mut buf) {
            Ok(Some(req)) => req,
            Ok(None) => match rd.read_buf(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e),
            },
            Err(m) => break Err(invalid_data(m)),
        };
        let cookie = req.cookie;
        let checked = transmit::check(req, &info);
        if checked == Ok(Command::Disconnect) {
            break Ok(());
        }
        let cost = checked
            .as_ref()
            .map_or(0, |c| c.payload_len().div_ceil(1024));
        let slot = (
            requests
                .clone()
                .acquire_owned()
                .await
                .expect("never closed"),
            kib.clone()
                .acquire_many_owned(cost)
                .await
                .expect("never closed"),
        );
        match checked {
            Err(errno) => {
                let _ = tx.send(Reply {
                    cookie,
                    result: Err(errno),
                    _slot: slot,
                });
            }
            Ok(cmd) => {
                let (device, tx, name) = (device.clone(), tx.clone(), name.clone());
                tasks.spawn(async move {
                    let result = execute(device.as_ref(), cmd).await.map_err(|e| {
                        tracing::warn!(export = %name, cookie, "NBD request failed: {e}");
                        Errno::from(&e)
                    });
                    let _ = tx.send(Reply {
                        cookie,
                        result,
                        _slot: slot,
                    });
                });
            }
        }
        while tasks.try_join_next().is_some() {}
    };
    drop(tx);
    if ended.is_err() {
        // A hard disconnect: nothing more is owed to this client.
        tasks.abort_all();
        writer.abort();
        return ended;
    }
    // NBD_CMD_DISC or the client's hang-up: "the server MUST handle all outstanding
    // requests", then close.
    while tasks.join_next().await.is_some() {}
    match writer.await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(format!("NBD reply writer failed: {e}"))),
    }
}

/// Run one checked command on the device. A READ's data must be exactly what was
/// asked: a short buffer would desynchronise the stream, so it becomes EIO.
async fn execute(device: &dyn BlockDevice, cmd: Command) -> Result<Option<Bytes>, DeviceError> {
    match cmd {
        Command::Read { offset, len } => {
            let data = device.read(offset, len).await?;
            if data.len() != len as usize {
                return Err(DeviceError::Io(format!(
                    "the device returned {} bytes for a read of {len} at {offset}",
                    data.len()
                )));
            }
            Ok(Some(data))
        }
        Command::Write { offset, data, fua } => {
            device.write(offset, data, fua).await.map(|()| None)
        }
        Command::Flush => device.flush().await.map(|()| None),
        Command::Trim { offset, len, fua } => {
            device.trim(offset, len).await?;
            // UNMAP has no FUA bit: a FUA trim is a trim and a flush.
            if fua {
                device.flush().await?;
            }
            Ok(None)
        }
        Command::WriteZeroes {
            offset,
            len,
            may_unmap,
            fua,
        } => {
            device.write_zeroes(offset, len, may_unmap).await?;
            if fua {
                device.flush().await?;
            }
            Ok(None)
        }
        Command::Disconnect => Ok(None),
    }
}

/// Send replies as they complete, batching those that are ready together.
async fn write_replies<W>(mut wr: W, mut rx: mpsc::UnboundedReceiver<Reply>) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut out = BytesMut::with_capacity(256 << 10);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut yielded = false;
        while let Some(reply) = next {
            let (error, data) = match reply.result {
                Ok(data) => (None, data),
                Err(errno) => (Some(errno), None),
            };
            wire::put_simple_reply(&mut out, reply.cookie, error);
            if let Some(data) = data {
                if data.len() <= COPY_LIMIT {
                    out.extend_from_slice(&data);
                } else {
                    wr.write_all(&out).await?;
                    out.clear();
                    wr.write_all(&data).await?;
                }
            }
            if out.len() >= 256 << 10 {
                wr.write_all(&out).await?;
                out.clear();
            }
            next = rx.try_recv().ok();
            if next.is_none() && !yielded {
                // Let completions that are about to land join this batch: one
                // scheduler turn costs less than a send per reply.
                yielded = true;
                tokio::task::yield_now().await;
                next = rx.try_recv().ok();
            }
        }
        wr.write_all(&out).await?;
        out.clear();
        wr.flush().await?;
    }
    wr.shutdown().await
}
