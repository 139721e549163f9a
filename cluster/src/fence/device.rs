//! The devices fence_scsi works on, behind one trait: a multipath map of the node
//! daemon (`/dev/mapper/<alias>`: PR through the map, REGISTER on every path, i.e.
//! every I_T nexus, as mpathpersist does) or an iSCSI URL (a direct session of the
//! agent's own, initiator name + a fixed ISID, so its I_T nexus is the same on every
//! run).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use hydra_initiator::conn::Timeouts;
use hydra_initiator::login::LoginConfig;
use hydra_initiator::scsi::Failed;
use hydra_initiator::url::IscsiUrl;
use hydra_initiator::Session;
use hydra_multipath::control::{
    self as mp, Multipathd, PrAnswer, PrInAction, PrOut, PrOutAction, Request, Response,
};
use hydra_proto::scsi::pr::PrType;

use super::key::Key;
use super::options::Options;
use crate::{Error, Result};

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The reservation a device holds: the holder's key (0 for all-registrants types) and
/// its TYPE (SPC-4 Table 168).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub key: u64,
    pub rtype: u8,
}

/// SCSI-3 persistent reservations on one device (SPC-4 §5.13). Errors name the device.
pub trait PrDevice: Send + Sync {
    /// As given in `devices=`.
    fn name(&self) -> &str;
    /// REGISTER AND IGNORE EXISTING KEY of `key` on every I_T nexus the device has.
    fn register_ignore(&self, key: Key, aptpl: bool) -> Fut<'_, ()>;
    /// RESERVE with `key` as `rtype`.
    fn reserve(&self, key: Key, rtype: PrType) -> Fut<'_, ()>;
    /// PREEMPT AND ABORT: remove `victim`'s registrations (and abort its commands),
    /// taking the reservation as `rtype` if the victim held it.
    fn preempt_abort(&self, key: Key, victim: Key, rtype: PrType) -> Fut<'_, ()>;
    /// READ KEYS.
    fn read_keys(&self) -> Fut<'_, Vec<u64>>;
    /// READ RESERVATION.
    fn read_reservation(&self) -> Fut<'_, Option<Reservation>>;
    /// Log out / let go.
    fn close(&self) -> Fut<'_, ()>;
}

/// Open `dev` (a `/dev/mapper/<alias>` map or an `iscsi://` URL).
pub async fn open(dev: &str, opts: &Options) -> Result<Box<dyn PrDevice>> {
    if dev.starts_with("iscsi://") {
        return Ok(Box::new(IscsiDevice::open(dev, opts).await?));
    }
    let p = Path::new(dev);
    let under = |root: &Path| p.parent() == Some(&root.join("mapper"));
    if under(&opts.dev_dir) || under(Path::new("/dev")) {
        let alias = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::device(dev, "no map name"))?;
        let run_dir = opts
            .run_dir
            .clone()
            .unwrap_or_else(hydra_initiator::iscsid::default_run_dir);
        let d = MapDevice {
            name: dev.to_string(),
            alias: alias.to_string(),
            socket: mp::socket_path(&run_dir),
            timeout: Duration::from_secs(opts.timeout),
        };
        // Reachable and known to the node daemon?
        d.read_keys().await?;
        return Ok(Box::new(d));
    }
    Err(Error::device(
        dev,
        format!(
            "not a multipath map ({}/mapper/NAME) nor an iSCSI URL (iscsi://host[:port]/iqn/lun)",
            opts.dev_dir.display()
        ),
    ))
}

/// A map of the node daemon, over its multipathd control socket.
struct MapDevice {
    name: String,
    alias: String,
    socket: PathBuf,
    timeout: Duration,
}

impl MapDevice {
    async fn call(&self, req: Request) -> Result<Response> {
        let call = hydra_daemon::control::call::<Multipathd>(&self.socket, req);
        let r = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| {
                Error::device(
                    &self.name,
                    format!(
                        "the node daemon ({}) did not answer in {} s",
                        self.socket.display(),
                        self.timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| Error::device(&self.name, format!("node daemon: {e}")))?;
        match r {
            Response::Error { code, message } => Err(Error::device(
                &self.name,
                if code == mp::pr_status::RESERV_CONFLICT {
                    format!("RESERVATION CONFLICT ({message})")
                } else {
                    message
                },
            )),
            r => Ok(r),
        }
    }

    async fn out(
        &self,
        action: PrOutAction,
        key: u64,
        sa_key: u64,
        t: u8,
        aptpl: bool,
    ) -> Result<()> {
        let req = Request::PrOut(PrOut {
            map: self.alias.clone(),
            action,
            key,
            sa_key,
            prout_type: t,
            aptpl,
        });
        match self.call(req).await? {
            Response::Pr(PrAnswer::Done) | Response::Ok => Ok(()),
            other => Err(Error::device(
                &self.name,
                format!("unexpected answer {other:?}"),
            )),
        }
    }

    async fn pr_in(&self, action: PrInAction) -> Result<PrAnswer> {
        let req = Request::PrIn {
            map: self.alias.clone(),
            action,
        };
        match self.call(req).await? {
            Response::Pr(a) => Ok(a),
            other => Err(Error::device(
                &self.name,
                format!("unexpected answer {other:?}"),
            )),
        }
    }
}

impl PrDevice for MapDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn register_ignore(&self, key: Key, aptpl: bool) -> Fut<'_, ()> {
        Box::pin(self.out(PrOutAction::RegisterIgnore, 0, key.0, 0, aptpl))
    }
    fn reserve(&self, key: Key, rtype: PrType) -> Fut<'_, ()> {
        Box::pin(self.out(PrOutAction::Reserve, key.0, 0, u8::from(rtype), false))
    }
    fn preempt_abort(&self, key: Key, victim: Key, rtype: PrType) -> Fut<'_, ()> {
        Box::pin(self.out(
            PrOutAction::PreemptAbort,
            key.0,
            victim.0,
            u8::from(rtype),
            false,
        ))
    }
    fn read_keys(&self) -> Fut<'_, Vec<u64>> {
        Box::pin(async move {
            match self.pr_in(PrInAction::ReadKeys).await? {
                PrAnswer::Keys { keys, .. } => Ok(keys),
                other => Err(Error::device(
                    &self.name,
                    format!("unexpected answer {other:?}"),
                )),
            }
        })
    }
    fn read_reservation(&self) -> Fut<'_, Option<Reservation>> {
        Box::pin(async move {
            match self.pr_in(PrInAction::ReadReservation).await? {
                PrAnswer::Reservation { reservation, .. } => Ok(reservation.map(|r| Reservation {
                    key: r.key,
                    rtype: r.rtype,
                })),
                other => Err(Error::device(
                    &self.name,
                    format!("unexpected answer {other:?}"),
                )),
            }
        })
    }
    fn close(&self) -> Fut<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The initiator name for direct sessions: `initiator_name=`, else
