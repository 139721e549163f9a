//! The topology of maps: `multipath -ll` / `-l` and `multipathd show topology`
//! (print.c `snprint_multipath_topology`):
//!
//! ```text
//! mpatha (360000000000000000e00000000010001) loop3 IET,VIRTUAL-DISK
//! size=1.0G features='1 queue_if_no_path' hwhandler='0' wp=rw
//! |-+- policy='service-time 0' prio=1 status=active
//! | `- 1:0:0:1 s1l1 7:3 active ready running
//! `-+- policy='service-time 0' prio=1 status=enabled
//!   `- 2:0:0:1 s2l1 7:3 active ready running
//! ```
//!
//! The name line is `%n` plus ` (%w)` when the name is not the WWID, then `%d %s`; the
//! map line `size=%S features='%f' hwhandler='%h' wp=%r`; a group line `|-+- ` (or
//! `` `-+- `` for the last group) and `policy='%s' prio=%p status=%t`; a path line the
//! group's continuation (`| ` or two spaces), `|- ` (`` `- `` for its last path) and
//! `%i %d %D %t %T %o`, each column padded to its widest value over every path printed.
//! Verbosity 0 prints nothing, 1 only the names, 2 and up the topology.

use super::layout::Table;
use super::wildcards::{group_value, map_value, path_header, path_value};
use super::{MapSnapshot, PathSnapshot};

/// print.c `PRINT_PATH_INDENT`.
pub const PATH_INDENT: &str = "%i %d %D %t %T %o";
/// print.c `PRINT_MAP_PROPS`.
pub const MAP_PROPS: &str = "size=%S features='%f' hwhandler='%h' wp=%r";
/// print.c `PRINT_PG_INDENT`.
pub const PG_INDENT: &str = "policy='%s' prio=%p status=%t";

/// Expand `format` for one map (no padding: map columns have no width here).
fn map_line(format: &str, m: &MapSnapshot) -> String {
    let t = Table {
        format,
        value: map_value,
        header: super::wildcards::map_header,
    };
    t.row_line(&[], m)
}

/// The topology of `maps` at `verbosity`; `bold` wraps each name line in the
/// terminal's bold escape (multipath does when its stdout is a terminal).
pub fn topology(maps: &[MapSnapshot], verbosity: u32, bold: bool) -> String {
    let mut out = String::new();
    if verbosity == 0 {
        return out;
    }
    if verbosity == 1 {
        for m in maps {
            out.push_str(&map_line("%n", m));
        }
        return out;
    }
    let paths = Table {
        format: PATH_INDENT,
        value: path_value,
        header: path_header,
    };
    let all: Vec<&PathSnapshot> = maps.iter().flat_map(|m| m.paths()).collect();
    let widths = paths.widths(&all, false);
    for m in maps {
        let mut style = String::from("%n");
        if m.name != m.wwid {
            style.push_str(" (%w)");
        }
        style.push_str(" %d %s");
        let name = map_line(&style, m);
        if bold {
            out.push_str(&format!("\x1b[1m{}\x1b[0m\n", name.trim_end_matches('\n')));
        } else {
            out.push_str(&name);
        }
        out.push_str(&map_line(MAP_PROPS, m));
        for (j, g) in m.groups.iter().enumerate() {
            let last_group = j + 1 == m.groups.len();
            let head = if last_group { "`-+- " } else { "|-+- " };
            let gt = Table {
                format: PG_INDENT,
                value: group_value,
                header: super::wildcards::group_header,
            };
            out.push_str(head);
            out.push_str(&gt.row_line(&[], g));
            for (i, p) in g.paths.iter().enumerate() {
                out.push_str(if last_group { " " } else { "|" });
                out.push_str(if i + 1 == g.paths.len() {
                    " `- "
                } else {
                    " |- "
                });
                out.push_str(&paths.row_line(&widths, p));
            }
        }
    }
    out
}

/// The map as `multipath -l` shows it: from the kernel's tables only, without running
/// the checkers and prioritizers, so every checker state is `undef` and every group's
/// priority 0.
pub fn without_checkers(m: &MapSnapshot) -> MapSnapshot {
    let mut m = m.clone();
    for g in &mut m.groups {
        g.prio = 0;
        for p in &mut g.paths {
            p.checker = "undef".into();
            p.prio = 0;
        }
    }
    m
}
