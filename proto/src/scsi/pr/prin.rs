//! PERSISTENT RESERVE IN (SPC-4 §6.15): the 10-byte CDB and the parameter data of its
//! four service actions — READ KEYS (§6.15.2), READ RESERVATION (§6.15.3), REPORT
//! CAPABILITIES (§6.15.4) and READ FULL STATUS (§6.15.5).
//!
//! Parsers take the data as it arrived, which the allocation length may have cut
//! short: a list that claims more than arrived is [`Error::Truncated`] (ask again with a
//! larger allocation length), never a silently shorter list.

use super::{be32, be64, InAction, PrType, TransportId};
use crate::scsi::cdb::checked;
use crate::scsi::op;
use crate::{Error, Result};

/// The PERSISTENT RESERVE IN CDB (SPC-4 §6.15.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InCdb {
    pub action: InAction,
    /// ALLOCATION LENGTH.
    pub alloc_len: u16,
}

impl InCdb {
    /// The CDB's length.
    pub const LEN: usize = 10;

    /// Read the fields of a PERSISTENT RESERVE IN CDB.
    pub fn parse(cdb: &[u8]) -> Result<InCdb> {
        let what = "PERSISTENT RESERVE IN CDB";
        let cdb = checked(cdb, op::PERSISTENT_RESERVE_IN, Self::LEN, what)?;
        Ok(InCdb {
            action: cdb[1].into(),
            alloc_len: u16::from_be_bytes([cdb[7], cdb[8]]),
        })
    }

    /// The 10 CDB bytes (CONTROL 0).
    pub fn emit(&self) -> [u8; Self::LEN] {
        let mut c = [0u8; Self::LEN];
        c[0] = op::PERSISTENT_RESERVE_IN;
        c[1] = u8::from(self.action);
        c[7..9].copy_from_slice(&self.alloc_len.to_be_bytes());
        c
    }
}

/// The 8-byte header every PR IN answer but REPORT CAPABILITIES starts with:
/// PRGENERATION and ADDITIONAL LENGTH, and the bytes that length covers.
fn header<'a>(what: &'static str, d: &'a [u8]) -> Result<(u32, &'a [u8])> {
    if d.len() < 8 {
        return Err(Error::truncated(what, 8, d.len()));
    }
    let len = be32(d, 4) as usize;
    if d.len() - 8 < len {
        return Err(Error::truncated(what, 8 + len, d.len()));
    }
    Ok((be32(d, 0), &d[8..8 + len]))
}

fn with_header(generation: u32, body: Vec<u8>) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.extend_from_slice(&generation.to_be_bytes());
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend(body);
    v
}

/// READ KEYS parameter data (SPC-4 §6.15.2): every registered key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadKeys {
    /// PRGENERATION: counts REGISTER, CLEAR, PREEMPT... (§5.13.2).
    pub generation: u32,
    pub keys: Vec<u64>,
}

impl ReadKeys {
    pub fn parse(d: &[u8]) -> Result<ReadKeys> {
        let (generation, body) = header("READ KEYS data", d)?;
        if !body.len().is_multiple_of(8) {
            return Err(Error::malformed(
                "READ KEYS data",
                format!("additional length {} is not a multiple of 8", body.len()),
            ));
        }
        Ok(ReadKeys {
            generation,
            keys: body.chunks_exact(8).map(|k| be64(k, 0)).collect(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        8 + 8 * self.keys.len()
    }

    pub fn emit(&self) -> Vec<u8> {
        let body = self.keys.iter().flat_map(|k| k.to_be_bytes()).collect();
        with_header(self.generation, body)
    }
}

/// The reservation READ RESERVATION reports (SPC-4 §6.15.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationDescriptor {
    /// The holder's key; 0 for the all-registrants types (§5.13.10).
    pub key: u64,
    /// SCOPE (4 bits): only LU_SCOPE (0) is defined.
    pub scope: u8,
    pub rtype: PrType,
}

/// READ RESERVATION parameter data (SPC-4 §6.15.3): the reservation, if there is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReservation {
    pub generation: u32,
    pub reservation: Option<ReservationDescriptor>,
}

impl ReadReservation {
    pub fn parse(d: &[u8]) -> Result<ReadReservation> {
        let (generation, body) = header("READ RESERVATION data", d)?;
        let reservation = match body.len() {
            0 => None,
            16 => Some(ReservationDescriptor {
                key: be64(body, 0),
                scope: body[13] >> 4,
                rtype: body[13].into(),
            }),
            n => {
                return Err(Error::malformed(
                    "READ RESERVATION data",
                    format!("additional length {n}, not 0 or 16"),
                ))
            }
        };
        Ok(ReadReservation {
            generation,
            reservation,
        })
    }

