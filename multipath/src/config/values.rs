//! Typed multipath.conf values: how each is read and printed (multipath-tools 0.9.4,
//! `libmultipath/dict.c`: the `set_*` and `print_*` functions of each keyword).

use std::fmt;

/// `path_grouping_policy` (`libmultipath/pgpolicies.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgPolicy {
    /// One path per path group.
    Failover,
    /// All paths in one group.
    Multibus,
    /// One group per target serial number.
    GroupBySerial,
    /// One group per path priority (ALUA access state with the `alua` prioritizer).
    GroupByPrio,
    /// One group per target node name (the iSCSI target name).
    GroupByNodeName,
}

impl PgPolicy {
    pub const ALL: [PgPolicy; 5] = [
        PgPolicy::Failover,
        PgPolicy::Multibus,
        PgPolicy::GroupBySerial,
        PgPolicy::GroupByPrio,
        PgPolicy::GroupByNodeName,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PgPolicy::Failover => "failover",
            PgPolicy::Multibus => "multibus",
            PgPolicy::GroupBySerial => "group_by_serial",
            PgPolicy::GroupByPrio => "group_by_prio",
            PgPolicy::GroupByNodeName => "group_by_node_name",
        }
    }

    pub fn parse(s: &str) -> Option<PgPolicy> {
        PgPolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A kernel path selector with its arguments (`path_selector`, dm-mpath's table syntax:
/// name, argument count, arguments).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    pub kind: SelectorKind,
    /// The string as written ("service-time 0"), printed back unchanged.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorKind {
    RoundRobin,
    QueueLength,
    ServiceTime,
    /// Kernel ≥ 5.8; accepted so that configurations written for it load.
    HistoricalServiceTime,
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, String> {
        let name = s.split_whitespace().next().unwrap_or("");
        let kind = match name {
            "round-robin" => SelectorKind::RoundRobin,
            "queue-length" => SelectorKind::QueueLength,
            "service-time" => SelectorKind::ServiceTime,
            "historical-service-time" => SelectorKind::HistoricalServiceTime,
            _ => {
                return Err("known selectors: \"round-robin 0\", \"queue-length 0\", \"service-time 0\", \"historical-service-time 0\"".into())
            }
        };
        check_arg_count(s, 1)?;
        Ok(Selector {
            kind,
            text: s.to_string(),
        })
    }
}

/// multipath-tools' `set_arg_str`: the word at `count_idx` counts the words after it
/// ("1 queue_if_no_path", "service-time 0", "1 alua").
pub(crate) fn check_arg_count(s: &str, count_idx: usize) -> Result<(), String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let count: usize = words
        .get(count_idx)
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| "missing argument count".to_string())?;
    let got = words.len() - count_idx - 1;
    if count != got {
        return Err(format!(
            "invalid argument count, got '{count}' expected '{got}'"
        ));
    }
    Ok(())
}

/// `failback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failback {
    Manual,
    Immediate,
    FollowOver,
    /// Fail back after this many seconds.
    Deferred(u32),
}

/// `no_path_retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoPathRetry {
    /// Fail I/O at once when no path is left (also "0").
    Fail,
    /// Queue until a path returns.
    Queue,
    /// Queue for this many checker intervals (polling_interval each), then fail.
    Retries(u32),
}

/// `rr_weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RrWeight {
    Uniform,
    Priorities,
}

/// `fast_io_fail_tmo` and `eh_deadline`: "off", "0" or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tmo {
    Off,
    Zero,
    Seconds(u32),
}

/// `dev_loss_tmo`: seconds or "infinity".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevLoss {
    Seconds(u32),
    Infinity,
}

/// `find_multipaths`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindMultipaths {
    Off,
    On,
    Strict,
    Greedy,
    Smart,
}

impl FindMultipaths {
    pub fn as_str(self) -> &'static str {
        match self {
            FindMultipaths::Off => "off",
            FindMultipaths::On => "on",
            FindMultipaths::Strict => "strict",
            FindMultipaths::Greedy => "greedy",
            FindMultipaths::Smart => "smart",
        }
    }
}

