//! The effective settings of a map and its paths (multipath-tools 0.9.4,
//! `libmultipath/propsel.c`).
//!
//! For each attribute the first of these that sets it wins:
//! 1. the `multipaths` entry of the WWID (exact match);
//! 2. `overrides` — for `fast_io_fail_tmo`, `dev_loss_tmo`, `eh_deadline` its `protocol`
//!    subsection of the path's protocol first;
//! 3. the `devices` entries that match vendor/product/revision, latest first (drop-ins,
//!    then multipath.conf, then the built-in table);
//! 4. `defaults`;
//! 5. the built-in default.
//!
//! Not every attribute has every level, as in propsel.c: `path_checker`, `alias_prefix`,
//! `detect_prio`, `detect_checker` have no `multipaths` level, `hardware_handler` has
//! only devices and defaults, the timeouts have no `multipaths` level.

use std::fmt;

use super::values::*;
use super::{Attrs, Config};

/// Where an effective value comes from; `as_str` is multipath-tools' wording in its
/// `-v3` logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Multipaths,
    OverridesProtocol,
    Overrides,
    Device,
    Defaults,
    Internal,
    /// `no_path_retry queue` derived from `features "1 queue_if_no_path"`.
    Features,
    /// Chosen from what the device reports (`detect_prio`, `detect_checker`).
    Autodetected,
    /// `prio alua` on a device without ALUA falls back to `const`.
    AluaFallback,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Multipaths => "(setting: multipath.conf multipaths section)",
            Source::OverridesProtocol => "(setting: multipath.conf overrides protocol section)",
            Source::Overrides => "(setting: multipath.conf overrides section)",
            Source::Device => "(setting: storage device configuration)",
            Source::Defaults => "(setting: multipath.conf defaults/devices section)",
            Source::Internal => "(setting: multipath internal)",
            Source::Features => "(inherited setting from feature 'queue_if_no_path')",
            Source::Autodetected => "(setting: storage device autodetected)",
            Source::AluaFallback => "(setting: emergency fallback - alua failed)",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// What identifies a path for the configuration. Vendor, product and revision are the
/// INQUIRY strings without their trailing blanks (as sysfs gives them to
/// multipath-tools).
#[derive(Debug, Clone, Copy)]
pub struct PathIdentity<'a> {
    pub wwid: &'a str,
    pub vendor: &'a str,
    pub product: &'a str,
    pub revision: &'a str,
    /// One of [`super::PROTOCOLS`]; hydra's paths are "scsi:iscsi".
    pub protocol: &'a str,
}

/// The settings of one map (and of its paths: hydra gives all paths of a map the same
/// vendor/product, as they are one LUN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// From `multipaths` only; otherwise the name comes from the bindings file when
    /// `user_friendly_names` is on, or is the WWID.
    pub alias: Option<String>,
    pub user_friendly_names: Sourced<bool>,
    pub alias_prefix: Sourced<String>,
    pub path_grouping_policy: Sourced<PgPolicy>,
    pub path_selector: Sourced<Selector>,
    /// I/Os per path before the selector moves on (request-based dm: `rr_min_io_rq`).
    pub rr_min_io_rq: Sourced<u32>,
    pub rr_weight: Sourced<RrWeight>,
    /// The configured prioritizer; [`Settings::prio_for`] applies `detect_prio`.
    pub prio: Sourced<Prio>,
    pub prio_args: String,
    pub detect_prio: Sourced<bool>,
    /// The configured checker; [`Settings::checker_for`] applies `detect_checker`.
    pub path_checker: Sourced<Checker>,
    pub detect_checker: Sourced<bool>,
    pub failback: Sourced<Failback>,
    /// After `features "1 queue_if_no_path"` is folded in (unset anywhere = fail).
    pub no_path_retry: Sourced<NoPathRetry>,
    /// The dm features string without `queue_if_no_path` ("0" by default).
    pub features: Sourced<String>,
    pub hardware_handler: Sourced<String>,
    pub fast_io_fail_tmo: Sourced<Tmo>,
    pub dev_loss_tmo: Option<Sourced<DevLoss>>,
    pub eh_deadline: Option<Sourced<Tmo>>,
    pub flush_on_last_del: Sourced<bool>,
    pub skip_kpartx: Sourced<bool>,
    pub deferred_remove: Sourced<bool>,
    /// `reservation_key` of the `multipaths` entry or `defaults` (mpathpersist).
    pub reservation_key: Option<Sourced<ReservationKey>>,
}

