//! The iSCSI side of the target: framing, login, the full-feature session, write-data
//! collection, SendTargets, and the tokio connection driver over them.

pub mod conn;
pub mod discovery;
pub mod framing;
pub mod login;
pub mod session;
pub mod task;
