//! CHAP (RFC 1994) as iSCSI uses it (RFC 7143 §12.1.3), with the IANA algorithm numbers:
//! 5 MD5, 6 SHA-1, 7 SHA-256, 8 SHA3-256 (tgt maps 7 to SHA-1, which breaks initiators
//! that offer SHA-256 first). The response is H(identifier || secret || challenge).
//!
//! Both ends are state machines named after what they wait for (rustls style) and take
//! their randomness from the caller: the core reads no random source.

use md5::Md5;
use sha1::Sha1;
use sha2::Sha256;
use sha3::Sha3_256;

use crate::text::{hex_binary, parse_binary};
use crate::{Error, Result};

/// CHAP_A values (IANA "PPP Authentication Algorithms").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapAlgorithm {
    Md5 = 5,
    Sha1 = 6,
    Sha256 = 7,
    Sha3_256 = 8,
}

impl ChapAlgorithm {
    /// From a CHAP_A code.
    pub fn from_code(c: u32) -> Option<Self> {
        match c {
            5 => Some(ChapAlgorithm::Md5),
            6 => Some(ChapAlgorithm::Sha1),
            7 => Some(ChapAlgorithm::Sha256),
            8 => Some(ChapAlgorithm::Sha3_256),
            _ => None,
        }
    }

    /// Digest length in bytes, also the challenge length hydra sends.
    pub fn digest_len(self) -> usize {
        match self {
            ChapAlgorithm::Md5 => 16,
            ChapAlgorithm::Sha1 => 20,
            ChapAlgorithm::Sha256 | ChapAlgorithm::Sha3_256 => 32,
        }
    }

    /// H(id || secret || challenge).
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        fn h<D: sha2::Digest>(id: u8, s: &[u8], c: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update([id]);
            d.update(s);
            d.update(c);
            d.finalize().to_vec()
        }
        match self {
            ChapAlgorithm::Md5 => h::<Md5>(id, secret, challenge),
            ChapAlgorithm::Sha1 => h::<Sha1>(id, secret, challenge),
            ChapAlgorithm::Sha256 => h::<Sha256>(id, secret, challenge),
            ChapAlgorithm::Sha3_256 => h::<Sha3_256>(id, secret, challenge),
        }
    }
}

/// Compare without an early exit, so response timing says nothing about the secret.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn get<'a>(keys: &'a [(String, String)], k: &str) -> Option<&'a str> {
    keys.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// The CHAP_* keys of a login text, in order (the CHAP exchange takes them as a batch).
pub fn chap_keys(keys: &[(String, String)]) -> Vec<(String, String)> {
    keys.iter()
        .filter(|(k, _)| k.starts_with("CHAP_"))
        .cloned()
        .collect()
}

/// RFC 7143 §12.1.3 recommends secrets of at least 12 bytes (96 bits).
pub fn weak_secret(secret: &[u8]) -> bool {
    secret.len() < 12
}

enum TargetState {
    ExpectAlgorithms,
    ExpectResponse {
        alg: ChapAlgorithm,
        id: u8,
        challenge: Vec<u8>,
    },
    Done,
}

/// The target (authenticator) side.
pub struct ChapTarget {
    accounts: Vec<(String, Vec<u8>)>,
    mutual: Option<(String, Vec<u8>)>,
    algorithms: Vec<ChapAlgorithm>,
    id: u8,
    random: Vec<u8>,
    state: TargetState,
    /// The user name that authenticated.
    pub user: Option<String>,
}

impl ChapTarget {
    /// `accounts` may log in; `mutual` answers the initiator's challenge; `algorithms`
    /// are acceptable; `id` and `random` (>= 32 bytes) come from the caller's RNG.
    pub fn new(
        accounts: Vec<(String, Vec<u8>)>,
        mutual: Option<(String, Vec<u8>)>,
        algorithms: Vec<ChapAlgorithm>,
        id: u8,
        random: Vec<u8>,
    ) -> Self {
        ChapTarget {
            accounts,
            mutual,
            algorithms,
            id,
            random,
            state: TargetState::ExpectAlgorithms,
            user: None,
        }
    }