/// The `defaults`-only settings (daemon-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Globals {
    pub verbosity: u32,
    /// Seconds between checks of a path (`polling_interval`, default 5).
    pub polling_interval: u32,
    /// Healthy paths are checked less often, up to this (default 4 × polling_interval).
    pub max_polling_interval: u32,
    pub find_multipaths: FindMultipaths,
    pub bindings_file: String,
    pub wwids_file: String,
    pub prkeys_file: String,
    /// Between the map name and the partition number (None: multipath-tools' default,
    /// "p" after a name that ends in a digit, nothing otherwise).
    pub partition_delimiter: Option<String>,
    /// None: the kernel's SCSI timeout (hydra: the node record's command timeout).
    pub checker_timeout: Option<u32>,
    pub queue_without_daemon: bool,
}

/// Built-in defaults (multipath-tools 0.9.4 `libmultipath/defaults.h` as Debian 12 builds
/// it; `multipath -t` with no configuration file shows them).
pub mod default {
    pub const POLLING_INTERVAL: u32 = 5;
    pub const ALIAS_PREFIX: &str = "mpath";
    pub const SELECTOR: &str = "service-time 0";
    pub const FEATURES: &str = "0";
    pub const HWHANDLER: &str = "0";
    pub const MINIO_RQ: u32 = 1;
    pub const FAST_IO_FAIL: u32 = 5;
    pub const BINDINGS_FILE: &str = "/etc/multipath/bindings";
    pub const WWIDS_FILE: &str = "/etc/multipath/wwids";
    pub const PRKEYS_FILE: &str = "/etc/multipath/prkeys";
    pub const VERBOSITY: u32 = 2;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Mp,
    Pce,
    Ovr,
    Hwe,
    Conf,
}

const ALL: &[Level] = &[Level::Mp, Level::Ovr, Level::Hwe, Level::Conf];
const NO_MP: &[Level] = &[Level::Ovr, Level::Hwe, Level::Conf];
const TMO: &[Level] = &[Level::Pce, Level::Ovr, Level::Hwe, Level::Conf];

struct Layers<'a> {
    mp: Option<&'a Attrs>,
    pce: Option<&'a Attrs>,
    ovr: Option<&'a Attrs>,
    /// Matching device entries, latest first.
    hwe: Vec<&'a Attrs>,
    conf: &'a Attrs,
}

impl<'a> Layers<'a> {
    fn attrs(&self, level: Level) -> Vec<(&'a Attrs, Source)> {
        match level {
            Level::Mp => self
                .mp
                .map(|a| (a, Source::Multipaths))
                .into_iter()
                .collect(),
            Level::Pce => self
                .pce
                .map(|a| (a, Source::OverridesProtocol))
                .into_iter()
                .collect(),
            Level::Ovr => self
                .ovr
                .map(|a| (a, Source::Overrides))
                .into_iter()
                .collect(),
            Level::Hwe => self.hwe.iter().map(|a| (*a, Source::Device)).collect(),
            Level::Conf => vec![(self.conf, Source::Defaults)],
        }
    }

    fn find(&self, key: &str, levels: &[Level]) -> Option<(&'a Value, Source, &'a Attrs)> {
        levels.iter().find_map(|&l| {
            self.attrs(l)
                .into_iter()
                .find_map(|(a, s)| a.get(key).map(|v| (v, s, a)))
        })
    }

    fn pick<T>(
        &self,
        key: &str,
        levels: &[Level],
        conv: impl Fn(&Value) -> Option<T>,
        default: T,
    ) -> Sourced<T> {
        self.try_pick(key, levels, conv).unwrap_or(Sourced {
            value: default,
            source: Source::Internal,
        })
    }

    fn try_pick<T>(
        &self,
        key: &str,
        levels: &[Level],
        conv: impl Fn(&Value) -> Option<T>,
    ) -> Option<Sourced<T>> {
        let (v, source, _) = self.find(key, levels)?;
        conv(v).map(|value| Sourced { value, source })
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn as_str(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) | Value::Regex(s) => Some(s.clone()),
        _ => None,
    }
}

/// `remove_feature`: takes one word out of a dm features string and fixes its count.
fn remove_feature(features: &str, word: &str) -> String {
    let mut words: Vec<&str> = features.split_whitespace().collect();
    if words.is_empty() {
        return features.to_string();
    }
    let before = words.len();
    let rest: Vec<&str> = words.drain(1..).filter(|w| *w != word).collect();
    let removed = before - 1 - rest.len();
    let count = words[0]
        .parse::<usize>()
        .unwrap_or(0)
        .saturating_sub(removed);
    let mut out = count.to_string();
    for w in rest {
        out.push(' ');
        out.push_str(w);
    }
    out
}

