//! targets.conf: tgt's configuration file, read the way tgt-admin (tgt 1.0.85) reads it,
//! into a [`Config`] that the daemon applies all-or-nothing.
//!
//! Layers: `lexer` turns text into logical lines (comments, `\` continuations,
//! quoting, blocks, `include` via [`include`]); this module builds targets and LUNs from
//! them; `directives` knows every directive's scope and values.
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
mod location;
pub mod portal_group;
mod structure;
mod target;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::acl::Acl;
use crate::lun::LunSettings;
use crate::{Error, Result};

use directives::Scope;
pub(crate) use location::cfg_err;
use location::warn;
pub use location::Location;
use structure::{Raw, RawOpt};

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
    let raw = structure::structure(lines)?;
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

/// The meaning of the structure: global directives, then each target, then what
/// spans targets (names, tids, shared stores).
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
        global_opt(&mut cfg, &mut accounts, &mut seen, o)?;
    }
    let mut targets = Vec::new();
    for t in raw.targets {
        targets.push(target::build_target(t, &cfg, &mut accounts)?);
    }
    check_unique_names(&targets)?;
    assign_tids(&mut targets)?;
    check_shared_stores(&targets)?;
    cfg.targets = targets.into_iter().map(|(t, _)| t).collect();
    Ok(cfg)
}

/// One directive outside any target.
fn global_opt(
    cfg: &mut Config,
    accounts: &mut Accounts,
    seen: &mut HashMap<String, Location>,
    o: &RawOpt,
) -> Result<()> {
    let k = o.key.as_str();
    match directives::scope(k) {
        None => return Err(cfg_err(&o.loc, k, directives::unknown(k))),
        Some(Scope::Target) | Some(Scope::LunNumber) => return Err(cfg_err(&o.loc, k, "is only allowed inside a <target> block".into())),
        Some(Scope::Lun) => {
            return Err(cfg_err(&o.loc, k, "is only allowed inside a <target> block (for all its LUNs) or a <backing-store> container".into()))
        }
        Some(Scope::Global) | Some(Scope::Anywhere) => {}
    }
    once(seen, o)?;
    match k {
        "allow-in-use" => cfg.allow_in_use = yes_no(o)?,
        "default-driver" => cfg.default_driver = driver(o)?,
        "ignore-errors" => cfg.ignore_errors = yes_no(o)?,
        "control-port" => {
            cfg.control_port = Some(
                directives::number::<u16>(&o.value, 0, u16::MAX)
                    .map_err(|d| cfg_err(&o.loc, k, d))?,
            );
        }
        "incomingdiscoveryuser" => {
            let a = account(o)?;
            accounts.check(&a, o, &mut cfg.warnings)?;
            if cfg
                .incoming_discovery_users
                .iter()
                .any(|x| x.user == a.user)
            {
                return Err(cfg_err(
                    &o.loc,
                    k,
                    format!("user {} is given twice", a.user),
                ));
            }
            cfg.incoming_discovery_users.push(a);
        }
        "outgoingdiscoveryuser" => {
            let a = account(o)?;
            accounts.check(&a, o, &mut cfg.warnings)?;
            if cfg.outgoing_discovery_user.is_some() {
                cfg.warnings.push(warn(
                    &o.loc,
                    k,
                    "only one is allowed: the first one is used (as tgt-admin does)",
                ));
            } else {
                cfg.outgoing_discovery_user = Some(a);
            }
        }
        "iSNS" | "iSNSServerIP" | "iSNSServerPort" | "iSNSAccessControl" => isns(cfg, o)?,
        "portal-group" => {
            let g = portal_group::parse(&o.value, &o.loc, &cfg.portal_groups)?;
            cfg.portal_groups.push(g);
        }
        _ => unreachable!("every global directive is handled: {k}"),
    }
    Ok(())
}

/// The iSNS directives: hydra has no iSNS client, so `iSNS On` is refused and the
/// others, checked, do nothing.
fn isns(cfg: &mut Config, o: &RawOpt) -> Result<()> {
    let k = o.key.as_str();
    let on_off = |v: &str| matches!(v, "On" | "Off" | "on" | "off");
    match k {
        "iSNS" => match o.value.as_str() {
            "Off" | "off" => return Ok(()),
            "On" | "on" => {
                return Err(cfg_err(&o.loc, k, "iSNS is not supported by hydra (no iSNS client): remove `iSNS On`; initiators discover targets with SendTargets".into()))
            }
            v => return Err(cfg_err(&o.loc, k, format!("'{v}' must be On or Off"))),
        },
        "iSNSServerIP" => {
            o.value.parse::<std::net::IpAddr>().map_err(|_| cfg_err(&o.loc, k, format!("'{}' is not an IP address", o.value)))?;
        }
        "iSNSServerPort" => {
            directives::number::<u16>(&o.value, 1, u16::MAX).map_err(|d| cfg_err(&o.loc, k, d))?;
        }
        _ if !on_off(&o.value) => {
            return Err(cfg_err(&o.loc, k, format!("'{}' must be On or Off", o.value)));
        }
        _ => {}
    }
    cfg.warnings
        .push(warn(&o.loc, k, "ignored: hydra has no iSNS client"));
    Ok(())
}

/// Duplicate names (iSCSI names are case-insensitive).
fn check_unique_names(targets: &[(TargetConfig, Option<Location>)]) -> Result<()> {
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
    Ok(())
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

#[cfg(test)]
mod tests;
