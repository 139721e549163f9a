//! PERSISTENT RESERVE OUT (SPC-4 §6.16): the 10-byte CDB, the basic parameter list
//! (§6.16.3) every service action but REGISTER AND MOVE uses, and the REGISTER AND MOVE
//! parameter list (§6.16.4).

use super::{be32, be64, OutAction, ParamError, PrType, TransportId};
use crate::scsi::cdb::checked;
use crate::scsi::op;
use crate::Result;

/// The PERSISTENT RESERVE OUT CDB (SPC-4 §6.16.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutCdb {
    pub action: OutAction,
    /// SCOPE (4 bits): only LU_SCOPE (0) is defined.
    pub scope: u8,
    pub rtype: PrType,
    /// PARAMETER LIST LENGTH.
    pub param_len: u32,
}

impl OutCdb {
    /// The CDB's length.
    pub const LEN: usize = 10;

    /// A CDB for `action` of type `rtype` (ignored by actions that take none) with a
    /// parameter list of `param_len` bytes.
    pub fn new(action: OutAction, rtype: PrType, param_len: u32) -> OutCdb {
        OutCdb {
            action,
            scope: 0,
            rtype,
            param_len,
        }
    }

    /// Read the fields of a PERSISTENT RESERVE OUT CDB.
    pub fn parse(cdb: &[u8]) -> Result<OutCdb> {
        let what = "PERSISTENT RESERVE OUT CDB";
        let cdb = checked(cdb, op::PERSISTENT_RESERVE_OUT, Self::LEN, what)?;
        Ok(OutCdb {
            action: cdb[1].into(),
            scope: cdb[2] >> 4,
            rtype: cdb[2].into(),
            param_len: be32(cdb, 5),
        })
    }

    /// The 10 CDB bytes (CONTROL 0).
    pub fn emit(&self) -> [u8; Self::LEN] {
        let mut c = [0u8; Self::LEN];
        c[0] = op::PERSISTENT_RESERVE_OUT;
        c[1] = u8::from(self.action);
        c[2] = (self.scope & 0x0f) << 4 | u8::from(self.rtype);
        c[5..9].copy_from_slice(&self.param_len.to_be_bytes());
        c
    }
}

/// The basic PERSISTENT RESERVE OUT parameter list (SPC-4 §6.16.3): 24 bytes, then with
/// SPEC_I_PT the TransportIDs to register as well.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutParams {
    /// RESERVATION KEY: the key the sender is registered with (0 when not registered).
    pub key: u64,
    /// SERVICE ACTION RESERVATION KEY: the new key (REGISTER) or the key to preempt.
    pub sa_key: u64,
    /// SPEC_I_PT: also register the initiator ports in `transport_ids`.
    pub spec_i_pt: bool,
    /// ALL_TG_PT: register on every target port.
    pub all_tg_pt: bool,
    /// APTPL: keep the registrations across power loss.
    pub aptpl: bool,
    /// Only with `spec_i_pt`.
    pub transport_ids: Vec<TransportId>,
}

impl OutParams {
    /// Parse a parameter list of exactly the PARAMETER LIST LENGTH bytes.
    pub fn parse(p: &[u8]) -> Result<OutParams, ParamError> {
        if p.len() < 24 {
            return Err(ParamError::Length);
        }
        let spec_i_pt = p[20] & 0x08 != 0;
        let mut out = OutParams {
            key: be64(p, 0),
            sa_key: be64(p, 8),
            spec_i_pt,
            all_tg_pt: p[20] & 0x04 != 0,
            aptpl: p[20] & 0x01 != 0,
            transport_ids: Vec::new(),
        };
        if !spec_i_pt {
            // §6.16.3: exactly 24 bytes without SPEC_I_PT.
            if p.len() != 24 {
                return Err(ParamError::Length);
            }
            return Ok(out);
        }
        if p.len() < 28 {
            return Err(ParamError::Length);
        }
        let total = be32(p, 24) as usize;
        if 28 + total != p.len() {
            return Err(ParamError::Length);
        }
        let mut at = 28;
        while at < p.len() {
            let (t, n) = TransportId::parse(&p[at..], at)?;
            out.transport_ids.push(t);
            at += n;
        }
        Ok(out)
    }

    /// Bytes `emit` writes (the PARAMETER LIST LENGTH to put in the CDB).
    pub fn buffer_len(&self) -> usize {
        if self.spec_i_pt {
            28 + self
                .transport_ids
                .iter()
                .map(|t| t.buffer_len())
                .sum::<usize>()
        } else {
            24
        }
    }

    /// The parameter list. TransportIDs are written only with `spec_i_pt`.
    pub fn emit(&self) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[0..8].copy_from_slice(&self.key.to_be_bytes());
        p[8..16].copy_from_slice(&self.sa_key.to_be_bytes());
        p[20] = (self.spec_i_pt as u8) << 3 | (self.all_tg_pt as u8) << 2 | self.aptpl as u8;
        if self.spec_i_pt {
            let tids: Vec<u8> = self
                .transport_ids
                .iter()
                .flat_map(|t| t.to_bytes())
                .collect();
            p.extend_from_slice(&(tids.len() as u32).to_be_bytes());
            p.extend(tids);
        }
        p
    }
}

