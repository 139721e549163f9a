//! Operational key negotiation (RFC 7143 §6.2 rules, §13 key table) for both roles.
//!
//! Each key has a type that fixes how the answer is computed: a list (the responder picks
//! the first value of the offer it supports), a numeric minimum or maximum, a boolean AND
//! or OR, or a declaration (each side states its own value, e.g. MaxRecvDataSegmentLength,
//! which bounds what the *other* side may send). Unknown keys are answered `NotUnderstood`,
//! keys that do not apply to the session type `Irrelevant`, and malformed or out-of-range
//! values `Reject` (§6.2.1).

use crate::text::{bool_str, parse_bool, parse_number};
use crate::{Error, Result};

/// Which end of the login this negotiation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Target,
    Initiator,
}

/// SessionType (RFC 7143 §13.21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    Discovery,
    Normal,
}

/// A digest algorithm (HeaderDigest / DataDigest values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    None,
    Crc32c,
}

impl Digest {
    fn name(self) -> &'static str {
        match self {
            Digest::None => "None",
            Digest::Crc32c => "CRC32C",
        }
    }
    fn from_name(s: &str) -> Option<Digest> {
        match s {
            "None" => Some(Digest::None),
            "CRC32C" => Some(Digest::Crc32c),
            _ => None,
        }
    }
}

/// What the local side is willing to do (a target's config, an initiator's node record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalParams {
    /// Acceptable header digests, in order of preference.
    pub header_digest: Vec<Digest>,
    pub data_digest: Vec<Digest>,
    pub max_connections: u16,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    /// What we can receive in one PDU (declared to the peer).
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    pub max_outstanding_r2t: u16,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    /// hydra implements ErrorRecoveryLevel 0 only.
    pub error_recovery_level: u8,
}

impl Default for LocalParams {
    /// The RFC 7143 §13 defaults, digests optional with None preferred.
    fn default() -> Self {
        LocalParams {
            header_digest: vec![Digest::None, Digest::Crc32c],
            data_digest: vec![Digest::None, Digest::Crc32c],
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            max_recv_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
        }
    }
}

const SEG_MIN: u64 = 512;
const SEG_MAX: u64 = (1 << 24) - 1;

fn range(key: &str, v: &str, lo: u64, hi: u64) -> Result<u64> {
    let n = parse_number(v).ok_or_else(|| Error::Negotiation {
        key: key.into(),
        detail: format!("'{v}' is not a number"),
    })?;
    if n < lo || n > hi {
        return Err(Error::Negotiation {
            key: key.into(),
            detail: format!("{n} is outside {lo}..={hi}"),
        });
    }
    Ok(n)
}

fn boolean(key: &str, v: &str) -> Result<bool> {
    parse_bool(v).ok_or_else(|| Error::Negotiation {
        key: key.into(),
        detail: format!("'{v}' is not Yes or No"),
    })
}

fn digests(key: &str, v: &str) -> Result<Vec<Digest>> {
    let d: Option<Vec<Digest>> = v.split(',').map(Digest::from_name).collect();
    match d {
        Some(d) if !d.is_empty() => Ok(d),
        _ => Err(Error::Negotiation {
            key: key.into(),
            detail: format!("'{v}' is not a list of None/CRC32C"),
        }),
    }
}

