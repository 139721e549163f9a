//! targets.conf: tgt's configuration file, read the way tgt-admin (tgt 1.0.85) reads it,
//! into a [`Config`] that the daemon applies all-or-nothing.
//!
//! Layers: [`lexer`] turns text into logical lines (comments, `\` continuations,
//! quoting, blocks, `include` via [`include`]); this module builds targets and LUNs from
//! them; [`directives`] knows every directive's scope and values.
//!
//! # What tgt-admin does, and hydra with it
//!
//! Checked against Debian's tgt-admin/tgtd 1.0.85 (`tgt-admin -e` on a fresh daemon,
//! then `tgtadm --op show`):
//! - **tids**: tgt-admin walks the targets in **byte order of their IQN** (Perl `sort`:
//!   upper case before lower case), not in file order. Each target gets its
//!   `controller_tid`, else the previous target's tid + 1 (starting from 0): with
//!   `iqn...:Beta`, `iqn...:alpha` (`controller_tid 5`), `iqn...:gamma`, `iqn...:zeta` the
//!   tids are 1, 5, 6, 7. Two targets ending up with one tid make tgt fail; hydra refuses
//!   the file, naming both.
//! - **LUNs**: all `backing-store`s of a target (line and container forms), sorted by
//!   path, then all `direct-store`s, sorted by path. A store with `lun N` (in its
//!   container) keeps N; every other store gets the smallest number from 1 up that no
//!   store has or reserved. `lun N` at target level names the LUN of a target's only
//!   store. LUN 0 is the controller tgt creates in every target.
//! - A target without `initiator-address` is bound to `ALL`.
//! - LUN-level directives at target level apply to every LUN of the target; inside a
//!   `<backing-store>`/`<direct-store>` container they apply to that LUN and win.
//! - `outgoinguser`, `outgoingdiscoveryuser` and repeated iSCSI keys: the first one counts,
//!   with a warning.
//!
//! # Where hydra is stricter or differs (each is a clear error or a warning)
//! - Any error fails the whole file (`Err`, naming file, line and directive); tgt-admin
//!   ignores unknown directives, skips missing backing files and runs every `tgtadm`
//!   command it can. Directive names are exact (tgt-admin compares them exactly too, and
//!   silently ignores `maxrecvdatasegmentlength`); hydra says "did you mean".
//! - Refused by name: `default-driver`/`driver iser` (no RDMA), `device-type` other than
//!   disk, `bs-type` other than rdwr (`aio` is taken as rdwr with a warning), `bsopts`,
//!   `path`, `block-size` other than 512/4096, `mode_page` other than page 8 (whose WCE
//!   bit is `write-cache`), unknown `params` keys, `ErrorRecoveryLevel` > 0, markers
//!   (`IFMarker`/`OFMarker Yes`), `iSNS On` (hydra has no iSNS client; the other `iSNS*`
//!   settings are accepted with a warning, as they do nothing without `iSNS On`).
//! - Accepted with a warning: `lbppbe`, `la_lba`, `optimal_xfer_gran`,
//!   `optimal_xfer_len` (hints without effect in hydra), `MaxXmitDataSegmentLength`,
//!   `OFMarkInt`/`IFMarkInt`, over-long INQUIRY strings (cut as tgt cuts them),
//!   `direct-store` (hydra does not copy the device's INQUIRY data as tgt-admin's `sg_inq`
//!   does), `block-size` at target level (tgt-admin ignores it there; hydra applies it).
//! - `params` given both at target level and in a container: the container wins (in tgt
//!   the target-level one, applied last, wins).
//! - Mixing line and container forms works (it breaks tgt-admin's parser).
//! - Duplicate target blocks are an error (tgt-admin merges them). The same backing file
//!   twice in one target is an error; in two targets it needs `allow-in-use yes` on the
//!   later one (tgt-admin's `lsof` check refuses it otherwise). The same explicit
//!   `scsi_id` on two different files is an error (one WWID, multipath would merge them).
//! - Backing paths must exist, be a regular file or a block device; a block device that
//!   the system holds (mounted, swap, RAID: `O_EXCL` open fails with EBUSY) needs
//!   `allow-in-use yes`. Relative paths (backing stores, includes) are relative to the
//!   directory of the file that names them (tgt-admin: its current directory).
//! - `state offline|ready` in a target ([`TargetConfig::offline`]).
//! - One user name must keep one password across the file (tgt has one account per
//!   name and would silently use the first password everywhere).

mod directives;
mod include;
mod lexer;
pub mod portal_group;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::acl::{Acl, AddrPattern};
use crate::lun::LunSettings;
use crate::{Error, Result};

use directives::{KeyOutcome, Scope};
use lexer::{Item, Line};

pub use directives::TGT_WRITE_CACHE_OFF_PAGE;
pub use portal_group::PortalGroup;

/// Everything a targets.conf (with its includes) says.
#[derive(Debug, Clone)]
pub struct Config {
    /// `default-driver` (only `iscsi`: `iser` is refused, hydra has no RDMA).
    pub default_driver: String,
    /// `ignore-errors yes`.
    pub ignore_errors: bool,
    /// `control-port N`.
    pub control_port: Option<u16>,
    /// `allow-in-use yes` outside any target (applies to every target).
    pub allow_in_use: bool,
    /// `incomingdiscoveryuser` (CHAP for discovery sessions).
    pub incoming_discovery_users: Vec<Account>,
    /// `outgoingdiscoveryuser` (mutual CHAP for discovery; the first one).
    pub outgoing_discovery_user: Option<Account>,
    /// In file order; tids as tgt-admin assigns them (module doc).
    pub targets: Vec<TargetConfig>,
    /// `portal-group` lines (hydra's, see [`portal_group`]); empty: ALUA off.
    pub portal_groups: Vec<PortalGroup>,
    /// Warnings about global directives, `file:line: directive: text`.
    pub warnings: Vec<String>,
}

