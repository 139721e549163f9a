//! Which session LUNs become which maps: multipathd's `ev_add_path` / `ev_remove_path`
//! and `coalesce_paths` for hydra's sessions.
//!
//! After every change of the session registry (a login, a logout, a rescan) the builder
//! compares the LUNs of the logged-in sessions with the maps ([`Node::reconcile`]):
//! - a path is one LUN of one session, id `(sid << 32) | lun`, named `s{sid}l{lun}`
//!   (hydra's `sdX`), H:C:T:L `{sid}:0:0:{lun}`; only disks (peripheral type 0) with a
//!   WWID and a capacity are paths;
//! - a path of a WWID that has a map joins it; otherwise the map is made when the
//!   blacklist lets the path through (`blacklist`, `blacklist_exceptions`: vendor/product,
//!   wwid, protocol `scsi:iscsi`) and `find_multipaths` agrees: `off`/`greedy` always,
//!   `on`/`smart` when the WWID is in the wwids file or has two paths (hydra has no
//!   uevent timer, so `smart` waits for the second path like `on`), `strict` only when
//!   it is in the wwids file; `multipathd add map` makes it whatever find_multipaths says.
//!   A new map's WWID goes into the wwids file (`remember_wwid`);
//! - the map's name: the `multipaths` entry's alias, else with `user_friendly_names` the
//!   bindings file's alias (a new one, `mpatha`, `mpathb`, …, is written there), else
//!   the WWID;
//! - a session logged out takes its paths out of their maps. A session that is only
//!   reconnecting (same sid, Down then Up) keeps its paths: the map's driver sees the
//!   session's state and fails and reinstates the path;
//! - the last path gone: multipathd's `flush_map_nopaths`. The map is removed when its
//!   device is not open; when it is (a mounted filesystem), the map stays, holding I/O as
//!   `no_path_retry` says, and a path of the same WWID logging in again joins it. With
//!   `flush_on_last_del yes` queueing is turned off first, so held I/O fails at once.
//!   "Open" is what the kernel says about an exclusive open of the map's loop device
//!   (a mounted filesystem claims it); NBD clients do not count;
//! - `multipath -f`/`-F` and `multipathd del map` remove unused maps; a flushed map is
//!   not made again from the same paths until a new path of its WWID appears, or
//!   `add map`, or `reconfigure` (as multipathd, which waits for the next uevent).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hydra_initiator::ipc::Lun;
use hydra_initiator::iscsid::Daemon;
use hydra_initiator::registry::SessionEntry;
use hydra_initiator::Session;
use tokio::sync::{Mutex, Notify};

use super::device::{Layout, MapDevice};
use super::NodeOptions;
use crate::bindings::Bindings;
use crate::config::{
    Config, FindMultipaths, Globals, PathFacts, PathIdentity, ReservationKey, Settings,
};
use crate::driver::{path_id, CheckerOptions, Geometry, MapHandle};
use crate::map::{MapConfig, PathId, PathInfo};
use crate::show::{DeviceFacts, MapSnapshot, PathFacts as ShowPathFacts};
use crate::wwids::Wwids;
use crate::{Error, Result};

/// The protocol multipath.conf's `protocol` rules see for hydra's paths.
pub const PROTOCOL: &str = "scsi:iscsi";

/// The node daemon's state: the iSCSI daemon it wraps and the maps over its sessions.
pub struct Node {
    iscsid: Arc<Daemon>,
    opts: NodeOptions,
    state: Mutex<State>,
    shutdown: Notify,
}

pub(super) struct State {
    pub(super) config: Config,
    pub(super) globals: Globals,
    pub(super) bindings: Bindings,
    pub(super) wwids: Wwids,
    /// By WWID.
    pub(super) maps: BTreeMap<String, MapEntry>,
    /// WWIDs flushed by an operator, with the paths they had then.
    flushed: HashMap<String, BTreeSet<PathId>>,
    /// WWIDs asked for with `add map` (past find_multipaths).
    forced: HashSet<String>,
}

