//! dlm.conf as dlm_controld reads it (dlm.conf(5); dlm.md §2.9): `key=value` options,
//! the fencing blocks (`fence_all`/`unfence_all`, `device`/`connect`/`unfence`), the
//! lockspace blocks (`lockspace`/`master`) and `node id= mark=` lines.
//!
//! Where dlm_controld is silent about a mistake (it skips an unknown option, reads
//! `enable_fencing=yes` as 0, takes the first of two `connect` lines for a node), hydra
//! refuses the file with an [`Error::Config`] naming file, line, directive and what is
//! wrong; nothing of a bad file is used. A well-formed dlm.conf written for
//! dlm_controld loads unchanged. The differences a person may meet:
//! - `key = value` (spaces around `=`) is accepted, as dlm_controld's `%[^=]=%s` does.
//! - a `#` at the start of a line or after a blank starts a comment (dlm_controld only
//!   knows whole-line comments and ignores text after an option's value).
//! - a directive indented with blanks is refused: dlm_controld ignores such an option
//!   line and ends a fence section at it, so what the file means would be unclear.
//! - `connect`, `unfence` and `master` lines may come anywhere after the `device` or
//!   `lockspace` line they name; blank lines do not matter.
//! - `protocol=sctp` is refused: hydra speaks TCP only (`detect` means TCP).
//!
//! Options hydra keeps but does not act on are listed by [`Config::unused_settings`].

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::membership::NodeId;

/// Where dlm_controld reads its configuration (`CONF_FILE_PATH`).
pub const CONF_FILE_PATH: &str = "/etc/dlm/dlm.conf";

/// The agent dlm_controld runs when dlm.conf configures no fencing for a node: a proxy
/// to pacemaker's stonith (dlm_stonith(8)).
pub const DEFAULT_FENCE_AGENT: &str = "dlm_stonith";

/// The lowcomms protocol (`protocol=`). hydra speaks TCP; `sctp` is refused at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    /// dlm_controld's default: choose by the number of corosync rings. hydra uses TCP.
    Detect,
}

/// What is known about one dlm_controld option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionInfo {
    pub name: &'static str,
    /// `dlm_tool reload_config` may change it while the daemon runs (dlm.conf(5) "(*)").
    pub reloadable: bool,
    /// hydra acts on it; otherwise it is accepted, kept and shown, and has no effect.
    pub hydra_acts: bool,
    pub doc: &'static str,
}

/// One option value type: parsed from dlm.conf text and rendered back.
trait OptValue: Sized {
    fn parse_value(text: &str) -> Result<Self, String>;
    fn render(&self) -> String;
}

impl OptValue for bool {
    /// dlm_controld reads any integer and takes non-zero as 1, so `enable_fencing=yes`
    /// silently turns fencing off there; hydra takes 0 or 1 only.
    fn parse_value(text: &str) -> Result<Self, String> {
        match text {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(format!("'{text}' is not 0 or 1")),
        }
    }
    fn render(&self) -> String {
        u8::from(*self).to_string()
    }
}

impl OptValue for u32 {
    fn parse_value(text: &str) -> Result<Self, String> {
        parse_number(text)
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

/// u16 is used for `port` only: 1..=65535.
impl OptValue for u16 {
    fn parse_value(text: &str) -> Result<Self, String> {
        let n = parse_number(text)?;
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(format!("{n} is out of range 1..=65535")),
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl OptValue for Protocol {
    fn parse_value(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "detect" => Ok(Protocol::Detect),
            "sctp" => {
                Err("hydra speaks TCP only; sctp is not supported (use tcp or detect)".into())
            }
            _ => Err(format!("'{text}' is not tcp, sctp or detect")),
        }
    }
    fn render(&self) -> String {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Detect => "detect",
        }
        .into()
    }
}

/// A non-negative number: decimal, or hexadecimal with `0x` (dlm_controld reads `port`
/// and `mark` with `strtoul(.., 0)`). A leading 0 is refused: dlm_controld reads `010`
/// as 8 for some options and as 10 for others.
fn parse_number(text: &str) -> Result<u32, String> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("'{text}' is not a number"));
    }
    if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
        return Err(format!(
            "'{text}' has a leading 0 (write it in decimal or with 0x)"
        ));
    }
    u32::from_str_radix(digits, radix).map_err(|_| format!("{text} is out of range 0..=4294967295"))
}

/// Declares the options once: the struct, its defaults, the info table, set and get.
macro_rules! dlm_options {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr, reload: $reload:literal, hydra: $acts:literal; )+) => {
        /// dlm_controld's options with its defaults (dlmsrc main.c `set_opt_defaults`).
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Options {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Options {
            fn default() -> Self {
                Options { $( $name: $default, )+ }
            }
        }

        /// Every option in dlm_controld's order (the order of `dlm_tool dump_config`).
        pub const OPTIONS: &[OptionInfo] = &[
            $( OptionInfo {
                name: stringify!($name),
                reloadable: $reload,
                hydra_acts: $acts,
                doc: concat!($($doc),+),
            }, )+
        ];

        impl Options {
            /// Sets an option from its dlm.conf text; the error says what is wrong.
            pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
                match name {
                    $( stringify!($name) => {
                        self.$name = <$ty as OptValue>::parse_value(value)?;
                        Ok(())
                    } )+
                    _ => Err("unknown option".into()),
                }
            }

            /// An option's value as `dlm_tool dump_config` prints it.
            pub fn get(&self, name: &str) -> Option<String> {
                match name {
                    $( stringify!($name) => Some(OptValue::render(&self.$name)), )+
                    _ => None,
                }
            }
        }
    };
}

