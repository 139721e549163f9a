//! The daemon's live state: targets with their LUNs, ACLs, accounts and login keys,
//! the portals and their portal group tags, and the sessions logged in. Everything the
//! control socket changes lives here, behind short-held std locks (never held across an
//! `.await` or an I/O), so admin changes never stall the data path of other targets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use hydra_proto::negotiate::LocalParams;
use tokio::sync::watch;

use crate::acl::Acl;
use crate::alua::Alua;
use crate::config::Account;
use crate::lun::{Lun, LunMap};
use crate::nexus::ItNexus;

/// Whether a target (or the whole daemon) accepts new work (tgtadm `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Ready,
    Offline,
}

impl TargetState {
    /// tgtadm's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Ready => "ready",
            TargetState::Offline => "offline",
        }
    }
}

/// One iSCSI target (tgtadm "--mode target").
pub struct Target {
    pub tid: u32,
    pub iqn: String,
    pub state: RwLock<TargetState>,
    /// LUN 0 (the controller) included. Shared with the LUNs themselves, which copy
    /// between each other (EXTENDED COPY).
    pub luns: Arc<LunMap>,
    pub acl: RwLock<Acl>,
    pub incoming: RwLock<Vec<Account>>,
    pub outgoing: RwLock<Option<Account>>,
    /// Login keys from targets.conf / tgtadm, applied to new sessions.
    pub params: RwLock<LocalParams>,
}

impl Target {
    /// A target with only its LUN 0 controller, open ACL, no accounts, default keys;
    /// its LUNs follow the daemon's port groups `alua`.
    pub fn new(tid: u32, iqn: String, alua: Arc<Alua>) -> Target {
        let mut map = BTreeMap::new();
        map.insert(0, Arc::new(Lun::controller(tid).with_alua(alua)));
        let luns = Arc::new(RwLock::new(map));
        for l in luns.read().expect("lock").values() {
            l.join_target(&luns);
        }
        Target {
            tid,
            iqn,
            state: RwLock::new(TargetState::Ready),
            luns,
            acl: RwLock::new(Acl::open()),
            incoming: RwLock::new(Vec::new()),
            outgoing: RwLock::new(None),
            params: RwLock::new(default_target_params()),
        }
    }

    /// The LUN numbers, in order (for REPORT LUNS).
    pub fn lun_numbers(&self) -> Vec<u64> {
        self.luns.read().expect("lock").keys().copied().collect()
    }

    /// One LUN by number.
    pub fn lun(&self, n: u64) -> Option<Arc<Lun>> {
        self.luns.read().expect("lock").get(&n).cloned()
    }
}

/// hydra's defaults for what a target offers in login: larger segments than tgt's 8 KiB
/// (fewer PDUs per MiB is most of the sequential-read speed), the RFC defaults elsewhere.
pub fn default_target_params() -> LocalParams {
    LocalParams {
        max_recv_data_segment_length: 262_144,
        max_burst_length: 1_048_576,
        first_burst_length: 262_144,
        max_outstanding_r2t: 8,
        ..LocalParams::default()
    }
}

/// A listening portal and its portal group tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    pub addr: SocketAddr,
    pub tpgt: u16,
}

/// What the registry knows of one live session (for show, reinstatement and stop).
pub struct SessionEntry {
    /// tgtadm's I_T nexus id (a small daemon-wide counter, as tgt prints it).
    pub id: u64,
    pub tsih: u16,
    pub tid: u32,
    pub nexus: ItNexus,
    pub alias: Option<String>,
    pub peer: SocketAddr,
    pub cid: u16,
    /// Set to true to make the session's connection close (reinstatement, delete, stop).
    pub stop: watch::Sender<bool>,
}

/// The whole live state of one daemon.
pub struct Registry {
    pub targets: RwLock<BTreeMap<u32, Arc<Target>>>,
    pub portals: RwLock<Vec<Portal>>,
    pub discovery_incoming: RwLock<Vec<Account>>,
    pub discovery_outgoing: RwLock<Option<Account>>,
    pub state: RwLock<TargetState>,
    /// Target port groups and their ALUA states (every LUN shares it).
    pub alua: Arc<Alua>,
    /// The daemon's state directory (APTPL); unset: reservations are not persisted.
    pub state_dir: std::sync::OnceLock<std::path::PathBuf>,
    sessions: Mutex<Vec<Arc<SessionEntry>>>,
    next_tsih: AtomicU16,
    next_session_id: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            targets: RwLock::new(BTreeMap::new()),
            portals: RwLock::new(Vec::new()),
            discovery_incoming: RwLock::new(Vec::new()),
            discovery_outgoing: RwLock::new(None),
            state: RwLock::new(TargetState::Ready),
            alua: Arc::new(Alua::default()),
            state_dir: Default::default(),
            sessions: Mutex::new(Vec::new()),
            next_tsih: AtomicU16::new(1),
            next_session_id: AtomicU64::new(1),
        }
    }
}

