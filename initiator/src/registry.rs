//! The sessions one node holds and the LUNs behind each: what `iscsiadm -m session`
//! shows and what the multipath layer consumes. Paths to one disk are grouped there by
//! WWID, so every LUN is listed with its WWID (udev/scsi_id semantics, [`crate::wwid`]);
//! a consumer takes a snapshot with [`Registry::sessions`] and waits for the next change
//! with [`Registry::changed`] (a generation counter on a watch channel), so it never
//! misses a login, logout or rescan that happens while it works.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::conn::Session;
use crate::ipc::Lun;
use crate::node_db::NodeId;
use crate::record::Record;
use crate::Result;

/// A logged-in session.
pub struct SessionEntry {
    /// Session id, as `iscsiadm -m session` numbers them (from 1).
    pub sid: u32,
    pub node: NodeId,
    /// The node record the session was logged in with.
    pub record: Record,
    pub initiator_name: String,
    pub session: Arc<Session>,
    luns: Mutex<Vec<Lun>>,
}

impl SessionEntry {
    pub fn luns(&self) -> Vec<Lun> {
        self.luns.lock().expect("lock").clone()
    }
}

pub struct Registry {
    sessions: Mutex<BTreeMap<u32, Arc<SessionEntry>>>,
    next_sid: AtomicU32,
    generation: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            sessions: Mutex::new(BTreeMap::new()),
            next_sid: AtomicU32::new(1),
            generation: watch::channel(0).0,
        }
    }
}

impl Registry {
    /// A session id for the next login (never reused while the daemon runs).
    pub fn alloc_sid(&self) -> u32 {
        self.next_sid.fetch_add(1, Ordering::Relaxed)
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn insert(
        &self,
        sid: u32,
        node: NodeId,
        record: Record,
        initiator_name: String,
        session: Arc<Session>,
        luns: Vec<Lun>,
    ) -> Arc<SessionEntry> {
        let e = Arc::new(SessionEntry {
            sid,
            node,
            record,
            initiator_name,
            session,
            luns: Mutex::new(luns),
        });
        self.sessions.lock().expect("lock").insert(sid, e.clone());
        self.bump();
        e
    }

    pub fn remove(&self, sid: u32) -> Option<Arc<SessionEntry>> {
        let e = self.sessions.lock().expect("lock").remove(&sid);
        if e.is_some() {
            self.bump();
        }
        e
    }

    pub fn get(&self, sid: u32) -> Option<Arc<SessionEntry>> {
        self.sessions.lock().expect("lock").get(&sid).cloned()
    }

    /// The session logged in to this node record's target portal, if any.
    pub fn find(&self, node: &NodeId) -> Option<Arc<SessionEntry>> {
        let s = self.sessions.lock().expect("lock");
        s.values()
            .find(|e| {
                e.node.target == node.target
                    && e.node.address == node.address
                    && e.node.port == node.port
            })
            .cloned()
    }

    /// Every session, by sid.
    pub fn sessions(&self) -> Vec<Arc<SessionEntry>> {
        self.sessions
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    /// A receiver that sees a new generation after every change.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Look at the LUNs of a session again (`iscsiadm -m session -r SID --rescan`).
    pub async fn rescan(&self, e: &SessionEntry) -> Result<Vec<Lun>> {
        let luns = scan(&e.session).await?;
        *e.luns.lock().expect("lock") = luns.clone();
        self.bump();
        Ok(luns)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

/// REPORT LUNS, then per LUN: standard INQUIRY, WWID, READ CAPACITY (16). A LUN that
/// answers with a check condition (e.g. not ready) is listed with what it did answer.
pub async fn scan(s: &Session) -> Result<Vec<Lun>> {
    // The first command after login may see a unit attention (power on, reset).
    let luns = match s.report_luns().await? {
        Ok(l) => l,
        Err(_) => s.report_luns().await?.unwrap_or_default(),
    };
    let mut out = Vec::new();
    for lun in luns {
        let _ = s.test_unit_ready(lun).await?;
        let inq = s.inquiry(lun, None).await?.unwrap_or_default();
        if inq.len() < 36 {
            continue;
        }
        let device_type = inq[0] & 0x1f;
        let wwid = s.wwid(lun).await?.ok().flatten();
        let (blocks, block_size) = if device_type == 0 {
            s.read_capacity(lun).await?.unwrap_or((0, 0))
        } else {
            (0, 0)
        };
        out.push(Lun {
            lun,
            device_type,
            vendor: text(&inq[8..16]),
            model: text(&inq[16..32]),
            revision: text(&inq[32..36]),
            wwid,
            blocks,
            block_size,
        });
    }
    Ok(out)
}
