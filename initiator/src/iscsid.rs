//! `hydra iscsid`: the daemon that holds one node's sessions. It reads node records from
//! the database at each login (so `iscsiadm -o update` applies to the next one), logs in
//! the `node.startup = automatic` records when it starts, keeps every session in the
//! [`Registry`] that `iscsiadm -m session` and the multipath layer read, and answers
//! `hydra iscsiadm` on a unix socket in its run directory ([`crate::ipc`]). The process
//! around it (run directory, pid file, both control sockets, the draining stop, and the
//! multipath maps over these sessions) is the node daemon, `hydra_multipath::node`: this
//! library stays free of maps and devices.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hydra_daemon::control as ctl;

use crate::conn::Session;
use crate::ipc::{Iscsid, Negotiated, Request, Response, SessionInfo};
use crate::login::LoginConfig;
use crate::node_db::{NodeDb, NodeId, IFACE};
use crate::record::Record;
use crate::registry::{scan, Registry, SessionEntry};
use crate::Error;

pub use crate::ipc::code;

/// The control socket's name in the run directory.
pub const SOCKET: &str = "iscsid.sock";

/// The pid file's name in the run directory (locked while the daemon runs).
pub const PID_FILE: &str = "iscsid.pid";

/// Default database root, as Debian's open-iscsi.
pub fn default_root() -> PathBuf {
    std::env::var_os("HYDRA_ISCSI_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/etc/iscsi".into())
}

/// Default run directory (the control socket lives there).
pub fn default_run_dir() -> PathBuf {
    std::env::var_os("HYDRA_ISCSID_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/run/hydra-iscsid".into())
}

/// Which open-iscsi code a failed login reports (usr/initiator.c
/// __check_iscsi_status_class: authentication/authorization failures are 24, other
/// initiator errors are not retried (19), target errors are 5).
pub fn login_error_code(e: &Error) -> u8 {
    match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::TimedOut => {
            code::TRANS_TIMEOUT
        }
        Error::Io { .. } | Error::Closed | Error::Unreachable { .. } => code::TRANS,
        Error::LoginRefused(s) => match (s.0, s.1) {
            (2, 1) | (2, 2) => code::LOGIN_AUTH_FAILED,
            (2, _) => code::FATAL_LOGIN,
            _ => code::LOGIN,
        },
        Error::Auth(_) => code::LOGIN_AUTH_FAILED,
        _ => code::LOGIN,
    }
}

pub struct Daemon {
    db: NodeDb,
    initiator_name: String,
    registry: Arc<Registry>,
    /// Node records with a login under way (a second login to one is refused like an
    /// existing session).
    pending: Mutex<HashSet<NodeId>>,
}

type Refusal = (u8, String);