/// One map and what the node knows about it.
pub(super) struct MapEntry {
    pub(super) alias: String,
    pub(super) wwid: String,
    pub(super) handle: MapHandle,
    pub(super) device: Option<MapDevice>,
    pub(super) cfg: MapConfig,
    pub(super) settings: Settings,
    /// The LUN as its first path showed it (INQUIRY strings).
    pub(super) lun: Lun,
    pub(super) geometry: Geometry,
    pub(super) paths: BTreeMap<PathId, PathRec>,
}

/// One path of a map.
#[derive(Clone)]
pub(super) struct PathRec {
    pub(super) sid: u32,
    pub(super) lun: u64,
    pub(super) name: String,
    pub(super) portal: String,
    pub(super) session: Arc<Session>,
}

/// A session LUN that could be a path.
struct Candidate {
    id: PathId,
    entry: Arc<SessionEntry>,
    lun: Lun,
}

/// The name hydra gives a path (its `sdX`).
pub fn path_name(sid: u32, lun: u64) -> String {
    format!("s{sid}l{lun}")
}

/// Whether `name` is the path of LUN `lun` of session `sid`: its name (`s1l0`) or its
/// H:C:T:L (`1:0:0:0`).
pub(super) fn names_path(name: &str, sid: u32, lun: u64) -> bool {
    path_name(sid, lun) == name || format!("{sid}:0:0:{lun}") == name
}

fn load_state(opts: &NodeOptions) -> Result<State> {
    let loaded = Config::load(&opts.config_file, &opts.config_dir)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let config = loaded.config;
    let globals = config.globals();
    let (bindings, warnings) = Bindings::load(Path::new(&globals.bindings_file), Some(&config))?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let (wwids, warnings) = Wwids::load(Path::new(&globals.wwids_file))?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(State {
        config,
        globals,
        bindings,
        wwids,
        maps: BTreeMap::new(),
        flushed: HashMap::new(),
        forced: HashSet::new(),
    })
}

impl Node {
    /// Read multipath.conf, the bindings and wwids files.
    pub fn new(iscsid: Arc<Daemon>, opts: NodeOptions) -> Result<Arc<Node>> {
        let state = load_state(&opts)?;
        Ok(Arc::new(Node {
            iscsid,
            opts,
            state: Mutex::new(state),
            shutdown: Notify::new(),
        }))
    }

    pub fn iscsid(&self) -> &Arc<Daemon> {
        &self.iscsid
    }

    pub fn options(&self) -> &NodeOptions {
        &self.opts
    }

    /// Resolves once `multipathd shutdown` asked the daemon to stop.
    pub(super) async fn shutdown_requested(&self) {
        self.shutdown.notified().await
    }