dlm_options! {
    /// Debug logging from the daemon (-D).
    daemon_debug: bool = false, reload: true, hydra: true;
    /// Do not fork (as `-f`).
    foreground: bool = false, reload: false, hydra: true;
    /// Debug logging from the lock core (the kernel dlm's log_debug, -K).
    log_debug: bool = false, reload: true, hydra: true;
    /// Deprecated lock-wait warnings (centiseconds); dropped from dlm_controld.
    timewarn: u32 = 0, reload: false, hydra: false;
    /// Lowcomms protocol (-r): tcp or detect (sctp is refused).
    protocol: Protocol = Protocol::Detect, reload: false, hydra: true;
    /// Lowcomms TCP port (-R).
    port: u16 = 21064, reload: false, hydra: true;
    /// Listen on every address instead of the local node's cluster address.
    bind_all: bool = false, reload: false, hydra: true;
    /// SO_MARK for lowcomms sockets when no `node id= mark=` line applies.
    mark: u32 = 0, reload: false, hydra: false;
    /// Write debugging to a log file (-L).
    debug_logfile: bool = false, reload: true, hydra: false;
    /// Legacy fs_controld support.
    enable_fscontrol: bool = false, reload: false, hydra: false;
    /// Cluster POSIX locks for GFS2/OCFS2 (-p).
    enable_plock: bool = true, reload: false, hydra: false;
    /// Debug logging of POSIX locks (-P).
    plock_debug: bool = false, reload: true, hydra: false;
    /// POSIX-lock operations per second, 0 for no limit (-l).
    plock_rate_limit: u32 = 0, reload: true, hydra: false;
    /// POSIX-lock ownership caching (-o).
    plock_ownership: bool = false, reload: false, hydra: false;
    /// POSIX-lock ownership: drop resources every this many milliseconds (-t).
    drop_resources_time: u32 = 10000, reload: true, hydra: false;
    /// POSIX-lock ownership: resources dropped at a time (-c).
    drop_resources_count: u32 = 10, reload: true, hydra: false;
    /// POSIX-lock ownership: drop resources unused this many milliseconds (-a).
    drop_resources_age: u32 = 10000, reload: true, hydra: false;
    /// Seconds to delay fencing after joining the cluster (-j).
    post_join_delay: u32 = 30, reload: true, hydra: true;
    /// Fence failed nodes before recovery (-f). 0 is unsafe with shared storage.
    enable_fencing: bool = true, reload: false, hydra: true;
    /// Run fence agents for several nodes at once.
    enable_concurrent_fencing: bool = false, reload: false, hydra: true;
    /// Fence nodes that have not joined within post_join_delay of startup (-s).
    enable_startup_fencing: bool = true, reload: false, hydra: true;
    /// Start over with the first fence actor when every actor has failed.
    repeat_failed_fencing: bool = true, reload: true, hydra: true;
    /// Fence only while the cluster is quorate (-q).
    enable_quorum_fencing: bool = true, reload: true, hydra: true;
    /// Recover lockspaces only while the cluster is quorate.
    enable_quorum_lockspace: bool = true, reload: true, hydra: true;
    /// A helper process for `dlm_tool run` commands.
    enable_helper: bool = true, reload: false, hydra: false;
}

/// key=value agent arguments, in file order.
pub type Args = Vec<(String, String)>;

/// `fence_all <agent> [args]`, optionally followed by `unfence_all`: one agent for every
/// node, no per-node arguments (the agent gets `node=<id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceAll {
    pub agent: String,
    pub args: Args,
    pub unfence: bool,
}

/// `device <name> <agent> [args]` with its `connect` lines and `unfence <name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// `base` or `base:suffix`; devices with one base are parallel (all must succeed).
    pub name: String,
    pub agent: String,
    pub args: Args,
    pub connects: Vec<Connect>,
    /// Nodes connected to this device unfence themselves with it at startup.
    pub unfence: bool,
}

impl Device {
    /// The part before `:`; devices named `base:1`, `base:2` form one parallel step.
    pub fn base_name(&self) -> &str {
        base_name(&self.name)
    }

    pub fn is_parallel(&self) -> bool {
        self.name.contains(':')
    }

    pub fn connect(&self, node: NodeId) -> Option<&Connect> {
        self.connects.iter().find(|c| c.node == node)
    }
}

fn base_name(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// `connect <device> node=<id> [args]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub node: NodeId,
    /// Every argument as written, `node=<id>` included (dlm_controld passes it on).
    pub args: Args,
}

/// `lockspace <name> [nodir=1]` with its `master` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockspaceConf {
    pub name: String,
    /// No resource directory: the master is chosen by hashing the resource name.
    pub nodir: bool,
    pub masters: Vec<Master>,
}

impl LockspaceConf {
    /// A node's mastering weight (dlmsrc config.c `get_weight`): 1 for everyone when no
    /// masters are listed, else the listed weight, and 0 for nodes not listed.
    pub fn weight(&self, node: NodeId) -> u32 {
        if self.masters.is_empty() {
            return 1;
        }
        self.masters
            .iter()
            .find(|m| m.node == node)
            .map_or(0, |m| m.weight)
    }
}

/// `master <lockspace> node=<id> [weight=W]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    pub node: NodeId,
    pub weight: u32,
}

/// `node id=<id> mark=<mark>`: SO_MARK for connections to that node. Kept; hydra does
/// not set socket marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConf {
    pub id: NodeId,
    pub mark: u32,
}

/// One agent run: the device it comes from, the agent and its arguments (device
/// arguments, then the node's connect arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCall {
    /// The device name, or `fence_all`.
    pub device: String,
    pub agent: String,
    pub args: Args,
}

/// How to fence one node: steps in priority order. The agents of one step run in
/// parallel and must all succeed; the first step that succeeds fences the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencePlan {
    pub steps: Vec<Vec<AgentCall>>,
    /// Nothing in dlm.conf fences this node, so the plan is dlm_controld's default
    /// `fence_all dlm_stonith`.
    pub is_default: bool,
}

/// A parsed dlm.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub options: Options,
    /// Options the file sets (shown as `(dlm.conf)` by [`Config::dump_config`]).
    pub from_file: BTreeSet<&'static str>,
    pub fence_all: Option<FenceAll>,
    /// In file order, which is the fencing priority order.
    pub devices: Vec<Device>,
    pub lockspaces: Vec<LockspaceConf>,
    pub nodes: Vec<NodeConf>,
}

impl Config {
    /// Reads a dlm.conf. A missing file is the default configuration, as for
    /// dlm_controld; an unreadable one is an error.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        match std::fs::read(path) {
            Ok(bytes) => Config::parse_bytes(path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Parses dlm.conf text; `file` names it in errors. The first bad line is the error
    /// and nothing of the file is used.
    pub fn parse(file: &Path, text: &str) -> Result<Config> {
        Config::parse_bytes(file, text.as_bytes())
    }

    /// Like [`Config::parse`], for bytes that may not be UTF-8 (the bad line is named).
    pub fn parse_bytes(file: &Path, bytes: &[u8]) -> Result<Config> {
        let mut p = Parser::new(file);
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line =
                std::str::from_utf8(line).map_err(|_| p.err(i + 1, "", "line is not UTF-8"))?;
            p.line(i + 1, line)?;
        }
        Ok(p.cfg)
    }

    /// Which agents fence `node`, in priority order (dlmsrc fence_config.c): the
    /// `fence_all` agent if there is one; else each device with a `connect` line for the
    /// node, in file order, consecutive `base:N` devices forming one parallel step; else
    /// dlm_controld's default `fence_all dlm_stonith`.
    pub fn fence_plan(&self, node: NodeId) -> FencePlan {
        if let Some(fa) = &self.fence_all {
            let call = AgentCall {
                device: "fence_all".into(),
                agent: fa.agent.clone(),
                args: fa.args.clone(),
            };
            return FencePlan {
                steps: vec![vec![call]],
                is_default: false,
            };
        }
        let mut steps: Vec<Vec<AgentCall>> = Vec::new();
        let mut last_base: Option<&str> = None;
        for dev in &self.devices {
            let Some(con) = dev.connect(node) else {
                continue;
            };
            let call = device_call(dev, con);
            let joins = dev.is_parallel() && last_base == Some(dev.base_name());
            match steps.last_mut() {
                Some(step) if joins => step.push(call),
                _ => steps.push(vec![call]),
            }
            last_base = dev.is_parallel().then(|| dev.base_name());
        }
        if steps.is_empty() {
            let call = AgentCall {
                device: "fence_all".into(),
                agent: DEFAULT_FENCE_AGENT.into(),
                args: Vec::new(),
            };
            return FencePlan {
                steps: vec![vec![call]],
                is_default: true,
            };
        }
        FencePlan {
            steps,
            is_default: false,
        }
    }

