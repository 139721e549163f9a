//! tgtadm's `show` layouts, reproduced byte for byte so that scripts (and tgt-admin's own
//! `--dump`/`--update`, which parse them) keep working. The views are plain data: the
//! daemon fills them from its registry, these functions only print.
//!
//! Captured from Debian's tgtd 1.0.85 (golden files in `target/tests/fixtures/show/`):
//! - `tgtadm --lld iscsi --mode target --op show` (= `tgt-admin -s`, which runs it):
//!   [`format_targets`]. Four-space indentation steps; `I_T nexus information:` lists
//!   nexuses oldest first with `Initiator: NAME alias: ALIAS|none`; `Size:` is tgt's
//!   `print_disksize` ([`tgt_size_mb`]); `Backing store flags:` is empty, `direct`, `sync`
//!   or `sync:direct` ([`backing_flags`]); `Account information:` lists incoming users
//!   then `USER (outgoing)`; `ACL information:` lists addresses (as bound) then names.
//!   The text ends with a newline; with no target it is empty.
//! - `tgtadm --lld iscsi --mode conn --op show --tid N`: [`format_sessions`] (newest
//!   session first). (`--mode session --op show` answers "invalid request" in tgt 1.0.85.)
//! - `tgtadm --mode sys --op show`: [`format_sys`]. tgt prints discovery accounts under a
//!   quirky `    Account information:` line followed by an empty line.
//!
//! One thing tgt prints that these views do not carry: with `nop_interval` set, tgt adds
//! `        Nop interval: N` and `        Nop count: N` after `State:`.

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
    /// tgt's nexus id (= the session id of `--mode session`).
    pub id: u64,
    pub initiator: String,
    /// InitiatorAlias, printed `none` when absent.
    pub alias: Option<String>,
    pub connections: Vec<ConnView>,
}

/// One LUN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LunView {
    pub lun: u64,
    /// `controller` (LUN 0) or `disk`.
    pub type_: String,
    pub scsi_id: String,
    pub scsi_sn: String,
    /// Capacity in bytes (whole logical blocks).
    pub size_bytes: u64,
    /// 1 for the controller.
    pub block_size: u32,
    pub online: bool,
    pub removable: bool,
    pub prevent_removal: bool,
    pub readonly: bool,
    pub swp: bool,
    pub thin_provisioning: bool,
    /// `null` for the controller, `rdwr` for a disk (`aio` if the config said so).
    pub backing_type: String,
    /// `None` for the controller.
    pub backing_path: String,
    /// See [`backing_flags`].
    pub backing_flags: String,
}

/// One target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetView {
    pub tid: u32,
    pub iqn: String,
    /// `iscsi`.
    pub driver: String,
    /// `ready` or `offline`.
    pub state: String,
    pub nexuses: Vec<NexusView>,
    pub luns: Vec<LunView>,
    /// Incoming CHAP users, in bind order.
    pub accounts: Vec<String>,
    pub outgoing_account: Option<String>,
    /// `initiator-address` entries as hydra prints them ([`crate::acl::AddrPattern`]'s
    /// Display). Empty means open, printed `ALL` as tgt prints the bind that tgt-admin
    /// makes for such a target.
    pub acl_addresses: Vec<String>,
    pub acl_names: Vec<String>,
}

/// tgt's `Size:` value in MB: `print_disksize` works on 512-byte sectors and
/// approximates a division by 1,000,000 with rounding (1 GiB -> 1074, 1,000,000 bytes ->
/// 1, 500,000 -> 0), in wrapping 64-bit arithmetic.
pub fn tgt_size_mb(size_bytes: u64) -> u64 {
    let sectors = size_bytes / 512;
    sectors.wrapping_sub((sectors / 625).wrapping_sub(974)) / 1950
}

