//! Reservations of one LUN: SPC-4 persistent reservations (§5.13, PERSISTENT RESERVE
//! IN/OUT §6.15/§6.16) and SPC-2 RESERVE/RELEASE (6) and (10), with the RESERVATION
//! CONFLICT rules for every command the LUN implements.
//!
//! Registrations are kept per I_T nexus — initiator port (iSCSI name + ISID) times target
//! port (portal group tag) — not per session, so a re-login of the same initiator port
//! finds its registration, and a different ISID is a different registrant. ALL_TG_PT
//! registers the initiator port on every target port; SPEC_I_PT TransportIDs without an
//! ISID register every ISID of that name. With APTPL the whole state is written to the
//! daemon's state directory before the command completes ([`aptpl`]) and read back when
//! the LUN is created.
//!
//! PREEMPT AND ABORT: the preempted registrations are remembered with a new abort
//! epoch. Commands the preempted nexus sends afterwards meet the new reservation
//! (RESERVATION CONFLICT or the REGISTRATIONS PREEMPTED unit attention); commands of
//! that nexus that were running on the blocking pool when it arrived complete without
//! status, as aborted tasks do with TAS = 0 (the session asks
//! [`Reservations::preempted_since`] before answering). A command already answered was
//! done before the preemption.
//!
//! RESERVE/RELEASE (SPC-2 §7.21/§7.22) are kept per I_T nexus and dropped on nexus loss,
//! LUN reset and target reset. CRH = 0 (SPC-4 §5.13.3): RESERVE is refused with
//! RESERVATION CONFLICT while persistent registrations exist, and PERSISTENT RESERVE
//! from other nexuses is refused while a RESERVE is held.

pub mod aptpl;
pub mod wire;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use hydra_proto::scsi::pr::{InAction, InCdb, MoveParams, OutAction, OutCdb, OutParams, PrType};
use hydra_proto::scsi::{op, status, Opcode, Sense};
use serde::{Deserialize, Serialize};

use super::{Lun, ScsiOutcome, ScsiRequest};
use crate::nexus::ItNexus;

/// At most this many registrations per LUN (INSUFFICIENT REGISTRATION RESOURCES beyond).
const MAX_REGISTRANTS: usize = 1024;

/// One registration: who (initiator port, target port) and its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registrant {
    /// iSCSI name, lower case (names compare case-insensitively, RFC 3722).
    pub initiator: String,
    /// None: every ISID of `initiator` (a SPEC_I_PT TransportID of format 00b).
    pub isid: Option<[u8; 6]>,
    /// Relative target port (portal group tag); any port with `all_tg_pt`.
    pub port: u16,
    pub all_tg_pt: bool,
    pub key: u64,
}

impl Registrant {
    fn of(n: &ItNexus, all_tg_pt: bool, key: u64) -> Registrant {
        Registrant {
            initiator: n.initiator.to_ascii_lowercase(),
            isid: Some(n.isid),
            port: n.target_port,
            all_tg_pt,
            key,
        }
    }

    /// Whether this registration covers nexus `n`.
    pub fn covers(&self, n: &ItNexus) -> bool {
        self.initiator.eq_ignore_ascii_case(&n.initiator)
            && self.isid.is_none_or(|i| i == n.isid)
            && (self.all_tg_pt || self.port == n.target_port)
    }

    fn same_identity(&self, o: &Registrant) -> bool {
        self.initiator == o.initiator
            && self.isid == o.isid
            && self.all_tg_pt == o.all_tg_pt
            && (self.all_tg_pt || self.port == o.port)
    }
}

/// The persistent reservation, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Index into `registrants` of the holder (ignored for all-registrants types).
    pub holder: usize,
    /// Saved as its wire value, as before types were typed (APTPL files stay readable).
    #[serde(with = "type_code")]
    pub rtype: PrType,
}

/// A reservation type in the APTPL file: its SPC-4 code, a number.
mod type_code {
    use hydra_proto::scsi::pr::PrType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &PrType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PrType, D::Error> {
        u8::deserialize(d).map(PrType::from)
    }
}

