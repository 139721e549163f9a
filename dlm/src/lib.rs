//! hydra's distributed lock manager: Linux DLM semantics (fs/dlm, dlm_controld, libdlm)
//! in userspace, with corosync for membership and quorum.
//!
//! The lock logic is a sans-IO core (`mode`, `flags`, `resource`, `lockspace`, `node`,
//! `message`, `membership`, `api`): its inputs (client requests, peer messages,
//! membership events, ticks) and outputs (messages to send, callbacks to deliver) are
//! `io`'s, a leaf the rest of the core and the drivers depend on. Thin tokio drivers
//! (`corosync`, the daemon) move bytes; `sim` drives many cores deterministically.

pub mod config;
pub mod corosync;
pub mod error;
pub mod fence;
pub mod membership;

pub use error::{Error, Result};
pub use membership::NodeId;
pub mod api;
pub mod client;
pub mod daemon;
pub mod flags;
pub mod io;
pub mod lockspace;
pub mod message;
pub mod mode;
pub mod node;
mod outbox;
pub mod resource;
pub mod sim;
mod socket;
pub mod wire;

/// `DLM_RESNAME_MAXLEN`: resource names are at most 64 bytes.
pub const RESNAME_MAXLEN: usize = 64;
/// `DLM_LOCKSPACE_LEN`: lockspace names are at most 64 bytes.
pub const LOCKSPACE_LEN: usize = 64;
