//! The tokio driver of one multipath map over initiator sessions: dm-multipath's
//! data path and multipathd's checker loop around the sans-IO [`crate::map::Map`].
//!
//! One task per map owns the core (`task`); everything else talks to it over a
//! channel: the block device ([`MapHandle::device`]) submits I/O, the node adds and
//! removes paths (a session's LUN, [`MapHandle::add_path`]), operators fail,
//! reinstate, switch groups and turn queueing off and on, printers look at the core
//! ([`MapHandle::view`]). Per path a task forwards the session's state stream
//! ([`hydra_initiator::Session::state`]) as [`crate::map::PathEvent`]s; per dispatch a
//! task runs the SCSI commands on the chosen path (`dispatch`); per check a task
//! runs the path checker and prioritizer (`checker`). Persistent reservations go
//! down every path or one, as mpathpersist sends them (`pr`).
//!
//! Sessions under a map should be fail-fast ([`hydra_initiator::conn::Timeouts`]'s
//! `fail_fast`): then a lost connection hands its commands back at once and the map
//! retries them elsewhere, as open-iscsi advises for dm-multipath (a short
//! replacement_timeout). The driver also copes with a session that is not: see
//! `task` on withdrawing commands stuck on a dead path, and the window it leaves.

mod checker;
mod dispatch;
mod geometry;
mod pr;
mod task;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hydra_initiator::Session;
use hydra_proto::scsi::pr::{InAction, OutAction, OutParams, PrType};
use tokio::sync::{mpsc, oneshot};

pub use checker::{port_group, CheckerOptions};
pub use geometry::Geometry;
pub use pr::{PrIn, PrOutcome};

use crate::export::{BlockDevice, DeviceError, IoFuture};
use crate::map::{Map, MapConfig, PathId, PathInfo};
use crate::{Error, Result};
use dispatch::IoOp;
use task::{Input, Task};

/// A running map: a cheap handle to its task.
#[derive(Clone)]
pub struct MapHandle {
    alias: Arc<str>,
    tx: mpsc::UnboundedSender<Input>,
    device: Arc<MapDevice>,
}

impl MapHandle {
    /// Spawn the map's task on the current tokio runtime, checking paths with
    /// TEST UNIT READY and the `const` prioritizer.
    pub fn spawn(cfg: MapConfig, geometry: Geometry) -> MapHandle {
        Self::spawn_with(cfg, geometry, CheckerOptions::default())
    }

    /// Spawn with the checker and prioritizer of the map's settings
    /// ([`CheckerOptions::from_settings`]).
    pub fn spawn_with(cfg: MapConfig, geometry: Geometry, checker: CheckerOptions) -> MapHandle {
        let alias: Arc<str> = cfg.alias.as_str().into();
        let (tx, outside) = mpsc::unbounded_channel();
        let (inside_tx, inside) = mpsc::unbounded_channel();
        let task = Task::new(Map::new(cfg), geometry, checker, inside_tx);
        tokio::spawn(task.run(outside, inside));
        let device = Arc::new(MapDevice {
            alias: alias.clone(),
            tx: tx.clone(),
            geometry,
            unflushed: AtomicBool::new(false),
        });
        MapHandle { alias, tx, device }
    }