    pub(super) fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }

    pub(super) async fn state(&self) -> tokio::sync::MutexGuard<'_, State> {
        self.state.lock().await
    }

    fn layout(&self, g: &Globals) -> Layout {
        Layout {
            run_dir: self.opts.run_dir.clone(),
            dev_dir: self.opts.dev_dir.clone(),
            partition_delimiter: g.partition_delimiter.clone(),
            kernel_device: self.opts.kernel_devices,
        }
    }

    /// The builder: reconcile after every registry change until the daemon stops.
    pub(super) async fn build_maps(self: Arc<Self>, mut stop: hydra_daemon::Stop) {
        let mut changed = self.iscsid.registry().changed();
        loop {
            changed.borrow_and_update();
            self.reconcile().await;
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = stop.recv() => return,
            }
        }
    }

    /// Make the maps match the sessions (see the module doc).
    pub async fn reconcile(&self) {
        let mut st = self.state.lock().await;
        self.reconcile_locked(&mut st).await;
    }

    pub(super) async fn reconcile_locked(&self, st: &mut State) {
        let mut by_wwid: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
        for e in self.iscsid.registry().sessions() {
            for lun in e.luns() {
                let Some(wwid) = lun.wwid.clone() else {
                    continue;
                };
                // A disk whose capacity the scan could not read still is a path: a port
                // in ALUA standby refuses READ CAPACITY (SPC-4 §5.15.2.4.4), and
                // multipathd keeps such paths in the map as `ghost`. Only a map's first
                // path must know the size (see create_map).
                if lun.device_type != 0 {
                    continue;
                }
                by_wwid.entry(wwid).or_default().push(Candidate {
                    id: path_id(e.sid, lun.lun),
                    entry: e.clone(),
                    lun,
                });
            }
        }
        let present: HashSet<PathId> = by_wwid.values().flatten().map(|c| c.id).collect();

        // Paths of logged-out sessions leave their maps.
        let mut emptied = Vec::new();
        for (wwid, m) in st.maps.iter_mut() {
            let gone: Vec<PathId> = m
                .paths
                .keys()
                .filter(|id| !present.contains(id))
                .copied()
                .collect();
            for id in gone {
                let name = m.paths.remove(&id).map(|p| p.name).unwrap_or_default();
                match m.handle.remove_path(id).await {
                    Ok(()) => tracing::info!("{}: {name}: path removed", m.alias),
                    Err(e) => tracing::warn!("{}: {name}: {e}", m.alias),
                }
                if m.paths.is_empty() {
                    emptied.push(wwid.clone());
                }
            }
        }
        for wwid in emptied {
            self.last_path_gone(st, &wwid).await;
        }
        st.flushed.retain(|wwid, at_flush| {
            by_wwid
                .get(wwid)
                .is_some_and(|c| c.iter().all(|c| at_flush.contains(&c.id)))
        });

        for (wwid, cands) in by_wwid {
            if st.maps.contains_key(&wwid) {
                self.add_paths(st, &wwid, &cands).await;
                continue;
            }
            if st.flushed.contains_key(&wwid) {
                tracing::info!("{wwid}: flushed; not made again from the same paths");
                continue;
            }
            if !self.should_multipath(st, &wwid, &cands) {
                continue;
            }
            if let Err(e) = self.create_map(st, &wwid, &cands).await {
                tracing::error!("{wwid}: map not created: {e}");
            }
        }
    }

    /// The blacklist and find_multipaths for a WWID without a map.
    fn should_multipath(&self, st: &State, wwid: &str, cands: &[Candidate]) -> bool {
        let c = &cands[0];
        let facts = PathFacts {
            devnode: None,
            vendor: Some(&c.lun.vendor),
            product: Some(&c.lun.model),
            protocol: Some(PROTOCOL),
            wwid: Some(wwid),
            properties: None,
            uid_attribute: None,
        };
        let verdict = st.config.filter(&facts);
        if verdict.is_blacklisted() {
            tracing::debug!("{wwid}: blacklisted ({verdict:?})");
            return false;
        }
        if st.forced.contains(wwid) {
            return true;
        }
        let known = st.wwids.contains(wwid);
        let ok = match st.globals.find_multipaths {
            FindMultipaths::Off | FindMultipaths::Greedy => true,
            FindMultipaths::On | FindMultipaths::Smart => known || cands.len() >= 2,
            FindMultipaths::Strict => known,
        };
        if !ok {
            tracing::info!(
                "{wwid}: {} path(s), not in the wwids file: no map (find_multipaths {})",
                cands.len(),
                st.globals.find_multipaths.as_str()
            );
        }
        ok
    }

    /// The map's name (see the module doc); a new binding is saved.
    fn alias_for(st: &mut State, wwid: &str, settings: &Settings) -> Result<String> {
        if let Some(a) = &settings.alias {
            return Ok(a.clone());
        }
        if !settings.user_friendly_names.value {
            return Ok(wwid.to_string());
        }
        let live: HashMap<String, String> = st
            .maps
            .values()
            .map(|m| (m.alias.clone(), m.wwid.clone()))
            .collect();
        let in_use = |a: &str| live.get(a).is_some_and(|w| w != wwid);
        let alias = st
            .bindings
            .alias_for(wwid, &settings.alias_prefix.value, in_use)?;
        if st.bindings.needs_rewrite() {
            st.bindings.save(Path::new(&st.globals.bindings_file))?;
        }
        Ok(alias)
    }

    async fn create_map(&self, st: &mut State, wwid: &str, cands: &[Candidate]) -> Result<()> {
        // The map takes its size from a path that could read it; with none (every port
        // in standby) it waits for one.
        let Some(first) = cands
            .iter()
            .find(|c| c.lun.blocks != 0 && c.lun.block_size != 0)
        else {
            tracing::info!("{wwid}: no path reports a capacity yet (ALUA standby?): no map");
            return Ok(());
        };
        let id = PathIdentity {
            wwid,
            vendor: &first.lun.vendor,
            product: &first.lun.model,
            revision: &first.lun.revision,
            protocol: PROTOCOL,
        };
        let settings = st.config.resolve(&id);
        let alias = Self::alias_for(st, wwid, &settings)?;
        if st.maps.values().any(|m| m.alias == alias) {
            return Err(Error::AliasInUse {
                alias,
                wwid: wwid.into(),
            });
        }
        let cfg = MapConfig::new(wwid, &alias, &settings, &st.globals);
        let s = &first.entry.session;
        let geometry = match Geometry::probe(s, first.lun.lun).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("{alias}: {e}; using READ CAPACITY from the scan");
                Geometry::new(
                    first.lun.blocks * u64::from(first.lun.block_size),
                    first.lun.block_size,
                )
            }
        };
        let tpgs = tpgs(s, first.lun.lun).await;
        let mut checker = CheckerOptions::from_settings(&settings, tpgs);
        if let Some(t) = st.globals.checker_timeout {
            checker.timeout = std::time::Duration::from_secs(t.into());
        }
        let handle = MapHandle::spawn_with(cfg.clone(), geometry, checker);
        // multipath.conf's reservation_key: paths added later are registered with it
        // (multipathd's mpath_pr_event_handle). `reservation_key file` (the prkeys file
        // multipathd keeps) is not read: the key is then the one the last mpathpersist
        // REGISTER through this daemon set.
        match settings.reservation_key.as_ref().map(|k| &k.value) {
            Some(ReservationKey::Key { key, aptpl }) => {
                if let Err(e) = handle.set_reservation_key(Some((*key, *aptpl))) {
                    tracing::warn!("{alias}: {e}");
                }
            }
            Some(ReservationKey::File) => tracing::info!(
                "{alias}: reservation_key file: the prkeys file is not read; mpathpersist --register sets the key"
            ),
            None => {}
        }
        tracing::info!(
            "{alias}: created map ({wwid}) {},{}, {} bytes",
            first.lun.vendor,
            first.lun.model,
            geometry.size
        );
        match st.wwids.add(wwid) {
            Ok(true) => {
                if let Err(e) = st.wwids.save(Path::new(&st.globals.wwids_file)) {
                    tracing::warn!("{alias}: {e}");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("{alias}: {e}"),
        }
        st.maps.insert(
            wwid.to_string(),
            MapEntry {
                alias: alias.clone(),
                wwid: wwid.to_string(),
                handle: handle.clone(),
                device: None,
                cfg,
                settings,
                lun: first.lun.clone(),
                geometry,
                paths: BTreeMap::new(),
            },
        );
        // Paths before the device: attaching reads the partition table through them.
        self.add_paths(st, wwid, cands).await;
        let layout = self.layout(&st.globals);
        match MapDevice::create(handle.device(), &alias, wwid, &layout).await {
            Ok(d) => {
                if let Some(m) = st.maps.get_mut(wwid) {
                    m.device = Some(d);
                }
            }
            Err(e) => tracing::error!("{alias}: no exports: {e}"),
        }
        Ok(())
    }

    async fn add_paths(&self, st: &mut State, wwid: &str, cands: &[Candidate]) {
        let Some(m) = st.maps.get_mut(wwid) else {
            return;
        };
        for c in cands {
            if m.paths.contains_key(&c.id) {
                continue;
            }
            let size = c.lun.blocks * u64::from(c.lun.block_size);
            // A size of 0 is unknown (a standby port), not different.
            if size != 0 && size != m.geometry.size && m.geometry.size != 0 {
                tracing::warn!(
                    "{}: {}: size {} differs from the map's {}; not added",
                    m.alias,
                    path_name(c.entry.sid, c.lun.lun),
                    size,
                    m.geometry.size
                );
                continue;
            }
            let s = &c.entry.session;
            let name = path_name(c.entry.sid, c.lun.lun);
            let mut info = PathInfo::new(&name, &serial(s, c.lun.lun).await, &c.entry.node.target);
            if tpgs(s, c.lun.lun).await {
                info.tpg = crate::driver::port_group(s, c.lun.lun).await;
            }
            match m.handle.add_path(c.id, info, s.clone(), c.lun.lun).await {
                Ok(()) => {
                    tracing::info!(
                        "{}: {name}: path added ({}:{})",
                        m.alias,
                        c.entry.node.address,
                        c.entry.node.port
                    );
                    m.paths.insert(
                        c.id,
                        PathRec {
                            sid: c.entry.sid,
                            lun: c.lun.lun,
                            name,
                            portal: format!("{}:{}", c.entry.node.address, c.entry.node.port),
                            session: s.clone(),
                        },
                    );
                }
                Err(e) => tracing::warn!("{}: {name}: {e}", m.alias),
            }
        }
    }

    /// multipathd's `flush_map_nopaths`.
    async fn last_path_gone(&self, st: &mut State, wwid: &str) {
        let Some(m) = st.maps.get(wwid) else {
            return;
        };
        if m.settings.flush_on_last_del.value {
            tracing::info!("{}: last path deleted, disabling queueing", m.alias);
            let _ = m.handle.disable_queueing().await;
        }
        if m.in_use() {
            tracing::warn!(
                "{}: last path deleted, but the map is in use: kept ({})",
                m.alias,
                if m.settings.flush_on_last_del.value {
                    "I/O fails".to_string()
                } else {
                    format!("no_path_retry {:?}", m.cfg.no_path_retry)
                }
            );
            return;
        }
        let m = st.maps.remove(wwid).expect("looked up above");
        let alias = m.alias.clone();
        m.remove().await;
        tracing::info!("{alias}: removed map after removing all paths");
    }

    /// Remove a map if no one has it open (`multipath -f`); `force` removes it even
    /// then (daemon shutdown). The notes say what could not go at once.
    pub(super) async fn flush(
        &self,
        st: &mut State,
        wwid: &str,
        force: bool,
    ) -> std::result::Result<Vec<String>, String> {
        let Some(m) = st.maps.get(wwid) else {
            return Err(format!("{wwid}: no such map"));
        };
        if !force && m.in_use() {
            return Err(format!("{}: map in use", m.alias));
        }
        let m = st.maps.remove(wwid).expect("looked up above");
        st.flushed
            .insert(wwid.to_string(), m.paths.keys().copied().collect());
        let alias = m.alias.clone();
        let notes = m.remove().await;
        tracing::info!("{alias}: map flushed");
        Ok(notes)
    }

    /// Every map goes (daemon stopping).
    pub(super) async fn flush_all_for_shutdown(&self) {
        let mut st = self.state.lock().await;
        let wwids: Vec<String> = st.maps.keys().cloned().collect();
        for w in wwids {
            let _ = self.flush(&mut st, &w, true).await;
        }
    }

    /// Reread multipath.conf, bindings and wwids; forget flushes and re-evaluate every
    /// path: maps now blacklisted or whose settings changed are removed when unused
    /// (and made again with the new settings); partitions are read again.
    pub(super) async fn reconfigure(&self) -> std::result::Result<(), String> {
        let mut st = self.state.lock().await;
        let fresh = load_state(&self.opts).map_err(|e| e.to_string())?;
        st.config = fresh.config;
        st.globals = fresh.globals;
        st.bindings = fresh.bindings;
        st.wwids = fresh.wwids;
        st.flushed.clear();
        let stale: Vec<String> = st
            .maps
            .values()
            .filter(|m| {
                let id = PathIdentity {
                    wwid: &m.wwid,
                    vendor: &m.lun.vendor,
                    product: &m.lun.model,
                    revision: &m.lun.revision,
                    protocol: PROTOCOL,
                };
                let s = st.config.resolve(&id);
                let blacklisted = st
                    .config
                    .filter(&PathFacts {
                        vendor: Some(&m.lun.vendor),
                        product: Some(&m.lun.model),
                        protocol: Some(PROTOCOL),
                        wwid: Some(&m.wwid),
                        ..PathFacts::default()
                    })
                    .is_blacklisted();
                let alias_changed = s.alias.as_ref().is_some_and(|a| *a != m.alias);
                blacklisted
                    || alias_changed
                    || s != m.settings
                    || MapConfig::new(&m.wwid, &m.alias, &s, &st.globals) != m.cfg
            })
            .map(|m| m.wwid.clone())
            .collect();
        for w in stale {
            let Some(m) = st.maps.get(&w) else { continue };
            if m.in_use() {
                tracing::warn!(
                    "{}: configuration changed, but the map is in use; it keeps its settings until it is made again",
                    m.alias
                );
                continue;
            }
            let m = st.maps.remove(&w).expect("looked up above");
            tracing::info!("{}: configuration changed; map made again", m.alias);
            m.remove().await;
        }
        for m in st.maps.values() {
            if let Some(d) = &m.device {
                d.refresh().await;
            }
        }
        self.reconcile_locked(&mut st).await;
        Ok(())
    }

    /// `add map M`: M is an alias (bindings, multipaths) or a WWID.
    pub(super) async fn add_map(&self, name: &str) -> std::result::Result<(), String> {
        let mut st = self.state.lock().await;
        if st.find(name).is_some() {
            return Ok(());
        }
        let wwid = st.wwid_of_alias(name).to_string();
        st.forced.insert(wwid.clone());
        st.flushed.remove(&wwid);
        self.reconcile_locked(&mut st).await;
        if st.maps.contains_key(&wwid) {
            Ok(())
        } else {
            st.forced.remove(&wwid);
            Err(format!("{name}: no usable path with that WWID"))
        }
    }

    /// Snapshots of the maps (all, or the one called `only`).
    pub(super) async fn snapshots(
        &self,
        st: &State,
        only: Option<&str>,
    ) -> std::result::Result<Vec<MapSnapshot>, String> {
        let maps: Vec<&MapEntry> = match only {
            Some(n) => vec![st.find(n).ok_or_else(|| format!("{n}: no such map"))?],
            None => st.maps.values().collect(),
        };
        let mut out = Vec::new();
        for m in maps {
            let facts = m.facts();
            match m
                .handle
                .view(move |map, now| MapSnapshot::of(map, now, &facts))
                .await
            {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!("{}: {e}", m.alias),
            }
        }
        Ok(out)
    }
}

