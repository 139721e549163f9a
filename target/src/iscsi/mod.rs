//! The iSCSI side of the target: login, the full-feature session, write-data
//! collection, SendTargets, and the tokio connection driver over them.

pub mod conn;
pub mod discovery;
/// Framing lives in the wire crate (shared with the initiator); re-exported here.
pub use hydra_proto::framing;
pub mod login;
pub mod session;
pub mod task;