    /// The agents `node` runs with `action=on` for itself at startup (`unfence_all`, or
    /// `unfence <dev>` for each device it is connected to), in order; all must succeed.
    pub fn unfence_plan(&self, node: NodeId) -> Vec<AgentCall> {
        if let Some(fa) = &self.fence_all {
            if !fa.unfence {
                return Vec::new();
            }
            return vec![AgentCall {
                device: "fence_all".into(),
                agent: fa.agent.clone(),
                args: fa.args.clone(),
            }];
        }
        self.devices
            .iter()
            .filter(|d| d.unfence)
            .filter_map(|d| d.connect(node).map(|c| device_call(d, c)))
            .collect()
    }

    pub fn lockspace(&self, name: &str) -> Option<&LockspaceConf> {
        self.lockspaces.iter().find(|l| l.name == name)
    }

    /// SO_MARK for connections to `node`: its `node` line, else the `mark` option.
    pub fn node_mark(&self, node: NodeId) -> u32 {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .map_or(self.options.mark, |n| n.mark)
    }

    /// Options the file sets that hydra keeps but does not act on (for a startup warning).
    pub fn unused_settings(&self) -> Vec<&'static str> {
        OPTIONS
            .iter()
            .filter(|o| !o.hydra_acts && self.from_file.contains(o.name))
            .map(|o| o.name)
            .collect()
    }

    /// `dlm_tool dump_config`: every option as `key=value`, in dlm_controld's order, with
    /// ` (dlm.conf)` after the ones the file sets (dlm_tool(8)).
    pub fn dump_config(&self) -> String {
        let mut out = String::new();
        for o in OPTIONS {
            let value = self.options.get(o.name).unwrap_or_default();
            let from = if self.from_file.contains(o.name) {
                " (dlm.conf)"
            } else {
                ""
            };
            let _ = writeln!(out, "{}={}{}", o.name, value, from);
        }
        out
    }

    /// This configuration as dlm.conf text that parses back to an equal `Config`: the
    /// options the file set, then the fencing, lockspace and node blocks.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for o in OPTIONS.iter().filter(|o| self.from_file.contains(o.name)) {
            let _ = writeln!(
                out,
                "{}={}",
                o.name,
                self.options.get(o.name).unwrap_or_default()
            );
        }
        if let Some(fa) = &self.fence_all {
            let _ = writeln!(out, "\nfence_all {}{}", fa.agent, render_args(&fa.args));
            if fa.unfence {
                out.push_str("unfence_all\n");
            }
        }
        for d in &self.devices {
            let _ = writeln!(
                out,
                "\ndevice {} {}{}",
                d.name,
                d.agent,
                render_args(&d.args)
            );
            for c in &d.connects {
                let _ = writeln!(out, "connect {}{}", d.name, render_args(&c.args));
            }
            if d.unfence {
                let _ = writeln!(out, "unfence {}", d.name);
            }
        }
        for l in &self.lockspaces {
            let _ = writeln!(
                out,
                "\nlockspace {}{}",
                l.name,
                if l.nodir { " nodir=1" } else { "" }
            );
            for m in &l.masters {
                let _ = writeln!(out, "master {} node={} weight={}", l.name, m.node, m.weight);
            }
        }
        if !self.nodes.is_empty() {
            out.push('\n');
        }
        for n in &self.nodes {
            let _ = writeln!(out, "node id={} mark={}", n.id, n.mark);
        }
        out
    }
}

fn device_call(dev: &Device, con: &Connect) -> AgentCall {
    let mut args = dev.args.clone();
    args.extend(con.args.iter().cloned());
    AgentCall {
        device: dev.name.clone(),
        agent: dev.agent.clone(),
        args,
    }
}

fn render_args(args: &Args) -> String {
    args.iter().map(|(k, v)| format!(" {k}={v}")).collect()
}

const BLOCK_KEYWORDS: &[&str] = &[
    "fence_all",
    "unfence_all",
    "device",
    "connect",
    "unfence",
    "lockspace",
    "master",
    "node",
];

/// Parse state: the config being built and where each thing was first given, for
/// "already ... on line N" errors.
struct Parser<'a> {
    file: &'a Path,
    cfg: Config,
    option_lines: HashMap<&'static str, usize>,
    fence_all_line: usize,
    first_device_line: usize,
    device_lines: HashMap<String, usize>,
    connect_lines: HashMap<(String, NodeId), usize>,
    lockspace_lines: HashMap<String, usize>,
    master_lines: HashMap<(String, NodeId), usize>,
    node_lines: HashMap<NodeId, usize>,
}

impl<'a> Parser<'a> {
    fn new(file: &'a Path) -> Self {
        Parser {
            file,
            cfg: Config::default(),
            option_lines: HashMap::new(),
            fence_all_line: 0,
            first_device_line: 0,
            device_lines: HashMap::new(),
            connect_lines: HashMap::new(),
            lockspace_lines: HashMap::new(),
            master_lines: HashMap::new(),
            node_lines: HashMap::new(),
        }
    }

    fn err(&self, line: usize, directive: &str, detail: impl Into<String>) -> Error {
        Error::Config {
            file: PathBuf::from(self.file),
            line,
            directive: directive.into(),
            detail: detail.into(),
        }
    }

    fn line(&mut self, n: usize, raw: &str) -> Result<()> {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let text = strip_comment(raw);
        if text.trim().is_empty() {
            return Ok(());
        }
        if text.starts_with(char::is_whitespace) {
            let word = text.split_whitespace().next().unwrap_or_default();
            return Err(self.err(
                n,
                option_name(word),
                "line starts with blanks (dlm_controld ignores such lines); remove the indentation",
            ));
        }
        let mut words = text.split_whitespace();
        let keyword = words.next().unwrap_or_default();
        if BLOCK_KEYWORDS.contains(&keyword) {
            let args: Vec<&str> = words.collect();
            return self.block(n, keyword, &args);
        }
        self.option(n, text)
    }

