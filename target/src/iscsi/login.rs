//! The target side of the login phase (RFC 7143 §6.3, §11.12-11.13) as a sans-IO state
//! machine: feed it each Login Request (header + data segment), send what it returns.
//! It finds the target, applies the ACL, runs CHAP when the target (or discovery) has
//! accounts, negotiates the operational keys and, on the transition to full feature
//! phase, hands back everything the session needs.
//!
//! Login status codes follow RFC 7143 §11.13.5, chosen in one table (`Refusal::status`):
//! wrong CHAP credentials are 0x0201 (authentication failure), an initiator the ACL
//! does not admit is 0x0202 (authorization failure), an unknown target 0x0203.

use std::net::SocketAddr;
use std::sync::Arc;

use hydra_proto::chap::{ChapAlgorithm, ChapTarget};
use hydra_proto::negotiate::{self, Negotiation, Role, SessionParams, SessionType};
pub use hydra_proto::pdu::LOGIN_MAX_DATA;
use hydra_proto::pdu::{LoginRequest, LoginResponse, LoginStage, LoginStatus};
use hydra_proto::text;

use crate::config::Account;
use crate::registry::{Registry, Target, TargetState};

/// Where the login happens.
pub struct LoginEnv {
    pub registry: Arc<Registry>,
    pub peer: SocketAddr,
    pub tpgt: u16,
    /// Random bytes for the CHAP identifier and challenge (the machine reads no random
    /// source itself).
    pub random: [u8; 33],
    /// The window the session will offer (tgt's MaxQueueCmd, default 128).
    pub queue_depth: u32,
}

/// A Login Response to send.
#[derive(Debug)]
pub struct Response {
    pub hdr: LoginResponse,
    pub data: Vec<u8>,
}

/// What the login agreed on, for the full feature phase.
pub struct Established {
    pub session_type: SessionType,
    pub target: Option<Arc<Target>>,
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    pub isid: [u8; 6],
    pub cid: u16,
    pub tsih: u16,
    pub params: SessionParams,
    /// StatSN of the next response on this connection.
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
}

/// What to do after one Login Request.
pub enum Step {
    /// Send and wait for the next Login Request.
    Continue(Response),
    /// Send; the connection is now in full feature phase.
    FullFeature(Response, Box<Established>),
    /// Send and close the connection; the string says why (for the log).
    Failed(Response, String),
}

struct Leading {
    initiator_name: String,
    initiator_alias: Option<String>,
    session_type: SessionType,
    target: Option<Arc<Target>>,
    isid: [u8; 6],
    cid: u16,
    itt: u32,
    auth_required: bool,
}

/// The login state machine of one connection.
pub struct TargetLogin {
    env: LoginEnv,
    leading: Option<Leading>,
    negotiation: Option<Negotiation>,
    chap: Option<ChapTarget>,
    authenticated: bool,
    /// Text of a Login Request sent with the C bit, waiting for its last part.
    partial: Vec<u8>,
    stat_sn: u32,
    first_response: bool,
}

/// Why a login is refused. [`Refusal::status`] is the one table from a reason to the
/// Login Response's status class and detail (RFC 7143 §11.13.5); the text is for the
/// log.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("version-min {0} > 0")]
    Version(u8),
    #[error("login request with CSG=FullFeature")]
    FullFeatureStage,
    #[error("login request with both T and C set")]
    TransitAndContinue,
    #[error("login text too long")]
    TextTooLong,
    #[error("login text: {0}")]
    Text(String),
    #[error("ISID, CID or ITT changed during login")]
    LeadingChanged,
    #[error("no InitiatorName in the first login request")]
    NoInitiatorName,
    #[error("SessionType={0}")]
    SessionType(String),
    /// hydra negotiates MaxConnections=1: no connection can join a session.
    #[error("login to existing session tsih {0}")]
    JoinSession(u16),
    #[error("daemon is offline")]
    DaemonOffline,
    #[error("no TargetName in a normal session login")]
    NoTargetName,
    #[error("no target named {0}")]
    UnknownTarget(String),
    #[error("target {0} is offline")]
    TargetOffline(String),
    #[error("initiator {initiator} from {from} is not in the ACL of {target}")]
    NotInAcl {
        initiator: String,
        from: std::net::IpAddr,
        target: String,
    },
    #[error("operational stage reached without authentication")]
    Unauthenticated,
    #[error("initiator left the security stage without authenticating")]
    LeftSecurityUnauthenticated,
    #[error("AuthMethod outside the security stage")]
    AuthMethodOutsideSecurity,
    #[error("CHAP required, initiator offered AuthMethod={0}")]
    ChapRequired(String),
    #[error("CHAP keys without AuthMethod=CHAP")]
    ChapWithoutAuthMethod,
    #[error("CHAP: {0}")]
    Chap(String),
    #[error("negotiation: {0}")]
    Negotiation(String),
}