/// A CHAP account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub user: String,
    pub password: String,
}

/// One `<target IQN>` block.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub iqn: String,
    /// `controller_tid`, else as tgt-admin assigns it (module doc).
    pub tid: u32,
    /// In LUN order.
    pub luns: Vec<LunConfig>,
    pub acl: Acl,
    pub incoming_users: Vec<Account>,
    /// The first `outgoinguser` (tgt uses only that one; a warning names the others).
    pub outgoing_user: Option<Account>,
    /// iSCSI login keys with RFC 7143 spelling, checked for syntax and range, the first of
    /// each key, in file order. Keys without effect in hydra (markers,
    /// MaxXmitDataSegmentLength) are not kept.
    pub params: Vec<(String, String)>,
    /// `allow-in-use yes` in the target (or globally).
    pub allow_in_use: bool,
    /// `state offline` (tgtadm `--op update --name state`): the target exists but refuses
    /// logins until set ready.
    pub offline: bool,
    /// Where `<target` was.
    pub location: Location,
    /// `file:line: directive: text`.
    pub warnings: Vec<String>,
}

/// One LUN of a target.
#[derive(Debug, Clone)]
pub struct LunConfig {
    pub lun: u64,
    /// With `path` resolved (relative paths against the config file's directory).
    pub settings: LunSettings,
    /// Came from `direct-store`.
    pub direct_store: bool,
    /// `allow-in-use yes` for this LUN (container, target or global).
    pub allow_in_use: bool,
    /// Where the store was named.
    pub location: Location,
}

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

pub(crate) fn cfg_err(loc: &Location, directive: &str, detail: String) -> Error {
    Error::Config {
        file: loc.file.clone(),
        line: loc.line,
        directive: directive.to_string(),
        detail,
    }
}

fn warn(loc: &Location, directive: &str, text: impl fmt::Display) -> String {
    format!("{loc}: {directive}: {text}")
}

/// Read `path` and everything it includes.
pub fn load(path: &Path) -> Result<Config> {
    let text = lexer::read_config(path).map_err(|e| Error::Config {
        file: path.to_path_buf(),
        line: 0,
        directive: "file".into(),
        detail: format!("cannot read the config: {e}"),
    })?;
    parse_str(&text, path)
}

/// Parse `text` as if it were the contents of `file` (includes and relative backing paths
/// resolve against `file`'s directory; backing paths are checked on disk).
pub fn parse_str(text: &str, file: &Path) -> Result<Config> {
    let lines = lexer::lex(text, file)?;
    let raw = structure(lines)?;
    build(raw)
}

/// Apply one LUN setting, as a targets.conf LUN directive (`write-cache`, `block-size`,
/// `params`, ...) or a `tgtadm --params` key (`readonly`, `thin_provisioning`, ...).
/// Ok carries a warning when the value was accepted with a caveat.
pub fn apply_lun_param(
    settings: &mut LunSettings,
    key: &str,
    value: &str,
) -> std::result::Result<Option<String>, String> {
    let w = directives::apply_lun(settings, key, value)?;
    Ok(if w.is_empty() {
        None
    } else {
        Some(w.join("; "))
    })
}

/// Whether two configs of a target describe the same thing (locations and warnings
/// aside): `--update` leaves such a target, and its sessions, alone.
pub fn same_target(a: &TargetConfig, b: &TargetConfig) -> bool {
    a.iqn == b.iqn
        && a.tid == b.tid
        && a.luns.len() == b.luns.len()
        && a.luns.iter().zip(&b.luns).all(|(x, y)| {
            x.lun == y.lun
                && x.settings == y.settings
                && x.direct_store == y.direct_store
                && x.allow_in_use == y.allow_in_use
        })
        && a.acl == b.acl
        && a.incoming_users == b.incoming_users
        && a.outgoing_user == b.outgoing_user
        && a.params == b.params
        && a.allow_in_use == b.allow_in_use
        && a.offline == b.offline
}

// ---------------------------------------------------------------------------------------
// Structure: blocks and options, before meaning.

#[derive(Debug, Clone)]
struct RawOpt {
    key: String,
    value: String,
    loc: Location,
}

#[derive(Debug)]
struct RawStore {
    path: String,
    direct: bool,
    opts: Vec<RawOpt>,
    loc: Location,
}

#[derive(Debug)]
struct RawTarget {
    iqn: String,
    loc: Location,
    opts: Vec<RawOpt>,
    stores: Vec<RawStore>,
}

#[derive(Debug, Default)]
struct Raw {
    opts: Vec<RawOpt>,
    targets: Vec<RawTarget>,
}

fn store_kind(kind: &str) -> Option<bool> {
    match kind {
        "backing-store" => Some(false),
        "direct-store" => Some(true),
        _ => None,
    }
}

