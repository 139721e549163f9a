//! The agent's options, as fence-agents' `fencing.py` takes them (dlm.md §3.2): with no
//! command-line arguments, `name=value` lines on stdin (`#` comments, the last
//! occurrence wins, `-` and `_` interchangeable, double quotes stripped, unknown names
//! ignored with a warning, booleans `1/yes/on/true` and `0/no/off/false`); otherwise
//! getopt-style flags (`-o off`, `--action=off`, `-ooff`). The names are fence_scsi's
//! (`agents/scsi/fence_scsi.py` `define_new_opts` plus fencing.py's common ones), the
//! stdin synonyms fencing.py maps (`option` for `action`, `plug` for `port`, `nodename`
//! for the node to act on), and a few of hydra's own for where its devices live.
//!
//! Sans-IO: text in, [`Options`] out.

use std::path::PathBuf;

use crate::{Error, Result};

/// What the agent is asked to do (FenceAgentAPI; fence_scsi's actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Unfence: register this node's key on every path, reserve WERO if none.
    On,
    /// Fence PLUG: PREEMPT AND ABORT its key.
    Off,
    /// Is the key registered: 0 on, 2 off.
    Status,
    /// Can the agent work here (key and device files, devices reachable).
    Monitor,
    /// The cluster's nodes, `plug,alias` lines.
    List,
    /// `plug,alias,ON|OFF` lines.
    ListStatus,
    /// The fence-agents XML description.
    Metadata,
    /// Check the options only.
    ValidateAll,
}

