//! The initiator side of login (RFC 7143 §6), sans-IO: it produces Login Request PDUs
//! and consumes Login Responses until the full feature phase is reached or the login
//! fails. CHAP (one-way or mutual, IANA algorithm numbers) runs in the security stage;
//! without credentials the login starts in the operational stage, as open-iscsi does
//! when `node.session.auth.authmethod = None`. Operational keys are negotiated by
//! hydra-proto's [`Negotiation`] in the initiator role.

use hydra_proto::chap::{ChapAlgorithm, ChapInitiator};
use hydra_proto::negotiate::{LocalParams, Negotiation, Role, SessionParams, SessionType};
use hydra_proto::pdu::{LoginRequest, LoginResponse, LoginStage, LoginStatus};
use hydra_proto::text;

use crate::{Error, Result};

/// CHAP credentials (node.session.auth.*).
#[derive(Debug, Clone)]
pub struct Chap {
    pub user: String,
    pub secret: String,
    /// Mutual CHAP: the target's user name and secret.
    pub mutual: Option<(String, String)>,
}

/// What to log in as and to.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    pub initiator_name: String,
    /// None for a discovery session.
    pub target_name: Option<String>,
    pub isid: [u8; 6],
    /// Non-zero to reinstate (or add a connection to) an existing session.
    pub tsih: u16,
    pub chap: Option<Chap>,
    pub params: LocalParams,
}

impl LoginConfig {
    pub fn session_type(&self) -> SessionType {
        if self.target_name.is_some() {
            SessionType::Normal
        } else {
            SessionType::Discovery
        }
    }
}

/// The result of a successful login.
#[derive(Debug, Clone)]
pub struct Established {
    pub params: SessionParams,
    pub tsih: u16,
    pub target_portal_group_tag: Option<u16>,
    pub exp_stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// What to do next.
#[derive(Debug)]
pub enum Step {
    Send(LoginRequest, Vec<u8>),
    Done(Established),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Security stage, AuthMethod offered.
    SecurityStart,
    /// Security stage, CHAP in progress.
    Chap,
    Operational,
}

pub struct Login {
    cfg: LoginConfig,
    neg: Negotiation,
    chap: Option<ChapInitiator>,
    phase: Phase,
    itt: u32,
    exp_stat_sn: u32,
    tpgt: Option<u16>,
    /// Responses seen, to stop a target that never ends the login.
    rounds: u32,
}

impl Login {
    /// `random` seeds the mutual-CHAP challenge.
    pub fn new(cfg: LoginConfig, random: [u8; 32]) -> Login {
        let neg = Negotiation::new(Role::Initiator, cfg.session_type(), cfg.params.clone());
        let chap = cfg.chap.as_ref().map(|c| {
            ChapInitiator::new(
                c.user.clone(),
                c.secret.clone().into_bytes(),
                c.mutual
                    .as_ref()
                    .map(|(n, s)| (n.clone(), s.clone().into_bytes())),
                vec![
                    ChapAlgorithm::Sha3_256,
                    ChapAlgorithm::Sha256,
                    ChapAlgorithm::Sha1,
                    ChapAlgorithm::Md5,
                ],
                random[0],
                random[1..].to_vec(),
            )
        });
        let phase = if chap.is_some() {
            Phase::SecurityStart
        } else {
            Phase::Operational
        };
        Login {
            cfg,
            neg,
            chap,
            phase,
            itt: 0,
            exp_stat_sn: 0,
            tpgt: None,
            rounds: 0,
        }
    }

    fn request(&self, csg: LoginStage, transit: bool, nsg: LoginStage) -> LoginRequest {
        LoginRequest {
            transit,
            cont: false,
            csg,
            nsg,
            version_max: 0,
            version_min: 0,
            isid: self.cfg.isid,
            tsih: self.cfg.tsih,
            itt: self.itt,
            cid: 0,
            cmd_sn: 0,
            exp_stat_sn: self.exp_stat_sn,
        }
    }

    fn names(&self) -> Vec<(String, String)> {
        let mut v = vec![("InitiatorName".to_string(), self.cfg.initiator_name.clone())];
        match &self.cfg.target_name {
            Some(t) => {
                v.push(("TargetName".into(), t.clone()));
                v.push(("SessionType".into(), "Normal".into()));
            }
            None => v.push(("SessionType".into(), "Discovery".into())),
        }
        v
    }

