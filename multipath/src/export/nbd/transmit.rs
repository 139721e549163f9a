//! Transmission phase, sans-IO: a framed request is checked against its export and
//! becomes a [`Command`] for the block device, or the errno to answer it with.
//!
//! Rules (doc/proto.md, "Request types" and "Error values"):
//! - a request beyond the end of the export is answered, not fatal: EINVAL, except a
//!   write or write-zeroes, which get ENOSPC ("The server SHOULD return NBD_ENOSPC if
//!   it receives a write request including one or more sectors beyond the size of the
//!   device");
//! - an offset or length that is not a multiple of the minimum block size announced in
//!   `NBD_INFO_BLOCK_SIZE` is EINVAL;
//! - a write, trim or write-zeroes on a read-only export is EPERM;
//! - a command or flag this server did not announce is EINVAL. FUA is accepted on
//!   every command ("the server MUST accept all commands with this bit set (even by
//!   ignoring the bit)") and acted on where the command writes;
//! - a READ longer than `MAX_PAYLOAD` is EINVAL (a simple reply cannot be split).

use bytes::Bytes;

use super::negotiate::ExportInfo;
use super::wire::*;

/// A checked request, ready for the block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        data: Bytes,
        fua: bool,
    },
    Flush,
    Trim {
        offset: u64,
        len: u32,
        fua: bool,
    },
    WriteZeroes {
        offset: u64,
        len: u32,
        may_unmap: bool,
        fua: bool,
    },
    /// `NBD_CMD_DISC`: finish what is in flight, then close.
    Disconnect,
}

impl Command {
    /// Payload bytes the command holds in memory while in flight (a WRITE's data now,
    /// a READ's data later): what the connection's byte budget counts.
    pub fn payload_len(&self) -> u32 {
        match self {
            Command::Read { len, .. } => *len,
            Command::Write { data, .. } => data.len() as u32,
            _ => 0,
        }
    }
}