impl LocalParams {
    /// Set one key from a config value (targets.conf, tgtadm, node records), with the
    /// same validation the wire gets.
    pub fn set_key(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "HeaderDigest" => self.header_digest = digests(key, value)?,
            "DataDigest" => self.data_digest = digests(key, value)?,
            "MaxConnections" => self.max_connections = range(key, value, 1, 65535)? as u16,
            "InitialR2T" => self.initial_r2t = boolean(key, value)?,
            "ImmediateData" => self.immediate_data = boolean(key, value)?,
            "MaxRecvDataSegmentLength" => {
                self.max_recv_data_segment_length = range(key, value, SEG_MIN, SEG_MAX)? as u32
            }
            "MaxBurstLength" => self.max_burst_length = range(key, value, SEG_MIN, SEG_MAX)? as u32,
            "FirstBurstLength" => {
                self.first_burst_length = range(key, value, SEG_MIN, SEG_MAX)? as u32
            }
            "DefaultTime2Wait" => self.default_time2wait = range(key, value, 0, 3600)? as u16,
            "DefaultTime2Retain" => self.default_time2retain = range(key, value, 0, 3600)? as u16,
            "MaxOutstandingR2T" => self.max_outstanding_r2t = range(key, value, 1, 65535)? as u16,
            "DataPDUInOrder" => self.data_pdu_in_order = boolean(key, value)?,
            "DataSequenceInOrder" => self.data_sequence_in_order = boolean(key, value)?,
            "ErrorRecoveryLevel" => {
                let n = range(key, value, 0, 2)?;
                if n != 0 {
                    return Err(Error::Negotiation {
                        key: key.into(),
                        detail: "hydra supports ErrorRecoveryLevel 0 only".into(),
                    });
                }
            }
            // Markers were removed by RFC 7143; "No" is all hydra accepts.
            "IFMarker" | "OFMarker" => {
                if boolean(key, value)? {
                    return Err(Error::Negotiation {
                        key: key.into(),
                        detail: "markers are not supported".into(),
                    });
                }
            }
            "IFMarkInt" | "OFMarkInt" => {}
            other => {
                return Err(Error::Negotiation {
                    key: other.into(),
                    detail: "unknown login key".into(),
                })
            }
        }
        Ok(())
    }
}

/// What both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    pub header_digest: bool,
    pub data_digest: bool,
    pub max_connections: u16,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    /// Ours: the most the peer may send us in one PDU.
    pub max_recv_data_segment_length: u32,
    /// The peer's declared MaxRecvDataSegmentLength: the most we may send in one PDU.
    pub max_xmit_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    pub max_outstanding_r2t: u16,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u8,
}

/// Keys the login layer handles itself (names, session type, authentication, addresses).
pub fn is_login_layer_key(key: &str) -> bool {
    matches!(
        key,
        "InitiatorName"
            | "TargetName"
            | "InitiatorAlias"
            | "TargetAlias"
            | "SessionType"
            | "AuthMethod"
            | "TargetAddress"
            | "TargetPortalGroupTag"
            | "SendTargets"
    ) || key.starts_with("CHAP_")
}

/// How a key's result is computed (§6.2).
#[derive(Clone, Copy)]
enum Kind {
    Digest,
    Min(u64, u64),
    Max(u64, u64),
    Or,
    And,
    Declarative,
}

fn kind(key: &str) -> Option<(Kind, bool)> {
    // (kind, irrelevant in a discovery session — RFC 7143 §13 "Irrelevant when")
    Some(match key {
        "HeaderDigest" | "DataDigest" => (Kind::Digest, false),
        "MaxConnections" => (Kind::Min(1, 65535), true),
        "InitialR2T" | "DataPDUInOrder" | "DataSequenceInOrder" => (Kind::Or, true),
        "ImmediateData" => (Kind::And, true),
        "MaxRecvDataSegmentLength" => (Kind::Declarative, false),
        "MaxBurstLength" | "FirstBurstLength" => (Kind::Min(SEG_MIN, SEG_MAX), true),
        "DefaultTime2Wait" => (Kind::Max(0, 3600), false),
        "DefaultTime2Retain" => (Kind::Min(0, 3600), false),
        "MaxOutstandingR2T" => (Kind::Min(1, 65535), true),
        "ErrorRecoveryLevel" => (Kind::Min(0, 2), false),
        "IFMarker" | "OFMarker" => (Kind::And, false),
        _ => return None,
    })
}

/// One negotiation (one login, or one Text negotiation in full feature phase).
pub struct Negotiation {
    role: Role,
    session_type: SessionType,
    local: LocalParams,
    result: SessionParams,
    /// Keys we offered (initiator) or declared and that still need no answer.
    sent: Vec<String>,
    /// Offers awaiting an answer (initiator role).
    pending: Vec<String>,
}