impl Daemon {
    /// Open the database at `root`: the initiator name (generated when missing) and a
    /// readable iscsid.conf are needed before the daemon can serve.
    pub fn open(root: &Path) -> crate::Result<Arc<Daemon>> {
        let db = NodeDb::new(root);
        let initiator_name = db.initiator_name()?;
        db.templates()?;
        Ok(Arc::new(Daemon {
            db,
            initiator_name,
            registry: Arc::new(Registry::default()),
            pending: Mutex::new(HashSet::new()),
        }))
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn initiator_name(&self) -> &str {
        &self.initiator_name
    }

    /// Log in to one node record.
    pub async fn login(
        &self,
        target: &str,
        address: &str,
        port: u16,
    ) -> Result<Arc<SessionEntry>, Refusal> {
        let found = self
            .db
            .find(Some(target), Some((address, Some(port))))
            .map_err(|e| (code::IDBM, e.to_string()))?;
        let Some(record) = found.into_iter().next() else {
            return Err((
                code::NO_OBJS_FOUND,
                format!("no record found for target {target} portal {address},{port}"),
            ));
        };
        let node = NodeId::of(&record);
        if self.registry.find(&node).is_some()
            || !self.pending.lock().expect("lock").insert(node.clone())
        {
            return Err((
                code::SESS_EXISTS,
                format!("{IFACE}: 1 session requested, but 1 already present."),
            ));
        }
        let r = self.login_record(&node, record).await;
        self.pending.lock().expect("lock").remove(&node);
        r
    }

    async fn login_record(
        &self,
        node: &NodeId,
        record: Record,
    ) -> Result<Arc<SessionEntry>, Refusal> {
        let addr = tokio::net::lookup_host(record.portal())
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                (
                    code::INVAL,
                    format!("cannot resolve portal {}", record.portal()),
                )
            })?;
        let sid = self.registry.alloc_sid();
        // open-iscsi's ISID: OUI format with its 0x023d qualifier, then the session id
        // (RFC 7143 §11.12.5); the same ISID is used on every reconnect of this session
        // so that the target reinstates it (§6.3.5).
        let isid = [0x00, 0x02, 0x3d, 0x00, (sid >> 8) as u8, sid as u8];
        let cfg = LoginConfig {
            initiator_name: self.initiator_name.clone(),
            target_name: Some(node.target.clone()),
            isid,
            tsih: 0,
            chap: record.chap(),
            params: record.local_params(),
        };
        let tries = record
            .get("node.session.initial_login_retry_max")
            .parse::<u32>()
            .unwrap_or(8)
            .max(1);
        let mut attempt = 0;
        let session = loop {
            attempt += 1;
            match Session::login_with(addr, cfg.clone(), record.timeouts()).await {
                Ok(s) => break s,
                // Only a connection that could not be made is tried again; a target that
                // refused the login will refuse it again.
                Err(e @ (Error::Io { .. } | Error::Closed)) if attempt < tries => {
                    tracing::info!(
                        "login to {} at {addr}: {e}; retrying ({attempt}/{tries})",
                        node.target
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err((login_error_code(&e), e.to_string())),
            }
        };
        let session = Arc::new(session);
        let luns = if record.get("node.session.scan") == "auto" {
            scan(&session).await.unwrap_or_else(|e| {
                tracing::warn!("sid {sid}: LUN scan failed: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        tracing::info!(
            "sid {sid}: logged in to {} at {addr}, {} LUN(s)",
            node.target,
            luns.len()
        );
        Ok(self.registry.insert(
            sid,
            node.clone(),
            record,
            self.initiator_name.clone(),
            session,
            luns,
        ))
    }

    /// Log one session out.
    pub async fn logout(&self, sid: u32) -> Result<Arc<SessionEntry>, Refusal> {
        let e = self
            .registry
            .remove(sid)
            .ok_or((code::SESS_NOT_FOUND, format!("no session with sid {sid}")))?;
        e.session
            .close()
            .await
            .map_err(|err| (code::LOGOUT, err.to_string()))?;
        tracing::info!("sid {sid}: logged out of {}", e.node.target);
        Ok(e)
    }

    /// Log in every record with `node.startup = automatic` (at start-up).
    pub async fn login_automatic(self: Arc<Self>) {
        let records = match self.db.nodes() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("automatic logins: {e}");
                return;
            }
        };
        for r in records
            .into_iter()
            .filter(|r| r.get("node.startup") == "automatic")
        {
            let d = self.clone();
            tokio::spawn(async move {
                let n = NodeId::of(&r);
                if let Err((c, m)) = d.login(&n.target, &n.address, n.port).await {
                    tracing::error!(
                        "automatic login to {} at {}: {m} ({c})",
                        n.target,
                        r.portal()
                    );
                }
            });
        }
    }

    pub fn info(&self, e: &SessionEntry) -> SessionInfo {
        let p = &e.session.established.params;
        let r = &e.record;
        let n = |k: &str| r.get(k).parse().unwrap_or(0);
        SessionInfo {
            sid: e.sid,
            target: e.node.target.clone(),
            address: e.node.address.clone(),
            port: e.node.port,
            tpgt: e
                .session
                .established
                .target_portal_group_tag
                .unwrap_or(e.node.tpgt),
            iface: IFACE.into(),
            initiator_name: e.initiator_name.clone(),
            local_address: e
                .session
                .local_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            logged_in: e.session.is_connected(),
            recovery_timeout: n("node.session.timeo.replacement_timeout"),
            lu_reset_timeout: n("node.session.err_timeo.lu_reset_timeout"),
            tgt_reset_timeout: n("node.session.err_timeo.tgt_reset_timeout"),
            abort_timeout: n("node.session.err_timeo.abort_timeout"),
            username: r.get("node.session.auth.username").into(),
            password: r.get("node.session.auth.password").into(),
            username_in: r.get("node.session.auth.username_in").into(),
            password_in: r.get("node.session.auth.password_in").into(),
            negotiated: Negotiated {
                header_digest: p.header_digest,
                data_digest: p.data_digest,
                max_recv_data_segment_length: p.max_recv_data_segment_length,
                max_xmit_data_segment_length: p.max_xmit_data_segment_length,
                first_burst_length: p.first_burst_length,
                max_burst_length: p.max_burst_length,
                immediate_data: p.immediate_data,
                initial_r2t: p.initial_r2t,
                max_outstanding_r2t: p.max_outstanding_r2t,
            },
            luns: e.luns(),
        }
    }

    fn sessions(&self, only: Option<u32>) -> Response {
        Response::Sessions {
            sessions: self
                .registry
                .sessions()
                .iter()
                .filter(|e| only.is_none_or(|s| s == e.sid))
                .map(|e| self.info(e))
                .collect(),
        }
    }

    pub async fn handle(&self, req: Request) -> Response {
        let one = |r: Result<Arc<SessionEntry>, Refusal>| match r {
            Ok(e) => Response::Sessions {
                sessions: vec![self.info(&e)],
            },
            Err((c, m)) => Response::error(c, m),
        };
        match req {
            Request::Login {
                target,
                address,
                port,
            } => one(self.login(&target, &address, port).await),
            Request::Logout { sid } => one(self.logout(sid).await),
            Request::Sessions => self.sessions(None),
            Request::Rescan { sid } => match self.registry.get(sid) {
                None => Response::error(code::SESS_NOT_FOUND, format!("no session with sid {sid}")),
                Some(e) => match self.registry.rescan(&e).await {
                    Ok(_) => self.sessions(Some(sid)),
                    Err(err) => Response::error(code::ERR, format!("rescan of sid {sid}: {err}")),
                },
            },
        }
    }

    /// Log every session out (daemon shutdown).
    pub async fn logout_all(&self) {
        for e in self.registry.sessions() {
            let _ = self.logout(e.sid).await;
        }
    }
}

/// One request to a running daemon (what `hydra iscsiadm` uses).
pub async fn call(run_dir: &Path, req: &Request) -> Result<Response, std::io::Error> {
    ctl::call::<Iscsid>(&run_dir.join(SOCKET), req.clone())
        .await
        .map_err(|e| match e {
            hydra_daemon::Error::Connect { source, .. }
            | hydra_daemon::Error::Io { source, .. } => source,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        })
}