    /// `name=value`, `name = value`: dlm_controld takes the name up to a blank or `=`
    /// (`set_opt_file`) and the value with `sscanf("%[^=]=%s")`, which skips blanks.
    fn option(&mut self, n: usize, text: &str) -> Result<()> {
        let name = option_name(text);
        let Some(info) = OPTIONS.iter().find(|o| o.name == name) else {
            let detail = if text.contains('=') {
                "unknown option"
            } else {
                "unknown directive"
            };
            return Err(self.err(n, name, detail));
        };
        let rest = text[name.len()..].trim_start();
        let Some(value_part) = rest.strip_prefix('=') else {
            return Err(self.err(n, name, format!("expected {name}=<value>")));
        };
        let mut values = value_part.split_whitespace();
        let Some(value) = values.next() else {
            return Err(self.err(n, name, "missing value"));
        };
        if let Some(extra) = values.next() {
            return Err(self.err(n, name, format!("unexpected '{extra}' after the value")));
        }
        if let Some(first) = self.option_lines.get(info.name) {
            return Err(self.err(n, name, format!("already set on line {first}")));
        }
        self.cfg
            .options
            .set(info.name, value)
            .map_err(|d| self.err(n, name, d))?;
        self.option_lines.insert(info.name, n);
        self.cfg.from_file.insert(info.name);
        Ok(())
    }

    fn block(&mut self, n: usize, keyword: &str, words: &[&str]) -> Result<()> {
        match keyword {
            "fence_all" => self.fence_all(n, words),
            "unfence_all" => self.unfence_all(n, words),
            "device" => self.device(n, words),
            "connect" => self.connect(n, words),
            "unfence" => self.unfence(n, words),
            "lockspace" => self.lockspace(n, words),
            "master" => self.master(n, words),
            _ => self.node(n, words),
        }
    }

    fn fence_all(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "fence_all";
        if self.fence_all_line != 0 {
            return Err(self.err(
                n,
                D,
                format!("already given on line {}", self.fence_all_line),
            ));
        }
        if self.first_device_line != 0 {
            let detail = format!(
                "cannot be combined with device lines (line {})",
                self.first_device_line
            );
            return Err(self.err(n, D, detail));
        }
        let agent = match words.first() {
            Some(a) if !a.contains('=') => *a,
            _ => return Err(self.err(n, D, "expected: fence_all <agent> [key=value ...]")),
        };
        let args = self.fence_args(n, D, &words[1..], false)?;
        self.cfg.fence_all = Some(FenceAll {
            agent: agent.into(),
            args,
            unfence: false,
        });
        self.fence_all_line = n;
        Ok(())
    }

    fn unfence_all(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "unfence_all";
        if !words.is_empty() {
            return Err(self.err(n, D, "takes no arguments"));
        }
        match &mut self.cfg.fence_all {
            Some(fa) => {
                fa.unfence = true;
                Ok(())
            }
            None => Err(self.err(n, D, "needs a fence_all line before it")),
        }
    }

    fn device(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "device";
        let (name, agent) = match words {
            [name, agent, ..] if !name.contains('=') && !agent.contains('=') => (*name, *agent),
            _ => return Err(self.err(n, D, "expected: device <name> <agent> [key=value ...]")),
        };
        if self.fence_all_line != 0 {
            let detail = format!(
                "cannot be combined with fence_all (line {})",
                self.fence_all_line
            );
            return Err(self.err(n, D, detail));
        }
        if let Some(first) = self.device_lines.get(name) {
            return Err(self.err(
                n,
                D,
                format!("device {name} already defined on line {first}"),
            ));
        }
        if name.contains(':') {
            let (base, suffix) = name.split_once(':').unwrap_or((name, ""));
            if base.is_empty() || suffix.is_empty() {
                return Err(self.err(
                    n,
                    D,
                    format!("parallel device name '{name}' is not <base>:<suffix>"),
                ));
            }
            // dlm_controld groups consecutive devices with one base; a member placed
            // after another device would silently become a step of its own.
            let prev = self.cfg.devices.last();
            let follows = prev.is_some_and(|p| p.is_parallel() && p.base_name() == base);
            let earlier = self
                .cfg
                .devices
                .iter()
                .find(|d| d.is_parallel() && d.base_name() == base);
            if let (Some(e), false) = (earlier, follows) {
                let detail = format!(
                    "parallel device {name} must come right after {} (line {})",
                    e.name, self.device_lines[&e.name]
                );
                return Err(self.err(n, D, detail));
            }
        }
        let args = self.fence_args(n, D, &words[2..], false)?;
        self.cfg.devices.push(Device {
            name: name.into(),
            agent: agent.into(),
            args,
            connects: Vec::new(),
            unfence: false,
        });
        self.device_lines.insert(name.into(), n);
        if self.first_device_line == 0 {
            self.first_device_line = n;
        }
        Ok(())
    }

    fn connect(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "connect";
        let name = match words.first() {
            Some(name) if !name.contains('=') => *name,
            _ => {
                return Err(self.err(
                    n,
                    D,
                    "expected: connect <device> node=<nodeid> [key=value ...]",
                ))
            }
        };
        let Some(di) = self.cfg.devices.iter().position(|d| d.name == name) else {
            return Err(self.err(
                n,
                D,
                format!("no device {name} (a device line must come first)"),
            ));
        };
        let args = self.fence_args(n, D, &words[1..], true)?;
        let mut nodes = args.iter().filter(|(k, _)| k == "node");
        let node = match (nodes.next(), nodes.next()) {
            (Some((_, v)), None) => self.node_id(n, D, "node", v)?,
            (None, _) => return Err(self.err(n, D, "missing node=<nodeid>")),
            (Some(_), Some(_)) => return Err(self.err(n, D, "node= given twice")),
        };
        let key = (name.to_string(), node);
        if let Some(first) = self.connect_lines.get(&key) {
            return Err(self.err(
                n,
                D,
                format!("node {node} already connected to {name} on line {first}"),
            ));
        }
        self.cfg.devices[di].connects.push(Connect { node, args });
        self.connect_lines.insert(key, n);
        Ok(())
    }

    fn unfence(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "unfence";
        let [name] = words else {
            return Err(self.err(n, D, "expected: unfence <device>"));
        };
        match self.cfg.devices.iter_mut().find(|d| d.name == *name) {
            Some(d) => {
                d.unfence = true;
                Ok(())
            }
            None => Err(self.err(
                n,
                D,
                format!("no device {name} (a device line must come first)"),
            )),
        }
    }

