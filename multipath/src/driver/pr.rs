//! Persistent reservations through a map, as mpathpersist does them
//! (multipath-tools `libmpathpersist/mpath_persist_int.c`): a registration belongs to
//! an I_T nexus (SPC-4 §5.13.1), so REGISTER and REGISTER AND IGNORE EXISTING KEY go
//! down every path whose session is logged in (`mpath_prout_reg`), and the other
//! service actions and PERSISTENT RESERVE IN go down one usable path, the next one if
//! that path fails under them (`mpath_prout_common`, `mpath_prin_activepath`).
//!
//! mpathpersist's rollback: when REGISTER succeeded on some paths and was refused on
//! another (RESERVATION CONFLICT, a wrong old key), the paths that took the new key
//! are registered back to the old one (`mpath_prout_rollback`), so that the map's
//! nexuses never end up with two keys. REGISTER AND IGNORE EXISTING KEY has no old
//! key to go back to and is not rolled back, as in mpathpersist.

use std::sync::Arc;

use hydra_initiator::scsi::Failed;
use hydra_initiator::Session;
use hydra_proto::scsi::pr::{
    FullStatus, OutAction, OutParams, PrType, ReadKeys, ReportCapabilities, ReservationDescriptor,
};
use hydra_proto::scsi::status;

use hydra_initiator::path::classify;
use hydra_initiator::Verdict;

use crate::map::{PathId, MAX_RETRIES};
use crate::{Error, Result};

/// How a PERSISTENT RESERVE command ended (mpathpersist's MPATH_PR_* codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrOutcome {
    /// GOOD on every path it went to (MPATH_PR_SUCCESS).
    Good,
    /// RESERVATION CONFLICT (MPATH_PR_RESERV_CONFLICT).
    ReservationConflict,
    /// Another SCSI status, with its sense key, ASC and ASCQ (MPATH_PR_SENSE_*,
    /// e.g. ILLEGAL REQUEST for a bad parameter list).
    Failed {
        status: u8,
        sense: Option<(u8, u8, u8)>,
    },
}

impl PrOutcome {
    fn of(f: &Failed) -> PrOutcome {
        if f.status == status::RESERVATION_CONFLICT {
            PrOutcome::ReservationConflict
        } else {
            PrOutcome::Failed {
                status: f.status,
                sense: f.sense_key(),
            }
        }
    }
}

/// A PERSISTENT RESERVE IN answer, decoded (SPC-4 §6.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrIn {
    Keys(ReadKeys),
    Reservation(Option<ReservationDescriptor>),
    Capabilities(ReportCapabilities),
    FullStatus(FullStatus),
}

/// A path as PERSISTENT RESERVE sees it.
#[derive(Clone)]
pub(crate) struct PrPath {
    pub id: PathId,
    pub name: String,
    pub session: Arc<Session>,
    pub lun: u64,
    /// Usable in the map (dm state active), in the map's group order.
    pub usable: bool,
}

fn no_path(map: &str, what: &str, last: Option<String>) -> Error {
    Error::NoUsablePath {
        map: map.to_string(),
        what: what.to_string(),
        last: last.unwrap_or_else(|| "the map has no usable path".into()),
    }
}

/// PERSISTENT RESERVE OUT of `action` through the map's `paths`.
pub(crate) async fn out(
    map: &str,
    paths: &[PrPath],
    action: OutAction,
    rtype: PrType,
    params: &OutParams,
) -> Result<PrOutcome> {
    let what = format!("PERSISTENT RESERVE OUT {action:?}");
    if !matches!(
        action,
        OutAction::Register | OutAction::RegisterAndIgnoreExistingKey
    ) {
        return one_path(map, &what, paths, |s, lun| async move {
            retrying(|| s.persistent_reserve_out(lun, action, rtype, params)).await
        })
        .await
        .map(|r| r.map_or_else(|f| PrOutcome::of(&f), |()| PrOutcome::Good));
    }
    // Every I_T nexus: each path whose session is logged in.
    let mut done: Vec<&PrPath> = Vec::new();
    let mut refused: Option<PrOutcome> = None;
    let mut last = None;
    for p in paths.iter().filter(|p| p.session.path_state().is_up()) {
        match retrying(|| {
            p.session
                .persistent_reserve_out(p.lun, action, rtype, params)
        })
        .await
        {
            Ok(Ok(())) => done.push(p),
            Ok(Err(f)) => {
                tracing::warn!("{map}: {what} on {}: {:?}", p.name, PrOutcome::of(&f));
                refused.get_or_insert(PrOutcome::of(&f));
            }
            // The path failed under it: no registration there; the checker will fail
            // the path. mpathpersist skips paths that are not up the same way.
            Err(e) => {
                tracing::warn!("{map}: {what} on {}: {e}", p.name);
                last = Some(format!("{}: {e}", p.name));
            }
        }
    }
    if let Some(refused) = refused {
        if action == OutAction::Register && params.key != params.sa_key {
            let back = OutParams {
                key: params.sa_key,
                sa_key: params.key,
                ..params.clone()
            };
            for p in done {
                let r = retrying(|| {
                    p.session
                        .persistent_reserve_out(p.lun, action, rtype, &back)
                })
                .await;
                if !matches!(r, Ok(Ok(()))) {
                    tracing::warn!("{map}: rollback of REGISTER on {} failed: {r:?}", p.name);
                }
            }
        }
        return Ok(refused);
    }
    if done.is_empty() {
        return Err(no_path(map, &what, last));
    }
    Ok(PrOutcome::Good)
}