impl Config {
    /// The devices entries that match a path, latest (highest precedence) first.
    pub fn matching_devices(&self, id: &PathIdentity<'_>) -> Vec<&Attrs> {
        self.devices
            .iter()
            .rev()
            .filter(|d| d.matches(id.vendor, id.product, id.revision))
            .map(|d| &d.attrs)
            .collect()
    }

    /// The effective settings for the map of this path.
    pub fn resolve(&self, id: &PathIdentity<'_>) -> Settings {
        let l = Layers {
            mp: self.multipath(id.wwid).map(|m| &m.attrs),
            pce: self
                .protocols
                .iter()
                .find(|p| p.kind == Some(id.protocol))
                .map(|p| &p.attrs),
            ovr: self.overrides.as_ref(),
            hwe: self.matching_devices(id),
            conf: &self.defaults,
        };
        let alias = l.mp.and_then(|m| m.str("alias")).map(str::to_string);
        // select_prio: the prioritizer and its arguments come from the same level
        // (from the device entries each separately, first that has it).
        let (prio, prio_args) = match l.find("prio", ALL) {
            Some((Value::Prio(p), source, attrs)) => {
                let args = if source == Source::Device {
                    l.hwe.iter().find_map(|a| a.str("prio_args"))
                } else {
                    attrs.str("prio_args")
                };
                (
                    Sourced { value: *p, source },
                    args.unwrap_or_default().to_string(),
                )
            }
            _ => (
                Sourced {
                    value: Prio::Const,
                    source: Source::Internal,
                },
                String::new(),
            ),
        };
        let mut no_path_retry = l.try_pick("no_path_retry", ALL, |v| match v {
            Value::NoPathRetry(n) => Some(*n),
            _ => None,
        });
        let features = l.pick("features", ALL, as_str, default::FEATURES.to_string());
        // reconcile_features_with_options: queue_if_no_path only counts when
        // no_path_retry is unset, and leaves the features string either way.
        let features = if features
            .value
            .split_whitespace()
            .any(|w| w == "queue_if_no_path")
        {
            if no_path_retry.is_none() {
                no_path_retry = Some(Sourced {
                    value: NoPathRetry::Queue,
                    source: Source::Features,
                });
            }
            Sourced {
                value: remove_feature(&features.value, "queue_if_no_path"),
                source: features.source,
            }
        } else {
            features
        };
        Settings {
            alias,
            user_friendly_names: l.pick("user_friendly_names", ALL, as_bool, false),
            alias_prefix: l.pick("alias_prefix", NO_MP, as_str, default::ALIAS_PREFIX.into()),
            path_grouping_policy: l.pick(
                "path_grouping_policy",
                ALL,
                |v| match v {
                    Value::PgPolicy(p) => Some(*p),
                    _ => None,
                },
                PgPolicy::Failover,
            ),
            path_selector: l.pick(
                "path_selector",
                ALL,
                |v| match v {
                    Value::Selector(s) => Some(s.clone()),
                    _ => None,
                },
                Selector::parse(default::SELECTOR).expect("the default selector parses"),
            ),
            rr_min_io_rq: l.pick(
                "rr_min_io_rq",
                ALL,
                |v| match v {
                    Value::Int(n) => u32::try_from(*n).ok(),
                    _ => None,
                },
                default::MINIO_RQ,
            ),
            rr_weight: l.pick(
                "rr_weight",
                ALL,
                |v| match v {
                    Value::RrWeight(w) => Some(*w),
                    _ => None,
                },
                RrWeight::Uniform,
            ),
            prio,
            prio_args,
            detect_prio: l.pick("detect_prio", NO_MP, as_bool, true),
            path_checker: l.pick(
                "path_checker",
                NO_MP,
                |v| match v {
                    Value::Checker(c) => Some(*c),
                    _ => None,
                },
                Checker::Tur,
            ),
            detect_checker: l.pick("detect_checker", NO_MP, as_bool, true),
            failback: l.pick(
                "failback",
                ALL,
                |v| match v {
                    Value::Failback(f) => Some(*f),
                    _ => None,
                },
                Failback::Manual,
            ),
            no_path_retry: no_path_retry.unwrap_or(Sourced {
                value: NoPathRetry::Fail,
                source: Source::Internal,
            }),
            features,
            hardware_handler: l.pick(
                "hardware_handler",
                &[Level::Hwe, Level::Conf],
                as_str,
                default::HWHANDLER.into(),
            ),
            fast_io_fail_tmo: l.pick(
                "fast_io_fail_tmo",
                TMO,
                |v| match v {
                    Value::Tmo(t) => Some(*t),
                    _ => None,
                },
                Tmo::Seconds(default::FAST_IO_FAIL),
            ),
            dev_loss_tmo: l.try_pick("dev_loss_tmo", TMO, |v| match v {
                Value::DevLoss(d) => Some(*d),
                _ => None,
            }),
            eh_deadline: l.try_pick("eh_deadline", TMO, |v| match v {
                Value::Tmo(t) => Some(*t),
                _ => None,
            }),
            flush_on_last_del: l.pick("flush_on_last_del", ALL, as_bool, false),
            skip_kpartx: l.pick("skip_kpartx", ALL, as_bool, false),
            deferred_remove: l.pick("deferred_remove", ALL, as_bool, false),
            reservation_key: l.try_pick(
                "reservation_key",
                &[Level::Mp, Level::Conf],
                |v| match v {
                    Value::ReservationKey(k) => Some(*k),
                    _ => None,
                },
            ),
        }
    }

