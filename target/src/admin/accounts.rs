//! `--mode account`: CHAP accounts, bound to a target (incoming, or the one outgoing
//! account for mutual CHAP) or, without a tid, to discovery sessions.

use super::context::{target, Context};
use crate::config::Account;
use crate::registry::Registry;
use crate::{Error, Result};

pub(super) fn new(ctx: &Context, user: String, password: String) -> Result<()> {
    let mut a = ctx.accounts.lock().expect("lock");
    if a.contains_key(&user) {
        return Err(Error::Admin(format!("account {user} already exists")));
    }
    a.insert(user, password);
    Ok(())
}

/// Deleting an account unbinds it everywhere.
pub(super) fn delete(reg: &Registry, ctx: &Context, user: &str) -> Result<()> {
    if ctx.accounts.lock().expect("lock").remove(user).is_none() {
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
    Ok(())
}

pub(super) fn bind(
    reg: &Registry,
    ctx: &Context,
    tid: Option<u32>,
    user: String,
    outgoing: bool,
) -> Result<()> {
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
        (Some(tid), true) => *target(reg, tid)?.outgoing.write().expect("lock") = Some(acct),
        (None, false) => reg.discovery_incoming.write().expect("lock").push(acct),
        (None, true) => *reg.discovery_outgoing.write().expect("lock") = Some(acct),
    }
    Ok(())
}

pub(super) fn unbind(reg: &Registry, tid: Option<u32>, user: &str, outgoing: bool) -> Result<()> {
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
    Ok(())
}

pub(super) fn show(ctx: &Context) -> String {
    let mut s = String::from("Account list:\n");
    for u in ctx.accounts.lock().expect("lock").keys() {
        s.push_str(&format!("    {u}\n"));
    }
    s
}