    /// Authentication finished successfully.
    pub fn is_done(&self) -> bool {
        matches!(self.state, TargetState::Done)
    }

    /// Handle the CHAP_* keys of one Login Request; returns the keys to answer with.
    pub fn receive(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        match std::mem::replace(&mut self.state, TargetState::Done) {
            TargetState::ExpectAlgorithms => {
                let a = get(keys, "CHAP_A").ok_or_else(|| Error::Auth("expected CHAP_A".into()))?;
                // Pick the initiator's most preferred algorithm that we allow.
                let alg = a
                    .split(',')
                    .filter_map(|c| {
                        c.trim()
                            .parse::<u32>()
                            .ok()
                            .and_then(ChapAlgorithm::from_code)
                    })
                    .find(|x| self.algorithms.contains(x))
                    .ok_or_else(|| {
                        Error::Auth(format!("no acceptable CHAP algorithm in CHAP_A={a}"))
                    })?;
                let challenge = self.random[..alg.digest_len().min(self.random.len())].to_vec();
                if challenge.len() < 16 {
                    return Err(Error::Auth("challenge randomness too short".into()));
                }
                let out = vec![
                    ("CHAP_A".into(), (alg as u8).to_string()),
                    ("CHAP_I".into(), self.id.to_string()),
                    ("CHAP_C".into(), hex_binary(&challenge)),
                ];
                self.state = TargetState::ExpectResponse {
                    alg,
                    id: self.id,
                    challenge,
                };
                Ok(out)
            }
            TargetState::ExpectResponse { alg, id, challenge } => {
                let n = get(keys, "CHAP_N").ok_or_else(|| Error::Auth("expected CHAP_N".into()))?;
                let r = get(keys, "CHAP_R").ok_or_else(|| Error::Auth("expected CHAP_R".into()))?;
                let r = parse_binary(r).map_err(|e| Error::Auth(format!("CHAP_R: {e}")))?;
                let secret = self
                    .accounts
                    .iter()
                    .find(|(u, _)| u == n)
                    .map(|(_, s)| s.clone())
                    .ok_or_else(|| Error::Auth(format!("unknown CHAP user '{n}'")))?;
                if !ct_eq(&alg.response(id, &secret, &challenge), &r) {
                    return Err(Error::Auth(format!("wrong CHAP response for user '{n}'")));
                }
                self.user = Some(n.to_string());
                let mut out = Vec::new();
                match (get(keys, "CHAP_I"), get(keys, "CHAP_C")) {
                    (None, None) => {}
                    (Some(i), Some(c)) => {
                        let (mu, ms) =
                            self.mutual.clone().ok_or_else(|| Error::Auth("initiator asks for mutual CHAP but the target has no outgoing account".into()))?;
                        let i: u8 = i
                            .parse()
                            .map_err(|_| Error::Auth(format!("CHAP_I={i} is not 0..255")))?;
                        let c = parse_binary(c).map_err(|e| Error::Auth(format!("CHAP_C: {e}")))?;
                        if c.len() < 16 {
                            return Err(Error::Auth(
                                "initiator challenge shorter than 16 bytes".into(),
                            ));
                        }
                        // A peer echoing our own challenge wants us to compute its answer
                        // (reflection attack, RFC 7143 §12.1.3).
                        if c == challenge {
                            return Err(Error::Auth(
                                "initiator reflected the target's challenge".into(),
                            ));
                        }
                        out.push(("CHAP_N".into(), mu));
                        out.push(("CHAP_R".into(), hex_binary(&alg.response(i, &ms, &c))));
                    }
                    _ => return Err(Error::Auth("CHAP_I and CHAP_C must come together".into())),
                }
                self.state = TargetState::Done;
                Ok(out)
            }
            TargetState::Done => Err(Error::Auth(
                "CHAP keys after authentication completed".into(),
            )),
        }
    }
}