/// Check `req` against the export it is sent to.
pub fn check(req: Request, info: &ExportInfo) -> Result<Command, Errno> {
    let allowed = match req.command {
        CMD_WRITE_ZEROES => CMD_FLAG_FUA | CMD_FLAG_NO_HOLE,
        _ => CMD_FLAG_FUA,
    };
    if req.flags & !allowed != 0 {
        return Err(Errno::Inval);
    }
    let fua = req.flags & CMD_FLAG_FUA != 0;
    let writes = matches!(req.command, CMD_WRITE | CMD_TRIM | CMD_WRITE_ZEROES);
    if writes && info.read_only {
        return Err(Errno::Perm);
    }
    let range = || -> Result<(), Errno> {
        let block = u64::from(info.min_block.max(1));
        if !req.offset.is_multiple_of(block) || !u64::from(req.len).is_multiple_of(block) {
            return Err(Errno::Inval);
        }
        match req.offset.checked_add(u64::from(req.len)) {
            Some(end) if end <= info.size => Ok(()),
            _ if matches!(req.command, CMD_WRITE | CMD_WRITE_ZEROES) => Err(Errno::NoSpc),
            _ => Err(Errno::Inval),
        }
    };
    let (offset, len) = (req.offset, req.len);
    match req.command {
        CMD_READ => {
            if len > MAX_PAYLOAD {
                return Err(Errno::Inval);
            }
            range()?;
            Ok(Command::Read { offset, len })
        }
        CMD_WRITE => {
            range()?;
            Ok(Command::Write {
                offset,
                data: req.payload,
                fua,
            })
        }
        CMD_FLUSH => Ok(Command::Flush),
        CMD_TRIM => {
            range()?;
            Ok(Command::Trim { offset, len, fua })
        }
        CMD_WRITE_ZEROES => {
            range()?;
            Ok(Command::WriteZeroes {
                offset,
                len,
                may_unmap: req.flags & CMD_FLAG_NO_HOLE == 0,
                fua,
            })
        }
        CMD_DISC => Ok(Command::Disconnect),
        _ => Err(Errno::Inval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: ExportInfo = ExportInfo {
        size: 1 << 20,
        min_block: 512,
        preferred_block: 4096,
        read_only: false,
    };

    fn req(command: u16, flags: u16, offset: u64, len: u32) -> Request {
        let payload = if command == CMD_WRITE {
            Bytes::from(vec![0; len as usize])
        } else {
            Bytes::new()
        };
        Request {
            flags,
            command,
            cookie: 1,
            offset,
            len,
            payload,
        }
    }

    #[test]
    fn in_range_commands() {
        assert_eq!(
            check(req(CMD_READ, 0, 0, 4096), &INFO),
            Ok(Command::Read {
                offset: 0,
                len: 4096
            })
        );
        assert!(matches!(
            check(req(CMD_WRITE, CMD_FLAG_FUA, (1 << 20) - 512, 512), &INFO),
            Ok(Command::Write {
                offset: 1_048_064,
                fua: true,
                ..
            })
        ));
        assert_eq!(check(req(CMD_FLUSH, 0, 0, 0), &INFO), Ok(Command::Flush));
        assert_eq!(
            check(req(CMD_FLUSH, CMD_FLAG_FUA, 0, 0), &INFO),
            Ok(Command::Flush)
        );
        assert_eq!(
            check(req(CMD_TRIM, 0, 512, 1024), &INFO),
            Ok(Command::Trim {
                offset: 512,
                len: 1024,
                fua: false
            })
        );
        assert_eq!(
            check(req(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 0, 512), &INFO),
            Ok(Command::WriteZeroes {
                offset: 0,
                len: 512,
                may_unmap: false,
                fua: false
            })
        );
        assert_eq!(
            check(req(CMD_WRITE_ZEROES, CMD_FLAG_FUA, 0, 1 << 20), &INFO),
            Ok(Command::WriteZeroes {
                offset: 0,
                len: 1 << 20,
                may_unmap: true,
                fua: true
            })
        );
        assert_eq!(
            check(req(CMD_DISC, 0, 0, 0), &INFO),
            Ok(Command::Disconnect)
        );
    }

    #[test]
    fn beyond_the_end() {
        assert_eq!(
            check(req(CMD_READ, 0, 1 << 20, 512), &INFO),
            Err(Errno::Inval)
        );
        assert_eq!(
            check(req(CMD_READ, 0, u64::MAX - 511, 512), &INFO),
            Err(Errno::Inval)
        );
        assert_eq!(
            check(req(CMD_TRIM, 0, 512, 1 << 20), &INFO),
            Err(Errno::Inval)
        );
        assert_eq!(
            check(req(CMD_WRITE, 0, (1 << 20) - 512, 1024), &INFO),
            Err(Errno::NoSpc)
        );
        assert_eq!(
            check(req(CMD_WRITE_ZEROES, 0, 1 << 20, 512), &INFO),
            Err(Errno::NoSpc)
        );
        assert_eq!(
            check(req(CMD_READ, 0, 0, MAX_PAYLOAD + 512), &INFO),
            Err(Errno::Inval)
        );
    }

    #[test]
    fn misaligned_unknown_and_read_only() {
        assert_eq!(check(req(CMD_READ, 0, 1, 512), &INFO), Err(Errno::Inval));
        assert_eq!(check(req(CMD_WRITE, 0, 0, 100), &INFO), Err(Errno::Inval));
        assert_eq!(
            check(req(CMD_READ, CMD_FLAG_NO_HOLE, 0, 512), &INFO),
            Err(Errno::Inval)
        );
        assert_eq!(
            check(req(CMD_READ, 1 << 2, 0, 512), &INFO),
            Err(Errno::Inval),
            "DF without structured replies"
        );
        assert_eq!(
            check(req(7, 0, 0, 512), &INFO),
            Err(Errno::Inval),
            "BLOCK_STATUS not negotiated"
        );
        assert_eq!(
            check(req(5, 0, 0, 512), &INFO),
            Err(Errno::Inval),
            "CACHE not announced"
        );
        let ro = ExportInfo {
            read_only: true,
            ..INFO
        };
        assert_eq!(check(req(CMD_WRITE, 0, 0, 512), &ro), Err(Errno::Perm));
        assert_eq!(check(req(CMD_TRIM, 0, 0, 512), &ro), Err(Errno::Perm));
        assert_eq!(
            check(req(CMD_WRITE_ZEROES, 0, 0, 512), &ro),
            Err(Errno::Perm)
        );
        assert_eq!(
            check(req(CMD_READ, 0, 0, 512), &ro),
            Ok(Command::Read {
                offset: 0,
                len: 512
            })
        );
    }
}
