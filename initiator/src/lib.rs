//! # hydra-initiator — hydra's iSCSI initiator
//!
//! - [`login`]: the initiator side of login, sans-IO (CHAP, operational negotiation).
//! - [`session`]: the full feature phase, sans-IO: CmdSN window, immediate, unsolicited
//!   and R2T-driven Data-Out, Data-In assembly, NOP-In answers.
//! - [`conn`]: the tokio driver of one session: NOP-Out pings on an idle connection,
//!   reconnect (same ISID, so the target reinstates the session) resending what was in
//!   flight, failing commands once replacement_timeout has passed (or at once, for a
//!   fail-fast session under multipath), and ABORT TASK / LUN RESET for commands past
//!   their timeout.
//! - [`path`]: a session as a multipath path: its state as events (Up, Down and why,
//!   LoggedOut) and which failures another path could fix (Linux's `blk_path_error`).
//! - [`scsi`]: typed SCSI commands; [`url`]: libiscsi's `iscsi://` URLs.
//! - [`record`], [`node_db`]: open-iscsi's node and discovery records and their tree
//!   under /etc/iscsi; [`iscsid`]: the daemon holding a node's sessions in the
//!   [`registry`] (what multipath consumes), answering [`ipc`] requests from iscsiadm.

pub mod conn;
pub mod discovery;
pub mod error;
pub mod ipc;
pub mod iscsid;
pub mod login;
pub mod node_db;
pub mod path;
pub mod record;
pub mod registry;
pub mod scsi;
pub mod session;
pub mod status_text;
pub mod url;
/// udev's WWID of a LUN, derived from its VPD pages (shared with the target's tests).
pub use hydra_proto::scsi::wwid;

pub use conn::Session;
pub use error::{Error, Result};
pub use path::{DownReason, PathState, Verdict};