/// `InitiatorName=` of `$HYDRA_ISCSI_ROOT`/etc/iscsi `initiatorname.iscsi`.
fn initiator_name(opts: &Options) -> Result<String> {
    if let Some(n) = &opts.initiator_name {
        return Ok(n.clone());
    }
    let p = hydra_initiator::iscsid::default_root().join("initiatorname.iscsi");
    let text = std::fs::read_to_string(&p).map_err(|e| {
        Error::io(
            format!(
                "{} (or give initiator_name=) for iSCSI URL devices",
                p.display()
            ),
            e,
        )
    })?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("InitiatorName="))
        .map(|n| n.trim().to_string())
        .find(|n| !n.is_empty())
        .ok_or_else(|| Error::Usage(format!("{}: no InitiatorName=", p.display())))
}

/// An iSCSI LUN over a session of the agent's own.
struct IscsiDevice {
    name: String,
    lun: u64,
    session: Session,
}

impl IscsiDevice {
    async fn open(dev: &str, opts: &Options) -> Result<IscsiDevice> {
        let url = IscsiUrl::parse(dev).map_err(|e| Error::device(dev, e))?;
        let addr = url.addr().map_err(|e| Error::device(dev, e))?;
        let t = Duration::from_secs(opts.timeout);
        let cfg = LoginConfig {
            initiator_name: initiator_name(opts)?,
            target_name: Some(url.target.clone()),
            isid: opts.isid,
            tsih: 0,
            chap: url.user.clone().map(|user| hydra_initiator::login::Chap {
                user,
                secret: url.password.clone().unwrap_or_default(),
                mutual: None,
            }),
            params: Default::default(),
        };
        let timeouts = Timeouts {
            login: t,
            command: t,
            replacement: t,
            ..Timeouts::default()
        };
        let login = Session::login_with(addr, cfg, timeouts);
        let session = tokio::time::timeout(t + Duration::from_secs(1), login)
            .await
            .map_err(|_| Error::device(dev, format!("no login to {addr} in {} s", t.as_secs())))?
            .map_err(|e| Error::device(dev, format!("login to {addr}: {e}")))?;
        let d = IscsiDevice {
            name: dev.to_string(),
            lun: url.lun,
            session,
        };
        // sg_turs, as fence_scsi does first: clears a pending unit attention.
        d.check(d.session.test_unit_ready(d.lun).await, "TEST UNIT READY")?;
        Ok(d)
    }

    fn check<T>(&self, r: hydra_initiator::Result<Result<T, Failed>>, what: &str) -> Result<T> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(f)) if f.is_reservation_conflict() => Err(Error::device(
                &self.name,
                format!("{what}: RESERVATION CONFLICT"),
            )),
            Ok(Err(f)) => Err(Error::device(
                &self.name,
                format!(
                    "{what}: status {:#04x} sense {:x?}",
                    f.status,
                    f.sense_key()
                ),
            )),
            Err(e) => Err(Error::device(&self.name, format!("{what}: {e}"))),
        }
    }
}

impl PrDevice for IscsiDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn register_ignore(&self, key: Key, aptpl: bool) -> Fut<'_, ()> {
        Box::pin(async move {
            let r = self
                .session
                .pr_register_and_ignore(self.lun, key.0, aptpl)
                .await;
            self.check(r, "REGISTER AND IGNORE EXISTING KEY")
        })
    }
    fn reserve(&self, key: Key, rtype: PrType) -> Fut<'_, ()> {
        Box::pin(async move {
            let r = self.session.pr_reserve(self.lun, key.0, rtype).await;
            self.check(r, "RESERVE")
        })
    }
    fn preempt_abort(&self, key: Key, victim: Key, rtype: PrType) -> Fut<'_, ()> {
        Box::pin(async move {
            let r = self
                .session
                .pr_preempt(self.lun, key.0, victim.0, rtype, true)
                .await;
            self.check(r, "PREEMPT AND ABORT")
        })
    }
    fn read_keys(&self) -> Fut<'_, Vec<u64>> {
        Box::pin(async move {
            let r = self.session.read_keys(self.lun).await;
            Ok(self.check(r, "READ KEYS")?.keys)
        })
    }
    fn read_reservation(&self) -> Fut<'_, Option<Reservation>> {
        Box::pin(async move {
            let r = self.session.read_reservation(self.lun).await;
            Ok(self.check(r, "READ RESERVATION")?.map(|d| Reservation {
                key: d.key,
                rtype: u8::from(d.rtype),
            }))
        })
    }
    fn close(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            self.session
                .close()
                .await
                .map_err(|e| Error::device(&self.name, format!("logout: {e}")))
        })
    }
}