impl Refusal {
    /// RFC 7143 §11.13.5: 02xx for what the initiator got wrong (01 authentication,
    /// 02 authorization, 03 not found...), 03xx for the target's own state.
    fn status(&self) -> LoginStatus {
        use Refusal::*;
        match self {
            Version(_) => LoginStatus::UNSUPPORTED_VERSION,
            FullFeatureStage
            | TransitAndContinue
            | TextTooLong
            | Text(_)
            | LeadingChanged
            | AuthMethodOutsideSecurity
            | ChapWithoutAuthMethod
            | Negotiation(_) => LoginStatus::INITIATOR_ERROR,
            Unauthenticated | LeftSecurityUnauthenticated | ChapRequired(_) | Chap(_) => {
                LoginStatus::AUTH_FAILURE
            }
            NotInAcl { .. } => LoginStatus::AUTHORIZATION_FAILURE,
            UnknownTarget(_) => LoginStatus::NOT_FOUND,
            JoinSession(_) => LoginStatus::TOO_MANY_CONNECTIONS,
            NoInitiatorName | NoTargetName => LoginStatus::MISSING_PARAMETER,
            SessionType(_) => LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
            DaemonOffline | TargetOffline(_) => LoginStatus::SERVICE_UNAVAILABLE,
        }
    }
}

/// The checks one Login Request's header must pass whatever the state (RFC 7143
/// §11.12); `text_len` is the login text gathered so far with this request's.
fn check_request(req: &LoginRequest, text_len: usize) -> Result<(), Refusal> {
    if req.version_min > 0 {
        return Err(Refusal::Version(req.version_min));
    }
    if req.csg == LoginStage::FullFeature {
        return Err(Refusal::FullFeatureStage);
    }
    if req.transit && req.cont {
        return Err(Refusal::TransitAndContinue);
    }
    if text_len > 64 * LOGIN_MAX_DATA {
        return Err(Refusal::TextTooLong);
    }
    Ok(())
}

fn failure(req: &LoginRequest, stat_sn: u32, status: LoginStatus) -> Response {
    Response {
        hdr: LoginResponse {
            transit: false,
            cont: false,
            csg: req.csg,
            nsg: req.csg,
            version_max: 0,
            version_active: 0,
            isid: req.isid,
            tsih: 0,
            itt: req.itt,
            stat_sn,
            exp_cmd_sn: req.cmd_sn,
            max_cmd_sn: req.cmd_sn,
            status,
        },
        data: Vec::new(),
    }
}

fn key<'a>(keys: &'a [(String, String)], name: &str) -> Option<&'a str> {
    keys.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn chap_accounts(a: &[Account]) -> Vec<(String, Vec<u8>)> {
    a.iter()
        .map(|a| (a.user.clone(), a.password.as_bytes().to_vec()))
        .collect()
}

impl TargetLogin {
    /// A new login on a freshly accepted connection.
    pub fn new(env: LoginEnv) -> Self {
        TargetLogin {
            env,
            leading: None,
            negotiation: None,
            chap: None,
            authenticated: false,
            partial: Vec::new(),
            stat_sn: 0,
            first_response: true,
        }
    }

    /// Handle one Login Request and its data segment.
    pub fn handle(&mut self, req: &LoginRequest, data: &[u8]) -> Step {
        if self.first_response {
            // RFC 7143 §11.13.4: the first response sets the connection's StatSN.
            self.stat_sn = req.exp_stat_sn;
        }
        self.step(req, data)
            .unwrap_or_else(|r| Step::Failed(failure(req, self.stat_sn, r.status()), r.to_string()))
    }

    fn step(&mut self, req: &LoginRequest, data: &[u8]) -> Result<Step, Refusal> {
        check_request(req, self.partial.len() + data.len())?;
        self.partial.extend_from_slice(data);
        if req.cont {
            // §6.3: acknowledge a continued text with an empty response.
            let ack = self.respond(req, false, LoginStage::Security, Vec::new());
            return Ok(Step::Continue(ack));
        }
        let text_bytes = std::mem::take(&mut self.partial);
        let keys = text::parse(&text_bytes).map_err(|e| Refusal::Text(e.to_string()))?;
        let mut answer: Vec<(String, String)> = Vec::new();
        self.leading_request(req, &keys, &mut answer)?;
        let (auth_keys, op_keys): (Vec<_>, Vec<_>) = keys
            .into_iter()
            .partition(|(k, _)| negotiate::is_login_layer_key(k));
        self.security(req, &auth_keys, &mut answer)?;
        if req.csg == LoginStage::Operational && self.auth_pending() {
            return Err(Refusal::Unauthenticated);
        }
        let neg = self
            .negotiation
            .as_mut()
            .expect("negotiation starts with the first request");
        let mut agreed = neg
            .receive(&op_keys)
            .map_err(|e| Refusal::Negotiation(e.to_string()))?;
        answer.append(&mut agreed);
        let transit = self.transit(req, &mut answer)?;
        Ok(self.answer(req, transit, &answer))
    }

