//! An NBD server for block devices (the NBD protocol, NetworkBlockDevice/nbd
//! doc/proto.md), so that qemu-img, qemu-io, nbdcopy, nbdinfo, nbdfuse and fio's nbd
//! engine can use a map without the kernel.
//!
//! - [`wire`]: frames and numbers, sans-IO parsers (check, then parse);
//! - [`negotiate`]: fixed newstyle option haggling (`EXPORT_NAME`, `GO`, `INFO`,
//!   `LIST`, `ABORT`; `STRUCTURED_REPLY` refused, so every reply is a simple reply);
//! - [`transmit`]: a request checked against its export becomes a [`transmit::Command`]
//!   or an errno;
//! - [`NbdServer`]: the tokio driver on unix sockets (and TCP on loopback).
//!
//! Announced per export: `HAS_FLAGS`, `SEND_FLUSH`, `SEND_FUA`, `CAN_MULTI_CONN`, and
//! `SEND_TRIM` + `SEND_WRITE_ZEROES` (or `READ_ONLY`); block sizes: minimum = the
//! device's logical block, preferred = its preferred size, maximum = 32 MiB
//! ([`wire::MAX_PAYLOAD`]).

pub mod negotiate;
mod server;
pub mod transmit;
pub mod wire;

pub use server::{bind_unix, NbdServer};
