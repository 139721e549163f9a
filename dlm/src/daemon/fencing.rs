//! Running the fence agents the core asks for ([`crate::io::Output::Fence`]): the
//! node's plan from dlm.conf ([`Config::fence_plan`]) run by fence.rs in a task of its
//! own, the outcome reported back so the daemon feeds `Input::FenceDone`.
//!
//! As dlm_controld: agents for different nodes run one at a time unless
//! `enable_concurrent_fencing=1` (daemon_cpg.c `daemon_fence_work` skips a victim while
//! `daemon_fence_pid` is set); and a victim that rejoined cleanly while its agents ran
//! no longer needs them, so they are killed (fence.rs kills the agent's process group
//! when its run is dropped).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::Config;
use crate::fence;
use crate::membership::NodeId;

use super::log::DebugLog;
use super::Event;

/// How long one agent may run. dlm_controld waits for its agent without a limit; its
/// default agent, dlm_stonith, gives pacemaker 300 s (`stonith_api_kick_helper(nodeid,
/// 300, 0)`), so an agent is given as long here.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(300);

/// The outcome of one node's agents.
#[derive(Debug)]
pub struct FenceOutcome {
    pub node: NodeId,
    pub ok: bool,
    /// What happened, for the debug log.
    pub detail: String,
}

pub struct Fencing {
    config: Arc<Config>,
    concurrent: bool,
    timeout: Duration,
    running: BTreeMap<NodeId, AbortHandle>,
    /// Victims waiting for a running agent to finish (not concurrent), with their
    /// failure time.
    queued: VecDeque<(NodeId, u64)>,
    events: mpsc::Sender<Event>,
    log: DebugLog,
}

impl Fencing {
    pub fn new(config: Arc<Config>, events: mpsc::Sender<Event>, log: DebugLog) -> Self {
        Fencing {
            concurrent: config.options.enable_concurrent_fencing,
            config,
            timeout: AGENT_TIMEOUT,
            running: BTreeMap::new(),
            queued: VecDeque::new(),
            events,
            log,
        }
    }

    /// Fence `node`, which failed at `fail_time` (wall-clock seconds, passed to the
    /// agents as `fail_time=`).
    pub fn request(&mut self, node: NodeId, fail_time: u64) {
        if self.running.contains_key(&node) || self.queued.iter().any(|(n, _)| *n == node) {
            return;
        }
        if !self.concurrent && !self.running.is_empty() {
            self.log.line(format!(
                "fence request {node} waits for the agents of node {} \
                 (enable_concurrent_fencing=0)",
                self.running.keys().next().copied().unwrap_or(0)
            ));
            self.queued.push_back((node, fail_time));
            return;
        }
        self.start(node, fail_time);
    }

    fn start(&mut self, node: NodeId, fail_time: u64) {
        let plan = self.config.fence_plan(node);
        let devices: Vec<String> = plan
            .steps
            .iter()
            .map(|s| {
                s.iter()
                    .map(|c| format!("{}({})", c.device, c.agent))
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
        self.log.line(format!(
            "fence run {node}: {}{}",
            devices.join(", then "),
            if plan.is_default {
                " (no fencing configured for it in dlm.conf: dlm_controld's default)"
            } else {
                ""
            }
        ));
        let events = self.events.clone();
        let timeout = self.timeout;
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let outcome = match fence::fence_node(&plan, node, fail_time, timeout).await {
                Ok(f) => {
                    let agents: Vec<String> = f
                        .outcomes
                        .iter()
                        .zip(&f.devices)
                        .map(|(o, d)| {
                            let said = o.stdout.first().or(o.stderr.first());
                            match said {
                                Some(line) => format!("{d} pid {} ({line})", o.pid),
                                None => format!("{d} pid {}", o.pid),
                            }
                        })
                        .collect();
                    FenceOutcome {
                        node,
                        ok: true,
                        detail: format!(
                            "agents succeeded in {} ms: {}",
                            started.elapsed().as_millis(),
                            agents.join(", ")
                        ),
                    }
                }
                Err(e) => FenceOutcome {
                    node,
                    ok: false,
                    detail: format!("failed after {} ms: {e}", started.elapsed().as_millis()),
                },
            };
            let _ = events.send(Event::Fenced(outcome)).await;
        });
        self.running.insert(node, task.abort_handle());
    }

    /// A run finished: start the next queued one.
    pub fn finished(&mut self, node: NodeId) {
        self.running.remove(&node);
        if self.concurrent || self.running.is_empty() {
            if let Some((next, fail_time)) = self.queued.pop_front() {
                self.start(next, fail_time);
            }
        }
    }

    /// Kill the runs and drop the queued requests of victims that no longer need
    /// fencing (they rejoined cleanly, or an admin acknowledged them); returns them all,
    /// as the core still waits to hear that their agents are done.
    pub fn cancel_unneeded(&mut self, needed: impl Fn(NodeId) -> bool) -> Vec<NodeId> {
        let mut gone: Vec<NodeId> = self
            .queued
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !needed(*n))
            .collect();
        self.queued.retain(|(n, _)| needed(*n));
        let killed: Vec<NodeId> = self
            .running
            .keys()
            .copied()
            .filter(|n| !needed(*n))
            .collect();
        for n in killed {
            if let Some(t) = self.running.remove(&n) {
                t.abort();
            }
            self.finished(n);
            gone.push(n);
        }
        gone
    }
}

impl Drop for Fencing {
    fn drop(&mut self) {
        for t in self.running.values() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const FENCE_TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/fence_test");

    /// Two nodes failing at once with enable_concurrent_fencing=0: the second node's
    /// agents start only after the first node's finished, and both are fenced.
    #[tokio::test]
    async fn without_concurrent_fencing_agents_run_one_at_a_time() {
        let dir = std::env::temp_dir().join(format!("hydra-fencing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (log, done) = (dir.join("log"), dir.join("done"));
        let conf = format!(
            "device t {FENCE_TEST} log={} done={} sleep=1\nconnect t node=2\nconnect t node=3\n",
            log.display(),
            done.display()
        );
        let config = Arc::new(Config::parse(Path::new("dlm.conf"), &conf).unwrap());
        assert!(!config.options.enable_concurrent_fencing);
        let (tx, mut rx) = mpsc::channel(8);
        let debug = DebugLog::new(tokio::time::Instant::now(), 100);
        let mut f = Fencing::new(config, tx, debug.clone());
        f.request(2, 100);
        f.request(3, 100);
        assert!(debug
            .dump()
            .contains("fence request 3 waits for the agents of node 2"));
        let mut fenced = Vec::new();
        while fenced.len() < 2 {
            let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            let Ok(Some(Event::Fenced(o))) = ev else {
                panic!("no outcome: {ev:?}")
            };
            assert!(o.ok, "{}", o.detail);
            f.finished(o.node);
            fenced.push(o.node);
        }
        assert_eq!(fenced, [2, 3]);
        // Node 3's agent started (its log line) after node 2's finished (its stamp).
        let started: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(started.len(), 2, "{started:?}");
        let stamps = std::fs::read_to_string(&done).unwrap();
        let at = |node: u32| -> f64 {
            stamps
                .lines()
                .find_map(|l| l.strip_prefix(&format!("node={node} ")))
                .expect("stamp")
                .parse()
                .unwrap()
        };
        // Each agent sleeps a second: run one after the other, the stamps are a second
        // or more apart.
        assert!(at(3) - at(2) >= 0.9, "{stamps}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