impl State {
    /// A map by alias, WWID, kernel device name (`loop3`) or path (`/dev/mapper/x`).
    pub(super) fn find(&self, name: &str) -> Option<&MapEntry> {
        let base = Path::new(name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(name);
        self.maps.get(name).or_else(|| {
            self.maps.values().find(|m| {
                m.alias == base
                    || m.device
                        .as_ref()
                        .and_then(|d| d.kernel_device())
                        .and_then(|p| p.file_name())
                        .is_some_and(|f| f == base)
            })
        })
    }

    /// A path by name (`s1l0`) or H:C:T:L (`1:0:0:0`): its map and id.
    pub(super) fn find_path(&self, name: &str) -> Option<(&MapEntry, PathId)> {
        self.maps.values().find_map(|m| {
            m.paths
                .iter()
                .find(|(_, p)| names_path(name, p.sid, p.lun))
                .map(|(id, _)| (m, *id))
        })
    }

    /// The WWID an alias of the bindings file or of a `multipaths` entry names, else
    /// `name` itself taken as a WWID (`add map`, `multipath -a`).
    pub(super) fn wwid_of_alias<'a>(&'a self, name: &'a str) -> &'a str {
        self.bindings
            .wwid_of(name)
            .or_else(|| self.config.wwid_of_alias(name))
            .unwrap_or(name)
    }
}

impl MapEntry {
    /// Whether the kernel device is open exclusively (a mounted filesystem, on the
    /// disk or a partition): then flushing refuses, as dm refuses to remove an open
    /// map.
    pub(super) fn in_use(&self) -> bool {
        let Some(dev) = self.device.as_ref().and_then(|d| d.kernel_device()) else {
            return false;
        };
        exclusive_busy(dev)
    }

