//! A stream socket's outgoing bytes (a client's unix socket, a peer's TCP link),
//! written by whoever produced them when the socket takes them at once, and by a writer
//! task only when it does not.
//!
//! Why: a lock call is a chain of small frames (request, reply, completion). Handing
//! each to a writer task costs a task wake-up per frame on both ends, which showed as
//! the largest cost after the system calls themselves when 16 clients lock and unlock
//! against one daemon. Writing in place (`try_write`) when nothing is queued keeps one
//! system call per batch and no hand-off; the writer task only drains what a full
//! socket buffer left behind, so a slow reader never blocks the producer.
//!
//! Order is kept: while the writer task holds bytes (`busy`) or bytes wait (`pending`),
//! new bytes are appended behind them instead of being written in place.
//!
//! Corking (`cork`/`uncork`) holds in-place writes for a moment so that frames several
//! producers make in the same turn go out in a few system calls ([`CORK_BYTES`] at a
//! time): the daemon corks its peer links while it handles a batch of inputs, and a
//! client connection shared by several callers corks while the callers its reader just
//! woke make their next calls. A write per frame costs the sender a system call and the
//! receiver a wake-up and a read each.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The write half of a tokio stream socket, as the outbox uses it.
pub trait WriteHalf: Send + Sync + 'static {
    fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize>;
    fn writable(&self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// The socket, to half-close it.
    fn fd(&self) -> std::os::fd::RawFd;
}

macro_rules! write_half {
    ($half:ty, $stream:ty) => {
        impl WriteHalf for $half {
            fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize> {
                <$half>::try_write(self, bytes)
            }
            fn writable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
                <$half>::writable(self)
            }
            fn fd(&self) -> std::os::fd::RawFd {
                let stream: &$stream = self.as_ref();
                stream.as_raw_fd()
            }
        }
    };
}
write_half!(tokio::net::tcp::OwnedWriteHalf, tokio::net::TcpStream);

/// The client socket, both ends (socket.rs: watched for reading only).
impl WriteHalf for Arc<crate::socket::Socket> {
    fn try_write(&self, bytes: &[u8]) -> std::io::Result<usize> {
        crate::socket::Socket::try_write(self, bytes)
    }
    fn writable(&self) -> impl Future<Output = std::io::Result<()>> + Send {
        crate::socket::Socket::writable(self)
    }
    fn fd(&self) -> std::os::fd::RawFd {
        self.raw()
    }
}

/// A corked outbox writes once this much waits, without waiting for `uncork`: a few
/// calls' frames (a lock call is about 40 bytes) amortise the system call, and the
/// peer starts on them while the rest are made, so the two ends work side by side
/// instead of taking turns. 16 clients on one connection, local master, pairs/s by
/// threshold (2026-12-07): 128 B 125–183k, 192 B 164–166k, 256 B 133–152k, 384 B
/// 95–111k, none 92–115k.
const CORK_BYTES: usize = 192;

#[derive(Default)]
struct State {
    /// Bytes not yet written, in order.
    pending: Vec<u8>,
    /// The writer task is writing bytes it took from `pending`.
    busy: bool,
    /// A write failed: the connection is broken and nothing more is written.
    failed: Option<String>,
    /// Pushed bytes wait for `uncork` instead of being written in place.
    corked: bool,
}

/// Why bytes could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum OutboxError {
    /// More than the limit is waiting: the peer is not reading.
    Full,
    /// An earlier write failed (the text says how).
    Broken(String),
}

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboxError::Full => f.write_str("the peer does not read what is sent"),
            OutboxError::Broken(e) => f.write_str(e),
        }
    }
}

pub struct Outbox<W: WriteHalf> {
    w: Arc<W>,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    /// Told when the writer task has written everything it was given (or failed).
    idle: Arc<Notify>,
    /// Bytes allowed to wait before `push` refuses.
    limit: usize,
    task: tokio::task::AbortHandle,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    // No code panics while holding it.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl<W: WriteHalf> Outbox<W> {
    /// An outbox on `w` and its writer task (spawned on the current runtime). Dropping
    /// the outbox stops the task at once, dropping what is unsent, and closes `w`.
    pub fn new(w: W, limit: usize) -> Outbox<W> {
        let w = Arc::new(w);
        let state = Arc::new(Mutex::new(State::default()));
        let wake = Arc::new(Notify::new());
        let idle = Arc::new(Notify::new());
        let task = tokio::spawn(writer(w.clone(), state.clone(), wake.clone(), idle.clone()));
        Outbox {
            w,
            state,
            wake,
            idle,
            limit,
            task: task.abort_handle(),
        }
    }