/// Everything SPC-4 keeps for one LUN (and what APTPL persists).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub generation: u32,
    pub registrants: Vec<Registrant>,
    pub reservation: Option<Reservation>,
    pub aptpl: bool,
}

impl State {
    fn find(&self, n: &ItNexus) -> Option<usize> {
        self.registrants.iter().position(|r| r.covers(n))
    }

    fn all_registrants(&self) -> bool {
        self.reservation
            .as_ref()
            .is_some_and(|r| r.rtype.all_registrants())
    }

    /// Registration `i` holds the reservation (every registrant does for the
    /// all-registrants types, SPC-4 §5.13.10).
    pub fn is_holder_index(&self, i: usize) -> bool {
        match &self.reservation {
            None => false,
            Some(_) if self.all_registrants() => true,
            Some(r) => r.holder == i,
        }
    }

    fn is_holder(&self, n: &ItNexus) -> bool {
        self.find(n).is_some_and(|i| self.is_holder_index(i))
    }

    /// Remove registration `i`; a non-all-registrants reservation it held goes with it,
    /// an all-registrants one when the last registrant goes (§5.13.11.2.3).
    fn remove(&mut self, i: usize) {
        self.registrants.remove(i);
        let all = self.all_registrants();
        if let Some(r) = &mut self.reservation {
            if all {
                if self.registrants.is_empty() {
                    self.reservation = None;
                }
            } else if r.holder == i {
                self.reservation = None;
            } else if r.holder > i {
                r.holder -= 1;
            }
        }
    }
}

/// How a command relates to reservations (SPC-4 Table 49, SBC-3 Table 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Allowed under any reservation.
    Always,
    /// Reads the medium (or its configuration).
    Read,
    /// Writes the medium or changes the LUN.
    Write,
}

fn access(opcode: u8) -> Access {
    use Opcode::*;
    match Opcode::from(opcode) {
        Inquiry | ReportLuns | RequestSense | TestUnitReady | PersistentReserveIn
        | PersistentReserveOut | ReadCapacity10 | MaintenanceIn | Release6 | Release10 => {
            Access::Always
        }
        ServiceActionIn16 => Access::Always, // READ CAPACITY(16), GET LBA STATUS
        Read6 | Read10 | Read12 | Read16 | Verify10 | Verify12 | Verify16 | PreFetch10
        | PreFetch16 | ModeSense6 | ModeSense10 | ReadDefectData10 | ReadDefectData12
        | ReceiveCopyResults => Access::Read,
        _ => Access::Write,
    }
}

/// The reservation state of one LUN.
#[derive(Default)]
pub struct Reservations {
    state: Mutex<Inner>,
    /// A persistent reservation or a RESERVE(6/10) exists: the per-command check is one
    /// relaxed load while there is none.
    active: AtomicBool,
    /// Where APTPL state lives (None: persistence unavailable, APTPL refused).
    file: Option<PathBuf>,
    /// PREEMPT AND ABORTs so far, and the registrations each preempted (recent ones).
    abort_epoch: AtomicU64,
    preempted: Mutex<VecDeque<(u64, Registrant)>>,
}

/// How many preempted registrations are remembered for aborting running tasks: tasks
/// run for milliseconds, so only the latest preemptions can still concern one.
const MAX_PREEMPTED: usize = 256;

#[derive(Default)]
struct Inner {
    pr: State,
    /// RESERVE(6)/(10) holder.
    reserved_by: Option<ItNexus>,
}

impl Inner {
    fn active(&self) -> bool {
        self.pr.reservation.is_some() || self.reserved_by.is_some()
    }
}

fn conflict() -> ScsiOutcome {
    ScsiOutcome {
        status: status::RESERVATION_CONFLICT,
        sense: Vec::new(),
        data_in: Bytes::new(),
        data_out_len: None,
    }
}

