//! tgt-admin's file operations (`-e`, `--update`, `--delete`, `--offline`, `--ready`),
//! all-or-nothing: decide what changes, build every new target (opening its backing
//! stores), and only then change the registry.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::context::Context;
use super::{portals, targets};
use crate::config::{self, Config, TargetConfig};
use crate::control::ApplyMode;
use crate::registry::{Registry, Target, TargetState};
use crate::{Error, Result};

/// Carry out `mode` over the file at `path`; the text is tgt-admin's log of what was
/// (or, with `pretend`, would be) done.
pub(super) fn apply_file(
    reg: &Registry,
    ctx: &Context,
    path: &Path,
    mode: &ApplyMode,
    pretend: bool,
) -> Result<String> {
    match mode {
        ApplyMode::Offline { tid } => Ok(set_states(reg, *tid, TargetState::Offline, pretend)),
        ApplyMode::Ready { tid } => Ok(set_states(reg, *tid, TargetState::Ready, pretend)),
        ApplyMode::Delete { tid, force } => delete_targets(reg, ctx, *tid, *force, pretend),
        ApplyMode::Execute => apply_config(reg, ctx, path, Scope::add(), pretend),
        ApplyMode::Update { tid, force } => {
            apply_config(reg, ctx, path, Scope::update(*tid, *force), pretend)
        }
    }
}

fn in_scope(tid: u32, scope: Option<u32>) -> bool {
    scope.is_none_or(|s| s == tid)
}

/// `--offline` / `--ready`: the state of every target in scope.
fn set_states(reg: &Registry, tid: Option<u32>, state: TargetState, pretend: bool) -> String {
    let mut log = String::new();
    for t in reg
        .all_targets()
        .into_iter()
        .filter(|t| in_scope(t.tid, tid))
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
    log
}

/// `--delete`: busy targets are kept unless forced.
fn delete_targets(
    reg: &Registry,
    ctx: &Context,
    tid: Option<u32>,
    force: bool,
    pretend: bool,
) -> Result<String> {
    let mut log = String::new();
    let victims: Vec<_> = reg
        .all_targets()
        .into_iter()
        .filter(|t| in_scope(t.tid, tid))
        .collect();
    if let (Some(tid), true) = (tid, victims.is_empty()) {
        return Err(Error::Admin(format!("can't find the target {tid}")));
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
            targets::delete(reg, ctx, t.tid, true)?;
        }
    }
    Ok(log)
}

/// What `-e` and `--update` may touch.
struct Scope {
    /// `--update`: changed targets are re-created (`-e` only adds).
    update: bool,
    /// `--update TID`; None is every target (with `--update ALL`, targets the file no
    /// longer has are removed).
    tid: Option<u32>,
    /// Re-create or remove targets with sessions too.
    force: bool,
}

impl Scope {
    fn add() -> Scope {
        Scope {
            update: false,
            tid: None,
            force: false,
        }
    }

    fn update(tid: Option<u32>, force: bool) -> Scope {
        Scope {
            update: true,
            tid,
            force,
        }
    }
}

/// What a config file changes: targets to build and add, tids to remove first.
#[derive(Default)]
struct Plan<'a> {
    create: Vec<&'a TargetConfig>,
    remove: Vec<u32>,
}

