//! The actions (fence_scsi.py `set_status`/`get_status` under fencing.py's
//! `fence_action`), over [`PrDevice`]s.
//!
//! - `on` (unfence, run by the node itself): record the key, then on each device
//!   REGISTER AND IGNORE EXISTING KEY on every I_T nexus, check the key is registered,
//!   RESERVE Write Exclusive – Registrants Only if there is no reservation, and check
//!   one exists; record the device.
//! - `off PLUG`: our key from the key file; refuse when it is the victim's ("You can
//!   not fence yourself"). Nothing to do when the victim's key is on no device
//!   ("Already OFF"). Otherwise PREEMPT AND ABORT the victim's key; only when that meets
//!   RESERVATION CONFLICT and our own key is still registered on the device (our nexus
//!   is new: a re-login brings a new ISID, fence-agents #517/#558) register our key on
//!   it and preempt again. Then verify on every device that the key is gone and a
//!   reservation remains.
//!
//!   fence_scsi.py registers its own key before every preempt. That lets a node that
//!   has itself been fenced put its key back and preempt the node that fenced it: in a
//!   two-node cluster whose link is cut both sides fence, and the loser would undo the
//!   winner's fence after the winner had taken over the disk. Here a node whose key is
//!   gone refuses to fence ("this node has been fenced"): of two racing nodes exactly
//!   one wins, whichever preempts first.
//! - `status`: 0 when the key is registered on a device, 2 when not (with no key or
//!   plug given: this node's recorded key and devices, the `fence_scsi_check` watchdog
//!   contract), 1 when a device cannot be asked.
//!
//! Exit codes as fence-agents: 0 success, 1 failure, 2 "off" for status/monitor.

use std::time::Duration;

use hydra_proto::scsi::pr::PrType;

use super::cmap::{self, ClusterInfo};
use super::device::{self, PrDevice};
use super::key::Key;
use super::metadata;
use super::options::{Action, KeyValue, Options};
use super::store;
use crate::{Error, Result};

const WERO: PrType = PrType::WriteExclusiveRegistrantsOnly;

/// What a run printed and how it ends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: Vec<String>,
    /// Errors and (with `verbose`) what was done.
    pub stderr: Vec<String>,
}

struct Run<'a> {
    opts: &'a Options,
    out: Outcome,
    cluster: Option<ClusterInfo>,
}

impl Run<'_> {
    fn say(&mut self, s: impl Into<String>) {
        self.out.stdout.push(s.into());
    }
    fn debug(&mut self, s: impl Into<String>) {
        if self.opts.verbose {
            self.out.stderr.push(s.into());
        }
    }

    async fn cluster(&mut self) -> Result<&ClusterInfo> {
        if self.cluster.is_none() {
            let t = Duration::from_secs(self.opts.timeout);
            self.cluster = Some(ClusterInfo::read(&self.opts.corosync_cmap_path, t).await?);
        }
        Ok(self.cluster.as_ref().expect("just set"))
    }

    /// The key of a node named `plug`, as fence_scsi's `generate_key`.
    async fn key_of_plug(&mut self, plug: &str) -> Result<Key> {
        let kv = self.opts.key_value;
        let c = self.cluster().await?;
        match kv {
            KeyValue::Hash => Key::from_hash(&c.cluster_name, plug),
            KeyValue::Id => {
                let n = cmap::find_by_plug(&c.nodes, plug).ok_or_else(|| {
                    Error::Corosync(format!(
                        "Failed: unable to parse output of corosync-cmapctl or node does not exist ('{plug}' is no node's name or ring address)"
                    ))
                })?;
                Key::from_id(&c.cluster_name, n.position)
            }
        }
    }

    /// The key acted on: `key`, else derived from `plug`, else from dlm_controld's
    /// `node=`; `None` when none is given.
    async fn target_key(&mut self) -> Result<Option<Key>> {
        if let Some(k) = &self.opts.key {
            return Key::parse(k).map(Some);
        }
        if let Some(p) = self.opts.plug.clone() {
            return self.key_of_plug(&p).await.map(Some);
        }
        if let Some(id) = self.opts.node {
            let plug = {
                let c = self.cluster().await?;
                cmap::find_by_nodeid(&c.nodes, id)
                    .and_then(|n| n.plug())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::Corosync(format!("node id {id} is not in the nodelist"))
                    })?
            };
            return self.key_of_plug(&plug).await.map(Some);
        }
        Ok(None)
    }

    fn devices(&self) -> Result<Vec<String>> {
        if !self.opts.devices.is_empty() {
            return Ok(self.opts.devices.clone());
        }
        match store::read_devices(&self.opts.store_path) {
            Ok(d) if !d.is_empty() => Ok(d),
            _ => Err(Error::Usage(
                "Failed: No devices found (give devices=, or run on first)".into(),
            )),
        }
    }

    async fn open_all(&mut self) -> Result<Vec<Box<dyn PrDevice>>> {
        let mut devs = Vec::new();
        for d in self.devices()? {
            match device::open(&d, self.opts).await {
                Ok(dev) => devs.push(dev),
                Err(e) => {
                    close_all(&devs).await;
                    return Err(e);
                }
            }
        }
        Ok(devs)
    }
}

