//! The DLM's corosync layer (`hydra_dlm::corosync`) against real corosync: three hosts
//! from network namespaces (tests/common/cluster.rs), each with its own corosync and a
//! member process that joins the CPG group `dlm:ls:test` and prints every ClusterEvent it
//! gets as a line.
//!
//! The member process is this test binary itself, started inside a host's namespaces as
//! `<test binary> member_process --exact --ignored --nocapture` with the group in
//! HYDRA_MEMBER_GROUP: the driver is already linked into the test, so no other binary has
//! to be built for it. It takes commands on stdin (`mcast <text>`, `leave`).
//!
//! Every expectation waits for the event it names with a time limit and fails with what
//! the member saw instead.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use hydra_dlm::corosync::Corosync;
use hydra_dlm::membership::{lockspace_group, ClusterEvent, Confchg, LeaveReason, NodeId, Quorum};

const GROUP_ENV: &str = "HYDRA_MEMBER_GROUP";

/// Marks the member's own lines in its output (libtest prints around them).
const MARK: &str = "@member ";

/// A corosync membership change takes token + consensus + knet's link timeout: a few
/// seconds with the test bed's 1 s token. This leaves room for a loaded machine.
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn cpg_membership_messages_partition_and_crash() {
    let mut cluster = Cluster::start(3);
    let group = lockspace_group("test");
    let mut m: Vec<Member> = (1..=3)
        .map(|i| Member::start(&cluster, i, &group))
        .collect();

    // Each member knows who it is and the nodelist, and sees the quorum and all three.
    let nodelist: Vec<(NodeId, IpAddr)> = (1..=3)
        .map(|i| (i as NodeId, IpAddr::V4(cluster.addr(i))))
        .collect();
    for (i, member) in m.iter_mut().enumerate() {
        assert_eq!(member.local, i as NodeId + 1);
        assert_eq!(member.nodelist, nodelist);
        member.expect_quorum(true, &[1, 2, 3]);
        member.expect_members(&group, &[1, 2, 3]);
    }

    // A multicast from node 2 reaches all three, itself included.
    m[1].send("mcast hello from 2");
    for member in &mut m {
        member.expect("node 2's message", |e| {
            matches!(e, ClusterEvent::Deliver { group: g, from: 2, data }
                if *g == group && data == b"hello from 2")
        });
    }

    // Cut node 1 off: 2 and 3 see it go down and keep quorum; 1 alone loses it.
    cluster.cut(1);
    for member in &mut m[1..] {
        member.expect_confchg(&group, &[2, 3], &[], &[(1, LeaveReason::NodeDown)]);
        member.expect_quorum(true, &[2, 3]);
    }
    m[0].expect_confchg(
        &group,
        &[1],
        &[],
        &[(2, LeaveReason::NodeDown), (3, LeaveReason::NodeDown)],
    );
    m[0].expect_quorum(false, &[1]);

    // Heal, once knet too has seen the cut (see wait_cut_seen): node 1 comes back into
    // the group and the quorum.
    cluster.wait_cut_seen(1);
    cluster.heal(1);
    for member in &mut m[1..] {
        member.expect_confchg(&group, &[1, 2, 3], &[1], &[]);
    }
    m[0].expect_confchg(&group, &[1, 2, 3], &[2, 3], &[]);
    for member in &mut m {
        member.expect_quorum(true, &[1, 2, 3]);
    }

    // Crash node 1's corosync: its member is told the connection is lost, the others
    // see node 1 go down.
    cluster.kill(1);
    m[0].expect_lost();
    for member in &mut m[1..] {
        member.expect_confchg(&group, &[2, 3], &[], &[(1, LeaveReason::NodeDown)]);
    }

    // Restart it and a new member there: everyone sees all three again.
    cluster.restart(1);
    m[0] = Member::start(&cluster, 1, &group);
    m[0].expect_members(&group, &[1, 2, 3]);
    for member in &mut m[1..] {
        member.expect_confchg(&group, &[1, 2, 3], &[1], &[]);
    }

    // A clean leave by node 3, then node 2's member process dies (corosync stays up):
    // the two reasons that are not a node going down.
    m[2].send("leave");
    m[2].expect_confchg(&group, &[1, 2], &[], &[(3, LeaveReason::Leave)]);
    for member in &mut m[..2] {
        member.expect_confchg(&group, &[1, 2], &[], &[(3, LeaveReason::Leave)]);
    }
    m[1].kill();
    m[0].expect_confchg(&group, &[1], &[], &[(2, LeaveReason::ProcDown)]);
}

