//! Hosts built from network namespaces on this machine, each running its own corosync
//! (DESIGN.md "Test beds").
//!
//! Host `i` (1-based) of a cluster is:
//! - a network namespace `hyd-<pid>-<k>-<i>` (`k` numbers the clusters of this test
//!   process) with one veth, `eth0`, whose other end `hyd-<pid>-<k>v<i>` is in a bridge
//!   `hyd-<pid>-<k>` made for the cluster. `eth0` has 10.200.<k+1>.<i>/24 and no other
//!   address: IPv6 is off (no link-local), loopback stays down, there is no default
//!   route. The bridge has no address, so nothing inside can reach the machine.
//! - a mount namespace of its own with a tmpfs on /run (corosync's pid file is fixed at
//!   /run/corosync.pid) and on /dev/shm (libqb's IPC rings), held by a `sleep` process.
//!   Every program of the host — corosync, a test's own program, corosync's tools — is
//!   put into the holder's network and mount namespaces with nsenter, and so talks to
//!   that host's corosync: libqb's IPC sockets are abstract unix sockets, which belong to
//!   the network namespace, and its rings are files in /dev/shm. These mounts exist only
//!   in that namespace and vanish with its last process; nothing is mounted on the
//!   machine's own tree.
//! - a directory of its own (corosync.conf, corosync's log and state_dir) in the
//!   cluster's temporary directory `hyd-<pid>-<k>-*`.
//!
//! Dropping the cluster kills every process in its namespaces by pid, deletes the links,
//! the namespaces and the bridge, also when the test panics (then it prints the corosync
//! logs first). Processes it starts get SIGKILL if the test process dies, and a later
//! run deletes namespaces and links left by a test process that no longer exists.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::netns::{self, check_ifname, disable_ipv6, ip, kill_netns_processes, quiet_ip, Holder};
use super::text;

/// corosync's token timeout (corosync.conf(5) `totem.token`): short, so that a cut or a
/// crash is noticed within seconds.
pub const TOKEN_MS: u32 = 1000;

/// How long a host may take to reach a membership or to answer over IPC.
const SETTLE: Duration = Duration::from_secs(60);

/// Clusters made by this test process so far (their `k`).
static CLUSTERS: AtomicU8 = AtomicU8::new(0);

pub struct Cluster {
    /// `hyd-<pid>-<k>`: the bridge's name, and the prefix of every other name.
    name: String,
    subnet: u8,
    bridge_made: bool,
    hosts: Vec<Host>,
    dir: tempfile::TempDir,
}

struct Host {
    netns: String,
    /// The veth end in the bridge, in the machine's namespace.
    veth: String,
    addr: Ipv4Addr,
    dir: PathBuf,
    holder: Option<Holder>,
    corosync: Option<Child>,
}

impl Cluster {
    /// `n` hosts, each with corosync running, once every host sees all `n` as members.
    pub fn start(n: usize) -> Cluster {
        let mut cluster = Cluster::build(n);
        for i in 1..=n {
            cluster.start_corosync(i);
        }
        for i in 1..=n {
            cluster.wait_members(i, n);
        }
        cluster
    }

    /// `n` hosts with their corosync.conf written and no corosync running: a test boots
    /// each with [`Cluster::restart`] when it wants.
    pub fn build(n: usize) -> Cluster {
        let cluster = Self::hosts(n);
        for i in 1..=n {
            cluster.write_config(i);
        }
        cluster
    }

    /// `n` hosts on the bridge without corosync: a bed for iSCSI tests that cut links.
    pub fn hosts(n: usize) -> Cluster {
        assert!((1..=9).contains(&n), "1 to 9 hosts");
        require_tools();
        netns::sweep_stale("hyd-");
        let k = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let mut cluster = Cluster {
            name: format!("hyd-{}-{k}", std::process::id()),
            subnet: k
                .checked_add(1)
                .expect("at most 254 clusters per test process"),
            bridge_made: false,
            hosts: Vec::new(),
            dir: tempfile::Builder::new()
                .prefix(&format!("hyd-{}-{k}-", std::process::id()))
                .tempdir()
                .expect("temp dir"),
        };
        // Each step records what it made before the next can fail, so that Drop removes
        // a half-built cluster too.
        cluster.make_bridge();
        for i in 1..=n {
            cluster.add_host(i);
        }
        cluster
    }

    /// Host `i`'s network namespace as a path for setns(2) ([`enter_net`]).
    pub fn netns_path(&self, i: usize) -> String {
        self.holder(i).netns_path()
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.host(i).addr
    }

    /// Host `i`'s directory (corosync.conf, corosync.log; a test may put its files here).
    pub fn dir(&self, i: usize) -> &Path {
        &self.host(i).dir
    }