async fn close_all(devs: &[Box<dyn PrDevice>]) {
    for d in devs {
        let _ = d.close().await;
    }
}

/// Usage text for `-h`.
pub const HELP: &str = "Usage:
\tfence_scsi [options]      (or name=value lines on stdin with no options)
Options:
   -o, --action=[action]          Action: on, off (default), status, monitor, list,
                                  list-status, metadata, validate-all
   -n, --plug=[nodename]          Name of the node to be fenced (key from corosync)
   -d, --devices=[devices]        /dev/mapper/NAME maps of the hydra node daemon and
                                  iscsi://host[:port]/iqn/lun URLs, comma separated
   -k, --key=[key]                Key to use for the current operation
   --key-value=<id|hash>          SCSI key node generation method (default id)
   -a, --aptpl                    Use the APTPL flag for registrations
   -f, --logfile=[file]           Log output (stdout and stderr) to file
   -H, --delay=[seconds]          Wait X seconds before fencing is started
   -v, --verbose                  Verbose mode
   --corosync-cmap-path=[path]    Path to corosync-cmapctl binary
   --power-timeout=[seconds]      Time each device may take (default 20)
   -V, --version                  Display version information and exit
   -h, --help                     Display help and exit
hydra:
   --store-path=[path]            Key and device files are PATH.key, PATH.dev
                                  (default /var/run/cluster/fence_scsi)
   --initiator-name=[iqn]         For iSCSI URLs (default from initiatorname.iscsi)
   --isid=[12 hex digits]         ISID of the agent's iSCSI sessions
   --run-dir=[dir]                The node daemon's run dir (its multipathd.sock)
   --dev-dir=[dir]                Where the node daemon makes mapper/NAME (default /dev)
";

/// Run the agent.
pub async fn run(opts: &Options) -> Outcome {
    let mut r = Run {
        opts,
        out: Outcome::default(),
        cluster: None,
    };
    for w in &opts.warnings {
        r.out.stderr.push(w.clone());
    }
    let code = match act(&mut r).await {
        Ok(code) => code,
        Err(e) => {
            r.out.stderr.push(e.to_string());
            1
        }
    };
    r.out.code = code;
    r.out
}

async fn act(r: &mut Run<'_>) -> Result<i32> {
    let o = r.opts;
    if o.help {
        r.say(HELP.trim_end());
        return Ok(0);
    }
    if o.version {
        r.say(format!("hydra fence_scsi {}", env!("CARGO_PKG_VERSION")));
        return Ok(0);
    }
    match o.action {
        Action::Metadata => {
            r.say(metadata::xml().trim_end());
            Ok(0)
        }
        Action::ValidateAll => {
            if o.key.is_none() && o.plug.is_none() && o.node.is_none() {
                return Err(Error::Usage("Failed: nodename or key is required".into()));
            }
            if let Some(k) = &o.key {
                Key::parse(k)?;
            }
            Ok(0)
        }
        Action::On => on(r).await,
        Action::Off => {
            if o.delay > 0 {
                r.debug(format!(
                    "Delay {} second(s) before logging in to the fence device",
                    o.delay
                ));
                tokio::time::sleep(Duration::from_secs(o.delay)).await;
            }
            off(r).await
        }
        Action::Status => status(r).await,
        Action::Monitor => monitor(r).await,
        Action::List | Action::ListStatus => list(r).await,
    }
}

async fn on(r: &mut Run<'_>) -> Result<i32> {
    let key = r
        .target_key()
        .await?
        .ok_or_else(|| Error::Usage("Failed: nodename or key is required".into()))?;
    store::write_key(&r.opts.store_path, key)?;
    let devs = r.open_all().await?;
    let res = on_devices(r, key, &devs).await;
    close_all(&devs).await;
    let failed = res?;
    if failed > 0 {
        return Err(Error::Failed(format!(
            "Failed to verify {failed} device(s)"
        )));
    }
    r.say("Success: Powered ON");
    Ok(0)
}

async fn on_devices(r: &mut Run<'_>, key: Key, devs: &[Box<dyn PrDevice>]) -> Result<usize> {
    let mut failed = 0;
    for d in devs {
        d.register_ignore(key, r.opts.aptpl).await?;
        if !d.read_keys().await?.contains(&key.0) {
            failed += 1;
            r.out
                .stderr
                .push(format!("{}: failed to register key {key}", d.name()));
            continue;
        }
        r.debug(format!("{}: key {key} registered", d.name()));
        store::add_device(&r.opts.store_path, d.name())?;
        if d.read_reservation().await?.is_none() {
            // Another node may reserve between our look and our RESERVE: its
            // RESERVATION CONFLICT is fine as long as a reservation exists after.
            if let Err(e) = d.reserve(key, WERO).await {
                r.debug(format!("reserve: {e}"));
            }
            if d.read_reservation().await?.is_none() {
                failed += 1;
                r.out.stderr.push(format!(
                    "{}: failed to create reservation (key={key})",
                    d.name()
                ));
                continue;
            }
            r.debug(format!("{}: reservation WERO", d.name()));
        }
    }
    Ok(failed)
}

