//! The effective configuration as `multipath -t` and `multipathd show config` print it
//! (multipath-tools 0.9.4, `libmultipath/print.c`, `__snprint_config`): `defaults` with
//! every keyword that has a value (set or built-in default), then `blacklist`,
//! `blacklist_exceptions`, `devices` (built-in table first), `overrides`, and
//! `multipaths` when it has entries. Tabs indent; strings are quoted with inner `"`
//! doubled, numbers are not; output reads back to the same configuration.

use std::fmt::Write;

use super::blacklist::{DeviceRule, Rule, Rules};
use super::keywords;
use super::values::{quoted, Value};
use super::{Attrs, Config};

/// What `defaults` shows for a keyword that is not set (Debian 12's `multipath -t`
/// without a configuration file); keywords not listed show nothing when unset.
/// polling_interval, max_polling_interval and verbosity are computed.
const SHOWN_DEFAULTS: &[(&str, &str)] = &[
    ("reassign_maps", "\"no\""),
    ("path_selector", "\"service-time 0\""),
    ("path_grouping_policy", "\"failover\""),
    ("uid_attribute", "\"ID_SERIAL\""),
    ("prio", "\"const\""),
    ("prio_args", "\"\""),
    ("features", "\"0\""),
    ("path_checker", "\"tur\""),
    ("alias_prefix", "\"mpath\""),
    ("failback", "\"manual\""),
    ("rr_min_io", "1000"),
    ("rr_min_io_rq", "1"),
    ("max_fds", "\"max\""),
    ("rr_weight", "\"uniform\""),
    ("queue_without_daemon", "\"no\""),
    ("allow_usb_devices", "\"no\""),
    ("flush_on_last_del", "\"no\""),
    ("user_friendly_names", "\"no\""),
    ("fast_io_fail_tmo", "5"),
    ("bindings_file", "\"/etc/multipath/bindings\""),
    ("wwids_file", "\"/etc/multipath/wwids\""),
    ("prkeys_file", "\"/etc/multipath/prkeys\""),
    ("log_checker_err", "\"always\""),
    ("all_tg_pt", "\"no\""),
    ("retain_attached_hw_handler", "\"yes\""),
    ("detect_prio", "\"yes\""),
    ("detect_checker", "\"yes\""),
    ("force_sync", "\"yes\""),
    ("strict_timing", "\"no\""),
    ("deferred_remove", "\"no\""),
    ("delay_watch_checks", "\"no\""),
    ("delay_wait_checks", "\"no\""),
    ("san_path_err_threshold", "\"no\""),
    ("san_path_err_forget_rate", "\"no\""),
    ("san_path_err_recovery_time", "\"no\""),
    ("marginal_path_err_sample_time", "\"no\""),
    ("marginal_path_err_rate_threshold", "\"no\""),
    ("marginal_path_err_recheck_gap_time", "\"no\""),
    ("marginal_path_double_failed_time", "\"no\""),
    ("find_multipaths", "\"strict\""),
    ("uxsock_timeout", "4000"),
    ("retrigger_tries", "0"),
    ("retrigger_delay", "10"),
    ("missing_uev_wait_timeout", "30"),
    ("skip_kpartx", "\"no\""),
    ("disable_changed_wwids", "\"ignored\""),
    ("remove_retries", "0"),
    ("ghost_delay", "\"no\""),
    ("find_multipaths_timeout", "-10"),
    ("enable_foreign", "\"NONE\""),
    ("marginal_pathgroups", "\"off\""),
    ("recheck_wwid", "\"no\""),
];

/// The printed form of a set value, or None where multipath-tools prints nothing
/// (`print_nonzero` keywords at 0, ignored keywords).
fn shown(keyword: &str, v: &Value) -> Option<String> {
    match (keyword, v) {
        (_, Value::Ignored) => None,
        ("rr_min_io" | "rr_min_io_rq" | "checker_timeout" | "max_sectors_kb", Value::Int(0)) => {
            None
        }
        _ => Some(v.to_string()),
    }
}