    /// The map's name.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    fn stopped(&self) -> Error {
        Error::MapStopped {
            map: self.alias.to_string(),
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| self.stopped())?;
        rx.await.map_err(|_| self.stopped())
    }

    /// Add LUN `lun` of `session` as path `id` ([`path_id`]); it is checked at once.
    pub async fn add_path(
        &self,
        id: PathId,
        info: PathInfo,
        session: Arc<Session>,
        lun: u64,
    ) -> Result<()> {
        self.ask(|reply| Input::AddPath {
            id,
            info,
            session,
            lun,
            reply,
        })
        .await?
    }

    /// Remove a path: it takes no new I/O at once, and goes once what is on it came
    /// back (moved to other paths if its session is down).
    pub async fn remove_path(&self, id: PathId) -> Result<()> {
        self.ask(|reply| Input::RemovePath { id, reply }).await?
    }

    /// The map as a block device: reads, writes (FUA), flush, trim and write_zeroes
    /// go to SCSI on the path the core chooses, and move on when a path fails.
    pub fn device(&self) -> Arc<dyn BlockDevice> {
        self.device.clone()
    }

    /// Run `f` against the core (printers, counts) inside the map task.
    pub async fn view<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Map, Instant) -> R + Send + 'static,
    ) -> Result<R> {
        self.run(move |m, now| f(m, now)).await
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Map, Instant) -> R + Send + 'static,
    ) -> Result<R> {
        self.ask(|reply| {
            Input::Run(Box::new(move |m, now| {
                let _ = reply.send(f(m, now));
            }))
        })
        .await
    }

    /// `multipathd fail path`.
    pub async fn fail_path(&self, id: PathId) -> Result<()> {
        self.run(move |m, now| m.fail_path(now, id)).await?
    }

    /// `multipathd reinstate path`.
    pub async fn reinstate_path(&self, id: PathId) -> Result<()> {
        self.run(move |m, now| m.reinstate_path(now, id)).await?
    }

    /// `multipathd switchgroup map M group N` (N from 1).
    pub async fn switch_group(&self, group: usize) -> Result<()> {
        self.run(move |m, _| m.switch_group(group)).await?
    }

    /// `multipathd disablequeueing map M`.
    pub async fn disable_queueing(&self) -> Result<()> {
        self.run(|m, now| m.disable_queueing(now)).await
    }

    /// `multipathd restorequeueing map M`.
    pub async fn restore_queueing(&self) -> Result<()> {
        self.run(|m, now| m.restore_queueing(now)).await
    }

    /// PERSISTENT RESERVE OUT `action` with type `rtype` (ignored by the actions that
    /// take none) and parameters `params`. REGISTER and REGISTER AND IGNORE EXISTING
    /// KEY go to every path whose session is logged in (each I_T nexus, as mpathpersist
    /// does), the others to one usable path, the next if it fails. `Err` when no path
    /// answered at all.
    pub async fn pr_out(
        &self,
        action: OutAction,
        rtype: PrType,
        params: OutParams,
    ) -> Result<PrOutcome> {
        let paths = self.ask(Input::Paths).await?;
        let r = pr::out(&self.alias, &paths, action, rtype, &params).await?;
        if r == PrOutcome::Good
            && matches!(
                action,
                OutAction::Register | OutAction::RegisterAndIgnoreExistingKey
            )
        {
            // mpathpersist tells multipathd the new key (`setprkey`).
            let key = (params.sa_key != 0).then_some((params.sa_key, params.aptpl));
            self.set_reservation_key(key)?;
        }
        Ok(r)
    }

    /// The key this node registers through the map (multipath.conf's
    /// `reservation_key`, or the prkeys file): a path added later is registered with it
    /// too, when the key is still registered. [`MapHandle::pr_out`] REGISTER sets it.
    pub fn set_reservation_key(&self, key: Option<(u64, bool)>) -> Result<()> {
        self.tx.send(Input::SetKey(key)).map_err(|_| self.stopped())
    }

    /// PERSISTENT RESERVE IN `action` on one usable path: the decoded answer, or the
    /// SCSI status it ended with.
    pub async fn pr_in(&self, action: InAction) -> Result<std::result::Result<PrIn, PrOutcome>> {
        let paths = self.ask(Input::Paths).await?;
        pr::read(&self.alias, &paths, action).await
    }

    /// Fail held and in-flight I/O with [`DeviceError::Shutdown`] and stop the task
    /// (commands already on a path still run there; their answers are dropped).
    pub async fn shutdown(&self) {
        let _ = self.ask(Input::Shutdown).await;
    }
}

/// The [`PathId`] of LUN `lun` of session `sid` (MP-PLAN: `sid << 32 | lun`).
pub fn path_id(sid: u32, lun: u64) -> PathId {
    PathId(u64::from(sid) << 32 | (lun & 0xffff_ffff))
}

