//! The keyword tables of multipath-tools 0.9.4 (`libmultipath/dict.c`,
//! `init_keywords`): which keywords each section takes, in the order `multipath -t`
//! prints them, and how each value is read.

use super::values::*;

/// How a keyword's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An integer; out of range is capped with a warning (`do_set_int`).
    Int {
        min: i64,
        max: i64,
    },
    /// A non-negative integer (`set_uint`).
    Uint,
    /// yes/no (also 1/0).
    YesNo,
    Str,
    /// A string that cannot contain '/' (alias, alias_prefix, partition_delimiter).
    StrNoSlash,
    /// An absolute path (bindings_file, wwids_file, prkeys_file: deprecated since 0.8.8
    /// but still honoured by 0.9.4, with a warning).
    Path,
    /// A dm argument string whose first word counts the others (features,
    /// hardware_handler).
    ArgStr,
    Selector,
    PgPolicy,
    Failback,
    NoPathRetry,
    RrWeight,
    Tmo,
    DevLoss,
    OffInt,
    FindMultipaths,
    Checker,
    Prio,
    Mode,
    PrKey,
    MaxFds,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A POSIX extended regular expression.
    Regex,
    /// Accepted and ignored, with multipath-tools' "ignoring deprecated option" warning.
    Deprecated,
}

/// The protocol names of `blacklist { protocol }` and `overrides { protocol { type } }`
/// (`libmultipath/structs.c`, `protocol_name`).
pub const PROTOCOLS: &[&str] = &[
    "undef",
    "ccw",
    "cciss",
    "scsi:fcp",
    "scsi:spi",
    "scsi:ssa",
    "scsi:sbp",
    "scsi:srp",
    "scsi:iscsi",
    "scsi:sas",
    "scsi:adt",
    "scsi:ata",
    "scsi:usb",
    "scsi:unspec",
    "nvme:pcie",
    "nvme:rdma",
    "nvme:fc",
    "nvme:tcp",
    "nvme:loop",
    "nvme:apple-nvme",
    "nvme:unspec",
];

/// The `defaults` section, in 0.9.4's order.
pub(crate) const DEFAULTS: &[&str] = &[
    "verbosity",
    "polling_interval",
    "max_polling_interval",
    "reassign_maps",
    "multipath_dir",
    "path_selector",
    "path_grouping_policy",
    "uid_attrs",
    "uid_attribute",
    "getuid_callout",
    "prio",
    "prio_args",
    "features",
    "path_checker",
    "checker",
    "alias_prefix",
    "failback",
    "rr_min_io",
    "rr_min_io_rq",
    "max_fds",
    "rr_weight",
    "no_path_retry",
    "queue_without_daemon",
    "checker_timeout",
    "allow_usb_devices",
    "pg_timeout",
    "flush_on_last_del",
    "user_friendly_names",
    "mode",
    "uid",
    "gid",
    "fast_io_fail_tmo",
    "dev_loss_tmo",
    "eh_deadline",
    "bindings_file",
    "wwids_file",
    "prkeys_file",
    "log_checker_err",
    "reservation_key",
    "all_tg_pt",
    "retain_attached_hw_handler",
    "detect_prio",
    "detect_checker",
    "force_sync",
    "strict_timing",
    "deferred_remove",
    "partition_delimiter",
    "config_dir",
    "delay_watch_checks",
    "delay_wait_checks",
    "san_path_err_threshold",
    "san_path_err_forget_rate",
    "san_path_err_recovery_time",
    "marginal_path_err_sample_time",
    "marginal_path_err_rate_threshold",
    "marginal_path_err_recheck_gap_time",
    "marginal_path_double_failed_time",
    "find_multipaths",
    "uxsock_timeout",
    "retrigger_tries",
    "retrigger_delay",
    "missing_uev_wait_timeout",
    "skip_kpartx",
    "disable_changed_wwids",
    "remove_retries",
    "max_sectors_kb",
    "ghost_delay",
    "find_multipaths_timeout",
    "enable_foreign",
    "marginal_pathgroups",
    "recheck_wwid",
];