impl Reservations {
    /// Reservations persisted to `file` with APTPL; the state saved there is restored.
    pub fn with_file(file: PathBuf) -> Reservations {
        let pr = aptpl::load(&file);
        Reservations {
            active: AtomicBool::new(pr.reservation.is_some()),
            state: Mutex::new(Inner {
                pr,
                reserved_by: None,
            }),
            file: Some(file),
            abort_epoch: AtomicU64::new(0),
            preempted: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn abort_epoch(&self) -> u64 {
        self.abort_epoch.load(Ordering::Acquire)
    }

    /// Whether a PREEMPT AND ABORT after `epoch` preempted a registration of `n`.
    pub fn preempted_since(&self, n: &ItNexus, epoch: u64) -> bool {
        if self.abort_epoch.load(Ordering::Acquire) == epoch {
            return false;
        }
        self.preempted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(e, r)| *e > epoch && r.covers(n))
    }

    /// A copy of the persistent reservation state (for show and tests).
    pub fn snapshot(&self) -> State {
        self.lock().pr.clone()
    }

    /// RESERVATION CONFLICT for `opcode` from `n`, if the reservations forbid it.
    pub fn check(&self, n: &ItNexus, opcode: u8) -> Option<ScsiOutcome> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let kind = access(opcode);
        let s = self.lock();
        if let Some(holder) = &s.reserved_by {
            // SPC-2 §5.5.1: everything but a few commands conflicts for other nexuses.
            use Opcode::*;
            let allowed = matches!(
                Opcode::from(opcode),
                Inquiry | ReportLuns | RequestSense | Release6 | Release10 | MaintenanceIn
            );
            return (holder != n && !allowed).then(conflict);
        }
        let res = s.pr.reservation.as_ref()?;
        if kind == Access::Always || s.pr.is_holder(n) {
            return None;
        }
        // SPC-4 Table 49: exclusive-access types also keep reads out; the
        // registrants-only and all-registrants types let registered nexuses through.
        let registered = s.pr.find(n).is_some();
        let t = res.rtype;
        let conflicts = t.is_known()
            && (kind == Access::Write || t.exclusive_access())
            && !(registered && t.admits_registrants());
        conflicts.then(conflict)
    }

    /// RESERVE(6)/(10) and RELEASE(6)/(10).
    pub fn reserve_release(&self, lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
        let c = req.cdb;
        let n = req.nexus;
        let mut s = self.lock();
        match c[0] {
            op::RESERVE_6 | op::RESERVE_10 => {
                // RESERVE(10) third-party and LongID forms are not supported.
                if c[0] == op::RESERVE_10 && c[1] & 0x12 != 0 {
                    return lun.check(&Sense::invalid_cdb_field(1, Some(4)));
                }
                if !s.pr.registrants.is_empty() || s.pr.reservation.is_some() {
                    return conflict();
                }
                match &s.reserved_by {
                    Some(h) if h != n => return conflict(),
                    _ => s.reserved_by = Some(n.clone()),
                }
            }
            _ => {
                if s.reserved_by.as_ref() == Some(n) {
                    s.reserved_by = None;
                }
            }
        }
        self.active.store(s.active(), Ordering::Relaxed);
        ScsiOutcome::good(Bytes::new())
    }

    /// A nexus went away, or a reset: RESERVE(6/10) is released (SPC-2 §5.5.1).
    pub fn drop_reserve(&self, n: Option<&ItNexus>) {
        let mut s = self.lock();
        if n.is_none() || s.reserved_by.as_ref() == n {
            s.reserved_by = None;
        }
        self.active.store(s.active(), Ordering::Relaxed);
    }

    /// PERSISTENT RESERVE IN.
    pub fn prin(&self, lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
        let Ok(c) = InCdb::parse(req.cdb) else {
            return lun.check(&Sense::illegal_request_invalid_opcode());
        };
        let s = self.lock();
        if s.reserved_by.as_ref().is_some_and(|h| h != req.nexus) {
            return conflict();
        }
        let mut data = match c.action {
            InAction::ReadKeys => wire::read_keys(&s.pr),
            InAction::ReadReservation => wire::read_reservation(&s.pr),
            InAction::ReportCapabilities => wire::report_capabilities(&s.pr),
            InAction::ReadFullStatus => wire::read_full_status(&s.pr),
            InAction::Unknown(_) => return lun.check(&Sense::invalid_cdb_field(1, Some(4))),
        };
        data.truncate(c.alloc_len as usize);
        ScsiOutcome::good(data)
    }