/// The map as a [`BlockDevice`].
struct MapDevice {
    alias: Arc<str>,
    tx: mpsc::UnboundedSender<Input>,
    geometry: Geometry,
    /// A write (or trim, write-zeroes) was submitted since the last flush was sent: a
    /// flush without one has nothing to make durable and sends no SYNCHRONIZE CACHE.
    /// That matters beyond the round trip: under a Write Exclusive reservation
    /// SYNCHRONIZE CACHE from an unregistered I_T nexus is a RESERVATION CONFLICT
    /// (SPC-4 Table 65), and every close(2) of the loop device fsyncs the file, so a
    /// node not (yet) unfenced would fail even a partition table read (partx).
    unflushed: AtomicBool,
}

impl MapDevice {
    fn check(&self, offset: u64, len: u64, write: bool) -> std::result::Result<(), DeviceError> {
        let bs = u64::from(self.geometry.block_size);
        if write && self.geometry.read_only {
            return Err(DeviceError::ReadOnly);
        }
        if !offset.is_multiple_of(bs) || !len.is_multiple_of(bs) {
            return Err(DeviceError::Invalid(format!(
                "{}: {len} bytes at {offset} are not whole {bs}-byte blocks",
                self.alias
            )));
        }
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.geometry.size)
        {
            return Err(DeviceError::Invalid(format!(
                "{}: {len} bytes at {offset} go past the end ({} bytes)",
                self.alias, self.geometry.size
            )));
        }
        Ok(())
    }

    async fn submit(&self, op: IoOp) -> dispatch::Answer {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Io { op, reply })
            .map_err(|_| DeviceError::Shutdown)?;
        rx.await.map_err(|_| DeviceError::Shutdown)?
    }
}

impl BlockDevice for MapDevice {
    fn size(&self) -> u64 {
        self.geometry.size
    }

    fn block_size(&self) -> u32 {
        self.geometry.block_size
    }

    fn read_only(&self) -> bool {
        self.geometry.read_only
    }

    fn read(&self, offset: u64, len: u32) -> IoFuture<'_, Bytes> {
        Box::pin(async move {
            self.check(offset, len.into(), false)?;
            if len == 0 {
                return Ok(Bytes::new());
            }
            task::data(self.submit(IoOp::Read { offset, len }).await)
        })
    }

    fn write(&self, offset: u64, data: Bytes, fua: bool) -> IoFuture<'_, ()> {
        Box::pin(async move {
            self.check(offset, data.len() as u64, true)?;
            if data.is_empty() {
                return Ok(());
            }
            self.unflushed.store(true, Ordering::SeqCst);
            self.submit(IoOp::Write { offset, data, fua })
                .await
                .map(|_| ())
        })
    }

    fn flush(&self) -> IoFuture<'_, ()> {
        Box::pin(async move {
            // Writes that completed before this call set the flag before it: cleared
            // here, a write after it sets it again for the next flush.
            if !self.unflushed.swap(false, Ordering::SeqCst) {
                return Ok(());
            }
            let r = self.submit(IoOp::Flush).await.map(|_| ());
            if r.is_err() {
                self.unflushed.store(true, Ordering::SeqCst);
            }
            r
        })
    }

    fn trim(&self, offset: u64, len: u32) -> IoFuture<'_, ()> {
        Box::pin(async move {
            self.check(offset, len.into(), true)?;
            if len == 0 {
                return Ok(());
            }
            self.unflushed.store(true, Ordering::SeqCst);
            self.submit(IoOp::Trim { offset, len }).await.map(|_| ())
        })
    }

    fn write_zeroes(&self, offset: u64, len: u32, may_unmap: bool) -> IoFuture<'_, ()> {
        Box::pin(async move {
            self.check(offset, len.into(), true)?;
            if len == 0 {
                return Ok(());
            }
            self.unflushed.store(true, Ordering::SeqCst);
            self.submit(IoOp::WriteZeroes {
                offset,
                len,
                may_unmap,
            })
            .await
            .map(|_| ())
        })
    }
}
