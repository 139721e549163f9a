//! # hydra-proto — iSCSI and SCSI on the wire, with no I/O
//!
//! This crate holds every wire format and protocol rule that hydra's target and initiator
//! share. It has no tokio, no sockets and no clock: inputs are byte slices and values,
//! outputs are byte vectors and decisions (the quinn-proto / smoltcp shape).
//!
//! Layers, bottom up:
//! - [`serial`]: RFC 1982 serial-number arithmetic for CmdSN/StatSN/DataSN/R2TSN.
//! - [`digest`]: CRC32C header and data digests (RFC 7143 §12.1 of the digests: iSCSI uses
//!   the Castagnoli polynomial).
//! - [`bhs`]: the 48-byte Basic Header Segment as a zero-copy view; [`pdu`]: one `Repr`
//!   per RFC 7143 opcode with `parse`/`emit`.
//! - [`text`]: `key=value\0` data segments; [`negotiate`]: the RFC 7143 §13 key table and
//!   negotiation rules; [`chap`]: CHAP (RFC 1994) with IANA algorithm numbers;
//!   [`send_targets`]: the SendTargets answer.
//! - [`scsi`]: SCSI on the wire, one module per structure, each a type with `parse` and
//!   `emit` used by both ends: CDBs, sense data, VPD pages and udev's WWID, persistent
//!   reservations, REPORT TARGET PORT GROUPS, REPORT LUNS, READ CAPACITY, UNMAP.
#![forbid(unsafe_code)]

pub mod error;
pub use error::{Error, Result};

pub mod bhs;
pub mod chap;
pub mod digest;
pub mod framing;
pub mod negotiate;
pub mod pdu;
pub mod scsi;
pub mod send_targets;
pub mod serial;
pub mod text;