    /// The first Login Request.
    pub fn start(&mut self) -> (LoginRequest, Vec<u8>) {
        let mut keys = self.names();
        let req = match self.phase {
            Phase::SecurityStart => {
                keys.push(("AuthMethod".into(), "CHAP".into()));
                self.request(LoginStage::Security, false, LoginStage::Security)
            }
            _ => {
                keys.extend(self.neg.proposals());
                self.request(LoginStage::Operational, true, LoginStage::FullFeature)
            }
        };
        let mut data = Vec::new();
        text::emit(&keys, &mut data);
        (req, data)
    }

    /// Handle one Login Response.
    pub fn receive(&mut self, r: &LoginResponse, data: &[u8]) -> Result<Step> {
        self.rounds += 1;
        if self.rounds > 32 {
            return Err(Error::Protocol(
                "login did not finish in 32 exchanges".into(),
            ));
        }
        if r.status != LoginStatus::SUCCESS {
            return Err(Error::LoginRefused(r.status));
        }
        if r.itt != self.itt {
            return Err(Error::Protocol(format!(
                "login response for ITT 0x{:08x}, expected 0x{:08x}",
                r.itt, self.itt
            )));
        }
        self.exp_stat_sn = r.stat_sn.wrapping_add(1);
        let keys = text::parse(data)?;
        for (k, v) in &keys {
            if k == "TargetPortalGroupTag" {
                self.tpgt = v.parse().ok();
            }
        }
        let mut out: Vec<(String, String)> = Vec::new();
        match self.phase {
            Phase::SecurityStart => {
                let method = keys
                    .iter()
                    .find(|(k, _)| k == "AuthMethod")
                    .map(|x| x.1.as_str());
                match method {
                    Some("CHAP") => {
                        self.phase = Phase::Chap;
                        out = self.chap.as_ref().expect("chap").start();
                        return Ok(self.send(
                            LoginStage::Security,
                            false,
                            LoginStage::Security,
                            out,
                        ));
                    }
                    Some("None") | None if r.transit => {
                        // The target needs no authentication.
                        self.phase = Phase::Operational;
                    }
                    other => {
                        return Err(Error::Auth(format!(
                            "target answered AuthMethod={}, CHAP was asked for",
                            other.unwrap_or("(nothing)")
                        )))
                    }
                }
            }
            Phase::Chap => {
                let chap = self.chap.as_mut().expect("chap");
                let chap_keys = hydra_proto::chap::chap_keys(&keys);
                if !chap_keys.is_empty() {
                    out = chap.receive(&chap_keys)?;
                }
                if !chap.is_done() || !out.is_empty() {
                    // Send the response and ask to move to the operational stage.
                    let done_after = chap.is_done();
                    return Ok(self.send(
                        LoginStage::Security,
                        done_after || out.iter().any(|(k, _)| k == "CHAP_R"),
                        LoginStage::Operational,
                        out,
                    ));
                }
                if r.transit && r.nsg == LoginStage::Operational {
                    self.phase = Phase::Operational;
                } else if r.transit && r.nsg == LoginStage::FullFeature {
                    return Ok(Step::Done(self.established(r)));
                } else {
                    return Ok(self.send(LoginStage::Security, true, LoginStage::Operational, out));
                }
            }
            Phase::Operational => {
                let op_keys: Vec<(String, String)> = keys
                    .into_iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "TargetPortalGroupTag" | "TargetAlias" | "TargetAddress"
                        )
                    })
                    .collect();
                out = self.neg.receive(&op_keys)?;
                if r.transit && r.nsg == LoginStage::FullFeature {
                    return Ok(Step::Done(self.established(r)));
                }
            }
        }
        // Operational stage (entered now or still in it): propose what is left.
        out.extend(self.neg.proposals());
        Ok(self.send(LoginStage::Operational, true, LoginStage::FullFeature, out))
    }

    fn send(
        &mut self,
        csg: LoginStage,
        transit: bool,
        nsg: LoginStage,
        keys: Vec<(String, String)>,
    ) -> Step {
        let mut keys = keys;
        if csg == LoginStage::Operational && self.rounds == 1 && self.phase == Phase::Operational {
            // First operational PDU after security: the names were sent already.
            keys.retain(|(k, _)| k != "InitiatorName");
        }
        let mut data = Vec::new();
        text::emit(&keys, &mut data);
        Step::Send(self.request(csg, transit, nsg), data)
    }

    fn established(&self, r: &LoginResponse) -> Established {
        Established {
            params: self.neg.params(),
            tsih: r.tsih,
            target_portal_group_tag: self.tpgt,
            exp_stat_sn: self.exp_stat_sn,
            exp_cmd_sn: r.exp_cmd_sn,
            max_cmd_sn: r.max_cmd_sn,
        }
    }
}
