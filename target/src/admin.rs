//! Admin operations on the live registry: what tgtadm's modes and tgt-admin's file
//! operations do, carried out inside the daemon. A config file is applied all-or-nothing:
//! it is parsed and every backing store of every target it would (re)create is opened
//! before anything in the registry changes, so a bad file changes nothing. Targets whose
//! configuration did not change are left alone, sessions included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::acl::{Acl, AddrPattern};
use crate::alua;
use crate::config::{self, Account, Config, TargetConfig};
use crate::control::Request;
use crate::lun::{Lun, LunSettings};
use crate::registry::{default_target_params, Portal, Registry, SessionEntry, Target, TargetState};
use crate::show;
use crate::{Error, Result};

/// What tgt-admin was asked to do with a config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// `-e`: add the targets of the file that are not there yet.
    Execute,
    /// `--update <tid|ALL>`: re-create changed targets (only idle ones unless forced),
    /// add new ones; with ALL, remove targets the file no longer has.
    Update {
        tid: Option<u32>,
        force: bool,
    },
    /// `--delete <tid|ALL>`.
    Delete {
        tid: Option<u32>,
        force: bool,
    },
    /// `--offline <tid|ALL>` / `--ready <tid|ALL>`.
    Offline {
        tid: Option<u32>,
    },
    Ready {
        tid: Option<u32>,
    },
}

/// Daemon-wide admin state besides the registry.
#[derive(Default)]
pub struct Context {
    /// Accounts created with `--mode account --op new`, by user name.
    pub accounts: Mutex<BTreeMap<String, String>>,
    /// Told when `--mode sys --op delete` asks the daemon to stop.
    pub shutdown: tokio::sync::Notify,
    /// The config each target was created from (to leave unchanged ones alone).
    pub sources: Mutex<BTreeMap<u32, TargetConfig>>,
}