/// `devices { device { … } }`, in 0.9.4's order.
pub(crate) const DEVICE: &[&str] = &[
    "vendor",
    "product",
    "revision",
    "product_blacklist",
    "path_grouping_policy",
    "uid_attribute",
    "getuid_callout",
    "path_selector",
    "path_checker",
    "checker",
    "alias_prefix",
    "features",
    "hardware_handler",
    "prio",
    "prio_args",
    "failback",
    "rr_weight",
    "no_path_retry",
    "rr_min_io",
    "rr_min_io_rq",
    "pg_timeout",
    "flush_on_last_del",
    "fast_io_fail_tmo",
    "dev_loss_tmo",
    "eh_deadline",
    "user_friendly_names",
    "retain_attached_hw_handler",
    "detect_prio",
    "detect_checker",
    "deferred_remove",
    "delay_watch_checks",
    "delay_wait_checks",
    "san_path_err_threshold",
    "san_path_err_forget_rate",
    "san_path_err_recovery_time",
    "marginal_path_err_sample_time",
    "marginal_path_err_rate_threshold",
    "marginal_path_err_recheck_gap_time",
    "marginal_path_double_failed_time",
    "skip_kpartx",
    "max_sectors_kb",
    "ghost_delay",
    "all_tg_pt",
    "vpd_vendor",
    "recheck_wwid",
];

/// `overrides { … }` (its `protocol` subsections are handled apart), in 0.9.4's order.
pub(crate) const OVERRIDES: &[&str] = &[
    "path_grouping_policy",
    "uid_attribute",
    "getuid_callout",
    "path_selector",
    "path_checker",
    "checker",
    "alias_prefix",
    "features",
    "prio",
    "prio_args",
    "failback",
    "rr_weight",
    "no_path_retry",
    "rr_min_io",
    "rr_min_io_rq",
    "flush_on_last_del",
    "fast_io_fail_tmo",
    "dev_loss_tmo",
    "eh_deadline",
    "user_friendly_names",
    "retain_attached_hw_handler",
    "detect_prio",
    "detect_checker",
    "deferred_remove",
    "delay_watch_checks",
    "delay_wait_checks",
    "san_path_err_threshold",
    "san_path_err_forget_rate",
    "san_path_err_recovery_time",
    "marginal_path_err_sample_time",
    "marginal_path_err_rate_threshold",
    "marginal_path_err_recheck_gap_time",
    "marginal_path_double_failed_time",
    "skip_kpartx",
    "max_sectors_kb",
    "ghost_delay",
    "all_tg_pt",
    "recheck_wwid",
];

/// `overrides { protocol { … } }`.
pub(crate) const PROTOCOL: &[&str] = &["type", "fast_io_fail_tmo", "dev_loss_tmo", "eh_deadline"];

/// `multipaths { multipath { … } }`, in 0.9.4's order.
pub(crate) const MULTIPATH: &[&str] = &[
    "wwid",
    "alias",
    "path_grouping_policy",
    "path_selector",
    "prio",
    "prio_args",
    "failback",
    "rr_weight",
    "no_path_retry",
    "rr_min_io",
    "rr_min_io_rq",
    "pg_timeout",
    "flush_on_last_del",
    "features",
    "mode",
    "uid",
    "gid",
    "reservation_key",
    "user_friendly_names",
    "deferred_remove",
    "delay_watch_checks",
    "delay_wait_checks",
    "san_path_err_threshold",
    "san_path_err_forget_rate",
    "san_path_err_recovery_time",
    "marginal_path_err_sample_time",
    "marginal_path_err_rate_threshold",
    "marginal_path_err_recheck_gap_time",
    "marginal_path_double_failed_time",
    "skip_kpartx",
    "max_sectors_kb",
    "ghost_delay",
];