impl Action {
    pub fn parse(s: &str) -> Result<Action> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "on" | "enable" => Action::On,
            "off" | "disable" => Action::Off,
            "status" => Action::Status,
            "monitor" => Action::Monitor,
            "list" => Action::List,
            "list-status" => Action::ListStatus,
            "metadata" | "meta-data" => Action::Metadata,
            "validate-all" => Action::ValidateAll,
            "reboot" => {
                return Err(Error::Usage(
                    "Failed: fence_scsi does not reboot (fabric fencing): use action off".into(),
                ))
            }
            other => {
                return Err(Error::Usage(format!(
                    "Failed: Unrecognised action '{other}'"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Status => "status",
            Action::Monitor => "monitor",
            Action::List => "list",
            Action::ListStatus => "list-status",
            Action::Metadata => "metadata",
            Action::ValidateAll => "validate-all",
        }
    }
}

/// How the key is derived when `key` is not given (fence_scsi `--key-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue {
    /// md5(cluster name) prefix + the node's position in the corosync nodelist.
    Id,
    /// md5(cluster name) prefix + md5(node name) prefix.
    Hash,
}

/// One option of the table.
pub(crate) struct Opt {
    /// fencing.py's `all_opt` key: the stdin name.
    pub name: &'static str,
    /// The long option (`--long`); on stdin too.
    pub long: &'static str,
    pub short: Option<char>,
    /// Takes a value (else a flag).
    pub value: bool,
    pub shortdesc: &'static str,
    /// Shown in the metadata (hydra's own and the accepted-but-unused ones are not).
    pub listed: bool,
}

const fn o(
    name: &'static str,
    long: &'static str,
    short: Option<char>,
    value: bool,
    shortdesc: &'static str,
    listed: bool,
) -> Opt {
    Opt {
        name,
        long,
        short,
        value,
        shortdesc,
        listed,
    }
}

/// Every option the agent takes.
pub(crate) const TABLE: &[Opt] = &[
    o("action", "action", Some('o'), true, "Fencing action", true),
    o("port", "plug", Some('n'), true, "Name of the node to be fenced. The node name is used to generate the key value used for the current operation. This option will be ignored when used with the -k option.", true),
    o("nodename", "nodename", None, true, "Name of the node to be fenced (old name of plug)", false),
    o("devices", "devices", Some('d'), true, "List of devices to use for current operation. Devices can be comma or space separated list of /dev/mapper/NAME maps of the hydra node daemon or iscsi://host[:port]/target-iqn/lun URLs. Each device must support SCSI-3 persistent reservations.", true),
    o("key", "key", Some('k'), true, "Key to use for the current operation. This key should be unique to a node. For the \"on\" action, the key specifies the key use to register the local node. For the \"off\" action, this key specifies the key to be removed from the device(s).", true),
    o("key_value", "key-value", None, true, "Method used to generate the SCSI key. \"id\" (default) uses the positional ID from \"corosync-cmapctl nodelist\" output which can get inconsistent when nodes are removed from cluster without full cluster restart. \"hash\" uses part of hash made out of node names which is not affected over time but there is theoretical chance that hashes can collide as size of SCSI key is quite limited.", true),
    o("aptpl", "aptpl", Some('a'), false, "Use the APTPL flag for registrations. This option is only used for the 'on' action.", true),
    o("readonly", "readonly", None, false, "Open DEVICE read-only.", true),
    o("suppress_errors", "suppress-errors", None, false, "Error log suppression.", true),
    o("logfile", "logfile", Some('f'), true, "Log output (stdout and stderr) to file", true),
    o("delay", "delay", Some('H'), true, "Wait X seconds before fencing is started", true),
    o("verbose", "verbose", Some('v'), false, "Verbose mode", true),
    o("debug", "debug-file", Some('D'), true, "Write debug information to given file", true),
    o("version", "version", Some('V'), false, "Display version information and exit", true),
    o("help", "help", Some('h'), false, "Display help and exit", true),
    o("corosync_cmap_path", "corosync-cmap-path", None, true, "Path to corosync-cmapctl binary", true),
    o("power_timeout", "power-timeout", None, true, "Test X seconds for status change after ON/OFF", true),
    o("power_wait", "power-wait", None, true, "Wait X seconds after issuing ON/OFF", false),
    o("login_timeout", "login-timeout", None, true, "Wait X seconds for cmd prompt after login", false),
    o("shell_timeout", "shell-timeout", None, true, "Wait X seconds for cmd prompt after issuing command", false),
    o("retry_on", "retry-on", None, true, "Count of attempts to retry power on", false),
    // Accepted for compatibility with fence_scsi configurations; hydra runs no sg3_utils or LVM.
    o("sg_persist_path", "sg_persist-path", None, true, "", false),
    o("sg_turs_path", "sg_turs-path", None, true, "", false),
    o("vgs_path", "vgs-path", None, true, "", false),
    // dlm_controld's additions (dlm.md §3.2): the victim's node id, the failure time.
    o("node", "node", None, true, "", false),
    o("fail_time", "fail-time", None, true, "", false),
    // hydra's own.
    o("store_path", "store-path", None, true, "", false),
    o("initiator_name", "initiator-name", None, true, "", false),
    o("isid", "isid", None, true, "", false),
    o("run_dir", "run-dir", None, true, "", false),
    o("dev_dir", "dev-dir", None, true, "", false),
];

/// Where fence_scsi keeps this node's key and devices (upstream `STORE_PATH`):
/// `<STORE_PATH>.key`, `<STORE_PATH>.dev`.
pub const STORE_PATH: &str = "/var/run/cluster/fence_scsi";

/// The ISID of the agent's own sessions to iSCSI URL devices (RFC 7143 §10.12.5, type
/// 01b "random", fixed so that the agent's I_T nexus is the same on every run: a
/// registration it makes is found by the next run, and a node that writes through the
/// same initiator name and ISID writes as a registrant).
pub const DEFAULT_ISID: [u8; 6] = [0x40, 0x00, 0x68, 0x79, 0x66, 0x73];

/// The parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub action: Action,
    /// The node acted on (`plug`, `port`, `nodename`).
    pub plug: Option<String>,
    /// dlm_controld's `node=<nodeid>`: the node acted on when no plug is given.
    pub node: Option<u32>,
    pub devices: Vec<String>,
    /// An explicit key (hex), leading zeros not yet stripped.
    pub key: Option<String>,
    pub key_value: KeyValue,
    pub aptpl: bool,
    pub logfile: Option<PathBuf>,
    /// Seconds to wait before fencing (`off` only, as fencing.py's `run_delay`).
    pub delay: u64,
    pub verbose: bool,
    pub help: bool,
    pub version: bool,
    pub corosync_cmap_path: PathBuf,
    /// `<store_path>.key` and `<store_path>.dev`.
    pub store_path: PathBuf,
    /// For iSCSI URL devices; None: /etc/iscsi/initiatorname.iscsi.
    pub initiator_name: Option<String>,
    pub isid: [u8; 6],
    /// The node daemon's run dir (its multipathd.sock); None: the default.
    pub run_dir: Option<PathBuf>,
    /// Where the node daemon makes `mapper/<alias>` (default /dev).
    pub dev_dir: PathBuf,
    /// Seconds each device operation may take (`power_timeout`, default 20).
    pub timeout: u64,
    /// Unknown stdin names, ignored as fencing.py does.
    pub warnings: Vec<String>,
}

impl Options {
    /// The defaults before any option (also what `hydra mount` starts from to open a
    /// map for its key check).
    pub fn defaults() -> Options {
        Options {
            action: Action::Off,
            plug: None,
            node: None,
            devices: Vec::new(),
            key: None,
            key_value: KeyValue::Id,
            aptpl: false,
            logfile: None,
            delay: 0,
            verbose: false,
            help: false,
            version: false,
            corosync_cmap_path: PathBuf::from("/usr/sbin/corosync-cmapctl"),
            store_path: PathBuf::from(STORE_PATH),
            initiator_name: None,
            isid: DEFAULT_ISID,
            run_dir: None,
            dev_dir: PathBuf::from("/dev"),
            timeout: 20,
            warnings: Vec::new(),
        }
    }
}

