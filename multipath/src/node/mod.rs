//! The node daemon: iSCSI sessions, the multipath maps over them, and each map's
//! exports, in one process (DESIGN.md: no IPC hop per I/O).
//!
//! - [`device`]: one map's exports (NBD socket, FUSE + loop block device, partitions,
//!   the `/dev/mapper` names).

pub mod device;
