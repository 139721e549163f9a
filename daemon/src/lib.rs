//! # hydra-daemon — the scaffolding every hydra daemon shares
//!
//! `hydra tgtd`, `hydra iscsid` and `hydra dlm_controld` (and the daemons still to come)
//! start, serve and stop the same way; each piece is written once here:
//! - [`run_dir`]: the run directory, made on start;
//! - [`pid_file`]: `<run dir>/<name>.pid`, flock(2)ed for the daemon's life, so a second
//!   instance is refused with a message naming the first one's pid;
//! - [`detach`]: fork into the background, and exit 0 in the parent only once the child
//!   reports that it is serving (tgtd exits 0 before it knows);
//! - [`control`]: a request/response unix socket, one JSON line each way, carrying a
//!   protocol version so that a CLI and a daemon of different versions refuse each other
//!   clearly instead of misreading each other;
//! - [`shutdown`]: SIGTERM/SIGINT or a request start a stop that every task hears, and
//!   the daemon waits until every task has finished (mini-redis's `shutdown.rs` shape).
//!
//! What each daemon does (iSCSI, locks) stays in its own crate; this one knows nothing
//! about it.

pub mod control;
pub mod detach;
mod error;
pub mod pid_file;
pub mod run_dir;
pub mod shutdown;

pub use error::{Error, Result};
pub use pid_file::PidFile;
pub use shutdown::{Shutdown, Signals, Stop};
