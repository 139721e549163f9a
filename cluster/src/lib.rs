//! hydra-cluster: the node side's cluster operations, over the node daemon (multipath
//! maps), direct iSCSI sessions and corosync.
//!
//! - [`fence`]: `hydra fence_scsi`, the fence-agents `fence_scsi` agent (SCSI-3
//!   persistent reservations; dlm.md §3.1, §3.2).
//! - [`mount`]: `hydra mount` / `hydra umount`: a filesystem mounted only under its DLM
//!   lock and only while this node's PR key is registered.

pub mod error;
pub mod fence;
pub mod mount;

pub use error::{Error, Result};
