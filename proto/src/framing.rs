//! Framing: cutting whole PDUs out of the receive buffer and queueing outgoing PDUs for
//! vectored writes. "Incomplete" is a normal outcome (`Ok(None)`), not an error
//! (mini-redis `parse_frame`). Digests are checked here so that the session only ever
//! sees PDUs whose header it can trust (RFC 7143 §7.8: at ErrorRecoveryLevel 0 a header
//! digest error must end the connection, since nothing in that header can be believed).

use crate::bhs::{pad_len, Bhs, BHS_LEN};
use crate::digest;
use bytes::{Buf, Bytes, BytesMut};

/// Which digests are in force on this connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

/// One received PDU: header, optional AHS, data segment without padding or digest.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bhs: [u8; BHS_LEN],
    pub ahs: Bytes,
    pub data: Bytes,
}

/// Why a frame could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The connection cannot continue (RFC 7143 §7.8).
    #[error("header digest mismatch (got 0x{got:08x}, computed 0x{want:08x})")]
    HeaderDigest { got: u32, want: u32 },
    /// The data was damaged; the header is sound, so the PDU can be rejected precisely.
    #[error("data digest mismatch on PDU with ITT 0x{itt:08x}")]
    DataDigest { bhs: [u8; BHS_LEN], itt: u32 },
    /// Data segment longer than we declared in MaxRecvDataSegmentLength.
    #[error("data segment of {len} bytes exceeds MaxRecvDataSegmentLength {max}")]
    TooLong { len: usize, max: usize },
}