fn structure(lines: Vec<Line>) -> Result<Raw> {
    let mut raw = Raw::default();
    let mut target: Option<RawTarget> = None;
    let mut store: Option<RawStore> = None;
    for Line { loc, item } in lines {
        match item {
            Item::Open { kind, name } => {
                let tag = format!("<{kind}>");
                if let Some(s) = &store {
                    return Err(cfg_err(
                        &loc,
                        &tag,
                        format!(
                            "blocks cannot nest inside <{}> (opened at {}): is a </{}> missing?",
                            kind_of(s),
                            s.loc,
                            kind_of(s)
                        ),
                    ));
                }
                match (&target, kind.as_str(), store_kind(&kind)) {
                    (None, "target", _) => {
                        let iqn = name.ok_or_else(|| {
                            cfg_err(
                                &loc,
                                &tag,
                                "needs the target's name: <target iqn.yyyy-mm.domain:name>".into(),
                            )
                        })?;
                        target = Some(RawTarget {
                            iqn,
                            loc,
                            opts: Vec::new(),
                            stores: Vec::new(),
                        });
                    }
                    (Some(t), "target", _) => {
                        return Err(cfg_err(
                            &loc,
                            &tag,
                            format!(
                            "<target> inside <target {}> (opened at {}): is a </target> missing?",
                            t.iqn, t.loc
                        ),
                        ))
                    }
                    (Some(_), _, Some(direct)) => {
                        let path = name.ok_or_else(|| {
                            cfg_err(
                                &loc,
                                &tag,
                                "needs a path: <backing-store /path/to/file>".into(),
                            )
                        })?;
                        store = Some(RawStore {
                            path,
                            direct,
                            opts: Vec::new(),
                            loc,
                        });
                    }
                    (None, _, Some(_)) => {
                        return Err(cfg_err(
                            &loc,
                            &tag,
                            "must be inside a <target> block".into(),
                        ))
                    }
                    (_, _, None) => {
                        let hint = if ["target", "backing-store", "direct-store"]
                            .iter()
                            .any(|k| k.eq_ignore_ascii_case(&kind))
                        {
                            " (block names are exact: target, backing-store, direct-store)"
                        } else {
                            ""
                        };
                        return Err(cfg_err(&loc, &tag, format!("unknown block{hint}")));
                    }
                }
            }
            Item::Close { kind } => {
                let tag = format!("</{kind}>");
                if let Some(s) = store.take() {
                    if kind != kind_of(&s) {
                        return Err(cfg_err(
                            &loc,
                            &tag,
                            format!(
                                "does not close <{} {}> opened at {}",
                                kind_of(&s),
                                s.path,
                                s.loc
                            ),
                        ));
                    }
                    target
                        .as_mut()
                        .expect("a store is inside a target")
                        .stores
                        .push(s);
                } else if let Some(t) = target.take() {
                    if kind != "target" {
                        return Err(cfg_err(
                            &loc,
                            &tag,
                            format!("does not close <target {}> opened at {}", t.iqn, t.loc),
                        ));
                    }
                    raw.targets.push(t);
                } else {
                    return Err(cfg_err(&loc, &tag, format!("no <{kind}> block is open")));
                }
            }
            Item::Opt { key, value } => {
                let value = match value {
                    Some(v) if !v.trim().is_empty() => v.trim().to_string(),
                    _ => return Err(cfg_err(&loc, &key, "needs a value".into())),
                };
                if let Some(direct) = store_kind(&key) {
                    match (&mut target, &store) {
                        (Some(_), Some(s)) => {
                            return Err(cfg_err(
                                &loc,
                                &key,
                                format!(
                                    "cannot be inside <{} {}> (opened at {})",
                                    kind_of(s),
                                    s.path,
                                    s.loc
                                ),
                            ))
                        }
                        (Some(t), None) => t.stores.push(RawStore {
                            path: value,
                            direct,
                            opts: Vec::new(),
                            loc,
                        }),
                        (None, _) => {
                            return Err(cfg_err(
                                &loc,
                                &key,
                                "must be inside a <target> block".into(),
                            ))
                        }
                    }
                    continue;
                }
                let opt = RawOpt { key, value, loc };
                match (&mut target, &mut store) {
                    (_, Some(s)) => s.opts.push(opt),
                    (Some(t), None) => t.opts.push(opt),
                    (None, None) => raw.opts.push(opt),
                }
            }
        }
    }
    if let Some(s) = store {
        return Err(cfg_err(
            &s.loc,
            &format!("<{}>", kind_of(&s)),
            format!(
                "<{} {}> is not closed by </{}>",
                kind_of(&s),
                s.path,
                kind_of(&s)
            ),
        ));
    }
    if let Some(t) = target {
        return Err(cfg_err(
            &t.loc,
            "<target>",
            format!("<target {}> is not closed by </target>", t.iqn),
        ));
    }
    Ok(raw)
}

fn kind_of(s: &RawStore) -> &'static str {
    if s.direct {
        "direct-store"
    } else {
        "backing-store"
    }
}

// ---------------------------------------------------------------------------------------
// Meaning.

/// Single-valued directives given twice at one level are an error.
fn once(seen: &mut HashMap<String, Location>, o: &RawOpt) -> Result<()> {
    if directives::REPEATABLE.contains(&o.key.as_str())
        || directives::FIRST_WINS.contains(&o.key.as_str())
        || directives::ISCSI_KEYS.contains(&o.key.as_str())
    {
        return Ok(());
    }
    if let Some(first) = seen.get(&o.key) {
        return Err(cfg_err(
            &o.loc,
            &o.key,
            format!("given twice (first at {first})"),
        ));
    }
    seen.insert(o.key.clone(), o.loc.clone());
    Ok(())
}

