//! tgtadm's `--mode target --op show` layout, reproduced byte for byte (captured from
//! Debian's tgtd 1.0.85), so scripts that parse it keep working.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One connection of an I_T nexus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnView {
    pub cid: u64,
    pub ip: String,
}

/// One I_T nexus (session).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NexusView {
    pub id: u64,
    pub initiator: String,
    pub alias: Option<String>,
    pub connections: Vec<ConnView>,
}

/// One LUN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LunView {
    pub lun: u64,
    pub type_: String,
    pub scsi_id: String,
    pub scsi_sn: String,
    pub size_bytes: u64,
    pub block_size: u32,
    pub online: bool,
    pub removable: bool,
    pub prevent_removal: bool,
    pub readonly: bool,
    pub swp: bool,
    pub thin_provisioning: bool,
    pub backing_type: String,
    pub backing_path: String,
    pub backing_flags: String,
}

/// One target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetView {
    pub tid: u32,
    pub iqn: String,
    pub driver: String,
    pub state: String,
    pub nexuses: Vec<NexusView>,
    pub luns: Vec<LunView>,
    pub accounts: Vec<String>,
    pub outgoing_account: Option<String>,
    pub acl_addresses: Vec<String>,
    pub acl_names: Vec<String>,
}

fn yn(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// The whole `show` text.
pub fn format_targets(targets: &[TargetView]) -> String {
    let mut s = String::new();
    for t in targets {
        let _ = writeln!(s, "Target {}: {}", t.tid, t.iqn);
        let _ = writeln!(s, "    System information:\n        Driver: {}\n        State: {}", t.driver, t.state);
        s.push_str("    I_T nexus information:\n");
        for n in &t.nexuses {
            let _ = writeln!(s, "        I_T nexus: {}", n.id);
            let _ = writeln!(s, "            Initiator: {} alias: {}", n.initiator, n.alias.as_deref().unwrap_or("none"));
            for c in &n.connections {
                let _ = writeln!(s, "            Connection: {}\n                IP Address: {}", c.cid, c.ip);
            }
        }
        s.push_str("    LUN information:\n");
        for l in &t.luns {
            let _ = writeln!(s, "        LUN: {}", l.lun);
            let _ = writeln!(s, "            Type: {}", l.type_);
            let _ = writeln!(s, "            SCSI ID: {}", l.scsi_id);
            let _ = writeln!(s, "            SCSI SN: {}", l.scsi_sn);
            // tgt prints decimal megabytes, truncated.
            let _ = writeln!(s, "            Size: {} MB, Block size: {}", l.size_bytes / 1_000_000, l.block_size);
            let _ = writeln!(s, "            Online: {}", yn(l.online));
            let _ = writeln!(s, "            Removable media: {}", yn(l.removable));
            let _ = writeln!(s, "            Prevent removal: {}", yn(l.prevent_removal));
            let _ = writeln!(s, "            Readonly: {}", yn(l.readonly));
            let _ = writeln!(s, "            SWP: {}", yn(l.swp));
            let _ = writeln!(s, "            Thin-provisioning: {}", yn(l.thin_provisioning));
            let _ = writeln!(s, "            Backing store type: {}", l.backing_type);
            let _ = writeln!(s, "            Backing store path: {}", l.backing_path);
            let _ = writeln!(s, "            Backing store flags: {}", l.backing_flags);
        }
        s.push_str("    Account information:\n");
        for a in &t.accounts {
            let _ = writeln!(s, "        {a}");
        }
        if let Some(o) = &t.outgoing_account {
            let _ = writeln!(s, "        {o} (outgoing)");
        }
        s.push_str("    ACL information:\n");
        // tgt-admin binds ALL when a target has no initiator-address: show what hydra
        // enforces, which for an empty address list is the same.
        if t.acl_addresses.is_empty() {
            s.push_str("        ALL\n");
        }
        for a in t.acl_addresses.iter().chain(&t.acl_names) {
            let _ = writeln!(s, "        {a}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Debian's tgtd 1.0.85 (`tgtadm --mode target --op show`) with one
    /// libiscsi session, a CHAP account, an outgoing account and an initiator-name ACL.
    const TGTD: &str = "Target 1: iqn.2026-11.test:base
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 91
            Initiator: iqn.2010-11.libiscsi:iscsi-perf alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: beaf11
            Size: 268 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /tmp/base/disk.img
            Backing store flags: 
    Account information:
        u1
        o1 (outgoing)
    ACL information:
        ALL
        iqn.x:y
";

    fn lun(n: u64, t: &str, size: u64, bs: u32, ty: &str, path: &str) -> LunView {
        LunView {
            lun: n,
            type_: t.into(),
            scsi_id: format!("IET     0001{n:04x}"),
            scsi_sn: format!("beaf1{n}"),
            size_bytes: size,
            block_size: bs,
            online: true,
            removable: false,
            prevent_removal: false,
            readonly: false,
            swp: false,
            thin_provisioning: false,
            backing_type: ty.into(),
            backing_path: path.into(),
            backing_flags: String::new(),
        }
    }

    #[test]
    fn matches_tgtadm_byte_for_byte() {
        let t = TargetView {
            tid: 1,
            iqn: "iqn.2026-11.test:base".into(),
            driver: "iscsi".into(),
            state: "ready".into(),
            nexuses: vec![NexusView {
                id: 91,
                initiator: "iqn.2010-11.libiscsi:iscsi-perf".into(),
                alias: None,
                connections: vec![ConnView { cid: 0, ip: "127.0.0.1".into() }],
            }],
            luns: vec![lun(0, "controller", 0, 1, "null", "None"), lun(1, "disk", 256 << 20, 512, "rdwr", "/tmp/base/disk.img")],
            accounts: vec!["u1".into()],
            outgoing_account: Some("o1".into()),
            acl_addresses: vec![],
            acl_names: vec!["iqn.x:y".into()],
        };
        assert_eq!(format_targets(&[t]), TGTD);
    }
}