    /// PERSISTENT RESERVE OUT. Unit attentions go through `lun`.
    pub fn prout(&self, lun: &Lun, req: &ScsiRequest<'_>) -> ScsiOutcome {
        let Ok(c) = OutCdb::parse(req.cdb) else {
            return lun.check(&Sense::illegal_request_invalid_opcode());
        };
        let n = req.nexus;
        let len = c.param_len as usize;
        let done = |o: ScsiOutcome| o.with_data_out(len as u32);
        let (sa, rtype) = (c.action, c.rtype);
        if matches!(
            sa,
            OutAction::Unknown(_) | OutAction::ReplaceLostReservation
        ) {
            return done(lun.check(&Sense::invalid_cdb_field(1, Some(4))));
        }
        if req.data_out.len() < len {
            return done(lun.check(&Sense::parameter_list_length()));
        }
        let p = &req.data_out[..len];
        let mut guard = self.lock();
        if guard.reserved_by.as_ref().is_some_and(|h| h != n) {
            return done(conflict());
        }
        // Work on a copy: it replaces the state only once persisted (APTPL).
        let mut s = guard.pr.clone();
        let mut uas: Vec<(Registrant, u8, u8)> = Vec::new();
        if sa.uses_type() {
            if c.scope != 0 {
                return done(lun.check(&Sense::invalid_cdb_field(2, Some(7))));
            }
            if !rtype.is_known() {
                return done(lun.check(&Sense::invalid_cdb_field(2, Some(3))));
            }
        }
        let result = if sa == OutAction::RegisterAndMove {
            match MoveParams::parse(p) {
                Ok(m) => register_and_move(&mut s, n, rtype, &m),
                Err(e) => Err(Refused::Check(e.into())),
            }
        } else {
            match OutParams::parse(p) {
                Ok(params) => match sa {
                    OutAction::Register | OutAction::RegisterAndIgnoreExistingKey => register(
                        &mut s,
                        n,
                        &params,
                        sa == OutAction::RegisterAndIgnoreExistingKey,
                    ),
                    OutAction::Reserve => reserve(&mut s, n, params.key, rtype),
                    OutAction::Release => release(&mut s, n, params.key, rtype, &mut uas),
                    OutAction::Clear => clear(&mut s, n, params.key, &mut uas),
                    _ => preempt(&mut s, n, &params, rtype, &mut uas),
                },
                Err(e) => Err(Refused::Check(e.into())),
            }
        };
        match result {
            Ok(()) => {}
            Err(Refused::Conflict) => return done(conflict()),
            Err(Refused::Check(sense)) => return done(lun.check(&sense)),
        }
        if s != guard.pr {
            if let Some(file) = &self.file {
                if let Err(e) = aptpl::store(file, &s) {
                    tracing::error!(
                        "LUN {}: can't save persistent reservations to {}: {e}",
                        lun.number,
                        file.display()
                    );
                    // SPC-4 §5.13.2: the state could not be made persistent.
                    return done(lun.check(&Sense::insufficient_registration_resources()));
                }
            } else if s.aptpl {
                return done(lun.check(&Sense::invalid_param_field(20)));
            }
        }
        guard.pr = s;
        self.active.store(guard.active(), Ordering::Relaxed);
        if sa == OutAction::PreemptAndAbort {
            let mut p = self.preempted.lock().unwrap_or_else(|e| e.into_inner());
            let epoch = self.abort_epoch.load(Ordering::Relaxed) + 1;
            for (r, _, _) in uas.iter().filter(|u| (u.1, u.2) == (0x2a, 0x05)) {
                if p.len() >= MAX_PREEMPTED {
                    p.pop_front();
                }
                p.push_back((epoch, r.clone()));
            }
            self.abort_epoch.store(epoch, Ordering::Release);
        }
        drop(guard);
        for (r, asc, ascq) in uas {
            lun.ua
                .raise_where(|x| x != n && r.covers(x), Sense::unit_attention(asc, ascq));
        }
        done(ScsiOutcome::good(Bytes::new()))
    }
}

