//! Admin operations on the live registry: what tgtadm's modes and tgt-admin's file
//! operations do, carried out inside the daemon. A config file is applied all-or-nothing:
//! it is parsed and every backing store of every target it would (re)create is opened
//! before anything in the registry changes, so a bad file changes nothing. Targets whose
//! configuration did not change are left alone, sessions included.
//!
//! [`handle`] dispatches one [`Request`]; each mode has its file: `targets` (targets,
//! their LUNs and access lists), `accounts` (CHAP accounts), `portals` (portal groups
//! and ALUA), `views` (what `--op show` prints), `apply` (tgt-admin's file operations);
//! `context` holds the daemon-wide admin state they share.

mod accounts;
mod apply;
mod context;
mod portals;
mod targets;
mod views;

use std::path::PathBuf;

use crate::control::Request;
use crate::registry::Registry;
use crate::{Error, Result};

use context::parse_state;
pub use context::Context;

/// Carry out one request; the text is what the CLI prints (empty for most changes).
pub fn handle(reg: &Registry, ctx: &Context, req: Request) -> Result<String> {
    let done = |r: Result<()>| r.map(|()| String::new());
    match req {
        Request::ApplyConfig {
            path,
            mode,
            pretend,
        } => apply::apply_file(reg, ctx, &path, &mode, pretend),
        Request::TargetNew { tid, iqn } => done(targets::new(reg, tid, iqn)),
        Request::TargetDelete { tid, force } => done(targets::delete(reg, ctx, tid, force)),
        Request::TargetShow => Ok(views::targets(reg)),
        Request::TargetBind { tid, address, name } => done(targets::bind(reg, tid, address, name)),
        Request::TargetUnbind { tid, address, name } => {
            done(targets::unbind(reg, tid, address, name))
        }
        Request::TargetUpdate { tid, name, value } => {
            done(targets::update(reg, tid, &name, &value))
        }
        Request::LunNew {
            tid,
            lun,
            path,
            params,
        } => done(targets::lun_new(reg, tid, lun, path, &params)),
        Request::LunDelete { tid, lun } => done(targets::lun_delete(reg, tid, lun)),
        Request::LunUpdate { tid, lun, params } => targets::lun_update(reg, tid, lun, &params),
        Request::AccountNew { user, password } => done(accounts::new(ctx, user, password)),
        Request::AccountDelete { user } => done(accounts::delete(reg, ctx, &user)),
        Request::AccountBind {
            tid,
            user,
            outgoing,
        } => done(accounts::bind(reg, ctx, tid, user, outgoing)),
        Request::AccountUnbind {
            tid,
            user,
            outgoing,
        } => done(accounts::unbind(reg, tid, &user, outgoing)),
        Request::AccountShow => Ok(accounts::show(ctx)),
        Request::PortalShow => Ok(portals::show(reg)),
        Request::PortalUpdate { tpgt, state } => done(portals::update(reg, tpgt, &state)),
        Request::SessionShow { tid } => Ok(views::sessions(reg, tid)),
        Request::ConnectionDelete { tid, sid } => done(targets::connection_delete(reg, tid, sid)),
        Request::SysShow => Ok(views::sys(reg)),
        Request::SysUpdate { name, value } => done(sys_update(reg, &name, &value)),
        Request::SysDelete => {
            ctx.shutdown.notify_one();
            Ok(String::new())
        }
    }
}

/// `--mode sys --op update --name State --value ready|offline`.
fn sys_update(reg: &Registry, name: &str, value: &str) -> Result<()> {
    if !name.eq_ignore_ascii_case("state") {
        return Err(Error::Admin(format!(
            "system parameter {name} is not supported (only State)"
        )));
    }
    *reg.state.write().expect("lock") = parse_state(value)?;
    Ok(())
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