/// The REGISTER AND MOVE parameter list (SPC-4 §6.16.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveParams {
    pub key: u64,
    pub sa_key: u64,
    /// UNREG: unregister the sender once the reservation has moved.
    pub unreg: bool,
    pub aptpl: bool,
    /// RELATIVE TARGET PORT IDENTIFIER the destination is registered through.
    pub target_port: u16,
    /// The initiator port that receives the reservation.
    pub dest: TransportId,
}

impl MoveParams {
    /// Parse a parameter list of exactly the PARAMETER LIST LENGTH bytes.
    pub fn parse(p: &[u8]) -> Result<MoveParams, ParamError> {
        if p.len() < 24 {
            return Err(ParamError::Length);
        }
        let total = be32(p, 20) as usize;
        if 24 + total != p.len() {
            return Err(ParamError::Length);
        }
        let (dest, n) = TransportId::parse(&p[24..], 24)?;
        if n != total {
            return Err(ParamError::Field(20));
        }
        Ok(MoveParams {
            key: be64(p, 0),
            sa_key: be64(p, 8),
            unreg: p[17] & 0x02 != 0,
            aptpl: p[17] & 0x01 != 0,
            target_port: u16::from_be_bytes([p[18], p[19]]),
            dest,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        24 + self.dest.buffer_len()
    }

    /// The parameter list.
    pub fn emit(&self) -> Vec<u8> {
        let mut p = vec![0u8; 24];
        p[0..8].copy_from_slice(&self.key.to_be_bytes());
        p[8..16].copy_from_slice(&self.sa_key.to_be_bytes());
        p[17] = (self.unreg as u8) << 1 | self.aptpl as u8;
        p[18..20].copy_from_slice(&self.target_port.to_be_bytes());
        p[20..24].copy_from_slice(&(self.dest.buffer_len() as u32).to_be_bytes());
        self.dest.emit(&mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::super::transport_id::tests::transport_id;
    use super::*;
    use proptest::prelude::*;

    fn out_params() -> impl Strategy<Value = OutParams> {
        (
            any::<(u64, u64, bool, bool, bool)>(),
            proptest::collection::vec(transport_id(), 0..4),
        )
            .prop_map(
                |((key, sa_key, spec_i_pt, all_tg_pt, aptpl), tids)| OutParams {
                    key,
                    sa_key,
                    spec_i_pt,
                    all_tg_pt,
                    aptpl,
                    transport_ids: if spec_i_pt { tids } else { Vec::new() },
                },
            )
    }

    proptest! {
        #[test]
        fn cdb_round_trip(action: u8, scope in 0u8..16, rtype: u8, param_len: u32) {
            let c = OutCdb { action: action.into(), scope, rtype: rtype.into(), param_len };
            prop_assert_eq!(OutCdb::parse(&c.emit()), Ok(c));
        }

        #[test]
        fn params_round_trip(p in out_params()) {
            let b = p.emit();
            prop_assert_eq!(b.len(), p.buffer_len());
            prop_assert_eq!(OutParams::parse(&b), Ok(p));
        }

        #[test]
        fn move_round_trip(k: (u64, u64, bool, bool, u16), dest in transport_id()) {
            let m = MoveParams { key: k.0, sa_key: k.1, unreg: k.2, aptpl: k.3, target_port: k.4, dest };
            let b = m.emit();
            prop_assert_eq!(b.len(), m.buffer_len());
            prop_assert_eq!(MoveParams::parse(&b), Ok(m));
        }

        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = OutParams::parse(&b);
            let _ = MoveParams::parse(&b);
            let _ = OutCdb::parse(&b);
        }
    }

    /// fence_scsi's PREEMPT AND ABORT of key 0xb by key 0xa, Write Exclusive -
    /// Registrants Only (as sg_persist sends it).
    #[test]
    fn golden_preempt_and_abort() {
        let c = OutCdb::new(
            OutAction::PreemptAndAbort,
            PrType::WriteExclusiveRegistrantsOnly,
            24,
        );
        assert_eq!(c.emit(), [0x5f, 0x05, 0x05, 0, 0, 0, 0, 0, 24, 0]);
        let p = OutParams {
            key: 0xa,
            sa_key: 0xb,
            ..OutParams::default()
        };
        let mut want = vec![0u8; 24];
        want[7] = 0xa;
        want[15] = 0xb;
        assert_eq!(p.emit(), want);
        let p = OutParams {
            aptpl: true,
            all_tg_pt: true,
            ..p
        };
        assert_eq!(p.emit()[20], 0x05);
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert_eq!(OutParams::parse(&[0; 23]), Err(ParamError::Length));
        assert_eq!(OutParams::parse(&[0; 25]), Err(ParamError::Length));
        let mut p = vec![0u8; 28];
        p[20] = 0x08; // SPEC_I_PT, a TransportID length the list does not hold
        p[27] = 8;
        assert_eq!(OutParams::parse(&p), Err(ParamError::Length));
        // A TransportID of another protocol, at byte 28.
        let mut p = vec![0u8; 24];
        p[20] = 0x08;
        p.extend_from_slice(&8u32.to_be_bytes());
        p.extend_from_slice(&[0x01, 0, 0, 4, b'a', 0, 0, 0]);
        assert_eq!(OutParams::parse(&p), Err(ParamError::Field(28)));
        assert_eq!(MoveParams::parse(&[0; 10]), Err(ParamError::Length));
        assert!(OutCdb::parse(&[0x5e; 10]).is_err());
        assert!(OutCdb::parse(&[0x5f; 9]).is_err());
    }
}