/// tgt's `Backing store flags:` text for `bsoflags`.
pub fn backing_flags(o_direct: bool, o_sync: bool) -> String {
    match (o_direct, o_sync) {
        (false, false) => String::new(),
        (true, false) => "direct".into(),
        (false, true) => "sync".into(),
        (true, true) => "sync:direct".into(),
    }
}

fn yn(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// `tgtadm --lld iscsi --mode target --op show` (and `tgt-admin -s`).
pub fn format_targets(targets: &[TargetView]) -> String {
    let mut s = String::new();
    for t in targets {
        let _ = writeln!(s, "Target {}: {}", t.tid, t.iqn);
        s.push_str("    System information:\n");
        let _ = writeln!(s, "        Driver: {}", t.driver);
        let _ = writeln!(s, "        State: {}", t.state);
        s.push_str("    I_T nexus information:\n");
        for n in &t.nexuses {
            let _ = writeln!(s, "        I_T nexus: {}", n.id);
            let _ = writeln!(
                s,
                "            Initiator: {} alias: {}",
                n.initiator,
                n.alias.as_deref().unwrap_or("none")
            );
            for c in &n.connections {
                let _ = writeln!(s, "            Connection: {}", c.cid);
                let _ = writeln!(s, "                IP Address: {}", c.ip);
            }
        }
        s.push_str("    LUN information:\n");
        for l in &t.luns {
            let _ = writeln!(s, "        LUN: {}", l.lun);
            let _ = writeln!(s, "            Type: {}", l.type_);
            let _ = writeln!(s, "            SCSI ID: {}", l.scsi_id);
            let _ = writeln!(s, "            SCSI SN: {}", l.scsi_sn);
            let _ = writeln!(
                s,
                "            Size: {} MB, Block size: {}",
                tgt_size_mb(l.size_bytes),
                l.block_size
            );
            let _ = writeln!(s, "            Online: {}", yn(l.online));
            let _ = writeln!(s, "            Removable media: {}", yn(l.removable));
            let _ = writeln!(s, "            Prevent removal: {}", yn(l.prevent_removal));
            let _ = writeln!(s, "            Readonly: {}", yn(l.readonly));
            let _ = writeln!(s, "            SWP: {}", yn(l.swp));
            let _ = writeln!(
                s,
                "            Thin-provisioning: {}",
                yn(l.thin_provisioning)
            );
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
        if t.acl_addresses.is_empty() {
            s.push_str("        ALL\n");
        }
        for a in t.acl_addresses.iter().chain(&t.acl_names) {
            let _ = writeln!(s, "        {a}");
        }
    }
    s
}

/// `tgtadm --lld iscsi --mode conn --op show --tid N`: tgt lists the newest session
/// first, one `Initiator`/`IP Address` pair per connection.
pub fn format_sessions(sessions: &[NexusView]) -> String {
    let mut s = String::new();
    for n in sessions {
        let _ = writeln!(s, "Session: {}", n.id);
        for c in &n.connections {
            let _ = writeln!(s, "    Connection: {}", c.cid);
            let _ = writeln!(s, "        Initiator: {}", n.initiator);
            let _ = writeln!(s, "        IP Address: {}", c.ip);
        }
    }
    s
}

/// What `tgtadm --mode sys --op show` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SysView {
    /// `ready` or `offline`.
    pub state: String,
    pub debug: bool,
    /// (driver, state): `("iscsi", "ready")`.
    pub llds: Vec<(String, String)>,
    /// (name, supported bsoflags as [`backing_flags`] prints them, empty for none).
    pub backing_stores: Vec<(String, String)>,
    /// `disk`, `controller`, ...
    pub device_types: Vec<String>,
    /// Discovery CHAP users (incoming), and the outgoing one.
    pub discovery_accounts: Vec<String>,
    pub discovery_outgoing: Option<String>,
    pub isns_on: bool,
    pub isns_server_ip: String,
    pub isns_server_port: u16,
    pub isns_access_control: bool,
}

impl SysView {
    /// What hydra's daemon reports: one LLD, one backing store, disks and the controller.
    pub fn hydra(state: &str) -> SysView {
        SysView {
            state: state.into(),
            debug: false,
            llds: vec![("iscsi".into(), "ready".into())],
            backing_stores: vec![("rdwr".into(), backing_flags(true, true))],
            device_types: vec!["disk".into(), "controller".into()],
            discovery_accounts: Vec::new(),
            discovery_outgoing: None,
            isns_on: false,
            isns_server_ip: String::new(),
            isns_server_port: 3205,
            isns_access_control: false,
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "On"
    } else {
        "Off"
    }
}

/// `tgtadm --mode sys --op show`.
pub fn format_sys(v: &SysView) -> String {
    let mut s = String::from("System:\n");
    let _ = writeln!(s, "    State: {}", v.state);
    let _ = writeln!(s, "    debug: {}", if v.debug { "on" } else { "off" });
    s.push_str("LLDs:\n");
    for (name, state) in &v.llds {
        let _ = writeln!(s, "    {name}: {state}");
    }
    s.push_str("Backing stores:\n");
    for (name, flags) in &v.backing_stores {
        if flags.is_empty() {
            let _ = writeln!(s, "    {name}");
        } else {
            let _ = writeln!(s, "    {name} (bsoflags {flags})");
        }
    }
    s.push_str("Device types:\n");
    for d in &v.device_types {
        let _ = writeln!(s, "    {d}");
    }
    if !v.discovery_accounts.is_empty() {
        // tgt prints "%s\n" of a string that already ends in "\n": an empty line follows.
        s.push_str("    Account information:\n\n");
        for a in &v.discovery_accounts {
            let _ = writeln!(s, "    {a}");
        }
        if let Some(o) = &v.discovery_outgoing {
            let _ = writeln!(s, "    {o} (outgoing)");
        }
    }
    s.push_str("iSNS:\n");
    let _ = writeln!(s, "    iSNS={}", on_off(v.isns_on));
    let _ = writeln!(s, "    iSNSServerIP={}", v.isns_server_ip);
    let _ = writeln!(s, "    iSNSServerPort={}", v.isns_server_port);
    let _ = writeln!(s, "    iSNSAccessControl={}", on_off(v.isns_access_control));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes as Debian's tgtd 1.0.85 printed them for files of these lengths (LUN size
    /// is whole 512-byte blocks).
    #[test]
    fn size_like_tgt() {
        let blocks = |b: u64| b / 512 * 512;
        for (bytes, mb) in [
            (0, 0),
            (1_073_741_824, 1074),
            (1_000_000, 1),
            (5_242_880, 5),
            (1_499_999, 1),
            (1_500_000, 1),
            (2_500_000, 2),
            (999_999, 1),
            (499_999, 0),
            (500_000, 0),
            (512, 0),
            (1_500_160, 2),
            (1_499_648, 1),
            (268_435_456, 268),
        ] {
            assert_eq!(tgt_size_mb(blocks(bytes)), mb, "{bytes} bytes");
        }
        // 4096-byte blocks: 1,500,000 bytes -> 366 blocks -> 1,499,136 bytes -> 1 MB.
        assert_eq!(tgt_size_mb(1_500_000 / 4096 * 4096), 1);
        // No overflow at the top of the range.
        assert_eq!(
            tgt_size_mb(u64::MAX / 512 * 512),
            (u64::MAX / 512 - (u64::MAX / 512 / 625 - 974)) / 1950
        );
    }

    #[test]
    fn flags_like_tgt() {
        assert_eq!(backing_flags(false, false), "");
        assert_eq!(backing_flags(true, false), "direct");
        assert_eq!(backing_flags(false, true), "sync");
        assert_eq!(backing_flags(true, true), "sync:direct");
    }

    #[test]
    fn empty_show_is_empty() {
        assert_eq!(format_targets(&[]), "");
        assert_eq!(format_sessions(&[]), "");
    }
}