/// Cut one PDU off the front of `buf`, if a whole one is there.
pub fn try_frame(
    buf: &mut BytesMut,
    digests: Digests,
    max_data: usize,
) -> Result<Option<Frame>, FrameError> {
    if buf.len() < BHS_LEN {
        return Ok(None);
    }
    let view = Bhs::new_unchecked(&buf[..BHS_LEN]);
    let dlen = view.data_len();
    if dlen > max_data {
        return Err(FrameError::TooLong {
            len: dlen,
            max: max_data,
        });
    }
    let total = view.total_len(digests.header, digests.data);
    let ahs_len = view.ahs_len();
    let itt = view.itt();
    if buf.len() < total {
        // Reserve once for the whole PDU so big Data-Outs arrive without regrowth.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut pdu = buf.split_to(total);
    if digests.header {
        let hend = BHS_LEN + ahs_len;
        let want = digest::crc32c(&pdu[..hend]);
        let got = digest::from_wire(pdu[hend..hend + 4].try_into().expect("4 bytes"));
        if got != want {
            return Err(FrameError::HeaderDigest { got, want });
        }
    }
    let mut bhs = [0u8; BHS_LEN];
    bhs.copy_from_slice(&pdu[..BHS_LEN]);
    pdu.advance(BHS_LEN);
    let ahs = pdu.split_to(ahs_len).freeze();
    if digests.header {
        pdu.advance(4);
    }
    let padded = dlen + pad_len(dlen);
    if digests.data && dlen > 0 {
        let got = digest::from_wire(pdu[padded..padded + 4].try_into().expect("4 bytes"));
        if digest::crc32c(&pdu[..padded]) != got {
            return Err(FrameError::DataDigest { bhs, itt });
        }
    }
    pdu.truncate(dlen);
    Ok(Some(Frame {
        bhs,
        ahs,
        data: pdu.freeze(),
    }))
}

/// Total length on the wire of the PDU whose header is at the front of `buf`, once its
/// 48-byte BHS has arrived: lets a reader ask for exactly the rest of a large PDU, so that
/// the PDU ends at the end of the buffer and is cut off without copying what follows.
pub fn front_len(buf: &[u8], digests: Digests) -> Option<usize> {
    (buf.len() >= BHS_LEN)
        .then(|| Bhs::new_unchecked(&buf[..BHS_LEN]).total_len(digests.header, digests.data))
}

/// After a vectored write of `n` bytes from `chunks[*first..]`: drop what was written
/// (advancing a partly written chunk), so that `chunks[*first..]` is what is left.
pub fn consume(chunks: &mut [Bytes], first: &mut usize, n: usize) {
    let mut left = n;
    while left > 0 && *first < chunks.len() {
        let c = &mut chunks[*first];
        if left >= c.len() {
            left -= c.len();
            *first += 1;
        } else {
            c.advance(left);
            left = 0;
        }
    }
    while *first < chunks.len() && chunks[*first].is_empty() {
        *first += 1;
    }
}

/// Outgoing PDUs as a list of chunks for `write_vectored`: headers are appended to one
/// growing buffer and split off, data segments are queued as the `Bytes` the LUN produced
/// (no copy of read data).
#[derive(Default)]
pub struct OutQueue {
    scratch: BytesMut,
    chunks: Vec<Bytes>,
    bytes: usize,
}

const PAD: [u8; 4] = [0; 4];

impl OutQueue {
    /// Queue one PDU.
    pub fn push(&mut self, bhs: &[u8; BHS_LEN], data: Bytes, digests: Digests) {
        self.scratch.extend_from_slice(bhs);
        if digests.header {
            self.scratch
                .extend_from_slice(&digest::to_wire(digest::crc32c(bhs)));
        }
        let dlen = data.len();
        if dlen > 0 {
            self.chunks.push(self.scratch.split().freeze());
            let crc = digests.data.then(|| digest::data_digest(&data));
            self.bytes += dlen;
            self.chunks.push(data);
            self.scratch.extend_from_slice(&PAD[..pad_len(dlen)]);
            if let Some(crc) = crc {
                self.scratch.extend_from_slice(&digest::to_wire(crc));
            }
        }
        self.bytes += BHS_LEN;
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.scratch.is_empty()
    }

    /// Roughly how many bytes are queued (to decide when to flush early).
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Take every queued chunk, in order.
    pub fn take(&mut self) -> Vec<Bytes> {
        if !self.scratch.is_empty() {
            self.chunks.push(self.scratch.split().freeze());
        }
        self.bytes = 0;
        std::mem::take(&mut self.chunks)
    }
}

/// One PDU as contiguous bytes (header, header digest, data, padding, data digest), for
/// the few PDUs sent outside a session's queue (login, discovery): the same layout
/// [`OutQueue`] writes.
pub fn encode(bhs: &[u8; BHS_LEN], data: &[u8], digests: Digests) -> Vec<u8> {
    let mut q = OutQueue::default();
    q.push(bhs, Bytes::copy_from_slice(data), digests);
    q.take().concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(q: &mut OutQueue) -> BytesMut {
        let mut b = BytesMut::new();
        for c in q.take() {
            b.extend_from_slice(&c);
        }
        b
    }

    #[test]
    fn frames_round_trip_with_digests_and_padding() {
        let d = Digests {
            header: true,
            data: true,
        };
        let mut q = OutQueue::default();
        let mut bhs = [0u8; BHS_LEN];
        bhs[0] = 0x25;
        Bhs::new_unchecked(&mut bhs[..]).set_data_len(5);
        q.push(&bhs, Bytes::from_static(b"hello"), d);
        let mut buf = wire(&mut q);
        assert_eq!(buf.len(), 48 + 4 + 5 + 3 + 4);
        let mut partial = buf.split_to(30);
        assert!(try_frame(&mut partial, d, 8192).unwrap().is_none());
        partial.unsplit(buf);
        let f = try_frame(&mut partial, d, 8192).unwrap().unwrap();
        assert_eq!(&f.data[..], b"hello");
        assert!(partial.is_empty());
    }

    #[test]
    fn encoded_pdu_is_padded_and_frames_back() {
        let mut bhs = [0u8; BHS_LEN];
        bhs[0] = 0x03;
        Bhs::new_unchecked(&mut bhs[..]).set_data_len(5);
        let b = encode(&bhs, b"a=b\0c", Digests::default());
        assert_eq!(b.len(), 48 + 8);
        assert_eq!(&b[48..], b"a=b\0c\0\0\0");
        let mut buf = BytesMut::from(&b[..]);
        let f = try_frame(&mut buf, Digests::default(), 8192)
            .unwrap()
            .unwrap();
        assert_eq!(&f.data[..], b"a=b\0c");
    }

    #[test]
    fn damaged_digests_and_oversize_refused() {
        let d = Digests {
            header: true,
            data: true,
        };
        let mut q = OutQueue::default();
        let mut bhs = [0u8; BHS_LEN];
        Bhs::new_unchecked(&mut bhs[..]).set_data_len(4);
        q.push(&bhs, Bytes::from_static(b"abcd"), d);
        let good = wire(&mut q);
        let mut bad = good.clone();
        bad[2] ^= 1;
        assert!(matches!(
            try_frame(&mut bad, d, 8192),
            Err(FrameError::HeaderDigest { .. })
        ));
        let mut bad = good.clone();
        bad[53] ^= 1;
        assert!(matches!(
            try_frame(&mut bad, d, 8192),
            Err(FrameError::DataDigest { .. })
        ));
        let mut big = good.clone();
        assert!(matches!(
            try_frame(&mut big, d, 2),
            Err(FrameError::TooLong { len: 4, max: 2 })
        ));
    }
}