/// `path_checker` (0.9.4's checkers, `libmultipath/checkers/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Checker {
    /// TEST UNIT READY.
    Tur,
    /// A read of the first sector (deprecated upstream, still accepted).
    Readsector0,
    /// An O_DIRECT read of the first sector.
    Directio,
    EmcClariion,
    HpSw,
    Rdac,
    CcissTur,
    /// No checking: the path is always up.
    None,
}

impl Checker {
    pub const ALL: [Checker; 8] = [
        Checker::Tur,
        Checker::Readsector0,
        Checker::Directio,
        Checker::EmcClariion,
        Checker::HpSw,
        Checker::Rdac,
        Checker::CcissTur,
        Checker::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Checker::Tur => "tur",
            Checker::Readsector0 => "readsector0",
            Checker::Directio => "directio",
            Checker::EmcClariion => "emc_clariion",
            Checker::HpSw => "hp_sw",
            Checker::Rdac => "rdac",
            Checker::CcissTur => "cciss_tur",
            Checker::None => "none",
        }
    }
}

/// `prio` (0.9.4's prioritizers, `libmultipath/prioritizers/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prio {
    /// Every path has priority 1.
    Const,
    /// ALUA access state from REPORT TARGET PORT GROUPS (SPC-4 §6.37).
    Alua,
    /// The kernel's ALUA state in sysfs; hydra has no sysfs and reads RTPG as `alua` does.
    Sysfs,
    Emc,
    Ontap,
    Rdac,
    HpSw,
    Hds,
    Random,
    Weightedpath,
    PathLatency,
    Ana,
    Datacore,
    Iet,
}

impl Prio {
    pub const ALL: [Prio; 14] = [
        Prio::Const,
        Prio::Alua,
        Prio::Sysfs,
        Prio::Emc,
        Prio::Ontap,
        Prio::Rdac,
        Prio::HpSw,
        Prio::Hds,
        Prio::Random,
        Prio::Weightedpath,
        Prio::PathLatency,
        Prio::Ana,
        Prio::Datacore,
        Prio::Iet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Prio::Const => "const",
            Prio::Alua => "alua",
            Prio::Sysfs => "sysfs",
            Prio::Emc => "emc",
            Prio::Ontap => "ontap",
            Prio::Rdac => "rdac",
            Prio::HpSw => "hp_sw",
            Prio::Hds => "hds",
            Prio::Random => "random",
            Prio::Weightedpath => "weightedpath",
            Prio::PathLatency => "path_latency",
            Prio::Ana => "ana",
            Prio::Datacore => "datacore",
            Prio::Iet => "iet",
        }
    }
}

/// `reservation_key`: the SCSI-3 persistent reservation key mpathpersist registers
/// (SPC-4 §6.15, PERSISTENT RESERVE OUT), or "file" (kept in the prkeys file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationKey {
    Key {
        key: u64,
        /// `:aptpl`: register with Activate Persist Through Power Loss.
        aptpl: bool,
    },
    File,
}

impl ReservationKey {
    /// multipath-tools' `parse_prkey_flags`: an optional "0x", 1 to 16 hex digits, an
    /// optional ":aptpl"; or "file".
    pub fn parse(s: &str) -> Option<ReservationKey> {
        if s == "file" {
            return Some(ReservationKey::File);
        }
        let (key, flags) = match s.split_once(':') {
            Some((k, f)) => (k, Some(f)),
            None => (s, None),
        };
        let hex = key.strip_prefix('0').unwrap_or(key);
        let hex = hex
            .strip_prefix('x')
            .or_else(|| hex.strip_prefix('X'))
            .unwrap_or(hex);
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(ReservationKey::Key {
            key: u64::from_str_radix(hex, 16).ok()?,
            aptpl: flags == Some("aptpl"),
        })
    }
}

