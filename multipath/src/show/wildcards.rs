//! The wildcards of `show paths format`, `show maps format` and the topology lines
//! (multipath-tools `libmultipath/print.c` tables `pd[]`, `mpd[]`, `pgd[]`; `show
//! wildcards` lists them). Values hydra cannot know (Fibre Channel names, host
//! adapters) print as print.c prints them for an iSCSI path: `[undef]`.

use super::layout::size;
use super::{GroupSnapshot, MapSnapshot, PathSnapshot};

/// Path wildcards and their column names, in print.c's order.
pub const PATH: &[(char, &str)] = &[
    ('w', "uuid"),
    ('i', "hcil"),
    ('d', "dev"),
    ('D', "dev_t"),
    ('t', "dm_st"),
    ('o', "dev_st"),
    ('T', "chk_st"),
    ('s', "vend/prod/rev"),
    ('c', "checker"),
    ('C', "next_check"),
    ('p', "pri"),
    ('S', "size"),
    ('z', "serial"),
    ('m', "multipath"),
    ('N', "host WWNN"),
    ('n', "target WWNN"),
    ('R', "host WWPN"),
    ('r', "target WWPN"),
    ('a', "host adapter"),
    ('P', "protocol"),
];

/// Map wildcards and their column names.
pub const MAP: &[(char, &str)] = &[
    ('n', "name"),
    ('w', "uuid"),
    ('d', "sysfs"),
    ('F', "failback"),
    ('Q', "queueing"),
    ('N', "paths"),
    ('r', "write_prot"),
    ('t', "dm-st"),
    ('S', "size"),
    ('f', "features"),
    ('x', "failures"),
    ('h', "hwhandler"),
    ('A', "action"),
    ('0', "path_faults"),
    ('1', "switch_grp"),
    ('2', "map_loads"),
    ('3', "total_q_time"),
    ('4', "q_timeouts"),
    ('s', "vend/prod/rev"),
    ('v', "vend"),
    ('p', "prod"),
    ('e', "rev"),
];

/// Path group wildcards.
pub const GROUP: &[(char, &str)] = &[('s', "selector"), ('p', "pri"), ('t', "dm_st")];

fn lookup(table: &[(char, &'static str)], c: char) -> Option<&'static str> {
    table.iter().find(|(x, _)| *x == c).map(|(_, n)| *n)
}

pub fn path_header(c: char) -> Option<&'static str> {
    lookup(PATH, c)
}

pub fn map_header(c: char) -> Option<&'static str> {
    lookup(MAP, c)
}

pub fn group_header(c: char) -> Option<&'static str> {
    lookup(GROUP, c)
}

fn or_hash(s: &str) -> &str {
    if s.is_empty() {
        "##"
    } else {
        s
    }
}

pub fn path_value(c: char, p: &PathSnapshot) -> Option<String> {
    Some(match c {
        'w' => p.wwid.clone(),
        'i' if p.hcil.is_empty() => "#:#:#:#".into(),
        'i' => p.hcil.clone(),
        'd' if p.dev.is_empty() => "-".into(),
        'd' => p.dev.clone(),
        'D' => p.dev_t.clone().unwrap_or_else(|| "#:#".into()),
        't' => p.dm_state.clone(),
        'o' => p.dev_state.clone(),
        'T' => p.checker.clone(),
        's' => p.vpr.clone(),
        // The TEST UNIT READY checker (multipath-tools' `tur`).
        'c' => "tur".into(),
        'C' => p.next_check.clone(),
        'p' => p.prio.to_string(),
        'S' => size(p.size),
        'z' => p.serial.clone(),
        'm' => p.multipath.clone().unwrap_or_else(|| "[orphan]".into()),
        'n' if p.target_name.is_empty() => "[undef]".into(),
        'n' => p.target_name.clone(),
        'N' | 'R' | 'r' => "[undef]".into(),
        // For iSCSI print.c shows the initiator's address of the session; hydra shows
        // the portal the session went to.
        'a' if p.portal.is_empty() => "[undef]".into(),
        'a' => p.portal.clone(),
        'P' => "scsi:iscsi".into(),
        _ => return None,
    })
}

pub fn map_value(c: char, m: &MapSnapshot) -> Option<String> {
    Some(match c {
        'n' => m.name.clone(),
        'w' => m.wwid.clone(),
        'd' => m.sysfs.clone().unwrap_or_else(|| "undef".into()),
        'F' => m.failback.clone(),
        'Q' => m.queueing.clone(),
        'N' => m.active_paths().to_string(),
        'r' if m.sysfs.is_none() => "undef".into(),
        'r' => match m.write_protect {
            Some(true) => "ro".into(),
            Some(false) => "rw".into(),
            None => "undef".into(),
        },
        't' => "active".into(),
        'S' => size(m.size),
        'f' => m.features.clone(),
        'x' | '4' => m.stats.queue_timeouts.to_string(),
        'h' => m.hwhandler.clone(),
        'A' => String::new(),
        '0' => m.stats.path_faults.to_string(),
        '1' => m.stats.switch_group.to_string(),
        '2' | '3' => "0".into(),
        's' if m.vendor.is_empty() || m.product.is_empty() => "##,##".into(),
        's' => format!("{},{}", m.vendor, m.product),
        'v' => or_hash(&m.vendor).into(),
        'p' => or_hash(&m.product).into(),
        'e' => or_hash(&m.revision).into(),
        _ => return None,
    })
}

pub fn group_value(c: char, g: &GroupSnapshot) -> Option<String> {
    Some(match c {
        's' => g.selector.clone(),
        'p' => g.prio.to_string(),
        't' => g.status.clone(),
        _ => return None,
    })
}

/// `show wildcards`.
pub fn list() -> String {
    let mut out = String::from("multipath format wildcards:\n");
    for (c, n) in MAP {
        out.push_str(&format!("%{c}  {n}\n"));
    }
    out.push_str("\npath format wildcards:\n");
    for (c, n) in PATH {
        out.push_str(&format!("%{c}  {n}\n"));
    }
    out.push_str("\npathgroup format wildcards:\n");
    for (c, n) in GROUP {
        out.push_str(&format!("%{c}  {n}\n"));
    }
    out
}