/// The value kind of an attribute keyword (the same in every section that has it).
pub(crate) fn kind(keyword: &str) -> Kind {
    const INT_MAX: i64 = i32::MAX as i64;
    match keyword {
        // MAX_VERBOSITY is 4 in 0.9.4's debug.h; -v accepts up to 6 (print levels).
        "verbosity" => Kind::Int { min: 0, max: 4 },
        "polling_interval" | "max_polling_interval" => Kind::Uint,
        "rr_min_io"
        | "rr_min_io_rq"
        | "checker_timeout"
        | "retrigger_tries"
        | "retrigger_delay"
        | "missing_uev_wait_timeout"
        | "remove_retries"
        | "max_sectors_kb" => Kind::Int {
            min: 0,
            max: INT_MAX,
        },
        "find_multipaths_timeout" => Kind::Int {
            min: i32::MIN as i64,
            max: INT_MAX,
        },
        // DEFAULT_REPLY_TIMEOUT is the minimum.
        "uxsock_timeout" => Kind::Int {
            min: 4000,
            max: INT_MAX,
        },
        "reassign_maps"
        | "queue_without_daemon"
        | "allow_usb_devices"
        | "flush_on_last_del"
        | "user_friendly_names"
        | "all_tg_pt"
        | "retain_attached_hw_handler"
        | "detect_prio"
        | "detect_checker"
        | "force_sync"
        | "strict_timing"
        | "deferred_remove"
        | "skip_kpartx"
        | "recheck_wwid" => Kind::YesNo,
        "uid_attribute" | "uid_attrs" | "prio_args" | "enable_foreign" | "uid" | "gid" | "wwid" => {
            Kind::Str
        }
        "reservation_key" => Kind::PrKey,
        "alias_prefix" | "alias" | "partition_delimiter" => Kind::StrNoSlash,
        "bindings_file" | "wwids_file" | "prkeys_file" => Kind::Path,
        "features" | "hardware_handler" => Kind::ArgStr,
        "path_selector" => Kind::Selector,
        "path_grouping_policy" => Kind::PgPolicy,
        "failback" => Kind::Failback,
        "no_path_retry" => Kind::NoPathRetry,
        "rr_weight" => Kind::RrWeight,
        "fast_io_fail_tmo" | "eh_deadline" => Kind::Tmo,
        "dev_loss_tmo" => Kind::DevLoss,
        "delay_watch_checks"
        | "delay_wait_checks"
        | "san_path_err_threshold"
        | "san_path_err_forget_rate"
        | "san_path_err_recovery_time"
        | "marginal_path_err_sample_time"
        | "marginal_path_err_rate_threshold"
        | "marginal_path_err_recheck_gap_time"
        | "marginal_path_double_failed_time"
        | "ghost_delay" => Kind::OffInt,
        "find_multipaths" => Kind::FindMultipaths,
        "path_checker" | "checker" => Kind::Checker,
        "prio" => Kind::Prio,
        "mode" => Kind::Mode,
        "max_fds" => Kind::MaxFds,
        "log_checker_err" => Kind::Choice(&["once", "always"]),
        "marginal_pathgroups" => Kind::Choice(&["off", "on"]),
        "vpd_vendor" => Kind::Choice(&["hp3par"]),
        "type" => Kind::Choice(PROTOCOLS),
        "vendor" | "product" | "revision" | "product_blacklist" => Kind::Regex,
        _ => Kind::Deprecated,
    }
}

/// What a value turned into: the value, or why it is refused; plus a warning that
/// multipath-tools would log while still taking a value (capping, deprecated spelling).
pub(crate) struct Parsed {
    pub value: Value,
    pub warning: Option<String>,
}

fn ok(value: Value) -> Result<Parsed, String> {
    Ok(Parsed {
        value,
        warning: None,
    })
}

/// strtol() with the C rules multipath-tools relies on: leading blanks and a sign,
/// trailing blanks allowed, nothing else.
fn c_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Saturate like strtol (LONG_MAX/LONG_MIN); the range check then caps.
    Some(t.parse::<i64>().unwrap_or(if t.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// A bounded integer; outside [min, max] it is capped with multipath-tools' warning.
fn int_in(keyword: &str, s: &str, min: i64, max: i64) -> Result<Parsed, String> {
    let n = c_int(s).ok_or_else(|| "not a number".to_string())?;
    if n > max || n < min {
        let (cap, word) = if n > max {
            (max, "large")
        } else {
            (min, "small")
        };
        return Ok(Parsed {
            value: Value::Int(cap),
            warning: Some(format!("value for {keyword} too {word}, capping at {cap}")),
        });
    }
    ok(Value::Int(n))
}

fn positive(keyword: &str, s: &str) -> Result<(u32, Option<String>), String> {
    let p = int_in(keyword, s, 1, i32::MAX as i64)?;
    match p.value {
        Value::Int(n) => Ok((n as u32, p.warning)),
        _ => unreachable!("int_in gives Int"),
    }
}

fn yes_no(s: &str) -> Option<bool> {
    match s {
        "yes" | "1" => Some(true),
        "no" | "0" => Some(false),
        _ => None,
    }
}

fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|&t| name(t)).collect::<Vec<_>>().join(", ")
}