enum InitiatorState {
    ExpectChallenge,
    ExpectMutualResponse {
        alg: ChapAlgorithm,
        id: u8,
        challenge: Vec<u8>,
    },
    Done,
}

/// The initiator side.
pub struct ChapInitiator {
    user: String,
    secret: Vec<u8>,
    /// Target name and secret for mutual CHAP.
    mutual: Option<(String, Vec<u8>)>,
    algorithms: Vec<ChapAlgorithm>,
    id: u8,
    random: Vec<u8>,
    state: InitiatorState,
}

impl ChapInitiator {
    pub fn new(
        user: String,
        secret: Vec<u8>,
        mutual: Option<(String, Vec<u8>)>,
        algorithms: Vec<ChapAlgorithm>,
        id: u8,
        random: Vec<u8>,
    ) -> Self {
        ChapInitiator {
            user,
            secret,
            mutual,
            algorithms,
            id,
            random,
            state: InitiatorState::ExpectChallenge,
        }
    }

    /// The first keys to send: CHAP_A with our algorithms.
    pub fn start(&self) -> Vec<(String, String)> {
        let a = self
            .algorithms
            .iter()
            .map(|a| (*a as u8).to_string())
            .collect::<Vec<_>>()
            .join(",");
        vec![("CHAP_A".into(), a)]
    }

    /// Authentication (and the mutual check, if asked for) is complete.
    pub fn is_done(&self) -> bool {
        matches!(self.state, InitiatorState::Done)
    }