/// Name as the table spells it: `-` and `_` are the same.
fn norm(s: &str) -> String {
    s.replace('-', "_")
}

fn lookup(name: &str) -> Option<&'static Opt> {
    let n = norm(name);
    TABLE
        .iter()
        .find(|o| norm(o.name) == n || norm(o.long) == n)
}

/// fence-agents' boolean words; an empty value (a bare `verbose` line) is true.
fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "yes" | "on" | "true" => Some(true),
        "0" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// Options from stdin's `name=value` lines.
pub fn parse_stdin(text: &str) -> Result<Options> {
    let mut raw = Vec::new();
    let mut warnings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        let name = match norm(name.trim()).as_str() {
            "option" => "action".to_string(),
            n => n.to_string(),
        };
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let Some(opt) = lookup(&name) else {
            warnings.push(format!(
                "Parse error: Ignoring unknown option '{line}' (stdin line {})",
                i + 1
            ));
            continue;
        };
        if opt.value {
            raw.push((opt, Some(value.to_string())));
        } else {
            match boolean(value) {
                Some(true) => raw.push((opt, None)),
                Some(false) => raw.retain(|(o, _): &(&Opt, _)| o.name != opt.name),
                None => {
                    return Err(Error::Usage(format!(
                        "Failed: stdin line {}: '{name}' takes 1/yes/on/true or 0/no/off/false, not '{value}'",
                        i + 1
                    )))
                }
            }
        }
    }
    let mut o = build(raw)?;
    o.warnings = warnings;
    Ok(o)
}

/// Options from command-line flags (getopt: `-o off`, `-ooff`, `--action off`,
/// `--action=off`; `-` and `_` interchangeable in long names). No positional
/// arguments are taken.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Options> {
    let mut raw = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_ref();
        i += 1;
        let (opt, inline) = if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let opt = TABLE
                .iter()
                .find(|o| norm(o.long) == norm(name))
                .ok_or_else(|| Error::Usage(format!("Failed: unrecognized option '--{name}'")))?;
            (opt, inline)
        } else if a.len() >= 2 && a.starts_with('-') {
            let c = a[1..].chars().next().expect("non-empty");
            let opt = TABLE
                .iter()
                .find(|o| o.short == Some(c))
                .ok_or_else(|| Error::Usage(format!("Failed: invalid option -- '{c}'")))?;
            let rest = &a[1 + c.len_utf8()..];
            if !opt.value && !rest.is_empty() {
                return Err(Error::Usage(format!(
                    "Failed: -{c} takes no value (in '{a}')"
                )));
            }
            (opt, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            return Err(Error::Usage(format!(
                "Failed: unexpected argument '{a}' (options only; see --help)"
            )));
        };
        let value = if opt.value {
            match inline {
                Some(v) => Some(v),
                None => {
                    let v = args.get(i).ok_or_else(|| {
                        Error::Usage(format!("Failed: option '{a}' requires a value"))
                    })?;
                    i += 1;
                    Some(v.as_ref().to_string())
                }
            }
        } else if inline.is_some() {
            return Err(Error::Usage(format!(
                "Failed: '--{}' takes no value",
                opt.long
            )));
        } else {
            None
        };
        raw.push((opt, value));
    }
    build(raw)
}

