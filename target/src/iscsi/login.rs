//! The target side of the login phase (RFC 7143 §6.3, §11.12-11.13) as a sans-IO state
//! machine: feed it each Login Request (header + data segment), send what it returns.
//! It finds the target, applies the ACL, runs CHAP when the target (or discovery) has
//! accounts, negotiates the operational keys and, on the transition to full feature
//! phase, hands back everything the session needs.
//!
//! Login status codes follow RFC 7143 §11.13.5: wrong CHAP credentials are 0x0201
//! (authentication failure), an initiator the ACL does not admit is 0x0202
//! (authorization failure), an unknown target 0x0203.

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
        let stat_sn = self.stat_sn;
        let fail =
            |status: LoginStatus, why: String| Step::Failed(failure(req, stat_sn, status), why);

        if req.version_min > 0 {
            return fail(
                LoginStatus::UNSUPPORTED_VERSION,
                format!("version-min {} > 0", req.version_min),
            );
        }
        if req.csg == LoginStage::FullFeature {
            return fail(
                LoginStatus::INITIATOR_ERROR,
                "login request with CSG=FullFeature".into(),
            );
        }
        if req.transit && req.cont {
            return fail(
                LoginStatus::INITIATOR_ERROR,
                "login request with both T and C set".into(),
            );
        }
        if self.partial.len() + data.len() > 64 * LOGIN_MAX_DATA {
            return fail(LoginStatus::INITIATOR_ERROR, "login text too long".into());
        }
        self.partial.extend_from_slice(data);
        if req.cont {
            // §6.3: acknowledge a continued text with an empty response.
            return Step::Continue(self.respond(req, false, LoginStage::Security, Vec::new()));
        }
        let text_bytes = std::mem::take(&mut self.partial);
        let keys = match text::parse(&text_bytes) {
            Ok(k) => k,
            Err(e) => return fail(LoginStatus::INITIATOR_ERROR, format!("login text: {e}")),
        };

        let mut answer: Vec<(String, String)> = Vec::new();
        if let Some(l) = &self.leading {
            if req.isid != l.isid || req.cid != l.cid || req.itt != l.itt {
                return fail(
                    LoginStatus::INITIATOR_ERROR,
                    "ISID, CID or ITT changed during login".into(),
                );
            }
        } else {
            match self.first_request(req, &keys) {
                Ok(l) => {
                    if l.session_type == SessionType::Normal {
                        answer.push(("TargetPortalGroupTag".into(), self.env.tpgt.to_string()));
                    }
                    self.leading = Some(l);
                }
                Err((status, why)) => return fail(status, why),
            }
        }

        // Security keys.
        let (auth_keys, op_keys): (Vec<_>, Vec<_>) = keys
            .into_iter()
            .partition(|(k, _)| negotiate::is_login_layer_key(k));
        if let Err((status, why)) = self.security(req, &auth_keys, &mut answer) {
            return fail(status, why);
        }

        let auth_required = self.leading.as_ref().is_some_and(|l| l.auth_required);
        if req.csg == LoginStage::Operational && auth_required && !self.authenticated {
            return fail(
                LoginStatus::AUTH_FAILURE,
                "operational stage reached without authentication".into(),
            );
        }

        let neg = self
            .negotiation
            .as_mut()
            .expect("negotiation starts with the first request");
        match neg.receive(&op_keys) {
            Ok(mut r) => answer.append(&mut r),
            Err(e) => return fail(LoginStatus::INITIATOR_ERROR, format!("negotiation: {e}")),
        }

        // Decide whether to follow the initiator's transit request.
        let mut transit = req.transit;
        let nsg = req.nsg;
        if transit && req.csg == LoginStage::Security && auth_required && !self.authenticated {
            if self.chap.is_some() {
                // CHAP is still under way: stay.
                transit = false;
            } else {
                return fail(
                    LoginStatus::AUTH_FAILURE,
                    "initiator left the security stage without authenticating".into(),
                );
            }
        }
        if transit && nsg == LoginStage::FullFeature {
            let neg = self.negotiation.as_mut().expect("negotiation");
            answer.extend(neg.proposals());
            if !neg.settled() {
                transit = false;
            }
        } else if transit && nsg == LoginStage::Operational {
            let neg = self.negotiation.as_mut().expect("negotiation");
            answer.extend(neg.proposals());
        }

        let mut data = Vec::new();
        let pairs: Vec<(&str, &str)> = answer
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        text::emit(&pairs, &mut data);
        if transit && nsg == LoginStage::FullFeature {
            let l = self.leading.take().expect("leading");
            let tsih = self.env.registry.alloc_tsih();
            let mut rsp = self.respond(req, true, nsg, data);
            rsp.hdr.tsih = tsih;
            let params = self.negotiation.as_ref().expect("negotiation").params();
            return Step::FullFeature(
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
            );
        }
        Step::Continue(self.respond(req, transit, nsg, data))
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
    ) -> Result<Leading, (LoginStatus, String)> {
        let reg = &self.env.registry;
        let initiator_name = key(keys, "InitiatorName")
            .ok_or((
                LoginStatus::MISSING_PARAMETER,
                "no InitiatorName in the first login request".into(),
            ))?
            .to_string();
        let session_type = match key(keys, "SessionType").unwrap_or("Normal") {
            "Normal" => SessionType::Normal,
            "Discovery" => SessionType::Discovery,
            other => {
                return Err((
                    LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
                    format!("SessionType={other}"),
                ))
            }
        };
        if req.tsih != 0 {
            // hydra negotiates MaxConnections=1: no connection can join a session.
            return Err((
                LoginStatus::TOO_MANY_CONNECTIONS,
                format!("login to existing session tsih {}", req.tsih),
            ));
        }
        if *reg.state.read().expect("lock") == TargetState::Offline {
            return Err((LoginStatus::SERVICE_UNAVAILABLE, "daemon is offline".into()));
        }
        let (target, auth_required, params) = match session_type {
            SessionType::Discovery => {
                let required = !reg.discovery_incoming.read().expect("lock").is_empty();
                (None, required, crate::registry::default_target_params())
            }
            SessionType::Normal => {
                let name = key(keys, "TargetName").ok_or((
                    LoginStatus::MISSING_PARAMETER,
                    "no TargetName in a normal session login".into(),
                ))?;
                let t = reg
                    .target_by_name(name)
                    .ok_or((LoginStatus::NOT_FOUND, format!("no target named {name}")))?;
                if *t.state.read().expect("lock") == TargetState::Offline {
                    return Err((
                        LoginStatus::SERVICE_UNAVAILABLE,
                        format!("target {name} is offline"),
                    ));
                }
                if !t
                    .acl
                    .read()
                    .expect("lock")
                    .allows(self.env.peer.ip(), &initiator_name)
                {
                    return Err((
                        LoginStatus::AUTHORIZATION_FAILURE,
                        format!(
                            "initiator {initiator_name} from {} is not in the ACL of {name}",
                            self.env.peer.ip()
                        ),
                    ));
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
    ) -> Result<(), (LoginStatus, String)> {
        let l = self.leading.as_ref().expect("leading");
        let required = l.auth_required;
        for (k, v) in keys {
            match k.as_str() {
                "InitiatorName" | "TargetName" | "SessionType" | "InitiatorAlias" => {}
                "AuthMethod" => {
                    if req.csg != LoginStage::Security {
                        return Err((
                            LoginStatus::INITIATOR_ERROR,
                            "AuthMethod outside the security stage".into(),
                        ));
                    }
                    let offered: Vec<&str> = v.split(',').collect();
                    if required {
                        if !offered.contains(&"CHAP") {
                            return Err((
                                LoginStatus::AUTH_FAILURE,
                                format!("CHAP required, initiator offered AuthMethod={v}"),
                            ));
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
                return Err((
                    LoginStatus::INITIATOR_ERROR,
                    "CHAP keys without AuthMethod=CHAP".into(),
                ));
            };
            match chap.receive(&chap_keys) {
                Ok(reply) => {
                    answer.extend(reply);
                    if chap.is_done() {
                        self.authenticated = true;
                    }
                }
                Err(e) => return Err((LoginStatus::AUTH_FAILURE, format!("CHAP: {e}"))),
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