fn account(o: &RawOpt) -> Result<Account> {
    let mut it = o.value.split_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(u), Some(p), None) => Ok(Account {
            user: u.to_string(),
            password: p.to_string(),
        }),
        _ => Err(cfg_err(
            &o.loc,
            &o.key,
            "needs a user name and a password: <user> <password>".into(),
        )),
    }
}

fn driver(o: &RawOpt) -> Result<String> {
    match o.value.as_str() {
        "iscsi" => Ok("iscsi".into()),
        "iser" => Err(cfg_err(
            &o.loc,
            &o.key,
            "iser is not supported by hydra (no RDMA): use iscsi".into(),
        )),
        v => Err(cfg_err(
            &o.loc,
            &o.key,
            format!("'{v}' is not a driver (iscsi)"),
        )),
    }
}

fn yes_no(o: &RawOpt) -> Result<bool> {
    directives::yes_no(&o.value).map_err(|d| cfg_err(&o.loc, &o.key, d))
}

/// Every account name maps to one password across the file.
#[derive(Default)]
struct Accounts(HashMap<String, (String, Location)>);

impl Accounts {
    fn check(&mut self, a: &Account, o: &RawOpt, warnings: &mut Vec<String>) -> Result<()> {
        if let Some((pw, first)) = self.0.get(&a.user) {
            if *pw != a.password {
                return Err(cfg_err(
                    &o.loc,
                    &o.key,
                    format!(
                        "user {} already has another password (at {first}); tgt keeps one account per user name and would use the first password everywhere",
                        a.user
                    ),
                ));
            }
            return Ok(());
        }
        if a.password.len() < 12 {
            warnings.push(warn(&o.loc, &o.key, format!("the CHAP secret of {} is shorter than 12 characters: some initiators (Microsoft's) refuse it", a.user)));
        }
        self.0
            .insert(a.user.clone(), (a.password.clone(), o.loc.clone()));
        Ok(())
    }
}

fn build(raw: Raw) -> Result<Config> {
    let mut cfg = Config {
        default_driver: "iscsi".into(),
        ignore_errors: false,
        control_port: None,
        allow_in_use: false,
        incoming_discovery_users: Vec::new(),
        outgoing_discovery_user: None,
        targets: Vec::new(),
        portal_groups: Vec::new(),
        warnings: Vec::new(),
    };
    let mut accounts = Accounts::default();
    let mut seen = HashMap::new();
    for o in &raw.opts {
        let k = o.key.as_str();
        match directives::scope(k) {
            None => return Err(cfg_err(&o.loc, k, directives::unknown(k))),
            Some(Scope::Target) | Some(Scope::LunNumber) => return Err(cfg_err(&o.loc, k, "is only allowed inside a <target> block".into())),
            Some(Scope::Lun) => {
                return Err(cfg_err(&o.loc, k, "is only allowed inside a <target> block (for all its LUNs) or a <backing-store> container".into()))
            }
            Some(Scope::Global) | Some(Scope::Anywhere) => {}
        }
        once(&mut seen, o)?;
        match k {
            "allow-in-use" => cfg.allow_in_use = yes_no(o)?,
            "default-driver" => cfg.default_driver = driver(o)?,
            "ignore-errors" => cfg.ignore_errors = yes_no(o)?,
            "control-port" => {
                cfg.control_port = Some(directives::number::<u16>(&o.value, 0, u16::MAX).map_err(|d| cfg_err(&o.loc, k, d))?);
            }
            "incomingdiscoveryuser" => {
                let a = account(o)?;
                accounts.check(&a, o, &mut cfg.warnings)?;
                if cfg.incoming_discovery_users.iter().any(|x| x.user == a.user) {
                    return Err(cfg_err(&o.loc, k, format!("user {} is given twice", a.user)));
                }
                cfg.incoming_discovery_users.push(a);
            }
            "outgoingdiscoveryuser" => {
                let a = account(o)?;
                accounts.check(&a, o, &mut cfg.warnings)?;
                if cfg.outgoing_discovery_user.is_some() {
                    cfg.warnings.push(warn(&o.loc, k, "only one is allowed: the first one is used (as tgt-admin does)"));
                } else {
                    cfg.outgoing_discovery_user = Some(a);
                }
            }
            "iSNS" => match o.value.as_str() {
                "Off" | "off" => {}
                "On" | "on" => {
                    return Err(cfg_err(&o.loc, k, "iSNS is not supported by hydra (no iSNS client): remove `iSNS On`; initiators discover targets with SendTargets".into()))
                }
                v => return Err(cfg_err(&o.loc, k, format!("'{v}' must be On or Off"))),
            },
            "iSNSServerIP" => {
                o.value.parse::<std::net::IpAddr>().map_err(|_| cfg_err(&o.loc, k, format!("'{}' is not an IP address", o.value)))?;
                cfg.warnings.push(warn(&o.loc, k, "ignored: hydra has no iSNS client"));
            }
            "iSNSServerPort" => {
                directives::number::<u16>(&o.value, 1, u16::MAX).map_err(|d| cfg_err(&o.loc, k, d))?;
                cfg.warnings.push(warn(&o.loc, k, "ignored: hydra has no iSNS client"));
            }
            "iSNSAccessControl" => {
                if !matches!(o.value.as_str(), "On" | "Off" | "on" | "off") {
                    return Err(cfg_err(&o.loc, k, format!("'{}' must be On or Off", o.value)));
                }
                cfg.warnings.push(warn(&o.loc, k, "ignored: hydra has no iSNS client"));
            }
            "portal-group" => {
                let g = portal_group::parse(&o.value, &o.loc, &cfg.portal_groups)?;
                cfg.portal_groups.push(g);
            }
            _ => unreachable!("every global directive is handled: {k}"),
        }
    }

    let mut targets = Vec::new();
    for t in raw.targets {
        targets.push(build_target(t, &cfg, &mut accounts)?);
    }
    // Duplicate names (iSCSI names are case-insensitive).
    for (i, t) in targets.iter().enumerate() {
        if let Some(first) = targets[..i]
            .iter()
            .find(|o| o.0.iqn.eq_ignore_ascii_case(&t.0.iqn))
        {
            return Err(cfg_err(
                &t.0.location,
                "<target>",
                format!("target {} is defined twice (first at {}); tgt-admin would merge the two blocks: merge them", t.0.iqn, first.0.location),
            ));
        }
    }
    assign_tids(&mut targets)?;
    check_shared_stores(&targets)?;
    cfg.targets = targets.into_iter().map(|(t, _)| t).collect();
    Ok(cfg)
}