impl Negotiation {
    /// Start with the RFC defaults as the result so far.
    pub fn new(role: Role, session_type: SessionType, local: LocalParams) -> Self {
        let d = LocalParams::default();
        let result = SessionParams {
            header_digest: false,
            data_digest: false,
            max_connections: d.max_connections,
            initial_r2t: d.initial_r2t,
            immediate_data: d.immediate_data,
            max_recv_data_segment_length: local.max_recv_data_segment_length,
            max_xmit_data_segment_length: 8192,
            max_burst_length: d.max_burst_length,
            first_burst_length: d.first_burst_length,
            default_time2wait: d.default_time2wait,
            default_time2retain: d.default_time2retain,
            max_outstanding_r2t: d.max_outstanding_r2t,
            data_pdu_in_order: d.data_pdu_in_order,
            data_sequence_in_order: d.data_sequence_in_order,
            error_recovery_level: 0,
        };
        Negotiation {
            role,
            session_type,
            local,
            result,
            sent: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn local_num(&self, key: &str) -> u64 {
        let l = &self.local;
        match key {
            "MaxConnections" => l.max_connections as u64,
            "MaxBurstLength" => l.max_burst_length as u64,
            "FirstBurstLength" => l.first_burst_length as u64,
            "DefaultTime2Wait" => l.default_time2wait as u64,
            "DefaultTime2Retain" => l.default_time2retain as u64,
            "MaxOutstandingR2T" => l.max_outstanding_r2t as u64,
            "ErrorRecoveryLevel" => l.error_recovery_level as u64,
            "MaxRecvDataSegmentLength" => l.max_recv_data_segment_length as u64,
            _ => 0,
        }
    }

    fn local_bool(&self, key: &str) -> bool {
        let l = &self.local;
        match key {
            "InitialR2T" => l.initial_r2t,
            "ImmediateData" => l.immediate_data,
            "DataPDUInOrder" => l.data_pdu_in_order,
            "DataSequenceInOrder" => l.data_sequence_in_order,
            _ => false, // markers
        }
    }

    fn store_num(&mut self, key: &str, n: u64) {
        let r = &mut self.result;
        match key {
            "MaxConnections" => r.max_connections = n as u16,
            "MaxBurstLength" => r.max_burst_length = n as u32,
            "FirstBurstLength" => r.first_burst_length = n as u32,
            "DefaultTime2Wait" => r.default_time2wait = n as u16,
            "DefaultTime2Retain" => r.default_time2retain = n as u16,
            "MaxOutstandingR2T" => r.max_outstanding_r2t = n as u16,
            "ErrorRecoveryLevel" => r.error_recovery_level = n as u8,
            _ => {}
        }
    }

    fn store_bool(&mut self, key: &str, b: bool) {
        let r = &mut self.result;
        match key {
            "InitialR2T" => r.initial_r2t = b,
            "ImmediateData" => r.immediate_data = b,
            "DataPDUInOrder" => r.data_pdu_in_order = b,
            "DataSequenceInOrder" => r.data_sequence_in_order = b,
            _ => {}
        }
    }

    /// Process keys received from the peer; returns the keys to send back.
    pub fn receive(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        match self.role {
            Role::Target => self.respond(keys),
            Role::Initiator => self.accept_answers(keys),
        }
    }

    /// Responder side: answer each offer.
    fn respond(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        // FirstBurstLength must not exceed MaxBurstLength (§13.14): cap it by the burst
        // length this same exchange settles on.
        let mbl_offer = keys
            .iter()
            .find(|(k, _)| k == "MaxBurstLength")
            .and_then(|(_, v)| parse_number(v));
        for (key, value) in keys {
            let Some((kind, discovery_irrelevant)) = kind(key) else {
                out.push((key.clone(), "NotUnderstood".into()));
                continue;
            };
            if discovery_irrelevant && self.session_type == SessionType::Discovery {
                out.push((key.clone(), "Irrelevant".into()));
                continue;
            }
            let answer = match kind {
                Kind::Digest => match digests(key, value) {
                    Ok(offer) => {
                        let ours = if key == "HeaderDigest" {
                            &self.local.header_digest
                        } else {
                            &self.local.data_digest
                        };
                        match offer.iter().find(|d| ours.contains(d)) {
                            Some(d) => {
                                let on = *d == Digest::Crc32c;
                                if key == "HeaderDigest" {
                                    self.result.header_digest = on;
                                } else {
                                    self.result.data_digest = on;
                                }
                                d.name().to_string()
                            }
                            None => "Reject".into(),
                        }
                    }
                    Err(_) => "Reject".into(),
                },
                Kind::Min(lo, hi) | Kind::Max(lo, hi) => match range(key, value, lo, hi) {
                    Ok(n) => {
                        let local = self.local_num(key);
                        let mut v = if matches!(kind, Kind::Min(..)) {
                            n.min(local)
                        } else {
                            n.max(local)
                        };
                        if key == "FirstBurstLength" {
                            let mbl = mbl_offer
                                .unwrap_or(self.result.max_burst_length as u64)
                                .min(self.local.max_burst_length as u64);
                            v = v.min(mbl.max(SEG_MIN));
                        }
                        self.store_num(key, v);
                        v.to_string()
                    }
                    Err(_) => "Reject".into(),
                },
                Kind::Or | Kind::And => match parse_bool(value) {
                    Some(b) => {
                        let local = self.local_bool(key);
                        let v = if matches!(kind, Kind::Or) {
                            b || local
                        } else {
                            b && local
                        };
                        self.store_bool(key, v);
                        bool_str(v).to_string()
                    }
                    None => "Reject".into(),
                },
                Kind::Declarative => match range(key, value, SEG_MIN, SEG_MAX) {
                    Ok(n) => {
                        self.result.max_xmit_data_segment_length = n as u32;
                        if self.sent.iter().any(|k| k == key) {
                            continue;
                        }
                        self.sent.push(key.clone());
                        self.local.max_recv_data_segment_length.to_string()
                    }
                    Err(_) => "Reject".into(),
                },
            };
            out.push((key.clone(), answer));
        }
        Ok(out)
    }

    /// Initiator side: check the target's answers against what we offered.
    fn accept_answers(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (key, value) in keys {
            self.pending.retain(|k| k != key);
            let Some((kind, _)) = kind(key) else {
                // A key the target proposes that we do not know.
                out.push((key.clone(), "NotUnderstood".into()));
                continue;
            };
            if matches!(value.as_str(), "NotUnderstood" | "Irrelevant" | "Reject") {
                continue; // keep the default
            }
            let bad = |detail: String| Error::Negotiation {
                key: key.clone(),
                detail,
            };
            match kind {
                Kind::Digest => {
                    let d =
                        Digest::from_name(value).ok_or_else(|| bad(format!("answer '{value}'")))?;
                    let ours = if key == "HeaderDigest" {
                        &self.local.header_digest
                    } else {
                        &self.local.data_digest
                    };
                    if !ours.contains(&d) {
                        return Err(bad(format!("target chose {value}, which was not offered")));
                    }
                    if key == "HeaderDigest" {
                        self.result.header_digest = d == Digest::Crc32c;
                    } else {
                        self.result.data_digest = d == Digest::Crc32c;
                    }
                }
                Kind::Min(lo, hi) | Kind::Max(lo, hi) => {
                    let n = range(key, value, lo, hi)?;
                    let local = self.local_num(key);
                    if self.sent.contains(key)
                        && ((matches!(kind, Kind::Min(..)) && n > local)
                            || (matches!(kind, Kind::Max(..)) && n < local))
                    {
                        return Err(bad(format!(
                            "answer {n} is outside what was offered ({local})"
                        )));
                    }
                    self.store_num(key, n);
                }
                Kind::Or | Kind::And => {
                    let b = boolean(key, value)?;
                    let local = self.local_bool(key);
                    if self.sent.contains(key)
                        && ((matches!(kind, Kind::Or) && local && !b)
                            || (matches!(kind, Kind::And) && !local && b))
                    {
                        return Err(bad(format!("answer {value} contradicts the offer")));
                    }
                    self.store_bool(key, b);
                }
                Kind::Declarative => {
                    self.result.max_xmit_data_segment_length =
                        range(key, value, SEG_MIN, SEG_MAX)? as u32;
                }
            }
        }
        if self.result.first_burst_length > self.result.max_burst_length {
            self.result.first_burst_length = self.result.max_burst_length;
        }
        Ok(out)
    }

    /// Keys the local side still has to send on its own initiative (each once).
    pub fn proposals(&mut self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let push = |out: &mut Vec<(String, String)>, sent: &mut Vec<String>, k: &str, v: String| {
            if !sent.iter().any(|s| s == k) {
                sent.push(k.to_string());
                out.push((k.to_string(), v));
            }
        };
        match self.role {
            Role::Target => {
                push(
                    &mut out,
                    &mut self.sent,
                    "MaxRecvDataSegmentLength",
                    self.local.max_recv_data_segment_length.to_string(),
                );
            }
            Role::Initiator => {
                let l = self.local.clone();
                let list = |d: &[Digest]| d.iter().map(|x| x.name()).collect::<Vec<_>>().join(",");
                let mut offers = vec![
                    ("HeaderDigest", list(&l.header_digest)),
                    ("DataDigest", list(&l.data_digest)),
                    (
                        "MaxRecvDataSegmentLength",
                        l.max_recv_data_segment_length.to_string(),
                    ),
                    ("DefaultTime2Wait", l.default_time2wait.to_string()),
                    ("DefaultTime2Retain", l.default_time2retain.to_string()),
                    ("ErrorRecoveryLevel", l.error_recovery_level.to_string()),
                ];
                if self.session_type == SessionType::Normal {
                    offers.extend([
                        ("MaxConnections", l.max_connections.to_string()),
                        ("InitialR2T", bool_str(l.initial_r2t).to_string()),
                        ("ImmediateData", bool_str(l.immediate_data).to_string()),
                        ("MaxBurstLength", l.max_burst_length.to_string()),
                        (
                            "FirstBurstLength",
                            l.first_burst_length.min(l.max_burst_length).to_string(),
                        ),
                        ("MaxOutstandingR2T", l.max_outstanding_r2t.to_string()),
                        ("DataPDUInOrder", bool_str(l.data_pdu_in_order).to_string()),
                        (
                            "DataSequenceInOrder",
                            bool_str(l.data_sequence_in_order).to_string(),
                        ),
                    ]);
                }
                for (k, v) in offers {
                    if !self.sent.iter().any(|s| s == k) {
                        if k != "MaxRecvDataSegmentLength" {
                            self.pending.push(k.to_string());
                        }
                        push(&mut out, &mut self.sent, k, v);
                    }
                }
            }
        }
        out
    }

    /// No offer of ours is still waiting for an answer.
    pub fn settled(&self) -> bool {
        self.pending.is_empty()
    }

    /// The negotiated parameters so far.
    pub fn params(&self) -> SessionParams {
        let mut p = self.result.clone();
        p.max_recv_data_segment_length = self.local.max_recv_data_segment_length;
        if p.first_burst_length > p.max_burst_length {
            p.first_burst_length = p.max_burst_length;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn target_answers_table() {
        let local = LocalParams {
            max_burst_length: 1 << 20,
            max_recv_data_segment_length: 262_144,
            ..Default::default()
        };
        let rows: &[(&str, &str, &str)] = &[
            ("HeaderDigest", "CRC32C,None", "CRC32C"),
            ("DataDigest", "None", "None"),
            ("HeaderDigest", "MD5", "Reject"),
            ("MaxConnections", "4", "1"),
            ("InitialR2T", "No", "Yes"),
            ("ImmediateData", "Yes", "Yes"),
            ("MaxBurstLength", "16776192", "1048576"),
            ("MaxBurstLength", "100", "Reject"),
            ("FirstBurstLength", "262144", "65536"),
            ("DefaultTime2Wait", "0", "2"),
            ("DefaultTime2Retain", "0", "0"),
            ("MaxOutstandingR2T", "8", "1"),
            ("ErrorRecoveryLevel", "2", "0"),
            ("IFMarker", "No", "No"),
            ("X-com.example.Foo", "1", "NotUnderstood"),
            ("iSCSIProtocolLevel", "1", "NotUnderstood"),
            ("MaxRecvDataSegmentLength", "65536", "262144"),
        ];
        for (k, offer, want) in rows {
            let mut n = Negotiation::new(Role::Target, SessionType::Normal, local.clone());
            let a = n.receive(&kv(&[(k, offer)])).unwrap();
            assert_eq!(a, kv(&[(k, want)]), "{k}={offer}");
        }
    }

    #[test]
    fn discovery_irrelevant_and_declared_segment_length() {
        let mut n = Negotiation::new(Role::Target, SessionType::Discovery, LocalParams::default());
        let a = n
            .receive(&kv(&[
                ("MaxBurstLength", "4096"),
                ("MaxRecvDataSegmentLength", "4096"),
            ]))
            .unwrap();
        assert_eq!(
            a,
            kv(&[
                ("MaxBurstLength", "Irrelevant"),
                ("MaxRecvDataSegmentLength", "8192")
            ])
        );
        assert_eq!(n.params().max_xmit_data_segment_length, 4096);
        assert!(n.proposals().is_empty(), "the declaration was already sent");
    }

    #[test]
    fn first_burst_capped_by_burst() {
        let mut n = Negotiation::new(
            Role::Target,
            SessionType::Normal,
            LocalParams {
                first_burst_length: 1 << 20,
                max_burst_length: 1 << 20,
                ..Default::default()
            },
        );
        n.receive(&kv(&[
            ("MaxBurstLength", "4096"),
            ("FirstBurstLength", "65536"),
        ]))
        .unwrap();
        let p = n.params();
        assert_eq!((p.max_burst_length, p.first_burst_length), (4096, 4096));
    }

    fn arb_local() -> impl Strategy<Value = LocalParams> {
        (
            any::<bool>(),
            any::<bool>(),
            512u32..1 << 20,
            512u32..1 << 20,
            512u32..1 << 20,
            1u16..16,
            0u16..10,
            0u16..30,
            any::<bool>(),
        )
            .prop_map(
                |(ir2t, imm, mrdsl, mbl, fbl, r2t, t2w, t2r, crc)| LocalParams {
                    header_digest: if crc {
                        vec![Digest::Crc32c, Digest::None]
                    } else {
                        vec![Digest::None]
                    },
                    data_digest: vec![Digest::None, Digest::Crc32c],
                    initial_r2t: ir2t,
                    immediate_data: imm,
                    max_recv_data_segment_length: mrdsl,
                    max_burst_length: mbl,
                    first_burst_length: fbl,
                    max_outstanding_r2t: r2t,
                    default_time2wait: t2w,
                    default_time2retain: t2r,
                    ..Default::default()
                },
            )
    }

    proptest! {
        /// An initiator and a target negotiating with each other agree on every value.
        #[test]
        fn both_sides_agree(i in arb_local(), t in arb_local()) {
            let mut ini = Negotiation::new(Role::Initiator, SessionType::Normal, i.clone());
            let mut tgt = Negotiation::new(Role::Target, SessionType::Normal, t.clone());
            let offers = ini.proposals();
            let mut answers = tgt.receive(&offers).unwrap();
            answers.extend(tgt.proposals());
            ini.receive(&answers).unwrap();
            prop_assert!(ini.settled());
            let (a, b) = (ini.params(), tgt.params());
            prop_assert_eq!(a.max_xmit_data_segment_length, t.max_recv_data_segment_length);
            prop_assert_eq!(b.max_xmit_data_segment_length, i.max_recv_data_segment_length);
            prop_assert_eq!(a.max_burst_length, b.max_burst_length);
            prop_assert_eq!(a.first_burst_length, b.first_burst_length);
            prop_assert!(a.first_burst_length <= a.max_burst_length);
            prop_assert_eq!(a.initial_r2t, b.initial_r2t);
            prop_assert_eq!(a.immediate_data, b.immediate_data);
            prop_assert_eq!(a.header_digest, b.header_digest);
            prop_assert_eq!(a.max_outstanding_r2t, b.max_outstanding_r2t);
            prop_assert_eq!(a.default_time2wait, b.default_time2wait);
            prop_assert_eq!(a.default_time2retain, b.default_time2retain);
        }
    }
}