    /// The first request of a login makes the leading state; later ones must keep its
    /// ISID, CID and ITT.
    fn leading_request(
        &mut self,
        req: &LoginRequest,
        keys: &[(String, String)],
        answer: &mut Vec<(String, String)>,
    ) -> Result<(), Refusal> {
        if let Some(l) = &self.leading {
            if req.isid != l.isid || req.cid != l.cid || req.itt != l.itt {
                return Err(Refusal::LeadingChanged);
            }
            return Ok(());
        }
        let l = self.first_request(req, keys)?;
        if l.session_type == SessionType::Normal {
            answer.push(("TargetPortalGroupTag".into(), self.env.tpgt.to_string()));
        }
        self.leading = Some(l);
        Ok(())
    }

    /// Authentication is required and not done yet.
    fn auth_pending(&self) -> bool {
        self.leading.as_ref().is_some_and(|l| l.auth_required) && !self.authenticated
    }

    /// Whether to follow the initiator's transit request (T bit), adding the target's
    /// own proposals when the stage changes. Leaving security unauthenticated is
    /// refused, unless CHAP is still under way (then the target stays); full feature
    /// phase waits until negotiation settled.
    fn transit(
        &mut self,
        req: &LoginRequest,
        answer: &mut Vec<(String, String)>,
    ) -> Result<bool, Refusal> {
        let mut transit = req.transit;
        if transit && req.csg == LoginStage::Security && self.auth_pending() {
            if self.chap.is_none() {
                return Err(Refusal::LeftSecurityUnauthenticated);
            }
            transit = false;
        }
        if transit && req.nsg != LoginStage::Security {
            let neg = self.negotiation.as_mut().expect("negotiation");
            answer.extend(neg.proposals());
            if req.nsg == LoginStage::FullFeature && !neg.settled() {
                transit = false;
            }
        }
        Ok(transit)
    }

    /// The Login Response carrying `answer`; on the transition to full feature phase,
    /// with the new session's TSIH and everything the session needs.
    fn answer(&mut self, req: &LoginRequest, transit: bool, answer: &[(String, String)]) -> Step {
        let nsg = req.nsg;
        let mut data = Vec::new();
        let pairs: Vec<(&str, &str)> = answer
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        text::emit(&pairs, &mut data);
        if !(transit && nsg == LoginStage::FullFeature) {
            return Step::Continue(self.respond(req, transit, nsg, data));
        }
        let l = self.leading.take().expect("leading");
        let tsih = self.env.registry.alloc_tsih();
        let mut rsp = self.respond(req, true, nsg, data);
        rsp.hdr.tsih = tsih;
        let params = self.negotiation.as_ref().expect("negotiation").params();
        Step::FullFeature(
            rsp,
            Box::new(Established {
                session_type: l.session_type,
                target: l.target,
                initiator_name: l.initiator_name,
                initiator_alias: l.initiator_alias,
                isid: l.isid,
                cid: l.cid,
                tsih,
                params,
                stat_sn: self.stat_sn,
                exp_cmd_sn: req.cmd_sn,
            }),
        )
    }

    fn respond(
        &mut self,
        req: &LoginRequest,
        transit: bool,
        nsg: LoginStage,
        data: Vec<u8>,
    ) -> Response {
        let stat_sn = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        self.first_response = false;
        Response {
            hdr: LoginResponse {
                transit,
                cont: false,
                csg: req.csg,
                nsg: if transit { nsg } else { req.csg },
                version_max: 0,
                version_active: 0,
                isid: req.isid,
                tsih: 0,
                itt: req.itt,
                stat_sn,
                exp_cmd_sn: req.cmd_sn,
                max_cmd_sn: req
                    .cmd_sn
                    .wrapping_add(self.env.queue_depth.saturating_sub(1)),
                status: LoginStatus::SUCCESS,
            },
            data,
        }
    }

