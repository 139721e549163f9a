//! Byte formats of persistent reservations (SPC-4 §6.15, §6.16, §7.6.4.6): the PERSISTENT
//! RESERVE OUT parameter lists, iSCSI TransportIDs, and the PERSISTENT RESERVE IN
//! parameter data. Pure functions over slices; every length is checked before use.

use hydra_proto::scsi::Sense;

use super::{Registrant, State, TYPE_EAAR, TYPE_WEAR};

/// The basic PERSISTENT RESERVE OUT parameter list (§6.16.3), with the TransportIDs of
/// SPEC_I_PT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProutParams {
    pub key: u64,
    pub sa_key: u64,
    pub spec_i_pt: bool,
    pub all_tg_pt: bool,
    pub aptpl: bool,
    pub transport_ids: Vec<Registrant>,
}

/// The REGISTER AND MOVE parameter list (§6.16.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveParams {
    pub key: u64,
    pub sa_key: u64,
    pub unreg: bool,
    pub aptpl: bool,
    pub target_port: u16,
    pub dest: Registrant,
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// One iSCSI TransportID at the start of `b` (§7.6.4.6): format 00b (name) or 01b
/// (name, ",i,0x", ISID). Returns it and its length. `at` is its offset in the
/// parameter list, for the sense field pointer.
pub fn transport_id(b: &[u8], at: usize, port: u16) -> Result<(Registrant, usize), Sense> {
    let bad = || Sense::invalid_param_field(at as u16);
    if b.len() < 4 {
        return Err(Sense::parameter_list_length());
    }
    if b[0] & 0x0f != 0x05 {
        return Err(bad()); // not the iSCSI protocol
    }
    let format = b[0] >> 6;
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    if len < 4 || !len.is_multiple_of(4) || 4 + len > b.len() {
        return Err(Sense::invalid_param_field(at as u16 + 2));
    }
    let text = &b[4..4 + len];
    let text = &text[..text.iter().position(|&c| c == 0).ok_or_else(bad)?];
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    let (name, isid) = match format {
        0 => (text, None),
        1 => {
            let (name, isid) = text.rsplit_once(",i,0x").ok_or_else(bad)?;
            if isid.len() != 12 {
                return Err(bad());
            }
            let mut v = [0u8; 6];
            for (i, b) in v.iter_mut().enumerate() {
                *b = u8::from_str_radix(&isid[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            (name, Some(v))
        }
        _ => return Err(bad()),
    };
    if name.is_empty() || name.len() > 223 {
        return Err(bad());
    }
    Ok((
        Registrant {
            initiator: name.to_ascii_lowercase(),
            isid,
            port,
            all_tg_pt: false,
            key: 0,
        },
        4 + len,
    ))
}

/// Encode the TransportID (format 01b when the ISID is known) of `r`.
pub fn encode_transport_id(r: &Registrant) -> Vec<u8> {
    let mut text = r.initiator.clone();
    if let Some(isid) = r.isid {
        text.push_str(",i,0x");
        for b in isid {
            text.push_str(&format!("{b:02x}"));
        }
    }
    let mut body = text.into_bytes();
    body.push(0);
    body.resize(body.len().div_ceil(4) * 4, 0);
    let mut v = vec![if r.isid.is_some() { 0x45 } else { 0x05 }, 0];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend(body);
    v
}

/// Parse the basic parameter list; `len` is the CDB's PARAMETER LIST LENGTH.
pub fn prout_params(p: &[u8], port: u16) -> Result<ProutParams, Sense> {
    if p.len() < 24 {
        return Err(Sense::parameter_list_length());
    }
    let spec_i_pt = p[20] & 0x08 != 0;
    let mut out = ProutParams {
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
            return Err(Sense::parameter_list_length());
        }
        return Ok(out);
    }
    if p.len() < 28 {
        return Err(Sense::parameter_list_length());
    }
    let total = u32::from_be_bytes(p[24..28].try_into().expect("4")) as usize;
    if 28 + total != p.len() {
        return Err(Sense::parameter_list_length());
    }
    let mut at = 28;
    while at < p.len() {
        let (mut r, n) = transport_id(&p[at..], at, port)?;
        r.all_tg_pt = out.all_tg_pt;
        out.transport_ids.push(r);
        at += n;
    }
    Ok(out)
}

/// Parse a REGISTER AND MOVE parameter list.
pub fn move_params(p: &[u8]) -> Result<MoveParams, Sense> {
    if p.len() < 24 {
        return Err(Sense::parameter_list_length());
    }
    let total = u32::from_be_bytes(p[20..24].try_into().expect("4")) as usize;
    if 24 + total != p.len() {
        return Err(Sense::parameter_list_length());
    }
    let target_port = u16::from_be_bytes([p[18], p[19]]);
    let (mut dest, n) = transport_id(&p[24..], 24, target_port)?;
    if n != total {
        return Err(Sense::invalid_param_field(20));
    }
    dest.port = target_port;
    Ok(MoveParams {
        key: be64(p, 0),
        sa_key: be64(p, 8),
        unreg: p[17] & 0x02 != 0,
        aptpl: p[17] & 0x01 != 0,
        target_port,
        dest,
    })
}

/// READ KEYS (§6.15.2).
pub fn read_keys(s: &State) -> Vec<u8> {
    let mut v = s.generation.to_be_bytes().to_vec();
    v.extend_from_slice(&((8 * s.registrants.len()) as u32).to_be_bytes());
    for r in &s.registrants {
        v.extend_from_slice(&r.key.to_be_bytes());
    }
    v
}

/// READ RESERVATION (§6.15.3). All-registrants reservations report key 0.
pub fn read_reservation(s: &State) -> Vec<u8> {
    let mut v = s.generation.to_be_bytes().to_vec();
    match &s.reservation {
        None => v.extend_from_slice(&0u32.to_be_bytes()),
        Some(res) => {
            v.extend_from_slice(&16u32.to_be_bytes());
            let key = if matches!(res.rtype, TYPE_WEAR | TYPE_EAAR) {
                0
            } else {
                s.registrants.get(res.holder).map_or(0, |r| r.key)
            };
            v.extend_from_slice(&key.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
            v.push(0);
            v.push(res.rtype & 0x0f); // scope LU (0)
            v.extend_from_slice(&[0; 2]);
        }
    }
    v
}

/// REPORT CAPABILITIES (§6.15.4): CRH 0, SIP_C, ATP_C, PTPL_C; TMV with all six types.
pub fn report_capabilities(s: &State) -> Vec<u8> {
    vec![
        0,
        8,
        0x08 | 0x04 | 0x01,
        0x80 | s.aptpl as u8,
        0x80 | 0x40 | 0x20 | 0x08 | 0x02,
        0x01,
        0,
        0,
    ]
}

/// READ FULL STATUS (§6.15.5): one descriptor per registration.
pub fn read_full_status(s: &State) -> Vec<u8> {
    let mut v = s.generation.to_be_bytes().to_vec();
    v.extend_from_slice(&[0; 4]);
    for (i, r) in s.registrants.iter().enumerate() {
        let holder = s.is_holder_index(i);
        v.extend_from_slice(&r.key.to_be_bytes());
        v.extend_from_slice(&[0; 4]);
        v.push((r.all_tg_pt as u8) << 1 | holder as u8);
        v.push(if holder {
            s.reservation.as_ref().map_or(0, |res| res.rtype & 0x0f)
        } else {
            0
        });
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&(if r.all_tg_pt { 0 } else { r.port }).to_be_bytes());
        let tid = encode_transport_id(r);
        v.extend_from_slice(&(tid.len() as u32).to_be_bytes());
        v.extend(tid);
    }
    let len = (v.len() - 8) as u32;
    v[4..8].copy_from_slice(&len.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, isid: Option<[u8; 6]>) -> Registrant {
        Registrant {
            initiator: name.into(),
            isid,
            port: 1,
            all_tg_pt: false,
            key: 0,
        }
    }

    #[test]
    fn transport_ids_round_trip() {
        for r in [
            reg(
                "iqn.2026-11.org.hydra:node1",
                Some([0x40, 0, 0x01, 0x37, 0, 0x01]),
            ),
            reg("iqn.2026-11.org.hydra:node2", None),
        ] {
            let b = encode_transport_id(&r);
            assert_eq!(b.len() % 4, 0);
            let (back, n) = transport_id(&b, 0, 1).unwrap();
            assert_eq!(n, b.len());
            assert_eq!(back, r);
        }
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert!(prout_params(&[0; 23], 1).is_err());
        assert!(prout_params(&[0; 25], 1).is_err());
        let mut p = vec![0u8; 28];
        p[20] = 0x08; // SPEC_I_PT without any TransportID length
        p[27] = 8;
        assert!(prout_params(&p, 1).is_err());
        // A TransportID of another protocol.
        let mut p = vec![0u8; 24];
        p[20] = 0x08;
        p.extend_from_slice(&8u32.to_be_bytes());
        p.extend_from_slice(&[0x01, 0, 0, 4, b'a', 0, 0, 0]);
        assert!(prout_params(&p, 1).is_err());
        // Unterminated name.
        assert!(transport_id(&[0x05, 0, 0, 4, b'a', b'b', b'c', b'd'], 0, 1).is_err());
        assert!(move_params(&[0; 10]).is_err());
    }
}
