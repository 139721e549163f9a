//! `hydra fence_scsi`: the fence-agents `fence_scsi` agent (dlm.md §3.1, §3.2) for
//! hydra's devices. A node is fenced by taking its SCSI-3 persistent reservation key
//! off the shared LUNs (PREEMPT AND ABORT under a Write Exclusive – Registrants Only
//! reservation, SPC-4 §5.13): its writes then fail with RESERVATION CONFLICT at the
//! target, whatever the node still believes.
//!
//! - [`options`]: stdin `name=value` lines and getopt flags → [`Options`] (sans-IO).
//! - [`key`]: fence_scsi's key derivation (sans-IO).
//! - [`cmap`]: cluster name and nodelist from `corosync-cmapctl`, as fence_scsi reads them.
//! - [`store`]: this node's key and devices (`/var/run/cluster/fence_scsi.key`, `.dev`).
//! - [`metadata`]: the XML description.
//! - [`device`]: [`PrDevice`] over a node daemon map or a direct iSCSI session.
//! - [`agent`]: the actions.

pub mod agent;
pub mod cmap;
pub mod device;
pub mod key;
pub mod metadata;
pub mod options;
pub mod store;

pub use agent::{run, Outcome};
pub use device::PrDevice;
pub use key::Key;
pub use options::{parse_args, parse_stdin, Action, KeyValue, Options};