/// The devices list: comma or space separated (fence_scsi `re.split("\s*,\s*|\s+")`).
pub fn split_devices(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

fn number(name: &str, v: &str) -> Result<u64> {
    v.trim().parse().map_err(|_| {
        Error::Usage(format!(
            "Failed: {name} must be a number of seconds, not '{v}'"
        ))
    })
}

fn build(raw: Vec<(&'static Opt, Option<String>)>) -> Result<Options> {
    let mut o = Options::defaults();
    let mut nodename = None;
    for (opt, v) in raw {
        let val = v.unwrap_or_default();
        let nonempty = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
        match opt.name {
            "action" => o.action = Action::parse(&val)?,
            "port" => o.plug = nonempty(&val),
            "nodename" => nodename = nonempty(&val),
            "devices" => o.devices = split_devices(&val),
            "key" => o.key = nonempty(&val),
            "key_value" => {
                o.key_value = match val.trim() {
                    "id" => KeyValue::Id,
                    "hash" => KeyValue::Hash,
                    other => {
                        return Err(Error::Usage(format!(
                            "Failed: key-value has to be 'id' or 'hash', not '{other}'"
                        )))
                    }
                }
            }
            "aptpl" => o.aptpl = true,
            "logfile" => o.logfile = nonempty(&val).map(PathBuf::from),
            "delay" => o.delay = number("delay", &val)?,
            "verbose" => o.verbose = true,
            "help" => o.help = true,
            "version" => o.version = true,
            "corosync_cmap_path" => o.corosync_cmap_path = PathBuf::from(val),
            "power_timeout" => o.timeout = number("power_timeout", &val)?.max(1),
            "node" => {
                o.node = Some(val.trim().parse().map_err(|_| {
                    Error::Usage(format!(
                        "Failed: node must be a corosync node id, not '{val}'"
                    ))
                })?)
            }
            "store_path" => o.store_path = PathBuf::from(val),
            "initiator_name" => o.initiator_name = nonempty(&val),
            "isid" => o.isid = parse_isid(&val)?,
            "run_dir" => o.run_dir = nonempty(&val).map(PathBuf::from),
            "dev_dir" => o.dev_dir = PathBuf::from(val),
            // Accepted and unused (see the table).
            _ => {}
        }
    }
    // fence_scsi's "workaround to avoid regressions": nodename is the plug.
    if let Some(n) = nodename {
        o.plug = Some(n);
    }
    Ok(o)
}

/// 12 hex digits.
fn parse_isid(v: &str) -> Result<[u8; 6]> {
    let v = v.trim().trim_start_matches("0x");
    let bad = || Error::Usage(format!("Failed: isid must be 12 hex digits, not '{v}'"));
    if v.len() != 12 || !v.is_ascii() {
        return Err(bad());
    }
    let mut isid = [0u8; 6];
    for (i, b) in isid.iter_mut().enumerate() {
        *b = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(isid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_as_fencing_py_reads_it() {
        let o = parse_stdin(
            "# dlm_controld\nagent=fence_scsi\ndevices=\"/dev/mapper/a, iscsi://h/iqn.x:y/1\"\n\
             key-value=hash\noption=on\nport=n1\nplug=n2\naptpl=yes\nverbose=0\nnode=2\nfail_time=17\n",
        )
        .unwrap();
        assert_eq!(o.action, Action::On);
        assert_eq!(o.plug.as_deref(), Some("n2"), "the last occurrence wins");
        assert_eq!(o.devices, ["/dev/mapper/a", "iscsi://h/iqn.x:y/1"]);
        assert_eq!(o.key_value, KeyValue::Hash);
        assert!(o.aptpl && !o.verbose);
        assert_eq!(o.node, Some(2));
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        assert!(o.warnings[0].contains("agent=fence_scsi"));
        // nodename wins over port, as fence_scsi's workaround does.
        let o = parse_stdin("nodename=a\nport=b\naction=status\n").unwrap();
        assert_eq!((o.plug.as_deref(), o.action), (Some("a"), Action::Status));
        // The default action of a fabric agent is off.
        assert_eq!(parse_stdin("").unwrap().action, Action::Off);
        assert!(parse_stdin("aptpl=maybe").is_err());
        assert!(parse_stdin("action=dance").is_err());
        assert!(parse_stdin("action=reboot").is_err());
        assert!(parse_stdin("delay=x").is_err());
        assert!(parse_stdin("key_value=md5").is_err());
    }

    #[test]
    fn flags_as_getopt_reads_them() {
        let o = parse_args(&[
            "-o",
            "off",
            "-nnode2",
            "--devices=/dev/mapper/a,/dev/mapper/b",
            "-k",
            "0abc",
            "--key_value",
            "id",
            "--aptpl",
            "-v",
            "--delay",
            "3",
            "--logfile",
            "/tmp/l",
            "--store-path",
            "/tmp/s/fence_scsi",
            "--isid",
            "400000000001",
        ])
        .unwrap();
        assert_eq!(o.action, Action::Off);
        assert_eq!(o.plug.as_deref(), Some("node2"));
        assert_eq!(o.devices, ["/dev/mapper/a", "/dev/mapper/b"]);
        assert_eq!(o.key.as_deref(), Some("0abc"));
        assert!(o.aptpl && o.verbose);
        assert_eq!(o.delay, 3);
        assert_eq!(o.logfile, Some(PathBuf::from("/tmp/l")));
        assert_eq!(o.store_path, PathBuf::from("/tmp/s/fence_scsi"));
        assert_eq!(o.isid, [0x40, 0, 0, 0, 0, 1]);
        let o = parse_args(&["--action=metadata", "--plug", "x", "-h"]).unwrap();
        assert!(o.help && o.action == Action::Metadata);
        for bad in [
            &["-x"][..],
            &["--bogus"],
            &["-o"],
            &["off"],
            &["--aptpl=1"],
            &["-vx"],
            &["--isid", "12"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
    }
}
