//! Unit attention conditions, kept per I_T nexus (SAM-5 §5.14, SPC-4 §5.14? "Unit
//! attention condition"). A new nexus starts with POWER ON, RESET OR BUS DEVICE RESET
//! OCCURRED (29/00), as tgt does; resets, mode changes and LUN inventory changes queue
//! theirs for the other nexuses.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hydra_proto::scsi::Sense;

use crate::nexus::ItNexus;

/// At most this many distinct conditions are kept per nexus; older ones are dropped
/// (SAM-5 allows reporting a generic condition once the queue overflows).
const MAX_QUEUED: usize = 8;

#[derive(Default)]
pub struct UnitAttentions {
    map: Mutex<HashMap<ItNexus, VecDeque<Sense>>>,
}

impl UnitAttentions {
    /// A nexus logged in.
    pub fn register(&self, n: &ItNexus) {
        let mut m = self.map.lock().expect("lock");
        let q = m.entry(n.clone()).or_default();
        q.clear();
        q.push_back(Sense::unit_attention(0x29, 0x00));
    }

    /// A nexus is gone.
    pub fn unregister(&self, n: &ItNexus) {
        self.map.lock().expect("lock").remove(n);
    }

    /// Queue `sense` for every registered nexus except `except`.
    pub fn raise(&self, except: Option<&ItNexus>, sense: Sense) {
        self.raise_where(|n| Some(n) != except, sense);
    }

    /// Queue `sense` for every registered nexus that `pred` selects.
    pub fn raise_where(&self, pred: impl Fn(&ItNexus) -> bool, sense: Sense) {
        let mut m = self.map.lock().expect("lock");
        for (_, q) in m.iter_mut().filter(|(n, _)| pred(n)) {
            if !q.iter().any(|s| s.asc == sense.asc && s.ascq == sense.ascq) {
                if q.len() >= MAX_QUEUED {
                    q.pop_front();
                }
                q.push_back(sense.clone());
            }
        }
    }

    /// Take the oldest pending condition of `n`.
    pub fn take(&self, n: &ItNexus) -> Option<Sense> {
        self.map
            .lock()
            .expect("lock")
            .get_mut(n)
            .and_then(|q| q.pop_front())
    }

    /// Drop a specific pending condition (REPORT LUNS clears 3F/0E, SPC-4 §6.33).
    pub fn clear(&self, n: &ItNexus, asc: u8, ascq: u8) {
        if let Some(q) = self.map.lock().expect("lock").get_mut(n) {
            q.retain(|s| !(s.asc == asc && s.ascq == ascq));
        }
    }
}
