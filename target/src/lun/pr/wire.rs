//! The target's side of the persistent reservation formats, whose bytes live in
//! `hydra_proto::scsi::pr` (SPC-4 §6.15, §6.16, §7.6.4.6): PR OUT parameter lists read
//! into registrations of this LUN, and the PR IN answers built from its [`State`].

use hydra_proto::scsi::pr::{
    self, FullStatus, OutParams, PrType, ReadKeys, ReadReservation, ReportCapabilities,
    ReservationDescriptor, StatusDescriptor, TransportId,
};
use hydra_proto::scsi::Sense;

use super::{Registrant, State};

/// The basic PERSISTENT RESERVE OUT parameter list (§6.16.3), with the TransportIDs of
/// SPEC_I_PT as registrations through target port `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProutParams {
    pub key: u64,
    pub sa_key: u64,
    pub spec_i_pt: bool,
    pub all_tg_pt: bool,
    pub aptpl: bool,
    pub transport_ids: Vec<Registrant>,
}

/// The REGISTER AND MOVE parameter list (§6.16.4), its destination as a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveParams {
    pub key: u64,
    pub sa_key: u64,
    pub unreg: bool,
    pub aptpl: bool,
    pub target_port: u16,
    pub dest: Registrant,
}

/// The registration a TransportID names, through `port` (names folded to lower case:
/// they compare case-insensitively, RFC 3722).
fn registrant(t: TransportId, port: u16, all_tg_pt: bool) -> Registrant {
    Registrant {
        initiator: t.name.to_ascii_lowercase(),
        isid: t.isid,
        port,
        all_tg_pt,
        key: 0,
    }
}

/// The TransportID of a registration (format 01b when the ISID is known).
pub fn transport_id_of(r: &Registrant) -> TransportId {
    TransportId {
        name: r.initiator.clone(),
        isid: r.isid,
    }
}

/// Parse the basic parameter list, arrived through target port `port`.
pub fn prout_params(p: &[u8], port: u16) -> Result<ProutParams, Sense> {
    let o = OutParams::parse(p)?;
    Ok(ProutParams {
        key: o.key,
        sa_key: o.sa_key,
        spec_i_pt: o.spec_i_pt,
        all_tg_pt: o.all_tg_pt,
        aptpl: o.aptpl,
        transport_ids: o
            .transport_ids
            .into_iter()
            .map(|t| registrant(t, port, o.all_tg_pt))
            .collect(),
    })
}

/// Parse a REGISTER AND MOVE parameter list.
pub fn move_params(p: &[u8]) -> Result<MoveParams, Sense> {
    let m = pr::MoveParams::parse(p)?;
    Ok(MoveParams {
        key: m.key,
        sa_key: m.sa_key,
        unreg: m.unreg,
        aptpl: m.aptpl,
        target_port: m.target_port,
        dest: registrant(m.dest, m.target_port, false),
    })
}

/// READ KEYS (§6.15.2).
pub fn read_keys(s: &State) -> Vec<u8> {
    ReadKeys {
        generation: s.generation,
        keys: s.registrants.iter().map(|r| r.key).collect(),
    }
    .emit()
}

/// READ RESERVATION (§6.15.3). All-registrants reservations report key 0.
pub fn read_reservation(s: &State) -> Vec<u8> {
    ReadReservation {
        generation: s.generation,
        reservation: s.reservation.as_ref().map(|res| ReservationDescriptor {
            key: if res.rtype.all_registrants() {
                0
            } else {
                s.registrants.get(res.holder).map_or(0, |r| r.key)
            },
            scope: 0,
            rtype: res.rtype,
        }),
    }
    .emit()
}

/// REPORT CAPABILITIES (§6.15.4): CRH 0, SIP_C, ATP_C, PTPL_C; TMV with all six types.
pub fn report_capabilities(s: &State) -> Vec<u8> {
    use PrType::*;
    ReportCapabilities {
        crh: false,
        sip_c: true,
        atp_c: true,
        ptpl_c: true,
        allow_commands: 0,
        ptpl_a: s.aptpl,
        type_mask: Some(ReportCapabilities::mask_of(&[
            WriteExclusive,
            ExclusiveAccess,
            WriteExclusiveRegistrantsOnly,
            ExclusiveAccessRegistrantsOnly,
            WriteExclusiveAllRegistrants,
            ExclusiveAccessAllRegistrants,
        ])),
    }
    .emit()
}

/// READ FULL STATUS (§6.15.5): one descriptor per registration.
pub fn read_full_status(s: &State) -> Vec<u8> {
    FullStatus {
        generation: s.generation,
        descriptors: s
            .registrants
            .iter()
            .enumerate()
            .map(|(i, r)| StatusDescriptor {
                key: r.key,
                all_tg_pt: r.all_tg_pt,
                holder: s
                    .is_holder_index(i)
                    .then(|| s.reservation.as_ref().map(|res| res.rtype))
                    .flatten(),
                relative_target_port: if r.all_tg_pt { 0 } else { r.port },
                transport_id: transport_id_of(r),
            })
            .collect(),
    }
    .emit()
}