    /// The leading Login Request: who, which session type, which target, allowed?
    fn first_request(
        &mut self,
        req: &LoginRequest,
        keys: &[(String, String)],
    ) -> Result<Leading, Refusal> {
        let reg = &self.env.registry;
        let initiator_name = key(keys, "InitiatorName")
            .ok_or(Refusal::NoInitiatorName)?
            .to_string();
        let session_type = match key(keys, "SessionType").unwrap_or("Normal") {
            "Normal" => SessionType::Normal,
            "Discovery" => SessionType::Discovery,
            other => return Err(Refusal::SessionType(other.into())),
        };
        if req.tsih != 0 {
            return Err(Refusal::JoinSession(req.tsih));
        }
        if *reg.state.read().expect("lock") == TargetState::Offline {
            return Err(Refusal::DaemonOffline);
        }
        let (target, auth_required, params) = match session_type {
            SessionType::Discovery => {
                let required = !reg.discovery_incoming.read().expect("lock").is_empty();
                (None, required, crate::registry::default_target_params())
            }
            SessionType::Normal => {
                let name = key(keys, "TargetName").ok_or(Refusal::NoTargetName)?;
                let t = reg
                    .target_by_name(name)
                    .ok_or_else(|| Refusal::UnknownTarget(name.into()))?;
                if *t.state.read().expect("lock") == TargetState::Offline {
                    return Err(Refusal::TargetOffline(name.into()));
                }
                if !t
                    .acl
                    .read()
                    .expect("lock")
                    .allows(self.env.peer.ip(), &initiator_name)
                {
                    return Err(Refusal::NotInAcl {
                        initiator: initiator_name,
                        from: self.env.peer.ip(),
                        target: name.into(),
                    });
                }
                let required = !t.incoming.read().expect("lock").is_empty();
                let params = t.params.read().expect("lock").clone();
                (Some(t), required, params)
            }
        };
        self.negotiation = Some(Negotiation::new(Role::Target, session_type, params));
        Ok(Leading {
            initiator_name,
            initiator_alias: key(keys, "InitiatorAlias").map(str::to_string),
            session_type,
            target,
            isid: req.isid,
            cid: req.cid,
            itt: req.itt,
            auth_required,
        })
    }

    /// AuthMethod and CHAP keys (RFC 7143 §12.1).
    fn security(
        &mut self,
        req: &LoginRequest,
        keys: &[(String, String)],
        answer: &mut Vec<(String, String)>,
    ) -> Result<(), Refusal> {
        let l = self.leading.as_ref().expect("leading");
        let required = l.auth_required;
        for (k, v) in keys {
            match k.as_str() {
                "InitiatorName" | "TargetName" | "SessionType" | "InitiatorAlias" => {}
                "AuthMethod" => {
                    if req.csg != LoginStage::Security {
                        return Err(Refusal::AuthMethodOutsideSecurity);
                    }
                    let offered: Vec<&str> = v.split(',').collect();
                    if required {
                        if !offered.contains(&"CHAP") {
                            return Err(Refusal::ChapRequired(v.clone()));
                        }
                        let (inc, out) = self.accounts();
                        let r = &self.env.random;
                        self.chap = Some(ChapTarget::new(
                            chap_accounts(&inc),
                            out.map(|o| (o.user, o.password.into_bytes())),
                            vec![
                                ChapAlgorithm::Sha3_256,
                                ChapAlgorithm::Sha256,
                                ChapAlgorithm::Sha1,
                                ChapAlgorithm::Md5,
                            ],
                            r[0],
                            r[1..33].to_vec(),
                        ));
                        answer.push(("AuthMethod".into(), "CHAP".into()));
                    } else if offered.contains(&"None") {
                        self.authenticated = true;
                        answer.push(("AuthMethod".into(), "None".into()));
                    } else {
                        answer.push(("AuthMethod".into(), "Reject".into()));
                    }
                }
                _ => {} // CHAP_* handled below, in one batch
            }
        }
        let chap_keys = hydra_proto::chap::chap_keys(keys);
        if !chap_keys.is_empty() {
            let Some(chap) = self.chap.as_mut() else {
                return Err(Refusal::ChapWithoutAuthMethod);
            };
            match chap.receive(&chap_keys) {
                Ok(reply) => {
                    answer.extend(reply);
                    if chap.is_done() {
                        self.authenticated = true;
                    }
                }
                Err(e) => return Err(Refusal::Chap(e.to_string())),
            }
        }
        Ok(())
    }

    fn accounts(&self) -> (Vec<Account>, Option<Account>) {
        let l = self.leading.as_ref().expect("leading");
        let reg = &self.env.registry;
        match &l.target {
            Some(t) => (
                t.incoming.read().expect("lock").clone(),
                t.outgoing.read().expect("lock").clone(),
            ),
            None => (
                reg.discovery_incoming.read().expect("lock").clone(),
                reg.discovery_outgoing.read().expect("lock").clone(),
            ),
        }
    }
}