    /// Agent arguments: `key=value` words. `node=` only on connect lines (anywhere else
    /// the agent would fence that one node for every victim), and an `action=` must
    /// still fence (a device line with `action=on` would "fence" by powering on).
    fn fence_args(
        &self,
        n: usize,
        directive: &str,
        words: &[&str],
        node_allowed: bool,
    ) -> Result<Args> {
        let mut args = Args::new();
        for w in words {
            let Some((k, v)) = w.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(self.err(n, directive, format!("argument '{w}' is not key=value")));
            };
            if k == "node" && !node_allowed {
                return Err(self.err(
                    n,
                    directive,
                    "node= belongs on connect lines (the victim's id is passed to the agent)",
                ));
            }
            if (k == "action" || k == "option") && v != "off" && v != "reboot" {
                return Err(self.err(
                    n,
                    directive,
                    format!("{k}={v} does not fence (use off or reboot)"),
                ));
            }
            args.push((k.to_string(), v.to_string()));
        }
        Ok(args)
    }

    fn node_id(&self, n: usize, directive: &str, key: &str, value: &str) -> Result<NodeId> {
        match value.parse::<NodeId>() {
            Ok(id) if id != 0 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
            _ => Err(self.err(
                n,
                directive,
                format!("{key}={value} is not a node id (1..=4294967295)"),
            )),
        }
    }

    fn lockspace(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "lockspace";
        let name = match words.first() {
            Some(name) if !name.contains('=') => *name,
            _ => return Err(self.err(n, D, "expected: lockspace <name> [nodir=1]")),
        };
        if let Some(first) = self.lockspace_lines.get(name) {
            return Err(self.err(
                n,
                D,
                format!("lockspace {name} already defined on line {first}"),
            ));
        }
        let mut nodir = false;
        for w in &words[1..] {
            match w.split_once('=') {
                Some(("nodir", v)) => {
                    nodir =
                        bool::parse_value(v).map_err(|d| self.err(n, D, format!("nodir: {d}")))?
                }
                _ => {
                    return Err(self.err(n, D, format!("unknown argument '{w}' (only nodir=0|1)")))
                }
            }
        }
        self.cfg.lockspaces.push(LockspaceConf {
            name: name.into(),
            nodir,
            masters: Vec::new(),
        });
        self.lockspace_lines.insert(name.into(), n);
        Ok(())
    }

    fn master(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "master";
        let name = match words.first() {
            Some(name) if !name.contains('=') => *name,
            _ => {
                return Err(self.err(
                    n,
                    D,
                    "expected: master <lockspace> node=<nodeid> [weight=W]",
                ))
            }
        };
        let Some(li) = self.cfg.lockspaces.iter().position(|l| l.name == name) else {
            return Err(self.err(
                n,
                D,
                format!("no lockspace {name} (a lockspace line must come first)"),
            ));
        };
        let (mut node, mut weight) = (None, 1);
        for w in &words[1..] {
            match w.split_once('=') {
                Some(("node", v)) if node.is_none() => node = Some(self.node_id(n, D, "node", v)?),
                Some(("weight", v)) => {
                    weight = parse_number(v).map_err(|d| self.err(n, D, format!("weight: {d}")))?
                }
                _ => {
                    return Err(self.err(
                        n,
                        D,
                        format!("unknown argument '{w}' (node=<nodeid> weight=W)"),
                    ))
                }
            }
        }
        let Some(node) = node else {
            return Err(self.err(n, D, "missing node=<nodeid>"));
        };
        let key = (name.to_string(), node);
        if let Some(first) = self.master_lines.get(&key) {
            return Err(self.err(
                n,
                D,
                format!("node {node} already a master of {name} on line {first}"),
            ));
        }
        self.cfg.lockspaces[li]
            .masters
            .push(Master { node, weight });
        self.master_lines.insert(key, n);
        Ok(())
    }

    fn node(&mut self, n: usize, words: &[&str]) -> Result<()> {
        const D: &str = "node";
        let (mut id, mut mark) = (None, None);
        for w in words {
            match w.split_once('=') {
                Some(("id", v)) if id.is_none() => id = Some(self.node_id(n, D, "id", v)?),
                Some(("mark", v)) if mark.is_none() => {
                    mark = Some(parse_number(v).map_err(|d| self.err(n, D, format!("mark: {d}")))?)
                }
                _ => {
                    return Err(self.err(
                        n,
                        D,
                        format!("unknown argument '{w}' (id=<nodeid> mark=<mark>)"),
                    ))
                }
            }
        }
        let (Some(id), Some(mark)) = (id, mark) else {
            return Err(self.err(n, D, "expected: node id=<nodeid> mark=<mark>"));
        };
        if let Some(first) = self.node_lines.get(&id) {
            return Err(self.err(
                n,
                D,
                format!("node {id} already configured on line {first}"),
            ));
        }
        self.cfg.nodes.push(NodeConf { id, mark });
        self.node_lines.insert(id, n);
        Ok(())
    }
}

/// The option name at the start of `text`: up to a blank or `=`.
fn option_name(text: &str) -> &str {
    let end = text
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(text.len());
    &text[..end]
}