/// One parsed value. Which variant a keyword takes is fixed by its entry in
/// [`super::keywords`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bool(bool),
    /// A free string (printed quoted).
    Str(String),
    /// A regular expression (vendor, product, revision, product_blacklist).
    Regex(String),
    /// One of a fixed list of words (printed quoted).
    Word(&'static str),
    PgPolicy(PgPolicy),
    Selector(Selector),
    Failback(Failback),
    NoPathRetry(NoPathRetry),
    RrWeight(RrWeight),
    Tmo(Tmo),
    DevLoss(DevLoss),
    /// "no" or a positive count (delay_watch_checks, san_path_err_*, marginal_*,
    /// ghost_delay).
    OffInt(Option<u32>),
    FindMultipaths(FindMultipaths),
    Checker(Checker),
    Prio(Prio),
    /// `mode` (octal).
    Mode(u32),
    ReservationKey(ReservationKey),
    /// `max_fds`: "max" or a number.
    MaxFds(Option<u32>),
    /// A keyword accepted and ignored (deprecated in 0.9.4); never printed.
    Ignored,
}

/// Writes `s` as multipath-tools' `append_strbuf_quoted` does: in double quotes, with
/// each inner `"` doubled, so that the output reads back to the same value.
pub(crate) fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl fmt::Display for Value {
    /// The value as `multipath -t` prints it (quoted where multipath-tools quotes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| quoted(if b { "yes" } else { "no" });
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => f.write_str(&yes_no(*b)),
            Value::Str(s) | Value::Regex(s) => f.write_str(&quoted(s)),
            Value::Word(w) => f.write_str(&quoted(w)),
            Value::PgPolicy(p) => f.write_str(&quoted(p.as_str())),
            Value::Selector(s) => f.write_str(&quoted(&s.text)),
            Value::Failback(Failback::Manual) => f.write_str(&quoted("manual")),
            Value::Failback(Failback::Immediate) => f.write_str(&quoted("immediate")),
            Value::Failback(Failback::FollowOver) => f.write_str(&quoted("followover")),
            Value::Failback(Failback::Deferred(n)) => write!(f, "{n}"),
            Value::NoPathRetry(NoPathRetry::Fail) => f.write_str(&quoted("fail")),
            Value::NoPathRetry(NoPathRetry::Queue) => f.write_str(&quoted("queue")),
            Value::NoPathRetry(NoPathRetry::Retries(n)) => write!(f, "{n}"),
            Value::RrWeight(RrWeight::Uniform) => f.write_str(&quoted("uniform")),
            Value::RrWeight(RrWeight::Priorities) => f.write_str(&quoted("priorities")),
            // print_undef_off_zero: no quotes for "off" either.
            Value::Tmo(Tmo::Off) => f.write_str("off"),
            Value::Tmo(Tmo::Zero) => f.write_str("0"),
            Value::Tmo(Tmo::Seconds(n)) => write!(f, "{n}"),
            Value::DevLoss(DevLoss::Infinity) => f.write_str(&quoted("infinity")),
            Value::DevLoss(DevLoss::Seconds(n)) => write!(f, "{n}"),
            Value::OffInt(None) => f.write_str(&quoted("no")),
            Value::OffInt(Some(n)) => write!(f, "{n}"),
            Value::FindMultipaths(m) => f.write_str(&quoted(m.as_str())),
            Value::Checker(c) => f.write_str(&quoted(c.as_str())),
            Value::Prio(p) => f.write_str(&quoted(p.as_str())),
            Value::Mode(m) => write!(f, "0{m:o}"),
            Value::ReservationKey(ReservationKey::File) => f.write_str(&quoted("file")),
            Value::ReservationKey(ReservationKey::Key { key, aptpl }) => {
                write!(f, "0x{key:x}{}", if *aptpl { ":aptpl" } else { "" })
            }
            Value::MaxFds(None) => f.write_str(&quoted("max")),
            Value::MaxFds(Some(n)) => write!(f, "{n}"),
            Value::Ignored => Ok(()),
        }
    }
}
