//! What `--op show` prints: snapshots of the registry in [`crate::show`]'s shapes.

use crate::acl::Acl;
use crate::lun::Lun;
use crate::registry::{Registry, SessionEntry, Target};
use crate::show;

/// `--mode target --op show`.
pub(super) fn targets(reg: &Registry) -> String {
    let sessions = reg.sessions(None);
    let views: Vec<_> = reg
        .all_targets()
        .iter()
        .map(|t| target_view(t, &sessions))
        .collect();
    show::format_targets(&views)
}

/// `--mode conn --op show` (tgt lists the newest session first).
pub(super) fn sessions(reg: &Registry, tid: Option<u32>) -> String {
    let mut sessions = reg.sessions(tid);
    sessions.sort_by_key(|e| std::cmp::Reverse(e.id));
    let views: Vec<show::NexusView> = sessions.iter().map(|e| nexus_view(e)).collect();
    show::format_sessions(&views)
}

/// `--mode sys --op show`.
pub(super) fn sys(reg: &Registry) -> String {
    let mut v = show::SysView::hydra(reg.state.read().expect("lock").as_str());
    v.discovery_accounts = reg
        .discovery_incoming
        .read()
        .expect("lock")
        .iter()
        .map(|a| a.user.clone())
        .collect();
    v.discovery_outgoing = reg
        .discovery_outgoing
        .read()
        .expect("lock")
        .as_ref()
        .map(|a| a.user.clone());
    show::format_sys(&v)
}

fn target_view(t: &Target, sessions: &[std::sync::Arc<SessionEntry>]) -> show::TargetView {
    let acl: Acl = t.acl.read().expect("lock").clone();
    show::TargetView {
        tid: t.tid,
        iqn: t.iqn.clone(),
        driver: "iscsi".into(),
        state: t.state.read().expect("lock").as_str().into(),
        nexuses: sessions
            .iter()
            .filter(|s| s.tid == t.tid)
            .map(|s| nexus_view(s))
            .collect(),
        luns: t
            .luns
            .read()
            .expect("lock")
            .values()
            .map(|l| lun_view(l))
            .collect(),
        accounts: t
            .incoming
            .read()
            .expect("lock")
            .iter()
            .map(|a| a.user.clone())
            .collect(),
        outgoing_account: t
            .outgoing
            .read()
            .expect("lock")
            .as_ref()
            .map(|a| a.user.clone()),
        acl_addresses: acl.addresses.iter().map(|a| a.to_string()).collect(),
        acl_names: acl.names.clone(),
    }
}

/// One LUN; LUN 0 is tgt's controller with a "null" backing store.
fn lun_view(l: &Lun) -> show::LunView {
    let s = l.settings();
    show::LunView {
        lun: l.number(),
        type_: if s.is_some() {
            "disk".into()
        } else {
            "controller".into()
        },
        scsi_id: l.scsi_id(),
        scsi_sn: l.scsi_sn(),
        size_bytes: l.size_bytes(),
        block_size: s.map(|s| s.block_size).unwrap_or(1),
        online: s.is_none_or(|s| s.online),
        removable: s.is_some_and(|s| s.removable),
        prevent_removal: false,
        readonly: s.is_some_and(|s| s.readonly),
        swp: false,
        thin_provisioning: s.is_some_and(|s| s.thin_provisioning),
        backing_type: if s.is_some() {
            "rdwr".into()
        } else {
            "null".into()
        },
        backing_path: s
            .map(|s| s.path.display().to_string())
            .unwrap_or_else(|| "None".into()),
        backing_flags: s
            .map(|s| show::backing_flags(s.o_direct, s.o_sync))
            .unwrap_or_default(),
    }
}

/// One I_T nexus as `show` prints it (one connection per session at ERL 0, MC/S off).
fn nexus_view(s: &SessionEntry) -> show::NexusView {
    show::NexusView {
        id: s.id,
        initiator: s.nexus.initiator.clone(),
        alias: s.alias.clone(),
        connections: vec![show::ConnView {
            cid: s.cid as u64,
            ip: s.peer.ip().to_string(),
        }],
    }
}
