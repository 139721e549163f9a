//! # hydra-initiator — hydra's iSCSI initiator
//!
//! - [`login`]: the initiator side of login, sans-IO (CHAP, operational negotiation).
//! - [`session`]: the full feature phase, sans-IO: CmdSN window, immediate, unsolicited
//!   and R2T-driven Data-Out, Data-In assembly, NOP-In answers.
//! - [`conn`]: the tokio driver of one session: NOP-Out pings on an idle connection,
//!   reconnect (same ISID, so the target reinstates the session) resending what was in
//!   flight, and failing commands once replacement_timeout has passed.
//! - [`scsi`]: typed SCSI commands; [`url`]: libiscsi's `iscsi://` URLs.
//!
//! Not yet here (issue 4): task management on command timeout, `hydra iscsid`,
//! `hydra iscsiadm`.

pub mod conn;
pub mod discovery;
pub mod error;
pub mod ipc;
pub mod login;
pub mod node_db;
pub mod record;
pub mod registry;
pub mod scsi;
pub mod session;
pub mod url;
pub mod wwid;

pub use conn::Session;
pub use error::{Error, Result};
