//! The admin state every mode shares ([`Context`]) and the lookups and value parsers
//! they have in common.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::acl::AddrPattern;
use crate::config::TargetConfig;
use crate::registry::{Registry, Target, TargetState};
use crate::{Error, Result};

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

pub(super) fn parse_state(v: &str) -> Result<TargetState> {
    match v.to_ascii_lowercase().as_str() {
        "ready" | "running" => Ok(TargetState::Ready),
        "offline" => Ok(TargetState::Offline),
        other => Err(Error::Admin(format!(
            "unknown state {other} (ready or offline)"
        ))),
    }
}

pub(super) fn parse_addr(a: &str) -> Result<AddrPattern> {
    AddrPattern::parse(a).map_err(|e| Error::Admin(format!("initiator-address {a}: {e}")))
}

pub(super) fn target(reg: &Registry, tid: u32) -> Result<Arc<Target>> {
    reg.target(tid)
        .ok_or_else(|| Error::Admin(format!("can't find the target {tid}")))
}
