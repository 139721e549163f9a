//! The core's CPG requests (join, leave, multicast) carried out against corosync in the
//! order the core made them, by one task: a join must be done before the group's first
//! multicast, and a node's multicasts to a group must keep their order. Each request is
//! an IPC round trip to corosync (corosync.rs), so the event loop hands them over
//! instead of waiting. Recovery and fencing traffic is all that goes this way; lock
//! traffic goes over TCP (peers.rs).

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::corosync::Corosync;
use crate::membership::NodeId;

use super::log::DebugLog;
use super::Event;

#[derive(Debug)]
pub enum CpgOp {
    Join(String),
    Leave(String),
    /// A message (`Wire::encode` bytes, no length prefix) for a joined group.
    Mcast(String, Vec<u8>),
    /// Answered once every request before it is done.
    Flush(oneshot::Sender<()>),
    /// corosync_cfg_kill_node (a stateful-merged member): corosync requests too, so
    /// they go the same way; after the multicasts before it.
    Kick(NodeId),
}

/// Start the task; it runs until the sender is dropped. A failed join is reported as
/// [`Event::JoinFailed`]; other failures are logged (corosync.rs already retried
/// CS_ERR_TRY_AGAIN for 30 s).
pub fn spawn(
    corosync: Arc<Corosync>,
    events: mpsc::Sender<Event>,
    log: DebugLog,
) -> mpsc::UnboundedSender<CpgOp> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut joined = BTreeSet::new();
        while let Some(op) = rx.recv().await {
            match op {
                CpgOp::Join(group) => match corosync.join(&group).await {
                    Ok(()) => {
                        joined.insert(group);
                    }
                    Err(e) => {
                        log.line(format!("cpg_join {group} failed: {e}"));
                        let ev = Event::JoinFailed {
                            group,
                            error: e.to_string(),
                        };
                        if events.send(ev).await.is_err() {
                            return;
                        }
                    }
                },
                CpgOp::Leave(group) => {
                    // A group whose join failed was never joined: nothing to leave.
                    if joined.remove(&group) {
                        if let Err(e) = corosync.leave(&group).await {
                            log.line(format!("cpg_leave {group} failed: {e}"));
                        }
                    }
                }
                CpgOp::Flush(done) => {
                    let _ = done.send(());
                }
                CpgOp::Kick(node) => {
                    let reason = format!("dlm_controld: node {node} merged with lockspace state");
                    match corosync.kill_node(node, reason).await {
                        Ok(()) => log.line(format!("corosync_cfg_kill_node {node} done")),
                        Err(e) => log.line(format!("corosync_cfg_kill_node {node} failed: {e}")),
                    }
                }
                CpgOp::Mcast(group, data) => {
                    if let Err(e) = corosync.mcast(&group, &data).await {
                        log.line(format!(
                            "cpg_mcast_joined {group} ({} bytes) failed: {e}",
                            data.len()
                        ));
                    }
                }
            }
        }
    });
    tx
}