/// tgt-admin's tid walk (module doc). The second tuple field is the controller_tid's
/// location, if the target had one.
fn assign_tids(targets: &mut [(TargetConfig, Option<Location>)]) -> Result<()> {
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by(|&a, &b| targets[a].0.iqn.as_bytes().cmp(targets[b].0.iqn.as_bytes()));
    let mut prev: u32 = 0;
    let mut taken: HashMap<u32, usize> = HashMap::new();
    for &i in &order {
        let tid = match &targets[i].1 {
            Some(_) => targets[i].0.tid,
            None => prev
                .checked_add(1)
                .ok_or_else(|| cfg_err(&targets[i].0.location, "<target>", "no tid left".into()))?,
        };
        if let Some(&j) = taken.get(&tid) {
            let (this, other) = (&targets[i], &targets[j]);
            let why = match (&this.1, &other.1) {
                (Some(_), Some(l)) => format!("controller_tid {tid} is also the controller_tid of {} (at {l})", other.0.iqn),
                (Some(_), None) => format!(
                    "controller_tid {tid} is the tid tgt-admin gives {} (at {}): targets without controller_tid are numbered in IQN order after the previous tid; give {} a controller_tid too",
                    other.0.iqn, other.0.location, other.0.iqn
                ),
                (None, Some(l)) => format!(
                    "{} would get tid {tid} (tgt-admin numbers targets without controller_tid in IQN order, after the previous tid), which is the controller_tid of {} (at {l}): give {} a controller_tid",
                    this.0.iqn, other.0.iqn, this.0.iqn
                ),
                (None, None) => format!("tid {tid} is taken twice"),
            };
            let (loc, dir) = match &this.1 {
                Some(l) => (l.clone(), "controller_tid"),
                None => (this.0.location.clone(), "<target>"),
            };
            return Err(cfg_err(&loc, dir, why));
        }
        taken.insert(tid, i);
        targets[i].0.tid = tid;
        prev = tid;
    }
    Ok(())
}

/// In tgt-admin's processing order (targets by IQN, LUNs in order), a file already
/// exported needs `allow-in-use yes` to be exported again; one explicit SCSI ID must not
/// name two different files.
fn check_shared_stores(targets: &[(TargetConfig, Option<Location>)]) -> Result<()> {
    let mut order: Vec<&TargetConfig> = targets.iter().map(|t| &t.0).collect();
    order.sort_by(|a, b| a.iqn.as_bytes().cmp(b.iqn.as_bytes()));
    let mut by_file: HashMap<PathBuf, (&str, u64)> = HashMap::new();
    let mut by_id: HashMap<&str, (PathBuf, &str, u64, &Location)> = HashMap::new();
    for t in order {
        for l in &t.luns {
            let canon =
                std::fs::canonicalize(&l.settings.path).unwrap_or_else(|_| l.settings.path.clone());
            let dir = if l.direct_store {
                "direct-store"
            } else {
                "backing-store"
            };
            if let Some((iqn, lun)) = by_file.get(&canon) {
                if *iqn == t.iqn {
                    return Err(cfg_err(
                        &l.location,
                        dir,
                        format!(
                            "{} is already LUN {lun} of this target",
                            l.settings.path.display()
                        ),
                    ));
                }
                if !l.allow_in_use {
                    return Err(cfg_err(
                        &l.location,
                        dir,
                        format!(
                            "{} is already exported by {iqn} LUN {lun}; tgt-admin refuses a device in use: add `allow-in-use yes` to share it",
                            l.settings.path.display()
                        ),
                    ));
                }
            } else {
                by_file.insert(canon.clone(), (&t.iqn, l.lun));
            }
            if let Some(id) = l.settings.scsi_id.as_deref() {
                if let Some((file, iqn, lun, _)) = by_id.get(id) {
                    if *file != canon {
                        return Err(cfg_err(
                            &l.location,
                            dir,
                            format!(
                                "scsi_id '{id}' is also the SCSI ID of {iqn} LUN {lun} ({}): two disks with one SCSI ID get one WWID and multipath would merge them (a target-level scsi_id applies to every LUN: give it per LUN)",
                                file.display()
                            ),
                        ));
                    }
                } else {
                    by_id.insert(id, (canon.clone(), &t.iqn, l.lun, &l.location));
                }
            }
        }
    }
    Ok(())
}

/// The largest LUN number hydra takes: SAM-5 flat space addressing (14 bits).
const MAX_LUN: u64 = 16383;

