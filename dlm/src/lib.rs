//! hydra's distributed lock manager: Linux DLM semantics (fs/dlm, dlm_controld, libdlm)
//! in userspace, with corosync for membership and quorum.
//!
//! The lock logic is the sans-IO core of crate `hydra-dlm-core` (re-exported here under
//! the same module names: `mode`, `flags`, `resource`, `lockspace`, `node`, `message`,
//! `membership`, `api`, `io`): its inputs are client requests, peer messages, membership
//! events and ticks; its outputs are messages to send and callbacks to deliver. This
//! crate is the drivers that move the bytes: corosync (`corosync`), the daemon
//! (`daemon`), the client library and socket protocol (`client`, `wire`), the fence
//! agents (`fence`) and dlm.conf (`config`). The deterministic simulation is the core's
//! (feature `sim`), run by `tests/sim.rs`.

pub mod client;
pub mod config;
pub mod corosync;
pub mod daemon;
pub mod error;
pub mod fence;
mod fxhash;
mod outbox;
mod socket;
pub mod wire;

pub use error::{Error, Result};
pub use hydra_dlm_core::{
    api, flags, io, lockspace, membership, message, mode, node, resource, LOCKSPACE_LEN,
    RESNAME_MAXLEN,
};
pub use membership::NodeId;