/// The member process (see the top of this file); not a test by itself.
#[test]
#[ignore = "the member process of cpg_membership_messages_partition_and_crash"]
fn member_process() {
    let Ok(group) = std::env::var(GROUP_ENV) else {
        println!("not a test: cpg_membership_messages_partition_and_crash starts it in a host");
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let code = runtime.block_on(member(group));
    std::process::exit(code);
}

async fn member(group: String) -> i32 {
    let say = |line: String| println!("{MARK}{line}");
    let (corosync, mut events) = match Corosync::connect().await {
        Ok(c) => c,
        Err(e) => {
            say(format!("error {e}"));
            return 1;
        }
    };
    say(format!("local {}", corosync.local_nodeid()));
    for (id, addr) in corosync.nodelist() {
        say(format!("node {id} {addr}"));
    }
    if let Err(e) = corosync.join(&group).await {
        say(format!("error {e}"));
        return 1;
    }
    let mut commands = stdin_lines();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => say(format!("event {}", show(&event))),
                Err(e) => {
                    say(format!("error {e}"));
                    return 2;
                }
            },
            command = commands.recv() => {
                // The test closed stdin: it is done with this member.
                let Some(command) = command else { return 0 };
                if let Err(e) = run_command(&corosync, &group, &command).await {
                    say(format!("error {e}"));
                }
            }
        }
    }
}

/// `mcast <text>` or `leave`.
async fn run_command(corosync: &Corosync, group: &str, command: &str) -> hydra_dlm::Result<()> {
    if let Some(text) = command.strip_prefix("mcast ") {
        return corosync.mcast(group, text.as_bytes()).await;
    }
    match command {
        "leave" => corosync.leave(group).await,
        other => Err(hydra_dlm::Error::Request(format!(
            "unknown command {other}"
        ))),
    }
}

/// Lines from stdin, read on a thread of their own (tokio's stdin is not enabled here).
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// One event as a line; `parse` reads it back.
fn show(event: &ClusterEvent) -> String {
    let ids = |ids: &[NodeId]| {
        let s: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        s.join(",")
    };
    match event {
        ClusterEvent::Confchg(c) => {
            let left: Vec<String> = c.left.iter().map(|(n, r)| format!("{n}:{r:?}")).collect();
            format!(
                "confchg {} members={} joined={} left={}",
                c.group,
                ids(&c.members),
                ids(&c.joined),
                left.join(",")
            )
        }
        ClusterEvent::Deliver { group, from, data } => {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            format!("deliver {group} from={from} data={hex}")
        }
        ClusterEvent::Quorum(q) => format!(
            "quorum quorate={} members={} ring={}",
            q.quorate,
            ids(&q.members),
            q.ring_seq
        ),
    }
}