    /// The daemon-wide settings of `defaults`.
    pub fn globals(&self) -> Globals {
        let d = &self.defaults;
        let int = |k: &str| match d.get(k) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        };
        let s = |k: &str, def: &str| d.str(k).unwrap_or(def).to_string();
        // _init_config: polling_interval and max_polling_interval fill each other in.
        // 0 is accepted by multipath-tools' set_uint and makes its checker loop spin;
        // hydra checks at least once a second.
        let checkint = int("polling_interval").map(|n| (n as u32).max(1));
        let max = int("max_polling_interval")
            .map(|n| n as u32)
            .filter(|&m| m != 0);
        let (polling_interval, max_polling_interval) = match (checkint, max) {
            (c, None) => {
                let c = c.unwrap_or(default::POLLING_INTERVAL);
                (c, c.saturating_mul(4))
            }
            (None, Some(m)) => ((m / 4).max(1), m),
            (Some(c), Some(m)) => (c.min(m), m),
        };
        Globals {
            verbosity: int("verbosity").map_or(default::VERBOSITY, |n| n as u32),
            polling_interval,
            max_polling_interval,
            find_multipaths: match d.get("find_multipaths") {
                Some(Value::FindMultipaths(m)) => *m,
                _ => FindMultipaths::Strict,
            },
            bindings_file: s("bindings_file", default::BINDINGS_FILE),
            wwids_file: s("wwids_file", default::WWIDS_FILE),
            prkeys_file: s("prkeys_file", default::PRKEYS_FILE),
            partition_delimiter: d.str("partition_delimiter").map(str::to_string),
            checker_timeout: int("checker_timeout").filter(|&n| n > 0).map(|n| n as u32),
            queue_without_daemon: matches!(d.get("queue_without_daemon"), Some(Value::Bool(true))),
        }
    }
}

impl Settings {
    /// `select_prio`: with `detect_prio`, a device that reports ALUA (INQUIRY TPGS ≠ 0)
    /// gets the `alua` prioritizer whatever the configuration says (multipath-tools
    /// picks `sysfs` when the kernel's ALUA handler is attached; hydra has no kernel
    /// handler and reads REPORT TARGET PORT GROUPS, which is `alua`). A configured
    /// `alua` on a device without ALUA falls back to `const`.
    pub fn prio_for(&self, tpgs: bool) -> Sourced<Prio> {
        if self.detect_prio.value && tpgs {
            return Sourced {
                value: Prio::Alua,
                source: Source::Autodetected,
            };
        }
        if self.prio.value == Prio::Alua && !tpgs {
            return Sourced {
                value: Prio::Const,
                source: Source::AluaFallback,
            };
        }
        self.prio.clone()
    }

    /// `select_checker`: with `detect_checker`, a device that reports ALUA gets `tur`.
    pub fn checker_for(&self, tpgs: bool) -> Sourced<Checker> {
        if self.detect_checker.value && tpgs {
            return Sourced {
                value: Checker::Tur,
                source: Source::Autodetected,
            };
        }
        self.path_checker.clone()
    }
}

impl Globals {
    /// The name of partition `n` of map `name` as kpartx names it:
    /// `partition_delimiter` if set, else "p" after a name that ends in a digit
    /// (`mpatha` → `mpatha1`, or `mpathap1` with `partition_delimiter p`).
    pub fn partition_name(&self, name: &str, n: u32) -> String {
        let digit = name.ends_with(|c: char| c.is_ascii_digit());
        let delim = self
            .partition_delimiter
            .as_deref()
            .unwrap_or(if digit { "p" } else { "" });
        format!("{name}{delim}{n}")
    }
}