fn lun_number(o: &RawOpt) -> Result<u64> {
    match directives::number::<u64>(&o.value, 0, MAX_LUN) {
        Ok(0) => Err(cfg_err(
            &o.loc,
            "lun",
            "LUN 0 is the target's controller (tgt creates it in every target): use 1 or more"
                .into(),
        )),
        Ok(n) => Ok(n),
        Err(d) => Err(cfg_err(&o.loc, "lun", d)),
    }
}

fn check_iqn(iqn: &str, loc: &Location, warnings: &mut Vec<String>) -> Result<()> {
    if iqn.len() > 223 {
        return Err(cfg_err(
            loc,
            "<target>",
            format!("{iqn}: an iSCSI name is at most 223 bytes (RFC 7143 §4.2.7.1)"),
        ));
    }
    if let Some(c) = iqn.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(cfg_err(
            loc,
            "<target>",
            format!("'{iqn}': {c:?} cannot be part of an iSCSI name"),
        ));
    }
    let lower = iqn.to_ascii_lowercase();
    if !(lower.starts_with("iqn.") || lower.starts_with("eui.") || lower.starts_with("naa.")) {
        warnings.push(warn(
            loc,
            "<target>",
            format!(
                "{iqn} is not an iqn./eui./naa. name (RFC 7143 §4.2.7); initiators may refuse it"
            ),
        ));
    } else if let Some(c) = iqn
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-')))
    {
        warnings.push(warn(loc, "<target>", format!("{iqn}: {c:?} is not allowed in iSCSI names (RFC 3722: letters, digits, '.', ':', '-')")));
    }
    Ok(())
}

fn apply_opts(
    s: &mut LunSettings,
    opts: &[&RawOpt],
    warnings: Option<&mut Vec<String>>,
) -> Result<()> {
    let mut sink = Vec::new();
    let warnings = warnings.unwrap_or(&mut sink);
    for o in opts {
        let w =
            directives::apply_lun(s, &o.key, &o.value).map_err(|d| cfg_err(&o.loc, &o.key, d))?;
        warnings.extend(w.into_iter().map(|w| warn(&o.loc, &o.key, w)));
    }
    Ok(())
}

