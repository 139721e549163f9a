//! CRC32C header and data digests (RFC 7143 §13.1 HeaderDigest/DataDigest; the
//! polynomial is Castagnoli's, RFC 7143 §11.1 of the PDU layout). The 4 digest bytes go on
//! the wire little-endian: the iSCSI digest is the CRC's register value transmitted least
//! significant byte first (RFC 7143 Appendix B test vectors).

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// CRC32C over several slices (header + padding, data + padding) without joining them.
pub fn crc32c_parts(parts: &[&[u8]]) -> u32 {
    parts.iter().fold(0, |crc, p| crc32c::crc32c_append(crc, p))
}

/// Digest of a data segment including its zero padding to a multiple of 4 bytes
/// (RFC 7143 §11.1: the data digest covers the padding).
pub fn data_digest(data: &[u8]) -> u32 {
    let pad = crate::bhs::pad_len(data.len());
    crc32c_parts(&[data, &[0u8; 3][..pad]])
}

/// Encode a digest for the wire.
pub fn to_wire(crc: u32) -> [u8; 4] {
    crc.to_le_bytes()
}

/// Decode a digest from the wire.
pub fn from_wire(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7143 Appendix B.4 (CRC32C examples): 32 bytes of zeros -> 0x8a9136aa, sent as
    /// `aa 36 91 8a`.
    #[test]
    fn rfc7143_appendix_b_vectors() {
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(to_wire(crc32c(&[0u8; 32])), [0xaa, 0x36, 0x91, 0x8a]);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113f_db5c);
    }

    #[test]
    fn parts_equal_whole_and_padding_is_covered() {
        let d = b"hello world";
        assert_eq!(crc32c_parts(&[&d[..5], &d[5..]]), crc32c(d));
        let mut padded = d.to_vec();
        padded.push(0);
        assert_eq!(data_digest(d), crc32c(&padded));
    }
}
