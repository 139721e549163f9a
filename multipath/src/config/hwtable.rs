//! hydra's built-in device table and default blacklist.
//!
//! multipath-tools ships about 150 `device` entries for hardware arrays
//! (`libmultipath/hwtable.c`); hydra only talks iSCSI to software targets, so it carries
//! the entries that can answer it:
//!
//! - `IET` / `VIRTUAL-DISK`: what tgt reports by default (`usr/spc.c`), and what hydra
//!   tgtd reports by default too (target/src/lun/settings.rs: vendor_id "IET",
//!   product_id "VIRTUAL-DISK", kept for compatibility), so this one entry is both
//!   tgt's and hydra's own. multipath-tools has no entry for it (generic defaults:
//!   `failover`, one path in use at a time, `failback manual`, `no_path_retry fail`).
//!   hydra's entry groups paths by priority, fails back at once and queues for 12
//!   checks, as multipath-tools' entries for the other Linux software targets (LIO,
//!   SCST) do: without ALUA every path has priority 1 and all paths carry I/O (the
//!   point of two links); with hydra tgtd's `portal-group` ALUA, `detect_prio` picks the
//!   `alua` prioritizer and I/O goes to the active/optimized group, back to it as soon
//!   as it returns; and a moment with no path at all pauses I/O for 60 s instead of
//!   failing it.
//! - LIO (`(LIO-ORG|SUSE)`), copied from multipath-tools 0.9.4's table, so that a map
//!   over a LIO target behaves as it does with multipath-tools.

use std::path::PathBuf;
use std::sync::Arc;

use super::blacklist::{DeviceRule, Rule, RuleOrigin};
use super::values::{Failback, NoPathRetry, PgPolicy, Prio, Value};
use super::{Attrs, Config, DeviceEntry, EntryOrigin, Setting};

/// The name built-in settings carry as their "file".
pub const BUILTIN: &str = "<built-in>";

/// multipath-tools' default `blacklist { devnode }`: only SCSI disks, DASD and NVMe.
pub const DEFAULT_DEVNODE_BLACKLIST: &str = "!^(sd[a-z]|dasd[a-z]|nvme[0-9])";
/// multipath-tools' default `blacklist_exceptions { property }`.
pub const DEFAULT_PROPERTY_EXCEPTION: &str = "(SCSI_IDENT_|ID_WWN)";

fn entry(values: &[(&'static str, Value)]) -> DeviceEntry {
    let file = Arc::new(PathBuf::from(BUILTIN));
    let mut attrs = Attrs::default();
    for (k, v) in values {
        attrs.set(
            k,
            Setting {
                value: v.clone(),
                file: file.clone(),
                line: 0,
            },
        );
    }
    DeviceEntry::new(attrs, EntryOrigin::Builtin)
}

/// The built-in `devices` entries, in table order (a later entry wins over an earlier
/// one that matches the same device).
pub fn builtin_devices() -> Vec<DeviceEntry> {
    vec![
        entry(&[
            ("vendor", Value::Regex("IET".into())),
            ("product", Value::Regex("VIRTUAL-DISK".into())),
            (
                "path_grouping_policy",
                Value::PgPolicy(PgPolicy::GroupByPrio),
            ),
            ("failback", Value::Failback(Failback::Immediate)),
            (
                "no_path_retry",
                Value::NoPathRetry(NoPathRetry::Retries(12)),
            ),
        ]),
        entry(&[
            ("vendor", Value::Regex("(LIO-ORG|SUSE)".into())),
            ("product", Value::Regex(".*".into())),
            (
                "path_grouping_policy",
                Value::PgPolicy(PgPolicy::GroupByPrio),
            ),
            ("hardware_handler", Value::Str("1 alua".into())),
            ("prio", Value::Prio(Prio::Alua)),
            ("failback", Value::Failback(Failback::Immediate)),
            (
                "no_path_retry",
                Value::NoPathRetry(NoPathRetry::Retries(12)),
            ),
        ]),
    ]
}

fn dedup(list: &mut Vec<Rule>) {
    let mut seen: Vec<String> = Vec::new();
    list.retain(|r| {
        let fresh = !seen.contains(&r.text);
        seen.push(r.text.clone());
        fresh
    });
}

fn device_key(d: &DeviceRule) -> (Option<String>, Option<String>) {
    (
        d.vendor.as_ref().map(|r| r.text.clone()),
        d.product.as_ref().map(|r| r.text.clone()),
    )
}

fn dedup_devices(list: &mut Vec<DeviceRule>) {
    let mut seen = Vec::new();
    list.retain(|d| {
        let k = device_key(d);
        let fresh = !seen.contains(&k);
        seen.push(k);
        fresh
    });
}

/// `setup_default_blist` and the `merge_blacklist` calls after it: the default rules go
/// after the configured ones, then rules with the same text are kept once.
pub(crate) fn add_default_blacklist(cfg: &mut Config) {
    let default = |s: &str| Rule::new(s, RuleOrigin::Default).expect("built-in rule compiles");
    cfg.blacklist
        .devnode
        .push(default(DEFAULT_DEVNODE_BLACKLIST));
    cfg.exceptions
        .property
        .push(default(DEFAULT_PROPERTY_EXCEPTION));
    for d in &cfg.devices {
        let (Some(vendor), Some(bl)) = (d.attrs.str("vendor"), d.attrs.str("product_blacklist"))
        else {
            continue;
        };
        let exists = cfg
            .blacklist
            .device
            .iter()
            .any(|r| device_key(r) == (Some(vendor.to_string()), Some(bl.to_string())));
        if exists {
            continue;
        }
        // Both were checked as regular expressions when they were read.
        if let (Ok(v), Ok(p)) = (
            Rule::new(vendor, RuleOrigin::Default),
            Rule::new(bl, RuleOrigin::Default),
        ) {
            cfg.blacklist.device.push(DeviceRule {
                vendor: Some(v),
                product: Some(p),
                origin: RuleOrigin::Default,
            });
        }
    }
    for rules in [&mut cfg.blacklist, &mut cfg.exceptions] {
        dedup(&mut rules.devnode);
        dedup(&mut rules.property);
        dedup(&mut rules.wwid);
        dedup_devices(&mut rules.device);
    }
}