async fn off(r: &mut Run<'_>) -> Result<i32> {
    let victim = r
        .target_key()
        .await?
        .ok_or_else(|| Error::Usage("Failed: nodename or key is required".into()))?;
    let own = store::read_key(&r.opts.store_path)?;
    if own == victim {
        return Err(Error::Usage(
            "Failed: keys cannot be same. You can not fence yourself.".into(),
        ));
    }
    let devs = r.open_all().await?;
    let res = off_devices(r, own, victim, &devs).await;
    close_all(&devs).await;
    res
}

async fn off_devices(
    r: &mut Run<'_>,
    own: Key,
    victim: Key,
    devs: &[Box<dyn PrDevice>],
) -> Result<i32> {
    let mut holding = Vec::new();
    for d in devs {
        holding.push(d.read_keys().await?.contains(&victim.0));
    }
    if !holding.iter().any(|h| *h) {
        r.say("Success: Already OFF");
        return Ok(0);
    }
    for (d, holds) in devs.iter().zip(&holding) {
        if !*holds {
            continue;
        }
        if let Err(e) = preempt(r, d.as_ref(), own, victim).await {
            r.out.stderr.push(e.to_string());
        } else {
            r.debug(format!("{}: key {victim} preempted and aborted", d.name()));
        }
    }
    let mut failed = 0;
    for d in devs {
        if d.read_keys().await?.contains(&victim.0) {
            failed += 1;
            r.out
                .stderr
                .push(format!("{}: failed to remove key {victim}", d.name()));
            continue;
        }
        if d.read_reservation().await?.is_none() {
            failed += 1;
            r.out
                .stderr
                .push(format!("{}: no reservation exists", d.name()));
        }
    }
    if failed > 0 {
        return Err(Error::Failed(format!(
            "Failed to verify {failed} device(s)"
        )));
    }
    r.say("Success: Powered OFF");
    Ok(0)
}

/// PREEMPT AND ABORT `victim` with `own`. A RESERVATION CONFLICT means the nexus we
/// speak through is not registered: when `own` is still registered on the device (a
/// new I_T nexus after a re-login) register it there and try once more; when it is
/// not, this node has been fenced itself and must not fence (see the module doc).
async fn preempt(r: &mut Run<'_>, d: &dyn PrDevice, own: Key, victim: Key) -> Result<()> {
    let first = match d.preempt_abort(own, victim, WERO).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if !d.read_keys().await?.contains(&own.0) {
        return Err(Error::device(
            d.name(),
            format!(
                "this node's key {own} is not registered: this node has been fenced \
                 and may not fence others (unfence it with -o on first)"
            ),
        ));
    }
    r.debug(format!(
        "{}: {first}; key {own} registered on another nexus: registering it on this one",
        d.name()
    ));
    d.register_ignore(own, false).await?;
    d.preempt_abort(own, victim, WERO).await
}

/// Is `key` registered on any of the devices.
async fn registered(devs: &[Box<dyn PrDevice>], key: Key) -> Result<bool> {
    for d in devs {
        if d.read_keys().await?.contains(&key.0) {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn status(r: &mut Run<'_>) -> Result<i32> {
    let key = match r.target_key().await? {
        Some(k) => k,
        None => store::read_key(&r.opts.store_path)?,
    };
    let devs = r.open_all().await?;
    let on = registered(&devs, key).await;
    close_all(&devs).await;
    if on? {
        r.say("Status: ON");
        Ok(0)
    } else {
        r.say("Status: OFF");
        Ok(2)
    }
}

async fn monitor(r: &mut Run<'_>) -> Result<i32> {
    // Keys have to be present in order to fence/unfence (fence_scsi's monitor).
    store::read_key(&r.opts.store_path)?;
    store::read_devices(&r.opts.store_path)?;
    let devs = r.open_all().await?;
    let mut res = Ok(0);
    for d in &devs {
        if let Err(e) = d.read_keys().await {
            res = Err(e);
            break;
        }
    }
    close_all(&devs).await;
    res
}

async fn list(r: &mut Run<'_>) -> Result<i32> {
    let nodes: Vec<String> = r
        .cluster()
        .await?
        .nodes
        .iter()
        .filter_map(|n| n.plug().map(str::to_string))
        .collect();
    if r.opts.action == Action::List {
        for n in nodes {
            r.say(format!("{n},"));
        }
        return Ok(0);
    }
    let devs = r.open_all().await?;
    let mut res = Ok(0);
    for n in nodes {
        let st = match r.key_of_plug(&n).await {
            Ok(k) => match registered(&devs, k).await {
                Ok(true) => "ON",
                Ok(false) => "OFF",
                Err(e) => {
                    res = Err(e);
                    break;
                }
            },
            Err(_) => "UNKNOWN",
        };
        r.say(format!("{n},,{st}"));
    }
    close_all(&devs).await;
    res
}