    /// A command that runs `program` inside host `i`'s network and mount namespaces. It
    /// gets SIGKILL if the test process dies.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.holder(i).command(program)
    }

    /// Run a program in host `i` to completion (at most 60 s).
    pub fn exec(&self, i: usize, args: &[&str]) -> Output {
        self.holder(i).exec(args)
    }

    fn holder(&self, i: usize) -> &Holder {
        self.host(i).holder.as_ref().expect("host is up")
    }

    /// Cut host `i` off the bridge (its link goes down on the bridge side).
    pub fn cut(&self, i: usize) {
        ip(&format!("link set {} down", self.host(i).veth));
    }

    /// Put host `i` back on the bridge.
    pub fn heal(&self, i: usize) {
        ip(&format!("link set {} up", self.host(i).veth));
    }

    /// Wait until knet on every host has declared the links between host `i` and the
    /// others down (`corosync-cfgtool -n` lists no peer as reachable across the cut).
    /// totem's token (1 s) notices a cut before knet's link timeout does, so a test
    /// that heals as soon as corosync reports the new membership heals while knet still
    /// thinks the links are up; knet then declares them down and up again after the
    /// heal. corosync usually merges after that, but not always: once, in CI, both sides
    /// went on forming their own membership every 2 s for 30 s. A test that checks
    /// what hydra reports of a partition and its end waits for this before it heals.
    pub fn wait_cut_seen(&self, i: usize) {
        let start = Instant::now();
        loop {
            let isolated = self.reachable(i).is_empty();
            let others = (1..=self.hosts.len())
                .filter(|&j| j != i && self.host(j).corosync.is_some())
                .all(|j| !self.reachable(j).contains(&(i as u32)));
            if isolated && others {
                return;
            }
            assert!(
                start.elapsed() < SETTLE,
                "knet did not declare host {i}'s links down within {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node ids host `i`'s knet can reach (`corosync-cfgtool -n`: "nodeid: N
    /// reachable").
    fn reachable(&self, i: usize) -> Vec<u32> {
        let out = self.exec(i, &["corosync-cfgtool", "-n"]);
        text(&out)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nodeid:"))
            .filter_map(|rest| rest.trim().strip_suffix("reachable"))
            .filter_map(|n| n.trim().parse().ok())
            .collect()
    }

    /// Host `i`'s corosync pid, if the test started one (it may have died since).
    pub fn corosync_pid(&self, i: usize) -> Option<u32> {
        self.host(i).corosync.as_ref().map(Child::id)
    }

    /// Kill host `i`'s corosync (SIGKILL, by pid): a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut corosync) = self.hosts[i - 1].corosync.take() {
            let _ = corosync.kill();
            let _ = corosync.wait();
        }
    }

    /// Start host `i`'s corosync again (killing it first if it runs); returns once it
    /// answers over IPC.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.start_corosync(i);
        let start = Instant::now();
        while self.quorum_status(i).is_none() {
            assert!(
                start.elapsed() < SETTLE,
                "host {i}: corosync did not come back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until host `i`'s corosync sees `count` nodes in its membership.
    pub fn wait_members(&self, i: usize, count: usize) {
        let start = Instant::now();
        loop {
            let status = self.quorum_status(i);
            if status.as_deref().and_then(node_count) == Some(count) {
                return;
            }
            if start.elapsed() > SETTLE {
                panic!(
                    "host {i}: corosync did not reach {count} members within {SETTLE:?}; \
                     corosync-quorumtool -s says:\n{}",
                    status.unwrap_or_else(|| "(no answer)".into())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `corosync-quorumtool -s` in host `i`, if its corosync answers.
    fn quorum_status(&self, i: usize) -> Option<String> {
        let out = self.exec(i, &["corosync-quorumtool", "-s"]);
        let status = text(&out);
        status.contains("Quorum provider").then_some(status)
    }

    fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }

    fn make_bridge(&mut self) {
        check_ifname(&self.name);
        ip(&format!("link add {} type bridge", self.name));
        self.bridge_made = true;
        disable_ipv6(&self.name);
        ip(&format!("link set {} up", self.name));
    }

    fn add_host(&mut self, i: usize) {
        let dir = self.dir.path().join(format!("host{i}"));
        std::fs::create_dir(&dir).expect("host dir");
        let host = Host {
            netns: format!("{}-{i}", self.name),
            veth: format!("{}v{i}", self.name),
            addr: Ipv4Addr::new(10, 200, self.subnet, i as u8),
            dir,
            holder: None,
            corosync: None,
        };
        check_ifname(&host.veth);
        ip(&format!("netns add {}", host.netns));
        self.hosts.push(host);
        self.plug(i);
        let holder = Holder::start(
            &self.host(i).netns,
            "mount -t tmpfs -o mode=0755,size=16m hyd-run /run && \
             mount -t tmpfs -o mode=1777,size=64m hyd-shm /dev/shm",
        );
        self.hosts[i - 1].holder = Some(holder);
    }

    /// Host `i`'s veth pair into the bridge, with the host's one address.
    fn plug(&self, i: usize) {
        let Host {
            netns, veth, addr, ..
        } = self.host(i);
        // IPv6 off before eth0 exists, so that it never gets a link-local address.
        ip(&format!(
            "netns exec {netns} sysctl -q -w \
             net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        ));
        ip(&format!(
            "link add {veth} type veth peer name eth0 netns {netns}"
        ));
        disable_ipv6(veth);
        ip(&format!("link set {veth} master {} up", self.name));
        ip(&format!("-n {netns} addr add {addr}/24 dev eth0"));
        ip(&format!("-n {netns} link set eth0 up"));
    }

    /// Host `i`'s corosync.conf ([`corosync_conf`]), in its directory.
    fn write_config(&self, i: usize) {
        let addrs: Vec<Ipv4Addr> = (1..=self.hosts.len()).map(|n| self.addr(n)).collect();
        let conf = corosync_conf(&self.name, &addrs, &self.host(i).dir, false);
        std::fs::write(self.host(i).dir.join("corosync.conf"), conf).expect("corosync.conf");
    }

    fn start_corosync(&mut self, i: usize) {
        let dir = self.host(i).dir.clone();
        let child = spawn_corosync(self.command(i, "corosync"), &dir);
        self.hosts[i - 1].corosync = Some(child);
    }

    /// The tail of each host's corosync log and output, for a failing test.
    fn print_logs(&self) {
        for (n, host) in self.hosts.iter().enumerate() {
            for file in ["corosync.out", "corosync.log"] {
                let body = std::fs::read_to_string(host.dir.join(file)).unwrap_or_default();
                let lines: Vec<&str> = body.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("--- host {} {file} (last 40 lines) ---\n{tail}", n + 1);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for host in &mut self.hosts {
            if let Some(mut c) = host.corosync.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            host.holder.take();
            // Anything else a test started in the host and left running.
            kill_netns_processes(&host.netns);
            // Deleting one end of a veth deletes the pair.
            quiet_ip(&format!("link del {}", host.veth));
            quiet_ip(&format!("netns del {}", host.netns));
        }
        if self.bridge_made {
            quiet_ip(&format!("link del {}", self.name));
        }
    }
}

/// A host's corosync.conf (corosync.conf(5), votequorum(5)) for the cluster `name` whose
/// node `i` (1-based, its node id) has ring0 address `addrs[i - 1]`: knet, corosync 3's
/// default transport, without crypto as the hosts share one machine; token [`TOKEN_MS`];
/// the log and state_dir in `dir`. `two_node` sets votequorum's `two_node: 1` (a
/// two-node cluster stays quorate when one node is gone: the classic two-node setup,
/// where fencing decides which node goes on).
pub fn corosync_conf(name: &str, addrs: &[Ipv4Addr], dir: &Path, two_node: bool) -> String {
    let dir = dir.display();
    let nodes: String = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let n = i + 1;
            format!("    node {{\n        nodeid: {n}\n        ring0_addr: {addr}\n    }}\n")
        })
        .collect();
    let two_node = if two_node { "    two_node: 1\n" } else { "" };
    format!(
        "\
totem {{
    version: 2
    cluster_name: {name}
    transport: knet
    token: {TOKEN_MS}
    crypto_cipher: none
    crypto_hash: none
}}
nodelist {{
{nodes}}}
quorum {{
    provider: corosync_votequorum
{two_node}}}
system {{
    state_dir: {dir}
}}
logging {{
    to_logfile: yes
    logfile: {dir}/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}}
"
    )
}

/// `Nodes: N` of `corosync-quorumtool -s`.
fn node_count(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix("Nodes:"))
        .and_then(|n| n.trim().parse().ok())
}

fn require_tools() {
    netns::require_root_and_tools(
        &[
            "corosync",
            "corosync-quorumtool",
            "ip",
            "nsenter",
            "unshare",
        ],
        "scripts/setup.sh installs corosync and iproute2",
        "multi-host tests make network namespaces and need root",
    );
}

/// Move the calling thread (only it) into the network namespace at `path`: sockets it
/// opens afterwards live there, and so do processes it spawns. setns(2) allows this
/// for CLONE_NEWNET in a threaded process.
pub fn enter_net(path: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: a valid namespace descriptor; setns touches no memory of ours.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// `corosync -f -c DIR/corosync.conf` through `cmd` (a host's command for `corosync`),
/// its output appended to DIR/corosync.out.
pub fn spawn_corosync(mut cmd: Command, dir: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("corosync.out"))
        .expect("corosync.out");
    cmd.arg("-f")
        .arg("-c")
        .arg(dir.join("corosync.conf"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn corosync")
}