/// Reads `s` as a value of `keyword` (of kind `kind`). Err: why the value is refused.
pub(crate) fn parse(keyword: &str, kind: Kind, s: &str) -> Result<Parsed, String> {
    match kind {
        Kind::Int { min, max } => int_in(keyword, s, min, max),
        Kind::Uint => {
            let t = s.trim_start();
            match t.trim_end().parse::<u32>() {
                Ok(n) if t.starts_with(|c: char| c.is_ascii_digit()) => ok(Value::Int(n as i64)),
                _ => Err("not a non-negative number".into()),
            }
        }
        Kind::YesNo => match yes_no(s) {
            Some(b) => ok(Value::Bool(b)),
            // 0.9.9 renamed the flush_on_last_del values; accept them so that a newer
            // configuration loads, with the 0.9.4 meaning.
            None if keyword == "flush_on_last_del" => match s {
                "always" => Ok(Parsed {
                    value: Value::Bool(true),
                    warning: Some(format!(
                        "\"{s}\" is a newer value for flush_on_last_del and is treated as \"yes\""
                    )),
                }),
                "unused" | "never" => Ok(Parsed {
                    value: Value::Bool(false),
                    warning: Some(format!(
                        "\"{s}\" is a newer value for flush_on_last_del and is treated as \"no\""
                    )),
                }),
                _ => Err("expected yes or no".into()),
            },
            None => Err("expected yes or no".into()),
        },
        Kind::Str => ok(Value::Str(s.to_string())),
        Kind::StrNoSlash => {
            if s.contains('/') {
                Err(format!("{keyword} cannot contain a slash"))
            } else {
                ok(Value::Str(s.to_string()))
            }
        }
        Kind::Path => {
            if !s.starts_with('/') {
                return Err("not an absolute path".into());
            }
            Ok(Parsed {
                value: Value::Str(s.to_string()),
                warning: Some(format!(
                    "\"{keyword}\" is deprecated and will be disabled in a future release"
                )),
            })
        }
        Kind::ArgStr => {
            check_arg_count(s, 0)?;
            ok(Value::Str(s.to_string()))
        }
        Kind::Selector => Ok(Parsed {
            value: Value::Selector(Selector::parse(s)?),
            warning: None,
        }),
        Kind::PgPolicy => PgPolicy::parse(s)
            .map(Value::PgPolicy)
            .map(|v| Parsed {
                value: v,
                warning: None,
            })
            .ok_or_else(|| {
                format!(
                    "expected one of {}",
                    names(&PgPolicy::ALL, PgPolicy::as_str)
                )
            }),
        Kind::Failback => match s {
            "manual" => ok(Value::Failback(Failback::Manual)),
            "immediate" => ok(Value::Failback(Failback::Immediate)),
            "followover" => ok(Value::Failback(Failback::FollowOver)),
            _ => {
                let p = int_in(keyword, s, 0, i32::MAX as i64)
                    .map_err(|_| "expected manual, immediate, followover or seconds".to_string())?;
                let Value::Int(n) = p.value else {
                    unreachable!()
                };
                Ok(Parsed {
                    value: Value::Failback(Failback::Deferred(n as u32)),
                    warning: p.warning,
                })
            }
        },
        Kind::NoPathRetry => match s {
            "fail" | "0" => ok(Value::NoPathRetry(NoPathRetry::Fail)),
            "queue" => ok(Value::NoPathRetry(NoPathRetry::Queue)),
            _ => {
                let (n, warning) = positive(keyword, s)
                    .map_err(|_| "expected fail, queue or a number of checks".to_string())?;
                Ok(Parsed {
                    value: Value::NoPathRetry(NoPathRetry::Retries(n)),
                    warning,
                })
            }
        },
        Kind::RrWeight => match s {
            "uniform" => ok(Value::RrWeight(RrWeight::Uniform)),
            "priorities" => ok(Value::RrWeight(RrWeight::Priorities)),
            _ => Err("expected uniform or priorities".into()),
        },
        Kind::Tmo => match s {
            "off" => ok(Value::Tmo(Tmo::Off)),
            "0" => ok(Value::Tmo(Tmo::Zero)),
            _ => {
                let (n, warning) =
                    positive(keyword, s).map_err(|_| "expected off or seconds".to_string())?;
                Ok(Parsed {
                    value: Value::Tmo(Tmo::Seconds(n)),
                    warning,
                })
            }
        },
        Kind::DevLoss => {
            if s == "infinity" {
                return ok(Value::DevLoss(DevLoss::Infinity));
            }
            // sscanf("%u"): leading digits; multipath-tools stores 2^32-1 and above as
            // infinity (MAX_DEV_LOSS_TMO).
            match s.trim().parse::<u64>() {
                Ok(n) if n >= u32::MAX as u64 => ok(Value::DevLoss(DevLoss::Infinity)),
                Ok(n) => ok(Value::DevLoss(DevLoss::Seconds(n as u32))),
                Err(_) => Err("expected seconds or infinity".into()),
            }
        }
        Kind::OffInt => match s {
            "no" | "0" => ok(Value::OffInt(None)),
            _ => {
                let (n, warning) =
                    positive(keyword, s).map_err(|_| "expected no or a number".to_string())?;
                Ok(Parsed {
                    value: Value::OffInt(Some(n)),
                    warning,
                })
            }
        },
        Kind::FindMultipaths => {
            let m = match s {
                "off" | "no" | "0" => FindMultipaths::Off,
                "on" | "yes" | "1" => FindMultipaths::On,
                "strict" => FindMultipaths::Strict,
                "greedy" => FindMultipaths::Greedy,
                "smart" => FindMultipaths::Smart,
                _ => return Err("expected off, on, strict, greedy or smart".into()),
            };
            ok(Value::FindMultipaths(m))
        }
        Kind::Checker => Checker::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .map(|c| Parsed {
                value: Value::Checker(c),
                warning: None,
            })
            .ok_or_else(|| format!("known checkers: {}", names(&Checker::ALL, Checker::as_str))),
        Kind::Prio => Prio::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .map(|p| Parsed {
                value: Value::Prio(p),
                warning: None,
            })
            .ok_or_else(|| format!("known prioritizers: {}", names(&Prio::ALL, Prio::as_str))),
        Kind::Mode => match u32::from_str_radix(s.trim(), 8) {
            Ok(m) if m <= 0o777 => ok(Value::Mode(m)),
            _ => Err("expected an octal mode up to 0777".into()),
        },
        Kind::PrKey => ReservationKey::parse(s)
            .map(|k| Parsed {
                value: Value::ReservationKey(k),
                warning: None,
            })
            .ok_or_else(|| "expected file or up to 16 hex digits, optionally :aptpl".into()),
        Kind::MaxFds => {
            if s == "max" {
                return ok(Value::MaxFds(None));
            }
            let p = int_in(keyword, s, 0, i32::MAX as i64)?;
            let Value::Int(n) = p.value else {
                unreachable!()
            };
            Ok(Parsed {
                value: Value::MaxFds(Some(n as u32)),
                warning: p.warning,
            })
        }
        Kind::Choice(words) => {
            let alias = match (keyword, s) {
                ("marginal_pathgroups", "no" | "0") => Some("off"),
                ("marginal_pathgroups", "yes" | "1") => Some("on"),
                _ => None,
            };
            words
                .iter()
                .find(|w| **w == s || Some(**w) == alias)
                .map(|w| Parsed {
                    value: Value::Word(w),
                    warning: None,
                })
                .ok_or_else(|| format!("expected one of {}", words.join(", ")))
        }
        Kind::Regex => {
            super::blacklist::compile(s)?;
            ok(Value::Regex(s.to_string()))
        }
        Kind::Deprecated => Ok(Parsed {
            value: Value::Ignored,
            warning: Some(format!("ignoring deprecated option \"{keyword}\"")),
        }),
    }
}
