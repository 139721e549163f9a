//! `--mode target`, `--mode logicalunit` and `--mode conn`: targets, their LUNs, their
//! access lists and login keys, and building a target from targets.conf.

use std::path::PathBuf;
use std::sync::Arc;

use super::context::{parse_addr, parse_state, target, Context};
use crate::config::{self, TargetConfig};
use crate::lun::{Lun, LunSettings};
use crate::registry::{default_target_params, Registry, Target, TargetState};
use crate::{Error, Result};

/// `--op new --tid T --targetname IQN`.
pub(super) fn new(reg: &Registry, tid: u32, iqn: String) -> Result<()> {
    let mut targets = reg.targets.write().expect("lock");
    if targets.contains_key(&tid) {
        return Err(Error::Admin(format!("target {tid} already exists")));
    }
    if targets.values().any(|t| t.iqn.eq_ignore_ascii_case(&iqn)) {
        return Err(Error::Admin(format!("a target named {iqn} already exists")));
    }
    hydra_proto::text::emit(&[("TargetName", iqn.as_str())], &mut Vec::new());
    targets.insert(tid, Arc::new(Target::new(tid, iqn, reg.alua.clone())));
    Ok(())
}

/// `--op delete`: refused while sessions are logged in unless forced.
pub(super) fn delete(reg: &Registry, ctx: &Context, tid: u32, force: bool) -> Result<()> {
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

/// `--op bind --initiator-address A | --initiator-name N`.
pub(super) fn bind(
    reg: &Registry,
    tid: u32,
    address: Option<String>,
    name: Option<String>,
) -> Result<()> {
    let t = target(reg, tid)?;
    let mut acl = t.acl.write().expect("lock");
    if let Some(a) = address {
        acl.addresses.push(parse_addr(&a)?);
    }
    if let Some(n) = name {
        acl.names.push(n);
    }
    Ok(())
}

/// `--op unbind`: an entry the list does not have is an error.
pub(super) fn unbind(
    reg: &Registry,
    tid: u32,
    address: Option<String>,
    name: Option<String>,
) -> Result<()> {
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
    Ok(())
}

/// `--op update --name K --value V`: a login key, or `state`.
pub(super) fn update(reg: &Registry, tid: u32, name: &str, value: &str) -> Result<()> {
    let t = target(reg, tid)?;
    if name.eq_ignore_ascii_case("state") {
        *t.state.write().expect("lock") = parse_state(value)?;
    } else {
        t.params
            .write()
            .expect("lock")
            .set_key(name, value)
            .map_err(|e| Error::Admin(format!("target {tid}: {name}={value}: {e}")))?;
    }
    Ok(())
}

/// `--mode logicalunit --op new`.
pub(super) fn lun_new(
    reg: &Registry,
    tid: u32,
    lun: u64,
    path: PathBuf,
    params: &[(String, String)],
) -> Result<()> {
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
    for (k, v) in params {
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
    Ok(())
}

/// `--mode logicalunit --op delete`.
pub(super) fn lun_delete(reg: &Registry, tid: u32, lun: u64) -> Result<()> {
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
    // SPC-4 §6.33, as for a new LUN.
    for other in luns.values() {
        other.unit_attention_all(0x3f, 0x0e);
    }
    Ok(())
}

/// `--mode logicalunit --op update`: without parameters, re-read the backing size.
pub(super) fn lun_update(
    reg: &Registry,
    tid: u32,
    lun: u64,
    params: &[(String, String)],
) -> Result<String> {
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

/// `--mode conn --op delete`: end one session.
pub(super) fn connection_delete(reg: &Registry, tid: u32, sid: u64) -> Result<()> {
    let Some(e) = reg.sessions(Some(tid)).into_iter().find(|e| e.id == sid) else {
        return Err(Error::Admin(format!("target {tid} has no session {sid}")));
    };
    let _ = e.stop.send(true);
    Ok(())
}

/// Build a target from its config, opening every backing store (no registry change).
pub(super) fn build_target(tc: &TargetConfig, reg: &Registry) -> Result<Target> {
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
