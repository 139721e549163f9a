//! The target's side of the persistent reservation formats, whose bytes live in
//! `hydra_proto::scsi::pr` (SPC-4 §6.15, §6.16, §7.6.4.6): the TransportIDs of PR OUT
//! parameter lists as registrations of this LUN, and the PR IN answers built from its
//! [`State`].

use hydra_proto::scsi::pr::{
    FullStatus, PrType, ReadKeys, ReadReservation, ReportCapabilities, ReservationDescriptor,
    StatusDescriptor, TransportId,
};

use super::{Registrant, State};

/// The registration a TransportID of a PR OUT parameter list names, through `port`
/// (names folded to lower case: they compare case-insensitively, RFC 3722).
pub fn registrant(t: &TransportId, port: u16, all_tg_pt: bool) -> Registrant {
    Registrant {
        initiator: t.name.to_ascii_lowercase(),
        isid: t.isid,
        port,
        all_tg_pt,
        key: 0,
    }
}

/// The TransportID of a registration (format 01b when the ISID is known).
fn transport_id_of(r: &Registrant) -> TransportId {
    TransportId {
        name: r.initiator.clone(),
        isid: r.isid,
    }
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
    ReportCapabilities {
        crh: false,
        sip_c: true,
        atp_c: true,
        ptpl_c: true,
        allow_commands: 0,
        ptpl_a: s.aptpl,
        type_mask: Some(ReportCapabilities::mask_of(&PrType::ALL)),
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