fn build_target(
    t: RawTarget,
    cfg: &Config,
    accounts: &mut Accounts,
) -> Result<(TargetConfig, Option<Location>)> {
    let mut warnings = Vec::new();
    check_iqn(&t.iqn, &t.loc, &mut warnings)?;
    let mut seen = HashMap::new();
    let mut addresses = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut incoming: Vec<Account> = Vec::new();
    let mut outgoing: Option<Account> = None;
    let mut params: Vec<(String, String, Location)> = Vec::new();
    let mut allow_in_use = cfg.allow_in_use;
    let mut offline = false;
    let mut controller_tid: Option<(u32, Location)> = None;
    let mut target_lun: Option<(u64, &RawOpt)> = None;
    let mut lun_level: Vec<&RawOpt> = Vec::new();
    let mut dropped_keys: Vec<String> = Vec::new();

    for o in &t.opts {
        let k = o.key.as_str();
        match directives::scope(k) {
            None => return Err(cfg_err(&o.loc, k, directives::unknown(k))),
            Some(Scope::Global) => {
                return Err(cfg_err(
                    &o.loc,
                    k,
                    "is a global directive: it goes outside <target> blocks".into(),
                ))
            }
            _ => {}
        }
        once(&mut seen, o)?;
        if directives::ISCSI_KEYS.contains(&k) {
            if params.iter().any(|(pk, _, _)| pk == k) || dropped_keys.iter().any(|d| d == k) {
                warnings.push(warn(
                    &o.loc,
                    k,
                    "only one is allowed: the first one is used (as tgt-admin does)",
                ));
                continue;
            }
            match directives::iscsi_key(k, &o.value).map_err(|d| cfg_err(&o.loc, k, d))? {
                KeyOutcome::Keep(v) => params.push((k.to_string(), v, o.loc.clone())),
                KeyOutcome::Drop(w) => {
                    dropped_keys.push(k.to_string());
                    if let Some(w) = w {
                        warnings.push(warn(&o.loc, k, w));
                    }
                }
            }
            continue;
        }
        match k {
            "driver" => {
                driver(o)?;
            }
            "initiator-address" => {
                let p = AddrPattern::parse(&o.value).map_err(|d| cfg_err(&o.loc, k, d))?;
                if addresses.contains(&p) {
                    warnings.push(warn(&o.loc, k, format!("{} is given twice", o.value)));
                } else {
                    addresses.push(p);
                }
            }
            "initiator-name" => {
                let n = o.value.as_str();
                if n.split_whitespace().count() != 1 || n.chars().any(|c| c.is_control()) {
                    return Err(cfg_err(
                        &o.loc,
                        k,
                        format!("'{n}' is not one initiator name"),
                    ));
                }
                if names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
                    warnings.push(warn(
                        &o.loc,
                        k,
                        format!("{n} is given twice (iSCSI names are case-insensitive)"),
                    ));
                } else {
                    names.push(n.to_string());
                }
            }
            "incominguser" => {
                let a = account(o)?;
                accounts.check(&a, o, &mut warnings)?;
                if incoming.iter().any(|x| x.user == a.user) {
                    return Err(cfg_err(
                        &o.loc,
                        k,
                        format!("user {} is given twice", a.user),
                    ));
                }
                incoming.push(a);
            }
            "outgoinguser" => {
                let a = account(o)?;
                accounts.check(&a, o, &mut warnings)?;
                if outgoing.is_some() {
                    warnings.push(warn(
                        &o.loc,
                        k,
                        "only one is allowed: the first one is used (as tgt-admin does)",
                    ));
                } else {
                    outgoing = Some(a);
                }
            }
            "controller_tid" => {
                let tid = directives::number::<u32>(&o.value, 1, i32::MAX as u32)
                    .map_err(|d| cfg_err(&o.loc, k, d))?;
                controller_tid = Some((tid, o.loc.clone()));
            }
            "state" => {
                offline = match o.value.as_str() {
                    "offline" => true,
                    "ready" => false,
                    v => {
                        return Err(cfg_err(
                            &o.loc,
                            k,
                            format!("'{v}' must be ready or offline"),
                        ))
                    }
                }
            }
            "allow-in-use" => allow_in_use |= yes_no(o)?,
            "lun" => target_lun = Some((lun_number(o)?, o)),
            _ => {
                // LUN-level at target level: check once now (a target may have no LUN).
                lun_level.push(o);
            }
        }
    }
    let mut probe = LunSettings::new("/");
    let mut lun_level_warnings = Vec::new();
    apply_opts(&mut probe, &lun_level, Some(&mut lun_level_warnings))?;
    warnings.extend(lun_level_warnings);
    if let Some(o) = lun_level.iter().find(|o| o.key == "block-size") {
        warnings.push(warn(&o.loc, "block-size", "at target level tgt-admin ignores it (its LUNs get 512); hydra applies it to every LUN of the target"));
    }
    if let (Some((_, o)), n) = (&target_lun, t.stores.len()) {
        if n != 1 {
            return Err(cfg_err(
                &o.loc,
                "lun",
                format!(
                    "at target level, lun numbers the target's only store, but this target has {n}: give `lun` inside each <backing-store> container"
                ),
            ));
        }
    }
    // FirstBurstLength <= MaxBurstLength (RFC 7143 §13.14), with the RFC defaults.
    let get = |key: &str, d: u32| {
        params
            .iter()
            .find(|p| p.0 == key)
            .map(|p| p.1.parse::<u32>().unwrap_or(d))
            .unwrap_or(d)
    };
    let (first, max) = (
        get("FirstBurstLength", 65_536),
        get("MaxBurstLength", 262_144),
    );
    if first > max {
        let loc = params
            .iter()
            .find(|p| p.0 == "FirstBurstLength" || p.0 == "MaxBurstLength")
            .map(|p| p.2.clone())
            .unwrap_or(t.loc.clone());
        return Err(cfg_err(
            &loc,
            "FirstBurstLength",
            format!("{first} exceeds MaxBurstLength {max} (RFC 7143 §13.14)"),
        ));
    }

    // Stores: per-store options, explicit numbers.
    struct Store<'a> {
        raw: &'a RawStore,
        lun: Option<u64>,
        lun_loc: Option<Location>,
        opts: Vec<&'a RawOpt>,
        allow_in_use: bool,
    }
    let mut stores = Vec::new();
    for s in &t.stores {
        let mut seen = HashMap::new();
        let mut st = Store {
            raw: s,
            lun: None,
            lun_loc: None,
            opts: Vec::new(),
            allow_in_use: false,
        };
        for o in &s.opts {
            let k = o.key.as_str();
            match directives::scope(k) {
                None => return Err(cfg_err(&o.loc, k, directives::unknown(k))),
                Some(Scope::Global) => {
                    return Err(cfg_err(
                        &o.loc,
                        k,
                        "is a global directive: it goes outside <target> blocks".into(),
                    ))
                }
                Some(Scope::Target) => {
                    return Err(cfg_err(
                        &o.loc,
                        k,
                        format!(
                            "is a target-level directive: it cannot be inside <{}>",
                            kind_of(s)
                        ),
                    ))
                }
                _ => {}
            }
            once(&mut seen, o)?;
            match k {
                "lun" => {
                    st.lun = Some(lun_number(o)?);
                    st.lun_loc = Some(o.loc.clone());
                }
                "allow-in-use" => st.allow_in_use = yes_no(o)?,
                _ => st.opts.push(o),
            }
        }
        // Check the container's values now, so errors come in file order.
        apply_opts(&mut LunSettings::new("/"), &st.opts, None)?;
        stores.push(st);
    }
    if let Some((n, o)) = &target_lun {
        let st = &mut stores[0];
        if st.lun.is_some_and(|m| m != *n) {
            return Err(cfg_err(
                &o.loc,
                "lun",
                format!(
                    "says {n} but the store's container says {}",
                    st.lun.unwrap_or(0)
                ),
            ));
        }
        st.lun = Some(*n);
        st.lun_loc = Some(o.loc.clone());
    }
    // Same path twice in one target.
    for (i, s) in t.stores.iter().enumerate() {
        if let Some(first) = t.stores[..i].iter().find(|o| o.path == s.path) {
            return Err(cfg_err(
                &s.loc,
                kind_of(s),
                format!(
                    "{} is already a store of this target (at {})",
                    s.path, first.loc
                ),
            ));
        }
    }
    // Explicit numbers must be distinct.
    let mut reserved: HashMap<u64, Location> = HashMap::new();
    for st in &stores {
        if let (Some(n), Some(loc)) = (st.lun, &st.lun_loc) {
            if let Some(first) = reserved.get(&n) {
                return Err(cfg_err(
                    loc,
                    "lun",
                    format!("LUN {n} is already taken (at {first})"),
                ));
            }
            reserved.insert(n, loc.clone());
        }
    }
    // tgt-admin's order: backing stores by path, then direct stores by path.
    let mut order: Vec<usize> = (0..stores.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (stores[a].raw, stores[b].raw);
        (x.direct, x.path.as_bytes()).cmp(&(y.direct, y.path.as_bytes()))
    });
    let mut used: Vec<u64> = reserved.keys().copied().collect();
    let mut luns = Vec::new();
    for &i in &order {
        let st = &stores[i];
        let n = match st.lun {
            Some(n) => n,
            None => {
                let mut n = 1;
                while used.contains(&n) {
                    n += 1;
                }
                if n > MAX_LUN {
                    return Err(cfg_err(
                        &st.raw.loc,
                        kind_of(st.raw),
                        format!("no LUN number left (1..{MAX_LUN})"),
                    ));
                }
                used.push(n);
                n
            }
        };
        let dir = kind_of(st.raw);
        let path = resolve(&st.raw.path, &st.raw.loc.file);
        let mut settings = LunSettings::new(path);
        apply_opts(&mut settings, &lun_level, None)?;
        let mut w = Vec::new();
        apply_opts(&mut settings, &st.opts, Some(&mut w))?;
        warnings.extend(w);
        let lun_allow = allow_in_use || st.allow_in_use;
        check_backing(&settings.path, lun_allow, &st.raw.loc, dir)?;
        if st.raw.direct {
            warnings.push(warn(
                &st.raw.loc,
                dir,
                "hydra does not copy the device's INQUIRY data (vendor, product, revision, serial) as tgt-admin does with sg_inq: the LUN gets tgt's defaults unless vendor_id, product_id, product_rev, scsi_sn are given",
            ));
        }
        luns.push(LunConfig {
            lun: n,
            settings,
            direct_store: st.raw.direct,
            allow_in_use: lun_allow,
            location: st.raw.loc.clone(),
        });
    }
    // Tell when path order (tgt-admin's) differs from file order for auto-numbered stores.
    for direct in [false, true] {
        let auto: Vec<&Store> = stores
            .iter()
            .filter(|s| s.raw.direct == direct && s.lun.is_none())
            .collect();
        let mut sorted = auto.clone();
        sorted.sort_by(|a, b| a.raw.path.as_bytes().cmp(b.raw.path.as_bytes()));
        if auto
            .iter()
            .zip(&sorted)
            .any(|(a, b)| a.raw.path != b.raw.path)
        {
            let dir = if direct {
                "direct-store"
            } else {
                "backing-store"
            };
            let list: Vec<String> = luns
                .iter()
                .filter(|l| {
                    l.direct_store == direct
                        && sorted
                            .iter()
                            .any(|s| resolve(&s.raw.path, &s.raw.loc.file) == l.settings.path)
                })
                .map(|l| format!("LUN {} = {}", l.lun, l.settings.path.display()))
                .collect();
            warnings.push(warn(
                &sorted[0].raw.loc,
                dir,
                format!(
                    "LUNs are numbered in path order, as tgt-admin does (not in file order): {}",
                    list.join(", ")
                ),
            ));
        }
    }
    luns.sort_by_key(|l| l.lun);
    let acl = Acl {
        addresses: if addresses.is_empty() {
            vec![AddrPattern::All]
        } else {
            addresses
        },
        names,
    };
    let (tid, tid_loc) = match controller_tid {
        Some((tid, loc)) => (tid, Some(loc)),
        None => (0, None),
    };
    Ok((
        TargetConfig {
            iqn: t.iqn,
            tid,
            luns,
            acl,
            incoming_users: incoming,
            outgoing_user: outgoing,
            params: params.into_iter().map(|(k, v, _)| (k, v)).collect(),
            allow_in_use,
            offline,
            location: t.loc,
            warnings,
        },
        tid_loc,
    ))
}