/// Cuts a comment: `#` at the start of the line or after a blank. A `#` inside a word
/// (`passwd=a#b`) is part of it.
fn strip_comment(line: &str) -> &str {
    let mut prev_blank = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_blank {
            return &line[..i];
        }
        prev_blank = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/dlm/dlm.conf";

    fn parse(text: &str) -> Config {
        Config::parse(Path::new(FILE), text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The whole error message, `file:line: directive: detail`.
    fn error(text: &str) -> String {
        match Config::parse(Path::new(FILE), text) {
            Ok(c) => panic!("parsed: {c:?}"),
            Err(e) => {
                assert!(matches!(e, Error::Config { .. }), "{e:?}");
                e.to_string()
            }
        }
    }

    fn args(list: &[(&str, &str)]) -> Args {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn call(device: &str, agent: &str, a: &[(&str, &str)]) -> AgentCall {
        AgentCall {
            device: device.into(),
            agent: agent.into(),
            args: args(a),
        }
    }

    fn round_trip(c: &Config) {
        let text = c.render();
        assert_eq!(&parse(&text), c, "rendered:\n{text}");
    }

    #[test]
    fn defaults_are_dlm_controlds() {
        let c = parse("");
        let o = &c.options;
        assert_eq!(c, Config::default());
        assert!(!o.daemon_debug && !o.log_debug && !o.bind_all);
        assert_eq!(o.protocol, Protocol::Detect);
        assert_eq!(o.port, 21064);
        assert_eq!(o.post_join_delay, 30);
        assert!(o.enable_fencing && !o.enable_concurrent_fencing && o.enable_startup_fencing);
        assert!(o.repeat_failed_fencing && o.enable_quorum_fencing && o.enable_quorum_lockspace);
        assert!(o.enable_plock && o.enable_helper && !o.plock_ownership);
        assert_eq!(
            (
                o.drop_resources_time,
                o.drop_resources_count,
                o.drop_resources_age
            ),
            (10000, 10, 10000)
        );
        assert!(c.from_file.is_empty() && c.devices.is_empty() && c.fence_all.is_none());
    }

    #[test]
    fn every_option_is_accepted_and_kept() {
        let text = "daemon_debug=1\nforeground=1\nlog_debug=1\ntimewarn=500\nprotocol=tcp\nport=21065\n\
                    bind_all=1\nmark=0x2a\ndebug_logfile=1\nenable_fscontrol=1\nenable_plock=0\nplock_debug=1\n\
                    plock_rate_limit=100\nplock_ownership=1\ndrop_resources_time=500\ndrop_resources_count=5\n\
                    drop_resources_age=700\npost_join_delay=10\nenable_fencing=0\nenable_concurrent_fencing=1\n\
                    enable_startup_fencing=0\nrepeat_failed_fencing=0\nenable_quorum_fencing=0\n\
                    enable_quorum_lockspace=0\nenable_helper=0\n";
        let c = parse(text);
        let o = &c.options;
        assert!(o.daemon_debug && o.foreground && o.log_debug && o.bind_all && o.debug_logfile);
        assert_eq!(
            (o.timewarn, o.protocol, o.port, o.mark),
            (500, Protocol::Tcp, 21065, 42)
        );
        assert!(o.enable_fscontrol && !o.enable_plock && o.plock_debug && o.plock_ownership);
        assert_eq!(
            (
                o.plock_rate_limit,
                o.drop_resources_time,
                o.drop_resources_count
            ),
            (100, 500, 5)
        );
        assert_eq!((o.drop_resources_age, o.post_join_delay), (700, 10));
        assert!(!o.enable_fencing && o.enable_concurrent_fencing && !o.enable_startup_fencing);
        assert!(!o.repeat_failed_fencing && !o.enable_quorum_fencing && !o.enable_quorum_lockspace);
        assert!(!o.enable_helper);
        assert_eq!(c.from_file.len(), OPTIONS.len());
        assert_eq!(
            c.unused_settings(),
            [
                "timewarn",
                "mark",
                "debug_logfile",
                "enable_fscontrol",
                "enable_plock",
                "plock_debug",
                "plock_rate_limit",
                "plock_ownership",
                "drop_resources_time",
                "drop_resources_count",
                "drop_resources_age",
                "enable_helper"
            ]
        );
        round_trip(&c);
    }

    #[test]
    fn spaces_around_equals_comments_and_crlf() {
        // dlm_controld: the name ends at a blank or '=', and sscanf("%[^=]=%s") skips
        // blanks before the value.
        let c = parse("# dlm.conf\n\npost_join_delay = 12\nport= 21070\r\nlog_debug =1 # kernel debug\n   \n  # indented comment\n");
        assert_eq!(c.options.post_join_delay, 12);
        assert_eq!(c.options.port, 21070);
        assert!(c.options.log_debug);
        assert_eq!(
            c.from_file,
            ["log_debug", "port", "post_join_delay"]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn protocol_detect_means_tcp_and_sctp_is_refused() {
        assert_eq!(
            parse("protocol=detect\n").options.protocol,
            Protocol::Detect
        );
        assert_eq!(parse("protocol=TCP\n").options.protocol, Protocol::Tcp);
        assert_eq!(
            error("protocol=sctp\n"),
            "/etc/dlm/dlm.conf:1: protocol: hydra speaks TCP only; sctp is not supported (use tcp or detect)"
        );
        assert_eq!(
            error("protocol=udp\n"),
            "/etc/dlm/dlm.conf:1: protocol: 'udp' is not tcp, sctp or detect"
        );
    }

    #[test]
    fn option_errors_name_file_line_directive() {
        assert_eq!(
            error("log_debug=1\nbogus=1\n"),
            "/etc/dlm/dlm.conf:2: bogus: unknown option"
        );
        assert_eq!(
            error("\nfrobnicate\n"),
            "/etc/dlm/dlm.conf:2: frobnicate: unknown directive"
        );
        assert_eq!(
            error("port 21064\n"),
            "/etc/dlm/dlm.conf:1: port: expected port=<value>"
        );
        assert_eq!(error("port=\n"), "/etc/dlm/dlm.conf:1: port: missing value");
        assert_eq!(
            error("port=21064 21065\n"),
            "/etc/dlm/dlm.conf:1: port: unexpected '21065' after the value"
        );
        assert_eq!(
            error("post_join_delay=ten\n"),
            "/etc/dlm/dlm.conf:1: post_join_delay: 'ten' is not a number"
        );
        assert_eq!(
            error("post_join_delay=-1\n"),
            "/etc/dlm/dlm.conf:1: post_join_delay: '-1' is not a number"
        );
        assert_eq!(
            error("post_join_delay=010\n"),
            "/etc/dlm/dlm.conf:1: post_join_delay: '010' has a leading 0 (write it in decimal or with 0x)"
        );
        assert_eq!(
            error("port=0\n"),
            "/etc/dlm/dlm.conf:1: port: 0 is out of range 1..=65535"
        );
        assert_eq!(
            error("port=70000\n"),
            "/etc/dlm/dlm.conf:1: port: 70000 is out of range 1..=65535"
        );
        assert_eq!(
            error("plock_rate_limit=4294967296\n"),
            "/etc/dlm/dlm.conf:1: plock_rate_limit: 4294967296 is out of range 0..=4294967295"
        );
        assert_eq!(
            error("enable_fencing=yes\n"),
            "/etc/dlm/dlm.conf:1: enable_fencing: 'yes' is not 0 or 1"
        );
        assert_eq!(
            error("enable_fencing=2\n"),
            "/etc/dlm/dlm.conf:1: enable_fencing: '2' is not 0 or 1"
        );
        assert_eq!(
            error("log_debug=1\nlog_debug=0\n"),
            "/etc/dlm/dlm.conf:2: log_debug: already set on line 1"
        );
        assert_eq!(
            error("log_debug=1\n  port=1\n"),
            "/etc/dlm/dlm.conf:2: port: line starts with blanks (dlm_controld ignores such lines); remove the indentation"
        );
        let bad = Config::parse_bytes(Path::new(FILE), b"port=1\nmark=\xff\n").unwrap_err();
        assert_eq!(bad.to_string(), "/etc/dlm/dlm.conf:2: : line is not UTF-8");
    }

    #[test]
    fn fence_all_applies_to_every_node() {
        let c = parse("fence_all dlm_stonith\nunfence_all\n");
        assert_eq!(
            c.fence_all,
            Some(FenceAll {
                agent: "dlm_stonith".into(),
                args: vec![],
                unfence: true
            })
        );
        for node in [1, 7] {
            let plan = c.fence_plan(node);
            assert_eq!(
                plan.steps,
                vec![vec![call("fence_all", "dlm_stonith", &[])]]
            );
            assert!(!plan.is_default);
            assert_eq!(
                c.unfence_plan(node),
                vec![call("fence_all", "dlm_stonith", &[])]
            );
        }
        let c = parse("fence_all fence_test log=/tmp/l fail=0\n");
        assert_eq!(
            c.fence_plan(3).steps,
            vec![vec![call(
                "fence_all",
                "fence_test",
                &[("log", "/tmp/l"), ("fail", "0")]
            )]]
        );
        assert!(c.unfence_plan(3).is_empty());
        round_trip(&c);
    }

    #[test]
    fn no_fence_config_is_the_dlm_stonith_default() {
        let c = parse("device foo fence_foo\nconnect foo node=1 port=1\n");
        let plan = c.fence_plan(2);
        assert!(plan.is_default);
        assert_eq!(
            plan.steps,
            vec![vec![call("fence_all", "dlm_stonith", &[])]]
        );
        assert!(c.unfence_plan(2).is_empty());
    }

    #[test]
    fn devices_in_priority_order_with_connect_args() {
        // dlm.conf(5)'s example: two devices, tried in file order.
        let text = "device  foo fence_foo ipaddr=1.1.1.1 login=x password=y\n\
                    connect foo node=1 port=1\nconnect foo node=2 port=2\nconnect foo node=3 port=3\n\n\
                    device  bar fence_bar ipaddr=2.2.2.2 login=x password=y\n\
                    connect bar node=1 port=1\nconnect bar node=2 port=2\nconnect bar node=3 port=3\n";
        let c = parse(text);
        assert_eq!(c.devices.len(), 2);
        let plan = c.fence_plan(2);
        assert!(!plan.is_default);
        let dev = |n: &str, agent: &str, ip: &str| {
            vec![call(
                n,
                agent,
                &[
                    ("ipaddr", ip),
                    ("login", "x"),
                    ("password", "y"),
                    ("node", "2"),
                    ("port", "2"),
                ],
            )]
        };
        assert_eq!(
            plan.steps,
            vec![
                dev("foo", "fence_foo", "1.1.1.1"),
                dev("bar", "fence_bar", "2.2.2.2")
            ]
        );
        round_trip(&c);
    }

    #[test]
    fn parallel_devices_form_one_step() {
        let text = "device foo:1 fence_apc ipaddr=1.1.1.1\nconnect foo:1 node=1 port=1\nconnect foo:1 node=2 port=2\n\n\
                    device foo:2 fence_apc ipaddr=5.5.5.5\nconnect foo:2 node=1 port=1\nconnect foo:2 node=2 port=2\n\n\
                    device bar fence_scsi devices=/dev/sdb\nconnect bar node=1\nconnect bar node=2\n";
        let c = parse(text);
        assert_eq!(c.devices[0].base_name(), "foo");
        assert!(c.devices[1].is_parallel() && !c.devices[2].is_parallel());
        let plan = c.fence_plan(1);
        assert_eq!(
            plan.steps,
            vec![
                vec![
                    call(
                        "foo:1",
                        "fence_apc",
                        &[("ipaddr", "1.1.1.1"), ("node", "1"), ("port", "1")]
                    ),
                    call(
                        "foo:2",
                        "fence_apc",
                        &[("ipaddr", "5.5.5.5"), ("node", "1"), ("port", "1")]
                    ),
                ],
                vec![call(
                    "bar",
                    "fence_scsi",
                    &[("devices", "/dev/sdb"), ("node", "1")]
                )],
            ]
        );
        round_trip(&c);
    }

    #[test]
    fn connect_and_unfence_may_come_later() {
        let c = parse("device a fence_a\ndevice b fence_b\nconnect a node=1\nconnect b node=1\nconnect b node=2\nunfence b\n");
        assert_eq!(c.devices[0].connects.len(), 1);
        assert_eq!(c.devices[1].connects.len(), 2);
        assert!(!c.devices[0].unfence && c.devices[1].unfence);
        assert_eq!(
            c.unfence_plan(1),
            vec![call("b", "fence_b", &[("node", "1")])]
        );
        assert_eq!(
            c.unfence_plan(2),
            vec![call("b", "fence_b", &[("node", "2")])]
        );
        assert!(c.unfence_plan(3).is_empty());
        assert_eq!(
            c.fence_plan(2).steps,
            vec![vec![call("b", "fence_b", &[("node", "2")])]]
        );
        round_trip(&c);
    }

    #[test]
    fn fencing_errors() {
        let e = |t| error(t);
        assert_eq!(
            e("device foo fence_foo\nconnect bar node=1\n"),
            "/etc/dlm/dlm.conf:2: connect: no device bar (a device line must come first)"
        );
        assert_eq!(
            e("device foo fence_foo\n\ndevice foo fence_bar\n"),
            "/etc/dlm/dlm.conf:3: device: device foo already defined on line 1"
        );
        assert_eq!(
            e("device foo fence_foo\nconnect foo node=1\nconnect foo node=1 port=2\n"),
            "/etc/dlm/dlm.conf:3: connect: node 1 already connected to foo on line 2"
        );
        assert_eq!(
            e("device foo fence_foo\nconnect foo port=1\n"),
            "/etc/dlm/dlm.conf:2: connect: missing node=<nodeid>"
        );
        assert_eq!(
            e("device foo fence_foo\nconnect foo node=x\n"),
            "/etc/dlm/dlm.conf:2: connect: node=x is not a node id (1..=4294967295)"
        );
        assert_eq!(
            e("device foo fence_foo\nconnect foo node=0\n"),
            "/etc/dlm/dlm.conf:2: connect: node=0 is not a node id (1..=4294967295)"
        );
        assert_eq!(
            e("device foo fence_foo\nconnect foo node=1 node=2\n"),
            "/etc/dlm/dlm.conf:2: connect: node= given twice"
        );
        assert_eq!(
            e("device foo fence_foo\nconnect foo node=1 port\n"),
            "/etc/dlm/dlm.conf:2: connect: argument 'port' is not key=value"
        );
        assert_eq!(e("connect\n"), "/etc/dlm/dlm.conf:1: connect: expected: connect <device> node=<nodeid> [key=value ...]");
        assert_eq!(
            e("device foo\n"),
            "/etc/dlm/dlm.conf:1: device: expected: device <name> <agent> [key=value ...]"
        );
        assert_eq!(
            e("device foo ipaddr=1\n"),
            "/etc/dlm/dlm.conf:1: device: expected: device <name> <agent> [key=value ...]"
        );
        assert_eq!(
            e("device foo: fence_foo\n"),
            "/etc/dlm/dlm.conf:1: device: parallel device name 'foo:' is not <base>:<suffix>"
        );
        assert_eq!(
            e("device foo:1 fence_foo\ndevice bar fence_bar\ndevice foo:2 fence_foo\n"),
            "/etc/dlm/dlm.conf:3: device: parallel device foo:2 must come right after foo:1 (line 1)"
        );
        assert_eq!(
            e("device foo fence_foo node=3\n"),
            "/etc/dlm/dlm.conf:1: device: node= belongs on connect lines (the victim's id is passed to the agent)"
        );
        assert_eq!(
            e("device foo fence_foo action=on\n"),
            "/etc/dlm/dlm.conf:1: device: action=on does not fence (use off or reboot)"
        );
        assert_eq!(
            e("unfence foo\n"),
            "/etc/dlm/dlm.conf:1: unfence: no device foo (a device line must come first)"
        );
        assert_eq!(
            e("device foo fence_foo\nunfence\n"),
            "/etc/dlm/dlm.conf:2: unfence: expected: unfence <device>"
        );
        assert_eq!(
            e("device foo fence_foo\nfence_all dlm_stonith\n"),
            "/etc/dlm/dlm.conf:2: fence_all: cannot be combined with device lines (line 1)"
        );
        assert_eq!(
            e("fence_all dlm_stonith\ndevice foo fence_foo\n"),
            "/etc/dlm/dlm.conf:2: device: cannot be combined with fence_all (line 1)"
        );
        assert_eq!(
            e("fence_all a\nfence_all b\n"),
            "/etc/dlm/dlm.conf:2: fence_all: already given on line 1"
        );
        assert_eq!(
            e("fence_all\n"),
            "/etc/dlm/dlm.conf:1: fence_all: expected: fence_all <agent> [key=value ...]"
        );
        assert_eq!(
            e("unfence_all\n"),
            "/etc/dlm/dlm.conf:1: unfence_all: needs a fence_all line before it"
        );
        assert_eq!(
            e("fence_all a\nunfence_all now\n"),
            "/etc/dlm/dlm.conf:2: unfence_all: takes no arguments"
        );
    }

    #[test]
    fn lockspace_and_master() {
        let c = parse("lockspace foo nodir=1\nmaster foo node=1 weight=2\nmaster foo node=2\n\nlockspace bar\n");
        let foo = c.lockspace("foo").unwrap();
        assert!(foo.nodir);
        assert_eq!(
            foo.masters,
            vec![Master { node: 1, weight: 2 }, Master { node: 2, weight: 1 }]
        );
        assert_eq!((foo.weight(1), foo.weight(2), foo.weight(3)), (2, 1, 0));
        let bar = c.lockspace("bar").unwrap();
        assert!(!bar.nodir && bar.weight(5) == 1);
        assert!(c.lockspace("baz").is_none());
        round_trip(&c);

        assert_eq!(
            error("master foo node=1\n"),
            "/etc/dlm/dlm.conf:1: master: no lockspace foo (a lockspace line must come first)"
        );
        assert_eq!(
            error("lockspace foo\nmaster foo weight=2\n"),
            "/etc/dlm/dlm.conf:2: master: missing node=<nodeid>"
        );
        assert_eq!(
            error("lockspace foo\nmaster foo node=1\nmaster foo node=1 weight=3\n"),
            "/etc/dlm/dlm.conf:3: master: node 1 already a master of foo on line 2"
        );
        assert_eq!(
            error("lockspace foo\nmaster foo node=1 weight=x\n"),
            "/etc/dlm/dlm.conf:2: master: weight: 'x' is not a number"
        );
        assert_eq!(
            error("lockspace foo\nmaster foo node=1 prio=3\n"),
            "/etc/dlm/dlm.conf:2: master: unknown argument 'prio=3' (node=<nodeid> weight=W)"
        );
        assert_eq!(
            error("lockspace foo nodir=2\n"),
            "/etc/dlm/dlm.conf:1: lockspace: nodir: '2' is not 0 or 1"
        );
        assert_eq!(
            error("lockspace foo lvb=1\n"),
            "/etc/dlm/dlm.conf:1: lockspace: unknown argument 'lvb=1' (only nodir=0|1)"
        );
        assert_eq!(
            error("lockspace\n"),
            "/etc/dlm/dlm.conf:1: lockspace: expected: lockspace <name> [nodir=1]"
        );
        assert_eq!(
            error("lockspace foo\nlockspace foo nodir=1\n"),
            "/etc/dlm/dlm.conf:2: lockspace: lockspace foo already defined on line 1"
        );
    }

    #[test]
    fn node_marks() {
        let c = parse("mark=7\nnode id=1 mark=42\nnode mark=0x10 id=2\n");
        assert_eq!(
            c.nodes,
            vec![NodeConf { id: 1, mark: 42 }, NodeConf { id: 2, mark: 16 }]
        );
        assert_eq!(
            (c.node_mark(1), c.node_mark(2), c.node_mark(3)),
            (42, 16, 7)
        );
        round_trip(&c);
        assert_eq!(
            error("node id=1\n"),
            "/etc/dlm/dlm.conf:1: node: expected: node id=<nodeid> mark=<mark>"
        );
        assert_eq!(
            error("node id=1 mark=z\n"),
            "/etc/dlm/dlm.conf:1: node: mark: 'z' is not a number"
        );
        assert_eq!(
            error("node id=1 mark=1 weight=2\n"),
            "/etc/dlm/dlm.conf:1: node: unknown argument 'weight=2' (id=<nodeid> mark=<mark>)"
        );
        assert_eq!(
            error("node id=1 mark=1\nnode id=1 mark=2\n"),
            "/etc/dlm/dlm.conf:2: node: node 1 already configured on line 1"
        );
        assert_eq!(
            error("node=3\n"),
            "/etc/dlm/dlm.conf:1: node: unknown option"
        );
    }

    #[test]
    fn a_bad_line_anywhere_rejects_the_whole_file() {
        let text = "enable_fencing=0\nfence_all dlm_stonith\nport=0\n";
        assert_eq!(
            error(text),
            "/etc/dlm/dlm.conf:3: port: 0 is out of range 1..=65535"
        );
    }

    #[test]
    fn dump_config_marks_file_values() {
        let c = parse("log_debug=1\npost_join_delay=5\n");
        let dump = c.dump_config();
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), OPTIONS.len());
        assert_eq!(
            &lines[..6],
            [
                "daemon_debug=0",
                "foreground=0",
                "log_debug=1 (dlm.conf)",
                "timewarn=0",
                "protocol=detect",
                "port=21064"
            ]
        );
        assert!(lines.contains(&"post_join_delay=5 (dlm.conf)"));
        assert!(lines.contains(&"enable_fencing=1"));
        assert_eq!(lines.last(), Some(&"enable_helper=1"));
    }

    #[test]
    fn option_table_matches_the_struct() {
        let o = Options::default();
        for info in OPTIONS {
            assert!(o.get(info.name).is_some(), "{}", info.name);
            assert!(!info.doc.trim().is_empty(), "{}", info.name);
        }
        let mut o = Options::default();
        assert_eq!(o.set("post_join_delay", "3"), Ok(()));
        assert_eq!(o.post_join_delay, 3);
        assert_eq!(o.set("nope", "3"), Err("unknown option".into()));
        assert!(
            OPTIONS
                .iter()
                .find(|i| i.name == "post_join_delay")
                .unwrap()
                .reloadable
        );
    }

    #[test]
    fn comments_inside_words_are_kept() {
        let c = parse("device foo fence_foo passwd=a#b # the switch\nconnect foo node=1\n");
        assert_eq!(c.devices[0].args, args(&[("passwd", "a#b")]));
    }

    #[test]
    fn load_reads_a_file_and_a_missing_file_is_the_default() {
        let dir = std::env::temp_dir().join(format!("hydra-dlm-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dlm.conf");
        std::fs::write(&path, "post_join_delay=7\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().options.post_join_delay, 7);
        std::fs::write(&path, "post_join_delay=x\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}:1: post_join_delay: 'x' is not a number", path.display())
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        std::fs::remove_dir(&dir).unwrap();
    }
}