fn attrs(out: &mut String, indent: &str, order: &[&str], a: &Attrs) {
    for kw in order {
        if let Some(text) = a.get(kw).and_then(|v| shown(kw, v)) {
            let _ = writeln!(out, "{indent}{kw} {text}");
        }
    }
}

/// A subsection: `\tname {`, its attributes, `\t}`.
fn entry(out: &mut String, name: &str, order: &[&str], a: &Attrs) {
    let _ = writeln!(out, "\t{name} {{");
    attrs(out, "\t\t", order, a);
    out.push_str("\t}\n");
}

fn rules(out: &mut String, keyword: &str, list: &[Rule]) {
    for r in list {
        let _ = writeln!(out, "\t{keyword} {}", quoted(&r.text));
    }
}

/// A blacklist `device` rule. (multipath-tools 0.9.4 loses the `device {` line of a
/// rule without vendor and the closing `}` of one without product, so its output does
/// not read back; hydra prints the block whole.)
fn device_rule(out: &mut String, d: &DeviceRule) {
    out.push_str("\tdevice {\n");
    if let Some(v) = &d.vendor {
        let _ = writeln!(out, "\t\tvendor {}", quoted(&v.text));
    }
    if let Some(p) = &d.product {
        let _ = writeln!(out, "\t\tproduct {}", quoted(&p.text));
    }
    out.push_str("\t}\n");
}

fn blacklist_section(out: &mut String, name: &str, r: &Rules) {
    let _ = writeln!(out, "{name} {{");
    rules(out, "devnode", &r.devnode);
    rules(out, "wwid", &r.wwid);
    rules(out, "property", &r.property);
    rules(out, "protocol", &r.protocol);
    for d in &r.device {
        device_rule(out, d);
    }
    out.push_str("}\n");
}

/// `multipath -t`.
pub fn print_config(cfg: &Config) -> String {
    let mut out = String::new();
    let g = cfg.globals();
    out.push_str("defaults {\n");
    for kw in keywords::DEFAULTS {
        let text = match *kw {
            "verbosity" => Some(g.verbosity.to_string()),
            "polling_interval" => Some(g.polling_interval.to_string()),
            "max_polling_interval" => Some(g.max_polling_interval.to_string()),
            _ => match cfg.defaults.get(kw) {
                Some(v) => shown(kw, v),
                None => SHOWN_DEFAULTS
                    .iter()
                    .find(|(k, _)| k == kw)
                    .map(|(_, t)| t.to_string()),
            },
        };
        if let Some(text) = text {
            let _ = writeln!(out, "\t{kw} {text}");
        }
    }
    out.push_str("}\n");
    blacklist_section(&mut out, "blacklist", &cfg.blacklist);
    blacklist_section(&mut out, "blacklist_exceptions", &cfg.exceptions);
    out.push_str("devices {\n");
    for d in &cfg.devices {
        entry(&mut out, "device", keywords::DEVICE, &d.attrs);
    }
    out.push_str("}\n");
    out.push_str("overrides {\n");
    if let Some(o) = &cfg.overrides {
        attrs(&mut out, "\t", keywords::OVERRIDES, o);
        for p in &cfg.protocols {
            out.push_str("\tprotocol {\n");
            if let Some(kind) = p.kind {
                let _ = writeln!(out, "\t\ttype {}", quoted(kind));
            }
            attrs(&mut out, "\t\t", &keywords::PROTOCOL[1..], &p.attrs);
            out.push_str("\t}\n");
        }
    }
    out.push_str("}\n");
    if !cfg.multipaths.is_empty() {
        out.push_str("multipaths {\n");
        for m in &cfg.multipaths {
            entry(&mut out, "multipath", keywords::MULTIPATH, &m.attrs);
        }
        out.push_str("}\n");
    }
    out
}
