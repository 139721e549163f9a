//! One `Repr` per RFC 7143 PDU (§11): the header fields as plain Rust values, with
//! `parse` from a checked [`Bhs`] and `emit` into 48 bytes. The data segment never lives
//! in a Repr: it stays a slice or `Bytes` owned by the caller, so Data-In/Data-Out payloads
//! travel without copies.

use crate::bhs::{Bhs, Opcode, BHS_LEN};
use crate::{Error, Result};

mod data;
mod login;
mod misc;
mod nop;
mod scsi;
mod text;
mod tmf;

pub use data::{DataIn, DataOut, R2t};
pub use login::{LoginRequest, LoginResponse, LoginStage, LoginStatus, LOGIN_MAX_DATA};
pub use misc::{AsyncMessage, LogoutRequest, LogoutResponse, Reject, RejectReason, Snack};
pub use nop::{NopIn, NopOut};
pub use scsi::{ScsiCommand, ScsiResponse, TaskAttr};
pub use text::{TextRequest, TextResponse};
pub use tmf::{TaskMgmtRequest, TaskMgmtResponse, TmfFunction, TmfResponse};

/// The reserved tag value (RFC 7143 §11.2.1.6): "no task" / "not a reply".
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// A PDU header type: its opcode, how to read it from a BHS and how to write it.
pub trait Repr: Sized {
    /// The opcode this Repr parses and emits.
    const OPCODE: Opcode;
    /// Parse the opcode-specific fields (the caller has checked the opcode).
    fn parse_fields(b: &[u8]) -> Result<Self>;
    /// Write the opcode-specific fields; `emit` sets opcode and data length.
    fn emit_fields(&self, b: &mut [u8; BHS_LEN]);
    /// Whether the I (immediate) bit is set on the wire.
    fn immediate(&self) -> bool {
        false
    }

    /// Parse from a BHS, refusing a different opcode.
    fn parse(bhs: &Bhs<&[u8]>) -> Result<Self> {
        if bhs.opcode() != Self::OPCODE {
            return Err(Error::Unexpected {
                expected: opcode_name(Self::OPCODE),
                got: format!("{:?}", bhs.opcode()),
            });
        }
        Self::parse_fields(bhs.into_inner())
    }

    /// The 48 header bytes for a PDU with `data_len` bytes of data segment.
    fn emit(&self, data_len: usize) -> [u8; BHS_LEN] {
        let mut b = [0u8; BHS_LEN];
        self.emit_fields(&mut b);
        b[0] = u8::from(Self::OPCODE) | if self.immediate() { 0x40 } else { 0 };
        Bhs::new_unchecked(&mut b[..]).set_data_len(data_len);
        b
    }
}

/// Human name of an opcode for messages.
pub fn opcode_name(op: Opcode) -> &'static str {
    match op {
        Opcode::NopOut => "NOP-Out",
        Opcode::ScsiCommand => "SCSI Command",
        Opcode::TaskMgmtRequest => "Task Management Function Request",
        Opcode::LoginRequest => "Login Request",
        Opcode::TextRequest => "Text Request",
        Opcode::DataOut => "SCSI Data-Out",
        Opcode::LogoutRequest => "Logout Request",
        Opcode::Snack => "SNACK Request",
        Opcode::NopIn => "NOP-In",
        Opcode::ScsiResponse => "SCSI Response",
        Opcode::TaskMgmtResponse => "Task Management Function Response",
        Opcode::LoginResponse => "Login Response",
        Opcode::TextResponse => "Text Response",
        Opcode::DataIn => "SCSI Data-In",
        Opcode::LogoutResponse => "Logout Response",
        Opcode::R2t => "Ready To Transfer (R2T)",
        Opcode::AsyncMessage => "Asynchronous Message",
        Opcode::Reject => "Reject",
        Opcode::Unknown(_) => "unknown opcode",
    }
}

/// Any PDU header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Pdu {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    Snack(Snack),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
}

macro_rules! dispatch {
    ($($v:ident),*) => {
        impl Pdu {
            /// Parse any PDU header; unknown opcodes are an error the session answers with
            /// a Reject (reason Command Not Supported / Protocol Error).
            pub fn parse(bhs: &[u8]) -> Result<Pdu> {
                let v = Bhs::new_checked(bhs)?;
                match v.opcode() {
                    $( Opcode::$v => Ok(Pdu::$v($v::parse_fields(&bhs[..BHS_LEN])?)), )*
                    Opcode::Unknown(op) => Err(Error::Unsupported {
                        what: "opcode",
                        detail: format!("0x{op:02x}"),
                    }),
                }
            }
            /// The 48 header bytes for this PDU with `data_len` bytes of data.
            pub fn emit(&self, data_len: usize) -> [u8; BHS_LEN] {
                match self { $( Pdu::$v(r) => r.emit(data_len), )* }
            }
            /// The opcode.
            pub fn opcode(&self) -> Opcode {
                match self { $( Pdu::$v(_) => $v::OPCODE, )* }
            }
        }
    };
}

dispatch!(
    NopOut,
    ScsiCommand,
    TaskMgmtRequest,
    LoginRequest,
    TextRequest,
    DataOut,
    LogoutRequest,
    Snack,
    NopIn,
    ScsiResponse,
    TaskMgmtResponse,
    LoginResponse,
    TextResponse,
    DataIn,
    LogoutResponse,
    R2t,
    AsyncMessage,
    Reject
);

#[cfg(test)]
mod roundtrip;