/// `-e` and `--update`.
fn apply_config(
    reg: &Registry,
    ctx: &Context,
    path: &Path,
    scope: Scope,
    pretend: bool,
) -> Result<String> {
    let cfg: Config = config::load(path)?;
    let mut log = String::new();
    for w in cfg
        .warnings
        .iter()
        .chain(cfg.targets.iter().flat_map(|t| t.warnings.iter()))
    {
        log.push_str(&format!("warning: {w}\n"));
    }
    let plan = decide(reg, ctx, &cfg, &scope, pretend, &mut log)?;
    let built: Vec<(TargetConfig, Target)> = plan
        .create
        .iter()
        .map(|tc| targets::build_target(tc, reg).map(|t| ((*tc).clone(), t)))
        .collect::<Result<_>>()?;
    for tid in &plan.remove {
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
    let regrouped = portals::plan(reg, &cfg, &mut log)?;
    if pretend {
        return Ok(log);
    }
    if let Some(p) = regrouped {
        portals::commit(reg, p, &cfg.portal_groups);
    }
    commit(reg, ctx, &cfg, &plan.remove, built);
    Ok(log)
}

/// Which targets of the file are added or re-created and which existing ones go. An
/// unchanged target is left alone (`--update` re-reads its backing sizes); a busy one
/// is left alone unless forced.
fn decide<'a>(
    reg: &Registry,
    ctx: &Context,
    cfg: &'a Config,
    scope: &Scope,
    pretend: bool,
    log: &mut String,
) -> Result<Plan<'a>> {
    let sources = ctx.sources.lock().expect("lock").clone();
    let existing: BTreeMap<u32, Arc<Target>> = reg.targets.read().expect("lock").clone();
    let busy = |t: &Target| !reg.sessions(Some(t.tid)).is_empty() && !scope.force;
    let mut plan = Plan::default();
    for tc in cfg.targets.iter().filter(|t| in_scope(t.tid, scope.tid)) {
        let same_name = existing
            .values()
            .find(|t| t.iqn.eq_ignore_ascii_case(&tc.iqn));
        let Some(t) = same_name else {
            if let Some(other) = existing.get(&tc.tid) {
                if !scope.update {
                    return Err(Error::Config {
                        file: tc.location.file.clone(),
                        line: tc.location.line,
                        directive: "controller_tid".into(),
                        detail: format!("tid {} is already used by {}", tc.tid, other.iqn),
                    });
                }
                plan.remove.push(tc.tid);
            }
            plan.create.push(tc);
            continue;
        };
        let unchanged = sources
            .get(&t.tid)
            .is_some_and(|s| config::same_target(s, tc));
        if !scope.update {
            log.push_str(&format!(
                "Target {} already exists (tid {}), left as it is\n",
                tc.iqn, t.tid
            ));
        } else if unchanged {
            if !pretend {
                refresh_sizes(t, log)?;
            }
        } else if busy(t) {
            log.push_str(&format!(
                "Target {} (tid {}) is in use, not updated (use --force)\n",
                tc.iqn, t.tid
            ));
        } else {
            plan.remove.push(t.tid);
            plan.create.push(tc);
        }
    }
    if scope.update && scope.tid.is_none() {
        for t in existing.values() {
            let in_file = cfg
                .targets
                .iter()
                .any(|tc| tc.iqn.eq_ignore_ascii_case(&t.iqn));
            if in_file {
                continue;
            }
            if busy(t) {
                log.push_str(&format!(
                    "Target {} (tid {}) is in use, not removed (use --force)\n",
                    t.iqn, t.tid
                ));
            } else {
                plan.remove.push(t.tid);
            }
        }
    }
    Ok(plan)
}

/// Swap the targets in one step under the registry's lock, then end the sessions of
/// the removed ones.
fn commit(
    reg: &Registry,
    ctx: &Context,
    cfg: &Config,
    remove: &[u32],
    built: Vec<(TargetConfig, Target)>,
) {
    {
        let mut targets = reg.targets.write().expect("lock");
        let mut src = ctx.sources.lock().expect("lock");
        for tid in remove {
            targets.remove(tid);
            src.remove(tid);
        }
        for (tc, t) in built {
            targets.insert(tc.tid, Arc::new(t));
            src.insert(tc.tid, tc);
        }
        *reg.discovery_incoming.write().expect("lock") = cfg.incoming_discovery_users.clone();
        *reg.discovery_outgoing.write().expect("lock") = cfg.outgoing_discovery_user.clone();
    }
    for tid in remove {
        reg.stop_sessions(Some(*tid));
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