/// Carry out one request; the text is what the CLI prints.
pub fn handle(reg: &Registry, ctx: &Context, req: Request) -> Result<String> {
    match req {
        Request::ApplyConfig {
            path,
            mode,
            pretend,
        } => apply_file(reg, ctx, &path, &mode, pretend),
        Request::TargetNew { tid, iqn } => {
            let mut targets = reg.targets.write().expect("lock");
            if targets.contains_key(&tid) {
                return Err(Error::Admin(format!("target {tid} already exists")));
            }
            if targets.values().any(|t| t.iqn.eq_ignore_ascii_case(&iqn)) {
                return Err(Error::Admin(format!("a target named {iqn} already exists")));
            }
            hydra_proto::text::emit(&[("TargetName", iqn.as_str())], &mut Vec::new());
            targets.insert(tid, Arc::new(Target::new(tid, iqn, reg.alua.clone())));
            Ok(String::new())
        }
        Request::TargetDelete { tid, force } => {
            delete_target(reg, ctx, tid, force)?;
            Ok(String::new())
        }
        Request::TargetShow => Ok(show::format_targets(&views(reg, ctx))),
        Request::TargetBind { tid, address, name } => {
            let t = target(reg, tid)?;
            let mut acl = t.acl.write().expect("lock");
            if let Some(a) = address {
                acl.addresses.push(parse_addr(&a)?);
            }
            if let Some(n) = name {
                acl.names.push(n);
            }
            Ok(String::new())
        }
        Request::TargetUnbind { tid, address, name } => {
            let t = target(reg, tid)?;
            let mut acl = t.acl.write().expect("lock");
            if let Some(a) = address {
                let p = parse_addr(&a)?;
                let before = acl.addresses.len();
                acl.addresses.retain(|x| *x != p);
                if acl.addresses.len() == before {
                    return Err(Error::Admin(format!(
                        "target {tid} has no initiator-address {a}"
                    )));
                }
            }
            if let Some(n) = name {
                let before = acl.names.len();
                acl.names.retain(|x| !x.eq_ignore_ascii_case(&n));
                if acl.names.len() == before {
                    return Err(Error::Admin(format!(
                        "target {tid} has no initiator-name {n}"
                    )));
                }
            }
            Ok(String::new())
        }
        Request::TargetUpdate { tid, name, value } => {
            let t = target(reg, tid)?;
            if name.eq_ignore_ascii_case("state") {
                *t.state.write().expect("lock") = parse_state(&value)?;
            } else {
                t.params
                    .write()
                    .expect("lock")
                    .set_key(&name, &value)
                    .map_err(|e| Error::Admin(format!("target {tid}: {name}={value}: {e}")))?;
            }
            Ok(String::new())
        }
        Request::LunNew {
            tid,
            lun,
            path,
            params,
        } => {
            let t = target(reg, tid)?;
            if lun == 0 {
                return Err(Error::Admin(
                    "LUN 0 is the target's controller and cannot be replaced".into(),
                ));
            }
            if t.lun(lun).is_some() {
                return Err(Error::Admin(format!("target {tid} already has LUN {lun}")));
            }
            let mut settings = LunSettings::new(path);
            for (k, v) in &params {
                config::apply_lun_param(&mut settings, k, v)
                    .map_err(|e| Error::Admin(format!("{k}={v}: {e}")))?;
            }
            let l = Arc::new(reg.attach(&t.iqn, Lun::disk(tid, lun, settings)?));
            l.join_target(&t.luns);
            let mut luns = t.luns.write().expect("lock");
            luns.insert(lun, l);
            // SPC-4 §6.33: the LUN inventory changed for everyone already logged in.
            for other in luns.values() {
                other.unit_attention_all(0x3f, 0x0e);
            }
            Ok(String::new())
        }
        Request::LunDelete { tid, lun } => {
            let t = target(reg, tid)?;
            if lun == 0 {
                return Err(Error::Admin(
                    "LUN 0 is the target's controller and cannot be deleted".into(),
                ));
            }
            let mut luns = t.luns.write().expect("lock");
            if luns.remove(&lun).is_none() {
                return Err(Error::Admin(format!("target {tid} has no LUN {lun}")));
            }
            for other in luns.values() {
                other.unit_attention_all(0x3f, 0x0e);
            }
            Ok(String::new())
        }
        Request::LunUpdate { tid, lun, params } => {
            let t = target(reg, tid)?;
            let l = t
                .lun(lun)
                .ok_or_else(|| Error::Admin(format!("target {tid} has no LUN {lun}")))?;
            if !params.is_empty() {
                return Err(Error::Admin(format!(
                    "changing {} of a live LUN is not supported: delete and re-create the LUN",
                    params
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            // No parameters: pick up a new backing size (SBC-3 §4.10: the initiators
            // learn of it by CAPACITY DATA HAS CHANGED).
            let (old, new) = l
                .refresh_capacity()
                .map_err(|e| Error::io(format!("size of LUN {lun} of target {tid}"), e))?;
            Ok(if old == new {
                String::new()
            } else {
                format!("LUN {lun} of target {tid}: {old} -> {new} bytes\n")
            })
        }
        Request::AccountNew { user, password } => {
            let mut a = ctx.accounts.lock().expect("lock");
            if a.contains_key(&user) {
                return Err(Error::Admin(format!("account {user} already exists")));
            }
            a.insert(user, password);
            Ok(String::new())
        }
        Request::AccountDelete { user } => {
            if ctx.accounts.lock().expect("lock").remove(&user).is_none() {
                return Err(Error::Admin(format!("no account {user}")));
            }
            for t in reg.all_targets() {
                t.incoming.write().expect("lock").retain(|a| a.user != user);
                let mut o = t.outgoing.write().expect("lock");
                if o.as_ref().is_some_and(|a| a.user == user) {
                    *o = None;
                }
            }
            reg.discovery_incoming
                .write()
                .expect("lock")
                .retain(|a| a.user != user);
            Ok(String::new())
        }
        Request::AccountBind {
            tid,
            user,
            outgoing,
        } => {
            let password = ctx
                .accounts
                .lock()
                .expect("lock")
                .get(&user)
                .cloned()
                .ok_or_else(|| Error::Admin(format!("no account {user}")))?;
            let acct = Account { user, password };
            match (tid, outgoing) {
                (Some(tid), false) => target(reg, tid)?.incoming.write().expect("lock").push(acct),
                (Some(tid), true) => {
                    *target(reg, tid)?.outgoing.write().expect("lock") = Some(acct)
                }
                (None, false) => reg.discovery_incoming.write().expect("lock").push(acct),
                (None, true) => *reg.discovery_outgoing.write().expect("lock") = Some(acct),
            }
            Ok(String::new())
        }
        Request::AccountUnbind {
            tid,
            user,
            outgoing,
        } => {
            match (tid, outgoing) {
                (Some(tid), false) => target(reg, tid)?
                    .incoming
                    .write()
                    .expect("lock")
                    .retain(|a| a.user != user),
                (Some(tid), true) => *target(reg, tid)?.outgoing.write().expect("lock") = None,
                (None, false) => reg
                    .discovery_incoming
                    .write()
                    .expect("lock")
                    .retain(|a| a.user != user),
                (None, true) => *reg.discovery_outgoing.write().expect("lock") = None,
            }
            Ok(String::new())
        }
        Request::AccountShow => {
            let mut s = String::from("Account list:\n");
            for u in ctx.accounts.lock().expect("lock").keys() {
                s.push_str(&format!("    {u}\n"));
            }
            Ok(s)
        }
        Request::PortalShow => {
            let mut s = String::new();
            for p in reg.portals.read().expect("lock").iter() {
                s.push_str(&format!(
                    "Portal: {},{}\n",
                    crate::iscsi::discovery::format_addr(p.addr),
                    p.tpgt
                ));
                if reg.alua.enabled() {
                    s.push_str(&format!(
                        "    ALUA state: {}\n",
                        reg.alua.state(p.tpgt).as_str()
                    ));
                }
            }
            Ok(s)
        }
        Request::PortalUpdate { tpgt, state } => {
            let st = alua::AccessState::parse(&state).ok_or_else(|| {
                Error::Admin(format!(
                    "state {state}: expected active/optimized, active/non-optimized, standby or unavailable"
                ))
            })?;
            let before = reg.alua.state(tpgt);
            reg.alua.set_state(tpgt, st)?;
            if before != st {
                announce_alua_change(reg);
            }
            Ok(String::new())
        }
        Request::SessionShow { tid } => {
            // tgt lists the newest session first.
            let mut sessions = reg.sessions(tid);
            sessions.sort_by_key(|e| std::cmp::Reverse(e.id));
            let views: Vec<show::NexusView> = sessions.iter().map(|e| nexus_view(e)).collect();
            Ok(show::format_sessions(&views))
        }
        Request::ConnectionDelete { tid, sid } => {
            let Some(e) = reg.sessions(Some(tid)).into_iter().find(|e| e.id == sid) else {
                return Err(Error::Admin(format!("target {tid} has no session {sid}")));
            };
            let _ = e.stop.send(true);
            Ok(String::new())
        }
        Request::SysShow => {
            let mut v = show::SysView::hydra(reg.state.read().expect("lock").as_str());
            v.discovery_accounts = reg
                .discovery_incoming
                .read()
                .expect("lock")
                .iter()
                .map(|a| a.user.clone())
                .collect();
            v.discovery_outgoing = reg
                .discovery_outgoing
                .read()
                .expect("lock")
                .as_ref()
                .map(|a| a.user.clone());
            Ok(show::format_sys(&v))
        }
        Request::SysUpdate { name, value } => {
            if !name.eq_ignore_ascii_case("state") {
                return Err(Error::Admin(format!(
                    "system parameter {name} is not supported (only State)"
                )));
            }
            *reg.state.write().expect("lock") = parse_state(&value)?;
            Ok(String::new())
        }
        Request::SysDelete => {
            ctx.shutdown.notify_one();
            Ok(String::new())
        }
    }
}

fn parse_state(v: &str) -> Result<TargetState> {
    match v.to_ascii_lowercase().as_str() {
        "ready" | "running" => Ok(TargetState::Ready),
        "offline" => Ok(TargetState::Offline),
        other => Err(Error::Admin(format!(
            "unknown state {other} (ready or offline)"
        ))),
    }
}

fn parse_addr(a: &str) -> Result<AddrPattern> {
    AddrPattern::parse(a).map_err(|e| Error::Admin(format!("initiator-address {a}: {e}")))
}

fn target(reg: &Registry, tid: u32) -> Result<Arc<Target>> {
    reg.target(tid)
        .ok_or_else(|| Error::Admin(format!("can't find the target {tid}")))
}

fn delete_target(reg: &Registry, ctx: &Context, tid: u32, force: bool) -> Result<()> {
    let _ = target(reg, tid)?;
    let live = reg.sessions(Some(tid));
    if !live.is_empty() && !force {
        return Err(Error::Admin(format!(
            "target {tid} has {} session(s): use --force to delete it anyway",
            live.len()
        )));
    }
    reg.targets.write().expect("lock").remove(&tid);
    ctx.sources.lock().expect("lock").remove(&tid);
    reg.stop_sessions(Some(tid));
    Ok(())
}

/// Build a target from its config, opening every backing store (no registry change).
pub fn build_target(tc: &TargetConfig, reg: &Registry) -> Result<Target> {
    let t = Target::new(tc.tid, tc.iqn.clone(), reg.alua.clone());
    {
        let mut luns = t.luns.write().expect("lock");
        for l in &tc.luns {
            let lun = Lun::disk(tc.tid, l.lun, l.settings.clone()).map_err(|e| match e {
                Error::Backing { path, source } => Error::Config {
                    file: l.location.file.clone(),
                    line: l.location.line,
                    directive: if l.direct_store {
                        "direct-store".into()
                    } else {
                        "backing-store".into()
                    },
                    detail: format!("{}: {source}", path.display()),
                },
                other => other,
            })?;
            let lun = Arc::new(reg.attach(&tc.iqn, lun));
            lun.join_target(&t.luns);
            luns.insert(l.lun, lun);
        }
    }
    *t.acl.write().expect("lock") = tc.acl.clone();
    *t.incoming.write().expect("lock") = tc.incoming_users.clone();
    *t.outgoing.write().expect("lock") = tc.outgoing_user.clone();
    let mut p = default_target_params();
    for (k, v) in &tc.params {
        p.set_key(k, v).map_err(|e| Error::Config {
            file: tc.location.file.clone(),
            line: tc.location.line,
            directive: k.clone(),
            detail: e.to_string(),
        })?;
    }
    *t.params.write().expect("lock") = p;
    if tc.offline {
        *t.state.write().expect("lock") = TargetState::Offline;
    }
    Ok(t)
}

fn in_scope(tid: u32, scope: Option<u32>) -> bool {
    scope.is_none_or(|s| s == tid)
}

/// tgt-admin's file operations, all-or-nothing.
fn apply_file(
    reg: &Registry,
    ctx: &Context,
    path: &std::path::Path,
    mode: &ApplyMode,
    pretend: bool,
) -> Result<String> {
    match mode {
        ApplyMode::Offline { tid } | ApplyMode::Ready { tid } => {
            let state = if matches!(mode, ApplyMode::Offline { .. }) {
                TargetState::Offline
            } else {
                TargetState::Ready
            };
            let mut log = String::new();
            for t in reg
                .all_targets()
                .into_iter()
                .filter(|t| in_scope(t.tid, *tid))
            {
                log.push_str(&format!(
                    "Setting target {} (tid {}) {}\n",
                    t.iqn,
                    t.tid,
                    state.as_str()
                ));
                if !pretend {
                    *t.state.write().expect("lock") = state;
                }
            }
            return Ok(log);
        }
        ApplyMode::Delete { tid, force } => {
            let mut log = String::new();
            let victims: Vec<_> = reg
                .all_targets()
                .into_iter()
                .filter(|t| in_scope(t.tid, *tid))
                .collect();
            if tid.is_some() && victims.is_empty() {
                return Err(Error::Admin(format!(
                    "can't find the target {}",
                    tid.unwrap_or(0)
                )));
            }
            for t in victims {
                let busy = !reg.sessions(Some(t.tid)).is_empty();
                if busy && !force {
                    log.push_str(&format!(
                        "Target {} (tid {}) is in use, not deleted (use --force)\n",
                        t.iqn, t.tid
                    ));
                    continue;
                }
                log.push_str(&format!("Deleting target {} (tid {})\n", t.iqn, t.tid));
                if !pretend {
                    delete_target(reg, ctx, t.tid, true)?;
                }
            }
            return Ok(log);
        }
        ApplyMode::Execute | ApplyMode::Update { .. } => {}
    }
    let cfg: Config = config::load(path)?;
    let mut log = String::new();
    for w in cfg
        .warnings
        .iter()
        .chain(cfg.targets.iter().flat_map(|t| t.warnings.iter()))
    {
        log.push_str(&format!("warning: {w}\n"));
    }
    // Decide, then build every new target (opening its LUNs), then commit.
    let sources = ctx.sources.lock().expect("lock").clone();
    let existing: BTreeMap<u32, Arc<Target>> = reg.targets.read().expect("lock").clone();
    let (scope, force, update) = match mode {
        ApplyMode::Update { tid, force } => (*tid, *force, true),
        _ => (None, false, false),
    };
    let mut create: Vec<&TargetConfig> = Vec::new();
    let mut remove: Vec<u32> = Vec::new();
    for tc in cfg.targets.iter().filter(|t| in_scope(t.tid, scope)) {
        let same_name = existing
            .values()
            .find(|t| t.iqn.eq_ignore_ascii_case(&tc.iqn));
        match same_name {
            None => {
                if existing.contains_key(&tc.tid) && !update {
                    return Err(Error::Config {
                        file: tc.location.file.clone(),
                        line: tc.location.line,
                        directive: "controller_tid".into(),
                        detail: format!(
                            "tid {} is already used by {}",
                            tc.tid, existing[&tc.tid].iqn
                        ),
                    });
                }
                if existing.contains_key(&tc.tid) {
                    remove.push(tc.tid);
                }
                create.push(tc);
            }
            Some(t) => {
                let unchanged = sources
                    .get(&t.tid)
                    .is_some_and(|s| config::same_target(s, tc));
                if !update || unchanged {
                    if !update {
                        log.push_str(&format!(
                            "Target {} already exists (tid {}), left as it is\n",
                            tc.iqn, t.tid
                        ));
                    } else if !pretend {
                        refresh_sizes(t, &mut log)?;
                    }
                    continue;
                }
                if !reg.sessions(Some(t.tid)).is_empty() && !force {
                    log.push_str(&format!(
                        "Target {} (tid {}) is in use, not updated (use --force)\n",
                        tc.iqn, t.tid
                    ));
                    continue;
                }
                remove.push(t.tid);
                create.push(tc);
            }
        }
    }
    if update && scope.is_none() {
        for t in existing.values() {
            if !cfg
                .targets
                .iter()
                .any(|tc| tc.iqn.eq_ignore_ascii_case(&t.iqn))
            {
                if !reg.sessions(Some(t.tid)).is_empty() && !force {
                    log.push_str(&format!(
                        "Target {} (tid {}) is in use, not removed (use --force)\n",
                        t.iqn, t.tid
                    ));
                    continue;
                }
                remove.push(t.tid);
            }
        }
    }
    let built: Vec<(TargetConfig, Target)> = create
        .iter()
        .map(|tc| build_target(tc, reg).map(|t| ((*tc).clone(), t)))
        .collect::<Result<_>>()?;
    for tid in &remove {
        log.push_str(&format!("Removing target tid {tid}\n"));
    }
    for (tc, _) in &built {
        log.push_str(&format!(
            "Adding target {} (tid {}) with {} LUN(s)\n",
            tc.iqn,
            tc.tid,
            tc.luns.len()
        ));
    }
    let regrouped = plan_portal_groups(reg, &cfg, &mut log)?;
    if pretend {
        return Ok(log);
    }
    if let Some(portals) = regrouped {
        *reg.portals.write().expect("lock") = portals;
        let groups: Vec<_> = cfg.portal_groups.iter().map(|g| (g.tag, g.state)).collect();
        set_alua(reg, &groups);
    }
    {
        let mut targets = reg.targets.write().expect("lock");
        let mut src = ctx.sources.lock().expect("lock");
        for tid in &remove {
            targets.remove(tid);
            src.remove(tid);
        }
        for (tc, t) in built {
            src.insert(tc.tid, tc.clone());
            targets.insert(tc.tid, Arc::new(t));
        }
        *reg.discovery_incoming.write().expect("lock") = cfg.incoming_discovery_users.clone();
        *reg.discovery_outgoing.write().expect("lock") = cfg.outgoing_discovery_user.clone();
    }
    for tid in &remove {
        reg.stop_sessions(Some(*tid));
    }
    Ok(log)
}

/// The portals with the tags of the file's `portal-group` lines (None: the file has
/// none, nothing changes). Tags cannot move under logged-in sessions (their I_T nexuses
/// are named by the tag); states can.
fn plan_portal_groups(
    reg: &Registry,
    cfg: &Config,
    log: &mut String,
) -> Result<Option<Vec<Portal>>> {
    if cfg.portal_groups.is_empty() {
        return Ok(None);
    }
    let current = reg.portals.read().expect("lock").clone();
    let new = alua::regroup(&current, &cfg.portal_groups)?;
    if new != current && !reg.sessions(None).is_empty() {
        let g = &cfg.portal_groups[0];
        return Err(Error::Config {
            file: g.location.file.clone(),
            line: g.location.line,
            directive: "portal-group".into(),
            detail:
                "portal group tags cannot change while initiators are logged in: log them out first"
                    .into(),
        });
    }
    for g in &cfg.portal_groups {
        log.push_str(&format!(
            "Portal group {}: {} ({})\n",
            g.tag,
            g.portals
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            g.state.as_str()
        ));
    }
    Ok(Some(new))
}

/// Install ALUA groups and states; a state that changed is announced to every nexus
/// with ASYMMETRIC ACCESS STATE CHANGED (2A/06, SPC-4 §5.15.2.5).
fn set_alua(reg: &Registry, groups: &[(u16, alua::AccessState)]) {
    let before = reg.alua.groups();
    reg.alua.configure(groups);
    if before != reg.alua.groups() {
        announce_alua_change(reg);
    }
}

/// ASYMMETRIC ACCESS STATE CHANGED (2A/06) for every nexus of every LUN.
fn announce_alua_change(reg: &Registry) {
    for t in reg.all_targets() {
        for l in t.luns.read().expect("lock").values() {
            l.unit_attention_all(0x2a, 0x06);
        }
    }
}

/// `tgt-admin --update` of an unchanged target: backing stores that grew (or shrank)
/// get their new size, sessions stay (the LUN raises CAPACITY DATA HAS CHANGED).
fn refresh_sizes(t: &Target, log: &mut String) -> Result<()> {
    for l in t.luns.read().expect("lock").values() {
        let (old, new) = l
            .refresh_capacity()
            .map_err(|e| Error::io(format!("size of LUN {} of {}", l.number(), t.iqn), e))?;
        if old != new {
            log.push_str(&format!(
                "Target {} (tid {}) LUN {}: {old} -> {new} bytes\n",
                t.iqn,
                t.tid,
                l.number()
            ));
        }
    }
    Ok(())
}

/// One I_T nexus as `show` prints it (one connection per session at ERL 0, MC/S off).
fn nexus_view(s: &SessionEntry) -> show::NexusView {
    show::NexusView {
        id: s.id,
        initiator: s.nexus.initiator.clone(),
        alias: s.alias.clone(),
        connections: vec![show::ConnView {
            cid: s.cid as u64,
            ip: s.peer.ip().to_string(),
        }],
    }
}

/// Snapshot of every target for `show`.
pub fn views(reg: &Registry, _ctx: &Context) -> Vec<show::TargetView> {
    let sessions = reg.sessions(None);
    reg.all_targets()
        .iter()
        .map(|t| {
            let acl: Acl = t.acl.read().expect("lock").clone();
            show::TargetView {
                tid: t.tid,
                iqn: t.iqn.clone(),
                driver: "iscsi".into(),
                state: t.state.read().expect("lock").as_str().into(),
                nexuses: sessions
                    .iter()
                    .filter(|s| s.tid == t.tid)
                    .map(|s| nexus_view(s))
                    .collect(),
                luns: t
                    .luns
                    .read()
                    .expect("lock")
                    .values()
                    .map(|l| {
                        let s = l.settings();
                        show::LunView {
                            lun: l.number(),
                            type_: if s.is_some() {
                                "disk".into()
                            } else {
                                "controller".into()
                            },
                            scsi_id: l.scsi_id(),
                            scsi_sn: l.scsi_sn(),
                            size_bytes: l.size_bytes(),
                            block_size: s.map(|s| s.block_size).unwrap_or(1),
                            online: s.is_none_or(|s| s.online),
                            removable: s.is_some_and(|s| s.removable),
                            prevent_removal: false,
                            readonly: s.is_some_and(|s| s.readonly),
                            swp: false,
                            thin_provisioning: s.is_some_and(|s| s.thin_provisioning),
                            backing_type: if s.is_some() {
                                "rdwr".into()
                            } else {
                                "null".into()
                            },
                            backing_path: s
                                .map(|s| s.path.display().to_string())
                                .unwrap_or_else(|| "None".into()),
                            backing_flags: s
                                .map(|s| show::backing_flags(s.o_direct, s.o_sync))
                                .unwrap_or_default(),
                        }
                    })
                    .collect(),
                accounts: t
                    .incoming
                    .read()
                    .expect("lock")
                    .iter()
                    .map(|a| a.user.clone())
                    .collect(),
                outgoing_account: t
                    .outgoing
                    .read()
                    .expect("lock")
                    .as_ref()
                    .map(|a| a.user.clone()),
                acl_addresses: acl.addresses.iter().map(|a| a.to_string()).collect(),
                acl_names: acl.names.clone(),
            }
        })
        .collect()
}

/// The state directory default (`$HYDRA_TGTD_STATE_DIR` overrides it).
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("HYDRA_TGTD_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/lib/hydra-tgtd".into())
}

/// The run directory default, overridable for tests.
pub fn default_run_dir() -> PathBuf {
    std::env::var_os("HYDRA_TGTD_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::control::DEFAULT_RUN_DIR.into())
}
