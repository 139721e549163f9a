//! hydra's lock manager core: Linux DLM semantics (fs/dlm, dlm_controld's fencing and
//! recovery gating, libdlm's calls and callbacks) as a sans-IO state machine.
//!
//! A [`node::Node`] is fed [`io::Input`]s (client calls, peer messages, CPG membership
//! changes, quorum, fence results, ticks) with the time they happened and answers with
//! [`io::Output`]s (messages to send, CPG joins and multicasts, replies and callbacks,
//! fence requests, log lines). No clock, no sockets, no runtime: the same code runs under
//! the daemon's tokio drivers (hydra-dlm) and under the deterministic simulation
//! (`sim`, feature `sim`, for tests), which is why it is a crate of its own — nothing
//! here can reach for I/O or a thread, and the simulation replays a seed exactly.
//!
//! Modules: `mode` and `flags` (the lock modes and call flags), `resource` (one
//! resource's queues at its master: grants, conversions, deadlocks, value blocks),
//! `lockspace` (owner side, master side, directory, recovery), `node` (the lockspaces,
//! membership and fencing of one node), `message` (what cores say to each other),
//! `membership` (CPG and quorum events), `api` (what clients ask and get), `io`.
#![forbid(unsafe_code)]

pub mod api;
pub mod flags;
pub mod io;
pub mod lockspace;
pub mod membership;
pub mod message;
pub mod mode;
pub mod node;
pub mod resource;
#[cfg(feature = "sim")]
pub mod sim;

/// `DLM_RESNAME_MAXLEN`: resource names are at most 64 bytes.
pub const RESNAME_MAXLEN: usize = 64;
/// `DLM_LOCKSPACE_LEN`: lockspace names are at most 64 bytes.
pub const LOCKSPACE_LEN: usize = 64;