/// Why a PERSISTENT RESERVE OUT was refused.
enum Refused {
    /// RESERVATION CONFLICT status.
    Conflict,
    /// CHECK CONDITION with this sense.
    Check(Sense),
}

type Step = Result<(), Refused>;

fn conflict_step() -> Step {
    Err(Refused::Conflict)
}

fn check_step(s: Sense) -> Step {
    Err(Refused::Check(s))
}

/// The registration of `n` if `key` is its key, else RESERVATION CONFLICT (§5.13.1).
fn registered_with(s: &State, n: &ItNexus, key: u64) -> Result<usize, Refused> {
    match s.find(n) {
        Some(i) if s.registrants[i].key == key => Ok(i),
        _ => Err(Refused::Conflict),
    }
}

/// REGISTER and REGISTER AND IGNORE EXISTING KEY (§5.13.7).
fn register(s: &mut State, n: &ItNexus, p: &OutParams, ignore: bool) -> Step {
    match s.find(n) {
        None => {
            if !ignore && p.key != 0 {
                return conflict_step();
            }
            if p.sa_key == 0 {
                return Ok(());
            }
            let mut new = vec![Registrant::of(n, p.all_tg_pt, p.sa_key)];
            if p.spec_i_pt {
                if ignore {
                    return check_step(Sense::invalid_cdb_field(1, Some(4)));
                }
                for t in &p.transport_ids {
                    let t = wire::registrant(t, n.target_port, p.all_tg_pt);
                    if s.registrants.iter().any(|r| r.same_identity(&t)) {
                        return check_step(Sense::invalid_param_field(28));
                    }
                    new.push(Registrant { key: p.sa_key, ..t });
                }
            }
            if s.registrants.len() + new.len() > MAX_REGISTRANTS {
                return check_step(Sense::insufficient_registration_resources());
            }
            s.registrants.extend(new);
        }
        Some(i) => {
            if !ignore && p.key != s.registrants[i].key {
                return conflict_step();
            }
            if p.spec_i_pt {
                return check_step(Sense::invalid_param_field(20));
            }
            if p.sa_key == 0 {
                s.remove(i);
            } else {
                s.registrants[i].key = p.sa_key;
            }
        }
    }
    s.aptpl = p.aptpl;
    s.generation = s.generation.wrapping_add(1);
    Ok(())
}

/// RESERVE (§5.13.9).
fn reserve(s: &mut State, n: &ItNexus, key: u64, rtype: PrType) -> Step {
    let i = registered_with(s, n, key)?;
    match &s.reservation {
        Some(r) => {
            if s.is_holder_index(i) && r.rtype == rtype {
                Ok(())
            } else {
                conflict_step()
            }
        }
        None => {
            s.reservation = Some(Reservation { holder: i, rtype });
            Ok(())
        }
    }
}

/// RELEASE (§5.13.11.2).
fn release(
    s: &mut State,
    n: &ItNexus,
    key: u64,
    rtype: PrType,
    uas: &mut Vec<(Registrant, u8, u8)>,
) -> Step {
    let i = registered_with(s, n, key)?;
    let Some(r) = s.reservation.clone() else {
        return Ok(());
    };
    if !s.is_holder_index(i) {
        return Ok(());
    }
    if r.rtype != rtype {
        // INVALID RELEASE OF PERSISTENT RESERVATION.
        return check_step(Sense::invalid_release_of_reservation());
    }
    s.reservation = None;
    // §5.13.11.2.2: the other registrants learn of it, except for WE and EA.
    if !matches!(r.rtype, PrType::WriteExclusive | PrType::ExclusiveAccess) {
        for (j, o) in s.registrants.iter().enumerate() {
            if j != i {
                uas.push((o.clone(), 0x2a, 0x04));
            }
        }
    }
    Ok(())
}

