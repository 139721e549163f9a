//! # hydra-initiator — hydra's iSCSI initiator
//!
//! - [`login`]: the initiator side of login, sans-IO (CHAP, operational negotiation).
//! - [`session`]: the full feature phase, sans-IO: CmdSN window, immediate, unsolicited
//!   and R2T-driven Data-Out, Data-In assembly, NOP-In answers.
//! - [`conn`]: the tokio driver of one session; [`scsi`]: typed SCSI commands.
//!
//! Not yet here (issue 4): reconnect with reinstatement, NOP-Out timeouts, task
//! management on command timeout, `hydra iscsid`, `hydra iscsiadm`, `hydra iscsi-perf`.

pub mod conn;
pub mod error;
pub mod login;
pub mod scsi;
pub mod session;
pub mod url;

pub use conn::Session;
pub use error::{Error, Result};