impl Registry {
    /// Look a target up by IQN (iSCSI names compare case-insensitively, RFC 3722).
    pub fn target_by_name(&self, iqn: &str) -> Option<Arc<Target>> {
        self.targets
            .read()
            .expect("lock")
            .values()
            .find(|t| t.iqn.eq_ignore_ascii_case(iqn))
            .cloned()
    }

    /// Look a target up by tid.
    pub fn target(&self, tid: u32) -> Option<Arc<Target>> {
        self.targets.read().expect("lock").get(&tid).cloned()
    }

    /// All targets in tid order.
    pub fn all_targets(&self) -> Vec<Arc<Target>> {
        self.targets
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    /// A fresh TSIH: never 0 (RFC 7143 §11.12.6), unique among live sessions.
    pub fn alloc_tsih(&self) -> u16 {
        loop {
            let t = self.next_tsih.fetch_add(1, Ordering::Relaxed);
            if t != 0
                && !self
                    .sessions
                    .lock()
                    .expect("lock")
                    .iter()
                    .any(|s| s.tsih == t)
            {
                return t;
            }
        }
    }

    /// Record a new session and return its entry and the stop signal receiver. Any
    /// existing session of the same initiator port on the same target is told to stop
    /// first: that is session reinstatement (RFC 7143 §6.3.5).
    #[allow(clippy::too_many_arguments)]
    pub fn add_session(
        &self,
        tsih: u16,
        tid: u32,
        nexus: ItNexus,
        alias: Option<String>,
        peer: SocketAddr,
        cid: u16,
    ) -> (Arc<SessionEntry>, watch::Receiver<bool>) {
        let (stop, rx) = watch::channel(false);
        let entry = Arc::new(SessionEntry {
            id: self.next_session_id.fetch_add(1, Ordering::Relaxed),
            tsih,
            tid,
            nexus,
            alias,
            peer,
            cid,
            stop,
        });
        let mut s = self.sessions.lock().expect("lock");
        s.retain(|old| {
            let same = old.tid == tid
                && old.nexus.isid == entry.nexus.isid
                && old
                    .nexus
                    .initiator
                    .eq_ignore_ascii_case(&entry.nexus.initiator);
            if same {
                tracing::info!(
                    "reinstating session: {} on tid {} replaces tsih {}",
                    entry.nexus,
                    tid,
                    old.tsih
                );
                let _ = old.stop.send(true);
            }
            !same
        });
        s.push(entry.clone());
        (entry, rx)
    }

    /// Forget a session (its connection closed).
    pub fn remove_session(&self, id: u64) {
        self.sessions.lock().expect("lock").retain(|s| s.id != id);
    }

    /// Live sessions, optionally of one target.
    pub fn sessions(&self, tid: Option<u32>) -> Vec<Arc<SessionEntry>> {
        let s = self.sessions.lock().expect("lock");
        s.iter()
            .filter(|e| tid.is_none_or(|t| e.tid == t))
            .cloned()
            .collect()
    }

    /// Tell every session of a target (or all, with None) to close.
    pub fn stop_sessions(&self, tid: Option<u32>) {
        for s in self.sessions(tid) {
            let _ = s.stop.send(true);
        }
    }

    /// Give a new disk LUN of target `iqn` the daemon's port groups and its APTPL file
    /// (`<state dir>/pr/<iqn>/<lun>.json`).
    pub fn attach(&self, iqn: &str, lun: Lun) -> Lun {
        let lun = lun.with_alua(self.alua.clone());
        match self.state_dir.get() {
            Some(d) => {
                let file = d
                    .join("pr")
                    .join(iqn)
                    .join(format!("{}.json", lun.number()));
                lun.with_reservations_file(file)
            }
            None => lun,
        }
    }

    /// The portal group tag of the portal a connection arrived on.
    pub fn tpgt_for(&self, local: SocketAddr) -> u16 {
        let portals = self.portals.read().expect("lock");
        portals
            .iter()
            .find(|p| p.addr == local)
            .or_else(|| {
                portals
                    .iter()
                    .find(|p| p.addr.port() == local.port() && p.addr.ip().is_unspecified())
            })
            .map(|p| p.tpgt)
            .unwrap_or(1)
    }
}
