//! The daemon's answers to `dlm_tool` queries, as text in dlm_tool's layouts so the tool
//! only prints them: `ls` (dlm_tool/main.c `do_list`, `show_ls`, `show_all_nodes`),
//! `status` (libdlmcontrol `dlmc_print_status`, dlm_controld's `print_state_daemon` and
//! `print_state_daemon_node`), `lockdump` and `lockdebug` (rendered by the lockspace
//! itself, lockspace/dump.rs). dlm.md §2.8 has the layouts.
//!
//! Values hydra does not have are shown as dlm_controld shows an unset one: `fence_pid`
//! is 0 (fence.rs does not expose a running agent's pid), and `fence_in_progress_unknown`
//! and `delay_fencing` are 0 (the core has neither state).

use std::fmt::Write as _;

use crate::api::{ClientId, Errno};
use crate::flags::libc_errno::ENOENT;
use crate::lockspace::Lockspace;
use crate::membership::NodeId;
use crate::node::Node;

use super::history::{reason_str, wait_of, Clock, DaemonNode, History};

/// libdlmcontrol's `DLMC_LF_*` lockspace flags.
const LF_JOINING: u32 = 0x01;
const LF_KERNEL_STOPPED: u32 = 0x04;

/// The lockspace's global id as dlm_controld computes it (cpg.c `dlm_join_lockspace`:
/// `cpgname_to_crc("dlm:ls:<name>", strlen + 1)`, crc.c): the standard CRC-32 (IEEE,
/// reflected, as the kernel's `crc32_le(~0, ...) ^ ~0`) of the group name with its
/// terminating NUL.
pub fn lockspace_id(name: &str) -> u32 {
    let mut crc = !0u32;
    for b in b"dlm:ls:".iter().chain(name.as_bytes()).chain(&[0u8]) {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn no_lockspace(name: &str) -> Errno {
    Errno::new(ENOENT, format!("no lockspace \"{name}\" on this node"))
}

/// `1 2 3 ` as dlm_tool's `show_nodeids` prints them (each followed by a blank).
fn ids(nodes: &[NodeId]) -> String {
    nodes.iter().map(|n| format!("{n} ")).collect()
}

/// `dlm_tool ls [-n] [name]`.
pub fn ls(
    node: &Node,
    hist: &History,
    name: Option<&str>,
    all_nodes: bool,
) -> Result<String, Errno> {
    let chosen: Vec<&Lockspace> = match name {
        Some(n) => vec![node.lockspaces.get(n).ok_or_else(|| no_lockspace(n))?],
        None => node.lockspaces.values().collect(),
    };
    let mut out = String::new();
    if !chosen.is_empty() {
        out.push_str("dlm lockspaces\n");
    }
    for ls in chosen {
        show_ls(node, hist, ls, all_nodes, &mut out);
        out.push('\n');
    }
    Ok(out)
}

fn show_ls(node: &Node, hist: &History, ls: &Lockspace, all_nodes: bool, out: &mut String) {
    let h = hist.lockspaces.get(&ls.name);
    let mut flags = 0;
    let mut names = Vec::new();
    if ls.phase().is_some() {
        flags |= LF_KERNEL_STOPPED;
        names.push("kern_stop");
    }
    if !ls.joined {
        flags |= LF_JOINING;
        names.push("join");
    }
    let _ = writeln!(out, "name          {}", ls.name);
    let _ = writeln!(out, "id            0x{:08x}", lockspace_id(&ls.name));
    let _ = writeln!(out, "flags         0x{flags:08x} {}", names.join(","));
    let started = h.and_then(|h| h.started.clone()).unwrap_or_default();
    let _ = writeln!(
        out,
        "change        member {} joined {} remove {} failed {} seq {},{}",
        started.members.len(),
        started.joined,
        started.removed,
        started.failed,
        started.combined_seq,
        started.seq
    );
    let _ = writeln!(out, "members       {}", ids(&started.members));
    let next = h.and_then(|h| h.next.as_ref()).filter(|_| !ls.running());
    if let Some(next) = next {
        let _ = writeln!(
            out,
            "new change    member {} joined {} remove {} failed {} seq {},{}",
            next.members.len(),
            next.joined,
            next.removed,
            next.failed,
            next.combined_seq,
            next.seq
        );
        if let Some(wait) = wait_of(node, ls) {
            let _ = writeln!(out, "new status    {}", wait.status());
        }
        let _ = writeln!(out, "new members   {}", ids(&next.members));
    }
    if !all_nodes {
        return;
    }
    let _ = writeln!(out, "all nodes");
    let Some(h) = h else {
        return;
    };
    let current = next.unwrap_or(&started);
    for (id, n) in &h.nodes {
        let member = current.members.contains(id);
        let start = if ls.running() {
            member
        } else {
            ls.start_received(*id)
        };
        let check = if node.fencing.contains_key(id) && ls.awaiting_fence().any(|f| f == *id) {
            format!("fence {}", n.fail_monotime)
        } else {
            "none".to_string()
        };
        let _ = writeln!(
            out,
            "nodeid {id} member {} failed {} start {} seq_add {} seq_rem {} check {check}",
            u8::from(member),
            n.fail_reason,
            u8::from(start),
            n.added_seq,
            n.removed_seq
        );
    }
}

/// `dlm_tool status [-v]`.
pub fn status(node: &Node, hist: &History, verbose: bool, now: Clock) -> String {
    let mut out = String::new();
    if verbose {
        let _ = writeln!(out, "our_nodeid {}", node.me);
        for (k, v) in [
            ("member_count", hist.daemon_members as u64),
            ("joined_count", hist.daemon_joined as u64),
            ("remove_count", hist.daemon_removed as u64),
            ("daemon_ringid", hist.daemon_ring),
            ("cluster_ringid", hist.cluster_ring),
            ("quorate", u64::from(node.quorate)),
            ("fence_pid", 0),
            ("fence_in_progress_unknown", 0),
            ("zombie_count", 0),
            ("monotime", now.mono),
        ] {
            let _ = writeln!(out, "{k}={v}");
        }
        for (id, n) in &hist.nodes {
            let need = node.fencing.get(id);
            let _ = writeln!(out, "nodeid {id}");
            let _ = writeln!(out, "member={}", u8::from(n.member));
            let _ = writeln!(out, "killed=0");
            let _ = writeln!(out, "left_reason={}", reason_str(n.left_reason));
            for (k, v) in [
                ("need_fencing", u64::from(need.is_some())),
                ("delay_fencing", 0),
                ("fence_pid", 0),
                ("fence_pid_wait", 0),
                (
                    "fence_result_wait",
                    u64::from(need.is_some_and(|f| f.started_by.is_some())),
                ),
                ("fence_actor_last", u64::from(actor_of(node, *id))),
                ("fence_actor_done", u64::from(n.actor_done)),
                ("add_time", n.add_time),
                ("rem_time", n.rem_time),
                ("fail_walltime", n.fail_walltime),
                ("fail_monotime", n.fail_monotime),
                ("fence_walltime", n.fence_walltime),
                ("fence_monotime", n.fence_monotime),
            ] {
                let _ = writeln!(out, "{k}={v}");
            }
        }
        return out;
    }
    let _ = writeln!(
        out,
        "cluster nodeid {} quorate {} ring seq {} {}",
        node.me,
        u8::from(node.quorate),
        hist.cluster_ring,
        hist.daemon_ring
    );
    let _ = writeln!(out, "daemon now {} fence_pid 0 ", now.mono);
    let node_line = |id: NodeId, n: &DaemonNode| {
        format!(
            "node {id} {} add {} rem {} fail {} fence {} at {} {}",
            if n.member { 'M' } else { 'X' },
            n.add_time,
            n.rem_time,
            n.fail_monotime,
            n.fence_monotime,
            n.actor_done,
            n.fence_walltime
        )
    };
    // Configured nodes startup fencing still waits for (libdlmcontrol prints them with
    // their node line when the daemon group has seen them).
    for id in node.startup.iter().flat_map(|s| s.nodes.iter()) {
        match hist.nodes.get(id) {
            Some(n) => {
                let _ = writeln!(out, "startup {}", node_line(*id, n));
            }
            None => {
                let _ = writeln!(out, "startup node {id}");
            }
        }
    }
    for (id, need) in &node.fencing {
        let n = hist.nodes.get(id).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "fence {id} {} pid 0 actor {} fail {} fence {} now {}{}",
            reason_str(n.left_reason),
            actor_of(node, *id),
            n.fail_walltime,
            n.fence_walltime,
            now.wall,
            if need.started_by.is_some() {
                " result_wait"
            } else {
                ""
            }
        );
    }
    for (id, n) in &hist.nodes {
        let _ = writeln!(out, "{}", node_line(*id, n));
    }
    out
}

/// Who runs (or last ran) the agents for `victim`: the daemon that started them, else
/// the lowest daemon-group member among those that saw it fail (0 if none).
fn actor_of(node: &Node, victim: NodeId) -> NodeId {
    let Some(need) = node.fencing.get(&victim) else {
        return 0;
    };
    need.started_by
        .or_else(|| {
            need.actors
                .iter()
                .copied()
                .find(|a| node.daemon_members.contains(a))
        })
        .unwrap_or(0)
}

/// `dlm_tool lockdump [-M] <ls>`.
pub fn lockdump(
    node: &Node,
    name: &str,
    master_copies: bool,
    pid: &dyn Fn(ClientId) -> u32,
) -> Result<String, Errno> {
    let ls = node
        .lockspaces
        .get(name)
        .ok_or_else(|| no_lockspace(name))?;
    Ok(ls.lockdump(master_copies, pid))
}

/// `dlm_tool lockdebug <ls>`.
pub fn lockdebug(node: &Node, name: &str) -> Result<String, Errno> {
    let ls = node
        .lockspaces
        .get(name)
        .ok_or_else(|| no_lockspace(name))?;
    Ok(ls.lockdebug())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Callback, Request};
    use crate::flags::{Flags, Status};
    use crate::io::{Input, Output};
    use crate::membership::{lockspace_group, Confchg, LeaveReason, Quorum, DAEMON_GROUP};
    use crate::message::LsCpg;
    use crate::mode::Mode;
    use crate::node::CoreConfig;

    /// One node's core driven without I/O: its own multicasts come back to it (CPG
    /// delivers a sender's messages to itself), other nodes' are fed by the test.
    struct Rig {
        node: Node,
        hist: History,
        now: u64,
        callbacks: Vec<(ClientId, Callback)>,
        replies: Vec<(u64, Result<u32, Errno>)>,
        fenced: Vec<NodeId>,
    }

    impl Rig {
        fn new(me: NodeId) -> Rig {
            let mut node = Node::new(me, CoreConfig::default());
            let _ = node.start();
            Rig {
                node,
                hist: History::new(me),
                now: 0,
                callbacks: Vec::new(),
                replies: Vec::new(),
                fenced: Vec::new(),
            }
        }

        fn clock(&self) -> Clock {
            Clock {
                mono: self.now / 1000,
                wall: 1_700_000_000 + self.now / 1000,
            }
        }

        fn input(&mut self, input: Input) {
            self.batch(vec![input]);
        }

        /// Inputs that arrive together (corosync reports one membership change to
        /// several groups at once): this node's multicasts come back after them.
        fn batch(&mut self, inputs: Vec<Input>) {
            let mut queue: std::collections::VecDeque<Input> = inputs.into();
            while let Some(input) = queue.pop_front() {
                match &input {
                    Input::Confchg(c) => self.hist.confchg(c, self.clock()),
                    Input::Quorum(q) => self.hist.cluster_ring = q.ring_seq,
                    Input::DaemonCpg { from, msg } => {
                        self.hist.daemon_cpg(*from, msg, self.clock())
                    }
                    _ => {}
                }
                self.now += 10;
                let me = self.node.me;
                for o in self.node.handle(input, self.now) {
                    match o {
                        Output::McastLs { ls, msg } => {
                            queue.push_back(Input::LsCpg { ls, from: me, msg })
                        }
                        Output::McastDaemon(msg) => {
                            queue.push_back(Input::DaemonCpg { from: me, msg })
                        }
                        Output::Callback { client, cb, .. } => self.callbacks.push((client, cb)),
                        Output::Reply { req, result, .. } => self.replies.push((req, result)),
                        Output::Fence { node } => self.fenced.push(node),
                        _ => {}
                    }
                }
                self.hist.after(&self.node);
            }
        }

        fn confchg(
            &mut self,
            group: &str,
            members: &[u32],
            joined: &[u32],
            left: &[(u32, LeaveReason)],
        ) {
            self.input(Input::Confchg(Confchg {
                group: group.to_string(),
                members: members.to_vec(),
                joined: joined.to_vec(),
                left: left.to_vec(),
            }));
        }

        fn call(&mut self, client: ClientId, req: u64, request: Request) {
            self.input(Input::Client {
                client,
                req,
                request,
            });
        }

        fn from(&mut self, from: NodeId, ls: &str, msg: LsCpg) {
            self.input(Input::LsCpg {
                ls: ls.to_string(),
                from,
                msg,
            });
        }
    }

    fn lock(ls: &str, name: &[u8], mode: Mode, flags: u32) -> Request {
        Request::Lock {
            ls: ls.into(),
            name: name.to_vec(),
            mode,
            flags: Flags(flags),
            lvb: None,
            bast: true,
            lkid: 0,
        }
    }

    /// Node 1 of a three-node cluster, joined to "alpha" with node 2.
    fn two_in_alpha() -> Rig {
        let mut r = Rig::new(1);
        r.input(Input::Quorum(Quorum {
            quorate: true,
            members: vec![1, 2, 3],
            ring_seq: 12,
        }));
        r.confchg(DAEMON_GROUP, &[1, 2, 3], &[1], &[]);
        r.call(7, 1, Request::Join { ls: "alpha".into() });
        r.confchg(&lockspace_group("alpha"), &[1, 2], &[1], &[]);
        r.from(2, "alpha", LsCpg::Start { gen: 0 });
        r.from(
            2,
            "alpha",
            LsCpg::Masters {
                mastered: vec![],
                orphaned: vec![],
                last: true,
            },
        );
        r.from(
            2,
            "alpha",
            LsCpg::Locks {
                locks: vec![],
                last: true,
            },
        );
        r.from(2, "alpha", LsCpg::Done);
        assert_eq!(r.replies, vec![(1, Ok(0))], "joined");
        r
    }

    #[test]
    fn lockspace_ids_are_dlm_controlds_crc32_of_the_group_name() {
        // The CRC-32 check value, computed the same way.
        let mut crc = !0u32;
        for b in b"123456789" {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        assert_eq!(!crc, 0xCBF4_3926);
        // zlib.crc32(b"dlm:ls:alpha\0")
        assert_eq!(lockspace_id("alpha"), 0x521b_2683);
    }

    #[test]
    fn ls_shows_a_running_lockspace() {
        let r = two_in_alpha();
        let id = lockspace_id("alpha");
        assert_eq!(
            ls(&r.node, &r.hist, None, false).unwrap(),
            format!(
                "dlm lockspaces\n\
                 name          alpha\n\
                 id            0x{id:08x}\n\
                 flags         0x00000000 \n\
                 change        member 2 joined 1 remove 0 failed 0 seq 1,1\n\
                 members       1 2 \n\n"
            )
        );
        assert_eq!(
            ls(&r.node, &r.hist, Some("beta"), false).unwrap_err().code,
            ENOENT
        );
    }

    #[test]
    fn ls_while_joining_shows_join_and_kern_stop() {
        let mut r = Rig::new(1);
        r.input(Input::Quorum(Quorum {
            quorate: false,
            members: vec![1],
            ring_seq: 3,
        }));
        r.call(7, 1, Request::Join { ls: "alpha".into() });
        let text = ls(&r.node, &r.hist, Some("alpha"), false).unwrap();
        assert!(
            !text.contains("new change"),
            "no change before the first confchg: {text}"
        );
        r.confchg(DAEMON_GROUP, &[1], &[1], &[]);
        let text = ls(&r.node, &r.hist, Some("alpha"), false).unwrap();
        assert!(
            text.contains("flags         0x00000005 kern_stop,join\n"),
            "{text}"
        );
        assert!(
            text.contains("change        member 0 joined 0 remove 0 failed 0 seq 0,0\n"),
            "{text}"
        );
        assert!(
            !text.contains("new change"),
            "no change before the first confchg: {text}"
        );
        r.confchg(&lockspace_group("alpha"), &[1], &[1], &[]);
        let text = ls(&r.node, &r.hist, Some("alpha"), false).unwrap();
        assert!(
            text.contains("new change    member 1 joined 1 remove 0 failed 0 seq 1,1\n"),
            "{text}"
        );
        assert!(
            text.contains("new status    wait quorum\nnew members   1 \n"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_member_shows_wait_fencing_until_fenced() {
        let mut r = two_in_alpha();
        r.now += 2_000;
        let down = |group: &str, members: &[u32]| {
            Input::Confchg(Confchg {
                group: group.to_string(),
                members: members.to_vec(),
                joined: vec![],
                left: vec![(2, LeaveReason::NodeDown)],
            })
        };
        r.batch(vec![
            down(DAEMON_GROUP, &[1, 3]),
            down(&lockspace_group("alpha"), &[1]),
            // votequorum's view of the new ring: fencing waits for it.
            Input::Quorum(Quorum {
                quorate: true,
                members: vec![1, 3],
                ring_seq: 13,
            }),
        ]);
        assert_eq!(r.fenced, vec![2], "node 1 is the actor");
        let text = ls(&r.node, &r.hist, Some("alpha"), true).unwrap();
        assert!(
            text.contains("flags         0x00000004 kern_stop\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "change        member 2 joined 1 remove 0 failed 0 seq 1,1\nmembers       1 2 \n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "new change    member 1 joined 0 remove 1 failed 1 seq 2,2\n\
                 new status    wait fencing\n\
                 new members   1 \n"
            ),
            "{text}"
        );
        assert!(text.contains("all nodes\n"), "{text}");
        assert!(
            text.contains("nodeid 1 member 1 failed 0 start 0 seq_add 1 seq_rem 0 check none\n"),
            "{text}"
        );
        assert!(
            text.contains("nodeid 2 member 0 failed 3 start 0 seq_add 0 seq_rem 2 check fence 2\n"),
            "{text}"
        );

        let st = status(&r.node, &r.hist, false, r.clock());
        let lines: Vec<&str> = st.lines().collect();
        assert_eq!(lines[0], "cluster nodeid 1 quorate 1 ring seq 13 12");
        assert!(lines[1].starts_with("daemon now 2 fence_pid 0"), "{st}");
        assert_eq!(
            lines[2],
            "fence 2 nodedown pid 0 actor 1 fail 1700000002 fence 0 now 1700000002 result_wait"
        );
        assert_eq!(lines[3], "node 1 M add 0 rem 0 fail 0 fence 0 at 0 0");
        assert_eq!(lines[4], "node 2 X add 0 rem 2 fail 2 fence 0 at 0 0");
        let verbose = status(&r.node, &r.hist, true, r.clock());
        assert!(
            verbose.starts_with("our_nodeid 1\nmember_count=2\n"),
            "{verbose}"
        );
        assert!(
            verbose
                .contains("nodeid 2\nmember=0\nkilled=0\nleft_reason=nodedown\nneed_fencing=1\n"),
            "{verbose}"
        );

        // The agents succeed: the result goes through the daemons' group, recovery runs.
        r.now += 1_000;
        r.input(Input::FenceDone { node: 2, ok: true });
        assert!(r.node.fencing.is_empty());
        assert!(r.node.lockspaces["alpha"].running());
        let text = ls(&r.node, &r.hist, Some("alpha"), false).unwrap();
        assert!(text.contains("flags         0x00000000 \nchange        member 1 joined 0 remove 1 failed 1 seq 2,2\nmembers       1 \n\n"), "{text}");
        let st = status(&r.node, &r.hist, false, r.clock());
        assert!(
            st.contains("node 2 X add 0 rem 2 fail 2 fence 3 at 1 1700000003\n"),
            "{st}"
        );
    }

    #[test]
    fn a_recovery_barrier_shows_the_messages_it_waits_for() {
        let mut r = two_in_alpha();
        r.confchg(&lockspace_group("alpha"), &[1, 2, 3], &[3], &[]);
        let text = ls(&r.node, &r.hist, Some("alpha"), true).unwrap();
        // Node 1's own Start is delivered; 2 and 3 are missing.
        assert!(text.contains("new status    wait messages 2\n"), "{text}");
        assert!(
            text.contains("nodeid 1 member 1 failed 0 start 1 "),
            "{text}"
        );
        assert!(
            text.contains("nodeid 3 member 1 failed 0 start 0 seq_add 2 "),
            "{text}"
        );
    }

    #[test]
    fn lockdump_and_lockdebug_show_granted_and_waiting_locks() {
        let mut r = Rig::new(1);
        r.input(Input::Quorum(Quorum {
            quorate: true,
            members: vec![1],
            ring_seq: 1,
        }));
        r.confchg(DAEMON_GROUP, &[1], &[1], &[]);
        r.call(7, 1, Request::Join { ls: "alpha".into() });
        r.confchg(&lockspace_group("alpha"), &[1], &[1], &[]);
        assert_eq!(r.replies, vec![(1, Ok(0))]);
        r.call(7, 2, lock("alpha", b"res", Mode::EX, 0));
        r.call(8, 3, lock("alpha", b"res", Mode::PR, 0));
        let granted = r.callbacks.iter().any(|(c, cb)| {
            *c == 7
                && matches!(
                    cb,
                    Callback::Completion {
                        status: Status::Granted,
                        ..
                    }
                )
        });
        assert!(granted, "{:?}", r.callbacks);
        let pid = |c: ClientId| 1000 + c as u32;
        assert_eq!(
            lockdump(&r.node, "alpha", true, &pid).unwrap(),
            "id 00000001 gr EX rq IV pid 1007 master 0 \"res\"\n\
             id 00000002 gr IV rq PR pid 1008 master 0 \"res\"\n"
        );
        let blank = " ".repeat(20);
        let nowait = " ".repeat(8);
        assert_eq!(
            lockdebug(&r.node, "alpha").unwrap(),
            format!(
                "\nResource len  3  \"res\"\n\
                 Master           \n\
                 Granted\n\
                 00000001 EX      {blank} {nowait} \n\
                 Waiting\n\
                 00000002 -- (PR) {blank} {nowait} \n\n"
            )
        );
        assert!(lockdebug(&r.node, "beta").is_err());
    }

    #[test]
    fn lockdebug_shows_a_remote_master_and_the_reply_awaited() {
        let mut r = two_in_alpha();
        // Find a name whose directory node is node 2: the lookup goes there.
        let name = (0..100)
            .map(|i| format!("r{i}").into_bytes())
            .find(|n| crate::lockspace::dir_node(n, &[1, 2]) == 2)
            .expect("a name with directory node 2");
        r.call(7, 2, lock("alpha", &name, Mode::EX, 0));
        let text = lockdebug(&r.node, "alpha").unwrap();
        let shown = String::from_utf8_lossy(&name).to_string();
        assert!(
            text.contains(&format!(
                "\"{shown}\"\nLookup           \nLookup\n00000001 -- (EX)"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\nExpecting reply\nnodeid  2 msg lookup  lkid 00000001 resource \"{shown}\"\n"
            )),
            "{text}"
        );
        assert_eq!(
            lockdump(&r.node, "alpha", false, &|_| 42).unwrap(),
            format!("id 00000001 gr IV rq EX pid 42 master -1 \"{shown}\"\n")
        );
    }
}