fn parse(line: &str) -> Option<ClusterEvent> {
    let words: Vec<&str> = line.split(' ').collect();
    let field = |i: usize, key: &str| -> Option<&str> { words.get(i)?.strip_prefix(key) };
    let ids = |s: &str| -> Option<Vec<NodeId>> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().ok())
            .collect()
    };
    match *words.first()? {
        "confchg" => {
            let left = field(4, "left=")?
                .split(',')
                .filter(|x| !x.is_empty())
                .map(|x| {
                    let (n, r) = x.split_once(':')?;
                    let reason = match r {
                        "Leave" => LeaveReason::Leave,
                        "NodeDown" => LeaveReason::NodeDown,
                        "ProcDown" => LeaveReason::ProcDown,
                        _ => return None,
                    };
                    Some((n.parse().ok()?, reason))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(ClusterEvent::Confchg(Confchg {
                group: words.get(1)?.to_string(),
                members: ids(field(2, "members=")?)?,
                joined: ids(field(3, "joined=")?)?,
                left,
            }))
        }
        "deliver" => {
            let hex = field(3, "data=")?;
            let data = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some(ClusterEvent::Deliver {
                group: words.get(1)?.to_string(),
                from: field(2, "from=")?.parse().ok()?,
                data,
            })
        }
        "quorum" => Some(ClusterEvent::Quorum(Quorum {
            quorate: field(1, "quorate=")?.parse().ok()?,
            members: ids(field(2, "members=")?)?,
            ring_seq: field(3, "ring=")?.parse().ok()?,
        })),
        _ => None,
    }
}

/// A member's output holds two streams: the group's events (its CPG connection) and the
/// quorum events (its quorum connection). corosync orders each, not one against the
/// other, so each expectation waits on one stream and leaves the other's lines for later.
#[derive(Clone, Copy, PartialEq)]
enum Stream {
    Group,
    Quorum,
}

impl Stream {
    /// The stream of a line; start-up lines and errors belong to both (None).
    fn of(line: &str) -> Option<Stream> {
        if line.starts_with("event quorum ") {
            Some(Stream::Quorum)
        } else if line.starts_with("event ") {
            Some(Stream::Group)
        } else {
            None
        }
    }

    fn takes(self, line: &str) -> bool {
        !matches!(Stream::of(line), Some(s) if s != self)
    }
}

/// A member process in one host, seen from the test.
struct Member {
    host: usize,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every line so far, for failure messages.
    seen: Vec<String>,
    /// Lines read while waiting on the other stream, not looked at yet.
    aside: VecDeque<String>,
    stderr: std::path::PathBuf,
    local: NodeId,
    nodelist: Vec<(NodeId, IpAddr)>,
}

impl Member {
    /// Start one in host `host`, joined to `group`; returns once it has connected.
    fn start(cluster: &Cluster, host: usize, group: &str) -> Member {
        let stderr = cluster.dir(host).join("member.err");
        let mut child = cluster
            .command(host, std::env::current_exe().expect("test binary"))
            .args(["member_process", "--exact", "--ignored", "--nocapture"])
            .env(GROUP_ENV, group)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("member.err"))
            .spawn()
            .expect("spawn member");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find(MARK) {
                    if tx.send(line[at + MARK.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut member = Member {
            host,
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            aside: VecDeque::new(),
            stderr,
            local: 0,
            nodelist: Vec::new(),
        };
        member.local = member.wait_line("its node id", Stream::Group, |l| {
            l.strip_prefix("local ")?.parse().ok()
        });
        for _ in 0..3 {
            let node = member.wait_line("a nodelist entry", Stream::Group, |l| {
                let (id, addr) = l.strip_prefix("node ")?.split_once(' ')?;
                Some((id.parse().ok()?, addr.parse().ok()?))
            });
            member.nodelist.push(node);
        }
        member
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("member's stdin");
        writeln!(stdin, "{command}").expect("write to member");
    }

    /// Wait for the first line of `stream` that `pick` accepts, skipping the stream's
    /// earlier lines; lines of the other stream are kept for later. A line `error ...`
    /// fails the test.
    fn wait_line<T>(
        &mut self,
        what: &str,
        stream: Stream,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            let line = match self.next_line(stream, start) {
                Ok(line) => line,
                Err(why) => self.fail(&format!("{why} while waiting for {what}")),
            };
            if let Some(found) = pick(&line) {
                return found;
            }
            if line.starts_with("error ") {
                self.fail(&format!("waiting for {what}: {line}"));
            }
        }
    }

    /// The next line of `stream`: one kept aside earlier, or a new one.
    fn next_line(&mut self, stream: Stream, start: Instant) -> Result<String, String> {
        if let Some(at) = self.aside.iter().position(|l| stream.takes(l)) {
            return Ok(self.aside.remove(at).expect("position is in range"));
        }
        loop {
            let left = LIMIT.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if stream.takes(&line) {
                        return Ok(line);
                    }
                    self.aside.push_back(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("nothing within {LIMIT:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the member exited".into()),
            }
        }
    }

    /// Wait for a group event (confchg or message) that `want` accepts.
    fn expect(&mut self, what: &str, want: impl Fn(&ClusterEvent) -> bool) {
        self.wait_line(what, Stream::Group, |l| {
            let event = parse(l.strip_prefix("event ")?)?;
            want(&event).then_some(())
        });
    }

    fn expect_confchg(
        &mut self,
        group: &str,
        members: &[NodeId],
        joined: &[NodeId],
        left: &[(NodeId, LeaveReason)],
    ) {
        let want = ClusterEvent::Confchg(Confchg {
            group: group.to_string(),
            members: members.to_vec(),
            joined: joined.to_vec(),
            left: left.to_vec(),
        });
        self.expect(&format!("{want:?}"), |e| *e == want);
    }

    /// A confchg with these members, whatever joined or left to get there.
    fn expect_members(&mut self, group: &str, members: &[NodeId]) {
        self.expect(
            &format!("members {members:?} of {group}"),
            |e| matches!(e, ClusterEvent::Confchg(c) if c.group == group && c.members == members),
        );
    }

    fn expect_quorum(&mut self, quorate: bool, members: &[NodeId]) {
        let what = format!("quorate={quorate} members {members:?}");
        self.wait_line(&what, Stream::Quorum, |l| {
            let event = parse(l.strip_prefix("event ")?)?;
            matches!(event, ClusterEvent::Quorum(q) if q.quorate == quorate && q.members == members)
                .then_some(())
        });
    }

    /// The driver reports that corosync is gone, and the member ends.
    fn expect_lost(&mut self) {
        let error = self.wait_line("the lost-connection error", Stream::Group, |l| {
            l.strip_prefix("error ").map(str::to_string)
        });
        assert!(
            error.contains("lost the connection to corosync"),
            "node {}: unexpected error: {error}",
            self.host
        );
        let start = Instant::now();
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                start.elapsed() < LIMIT,
                "node {}: member did not exit",
                self.host
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn fail(&mut self, why: &str) -> ! {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        panic!(
            "node {}: {why}\nlines seen:\n  {}\nstderr:\n{stderr}",
            self.host,
            self.seen.join("\n  ")
        );
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stdin.take();
        self.kill();
    }
}