    pub fn buffer_len(&self) -> usize {
        8 + if self.reservation.is_some() { 16 } else { 0 }
    }

    pub fn emit(&self) -> Vec<u8> {
        let body = match &self.reservation {
            None => Vec::new(),
            Some(r) => {
                let mut b = vec![0u8; 16];
                b[0..8].copy_from_slice(&r.key.to_be_bytes());
                b[13] = (r.scope & 0x0f) << 4 | u8::from(r.rtype);
                b
            }
        };
        with_header(self.generation, body)
    }
}

/// REPORT CAPABILITIES parameter data (SPC-4 §6.15.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportCapabilities {
    /// CRH: RESERVE/RELEASE(6/10) are allowed alongside registrations (§5.13.3).
    pub crh: bool,
    /// SIP_C: SPEC_I_PT is supported.
    pub sip_c: bool,
    /// ATP_C: ALL_TG_PT is supported.
    pub atp_c: bool,
    /// PTPL_C: APTPL is supported.
    pub ptpl_c: bool,
    /// ALLOW COMMANDS (3 bits), with TMV, only when `type_mask` is valid.
    pub allow_commands: u8,
    /// PTPL_A: APTPL is in effect.
    pub ptpl_a: bool,
    /// PERSISTENT RESERVATION TYPE MASK (TMV set), or None (TMV clear).
    pub type_mask: Option<u16>,
}

/// The bit of each type in the PERSISTENT RESERVATION TYPE MASK (§6.15.4, Table 167).
fn type_bit(t: PrType) -> u16 {
    match t {
        PrType::WriteExclusiveAllRegistrants => 0x8000,
        PrType::ExclusiveAccessRegistrantsOnly => 0x4000,
        PrType::WriteExclusiveRegistrantsOnly => 0x2000,
        PrType::ExclusiveAccess => 0x0800,
        PrType::WriteExclusive => 0x0200,
        PrType::ExclusiveAccessAllRegistrants => 0x0001,
        PrType::Unknown(_) => 0,
    }
}

impl ReportCapabilities {
    /// The type mask with every type in `types` set.
    pub fn mask_of(types: &[PrType]) -> u16 {
        types.iter().fold(0, |m, t| m | type_bit(*t))
    }

    /// Whether the target reports it can hold a reservation of type `t`.
    pub fn supports(&self, t: PrType) -> bool {
        self.type_mask.is_some_and(|m| m & type_bit(t) != 0)
    }

    pub fn parse(d: &[u8]) -> Result<ReportCapabilities> {
        if d.len() < 8 {
            return Err(Error::truncated("REPORT CAPABILITIES data", 8, d.len()));
        }
        let tmv = d[3] & 0x80 != 0;
        Ok(ReportCapabilities {
            crh: d[2] & 0x10 != 0,
            sip_c: d[2] & 0x08 != 0,
            atp_c: d[2] & 0x04 != 0,
            ptpl_c: d[2] & 0x01 != 0,
            allow_commands: (d[3] >> 4) & 0x07,
            ptpl_a: d[3] & 0x01 != 0,
            type_mask: tmv.then(|| u16::from_be_bytes([d[4], d[5]])),
        })
    }

    pub fn buffer_len(&self) -> usize {
        8
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b[1] = 8; // LENGTH
        b[2] = (self.crh as u8) << 4
            | (self.sip_c as u8) << 3
            | (self.atp_c as u8) << 2
            | self.ptpl_c as u8;
        b[3] = (self.type_mask.is_some() as u8) << 7
            | (self.allow_commands & 0x07) << 4
            | self.ptpl_a as u8;
        b[4..6].copy_from_slice(&self.type_mask.unwrap_or(0).to_be_bytes());
        b
    }
}

