//! Persistent reservations on the wire (SPC-4 §5.13): the PERSISTENT RESERVE OUT command
//! and its parameter lists (§6.16, [`prout`]), the PERSISTENT RESERVE IN command and its
//! parameter data (§6.15, [`prin`]), and the iSCSI TransportID both carry
//! (§7.6.4.6, [`transport_id`]).
//!
//! The target parses what fence_scsi-like initiators send and emits what they read; the
//! initiator does the opposite with the same types, so the two ends cannot drift apart.
//! Every `parse` checks lengths first: nothing panics on a short or hostile buffer.

pub mod prin;
pub mod prout;
pub mod transport_id;

pub use prin::{
    FullStatus, InCdb, ReadKeys, ReadReservation, ReportCapabilities, ReservationDescriptor,
    StatusDescriptor,
};
pub use prout::{MoveParams, OutCdb, OutParams};
pub use transport_id::TransportId;

use super::code::enum_with_unknown;
use super::Sense;

enum_with_unknown! {
    /// PERSISTENT RESERVE OUT service actions (SPC-4 §6.16.2, Table 170).
    pub enum OutAction(mask 0x1f) {
        Register = 0x00,
        Reserve = 0x01,
        Release = 0x02,
        Clear = 0x03,
        Preempt = 0x04,
        PreemptAndAbort = 0x05,
        RegisterAndIgnoreExistingKey = 0x06,
        RegisterAndMove = 0x07,
        ReplaceLostReservation = 0x08,
    }
}

impl OutAction {
    /// Whether the TYPE (and SCOPE) fields of the CDB matter for this action
    /// (SPC-4 §6.16.2 Table 170, "parameters" column): RESERVE, RELEASE, PREEMPT,
    /// PREEMPT AND ABORT and REGISTER AND MOVE.
    pub fn uses_type(self) -> bool {
        matches!(
            self,
            OutAction::Reserve
                | OutAction::Release
                | OutAction::Preempt
                | OutAction::PreemptAndAbort
                | OutAction::RegisterAndMove
        )
    }
}

enum_with_unknown! {
    /// PERSISTENT RESERVE IN service actions (SPC-4 §6.15.1, Table 162).
    pub enum InAction(mask 0x1f) {
        ReadKeys = 0x00,
        ReadReservation = 0x01,
        ReportCapabilities = 0x02,
        ReadFullStatus = 0x03,
    }
}

enum_with_unknown! {
    /// Persistent reservation types (SPC-4 §6.15.3.3, Table 168), 4 bits on the wire.
    pub enum PrType(mask 0x0f) {
        WriteExclusive = 0x1,
        ExclusiveAccess = 0x3,
        WriteExclusiveRegistrantsOnly = 0x5,
        ExclusiveAccessRegistrantsOnly = 0x6,
        WriteExclusiveAllRegistrants = 0x7,
        ExclusiveAccessAllRegistrants = 0x8,
    }
}

impl PrType {
    /// Every type SPC-4 defines.
    pub const ALL: [PrType; 6] = [
        PrType::WriteExclusive,
        PrType::ExclusiveAccess,
        PrType::WriteExclusiveRegistrantsOnly,
        PrType::ExclusiveAccessRegistrantsOnly,
        PrType::WriteExclusiveAllRegistrants,
        PrType::ExclusiveAccessAllRegistrants,
    ];

    /// Every registrant holds an all-registrants reservation (SPC-4 §5.13.10), which
    /// READ RESERVATION reports with key 0.
    pub fn all_registrants(self) -> bool {
        matches!(
            self,
            PrType::WriteExclusiveAllRegistrants | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// Whether a registered I_T nexus that is not the holder still gets the access the
    /// type reserves: the registrants-only and all-registrants types (SPC-4 Table 49).
    pub fn admits_registrants(self) -> bool {
        matches!(
            self,
            PrType::WriteExclusiveRegistrantsOnly
                | PrType::ExclusiveAccessRegistrantsOnly
                | PrType::WriteExclusiveAllRegistrants
                | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// Whether the type also keeps reads from others (the "Exclusive Access" types).
    pub fn exclusive_access(self) -> bool {
        matches!(
            self,
            PrType::ExclusiveAccess
                | PrType::ExclusiveAccessRegistrantsOnly
                | PrType::ExclusiveAccessAllRegistrants
        )
    }

    /// A type SPC-4 defines (not obsolete, not reserved).
    pub fn is_known(self) -> bool {
        !matches!(self, PrType::Unknown(_))
    }

    /// The names sg_persist prints.
    pub fn as_str(self) -> &'static str {
        match self {
            PrType::WriteExclusive => "Write Exclusive",
            PrType::ExclusiveAccess => "Exclusive Access",
            PrType::WriteExclusiveRegistrantsOnly => "Write Exclusive, registrants only",
            PrType::ExclusiveAccessRegistrantsOnly => "Exclusive Access, registrants only",
            PrType::WriteExclusiveAllRegistrants => "Write Exclusive, all registrants",
            PrType::ExclusiveAccessAllRegistrants => "Exclusive Access, all registrants",
            PrType::Unknown(_) => "obsolete or reserved type",
        }
    }
}

/// Why a PERSISTENT RESERVE OUT parameter list (or a TransportID in PR IN data) was
/// refused, in the terms the target answers with (SPC-4 §6.16.3): a wrong length, or
/// a bad field at a byte offset of the parameter list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// PARAMETER LIST LENGTH ERROR (1A/00).
    #[error("parameter list length error")]
    Length,
    /// INVALID FIELD IN PARAMETER LIST (26/00) at this byte.
    #[error("invalid field in parameter list at byte {0}")]
    Field(u16),
}

impl From<ParamError> for Sense {
    fn from(e: ParamError) -> Sense {
        match e {
            ParamError::Length => Sense::parameter_list_length(),
            ParamError::Field(byte) => Sense::invalid_param_field(byte),
        }
    }
}

impl From<ParamError> for crate::Error {
    fn from(e: ParamError) -> crate::Error {
        crate::Error::malformed("persistent reservation data", e.to_string())
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_unknown_values() {
        for v in 0..=0x1fu8 {
            assert_eq!(u8::from(OutAction::from(v)), v);
            assert_eq!(u8::from(InAction::from(v)), v);
        }
        for v in 0..=0x0fu8 {
            assert_eq!(u8::from(PrType::from(v)), v);
        }
        assert_eq!(OutAction::from(0x05), OutAction::PreemptAndAbort);
        assert_eq!(OutAction::from(0x09), OutAction::Unknown(0x09));
        assert_eq!(PrType::from(0x02), PrType::Unknown(0x02));
        assert_eq!(PrType::from(0x75), PrType::WriteExclusiveRegistrantsOnly);
        assert!(PrType::ExclusiveAccessAllRegistrants.all_registrants());
        assert!(!PrType::WriteExclusive.admits_registrants());
    }
}
