//! # hydra-target — a tgtd-compatible iSCSI target
//!
//! Layers, bottom up:
//! - [`backing`]: backing stores (files, block devices), with a non-blocking fast path
//!   for page-cache hits and a blocking pool for everything else.
//! - [`lun`]: SCSI emulation of one logical unit (SPC-4/SBC-3), sans-IO apart from its
//!   backing store; [`nexus`]: the I_T nexus that unit attentions and reservations key on.
//! - [`config`]: targets.conf (tgt-admin's directives, errors with file/line/directive);
//!   [`acl`]: initiator address/name access lists.
//! - the iSCSI side (login, sessions, connections, discovery) and the daemon with its
//!   control socket, driven by tokio over `hydra-proto`.

pub mod error;
pub use error::{Error, Result};

pub mod acl;
pub mod admin;
pub mod alua;
pub mod backing;
pub mod config;
pub mod control;
pub mod daemon;
pub mod iscsi;
pub mod lun;
pub mod nexus;
pub mod registry;
pub mod shards;
pub mod show;