/// A relative backing path is relative to the directory of the file naming it.
fn resolve(path: &str, named_in: &Path) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        named_in.parent().unwrap_or(Path::new("")).join(p)
    }
}

/// The backing store exists, is a file or a block device, and (unless allowed) is not
/// held by the system.
fn check_backing(path: &Path, allow_in_use: bool, loc: &Location, dir: &str) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let md = std::fs::metadata(path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            " does not exist".to_string()
        } else {
            format!(": {e}")
        };
        cfg_err(loc, dir, format!("{}{what}", path.display()))
    })?;
    let ft = md.file_type();
    if ft.is_dir() {
        return Err(cfg_err(
            loc,
            dir,
            format!(
                "{} is a directory (a LUN needs a file or a block device)",
                path.display()
            ),
        ));
    }
    if !ft.is_file() && !ft.is_block_device() {
        return Err(cfg_err(
            loc,
            dir,
            format!(
                "{} is neither a regular file nor a block device",
                path.display()
            ),
        ));
    }
    if ft.is_block_device() && !allow_in_use {
        use std::os::unix::fs::OpenOptionsExt;
        // tgt-admin's check: an O_EXCL open of a block device fails with EBUSY while it
        // is mounted, used as swap or part of a RAID/LVM/dm device.
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
        {
            if e.raw_os_error() == Some(libc::EBUSY) {
                return Err(cfg_err(
                    loc,
                    dir,
                    format!("{} is in use by the system (mounted, swap, RAID or LVM member?): add `allow-in-use yes` to export it anyway", path.display()),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