/// CLEAR (§5.13.11.2.6).
fn clear(s: &mut State, n: &ItNexus, key: u64, uas: &mut Vec<(Registrant, u8, u8)>) -> Step {
    registered_with(s, n, key)?;
    for o in &s.registrants {
        uas.push((o.clone(), 0x2a, 0x03));
    }
    s.registrants.clear();
    s.reservation = None;
    s.generation = s.generation.wrapping_add(1);
    Ok(())
}

/// PREEMPT and PREEMPT AND ABORT (§5.13.11.4).
fn preempt(
    s: &mut State,
    n: &ItNexus,
    p: &OutParams,
    rtype: PrType,
    uas: &mut Vec<(Registrant, u8, u8)>,
) -> Step {
    let me = registered_with(s, n, p.key)?;
    let my_id = s.registrants[me].clone();
    let all_reg = s.all_registrants();
    let holder_key = match &s.reservation {
        Some(r) if !all_reg => Some(s.registrants[r.holder].key),
        _ => None,
    };
    if p.sa_key == 0 && !(s.reservation.is_some() && all_reg) {
        return check_step(Sense::invalid_param_field(8));
    }
    let takes_reservation = match &s.reservation {
        None => false,
        Some(_) if all_reg => p.sa_key == 0,
        Some(_) => holder_key == Some(p.sa_key),
    };
    // Victims: registrations with the key (all others for an all-registrants SARK 0).
    let victims: Vec<usize> = (0..s.registrants.len())
        .filter(|&j| {
            if all_reg && p.sa_key == 0 {
                j != me
            } else {
                s.registrants[j].key == p.sa_key && j != me
            }
        })
        .collect();
    if victims.is_empty() && !takes_reservation {
        // §5.13.11.4.3: no registration with that key.
        if s.registrants.iter().all(|r| r.key != p.sa_key) {
            return conflict_step();
        }
    }
    for &j in &victims {
        uas.push((s.registrants[j].clone(), 0x2a, 0x05));
    }
    let old_type = s.reservation.as_ref().map(|r| r.rtype);
    for &j in victims.iter().rev() {
        s.registrants.remove(j);
    }
    let me = s
        .registrants
        .iter()
        .position(|r| r.same_identity(&my_id))
        .expect("the preempting registration stays");
    if takes_reservation {
        s.reservation = Some(Reservation { holder: me, rtype });
        if old_type != Some(rtype) {
            for (j, o) in s.registrants.iter().enumerate() {
                if j != me {
                    uas.push((o.clone(), 0x2a, 0x04));
                }
            }
        }
    } else if let Some(r) = &mut s.reservation {
        // The holder stayed; its index may have moved.
        if !all_reg {
            let holder = holder_key.expect("non-AR reservation has a holder");
            r.holder = s
                .registrants
                .iter()
                .position(|x| x.key == holder)
                .unwrap_or(me);
        }
    }
    s.generation = s.generation.wrapping_add(1);
    Ok(())
}

/// REGISTER AND MOVE (§5.13.8).
fn register_and_move(s: &mut State, n: &ItNexus, rtype: PrType, m: &MoveParams) -> Step {
    let me = registered_with(s, n, m.key)?;
    // Only the holder of a reservation that is not all-registrants may move it.
    if !s.is_holder_index(me) || s.all_registrants() {
        return conflict_step();
    }
    if m.sa_key == 0 {
        return check_step(Sense::invalid_param_field(8));
    }
    let dest = Registrant {
        key: m.sa_key,
        ..wire::registrant(&m.dest, m.target_port, false)
    };
    if dest.covers(n) {
        return check_step(Sense::invalid_param_field(24));
    }
    let d = match s.registrants.iter().position(|x| x.same_identity(&dest)) {
        Some(d) => {
            s.registrants[d].key = m.sa_key;
            d
        }
        None => {
            s.registrants.push(dest);
            s.registrants.len() - 1
        }
    };
    s.reservation = Some(Reservation { holder: d, rtype });
    if m.unreg {
        s.remove(me);
    }
    s.aptpl = m.aptpl;
    s.generation = s.generation.wrapping_add(1);
    Ok(())
}

#[cfg(test)]
mod tests;