    /// What the printers need beyond the core.
    pub(super) fn facts(&self) -> DeviceFacts {
        let kdev = self.device.as_ref().and_then(|d| d.kernel_device());
        let kernel_name = kdev
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let dev_t = kernel_name.as_ref().and_then(|n| {
            std::fs::read_to_string(Path::new("/sys/block").join(n).join("dev"))
                .ok()
                .map(|s| s.trim().to_string())
        });
        DeviceFacts {
            kernel_name,
            dev_t,
            size: self.geometry.size,
            vendor: self.lun.vendor.clone(),
            product: self.lun.model.clone(),
            revision: self.lun.revision.clone(),
            write_protect: Some(self.geometry.read_only),
            features: self.settings.features.value.clone(),
            hwhandler: self.settings.hardware_handler.value.clone(),
            paths: self
                .paths
                .iter()
                .map(|(id, p)| {
                    (
                        *id,
                        ShowPathFacts {
                            hcil: format!("{}:0:0:{}", p.sid, p.lun),
                            dev: p.name.clone(),
                            dev_t: None,
                            portal: p.portal.clone(),
                            sid: p.sid,
                            online: p.session.is_connected(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Queueing off, exports, then the map's task (held I/O fails with Shutdown).
    ///
    /// Queueing goes off first, as multipath-tools' `_dm_flush_map` turns
    /// `queue_if_no_path` off before it removes a map: taking the device down flushes it
    /// (partx, the loop device's release), and on a map without a path that flush would
    /// otherwise be held for ever with `no_path_retry queue`.
    async fn remove(self) -> Vec<String> {
        if let Err(e) = self.handle.disable_queueing().await {
            tracing::warn!("{}: {e}", self.alias);
        }
        let notes = match self.device {
            Some(d) => d.teardown().await,
            None => Vec::new(),
        };
        self.handle.shutdown().await;
        notes
    }
}

/// An exclusive open of a block device fails with EBUSY while a filesystem is mounted
/// on it or on one of its partitions (the kernel's bd_claim).
fn exclusive_busy(dev: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(dev)
    {
        Ok(_) => false,
        Err(e) => e.raw_os_error() == Some(libc::EBUSY),
    }
}

/// The unit serial number (VPD page 0x80, SPC-4 §7.8.15), "" when the LUN has none.
async fn serial(s: &Session, lun: u64) -> String {
    match s.inquiry(lun, Some(0x80)).await {
        Ok(Ok(b)) if b.len() >= 4 => {
            let n = usize::from(u16::from_be_bytes([b[2], b[3]]));
            let end = (4 + n).min(b.len());
            String::from_utf8_lossy(&b[4..end]).trim().to_string()
        }
        _ => String::new(),
    }
}

/// Whether the LUN reports ALUA: standard INQUIRY's TPGS field (byte 5 bits 5..4,
/// SPC-4 §6.6.2).
async fn tpgs(s: &Session, lun: u64) -> bool {
    match s.inquiry(lun, None).await {
        Ok(Ok(b)) => b.get(5).is_some_and(|b| b & 0x30 != 0),
        _ => false,
    }
}

/// The run dir's NBD socket of a map (for logs and `-v3`).
pub fn nbd_socket(run_dir: &Path, alias: &str) -> PathBuf {
    run_dir.join("nbd").join(format!("{alias}.sock"))
}