/// One registration as READ FULL STATUS describes it (SPC-4 §6.15.5, Table 169).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusDescriptor {
    pub key: u64,
    /// ALL_TG_PT: registered through every target port.
    pub all_tg_pt: bool,
    /// R_HOLDER: this registration holds the reservation, of this type (scope LU; the
    /// SCOPE and TYPE fields mean nothing without R_HOLDER, §6.15.5).
    pub holder: Option<PrType>,
    /// RELATIVE TARGET PORT IDENTIFIER (0 with `all_tg_pt`).
    pub relative_target_port: u16,
    pub transport_id: TransportId,
}

/// READ FULL STATUS parameter data (SPC-4 §6.15.5): every registration with its
/// initiator port, and who holds the reservation. fence_scsi and multipath read this to
/// see which node holds which key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullStatus {
    pub generation: u32,
    pub descriptors: Vec<StatusDescriptor>,
}

impl FullStatus {
    pub fn parse(d: &[u8]) -> Result<FullStatus> {
        const WHAT: &str = "READ FULL STATUS data";
        let (generation, body) = header(WHAT, d)?;
        let mut descriptors = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let rest = &body[at..];
            if rest.len() < 24 {
                return Err(Error::truncated(WHAT, 8 + at + 24, 8 + body.len()));
            }
            let tid_len = be32(rest, 20) as usize;
            let tid = rest
                .get(24..24 + tid_len)
                .ok_or_else(|| Error::truncated(WHAT, 8 + at + 24 + tid_len, 8 + body.len()))?;
            let (transport_id, n) = TransportId::parse(tid, 8 + at + 24)?;
            if n != tid_len {
                return Err(Error::malformed(
                    WHAT,
                    format!("TransportID of {n} bytes in a field of {tid_len}"),
                ));
            }
            descriptors.push(StatusDescriptor {
                key: be64(rest, 0),
                all_tg_pt: rest[12] & 0x02 != 0,
                holder: (rest[12] & 0x01 != 0).then(|| PrType::from(rest[13])),
                relative_target_port: u16::from_be_bytes([rest[18], rest[19]]),
                transport_id,
            });
            at += 24 + tid_len;
        }
        Ok(FullStatus {
            generation,
            descriptors,
        })
    }

    pub fn buffer_len(&self) -> usize {
        8 + self
            .descriptors
            .iter()
            .map(|d| 24 + d.transport_id.buffer_len())
            .sum::<usize>()
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.buffer_len() - 8);
        for d in &self.descriptors {
            body.extend_from_slice(&d.key.to_be_bytes());
            body.extend_from_slice(&[0; 4]);
            body.push((d.all_tg_pt as u8) << 1 | d.holder.is_some() as u8);
            body.push(d.holder.map_or(0, u8::from)); // scope LU (0)
            body.extend_from_slice(&[0; 4]);
            body.extend_from_slice(&d.relative_target_port.to_be_bytes());
            body.extend_from_slice(&(d.transport_id.buffer_len() as u32).to_be_bytes());
            d.transport_id.emit(&mut body);
        }
        with_header(self.generation, body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::transport_id::tests::transport_id;
    use super::*;
    use proptest::prelude::*;

    fn descriptor() -> impl Strategy<Value = StatusDescriptor> {
        (any::<(u64, bool, Option<u8>, u16)>(), transport_id()).prop_map(
            |((key, all_tg_pt, holder, relative_target_port), transport_id)| StatusDescriptor {
                key,
                all_tg_pt,
                holder: holder.map(PrType::from),
                relative_target_port,
                transport_id,
            },
        )
    }

    proptest! {
        #[test]
        fn cdb_round_trip(action: u8, alloc_len: u16) {
            let c = InCdb { action: action.into(), alloc_len };
            prop_assert_eq!(InCdb::parse(&c.emit()), Ok(c));
        }

        #[test]
        fn keys_round_trip(generation: u32, keys: Vec<u64>) {
            let r = ReadKeys { generation, keys };
            let b = r.emit();
            prop_assert_eq!(b.len(), r.buffer_len());
            prop_assert_eq!(ReadKeys::parse(&b), Ok(r));
        }

        #[test]
        fn reservation_round_trip(generation: u32, r: Option<(u64, u8, u8)>) {
            let r = ReadReservation {
                generation,
                reservation: r.map(|(key, scope, t)| ReservationDescriptor {
                    key,
                    scope: scope & 0x0f,
                    rtype: t.into(),
                }),
            };
            let b = r.emit();
            prop_assert_eq!(b.len(), r.buffer_len());
            prop_assert_eq!(ReadReservation::parse(&b), Ok(r));
        }

        #[test]
        fn capabilities_round_trip(f: (bool, bool, bool, bool, u8, bool), mask: Option<u16>) {
            let c = ReportCapabilities {
                crh: f.0, sip_c: f.1, atp_c: f.2, ptpl_c: f.3,
                allow_commands: f.4 & 7, ptpl_a: f.5, type_mask: mask,
            };
            prop_assert_eq!(ReportCapabilities::parse(&c.emit()), Ok(c));
        }

        #[test]
        fn full_status_round_trip(generation: u32, descriptors in proptest::collection::vec(descriptor(), 0..4)) {
            let s = FullStatus { generation, descriptors };
            let b = s.emit();
            prop_assert_eq!(b.len(), s.buffer_len());
            prop_assert_eq!(FullStatus::parse(&b), Ok(s));
        }

        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = ReadKeys::parse(&b);
            let _ = ReadReservation::parse(&b);
            let _ = ReportCapabilities::parse(&b);
            let _ = FullStatus::parse(&b);
            let _ = InCdb::parse(&b);
        }
    }

    #[test]
    fn golden_read_reservation_and_keys() {
        let r = ReadReservation {
            generation: 3,
            reservation: Some(ReservationDescriptor {
                key: 0xa,
                scope: 0,
                rtype: PrType::WriteExclusiveRegistrantsOnly,
            }),
        };
        let mut want = vec![0, 0, 0, 3, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0xa];
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0x05, 0, 0]);
        assert_eq!(r.emit(), want);
        let k = ReadKeys {
            generation: 2,
            keys: vec![0xa, 0xb],
        };
        assert_eq!(k.emit()[..8], [0, 0, 0, 2, 0, 0, 0, 16]);
        assert_eq!(
            InCdb {
                action: InAction::ReadFullStatus,
                alloc_len: 0x1000
            }
            .emit(),
            [0x5e, 3, 0, 0, 0, 0, 0, 0x10, 0, 0]
        );
    }

    #[test]
    fn golden_full_status_descriptor() {
        let s = FullStatus {
            generation: 1,
            descriptors: vec![StatusDescriptor {
                key: 0xa,
                all_tg_pt: false,
                holder: Some(PrType::ExclusiveAccess),
                relative_target_port: 1,
                transport_id: TransportId {
                    name: "iqn.a:bc".into(),
                    isid: None,
                },
            }],
        };
        let b = s.emit();
        let mut want = vec![0, 0, 0, 1, 0, 0, 0, 40];
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xa, 0, 0, 0, 0, 0x01, 0x03]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 16]);
        want.extend_from_slice(b"\x05\x00\x00\x0ciqn.a:bc\0\0\0\0");
        assert_eq!(b, want);
    }

    #[test]
    fn short_answers_are_truncated_not_shortened() {
        let k = ReadKeys {
            generation: 1,
            keys: vec![1, 2, 3],
        }
        .emit();
        assert!(matches!(
            ReadKeys::parse(&k[..20]),
            Err(Error::Truncated { need: 32, .. })
        ));
        assert!(ReadReservation::parse(&[0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn capabilities_as_hydra_reports_them() {
        let all = PrType::ALL;
        let c = ReportCapabilities {
            sip_c: true,
            atp_c: true,
            ptpl_c: true,
            type_mask: Some(ReportCapabilities::mask_of(&all)),
            ..Default::default()
        };
        assert_eq!(c.emit(), [0, 8, 0x0d, 0x80, 0xea, 0x01, 0, 0]);
        assert!(all.iter().all(|t| c.supports(*t)));
        assert!(!c.supports(PrType::Unknown(2)));
    }
}