    /// Send `bytes` (whole frames): written now if the socket takes them and nothing is
    /// waiting, else queued behind what waits.
    pub fn push(&self, bytes: &[u8]) -> Result<(), OutboxError> {
        let mut s = lock(&self.state);
        if let Some(e) = &s.failed {
            return Err(OutboxError::Broken(e.clone()));
        }
        let mut rest = bytes;
        if !s.busy && s.pending.is_empty() && !s.corked {
            match self.write_now(rest) {
                Ok(n) if n == rest.len() => return Ok(()),
                Ok(n) => rest = &rest[n..],
                Err(e) => {
                    s.failed = Some(e.clone());
                    return Err(OutboxError::Broken(e));
                }
            }
        }
        if s.pending.len() + rest.len() > self.limit {
            return Err(OutboxError::Full);
        }
        let was_empty = s.pending.is_empty();
        s.pending.extend_from_slice(rest);
        let corked = s.corked;
        if corked && !s.busy && s.pending.len() >= CORK_BYTES {
            drop(s);
            self.write_pending();
            return Ok(());
        }
        drop(s);
        if was_empty && !corked {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Write as much of `bytes` as the socket takes now, without waiting: how much it
    /// took, or why the connection is broken.
    fn write_now(&self, bytes: &[u8]) -> Result<usize, String> {
        let mut off = 0;
        while off < bytes.len() {
            match self.w.try_write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        Ok(off)
    }

    /// Hold what is pushed from now on until [`uncork`](Self::uncork). Returns whether
    /// the outbox was open before (the caller that corked it is the one to uncork it).
    pub fn cork(&self) -> bool {
        !std::mem::replace(&mut lock(&self.state).corked, true)
    }

    /// Write what waited since [`cork`](Self::cork), in place when the socket takes it
    /// (the writer task gets what it does not).
    pub fn uncork(&self) {
        lock(&self.state).corked = false;
        self.write_pending();
    }

    /// Write `pending` in place now (unless the writer task holds bytes: it takes
    /// `pending` next), handing the writer task what the socket does not take.
    fn write_pending(&self) {
        let mut s = lock(&self.state);
        if s.busy || s.pending.is_empty() || s.failed.is_some() {
            // The writer task takes `pending` when it is done with what it holds.
            return;
        }
        let off = match self.write_now(&s.pending) {
            Ok(n) => n,
            Err(e) => {
                // The next push reports it; the reader sees the connection end.
                s.failed = Some(e);
                s.pending.clear();
                drop(s);
                self.idle.notify_waiters();
                return;
            }
        };
        s.pending.drain(..off);
        let rest = !s.pending.is_empty();
        drop(s);
        if rest {
            self.wake.notify_one();
        } else {
            self.idle.notify_waiters();
        }
    }

    /// Wait until every byte pushed so far is written, or the connection broke: what a
    /// stopping daemon waits for before it closes its clients (their last replies).
    pub async fn flushed(&self) {
        loop {
            // Registered before the check, so a writer going idle in between is heard.
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            {
                let s = lock(&self.state);
                if s.failed.is_some() || (s.pending.is_empty() && !s.busy) {
                    return;
                }
            }
            idle.await;
        }
    }
}

impl<W: WriteHalf> Outbox<W> {
    /// Stop writing and half-close the socket (the peer reads end of stream), also
    /// while handles on the outbox remain.
    pub fn close(&self) {
        self.task.abort();
        lock(&self.state).failed = Some("the connection was closed".into());
        let fd = self.w.fd();
        // SAFETY: shutdown(2) on the descriptor `w` owns, which stays open until `w`
        // is dropped; it changes no memory.
        unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    }
}

impl<W: WriteHalf> Drop for Outbox<W> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Write what `push` could not, as the socket takes it.
async fn writer<W: WriteHalf>(
    w: Arc<W>,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    idle: Arc<Notify>,
) {
    // However the task ends (a failed write, an abort), whoever waits in `flushed` hears.
    let _idle = NotifyOnDrop(idle.clone());
    loop {
        let mut bytes = {
            let mut s = lock(&state);
            // Corked bytes wait for `uncork` (which writes them or wakes this task).
            if s.pending.is_empty() || s.corked {
                s.busy = false;
                idle.notify_waiters();
                None
            } else {
                s.busy = true;
                Some(std::mem::take(&mut s.pending))
            }
        };
        let Some(buf) = bytes.as_mut() else {
            wake.notified().await;
            continue;
        };
        let mut off = 0;
        while off < buf.len() {
            if let Err(e) = w.writable().await {
                lock(&state).failed = Some(format!("write failed: {e}"));
                return;
            }
            match w.try_write(&buf[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    lock(&state).failed = Some(format!("write failed: {e}"));
                    return;
                }
            }
        }
    }
}

/// Wakes every waiter of a [`Notify`] when dropped.
struct NotifyOnDrop(Arc<Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::Socket;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixStream;

    /// A reader that stops reading fills the socket: what does not fit waits in order,
    /// up to the limit; once the reader reads again everything arrives, in order.
    #[tokio::test]
    async fn a_full_socket_queues_in_order_up_to_the_limit() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let out = Outbox::new(Arc::new(Socket::new(a).unwrap()), 1 << 20);
        let mut sent = Vec::new();
        let mut n: u32 = 0;
        // 4 KiB pushes until the socket and then the queue are full.
        let full = loop {
            let chunk: Vec<u8> = (0..1024).flat_map(|_| n.to_be_bytes()).collect();
            match out.push(&chunk) {
                Ok(()) => sent.extend_from_slice(&chunk),
                Err(e) => break e,
            }
            n += 1;
            assert!(n < 100_000, "never full");
        };
        assert_eq!(full, OutboxError::Full);
        assert!(
            lock(&out.state).pending.len() > 1 << 19,
            "the queue was used"
        );
        let mut got = vec![0u8; sent.len()];
        b.read_exact(&mut got).await.unwrap();
        assert!(got == sent, "bytes out of order");
        // Drained: in-place writes again.
        out.push(b"tail").unwrap();
        let mut tail = [0u8; 4];
        b.read_exact(&mut tail).await.unwrap();
        assert_eq!(&tail, b"tail");
    }

    /// flushed() returns once what waited behind a full socket is read and written.
    #[tokio::test]
    async fn flushed_waits_for_what_a_full_socket_held_back() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let out = Outbox::new(Arc::new(Socket::new(a).unwrap()), 8 << 20);
        out.flushed().await; // nothing pushed: at once
        let chunk = vec![7u8; 64 << 10];
        let mut sent = 0;
        while lock(&out.state).pending.is_empty() {
            out.push(&chunk).unwrap();
            sent += chunk.len();
        }
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; sent];
            b.read_exact(&mut got).await.unwrap();
            b
        });
        out.flushed().await;
        {
            let s = lock(&out.state);
            assert!(s.pending.is_empty() && !s.busy && s.failed.is_none());
        }
        reader.await.unwrap();
    }

    /// Corked, pushes wait (the peer reads nothing); uncork writes them as one, in
    /// order, and pushes are written in place again after it.
    #[tokio::test]
    async fn a_corked_outbox_writes_what_waited_at_uncork() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let out = Outbox::new(Arc::new(Socket::new(a).unwrap()), 1 << 20);
        assert!(out.cork());
        assert!(!out.cork(), "a second cork is not the first");
        out.push(b"one ").unwrap();
        out.push(b"two ").unwrap();
        tokio::task::yield_now().await;
        let mut probe = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(50), b.read(&mut probe)).await;
        assert!(early.is_err(), "nothing is written while corked");
        out.uncork();
        assert!(lock(&out.state).pending.is_empty(), "written in place");
        out.flushed().await;
        out.push(b"three").unwrap();
        let mut got = [0u8; 13];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two three");
        // Corked again: once CORK_BYTES wait they are written without the uncork.
        assert!(out.cork());
        let big = vec![9u8; CORK_BYTES];
        out.push(&big[..CORK_BYTES - 1]).unwrap();
        assert_eq!(lock(&out.state).pending.len(), CORK_BYTES - 1);
        out.push(&big[..1]).unwrap();
        assert!(lock(&out.state).pending.is_empty(), "written at the limit");
        let mut got = vec![0u8; CORK_BYTES];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        out.uncork();
    }

    /// A closed peer: the write fails and every later push says why.
    #[tokio::test]
    async fn a_gone_peer_breaks_the_outbox() {
        let (a, b) = UnixStream::pair().unwrap();
        let out = Outbox::new(Arc::new(Socket::new(a).unwrap()), 1 << 20);
        drop(b);
        let e = out.push(b"x").unwrap_err();
        assert!(
            matches!(&e, OutboxError::Broken(t) if t.contains("write failed")),
            "{e:?}"
        );
        assert_eq!(out.push(b"y").unwrap_err(), e);
    }

    /// close() half-closes: the peer reads end of stream while the outbox lives on.
    #[tokio::test]
    async fn close_ends_the_stream_for_the_peer() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let out = Outbox::new(Arc::new(Socket::new(a).unwrap()), 1 << 20);
        out.push(b"last").unwrap();
        out.close();
        let mut all = Vec::new();
        b.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"last");
        assert!(matches!(out.push(b"more"), Err(OutboxError::Broken(_))));
    }
}
