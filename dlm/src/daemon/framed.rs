//! Length-prefixed frames over a byte stream (the unix client socket and the TCP peer
//! links both carry `[u32 BE length][payload]`, see `wire.rs`): a reader that yields
//! whole frames, and the gathering of whatever is queued into one write.
//!
//! The writer batches because latency matters more than anything here: a lock request to
//! a remote master is a chain of messages between daemons, and a write per message
//! (with TCP_NODELAY) would cost a syscall and a segment each while the queue grows.
//! Collecting everything already queued into one buffer keeps one write per wakeup.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::wire::{put_frame, take_frame, Wire};

/// Room made for each read.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes gathered into one write before it is sent (the rest goes in the next one).
pub const WRITE_BATCH: usize = 256 * 1024;

/// Whole frames from a stream.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`.
    pos: usize,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next frame; `None` when the stream ended cleanly between frames. An error
    /// says what was wrong with the bytes (the caller names the connection).
    pub async fn next<T: Wire, R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
    ) -> Result<Option<T>, String> {
        loop {
            match take_frame::<T>(&self.buf[self.pos..]) {
                Ok(Some((frame, used))) => {
                    self.pos += used;
                    return Ok(Some(frame));
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            // Only a partial frame is left: move it to the front before reading more, so
            // the buffer never grows by more than one frame.
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.reserve(READ_CHUNK);
            let n = rd
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| format!("read failed: {e}"))?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(format!(
                        "connection closed in the middle of a frame ({} bytes of it received)",
                        self.buf.len()
                    ))
                };
            }
        }
    }
}

/// Where [`gather`] takes what is already queued.
pub trait Source<T> {
    /// The next item if one is waiting, without waiting.
    fn try_next(&mut self) -> Option<T>;
}

impl<T> Source<T> for mpsc::Receiver<T> {
    fn try_next(&mut self) -> Option<T> {
        self.try_recv().ok()
    }
}

/// Append `first` and everything else already waiting in `src` (up to about
/// [`WRITE_BATCH`] bytes) to `buf` as frames; returns how many frames that was.
pub fn gather<T: Wire>(first: T, src: &mut impl Source<T>, buf: &mut Vec<u8>) -> usize {
    put_frame(&first, buf);
    let mut n = 1;
    while buf.len() < WRITE_BATCH {
        match src.try_next() {
            Some(next) => {
                put_frame(&next, buf);
                n += 1;
            }
            None => break,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ClientFrame, Query};
    use tokio::io::AsyncWriteExt;

    fn frame(req: u64) -> ClientFrame {
        ClientFrame::Query {
            req,
            query: Query::Dump,
        }
    }

    #[tokio::test]
    async fn frames_split_and_joined_across_reads() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut bytes = Vec::new();
        for req in 1..=3 {
            put_frame(&frame(req), &mut bytes);
        }
        let writer = tokio::spawn(async move {
            // Byte by byte for the first frame, then the rest at once.
            for byte in &bytes[..5] {
                a.write_all(&[*byte]).await.unwrap();
            }
            a.write_all(&bytes[5..]).await.unwrap();
        });
        let mut r = FrameReader::new();
        for req in 1..=3 {
            assert_eq!(r.next::<ClientFrame, _>(&mut b).await, Ok(Some(frame(req))));
        }
        writer.await.unwrap();
        assert_eq!(r.next::<ClientFrame, _>(&mut b).await, Ok(None));
    }

    #[tokio::test]
    async fn bad_bytes_and_cut_frames_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 2, 0xee, 0xee]).await.unwrap();
        let e = FrameReader::new().next::<ClientFrame, _>(&mut b).await;
        assert!(e.is_err(), "{e:?}");

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 9, 1]).await.unwrap();
        drop(a);
        let e = FrameReader::new()
            .next::<ClientFrame, _>(&mut b)
            .await
            .unwrap_err();
        assert!(e.contains("in the middle of a frame (5 bytes"), "{e}");
    }

    #[tokio::test]
    async fn the_writer_sends_what_is_queued_in_one_batch() {
        let (tx, mut rx) = mpsc::channel(16);
        for req in 1..=4 {
            tx.try_send(frame(req)).unwrap();
        }
        drop(tx);
        let first = rx.recv().await.unwrap();
        let mut buf = Vec::new();
        assert_eq!(gather(first, &mut rx, &mut buf), 4);
        let mut expected = Vec::new();
        for req in 1..=4 {
            put_frame(&frame(req), &mut expected);
        }
        assert_eq!(buf, expected);
    }
}
