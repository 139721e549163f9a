//! hydra multipath aggregator.
//!
//! Configuration layer (sans-IO except for the thin `load`/`save` helpers):
//! - [`config`]: multipath.conf in multipath-tools' syntax and semantics, its
//!   blacklists, the effective settings of a map, and `multipath -t` output;
//! - [`bindings`]: `/etc/multipath/bindings` (user-friendly names);
//! - [`wwids`]: `/etc/multipath/wwids` (the WWIDs that have been multipathed).
//!
//! [`map`]: one map's decisions (path groups, selectors, failover, checker schedule,
//! `no_path_retry`, failback), sans-IO, for a tokio driver that owns the sessions.
//!
//! [`driver`]: the tokio driver of one map over initiator sessions (the map as a
//! block device, path checker, persistent reservations).
//!
//! [`show`]: snapshots of maps and the `multipath -ll` / `multipathd show` printers;
//! [`control`]: the multipathd control protocol the CLIs speak to the node daemon.
//!
//! `export`: how a map is served to its users — the `BlockDevice` trait every export
//! serves from, a file-backed device, and the NBD server (DESIGN.md, Data paths → Export).
//!
//! [`node`]: the node daemon (`hydra iscsid`): sessions, maps, exports, devices and the
//! multipathd control socket in one process.

mod error;
pub use error::{Error, Result};

pub mod bindings;
pub mod config;
pub mod control;
pub mod driver;
pub mod export;
pub mod map;
pub mod node;
pub mod persist;
pub mod show;
pub mod wwids;

mod statefile;
