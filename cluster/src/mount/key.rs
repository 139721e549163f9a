//! The PR key check before a mount: this node's fence_scsi key (`<store path>.key`, as
//! `hydra fence_scsi -o on` recorded it) must be registered on the map the device
//! belongs to (a partition: the map of its disk). A node whose key was preempted has
//! been fenced: the target refuses its writes (WERO), so it must not mount — and
//! `hydra mount` does not register the key again itself, which would undo the fence
//! behind the cluster's back; the node unfences with `hydra fence_scsi -o on` once it
//! is allowed back. The map's PR calls go through the node daemon as fence_scsi's do
//! ([`crate::fence::device`]).

use std::path::Path;
use std::time::Duration;

use hydra_multipath::control::{self as mp, Multipathd, Request, Response};

use super::sys::{self, DevT};
use super::Paths;
use crate::fence::{self, device, store};
use crate::{Error, Result};

const NOFENCE: &str = "-o nofence skips the check (unsafe on a shared disk)";

fn node_daemon_socket(paths: &Paths) -> std::path::PathBuf {
    let run = paths
        .run_dir
        .clone()
        .unwrap_or_else(hydra_initiator::iscsid::default_run_dir);
    mp::socket_path(&run)
}

/// The node daemon's maps: (alias, kernel device numbers).
pub async fn maps(paths: &Paths) -> Result<Vec<(String, Option<DevT>)>> {
    let sock = node_daemon_socket(paths);
    if !sock.exists() {
        return Err(Error::Refused(format!(
            "the node daemon is not running (no socket at {})",
            sock.display()
        )));
    }
    let call = hydra_daemon::control::call::<Multipathd>(&sock, Request::Snapshots { map: None });
    let r = tokio::time::timeout(paths.dlm_timeout.max(Duration::from_secs(5)), call)
        .await
        .map_err(|_| {
            Error::Failed(format!(
                "the node daemon ({}) did not answer",
                sock.display()
            ))
        })?
        .map_err(|e| Error::Failed(format!("node daemon ({}): {e}", sock.display())))?;
    match r {
        Response::Snapshots(maps) => Ok(maps
            .into_iter()
            .map(|m| (m.name, m.dev_t.as_deref().and_then(DevT::parse)))
            .collect()),
        Response::Error { message, .. } => Err(Error::Failed(format!("node daemon: {message}"))),
        other => Err(Error::Failed(format!(
            "node daemon: unexpected answer {other:?}"
        ))),
    }
}

/// The alias of the map `dev` (or the disk `dev` is a partition of) is.
pub async fn map_of(dev: &Path, paths: &Paths) -> Result<String> {
    let disk = sys::whole_disk(sys::block_dev(dev)?);
    let maps = maps(paths).await.map_err(|e| {
        Error::Refused(format!(
            "{}: cannot check this node's PR key: {e}; {NOFENCE}",
            dev.display()
        ))
    })?;
    maps.iter()
        .find(|(_, d)| *d == Some(disk))
        .map(|(a, _)| a.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = maps.iter().map(|(a, _)| a.as_str()).collect();
            Error::Refused(format!(
                "{} ({disk}) is not on a map of the node daemon (maps: {}): its PR key cannot be checked; {NOFENCE}",
                dev.display(),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ))
        })
}

/// Refuse unless this node's key is registered on the map of `dev`.
pub async fn check(dev: &Path, paths: &Paths) -> Result<()> {
    let alias = map_of(dev, paths).await?;
    let key = store::read_key(&paths.store_path).map_err(|e| {
        Error::Refused(format!(
            "this node has no fence_scsi key ({e}): unfence with `hydra fence_scsi -o on` first"
        ))
    })?;
    let map = paths.dev_dir.join("mapper").join(&alias);
    let map_name = map.display().to_string();
    let mut o = fence::Options::defaults();
    o.run_dir = paths.run_dir.clone();
    o.dev_dir = paths.dev_dir.clone();
    o.store_path = paths.store_path.clone();
    o.timeout = paths.dlm_timeout.as_secs().max(5);
    let d = device::open(&map_name, &o).await?;
    let keys = d.read_keys().await;
    let _ = d.close().await;
    if !keys?.contains(&key.0) {
        return Err(Error::Refused(format!(
            "this node is fenced: key {key} is not registered on {map_name}; unfence with `hydra fence_scsi -o on` first"
        )));
    }
    Ok(())
}