/// PERSISTENT RESERVE IN of `action` on one usable path.
pub(crate) async fn read(
    map: &str,
    paths: &[PrPath],
    action: hydra_proto::scsi::pr::InAction,
) -> Result<std::result::Result<PrIn, PrOutcome>> {
    use hydra_proto::scsi::pr::InAction;
    let what = format!("PERSISTENT RESERVE IN {action:?}");
    let r = one_path(map, &what, paths, |s, lun| async move {
        Ok(match action {
            InAction::ReadKeys => retrying(|| s.read_keys(lun)).await?.map(PrIn::Keys),
            InAction::ReadReservation => retrying(|| s.read_reservation(lun))
                .await?
                .map(PrIn::Reservation),
            InAction::ReportCapabilities => retrying(|| s.report_capabilities(lun))
                .await?
                .map(PrIn::Capabilities),
            InAction::ReadFullStatus => retrying(|| s.read_full_status(lun))
                .await?
                .map(PrIn::FullStatus),
            InAction::Unknown(_) => Err(Failed {
                status: status::CHECK_CONDITION,
                sense: None,
            }),
        })
    })
    .await?;
    Ok(r.map_err(|f| PrOutcome::of(&f)))
}

/// Run `f` on the first usable path, moving on while paths fail under it
/// (transport errors); a SCSI answer of any status is final.
async fn one_path<'a, T, F, Fut>(
    map: &str,
    what: &str,
    paths: &'a [PrPath],
    f: F,
) -> Result<std::result::Result<T, Failed>>
where
    F: Fn(&'a Session, u64) -> Fut,
    Fut: std::future::Future<Output = hydra_initiator::Result<std::result::Result<T, Failed>>>,
{
    let mut last = None;
    for p in paths.iter().filter(|p| p.usable) {
        match f(&p.session, p.lun).await {
            Ok(r) => return Ok(r),
            Err(e) => {
                tracing::warn!("{map}: {what} on {}: {e}; trying the next path", p.name);
                last = Some(format!("{}: {e}", p.name));
            }
        }
    }
    Err(no_path(map, what, last))
}

/// Run `f` again while it ends in what Linux retries on the same path (UNIT
/// ATTENTION, BUSY: [`hydra_initiator::path::classify`]'s Retry), at most
/// [`MAX_RETRIES`] times — a new nexus's first command meets its power-on unit
/// attention, and the command was not executed.
async fn retrying<T, F, Fut>(f: F) -> hydra_initiator::Result<std::result::Result<T, Failed>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = hydra_initiator::Result<std::result::Result<T, Failed>>>,
{
    let mut tries = 0;
    loop {
        let r = f().await?;
        match &r {
            Err(fl)
                if tries < MAX_RETRIES && classify(fl.status, fl.sense_key()) == Verdict::Retry =>
            {
                tries += 1
            }
            _ => return Ok(r),
        }
    }
}

/// A path joined a map whose key is registered (multipathd's
/// `mpath_pr_event_handle`): if READ KEYS through the new path still lists the key —
/// this node was not preempted meanwhile — register it on the new I_T nexus with
/// REGISTER AND IGNORE EXISTING KEY. Failures are logged; the path serves I/O
/// regardless (a write on it then meets RESERVATION CONFLICT, as on Linux).
pub(crate) async fn register_new_path(
    map: String,
    name: String,
    s: Arc<Session>,
    lun: u64,
    key: u64,
    aptpl: bool,
) {
    match retrying(|| s.read_keys(lun)).await {
        Ok(Ok(keys)) if keys.keys.contains(&key) => {}
        Ok(Ok(_)) => {
            return tracing::info!(
                "{map}: {name}: key {key:#x} is no longer registered; not registering the new path"
            )
        }
        other => return tracing::warn!("{map}: {name}: READ KEYS before registering: {other:?}"),
    }
    let p = OutParams {
        sa_key: key,
        aptpl,
        ..OutParams::default()
    };
    let (a, t) = (OutAction::RegisterAndIgnoreExistingKey, PrType::Unknown(0));
    match retrying(|| s.persistent_reserve_out(lun, a, t, &p)).await {
        Ok(Ok(())) => tracing::info!("{map}: {name}: registered key {key:#x} on the new path"),
        other => tracing::warn!("{map}: {name}: registering key {key:#x}: {other:?}"),
    }
}