    /// Handle the target's CHAP keys; returns what to send next.
    pub fn receive(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        match std::mem::replace(&mut self.state, InitiatorState::Done) {
            InitiatorState::ExpectChallenge => {
                let a = get(keys, "CHAP_A")
                    .ok_or_else(|| Error::Auth("target sent no CHAP_A".into()))?;
                let alg = a
                    .parse::<u32>()
                    .ok()
                    .and_then(ChapAlgorithm::from_code)
                    .filter(|x| self.algorithms.contains(x))
                    .ok_or_else(|| {
                        Error::Auth(format!("target chose CHAP_A={a}, which was not offered"))
                    })?;
                let i: u8 = get(keys, "CHAP_I")
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| Error::Auth("target sent no valid CHAP_I".into()))?;
                let c = parse_binary(
                    get(keys, "CHAP_C")
                        .ok_or_else(|| Error::Auth("target sent no CHAP_C".into()))?,
                )?;
                let mut out = vec![
                    ("CHAP_N".into(), self.user.clone()),
                    (
                        "CHAP_R".into(),
                        hex_binary(&alg.response(i, &self.secret, &c)),
                    ),
                ];
                if self.mutual.is_some() {
                    let mine = self.random[..alg.digest_len().min(self.random.len())].to_vec();
                    if mine == c {
                        return Err(Error::Auth("random challenge equals the target's".into()));
                    }
                    out.push(("CHAP_I".into(), self.id.to_string()));
                    out.push(("CHAP_C".into(), hex_binary(&mine)));
                    self.state = InitiatorState::ExpectMutualResponse {
                        alg,
                        id: self.id,
                        challenge: mine,
                    };
                } else {
                    self.state = InitiatorState::Done;
                }
                Ok(out)
            }
            InitiatorState::ExpectMutualResponse { alg, id, challenge } => {
                let (name, secret) = self
                    .mutual
                    .clone()
                    .expect("mutual state implies credentials");
                let n = get(keys, "CHAP_N")
                    .ok_or_else(|| Error::Auth("target sent no CHAP_N".into()))?;
                let r = parse_binary(
                    get(keys, "CHAP_R")
                        .ok_or_else(|| Error::Auth("target sent no CHAP_R".into()))?,
                )?;
                if n != name || !ct_eq(&alg.response(id, &secret, &challenge), &r) {
                    return Err(Error::Auth(format!(
                        "target failed mutual CHAP (name '{n}')"
                    )));
                }
                Ok(Vec::new())
            }
            InitiatorState::Done => Err(Error::Auth(
                "CHAP keys after authentication completed".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_vector() {
        // python3 -c "import hashlib;print(hashlib.md5(bytes([1])+b'secretsecret'+bytes(range(16))).hexdigest())"
        let r = ChapAlgorithm::Md5.response(1, b"secretsecret", &(0u8..16).collect::<Vec<_>>());
        assert_eq!(hex_binary(&r), "0x226dc576c33f04ff9c3a200ffe35f442");
        assert_eq!(ChapAlgorithm::from_code(7), Some(ChapAlgorithm::Sha256));
        assert_eq!(ChapAlgorithm::Sha256.response(0, b"x", b"y").len(), 32);
    }

    fn pair(mutual_t: bool, mutual_i: bool, secret: &[u8]) -> Result<(ChapTarget, ChapInitiator)> {
        let mut t = ChapTarget::new(
            vec![("alice".into(), b"sesame-secret1".to_vec())],
            mutual_t.then(|| ("tgt".into(), b"target-secret2".to_vec())),
            vec![ChapAlgorithm::Sha256, ChapAlgorithm::Md5],
            9,
            vec![0x11; 32],
        );
        let mut i = ChapInitiator::new(
            "alice".into(),
            secret.to_vec(),
            mutual_i.then(|| ("tgt".into(), b"target-secret2".to_vec())),
            vec![ChapAlgorithm::Md5, ChapAlgorithm::Sha256],
            3,
            vec![0x22; 32],
        );
        let a = t.receive(&i.start())?;
        assert_eq!(
            a[0],
            ("CHAP_A".into(), "5".into()),
            "initiator's first acceptable choice"
        );
        let r = i.receive(&a)?;
        let m = t.receive(&r)?;
        if !m.is_empty() {
            i.receive(&m)?;
        }
        Ok((t, i))
    }

    #[test]
    fn one_way_and_mutual_succeed() {
        let (t, i) = pair(false, false, b"sesame-secret1").unwrap();
        assert!(t.is_done() && i.is_done());
        assert_eq!(t.user.as_deref(), Some("alice"));
        let (t, i) = pair(true, true, b"sesame-secret1").unwrap();
        assert!(t.is_done() && i.is_done());
    }

    #[test]
    fn refusals() {
        assert!(
            matches!(pair(false, false, b"wrong-secret!!"), Err(Error::Auth(m)) if m.contains("wrong CHAP response"))
        );
        assert!(
            matches!(pair(false, true, b"sesame-secret1"), Err(Error::Auth(m)) if m.contains("no outgoing account"))
        );
        let mut t = ChapTarget::new(vec![], None, vec![ChapAlgorithm::Md5], 1, vec![0; 32]);
        assert!(t.receive(&[("CHAP_A".into(), "99".into())]).is_err());
        // Reflection: the initiator sends our own challenge back.
        let mut t = ChapTarget::new(
            vec![("u".into(), b"s".to_vec())],
            Some(("t".into(), b"m".to_vec())),
            vec![ChapAlgorithm::Md5],
            1,
            vec![7; 32],
        );
        let a = t.receive(&[("CHAP_A".into(), "5".into())]).unwrap();
        let c = a.iter().find(|(k, _)| k == "CHAP_C").unwrap().1.clone();
        let r = hex_binary(&ChapAlgorithm::Md5.response(1, b"s", &[7; 16]));
        let e = t.receive(&[
            ("CHAP_N".into(), "u".into()),
            ("CHAP_R".into(), r),
            ("CHAP_I".into(), "1".into()),
            ("CHAP_C".into(), c),
        ]);
        assert!(matches!(e, Err(Error::Auth(m)) if m.contains("reflected")));
    }
}
