//! A unix stream socket (the client socket, both ends) that the runtime watches for
//! reading only.
//!
//! Why: tokio registers a stream with epoll for reading and writing, edge-triggered. On
//! a unix stream socket the kernel tells the sender "writable" each time the receiver
//! consumes a message (af_unix.c: `sock_wfree` → `unix_write_space`, which wakes the
//! socket's waiters whenever its send buffer is below the limit, full or not), so every
//! frame one end reads woke the other end's epoll_wait for nothing. With one lock call
//! in flight that was one wasted wake-up of each process per frame: 3.6 context switches
//! per lock+unlock pair on each side instead of 2, and the waking side paid for the
//! wake-up in its recv(2). Here the socket is registered for reading only: writes are
//! tried in place (outbox.rs, which is where every write starts), and only a writer that
//! finds the socket full waits for room, on a duplicate descriptor registered for
//! writing while it waits (epoll keys its entries by descriptor, so the two coexist).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest, ReadBuf};

pub struct Socket {
    fd: AsyncFd<UnixStream>,
}

impl Socket {
    /// Take over a connected tokio stream (it leaves tokio's registration).
    pub fn new(stream: tokio::net::UnixStream) -> io::Result<Socket> {
        let std = stream.into_std()?;
        std.set_nonblocking(true)?;
        Ok(Socket {
            fd: watch(std, Interest::READABLE)?,
        })
    }

    /// Write what the socket takes now (`WouldBlock` if nothing).
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: send(2) reads `bytes.len()` bytes from a live slice on the descriptor
        // `fd` owns. MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE.
        let n = unsafe {
            libc::send(
                self.raw(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        match n {
            -1 => Err(io::Error::last_os_error()),
            n => Ok(n as usize),
        }
    }

    /// Wait until the socket has room to write, on a duplicate of the descriptor
    /// registered for writing only while this waits. Registering checks the socket's
    /// state, so room that is already there is seen at once.
    pub async fn writable(&self) -> io::Result<()> {
        let dup = watch(self.fd.get_ref().try_clone()?, Interest::WRITABLE)?;
        let _ready = dup.writable().await?;
        Ok(())
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn watch(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    // SAFETY: the stream owns its descriptor until it is dropped, which is when the
    // `AsyncFd` that owns the stream is dropped.
    unsafe { AsyncFd::register_with_interest(stream, interest) }.map_err(|e| e.into_parts().1)
}

/// Reads as tokio's own streams do, including their shortcut: a read that did not fill
/// the room it was given emptied the socket, so the next read waits for epoll instead of
/// trying recv(2) first (tokio's `poll_read_priv`; the readiness it clears is only the
/// one that read saw, so data arriving meanwhile is not missed).
impl AsyncRead for &Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let room = buf.remaining();
            // SAFETY: recv(2) only writes into the unfilled part (never de-initialises
            // it), at most `unfilled.len()` bytes, while it stays borrowed for the call.
            let n = unsafe {
                let unfilled = buf.unfilled_mut();
                libc::recv(
                    self.raw(),
                    unfilled.as_mut_ptr().cast(),
                    unfilled.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        continue;
                    }
                    io::ErrorKind::Interrupted => continue,
                    _ => return Poll::Ready(Err(e)),
                }
            }
            let n = n as usize;
            // SAFETY: recv(2) initialised these `n` bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            if n > 0 && n < room {
                guard.clear_ready();
            }
            return Poll::Ready(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn pair() -> (Socket, Socket) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        (Socket::new(a).unwrap(), Socket::new(b).unwrap())
    }

    /// Bytes written in place arrive; a full socket says WouldBlock, and `writable`
    /// returns once the reader made room.
    #[tokio::test]
    async fn writes_in_place_and_waits_for_room() {
        let (a, b) = pair();
        assert_eq!(a.try_write(b"hello").unwrap(), 5);
        let mut got = Vec::with_capacity(64);
        (&b).read_buf(&mut got).await.unwrap();
        assert_eq!(got, b"hello");

        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        loop {
            match a.try_write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let wait = tokio::spawn(async move {
            a.writable().await.unwrap();
            a
        });
        tokio::task::yield_now().await;
        assert!(!wait.is_finished(), "room reported on a full socket");
        let mut drained = 0;
        let mut buf = Vec::with_capacity(1 << 20);
        while drained < sent {
            buf.clear();
            drained += (&b).read_buf(&mut buf).await.unwrap();
        }
        let a = wait.await.unwrap();
        assert!(a.try_write(b"x").unwrap() == 1);
    }

    /// A short read does not lose data that arrives after it; a closed peer reads 0.
    #[tokio::test]
    async fn reads_see_every_arrival_and_the_end() {
        let (a, b) = pair();
        let mut buf = Vec::with_capacity(1024);
        for i in 0..100u8 {
            a.try_write(&[i]).unwrap();
            buf.clear();
            assert_eq!((&b).read_buf(&mut buf).await.unwrap(), 1);
            assert_eq!(buf, [i]);
        }
        drop(a);
        buf.clear();
        assert_eq!((&b).read_buf(&mut buf).await.unwrap(), 0);
    }
}
